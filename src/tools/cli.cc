// File: tools/cli.cc
//
// The CLI11 parser of the `uvmbus` command and the exit-code mapping (see cli.h, exit_codes.h).
#include "tools/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <vector>

#include "bench/harness/bench_cli.h"
#include "common/log.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"

namespace uvmbus::tools {
namespace {


// Guest names travel in the socket HELLO (docs/socket-protocol.md): 1..63 printable ASCII
// characters without spaces.
std::string CheckGuestName(const std::string& name) {
  if (name.empty() || name.size() > 63) return "must be 1..63 characters";
  for (char c : name) {
    if (c < 0x21 || c > 0x7e) return "must be printable ASCII without spaces";
  }
  return {};
}

// CLI11 validators over the spec parsers (nic_spec.h): an empty string accepts.
template <typename Parse>
CLI::Validator SpecValidator(Parse parse, std::string name) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        auto parsed = parse(value);
        return parsed ? std::string() : parsed.error().message;
      },
      "", std::move(name));
}

Expected<net::Ipv4Interface> ParseAddrFlag(std::string_view text) {
  auto cidr = ParseCidr(text);
  if (!cidr) return MakeError(ErrorCode::kInvalidArgument, "expected A.B.C.D[/N]");
  return *cidr;
}

const std::vector<std::string> kLogLevels = {"debug", "info", "warn", "error", "off"};

void AddSocketOption(CLI::App* sub, std::string* socket) {
  sub->add_option("--socket", *socket,
                  "Unix socket of the host daemon (the admin socket is PATH.ctl)")
      ->required()
      ->type_name("PATH");
}

void AddLogLevelOption(CLI::App* sub, std::string* level) {
  sub->add_option("--log-level", *level, "Log level on stderr")
      ->check(CLI::IsMember(kLogLevels))
      ->type_name("L")
      ->capture_default_str();
}

}  // namespace

