// File: tests/unit/netvsc/datapath_test.cc
//
// netvsc's data path against the scripted host: frames both ways with content checks, send
// sections and batching, GPA-direct for frames that do not fit (header in one range, spec 10.1
// V16), queue selection through the send table, NAPI delivery with PPIs, receive completions,
// the 10 %/20 % stop/wake of a TX queue, the per-queue wait fd, RSC reassembly and link status.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "devices/netvsc/flow_hash.h"
#include "netvsc_test_util.h"

namespace uvmbus::netvsc {
namespace {

using fakes::FakeNetvspHost;
using testing::EnvOptions;
using testing::NetvscEnv;
using testing::ReceiveFrames;
using testing::SendAll;
using testing::UdpFrame;

uint32_t U32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}

std::vector<FakeNetvspHost::GuestPacket> DataPackets(const FakeNetvspHost& host) {
  std::vector<FakeNetvspHost::GuestPacket> out;
  for (auto& p : host.packets()) {
    if (p.nvsp_type == 107 && U32(p.payload, 4) == wire::kNvspRndisChannelData) out.push_back(p);
  }
  return out;
}

TEST(NetvscDataPathTest, SmallFramesTravelInSendSectionsWithContentAndHash) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 10; ++i) frames.push_back(UdpFrame(1000, 2000, 50 + i, static_cast<uint8_t>(i)));
  for (const auto& f : frames) {
    net::FrameBatch b;
    b.Add(std::span<const uint8_t>(f));
    ASSERT_EQ(dev->Send(0, b), 1u);
  }
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 10; }));
  const auto got = env.host().frames();
  const FlowHasher hasher;
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(got[i].bytes, frames[i]);
    EXPECT_EQ(got[i].queue, 0u);
    EXPECT_FALSE(got[i].gpa_direct);
    // More than one queue: the flow hash rides along in an NBL_HASH_VALUE PPI (spec 6.5).
    ASSERT_TRUE(got[i].ppis.hash_value.has_value());
    EXPECT_EQ(*got[i].ppis.hash_value, hasher.Hash(frames[i]));
  }
  for (const auto& p : DataPackets(env.host())) {
    EXPECT_EQ(p.desc.type, static_cast<uint16_t>(wire::PacketType::kDataInband));
    EXPECT_EQ(p.desc.flags, wire::kPacketFlagCompletionRequested);
    EXPECT_EQ(p.payload.size(), 40u);
    EXPECT_LT(U32(p.payload, 8), 64u);                   // a section index
    EXPECT_EQ(U32(p.payload, 12), p.rndis.size());       // bytes used in it
    EXPECT_EQ(U32(p.rndis, 0), 1u);                      // PACKET_MSG
    EXPECT_EQ(U32(p.rndis, 28), 36u);                    // per_pkt_info_offset (Linux)
    EXPECT_EQ(U32(p.rndis, 32), 16u);                    // one 16-byte PPI (hash)
  }
  // Counted when the host completes them; sections return to the pool.
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->Stats().Get("tx_queue_0_packets") == 10; }));
  size_t bytes = 0;
  for (const auto& f : frames) bytes += f.size();
  EXPECT_EQ(dev->Stats().Get("tx_queue_0_bytes"), bytes);
  EXPECT_TRUE(env.host().WaitUntil([&] { return dev->send_sections_in_use() == 0; }));
  EXPECT_EQ(dev->outstanding_sends(0), 0u);
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

TEST(NetvscDataPathTest, ABurstIsPackedIntoOneSectionPaddedToTheAlignment) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 8; ++i) frames.push_back(UdpFrame(1000, 2000, 31 + i, static_cast<uint8_t>(i)));
  net::FrameBatch b;
  for (const auto& f : frames) b.Add(std::span<const uint8_t>(f));
  ASSERT_EQ(dev->Send(1, b), 8u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 8; }));
  const auto packets = DataPackets(env.host());
  ASSERT_EQ(packets.size(), 1u);  // max_packets_per_message = 8
  // Every message but the last is padded to pkt_align (8).
  const auto& sec = packets[0].rndis;
  size_t off = 0;
  for (int i = 0; i < 8; ++i) {
    const uint32_t len = U32(sec, off + 4);
    if (i < 7) {
      EXPECT_EQ(len % 8, 0u);
    }
    off += len;
  }
  EXPECT_EQ(off, sec.size());
  const auto got = env.host().frames();
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(got[i].bytes, frames[i]);
    EXPECT_EQ(got[i].queue, 1u);
  }
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->Stats().Get("tx_queue_1_packets") == 8; }));
}

