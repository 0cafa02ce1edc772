// Tests of tools/traffic.h: the stream frames (incarnation fields) and GuestNicLoop's
// duration=S mode over an in-memory wire: sessions per peer incarnation, a peer that vanishes
// and comes back with a fresh nonce, the final drain and the exact per-session accounting.
#include "tools/traffic.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace uvmbus::tools {
namespace {

const net::MacAddress kMacA = *net::MacAddress::Parse("00:15:5d:00:00:0a");
const net::MacAddress kMacB = *net::MacAddress::Parse("00:15:5d:00:00:0b");
const traffic::Link kLink{kMacA, kMacB};

// ---- Frames ----

TEST(TrafficStreamFrameTest, DataCarriesSenderAndSessionOfEverySize) {
  std::vector<uint8_t> buf(1514);
  for (uint32_t len : {62u, 63u, 200u, 1514u}) {
    ASSERT_EQ(traffic::BuildStreamData(buf, kLink, 5, {0x11223344, 0x55667788}, 42, len), len);
    const traffic::Parsed p = traffic::Parse({buf.data(), len});
    EXPECT_EQ(p.verdict, traffic::Verdict::kData) << len;
    EXPECT_TRUE(p.stream);
    EXPECT_EQ(p.value, 42u);
    EXPECT_EQ(p.id.sender, 0x11223344u);
    EXPECT_EQ(p.id.session, 0x55667788u);
  }
}

TEST(TrafficStreamFrameTest, DataShorterThanTheStreamHeaderIsNotBuilt) {
  std::vector<uint8_t> buf(100);
  EXPECT_EQ(traffic::BuildStreamData(buf, kLink, 0, {1, 2}, 0, traffic::kStreamHeaderBytes - 1),
            0u);
  EXPECT_EQ(traffic::BuildStreamData({buf.data(), 70}, kLink, 0, {1, 2}, 0, 71), 0u);
}

TEST(TrafficStreamFrameTest, AnyCorruptedByteOfADataFrameIsCaught) {
  std::vector<uint8_t> buf(300);
  const uint32_t len = traffic::BuildStreamData(buf, kLink, 3, {7, 9}, 99, 300);
  ASSERT_EQ(len, 300u);
  for (uint32_t i = 14; i < len; ++i) {  // the nonces included
    std::vector<uint8_t> copy(buf.begin(), buf.begin() + len);
    copy[i] ^= 0x40;
    EXPECT_NE(traffic::Parse(copy).verdict, traffic::Verdict::kData) << "byte " << i;
  }
}

TEST(TrafficStreamFrameTest, AckCarriesEveryField) {
  std::vector<uint8_t> buf(traffic::kStreamAckBytes);
  const traffic::StreamAck ack{0xA1, 0xB2, 123456, 7890, 0xC3, true};
  ASSERT_EQ(traffic::BuildStreamAck(buf, kLink, ack), traffic::kStreamAckBytes);
  const traffic::Parsed p = traffic::Parse(buf);
  ASSERT_EQ(p.verdict, traffic::Verdict::kAck);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.value, 123456u);
  EXPECT_EQ(p.ack.from, 0xA1u);
  EXPECT_EQ(p.ack.acked_sender, 0xB2u);
  EXPECT_EQ(p.ack.received, 123456u);
  EXPECT_EQ(p.ack.sent, 7890u);
  EXPECT_EQ(p.ack.sent_session, 0xC3u);
  EXPECT_TRUE(p.ack.done);
  for (uint32_t i = 14; i < buf.size(); ++i) {
    std::vector<uint8_t> copy = buf;
    copy[i] ^= 0x01;
    EXPECT_NE(traffic::Parse(copy).verdict, traffic::Verdict::kAck) << "byte " << i;
  }
  EXPECT_EQ(traffic::BuildStreamAck({buf.data(), 69}, kLink, ack), 0u);
}

