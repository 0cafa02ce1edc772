// Loopback and pipe endpoints (the in-memory backend and the burst-API frontend).
#include "net/pipe.h"

#include <gtest/gtest.h>

#include "net_test_util.h"

namespace uvmbus::net {
namespace {

using testing::DrainQueue;
using testing::FdReadable;
using testing::Mac;
using testing::MakeFrame;
using testing::SendOne;

TEST(LoopbackTest, FramesSentComeBackOnTheSameQueue) {
  auto ep = CreateLoopback({.name = "lo0", .queues = 2});
  ASSERT_TRUE(ep) << ep.error();
  Endpoint& e = **ep;
  EXPECT_EQ(e.name(), "lo0");
  auto f0 = MakeFrame(Mac(1), Mac(2), 100, 0);
  auto f1 = MakeFrame(Mac(1), Mac(2), 200, 1);
  EXPECT_EQ(SendOne(e.queue(0), f0), 1u);
  EXPECT_EQ(SendOne(e.queue(1), f1), 1u);
  auto got0 = DrainQueue(e.queue(0));
  auto got1 = DrainQueue(e.queue(1));
  ASSERT_EQ(got0.size(), 1u);
  ASSERT_EQ(got1.size(), 1u);
  EXPECT_EQ(got0[0], f0);
  EXPECT_EQ(got1[0], f1);
  NetStats s = e.stats();
  EXPECT_EQ(s.tx_packets, 2u);
  EXPECT_EQ(s.tx_bytes, 300u);
  EXPECT_EQ(s.rx_packets, 2u);
  EXPECT_EQ(s.rx_bytes, 300u);
}

TEST(LoopbackTest, RunFramesAreRefusedAndShortFramesPadded) {
  auto ep = CreateLoopback({});
  ASSERT_TRUE(ep);
  Queue& q = (*ep)->queue(0);
  std::vector<uint8_t> runt(13, 0);
  EXPECT_EQ(SendOne(q, runt), 1u);  // consumed (dropped and counted)
  std::vector<uint8_t> too_big(1515, 0);
  EXPECT_EQ(SendOne(q, too_big), 1u);
  auto arp_sized = MakeFrame(Mac(1), Mac(2), 42);
  EXPECT_EQ(SendOne(q, arp_sized), 1u);
  auto got = DrainQueue(q);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), 60u);
  EXPECT_EQ(q.stats().tx_errors, 2u);
  EXPECT_EQ(q.stats().tx_packets, 1u);
}

TEST(LoopbackTest, BoundedRingDropsAndCountsMissedFrames) {
  auto ep = CreateLoopback({.ring_depth = 4});
  ASSERT_TRUE(ep);
  Queue& q = (*ep)->queue(0);
  auto f = MakeFrame(Mac(1), Mac(2));
  FrameBatch b;
  for (int i = 0; i < 10; ++i) b.Add(f);
  EXPECT_EQ(q.Send(b), 10u);  // never blocks
  EXPECT_EQ(DrainQueue(q).size(), 4u);
  EXPECT_EQ(q.stats().rx_missed_errors, 6u);
  EXPECT_EQ(q.stats().tx_packets, 10u);
}

TEST(LoopbackTest, SmallReceiveBufferDropsTheFrameAndKeepsTheBuffer) {
  auto ep = CreateLoopback({});
  ASSERT_TRUE(ep);
  Queue& q = (*ep)->queue(0);
  ASSERT_EQ(SendOne(q, MakeFrame(Mac(1), Mac(2), 500)), 1u);
  ASSERT_EQ(SendOne(q, MakeFrame(Mac(1), Mac(2), 100)), 1u);
  std::vector<uint8_t> buf(200);
  RxBatch rx;
  rx.Add(std::span<uint8_t>(buf), 42);
  ASSERT_EQ(q.Poll(rx), 1u);
  EXPECT_EQ(rx[0].length, 100u);
  EXPECT_EQ(rx[0].id, 42u);
  EXPECT_EQ(q.stats().rx_dropped, 1u);
}

TEST(LoopbackTest, LinkDownCountsCarrierErrorsAndNotifiesTheListener) {
  struct Recorder : LinkListener {
    std::vector<bool> seen;
    void OnLinkChange(bool up) override { seen.push_back(up); }
  } rec;
  auto ep = CreateLoopback({});
  ASSERT_TRUE(ep);
  Endpoint& e = **ep;
  e.SetLinkListener(&rec);
  ASSERT_TRUE(e.SetLinkUp(false));
  ASSERT_TRUE(e.SetLinkUp(false));  // no change, no notification
  EXPECT_FALSE(e.link_up());
  EXPECT_EQ(SendOne(e.queue(0), MakeFrame(Mac(1), Mac(2))), 1u);
  EXPECT_EQ(e.queue(0).stats().tx_carrier_errors, 1u);
  EXPECT_TRUE(DrainQueue(e.queue(0)).empty());
  ASSERT_TRUE(e.SetLinkUp(true));
  e.SetLinkListener(nullptr);
  EXPECT_EQ(rec.seen, (std::vector<bool>{false, true}));
}

