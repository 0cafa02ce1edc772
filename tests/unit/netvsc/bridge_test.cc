// File: tests/unit/netvsc/bridge_test.cc
//
// FrontendBridge: an application on the far end of a net/ pipe talks to the scripted host
// through netvsc - frames both ways on every queue, carrier mirrored from the NIC.
#include <gtest/gtest.h>
#include <poll.h>

#include <map>
#include <vector>

#include "devices/netvsc/frontend_bridge.h"
#include "net/pipe.h"
#include "netvsc_test_util.h"

namespace uvmbus::netvsc {
namespace {

using testing::NetvscEnv;
using testing::UdpFrame;

// Polls `count` frames from `q` (sleeping on its fd between attempts).
std::vector<std::vector<uint8_t>> PollFrames(net::Queue& q, size_t count) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<std::vector<uint8_t>> bufs(net::kMaxBatch, std::vector<uint8_t>(2048));
  const auto deadline = std::chrono::steady_clock::now() + testing::kWait;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    net::RxBatch b;
    for (auto& buf : bufs) b.Add(std::span<uint8_t>(buf));
    const uint32_t n = q.Poll(b);
    for (uint32_t i = 0; i < n; ++i) out.emplace_back(b[i].data, b[i].data + b[i].length);
    if (n == 0 && q.PrepareWait()) {
      pollfd pfd{q.wait_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 100);
    }
  }
  return out;
}

TEST(NetvscFrontendBridgeTest, AnApplicationOnAPipeTalksToTheHostOnEveryQueue) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  net::RingEndpointOptions po;
  po.name = "vnic";
  po.queues = 8;
  auto pipe = net::CreatePipe(po);
  ASSERT_TRUE(pipe.has_value());
  auto bridge = FrontendBridge::Create(*dev, *pipe->nic);
  ASSERT_TRUE(bridge.has_value());
  EXPECT_EQ((*bridge)->workers(), 4u);
  EXPECT_EQ(pipe->nic->queue_count(), 4u);
  ASSERT_TRUE(pipe->app->SetQueueCount(4).has_value());

  // Application -> host: what the app sends on its queue q leaves on NIC queue q.
  std::map<uint16_t, std::vector<std::vector<uint8_t>>> sent;
  for (uint16_t q = 0; q < 4; ++q) {
    net::FrameBatch b;
    for (int i = 0; i < 5; ++i) {
      sent[q].push_back(UdpFrame(q, static_cast<uint16_t>(i), 40 + i, static_cast<uint8_t>(q)));
    }
    for (const auto& f : sent[q]) b.Add(std::span<const uint8_t>(f));
    ASSERT_EQ(pipe->app->queue(q).Send(b), 5u);
  }
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 20; }));
  std::map<uint16_t, std::vector<std::vector<uint8_t>>> got;
  for (const auto& tx : env.host().frames()) got[tx.queue].push_back(tx.bytes);
  EXPECT_EQ(got, sent);

  // Host -> application.
  for (uint16_t q = 0; q < 4; ++q) {
    std::vector<std::vector<uint8_t>> frames;
    for (int i = 0; i < 3; ++i) {
      frames.push_back(UdpFrame(100, static_cast<uint16_t>(q), 70 + i, static_cast<uint8_t>(i)));
    }
    ASSERT_TRUE(env.host().SendFrames(q, frames).has_value());
    EXPECT_EQ(PollFrames(pipe->app->queue(q), 3), frames);
  }
  // The worker counts after the frontend took the frames (the app may see them first).
  EXPECT_TRUE(env.host().WaitUntil([&] { return (*bridge)->Stats().rx_frames == 12; }));
  EXPECT_TRUE(env.host().WaitUntil([&] { return (*bridge)->Stats().tx_frames == 20; }));

  // Carrier follows the NIC.
  EXPECT_TRUE(pipe->nic->link_up());
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kMediaDisconnect).has_value());
  EXPECT_TRUE(env.host().WaitUntil([&] { return !pipe->nic->link_up(); }));
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kMediaConnect).has_value());
  EXPECT_TRUE(env.host().WaitUntil([&] { return pipe->nic->link_up(); }));
  bridge->reset();
}

}  // namespace
}  // namespace uvmbus::netvsc
