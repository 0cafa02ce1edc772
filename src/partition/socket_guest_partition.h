// File: partition/socket_guest_partition.h
//
// What: the guest process's end of the `socket` partition. Connect() creates the guest RAM as a
// sealed memfd and one interrupt eventfd per vCPU, sends them to the host daemon with SCM_RIGHTS
// in a versioned HELLO (docs/socket-protocol.md), and waits for the host's HELLO reply. Afterwards
// a reader thread receives status replies, doorbell registrations (eventfds, SCM_RIGHTS) and
// detects the host's hang-up. PostMessage and slow SignalEvent are request/reply on the socket;
// EOM is a one-way message; SignalEvent on a registered connection id is a doorbell write.
// Every field read from the socket is validated (sizes, counts, fds present): the host is hostile.
// Spec: vmbus-protocol.md 1.2-1.7 via GuestPartition; design.md section 3.
// Linux/OpenVMM: the guest half of a VMM boundary (hypercall exits), cf. guest_partition.h.
// Thread-safety: as GuestPartition (all methods thread-safe; PostMessage serialises requests).
//       Destroying the object joins the reader thread; no method may run concurrently with it.
#ifndef UVMBUS_PARTITION_SOCKET_GUEST_PARTITION_H_
#define UVMBUS_PARTITION_SOCKET_GUEST_PARTITION_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "partition/guest_partition.h"

namespace uvmbus::partition {

class SocketGuestPartition final : public GuestPartition {
 public:
  // A request (PostMessage, slow SignalEvent) the host has not answered after this long is
  // treated as a host failure: the connection is dropped and the call returns kInvalidPortId.
  static constexpr int kRequestTimeoutMs = 30000;

  // Connects to the host daemon listening on `path` as guest `name` (1..63 printable ASCII
  // characters) with `vcpus` vCPUs (1..kMaxVcpus) and `ram_bytes` of RAM (multiple of kPageSize,
  // more than 2 * vcpus pages, <= kMaxGuestRamBytes). Waits up to `timeout_ms` for the HELLO reply.
  // Errors: kInvalidArgument (bad parameters), kUnavailable (no host listening / hung up during the
  // handshake), kPermissionDenied / kUnsupported / kResourceExhausted / kMalformed (host refused
  // the HELLO: message has the host's reason), kTimeout, kIo.
  static Expected<std::unique_ptr<SocketGuestPartition>> Connect(const std::string& path,
                                                                 const std::string& name,
                                                                 uint32_t vcpus, uint64_t ram_bytes,
                                                                 int timeout_ms = 5000);
  ~SocketGuestPartition() override;

  wire::HvStatus PostMessage(uint32_t connection_id, uint32_t message_type,
                             std::span<const uint8_t> payload) override;
  void EndOfMessage(uint32_t vcpu) override;

  // Closes the connection as if the guest died (the host sees hang-up). Idempotent. For tests and
  // orderly shutdown.
  void Disconnect();

  // Registers extra guest RAM with the host (RAM_REGION_ADD, protocol 1.1): `size` bytes of
  // `memfd` appear at guest physical address `gpa_base` for everything the host resolves (GPADL
  // pages, GPA-direct ranges, the monitor page). The memfd must be sealed with F_SEAL_SHRINK and
  // F_SEAL_GROW and be exactly `size` bytes; base and size page-aligned, no overlap with the RAM
  // of Connect() or another region, end below 2^52, at most 16 regions (host rules,
  // docs/socket-protocol.md). Synchronous: on success the host has mapped it. The caller keeps
  // `memfd` (the host gets its own reference).
  // Errors: kInvalidArgument (local checks, or a host rule refused), kResourceExhausted (region
  // limit), kUnavailable (host gone), kUnsupported (host speaks 1.0), kProtocol.
  Status AddRamRegion(int memfd, uint64_t gpa_base, uint64_t size);

 protected:
  wire::HvStatus SlowSignalEvent(uint32_t connection_id) override;

 private:
  SocketGuestPartition(GuestRam ram, std::vector<UniqueFd> interrupts, UniqueFd disconnect_fd,
                       UniqueFd sock, UniqueFd stop_fd);
  // Sends a request, waits for the STATUS_REPLY with its sequence number.
  wire::HvStatus Request(const uint8_t* data, size_t size, uint32_t seq,
                         std::span<const int> fds = {}) EXCLUDES(reply_mu_);
  void ReaderLoop();
  // Handles one datagram from the host (reply or doorbell message); returns false on a fatal
  // protocol error (connection is dropped).
  bool HandleHostMessage(const uint8_t* data, size_t size, std::vector<UniqueFd> fds);
  void OnHangup();

  UniqueFd sock_;
  UniqueFd stop_fd_;
  std::thread reader_;
  std::mutex request_mu_;  // one outstanding request at a time (held across send + wait)
  std::mutex reply_mu_;
  std::condition_variable reply_cv_;
  uint32_t next_seq_ GUARDED_BY(request_mu_) = 1;
  uint32_t waiting_seq_ GUARDED_BY(reply_mu_) = 0;
  std::optional<wire::HvStatus> reply_ GUARDED_BY(reply_mu_);
  bool hung_up_ GUARDED_BY(reply_mu_) = false;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_SOCKET_GUEST_PARTITION_H_
