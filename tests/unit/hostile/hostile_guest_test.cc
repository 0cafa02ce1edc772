// Hostile guests against the real host (issue 5 item 4; spec 9.3, 9.4, 9.7): a scripted guest
// follows the protocol to a step, then sends garbage, truncated, replayed or out-of-order
// messages or ring contents. The host must count every rejection, not crash (ASan/UBSan), not
// hang (every wait is bounded), and keep serving a well-behaved second guest as if nothing
// happened.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>

#include "hostile/hostile_peer.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"

namespace uvmbus::hostile {
namespace {

using ::testing::HasSubstr;

// (step, attack) pairs that are hostile: a replay needs something earlier to replay (and at
// kOpen the ring "replay" would be the first, valid, NVSP INIT); a ring index needs a ring.
bool Applies(Step step, Attack attack) {
  if (attack == Attack::kReplay) return step != Step::kHello && step != Step::kOpen;
  if (attack == Attack::kRingCorrupt) return step >= Step::kOpen;
  return true;
}

std::vector<std::tuple<Step, Attack>> Scenarios() {
  std::vector<std::tuple<Step, Attack>> out;
  for (Step s : kAllSteps) {
    for (Attack a : kAllAttacks) {
      if (Applies(s, a)) out.emplace_back(s, a);
    }
  }
  return out;
}

class HostileGuestTest : public ::testing::TestWithParam<std::tuple<Step, Attack>> {};

TEST_P(HostileGuestTest, HostCountsTheRejectionAndKeepsServingTheOtherGuest) {
  const auto [step, attack] = GetParam();
  HostBench bench;
  HostBench::Guest* victim = bench.AddGuest("hostile");
  HostBench::Guest* good = bench.AddGuest("good");
  ASSERT_NE(victim, nullptr);
  ASSERT_NE(good, nullptr);
  HostileGuest peer(*victim);
  ASSERT_TRUE(peer.AdvanceTo(step)) << peer.why();
  const uint64_t before = bench.Rejections(*victim);

  const size_t sent = peer.Send(attack, /*seed=*/static_cast<uint64_t>(step) * 31 + 7);
  ASSERT_GT(sent, 0u);
  EXPECT_GT(bench.Rejections(*victim), before)
      << StepName(step) << "/" << AttackName(attack) << ": nothing was counted";
  // The other guest never sees a rejection and runs its whole life cycle normally.
  EXPECT_EQ(bench.ExerciseGoodGuest(*good), "");
  EXPECT_EQ(bench.Rejections(*good), 0u);
  // The hostile guest is still a guest of the host (nothing was torn down beyond its own
  // channel), and the service still has both.
  EXPECT_EQ(bench.service().guest_count(), 2u);
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, HostileGuestTest, ::testing::ValuesIn(Scenarios()),
    [](const ::testing::TestParamInfo<std::tuple<Step, Attack>>& p) {
      return std::string(StepName(std::get<0>(p.param))) + "_" +
             std::string(AttackName(std::get<1>(p.param)));
    });

// Garbage channel messages before INITIATE_CONTACT: every one is rejected as malformed or
// not-connected (H1, H2) and the host logs the guest's name, the rejection and the reason.
// The server's rejection log is rate limited per call site (10 lines per second): the test
// first waits out the current window so earlier tests in this process cannot have used it up
// (a rate-limit window, not synchronisation with another thread).
TEST(HostileGuestLogTest, RejectionIsLoggedWithTheRuleName) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  HostBench bench;
  HostBench::Guest* victim = bench.AddGuest("hostile");
  ASSERT_NE(victim, nullptr);
  HostileGuest peer(*victim);
  ASSERT_TRUE(peer.AdvanceTo(Step::kHello));
  ::testing::internal::CaptureStderr();
  ASSERT_GT(peer.Send(Attack::kOutOfOrder, 1), 0u);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("not_connected"));
  const auto snap = bench.Snapshot(*victim);
  ASSERT_TRUE(snap.has_value());
  uint64_t not_connected = 0;
  for (const auto& [name, value] : snap->rejections) {
    if (name == "not_connected") not_connected = value;
  }
  EXPECT_EQ(not_connected, 7u);  // REQUESTOFFERS, OPEN, BODY, TEARDOWN, CLOSE, RELEASED, MODIFY
}

