// File: tests/unit/netvsp/netvsp_threads_test.cc
//
// NetvspDevice with one worker thread per channel (the production mode): the same bring-up and
// traffic as the manual-mode tests, now with the queues running concurrently - steering between
// workers through the mailboxes, the shared section pool, link changes from another thread - so
// ThreadSanitizer (build dir netvsp-tsan) sees every cross-thread path. Waits are event waits on
// the guest's interrupt and the app end's wait fd, never sleeps.
#include <atomic>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "netvsp/netvsp_test_util.h"

namespace uvmbus::netvsp::test {
namespace {

using testing::MakeFrame;
using testing::MakeTcp4Frame;
using testing::SendMode;

TEST(NetvspThreadsTest, BringUpAndTrafficOnEveryChannelWithWorkerThreads) {
  NetvspEnv env({.queues = 4, .threads = true});
  ASSERT_TRUE(env.Up());
  EXPECT_EQ(env.device().State().channels_open, 4u);
  // Transmit on every channel, every send form.
  uint8_t seed = 0;
  for (uint16_t ch = 0; ch < 4; ++ch) {
    for (SendMode mode : {SendMode::kSection, SendMode::kGpaPageBuffer, SendMode::kMixed}) {
      auto f = MakeFrame(kPeerMac, kGuestMac, 200 + 50 * ch, ++seed);
      ASSERT_EQ(env.guest().SendFrames(ch, {f}, mode), wire::NvspStatus::kSuccess);
      auto got = env.Collect(ch, 1);
      ASSERT_EQ(got.size(), 1u) << ch;
      EXPECT_EQ(got[0], f);
    }
  }
  // Receive: flows injected on every backend queue end up on their RSS channel.
  const std::array<uint8_t, 4> dst = {10, 0, 0, 1};
  for (uint16_t port = 5000; port < 5016; ++port) {
    const std::array<uint8_t, 4> src = {10, 1, 0, static_cast<uint8_t>(port)};
    const ExpectedRss want = RssFor(src, dst, port, 22, 4);
    auto f = MakeTcp4Frame(kGuestMac, kPeerMac, src, dst, port, 22);
    env.Inject(port % 4, {f});
    auto frames = env.guest().ReceiveFrames(static_cast<uint16_t>(want.queue));
    ASSERT_EQ(frames.size(), 1u) << port;
    EXPECT_EQ(frames[0].frame, f);
    EXPECT_EQ(frames[0].ppis.hash_value, want.hash);
  }
  EXPECT_EQ(env.Total(Stat::kTxPackets), 12u);
  EXPECT_EQ(env.Total(Stat::kRxPackets), 16u);
  ASSERT_TRUE(env.guest().Remove());
}

TEST(NetvspThreadsTest, ConcurrentBurstsOnAllQueuesAreDeliveredOnceEach) {
  NetvspEnv env({.queues = 4, .threads = true, .pipe_depth = 1024});
  ASSERT_TRUE(env.Up());
  // 4 bursts, one per backend queue, each of many flows: the four workers receive, steer to
  // each other and indicate concurrently.
  const std::array<uint8_t, 4> dst = {10, 0, 0, 1};
  std::map<uint16_t, uint32_t> expected;  // port -> channel
  constexpr uint32_t kFlows = 48;
  for (uint32_t q = 0; q < 4; ++q) {
    std::vector<std::vector<uint8_t>> burst;
    for (uint32_t i = 0; i < kFlows / 4; ++i) {
      const auto port = static_cast<uint16_t>(6000 + q * 100 + i);
      const std::array<uint8_t, 4> src = {10, 2, static_cast<uint8_t>(q), static_cast<uint8_t>(i)};
      expected[port] = RssFor(src, dst, port, 80, 4).queue;
      burst.push_back(MakeTcp4Frame(kGuestMac, kPeerMac, src, dst, port, 80));
    }
    env.Inject(q, burst);
  }
  std::map<uint16_t, uint32_t> seen;
  while (seen.size() < kFlows) {
    auto frames = env.guest().ReceiveFramesAnyChannel();
    if (frames.empty()) break;  // timed out
    for (const auto& f : frames) {
      const uint16_t port = static_cast<uint16_t>((f.frame[34] << 8) | f.frame[35]);
      EXPECT_TRUE(seen.emplace(port, f.channel).second) << "duplicate " << port;
    }
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(env.Total(Stat::kRxNoBuffer) + env.Total(Stat::kRxRingFull) +
                env.Total(Stat::kRxSteerFull),
            0u);
}

TEST(NetvspThreadsTest, LinkChangesFromAnotherThreadAreIndicated) {
  NetvspEnv env({.queues = 2, .threads = true});
  ASSERT_TRUE(env.Up());
  std::thread flipper([&] { EXPECT_TRUE(env.device().SetLinkUp(false).has_value()); });
  flipper.join();
  auto ind = env.guest().WaitIndication(0);
  ASSERT_TRUE(ind);
  auto msg = wire::ParseRndisMessage(ind->messages.at(0).bytes, wire::Direction::kHostToGuest);
  ASSERT_TRUE(msg);
  EXPECT_EQ(std::get<wire::RndisIndicateStatusMessage>(*msg).fixed.status,
            wire::RndisStatus::kMediaDisconnect);
  std::thread back([&] { EXPECT_TRUE(env.device().SetLinkUp(true).has_value()); });
  back.join();
  ind = env.guest().WaitIndication(0);
  ASSERT_TRUE(ind);
  EXPECT_FALSE(env.device().StatsJson().empty());
}

TEST(NetvspThreadsTest, GuestDisconnectStopsEveryWorker) {
  NetvspEnv env({.queues = 4, .threads = true});
  ASSERT_TRUE(env.Up());
  env.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 100, 1)});
  // The guest vanishes: the server closes every channel in the device (workers joined).
  env.partition().Disconnect();
  EXPECT_EQ(env.device().State().channels_open, 0u);
  // Frames arriving afterwards go nowhere and nothing crashes.
  env.Inject(1, {MakeFrame(kGuestMac, kPeerMac, 100, 2)});
}

}  // namespace
}  // namespace uvmbus::netvsp::test
