// Two-process (in fact up to four-process) tests of the real `uvmbus` binary: a host daemon,
// guests in their own processes talking VMBus to it over the socket partition, `uvmbus ls`
// against its admin socket, and `uvmbus demo`. Every wait is on a condition with a timeout (a
// child's stdout line, the admin socket's answer, a child's exit); children are killed when a
// test fails (Subprocess's destructor), so nothing is left running.
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/scratch_dir.h"
#include "common/unique_fd.h"
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/exit_codes.h"
#include "tools/subprocess.h"

#ifndef UVMBUS_BINARY
#error "UVMBUS_BINARY must name the uvmbus executable"
#endif

namespace uvmbus::tools {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

// Generous: the suite also runs under ASan/TSan on a loaded 2-core machine.
constexpr milliseconds kTimeout{30'000};
constexpr const char* kHeartbeatClass = "{57164f39-9115-4e78-ab55-382f3bd5422d}";

bool IsHeartbeat(std::string_view line) { return line.starts_with("heartbeat: seq="); }
bool IsHeartbeatProbe(std::string_view line) {
  return line.starts_with("probe: Heartbeat {57164f39-9115-4e78-ab55-382f3bd5422d}") &&
         line.ends_with("-> driver hv_utils");
}

using ScratchDir = ::uvmbus::testing::ScratchDir;

std::unique_ptr<Subprocess> Spawn(std::vector<std::string> args,
                                  Subprocess::Options options = {}) {
  args.insert(args.begin(), UVMBUS_BINARY);
  auto p = Subprocess::Spawn(args, std::move(options));
  EXPECT_TRUE(p) << p.error();
  return p ? std::move(*p) : nullptr;
}

struct RunResult {
  std::optional<int> code;
  std::string out;
};

// Runs `uvmbus args...` to completion (stderr merged into the output when asked).
RunResult RunUvmbus(std::vector<std::string> args, bool merge_stderr = false) {
  Subprocess::Options options;
  options.merge_stderr = merge_stderr;
  auto p = Spawn(std::move(args), options);
  if (!p) return {};
  RunResult r;
  r.code = p->Wait(kTimeout);
  p->WaitForStdoutClosed(kTimeout);
  for (const std::string& line : p->Lines()) r.out += line + "\n";
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const json* FindGuest(const json& doc, std::string_view name) {
  if (!doc.contains("guests")) return nullptr;
  for (const json& g : doc["guests"]) {
    if (g.value("name", "") == name) return &g;
  }
  return nullptr;
}

// The heartbeat device of a guest in the ls document (devices are keyed by device id).
const json* HeartbeatDevice(const json& guest) {
  for (const auto& [key, device] : guest["devices"].items()) {
    if (device.value("class_id", "") == kHeartbeatClass) return &device;
  }
  return nullptr;
}

class UvmbusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    socket_ = dir_.path() + "/vmbus.sock";
  }

  std::string admin() const { return AdminSocketPath(socket_); }

  // Starts `uvmbus host` and waits until its admin socket answers.
  std::unique_ptr<Subprocess> StartHost(uint32_t interval_ms,
                                        std::vector<std::string> extra_env = {}) {
    Subprocess::Options options;
    options.extra_env = std::move(extra_env);
    auto host = Spawn({"host", "--socket", socket_, "--heartbeat-interval",
                       std::to_string(interval_ms), "--log-level", "warn"},
                      options);
    if (host == nullptr) return nullptr;
    EXPECT_TRUE(WaitForAdmin(*host)) << "host never answered on " << admin();
    return host;
  }

  // Retries the admin "version" request until it answers, the host exits, or the timeout.
  // Between attempts the host's exit is awaited (pidfd), which doubles as the back-off delay.
  bool WaitForAdmin(Subprocess& host) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (milliseconds backoff{1}; std::chrono::steady_clock::now() < deadline;
         backoff = std::min(backoff * 2, milliseconds(50))) {
      if (AdminCall(admin(), kAdminCommandVersion, 2000)) return true;
      if (host.Wait(backoff)) return false;  // exited
    }
    return false;
  }

