// Switch: learning, flooding, ageing, anti-spoofing, hairpin, bounded queues, steering.
#include "net/switch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "net_test_util.h"

namespace uvmbus::net {
namespace {

using testing::DrainQueue;
using testing::FdReadable;
using testing::Mac;
using testing::MakeFrame;
using testing::SendOne;

constexpr int64_t kSecond = 1'000'000'000;

class SwitchTest : public ::testing::Test {
 protected:
  void SetUp() override { sw_ = MakeSwitch({}); }

  std::shared_ptr<Switch> MakeSwitch(SwitchOptions o) {
    o.clock = &clock_;
    auto sw = Switch::Create(o);
    EXPECT_TRUE(sw) << sw.error();
    return *sw;
  }
  std::unique_ptr<SwitchPort> Port(uint8_t mac_last, SwitchPortOptions o = {},
                                   Switch* sw = nullptr) {
    o.mac = Mac(mac_last);
    auto p = (sw != nullptr ? sw : sw_.get())->AddPort(o);
    EXPECT_TRUE(p) << p.error();
    return std::move(*p);
  }
  static size_t Pending(SwitchPort& p) {
    size_t n = 0;
    for (uint32_t q = 0; q < p.max_queues(); ++q) n += DrainQueue(p.queue(q)).size();
    return n;
  }

  ManualClock clock_;
  std::shared_ptr<Switch> sw_;
};

TEST_F(SwitchTest, UnknownUnicastIsFloodedToEveryOtherPort) {
  auto a = Port(1), b = Port(2), c = Port(3);
  auto f = MakeFrame(Mac(9), Mac(1));
  ASSERT_EQ(SendOne(a->queue(0), f), 1u);
  auto at_b = DrainQueue(b->queue(0));
  auto at_c = DrainQueue(c->queue(0));
  ASSERT_EQ(at_b.size(), 1u);
  ASSERT_EQ(at_c.size(), 1u);
  EXPECT_EQ(at_b[0], f);
  EXPECT_TRUE(DrainQueue(a->queue(0)).empty());  // no hairpin on flooding
  EXPECT_EQ(a->port_stats().flooded, 1u);
}

TEST_F(SwitchTest, LearnedDestinationReceivesUnicastAlone) {
  auto a = Port(1), b = Port(2), c = Port(3);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  EXPECT_EQ(sw_->Lookup(Mac(2)), b->port_id());
  Pending(*a);
  Pending(*c);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), Mac(1), 100, 7)), 1u);
  auto at_b = DrainQueue(b->queue(0));
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_b[0][14], 7);
  EXPECT_EQ(Pending(*c), 0u);
  EXPECT_EQ(a->port_stats().forwarded, 1u);
  EXPECT_EQ(sw_->mac_table_size(), 2u);
  EXPECT_EQ(b->port_stats().learned, 1u);
}

TEST_F(SwitchTest, BroadcastAndMulticastAreFloodedAndCountedAsMulticast) {
  auto a = Port(1), b = Port(2);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), Mac(1))), 1u);  // teach nothing about 2
  Pending(*b);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(Mac(1), Mac(2))), 1u);  // now 2 is known
  Pending(*a);
  auto mcast = *MacAddress::Parse("01:00:5e:00:00:fb");
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(mcast, Mac(1))), 1u);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(1))), 1u);
  EXPECT_EQ(DrainQueue(b->queue(0)).size(), 2u);
  EXPECT_EQ(b->queue(0).stats().multicast, 2u);
}

TEST_F(SwitchTest, UnicastToAMacOnTheSendingPortIsNotHairpinned) {
  auto a = Port(1, {.allow_spoof = true}), b = Port(2);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(11))), 1u);
  Pending(*b);
  // Mac(11) lives behind port a; a frame from a to it must not come back out of a.
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(11), Mac(1))), 1u);
  EXPECT_EQ(Pending(*a), 0u);
  EXPECT_EQ(Pending(*b), 0u);
  EXPECT_EQ(a->port_stats().hairpin, 1u);
  EXPECT_EQ(a->queue(0).stats().tx_packets, 2u);
}

