// Crash and restart, both directions (issue 5 item 3; docs/robustness.md section 4), through the
// real `uvmbus` binary:
//   * the host killed (SIGKILL) or stopped (SIGTERM) and started again: guests mark their links
//     down, keep their TAP interfaces, reconnect with back-off, re-negotiate, re-probe and carry
//     traffic again; --reconnect=off keeps the old exit 3;
//   * a guest killed with SIGKILL during bring-up, during the sub-channel opening and
//     mid-traffic: the host frees what it had, the other guests' traffic loses nothing, and the
//     same guest name is accepted again;
//   * peers that stop answering: a host that never answers (scripted here on the socket
//     protocol), a guest that never sends EOM (a raw partition in this process);
//   * the rescind of a NIC while it serves a peer (admin "nic-remove") and its re-add ("nic-add").
// Every wait is on an observable state (a child's stdout line, the admin socket's answer, a
// child's exit) with a deadline; children are killed by Subprocess's destructor when a test
// fails. The guests run under the build's sanitizers: a guest that exits 0 had no ASan/LSan
// report (they exit non-zero on one).
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/scratch_dir.h"
#include "common/unique_fd.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_protocol.h"
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/exit_codes.h"
#include "tools/guest_session.h"
#include "tools/subprocess.h"
#include "wire/channel_messages.h"
#include "wire/versions.h"

#ifndef UVMBUS_BINARY
#error "UVMBUS_BINARY must name the uvmbus executable"
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UVMBUS_RESTART_SANITIZED 1
#endif

namespace uvmbus::tools {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr milliseconds kTimeout{60'000};

#ifdef UVMBUS_RESTART_SANITIZED
constexpr uint64_t kPairFrames = 5'000;      // each way, per run
constexpr uint64_t kLongFrames = 100'000;    // the bystanders' run while a victim dies
#else
constexpr uint64_t kPairFrames = 50'000;
constexpr uint64_t kLongFrames = 1'000'000;
#endif

using ScratchDir = ::uvmbus::testing::ScratchDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string AllLines(Subprocess& p) {
  std::string out;
  for (const std::string& line : p.Lines()) out += line + "\n";
  return out;
}

auto Prefix(std::string prefix) {
  return [prefix = std::move(prefix)](std::string_view line) { return line.starts_with(prefix); };
}
auto Contains(std::string part) {
  return [part = std::move(part)](std::string_view line) {
    return line.find(part) != std::string_view::npos;
  };
}

// Every {"traffic": ...} line a guest printed so far.
std::vector<json> TrafficLines(Subprocess& guest) {
  std::vector<json> out;
  for (const std::string& line : guest.Lines()) {
    if (!line.starts_with("{\"traffic\":")) continue;
    out.push_back(json::parse(line, nullptr, false)["traffic"]);
  }
  return out;
}

// The guest's {"guest": {...}} counters line (printed at exit).
json GuestCounters(Subprocess& guest) {
  for (const std::string& line : guest.Lines()) {
    if (line.starts_with("{\"guest\":")) return json::parse(line, nullptr, false)["guest"];
  }
  return nullptr;
}

// One admin request with arguments on a fresh connection (admin_client.h sends none).
Expected<json> AdminRequestWithArgs(const std::string& path, const std::string& command,
                                    const json& args) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return MakeError(ErrorCode::kUnavailable, "connect {}", path);
  }
  const std::string line = json{{"command", command}, {"args", args}}.dump() + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    return MakeError(ErrorCode::kIo, "write");
  }
  std::string in;
  char buf[4096];
  while (in.find('\n') == std::string::npos) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kTimeout.count())) <= 0) {
      return MakeError(ErrorCode::kTimeout, "no answer");
    }
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) return MakeError(ErrorCode::kIo, "read");
    in.append(buf, static_cast<size_t>(n));
  }
  return ParseAdminResponse(in.substr(0, in.find('\n')));
}

const json* FindGuest(const json& doc, std::string_view name) {
  if (!doc.contains("guests")) return nullptr;
  for (const json& g : doc["guests"]) {
    if (g.value("name", "") == name) return &g;
  }
  return nullptr;
}

// The guest's NIC devices in the ls document (devices with "nic" extras).
size_t NicCount(const json& guest) {
  size_t n = 0;
  for (const auto& [key, device] : guest["devices"].items()) {
    if (device.contains("nic") && !device.value("rescinded", false)) ++n;
  }
  return n;
}

