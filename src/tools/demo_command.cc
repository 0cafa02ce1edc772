// File: tools/demo_command.cc
//
// `uvmbus demo`: the guided tour (docs/cli.md). It re-executes this binary (/proc/self/exe) as
// one `uvmbus host` and N `uvmbus guest` processes on a socket in a fresh temporary directory,
// shows each step of the first guest's VMBus bring-up with a short explanation (version
// negotiation, offers, probe, open, heartbeats), shows what the host sees (`uvmbus ls -v` and a
// few per-channel counters), then shuts everything down cleanly: SIGTERM to each guest (UNLOAD),
// then to the host (rescind + drain). Exit 0 only if every guest negotiated, probed the heartbeat
// device with hv_utils, answered its heartbeats and every process exited 0.
// Every wait is on a condition (a child's output line, the admin socket answering, a child's
// exit) with a timeout; nothing sleeps for synchronisation.
// Spec: vmbus-protocol.md 2.5 (negotiation), 2.7 (offers), 2.8 (open), 2.9 (GPADL), 2.10
//       (unload), 7.3 (probe); the heartbeat IC exchange in wire/ic_messages.h.
// Thread-safety: main thread plus one signal-watcher thread that only signals the children.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/ls_format.h"
#include "tools/output.h"
#include "tools/signals.h"
#include "tools/subprocess.h"

