// File: tools/demo_command.cc
//
// `uvmbus demo`: the guided tour (docs/cli.md). It re-executes this binary (/proc/self/exe) as
// one `uvmbus host` (a heartbeat device and a two-queue synthetic NIC on switch sw0 for every
// guest) and N `uvmbus guest` processes on a socket in a fresh temporary directory, shows each
// step of the first guest's VMBus bring-up with a short explanation (version negotiation,
// offers, probe, open, the NIC's NVSP/RNDIS bring-up and sub-channels, heartbeats), shows what
// the host sees (`uvmbus ls -v`, `uvmbus channels`), then lets the first two guests talk: ARP
// and ICMP echo from their responders, then a burst of test frames each way on every queue
// (tools/traffic.h), and prints the per-queue counters (`uvmbus stats`) and the rates. Then it
// shuts everything down cleanly: SIGTERM to each guest (UNLOAD), then to the host (rescind +
// drain). Exit 0 only if every guest negotiated, probed both devices, every frame sent arrived
// intact and every process exited 0.
// With --tap (root): the guests' NICs become TAP interfaces in two network namespaces (`ip netns
// add`), the system `ping` runs 20 echoes each way between them, the host captures the NICs'
// frames into a pcapng file (kept; its path is printed) and `tcpdump -r` reads it back.
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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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
#include "tools/stats_format.h"
#include "tools/subprocess.h"