TEST_F(SwitchTest, EntriesAgeOutAndUnicastFloodsAgain) {
  auto a = Port(1), b = Port(2), c = Port(3);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  Pending(*a);
  Pending(*c);
  clock_.AdvanceNs(299 * kSecond);
  EXPECT_EQ(sw_->Lookup(Mac(2)), b->port_id());
  clock_.AdvanceNs(2 * kSecond);
  EXPECT_EQ(sw_->Lookup(Mac(2)), std::nullopt);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), Mac(1))), 1u);
  EXPECT_EQ(Pending(*b), 1u);
  EXPECT_EQ(Pending(*c), 1u);  // flooded: the entry expired
  EXPECT_EQ(sw_->mac_table_size(), 1u);  // the relearn of Mac(1) swept the expired entry
  EXPECT_EQ(sw_->ExpireEntries(), 0u);
}

TEST_F(SwitchTest, TrafficRefreshesAnEntryBeforeItAges) {
  auto a = Port(1), b = Port(2);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  clock_.AdvanceNs(200 * kSecond);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  clock_.AdvanceNs(200 * kSecond);  // 400 s after learning, 200 s after the refresh
  EXPECT_EQ(sw_->Lookup(Mac(2)), b->port_id());
  clock_.AdvanceNs(101 * kSecond);
  EXPECT_EQ(sw_->Lookup(Mac(2)), std::nullopt);
  EXPECT_EQ(sw_->ExpireEntries(), 1u);
  EXPECT_EQ(sw_->mac_table_size(), 0u);
}

TEST_F(SwitchTest, AntiSpoofingDropsForeignSourceMacs) {
  auto a = Port(1), b = Port(2);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  EXPECT_EQ(Pending(*b), 0u);
  EXPECT_EQ(a->port_stats().spoofed, 1u);
  EXPECT_EQ(a->queue(0).stats().tx_dropped, 1u);
  EXPECT_EQ(a->queue(0).stats().tx_packets, 0u);
  EXPECT_EQ(sw_->Lookup(Mac(2)), std::nullopt);  // nothing learned from a spoofed frame
}

TEST_F(SwitchTest, SpoofOnPortMaySendAndLearnManySources) {
  auto a = Port(1, {.allow_spoof = true}), b = Port(2);
  for (uint8_t m = 20; m < 25; ++m) {
    ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(m))), 1u);
  }
  EXPECT_EQ(Pending(*b), 5u);
  for (uint8_t m = 20; m < 25; ++m) EXPECT_EQ(sw_->Lookup(Mac(m)), a->port_id());
}

TEST_F(SwitchTest, MulticastOrZeroSourceIsAlwaysDropped) {
  auto a = Port(1, {.allow_spoof = true}), b = Port(2);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), MacAddress::Broadcast())), 1u);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), MacAddress{})), 1u);
  EXPECT_EQ(Pending(*b), 0u);
  EXPECT_EQ(a->port_stats().invalid_source, 2u);
  EXPECT_EQ(a->queue(0).stats().tx_dropped, 2u);
}

TEST_F(SwitchTest, MacMovesToTheLatestPort) {
  auto a = Port(1, {.allow_spoof = true}), b = Port(2, {.allow_spoof = true}), c = Port(3);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(50))), 1u);
  EXPECT_EQ(sw_->Lookup(Mac(50)), a->port_id());
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(50))), 1u);
  EXPECT_EQ(sw_->Lookup(Mac(50)), b->port_id());
  Pending(*a);
  Pending(*b);
  ASSERT_EQ(SendOne(c->queue(0), MakeFrame(Mac(50), Mac(3))), 1u);
  EXPECT_EQ(Pending(*b), 1u);
  EXPECT_EQ(Pending(*a), 0u);
}

TEST_F(SwitchTest, PerPortLearningLimitRefusesAndCounts) {
  auto sw = MakeSwitch({.name = "sw1", .max_macs_per_port = 2});
  auto a = Port(1, {.allow_spoof = true}, sw.get());
  auto b = Port(2, {}, sw.get());
  for (uint8_t m = 30; m < 34; ++m) {
    ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(m))), 1u);
  }
  EXPECT_EQ(a->port_stats().learned, 2u);
  EXPECT_EQ(a->port_stats().learn_refused, 2u);
  EXPECT_EQ(sw->mac_table_size(), 2u);
  EXPECT_EQ(Pending(*b), 4u);  // forwarding is not affected by the limit
}