size_t FdCount(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

std::string FindProgram(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"}) {
    const std::string path = std::string(dir) + "/" + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    socket_ = dir_.path() + "/vmbus.sock";
  }

  std::string admin() const { return AdminSocketPath(socket_); }

  std::unique_ptr<Subprocess> Spawn(std::vector<std::string> args, bool merge_stderr = false) {
    args.insert(args.begin(), UVMBUS_BINARY);
    Subprocess::Options options;
    options.merge_stderr = merge_stderr;
    auto p = Subprocess::Spawn(args, options);
    EXPECT_TRUE(p) << p.error();
    return p ? std::move(*p) : nullptr;
  }

  // Starts `uvmbus host` with `extra` flags and waits until its admin socket answers.
  std::unique_ptr<Subprocess> StartHost(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"host", "--socket", socket_, "--heartbeat-interval", "20",
                                     "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto host = Spawn(args);
    if (host == nullptr) return nullptr;
    bool ready = false;
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (milliseconds backoff{1}; !ready && std::chrono::steady_clock::now() < deadline;
         backoff = std::min(backoff * 2, milliseconds(50))) {
      ready = AdminCall(admin(), kAdminCommandVersion, 2000).has_value();
      if (!ready && host->Wait(backoff)) break;  // exited
    }
    EXPECT_TRUE(ready) << "the host never answered on " << admin();
    return host;
  }

  std::unique_ptr<Subprocess> StartGuest(const std::string& name,
                                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"guest", "--socket", socket_, "--name", name, "--cpus", "2"};
    if (std::find(extra.begin(), extra.end(), "--host-timeout") == extra.end()) {
      args.insert(args.end(), {"--host-timeout", "2000"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return Spawn(args, /*merge_stderr=*/true);
  }

  // Polls the admin "ls" document until `pred` holds; returns the last document.
  json WaitForLs(const std::function<bool(const json&)>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    json last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto doc = AdminCall(admin(), kAdminCommandLs, 2000);
      if (doc) {
        last = *doc;
        if (pred(last)) return last;
      }
      std::this_thread::yield();
      // Back-off by waiting on something observable: a short poll on nothing is the only
      // option here (no child to wait on); the admin round trip itself paces the loop.
      ::poll(nullptr, 0, 10);
    }
    ADD_FAILURE() << "condition on the ls document never held; last: " << last.dump(2);
    return last;
  }

  static bool WaitUntil(const std::function<bool()>& pred, milliseconds timeout = kTimeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      ::poll(nullptr, 0, 10);
    }
    return pred();
  }

  // The `uvmbus stats --json` document.
  json Stats() {
    auto p = Spawn({"stats", "--socket", socket_, "--json"});
    if (p == nullptr) return nullptr;
    p->Wait(kTimeout);
    p->WaitForStdoutClosed(kTimeout);
    std::string out;
    for (const std::string& l : p->Lines()) out += l;
    return json::parse(out, nullptr, false);
  }

  static void ExpectCleanExit(Subprocess& p, int code = 0) {
    ASSERT_TRUE(p.Signal(SIGTERM));
    EXPECT_EQ(p.Wait(kTimeout), code) << AllLines(p);
    p.WaitForStdoutClosed(kTimeout);
  }

  ScratchDir dir_;
  std::string socket_;
};

// ---------------------------------------------------------------------------------------------
// The back-off between reconnect attempts (pure)

TEST(ReconnectBackoffTest, DoublesFromOneHundredMillisecondsToFiveSecondsWithEqualJitter) {
  for (uint64_t seed : {1u, 42u, 4242u}) {
    ReconnectBackoff backoff(seed);
    const std::vector<int64_t> bases = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < bases.size(); ++i) {
      EXPECT_EQ(backoff.base().count(), bases[i]) << "step " << i;
      const int64_t d = backoff.Next().count();
      EXPECT_GE(d, bases[i] / 2) << "step " << i;
      EXPECT_LE(d, bases[i]) << "step " << i;
      EXPECT_EQ(backoff.step(), i + 1);
    }
    backoff.Reset();
    EXPECT_EQ(backoff.step(), 0u);
    EXPECT_EQ(backoff.base().count(), 100);
  }
}

TEST(ReconnectBackoffTest, DifferentSeedsSpreadTheDelays) {
  std::vector<int64_t> first;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    ReconnectBackoff backoff(seed, milliseconds(1000), milliseconds(1000));
    first.push_back(backoff.Next().count());
  }
  std::sort(first.begin(), first.end());
  EXPECT_LT(first.front(), first.back()) << "16 guests would reconnect in lock-step";
}

