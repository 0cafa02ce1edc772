// File: tests/fuzz/synic_fuzzer.cc
//
// What: fuzzes both ends of a SynIC message slot.
//  1. The first 256 input bytes are a slot image (wire::HvMessage) as a guest finds it: it is
//     copied out and checked the way the guest bus does (message_type 1, payload_size <= 240,
//     spec 1.3 / 9.2 M1-M3), then parsed with ParseChannelMessage(kHostToGuest). The same bytes
//     read as a HvPostMessageInput go through the hypervisor's CheckPostMessageInput() and, if
//     accepted, ParseChannelMessage(kGuestToHost), as a host receives them.
//  2. The rest drives partition::SynicEmulator (the host's SynIC emulation, which writes into
//     guest-owned pages) with a script of Post / EndOfMessage / DeliverPending / SignalEvent and
//     hostile guest writes anywhere in its message and event pages. Invariants: the emulator's
//     queue never exceeds its bound, a slot it writes carries payload_size <= 240, and nothing
//     outside the two pages is touched (ASan).
// Spec: vmbus-protocol.md 1.3, 1.4, 1.7, 9.2 M1-M5.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "partition/synic_emulator.h"
#include "wire/channel_messages.h"
#include "wire/synic.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::FuzzReader;

constexpr size_t kSlot = wire::kSynicMessageSlotSize;
constexpr uint32_t kVcpus = 2;
constexpr size_t kQueueDepth = 4;
constexpr int kMaxOps = 256;

// The guest's handling of one slot copy (guest/vmbus_bus.cc DispatchMessage's checks).
void GuestReadsSlot(const wire::HvMessage& copy) {
  if (copy.message_type != wire::kHvMsgVmbus) return;
  if (copy.payload_size > wire::kHvMessagePayloadMax) return;
  const std::span<const uint8_t> payload(copy.payload, copy.payload_size);
  auto msg = wire::ParseChannelMessage(payload, wire::Direction::kHostToGuest);
  if (msg) UVMBUS_FUZZ_CHECK(copy.payload_size >= wire::kChannelMessageHeaderSize);
}

// The host's handling of a PostMessage hypercall input block.
void HostReadsPostMessage(const wire::HvPostMessageInput& in) {
  const wire::HvStatus status =
      wire::CheckPostMessageInput(in.connection_id, in.message_type, in.payload_size);
  if (status != wire::HvStatus::kSuccess) return;
  UVMBUS_FUZZ_CHECK(in.payload_size >= 1 && in.payload_size <= wire::kHvMessagePayloadMax);
  const std::span<const uint8_t> payload(in.payload, in.payload_size);
  (void)wire::ParseChannelMessage(payload, wire::Direction::kGuestToHost);
}

class NullSink final : public uvmbus::partition::InterruptSink {
 public:
  void Raise(uint32_t vcpu) override { UVMBUS_FUZZ_CHECK(vcpu < kVcpus); }
};

// Per-vCPU message and event page, page-aligned like guest RAM.
struct alignas(4096) Pages {
  std::array<uint8_t, wire::kHvPageSize> message{};
  std::array<uint8_t, wire::kHvPageSize> event{};
};

void DriveEmulator(FuzzReader& in, std::span<const uint8_t> slot_image) {
  std::vector<Pages> pages(kVcpus);
  std::vector<uvmbus::partition::SynicEmulator::VcpuPages> spans;
  for (auto& p : pages) {
    std::memcpy(p.message.data() + wire::kVmbusMessageSlotOffset, slot_image.data(),
                slot_image.size());
    spans.push_back({std::span<uint8_t>(p.message), std::span<uint8_t>(p.event)});
  }
  NullSink sink;
  uvmbus::partition::SynicEmulator emu(spans, &sink, kQueueDepth);

  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    const uint8_t code = in.Read<uint8_t>();
    // Out-of-range vCPUs are part of the input space: the emulator must refuse them.
    const uint32_t vcpu = (code >> 4) % (kVcpus + 1);
    switch (code & 0x7) {
      case 0: {  // host posts a message
        const uint32_t type = in.Read<uint8_t>() & 0x3;  // 0 (invalid), 1 (VMBus), 2, 3
        const size_t len = in.Read<uint8_t>();           // 0..255: > 240 must be refused
        uint8_t payload[256] = {};
        const auto bytes = in.Bytes(len);
        if (!bytes.empty()) std::memcpy(payload, bytes.data(), bytes.size());
        (void)emu.Post(vcpu, type, std::span<const uint8_t>(payload, len));
        break;
      }
      case 1:
        emu.EndOfMessage(vcpu);
        break;
      case 2:
        (void)emu.DeliverPending(vcpu);
        break;
      case 3:
        (void)emu.SignalEvent(vcpu, in.Read<uint16_t>());
        break;
      case 4: {  // hostile guest scribbles on its message page
        const uint16_t offset = in.Read<uint16_t>() % wire::kHvPageSize;
        if (vcpu < kVcpus) pages[vcpu].message[offset] = in.Read<uint8_t>();
        break;
      }
      case 5: {  // hostile guest scribbles on its event page
        const uint16_t offset = in.Read<uint16_t>() % wire::kHvPageSize;
        if (vcpu < kVcpus) pages[vcpu].event[offset] = in.Read<uint8_t>();
        break;
      }
      default: {  // well-behaved guest consumes its slot (spec 1.3 steps 2-4)
        if (vcpu >= kVcpus) break;
        uint8_t* slot = pages[vcpu].message.data() + wire::kVmbusMessageSlotOffset;
        wire::HvMessage copy;
        std::memcpy(&copy, slot, sizeof(copy));
        if (copy.message_type == wire::kHvMsgNone) break;
        GuestReadsSlot(copy);
        std::memset(slot, 0, 4);  // message_type = HVMSG_NONE
        if ((slot[wire::kHvMessageFlagsOffset] & wire::kHvMessageFlagPending) != 0) {
          emu.EndOfMessage(vcpu);
        }
        // A slot the emulator just wrote (the guest did not scribble since) is well-formed.
        std::memcpy(&copy, slot, sizeof(copy));
        if (copy.message_type != wire::kHvMsgNone) {
          UVMBUS_FUZZ_CHECK(copy.payload_size <= wire::kHvMessagePayloadMax);
        }
        break;
      }
    }
    for (uint32_t v = 0; v < kVcpus; ++v) UVMBUS_FUZZ_CHECK(emu.queued(v) <= kQueueDepth);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in(data, size);
  std::array<uint8_t, kSlot> slot{};
  const auto head = in.Bytes(kSlot);
  if (!head.empty()) std::memcpy(slot.data(), head.data(), head.size());

  wire::HvMessage message;
  std::memcpy(&message, slot.data(), sizeof(message));
  GuestReadsSlot(message);
  wire::HvPostMessageInput post;
  std::memcpy(&post, slot.data(), sizeof(post));
  HostReadsPostMessage(post);

  DriveEmulator(in, std::span<const uint8_t>(slot.data(), head.size()));
  return 0;
}
