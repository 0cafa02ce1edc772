// File: partition/local_partition.h
//
// What: the `local` partition: guest and host halves in one process (tests, the embedded demo).
// Guest RAM is a sealed memfd mapped once and shared by both halves; interrupts and doorbells are
// real eventfds, so code above sees exactly the same behaviour as with the socket partition, but
// PostMessage calls the host Handler synchronously on the calling guest thread.
// Spec: vmbus-protocol.md 1.2-1.7 (through GuestPartition / HostPartition / SynicEmulator).
// Linux/OpenVMM: none (an in-process loopback of a hypervisor; OpenVMM's vmbus_server tests use
//       a similar in-memory SynIC).
// Thread-safety: guest() and host() follow GuestPartition's and HostPartition's contracts.
//       Handler callbacks are serialised by a mutex (never concurrent), so several guest threads
//       may call PostMessage at once. Disconnect() may be called from any thread except inside a
//       handler callback.
#ifndef UVMBUS_PARTITION_LOCAL_PARTITION_H_
#define UVMBUS_PARTITION_LOCAL_PARTITION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "partition/guest_partition.h"
#include "partition/host_partition.h"

namespace uvmbus::partition {

class LocalPartition {
 public:
  // Creates a partition with `vcpus` vCPUs (1..kMaxVcpus) and `ram_bytes` of guest RAM (a
  // multiple of kPageSize, > 2 * vcpus pages for the SynIC pages, <= kMaxGuestRamBytes).
  // `queue_depth` bounds each vCPU's pending host->guest message queue.
  // Errors: kInvalidArgument for bad sizes; kIo if a memfd/eventfd cannot be created.
  static Expected<std::unique_ptr<LocalPartition>> Create(
      uint32_t vcpus, uint64_t ram_bytes, const std::string& name = "local",
      size_t queue_depth = kDefaultMessageQueueDepth);
  ~LocalPartition();
  LocalPartition(const LocalPartition&) = delete;
  LocalPartition& operator=(const LocalPartition&) = delete;

  GuestPartition& guest();
  HostPartition& host();

  // Simulates the guest going away: the host handler (if started) gets OnDisconnect(), the RAM is
  // revoked on the host side, and the guest side sees connected() == false. Idempotent.
  void Disconnect();

 private:
  class Guest;
  class Host;
  LocalPartition() = default;

  std::unique_ptr<Guest> guest_;
  std::unique_ptr<Host> host_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_LOCAL_PARTITION_H_