// ---------------------------------------------------------------------------------------------
// The host goes away and comes back

TEST_F(RestartTest, HostKilledGuestsMarkLinksDownReconnectAndCarryTrafficAgain) {
  auto host = StartHost({"--nic", "queues=2,backend=switch:sw0"});
  ASSERT_NE(host, nullptr);
  const std::string frames = std::to_string(kPairFrames);
  auto alpha = StartGuest("alpha", {"--addr", "10.0.0.1/24", "--traffic",
                                    "peer=10.0.0.2,frames=" + frames + ",stay=on,timeout=60"});
  auto beta = StartGuest("beta", {"--addr", "10.0.0.2/24", "--traffic",
                                  "peer=10.0.0.1,frames=" + frames + ",stay=on,timeout=60"});
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(beta, nullptr);
  for (Subprocess* g : {alpha.get(), beta.get()}) {
    ASSERT_TRUE(g->WaitForLine(Prefix("{\"traffic\":"), kTimeout)) << AllLines(*g);
    ASSERT_EQ(TrafficLines(*g).size(), 1u);
    EXPECT_TRUE(TrafficLines(*g)[0].value("ok", false)) << AllLines(*g);
  }

  // SIGKILL: no rescind, no goodbye. Each guest sees the hang-up, takes its link down, and
  // backs off while nobody listens (at least one failed attempt each).
  ASSERT_TRUE(host->Signal(SIGKILL));
  EXPECT_EQ(host->Wait(kTimeout), SignalExitCode(SIGKILL));
  for (Subprocess* g : {alpha.get(), beta.get()}) {
    EXPECT_TRUE(g->WaitForLine(Contains("the host hung up (answered"), kTimeout)) << AllLines(*g);
    EXPECT_TRUE(g->WaitForLine(Prefix("link: "), kTimeout)) << AllLines(*g);
    EXPECT_TRUE(g->WaitForLine(Prefix("reconnect: session 1 lost; first attempt in "), kTimeout));
    EXPECT_TRUE(g->WaitForLine(Prefix("reconnect: attempt 1 failed: "), kTimeout))
        << AllLines(*g);
    EXPECT_TRUE(g->Running());
  }
  EXPECT_TRUE(alpha->WaitForLine(Contains("down (the host hung up)"), milliseconds(0)))
      << AllLines(*alpha);

  // The host returns on the same socket (the stale file is replaced): fresh negotiation, offers,
  // probes, the NIC reattached, and a second traffic run that passes.
  host = StartHost({"--nic", "queues=2,backend=switch:sw0"});
  ASSERT_NE(host, nullptr);
  for (Subprocess* g : {alpha.get(), beta.get()}) {
    EXPECT_TRUE(g->WaitForLine(Prefix("reconnected: session "), kTimeout)) << AllLines(*g);
    EXPECT_TRUE(g->WaitForLineCount(Prefix("connected: VMBus 5.3"), 2, kTimeout));
    EXPECT_TRUE(g->WaitForLineCount(Contains("-> driver hv_netvsc"), 2, kTimeout));
    EXPECT_TRUE(g->WaitForLineCount(Prefix("{\"traffic\":"), 2, kTimeout)) << AllLines(*g);
    const std::vector<json> runs = TrafficLines(*g);
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_TRUE(runs[1].value("ok", false)) << runs[1].dump();
    EXPECT_EQ(runs[1].value("received", 0u), kPairFrames);
    EXPECT_EQ(runs[1].value("bad", 1u), 0u);
  }
  const json doc = WaitForLs([](const json& d) {
    const json* a = FindGuest(d, "alpha");
    const json* b = FindGuest(d, "beta");
    return a != nullptr && b != nullptr && NicCount(*a) == 1 && NicCount(*b) == 1;
  });
  EXPECT_EQ(doc["totals"]["guests"], 2u);

  for (Subprocess* g : {alpha.get(), beta.get()}) {
    ExpectCleanExit(*g);
    const json c = GuestCounters(*g);
    ASSERT_TRUE(c.is_object()) << AllLines(*g);
    EXPECT_EQ(c["sessions"], 2u);
    EXPECT_EQ(c["reconnects"], 1u);
    EXPECT_EQ(c["host_losses"], 1u);
    EXPECT_GE(c["connect_failures"].get<uint64_t>(), 1u);
    EXPECT_EQ(c["connect_attempts"].get<uint64_t>(), c["connect_failures"].get<uint64_t>() + 1);
    EXPECT_GE(c["link_downs"].get<uint64_t>(), 1u);
    EXPECT_EQ(c["nic_attaches"], 2u);
  }
  ExpectCleanExit(*host);
}

