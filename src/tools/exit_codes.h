// File: tools/exit_codes.h
//
// What: the documented exit codes of the `uvmbus` command (docs/cli.md "Exit codes"), one enum
// like Firecracker's FcExitCode, so that scripts, systemd units and the integration tests can
// tell a usage mistake from a runtime failure from a vanished host. CLI11's own codes (>= 100)
// never escape: cli.cc maps every CLI::ParseError onto kUsage.
// Spec: none (tool convention, shared/conventions.md 2b "Exit codes").
// Linux/OpenVMM: Firecracker src/vmm/src/lib.rs FcExitCode; sysexits.h for the idea.
// Thread-safety: constants and pure functions.
#ifndef UVMBUS_TOOLS_EXIT_CODES_H_
#define UVMBUS_TOOLS_EXIT_CODES_H_

#include <cstdint>
#include <string_view>

namespace uvmbus::tools {

enum class ExitCode : uint8_t {
  kOk = 0,               // the command did what it was asked to (daemon: clean SIGINT/SIGTERM stop)
  kFailure = 1,          // a runtime failure (I/O, protocol error, a demo check failed, ...)
  kUsage = 2,            // the command line was wrong (unknown flag, missing/invalid value)
  kHostUnavailable = 3,  // `guest`/`ls`: nobody listens on --socket, or the host hung up
};

// 128 + N: what a process reports (and what `uvmbus demo` reports for a child) after it was
// ended by fatal signal N; the shell convention.
inline constexpr int kSignalExitBase = 128;
constexpr int SignalExitCode(int signo) { return kSignalExitBase + signo; }

constexpr int ToInt(ExitCode code) { return static_cast<int>(code); }

// One-word description for messages ("usage", "host unavailable", ...).
constexpr std::string_view ExitCodeName(ExitCode code) {
  switch (code) {
    case ExitCode::kOk:
      return "ok";
    case ExitCode::kFailure:
      return "failure";
    case ExitCode::kUsage:
      return "usage error";
    case ExitCode::kHostUnavailable:
      return "host unavailable";
  }
  return "unknown";
}

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_EXIT_CODES_H_
