// File: tests/unit/netvsc/netvsc_test_util.h
//
// The netvsc test environment: a LocalPartition with the real host::VmbusServer carrying a
// FakeNetvspHost device on one side and the real guest::VmbusBus with a NetvscDriver on the other,
// plus frame builders. Sizes are small (rings of 64 KiB, a 1 MiB receive buffer) so tests are quick.
#ifndef UVMBUS_TESTS_UNIT_NETVSC_NETVSC_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_NETVSC_NETVSC_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "devices/netvsc/netvsc_device.h"
#include "devices/netvsc/netvsc_drv.h"
#include "fakes/fake_netvsp_host.h"
#include "guest/vmbus_bus.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"

namespace uvmbus::netvsc::testing {

inline constexpr std::chrono::milliseconds kWait{5000};

inline NetvscConfig SmallConfig() {
  NetvscConfig c;
  c.ring_bytes = 16 * 4096;
  c.recv_buffer_bytes = 1u << 20;
  c.send_buffer_bytes = 64 * 6144;
  c.rx_ring_depth = 256;
  c.tx_bounce_slots = 8;
  c.control_timeout = std::chrono::milliseconds(3000);
  c.subchannel_timeout = std::chrono::milliseconds(3000);
  c.drain_timeout = std::chrono::milliseconds(1000);
  return c;
}

struct EnvOptions {
  uint32_t vcpus = 4;
  uint64_t ram_bytes = 48ull << 20;
  NetvscConfig config = SmallConfig();
  fakes::FakeNetvspHost::Options host;
  bool register_driver = true;
};

class NetvscEnv {
 public:
  explicit NetvscEnv(EnvOptions options = {}) : options_(std::move(options)) {
    auto p = partition::LocalPartition::Create(options_.vcpus, options_.ram_bytes, "netvsc-test");
    EXPECT_TRUE(p.has_value());
    partition_ = std::move(*p);
    host_ = std::make_unique<fakes::FakeNetvspHost>(partition_->host(), options_.host);
    server_ = std::make_unique<host::VmbusServer>(&partition_->host());
    EXPECT_TRUE(partition_->host().Start(server_.get()).has_value());
    device_id_ = server_->AddDevice(host_->MakeDevice());
    driver_ = std::make_unique<NetvscDriver>(partition_->guest(), options_.config);
    auto bus = guest::VmbusBus::Create(partition_->guest());
    EXPECT_TRUE(bus.has_value());
    bus_ = std::move(*bus);
    if (options_.register_driver) {
      EXPECT_TRUE(bus_->RegisterDriver(*driver_).has_value());
    }
  }
  ~NetvscEnv() {
    if (bus_->connected()) {
      // Remove the NIC first (HALT, revoke, close) and let the bus finish the host's rescinds of
      // the sub-channels (closing a primary rescinds them) before it disconnects: the guest
      // bus's Disconnect() frees devices while a queued sub-channel rescind may still use them
      // (reported in notes/requests-netvsc.md).
      (void)bus_->UnregisterDriver(*driver_);
      const auto deadline = std::chrono::steady_clock::now() + kWait;
      while (bus_->stats().relids_released.Get() < bus_->stats().subchannel_offers.Get() &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      bus_->Flush();
    }
    bus_.reset();
    partition_->host().Stop();
    server_.reset();
    host_.reset();
    driver_.reset();
    partition_.reset();
  }

  Status Connect() { return bus_->Connect(); }
  // Connects and returns the NIC (null if it did not come up).
  std::shared_ptr<NetvscDevice> Up() {
    if (!Connect()) return nullptr;
    auto devs = driver_->devices();
    return devs.empty() ? nullptr : devs.front();
  }

  fakes::FakeNetvspHost& host() { return *host_; }
  NetvscDriver& driver() { return *driver_; }
  guest::VmbusBus& bus() { return *bus_; }
  host::VmbusServer& server() { return *server_; }
  partition::LocalPartition& partition() { return *partition_; }
  host::DeviceId device_id() const { return device_id_; }

 private:
  EnvOptions options_;
  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<fakes::FakeNetvspHost> host_;
  std::unique_ptr<host::VmbusServer> server_;
  std::unique_ptr<NetvscDriver> driver_;
  std::unique_ptr<guest::VmbusBus> bus_;
  host::DeviceId device_id_ = 0;
};

// An IPv4/UDP frame from `src_port` to `dst_port` with `payload_len` bytes of a pattern seeded
// by `seed`; the destination MAC is `dst`.
inline std::vector<uint8_t> UdpFrame(uint16_t src_port, uint16_t dst_port, size_t payload_len,
                                     uint8_t seed = 0,
                                     net::MacAddress dst = net::MacAddress::Broadcast()) {
  std::vector<uint8_t> f(14 + 20 + 8 + payload_len, 0);
  std::memcpy(f.data(), dst.bytes.data(), 6);
  const uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data() + 6, src_mac, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t total = static_cast<uint16_t>(20 + 8 + payload_len);
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[8] = 64;
  ip[9] = 17;
  const uint8_t src_ip[4] = {10, 0, 0, 1};
  const uint8_t dst_ip[4] = {10, 0, 0, 2};
  std::memcpy(ip + 12, src_ip, 4);
  std::memcpy(ip + 16, dst_ip, 4);
  uint8_t* udp = ip + 20;
  udp[0] = static_cast<uint8_t>(src_port >> 8);
  udp[1] = static_cast<uint8_t>(src_port);
  udp[2] = static_cast<uint8_t>(dst_port >> 8);
  udp[3] = static_cast<uint8_t>(dst_port);
  for (size_t i = 0; i < payload_len; ++i) udp[8 + i] = static_cast<uint8_t>(seed + i * 7);
  return f;
}

// Receives until `count` frames arrived on `queue` (sleeping on its wait fd) or `timeout`.
inline std::vector<std::vector<uint8_t>> ReceiveFrames(NetDevice& dev, uint32_t queue, size_t count,
                                                       std::vector<RxFrameInfo>* infos = nullptr,
                                                       std::chrono::milliseconds timeout = kWait) {
  std::vector<std::vector<uint8_t>> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::vector<uint8_t>> bufs(net::kMaxBatch, std::vector<uint8_t>(16384));
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    net::RxBatch batch;
    for (auto& b : bufs) batch.Add(std::span<uint8_t>(b));
    std::array<RxFrameInfo, net::kMaxBatch> info{};
    const uint32_t n = dev.Receive(queue, batch, info.data());
    for (uint32_t i = 0; i < n; ++i) {
      out.emplace_back(batch[i].data, batch[i].data + batch[i].length);
      if (infos != nullptr) infos->push_back(info[i]);
    }
    if (n == 0 && dev.PrepareWait(queue)) {
      pollfd pfd{dev.wait_fd(queue), POLLIN, 0};
      ::poll(&pfd, 1, 100);
    }
  }
  return out;
}

// Sends every frame on `queue` (kAutoQueue allowed), retrying on back-pressure until `timeout`.
inline bool SendAll(NetDevice& dev, uint32_t queue, const std::vector<std::vector<uint8_t>>& frames,
                    std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t done = 0;
  while (done < frames.size()) {
    net::FrameBatch batch;
    for (size_t i = done; i < frames.size() && !batch.full(); ++i) {
      batch.Add(std::span<const uint8_t>(frames[i]));
    }
    done += dev.Send(queue, batch);
    if (done < frames.size()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      const uint32_t q = queue == kAutoQueue ? 0 : queue;
      if (dev.PrepareWait(q) && dev.tx_stopped(q)) {
        pollfd pfd{dev.wait_fd(q), POLLIN, 0};
        ::poll(&pfd, 1, 20);
      }
    }
  }
  return true;
}

}  // namespace uvmbus::netvsc::testing

#endif  // UVMBUS_TESTS_UNIT_NETVSC_NETVSC_TEST_UTIL_H_
