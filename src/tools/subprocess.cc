// File: tools/subprocess.cc
#include "tools/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "tools/exit_codes.h"

extern char** environ;

namespace uvmbus::tools {
namespace {

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return SignalExitCode(WTERMSIG(status));
  return ToInt(ExitCode::kFailure);
}

// Runs in the forked child: only async-signal-safe calls until execve.
[[noreturn]] void ExecChild(pid_t parent, int devnull, int out_w, bool merge_stderr,
                            char* const* argv, char* const* envp) {
  // Die with the spawning thread, and close the race where it died before prctl().
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);  // fails harmlessly for KILL/STOP
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  if (::dup2(devnull, STDIN_FILENO) < 0 || ::dup2(out_w, STDOUT_FILENO) < 0) ::_exit(127);
  if (merge_stderr && ::dup2(out_w, STDERR_FILENO) < 0) ::_exit(127);
  ::execve(argv[0], argv, envp);
  ::_exit(127);
}

}  // namespace

Expected<std::string> SelfExecutable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return unexpected(Error::FromErrno("readlink /proc/self/exe", errno));
  return std::string(buf, static_cast<size_t>(n));
}

Expected<std::unique_ptr<Subprocess>> Subprocess::Spawn(const std::vector<std::string>& argv,
                                                        Options options) {
  if (argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty argv");
  // Everything the child needs is prepared before fork(): it may not allocate afterwards.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) cenv.push_back(*e);
  for (const std::string& e : options.extra_env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return unexpected(Error::FromErrno("pipe2", errno));
  UniqueFd out_r(pipe_fds[0]);
  UniqueFd out_w(pipe_fds[1]);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return unexpected(Error::FromErrno("open /dev/null", errno));

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return unexpected(Error::FromErrno("fork", errno));
  if (pid == 0) {
    ExecChild(parent, devnull.get(), out_w.get(), options.merge_stderr, cargv.data(),
              cenv.data());
  }
  out_w.Reset();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    Error error = Error::FromErrno("pidfd_open", errno);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return unexpected(std::move(error));
  }
  std::unique_ptr<Subprocess> p(new Subprocess(pid, std::move(pidfd), std::move(out_r)));
  p->reader_ = std::thread([raw = p.get()] { raw->ReadLoop(); });
  return p;
}

Subprocess::Subprocess(pid_t pid, UniqueFd pidfd, UniqueFd stdout_fd)
    : pid_(pid), pidfd_(std::move(pidfd)), stdout_fd_(std::move(stdout_fd)) {}

Subprocess::~Subprocess() {
  if (!ExitCode()) {
    (void)Signal(SIGKILL);
    (void)Wait(std::chrono::hours(1));  // SIGKILL cannot be ignored: this returns promptly
  }
  // The child is gone, so its end of the pipe is closed (our children do not fork), and the
  // reader sees EOF.
  if (reader_.joinable()) reader_.join();
}

Status Subprocess::Signal(int signo) {
  std::lock_guard<std::mutex> lock(wait_mu_);
  if (exit_code_) return Ok();
  // pidfd_send_signal cannot hit a recycled pid: the pidfd pins this process.
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), signo, nullptr, 0) != 0 && errno != ESRCH) {
    return unexpected(Error::FromErrno("pidfd_send_signal", errno));
  }
  return Ok();
}

std::optional<int> Subprocess::ExitCode() {
  std::lock_guard<std::mutex> lock(wait_mu_);
  if (exit_code_) return exit_code_;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_code_ = DecodeStatus(status);
  return exit_code_;
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto code = ExitCode()) return code;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    // The pidfd becomes readable when the process exits.
    pollfd p{pidfd_.get(), POLLIN, 0};
    const int wait_ms = left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
    if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) return std::nullopt;
  }
}

void Subprocess::ReadLoop() {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(stdout_fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      if (!partial_.empty()) lines_.push_back(std::move(partial_));
      partial_.clear();
      closed_ = true;
      cv_.notify_all();
      return;
    }
    partial_.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      lines_.emplace_back(partial_, start, nl - start);
    }
    partial_.erase(0, start);
    cv_.notify_all();
  }
}

std::vector<std::string> Subprocess::Lines(size_t from) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (from >= lines_.size()) return {};
  return std::vector<std::string>(lines_.begin() + static_cast<std::ptrdiff_t>(from),
                                  lines_.end());
}

size_t Subprocess::LineCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_.size();
}

bool Subprocess::StdoutClosed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

std::optional<size_t> Subprocess::WaitForLine(const std::function<bool(std::string_view)>& match,
                                              std::chrono::milliseconds timeout, size_t from) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  size_t next = from;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      if (match(lines_[next])) return next;
    }
    if (closed_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == lines_.size()) {
      return std::nullopt;
    }
  }
}

bool Subprocess::WaitForLineCount(const std::function<bool(std::string_view)>& match,
                                  size_t count, std::chrono::milliseconds timeout, size_t from) {
  if (count == 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  size_t next = from;
  size_t found = 0;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      if (match(lines_[next]) && ++found >= count) return true;
    }
    if (closed_) return false;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == lines_.size()) {
      return false;
    }
  }
}

bool Subprocess::WaitForStdoutClosed(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this]() REQUIRES(mu_) { return closed_; });
}

}  // namespace uvmbus::tools
