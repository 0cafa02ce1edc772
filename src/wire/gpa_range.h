// File: wire/gpa_range.h
//
// What: GPADL range data on the wire (spec 2.9): how a guest splits a page list into one
// GPADL_HEADER and GPADL_BODY messages, and how a host reassembles and validates the range data
// of one in-progress GPADL.
//
// Range data is a sequence of little-endian u64 words spread over the header (after its 20-byte
// fixed part) and the bodies (after their 16-byte fixed part). It holds `rangecount` ranges,
// each one header word {u32 byte_count (low half); u32 byte_offset (high half)} followed by
// ceil((byte_offset + byte_count) / 4096) PFN words (4 KiB frame numbers, spec 0).
//
//   guest: BuildGpadlMessages(relid, handle, pfns) -> [GPADL_HEADER, GPADL_BODY...] to post
//   host:  GpadlAssembler a(parsed header); a.AddBody(parsed body)...; if (a.IsComplete())
//          a.Finish() -> validated ranges (or the violation, to answer GPADL_CREATED != 0)
//
// Spec: 2.3 (GPADL_HEADER / GPADL_BODY), 2.9 (splitting, host assembly), 9.1 G3/G4, 9.3 H10-H15,
//       10.1 V17/V18.
// Linux: drivers/hv/channel.c (create_gpadl_header, __vmbus_establish_gpadl).
// OpenVMM: vm/devices/vmbus/vmbus_server/src/channels.rs (GPADL assembly),
//          vm/devices/vmbus/vmbus_ring/src/gparange.rs (validate_gpa_ranges).
// Thread-safety: BuildGpadlMessages is pure. A GpadlAssembler is a plain value with no internal
// locking: one thread at a time (the host's control thread).
#ifndef UVMBUS_WIRE_GPA_RANGE_H_
#define UVMBUS_WIRE_GPA_RANGE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "wire/channel_messages.h"

namespace uvmbus::wire {

// The protocol page size: PFNs and byte offsets are in 4 KiB units on every guest (spec 0).
inline constexpr uint32_t kGpaPageSize = 4096;
inline constexpr uint32_t kGpaPageShift = 12;
// Largest byte_offset of a range within its first page (H12).
inline constexpr uint32_t kMaxGpaRangeByteOffset = kGpaPageSize - 1;

// PFNs a guest puts into the GPADL_HEADER after the single range's header word:
// (240 - 20 - 8) / 8 (spec 2.9).
inline constexpr size_t kGpadlHeaderMaxPfns = kGpadlHeaderMaxRangeWords - 1;  // 26
// PFNs per GPADL_BODY: (240 - 16) / 8.
inline constexpr size_t kGpadlBodyMaxPfns = kGpadlBodyMaxRangeWords;  // 28
static_assert(kGpadlHeaderMaxPfns == 26 && kGpadlBodyMaxPfns == 28);

// range_buflen is a u16 (spec 2.3), so the range data of one GPADL is at most 65535 bytes, i.e.
// 8191 words. That is the hard bound on what a host ever allocates for one GPADL (G4).
inline constexpr size_t kMaxGpadlRangeBufLen = 0xFFFF;
inline constexpr size_t kMaxGpadlRangeWords = kMaxGpadlRangeBufLen / 8;  // 8191
// Pages one single-range GPADL can describe: (65535 - 8) / 8 = 8190 (just under 32 MiB).
inline constexpr size_t kMaxGpadlPages = (kMaxGpadlRangeBufLen - 8) / 8;
static_assert(kMaxGpadlPages == 8190);

// One validated GPA range: `byte_count` bytes starting `byte_offset` bytes into the first page.
// pfns.size() == ceil((byte_offset + byte_count) / 4096).
struct GpaRange {
  uint32_t byte_count = 0;
  uint32_t byte_offset = 0;
  std::vector<uint64_t> pfns;
  friend bool operator==(const GpaRange&, const GpaRange&) = default;
};

// Number of messages (header + bodies) BuildGpadlMessages produces for `pages` pages.
constexpr size_t GpadlMessageCount(size_t pages) {
  if (pages <= kGpadlHeaderMaxPfns) return 1;
  return 1 + (pages - kGpadlHeaderMaxPfns + kGpadlBodyMaxPfns - 1) / kGpadlBodyMaxPfns;
}

// Guest side (spec 2.9, as Linux and DPDK do, V18): describes `pfns` as ONE page-aligned range
// (rangecount 1, byte_offset 0, byte_count = pages * 4096, range_buflen = 8 + 8 * pages) and
// splits it into a GPADL_HEADER with up to 26 PFNs followed by GPADL_BODY messages with up to
// 28 PFNs each (msgnumber 0, as Linux; hosts ignore it, V17). The messages are posted
// back-to-back, then the guest waits for GPADL_CREATED(child_relid, gpadl).
// Errors (kInvalidArgument): no pages; more than kMaxGpadlPages pages (range_buflen is 16 bits).
Expected<std::vector<MessageBuffer>> BuildGpadlMessages(uint32_t child_relid, uint32_t gpadl,
                                                        std::span<const uint64_t> pfns);

// Host side: collects the range data of one in-progress GPADL (OpenVMM's assembly rule, spec
// 2.9). Capacity is range_buflen / 8 words, fixed by the header and bounded by
// kMaxGpadlRangeWords; words beyond it are ignored (H15: some clients always send full-size
// messages). The caller routes GPADL_BODY messages by handle (bodies carry no relid, so
// in-progress handles must be unique, H9/H10) and answers GPADL_CREATED once IsComplete().
class GpadlAssembler {
 public:
  // Starts a GPADL from its parsed GPADL_HEADER, taking the range data that message carried.
  explicit GpadlAssembler(const GpadlHeaderMessage& header);

