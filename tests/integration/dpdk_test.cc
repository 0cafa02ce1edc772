// Integration test: an unmodified DPDK (Debian's dpdk-testpmd, DPDK 22.11, netvsc PMD) drives a
// uvmbus synthetic NIC through `uvmbus dpdk` (kernel + uio_hv_generic emulation and the
// libuvmbus_uio.so shim, docs/interop.md), against a uvmbus guest on the same switch.
//   * probe: link up, the MAC the host assigned, 1 and 4 queues;
//   * txonly: testpmd sends on 4 queues, the uvmbus guest checks every frame (testpmd's txonly
//     headers, lengths, IPv4 checksum) and receives >= kFrames of them; rxonly: the guest sends
//     kFrames, testpmd counts exactly that many, spread over its 4 queues;
//   * macswap forwarding: the guest sends kFrames numbered frames of mixed sizes to testpmd,
//     which returns each with the MACs swapped; the guest checks every byte, testpmd's RX/TX
//     counters equal the guest's; with 4 queues every testpmd queue carries traffic;
//   * SIGKILL of testpmd mid-traffic: `uvmbus dpdk` exits 137, the host releases the guest, the
//     uvmbus guest keeps working, a new testpmd run forwards again.
// Every testpmd runs under `timeout -k` (a host that misses a reply hangs testpmd in probe).
// Skips (one line) when dpdk-testpmd is not installed.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "devices/netvsc/netvsc_drv.h"
#include "guest/vmbus_bus.h"
#include "net/frame.h"
#include "partition/socket_guest_partition.h"
#include "tools/subprocess.h"

#ifndef UVMBUS_BINARY
#error "UVMBUS_BINARY must name the uvmbus executable"
#endif

namespace uvmbus::tools {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kTimeout{60'000};
constexpr uint32_t kQueues = 4;

uint64_t FrameCount() {
  const char* env = ::getenv("UVMBUS_DPDK_FRAMES");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 100'000;
}

std::string Testpmd() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
    const std::string path = std::string(dir) + "/dpdk-testpmd";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

std::string MacText(const net::MacAddress& mac) { return mac.ToString(); }

// ---- The uvmbus peer guest, in-process (SocketGuestPartition + bus + netvsc) ----
struct PeerGuest {
  std::unique_ptr<partition::SocketGuestPartition> partition;
  std::unique_ptr<netvsc::NetvscDriver> driver;
  std::unique_ptr<guest::VmbusBus> bus;
  std::shared_ptr<netvsc::NetvscDevice> nic;