TEST_F(RestartTest, HostStoppedAndStartedAgainGuestReconnectsAndAnswersHeartbeats) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  auto guest = StartGuest("phoenix");
  ASSERT_NE(guest, nullptr);
  ASSERT_TRUE(guest->WaitForLineCount(Prefix("heartbeat: seq="), 5, kTimeout));
  // SIGTERM: the host rescinds every device, waits for the release, then hangs up.
  ExpectCleanExit(*host);
  EXPECT_TRUE(guest->WaitForLine(Prefix("rescind: relid 1"), kTimeout)) << AllLines(*guest);
  EXPECT_TRUE(guest->WaitForLine(Prefix("reconnect: session 1 lost"), kTimeout));
  const size_t before = guest->LineCount();
  host = StartHost();
  ASSERT_NE(host, nullptr);
  EXPECT_TRUE(guest->WaitForLine(Prefix("reconnected: session "), kTimeout)) << AllLines(*guest);
  EXPECT_TRUE(guest->WaitForLineCount(Prefix("heartbeat: seq="), 5, kTimeout, before));
  ExpectCleanExit(*guest);
  ExpectCleanExit(*host);
}

TEST_F(RestartTest, ReconnectOffExitsThreeWhenTheHostIsKilled) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  auto guest = StartGuest("oneshot", {"--reconnect=off"});
  ASSERT_NE(guest, nullptr);
  ASSERT_TRUE(guest->WaitForLine(Prefix("heartbeat: seq="), kTimeout));
  ASSERT_TRUE(host->Signal(SIGKILL));
  EXPECT_EQ(guest->Wait(kTimeout), ToInt(ExitCode::kHostUnavailable));
  guest->WaitForStdoutClosed(kTimeout);
  EXPECT_TRUE(guest->WaitForLine(Contains("the host hung up"), milliseconds(0)));
  EXPECT_FALSE(guest->WaitForLine(Prefix("reconnect:"), milliseconds(0)));
}

TEST_F(RestartTest, TapInterfaceKeepsItsIndexAndAddressAcrossAHostRestart) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (TAP devices, network namespaces)";
  struct stat st {};
  if (::stat("/dev/net/tun", &st) != 0) GTEST_SKIP() << "no /dev/net/tun";
  const std::string ip = FindProgram("ip");
  const std::string ping = FindProgram("ping");
  if (ip.empty() || ping.empty()) GTEST_SKIP() << "needs ip and ping installed";
  const std::string ns = "uvmbus-rs-" + std::to_string(::getpid());
  auto run = [&](std::vector<std::string> argv) {
    Subprocess::Options options;
    options.merge_stderr = true;
    auto p = Subprocess::Spawn(argv, options);
    if (!p) return std::pair<int, std::string>{-1, ""};
    const int code = (*p)->Wait(kTimeout).value_or(-1);
    (*p)->WaitForStdoutClosed(kTimeout);
    return std::pair<int, std::string>{code, AllLines(**p)};
  };
  ASSERT_EQ(run({ip, "netns", "add", ns}).first, 0);
  struct NetnsGuard {
    std::function<void()> f;
    ~NetnsGuard() { f(); }
  } guard{[&] { run({ip, "netns", "delete", ns}); }};

  auto host = StartHost({"--nic", "queues=2,backend=switch:sw0"});
  ASSERT_NE(host, nullptr);
  auto tapped = StartGuest("tapped", {"--tap", "uvrs0,netns=" + ns + ",addr=10.0.0.1/24"});
  auto beta = StartGuest("beta", {"--addr", "10.0.0.2/24"});
  ASSERT_NE(tapped, nullptr);
  ASSERT_NE(beta, nullptr);
  ASSERT_TRUE(tapped->WaitForLine(Prefix("link: "), kTimeout)) << AllLines(*tapped);
  ASSERT_TRUE(beta->WaitForLine(Prefix("responder: "), kTimeout)) << AllLines(*beta);
  auto link = [&] { return run({ip, "-n", ns, "-o", "link", "show", "uvrs0"}).second; };
  auto pings = [&] {
    return WaitUntil([&] {
      return run({ip, "netns", "exec", ns, ping, "-c", "1", "-W", "1", "10.0.0.2"}).first == 0;
    });
  };
  const std::string before = link();
  ASSERT_THAT(before, HasSubstr("uvrs0"));
  const std::string index = before.substr(0, before.find(':'));
  EXPECT_TRUE(pings()) << "no echo reply through the TAP";

  ASSERT_TRUE(host->Signal(SIGKILL));
  EXPECT_TRUE(tapped->WaitForLine(Contains("TAP uvrs0 kept, carrier off"), kTimeout))
      << AllLines(*tapped);
  EXPECT_THAT(link(), HasSubstr("NO-CARRIER"));

  host = StartHost({"--nic", "queues=2,backend=switch:sw0"});
  ASSERT_NE(host, nullptr);
  EXPECT_TRUE(tapped->WaitForLine(Prefix("tap: "), kTimeout));
  EXPECT_TRUE(tapped->WaitForLineCount(Prefix("link: "), 3, kTimeout)) << AllLines(*tapped);
  EXPECT_TRUE(tapped->WaitForLine(Contains("reattached to interface uvrs0"), kTimeout));
  EXPECT_TRUE(beta->WaitForLine(Prefix("reconnected: session "), kTimeout));
  const std::string after = link();
  EXPECT_EQ(after.substr(0, after.find(':')), index) << before << after;
  EXPECT_THAT(run({ip, "-n", ns, "-o", "addr", "show", "uvrs0"}).second,
              HasSubstr("10.0.0.1/24"));
  EXPECT_TRUE(WaitUntil([&] { return link().find("NO-CARRIER") == std::string::npos; }));
  EXPECT_TRUE(pings()) << "no echo reply after the host restart";
  ExpectCleanExit(*tapped);
  ExpectCleanExit(*beta);
  ExpectCleanExit(*host);
}

