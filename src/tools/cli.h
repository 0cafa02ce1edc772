// File: tools/cli.h
//
// What: the `uvmbus` command line: one options struct per subcommand, the CLI11 parser that fills
// them (ParseCommandLine, testable without running anything) and Main(), which parses, maps
// CLI11's exceptions onto the documented exit codes (exit_codes.h) and runs the subcommand.
// Exceptions are used only here, inside the tool's argument parsing (style.md 1.9 #5).
//
//   uvmbus host     --socket PATH [--heartbeat-interval MS] [--nic SPEC]... [--log-level L]
//   uvmbus guest    --socket PATH [--name NAME] [--cpus N] [--ram MIB] [--count N]
//                   [--addr CIDR] [--tap NAME[,netns=NS,addr=CIDR]] [--traffic SPEC]
//                   [--reconnect on|off] [--host-timeout MS] [--log-level L]
//   uvmbus ls       --socket PATH [-v|-vv] [--json]
//   uvmbus stats    --socket PATH [--guest G] [--json]
//   uvmbus channels --socket PATH [--guest G] [--json]
//   uvmbus bench    [--quick] [--json [FILE]] [--only LIST] [--rounds N] [...]
//   uvmbus demo     [--guests N] [--heartbeats N] [--frames N] [--tap] [--log-level L]
//
// Spec: none (tool); docs/cli.md is the user documentation.
// Linux/OpenVMM: tools/hv/lsvmbus (ls), openvmm_entry/src/cli_args.rs (flag style).
// Thread-safety: ParseCommandLine is reentrant; Main is meant to run once per process.
#ifndef UVMBUS_TOOLS_CLI_H_
#define UVMBUS_TOOLS_CLI_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "bench/harness/bench_command.h"
#include "net/tap.h"
#include "tools/nic_spec.h"

namespace uvmbus::tools {

// Program version (--version, the admin "version" command, `ls --json`).
inline constexpr const char* kProgramVersion = "0.1.0";

// Defaults shared by the parser, the demo and the docs.
inline constexpr uint32_t kDefaultHeartbeatIntervalMs = 1000;
inline constexpr uint32_t kMinHeartbeatIntervalMs = 1;
inline constexpr uint32_t kMaxHeartbeatIntervalMs = 3'600'000;
inline constexpr uint32_t kDefaultGuestCpus = 2;
inline constexpr uint32_t kMaxGuestCpus = 64;
// Enough for netvsc's Linux-sized buffers (16 MiB receive, 1 MiB send) and the rings of a
// several-queue NIC; pages are only touched when used.
inline constexpr uint32_t kDefaultGuestRamMiB = 64;
inline constexpr uint32_t kMaxGuestRamMiB = 16384;
inline constexpr uint32_t kDefaultDemoGuests = 2;
inline constexpr uint32_t kMaxDemoGuests = 8;
inline constexpr uint32_t kDefaultDemoHeartbeats = 3;
inline constexpr uint64_t kDefaultDemoFrames = 20'000;
// `guest --host-timeout` default and bounds (milliseconds).
inline constexpr uint32_t kDefaultHostTimeoutMs = 10'000;
inline constexpr uint32_t kMinHostTimeoutMs = 100;
inline constexpr uint32_t kMaxHostTimeoutMs = 600'000;

// `uvmbus host`: the host daemon.
struct HostOptions {
  std::string socket;
  uint32_t heartbeat_interval_ms = kDefaultHeartbeatIntervalMs;
  // --nic flags (nic_spec.h), parsed and validated.
  std::vector<NicSpec> nics;
  std::string log_level = "info";
  // --group NAME: the socket is created 0660 and owned by group NAME (default: 0600, owner only).
  std::string group;
};

// `uvmbus guest`: one guest process.
struct GuestOptions {
  std::string socket;
  std::string name;  // empty: "guest-<pid>"
  uint32_t cpus = kDefaultGuestCpus;
  uint32_t ram_mib = kDefaultGuestRamMiB;
  uint64_t count = 0;  // heartbeats to answer before exiting 0; 0 = run until interrupted
  // The NIC's IPv4 address for the ARP/ICMP responder (default: DefaultGuestAddress(name)).
  std::optional<net::Ipv4Interface> addr;
  // --tap: the NIC becomes a kernel TAP interface (no responder, no traffic).
  std::optional<TapSpec> tap;
  // --traffic: send/verify test frames, print a JSON line, exit 0 only if all arrived intact.
  std::optional<TrafficSpec> traffic;
  // --reconnect on|off: when the host goes away (killed, restarted), mark the NIC's link down,
  // keep the TAP and reconnect with back-off (on, the default), or exit 3 (off: the first
  // version's behaviour). docs/robustness.md section 4.
  bool reconnect = true;
  // --host-timeout MS: the longest wait for one answer of the host (HELLO reply, each VMBus
  // response, ALLOFFERS_DELIVERED) before the attempt counts as failed.
  uint32_t host_timeout_ms = kDefaultHostTimeoutMs;
  std::string log_level = "warn";
};

// `uvmbus ls`: lsvmbus for every guest of a host.
struct LsOptions {
  std::string socket;
  int verbose = 0;  // number of -v
  bool json = false;
};

// `uvmbus stats` (ethtool -S) and `uvmbus channels` (ethtool -l) for every synthetic NIC.
struct StatsOptions {
  std::string socket;
  std::string guest;  // empty: every guest
  bool json = false;
};
struct ChannelsOptions {
  std::string socket;
  std::string guest;
  bool json = false;
};

// `uvmbus demo`: host + guests as separate processes, narrated.
struct DemoOptions {
  uint32_t guests = kDefaultDemoGuests;
  uint64_t heartbeats = kDefaultDemoHeartbeats;
  uint64_t frames = kDefaultDemoFrames;  // test frames each guest sends to the other
  bool tap = false;  // TAP interfaces in two network namespaces, the system ping, a pcap file
  std::string log_level = "warn";
};

// `uvmbus bench`: the end-to-end benchmark (bench/harness/bench_command.h; docs/benchmarks.md).
struct BenchOptions {
  bench::BenchCommand command;
};

// `uvmbus dpdk`: run an unmodified DPDK program on a synthetic NIC (tools/dpdk_command.cc,
// docs/interop.md).
struct DpdkOptions {
  std::string socket;
  std::string name;  // empty: "dpdk-<pid>"
  uint32_t cpus = kDefaultGuestCpus;
  uint32_t ram_mib = 128;  // rings + 16 MiB receive + 16 MiB send buffer + sub-channel rings
  std::vector<std::string> command;  // PROGRAM ARGS... (after "--")
  std::string log_level = "warn";
};

using Command = std::variant<HostOptions, GuestOptions, LsOptions, StatsOptions,
                             ChannelsOptions, DemoOptions, BenchOptions, DpdkOptions>;

// The outcome of parsing: either a command to run, or an exit code to return at once (help or
// version printed: 0; a usage error: 2, with the message already written to `err`).
struct ParseResult {
  std::optional<Command> command;
  int exit_code = 0;
};

// Parses `args` (args[0] is the program name). Help and version text go to `out`, usage errors
// (with a "Run with --help" hint) to `err`.
ParseResult ParseCommandLine(const std::vector<std::string>& args, std::ostream& out,
                             std::ostream& err);

// The whole program: parse, then run the subcommand. Returns the process exit code.
int Main(int argc, char** argv);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_CLI_H_
