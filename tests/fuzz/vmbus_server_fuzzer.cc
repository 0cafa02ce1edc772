// File: tests/fuzz/vmbus_server_fuzzer.cc
//
// What: fuzzes the host's channel-management state machine, host::VmbusServer, through its
// public entry points with a hostile guest: every input is a script of guest PostMessage
// hypercalls (through a partition::LocalPartition, so the hypervisor-level checks run too),
// slow-path SignalEvents, host-side rescinds, guest EOMs and hang-ups, run against a fresh
// server with two fake devices (a NIC-like one with up to 2 sub-channels, offered on a script
// op as netvsp does after the guest's NVSP request, and a single-channel one). Everything is synchronous (no threads).
// Invariants: the server never crashes, leaks or touches memory it does not own (ASan); every
// message it posts to the guest is a valid host->guest channel message; its GPADL count respects
// ServerOptions::max_gpadls; channel counts stay within what the devices can have.
// Seeds (tests/fuzz/corpus/vmbus_server) are a Linux-like bring-up: INITIATE_CONTACT,
// REQUESTOFFERS, GPADL for the ring, OPENCHANNEL, MODIFYCHANNEL, CLOSECHANNEL, GPADL_TEARDOWN,
// UNLOAD.
// Spec: vmbus-protocol.md 2.4-2.10, 9.3 H1-H23, 9.1 G4.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "common/log.h"
#include "fuzz_util.h"
#include "host/device.h"
#include "host/host_channel.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"
#include "wire/channel_messages.h"
#include "wire/device_guids.h"
#include "wire/synic.h"

namespace {

namespace wire = uvmbus::wire;
namespace host = uvmbus::host;
using uvmbus::fuzz::FuzzReader;

constexpr uint32_t kVcpus = 2;
constexpr uint64_t kRamBytes = 4u << 20;  // 1024 pages: GPADL PFNs beyond that are refused
constexpr size_t kMaxGpadls = 8;
constexpr uint16_t kNicSubchannels = 2;
constexpr int kMaxOps = 64;

class FakeDevice final : public host::Device {
 public:
  FakeDevice(uint8_t instance, uint16_t max_sub, std::shared_ptr<host::DeviceControl*> control)
      : max_sub_(max_sub), control_(std::move(control)) {
    params_.class_id = max_sub > 0 ? wire::kNetworkClassGuid : wire::kHeartbeatClassGuid;
    params_.instance_id.bytes[15] = instance;
    params_.name = max_sub > 0 ? "fuzz-nic" : "fuzz-ic";
  }
  host::OfferParams Offer() const override { return params_; }
  uint16_t MaxSubchannels() const override { return max_sub_; }
  // The control pointer is published to the fuzzer through a shared cell that the destructor
  // clears: the server destroys a rescinded device once its relids are released.
  ~FakeDevice() override { *control_ = nullptr; }
  void Install(host::DeviceControl* control) override { *control_ = control; }
  uvmbus::Status Open(host::HostChannel& channel) override {
    (void)channel;
    return uvmbus::Ok();
  }
  host::CloseStatus Close(host::HostChannel& channel) override {
    (void)channel;
    return host::CloseStatus::kClosed;
  }

 private:
  host::OfferParams params_;
  uint16_t max_sub_;
  std::shared_ptr<host::DeviceControl*> control_;
};

// Empties every vCPU's VMBus slot the way a guest does, checking each message the server sent.
void DrainGuest(uvmbus::partition::GuestPartition& guest) {
  for (uint32_t v = 0; v < kVcpus; ++v) {
    const std::span<uint8_t> page = guest.MessagePage(v);
    if (page.size() < wire::kHvPageSize) continue;
    uint8_t* slot = page.data() + wire::kVmbusMessageSlotOffset;
    // Bounded: each EOM delivers at most one queued message.
    for (int n = 0; n < 512; ++n) {
      wire::HvMessage copy;
      std::memcpy(&copy, slot, sizeof(copy));
      if (copy.message_type == wire::kHvMsgNone) break;
      UVMBUS_FUZZ_CHECK(copy.message_type == wire::kHvMsgVmbus);
      UVMBUS_FUZZ_CHECK(copy.payload_size <= wire::kHvMessagePayloadMax);
      auto msg = wire::ParseChannelMessage(std::span<const uint8_t>(copy.payload,
                                                                    copy.payload_size),
                                           wire::Direction::kHostToGuest);
      UVMBUS_FUZZ_CHECK(msg.has_value());
      std::memset(slot, 0, sizeof(uint32_t));  // message_type = HVMSG_NONE
      if ((copy.message_flags & wire::kHvMessageFlagPending) == 0 &&
          (slot[wire::kHvMessageFlagsOffset] & wire::kHvMessageFlagPending) == 0) {
        break;
      }
      guest.EndOfMessage(v);
    }
  }
}

void CheckServer(const host::VmbusServer& server) {
  UVMBUS_FUZZ_CHECK(server.gpadl_count() <= kMaxGpadls);
  UVMBUS_FUZZ_CHECK(server.channel_count() <= 1 + kNicSubchannels + 1);
  UVMBUS_FUZZ_CHECK(server.open_channel_count() <= server.channel_count());
}

}  // namespace