// ---------------------------------------------------------------------------------------------
// A guest dies

TEST_F(RestartTest, GuestKilledAtAnyPointIsReleasedAndTheOthersLoseNothing) {
  constexpr const char* kVictimMac = "00:15:5d:0a:0b:0c";
  auto host = StartHost({"--nic", "guest=alpha,queues=2", "--nic", "guest=beta,queues=2",
                         "--nic", std::string("guest=victim,queues=2,backend=loopback,mac=") +
                                      kVictimMac});
  ASSERT_NE(host, nullptr);
  const std::string frames = std::to_string(kLongFrames);
  auto alpha = StartGuest("alpha", {"--addr", "10.0.0.1/24", "--traffic",
                                    "peer=10.0.0.2,frames=" + frames + ",stay=on,timeout=300"});
  auto beta = StartGuest("beta", {"--addr", "10.0.0.2/24", "--traffic",
                                  "peer=10.0.0.1,frames=" + frames + ",stay=on,timeout=300"});
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(beta, nullptr);
  ASSERT_TRUE(alpha->WaitForLine(Prefix("traffic: " + frames + " frames"), kTimeout))
      << AllLines(*alpha);
  const json idle = WaitForLs([](const json& d) { return d["guests"].size() == 2; });
  const size_t fds_before = FdCount(host->pid());
  const std::string maps = "/proc/" + std::to_string(host->pid()) + "/maps";

  // Kill points: bring-up (right after the version was negotiated), sub-channel opening, and
  // once its NIC's traffic loop started sending (the loopback NIC).
  const std::vector<std::pair<std::string, std::function<bool(std::string_view)>>> stages = {
      {"bring-up", Prefix("connected: VMBus")},
      {"sub-channel opening", Prefix("sub-channel: ")},
      {"mid-traffic", Prefix("traffic: " + std::to_string(kLongFrames) + " frames")},
  };
  for (const auto& [stage, when] : stages) {
    SCOPED_TRACE(stage);
    auto victim = StartGuest(
        "victim", {"--traffic", std::string("peer=") + kVictimMac + ",frames=" + frames +
                                    ",stay=on,timeout=300"});
    ASSERT_NE(victim, nullptr);
    ASSERT_TRUE(victim->WaitForLine(when, kTimeout)) << AllLines(*victim);
    ASSERT_TRUE(victim->Signal(SIGKILL));
    EXPECT_EQ(victim->Wait(kTimeout), SignalExitCode(SIGKILL));
    const json after = WaitForLs([](const json& d) {
      return FindGuest(d, "victim") == nullptr && d["guests"].size() == 2;
    });
    const json* a = FindGuest(after, "alpha");
    const json* b = FindGuest(after, "beta");
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(after["totals"]["gpadls"].get<uint64_t>(),
              (*a)["gpadls"].get<uint64_t>() + (*b)["gpadls"].get<uint64_t>());
    EXPECT_EQ(after["totals"]["gpadls_in_progress"], 0u);
    EXPECT_EQ(after["totals"]["channels"], idle["totals"]["channels"]);
    EXPECT_EQ(after["totals"]["open_channels"], idle["totals"]["open_channels"]);
    EXPECT_TRUE(WaitUntil(
        [&] { return ReadFile(maps).find("memfd:uvmbus-guest-victim") == std::string::npos; }))
        << "the host still maps the dead guest's RAM";
  }
  // The same name is accepted again and gets its NIC up.
  auto again = StartGuest("victim");
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->WaitForLine(Contains(" link up, "), kTimeout)) << AllLines(*again);
  ExpectCleanExit(*again);
  WaitForLs([](const json& d) { return d["guests"].size() == 2; });
  // Descriptors did not grow (the switch ports, doorbells, memfds, sockets of the victims are
  // closed; the baseline may include a transient admin connection).
  EXPECT_TRUE(WaitUntil([&] { return FdCount(host->pid()) <= fds_before; }))
      << FdCount(host->pid()) << " fds, " << fds_before << " before";

  // The bystanders lost nothing: every frame of theirs arrived intact.
  for (Subprocess* g : {alpha.get(), beta.get()}) {
    ASSERT_TRUE(g->WaitForLine(Prefix("{\"traffic\":"), kTimeout + kTimeout)) << AllLines(*g);
    const json r = TrafficLines(*g)[0];
    EXPECT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_EQ(r.value("received", 0u), kLongFrames);
    EXPECT_EQ(r.value("bad", 1u), 0u);
    EXPECT_EQ(r.value("duplicates", 1u), 0u);
  }
  json s = Stats();
  for (const char* name : {"alpha", "beta"}) {
    for (const char* zero : {"rx_no_buffer", "rx_ring_full", "ring_corrupt", "tx_bad_gpa",
                             "tx_bad_rndis", "tx_bad_section", "nvsp_malformed"}) {
      EXPECT_EQ(s[name]["net0"].value(zero, 1u), 0u) << name << " " << zero;
    }
  }
  ExpectCleanExit(*alpha);
  ExpectCleanExit(*beta);
  ExpectCleanExit(*host);
}