  GpadlAssembler(const GpadlAssembler&) = default;
  GpadlAssembler& operator=(const GpadlAssembler&) = default;
  GpadlAssembler(GpadlAssembler&&) noexcept = default;
  GpadlAssembler& operator=(GpadlAssembler&&) noexcept = default;

  // Appends a body's PFN words. Errors: kInvalidArgument if body.fixed.gpadl is not this
  // GPADL's handle (caller routing bug); kProtocol if the GPADL is already complete (H10: a
  // body for a completed handle).
  Status AddBody(const GpadlBodyMessage& body);

  // True once range_buflen / 8 words have been collected (immediately for range_buflen < 8).
  bool IsComplete() const { return words_.size() == words_expected_; }

  // Validates the collected data as `rangecount` ranges and returns them. Errors (kMalformed,
  // the caller answers GPADL_CREATED with a failure status):
  //   not complete yet (kProtocol)          "GPADL 0xe1e10 incomplete: 3 of 10 words"
  //   rangecount 0                          "GPADL 0xe1e10 has rangecount 0"
  //   a range without its header word       "GPADL 0xe1e10 range 1 of 2 has no header word"
  //   H11 byte_count == 0                   "GPADL 0xe1e10 range 0 byte_count 0"
  //   H12 byte_offset > 0xfff               "GPADL 0xe1e10 range 0 byte_offset 0x1000 > 0xfff"
  //   H14 offset + count + 4095 > u32 max   "GPADL 0xe1e10 range 0 byte_offset 0x1 + byte_count
  //                                           0xfffff000 overflows"
  //   H13 fewer PFNs than the range needs   "GPADL 0xe1e10 range 0 needs 3 pfns, 2 present"
  //   words left after the last range       "GPADL 0xe1e10 has 1 words beyond its 1 ranges"
  // Every PFN vector is sized from a count checked against the words present (G4).
  Expected<std::vector<GpaRange>> Finish() const;

  uint32_t child_relid() const { return child_relid_; }
  uint32_t gpadl() const { return gpadl_; }
  uint16_t rangecount() const { return rangecount_; }
  size_t words_received() const { return words_.size(); }
  size_t words_expected() const { return words_expected_; }

 private:
  void Append(std::span<const uint64_t> words);

  uint32_t child_relid_ = 0;
  uint32_t gpadl_ = 0;
  uint16_t rangecount_ = 0;
  size_t words_expected_ = 0;  // range_buflen / 8 <= kMaxGpadlRangeWords
  std::vector<uint64_t> words_;
};

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_GPA_RANGE_H_