// Logging every rejection would dominate the run time; UVMBUS_FUZZ_LOG=1 keeps it (to see what
// a reproducer does).
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  if (std::getenv("UVMBUS_FUZZ_LOG") == nullptr) uvmbus::log::SetLevel(uvmbus::log::Level::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto created = uvmbus::partition::LocalPartition::Create(kVcpus, kRamBytes, "fuzz");
  UVMBUS_FUZZ_CHECK(created.has_value());
  std::unique_ptr<uvmbus::partition::LocalPartition> partition = std::move(*created);
  host::ServerOptions options;
  options.max_gpadls = kMaxGpadls;
  options.log_name = "fuzz";
  auto server = std::make_unique<host::VmbusServer>(&partition->host(), options);
  UVMBUS_FUZZ_CHECK(partition->host().Start(server.get()).has_value());
  std::vector<host::DeviceId> devices;
  auto nic_control = std::make_shared<host::DeviceControl*>(nullptr);
  devices.push_back(
      server->AddDevice(std::make_unique<FakeDevice>(1, kNicSubchannels, nic_control)));
  devices.push_back(server->AddDevice(std::make_unique<FakeDevice>(
      2, 0, std::make_shared<host::DeviceControl*>(nullptr))));
  uvmbus::partition::GuestPartition& guest = partition->guest();

  FuzzReader in(data, size);
  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    const uint8_t code = in.Read<uint8_t>();
    switch (code & 0x7) {
      case 0:
      case 1:
      case 2:
      case 3: {  // guest posts a channel message (most of the input)
        // Connection 1 (< 5.0) or 4 (>= 5.0), or any id (bits 4-5); message type 1 unless bit 3.
        const uint8_t conn_sel = (code >> 4) & 3;
        const uint32_t connection_id =
            conn_sel == 0 ? wire::kVmbusMessageConnectionId
            : conn_sel == 1 ? wire::kVmbusMessageConnectionId4
                            : in.Read<uint32_t>();
        const uint32_t type = (code & 0x8) != 0 ? in.Read<uint32_t>() : wire::kHvMsgVmbus;
        const uint8_t len = in.Read<uint8_t>();
        uint8_t payload[256] = {};
        const auto bytes = in.Bytes(len);
        if (!bytes.empty()) std::memcpy(payload, bytes.data(), bytes.size());
        (void)guest.PostMessage(connection_id, type, std::span<const uint8_t>(payload, len));
        break;
      }
      case 4:  // guest reads its slots and writes EOMs
        DrainGuest(guest);
        break;
      case 5:  // slow-path SignalEvent (no doorbell) or a doorbell write for an open channel
        (void)guest.SignalEvent(in.Read<uint32_t>(), 0);
        break;
      case 6: {  // host removes a device (spec 2.7)
        const host::DeviceId id = devices[(code >> 4) & 1];
        (void)server->RescindDevice(id);
        break;
      }
      default:
        if ((code & 0x80) != 0) {  // guest hangs up; later posts must fail cleanly
          partition->Disconnect();
        } else if ((code & 0x10) != 0) {
          // The NIC asks for sub-channels, as netvsp does after the guest's NVSP SUBCHANNEL
          // request (spec 7.8): 1 or 2, or 3 (more than it may have: refused).
          if (*nic_control != nullptr) {
            (void)(*nic_control)->OfferSubchannels(static_cast<uint16_t>(1 + ((code >> 5) & 3)));
          }
        } else {
          (void)server->Snapshot();
        }
        break;
    }
    // Bit 6 set: the guest leaves its slots alone for now (a guest that stops consuming: the
    // server's messages queue up to the partition's bound, then sends fail and are counted).
    if ((code & 0x40) == 0) DrainGuest(guest);
    CheckServer(*server);
  }
  partition->host().Stop();
  server.reset();
  partition.reset();
  return 0;
}
