// File: tests/unit/host/host_test_util.h
//
// What: shared pieces of the host tests: a scriptable fake Device whose observations outlive it
// (shared state), and a fixture environment = LocalPartition + VmbusServer + FakeVmbusGuest.
// Thread-safety: FakeDeviceState is guarded by its mutex (ChannelWorker tests touch it from the
// worker thread).
#ifndef UVMBUS_TESTS_UNIT_HOST_HOST_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_HOST_HOST_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <vector>

#include "fakes/fake_vmbus_guest.h"
#include "host/device.h"
#include "host/host_channel.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"
#include "wire/device_guids.h"

namespace uvmbus::host::test {

struct FakeDeviceState {
  std::mutex mu;
  DeviceControl* control = nullptr;
  int opens = 0;
  int closes = 0;
  bool destroyed = false;
  bool fail_open = false;
  bool async_close = false;
  std::vector<HostChannel*> open_channels;      // currently open (by Open order)
  std::vector<uint16_t> opened_indices;         // sub_channel_index of every Open()
  std::vector<uint32_t> opened_target_vps;
  HostChannel* pending_close = nullptr;         // last Close() answered kPending
  std::vector<std::pair<uint32_t, uint32_t>> retargets;  // (relid, vp)

  HostChannel* Channel(uint16_t index) {
    std::lock_guard lock(mu);
    for (HostChannel* c : open_channels) {
      if (c->sub_channel_index() == index) return c;
    }
    return nullptr;
  }
};

class FakeDevice final : public Device {
 public:
  FakeDevice(std::shared_ptr<FakeDeviceState> state, Guid class_id, Guid instance_id,
             uint16_t max_subchannels = 0, std::string name = "fake")
      : state_(std::move(state)),
        class_id_(class_id),
        instance_id_(instance_id),
        max_subchannels_(max_subchannels),
        name_(std::move(name)) {}
  ~FakeDevice() override {
    std::lock_guard lock(state_->mu);
    state_->destroyed = true;
  }

  OfferParams Offer() const override {
    OfferParams p;
    p.class_id = class_id_;
    p.instance_id = instance_id_;
    // 0x2 must be cleared by the server (6.0 meaning, spec 10.1 V5).
    p.chn_flags = wire::kOfferFlagEnumerateDeviceInterface | wire::kOfferFlagConfidentialRingBuffer;
    p.user_def[0] = 0xAB;
    p.user_def[119] = 0xCD;
    p.name = name_;
    return p;
  }
  uint16_t MaxSubchannels() const override { return max_subchannels_; }
  // Immutable data only: the server may call this under its state lock.
  nlohmann::json InspectJson() const override { return {{"fake_name", name_}}; }
  void Install(DeviceControl* control) override {
    std::lock_guard lock(state_->mu);
    state_->control = control;
  }
  Status Open(HostChannel& channel) override {
    std::lock_guard lock(state_->mu);
    if (state_->fail_open) return MakeError(ErrorCode::kInternal, "fake device refuses");
    ++state_->opens;
    state_->open_channels.push_back(&channel);
    state_->opened_indices.push_back(channel.sub_channel_index());
    state_->opened_target_vps.push_back(channel.target_vp());
    return Ok();
  }
  CloseStatus Close(HostChannel& channel) override {
    std::lock_guard lock(state_->mu);
    ++state_->closes;
    std::erase(state_->open_channels, &channel);
    if (state_->async_close) {
      state_->pending_close = &channel;
      return CloseStatus::kPending;
    }
    return CloseStatus::kClosed;
  }
  void RetargetVp(HostChannel& channel, uint32_t vp) override {
    std::lock_guard lock(state_->mu);
    state_->retargets.emplace_back(channel.relid(), vp);
  }

 private:
  std::shared_ptr<FakeDeviceState> state_;
  Guid class_id_;
  Guid instance_id_;
  uint16_t max_subchannels_;
  std::string name_;
};

inline Guid TestInstance(uint8_t n) {
  Guid g = wire::GuidLiteral("11111111-2222-3333-4444-555555555500");
  g.bytes[15] = n;
  return g;
}

// LocalPartition + started VmbusServer + fake guest.
struct HostEnv {
  std::unique_ptr<partition::LocalPartition> partition;
  std::unique_ptr<VmbusServer> server;
  std::unique_ptr<testing::FakeVmbusGuest> guest;

  static std::unique_ptr<HostEnv> Create(uint32_t vcpus = 2, ServerOptions options = {},
                                         uint64_t ram_bytes = 8u << 20) {
    auto env = std::make_unique<HostEnv>();
    auto p = partition::LocalPartition::Create(vcpus, ram_bytes, "host-test");
    EXPECT_TRUE(p.has_value());
    if (!p) return nullptr;
    env->partition = std::move(*p);
    env->server = std::make_unique<VmbusServer>(&env->partition->host(), std::move(options));
    EXPECT_TRUE(env->partition->host().Start(env->server.get()).has_value());
    env->guest = std::make_unique<testing::FakeVmbusGuest>(env->partition->guest());
    return env;
  }
  ~HostEnv() {
    if (partition) partition->host().Stop();
    server.reset();
    guest.reset();
    partition.reset();
  }

  std::shared_ptr<FakeDeviceState> AddFake(uint8_t instance = 1, uint16_t max_sub = 0,
                                           Guid class_id = wire::kNetworkClassGuid) {
    auto state = std::make_shared<FakeDeviceState>();
    server->AddDevice(
        std::make_unique<FakeDevice>(state, class_id, TestInstance(instance), max_sub));
    return state;
  }
};

}  // namespace uvmbus::host::test

#endif  // UVMBUS_TESTS_UNIT_HOST_HOST_TEST_UTIL_H_
