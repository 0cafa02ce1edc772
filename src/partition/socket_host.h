// File: partition/socket_host.h
//
// What: the host daemon's end of the `socket` partition. `SocketHost` listens on a Unix
// SOCK_SEQPACKET socket (mode 0600, or 0660 owned by SocketHostOptions::group; a stale socket file
// left by a dead host is removed at start),
// accepts guests, runs the versioned HELLO handshake (docs/socket-protocol.md) - receiving the
// guest's sealed RAM memfd and per-vCPU interrupt eventfds with SCM_RIGHTS, checking SO_PEERCRED -
// and hands each accepted guest to the server as a started-but-idle HostPartition. Each partition
// gets its own control thread once Start()ed: it reads the guest's requests (PostMessage ->
// Handler -> status reply; EOM; slow SignalEvent) and detects hang-up (EOF/POLLHUP ->
// release of the guest RAM mapping, then Handler::OnDisconnect).
// Spec: vmbus-protocol.md 1.3, 1.4, 1.7 (carried by the protocol); design.md sections 3 and 4.
// Linux/OpenVMM: none (this is our VMM boundary; compare a VMM's vCPU exit loop for hypercalls).
// Thread-safety: SocketHost's methods are thread-safe. The `on_guest` callback runs on the accept
// thread, one guest at a time; it must not call Stop()/destroy the SocketHost.
#ifndef UVMBUS_PARTITION_SOCKET_HOST_H_
#define UVMBUS_PARTITION_SOCKET_HOST_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/counter.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "partition/host_partition.h"

namespace uvmbus::partition {

struct SocketHostOptions {
  // Guests above these limits are refused in the HELLO reply.
  uint32_t max_vcpus = kMaxVcpus;
  uint64_t max_ram_bytes = kMaxGuestRamBytes;
  // Per-vCPU bound of queued host->guest messages (SynicEmulator).
  size_t message_queue_depth = kDefaultMessageQueueDepth;
  // How long the accept thread waits for a connecting guest's HELLO before dropping it.
  int hello_timeout_ms = 5000;
  // Only accept guests whose SO_PEERCRED uid equals ours (root is always accepted).
  bool require_same_uid = true;
  // `uvmbus host --group NAME`: the socket file is made mode 0660 and owned by this group (set
  // before listen(), like the 0600 default), so members of the group may connect; the file
  // permission is then the access check and require_same_uid is not applied. Unset: 0600.
  std::optional<gid_t> group;
};

class SocketHost {
 public:
  // Receives each guest that completed the handshake. The partition is not started: call
  // Start(handler) on it (from any thread). Runs on the accept thread.
  using GuestCallback = std::function<void(std::unique_ptr<HostPartition>)>;

  // Binds `path` (removing a stale socket file: one nobody listens on; a live one is
  // kAlreadyExists; a non-socket file is kAlreadyExists too), sets mode 0600 (0660 and the group
  // when options.group is set) before listen(), and
  // starts the accept thread. Errors: kInvalidArgument (empty/too long path, null callback),
  // kAlreadyExists, kIo.
  static Expected<std::unique_ptr<SocketHost>> Listen(const std::string& path,
                                                      GuestCallback on_guest,
                                                      SocketHostOptions options = {});
  // Stop()s. Partitions already handed out live on independently.
  ~SocketHost();
  SocketHost(const SocketHost&) = delete;
  SocketHost& operator=(const SocketHost&) = delete;

  // Stops accepting, joins the accept thread, unlinks the socket file. Idempotent.
  void Stop();

  const std::string& path() const { return path_; }
  // Guests handed to the callback / connections refused during the handshake.
  uint64_t guests_accepted() const { return guests_accepted_.Get(); }
  uint64_t hellos_rejected() const { return hellos_rejected_.Get(); }

 private:
  SocketHost(std::string path, UniqueFd listen_fd, UniqueFd stop_fd, GuestCallback on_guest,
             SocketHostOptions options);
  void AcceptLoop();
  // Runs the handshake on an accepted connection; hands the partition out on success.
  void Handshake(UniqueFd conn);

  const std::string path_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd: readable when Stop() was called
  GuestCallback on_guest_;
  const SocketHostOptions options_;
  std::thread accept_thread_;
  std::atomic<bool> stopped_{false};
  Counter guests_accepted_;
  Counter hellos_rejected_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_SOCKET_HOST_H_
