// File: tests/fuzz/packet_fuzzer.cc
//
// What: fuzzes the VMBus packet parsers that run on every packet copied out of a ring:
// wire::ParseDescriptor(), ParseTransferPagePacket() (the guest's receive path) and
// ParseGpaDirectPacket() + GpaDirectRangeReader (the host's transmit path). The input is the
// private packet copy. Invariants on success: every span lies inside the input, the lengths
// match the descriptor, every GPA range has the PFN count its byte range needs, and where the
// packet is in canonical form (header exactly as our encoder lays it out) re-encoding it with
// Encode*Header + EncodePacket reproduces the input byte for byte.
// Spec: vmbus-protocol.md 4.2-4.5, 9.4 R3, R6, R9-R11.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "wire/ring_format.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::Within;

// Re-encodes `header` + `payload` and compares with the packet's first len8*8 bytes.
void CheckReencode(std::span<const uint8_t> packet, std::span<const uint8_t> header,
                   std::span<const uint8_t> payload) {
  std::vector<uint8_t> out(header.size() + payload.size());
  auto n = wire::EncodePacket(out, header, payload);
  UVMBUS_FUZZ_CHECK(n.has_value());
  UVMBUS_FUZZ_CHECK(*n == out.size());
  UVMBUS_FUZZ_CHECK(*n <= packet.size());
  UVMBUS_FUZZ_CHECK(std::memcmp(out.data(), packet.data(), *n) == 0);
}

void FuzzDescriptor(std::span<const uint8_t> packet) {
  auto desc = wire::ParseDescriptor(packet);
  if (!desc) return;
  const size_t len = size_t{desc->len8} * 8;
  UVMBUS_FUZZ_CHECK(len >= wire::kPacketDescriptorSize && len <= packet.size());
  UVMBUS_FUZZ_CHECK(desc->offset8 >= 2 && desc->offset8 <= desc->len8);
  const auto payload = packet.subspan(size_t{desc->offset8} * 8, len - size_t{desc->offset8} * 8);
  if (desc->offset8 != 2) return;
  // In-band and completion packets in canonical form round-trip through their encoders.
  uint8_t header[wire::kPacketDescriptorSize];
  if (desc->type == static_cast<uint16_t>(wire::PacketType::kDataInband) && desc->flags <= 1) {
    auto h = wire::EncodeInbandHeader(header, static_cast<uint32_t>(payload.size()),
                                      desc->trans_id, desc->flags == 1);
    UVMBUS_FUZZ_CHECK(h.has_value() && *h == sizeof(header));
    CheckReencode(packet, header, payload);
  } else if (desc->type == static_cast<uint16_t>(wire::PacketType::kComp) && desc->flags == 0) {
    auto h = wire::EncodeCompletionHeader(header, static_cast<uint32_t>(payload.size()),
                                          desc->trans_id);
    UVMBUS_FUZZ_CHECK(h.has_value() && *h == sizeof(header));
    CheckReencode(packet, header, payload);
  }
}