  // Polls the admin "ls" document until `pred` holds; returns the last document.
  json WaitForLs(const std::function<bool(const json&)>& pred, Subprocess& host) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    json last;
    for (milliseconds backoff{1}; std::chrono::steady_clock::now() < deadline;
         backoff = std::min(backoff * 2, milliseconds(50))) {
      auto doc = AdminCall(admin(), kAdminCommandLs, 2000);
      if (doc) {
        last = *doc;
        if (pred(last)) return last;
      }
      if (host.Wait(backoff)) break;  // host exited: the condition can no longer come true
    }
    ADD_FAILURE() << "condition on the ls document never held; last: " << last.dump(2);
    return last;
  }

  // Polls `pred` until it holds (true) or the timeout passes (false); the host's exit is awaited
  // between attempts as the back-off.
  static bool WaitUntil(const std::function<bool()>& pred, Subprocess& host) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (milliseconds backoff{1}; std::chrono::steady_clock::now() < deadline;
         backoff = std::min(backoff * 2, milliseconds(50))) {
      if (pred()) return true;
      (void)host.Wait(backoff);
    }
    return pred();
  }

  std::unique_ptr<Subprocess> StartGuest(const std::string& name,
                                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"guest", "--socket", socket_, "--name", name, "--cpus", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Spawn(args);
  }

  static void ExpectHeartbeats(Subprocess& guest, size_t count, size_t from = 0) {
    EXPECT_TRUE(guest.WaitForLineCount(IsHeartbeat, count, kTimeout, from))
        << "guest " << guest.pid() << " answered fewer than " << count << " heartbeats";
  }

  ScratchDir dir_;
  std::string socket_;
};

TEST_F(UvmbusTest, TwoGuestsSurviveTheDeathOfOneAndTheHostShutsDownCleanly) {
  auto host = StartHost(/*interval_ms=*/2);
  ASSERT_NE(host, nullptr);
  auto alpha = StartGuest("alpha");
  auto beta = StartGuest("beta", {"--reconnect=off"});  // exits 3 when the host stops
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(beta, nullptr);

  // Both negotiate, probe the heartbeat device with hv_utils and answer 100 heartbeats.
  for (Subprocess* g : {alpha.get(), beta.get()}) {
    EXPECT_TRUE(g->WaitForLine([](std::string_view l) { return l.starts_with("connected: VMBus"); },
                               kTimeout));
    EXPECT_TRUE(g->WaitForLine(IsHeartbeatProbe, kTimeout));
    ExpectHeartbeats(*g, 100);
  }

  // `uvmbus ls -v --json`: both guests, with their channel counters and heartbeat counters.
  RunResult ls_json = RunUvmbus({"ls", "--socket", socket_, "-v", "--json"});
  ASSERT_EQ(ls_json.code, 0) << ls_json.out;
  const json doc = json::parse(ls_json.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded()) << ls_json.out;
  EXPECT_EQ(doc["totals"]["guests"], 2u);
  EXPECT_EQ(doc["host"]["pid"], host->pid());
  for (const char* name : {"alpha", "beta"}) {
    SCOPED_TRACE(name);
    const json* guest = FindGuest(doc, name);
    ASSERT_NE(guest, nullptr) << doc.dump(2);
    EXPECT_EQ((*guest)["state"], "connected");
    EXPECT_EQ((*guest)["version"], "5.3");
    EXPECT_GE((*guest)["gpadls"].get<uint64_t>(), 1u) << "the ring GPADL";
    const json* device = HeartbeatDevice(*guest);
    ASSERT_NE(device, nullptr) << guest->dump(2);
    EXPECT_EQ((*device)["id"], 1u);
    EXPECT_EQ((*device)["channel_vp_mapping"], json::array({"1:0"}));
    const json& channel = (*device)["channels"]["1"];
    EXPECT_EQ(channel["state"], "open");
    for (const char* counter : {"interrupts", "events", "out_packets", "in_packets"}) {
      EXPECT_GE(channel.value(counter, 0u), 100u) << counter << " in " << channel.dump();
    }
    for (const char* key : {"cpu", "in_mask", "out_mask", "read_avail", "write_avail", "pending",
                            "intr_in_full", "intr_out_empty", "out_full_first",
                            "out_full_total", "subchannel_id", "monitor_id"}) {
      EXPECT_TRUE(channel.contains(key)) << key;
    }
    EXPECT_GE((*device)["heartbeat"]["heartbeats_answered"].get<uint64_t>(), 100u);
  }

  // The text form: lsvmbus's layout under one heading per guest.
  RunResult ls_text = RunUvmbus({"ls", "--socket", socket_, "-v"});
  ASSERT_EQ(ls_text.code, 0);
  EXPECT_THAT(ls_text.out, HasSubstr("Guest alpha (pid " + std::to_string(alpha->pid()) +
                                     ", VMBus 5.3, connected):\n"
                                     "VMBUS ID  1: Class_ID = {57164f39-9115-4e78-ab55-"
                                     "382f3bd5422d} - [Heartbeat]\n\tRel_ID=1, target_cpu=0\n\n"));
  EXPECT_THAT(ls_text.out, HasSubstr("Guest beta (pid "));

  // The host maps each guest's RAM (a memfd named after the guest).
  const std::string maps_path = "/proc/" + std::to_string(host->pid()) + "/maps";
  EXPECT_THAT(ReadFile(maps_path), HasSubstr("memfd:uvmbus-guest-alpha"));

  // SIGKILL alpha: no UNLOAD, no goodbye; the host must notice the hang-up and free everything.
  ASSERT_TRUE(alpha->Signal(SIGKILL));
  EXPECT_EQ(alpha->Wait(kTimeout), SignalExitCode(SIGKILL));
  const json after = WaitForLs(
      [](const json& d) { return FindGuest(d, "alpha") == nullptr; }, *host);
  ASSERT_EQ(FindGuest(after, "alpha"), nullptr);
  const json* beta_after = FindGuest(after, "beta");
  ASSERT_NE(beta_after, nullptr);
  // Totals are exactly beta's: alpha's channels and GPADLs are gone.
  EXPECT_EQ(after["totals"]["guests"], 1u);
  EXPECT_EQ(after["totals"]["gpadls"], (*beta_after)["gpadls"]);
  EXPECT_EQ(after["totals"]["gpadls_in_progress"], 0u);
  EXPECT_EQ(after["totals"]["channels"], 1u);
  EXPECT_EQ(after["totals"]["open_channels"], 1u);
  EXPECT_GE(after["guests_removed"].get<uint64_t>(), 1u);
  // ... and so is its memory: the host no longer maps alpha's RAM (nor any GPADL view of it).
  EXPECT_TRUE(WaitUntil(
      [&] { return ReadFile(maps_path).find("memfd:uvmbus-guest-alpha") == std::string::npos; },
      *host))
      << ReadFile(maps_path);
  EXPECT_THAT(ReadFile(maps_path), HasSubstr("memfd:uvmbus-guest-beta"));

  // beta goes on answering heartbeats; the host is still up.
  ExpectHeartbeats(*beta, 20, beta->LineCount());
  EXPECT_FALSE(host->ExitCode().has_value());

  // SIGTERM on the host: clean exit 0 (rescind + drain); beta sees the rescind, then the
  // hang-up, and exits with the documented "host unavailable" code.
  ASSERT_TRUE(host->Signal(SIGTERM));
  EXPECT_EQ(host->Wait(kTimeout), 0);
  EXPECT_EQ(beta->Wait(kTimeout), ToInt(ExitCode::kHostUnavailable));
  beta->WaitForStdoutClosed(kTimeout);
  EXPECT_TRUE(beta->WaitForLine([](std::string_view l) { return l == "rescind: relid 1"; },
                                milliseconds(0)));
  // The daemon removed its socket files on the way out.
  EXPECT_FALSE(std::filesystem::exists(socket_));
  EXPECT_FALSE(std::filesystem::exists(admin()));
}

