// File: partition/socket_protocol.cc — see socket_protocol.h.
#include "partition/socket_protocol.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace uvmbus::partition::sockproto {

Status SendDatagram(int sock, std::span<const uint8_t> bytes, std::span<const int> fds,
                    bool dont_wait) {
  if (fds.size() > kMaxFds) {
    return MakeError(ErrorCode::kInvalidArgument, "{} fds in one message", fds.size());
  }
  iovec iov{};
  iov.iov_base = const_cast<uint8_t*>(bytes.data());
  iov.iov_len = bytes.size();
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    const size_t len = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(len);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(len);
    std::memcpy(CMSG_DATA(c), fds.data(), len);
  }
  const int flags = MSG_NOSIGNAL | (dont_wait ? MSG_DONTWAIT : 0);
  for (;;) {
    const ssize_t n = ::sendmsg(sock, &msg, flags);
    if (n == static_cast<ssize_t>(bytes.size())) return Ok();
    if (n >= 0) return MakeError(ErrorCode::kIo, "short datagram send ({} of {})", n, bytes.size());
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
      return MakeError(ErrorCode::kUnavailable, "peer hung up");
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return MakeError(ErrorCode::kResourceExhausted, "peer is not reading (socket buffer full)");
    }
    return unexpected(Error::FromErrno("sendmsg", errno));
  }
}

Expected<Datagram> ReceiveDatagram(int sock) {
  Datagram out;
  out.bytes.resize(kMaxDatagram);
  iovec iov{};
  iov.iov_base = out.bytes.data();
  iov.iov_len = out.bytes.size();
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return MakeError(ErrorCode::kTimeout, "no datagram queued");
    }
    if (errno == ECONNRESET || errno == ENOTCONN) {
      return MakeError(ErrorCode::kUnavailable, "peer hung up");
    }
    return unexpected(Error::FromErrno("recvmsg", errno));
  }
  // Take ownership of every fd first, so nothing leaks whatever we decide about the message.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(fd);
    }
  }
  if (n == 0 && out.fds.empty()) {
    // SOCK_SEQPACKET: a zero-length read is end of stream (we never send empty datagrams).
    return MakeError(ErrorCode::kUnavailable, "peer hung up");
  }
  out.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  out.bytes.resize(static_cast<size_t>(n));
  return out;
}

bool WaitReadable(int sock, int stop_fd, int timeout_ms) {
  pollfd fds[2] = {{sock, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  const nfds_t count = stop_fd >= 0 ? 2 : 1;
  for (;;) {
    const int r = ::poll(fds, count, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    if (count == 2 && (fds[1].revents & POLLIN) != 0) return false;
    return fds[0].revents != 0;  // POLLIN, POLLHUP or POLLERR: the next receive tells which
  }
}

bool IsEventfd(int fd) {
  char link[64] = {};
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  if (n <= 0) return false;
  return std::string_view(link, static_cast<size_t>(n)) == "anon_inode:[eventfd]";
}

Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return unexpected(Error::FromErrno("fcntl O_NONBLOCK", errno));
  }
  return Ok();
}

}  // namespace uvmbus::partition::sockproto
