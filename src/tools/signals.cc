// File: tools/signals.cc
#include "tools/signals.h"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace uvmbus::tools {

Expected<TerminationSignals> TerminationSignals::Block(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  sigset_t previous;
  if (int err = ::pthread_sigmask(SIG_BLOCK, &set, &previous); err != 0) {
    return unexpected(Error::FromErrno("pthread_sigmask", err));
  }
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) {
    Error error = Error::FromErrno("signalfd", errno);
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return unexpected(std::move(error));
  }
  return TerminationSignals(std::move(fd), set, previous);
}

TerminationSignals::TerminationSignals(UniqueFd fd, sigset_t blocked, sigset_t previous)
    : fd_(std::move(fd)), blocked_(blocked), previous_(previous) {}

TerminationSignals::TerminationSignals(TerminationSignals&& other) noexcept
    : fd_(std::move(other.fd_)),
      blocked_(other.blocked_),
      previous_(other.previous_),
      active_(std::exchange(other.active_, false)) {}

TerminationSignals::~TerminationSignals() { Unblock(); }

std::optional<int> TerminationSignals::Read() {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(fd_.get(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing pending
  }
}

void TerminationSignals::Unblock() {
  if (!std::exchange(active_, false)) return;
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

void IgnoreHangupAndPipe() {
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
}

}  // namespace uvmbus::tools
