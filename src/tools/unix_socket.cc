// File: tools/unix_socket.cc
#include "tools/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace uvmbus::tools {
namespace {

Expected<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "socket path '{}' must be 1..{} bytes long", path, sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Status RemoveStaleSocket(const std::string& path) {
  auto addr = MakeAddress(path);
  if (!addr) return unexpected(addr.error());
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Ok();
    return unexpected(Error::FromErrno("lstat " + path, errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return MakeError(ErrorCode::kAlreadyExists, "{} exists and is not a socket", path);
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return unexpected(Error::FromErrno("socket", errno));
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0) {
    return MakeError(ErrorCode::kAlreadyExists, "another process is serving {}", path);
  }
  // ECONNREFUSED: a socket file whose owner died (iceoryx issue #113). Anything else (EACCES,
  // EAGAIN: a live but busy listener) is not ours to delete.
  if (errno != ECONNREFUSED) {
    return unexpected(Error::FromErrno("probing " + path, errno));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return unexpected(Error::FromErrno("removing stale socket " + path, errno));
  }
  return Ok();
}

Expected<UniqueFd> ListenUnixStream(const std::string& path, int backlog) {
  auto addr = MakeAddress(path);
  if (!addr) return unexpected(addr.error());
  if (auto st = RemoveStaleSocket(path); !st) return unexpected(st.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return unexpected(Error::FromErrno("socket", errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return unexpected(Error::FromErrno("bind " + path, errno));
  }
  // 0600 before listen(): until listen() every connect() is refused, so there is no window in
  // which another user could reach the socket through wider umask-derived permissions.
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), backlog) != 0) {
    Error error = Error::FromErrno("chmod/listen " + path, errno);
    ::unlink(path.c_str());
    return unexpected(std::move(error));
  }
  return fd;
}

Expected<UniqueFd> ConnectUnixStream(const std::string& path) {
  auto addr = MakeAddress(path);
  if (!addr) return unexpected(addr.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::FromErrno("socket", errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return MakeError(ErrorCode::kUnavailable, "no host is listening on {}", path);
    }
    if (err == EACCES || err == EPERM) {
      return MakeError(ErrorCode::kPermissionDenied, "not allowed to connect to {}", path);
    }
    return unexpected(Error::FromErrno("connect " + path, err));
  }
  return fd;
}

Status WriteAll(int fd, std::string_view data, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int64_t left = deadline - NowMs();
      if (left <= 0) return MakeError(ErrorCode::kTimeout, "peer does not read");
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
        return unexpected(Error::FromErrno("poll", errno));
      }
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return MakeError(ErrorCode::kUnavailable, "peer closed the connection");
    }
    return unexpected(Error::FromErrno("send", errno));
  }
  return Ok();
}

}  // namespace uvmbus::tools
