// File: tests/unit/netvsc/netvsc_units_test.cc
//
// The small pieces of netvsc on their own: the send-section bitmap, the requestor table (spec 4.7,
// R16/R17), the per-queue receive ring and its wake protocol, the transmit flow hash (spec 8) and
// the ethtool-style statistics snapshot.
#include <gtest/gtest.h>
#include <poll.h>

#include <set>
#include <thread>
#include <vector>

#include "devices/netvsc/flow_hash.h"
#include "devices/netvsc/netvsc_stats.h"
#include "devices/netvsc/requestor.h"
#include "devices/netvsc/rx_ring.h"
#include "devices/netvsc/section_bitmap.h"
#include "netvsc_test_util.h"

namespace uvmbus::netvsc {
namespace {

// ---- SectionBitmap ----

TEST(SectionBitmapTest, HandsOutEverySectionOnceThenReportsNone) {
  SectionBitmap bm(130);
  std::set<uint32_t> got;
  for (int i = 0; i < 130; ++i) {
    const uint32_t s = bm.Allocate(77);
    ASSERT_NE(s, SectionBitmap::kNone);
    EXPECT_LT(s, 130u);
    EXPECT_TRUE(got.insert(s).second);
  }
  EXPECT_EQ(bm.Allocate(0), SectionBitmap::kNone);
  EXPECT_EQ(bm.in_use(), 130u);
  EXPECT_TRUE(bm.Free(5));
  EXPECT_EQ(bm.Allocate(100), 5u);
}

TEST(SectionBitmapTest, StartsAtTheHintAndWraps) {
  SectionBitmap bm(256);
  EXPECT_EQ(bm.Allocate(128), 128u);
  EXPECT_EQ(bm.Allocate(128), 129u);
  EXPECT_EQ(bm.Allocate(256 + 3), 0u);  // hint taken modulo the count, word-aligned start
}

TEST(SectionBitmapTest, RefusesDoubleFreeAndOutOfRange) {
  SectionBitmap bm(10);
  const uint32_t s = bm.Allocate(0);
  EXPECT_TRUE(bm.Free(s));
  EXPECT_FALSE(bm.Free(s));
  EXPECT_FALSE(bm.Free(10));
  EXPECT_FALSE(bm.Free(SectionBitmap::kNone));
  SectionBitmap empty(0);
  EXPECT_EQ(empty.Allocate(0), SectionBitmap::kNone);
}

TEST(SectionBitmapTest, ConcurrentAllocatorsNeverShareASection) {
  SectionBitmap bm(512);
  std::vector<std::vector<uint32_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const uint32_t s = bm.Allocate(static_cast<uint32_t>(t * 128));
        if (s == SectionBitmap::kNone) continue;
        got[t].push_back(s);
        if (got[t].size() > 50) {
          EXPECT_TRUE(bm.Free(got[t].front()));
          got[t].erase(got[t].begin());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint32_t> all;
  size_t total = 0;
  for (auto& v : got) {
    total += v.size();
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), total);
  EXPECT_EQ(bm.in_use(), total);
}

// ---- Requestor (spec 4.7, 9.4 R16/R17) ----

TEST(RequestorTest, LinuxSizeMatchesTheSpec) {
  EXPECT_EQ(Requestor::LinuxSize(528384), 42459u);
}

TEST(RequestorTest, TransIdsStartAtOneAndRoundTripTheCookie) {
  Requestor r(4);
  RequestCookie c;
  c.kind = RequestKind::kData;
  c.section = 9;
  c.bytes = 60;
  c.packets = 1;
  const uint64_t id = r.Allocate(c);
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(r.outstanding(), 1u);
  auto got = r.Complete(id, Requestor::Bit(RequestKind::kData));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->section, 9u);
  EXPECT_EQ(got->bytes, 60u);
  EXPECT_EQ(r.outstanding(), 0u);
}

TEST(RequestorTest, RejectsZeroOutOfRangeAndFreeIds) {
  Requestor r(4);
  EXPECT_EQ(r.Complete(0, ~0u).error(), CompleteError::kZeroId);
  EXPECT_EQ(r.Complete(5, ~0u).error(), CompleteError::kOutOfRange);
  EXPECT_EQ(r.Complete(0xFFFFFFFFFFFFFFFDull, ~0u).error(), CompleteError::kOutOfRange);
  EXPECT_EQ(r.Complete(2, ~0u).error(), CompleteError::kNotAllocated);
  RequestCookie c;
  c.kind = RequestKind::kNvspControl;
  const uint64_t id = r.Allocate(c);
  ASSERT_TRUE(r.Complete(id, Requestor::Bit(RequestKind::kNvspControl)).has_value());
  EXPECT_EQ(r.Complete(id, ~0u).error(), CompleteError::kNotAllocated);  // duplicate
}

TEST(RequestorTest, WrongKindLeavesTheSlotForTheGenuineCompletion) {
  Requestor r(4);
  RequestCookie c;
  c.kind = RequestKind::kNvspControl;
  const uint64_t id = r.Allocate(c);
  EXPECT_EQ(r.Complete(id, Requestor::Bit(RequestKind::kData)).error(), CompleteError::kWrongKind);
  EXPECT_EQ(r.outstanding(), 1u);
  EXPECT_TRUE(r.Complete(id, Requestor::Bit(RequestKind::kNvspControl)).has_value());
}

TEST(RequestorTest, FullTableReturnsZero) {
  Requestor r(2);
  RequestCookie c;
  c.kind = RequestKind::kData;
  EXPECT_NE(r.Allocate(c), 0u);
  EXPECT_NE(r.Allocate(c), 0u);
  EXPECT_EQ(r.Allocate(c), 0u);
  EXPECT_TRUE(r.Cancel(1).has_value());
  EXPECT_EQ(r.Allocate(c), 1u);
}

// ---- RxRing ----

TEST(RxRingTest, FramesComeOutInOrderWithTheirInfo) {
  auto ring = RxRing::Create(4, 1518);
  ASSERT_TRUE(ring.has_value());
  for (uint8_t i = 0; i < 4; ++i) {
    std::vector<uint8_t> f(60 + i, i);
    RxFrameInfo info;
    info.hash = i;
    info.flags = RxFrameInfo::kHasHash;
    EXPECT_TRUE((*ring)->Push(f, info));
  }
  EXPECT_FALSE((*ring)->Push(std::vector<uint8_t>(60), {}));  // full
  std::vector<std::vector<uint8_t>> bufs(3, std::vector<uint8_t>(2048));
  net::RxBatch batch;
  for (auto& b : bufs) batch.Add(std::span<uint8_t>(b));
  std::array<RxFrameInfo, 3> info{};
  ASSERT_EQ((*ring)->Pop(batch, info.data()), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(batch[i].length, 60u + i);
    EXPECT_EQ(batch[i].data[0], i);
    EXPECT_EQ(info[i].hash, i);
  }
  EXPECT_TRUE((*ring)->Ready());
  EXPECT_FALSE((*ring)->Push(std::vector<uint8_t>(1519), {}));  // larger than a slot
}

TEST(RxRingTest, RejectsBadGeometry) {
  EXPECT_EQ(RxRing::Create(3, 1518).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(RxRing::Create(4, 10).error().code, ErrorCode::kInvalidArgument);
}

TEST(RxRingTest, PrepareWaitRefusesToSleepWithFramesPendingAndWakeFiresTheFd) {
  auto ring = RxRing::Create(8, 1518);
  ASSERT_TRUE(ring.has_value());
  RxRing& r = **ring;
  EXPECT_TRUE(r.PrepareWait());
  r.Push(std::vector<uint8_t>(64, 1), {});
  r.WakeIfArmed();
  pollfd pfd{r.wait_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 1000), 1);
  EXPECT_FALSE(r.PrepareWait());  // a frame is waiting
  std::vector<uint8_t> buf(2048);
  net::RxBatch batch;
  batch.Add(std::span<uint8_t>(buf));
  EXPECT_EQ(r.Pop(batch, nullptr), 1u);
  EXPECT_TRUE(r.PrepareWait());
  r.Wake();
  EXPECT_EQ(::poll(&pfd, 1, 1000), 1);
}

TEST(RxRingTest, ProducerAndConsumerThreadsMoveEveryFrame) {
  auto ring = RxRing::Create(64, 128);
  ASSERT_TRUE(ring.has_value());
  RxRing& r = **ring;
  constexpr uint32_t kFrames = 20000;
  std::thread producer([&] {
    for (uint32_t i = 0; i < kFrames;) {
      std::vector<uint8_t> f(64);
      std::memcpy(f.data(), &i, 4);
      if (r.Push(f, {})) {
        ++i;
      } else {
        r.WakeIfArmed();
        std::this_thread::yield();
      }
      if (i % 16 == 0) r.WakeIfArmed();
    }
    r.WakeIfArmed();
  });
  uint32_t expect = 0;
  std::vector<uint8_t> buf(128);
  while (expect < kFrames) {
    net::RxBatch batch;
    batch.Add(std::span<uint8_t>(buf));
    if (r.Pop(batch, nullptr) == 1) {
      uint32_t v;
      std::memcpy(&v, buf.data(), 4);
      ASSERT_EQ(v, expect);
      ++expect;
    } else if (r.PrepareWait()) {
      pollfd pfd{r.wait_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 100);
    }
  }
  producer.join();
}

// ---- Flow hash (spec 8.3, 8.4) ----

TEST(FlowHashTest, TcpIpv4UsesTheToeplitzFourTupleOfTheSpecVectors) {
  // First row of spec 8.4: 66.9.149.187:2794 -> 161.142.100.80:1766 = 0x51ccc178.
  std::vector<uint8_t> f(14 + 20 + 20, 0);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[9] = 6;
  const uint8_t src[4] = {66, 9, 149, 187};
  const uint8_t dst[4] = {161, 142, 100, 80};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  ip[20] = 2794 >> 8;
  ip[21] = 2794 & 0xFF;
  ip[22] = 1766 >> 8;
  ip[23] = 1766 & 0xFF;
  FlowHasher h;
  EXPECT_EQ(h.Hash(f), 0x51ccc178u);
  // A fragment hashes on the addresses only (0x323e8fc2).
  ip[6] = 0x20;  // more fragments
  EXPECT_EQ(h.Hash(f), 0x323e8fc2u);
}

TEST(FlowHashTest, SkipsOneVlanTagAndIgnoresNonIp) {
  std::vector<uint8_t> plain = testing::UdpFrame(1000, 2000, 10);
  std::vector<uint8_t> tagged(plain.size() + 4);
  std::memcpy(tagged.data(), plain.data(), 12);
  tagged[12] = 0x81;
  tagged[13] = 0x00;
  tagged[14] = 0x00;
  tagged[15] = 0x05;
  std::memcpy(tagged.data() + 16, plain.data() + 12, plain.size() - 12);
  FlowHasher h;
  EXPECT_NE(h.Hash(plain), 0u);
  EXPECT_EQ(h.Hash(plain), h.Hash(tagged));
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(h.Hash(arp), 0u);
  EXPECT_EQ(h.Hash(std::vector<uint8_t>(10)), 0u);
}

// ---- Stats ----

TEST(NetvscStatsTest, SnapshotUsesEthtoolNamesAndLayout) {
  NetvscStats g;
  g.tx_busy.Add(3);
  g.xfer_bad_range.Add(1);
  QueueStats q0;
  QueueStats q1;
  q1.rx_packets.Add(7);
  const StatsSnapshot s = MakeSnapshot(g, {&q0, &q1});
  ASSERT_GE(s.counters.size(), 18u);
  EXPECT_EQ(s.counters[0].first, "tx_scattered");
  EXPECT_EQ(s.counters[9].first, "wake_queue");
  EXPECT_EQ(s.counters[10].first, "tx_queue_0_packets");
  EXPECT_EQ(s.counters[14].first, "rx_queue_0_packets");
  EXPECT_EQ(s.Get("tx_busy"), 3u);
  EXPECT_EQ(s.Get("rx_queue_1_packets"), 7u);
  EXPECT_EQ(s.Get("xfer_bad_range"), 1u);
  const std::string text = s.FormatEthtool();
  EXPECT_EQ(text.rfind("NIC statistics:\n     tx_scattered: 0\n", 0), 0u);
  EXPECT_NE(text.find("     tx_busy: 3\n"), std::string::npos);
}

}  // namespace
}  // namespace uvmbus::netvsc