TEST(NetvscDataPathTest, JumboFramesGoGpaDirectWithTheHeaderInItsOwnRange) {
  EnvOptions o;
  o.config.mtu = 9000;
  o.host.max_frame_size = 9000;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  const uint32_t mtu = env.host().ndis_config()->mtu;  // packed struct: copy first
  EXPECT_EQ(mtu, 9014u);
  std::vector<uint8_t> jumbo = UdpFrame(7, 9, 9000 - 28, 0x5A);
  ASSERT_EQ(jumbo.size(), 9014u);
  net::FrameBatch b;
  b.Add(std::span<const uint8_t>(jumbo));
  ASSERT_EQ(dev->Send(0, b), 1u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 1; }));
  EXPECT_EQ(env.host().frames()[0].bytes, jumbo);
  EXPECT_TRUE(env.host().frames()[0].gpa_direct);
  const auto packets = DataPackets(env.host());
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].desc.type, static_cast<uint16_t>(wire::PacketType::kDataUsingGpaDirect));
  EXPECT_EQ(U32(packets[0].payload, 8), wire::kNvspNoSendSection);
  EXPECT_EQ(U32(packets[0].payload, 12), 0u);
  EXPECT_EQ(packets[0].range_count, 2u);
  EXPECT_EQ(packets[0].first_range_bytes, 44u + 16u);  // header + hash PPI, one range
  EXPECT_EQ(dev->counters().tx_scattered.Get(), 1u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->Stats().Get("tx_queue_0_packets") == 1; }));
}

TEST(NetvscDataPathTest, OversizedAndRuntFramesAreDroppedAndCounted) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::vector<uint8_t> big(1515, 1);
  std::vector<uint8_t> runt(10, 1);
  std::vector<uint8_t> ok = UdpFrame(1, 2, 20);
  net::FrameBatch b;
  b.Add(std::span<const uint8_t>(big));
  b.Add(std::span<const uint8_t>(runt));
  b.Add(std::span<const uint8_t>(ok));
  EXPECT_EQ(dev->Send(0, b), 3u);
  EXPECT_EQ(dev->counters().tx_too_big.Get(), 2u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 1; }));
  EXPECT_EQ(env.host().frames()[0].bytes, ok);
}

TEST(NetvscDataPathTest, ExhaustedSectionsFallBackToGpaDirectThenBackPressure) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  env.host().SetCompleteTx(false);
  // 64 sections, one frame each (separate calls: no batching).
  const std::vector<uint8_t> f = UdpFrame(1, 2, 100);
  net::FrameBatch one;
  one.Add(std::span<const uint8_t>(f));
  for (int i = 0; i < 64; ++i) ASSERT_EQ(dev->Send(0, one), 1u) << i;
  EXPECT_EQ(dev->send_sections_in_use(), 64u);
  // Then the 8 bounce slots (tx_send_full + tx_scattered), then nothing (tx_no_memory).
  for (int i = 0; i < 8; ++i) ASSERT_EQ(dev->Send(0, one), 1u) << i;
  EXPECT_EQ(dev->counters().tx_send_full.Get(), 8u);
  EXPECT_EQ(dev->counters().tx_scattered.Get(), 8u);
  EXPECT_EQ(dev->Send(0, one), 0u);
  EXPECT_EQ(dev->counters().tx_no_memory.Get(), 1u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().held_tx() == 72; }));
  env.host().SetCompleteTx(true);
  env.host().CompleteHeldTx();
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->send_sections_in_use() == 0; }));
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->outstanding_sends(0) == 0; }));
  EXPECT_EQ(dev->Send(0, one), 1u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 73; }));
}

TEST(NetvscDataPathTest, FailedSendCompletionsAreCountedAndStillReleased) {  // N12
  EnvOptions o;
  o.host.tx_completion_status = 2;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(SendAll(*dev, 0, {UdpFrame(1, 2, 10), UdpFrame(1, 2, 11)}));
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->counters().send_status_fail.Get() >= 1; }));
  EXPECT_TRUE(env.host().WaitUntil([&] { return dev->send_sections_in_use() == 0; }));
}

