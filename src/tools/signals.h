// File: tools/signals.h
//
// What: signal handling for the long-running subcommands, without async handlers: the
// termination signals are blocked in the main thread *before any other thread exists* (threads
// inherit the mask, so only the signalfd ever sees them) and read from a signalfd that the main
// loop polls together with its other fds. After the first SIGINT/SIGTERM the daemon starts its
// clean shutdown and calls Unblock(): a second one then takes the default action (the process
// ends with status 128+N), the usual "press Ctrl-C twice" escape from a stuck shutdown.
// Also: explicit SIG_IGN for SIGHUP (the daemon has no configuration to reload) and SIGPIPE (a
// vanished reader of stdout or of the admin socket is an I/O error, not a crash).
// Spec: none. Conventions: shared/conventions.md 2b "Daemon behaviour".
// Thread-safety: construct and use from the main thread only.
#ifndef UVMBUS_TOOLS_SIGNALS_H_
#define UVMBUS_TOOLS_SIGNALS_H_

#include <signal.h>

#include <initializer_list>
#include <optional>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::tools {

class TerminationSignals {
 public:
  // Blocks `signals` in the calling thread and opens a non-blocking signalfd for them.
  // Errors: kIo.
  static Expected<TerminationSignals> Block(std::initializer_list<int> signals = {SIGINT, SIGTERM});
  TerminationSignals(TerminationSignals&& other) noexcept;
  TerminationSignals& operator=(TerminationSignals&&) = delete;
  TerminationSignals(const TerminationSignals&) = delete;
  // Unblock()s.
  ~TerminationSignals();

  // Readable when a signal is pending.
  int fd() const { return fd_.get(); }
  // The pending signal's number, consuming it; nullopt when none is pending.
  std::optional<int> Read();
  // Restores the previous mask of the calling thread (idempotent).
  void Unblock();

 private:
  TerminationSignals(UniqueFd fd, sigset_t blocked, sigset_t previous);
  UniqueFd fd_;
  sigset_t blocked_;
  sigset_t previous_;
  bool active_ = true;
};

// SIGHUP and SIGPIPE -> SIG_IGN (see the file comment).
void IgnoreHangupAndPipe();

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_SIGNALS_H_