TEST_F(SwitchTest, SlowReceiverDropsAndCountsWithoutBlockingTheSender) {
  auto sw = MakeSwitch({.name = "sw1", .ring_depth = 8});
  auto a = Port(1, {}, sw.get());
  auto b = Port(2, {}, sw.get());
  FrameBatch batch;
  auto f = MakeFrame(Mac(2), Mac(1));
  for (int i = 0; i < 20; ++i) batch.Add(f);
  EXPECT_EQ(a->queue(0).Send(batch), 20u);
  EXPECT_EQ(Pending(*b), 8u);
  EXPECT_EQ(b->queue(0).stats().rx_missed_errors, 12u);
  EXPECT_EQ(b->queue(0).stats().rx_packets, 8u);
  EXPECT_EQ(a->queue(0).stats().tx_packets, 20u);
}

TEST_F(SwitchTest, ReceiverSleepingOnItsQueueIsWokenOncePerBatch) {
  auto a = Port(1), b = Port(2);
  Queue& rx = b->queue(0);
  ASSERT_TRUE(rx.PrepareWait());
  FrameBatch batch;
  auto f = MakeFrame(Mac(2), Mac(1));
  for (int i = 0; i < 5; ++i) batch.Add(f);
  ASSERT_EQ(a->queue(0).Send(batch), 5u);
  ASSERT_TRUE(FdReadable(rx.wait_fd()));
  uint64_t count = 0;
  ASSERT_EQ(::read(rx.wait_fd(), &count, sizeof(count)), static_cast<ssize_t>(sizeof(count)));
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(DrainQueue(rx).size(), 5u);
}

TEST_F(SwitchTest, LinkDownPortNeitherSendsNorReceives) {
  auto a = Port(1), b = Port(2);
  ASSERT_TRUE(b->SetLinkUp(false));
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(1))), 1u);
  EXPECT_EQ(Pending(*b), 0u);
  EXPECT_EQ(b->queue(0).stats().rx_dropped, 1u);
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  EXPECT_EQ(b->queue(0).stats().tx_carrier_errors, 1u);
  EXPECT_EQ(Pending(*a), 0u);
  ASSERT_TRUE(b->SetLinkUp(true));
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(1))), 1u);
  EXPECT_EQ(Pending(*b), 1u);
}

TEST_F(SwitchTest, FramesAboveEitherMtuAreRefused) {
  auto sw = MakeSwitch({.name = "sw1", .max_frame_size = kMaxFrameSize});
  auto jumbo = Port(1, {.mtu = 9000}, sw.get());
  auto small = Port(2, {.mtu = 1500}, sw.get());
  auto other = Port(3, {.mtu = 9000}, sw.get());
  ASSERT_EQ(SendOne(jumbo->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(1), 9014)), 1u);
  EXPECT_EQ(Pending(*other), 1u);
  EXPECT_EQ(Pending(*small), 0u);
  EXPECT_EQ(small->queue(0).stats().rx_errors, 1u);
  ASSERT_EQ(SendOne(small->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2), 1515)), 1u);
  EXPECT_EQ(small->queue(0).stats().tx_errors, 1u);
  EXPECT_EQ(Pending(*other), 0u);
}

