// File: wire/ring_format.cc
//
// Parsers and encoders for VMBus packets (spec 4.1-4.5, 9.4 R3, R6, R9-R11). Every length a
// peer controls is combined in 64-bit arithmetic so no sum can wrap (spec 9.1 G3), and every
// loop over a peer-provided count is bounded by the bytes actually present (G4).
#include "wire/ring_format.h"

#include <algorithm>

namespace uvmbus::wire {
namespace {

template <typename T>
T LoadAt(std::span<const uint8_t> bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

template <typename T>
void StoreAt(std::span<uint8_t> bytes, size_t offset, const T& v) {
  std::memcpy(bytes.data() + offset, &v, sizeof(T));
}

// Builds a descriptor for a packet of `header_size` header bytes and `payload_len` payload
// bytes. Fails if len8 would not fit in 16 bits.
PacketResult<PacketDescriptor> MakeDescriptor(PacketType type, uint64_t header_size,
                                              uint32_t payload_len, uint16_t flags,
                                              uint64_t trans_id) {
  const uint64_t len = (header_size + payload_len + 7) / 8 * 8;
  if (len > kMaxPacketLength) return tl::unexpected(PacketError::kTooLarge);
  PacketDescriptor d{};
  d.type = static_cast<uint16_t>(type);
  d.offset8 = static_cast<uint16_t>(header_size / 8);
  d.len8 = static_cast<uint16_t>(len / 8);
  d.flags = flags;
  d.trans_id = trans_id;
  return d;
}

PacketResult<size_t> EncodeDescriptorOnly(std::span<uint8_t> out, PacketType type,
                                          uint32_t payload_len, uint16_t flags,
                                          uint64_t trans_id) {
  auto desc = MakeDescriptor(type, kPacketDescriptorSize, payload_len, flags, trans_id);
  if (!desc) return tl::unexpected(desc.error());
  if (out.size() < kPacketDescriptorSize) return tl::unexpected(PacketError::kBufferTooSmall);
  StoreAt(out, 0, *desc);
  return size_t{kPacketDescriptorSize};
}

// Checks one GPA range head; returns its page count or the violation (OpenVMM gparange.rs
// rules, spec 9.3 H11-H14 which apply to every GPA range encoding).
PacketResult<uint32_t> CheckGpaRange(uint32_t byte_count, uint32_t byte_offset) {
  if (byte_count == 0) return tl::unexpected(PacketError::kEmptyRange);
  if (byte_offset > kRingPageSize - 1) return tl::unexpected(PacketError::kRangeOffsetTooLarge);
  // The sum must fit in 32 bits as OpenVMM computes it; a range that large is nonsense anyway.
  if (uint64_t{byte_count} + (kRingPageSize - 1) + byte_offset > UINT32_MAX) {
    return tl::unexpected(PacketError::kRangeOverflow);
  }
  return static_cast<uint32_t>(GpaRangePageCount(byte_count, byte_offset));
}

}  // namespace

std::string_view PacketTypeName(uint16_t type) {
  switch (static_cast<PacketType>(type)) {
    case PacketType::kInvalid: return "invalid";
    case PacketType::kSynch: return "synch";
    case PacketType::kAddXferPageset: return "add_xfer_pageset";
    case PacketType::kRmXferPageset: return "rm_xfer_pageset";
    case PacketType::kEstablishGpadl: return "establish_gpadl";
    case PacketType::kTeardownGpadl: return "teardown_gpadl";
    case PacketType::kDataInband: return "inband";
    case PacketType::kDataUsingXferPages: return "xfer_pages";
    case PacketType::kDataUsingGpadl: return "gpadl";
    case PacketType::kDataUsingGpaDirect: return "gpa_direct";
    case PacketType::kCancelRequest: return "cancel_request";
    case PacketType::kComp: return "completion";
    case PacketType::kDataUsingAdditionalPacket: return "using_additional_packet";
    case PacketType::kAdditionalData: return "additional_data";
  }
  return "unknown";
}

std::string_view PacketErrorName(PacketError error) {
  switch (error) {
    case PacketError::kTooShort: return "too_short";
    case PacketError::kWrongType: return "wrong_type";
    case PacketError::kBadLength: return "bad_length";
    case PacketError::kBadOffset: return "bad_offset";
    case PacketError::kBadRangeCount: return "bad_range_count";
    case PacketError::kRangePastHeader: return "range_past_header";
    case PacketError::kEmptyRange: return "empty_range";
    case PacketError::kRangeOffsetTooLarge: return "range_offset_too_large";
    case PacketError::kRangeOverflow: return "range_overflow";
    case PacketError::kBufferTooSmall: return "buffer_too_small";
    case PacketError::kTooLarge: return "too_large";
  }
  return "unknown";
}

PacketResult<PacketDescriptor> ParseDescriptor(std::span<const uint8_t> packet) {
  if (packet.size() < kPacketDescriptorSize) return tl::unexpected(PacketError::kTooShort);
  const auto d = LoadAt<PacketDescriptor>(packet, 0);
  if (d.len8 < kPacketDescriptorSize8) return tl::unexpected(PacketError::kBadLength);
  if (d.offset8 < kPacketDescriptorSize8 || d.offset8 > d.len8) {
    return tl::unexpected(PacketError::kBadOffset);
  }
  if (size_t{d.len8} * 8 > packet.size()) return tl::unexpected(PacketError::kTooShort);
  return d;
}

PacketResult<TransferPagePacket> ParseTransferPagePacket(std::span<const uint8_t> packet) {
  auto d = ParseDescriptor(packet);
  if (!d) return tl::unexpected(d.error());
  if (d->type != static_cast<uint16_t>(PacketType::kDataUsingXferPages)) {
    return tl::unexpected(PacketError::kWrongType);
  }
  // R9: the 24-byte header must precede the payload.
  const uint64_t header_end = uint64_t{d->offset8} * 8;
  if (header_end < sizeof(TransferPageHeader)) return tl::unexpected(PacketError::kBadOffset);
  const auto h = LoadAt<TransferPageHeader>(packet, 0);
  // The ranges live between the fixed header and the payload; a count that does not fit there
  // is rejected before anything iterates over it (64-bit: range_cnt is peer-controlled).
  if (TransferPageHeaderSize(h.range_cnt) > header_end) {
    return tl::unexpected(PacketError::kRangePastHeader);
  }
  TransferPagePacket p;
  p.desc = *d;
  p.xfer_pageset_id = h.xfer_pageset_id;
  p.range_cnt = h.range_cnt;
  p.range_bytes = packet.subspan(sizeof(TransferPageHeader),
                                 size_t{h.range_cnt} * sizeof(TransferPageRange));
  const size_t len = size_t{d->len8} * 8;
  p.payload = packet.subspan(header_end, len - header_end);
  return p;
}

PacketResult<GpaDirectPacket> ParseGpaDirectPacket(std::span<const uint8_t> packet) {
  auto d = ParseDescriptor(packet);
  if (!d) return tl::unexpected(d.error());
  if (d->type != static_cast<uint16_t>(PacketType::kDataUsingGpaDirect)) {
    return tl::unexpected(PacketError::kWrongType);
  }
  const size_t header_end = size_t{d->offset8} * 8;
  if (header_end < sizeof(GpaDirectHeader)) return tl::unexpected(PacketError::kBadOffset);  // R9
  const auto h = LoadAt<GpaDirectHeader>(packet, 0);
  if (h.range_cnt == 0) return tl::unexpected(PacketError::kBadRangeCount);  // R10
  // Each range takes at least 16 bytes (8-byte head + >= 1 PFN), so a count larger than this
  // cannot fit; rejecting it up front bounds the loop below by offset8 (G4).
  const size_t area = header_end - sizeof(GpaDirectHeader);
  if (h.range_cnt > area / 16) return tl::unexpected(PacketError::kRangePastHeader);
  size_t pos = sizeof(GpaDirectHeader);
  for (uint32_t i = 0; i < h.range_cnt; ++i) {
    if (header_end - pos < sizeof(GpaDirectRangeHeader)) {
      return tl::unexpected(PacketError::kRangePastHeader);  // R11
    }
    const auto rh = LoadAt<GpaDirectRangeHeader>(packet, pos);
    auto pages = CheckGpaRange(rh.byte_count, rh.byte_offset);
    if (!pages) return tl::unexpected(pages.error());
    pos += sizeof(GpaDirectRangeHeader);
    // Compare against what is left instead of adding to pos (G3).
    if (uint64_t{*pages} * 8 > header_end - pos) {
      return tl::unexpected(PacketError::kRangePastHeader);  // R11
    }
    pos += size_t{*pages} * 8;
  }
  GpaDirectPacket p;
  p.desc = *d;
  p.range_cnt = h.range_cnt;
  p.range_bytes = packet.subspan(sizeof(GpaDirectHeader), pos - sizeof(GpaDirectHeader));
  const size_t len = size_t{d->len8} * 8;
  p.payload = packet.subspan(header_end, len - header_end);
  return p;
}

bool GpaDirectRangeReader::Next(GpaDirectRange* out) {
  // Inputs were validated by ParseGpaDirectPacket(); the size checks below only keep a reader
  // built from a hand-made GpaDirectPacket in bounds.
  if (remaining_ == 0 || rest_.size() < sizeof(GpaDirectRangeHeader)) return false;
  const auto rh = LoadAt<GpaDirectRangeHeader>(rest_, 0);
  const uint64_t pfn_bytes = GpaRangePageCount(rh.byte_count, rh.byte_offset) * 8;
  if (pfn_bytes > rest_.size() - sizeof(GpaDirectRangeHeader)) return false;
  out->byte_count = rh.byte_count;
  out->byte_offset = rh.byte_offset;
  out->pfn_bytes = rest_.subspan(sizeof(GpaDirectRangeHeader), static_cast<size_t>(pfn_bytes));
  rest_ = rest_.subspan(sizeof(GpaDirectRangeHeader) + static_cast<size_t>(pfn_bytes));
  --remaining_;
  return true;
}

PacketResult<size_t> EncodeInbandHeader(std::span<uint8_t> out, uint32_t payload_len,
                                        uint64_t trans_id, bool completion_requested) {
  return EncodeDescriptorOnly(out, PacketType::kDataInband, payload_len,
                              completion_requested ? kPacketFlagCompletionRequested : 0,
                              trans_id);
}

PacketResult<size_t> EncodeCompletionHeader(std::span<uint8_t> out, uint32_t payload_len,
                                            uint64_t trans_id) {
  return EncodeDescriptorOnly(out, PacketType::kComp, payload_len, 0, trans_id);
}

PacketResult<size_t> EncodeTransferPageHeader(std::span<uint8_t> out, uint16_t xfer_pageset_id,
                                              std::span<const TransferPageRange> ranges,
                                              uint32_t payload_len, uint64_t trans_id,
                                              bool completion_requested) {
  const uint64_t header_size = TransferPageHeaderSize(ranges.size());
  auto desc = MakeDescriptor(PacketType::kDataUsingXferPages, header_size, payload_len,
                             completion_requested ? kPacketFlagCompletionRequested : 0,
                             trans_id);
  if (!desc) return tl::unexpected(desc.error());
  if (out.size() < header_size) return tl::unexpected(PacketError::kBufferTooSmall);
  TransferPageHeader h{};
  h.desc = *desc;
  h.xfer_pageset_id = xfer_pageset_id;
  h.range_cnt = static_cast<uint32_t>(ranges.size());
  StoreAt(out, 0, h);
  if (!ranges.empty()) {
    std::memcpy(out.data() + sizeof(h), ranges.data(), ranges.size_bytes());
  }
  return static_cast<size_t>(header_size);
}

uint64_t GpaDirectHeaderSize(std::span<const GpaDirectRangeRef> ranges) {
  uint64_t size = sizeof(GpaDirectHeader);
  for (const auto& r : ranges) {
    auto pages = CheckGpaRange(r.byte_count, r.byte_offset);
    if (!pages || *pages != r.pfns.size()) return 0;
    size += sizeof(GpaDirectRangeHeader) + uint64_t{*pages} * 8;
  }
  return size;
}

PacketResult<size_t> EncodeGpaDirectHeader(std::span<uint8_t> out,
                                           std::span<const GpaDirectRangeRef> ranges,
                                           uint32_t payload_len, uint64_t trans_id) {
  if (ranges.empty()) return tl::unexpected(PacketError::kBadRangeCount);
  for (const auto& r : ranges) {
    auto pages = CheckGpaRange(r.byte_count, r.byte_offset);
    if (!pages) return tl::unexpected(pages.error());
    if (*pages != r.pfns.size()) return tl::unexpected(PacketError::kBadRangeCount);
  }
  const uint64_t header_size = GpaDirectHeaderSize(ranges);
  auto desc = MakeDescriptor(PacketType::kDataUsingGpaDirect, header_size, payload_len,
                             kPacketFlagCompletionRequested, trans_id);
  if (!desc) return tl::unexpected(desc.error());
  if (out.size() < header_size) return tl::unexpected(PacketError::kBufferTooSmall);
  GpaDirectHeader h{};
  h.desc = *desc;
  h.range_cnt = static_cast<uint32_t>(ranges.size());
  StoreAt(out, 0, h);
  size_t pos = sizeof(h);
  for (const auto& r : ranges) {
    StoreAt(out, pos, GpaDirectRangeHeader{r.byte_count, r.byte_offset});
    pos += sizeof(GpaDirectRangeHeader);
    std::memcpy(out.data() + pos, r.pfns.data(), r.pfns.size_bytes());
    pos += r.pfns.size_bytes();
  }
  return pos;
}

PacketResult<size_t> EncodePacket(std::span<uint8_t> out, std::span<const uint8_t> header,
                                  std::span<const uint8_t> payload) {
  if (header.size() < kPacketDescriptorSize || header.size() % 8 != 0) {
    return tl::unexpected(PacketError::kBadLength);
  }
  const auto d = LoadAt<PacketDescriptor>(header, 0);
  if (size_t{d.offset8} * 8 != header.size()) return tl::unexpected(PacketError::kBadOffset);
  const uint64_t len = (uint64_t{header.size()} + payload.size() + 7) / 8 * 8;
  if (uint64_t{d.len8} * 8 != len) return tl::unexpected(PacketError::kBadLength);
  if (out.size() < len) return tl::unexpected(PacketError::kBufferTooSmall);
  std::memcpy(out.data(), header.data(), header.size());
  if (!payload.empty()) std::memcpy(out.data() + header.size(), payload.data(), payload.size());
  const size_t used = header.size() + payload.size();
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(used),
            out.begin() + static_cast<std::ptrdiff_t>(len), uint8_t{0});
  return static_cast<size_t>(len);
}

}  // namespace uvmbus::wire