// ---------------------------------------------------------------------------------------------
// Peers that stop answering

// A host that accepts guests on the socket protocol, accepts their HELLO and every hypercall
// (STATUS_REPLY success) but never delivers a SynIC message: no VERSION_RESPONSE, ever.
class SilentHost {
 public:
  explicit SilentHost(const std::string& path) {
    std::filesystem::remove(path);
    listen_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    ok_ = ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(listen_.get(), 8) == 0;
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    thread_ = std::thread([this] { Loop(); });
    path_ = path;
  }
  ~SilentHost() {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    thread_.join();
    std::filesystem::remove(path_);
  }
  bool ok() const { return ok_; }
  uint64_t connections() const { return connections_.load(); }
  uint64_t posts() const { return posts_.load(); }

 private:
  void Loop() {
    std::vector<UniqueFd> clients;
    for (;;) {
      std::vector<pollfd> fds{{stop_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (const UniqueFd& c : clients) fds.push_back({c.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) return;
      if (fds[1].revents != 0) {
        UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c) {
          ++connections_;
          clients.push_back(std::move(c));
        }
      }
      const size_t polled = fds.size() - 2;  // clients accepted above were not polled yet
      for (size_t i = 0; i < polled; ++i) {
        if (fds[i + 2].revents == 0) continue;
        auto d = partition::sockproto::ReceiveDatagram(clients[i].get());
        if (!d) {
          clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
          break;  // the fds vector no longer matches: poll again
        }
        Answer(clients[i].get(), *d);
      }
    }
  }
  void Answer(int fd, const partition::sockproto::Datagram& d) {
    namespace sp = partition::sockproto;
    if (d.bytes.size() < sizeof(sp::MsgHeader)) return;
    const auto h = sp::Load<sp::MsgHeader>(d.bytes);
    if (h.type == static_cast<uint16_t>(sp::MsgType::kHello)) {
      sp::HelloReply r{};
      r.header.type = static_cast<uint16_t>(sp::MsgType::kHelloReply);
      r.result = static_cast<uint32_t>(sp::HelloResult::kAccepted);
      r.version_major = sp::kVersionMajor;
      r.version_minor = sp::kVersionMinor;
      r.max_vcpus = 64;
      (void)sp::SendDatagram(fd, {reinterpret_cast<const uint8_t*>(&r), sizeof r}, {}, false);
    } else if (h.type == static_cast<uint16_t>(sp::MsgType::kPostMessage) ||
               h.type == static_cast<uint16_t>(sp::MsgType::kSignalEvent)) {
      ++posts_;
      sp::StatusReply r{};
      r.header.type = static_cast<uint16_t>(sp::MsgType::kStatusReply);
      r.header.seq = h.seq;
      r.status = 0;  // HV_STATUS_SUCCESS: accepted, and then nothing happens
      (void)sp::SendDatagram(fd, {reinterpret_cast<const uint8_t*>(&r), sizeof r}, {}, false);
    }
  }

  std::string path_;
  UniqueFd listen_;
  UniqueFd stop_;
  bool ok_ = false;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> posts_{0};
  std::thread thread_;
};

TEST_F(RestartTest, HostThatNeverAnswersTimesOutEachAttemptAndTheGuestKeepsRetrying) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  auto guest = StartGuest("patient", {"--host-timeout", "300"});
  ASSERT_NE(guest, nullptr);
  ASSERT_TRUE(guest->WaitForLine(Prefix("heartbeat: seq="), kTimeout));
  ASSERT_TRUE(host->Signal(SIGKILL));
  ASSERT_EQ(host->Wait(kTimeout), SignalExitCode(SIGKILL));
  {
    // The "host" that comes back accepts everything and answers nothing: every attempt ends in
    // the bounded wait (--host-timeout) and the guest backs off and tries again.
    SilentHost silent(socket_);
    ASSERT_TRUE(silent.ok());
    EXPECT_TRUE(guest->WaitForLineCount(Prefix("reconnect: attempt "), 2, kTimeout))
        << AllLines(*guest);
    EXPECT_TRUE(WaitUntil([&] { return silent.connections() >= 2; }));
    EXPECT_GE(silent.posts(), 1u) << "INITIATE_CONTACT was posted";
    EXPECT_TRUE(
        guest->WaitForLine(Contains("INITIATE_CONTACT 5.3: no answer from the host"), kTimeout))
        << AllLines(*guest);
    EXPECT_TRUE(guest->Running());
  }
  const size_t before = guest->LineCount();
  host = StartHost();
  ASSERT_NE(host, nullptr);
  EXPECT_TRUE(guest->WaitForLine(Prefix("reconnected: session "), kTimeout, before))
      << AllLines(*guest);
  EXPECT_TRUE(guest->WaitForLine(Prefix("heartbeat: seq="), kTimeout, before));
  ExpectCleanExit(*guest);
  ExpectCleanExit(*host);
}

TEST_F(RestartTest, GuestThatNeverSendsEomIsBoundedAndTheOthersGoOn) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  auto alive = StartGuest("alive");
  ASSERT_NE(alive, nullptr);
  ASSERT_TRUE(alive->WaitForLine(Prefix("heartbeat: seq="), kTimeout));

