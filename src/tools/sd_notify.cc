// File: tools/sd_notify.cc
#include "tools/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace uvmbus::tools {
namespace {

std::optional<uint64_t> ParseDecimal(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  uint64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

}  // namespace

SdNotifier SdNotifier::ForSocket(const std::string& notify_socket,
                                 std::optional<std::chrono::microseconds> watchdog) {
  SdNotifier n;
  // systemd passes a path or an abstract name written with a leading '@'.
  if (notify_socket.empty() || notify_socket.size() >= sizeof(sockaddr_un::sun_path) ||
      (notify_socket[0] != '/' && notify_socket[0] != '@')) {
    return n;
  }
  n.address_ = notify_socket;
  if (n.address_[0] == '@') n.address_[0] = '\0';
  n.fd_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (watchdog && watchdog->count() > 0) {
    n.watchdog_interval_ = std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2);
    if (n.watchdog_interval_->count() == 0) n.watchdog_interval_ = std::chrono::milliseconds(1);
  }
  return n;
}

SdNotifier SdNotifier::FromEnvironment(std::string* warning) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return SdNotifier();
  std::optional<std::chrono::microseconds> watchdog;
  if (auto usec = ParseDecimal(std::getenv("WATCHDOG_USEC")); usec && *usec > 0) {
    const char* pid_text = std::getenv("WATCHDOG_PID");
    auto pid = ParseDecimal(pid_text);
    // WATCHDOG_PID names the process the watchdog is meant for (a forking wrapper may pass the
    // variables on to us by accident).
    if (pid_text == nullptr || (pid && *pid == static_cast<uint64_t>(::getpid()))) {
      watchdog = std::chrono::microseconds(*usec);
    }
  }
  SdNotifier n = ForSocket(socket, watchdog);
  if (!n.enabled() && warning != nullptr) {
    *warning = std::string("ignoring unusable NOTIFY_SOCKET=") + socket;
  }
  return n;
}

Status SdNotifier::Notify(std::string_view state) const {
  if (!enabled()) return Ok();
  if (state.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty sd_notify state");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  for (;;) {
    const ssize_t n = ::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr), len);
    if (n >= 0) return Ok();
    if (errno == EINTR) continue;
    return unexpected(Error::FromErrno("sd_notify sendto", errno));
  }
}

}  // namespace uvmbus::tools