void FuzzTransferPage(std::span<const uint8_t> packet) {
  auto tp = wire::ParseTransferPagePacket(packet);
  if (!tp) return;
  UVMBUS_FUZZ_CHECK(tp->desc.type == static_cast<uint16_t>(wire::PacketType::kDataUsingXferPages));
  UVMBUS_FUZZ_CHECK(tp->desc.offset8 >= 3);
  UVMBUS_FUZZ_CHECK(Within(tp->range_bytes, packet) && Within(tp->payload, packet));
  UVMBUS_FUZZ_CHECK(tp->range_bytes.size() == size_t{tp->range_cnt} * 8);
  UVMBUS_FUZZ_CHECK(wire::TransferPageHeaderSize(tp->range_cnt) <= size_t{tp->desc.offset8} * 8);
  std::vector<wire::TransferPageRange> ranges(tp->range_cnt);
  for (uint32_t i = 0; i < tp->range_cnt; ++i) ranges[i] = tp->range(i);

  // Canonical form: ranges end where the payload starts, flags 0/1, bytes 18-19 zero.
  wire::TransferPageHeader fixed;
  std::memcpy(&fixed, packet.data(), sizeof(fixed));
  if (wire::TransferPageHeaderSize(tp->range_cnt) != size_t{tp->desc.offset8} * 8 ||
      tp->desc.flags > 1 || fixed.sender_owns_set != 0 || fixed.reserved != 0) {
    return;
  }
  std::vector<uint8_t> header(wire::TransferPageHeaderSize(tp->range_cnt));
  auto h = wire::EncodeTransferPageHeader(header, tp->xfer_pageset_id, ranges,
                                          static_cast<uint32_t>(tp->payload.size()),
                                          tp->desc.trans_id, tp->desc.flags == 1);
  UVMBUS_FUZZ_CHECK(h.has_value() && *h == header.size());
  CheckReencode(packet, header, tp->payload);
}

void FuzzGpaDirect(std::span<const uint8_t> packet) {
  auto gp = wire::ParseGpaDirectPacket(packet);
  if (!gp) return;
  UVMBUS_FUZZ_CHECK(gp->desc.type == static_cast<uint16_t>(wire::PacketType::kDataUsingGpaDirect));
  UVMBUS_FUZZ_CHECK(gp->range_cnt >= 1);
  UVMBUS_FUZZ_CHECK(Within(gp->range_bytes, packet) && Within(gp->payload, packet));

  std::vector<std::vector<uint64_t>> pfns;
  std::vector<wire::GpaDirectRangeRef> refs;
  wire::GpaDirectRangeReader reader(*gp);
  wire::GpaDirectRange range;
  uint32_t count = 0;
  size_t range_bytes = 0;
  while (reader.Next(&range)) {
    UVMBUS_FUZZ_CHECK(++count <= gp->range_cnt);
    UVMBUS_FUZZ_CHECK(range.byte_count > 0 && range.byte_offset < wire::kRingPageSize);
    UVMBUS_FUZZ_CHECK(range.page_count() ==
                      wire::GpaRangePageCount(range.byte_count, range.byte_offset));
    UVMBUS_FUZZ_CHECK(Within(range.pfn_bytes, gp->range_bytes));
    range_bytes += sizeof(wire::GpaDirectRangeHeader) + range.pfn_bytes.size();
    auto& v = pfns.emplace_back();
    for (uint32_t i = 0; i < range.page_count(); ++i) v.push_back(range.pfn(i));
  }
  UVMBUS_FUZZ_CHECK(count == gp->range_cnt);
  UVMBUS_FUZZ_CHECK(range_bytes == gp->range_bytes.size());

  wire::GpaDirectHeader fixed;
  std::memcpy(&fixed, packet.data(), sizeof(fixed));
  if (sizeof(fixed) + range_bytes != size_t{gp->desc.offset8} * 8 || gp->desc.flags != 1 ||
      fixed.reserved != 0) {
    return;
  }
  wire::GpaDirectRangeReader again(*gp);
  for (size_t i = 0; again.Next(&range); ++i) {
    refs.push_back({range.byte_count, range.byte_offset, pfns[i]});
  }
  std::vector<uint8_t> header(wire::GpaDirectHeaderSize(refs));
  UVMBUS_FUZZ_CHECK(header.size() == size_t{gp->desc.offset8} * 8);
  auto h = wire::EncodeGpaDirectHeader(header, refs, static_cast<uint32_t>(gp->payload.size()),
                                       gp->desc.trans_id);
  UVMBUS_FUZZ_CHECK(h.has_value() && *h == header.size());
  CheckReencode(packet, header, gp->payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> packet(data, size);
  FuzzDescriptor(packet);
  FuzzTransferPage(packet);
  FuzzGpaDirect(packet);
  return 0;
}