TEST(TrafficStreamFrameTest, PlainFramesAreNotStreamFrames) {
  std::vector<uint8_t> buf(100);
  ASSERT_EQ(traffic::BuildData(buf, kLink, 1, 5, 100), 100u);
  const traffic::Parsed p = traffic::Parse(buf);
  EXPECT_EQ(p.verdict, traffic::Verdict::kData);
  EXPECT_FALSE(p.stream);
}

TEST(TrafficStreamFrameTest, AStreamFlagOnAShortAckIsBad) {
  std::vector<uint8_t> buf(60);
  ASSERT_EQ(traffic::BuildAck(buf, kLink, 1, false), 60u);
  buf[45] |= traffic::kFlagStream;  // claims the stream fields a 60-byte ack cannot hold
  EXPECT_EQ(traffic::Parse(buf).verdict, traffic::Verdict::kBad);
}

// ---- GuestNicLoop over an in-memory wire ----

// Two ports; a frame sent on one is queued for the other, or dropped (and counted) while the
// other is unplugged (a killed guest).
class Wire {
 public:
  struct Port {
    std::deque<std::vector<uint8_t>> inbox;
    int fd = -1;
    bool plugged = true;
  };
  Wire() {
    for (Port& p : ports_) p.fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Wire() {
    for (Port& p : ports_) ::close(p.fd);
  }
  uint32_t Send(int from, const net::FrameBatch& batch) {
    std::lock_guard lock(mu_);
    Port& to = ports_[1 - from];
    for (uint32_t i = 0; i < batch.size(); ++i) {
      if (!to.plugged || !ports_[from].plugged) {
        ++dropped_;
        continue;
      }
      to.inbox.emplace_back(batch[i].data, batch[i].data + batch[i].length);
    }
    const uint64_t one = 1;
    if (to.plugged) (void)!::write(to.fd, &one, sizeof one);
    return batch.size();
  }
  uint32_t Receive(int at, net::RxBatch& batch) {
    std::lock_guard lock(mu_);
    Port& p = ports_[at];
    uint32_t n = 0;
    while (n < batch.size() && !p.inbox.empty()) {
      std::vector<uint8_t>& f = p.inbox.front();
      std::copy(f.begin(), f.end(), batch[n].data);
      batch[n].length = static_cast<uint32_t>(f.size());
      p.inbox.pop_front();
      ++n;
    }
    uint64_t v = 0;
    if (p.inbox.empty()) (void)!::read(p.fd, &v, sizeof v);
    return n;
  }
  bool Empty(int at) {
    std::lock_guard lock(mu_);
    return ports_[at].inbox.empty();
  }
  int fd(int at) const { return ports_[at].fd; }
  // Unplugging drops what waits in the port's inbox too (it died with the guest's RAM).
  uint64_t Unplug(int at) {
    std::lock_guard lock(mu_);
    ports_[at].plugged = false;
    const uint64_t lost = ports_[at].inbox.size();
    ports_[at].inbox.clear();
    return lost;
  }
  void Plug(int at) {
    std::lock_guard lock(mu_);
    ports_[at].plugged = true;
  }
  uint64_t dropped() {
    std::lock_guard lock(mu_);
    return dropped_;
  }

 private:
  std::mutex mu_;
  Port ports_[2];
  uint64_t dropped_ = 0;
};

class FakeNic final : public netvsc::NetDevice {
 public:
  FakeNic(Wire& wire, int port, net::MacAddress mac) : wire_(wire), port_(port), mac_(mac) {}
  const Guid& instance_id() const override { return guid_; }
  std::string name() const override { return "fake"; }
  net::MacAddress mac() const override { return mac_; }
  uint32_t mtu() const override { return 1500; }
  uint32_t nvsp_version() const override { return 0; }
  bool link_up() const override { return true; }
  uint32_t link_speed_mbps() const override { return 0; }
  void SetLinkCallback(netvsc::LinkCallback) override {}
  Status Open() override { return {}; }
  Status Close() override { return {}; }
  Status SetPacketFilter(uint32_t) override { return {}; }
  bool is_open() const override { return true; }
  uint32_t queue_count() const override { return 1; }
  uint32_t Send(uint32_t, const net::FrameBatch& batch) override {
    return wire_.Send(port_, batch);
  }
  bool tx_stopped(uint32_t) const override { return false; }
  uint32_t SelectQueue(std::span<const uint8_t>) const override { return 0; }
  std::array<uint32_t, netvsc::kSendTableSize> send_table() const override { return {}; }
  uint32_t Receive(uint32_t, net::RxBatch& batch, netvsc::RxFrameInfo*) override {
    return wire_.Receive(port_, batch);
  }
  int wait_fd(uint32_t) const override { return wire_.fd(port_); }
  bool PrepareWait(uint32_t) override { return wire_.Empty(port_); }
  netvsc::StatsSnapshot Stats() const override { return {}; }
  const netvsc::NetvscStats& counters() const override { return stats_; }

