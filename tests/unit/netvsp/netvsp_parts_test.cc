// File: tests/unit/netvsp/netvsp_parts_test.cc
//
// The building blocks of netvsp on their own: the receive-buffer layout, the lock-free section
// pool, the in-flight table, the steering mailbox, frame classification + Toeplitz against the
// spec 8.4 vectors, the packet filter, the OID answers, the counters and the queue worker.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "devices/netvsp/mailbox.h"
#include "devices/netvsp/netvsp_device.h"
#include "devices/netvsp/netvsp_stats.h"
#include "devices/netvsp/queue_worker.h"
#include "devices/netvsp/rndis_oids.h"
#include "devices/netvsp/rss.h"
#include "devices/netvsp/rx_buffer.h"
#include "fakes/fake_netvsc_guest.h"
#include "net/pipe.h"

namespace uvmbus::netvsp {
namespace {

// ---------------------------------------------------------------------------------------------
// Receive-buffer layout
// ---------------------------------------------------------------------------------------------

TEST(ReceiveBufferLayoutTest, FollowsOpenVmmSizingRoundedToEightBytes) {
  auto l = ComputeReceiveBufferLayout(16u << 20, 1514);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->sub_alloc_size, 1808u);  // 256 + 1514 + 36 = 1806, rounded up to 8
  EXPECT_EQ(l->num_sub_allocs, (16u << 20) / 1808u);
  EXPECT_LE(uint64_t{l->end_offset()}, 16u << 20);
  EXPECT_GE(l->sub_alloc_size, wire::kNetvscMinSectionSize);
}

TEST(ReceiveBufferLayoutTest, RejectsBuffersTooSmallOrTooLarge) {
  auto small = ComputeReceiveBufferLayout(1807, 1514);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, ErrorCode::kMalformed);
  auto large = ComputeReceiveBufferLayout(kMaxReceiveBufferBytes + 1, 1514);
  ASSERT_FALSE(large);
  EXPECT_EQ(large.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ComputeReceiveBufferLayout(1808, 1514)->num_sub_allocs, 1u);
}

// ---------------------------------------------------------------------------------------------
// SectionPool
// ---------------------------------------------------------------------------------------------

TEST(SectionPoolTest, PopsEverySectionOnceThenReportsEmpty) {
  SectionPool pool(5);
  std::set<uint32_t> seen;
  for (int i = 0; i < 5; ++i) {
    const uint32_t s = pool.Pop();
    ASSERT_NE(s, SectionPool::kNone);
    EXPECT_LT(s, 5u);
    EXPECT_TRUE(seen.insert(s).second);
  }
  EXPECT_EQ(pool.Pop(), SectionPool::kNone);
  EXPECT_EQ(pool.free_count(), 0u);
}

TEST(SectionPoolTest, AChainIsReturnedInOneStep) {
  SectionPool pool(8);
  std::array<uint32_t, 8> all{};
  for (auto& s : all) s = pool.Pop();
  pool.SetNext(all[2], all[5]);
  pool.SetNext(all[5], all[7]);
  pool.PushChain(all[2], all[7]);
  EXPECT_EQ(pool.free_count(), 3u);
  pool.PushMany(all.data(), 2);
  EXPECT_EQ(pool.free_count(), 5u);
  std::set<uint32_t> back;
  for (uint32_t s = pool.Pop(); s != SectionPool::kNone; s = pool.Pop()) back.insert(s);
  EXPECT_EQ(back, (std::set<uint32_t>{all[0], all[1], all[2], all[5], all[7]}));
}

TEST(SectionPoolTest, AnEmptyPoolIsUsable) {
  SectionPool pool(0);
  EXPECT_EQ(pool.Pop(), SectionPool::kNone);
  pool.Push(0);  // out of range: ignored, never written
  EXPECT_EQ(pool.free_count(), 0u);
}