TEST_F(SwitchTest, AFlowStaysOnOneQueueAndFlowsSpreadOverActiveQueues) {
  auto a = Port(1, {.allow_spoof = true}), b = Port(2, {.queues = 4});
  ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
  Pending(*a);
  // 64 IPv4/UDP flows from a to b, 3 frames each.
  std::vector<int> queue_of_flow(64, -1);
  bool stable = true;
  for (int round = 0; round < 3; ++round) {
    for (int flow = 0; flow < 64; ++flow) {
      auto f = MakeFrame(Mac(2), Mac(1), 64);
      f[12] = 0x08, f[13] = 0x00, f[14] = 0x45, f[23] = 17;  // IPv4, UDP
      f[20] = f[21] = 0;                                     // not a fragment
      f[29] = static_cast<uint8_t>(flow);                    // source address
      f[35] = static_cast<uint8_t>(flow * 7);                // source port
      ASSERT_EQ(SendOne(a->queue(0), f), 1u);
      int seen_on = -1;
      for (uint32_t q = 0; q < 4; ++q) {
        if (!DrainQueue(b->queue(q)).empty()) seen_on = static_cast<int>(q);
      }
      ASSERT_NE(seen_on, -1);
      if (queue_of_flow[flow] == -1) queue_of_flow[flow] = seen_on;
      stable = stable && queue_of_flow[flow] == seen_on;
    }
  }
  EXPECT_TRUE(stable);
  std::set<int> used(queue_of_flow.begin(), queue_of_flow.end());
  EXPECT_GE(used.size(), 3u);
  ASSERT_TRUE(b->SetQueueCount(1));
  for (int flow = 0; flow < 8; ++flow) {
    auto f = MakeFrame(Mac(2), Mac(1), 64, static_cast<uint8_t>(flow));
    ASSERT_EQ(SendOne(a->queue(0), f), 1u);
  }
  EXPECT_EQ(DrainQueue(b->queue(0)).size(), 8u);
}

TEST_F(SwitchTest, DetachedPortIsForgottenAndNoLongerReceives) {
  auto a = Port(1), c = Port(3);
  {
    auto b = Port(2);
    ASSERT_EQ(SendOne(b->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(2))), 1u);
    EXPECT_EQ(sw_->port_count(), 3u);
    // a's queue caches the snapshot that still lists b.
    ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), Mac(1))), 1u);
  }
  EXPECT_EQ(sw_->port_count(), 2u);
  EXPECT_EQ(sw_->Lookup(Mac(2)), std::nullopt);
  Pending(*c);
  ASSERT_EQ(SendOne(a->queue(0), MakeFrame(Mac(2), Mac(1))), 1u);  // unknown again: flooded
  EXPECT_EQ(Pending(*c), 1u);
  // The MAC of the departed port may be attached again.
  auto b2 = Port(2);
  EXPECT_EQ(b2->name(), "sw0/p4");
}

TEST_F(SwitchTest, AddPortValidatesItsOptions) {
  auto a = Port(1);
  SwitchPortOptions dup;
  dup.mac = Mac(1);
  EXPECT_EQ(sw_->AddPort(dup).error().code, ErrorCode::kAlreadyExists);
  SwitchPortOptions bad;
  bad.mac = MacAddress::Broadcast();
  EXPECT_EQ(sw_->AddPort(bad).error().code, ErrorCode::kInvalidArgument);
  bad.allow_spoof = true;  // a spoof=on uplink needs no MAC of its own
  EXPECT_TRUE(sw_->AddPort(bad));
  SwitchPortOptions jumbo;
  jumbo.mac = Mac(5);
  jumbo.mtu = 9000;  // the default switch carries 1514-byte frames
  EXPECT_EQ(sw_->AddPort(jumbo).error().code, ErrorCode::kInvalidArgument);
  SwitchPortOptions queues;
  queues.mac = Mac(6);
  queues.queues = 0;
  EXPECT_EQ(sw_->AddPort(queues).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(a->SetQueueCount(2).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SwitchTest, CreateValidatesOptions) {
  EXPECT_EQ(Switch::Create({.name = ""}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Switch::Create({.ring_depth = 100}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Switch::Create({.max_frame_size = kMaxFrameSize + 1}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Switch::Create({.ageing_ns = 0}).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SwitchTest, PortNamesAndTheSwitchOutliveTheCaller) {
  auto p = Port(1, {.name = "vm1"});
  EXPECT_EQ(p->name(), "sw0/vm1");
  EXPECT_EQ(p->mac(), Mac(1));
  sw_.reset();  // the port keeps the switch alive
  EXPECT_EQ(SendOne(p->queue(0), MakeFrame(MacAddress::Broadcast(), Mac(1))), 1u);
}

}  // namespace
}  // namespace uvmbus::net