  ~PeerGuest() {
    if (bus) (void)bus->Disconnect();
    bus.reset();
    driver.reset();
    partition.reset();
  }
  static std::unique_ptr<PeerGuest> Connect(const std::string& socket) {
    auto g = std::make_unique<PeerGuest>();
    auto p = partition::SocketGuestPartition::Connect(socket, "peer", kQueues, 64ull << 20);
    EXPECT_TRUE(p.has_value());
    if (!p) return nullptr;
    g->partition = std::move(*p);
    g->driver = std::make_unique<netvsc::NetvscDriver>(*g->partition);
    auto bus = guest::VmbusBus::Create(*g->partition);
    EXPECT_TRUE(bus.has_value());
    if (!bus) return nullptr;
    g->bus = std::move(*bus);
    EXPECT_TRUE(g->bus->RegisterDriver(*g->driver).has_value());
    EXPECT_TRUE(g->bus->Connect().has_value());
    auto devs = g->driver->devices();
    EXPECT_EQ(devs.size(), 1u);
    if (devs.empty()) return nullptr;
    g->nic = devs.front();
    return g;
  }
};

// Test frames of the peer (flow = seq % 64): IPv4/UDP 10.1.0.(1+flow) -> 10.1.1.2, ports
// 10000+flow -> 20000+flow,
// payload @42: u64 sequence number, then byte i = (seq * 7 + i) & 0xff. Length 60..1514.
uint32_t FrameLength(uint64_t seq) { return 60 + static_cast<uint32_t>((seq * 97) % 1455); }

void BuildFrame(uint8_t* f, uint64_t seq, const net::MacAddress& dst, const net::MacAddress& src) {
  const uint32_t len = FrameLength(seq);
  std::memcpy(f, dst.bytes.data(), 6);
  std::memcpy(f + 6, src.bytes.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45;
  const uint16_t total = static_cast<uint16_t>(len - 14);
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[8] = 64;
  ip[9] = 17;
  // The source address varies with the flow: testpmd's default RSS hash (RTE_ETH_RSS_IP) covers
  // the IPv4 addresses only, so a single address pair would land every frame on one queue.
  const uint16_t flow = static_cast<uint16_t>(seq % 64);
  const uint8_t addrs[8] = {10, 1, 0, static_cast<uint8_t>(1 + flow), 10, 1, 1, 2};
  std::memcpy(ip + 12, addrs, 8);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (uint32_t{ip[i]} << 8) | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  const uint16_t csum = static_cast<uint16_t>(~sum);
  ip[10] = static_cast<uint8_t>(csum >> 8);
  ip[11] = static_cast<uint8_t>(csum);
  uint8_t* udp = ip + 20;
  const uint16_t sport = static_cast<uint16_t>(10000 + flow);
  const uint16_t dport = static_cast<uint16_t>(20000 + flow);
  const uint16_t ulen = static_cast<uint16_t>(len - 34);
  udp[0] = static_cast<uint8_t>(sport >> 8);
  udp[1] = static_cast<uint8_t>(sport);
  udp[2] = static_cast<uint8_t>(dport >> 8);
  udp[3] = static_cast<uint8_t>(dport);
  udp[4] = static_cast<uint8_t>(ulen >> 8);
  udp[5] = static_cast<uint8_t>(ulen);
  udp[6] = 0;
  udp[7] = 0;
  std::memcpy(f + 42, &seq, 8);
  for (uint32_t i = 50; i < len; ++i) f[i] = static_cast<uint8_t>((seq * 7 + i) & 0xFF);
}

// Result of one peer run.
struct PeerResult {
  uint64_t sent = 0;
  uint64_t received = 0;  // frames that passed the check
  uint64_t bad = 0;       // test frames with a wrong byte, wrong length or unknown seq
  uint64_t duplicates = 0;
  uint64_t other = 0;     // frames that are not ours at all
};

// Polls every queue once, handing each frame to `fn`.
template <typename Fn>
uint32_t PollAll(netvsc::NetDevice& nic, std::vector<std::vector<uint8_t>>& buffers, Fn fn) {
  uint32_t total = 0;
  const uint32_t max_frame = nic.max_frame_size();
  for (uint32_t q = 0; q < nic.queue_count(); ++q) {
    net::RxBatch batch;
    for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
      batch.Add({buffers[q].data() + size_t{i} * max_frame, max_frame});
    }
    const uint32_t n = nic.Receive(q, batch);
    for (uint32_t i = 0; i < n; ++i) fn(std::span<const uint8_t>(batch[i].data, batch[i].length));
    total += n;
  }
  return total;
}

std::vector<std::vector<uint8_t>> RxBuffers(netvsc::NetDevice& nic) {
  return std::vector<std::vector<uint8_t>>(
      nic.queue_count(), std::vector<uint8_t>(size_t{net::kMaxBatch} * nic.max_frame_size()));
}

// Sends `frames` test frames to `dst`. With `expect_back` (macswap forwarding) keeps at most
// `window` frames unanswered and checks every returned frame byte for byte; without it paces
// to `pps` and only drains what arrives.
PeerResult RunPeer(netvsc::NetDevice& nic, const net::MacAddress& dst, uint64_t frames,
                   bool expect_back, uint64_t pps = 0, uint32_t window = 256) {
  PeerResult r;
  const net::MacAddress own = nic.mac();
  std::vector<bool> seen(frames, false);
  auto rx = RxBuffers(nic);
  std::vector<uint8_t> expected(2048);
  auto check = [&](std::span<const uint8_t> f) {
    if (f.size() < 50 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 17 || f[26] != 10 || f[27] != 1) {
      ++r.other;  // ARP, IPv6 neighbour discovery, ...
      return;
    }
    uint64_t seq = 0;
    std::memcpy(&seq, f.data() + 42, 8);
    if (seq >= frames || f.size() != FrameLength(seq)) {
      ++r.bad;
      return;
    }
    // macswap: our frame with source and destination exchanged.
    BuildFrame(expected.data(), seq, own, dst);
    if (std::memcmp(f.data(), expected.data(), f.size()) != 0) {
      ++r.bad;
      return;
    }
    if (seen[seq]) {
      ++r.duplicates;
      return;
    }
    seen[seq] = true;
    ++r.received;
  };
  std::vector<uint8_t> tx(size_t{32} * 1514);
  const auto start = Clock::now();
  auto last_progress = Clock::now();
  uint64_t last_received = 0;
  while (r.sent < frames || (expect_back && r.received + r.bad < r.sent)) {
    PollAll(nic, rx, check);
    if (r.received != last_received) {
      last_received = r.received;
      last_progress = Clock::now();
    }
    if (Clock::now() - last_progress > std::chrono::seconds(5)) break;  // lost frames
    if (r.sent >= frames) continue;
    uint64_t room = 32;
    if (expect_back) room = std::min<uint64_t>(room, window - std::min<uint64_t>(window, r.sent - r.received));
    if (pps != 0) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const auto allowed = static_cast<uint64_t>(elapsed * static_cast<double>(pps)) + 1;
      room = std::min<uint64_t>(room, allowed > r.sent ? allowed - r.sent : 0);
    }
    room = std::min<uint64_t>(room, frames - r.sent);
    if (room == 0) continue;
    // One batch per queue selection: frames of one flow go to one queue.
    const uint64_t seq0 = r.sent;
    BuildFrame(tx.data(), seq0, dst, own);
    const uint32_t queue = nic.SelectQueue({tx.data(), FrameLength(seq0)});
    net::FrameBatch batch;
    batch.Add(std::span<const uint8_t>(tx.data(), FrameLength(seq0)));
    const uint32_t n = nic.Send(queue, batch);
    r.sent += n;
    if (n == 0) last_progress = std::max(last_progress, Clock::now() - std::chrono::seconds(4));
  }
  return r;
}

// Counts testpmd txonly frames: Ether(dst own, src testpmd) IPv4 198.18.x.y -> 198.18.0.2 UDP
// 9 -> 9 (DPDK 22.11 app/test-pmd/txonly.c defaults). Stops at `want` or after `timeout`.
PeerResult ReceiveTxonly(netvsc::NetDevice& nic, const net::MacAddress& testpmd_mac,
                         uint64_t want, milliseconds timeout) {
  PeerResult r;
  auto rx = RxBuffers(nic);
  const net::MacAddress own = nic.mac();
  auto check = [&](std::span<const uint8_t> f) {
    if (f.size() >= 14 && std::memcmp(f.data() + 6, testpmd_mac.bytes.data(), 6) != 0) {
      ++r.other;
      return;
    }
    bool ok = f.size() >= 42 && std::memcmp(f.data(), own.bytes.data(), 6) == 0 &&
              f[12] == 0x08 && f[13] == 0x00 && f[14] == 0x45 && f[23] == 17 &&
              f[26] == 198 && f[27] == 18 && f[30] == 198 && f[31] == 18 && f[32] == 0 &&
              f[33] == 2 && f[34] == 0 && f[35] == 9 && f[36] == 0 && f[37] == 9;
    if (ok) {
      // Lengths agree with the frame (IPv4 total length, UDP length) and the IPv4 header
      // checksum (recomputed per flow by --txonly-multi-flow) verifies.
      const uint32_t ip_len = (uint32_t{f[16]} << 8) | f[17];
      const uint32_t udp_len = (uint32_t{f[38]} << 8) | f[39];
      uint32_t sum = 0;
      for (size_t i = 14; i < 34; i += 2) sum += (uint32_t{f[i]} << 8) | f[i + 1];
      while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
      ok = ip_len == f.size() - 14 && udp_len == f.size() - 34 && sum == 0xFFFF;
    }
    if (ok) {
      ++r.received;
    } else {
      ++r.bad;
    }
  };
  const auto deadline = Clock::now() + timeout;
  while (r.received < want && Clock::now() < deadline) PollAll(nic, rx, check);
  return r;
}

// ---- testpmd through `uvmbus dpdk` ----
class DpdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testpmd_ = Testpmd();
    if (testpmd_.empty()) GTEST_SKIP() << "dpdk-testpmd is not installed (apt-get install dpdk)";
    for (const char* path : {"/usr/bin/timeout", "/bin/timeout"}) {
      if (::access(path, X_OK) == 0) timeout_ = path;
    }
    ASSERT_FALSE(timeout_.empty()) << "timeout(1) is missing";
    char tmpl[] = "/tmp/uvmbus-dpdk-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/vmbus.sock";
    auto host = Subprocess::Spawn(
        {UVMBUS_BINARY, "host", "--socket", socket_, "--heartbeat-interval", "60000", "--nic",
         "guest=dpdk,id=net0,backend=switch:sw0,queues=" + std::to_string(kQueues), "--nic",
         "guest=peer,id=net0,backend=switch:sw0,queues=" + std::to_string(kQueues),
         "--log-level", "info"},
        Subprocess::Options{true, {}});
    ASSERT_TRUE(host.has_value());
    host_ = std::move(*host);
    ASSERT_TRUE(host_->WaitForLine(
        [](std::string_view l) { return l.find("listening on") != std::string_view::npos; },
        kTimeout));
    peer_ = PeerGuest::Connect(socket_);
    ASSERT_NE(peer_, nullptr);
  }
  void TearDown() override {
    testpmd_run_.reset();
    peer_.reset();
    host_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    for (const std::string& prefix : prefixes_) {
      std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);
    }
  }

  // Starts `uvmbus dpdk -- dpdk-testpmd ...` with `queues` queues and `mode`, under timeout -k.
  void StartTestpmd(uint32_t queues, const std::string& mode, int seconds = 120) {
    const std::string prefix = fmt::format("uvt{}-{}", ::getpid(), prefixes_.size());
    prefixes_.push_back(prefix);
    std::vector<std::string> argv = {
        timeout_, "-k", "5", std::to_string(seconds), UVMBUS_BINARY, "dpdk", "--socket",
        socket_, "--name", "dpdk", "--", testpmd_, "-l", "0-1", "--no-huge", "-m", "256",
        "--no-pci", "--iova-mode=va", "--file-prefix=" + prefix,
        "-a", "vmbus:{device},tx_copybreak=1600", "--", "--total-num-mbufs=16384",
        "--rxq=" + std::to_string(queues), "--txq=" + std::to_string(queues), "--nb-cores=1",
        "--stats-period=1", "--forward-mode=" + mode,
        "--eth-peer=0," + MacText(peer_->nic->mac())};
    if (mode == "txonly") argv.push_back("--txonly-multi-flow");
    // UVMBUS_DPDK_LOG="<spec> <spec>..." adds `--log-level=<spec>` EAL arguments (debugging),
    // right after the testpmd path (argv[11]).
    if (const char* log = ::getenv("UVMBUS_DPDK_LOG"); log != nullptr) {
      std::istringstream specs(log);
      size_t at = 12;
      for (std::string spec; specs >> spec;) {
        argv.insert(argv.begin() + static_cast<std::ptrdiff_t>(at++), "--log-level=" + spec);
      }
    }
    auto p = Subprocess::Spawn(argv, Subprocess::Options{true, {}});
    ASSERT_TRUE(p.has_value());
    testpmd_run_ = std::move(*p);
    // testpmd: "Port 0: 00:15:5D:..." then forwarding starts.
    auto port = testpmd_run_->WaitForLine(
        [](std::string_view l) { return l.starts_with("Port 0: "); }, kTimeout);
    ASSERT_TRUE(port.has_value()) << Output() << HostOutput();
    const std::string line = testpmd_run_->Lines(*port)[0];
    auto mac = net::MacAddress::Parse(line.substr(8));
    ASSERT_TRUE(mac.has_value()) << line;
    testpmd_mac_ = *mac;
    ASSERT_TRUE(testpmd_run_->WaitForLine(
        [](std::string_view l) { return l.find("Link status") != std::string_view::npos ||
                                        l.find("Port statistics") != std::string_view::npos; },
        kTimeout))
        << Output();
  }

  // SIGINT to `uvmbus dpdk` (forwarded to testpmd, which prints its forward statistics), then
  // the exit code.
  std::optional<int> StopTestpmd() {
    (void)testpmd_run_->Signal(SIGINT);  // timeout(1) passes it on to uvmbus dpdk
    return testpmd_run_->Wait(kTimeout);
  }

  std::string HostOutput() const {
    std::string out;
    for (const std::string& l : host_->Lines()) out += "host: " + l + "\n";
    return out;
  }

  std::string Output() const {
    std::string out;
    for (const std::string& l : testpmd_run_->Lines()) out += l + "\n";
    return out;
  }

  // testpmd's accumulated "Forward statistics for port 0" RX/TX-packets.
  std::pair<uint64_t, uint64_t> PortCounters() const {
    const std::vector<std::string> lines = testpmd_run_->Lines();
    uint64_t rx = 0;
    uint64_t tx = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find("Forward statistics for port 0") == std::string::npos) continue;
      if (i + 1 < lines.size()) rx = NumberAfter(lines[i + 1], "RX-packets:").value_or(rx);
      if (i + 2 < lines.size()) tx = NumberAfter(lines[i + 2], "TX-packets:").value_or(tx);
    }
    return {rx, tx};
  }

  // Per-stream "RX Port= 0/Queue= q" {RX-packets, TX-packets} (one stream per queue pair).
  std::map<int, std::pair<uint64_t, uint64_t>> QueueCounters() const {
    const std::vector<std::string> lines = testpmd_run_->Lines();
    std::map<int, std::pair<uint64_t, uint64_t>> out;
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      if (lines[i].find("RX Port= 0/Queue=") == std::string::npos) continue;
      const auto q = NumberAfter(lines[i], "RX Port= 0/Queue=");
      if (!q) continue;
      auto& counts = out[static_cast<int>(*q)];
      counts.first = NumberAfter(lines[i + 1], "RX-packets:").value_or(0);
      counts.second = NumberAfter(lines[i + 1], "TX-packets:").value_or(0);
    }
    return out;
  }

  // The decimal number after `key` (and any blanks) in `line`.
  static std::optional<uint64_t> NumberAfter(const std::string& line, std::string_view key) {
    size_t at = line.find(key);
    if (at == std::string::npos) return std::nullopt;
    at += key.size();
    while (at < line.size() && line[at] == ' ') ++at;
    if (at >= line.size() || line[at] < '0' || line[at] > '9') return std::nullopt;
    uint64_t v = 0;
    while (at < line.size() && line[at] >= '0' && line[at] <= '9') {
      v = v * 10 + static_cast<uint64_t>(line[at] - '0');
      ++at;
    }
    return v;
  }

  std::string testpmd_;
  std::string timeout_;
  std::string dir_;
  std::string socket_;
  std::vector<std::string> prefixes_;
  std::unique_ptr<Subprocess> host_;
  std::unique_ptr<PeerGuest> peer_;
  std::unique_ptr<Subprocess> testpmd_run_;
  net::MacAddress testpmd_mac_{};
};