// Truncated channel messages: each is a parse error (H2), counted as malformed, one per message.
TEST(HostileGuestRulesTest, TruncatedChannelMessagesAreEachCountedAsMalformed) {
  HostBench bench;
  HostBench::Guest* victim = bench.AddGuest("hostile");
  ASSERT_NE(victim, nullptr);
  HostileGuest peer(*victim);
  ASSERT_TRUE(peer.AdvanceTo(Step::kContact));
  const size_t sent = peer.Send(Attack::kTruncated, 1);
  const auto snap = bench.Snapshot(*victim);
  ASSERT_TRUE(snap.has_value());
  uint64_t malformed = 0;
  for (const auto& [name, value] : snap->rejections) {
    if (name == "malformed") malformed = value;
  }
  EXPECT_EQ(malformed, sent);
  EXPECT_EQ(snap->state, "connected");  // a parse error is not a disconnect
}

// A corrupt ring index stops the victim's queue (R1) and only that queue.
TEST(HostileGuestRulesTest, CorruptRingIndexStopsOnlyTheVictimsQueue) {
  HostBench bench;
  HostBench::Guest* victim = bench.AddGuest("hostile");
  HostBench::Guest* good = bench.AddGuest("good");
  ASSERT_NE(victim, nullptr);
  ASSERT_NE(good, nullptr);
  HostileGuest peer(*victim);
  ASSERT_TRUE(peer.AdvanceTo(Step::kTraffic)) << peer.why();
  ASSERT_EQ(peer.Send(Attack::kRingCorrupt, 1), 1u);
  EXPECT_EQ(victim->counters->Total(netvsp::Stat::kRingCorrupt), 1u);
  EXPECT_EQ(bench.ExerciseGoodGuest(*good), "");
  EXPECT_EQ(good->counters->Total(netvsp::Stat::kRingCorrupt), 0u);
}

// The same attack over the real socket transport: a hostile guest process's garbage channel
// messages reach a SocketHost + HostService exactly as a guest process's would; the host counts
// them and a second socket guest still negotiates and gets its offers.
TEST(HostileSocketGuestTest, GarbageOverTheSocketLeavesOtherGuestsServed) {
  host::HostService service([](const partition::PeerInfo&) {
    return std::vector<std::unique_ptr<host::Device>>{};
  });
  static std::atomic<int> n{0};
  const std::string path = ::testing::TempDir() + "uvmbus-hostile-sock-" +
                           std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock";
  auto listener = partition::SocketHost::Listen(path, service.GuestCallback());
  ASSERT_TRUE(listener.has_value()) << listener.error();
  auto bad = partition::SocketGuestPartition::Connect(path, "bad", 1, 1u << 20);
  ASSERT_TRUE(bad.has_value()) << bad.error();
  auto good = partition::SocketGuestPartition::Connect(path, "good", 1, 1u << 20);
  ASSERT_TRUE(good.has_value()) << good.error();
  ASSERT_TRUE(service.WaitForGuestCount(2, std::chrono::seconds(5)));

  testing::FakeVmbusGuest attacker(**bad);
  attacker.set_receive_timeout_ms(200);
  Prng prng(42);
  for (int i = 0; i < 64; ++i) {
    auto bytes = prng.Bytes(1 + prng.Below(wire::kMaxChannelMessageSize));
    (void)attacker.PostRaw(bytes);  // each is a request answered by the host: no race
  }
  uint64_t rejected = 0;
  for (const auto& g : service.Snapshot().guests) {
    if (g.peer.name != "bad") continue;
    for (const auto& [name, value] : g.rejections) rejected += value;
  }
  EXPECT_GT(rejected, 0u);

  testing::FakeVmbusGuest victim(**good);
  victim.set_receive_timeout_ms(5000);
  auto offers = victim.ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  EXPECT_TRUE(offers.has_value());
  for (const auto& g : service.Snapshot().guests) {
    if (g.peer.name == "good") {
      EXPECT_TRUE(g.rejections.empty());
    }
  }
  (*listener)->Stop();
}

}  // namespace
}  // namespace uvmbus::hostile
