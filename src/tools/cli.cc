// File: tools/cli.cc
//
// The CLI11 parser of the `uvmbus` command and the exit-code mapping (see cli.h, exit_codes.h).
#include "tools/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <vector>

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
  DemoOptions demo;

  CLI::App app{"uvmbus: a user-space Hyper-V VMBus (host and guest) over a Unix socket.\n"
               "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 host unavailable,\n"
               "128+N ended by signal N. See docs/cli.md.",
               "uvmbus"};
  app.set_version_flag("--version",
                       fmt::format("uvmbus {} (user-space Hyper-V VMBus)", kProgramVersion));
  app.require_subcommand(1, 1);
  app.fallthrough(false);

  CLI::App* host_cmd = app.add_subcommand(
      "host", "Run the host daemon: offers a heartbeat device to every guest that connects");
  AddSocketOption(host_cmd, &host.socket);
  host_cmd
      ->add_option("--heartbeat-interval", host.heartbeat_interval_ms,
                   "Milliseconds between two heartbeats the host sends each guest")
      ->check(CLI::Range(kMinHeartbeatIntervalMs, kMaxHeartbeatIntervalMs))
      ->type_name("MS")
      ->capture_default_str();
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
  AddLogLevelOption(guest_cmd, &guest.log_level);

  CLI::App* ls_cmd = app.add_subcommand(
      "ls", "List every connected guest's VMBus devices, in lsvmbus's layout");
  AddSocketOption(ls_cmd, &ls.socket);
  ls_cmd->add_flag("-v,--verbose", ls.verbose,
                   "-v: class id and channels (Rel_ID, target_cpu); -vv: also device id and path");
  ls_cmd->add_flag("--json", ls.json,
                   "One JSON document with sysfs attribute names and per-channel counters");

  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Start a host and guests as separate processes and narrate the VMBus handshake");
  demo_cmd->add_option("--guests", demo.guests, "Number of guest processes")
      ->check(CLI::Range(1u, kMaxDemoGuests))
      ->type_name("N")
      ->capture_default_str();
  demo_cmd->add_option("--heartbeats", demo.heartbeats, "Heartbeats each guest answers")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000}))
      ->type_name("N")
      ->capture_default_str();
  AddLogLevelOption(demo_cmd, &demo.log_level);

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
    result.command = host;
  } else if (*guest_cmd) {
    result.command = guest;
  } else if (*ls_cmd) {
    if (ls.verbose > 2) ls.verbose = 2;  // lsvmbus accepts -vvv and prints like -vv
    result.command = ls;
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