TEST_F(UvmbusTest, GuestWithCountExitsZeroAfterThatManyHeartbeats) {
  auto host = StartHost(/*interval_ms=*/2);
  ASSERT_NE(host, nullptr);
  auto guest = StartGuest("counted", {"--count", "25"});
  ASSERT_NE(guest, nullptr);
  EXPECT_EQ(guest->Wait(kTimeout), 0);
  guest->WaitForStdoutClosed(kTimeout);
  EXPECT_TRUE(guest->WaitForLineCount(IsHeartbeat, 25, milliseconds(0)));
  EXPECT_TRUE(guest->WaitForLine(
      [](std::string_view l) { return l == "done: answered 25 heartbeats, unloading"; },
      milliseconds(0)));
  // The host releases the departed guest and keeps running.
  WaitForLs([](const json& d) { return d["guests"].empty(); }, *host);
  ASSERT_TRUE(host->Signal(SIGTERM));
  EXPECT_EQ(host->Wait(kTimeout), 0);
}

TEST_F(UvmbusTest, GuestInterruptedBySigintUnloadsAndExitsZero) {
  auto host = StartHost(/*interval_ms=*/5);
  ASSERT_NE(host, nullptr);
  auto guest = StartGuest("interrupted");
  ASSERT_NE(guest, nullptr);
  ExpectHeartbeats(*guest, 3);
  ASSERT_TRUE(guest->Signal(SIGINT));
  EXPECT_EQ(guest->Wait(kTimeout), 0);
  guest->WaitForStdoutClosed(kTimeout);
  EXPECT_TRUE(guest->WaitForLine([](std::string_view l) { return l == "disconnected"; },
                                 milliseconds(0)));
  ASSERT_TRUE(host->Signal(SIGINT));
  EXPECT_EQ(host->Wait(kTimeout), 0);
}