  // A raw guest: a partition without a bus. It never reads its message slot and never writes
  // EOM, so every host message after the first waits in the host's bounded per-vCPU queue.
  auto mute = partition::SocketGuestPartition::Connect(socket_, "mute", 1, 4u << 20);
  ASSERT_TRUE(mute) << mute.error();
  wire::InitiateContact contact;
  contact.vmbus_version_requested = wire::kVersionWin10V5_3;
  contact.msg_sint = 2;
  ASSERT_EQ((*mute)->PostMessage(wire::kVmbusMessageConnectionId4, 1,
                                 wire::Encode(contact).span()),
            wire::HvStatus::kSuccess);
  // Each GPADL_HEADER for a channel that does not exist is answered (GPADL_CREATED, failure).
  constexpr uint32_t kRequests = 1000;
  for (uint32_t i = 0; i < kRequests; ++i) {
    wire::GpadlHeaderMessage m;
    m.fixed.child_relid = 999;
    m.fixed.gpadl = 0x1000 + i;
    m.fixed.range_buflen = 16;
    m.fixed.rangecount = 1;
    m.range_words[0] = 4096;  // byte_count 4096, byte_offset 0
    m.range_words[1] = 100;   // one PFN
    m.range_word_count = 2;
    ASSERT_EQ((*mute)->PostMessage(wire::kVmbusMessageConnectionId, 1, wire::Encode(m).span()),
              wire::HvStatus::kSuccess);
  }
  const json doc = WaitForLs([](const json& d) {
    const json* g = FindGuest(d, "mute");
    return g != nullptr && (*g)["partition"].value("messages_dropped", 0u) > 0;
  });
  const json* g = FindGuest(doc, "mute");
  ASSERT_NE(g, nullptr);
  // Bounded: at most one message in the slot plus the queue (256) was kept; the rest dropped and
  // counted, and the server counted every refusal.
  const json& part = (*g)["partition"];
  EXPECT_LE(part["messages_delivered"].get<uint64_t>() + part["messages_queued"].get<uint64_t>(),
            kRequests + 2);
  EXPECT_GE(part["messages_dropped"].get<uint64_t>(), kRequests - 300);
  EXPECT_EQ((*g)["rejections"].value("gpadl_bad_channel", 0u), kRequests);
  // The other guest is served all along.
  EXPECT_TRUE(alive->WaitForLineCount(Prefix("heartbeat: seq="), 10, kTimeout,
                                      alive->LineCount()));
  (*mute)->Disconnect();
  mute->reset();
  WaitForLs([](const json& d) { return FindGuest(d, "mute") == nullptr; });
  ExpectCleanExit(*alive);
  ExpectCleanExit(*host);
}

