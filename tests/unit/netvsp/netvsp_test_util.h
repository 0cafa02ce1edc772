// File: tests/unit/netvsp/netvsp_test_util.h
//
// What: the test bench for netvsp: a LocalPartition, the real VmbusServer, one NetvspDevice
// whose backend is the `nic` end of a net pipe (the test holds the `app` end: it injects frames
// for the guest and reads what the guest transmitted), and a FakeNetvscGuest. Manual mode (the
// default) pumps the device from the test thread (deterministic); threaded mode gives every
// channel its worker thread.
// Thread-safety: one test thread.
#ifndef UVMBUS_TESTS_UNIT_NETVSP_NETVSP_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_NETVSP_NETVSP_TEST_UTIL_H_

#include <poll.h>

#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "devices/netvsp/netvsp_device.h"
#include "fakes/fake_netvsc_guest.h"
#include "fakes/fake_vmbus_guest.h"
#include "host/vmbus_server.h"
#include "net/pipe.h"
#include "partition/local_partition.h"
#include "wire/toeplitz.h"

namespace uvmbus::netvsp::test {

inline constexpr std::array<uint8_t, 6> kGuestMac = {0x00, 0x15, 0x5d, 0x01, 0x02, 0x03};
inline constexpr std::array<uint8_t, 6> kPeerMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x99};

struct EnvOptions {
  uint32_t queues = 4;
  bool threads = false;
  uint32_t mtu = 1500;
  uint32_t max_nvsp_version = wire::kNvspVersion61;
  bool guest_memory = true;  // give the device GPA-direct access
  uint32_t pipe_depth = 256;
};

class NetvspEnv {
 public:
  explicit NetvspEnv(EnvOptions o = {}) : options_(o) {
    auto p = partition::LocalPartition::Create(1, 32u << 20, "netvsp-test");
    EXPECT_TRUE(p.has_value());
    partition_ = std::move(*p);
    server_ = std::make_unique<host::VmbusServer>(&partition_->host());
    EXPECT_TRUE(partition_->host().Start(server_.get()).has_value());
    net::RingEndpointOptions po;
    po.name = "pipe";
    po.queues = o.queues;
    po.mtu = o.mtu;
    po.ring_depth = o.pipe_depth;
    auto pipe = net::CreatePipe(po);
    EXPECT_TRUE(pipe.has_value());
    nic_ = std::shared_ptr<net::Endpoint>(std::move(pipe->nic));
    app_ = std::move(pipe->app);
    NicConfig config;
    config.id = "net0";
    config.mac.bytes = kGuestMac;
    config.queues = o.queues;
    config.mtu = o.mtu;
    config.backend = nic_;
    config.guest_memory = o.guest_memory ? &partition_->host() : nullptr;
    config.worker_threads = o.threads;
    config.max_nvsp_version = o.max_nvsp_version;
    auto device = NetvspDevice::Create(std::move(config));
    EXPECT_TRUE(device.has_value()) << device.error();
    device_ = device->get();
    counters_ = device_->counters();
    server_->AddDevice(std::move(*device));
    vmbus_ = std::make_unique<testing::FakeVmbusGuest>(partition_->guest());
    std::function<void()> pump;
    if (!o.threads) pump = [this] { device_->Poll(); };
    guest_ = std::make_unique<testing::FakeNetvscGuest>(*partition_, *vmbus_, pump);
  }

  ~NetvspEnv() {
    guest_.reset();
    partition_->host().Stop();
    server_.reset();  // closes the channels in the device, destroys it
    vmbus_.reset();
    app_.reset();
    nic_.reset();
    partition_.reset();
  }

  // Connect + open the primary + Linux's bring-up (+ sub-channels, send table, RSS, filter when
  // `full`).
  bool Up(bool full = true, uint32_t version = wire::kNvspVersion61) {
    if (!guest_->Connect() || !guest_->OpenPrimary()) return false;
    if (!guest_->BringUp(version)) return false;
    if (!full) return true;
    return Multiqueue() && EnableRx();
  }

  // NVSP 133 for queues - 1, open them, read the send table, RSS DISABLE then enable.
  bool Multiqueue() {
    const uint32_t subs = options_.queues - 1;
    if (subs == 0) return true;
    wire::NvspSubchannelRequest req;
    req.num_subchannels = subs;
    auto reply = guest_->Request(0, req);
    const auto* done = reply ? std::get_if<wire::NvspSubchannelComplete>(&*reply) : nullptr;
    if (done == nullptr || done->status != wire::NvspStatus::kSuccess ||
        done->num_subchannels != subs) {
      return false;
    }
    if (!guest_->OpenSubchannels(subs)) return false;
    auto table = guest_->WaitPacket(0, wire::PacketType::kDataInband);
    if (!table) return false;
    send_table_ = *table;
    return SetRss(false) && SetRss(true);
  }