ParseResult ParseCommandLine(const std::vector<std::string>& args, std::ostream& out,
                             std::ostream& err) {
  HostOptions host;
  GuestOptions guest;
  LsOptions ls;
  StatsOptions stats;
  ChannelsOptions channels;
  DemoOptions demo;
  std::vector<std::string> nic_flags;
  std::string addr_flag;
  std::string tap_flag;
  std::string traffic_flag;
  std::string reconnect_flag = "on";

  CLI::App app{"uvmbus: a user-space Hyper-V VMBus (host and guest) over a Unix socket.\n"
               "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 host unavailable,\n"
               "128+N ended by signal N. See docs/cli.md.",
               "uvmbus"};
  app.set_version_flag("--version",
                       fmt::format("uvmbus {} (user-space Hyper-V VMBus)", kProgramVersion));
  app.require_subcommand(1, 1);
  app.fallthrough(false);

  CLI::App* host_cmd = app.add_subcommand(
      "host",
      "Run the host daemon: offers a heartbeat device (and the --nic NICs) to every guest that "
      "connects");
  AddSocketOption(host_cmd, &host.socket);
  host_cmd
      ->add_option("--heartbeat-interval", host.heartbeat_interval_ms,
                   "Milliseconds between two heartbeats the host sends each guest")
      ->check(CLI::Range(kMinHeartbeatIntervalMs, kMaxHeartbeatIntervalMs))
      ->type_name("MS")
      ->capture_default_str();
  host_cmd
      ->add_option("--nic", nic_flags,
                   "Offer a synthetic NIC (repeatable): guest=G,id=net0,backend=switch:sw0|"
                   "tap:IF|tap-fd:N|loopback,mac=M,queues=N,mtu=M,pcap=FILE,spoof=on|off "
                   "(all optional; no guest= means every guest)")
      ->check(SpecValidator(ParseNicSpec, "NIC"))
      ->type_name("SPEC")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  host_cmd
      ->add_option("--group", host.group,
                   "Make the socket group-accessible (mode 0660, owned by group NAME) so that "
                   "members of NAME may run guests; default: mode 0600, this user only")
      ->type_name("NAME");
  AddLogLevelOption(host_cmd, &host.log_level);

  CLI::App* guest_cmd = app.add_subcommand(
      "guest", "Run a guest: connect, negotiate, probe the offered devices, answer heartbeats");
  AddSocketOption(guest_cmd, &guest.socket);
  guest_cmd->add_option("--name", guest.name, "Guest name shown by `uvmbus ls` (default guest-PID)")
      ->check(CLI::Validator(CheckGuestName, "", "guest name"))
      ->type_name("NAME");
  guest_cmd->add_option("--cpus", guest.cpus, "Number of vCPUs (one interrupt thread each)")
      ->check(CLI::Range(1u, kMaxGuestCpus))
      ->type_name("N")
      ->capture_default_str();
  guest_cmd->add_option("--ram", guest.ram_mib, "Guest RAM in MiB (rings and buffers live there)")
      ->check(CLI::Range(1u, kMaxGuestRamMiB))
      ->type_name("MIB")
      ->capture_default_str();
  guest_cmd
      ->add_option("--count", guest.count,
                   "Exit 0 after answering N heartbeats (default: run until interrupted)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  guest_cmd
      ->add_option("--addr", addr_flag,
                   "IPv4 address of the NIC's ARP/ICMP responder (default 10.0.0.X/24 from the "
                   "name)")
      ->check(SpecValidator(ParseAddrFlag, "CIDR"))
      ->type_name("CIDR");
  auto* tap_opt =
      guest_cmd
          ->add_option("--tap", tap_flag,
                       "Make the NIC a TAP interface (needs CAP_NET_ADMIN): NAME[,netns=NS,"
                       "addr=CIDR]")
          ->check(SpecValidator(ParseTapSpec, "TAP"))
          ->type_name("SPEC");
  guest_cmd
      ->add_option("--traffic", traffic_flag,
                   "Send and verify test frames: peer=MAC|IP,frames=N|duration=S,sizes=60-MTU,flows=64"
                   "[,rate=PPS,timeout=S,window=W]; prints one JSON line, exit 0 only if every "
                   "frame arrived intact")
      ->check(SpecValidator(ParseTrafficSpec, "TRAFFIC"))
      ->type_name("SPEC")
      ->excludes(tap_opt);
  guest_cmd
      ->add_option("--reconnect", reconnect_flag,
                   "When the host goes away: on = link down, keep the TAP, reconnect with "
                   "back-off; off = exit 3")
      ->check(CLI::IsMember({"on", "off"}))
      ->type_name("on|off")
      ->capture_default_str();
  guest_cmd
      ->add_option("--host-timeout", guest.host_timeout_ms,
                   "Longest wait for one answer of the host (HELLO, VMBus responses, offers)")
      ->check(CLI::Range(kMinHostTimeoutMs, kMaxHostTimeoutMs))
      ->type_name("MS")
      ->capture_default_str();
  AddLogLevelOption(guest_cmd, &guest.log_level);

  CLI::App* ls_cmd = app.add_subcommand(
      "ls", "List every connected guest's VMBus devices, in lsvmbus's layout");
  AddSocketOption(ls_cmd, &ls.socket);
  ls_cmd->add_flag("-v,--verbose", ls.verbose,
                   "-v: class id and channels (Rel_ID, target_cpu); -vv: also device id and path");
  ls_cmd->add_flag("--json", ls.json,
                   "One JSON document with sysfs attribute names and per-channel counters");

  CLI::App* stats_cmd = app.add_subcommand(
      "stats", "Per-NIC counters of every guest's synthetic NICs, in ethtool -S layout");
  AddSocketOption(stats_cmd, &stats.socket);
  stats_cmd->add_option("--guest", stats.guest, "Only this guest's NICs")->type_name("NAME");
  stats_cmd->add_flag("--json", stats.json, "One JSON document: guest -> NIC id -> flat map");

  CLI::App* channels_cmd = app.add_subcommand(
      "channels", "Channel (queue) count of every synthetic NIC, in ethtool -l layout");
  AddSocketOption(channels_cmd, &channels.socket);
  channels_cmd->add_option("--guest", channels.guest, "Only this guest's NICs")
      ->type_name("NAME");
  channels_cmd->add_flag("--json", channels.json, "One JSON document (ethtool's netlink names)");

  CLI::App* demo_cmd = app.add_subcommand(
      "demo",
      "Start a host and guests as separate processes, narrate the VMBus handshake and the "
      "synthetic NIC's bring-up, and send traffic between the guests");
  demo_cmd->add_option("--guests", demo.guests, "Number of guest processes")
      ->check(CLI::Range(1u, kMaxDemoGuests))
      ->type_name("N")
      ->capture_default_str();
  demo_cmd->add_option("--heartbeats", demo.heartbeats, "Heartbeats each guest answers")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000}))
      ->type_name("N")
      ->capture_default_str();
  demo_cmd->add_option("--frames", demo.frames, "Test frames each guest sends to the other")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}))
      ->type_name("N")
      ->capture_default_str();
  demo_cmd->add_flag("--tap", demo.tap,
                     "As root: TAP interfaces in two network namespaces, the system ping and a "
                     "pcapng capture");
  AddLogLevelOption(demo_cmd, &demo.log_level);

  DpdkOptions dpdk;
  CLI::App* dpdk_cmd = app.add_subcommand(
      "dpdk",
      "Run an unmodified DPDK program (dpdk-testpmd) on a synthetic NIC: this process plays "
      "kernel + uio_hv_generic, the program runs with the libuvmbus_uio.so shim "
      "(docs/interop.md)");
  AddSocketOption(dpdk_cmd, &dpdk.socket);
  dpdk_cmd->add_option("--name", dpdk.name, "Guest name shown by `uvmbus ls` (default dpdk-PID)")
      ->check(CLI::Validator(CheckGuestName, "", "guest name"))
      ->type_name("NAME");
  dpdk_cmd->add_option("--cpus", dpdk.cpus, "Number of vCPUs of the guest runtime")
      ->check(CLI::Range(1u, kMaxGuestCpus))
      ->type_name("N")
      ->capture_default_str();
  dpdk_cmd
      ->add_option("--ram", dpdk.ram_mib,
                   "Guest RAM in MiB for rings and buffers (DPDK's own heap is added to it)")
      ->check(CLI::Range(64u, kMaxGuestRamMiB))
      ->type_name("MIB")
      ->capture_default_str();
  dpdk_cmd->add_option("command", dpdk.command, "-- PROGRAM ARGS...: the DPDK program to run")
      ->required()
      ->expected(-1);
  AddLogLevelOption(dpdk_cmd, &dpdk.log_level);

  BenchOptions bench_options;
  CLI::App* bench_cmd = app.add_subcommand(
      "bench",
      "End-to-end benchmark: uvmbus's NIC against the raw ring, DPDK memif and AF_UNIX, "
      "interleaved on the same two cores (docs/benchmarks.md)");
  bench::AddBenchOptions(*bench_cmd, bench_options.command);

  std::vector<const char*> argv;
  argv.reserve(args.size());
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    // app.exit prints the help / version (to `out`) or the error (to `err`) in CLI11's format.
    const int cli_code = app.exit(e, out, err);
    ParseResult result;
    // CLI11 reports its own codes (>= 100, e.g. 105 for a validation error); only "success"
    // (help, version) is 0. Everything else is a usage error for us.
    result.exit_code = cli_code == static_cast<int>(CLI::ExitCodes::Success)
                           ? ToInt(ExitCode::kOk)
                           : ToInt(ExitCode::kUsage);
    return result;
  }

  ParseResult result;
  if (*host_cmd) {
    for (const std::string& flag : nic_flags) host.nics.push_back(*ParseNicSpec(flag));
    result.command = host;
  } else if (*guest_cmd) {
    if (!addr_flag.empty()) guest.addr = *ParseCidr(addr_flag);
    if (!tap_flag.empty()) guest.tap = *ParseTapSpec(tap_flag);
    if (!traffic_flag.empty()) guest.traffic = *ParseTrafficSpec(traffic_flag);
    guest.reconnect = reconnect_flag != "off";
    result.command = guest;
  } else if (*ls_cmd) {
    if (ls.verbose > 2) ls.verbose = 2;  // lsvmbus accepts -vvv and prints like -vv
    result.command = ls;
  } else if (*stats_cmd) {
    result.command = stats;
  } else if (*channels_cmd) {
    result.command = channels;
  } else if (*dpdk_cmd) {
    result.command = dpdk;
  } else if (*bench_cmd) {
    // `--json` without a file: the JSON document on stdout.
    if (bench_cmd->get_option("--json")->count() > 0 && bench_options.command.json_path.empty()) {
      bench_options.command.json_path = "-";
    }
    result.command = bench_options;
  } else {
    result.command = demo;
  }
  return result;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  ParseResult parsed = ParseCommandLine(args, std::cout, std::cerr);
  if (!parsed.command) return parsed.exit_code;
  // Exceptions must not escape into the runtime: anything unexpected is a runtime failure.
  try {
    return std::visit(
        [](const auto& options) -> int {
          using T = std::decay_t<decltype(options)>;
          if constexpr (std::is_same_v<T, HostOptions>) {
            return RunHost(options);
          } else if constexpr (std::is_same_v<T, GuestOptions>) {
            return RunGuest(options);
          } else if constexpr (std::is_same_v<T, LsOptions>) {
            return RunLs(options);
          } else if constexpr (std::is_same_v<T, StatsOptions>) {
            return RunStats(options);
          } else if constexpr (std::is_same_v<T, ChannelsOptions>) {
            return RunChannels(options);
          } else if constexpr (std::is_same_v<T, DpdkOptions>) {
            return RunDpdk(options);
          } else if constexpr (std::is_same_v<T, BenchOptions>) {
            return RunBench(options);
          } else {
            return RunDemo(options);
          }
        },
        *parsed.command);
  } catch (const std::exception& e) {
    std::cerr << "uvmbus: internal error: " << e.what() << "\n";
    return ToInt(ExitCode::kFailure);
  }
}

}  // namespace uvmbus::tools
