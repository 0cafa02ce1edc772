// File: tests/unit/guest/guest_test_util.h
//
// What: shared pieces of the guest bus tests: a fixture that builds a LocalPartition, a scripted
// FakeVmbusHost on its host half and a VmbusBus on its guest half; a recording test driver; a
// counter tests can wait on (no sleeps); helpers to read a channel's inbound ring.
// Thread-safety: RecordingDriver and Latch are thread-safe (driver callbacks run on bus workers).
#ifndef UVMBUS_TESTS_UNIT_GUEST_GUEST_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_GUEST_GUEST_TEST_UTIL_H_

#include <sys/eventfd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/fake_vmbus_host.h"
#include "guest/vmbus_bus.h"
#include "partition/local_partition.h"
#include "wire/device_guids.h"

namespace uvmbus::guest::testing {

inline constexpr auto kWait = std::chrono::milliseconds(5000);

// A count that tests wait on.
class Latch {
 public:
  void Add(uint64_t n = 1) {
    {
      std::lock_guard lock(mu_);
      count_ += n;
    }
    cv_.notify_all();
  }
  uint64_t count() const {
    std::lock_guard lock(mu_);
    return count_;
  }
  bool WaitFor(uint64_t n, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

// A driver that records probes/removes and runs optional test code in them.
class RecordingDriver : public Driver {
 public:
  RecordingDriver(std::string name, std::vector<Guid> ids)
      : name_(std::move(name)), ids_(std::move(ids)) {}

  std::string_view name() const override { return name_; }
  std::span<const Guid> id_table() const override { return ids_; }
  Status Probe(VmbusDevice& device) override {
    Status st = probe_fn ? probe_fn(device) : Ok();
    {
      std::lock_guard lock(mu_);
      probed_.push_back(device.channel().relid());
    }
    probes.Add();
    return st;
  }
  void Remove(VmbusDevice& device) override {
    if (remove_fn) remove_fn(device);
    {
      std::lock_guard lock(mu_);
      removed_.push_back(device.channel().relid());
    }
    removes.Add();
  }
  std::vector<uint32_t> probed() const {
    std::lock_guard lock(mu_);
    return probed_;
  }
  std::vector<uint32_t> removed() const {
    std::lock_guard lock(mu_);
    return removed_;
  }

  std::function<Status(VmbusDevice&)> probe_fn;
  std::function<void(VmbusDevice&)> remove_fn;
  Latch probes;
  Latch removes;

 private:
  std::string name_;
  std::vector<Guid> ids_;
  mutable std::mutex mu_;
  std::vector<uint32_t> probed_;
  std::vector<uint32_t> removed_;
};

// Reads every packet of the channel's inbound ring (driver side), signals the host if the commit
// says so, and returns the number of packets read. `sink` gets each payload.
inline int DrainInbound(Channel& ch, int budget = 1 << 30,
                        const std::function<void(std::span<const uint8_t>)>& sink = nullptr) {
  ring::IncomingRing& in = ch.inbound();
  ring::ReadCursor cursor = in.BeginRead();
  int n = 0;
  while (n < budget) {
    ring::ReadResult r = in.Read(cursor);
    if (!r.ok()) break;
    if (sink) sink(r.packet.payload);
    ++n;
  }
  if (in.CommitRead(cursor).needs_signal) ch.SignalHost();
  return n;
}

inline const Guid kTestClassA = Guid::FromString("11111111-2222-3333-4444-555555555555");
inline const Guid kUnknownClass = Guid::FromString("deadbeef-0000-1111-2222-333344445555");
inline Guid InstanceGuid(uint32_t n) {
  Guid g = Guid::FromString("a0a0a0a0-0000-4000-8000-000000000000");
  std::memcpy(g.bytes.data() + 12, &n, sizeof(n));
  return g;
}

// LocalPartition + FakeVmbusHost + VmbusBus.
class BusTest : public ::testing::Test {
 protected:
  void Init(uint32_t vcpus = 2, fakes::FakeVmbusHost::Options host_options = {},
            BusOptions bus_options = {}) {
    auto lp = partition::LocalPartition::Create(vcpus, uint64_t{16} << 20, "guest-test");
    ASSERT_TRUE(lp) << lp.error();
    lp_ = std::move(*lp);
    partition::GuestPartition* guest = &lp_->guest();
    host_options.raise_interrupt = [guest](uint32_t v) {
      (void)::eventfd_write(guest->InterruptFd(v), 1);
    };
    host_ = std::make_unique<fakes::FakeVmbusHost>(lp_->host(), std::move(host_options));
    ASSERT_TRUE(host_->Start());
    if (bus_options.response_timeout == BusOptions{}.response_timeout) {
      bus_options.response_timeout = kWait;
    }
    if (bus_options.offers_timeout == BusOptions{}.offers_timeout) {
      bus_options.offers_timeout = kWait;
    }
    auto bus = VmbusBus::Create(lp_->guest(), bus_options);
    ASSERT_TRUE(bus) << bus.error();
    bus_ = std::move(*bus);
    bus_->AddObserver([this](const BusEvent& e) {
      std::lock_guard lock(events_mu_);
      events_.push_back(e.ToString());
    });
  }

  void TearDown() override {
    bus_.reset();
    host_.reset();
    lp_.reset();
  }

  std::vector<std::string> events() const {
    std::lock_guard lock(events_mu_);
    return events_;
  }

  // Injects a raw slot and waits until the guest handled it.
  void InjectSlotAndWait(uint32_t vcpu, uint32_t type, uint8_t size, uint8_t flags,
                         std::span<const uint8_t> payload) {
    const uint64_t before = bus_->stats().messages_received.Get();
    ASSERT_TRUE(host_->WriteSlot(vcpu, type, size, flags, payload));
    ASSERT_TRUE(bus_->WaitForMessages(before + 1, kWait));
  }
  // Posts a channel message through the SynIC and waits until the guest handled it and every
  // worker ran what it queued.
  void SendAndWait(std::span<const uint8_t> payload) {
    const uint64_t before = bus_->stats().messages_received.Get();
    ASSERT_TRUE(host_->SendRaw(payload));
    ASSERT_TRUE(bus_->WaitForMessages(before + 1, kWait));
    ASSERT_TRUE(bus_->Flush());
  }
  template <wire::FixedChannelMessage T>
  void SendAndWait(const T& msg) {
    SendAndWait(wire::Encode(msg).span());
  }

  // Returns once vCPU `vcpu` finished whatever pass it was running: a message posted to its
  // slot is handled only after the current softirq pass completes.
  void SyncVcpu(uint32_t vcpu) {
    const uint64_t before = bus_->stats().messages_received.Get();
    ASSERT_TRUE(host_->SendRaw(wire::Encode(wire::AllOffersDelivered{}).span(), vcpu));
    ASSERT_TRUE(bus_->WaitForMessages(before + 1, kWait));
  }

  // A driver owned by the fixture: it outlives the bus (destroyed in TearDown).
  RecordingDriver& NewDriver(std::string name, std::vector<Guid> ids) {
    drivers_.push_back(std::make_unique<RecordingDriver>(std::move(name), std::move(ids)));
    return *drivers_.back();
  }

  uint64_t FreePages() const { return lp_->guest().allocator().free_pages(); }

  std::vector<std::unique_ptr<RecordingDriver>> drivers_;
  std::unique_ptr<partition::LocalPartition> lp_;
  std::unique_ptr<fakes::FakeVmbusHost> host_;
  std::unique_ptr<VmbusBus> bus_;
  mutable std::mutex events_mu_;
  std::vector<std::string> events_;
};

// Ring sizes small enough for many channels in 16 MiB of guest RAM.
inline OpenParams SmallRings(ChannelCallback cb, CallbackMode mode = CallbackMode::kBatched,
                             uint32_t ring_bytes = 4 * 4096) {
  OpenParams p;
  p.send_ring_bytes = ring_bytes;
  p.recv_ring_bytes = ring_bytes;
  p.callback = std::move(cb);
  p.mode = mode;
  return p;
}

}  // namespace uvmbus::guest::testing

#endif  // UVMBUS_TESTS_UNIT_GUEST_GUEST_TEST_UTIL_H_