TEST(NetvscDataPathTest, QueueStopsBelowTenPercentAndWakesWhenTheHostCatchesUp) {
  EnvOptions o;
  o.config.ring_bytes = 2 * 4096;  // 4 KiB of data per ring
  o.config.send_buffer_bytes = 256 * 6144;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  env.host().PauseReading(0, true);
  const std::vector<uint8_t> f = UdpFrame(1, 2, 60);
  std::vector<std::vector<uint8_t>> frames(200, f);
  size_t sent = 0;
  while (sent < frames.size()) {
    net::FrameBatch one;
    one.Add(std::span<const uint8_t>(frames[sent]));
    if (dev->Send(0, one) == 0) break;
    ++sent;
  }
  EXPECT_GT(sent, 10u);
  EXPECT_LT(sent, 200u);
  EXPECT_TRUE(dev->tx_stopped(0));
  EXPECT_GE(dev->counters().stop_queue.Get(), 1u);
  EXPECT_EQ(dev->counters().wake_queue.Get(), 0u);
  // The consumer arms its wait fd; the host catching up completes the sends and wakes it.
  ASSERT_TRUE(dev->PrepareWait(0));
  env.host().PauseReading(0, false);
  // Sleep on the queue's fd until the queue is woken (wake-ups may be spurious; the contract
  // is: arm, re-check tx_stopped, sleep).
  const auto deadline = std::chrono::steady_clock::now() + testing::kWait;
  while (dev->tx_stopped(0) && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{dev->wait_fd(0), POLLIN, 0};
    ::poll(&pfd, 1, 1000);
    if (dev->PrepareWait(0) && !dev->tx_stopped(0)) break;
  }
  EXPECT_FALSE(dev->tx_stopped(0));
  EXPECT_GE(dev->counters().wake_queue.Get(), 1u);
  ASSERT_TRUE(SendAll(
      *dev, 0, std::vector<std::vector<uint8_t>>(frames.begin() + static_cast<long>(sent), frames.end())));
  // A host that completes sends before it commits its read index can make the ring look full
  // with nothing outstanding: that frame is dropped (tx_no_space), exactly as Linux does.
  ASSERT_TRUE(env.host().WaitUntil([&] {
    return env.host().frame_count() + dev->counters().tx_no_space.Get() == 200;
  }));
  for (const auto& tx : env.host().frames()) EXPECT_EQ(tx.bytes, f);
}

TEST(NetvscDataPathTest, AutoQueueSpreadsFlowsThroughTheSendTable) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->send_table()[3] == 3; }));
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 0; port < 64; ++port) {
    frames.push_back(UdpFrame(static_cast<uint16_t>(5000 + port), 53, 20, static_cast<uint8_t>(port)));
    frames.push_back(UdpFrame(static_cast<uint16_t>(5000 + port), 53, 21, static_cast<uint8_t>(port)));
  }
  ASSERT_TRUE(SendAll(*dev, kAutoQueue, frames));
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == frames.size(); }));
  std::set<uint16_t> queues;
  std::map<std::vector<uint8_t>, uint16_t> by_frame;
  for (const auto& tx : env.host().frames()) {
    queues.insert(tx.queue);
    EXPECT_EQ(tx.queue, dev->SelectQueue(tx.bytes));
    EXPECT_EQ(tx.queue, dev->send_table()[*tx.ppis.hash_value & 15] % 4);
  }
  EXPECT_EQ(queues.size(), 4u);
  // Both frames of a flow took the same queue.
  for (uint16_t port = 0; port < 64; ++port) {
    EXPECT_EQ(dev->SelectQueue(frames[2 * port]), dev->SelectQueue(frames[2 * port + 1]));
  }
}

TEST(NetvscDataPathTest, ReceivesFramesWithTheirPpisOnEveryQueueAndCompletesThem) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  wire::RndisPpiSet ppis;
  ppis.hash_value = 0xCAFEF00D;
  ppis.vlan = wire::PackVlanInfo({5, true, 100});
  ppis.checksum = wire::kRxChecksumTcpSucceeded | wire::kRxChecksumIpSucceeded;
  for (uint16_t q = 0; q < 4; ++q) {
    std::vector<std::vector<uint8_t>> frames;
    for (int i = 0; i < 3; ++i) frames.push_back(UdpFrame(q, 80, 100 + i, static_cast<uint8_t>(q * 3 + i)));
    auto tid = env.host().SendFrames(q, frames, ppis);
    ASSERT_TRUE(tid.has_value());
    std::vector<RxFrameInfo> infos;
    const auto got = ReceiveFrames(*dev, q, 3, &infos);
    ASSERT_EQ(got.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(got[i], frames[i]);
      EXPECT_EQ(infos[i].hash, 0xCAFEF00Du);
      EXPECT_EQ(infos[i].vlan_tci, (5u << 13) | (1u << 12) | 100u);
      EXPECT_TRUE(infos[i].flags & RxFrameInfo::kHasVlan);
      EXPECT_TRUE(infos[i].flags & RxFrameInfo::kChecksumOk);
    }
    ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().receive_completions().count(*tid) == 1; }));
    EXPECT_EQ(env.host().receive_completions().at(*tid), 1u);
    EXPECT_EQ(dev->Stats().Get(fmt::format("rx_queue_{}_packets", q)), 3u);
  }
  // Nothing arrived on a queue it was not sent to.
  net::RxBatch empty;
  std::vector<uint8_t> buf(2048);
  empty.Add(std::span<uint8_t>(buf));
  for (uint32_t q = 0; q < 4; ++q) EXPECT_EQ(dev->Receive(q, empty), 0u);
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