TEST(LoopbackTest, RejectsBadOptionsAndQueueCounts) {
  EXPECT_EQ(CreateLoopback({.queues = 0}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateLoopback({.queues = kMaxQueues + 1}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateLoopback({.ring_depth = 3}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateLoopback({.mtu = 67}).error().code, ErrorCode::kInvalidArgument);
  auto ep = CreateLoopback({.queues = 4});
  ASSERT_TRUE(ep);
  EXPECT_EQ((*ep)->SetQueueCount(0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ((*ep)->SetQueueCount(5).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE((*ep)->SetQueueCount(2));
  EXPECT_EQ((*ep)->queue_count(), 2u);
}

TEST(LoopbackTest, JumboMtuCarriesNineKilobyteFrames) {
  auto ep = CreateLoopback({.mtu = kMaxMtu});
  ASSERT_TRUE(ep);
  EXPECT_EQ((*ep)->max_frame_size(), kMaxFrameSize);
  EXPECT_EQ((*ep)->mtu(), kMaxMtu);
  auto f = MakeFrame(Mac(1), Mac(2), kMaxFrameSize);
  ASSERT_EQ(SendOne((*ep)->queue(0), f), 1u);
  auto got = DrainQueue((*ep)->queue(0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], f);
}

TEST(PipeTest, FramesCrossToThePeerEndInBothDirections) {
  auto pipe = CreatePipe({.name = "p0", .queues = 2});
  ASSERT_TRUE(pipe) << pipe.error();
  Endpoint& nic = *pipe->nic;
  Endpoint& app = *pipe->app;
  EXPECT_EQ(nic.name(), "p0/nic");
  EXPECT_EQ(app.name(), "p0/app");
  auto a = MakeFrame(Mac(1), Mac(2), 70, 1);
  auto b = MakeFrame(Mac(2), Mac(1), 80, 2);
  ASSERT_EQ(SendOne(app.queue(1), a), 1u);
  ASSERT_EQ(SendOne(nic.queue(0), b), 1u);
  EXPECT_TRUE(DrainQueue(app.queue(1)).empty());  // not a loopback
  auto at_nic = DrainQueue(nic.queue(1));
  auto at_app = DrainQueue(app.queue(0));
  ASSERT_EQ(at_nic.size(), 1u);
  ASSERT_EQ(at_app.size(), 1u);
  EXPECT_EQ(at_nic[0], a);
  EXPECT_EQ(at_app[0], b);
}

TEST(PipeTest, SteersIntoTheActiveQueuesOfThePeer) {
  auto pipe = CreatePipe({.queues = 4});
  ASSERT_TRUE(pipe);
  ASSERT_TRUE(pipe->nic->SetQueueCount(2));
  ASSERT_EQ(SendOne(pipe->app->queue(3), MakeFrame(Mac(1), Mac(2))), 1u);
  EXPECT_EQ(DrainQueue(pipe->nic->queue(1)).size(), 1u);  // 3 % 2
}

TEST(PipeTest, SleepingReceiverIsWokenBySend) {
  auto pipe = CreatePipe({});
  ASSERT_TRUE(pipe);
  Queue& rx = pipe->nic->queue(0);
  ASSERT_TRUE(rx.PrepareWait());
  EXPECT_FALSE(FdReadable(rx.wait_fd()));
  ASSERT_EQ(SendOne(pipe->app->queue(0), MakeFrame(Mac(1), Mac(2))), 1u);
  EXPECT_TRUE(FdReadable(rx.wait_fd()));
  EXPECT_EQ(DrainQueue(rx).size(), 1u);
}

TEST(PipeTest, DownOrDestroyedPeerDropsWhatIsSentToIt) {
  auto pipe = CreatePipe({});
  ASSERT_TRUE(pipe);
  ASSERT_TRUE(pipe->nic->SetLinkUp(false));
  ASSERT_EQ(SendOne(pipe->app->queue(0), MakeFrame(Mac(1), Mac(2))), 1u);
  EXPECT_EQ(pipe->nic->queue(0).stats().rx_dropped, 1u);
  EXPECT_TRUE(DrainQueue(pipe->nic->queue(0)).empty());
  pipe->nic.reset();
  EXPECT_EQ(SendOne(pipe->app->queue(0), MakeFrame(Mac(1), Mac(2))), 1u);  // no crash
  EXPECT_EQ(pipe->app->queue(0).stats().tx_packets, 2u);
}

}  // namespace
}  // namespace uvmbus::net
