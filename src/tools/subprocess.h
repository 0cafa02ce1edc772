// File: tools/subprocess.h
//
// What: `Subprocess`, a child process with its stdout captured line by line, for `uvmbus demo`
// (which re-executes /proc/self/exe as `host` / `guest`) and the integration tests. A reader
// thread collects the child's stdout lines; callers wait on conditions over those lines with a
// timeout (never sleeps as synchronisation). Waiting for exit uses a pidfd, so it also has a
// timeout. The child starts with an empty signal mask and default dispositions (whatever the
// parent blocked or ignored), stdin from /dev/null, stderr inherited (or captured too), and
// PR_SET_PDEATHSIG = SIGKILL: it dies if the thread that spawned it dies, so a crashed test or
// demo cannot leave orphans behind. Destroying a running Subprocess kills (SIGKILL) and reaps it.
// Spec: none (tooling).
// Thread-safety: all methods are thread-safe. Spawn from a long-lived thread (PDEATHSIG is tied
// to the spawning thread).
#ifndef UVMBUS_TOOLS_SUBPROCESS_H_
#define UVMBUS_TOOLS_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace uvmbus::tools {

class Subprocess {
 public:
  struct Options {
    // Also capture stderr into the same line list (prefixed with nothing; interleaving follows
    // arrival order). Default: stderr goes to the parent's stderr.
    bool merge_stderr = false;
    // Extra environment assignments ("NAME=value") on top of the parent's environment.
    std::vector<std::string> extra_env;
  };

  // Forks and executes argv[0] with `argv`. Errors: kInvalidArgument (empty argv), kIo.
  static Expected<std::unique_ptr<Subprocess>> Spawn(const std::vector<std::string>& argv,
                                                     Options options);
  static Expected<std::unique_ptr<Subprocess>> Spawn(const std::vector<std::string>& argv) {
    return Spawn(argv, Options{});
  }
  // Kills (SIGKILL) and reaps the child if it still runs; joins the reader thread.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Sends `signo` to the child (nothing if it was already reaped). Errors: kIo.
  Status Signal(int signo);

  // Waits for the child to exit and reaps it: its exit status, or 128+N if signal N ended it
  // (exit_codes.h). nullopt if it is still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // The exit code if the child has been reaped (by Wait or by this call, without blocking).
  std::optional<int> ExitCode();
  bool Running() { return !ExitCode().has_value(); }

  // stdout lines received so far (without '\n'), starting at index `from`.
  std::vector<std::string> Lines(size_t from = 0) const EXCLUDES(mu_);
  size_t LineCount() const EXCLUDES(mu_);
  // True once the child closed its stdout (usually: it exited).
  bool StdoutClosed() const EXCLUDES(mu_);

  // Waits until a line at index >= `from` satisfies `match`; returns its index, nullopt on
  // timeout or if stdout closed first.
  std::optional<size_t> WaitForLine(const std::function<bool(std::string_view)>& match,
                                    std::chrono::milliseconds timeout, size_t from = 0)
      EXCLUDES(mu_);
  // Waits until the number of lines at index >= `from` satisfying `match` reaches `count`.
  bool WaitForLineCount(const std::function<bool(std::string_view)>& match, size_t count,
                        std::chrono::milliseconds timeout, size_t from = 0) EXCLUDES(mu_);
  // Waits until stdout is closed. False on timeout.
  bool WaitForStdoutClosed(std::chrono::milliseconds timeout) EXCLUDES(mu_);

 private:
  Subprocess(pid_t pid, UniqueFd pidfd, UniqueFd stdout_fd);
  void ReadLoop();

  const pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd stdout_fd_;
  std::thread reader_;

  std::mutex wait_mu_;  // serialises reaping
  std::optional<int> exit_code_;  // guarded by wait_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_ GUARDED_BY(mu_);
  std::string partial_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
};

// "/proc/self/exe" resolved (the running uvmbus binary), for re-executing subcommands.
Expected<std::string> SelfExecutable();

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_SUBPROCESS_H_
