// Tests of host/channel_worker.h: doorbell-driven callbacks and the spec 3.6 mask/unmask/re-check
// loop, driven with Poll() on the test thread, plus one threaded test synchronised with futures.
#include "host/channel_worker.h"

#include <gtest/gtest.h>

#include <future>

#include "host_test_util.h"

namespace uvmbus::host::test {
namespace {

class ChannelWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = HostEnv::Create();
    dev_ = env_->AddFake();
    ASSERT_TRUE(env_->guest->ConnectAndRequestOffers(wire::kVersionWin10V5_3).has_value());
    auto ch = env_->guest->OpenChannel(1, 0x2001, 0xE1E10);
    ASSERT_TRUE(ch.has_value());
    ASSERT_EQ(ch->result.status, 0u);
    guest_ch_.emplace(std::move(*ch));
    channel_ = dev_->Channel(0);
    ASSERT_NE(channel_, nullptr);
  }

  // Guest writes one in-band packet; signals if the ring writer says so (spec 3.4).
  bool GuestSend(uint64_t trans_id) {
    const uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    auto c = guest_ch_->out->BeginWrite();
    EXPECT_TRUE(guest_ch_->out->WriteInband(c, payload, trans_id, false).ok());
    const bool signal = guest_ch_->out->CommitWrite(c).needs_signal;
    if (signal) env_->guest->Signal(0x2001);
    return signal;
  }

  // Drains up to `quota` packets; records their trans_ids.
  static WorkResult Drain(HostChannel& ch, std::vector<uint64_t>& seen, size_t quota = 64) {
    auto c = ch.inbound().BeginRead();
    size_t n = 0;
    for (; n < quota; ++n) {
      auto r = ch.inbound().Read(c);
      if (!r.ok()) break;
      seen.push_back(r.packet.desc.trans_id);
    }
    if (ch.inbound().CommitRead(c)) ch.SignalGuest();
    return n == quota ? WorkResult::kMore : WorkResult::kDone;
  }

  uint32_t InMask() const { return channel_->inbound().view().interrupt_mask().load(); }

  std::unique_ptr<HostEnv> env_;
  std::shared_ptr<FakeDeviceState> dev_;
  std::optional<testing::FakeVmbusGuest::OpenChannelState> guest_ch_;
  HostChannel* channel_ = nullptr;
};

TEST_F(ChannelWorkerTest, BindDrainsWhatIsAlreadyThere) {
  EXPECT_TRUE(GuestSend(1));
  auto worker = ChannelWorker::Create("w", false);
  ASSERT_TRUE(worker.has_value());
  std::vector<uint64_t> seen;
  ASSERT_TRUE((*worker)->Bind(*channel_, [&](HostChannel& ch) { return Drain(ch, seen); }));
  EXPECT_EQ((*worker)->Poll(0), 1u);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1}));
  EXPECT_EQ(InMask(), 0u);  // unmasked again before sleeping
  EXPECT_EQ((*worker)->Poll(0), 0u);  // nothing due
  EXPECT_EQ((*worker)->Bind(*channel_, [](HostChannel&) { return WorkResult::kDone; })
                .error()
                .code,
            ErrorCode::kAlreadyExists);
}

TEST_F(ChannelWorkerTest, DoorbellRunsTheCallbackMaskedAndCountsEvents) {
  auto worker = ChannelWorker::Create("w", false);
  std::vector<uint64_t> seen;
  uint32_t mask_seen = 0;
  ASSERT_TRUE((*worker)->Bind(*channel_, [&](HostChannel& ch) {
    mask_seen = ch.inbound().view().interrupt_mask().load();
    return Drain(ch, seen);
  }));
  (*worker)->Poll(0);  // initial run: empty ring
  EXPECT_TRUE(GuestSend(7));
  EXPECT_EQ((*worker)->Poll(0), 1u);
  EXPECT_EQ(seen, (std::vector<uint64_t>{7}));
  EXPECT_EQ(mask_seen, 1u);  // hv_begin_read while draining
  EXPECT_EQ(InMask(), 0u);
  EXPECT_EQ(channel_->Stats().events, 1u);
}

TEST_F(ChannelWorkerTest, DataArrivingWhileMaskedIsDrainedWithoutASignal) {
  auto worker = ChannelWorker::Create("w", false);
  std::vector<uint64_t> seen;
  int calls = 0;
  bool guest_signalled_while_masked = true;
  ASSERT_TRUE((*worker)->Bind(*channel_, [&](HostChannel& ch) {
    ++calls;
    WorkResult r = Drain(ch, seen);
    if (calls == 1) {
      // The guest writes after we drained but before we unmask: the ring is masked, so the
      // writer does not signal (spec 3.4) and only the re-check can find it (spec 3.6).
      guest_signalled_while_masked = GuestSend(2);
    }
    return r;
  }));
  EXPECT_TRUE(GuestSend(1));
  EXPECT_EQ((*worker)->Poll(0), 2u);
  EXPECT_FALSE(guest_signalled_while_masked);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ((*worker)->Stats().mask_races, 1u);
  EXPECT_EQ(InMask(), 0u);
}

TEST_F(ChannelWorkerTest, QuotaReachedRunsAgainOnTheNextPollWithoutASignal) {
  auto worker = ChannelWorker::Create("w", false);
  std::vector<uint64_t> seen;
  ASSERT_TRUE(
      (*worker)->Bind(*channel_, [&](HostChannel& ch) { return Drain(ch, seen, /*quota=*/2); }));
  GuestSend(1);
  GuestSend(2);
  GuestSend(3);
  EXPECT_EQ((*worker)->Poll(0), 1u);  // quota 2: kMore
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(InMask(), 1u);  // still masked: the guest need not signal
  EXPECT_EQ((*worker)->Poll(-1), 1u);  // due: does not block
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(InMask(), 0u);
}

TEST_F(ChannelWorkerTest, UnboundChannelIsNotRunAgain) {
  auto worker = ChannelWorker::Create("w", false);
  int calls = 0;
  ASSERT_TRUE((*worker)->Bind(*channel_, [&](HostChannel&) {
    ++calls;
    return WorkResult::kDone;
  }));
  (*worker)->Poll(0);
  (*worker)->Unbind(*channel_);
  GuestSend(1);
  EXPECT_EQ((*worker)->Poll(0), 0u);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ((*worker)->Stats().channels, 0u);
}

TEST_F(ChannelWorkerTest, ThreadedWorkerServesTheGuest) {
  auto worker = ChannelWorker::Create("uvmbus-w0", true);
  ASSERT_TRUE(worker.has_value());
  std::mutex mu;
  std::vector<uint64_t> seen;
  std::promise<void> got_three;
  bool fulfilled = false;
  ASSERT_TRUE((*worker)->Bind(*channel_, [&](HostChannel& ch) {
    std::lock_guard lock(mu);
    WorkResult r = Drain(ch, seen);
    if (seen.size() >= 3 && !fulfilled) {
      fulfilled = true;
      got_three.set_value();
    }
    return r;
  }));
  auto done = got_three.get_future();
  for (uint64_t id = 1; id <= 3; ++id) {
    const uint8_t payload[8] = {};
    auto c = guest_ch_->out->BeginWrite();
    ASSERT_TRUE(guest_ch_->out->WriteInband(c, payload, id, false).ok());
    if (guest_ch_->out->CommitWrite(c).needs_signal) env_->guest->Signal(0x2001);
  }
  done.wait();  // an event, not a sleep: the worker got all three
  (*worker)->Unbind(*channel_);
  (*worker)->Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace uvmbus::host::test