  // SET OID_GEN_RECEIVE_SCALE_PARAMETERS like Linux (DISABLE first, then table i % queues + the
  // standard key).
  bool SetRss(bool enable) {
    std::vector<uint32_t> table(wire::kRssIndirectionTableMaxEntries);
    wire::FillDefaultIndirectionTable(table, options_.queues);
    std::vector<uint8_t> buf(40 + 512 + 40);
    auto n = enable ? wire::EncodeRssParameters(buf, 0, wire::kNdisHashInfoLinux, table,
                                                wire::kStandardToeplitzKey)
                    : wire::EncodeRssParameters(buf, wire::kNdisRssParamFlagDisableRss,
                                                wire::kNdisHashInfoLinux, {}, {});
    if (!n) return false;
    auto status = guest_->Set(wire::NdisOid::kGenReceiveScaleParameters,
                              std::span<const uint8_t>(buf.data(), *n));
    return status && *status == wire::RndisStatus::kSuccess;
  }

  bool SetFilter(uint32_t filter) {
    std::array<uint8_t, 4> b{};
    std::memcpy(b.data(), &filter, 4);
    auto status = guest_->Set(wire::NdisOid::kGenCurrentPacketFilter, b);
    return status && *status == wire::RndisStatus::kSuccess;
  }
  bool EnableRx() { return SetFilter(wire::kNdisPacketFilterLinuxDefault); }

  // The app end: sends frames into the NIC's backend queue `q`.
  void Inject(uint32_t q, const std::vector<std::vector<uint8_t>>& frames) {
    net::FrameBatch batch;
    for (const auto& f : frames) batch.Add(std::span<const uint8_t>(f));
    EXPECT_EQ(app_->queue(q).Send(batch), batch.size());
  }
  // The app end: frames the guest transmitted, from app queue `q` (waits up to `want` frames in
  // threaded mode).
  std::vector<std::vector<uint8_t>> Collect(uint32_t q, size_t want = 1) {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> storage(net::kMaxBatch * 9216);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      net::RxBatch batch;
      for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
        batch.Add(std::span<uint8_t>(storage.data() + size_t{i} * 9216, 9216));
      }
      const uint32_t n = app_->queue(q).Poll(batch);
      for (uint32_t i = 0; i < n; ++i) out.emplace_back(batch[i].data, batch[i].data + batch[i].length);
      if (out.size() >= want || !options_.threads) return out;
      if (std::chrono::steady_clock::now() > deadline) return out;
      if (app_->queue(q).PrepareWait()) {
        pollfd fd{app_->queue(q).wait_fd(), POLLIN, 0};
        (void)::poll(&fd, 1, 100);
      }
    }
  }

  uint64_t Stat(std::string_view name) const { return counters_->Snapshot().Get(name); }
  uint64_t Total(netvsp::Stat s) const { return counters_->Total(s); }

  partition::LocalPartition& partition() { return *partition_; }
  host::VmbusServer& server() { return *server_; }
  NetvspDevice& device() { return *device_; }
  testing::FakeNetvscGuest& guest() { return *guest_; }
  testing::FakeVmbusGuest& vmbus() { return *vmbus_; }
  net::Endpoint& app() { return *app_; }
  net::Endpoint& nic() { return *nic_; }
  const testing::HostPacket& send_table() const { return send_table_; }
  const EnvOptions& options() const { return options_; }

 private:
  EnvOptions options_;
  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<host::VmbusServer> server_;
  std::shared_ptr<net::Endpoint> nic_;
  std::unique_ptr<net::Endpoint> app_;
  NetvspDevice* device_ = nullptr;
  std::shared_ptr<const NicCounters> counters_;
  std::unique_ptr<testing::FakeVmbusGuest> vmbus_;
  std::unique_ptr<testing::FakeNetvscGuest> guest_;
  testing::HostPacket send_table_;
};

// The RSS queue and hash the guest must see for a TCP/IPv4 flow with Linux's default table
// (i % queues) and the standard key (spec 8.1-8.5).
struct ExpectedRss {
  uint32_t hash = 0;
  uint32_t queue = 0;
};
inline ExpectedRss RssFor(const std::array<uint8_t, 4>& src, const std::array<uint8_t, 4>& dst,
                          uint16_t sport, uint16_t dport, uint32_t queues) {
  auto input = wire::ToeplitzInputIpv4Ports(src, dst, sport, dport);
  const uint32_t hash = wire::ToeplitzHashBitwise(wire::kStandardToeplitzKey, input.span());
  return {hash, (hash & (wire::kRssIndirectionTableMaxEntries - 1)) % queues};
}

}  // namespace uvmbus::netvsp::test

#endif  // UVMBUS_TESTS_UNIT_NETVSP_NETVSP_TEST_UTIL_H_