// ---------------------------------------------------------------------------------------------
// Rescind of a NIC while traffic flows

TEST_F(RestartTest, NicRescindedWhileServingIsRemovedCleanlyAndProbedAgainWhenReAdded) {
  auto host = StartHost({"--nic", "guest=solo,queues=2,backend=switch:sw0", "--nic",
                         "guest=peer,queues=2,backend=switch:sw0"});
  ASSERT_NE(host, nullptr);
  // solo serves its NIC (responder); peer resolves it by ARP and pings it (frames through
  // solo's NIC) while the NIC is removed.
  auto solo = StartGuest("solo", {"--addr", "10.0.0.1/24"});
  ASSERT_NE(solo, nullptr);
  ASSERT_TRUE(solo->WaitForLine(Prefix("responder: "), kTimeout)) << AllLines(*solo);
  auto peer = StartGuest("peer", {"--addr", "10.0.0.2/24", "--traffic",
                                  "peer=10.0.0.1,frames=1000,stay=on,timeout=30"});
  ASSERT_NE(peer, nullptr);
  ASSERT_TRUE(peer->WaitForLine(Prefix("arp: 10.0.0.1 is-at"), kTimeout)) << AllLines(*peer);

  auto removed = AdminRequestWithArgs(admin(), "nic-remove", {{"guest", "solo"}, {"id", "net0"}});
  ASSERT_TRUE(removed) << removed.error();
  EXPECT_TRUE(solo->WaitForLine(Contains("down (removed by the host)"), kTimeout))
      << AllLines(*solo);
  EXPECT_TRUE(solo->WaitForLine(Prefix("remove: "), kTimeout));
  // The host destroys the device once the guest released its relids.
  WaitForLs([](const json& d) {
    const json* g = FindGuest(d, "solo");
    return g != nullptr && NicCount(*g) == 0 && (*g)["devices"].size() == 1;
  });
  // Removing it twice is refused.
  auto twice = AdminRequestWithArgs(admin(), "nic-remove", {{"guest", "solo"}, {"id", "net0"}});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kNotFound);

  // Re-added: probed again and served again.
  auto added = AdminRequestWithArgs(admin(), "nic-add", {{"guest", "solo"}, {"id", "net0"}});
  ASSERT_TRUE(added) << added.error();
  EXPECT_TRUE(solo->WaitForLineCount(Contains("-> driver hv_netvsc"), 2, kTimeout))
      << AllLines(*solo);
  EXPECT_TRUE(solo->WaitForLineCount(Prefix("responder: "), 2, kTimeout));
  auto dup = AdminRequestWithArgs(admin(), "nic-add", {{"guest", "solo"}, {"id", "net0"}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  WaitForLs([](const json& d) {
    const json* g = FindGuest(d, "solo");
    return g != nullptr && NicCount(*g) == 1;
  });

  ExpectCleanExit(*solo);  // exit 0: no sanitizer report (ASan use-after-free, LSan leak)
  const json c = GuestCounters(*solo);
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c["nic_attaches"], 2u);
  EXPECT_GE(c["link_downs"].get<uint64_t>(), 1u);
  EXPECT_EQ(c["host_losses"], 0u);
  (void)peer->Signal(SIGKILL);
  ExpectCleanExit(*host);
}

}  // namespace
}  // namespace uvmbus::tools