TEST_F(DpdkTest, TestpmdProbesTheNicWithTheHostsMacAndLinkUpOnOneQueue) {
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(1, "io"));
  EXPECT_EQ(testpmd_mac_.bytes[0], 0x00);  // 00:15:5d: the host's Hyper-V OUI
  EXPECT_EQ(testpmd_mac_.bytes[1], 0x15);
  EXPECT_EQ(testpmd_mac_.bytes[2], 0x5D);
  EXPECT_NE(testpmd_mac_, peer_->nic->mac());
  EXPECT_TRUE(testpmd_run_->WaitForLine(
      [](std::string_view l) { return l.find("uio: ") == 0 && l.find("relid") != l.npos; },
      kTimeout));
  EXPECT_TRUE(testpmd_run_->WaitForLine(
      [](std::string_view l) { return l.find("registered as guest RAM") != l.npos; }, kTimeout));
  const auto code = StopTestpmd();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << Output();
}

TEST_F(DpdkTest, FourQueuesOpenThreeSubchannelsAndTxonlyRxonlyCarryEveryFrame) {
  const uint64_t frames = FrameCount();
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(kQueues, "txonly"));
  EXPECT_TRUE(testpmd_run_->WaitForLineCount(
      [](std::string_view l) { return l.find("uio: sub-channel relid") == 0; }, kQueues - 1,
      kTimeout))
      << Output();
  const PeerResult rx = ReceiveTxonly(*peer_->nic, testpmd_mac_, frames, kTimeout);
  const auto code = StopTestpmd();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << Output();
  EXPECT_GE(rx.received, frames);
  EXPECT_EQ(rx.bad, 0u);
  const auto [pmd_rx, pmd_tx] = PortCounters();
  EXPECT_GE(pmd_tx, rx.received);
  const auto tx_queues = QueueCounters();
  ASSERT_EQ(tx_queues.size(), kQueues) << Output();
  for (const auto& [q, n] : tx_queues) EXPECT_GT(n.second, 0u) << "txonly queue " << q;
  std::printf("txonly: testpmd sent %llu, the uvmbus guest received %llu checked frames (%llu bad)\n",
              static_cast<unsigned long long>(pmd_tx), static_cast<unsigned long long>(rx.received),
              static_cast<unsigned long long>(rx.bad));
  // rxonly: every frame the guest sends is counted by testpmd, on every queue.
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(kQueues, "rxonly"));
  const auto start = Clock::now();
  const PeerResult tx = RunPeer(*peer_->nic, testpmd_mac_, frames, false, 200'000);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(tx.sent, frames);
  ASSERT_TRUE(StopTestpmd().has_value());
  EXPECT_EQ(PortCounters().first, frames) << Output();
  const auto rx_queues = QueueCounters();
  ASSERT_EQ(rx_queues.size(), kQueues) << Output();
  for (const auto& [q, n] : rx_queues) EXPECT_GT(n.first, 0u) << "rxonly queue " << q;
  std::printf("rxonly: the uvmbus guest sent %llu in %.2f s, testpmd received %llu\n",
              static_cast<unsigned long long>(tx.sent), seconds,
              static_cast<unsigned long long>(PortCounters().first));
}

