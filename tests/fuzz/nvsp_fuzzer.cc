// File: tests/fuzz/nvsp_fuzzer.cc
//
// What: fuzzes the NVSP layer (netvsc/netvsp protocol over VMBus packets).
//  Input byte 0 selects the mode:
//   bit 7 clear: ParseNvspMessage(payload = rest, direction = bit 0, carrier = bits 1-2 (in-band,
//     transfer-page, GPA-direct, completion), negotiated version = bits 3-5) followed by the
//     checks a receiver applies to the parsed message (ValidateReceiveBufferComplete,
//     ValidateSendBufferComplete, ValidateSubchannelComplete, CheckSubchannelRequest,
//     ResolveSendSection) with limits read from the next input bytes. Round trip: EncodeNvsp()
//     of the parsed message parses again to the same encoding.
//   bit 7 set: the rest is a whole host->guest transfer-page packet for ParseNvspReceivePacket()
//     (rsc = bit 0), each range then checked with CheckReceiveBufferRange().
// Invariants: accepted ranges / sections lie inside the buffer sizes they were checked against.
// Spec: vmbus-protocol.md 5.x, 9.5 N1-N21, 9.7 P1-P14, 10.2.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <variant>

#include "fuzz_util.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::FuzzReader;

constexpr std::array<wire::PacketType, 4> kCarriers = {
    wire::PacketType::kDataInband, wire::PacketType::kDataUsingXferPages,
    wire::PacketType::kDataUsingGpaDirect, wire::PacketType::kComp};
constexpr std::array<uint32_t, 8> kVersions = {
    wire::kNvspVersionNone, wire::kNvspVersion1, wire::kNvspVersion2, wire::kNvspVersion4,
    wire::kNvspVersion5,    wire::kNvspVersion6, wire::kNvspVersion61, 0x00070000};

struct Limits {
  uint64_t buffer_size;
  uint32_t section_size;
  uint32_t max_queues;
};

void ApplyReceiverChecks(const wire::NvspMessage& msg, const Limits& lim) {
  if (const auto* m = std::get_if<wire::NvspSendReceiveBufferComplete>(&msg)) {
    auto layout = wire::ValidateReceiveBufferComplete(*m, lim.buffer_size);
    if (layout) {
      UVMBUS_FUZZ_CHECK(uint64_t{layout->sub_alloc_size} * layout->num_sub_allocs <=
                        lim.buffer_size);
    }
  } else if (const auto* s = std::get_if<wire::NvspSendSendBufferComplete>(&msg)) {
    auto sections = wire::ValidateSendBufferComplete(*s, lim.buffer_size);
    if (sections) UVMBUS_FUZZ_CHECK(uint64_t{*sections} * s->section_size <= lim.buffer_size);
  } else if (const auto* c = std::get_if<wire::NvspSubchannelComplete>(&msg)) {
    auto granted = wire::ValidateSubchannelComplete(*c, lim.max_queues);
    if (granted) UVMBUS_FUZZ_CHECK(*granted <= lim.max_queues);
  } else if (const auto* r = std::get_if<wire::NvspSubchannelRequest>(&msg)) {
    if (wire::CheckSubchannelRequest(*r, lim.max_queues)) {
      UVMBUS_FUZZ_CHECK(r->num_subchannels > 0 && r->num_subchannels < lim.max_queues);
    }
  } else if (const auto* p = std::get_if<wire::NvspSendRndisPacket>(&msg)) {
    auto section = wire::ResolveSendSection(*p, lim.section_size, lim.buffer_size);
    if (section && section->used) {
      UVMBUS_FUZZ_CHECK(section->offset <= lim.buffer_size &&
                        section->length <= lim.buffer_size - section->offset);
    }
  }
}

void FuzzMessage(FuzzReader& in, uint8_t selector) {
  const auto dir = (selector & 1) != 0 ? wire::Direction::kGuestToHost
                                       : wire::Direction::kHostToGuest;
  const wire::PacketType carrier = kCarriers[(selector >> 1) & 3];
  const uint32_t version = kVersions[(selector >> 3) & 7];
  Limits lim{};
  lim.buffer_size = in.Read<uint32_t>();
  lim.section_size = in.Read<uint16_t>();
  lim.max_queues = in.Read<uint8_t>();
  const auto payload = in.Rest();

  auto msg = wire::ParseNvspMessage(payload, dir, carrier, version);
  if (!msg) return;
  const wire::NvspMessageType type = wire::TypeOf(*msg);
  if (dir == wire::Direction::kGuestToHost && version != wire::kNvspVersionNone) {
    UVMBUS_FUZZ_CHECK(wire::CheckNvspMessageVersion(type, version).has_value());
  }
  ApplyReceiverChecks(*msg, lim);

  // serialise(parse(x)) parses to the same message bytes.
  std::array<uint8_t, 256> first{};
  auto n = wire::EncodeNvsp(first, *msg, 0);
  UVMBUS_FUZZ_CHECK(n.has_value());
  if (std::holds_alternative<wire::NvspEmptyCompletion>(*msg)) {
    UVMBUS_FUZZ_CHECK(*n == 0);
    return;
  }
  UVMBUS_FUZZ_CHECK(*n >= wire::kNvspHeaderSize);
  auto again = wire::ParseNvspMessage(std::span<const uint8_t>(first.data(), *n), dir, carrier,
                                      version);
  UVMBUS_FUZZ_CHECK(again.has_value());
  UVMBUS_FUZZ_CHECK(wire::TypeOf(*again) == type && again->index() == msg->index());
  std::array<uint8_t, 256> second{};
  auto m = wire::EncodeNvsp(second, *again, 0);
  UVMBUS_FUZZ_CHECK(m.has_value() && *m == *n);
  UVMBUS_FUZZ_CHECK(std::memcmp(first.data(), second.data(), *n) == 0);
}

void FuzzReceivePacket(FuzzReader& in, uint8_t selector) {
  const uint64_t buffer_size = in.Read<uint32_t>();
  const auto packet = in.Rest();
  auto rx = wire::ParseNvspReceivePacket(packet, (selector & 1) != 0);
  if (!rx) return;
  UVMBUS_FUZZ_CHECK(uvmbus::fuzz::Within(rx->packet.range_bytes, packet));
  UVMBUS_FUZZ_CHECK(uvmbus::fuzz::Within(rx->packet.payload, packet));
  UVMBUS_FUZZ_CHECK(rx->packet.xfer_pageset_id == wire::kNetvscReceiveBufferId);
  for (uint32_t i = 0; i < rx->packet.range_cnt; ++i) {
    const wire::TransferPageRange r = rx->packet.range(i);
    if (wire::CheckReceiveBufferRange(r, buffer_size)) {
      UVMBUS_FUZZ_CHECK(uint64_t{r.byte_offset} + r.byte_count <= buffer_size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in(data, size);
  const uint8_t selector = in.Read<uint8_t>();
  if ((selector & 0x80) == 0) {
    FuzzMessage(in, selector);
  } else {
    FuzzReceivePacket(in, selector);
  }
  return 0;
}
