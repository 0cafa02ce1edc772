// File: tests/fuzz/ic_fuzzer.cc
//
// What: fuzzes the integration-component (IC) message layer, both sides: the host parses a
// guest's packet (ParseIcPacket, ParseIcNegotiateResponse, ParseHeartbeat) and the guest answers
// a host's request in place (PrepareIcNegotiateResponse with Linux's version lists,
// PrepareHeartbeatResponse). The input is the packet payload (pipe header + IC header + body).
// Invariants: the body lies inside the input and has icmsgsize bytes; the negotiate lists fit
// the body; a guest answer has exactly the request's length, carries TRANSACTION|RESPONSE, and
// an agreed version is one the guest offered; the answer parses as a negotiate response on the
// host side with the same versions.
// Spec: vmbus-protocol.md 7.x (IC framing, negotiation, heartbeat).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuzz_util.h"
#include "wire/ic_messages.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::Within;

bool Contains(std::span<const uint32_t> list, uint32_t v) {
  for (uint32_t x : list) {
    if (x == v) return true;
  }
  return false;
}

void HostSide(std::span<const uint8_t> input) {
  auto packet = wire::ParseIcPacket(input);
  if (!packet) return;
  UVMBUS_FUZZ_CHECK(input.size() >= wire::kIcHeaderSize);
  UVMBUS_FUZZ_CHECK(Within(packet->body, input));
  UVMBUS_FUZZ_CHECK(packet->body.size() == packet->header.icmsgsize);
  uvmbus::fuzz::TouchAll(packet->body);
  if (auto neg = wire::ParseIcNegotiate(*packet)) {
    UVMBUS_FUZZ_CHECK(neg->framework_count <= wire::kIcMaxVersionCount);
    UVMBUS_FUZZ_CHECK(neg->message_count <= wire::kIcMaxVersionCount);
    UVMBUS_FUZZ_CHECK(8 + 4 * (size_t{neg->framework_count} + neg->message_count) <=
                      packet->body.size());
  }
  (void)wire::ParseIcNegotiateResponse(*packet);
  (void)wire::ParseHeartbeat(*packet);
}

void GuestSide(std::span<const uint8_t> input) {
  auto reply = wire::PrepareIcNegotiateResponse(input, wire::kLinuxIcFrameworkVersions,
                                                wire::kLinuxHeartbeatVersions);
  if (reply) {
    UVMBUS_FUZZ_CHECK(reply->packet.size() == input.size());
    if (reply->outcome == wire::IcNegotiateOutcome::kAgreed) {
      UVMBUS_FUZZ_CHECK(Contains(wire::kLinuxIcFrameworkVersions, reply->framework_version));
      UVMBUS_FUZZ_CHECK(Contains(wire::kLinuxHeartbeatVersions, reply->service_version));
      // The host reads the guest's answer back (when it is complete enough to carry both
      // entries) and finds the same versions.
      auto packet = wire::ParseIcPacket(reply->packet);
      if (packet) {
        auto agreed = wire::ParseIcNegotiateResponse(*packet);
        if (agreed) {
          UVMBUS_FUZZ_CHECK(agreed->framework_version == reply->framework_version);
          UVMBUS_FUZZ_CHECK(agreed->message_version == reply->service_version);
        }
      }
    }
    if (reply->packet.size() >= wire::kIcHeaderSize) {
      wire::IcMsgHeader h;
      std::memcpy(&h, reply->packet.data() + sizeof(wire::VmbusPipeHeader), sizeof(h));
      UVMBUS_FUZZ_CHECK((h.icflags & wire::kIcFlagTransaction) != 0);
    }
  }
  auto hb = wire::PrepareHeartbeatResponse(input);
  if (hb) UVMBUS_FUZZ_CHECK(hb->size() == input.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  HostSide(input);
  GuestSide(input);
  return 0;
}