TEST_F(DpdkTest, MacswapWithFourQueuesReturnsEveryFrameIntactOnEveryQueue) {
  const uint64_t frames = FrameCount();
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(kQueues, "macswap"));
  ASSERT_TRUE(testpmd_run_->WaitForLineCount(
      [](std::string_view l) { return l.find("uio: sub-channel relid") == 0; }, kQueues - 1,
      kTimeout))
      << Output();
  const auto start = Clock::now();
  const PeerResult r = RunPeer(*peer_->nic, testpmd_mac_, frames, true);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto code = StopTestpmd();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << Output();
  EXPECT_EQ(r.sent, frames);
  EXPECT_EQ(r.received, frames);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_EQ(r.duplicates, 0u);
  const auto [pmd_rx, pmd_tx] = PortCounters();
  EXPECT_EQ(pmd_rx, frames) << Output();
  EXPECT_EQ(pmd_tx, frames);
  const auto queues = QueueCounters();
  ASSERT_EQ(queues.size(), kQueues) << Output();
  std::string split;
  for (const auto& [q, n] : queues) {
    EXPECT_GT(n.first, 0u) << "queue " << q;
    EXPECT_EQ(n.first, n.second) << "queue " << q;
    split += fmt::format(" q{}={}", q, n.first);
  }
  std::printf("macswap: %llu frames returned intact in %.2f s; per queue:%s\n",
              static_cast<unsigned long long>(r.received), seconds, split.c_str());
}