namespace uvmbus::tools {
namespace {

using std::chrono::milliseconds;

constexpr uint32_t kDemoHeartbeatIntervalMs = 100;
constexpr uint32_t kDemoQueues = 2;
constexpr int kDemoPings = 20;
constexpr milliseconds kStepTimeout{20'000};
constexpr milliseconds kTrafficTimeout{120'000};
constexpr milliseconds kExitTimeout{10'000};

bool StartsWith(std::string_view line, std::string_view prefix) {
  return line.substr(0, prefix.size()) == prefix;
}
bool IsHeartbeat(std::string_view line) { return StartsWith(line, "heartbeat: seq="); }

// What each kind of guest line means, shown once under the first guest's line of that kind.
struct Explanation {
  std::string_view prefix;
  std::string_view text;
  std::string_view contains = {};  // also required in the line, when not empty
};
constexpr Explanation kExplanations[] = {
    {"offer: Synthetic network adapter",
     "the NIC (netvsp on the host, attached to switch sw0) is offered as one more device; its "
     "first channel is the primary, more come when the driver asks",
     "relid"},
    {"sub-channel:",
     "netvsc asked for sub-channels (NVSP SUBCHANNEL, spec 7.8): the host offers one more "
     "channel per extra queue, and the driver opens it right away"},
    {"probe: Synthetic network adapter",
     "hv_netvsc, the NIC driver, probes the NIC and runs its whole bring-up before Connect "
     "returns (spec 5.7)"},
    {"netvsc:",
     "NVSP INIT: the guest proposes NVSP 6.1, 6, 5, ... until the host accepts; then the NDIS "
     "version and config (MTU) (spec 5.2-5.5)",
     "NVSP"},
    {"netvsc:",
     "two buffers in guest RAM, each one GPADL: the host writes received frames into receive "
     "sections, the guest puts frames to send into 6144-byte send sections; ring packets only "
     "point into them (spec 5.6)",
     "receive buffer"},
    {"netvsc:",
     "RNDIS messages inside NVSP: INITIALIZE, OID queries (MAC, MTU, link, RSS capabilities) "
     "and sets (offloads, RSS key + indirection table) (spec 6)",
     "RNDIS"},
    {"netvsc:",
     "one queue per channel, each with its own pair of rings and its own vCPU for interrupts; "
     "a flow's Toeplitz hash picks its queue (spec 7.9, 8)",
     "queue 0"},
    {"netvsc:",
     "the packet filter is set (the interface is up) and the host reports the medium connected",
     "link"},
    {"responder:",
     "the guest program now polls every queue with netvsc's burst API and answers ARP and ICMP "
     "echo itself (no kernel involved)"},
    {"arp:",
     "an ARP request goes out as a broadcast; the switch floods it, the other guest's responder "
     "answers, and the switch has learnt both MACs"},
    {"ping:", "ICMP echo request and reply between the two guests' responders"},
    {"traffic:",
     "test frames of mixed sizes over 64 flows (varied UDP ports and addresses), each put on the "
     "queue its flow hashes to; the receiver checks every byte and acknowledges, so the sender "
     "never has more than a window in flight"},
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
  bool nic_probed = false;
  bool nic_up = false;  // the "responder:" / "tap:" line arrived
  bool negotiated = false;
  uint64_t heartbeats = 0;
  nlohmann::json traffic;  // the guest's final JSON line
  std::string address;
  std::string netns;  // --tap
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
  // Echoes `g`'s lines until `until` matched one (true) or the timeout / its exit (false).
  bool EchoUntil(Guest& g, bool explain, const std::function<bool(const Guest&)>& until,
                 milliseconds timeout);
  void ShowLs();
  void ShowTraffic();
  void ShowStats();
  void RunPings();
  void ReadCapture();
  // Runs a helper program (ip, ping, tcpdump) to completion, echoing its output indented.
  bool RunTool(const std::vector<std::string>& argv, bool echo, std::vector<std::string>* out);
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
  std::map<std::string, bool> explained_;
  std::vector<std::string> failures_;
  std::string version_;
  std::string pcap_;
  int step_ = 1;
};

// The absolute path of a program on PATH (or in /usr/sbin, /sbin), empty if none.
std::string FindProgram(std::string_view name) {
  std::string path = ::getenv("PATH") != nullptr ? ::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      std::string candidate = path.substr(start, end - start) + "/" + std::string(name);
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return {};
}

bool IsTrafficJson(std::string_view line) { return StartsWith(line, "{\"traffic\":"); }

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
  Print("[{}] The host: the hypervisor side of VMBus, offering each guest a heartbeat device and",
        step_++);
  Print("    a synthetic NIC with {} queues on the built-in switch sw0", kDemoQueues);
  std::string nic = fmt::format("queues={},backend=switch:sw0", kDemoQueues);
  if (options_.tap) {
    pcap_ = dir_ + "/demo.pcapng";
    nic += ",pcap=" + pcap_;
  }
  host_ = Start({"host", "--socket", socket_, "--heartbeat-interval",
                 std::to_string(kDemoHeartbeatIntervalMs), "--nic", nic, "--log-level",
                 options_.log_level});
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
    if (!StartsWith(line, e.prefix)) continue;
    if (!e.contains.empty() && line.find(e.contains) == std::string::npos) continue;
    const std::string key = std::string(e.prefix) + std::string(e.contains);
    if (explained_[key]) continue;
    explained_[key] = true;
    Print("    {:>8} |     ^ {}", "", e.text);
    break;
  }
}

bool Demo::EchoUntil(Guest& g, bool explain, const std::function<bool(const Guest&)>& until,
                     milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  uint64_t hidden = 0;
  while (!until(g)) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline -
                                                               std::chrono::steady_clock::now());
    auto index = left.count() > 0 ? g.process->WaitForLine([](std::string_view) { return true; },
                                                           left, g.cursor)
                                  : std::nullopt;
    if (!index) return false;
    for (const std::string& line : g.process->Lines(g.cursor)) {
      ++g.cursor;
      if (IsHeartbeat(line)) {
        // Show the first few; the rest go on quietly in the background.
        if (++g.heartbeats > options_.heartbeats) {
          ++hidden;
          continue;
        }
      }
      if (StartsWith(line, "probe: Heartbeat") && line.find("hv_utils") != std::string::npos) {
        g.probed = true;
      }
      if (StartsWith(line, "probe: Synthetic network adapter") &&
          line.find("hv_netvsc") != std::string::npos) {
        g.nic_probed = true;
      }
      if (StartsWith(line, "responder:") || StartsWith(line, "tap:")) g.nic_up = true;
      if (StartsWith(line, "connected: ")) {
        g.negotiated = true;
        if (version_.empty()) {
          // "connected: VMBus 5.3, message connection 1" -> "VMBus 5.3"
          std::string rest = line.substr(std::string_view("connected: ").size());
          version_ = rest.substr(0, rest.find(','));
        }
      }
      if (IsTrafficJson(line)) {
        g.traffic = nlohmann::json::parse(line, nullptr, false);
        continue;  // summarised by ShowTraffic
      }
      Echo(g, line, explain);
    }
  }
  (void)hidden;
  return true;
}

bool Demo::StartGuest(Guest& g, bool explain) {
  std::vector<std::string> args = {"guest", "--socket", socket_, "--name", g.name, "--cpus",
                                   std::to_string(kDemoQueues), "--addr", g.address + "/24"};
  if (options_.tap) {
    args.insert(args.end(), {"--tap", fmt::format("uvmbus{},netns={},addr={}/24",
                                                  g.name.back(), g.netns, g.address)});
  } else if (guests_.size() >= 2 && (&g == &guests_[0] || &g == &guests_[1])) {
    // The first two guests send test traffic to each other (after ARP and three pings).
    const Guest& peer = &g == &guests_[0] ? guests_[1] : guests_[0];
    args.insert(args.end(),
                {"--traffic", fmt::format("peer={},frames={},sizes=60-MTU,flows=64,stay=on",
                                          peer.address, options_.frames)});
  }
  args.insert(args.end(), {"--log-level", options_.log_level});
  g.process = Start(args);
  if (!g.process) return false;
  // Echo the guest's bring-up until its NIC is up and it answered a few heartbeats.
  if (!EchoUntil(g, explain,
                 [this](const Guest& x) { return x.nic_up && x.heartbeats >= options_.heartbeats; },
                 kStepTimeout)) {
    auto code = g.process->Wait(milliseconds(0));
    Fail(fmt::format("{}: no NIC or too few heartbeats ({}){}", g.name, g.heartbeats,
                     code ? fmt::format(" (exit status {})", *code) : " (timeout)"));
    EchoRest(g);
    return false;
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
    if (IsTrafficJson(line)) {
      g.traffic = nlohmann::json::parse(line, nullptr, false);
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

void PrintIndented(std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    Print("    {}", text.substr(start, nl - start));
    start = nl + 1;
  }
}

void Demo::ShowLs() {
  Print("");
  Print("[{}] What the host sees: its guests' devices in lsvmbus's layout (one line per channel)",
        step_++);
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
  PrintIndented(FormatLs(*guests, 1));
  auto nics = ParseNics(*doc, guests_.empty() ? "" : guests_[0].name);
  if (nics && !nics->empty()) {
    Print("  $ uvmbus channels --socket {} --guest {}   (ethtool -l layout)", socket_,
          guests_[0].name);
    PrintIndented(FormatChannels(*nics));
  }
}

void Demo::ShowTraffic() {
  Print("");
  Print("[{}] Traffic between {} ({}) and {} ({}): ARP, ICMP echo, then {} test frames each way",
        step_++, guests_[0].name, guests_[0].address, guests_[1].name, guests_[1].address,
        options_.frames);
  for (size_t i = 0; i < 2; ++i) {
    Guest& g = guests_[i];
    if (!EchoUntil(g, /*explain=*/true, [](const Guest& x) { return !x.traffic.is_null(); },
                   kTrafficTimeout)) {
      Fail(fmt::format("{}: the traffic run did not finish", g.name));
    }
  }
  Print("");
  Print("[{}] Results: what each guest sent and received (every frame checked byte by byte)",
        step_++);
  for (size_t i = 0; i < 2; ++i) {
    const Guest& g = guests_[i];
    const nlohmann::json t = g.traffic.is_object() ? g.traffic.value("traffic", nlohmann::json())
                                                   : nlohmann::json();
    if (!t.is_object()) {
      Fail(fmt::format("{}: no traffic result", g.name));
      continue;
    }
    auto u = [&](const char* key) { return t.value(key, uint64_t{0}); };
    Print("    {:>8}: sent {} frames ({:.1f} MB) in {:.3f} s: {} pps, {:.1f} Mbit/s", g.name,
          u("sent"), static_cast<double>(u("tx_bytes")) / 1e6, t.value("seconds", 0.0),
          u("tx_pps"), static_cast<double>(u("tx_bps")) / 1e6);
    Print("    {:>8}  received {} of {}, bad {}, duplicates {}; per queue: sent {}, received {}",
          "", u("received"), u("expected"), u("bad"), u("duplicates"),
          t.value("tx_queue", nlohmann::json::array()).dump(),
          t.value("rx_queue", nlohmann::json::array()).dump());
    if (!t.value("ok", false)) {
      Fail(fmt::format("{}: traffic failed: {}", g.name, t.value("error", std::string("?"))));
    }
  }
}

void Demo::ShowStats() {
  Print("");
  Print("[{}] The host's per-queue counters (tx = sent by the guest, rx = delivered to it)",
        step_++);
  Print("  $ uvmbus stats --socket {}   (ethtool -S layout; per-queue lines shown)", socket_);
  auto doc = AdminCall(AdminSocketPath(socket_), kAdminCommandLs);
  if (!doc) {
    Fail(fmt::format("uvmbus stats failed: {}", doc.error()));
    return;
  }
  auto nics = ParseNics(*doc, "");
  if (!nics) {
    Fail(fmt::format("unexpected ls document: {}", nics.error()));
    return;
  }
  // Counters that only inform; every other non-queue counter is a drop or a rejection.
  static const std::set<std::string_view> kInformational = {
      "rx_completions", "rx_steered", "send_tables_sent", "wakeups", "link_indications",
      "tx_completions_deferred", "tx_vlan_tagged",
      // A broadcast (the first ARP request) reaching a NIC still in its bring-up, before its
      // receive buffer or its packet filter is set.
      "rx_not_ready", "rx_filtered"};
  for (NicReport& n : *nics) {
    std::vector<std::pair<std::string, uint64_t>> shown;
    uint64_t errors = 0;
    size_t others = 0;
    for (const auto& [name, value] : n.counters) {
      if (StartsWith(name, "tx_queue_") || StartsWith(name, "rx_queue_")) {
        shown.emplace_back(name, value);
      } else {
        ++others;
        if (!kInformational.contains(name)) errors += value;
      }
    }
    Print("    NIC {}/{} ({}):", n.guest, n.id, n.mac);
    PrintIndented(FormatEthtoolStats(shown));
    Print("         ... {} more counters; drops and rejections: {}", others, errors);
    for (const auto& [name, value] : n.counters) {
      if (value != 0 && !StartsWith(name, "tx_queue_") && !StartsWith(name, "rx_queue_") &&
          !kInformational.contains(name)) {
        Print("         {}: {}", name, value);
        Fail(fmt::format("{}/{}: {} = {}", n.guest, n.id, name, value));
      }
    }
  }
}

bool Demo::RunTool(const std::vector<std::string>& argv, bool echo,
                   std::vector<std::string>* out) {
  std::string shown;
  for (const std::string& a : argv) shown += (shown.empty() ? "" : " ") + a;
  Print("  $ {}", shown);
  std::vector<std::string> full = argv;
  full[0] = FindProgram(argv[0]);
  if (full[0].empty()) {
    Fail(fmt::format("{} is not installed", argv[0]));
    return false;
  }
  Subprocess::Options options;
  options.merge_stderr = true;
  auto p = Subprocess::Spawn(full, options);
  if (!p) {
    Fail(fmt::format("cannot run {}: {}", argv[0], p.error()));
    return false;
  }
  auto code = (*p)->Wait(kTrafficTimeout);
  (void)(*p)->WaitForStdoutClosed(kExitTimeout);
  for (const std::string& line : (*p)->Lines()) {
    if (echo) Print("    {}", line);
    if (out != nullptr) out->push_back(line);
  }
  if (!code || *code != 0) {
    Fail(fmt::format("`{}` failed ({})", shown,
                     code ? fmt::format("exit status {}", *code) : std::string("timeout")));
    return false;
  }
  return true;
}

void Demo::RunPings() {
  Print("");
  Print("[{}] The kernel's own ping, through both guests' NICs, the host and its switch",
        step_++);
  for (size_t i = 0; i < 2; ++i) {
    const Guest& from = guests_[i];
    const Guest& to = guests_[1 - i];
    std::vector<std::string> out;
    RunTool({"ip", "netns", "exec", from.netns, "ping", "-c", std::to_string(kDemoPings), "-i",
             "0.01", "-W", "2", to.address},
            /*echo=*/false, &out);
    // ping's summary: the last two lines ("N packets transmitted, N received, ..." and rtt).
    for (size_t k = out.size() >= 3 ? out.size() - 3 : 0; k < out.size(); ++k) {
      Print("    {}", out[k]);
    }
  }
}

void Demo::ReadCapture() {
  Print("");
  Print("[{}] The host captured every frame of both NICs (one pcapng interface per queue)",
        step_++);
  std::vector<std::string> out;
  if (!RunTool({"tcpdump", "-n", "-r", pcap_, "icmp"}, /*echo=*/false, &out)) return;
  size_t requests = 0;
  size_t replies = 0;
  for (const std::string& line : out) {
    if (line.find("ICMP echo request") != std::string::npos) ++requests;
    if (line.find("ICMP echo reply") != std::string::npos) ++replies;
  }
  for (size_t k = 0; k < out.size() && k < 4; ++k) Print("    {}", out[k]);
  Print("    ... {} ICMP echo requests and {} replies in {}", requests, replies, pcap_);
  // Each echo crosses two NICs (the sender's transmit, the receiver's delivery).
  if (requests < 2u * 2u * kDemoPings || replies < 2u * 2u * kDemoPings) {
    Fail(fmt::format("the capture holds {} requests and {} replies, expected {} each", requests,
                     replies, 4 * kDemoPings));
  }
  Print("pcap: {}", pcap_);
}

int Demo::Run(const std::atomic<int>& interrupted) {
  Print("uvmbus demo: a VMBus host and {} guest{}, each a separate process.", options_.guests,
        options_.guests == 1 ? "" : "s");
  Print("Like a VM and its hypervisor, each guest shares its RAM with the host; VMBus messages,");
  Print("ring buffers and interrupts all go through that shared memory.");

  std::vector<std::string> namespaces;
  bool ok = true;
  if (options_.tap) {
    if (options_.guests < 2) {
      Fail("--tap needs two guests");
      ok = false;
    }
    Print("");
    Print("[{}] Two network namespaces, one per guest (the guests' NICs become TAP interfaces "
          "there)",
          step_++);
    for (uint32_t i = 0; ok && i < 2; ++i) {
      std::string ns = fmt::format("uvmbus-demo-{}-{}", ::getpid(), i + 1);
      ok = RunTool({"ip", "netns", "add", ns}, true, nullptr);
      if (ok) namespaces.push_back(ns);
    }
  }
  ok = ok && StartHost();
  for (uint32_t i = 0; ok && i < options_.guests && interrupted.load() == 0; ++i) {
    Guest g;
    g.name = fmt::format("guest-{}", i + 1);
    g.address = fmt::format("10.0.0.{}", i + 1);
    if (i < namespaces.size()) g.netns = namespaces[i];
    guests_.push_back(std::move(g));
  }
  for (size_t i = 0; ok && i < guests_.size() && interrupted.load() == 0; ++i) {
    Print("");
    Print("[{}] {}: the VM side, booting its VMBus driver and NIC{}", step_++, guests_[i].name,
          i == 0 ? " (each step explained)" : "");
    ok = StartGuest(guests_[i], /*explain=*/i == 0);
  }
  if (ok && interrupted.load() == 0) ShowLs();
  if (ok && interrupted.load() == 0 && guests_.size() >= 2) {
    if (options_.tap) {
      RunPings();
    } else {
      ShowTraffic();
    }
    ShowStats();
  }

  Print("");
  Print("[{}] Shutdown: SIGTERM to each guest (drivers removed, channels closed, UNLOAD),",
        step_++);
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
  if (options_.tap && ok && !pcap_.empty() && interrupted.load() == 0) ReadCapture();
  for (const std::string& ns : namespaces) (void)RunTool({"ip", "netns", "del", ns}, false, nullptr);

  for (const Guest& g : guests_) {
    if (!g.negotiated) Fail(fmt::format("{} did not negotiate a VMBus version", g.name));
    if (!g.probed) Fail(fmt::format("{} did not probe the heartbeat device", g.name));
    if (!g.nic_probed) Fail(fmt::format("{} did not probe the NIC with hv_netvsc", g.name));
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
  std::string what = "answered their heartbeats";
  if (guests_.size() >= 2) {
    what = options_.tap ? fmt::format("brought up their NICs ({} queues each) and passed {} pings "
                                      "each way through TAP interfaces",
                                      kDemoQueues, kDemoPings)
                        : fmt::format("brought up their NICs ({} queues each) and exchanged {} "
                                      "frames each way, every one intact",
                                      kDemoQueues, options_.frames);
  }
  Print("demo OK: {} guest{} negotiated {}, {}; every process exited 0.", guests_.size(),
        guests_.size() == 1 ? "" : "s", version_, what);
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
  if (options.tap) {
    // Keep the capture (its path was printed); everything else goes.
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".pcapng") std::filesystem::remove_all(entry.path(), ec);
    }
  } else {
    std::filesystem::remove_all(dir, ec);
  }
  return result;
}

}  // namespace uvmbus::tools
