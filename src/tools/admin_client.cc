// File: tools/admin_client.cc
#include "tools/admin_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "tools/admin_protocol.h"
#include "tools/unix_socket.h"

namespace uvmbus::tools {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Expected<nlohmann::json> AdminCall(const std::string& admin_path, std::string_view command,
                                   int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  auto fd = ConnectUnixStream(admin_path);
  if (!fd) return unexpected(fd.error());
  if (auto st = WriteAll(fd->get(), EncodeAdminRequest(command), timeout_ms); !st) {
    return unexpected(st.error());
  }
  std::string line;
  char buf[16 * 1024];
  for (;;) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      return MakeError(ErrorCode::kTimeout, "no answer from {} within {} ms", admin_path,
                       timeout_ms);
    }
    pollfd p{fd->get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return unexpected(Error::FromErrno("poll", errno));
    }
    if (ready == 0) continue;  // the deadline check above reports the timeout
    const ssize_t n = ::recv(fd->get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) {
        return MakeError(ErrorCode::kUnavailable, "{} closed the connection", admin_path);
      }
      return unexpected(Error::FromErrno("recv", errno));
    }
    if (n == 0) {
      return MakeError(ErrorCode::kUnavailable, "{} closed the connection without answering",
                       admin_path);
    }
    const size_t old = line.size();
    line.append(buf, static_cast<size_t>(n));
    if (const size_t nl = line.find('\n', old); nl != std::string::npos) {
      line.resize(nl);
      return ParseAdminResponse(line);
    }
    if (line.size() > kMaxAdminResponseBytes) {
      return MakeError(ErrorCode::kMalformed, "admin response longer than {} bytes",
                       kMaxAdminResponseBytes);
    }
  }
}

}  // namespace uvmbus::tools