namespace uvmbus::tools {
namespace {

using std::chrono::milliseconds;

constexpr uint32_t kDemoHeartbeatIntervalMs = 100;
constexpr milliseconds kStepTimeout{10'000};
constexpr milliseconds kExitTimeout{10'000};

bool StartsWith(std::string_view line, std::string_view prefix) {
  return line.substr(0, prefix.size()) == prefix;
}
bool IsHeartbeat(std::string_view line) { return StartsWith(line, "heartbeat: seq="); }

// What each kind of guest line means, shown once under the first guest's line of that kind.
struct Explanation {
  std::string_view prefix;
  std::string_view text;
};
constexpr Explanation kExplanations[] = {
    {"connect:",
     "the guest creates its RAM (a sealed memfd) and one interrupt eventfd per vCPU and hands "
     "them to the host over the socket, as a VM's memory and vCPUs are known to its hypervisor"},
    {"connected:",
     "INITIATE_CONTACT -> VERSION_RESPONSE: the guest proposes VMBus versions newest first until "
     "the host accepts one (spec 2.5)"},
    {"offer:",
     "REQUESTOFFERS -> OFFERCHANNEL ... ALLOFFERS_DELIVERED: the host offers each device with its "
     "class GUID, instance GUID and relid, the channel's id (spec 2.7)"},
    {"probe:",
     "the guest matches the class GUID against its drivers' id tables; the heartbeat driver "
     "(\"hv_utils\", as in Linux) probes the device (spec 7.3)"},
    {"open:",
     "the driver allocates two rings in guest RAM, describes them with a GPADL (GPADL_HEADER -> "
     "GPADL_CREATED) and opens the channel (OPENCHANNEL -> OPENCHANNEL_RESULT, spec 2.8-2.9)"},
    {"heartbeat: negotiated",
     "the first packets on the channel: the IC NEGOTIATE request and answer that agree on the "
     "framework and heartbeat versions"},
    {"heartbeat: seq=",
     "the host writes a HEARTBEAT into the host->guest ring and sets the relid's event bit (one "
     "interrupt); the guest answers seq+1 through the guest->host ring"},
};

struct Guest {
  std::string name;
  std::unique_ptr<Subprocess> process;
  size_t cursor = 0;  // next line to echo
  bool probed = false;
  bool negotiated = false;
  uint64_t heartbeats = 0;
};

class Demo {
 public:
  Demo(const DemoOptions& options, std::string self, std::string dir)
      : options_(options), self_(std::move(self)), dir_(std::move(dir)),
        socket_(dir_ + "/vmbus.sock") {}

  int Run(const std::atomic<int>& interrupted);
  // Signals every child (from the watcher thread).
  void SignalAll(int signo) {
    std::lock_guard lock(mu_);
    for (Subprocess* p : children_) (void)p->Signal(signo);
  }

 private:
  std::unique_ptr<Subprocess> Start(const std::vector<std::string>& args);
  bool StartHost();
  bool StartGuest(Guest& g, bool explain);
  void ShowLs();
  void EchoRest(Guest& g);
  void Echo(Guest& g, const std::string& line, bool explain);
  void Fail(std::string why) {
    failures_.push_back(std::move(why));
  }

  const DemoOptions options_;
  const std::string self_;
  const std::string dir_;
  const std::string socket_;
  std::mutex mu_;
  std::vector<Subprocess*> children_;  // guarded by mu_
  std::unique_ptr<Subprocess> host_;
  std::vector<Guest> guests_;
  std::map<std::string_view, bool> explained_;
  std::vector<std::string> failures_;
  std::string version_;
};

std::unique_ptr<Subprocess> Demo::Start(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {self_};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string shown = "uvmbus";
  for (const std::string& a : args) shown += " " + a;
  Print("  $ {}", shown);
  auto p = Subprocess::Spawn(argv);
  if (!p) {
    Fail(fmt::format("cannot start `{}`: {}", shown, p.error()));
    return nullptr;
  }
  std::lock_guard lock(mu_);
  children_.push_back(p->get());
  return std::move(*p);
}

bool Demo::StartHost() {
  Print("");
  Print("[1] The host: the hypervisor side of VMBus, offering one heartbeat device per guest");
  host_ = Start({"host", "--socket", socket_, "--heartbeat-interval",
                 std::to_string(kDemoHeartbeatIntervalMs), "--log-level", options_.log_level});
  if (!host_) return false;
  // Ready when its admin socket answers. Retrying a refused connection is the condition wait
  // here (the host has no stdout protocol); the timeout bounds it.
  const std::string admin = AdminSocketPath(socket_);
  const auto deadline = std::chrono::steady_clock::now() + kStepTimeout;
  for (milliseconds backoff{1};; backoff = std::min(backoff * 2, milliseconds(100))) {
    auto version = AdminCall(admin, kAdminCommandVersion, 1000);
    if (version) break;
    if (auto code = host_->ExitCode()) {
      Fail(fmt::format("the host exited with status {} before it was ready", *code));
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      Fail(fmt::format("the host's admin socket did not answer: {}", version.error()));
      return false;
    }
    // The pidfd-backed Wait doubles as an interruptible delay that also notices an early exit.
    (void)host_->Wait(backoff);
  }
  Print("    host ready: pid {}, guests connect to {}, admin socket {}", host_->pid(), socket_,
        AdminSocketPath(socket_));
  return true;
}

void Demo::Echo(Guest& g, const std::string& line, bool explain) {
  Print("    {:>8} | {}", g.name, line);
  if (!explain) return;
  for (const Explanation& e : kExplanations) {
    if (!StartsWith(line, e.prefix) || explained_[e.prefix]) continue;
    explained_[e.prefix] = true;
    Print("    {:>8} |     ^ {}", "", e.text);
    break;
  }
}

bool Demo::StartGuest(Guest& g, bool explain) {
  g.process = Start({"guest", "--socket", socket_, "--name", g.name, "--cpus", "2",
                     "--log-level", options_.log_level});
  if (!g.process) return false;
  // Echo the guest's lines as they arrive until it answered the wanted number of heartbeats.
  while (g.heartbeats < options_.heartbeats) {
    auto index = g.process->WaitForLine([](std::string_view) { return true; }, kStepTimeout,
                                        g.cursor);
    if (!index) {
      auto code = g.process->Wait(milliseconds(0));
      Fail(fmt::format("{}: stopped after {} heartbeats{}", g.name, g.heartbeats,
                       code ? fmt::format(" (exit status {})", *code) : " (timeout)"));
      EchoRest(g);
      return false;
    }
    const std::vector<std::string> lines = g.process->Lines(g.cursor);
    for (const std::string& line : lines) {
      ++g.cursor;
      if (IsHeartbeat(line)) {
        if (++g.heartbeats > options_.heartbeats) continue;  // already shown enough
      }
      if (StartsWith(line, "probe: Heartbeat") && line.find("hv_utils") != std::string::npos) {
        g.probed = true;
      }
      if (StartsWith(line, "connected: ")) {
        g.negotiated = true;
        if (version_.empty()) {
          // "connected: VMBus 5.3, message connection 1" -> "VMBus 5.3"
          std::string rest = line.substr(std::string_view("connected: ").size());
          version_ = rest.substr(0, rest.find(','));
        }
      }
      Echo(g, line, explain);
    }
  }
  Print("    {:>8} | ... (heartbeats go on in the background)", g.name);
  return true;
}

void Demo::EchoRest(Guest& g) {
  if (!g.process) return;
  uint64_t hidden = 0;
  for (const std::string& line : g.process->Lines(g.cursor)) {
    ++g.cursor;
    if (IsHeartbeat(line)) {
      ++g.heartbeats;
      ++hidden;
      continue;
    }
    if (hidden != 0) {
      Print("    {:>8} | ({} more heartbeats answered)", g.name, hidden);
      hidden = 0;
    }
    Print("    {:>8} | {}", g.name, line);
  }
  if (hidden != 0) Print("    {:>8} | ({} more heartbeats answered)", g.name, hidden);
}

void Demo::ShowLs() {
  Print("");
  Print("[{}] What the host sees: its guests' devices in lsvmbus's layout", guests_.size() + 2);
  Print("  $ uvmbus ls --socket {} -v", socket_);
  auto doc = AdminCall(AdminSocketPath(socket_), kAdminCommandLs);
  if (!doc) {
    Fail(fmt::format("uvmbus ls failed: {}", doc.error()));
    return;
  }
  auto guests = ParseLsDocument(*doc);
  if (!guests) {
    Fail(fmt::format("unexpected ls document: {}", guests.error()));
    return;
  }
  std::string text = FormatLs(*guests, 1);
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    Print("    {}", std::string_view(text).substr(start, nl - start));
    start = nl + 1;
  }
  // A taste of `uvmbus ls --json`: per-channel counters with Linux's sysfs names.
  Print("  $ uvmbus ls --socket {} --json   (excerpt: per-channel counters, sysfs names)", socket_);
  for (const auto& guest : (*doc)["guests"]) {
    if (!guest.is_object() || !guest.contains("devices")) continue;
    for (const auto& [key, device] : guest["devices"].items()) {
      const nlohmann::json channels = device.value("channels", nlohmann::json::object());
      const nlohmann::json hb = device.value("heartbeat", nlohmann::json::object());
      for (const auto& [relid, ch] : channels.items()) {
        Print("    {} relid {}: interrupts={} events={} out_packets={} in_packets={}"
              " heartbeats_answered={}",
              guest.value("name", "?"), relid, ch.value("interrupts", 0u), ch.value("events", 0u),
              ch.value("out_packets", 0u), ch.value("in_packets", 0u),
              hb.value("heartbeats_answered", 0u));
      }
    }
  }
}

int Demo::Run(const std::atomic<int>& interrupted) {
  Print("uvmbus demo: a VMBus host and {} guest{}, each a separate process.", options_.guests,
        options_.guests == 1 ? "" : "s");
  Print("Like a VM and its hypervisor, each guest shares its RAM with the host; VMBus messages,");
  Print("ring buffers and interrupts all go through that shared memory.");

  bool ok = StartHost();
  for (uint32_t i = 0; ok && i < options_.guests && interrupted.load() == 0; ++i) {
    guests_.push_back(Guest{fmt::format("guest-{}", i + 1), nullptr, 0, false, false, 0});
  }
  for (size_t i = 0; ok && i < guests_.size() && interrupted.load() == 0; ++i) {
    Print("");
    Print("[{}] {}: the VM side, booting its VMBus driver{}", i + 2, guests_[i].name,
          i == 0 ? " (each step explained)" : "");
    ok = StartGuest(guests_[i], /*explain=*/i == 0);
  }
  if (ok && interrupted.load() == 0) ShowLs();

  Print("");
  Print("[{}] Shutdown: SIGTERM to each guest (drivers removed, channels closed, UNLOAD),",
        guests_.size() + 3);
  Print("    then to the host (rescinds what is left, drains, exits 0)");
  for (Guest& g : guests_) {
    if (!g.process) continue;
    Print("  $ kill -TERM {}   # {}", g.process->pid(), g.name);
    (void)g.process->Signal(SIGTERM);
    auto code = g.process->Wait(kExitTimeout);
    (void)g.process->WaitForStdoutClosed(kExitTimeout);
    EchoRest(g);
    if (!code) {
      Fail(fmt::format("{} did not exit after SIGTERM", g.name));
    } else if (*code != 0) {
      Fail(fmt::format("{} exited with status {}", g.name, *code));
    }
  }
  if (host_) {
    Print("  $ kill -TERM {}   # the host", host_->pid());
    (void)host_->Signal(SIGTERM);
    auto code = host_->Wait(kExitTimeout);
    if (!code) {
      Fail("the host did not exit after SIGTERM");
    } else if (*code != 0) {
      Fail(fmt::format("the host exited with status {}", *code));
    } else {
      Print("    host exited 0");
    }
  }

  for (const Guest& g : guests_) {
    if (!g.negotiated) Fail(fmt::format("{} did not negotiate a VMBus version", g.name));
    if (!g.probed) Fail(fmt::format("{} did not probe the heartbeat device", g.name));
    if (g.heartbeats < options_.heartbeats) {
      Fail(fmt::format("{} answered {} of {} heartbeats", g.name, g.heartbeats,
                       options_.heartbeats));
    }
  }
  if (guests_.size() != options_.guests) Fail("not every guest was started");
  Print("");
  if (const int signo = interrupted.load(); signo != 0) {
    Print("demo interrupted by {}", ::strsignal(signo));
    return SignalExitCode(signo);
  }
  if (!failures_.empty()) {
    Print("demo FAILED:");
    for (const std::string& f : failures_) Print("  - {}", f);
    return ToInt(ExitCode::kFailure);
  }
  Print("demo OK: {} guest{} negotiated {}, probed the heartbeat device with hv_utils and "
        "answered {} heartbeats each; every process exited 0.",
        guests_.size(), guests_.size() == 1 ? "" : "s", version_, options_.heartbeats);
  return ToInt(ExitCode::kOk);
}

}  // namespace

int RunDemo(const DemoOptions& options) {
  log::Level level = log::Level::kWarn;
  if (!log::ParseLevel(options.log_level, &level)) return ToInt(ExitCode::kUsage);
  log::SetLevel(level);
  IgnoreHangupAndPipe();
  auto signals = TerminationSignals::Block();
  if (!signals) {
    PrintError("uvmbus demo: {}", signals.error());
    return ToInt(ExitCode::kFailure);
  }
  auto self = SelfExecutable();
  if (!self) {
    PrintError("uvmbus demo: {}", self.error());
    return ToInt(ExitCode::kFailure);
  }
  char tmpl[] = "/tmp/uvmbus-demo-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    PrintError("uvmbus demo: {}", Error::FromErrno("mkdtemp", errno));
    return ToInt(ExitCode::kFailure);
  }
  const std::string dir = tmpl;

  int result = 0;
  {
    Demo demo(options, *self, dir);
    // Ctrl-C / SIGTERM: pass it on to the children (they shut down cleanly, so every wait of
    // the demo ends), report it, and still clean up.
    std::atomic<int> interrupted{0};
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    std::thread watcher([&] {
      pollfd fds[2] = {{signals->fd(), POLLIN, 0}, {stop.get(), POLLIN, 0}};
      for (;;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
        if (fds[1].revents != 0) return;
        if (auto signo = signals->Read()) {
          interrupted.store(*signo);
          demo.SignalAll(SIGTERM);
        }
      }
    });
    result = demo.Run(interrupted);
    const uint64_t one = 1;
    (void)!::write(stop.get(), &one, sizeof one);
    watcher.join();
  }  // children are reaped (killed if still running) here
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return result;
}

}  // namespace uvmbus::tools