TEST(SectionPoolTest, ConcurrentPopAndPushNeverLoseOrDuplicateSections) {
  constexpr uint32_t kSections = 64;
  SectionPool pool(kSections);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      std::vector<uint32_t> held;
      for (int round = 0; round < 2000; ++round) {
        for (int i = 0; i < 5; ++i) {
          const uint32_t s = pool.Pop();
          if (s != SectionPool::kNone) held.push_back(s);
        }
        if (!held.empty()) {
          pool.PushMany(held.data(), static_cast<uint32_t>(held.size()));
          held.clear();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint32_t> all;
  for (uint32_t s = pool.Pop(); s != SectionPool::kNone; s = pool.Pop()) {
    EXPECT_TRUE(all.insert(s).second) << s;
  }
  EXPECT_EQ(all.size(), kSections);
}

// ---------------------------------------------------------------------------------------------
// InflightTable
// ---------------------------------------------------------------------------------------------

TEST(InflightTableTest, IdsAreSmallSlotIndicesAndCompleteExactlyOnce) {
  InflightTable table(2);
  const uint64_t a = table.Begin({1, 1, 1});
  const uint64_t b = table.Begin({2, 3, 2});
  // Slot indices (DPDK indexes an array of slot-count entries with them).
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(table.Begin({4, 4, 1}), InflightTable::kFull);
  auto e = table.Complete(b);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->first, 2u);
  EXPECT_EQ(e->count, 2u);
  EXPECT_FALSE(table.Complete(b));  // duplicate
  EXPECT_FALSE(table.Complete(2));  // beyond the table
  EXPECT_FALSE(table.Complete(0xFFFFFFFFFFFFFFFFull));
  // The freed slot is reused first.
  const uint64_t c = table.Begin({5, 5, 1});
  EXPECT_EQ(c, b);
  EXPECT_TRUE(table.Complete(c));
  std::vector<uint32_t> drained;
  table.DrainAll([&](const InflightTable::Entry& en) { drained.push_back(en.first); });
  EXPECT_EQ(drained, std::vector<uint32_t>{1});
  EXPECT_EQ(table.in_flight(), 0u);
  EXPECT_FALSE(table.Complete(a));
}

TEST(InflightTableTest, IdsStayBelowThePeakNumberInFlight) {
  InflightTable table(1024);
  // At most 3 in flight at any time, completed out of order: ids never reach 3.
  std::vector<uint64_t> live;
  for (int round = 0; round < 100; ++round) {
    while (live.size() < 3) {
      const uint64_t id = table.Begin({0, 0, 1});
      ASSERT_LT(id, 3u);
      live.push_back(id);
    }
    const size_t victim = static_cast<size_t>(round) % live.size();
    ASSERT_TRUE(table.Complete(live[victim]));
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
  }
}

// ---------------------------------------------------------------------------------------------
// Mailbox
// ---------------------------------------------------------------------------------------------

TEST(MailboxTest, DeliversInOrderAndRefusesWhenFull) {
  auto mb = Mailbox::Create(4);
  ASSERT_TRUE(mb);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE((*mb)->Push({i, 100 + i, i}));
  EXPECT_FALSE((*mb)->Push({9, 9, 9}));
  SteeredFrame f;
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE((*mb)->Pop(&f));
    EXPECT_EQ(f.section, i);
    EXPECT_EQ(f.msg_len, 100 + i);
  }
  EXPECT_FALSE((*mb)->Pop(&f));
  EXPECT_FALSE(Mailbox::Create(3));
}