TEST(NetvscDataPathTest, AFullReceiveRingDropsAndCompletesWithFail) {
  EnvOptions o;
  o.config.rx_ring_depth = 4;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 8; ++i) frames.push_back(UdpFrame(1, 2, 30, static_cast<uint8_t>(i)));
  auto tid = env.host().SendFrames(0, frames);
  ASSERT_TRUE(tid.has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().receive_completions().count(*tid) == 1; }));
  EXPECT_EQ(env.host().receive_completions().at(*tid), 2u);  // NVSP FAIL, as Linux
  EXPECT_EQ(dev->counters().rx_no_memory.Get(), 4u);
  const auto got = ReceiveFrames(*dev, 0, 4);
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], frames[i]);
}

TEST(NetvscDataPathTest, ASleepingReceiverIsWokenByItsQueueFd) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::atomic<bool> armed{false};
  std::vector<uint8_t> got;
  std::thread receiver([&] {
    std::vector<uint8_t> buf(2048);
    for (;;) {
      net::RxBatch b;
      b.Add(std::span<uint8_t>(buf));
      if (dev->Receive(2, b) == 1) {
        got.assign(b[0].data, b[0].data + b[0].length);
        return;
      }
      if (dev->PrepareWait(2)) {
        armed = true;
        pollfd pfd{dev->wait_fd(2), POLLIN, 0};
        ::poll(&pfd, 1, 10000);
      }
    }
  });
  while (!armed) std::this_thread::yield();
  const auto frame = UdpFrame(9, 9, 99, 9);
  ASSERT_TRUE(env.host().SendFrames(2, {frame}).has_value());
  receiver.join();
  EXPECT_EQ(got, frame);
}

TEST(NetvscDataPathTest, RscFragmentsAreReassembledIntoOneFrame) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  const std::vector<uint8_t> whole = UdpFrame(4, 4, 1200, 0x33);
  const std::vector<std::vector<uint8_t>> parts = {
      {whole.begin(), whole.begin() + 500},
      {whole.begin() + 500, whole.begin() + 1000},
      {whole.begin() + 1000, whole.end()}};
  std::vector<std::vector<uint8_t>> messages;
  const uint8_t flags[3] = {wire::kPacketIdFlagSubAlloc | wire::kPacketIdFlagFirstFrag,
                            wire::kPacketIdFlagSubAlloc,
                            wire::kPacketIdFlagSubAlloc | wire::kPacketIdFlagLastFrag};
  for (int i = 0; i < 3; ++i) {
    wire::RndisPpiSet p;
    p.packet_id = wire::PackPacketIdInfo({wire::kPacketIdVersion1, flags[i], 7});
    if (i == 0) p.hash_value = 0x77;
    std::vector<uint8_t> m(wire::RndisPacketHeaderSize(p) + parts[i].size());
    m.resize(*wire::EncodeRndisPacket(m, p, parts[i]));
    messages.push_back(m);
  }
  auto tid = env.host().SendRndisMessages(0, messages, wire::kNvspRndisChannelData);
  ASSERT_TRUE(tid.has_value());
  std::vector<RxFrameInfo> infos;
  const auto got = ReceiveFrames(*dev, 0, 1, &infos);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], whole);
  EXPECT_EQ(infos[0].hash, 0x77u);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().receive_completions().count(*tid) == 1; }));
  EXPECT_EQ(env.host().receive_completions().at(*tid), 1u);
}

