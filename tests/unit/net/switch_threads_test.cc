// Switch under concurrency (meant for TSan): many ports forwarding on many threads while the MAC
// table is being republished (learning) and ports attach and detach.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "net/switch.h"
#include "net_test_util.h"

namespace uvmbus::net {
namespace {

using testing::DrainQueue;
using testing::Mac;
using testing::MakeFrame;

TEST(SwitchThreadsTest, ConcurrentForwardingAccountsForEveryFrame) {
  constexpr int kWorkers = 4;      // ports that send and poll
  constexpr int kPorts = kWorkers + 1;  // + one port that only sleeps and receives
  constexpr uint32_t kFramesPerWorker = 4000;
  constexpr uint32_t kBatch = 16;

  auto created = Switch::Create({.name = "swt", .ring_depth = 64});
  ASSERT_TRUE(created);
  std::shared_ptr<Switch> sw = *created;
  std::vector<std::unique_ptr<SwitchPort>> ports;
  for (int i = 0; i < kPorts; ++i) {
    auto p = sw->AddPort({.mac = Mac(static_cast<uint8_t>(i + 1))});
    ASSERT_TRUE(p);
    ports.push_back(std::move(*p));
  }
  // A spoof=on uplink with an "anchor" MAC learned behind it (its later frames to the anchor
  // hairpin and are never delivered, but their source MACs are learned).
  auto uplink = sw->AddPort({.name = "uplink", .allow_spoof = true});
  ASSERT_TRUE(uplink);
  const MacAddress anchor = *MacAddress::Parse("02:00:00:00:01:00");
  ASSERT_EQ(testing::SendOne((*uplink)->queue(0), MakeFrame(MacAddress::Broadcast(), anchor)), 1u);
  // Teach the switch every port's MAC first, so that each unicast goes to exactly one port.
  for (auto& p : ports) {
    ASSERT_EQ(testing::SendOne(p->queue(0), MakeFrame(MacAddress::Broadcast(), p->mac())), 1u);
  }
  DrainQueue((*uplink)->queue(0));
  for (auto& p : ports) DrainQueue(p->queue(0));
  std::vector<NetStats> base;
  for (auto& p : ports) base.push_back(p->stats());

  std::vector<std::vector<std::atomic<uint64_t>>> sent_to(kWorkers);
  for (auto& v : sent_to) v = std::vector<std::atomic<uint64_t>>(kPorts);
  std::atomic<int> senders_left{kWorkers};
  std::atomic<bool> stop_churn{false};

  auto worker = [&](int self) {
    SwitchPort& me = *ports[self];
    std::vector<std::vector<uint8_t>> frames;
    for (int d = 0; d < kPorts; ++d) frames.push_back(MakeFrame(ports[d]->mac(), me.mac(), 64));
    std::vector<uint8_t> rx_bufs(kMaxBatch * 128);
    uint32_t sent = 0;
    int dest = 0;
    while (sent < kFramesPerWorker) {
      FrameBatch b;
      for (uint32_t i = 0; i < kBatch; ++i) {
        dest = (dest + 1) % kPorts;
        if (dest == self) dest = (dest + 1) % kPorts;
        b.Add(frames[dest]);
        sent_to[self][dest].fetch_add(1, std::memory_order_relaxed);
      }
      ASSERT_EQ(me.queue(0).Send(b), kBatch);
      sent += kBatch;
      RxBatch rx;
      for (uint32_t i = 0; i < kMaxBatch; ++i) rx.Add(std::span<uint8_t>(&rx_bufs[i * 128], 128));
      me.queue(0).Poll(rx);
    }
    senders_left.fetch_sub(1);
  };

  // The last port only receives, sleeping on its wait_fd between bursts.
  uint64_t sleeper_received = 0;
  auto sleeper = [&] {
    Queue& q = ports[kWorkers]->queue(0);
    for (;;) {
      const bool finished = senders_left.load() == 0;
      const size_t got = DrainQueue(q, 128).size();
      sleeper_received += got;
      if (got != 0) continue;
      if (finished) break;
      if (q.PrepareWait()) testing::FdReadable(q.wait_fd(), 200);
    }
  };

  // Republishes the MAC table continuously (learning on the uplink) and attaches/detaches a port.
  auto churn = [&] {
    Queue& q = (*uplink)->queue(0);
    uint32_t i = 0;
    // At least a few rounds even if the workers finish first.
    while (!stop_churn.load() || i < 16) {
      MacAddress src = *MacAddress::Parse("02:00:00:01:00:00");
      src.bytes[4] = static_cast<uint8_t>(i >> 8);
      src.bytes[5] = static_cast<uint8_t>(i);
      ++i;
      testing::SendOne(q, MakeFrame(anchor, src));  // hairpin-filtered, but learned
      auto temp = sw->AddPort({.name = "temp", .mac = Mac(200)});
      ASSERT_TRUE(temp);
      std::this_thread::yield();
    }
    EXPECT_GT((*uplink)->port_stats().hairpin, 0u);
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) threads.emplace_back(worker, w);
  std::thread sleeper_thread(sleeper);
  std::thread churn_thread(churn);
  for (auto& t : threads) t.join();
  sleeper_thread.join();
  stop_churn.store(true);
  churn_thread.join();

  // Every frame sent to a port was either received by it or counted as missed.
  for (int d = 0; d < kPorts; ++d) {
    uint64_t expected = 0;
    for (int w = 0; w < kWorkers; ++w) expected += sent_to[w][d].load();
    const uint64_t late = d < kWorkers ? DrainQueue(ports[d]->queue(0), 128).size() : 0;
    const NetStats s = ports[d]->stats();
    const uint64_t received = s.rx_packets - base[d].rx_packets;
    const uint64_t missed = s.rx_missed_errors - base[d].rx_missed_errors;
    EXPECT_EQ(received + missed, expected) << "port " << d << " late " << late;
    if (d == kWorkers) {
      EXPECT_EQ(sleeper_received, received);
    }
  }
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_EQ(ports[w]->stats().tx_packets - base[w].tx_packets, kFramesPerWorker);
    EXPECT_EQ(ports[w]->port_stats().spoofed, 0u);
  }
}

}  // namespace
}  // namespace uvmbus::net