 private:
  Wire& wire_;
  const int port_;
  const net::MacAddress mac_;
  Guid guid_{};
  netvsc::NetvscStats stats_{};
};

TrafficSpec ContinuousSpec(const net::MacAddress& peer) {
  TrafficSpec spec;
  spec.peer_mac = peer;
  spec.duration_s = 600;  // ended by Stop()
  spec.window = 64;
  spec.flows = 4;
  spec.max_size = 300;
  return spec;
}

// One incarnation: a loop on its own thread.
struct Incarnation {
  Incarnation(Wire& wire, int port, net::MacAddress mac, net::MacAddress peer)
      : nic(wire, port, mac),
        loop(nic, net::Ipv4Interface{}, [this](const std::string& line) {
          std::lock_guard lock(mu);
          lines.push_back(line);
        }),
        thread([this, peer] { result = loop.RunTraffic(ContinuousSpec(peer)); }) {}
  ~Incarnation() { Join(); }
  void Join() {
    if (thread.joinable()) thread.join();
  }
  // Waits (bounded) until this incarnation's current session has sent `n` frames.
  size_t Sessions() {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const std::string& l : lines) n += l.rfind("traffic: session", 0) == 0 ? 1 : 0;
    return n;
  }
  FakeNic nic;
  GuestNicLoop loop;
  std::mutex mu;
  std::vector<std::string> lines;
  TrafficResult result;
  std::thread thread;
};

