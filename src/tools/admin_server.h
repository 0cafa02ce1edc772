// File: tools/admin_server.h
//
// What: `AdminServer`, the host daemon's admin endpoint (protocol: admin_protocol.h): a Unix
// stream socket (mode 0600, a stale socket file left by a dead daemon is removed at start, a live
// one is refused) served by one thread that polls the listening socket, up to kMaxClients
// connections and a stop eventfd. Each complete request line is handed to the `Handler` and its
// result written back as one response line. A client that sends a line longer than
// kMaxAdminRequestBytes, stays silent for longer than the idle timeout, or does not read its
// response within the write timeout is disconnected (a local client is still untrusted: it must
// not be able to wedge the daemon).
// Spec: none (tool protocol); daemon conventions in shared/conventions.md 2b.
// Thread-safety: Listen/Stop/destructor from one owner thread. The handler runs on the server's
// thread, one request at a time; it must be thread-safe with respect to the rest of the program.
#ifndef UVMBUS_TOOLS_ADMIN_SERVER_H_
#define UVMBUS_TOOLS_ADMIN_SERVER_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/counter.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "tools/admin_protocol.h"

namespace uvmbus::tools {

struct AdminServerOptions {
  // Concurrent client connections; further ones are accepted and closed at once.
  size_t max_clients = 16;
  // A connection with no complete request for this long is closed.
  int idle_timeout_ms = 10'000;
  // Writing one response may block at most this long (the client must read it).
  int write_timeout_ms = 2'000;
};

class AdminServer {
 public:
  // Computes the result of one request (runs on the server thread).
  using Handler = std::function<Expected<nlohmann::json>(const AdminRequest& request)>;

  // Binds `path` (removing a stale socket file; kAlreadyExists if a live server answers there or
  // the path is not a socket), sets mode 0600 before listen(), starts the thread.
  // Errors: kInvalidArgument (empty or too long path, null handler), kAlreadyExists, kIo.
  static Expected<std::unique_ptr<AdminServer>> Listen(const std::string& path, Handler handler,
                                                       AdminServerOptions options = {});
  // Stop()s.
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Stops serving, joins the thread, closes every client and unlinks the socket file.
  // Idempotent.
  void Stop();

  const std::string& path() const { return path_; }
  // Requests answered (including error answers) / connections dropped for misbehaving.
  uint64_t requests() const { return requests_.Get(); }
  uint64_t clients_dropped() const { return clients_dropped_.Get(); }

 private:
  AdminServer(std::string path, UniqueFd listen_fd, UniqueFd stop_fd, Handler handler,
              AdminServerOptions options);
  void Loop();

  const std::string path_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  Handler handler_;
  const AdminServerOptions options_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  Counter requests_;
  Counter clients_dropped_;
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_ADMIN_SERVER_H_
