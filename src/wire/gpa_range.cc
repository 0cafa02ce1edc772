#include "wire/gpa_range.h"

#include <algorithm>

namespace uvmbus::wire {

Expected<std::vector<MessageBuffer>> BuildGpadlMessages(uint32_t child_relid, uint32_t gpadl,
                                                        std::span<const uint64_t> pfns) {
  const size_t pages = pfns.size();
  if (pages == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL 0x{:x} has no pages", gpadl);
  }
  if (pages > kMaxGpadlPages) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "GPADL 0x{:x} of {} pages exceeds {} (range_buflen is 16 bits)", gpadl, pages,
                     kMaxGpadlPages);
  }

  std::vector<MessageBuffer> out;
  out.reserve(GpadlMessageCount(pages));

  // Header: fixed part, the single range's header word, then the first PFNs.
  GpadlHeaderMessage header;
  header.fixed.child_relid = child_relid;
  header.fixed.gpadl = gpadl;
  header.fixed.range_buflen = static_cast<uint16_t>(8 + 8 * pages);  // <= 65535 checked above
  header.fixed.rangecount = 1;
  const uint64_t byte_count = static_cast<uint64_t>(pages) * kGpaPageSize;  // <= 32 MiB
  header.range_words[0] = byte_count;  // byte_count in the low half, byte_offset 0 in the high
  const size_t in_header = std::min(pages, kGpadlHeaderMaxPfns);
  std::copy_n(pfns.begin(), in_header, header.range_words.begin() + 1);
  header.range_word_count = static_cast<uint8_t>(1 + in_header);
  out.push_back(Encode(header));

  // Bodies: the remaining PFNs, 28 per message. Linux leaves msgnumber 0 (V17).
  for (size_t next = in_header; next < pages;) {
    GpadlBodyMessage body;
    body.fixed.gpadl = gpadl;
    const size_t n = std::min(pages - next, kGpadlBodyMaxPfns);
    std::copy_n(pfns.begin() + static_cast<std::ptrdiff_t>(next), n, body.range_words.begin());
    body.range_word_count = static_cast<uint8_t>(n);
    out.push_back(Encode(body));
    next += n;
  }
  return out;
}

GpadlAssembler::GpadlAssembler(const GpadlHeaderMessage& header)
    : child_relid_(header.fixed.child_relid),
      gpadl_(header.fixed.gpadl),
      rangecount_(header.fixed.rangecount),
      // range_buflen is a u16, so this is at most kMaxGpadlRangeWords (G4). A range_buflen that
      // is not a multiple of 8 cannot describe a partial word: its tail is ignored.
      words_expected_(header.fixed.range_buflen / 8) {
  // No reservation from range_buflen: storage grows only with range data actually received, so
  // a guest that opens many GPADLs and never finishes them costs what it sent, not 64 KiB each.
  Append(header.words());
}

void GpadlAssembler::Append(std::span<const uint64_t> words) {
  // H15: data past range_buflen is not an error; some clients always send full messages.
  const size_t room = words_expected_ - words_.size();
  const size_t take = std::min(room, words.size());
  words_.insert(words_.end(), words.begin(), words.begin() + static_cast<std::ptrdiff_t>(take));
}

Status GpadlAssembler::AddBody(const GpadlBodyMessage& body) {
  if (body.fixed.gpadl != gpadl_) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL_BODY for 0x{:x} given to GPADL 0x{:x}",
                     body.fixed.gpadl, gpadl_);
  }
  if (IsComplete()) {
    return MakeError(ErrorCode::kProtocol, "GPADL_BODY for complete GPADL 0x{:x}", gpadl_);
  }
  Append(body.words());
  return Ok();
}

Expected<std::vector<GpaRange>> GpadlAssembler::Finish() const {
  if (!IsComplete()) {
    return MakeError(ErrorCode::kProtocol, "GPADL 0x{:x} incomplete: {} of {} words", gpadl_,
                     words_.size(), words_expected_);
  }
  if (rangecount_ == 0) {
    return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} has rangecount 0", gpadl_);
  }
  std::vector<GpaRange> ranges;
  // rangecount is peer-controlled: reserve only what the collected words can possibly hold
  // (every range needs at least 2 words), never rangecount itself (G4).
  ranges.reserve(std::min<size_t>(rangecount_, words_.size() / 2));
  size_t pos = 0;
  for (size_t i = 0; i < rangecount_; ++i) {
    if (pos >= words_.size()) {
      return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} range {} of {} has no header word",
                       gpadl_, i, rangecount_);
    }
    const uint64_t range_header = words_[pos++];
    const auto byte_count = static_cast<uint32_t>(range_header);
    const auto byte_offset = static_cast<uint32_t>(range_header >> 32);
    if (byte_count == 0) {  // H11
      return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} range {} byte_count 0", gpadl_, i);
    }
    if (byte_offset > kMaxGpaRangeByteOffset) {  // H12
      return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} range {} byte_offset 0x{:x} > 0xfff",
                       gpadl_, i, byte_offset);
    }
    // H14 / G3: byte_offset + byte_count + 4095 must fit in 32 bits (compared in 64 bits).
    const uint64_t end_rounded =
        static_cast<uint64_t>(byte_offset) + byte_count + (kGpaPageSize - 1);
    if (end_rounded > UINT32_MAX) {
      return MakeError(ErrorCode::kMalformed,
                       "GPADL 0x{:x} range {} byte_offset 0x{:x} + byte_count 0x{:x} overflows",
                       gpadl_, i, byte_offset, byte_count);
    }
    const size_t pages = static_cast<size_t>(end_rounded >> kGpaPageShift);
    const size_t present = words_.size() - pos;
    if (pages > present) {  // H13 (checked before sizing anything from `pages`)
      return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} range {} needs {} pfns, {} present",
                       gpadl_, i, pages, present);
    }
    GpaRange range;
    range.byte_count = byte_count;
    range.byte_offset = byte_offset;
    const auto first = words_.begin() + static_cast<std::ptrdiff_t>(pos);
    range.pfns.assign(first, first + static_cast<std::ptrdiff_t>(pages));
    pos += pages;
    ranges.push_back(std::move(range));
  }
  if (pos != words_.size()) {
    return MakeError(ErrorCode::kMalformed, "GPADL 0x{:x} has {} words beyond its {} ranges",
                     gpadl_, words_.size() - pos, rangecount_);
  }
  return ranges;
}

}  // namespace uvmbus::wire