TEST(MailboxTest, ArmedConsumerIsWokenOnceAndUnarmedIsNot) {
  auto mb = Mailbox::Create(8);
  ASSERT_TRUE(mb);
  Mailbox& m = **mb;
  EXPECT_TRUE(m.PrepareWait());  // empty: may sleep
  ASSERT_TRUE(m.Push({1, 1, 1}));
  m.WakeIfArmed();
  uint64_t v = 0;
  EXPECT_EQ(::read(m.fd(), &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
  EXPECT_FALSE(m.PrepareWait());  // an item is visible: do not sleep (but it armed)
  m.WakeIfArmed();                // armed: writes, disarms
  m.WakeIfArmed();                // disarmed: nothing
  m.Kick();                       // always writes
  EXPECT_EQ(::read(m.fd(), &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
  EXPECT_EQ(v, 2u);
}

TEST(MailboxTest, ConcurrentProducersDeliverEverything) {
  auto mb = Mailbox::Create(1024);
  ASSERT_TRUE(mb);
  Mailbox& m = **mb;
  constexpr uint32_t kPerThread = 5000;
  std::vector<std::thread> producers;
  for (uint32_t t = 0; t < 2; ++t) {
    producers.emplace_back([&m, t] {
      for (uint32_t i = 0; i < kPerThread; ++i) {
        while (!m.Push({t, i, 0})) std::this_thread::yield();
        m.WakeIfArmed();
      }
    });
  }
  std::array<uint32_t, 2> next{};
  uint32_t got = 0;
  while (got < 2 * kPerThread) {
    SteeredFrame f;
    if (m.Pop(&f)) {
      ASSERT_LT(f.section, 2u);
      EXPECT_EQ(f.msg_len, next[f.section]++);  // per-producer order is kept
      ++got;
    } else {
      std::this_thread::yield();
    }
  }
  for (auto& p : producers) p.join();
}

// ---------------------------------------------------------------------------------------------
// RSS: classification + Toeplitz against spec 8.4
// ---------------------------------------------------------------------------------------------

constexpr std::array<uint8_t, 6> kA = {0x00, 0x15, 0x5d, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> kB = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

RssConfig LinuxRss(uint32_t hashinfo = wire::kNdisHashInfoLinux) {
  std::vector<uint32_t> table(128);
  wire::FillDefaultIndirectionTable(table, 4);
  return RssConfig{hashinfo, wire::ToeplitzHasher(wire::kStandardToeplitzKey), table};
}

std::vector<uint8_t> Tcp6Frame(const std::array<uint8_t, 16>& src, const std::array<uint8_t, 16>& dst,
                               uint16_t sport, uint16_t dport, uint8_t next = 6) {
  std::vector<uint8_t> f(14 + 40 + 20, 0);
  std::memcpy(f.data(), kA.data(), 6);
  std::memcpy(f.data() + 6, kB.data(), 6);
  f[12] = 0x86;
  f[13] = 0xDD;
  f[14] = 0x60;
  f[14 + 6] = next;
  std::memcpy(f.data() + 14 + 8, src.data(), 16);
  std::memcpy(f.data() + 14 + 24, dst.data(), 16);
  f[54] = static_cast<uint8_t>(sport >> 8);
  f[55] = static_cast<uint8_t>(sport);
  f[56] = static_cast<uint8_t>(dport >> 8);
  f[57] = static_cast<uint8_t>(dport);
  return f;
}

TEST(RssTest, TcpIpv4FramesHashToTheSpecVectors) {
  // Spec 8.4 rows: destination, source, IPv4-only hash, TCP/IPv4 hash.
  struct Row {
    std::array<uint8_t, 4> dst;
    uint16_t dport;
    std::array<uint8_t, 4> src;
    uint16_t sport;
    uint32_t ip_only;
    uint32_t with_ports;
  };
  const Row rows[] = {
      {{161, 142, 100, 80}, 1766, {66, 9, 149, 187}, 2794, 0x323e8fc2, 0x51ccc178},
      {{65, 69, 140, 83}, 4739, {199, 92, 111, 2}, 14230, 0xd718262a, 0xc626b0ea},
      {{12, 22, 207, 184}, 38024, {24, 19, 198, 95}, 12898, 0xd2d0a5de, 0x5c2b394a},
      {{209, 142, 163, 6}, 2217, {38, 27, 205, 30}, 48228, 0x82989176, 0xafc7327f},
      {{202, 188, 127, 2}, 1303, {153, 39, 163, 191}, 44251, 0x5d1809c5, 0x10e828a2},
  };
  const RssConfig linux_rss = LinuxRss();
  const RssConfig ip_only = LinuxRss(wire::kNdisHashFunctionToeplitz | wire::kNdisHashIpv4);
  for (const Row& r : rows) {
    auto f = testing::MakeTcp4Frame(kA, kB, r.src, r.dst, r.sport, r.dport);
    auto res = linux_rss.Classify(f);
    ASSERT_TRUE(res.hash);
    EXPECT_EQ(*res.hash, r.with_ports);
    EXPECT_EQ(res.queue, (r.with_ports & 127) % 4);
    auto two = ip_only.Classify(f);
    ASSERT_TRUE(two.hash);
    EXPECT_EQ(*two.hash, r.ip_only);
    // UDP is hashed on addresses only with Linux's hash types (spec 8.3).
    f[14 + 9] = 17;
    EXPECT_EQ(linux_rss.Classify(f).hash, r.ip_only);
    // So is a fragment.
    f[14 + 9] = 6;
    f[14 + 6] = 0x20;  // more fragments
    EXPECT_EQ(linux_rss.Classify(f).hash, r.ip_only);
  }
}

TEST(RssTest, TcpIpv6FramesHashToTheSpecVectors) {
  const std::array<uint8_t, 16> dst = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03,
                                       0, 0, 0, 0, 0, 0, 0, 1};
  const std::array<uint8_t, 16> src = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff,
                                       0, 0, 0, 0, 0, 0, 0, 7};
  auto f = Tcp6Frame(src, dst, 2794, 1766);
  EXPECT_EQ(LinuxRss().Classify(f).hash, 0x40207d3du);
  f[14 + 6] = 58;  // ICMPv6: 2-tuple
  EXPECT_EQ(LinuxRss().Classify(f).hash, 0x2cc18cd5u);
}

TEST(RssTest, VlanTaggedFramesAreClassifiedBehindTheTag) {
  auto f = testing::MakeTcp4Frame(kA, kB, {66, 9, 149, 187}, {161, 142, 100, 80}, 2794, 1766);
  std::vector<uint8_t> tagged(f.begin(), f.begin() + 12);
  tagged.insert(tagged.end(), {0x81, 0x00, 0x00, 0x05});
  tagged.insert(tagged.end(), f.begin() + 12, f.end());
  EXPECT_EQ(LinuxRss().Classify(tagged).hash, 0x51ccc178u);
}

TEST(RssTest, NonIpAndTruncatedFramesGetNoHashAndTheFirstEntry) {
  auto cfg = LinuxRss();
  cfg.table[0] = 3;
  auto arp = testing::MakeFrame(kA, kB, 60, 1);
  arp[12] = 0x08;
  arp[13] = 0x06;
  auto r = cfg.Classify(arp);
  EXPECT_FALSE(r.hash);
  EXPECT_EQ(r.queue, 3u);
  auto tcp = testing::MakeTcp4Frame(kA, kB, {1, 2, 3, 4}, {5, 6, 7, 8}, 1, 2);
  EXPECT_FALSE(cfg.Classify(std::span<const uint8_t>(tcp).first(20)).hash);  // header cut
  tcp[14] = 0x44;  // IHL 4: invalid
  EXPECT_FALSE(cfg.Classify(tcp).hash);
  // Ports cut off: addresses only.
  auto tcp2 = testing::MakeTcp4Frame(kA, kB, {66, 9, 149, 187}, {161, 142, 100, 80}, 2794, 1766);
  EXPECT_EQ(cfg.Classify(std::span<const uint8_t>(tcp2).first(36)).hash, 0x323e8fc2u);
}

TEST(RssTest, PacketFilterFollowsTheNdisBits) {
  net::MacAddress own;
  own.bytes = kA;
  const std::array<uint8_t, 6> bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::array<uint8_t, 6> mcast = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
  using namespace wire;
  EXPECT_FALSE(PacketFilterAccepts(0, own, kA.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterDirected, own, kA.data()));
  EXPECT_FALSE(PacketFilterAccepts(kNdisPacketFilterDirected, own, kB.data()));
  EXPECT_FALSE(PacketFilterAccepts(kNdisPacketFilterDirected, own, bcast.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterBroadcast, own, bcast.data()));
  EXPECT_FALSE(PacketFilterAccepts(kNdisPacketFilterBroadcast, own, mcast.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterAllMulticast, own, mcast.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterMulticast, own, mcast.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterPromiscuous, own, kB.data()));
  EXPECT_TRUE(PacketFilterAccepts(kNdisPacketFilterLinuxDefault, own, bcast.data()));
}

// ---------------------------------------------------------------------------------------------
// OID answers
// ---------------------------------------------------------------------------------------------

TEST(RndisOidsTest, OffloadCapabilitiesFollowTheRequestedRevision) {
  for (auto [rev, size] : {std::pair<uint8_t, uint16_t>{1, 112}, {2, 144}, {3, 156}}) {
    const wire::NdisObjectHeader in{wire::kNdisObjectTypeOffload, rev, size};
    std::array<uint8_t, 4> b{};
    std::memcpy(b.data(), &in, 4);
    const wire::NdisOffload caps = OffloadCapabilities(b, 0);
    EXPECT_EQ(caps.header.revision, rev);
    EXPECT_EQ(caps.header.size, size);
  }
  // No usable input header: by NDIS version.
  EXPECT_EQ(OffloadCapabilities({}, wire::kNdisVersion6_30).header.size, 156);
  EXPECT_EQ(OffloadCapabilities({}, wire::kNdisVersion6_1).header.size, 144);
  EXPECT_EQ(OffloadCapabilities({}, 0).header.size, 112);
}

TEST(RndisOidsTest, AnswersTheOidsLinuxQueries) {
  NicInfo info;
  info.permanent_mac.bytes = kA;
  info.current_mac.bytes = kB;
  info.receive_queues = 4;
  info.link_up = false;
  info.packet_filter = 0x0D;
  std::array<uint8_t, kMaxOidAnswerSize> out{};
  auto u32 = [&](wire::NdisOid oid) {
    const OidAnswer a = AnswerQuery(oid, {}, info, out);
    EXPECT_EQ(a.status, wire::RndisStatus::kSuccess);
    EXPECT_EQ(a.length, 4u);
    uint32_t v = 0;
    std::memcpy(&v, out.data(), 4);
    return v;
  };
  EXPECT_EQ(u32(wire::NdisOid::kGenMaximumFrameSize), 1500u);
  EXPECT_EQ(u32(wire::NdisOid::kGenMediaConnectStatus), wire::kNdisMediaStateDisconnected);
  EXPECT_EQ(u32(wire::NdisOid::kGenLinkSpeed), 100'000'000u);
  EXPECT_EQ(u32(wire::NdisOid::kGenCurrentPacketFilter), 0x0Du);
  EXPECT_EQ(u32(wire::NdisOid::kGenMaximumTotalSize), 1514u);
  OidAnswer a = AnswerQuery(wire::NdisOid::k802_3CurrentAddress, {}, info, out);
  ASSERT_EQ(a.length, 6u);
  EXPECT_TRUE(std::equal(kB.begin(), kB.end(), out.begin()));
  a = AnswerQuery(wire::NdisOid::kGenSupportedList, {}, info, out);
  EXPECT_EQ(a.length, 4 * SupportedOids().size());
  // RSS capabilities, revision 1 on request (16 bytes).
  const wire::NdisObjectHeader rss1{wire::kNdisObjectTypeRssCapabilities, 1, 16};
  std::array<uint8_t, 4> b{};
  std::memcpy(b.data(), &rss1, 4);
  a = AnswerQuery(wire::NdisOid::kGenReceiveScaleCapabilities, b, info, out);
  EXPECT_EQ(a.length, 16u);
  auto caps = wire::ParseRssCapabilities(std::span<const uint8_t>(out.data(), a.length));
  ASSERT_TRUE(caps);
  EXPECT_EQ(caps->num_recv_que, 4u);
  EXPECT_EQ(AnswerQuery(static_cast<wire::NdisOid>(1), {}, info, out).status,
            wire::RndisStatus::kNotSupported);
  std::array<uint8_t, 8> tiny{};
  EXPECT_EQ(AnswerQuery(wire::NdisOid::kGenLinkSpeed, {}, info, tiny).status,
            wire::RndisStatus::kResources);
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

TEST(NicCountersTest, SnapshotListsPerQueueTrafficThenNamedCounters) {
  NicCounters c("net7", 2);
  c.queue(0).Add(Stat::kTxPackets, 3);
  c.queue(1).Add(Stat::kTxPackets, 4);
  c.queue(1).Add(Stat::kRxBytes, 100);
  c.queue(0).Add(Stat::kTxBadSection);
  c.queue(1).Add(Stat::kTxBadSection, 2);
  const NicStats s = c.Snapshot();
  EXPECT_EQ(s.id, "net7");
  ASSERT_GE(s.counters.size(), 8u);
  EXPECT_EQ(s.counters[0].first, "tx_queue_0_packets");
  EXPECT_EQ(s.counters[1].first, "tx_queue_0_bytes");
  EXPECT_EQ(s.counters[2].first, "tx_queue_1_packets");
  EXPECT_EQ(s.counters[4].first, "rx_queue_0_packets");
  EXPECT_EQ(s.Get("tx_queue_1_packets"), 4u);
  EXPECT_EQ(s.Get("rx_queue_1_bytes"), 100u);
  EXPECT_EQ(s.Get("tx_bad_section"), 3u);
  EXPECT_EQ(s.Get("tx_packets"), 0u);  // traffic only appears per queue
  const auto j = ToJson(s);
  EXPECT_EQ(j["tx_bad_section"], 3);
  for (size_t i = 0; i < kStatCount; ++i) {
    EXPECT_NE(StatName(static_cast<Stat>(i)), "unknown") << i;
  }
}

// ---------------------------------------------------------------------------------------------
// QueueWorker
// ---------------------------------------------------------------------------------------------

class CountingService final : public QueueService {
 public:
  explicit CountingService(int fd) : fd_(fd) {}
  bool Run() override {
    uint64_t v = 0;
    (void)!::read(fd_, &v, sizeof(v));
    std::lock_guard lock(mu_);
    ++runs_;
    cv_.notify_all();
    return false;
  }
  bool PrepareSleep() override { return true; }
  bool WaitRuns(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return runs_ >= n; });
  }

 private:
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  int runs_ = 0;
};

TEST(QueueWorkerTest, RunsOnStartAndOnEveryReadableFdThenStops) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(efd);
  CountingService service(efd.get());
  const std::array<int, 2> fds = {efd.get(), -1};
  auto worker = QueueWorker::Start("test-q", &service, fds);
  ASSERT_TRUE(worker);
  EXPECT_TRUE(service.WaitRuns(1));
  const uint64_t one = 1;
  ASSERT_EQ(::write(efd.get(), &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  EXPECT_TRUE(service.WaitRuns(2));
  (*worker)->Stop();
  (*worker)->Stop();  // idempotent
}

// ---------------------------------------------------------------------------------------------
// Device configuration
// ---------------------------------------------------------------------------------------------

TEST(NetvspDeviceTest, CreateRejectsImpossibleConfigurations) {
  net::RingEndpointOptions po;
  po.queues = 2;
  auto pipe = net::CreatePipe(po);
  ASSERT_TRUE(pipe);
  std::shared_ptr<net::Endpoint> backend(std::move(pipe->nic));
  auto make = [&](auto mutate) {
    NicConfig c;
    c.backend = backend;
    mutate(c);
    return NetvspDevice::Create(std::move(c));
  };
  EXPECT_FALSE(make([](NicConfig& c) { c.backend = nullptr; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.queues = 0; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.queues = 65; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.mtu = 20; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.send_section_size = 64; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.max_packets_per_message = 0; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.max_nvsp_version = 0x00050001; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.mailbox_depth = 1000; }));
  EXPECT_FALSE(make([](NicConfig& c) { c.mac.bytes = {0x01, 0, 0, 0, 0, 1}; }));
  auto ok = make([](NicConfig& c) { c.queues = 8; });
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ((*ok)->channel_limit(), 2u);  // capped by the backend's queues
  EXPECT_EQ((*ok)->config().mac.bytes[0], 0x00);  // default MAC: Hyper-V OUI
  EXPECT_EQ((*ok)->config().mac.bytes[2], 0x5d);
  EXPECT_EQ(ok.value()->Offer().max_inbound_packet_size, 16384u);
}

}  // namespace
}  // namespace uvmbus::netvsp