// Polls `cond` (the loops run on their own threads) for up to 10 s.
template <typename Cond>
bool Eventually(Cond cond) {
  for (int i = 0; i < 10000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

const TrafficRxSession* RxFrom(const TrafficResult& r, uint32_t sender) {
  for (const TrafficRxSession& s : r.rx_sessions) {
    if (s.peer == sender) return &s;
  }
  return nullptr;
}

TEST(GuestNicLoopContinuousTest, StopDrainsAndEveryFrameSentArrives) {
  Wire wire;
  auto a = std::make_unique<Incarnation>(wire, 0, kMacA, kMacB);
  auto b = std::make_unique<Incarnation>(wire, 1, kMacB, kMacA);
  ASSERT_TRUE(Eventually([&] { return a->Sessions() == 1 && b->Sessions() == 1; }));
  // Let some traffic flow (the counts do not matter, their agreement does).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  a->loop.Stop();
  b->loop.Stop();
  a->Join();
  b->Join();
  for (const auto& pair : {std::pair(a.get(), b.get()), std::pair(b.get(), a.get())}) {
    const TrafficResult& tx = pair.first->result;
    const TrafficResult& rx = pair.second->result;
    SCOPED_TRACE(tx.ToJson().dump());
    EXPECT_TRUE(tx.ok) << tx.error;
    EXPECT_TRUE(tx.drained);
    ASSERT_EQ(tx.tx_sessions.size(), 1u);
    EXPECT_EQ(tx.tx_sessions[0].peer, rx.nonce);
    EXPECT_GT(tx.tx_sessions[0].sent, 0u);
    EXPECT_EQ(tx.tx_sessions[0].acked, tx.tx_sessions[0].sent);
    const TrafficRxSession* got = RxFrom(rx, tx.nonce);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->received, tx.tx_sessions[0].sent);
    EXPECT_EQ(got->high, got->received);
    EXPECT_TRUE(got->peer_done);
    EXPECT_EQ(got->peer_sent, tx.tx_sessions[0].sent);
    EXPECT_EQ(tx.bad + tx.duplicates + tx.stale + tx.out_of_window, 0u);
  }
  EXPECT_EQ(wire.dropped(), 0u);
}

TEST(GuestNicLoopContinuousTest, APeerKilledAndRestartedGetsAFreshSessionAndAllIsAccounted) {
  Wire wire;
  auto a = std::make_unique<Incarnation>(wire, 0, kMacA, kMacB);
  auto b1 = std::make_unique<Incarnation>(wire, 1, kMacB, kMacA);
  ASSERT_TRUE(Eventually([&] { return a->Sessions() == 1 && b1->Sessions() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // "SIGKILL": the port goes dead with whatever waited in it; the incarnation never reports.
  (void)wire.Unplug(1);
  b1->loop.Stop();
  b1->Join();  // its drain cannot complete (dead port): it gives up after 3 s
  EXPECT_FALSE(b1->result.drained);
  const uint32_t dead_nonce = b1->result.nonce;
  b1.reset();
  wire.Plug(1);
  auto b2 = std::make_unique<Incarnation>(wire, 1, kMacB, kMacA);
  ASSERT_TRUE(Eventually([&] { return a->Sessions() == 2 && b2->Sessions() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  a->loop.Stop();
  b2->loop.Stop();
  a->Join();
  b2->Join();

  const TrafficResult& ra = a->result;
  const TrafficResult& rb = b2->result;
  SCOPED_TRACE(ra.ToJson().dump());
  SCOPED_TRACE(rb.ToJson().dump());
  EXPECT_TRUE(ra.ok) << ra.error;
  EXPECT_TRUE(rb.ok) << rb.error;
  ASSERT_EQ(ra.tx_sessions.size(), 2u);
  EXPECT_EQ(ra.tx_sessions[0].peer, dead_nonce);
  EXPECT_EQ(ra.tx_sessions[1].peer, rb.nonce);
  // The session to the dead incarnation: what it did not acknowledge was in flight when it died
  // (in its inbox, or dropped by the wire afterwards), at most one window.
  const uint64_t unacked = ra.tx_sessions[0].sent - ra.tx_sessions[0].acked;
  EXPECT_LE(unacked, 64u);
  // The live session: exact.
  const TrafficRxSession* got = RxFrom(rb, ra.nonce);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->received, ra.tx_sessions[1].sent);
  EXPECT_EQ(ra.tx_sessions[1].acked, ra.tx_sessions[1].sent);
  // What a received from the dead incarnation is on record under its nonce.
  const TrafficRxSession* from_dead = RxFrom(ra, dead_nonce);
  ASSERT_NE(from_dead, nullptr);
  EXPECT_LE(from_dead->received, from_dead->high);
  EXPECT_EQ(ra.bad + ra.duplicates + rb.bad + rb.duplicates, 0u);
}

TEST(GuestNicLoopContinuousTest, NothingIsSentBeforeAPeerIncarnationIsHeard) {
  Wire wire;
  wire.Unplug(1);  // nobody there
  auto a = std::make_unique<Incarnation>(wire, 0, kMacA, kMacB);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  a->loop.Stop();
  a->Join();
  EXPECT_TRUE(a->result.ok) << a->result.error;  // nothing to drain
  EXPECT_TRUE(a->result.tx_sessions.empty());
  EXPECT_EQ(a->result.sent, 0u);
  EXPECT_GT(a->result.frames_out, 0u);  // the hellos
}

}  // namespace
}  // namespace uvmbus::tools