TEST_F(UvmbusTest, GuestWithoutAHostExitsWithHostUnavailable) {
  RunResult r = RunUvmbus({"guest", "--socket", socket_}, /*merge_stderr=*/true);
  EXPECT_EQ(r.code, ToInt(ExitCode::kHostUnavailable));
  EXPECT_THAT(r.out, HasSubstr("cannot connect to the host at " + socket_));
}

TEST_F(UvmbusTest, LsWithoutAHostExitsWithHostUnavailable) {
  RunResult r = RunUvmbus({"ls", "--socket", socket_}, /*merge_stderr=*/true);
  EXPECT_EQ(r.code, ToInt(ExitCode::kHostUnavailable));
  EXPECT_THAT(r.out, HasSubstr(admin()));
}

TEST_F(UvmbusTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunUvmbus({"host"}).code, 2);
  EXPECT_EQ(RunUvmbus({"guest", "--socket", socket_, "--cpus", "0"}).code, 2);
  EXPECT_EQ(RunUvmbus({"no-such-command"}).code, 2);
  EXPECT_EQ(RunUvmbus({"--help"}).code, 0);
}

TEST_F(UvmbusTest, ASecondHostOnALiveSocketFailsAndAStaleSocketIsReplaced) {
  auto first = StartHost(/*interval_ms=*/1000);
  ASSERT_NE(first, nullptr);
  RunResult second = RunUvmbus({"host", "--socket", socket_, "--log-level", "error"},
                         /*merge_stderr=*/true);
  EXPECT_EQ(second.code, ToInt(ExitCode::kFailure));
  EXPECT_TRUE(AdminCall(admin(), kAdminCommandVersion)) << "the first host is unaffected";

  // A SIGKILLed host leaves both socket files behind; the next host removes them and serves.
  ASSERT_TRUE(first->Signal(SIGKILL));
  EXPECT_EQ(first->Wait(kTimeout), SignalExitCode(SIGKILL));
  ASSERT_TRUE(std::filesystem::exists(socket_));
  ASSERT_TRUE(std::filesystem::exists(admin()));
  auto replacement = StartHost(/*interval_ms=*/5);
  ASSERT_NE(replacement, nullptr);
  auto guest = StartGuest("after-restart", {"--count", "3"});
  ASSERT_NE(guest, nullptr);
  EXPECT_EQ(guest->Wait(kTimeout), 0);
  ASSERT_TRUE(replacement->Signal(SIGTERM));
  EXPECT_EQ(replacement->Wait(kTimeout), 0);
}

TEST_F(UvmbusTest, HostIgnoresSighupAndTalksToSystemd) {
  // Play systemd: a datagram socket passed as $NOTIFY_SOCKET.
  const std::string notify_path = dir_.path() + "/notify";
  UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, notify_path.c_str(), notify_path.size());
  ASSERT_EQ(::bind(notify.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{static_cast<time_t>(kTimeout.count() / 1000), 0};
  ASSERT_EQ(::setsockopt(notify.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  auto receive = [&]() {
    char buf[512];
    const ssize_t n = ::recv(notify.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("<nothing>");
  };

  auto host = StartHost(/*interval_ms=*/1000, {"NOTIFY_SOCKET=" + notify_path});
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(receive(), "READY=1\nSTATUS=0 guests, 0 channels open");

  ASSERT_TRUE(host->Signal(SIGHUP));
  EXPECT_TRUE(AdminCall(admin(), kAdminCommandVersion)) << "SIGHUP is ignored";
  EXPECT_FALSE(host->ExitCode().has_value());

  ASSERT_TRUE(host->Signal(SIGTERM));
  EXPECT_EQ(host->Wait(kTimeout), 0);
  EXPECT_THAT(receive(), HasSubstr("STOPPING=1"));
}

TEST_F(UvmbusTest, DemoExitsZero) {
  RunResult r = RunUvmbus({"demo"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("demo OK: 2 guests negotiated VMBus 5.3"));
  EXPECT_THAT(r.out, HasSubstr("INITIATE_CONTACT -> VERSION_RESPONSE"));
  EXPECT_THAT(r.out, HasSubstr("VMBUS ID  1: Class_ID = {57164f39-9115-4e78-ab55-382f3bd5422d}"));
}

}  // namespace
}  // namespace uvmbus::tools
