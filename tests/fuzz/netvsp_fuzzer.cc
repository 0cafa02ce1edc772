// File: tests/fuzz/netvsp_fuzzer.cc
//
// What: fuzzes the host NIC (netvsp::NetvspDevice) through a real VMBus connection with a hostile
// guest, without threads: a LocalPartition, the real VmbusServer, one NetvspDevice in manual mode
// (Poll() from this thread) whose backend is one end of a net pipe, and the scripted guest of the
// unit tests (tests/fakes/FakeNetvscGuest) that first does Linux's whole bring-up (NVSP INIT, NDIS
// version/config, receive and send buffers, RNDIS INITIALIZE and queries, packet filter). Then
// the input is a script of hostile guest actions on the primary channel:
//   0: a raw NVSP message in-band (any type/length, completion requested or not)
//   1: an RNDIS message (any bytes) as SEND_RNDIS_PKT through a send section, GPA pages or both
//   2: SEND_RNDIS_PKT naming a raw section index / size (P8, P9)
//   3: a GPA-direct SEND_RNDIS_PKT with fuzzed ranges (PFNs anywhere, spec 9.1 G2, P10)
//   4: a completion for a transfer-page packet with a fuzzed trans_id / status
//   5: a frame injected by the backend (the receive path runs), then the guest takes it
// Invariants: no crash, no sanitizer report, no leak; the device keeps answering Poll().
// Spec: vmbus-protocol.md 5.x, 6.x, 9.7 P1-P17.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "common/log.h"
#include "devices/netvsp/netvsp_device.h"
#include "fakes/fake_netvsc_guest.h"
#include "fakes/fake_vmbus_guest.h"
#include "fuzz_util.h"
#include "host/vmbus_server.h"
#include "net/pipe.h"
#include "partition/local_partition.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::FuzzReader;
using uvmbus::testing::SendMode;

constexpr int kMaxOps = 32;

struct Env {
  std::unique_ptr<uvmbus::partition::LocalPartition> partition;
  std::unique_ptr<uvmbus::host::VmbusServer> server;
  std::shared_ptr<uvmbus::net::Endpoint> nic;
  std::unique_ptr<uvmbus::net::Endpoint> app;
  uvmbus::netvsp::NetvspDevice* device = nullptr;
  std::unique_ptr<uvmbus::testing::FakeVmbusGuest> vmbus;
  std::unique_ptr<uvmbus::testing::FakeNetvscGuest> guest;

  ~Env() {
    guest.reset();
    if (partition) partition->host().Stop();
    server.reset();
    vmbus.reset();
    app.reset();
    nic.reset();
    partition.reset();
  }

  // Same bench as tests/unit/netvsp/netvsp_test_util.h (one queue, manual mode), then Linux's
  // bring-up. Returns false if any step fails (a bug outside the fuzzed input: reported).
  bool Up() {
    auto p = uvmbus::partition::LocalPartition::Create(1, 16u << 20, "netvsp-fuzz");
    if (!p) return false;
    partition = std::move(*p);
    server = std::make_unique<uvmbus::host::VmbusServer>(&partition->host());
    if (!partition->host().Start(server.get())) return false;
    uvmbus::net::RingEndpointOptions po;
    po.name = "pipe";
    po.queues = 1;
    po.ring_depth = 64;
    auto pipe = uvmbus::net::CreatePipe(po);
    if (!pipe) return false;
    nic = std::shared_ptr<uvmbus::net::Endpoint>(std::move(pipe->nic));
    app = std::move(pipe->app);
    uvmbus::netvsp::NicConfig config;
    config.id = "net0";
    config.mac.bytes = {0x00, 0x15, 0x5d, 0x01, 0x02, 0x03};
    config.queues = 1;
    config.backend = nic;
    config.guest_memory = &partition->host();
    config.worker_threads = false;
    auto created = uvmbus::netvsp::NetvspDevice::Create(std::move(config));
    if (!created) return false;
    device = created->get();
    server->AddDevice(std::move(*created));
    vmbus = std::make_unique<uvmbus::testing::FakeVmbusGuest>(partition->guest());
    guest = std::make_unique<uvmbus::testing::FakeNetvscGuest>(
        *partition, *vmbus, [this] { device->Poll(); }, 0);
    return guest->Connect() && guest->OpenPrimary() &&
           guest->BringUp(wire::kNvspVersion61, /*recv_pages=*/64, /*send_pages=*/16);
  }
};

void InjectFrame(Env& env, std::span<const uint8_t> frame) {
  uvmbus::net::FrameBatch batch;
  batch.Add(frame);
  (void)env.app->queue(0).Send(batch);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  if (std::getenv("UVMBUS_FUZZ_LOG") == nullptr) uvmbus::log::SetLevel(uvmbus::log::Level::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env env;
  UVMBUS_FUZZ_CHECK(env.Up());
  uvmbus::testing::FakeNetvscGuest& guest = *env.guest;
  FuzzReader in(data, size);
  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    const uint8_t code = in.Read<uint8_t>();
    switch (code % 6) {
      case 0: {
        const auto payload = in.Bytes(in.Read<uint8_t>() % 65);
        (void)guest.SendInband(0, payload, guest.NextTransId(), (code & 0x80) != 0);
        break;
      }
      case 1: {
        static constexpr SendMode kModes[4] = {SendMode::kSection, SendMode::kGpaPageBuffer,
                                               SendMode::kGpaMultiPage, SendMode::kMixed};
        const auto rndis = in.Bytes(in.Read<uint16_t>() % 2048);
        (void)guest.SendRndis(0, rndis, kModes[(code >> 3) & 3], (code >> 5) & 1);
        break;
      }
      case 2: {
        wire::NvspSendRndisPacket msg;
        msg.channel_type = (code >> 3) & 1;
        msg.send_buf_section_index = in.Read<uint32_t>();
        msg.send_buf_section_size = in.Read<uint32_t>();
        (void)guest.Request(0, msg);
        break;
      }
      case 3: {
        const uint32_t count = 1 + in.Read<uint8_t>() % 3;
        std::vector<std::vector<uint64_t>> pfns(count);
        std::vector<wire::GpaDirectRangeRef> ranges;
        for (uint32_t i = 0; i < count; ++i) {
          const uint32_t byte_count = 1 + in.Read<uint16_t>();
          const uint32_t byte_offset = in.Read<uint16_t>() % wire::kRingPageSize;
          const auto pages = wire::GpaRangePageCount(byte_count, byte_offset);
          for (uint64_t k = 0; k < pages; ++k) pfns[i].push_back(in.Read<uint32_t>() % 8192);
          ranges.push_back({byte_count, byte_offset, pfns[i]});
        }
        wire::NvspSendRndisPacket msg;
        msg.channel_type = (code >> 3) & 1;
        std::array<uint8_t, 40> payload{};
        auto n = wire::EncodeNvsp(payload, msg, payload.size());
        UVMBUS_FUZZ_CHECK(n.has_value());
        (void)guest.SendGpaDirect(0, ranges, std::span<const uint8_t>(payload.data(), *n),
                                  guest.NextTransId());
        break;
      }
      case 4: {
        const uint64_t trans_id = in.Read<uint8_t>();
        const auto payload = in.Bytes(in.Read<uint8_t>() % 17);
        (void)guest.SendCompletion(0, trans_id, payload);
        break;
      }
      default: {
        const auto frame = in.Bytes(14 + in.Read<uint16_t>() % 1501);
        if (frame.size() >= 14) InjectFrame(env, frame);
        (void)guest.ReceiveFrames(0);
        break;
      }
    }
    env.device->Poll();
  }
  return 0;
}