TEST_F(DpdkTest, SigkillOfTestpmdReleasesItsChannelsAndANewRunWorks) {
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(kQueues, "macswap"));
  ASSERT_TRUE(testpmd_run_->WaitForLineCount(
      [](std::string_view l) { return l.find("uio: sub-channel relid") == 0; }, kQueues - 1,
      kTimeout));
  const PeerResult warm = RunPeer(*peer_->nic, testpmd_mac_, 10'000, true);
  EXPECT_EQ(warm.received, 10'000u);
  auto pid_index = testpmd_run_->WaitForLine(
      [](std::string_view l) { return l.find(" is pid ") != std::string_view::npos; }, kTimeout);
  ASSERT_TRUE(pid_index.has_value());
  const std::string line = testpmd_run_->Lines(*pid_index)[0];
  const pid_t pid = static_cast<pid_t>(std::stol(line.substr(line.rfind(' ') + 1)));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  const auto code = testpmd_run_->Wait(kTimeout);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 128 + SIGKILL) << Output();
  EXPECT_TRUE(host_->WaitForLine(
      [](std::string_view l) {
        return l.find("guest dpdk") != l.npos && l.find("releasing everything") != l.npos;
      },
      kTimeout));
  // The uvmbus guest is unaffected: its NIC is up, and a new testpmd run forwards its frames.
  EXPECT_TRUE(peer_->nic->link_up());
  ASSERT_NO_FATAL_FAILURE(StartTestpmd(kQueues, "macswap"));
  ASSERT_TRUE(testpmd_run_->WaitForLineCount(
      [](std::string_view l) { return l.find("uio: sub-channel relid") == 0; }, kQueues - 1,
      kTimeout));
  const PeerResult again = RunPeer(*peer_->nic, testpmd_mac_, 10'000, true);
  EXPECT_EQ(again.received, 10'000u) << HostOutput();
  EXPECT_EQ(again.bad, 0u);
  const auto second = StopTestpmd();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*second, 0) << Output();
}

}  // namespace
}  // namespace uvmbus::tools
