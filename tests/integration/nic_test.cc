// End-to-end tests of the synthetic NIC through the real `uvmbus` binary: a host process with a
// switch, guest processes running netvsc and the traffic tool (tools/traffic.h), `uvmbus stats`
// against the host's counters, `uvmbus demo`, and (as root) the --tap demo with the system ping
// and tcpdump. Every wait is on a child's output line or exit, with a timeout; a failing test's
// children are killed by Subprocess's destructor.
//
// Frame count: 200,000 frames each way. Under a sanitizer build (detected at compile time) the
// default is 20,000 so the test stays well inside the ctest timeout; UVMBUS_NIC_TEST_FRAMES
// overrides either.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/scratch_dir.h"
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/subprocess.h"

#ifndef UVMBUS_BINARY
#error "UVMBUS_BINARY must name the uvmbus executable"
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UVMBUS_NIC_SANITIZED 1
#endif

namespace uvmbus::tools {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr milliseconds kTimeout{60'000};
constexpr uint32_t kQueues = 4;

uint64_t FrameCount() {
  if (const char* env = ::getenv("UVMBUS_NIC_TEST_FRAMES"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
#ifdef UVMBUS_NIC_SANITIZED
  return 20'000;
#else
  return 200'000;
#endif
}

using ScratchDir = ::uvmbus::testing::ScratchDir;

std::unique_ptr<Subprocess> Spawn(std::vector<std::string> args, bool merge_stderr = false) {
  args.insert(args.begin(), UVMBUS_BINARY);
  Subprocess::Options options;
  options.merge_stderr = merge_stderr;
  auto p = Subprocess::Spawn(args, options);
  EXPECT_TRUE(p) << p.error();
  return p ? std::move(*p) : nullptr;
}

struct RunResult {
  std::optional<int> code;
  std::string out;
};
RunResult RunProgram(std::vector<std::string> argv, milliseconds timeout = kTimeout) {
  Subprocess::Options options;
  options.merge_stderr = true;
  auto p = Subprocess::Spawn(argv, options);
  if (!p) return {};
  RunResult r;
  r.code = (*p)->Wait(timeout);
  (*p)->WaitForStdoutClosed(timeout);
  for (const std::string& line : (*p)->Lines()) r.out += line + "\n";
  return r;
}
RunResult RunUvmbus(std::vector<std::string> args, milliseconds timeout = kTimeout) {
  args.insert(args.begin(), UVMBUS_BINARY);
  return RunProgram(std::move(args), timeout);
}

std::string AllLines(Subprocess& p) {
  std::string out;
  for (const std::string& line : p.Lines()) out += line + "\n";
  return out;
}

// The guest's {"traffic": {...}} line, once it printed it.
json TrafficResult(Subprocess& guest, milliseconds timeout) {
  auto index = guest.WaitForLine(
      [](std::string_view line) { return line.starts_with("{\"traffic\":"); }, timeout);
  if (!index) return nullptr;
  return json::parse(guest.Lines(*index)[0], nullptr, false)["traffic"];
}

uint64_t Sum(const json& flat, std::string_view prefix, std::string_view suffix) {
  uint64_t total = 0;
  for (const auto& [name, value] : flat.items()) {
    if (name.starts_with(prefix) && name.ends_with(suffix)) total += value.get<uint64_t>();
  }
  return total;
}

std::string FindProgram(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"}) {
    const std::string path = std::string(dir) + "/" + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

TEST(NicTest, TwoGuestsWithFourQueuesExchangeEveryFrameIntactOverASwitch) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string socket = dir.path() + "/vmbus.sock";
  const uint64_t frames = FrameCount();
  const std::string nic = "queues=" + std::to_string(kQueues) + ",backend=switch:sw0";
  auto host = Spawn({"host", "--socket", socket, "--heartbeat-interval", "60000", "--nic", nic,
                     "--log-level", "warn"});
  ASSERT_NE(host, nullptr);

  const std::string timeout_s = std::to_string(kTimeout.count() / 1000);
  // Ready when its admin socket answers; the host's exit doubles as the back-off delay.
  bool ready = false;
  for (milliseconds backoff{1}; !ready && !host->ExitCode(); backoff = std::min(backoff * 2,
                                                                               milliseconds(50))) {
    ready = AdminCall(AdminSocketPath(socket), kAdminCommandVersion, 2000).has_value();
    if (!ready) (void)host->Wait(backoff);
  }
  ASSERT_TRUE(ready) << "the host never answered";
  // The guests retry their ARP request until the peer answers, so the start order is free.
  auto start_guest = [&](const std::string& name, const std::string& addr,
                         const std::string& peer) {
    return Spawn({"guest", "--socket", socket, "--name", name, "--cpus", std::to_string(kQueues),
                  "--addr", addr, "--traffic",
                  "peer=" + peer + ",frames=" + std::to_string(frames) +
                      ",sizes=60-MTU,flows=64,stay=on,timeout=" + timeout_s});
  };
  auto alpha = start_guest("alpha", "10.0.0.1/24", "10.0.0.2");
  auto beta = start_guest("beta", "10.0.0.2/24", "10.0.0.1");
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(beta, nullptr);

  const json a = TrafficResult(*alpha, kTimeout + milliseconds(30'000));
  const json b = TrafficResult(*beta, kTimeout + milliseconds(30'000));
  ASSERT_TRUE(a.is_object()) << AllLines(*alpha);
  ASSERT_TRUE(b.is_object()) << AllLines(*beta);
  for (const json* r : {&a, &b}) {
    SCOPED_TRACE(r->dump());
    EXPECT_TRUE(r->value("ok", false));
    EXPECT_EQ(r->value("sent", 0u), frames);
    EXPECT_EQ(r->value("acked", 0u), frames);
    EXPECT_EQ(r->value("received", 0u), frames);
    EXPECT_EQ(r->value("bad", 1u), 0u);
    EXPECT_EQ(r->value("duplicates", 1u), 0u);
    ASSERT_EQ((*r)["tx_queue"].size(), kQueues);
    ASSERT_EQ((*r)["rx_queue"].size(), kQueues);
    for (uint32_t q = 0; q < kQueues; ++q) {
      EXPECT_GE((*r)["tx_queue"][q].get<uint64_t>() * 10, frames) << "tx queue " << q;
      EXPECT_GE((*r)["rx_queue"][q].get<uint64_t>() * 10, frames) << "rx queue " << q;
    }
  }

  // The host's view (the guests stay up after their run: stay=on).
  RunResult stats = RunUvmbus({"stats", "--socket", socket, "--json"});
  ASSERT_EQ(stats.code, 0) << stats.out;
  const json s = json::parse(stats.out, nullptr, false);
  ASSERT_TRUE(s.contains("alpha") && s.contains("beta")) << stats.out;
  const json& ha = s["alpha"]["net0"];
  const json& hb = s["beta"]["net0"];
  for (const auto& [host_nic, guest, peer_nic] :
       {std::tuple(&ha, &a, &hb), std::tuple(&hb, &b, &ha)}) {
    SCOPED_TRACE(host_nic->dump());
    // Every frame the guest's netvsc took was transmitted by the host (nothing since: the
    // guest only answers ARP/ICMP after its run, and nobody asks).
    EXPECT_EQ(Sum(*host_nic, "tx_queue_", "_packets"), guest->value("frames_out", 0u));
    // Delivered to the guest: at least what it read during its run, at most what the peer's
    // NIC transmitted.
    const uint64_t delivered = Sum(*host_nic, "rx_queue_", "_packets");
    EXPECT_GE(delivered, guest->value("frames_in", 0u));
    EXPECT_LE(delivered, Sum(*peer_nic, "tx_queue_", "_packets"));
    for (uint32_t q = 0; q < kQueues; ++q) {
      const std::string n = std::to_string(q);
      EXPECT_GE((*host_nic)["tx_queue_" + n + "_packets"].get<uint64_t>(),
                (*guest)["tx_queue"][q].get<uint64_t>());
      EXPECT_GE((*host_nic)["rx_queue_" + n + "_packets"].get<uint64_t>(),
                (*guest)["rx_queue"][q].get<uint64_t>());
    }
    for (const char* zero : {"rx_no_buffer", "rx_ring_full", "rx_steer_full", "tx_backend_busy",
                             "ring_corrupt", "tx_bad_gpa", "tx_bad_rndis", "tx_bad_section",
                             "rx_completion_unknown", "nvsp_malformed"}) {
      EXPECT_EQ((*host_nic)[zero], 0) << zero;
    }
  }

  RunResult channels = RunUvmbus({"channels", "--socket", socket, "--guest", "alpha"});
  EXPECT_EQ(channels.code, 0);
  EXPECT_THAT(channels.out, HasSubstr("Channel parameters for alpha/net0:\nPre-set maximums:\n"
                                      "RX:\t\tn/a\nTX:\t\tn/a\nOther:\t\tn/a\nCombined:\t4\n"));
  RunResult ls = RunUvmbus({"ls", "--socket", socket, "-v"});
  EXPECT_EQ(ls.code, 0);
  EXPECT_THAT(ls.out, HasSubstr("Synthetic network adapter\n\tRel_ID=2, target_cpu=0\n"
                                "\tRel_ID=3, target_cpu=1\n\tRel_ID=4, target_cpu=2\n"
                                "\tRel_ID=5, target_cpu=3\n"));

  // SIGTERM: each guest exits with its run's status, the host cleanly.
  for (Subprocess* p : {alpha.get(), beta.get()}) {
    ASSERT_TRUE(p->Signal(SIGTERM));
    EXPECT_EQ(p->Wait(kTimeout), 0) << AllLines(*p);
  }
  ASSERT_TRUE(host->Signal(SIGTERM));
  EXPECT_EQ(host->Wait(kTimeout), 0);
}

TEST(NicTest, DemoExitsZeroAndPrintsTheCountersAndRates) {
  RunResult r = RunUvmbus({"demo"}, milliseconds(120'000));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("netvsc: "));
  EXPECT_THAT(r.out, HasSubstr("sub-channel:"));
  EXPECT_THAT(r.out, HasSubstr("Rel_ID=3, target_cpu=1"));
  EXPECT_THAT(r.out, HasSubstr("arp: 10.0.0.2 is-at 00:15:5d:"));
  EXPECT_THAT(r.out, HasSubstr("ping: 64 bytes from 10.0.0.2: icmp_seq=1"));
  EXPECT_THAT(r.out, HasSubstr("NIC statistics:\n         tx_queue_0_packets: "));
  EXPECT_THAT(r.out, HasSubstr("rx_queue_1_packets: "));
  EXPECT_THAT(r.out, HasSubstr(" pps, "));
  EXPECT_THAT(r.out, HasSubstr("Mbit/s"));
  EXPECT_THAT(r.out, HasSubstr("every one intact; every process exited 0."));
}

TEST(NicTest, TapDemoPassesPingsBetweenTwoNamespacesAndCapturesThem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (TAP devices, network namespaces)";
  struct stat st {};
  if (::stat("/dev/net/tun", &st) != 0) GTEST_SKIP() << "no /dev/net/tun";
  const std::string tcpdump = FindProgram("tcpdump");
  if (FindProgram("ping").empty() || FindProgram("ip").empty() || tcpdump.empty()) {
    GTEST_SKIP() << "needs ping, ip and tcpdump installed";
  }
  RunResult r = RunUvmbus({"demo", "--tap"}, milliseconds(120'000));
  EXPECT_EQ(r.code, 0) << r.out;
  // ping's summary, once per direction.
  const std::string summary = "20 packets transmitted, 20 received, 0% packet loss";
  const size_t first = r.out.find(summary);
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_NE(r.out.find(summary, first + 1), std::string::npos) << r.out;

  // The capture the demo kept: tcpdump reads it and finds the echoes (each crosses two NICs).
  const size_t at = r.out.find("\npcap: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string pcap = r.out.substr(at + 7, r.out.find('\n', at + 7) - (at + 7));
  RunResult dump = RunProgram({tcpdump, "-n", "-r", pcap, "icmp"});
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(pcap).parent_path(), ec);
  EXPECT_EQ(dump.code, 0) << dump.out;
  size_t requests = 0;
  size_t replies = 0;
  for (size_t pos = 0; (pos = dump.out.find("ICMP echo request", pos)) != std::string::npos;
       ++pos) {
    ++requests;
  }
  for (size_t pos = 0; (pos = dump.out.find("ICMP echo reply", pos)) != std::string::npos;
       ++pos) {
    ++replies;
  }
  EXPECT_GE(requests, 80u) << dump.out;
  EXPECT_GE(replies, 80u) << dump.out;
}

}  // namespace
}  // namespace uvmbus::tools
