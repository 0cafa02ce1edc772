// File: tools/admin_server.cc
#include "tools/admin_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <vector>

#include "common/log.h"
#include "tools/unix_socket.h"

namespace uvmbus::tools {
namespace {

constexpr std::string_view kLogComponent = "admin";
constexpr size_t kReadChunk = 16 * 1024;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Client {
  UniqueFd fd;
  std::string buffer;  // bytes received after the last complete line
  int64_t last_activity_ms = 0;
};

}  // namespace

Expected<std::unique_ptr<AdminServer>> AdminServer::Listen(const std::string& path,
                                                           Handler handler,
                                                           AdminServerOptions options) {
  if (!handler) return MakeError(ErrorCode::kInvalidArgument, "admin server needs a handler");
  auto fd = ListenUnixStream(path);
  if (!fd) return unexpected(fd.error());
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) {
    Error error = Error::FromErrno("eventfd", errno);
    ::unlink(path.c_str());
    return unexpected(std::move(error));
  }
  std::unique_ptr<AdminServer> server(
      new AdminServer(path, std::move(*fd), std::move(stop), std::move(handler), options));
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

AdminServer::AdminServer(std::string path, UniqueFd listen_fd, UniqueFd stop_fd, Handler handler,
                         AdminServerOptions options)
    : path_(std::move(path)),
      listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)),
      handler_(std::move(handler)),
      options_(options) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  // The eventfd wakes the poll loop; a failed write can only mean the counter is saturated, in
  // which case the loop is awake anyway.
  (void)!::write(stop_fd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  listen_fd_.Reset();
  ::unlink(path_.c_str());
}

void AdminServer::Loop() {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  std::string chunk(kReadChunk, '\0');

  auto drop = [&](size_t i, bool misbehaved) {
    if (misbehaved) clients_dropped_.Add();
    clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
  };

  for (;;) {
    fds.clear();
    fds.push_back({stop_fd_.get(), POLLIN, 0});
    fds.push_back({listen_fd_.get(), POLLIN, 0});
    int timeout = -1;
    const int64_t now = NowMs();
    for (const Client& c : clients) {
      fds.push_back({c.fd.get(), POLLIN, 0});
      const int64_t left =
          std::max<int64_t>(0, c.last_activity_ms + options_.idle_timeout_ms - now);
      if (timeout < 0 || left < timeout) timeout = static_cast<int>(left);
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      UVMBUS_LOG_ERROR(kLogComponent, "poll failed: {}", Error::FromErrno("poll", errno));
      return;
    }
    if (fds[0].revents != 0) return;  // Stop()

    // Clients first (indices in `fds` match `clients` before any is dropped or accepted).
    const int64_t after = NowMs();
    for (size_t i = clients.size(); i-- > 0;) {
      Client& c = clients[i];
      const short revents = fds[2 + i].revents;
      if (revents == 0) {
        if (after - c.last_activity_ms >= options_.idle_timeout_ms) drop(i, true);
        continue;
      }
      const ssize_t n = ::recv(c.fd.get(), chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // orderly close, or an error: either way the client is gone
        drop(i, false);
        continue;
      }
      c.last_activity_ms = after;
      c.buffer.append(chunk.data(), static_cast<size_t>(n));
      bool keep = true;
      size_t start = 0;
      for (size_t nl; keep && (nl = c.buffer.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        std::string_view line(c.buffer.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        Expected<nlohmann::json> result = [&]() -> Expected<nlohmann::json> {
          auto request = ParseAdminRequest(line);
          if (!request) return unexpected(request.error());
          return handler_(*request);
        }();
        requests_.Add();
        if (!WriteAll(c.fd.get(), EncodeAdminResponse(result), options_.write_timeout_ms)) {
          keep = false;
        }
      }
      if (!keep) {
        drop(i, true);
        continue;
      }
      c.buffer.erase(0, start);
      if (c.buffer.size() > kMaxAdminRequestBytes) {
        (void)WriteAll(c.fd.get(),
                       EncodeAdminResponse(MakeError(ErrorCode::kMalformed, "request too long")),
                       options_.write_timeout_ms);
        drop(i, true);
      }
    }

    if (fds[1].revents != 0) {
      for (;;) {
        UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn) break;  // EAGAIN (drained) or a transient error; poll tells us again
        if (clients.size() >= options_.max_clients) {
          clients_dropped_.Add();
          continue;  // closing it at once is the answer
        }
        clients.push_back(Client{std::move(conn), {}, NowMs()});
      }
    }
  }
}

}  // namespace uvmbus::tools