TEST(NetvscDataPathTest, LinkFollowsHostIndicationsAndCallsTheCallback) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  std::mutex mu;
  std::vector<bool> seen;
  dev->SetLinkCallback([&](bool up) {
    std::lock_guard lock(mu);
    seen.push_back(up);
  });
  auto count = [&] {
    std::lock_guard lock(mu);
    return seen.size();
  };
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kMediaDisconnect).has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return count() == 1; }));
  EXPECT_FALSE(dev->link_up());
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kMediaConnect).has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return count() == 2; }));
  EXPECT_TRUE(dev->link_up());
  // NETWORK_CHANGE: a brief down/up so DHCP renews.
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kNetworkChange).has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return count() == 4; }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen, (std::vector<bool>{false, true, false, true}));
  }
  // LINK_SPEED_CHANGE carries the new speed (100 bit/s units).
  const uint32_t speed = 250'000'000;  // 25 Gbit/s
  std::array<uint8_t, 4> buf;
  std::memcpy(buf.data(), &speed, 4);
  ASSERT_TRUE(env.host().IndicateStatus(wire::RndisStatus::kLinkSpeedChange, buf).has_value());
  EXPECT_TRUE(env.host().WaitUntil([&] { return dev->link_speed_mbps() == 25000; }));
  // Frames still flow.
  ASSERT_TRUE(env.host().SendFrames(0, {UdpFrame(1, 1, 10)}).has_value());
  EXPECT_EQ(ReceiveFrames(*dev, 0, 1).size(), 1u);
  dev->SetLinkCallback({});  // `seen` goes away before the NIC (removal reports link down)
}

TEST(NetvscDataPathTest, CloseSetsFilterZeroDropsTheCarrierAndOpenRestoresIt) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Close().has_value());
  EXPECT_EQ(env.host().packet_filter(), 0u);
  EXPECT_FALSE(dev->link_up());
  const auto f = UdpFrame(1, 2, 3);
  net::FrameBatch b;
  b.Add(std::span<const uint8_t>(f));
  EXPECT_EQ(dev->Send(0, b), 0u);
  ASSERT_TRUE(dev->SetPacketFilter(wire::kNdisPacketFilterPromiscuous).has_value());
  EXPECT_EQ(env.host().packet_filter(), wire::kNdisPacketFilterPromiscuous);
  ASSERT_TRUE(dev->Open().has_value());
  EXPECT_EQ(env.host().packet_filter(), wire::kNdisPacketFilterLinuxDefault);
  EXPECT_TRUE(dev->link_up());
  EXPECT_EQ(dev->Send(0, b), 1u);
}

TEST(NetvscDataPathTest, SingleQueueFramesCarryNoHashPpi) {
  EnvOptions o;
  o.config.num_queues = 1;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(SendAll(*dev, kAutoQueue, {UdpFrame(1, 2, 30)}));
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 1; }));
  EXPECT_FALSE(env.host().frames()[0].ppis.hash_value.has_value());
  EXPECT_EQ(env.host().frames()[0].queue, 0u);
}

TEST(NetvscDataPathTest, ManyFramesBothWaysOnAllQueuesConcurrently) {
  EnvOptions o;
  o.config.rx_ring_depth = 1024;  // every frame of a queue fits even if its reader stalls
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  constexpr int kPerQueue = 300;
  std::vector<std::thread> threads;
  std::atomic<int> received{0};
  for (uint32_t q = 0; q < 4; ++q) {
    threads.emplace_back([&, q] {
      std::vector<std::vector<uint8_t>> frames;
      for (int i = 0; i < kPerQueue; ++i) {
        frames.push_back(UdpFrame(static_cast<uint16_t>(q), static_cast<uint16_t>(i), 64 + i % 200,
                                  static_cast<uint8_t>(i)));
      }
      EXPECT_TRUE(SendAll(*dev, q, frames));
    });
    threads.emplace_back([&, q] {
      const auto got = ReceiveFrames(*dev, q, kPerQueue, nullptr, std::chrono::milliseconds(20000));
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i], UdpFrame(static_cast<uint16_t>(q + 10), static_cast<uint16_t>(i),
                                   64 + i % 200, static_cast<uint8_t>(i)));
      }
      received += static_cast<int>(got.size());
    });
  }
  for (uint16_t q = 0; q < 4; ++q) {
    for (int i = 0; i < kPerQueue; i += 10) {
      std::vector<std::vector<uint8_t>> frames;
      for (int j = i; j < i + 10; ++j) {
        frames.push_back(UdpFrame(static_cast<uint16_t>(q + 10), static_cast<uint16_t>(j),
                                  64 + static_cast<size_t>(j) % 200, static_cast<uint8_t>(j)));
      }
      // The host pool may run dry while the guest completes; retry.
      for (;;) {
        auto r = env.host().SendFrames(q, frames);
        if (r) break;
        ASSERT_EQ(r.error().code, ErrorCode::kResourceExhausted);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(received.load(), 4 * kPerQueue);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == 4u * kPerQueue; }));
  std::map<uint16_t, int> per_queue;
  for (const auto& tx : env.host().frames()) ++per_queue[tx.queue];
  for (uint16_t q = 0; q < 4; ++q) EXPECT_EQ(per_queue[q], kPerQueue);
  EXPECT_EQ(dev->counters().rx_no_memory.Get(), 0u);
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

}  // namespace
}  // namespace uvmbus::netvsc
