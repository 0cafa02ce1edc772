// File: partition/guest_partition.h
//
// What: the guest's view of its partition, i.e. what the guest VMBus bus (guest/) is built on: its
// RAM and page allocator, the per-vCPU SynIC message page (SIMP) and event-flags page (SIEFP), one
// interrupt per vCPU (an eventfd), the EOM register, and the two hypercalls VMBus uses
// (HvCallPostMessage, HvCallSignalEvent). Implementations: LocalPartition (host in the same
// process), SocketGuestPartition (host daemon over a Unix socket).
//
// RAM layout (both implementations): vCPU v's message page is GPN 2v, its event page GPN 2v+1;
// the allocator manages GPNs 2 * vcpu_count() and above.
//
// Consuming messages (spec 1.3, the guest bus does this): on interrupt, copy slot 2 of
// MessagePage(v) (wire::kVmbusMessageSlotOffset) out with message_type read by an acquire
// std::atomic_ref<uint32_t> load, free the slot with a compare-exchange of message_type to 0, full
// fence, and if msg_pending was set call EndOfMessage(v). Events (spec 1.4): test-and-clear bits of
// area 2 of EventPage(v) with std::atomic_ref<uint64_t>::fetch_and.
//
// Spec: vmbus-protocol.md 1.2 (SIMP/SIEFP/EOM), 1.3, 1.4, 1.7 (hypercalls and their statuses).
// Linux: drivers/hv/hv.c (hv_synic_enable_regs, hv_post_message), connection.c
//       (vmbus_set_event); arch/x86/hyperv/hv_init.c.
// Thread-safety: all methods are thread-safe. PostMessage may be called by several threads at once
// (requests are serialised per partition). SignalEvent's fast path is lock-free. AckInterrupt(v)
// is meant for vCPU v's thread. The object must outlive every thread using it.
#ifndef UVMBUS_PARTITION_GUEST_PARTITION_H_
#define UVMBUS_PARTITION_GUEST_PARTITION_H_

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "partition/doorbell.h"
#include "partition/guest_page_allocator.h"
#include "partition/guest_ram.h"
#include "wire/synic.h"

namespace uvmbus::partition {

// Guest-side counters.
struct GuestPartitionStats {
  Counter messages_posted;    // PostMessage calls that reached the host (any status)
  Counter post_failures;      // PostMessage calls answered with a non-success status
  Counter events_fast;        // SignalEvent via a doorbell
  Counter events_slow;        // SignalEvent via the control path (no doorbell known yet)
  Counter eoms;               // EndOfMessage calls
  Counter interrupts_acked;   // sum of AckInterrupt() results
  Counter bad_host_messages;  // malformed or unexpected input from the host (socket only)
};

class GuestPartition {
 public:
  virtual ~GuestPartition();
  GuestPartition(const GuestPartition&) = delete;
  GuestPartition& operator=(const GuestPartition&) = delete;

  // The guest's RAM and its allocator (GPNs >= 2 * vcpu_count()).
  GuestRam& ram() { return ram_; }
  GuestPageAllocator& allocator() { return allocator_; }
  uint32_t vcpu_count() const { return static_cast<uint32_t>(interrupts_.size()); }

  // vCPU `vcpu`'s SynIC message page / event-flags page (kPageSize bytes of guest RAM), and their
  // guest page numbers. Precondition: vcpu < vcpu_count() (otherwise empty span / ~0).
  std::span<uint8_t> MessagePage(uint32_t vcpu) const;
  std::span<uint8_t> EventPage(uint32_t vcpu) const;
  static constexpr uint64_t MessagePageGpn(uint32_t vcpu) { return uint64_t{2} * vcpu; }
  static constexpr uint64_t EventPageGpn(uint32_t vcpu) { return uint64_t{2} * vcpu + 1; }

  // vCPU `vcpu`'s interrupt: a non-blocking eventfd that becomes readable (POLLIN) when the host
  // delivered a message or set an event bit for this vCPU. -1 for an out-of-range vcpu.
  int InterruptFd(uint32_t vcpu) const;
  // Reads and clears the interrupt; returns how many times it was raised since the last call
  // (0 if not raised or vcpu is out of range). Call before scanning the pages, so a raise that
  // happens during the scan is not lost.
  uint64_t AckInterrupt(uint32_t vcpu);

  // HvCallPostMessage (spec 1.7): synchronous; returns the host's status. Validated locally first
  // as the hypervisor would (wire::CheckPostMessageInput: payload 1..240 bytes, type non-zero with
  // bit 31 clear, connection id reserved bits clear -> kInvalidParameter / kInvalidConnectionId
  // without contacting the host). After the host hung up (or stopped answering, see
  // SocketGuestPartition::kRequestTimeoutMs): kInvalidPortId ("port owner not active").
  // Transient host answers (kInsufficientBuffers) are returned as-is: retrying is the caller's
  // policy (Linux vmbus_post_msg). May block until the host answers (socket) or the handler
  // returns (local).
  virtual wire::HvStatus PostMessage(uint32_t connection_id, uint32_t message_type,
                                     std::span<const uint8_t> payload) = 0;

  // HvCallSignalEvent (spec 1.7). Fast path: write the doorbell the host registered for
  // `connection_id` (lock-free, one syscall). Otherwise a slower request over the PostMessage path
  // (the host may answer kInvalidConnectionId). Our ports have a single flag: flag_number != 0 is
  // kInvalidParameter; reserved connection id bits set is kInvalidConnectionId. After hang-up:
  // kInvalidPortId.
  wire::HvStatus SignalEvent(uint32_t connection_id, uint16_t flag_number);

  // Writes the EOM register of `vcpu` (spec 1.2/1.3): asks the host's SynIC emulation to deliver
  // the next pending message of that vCPU. Asynchronous, no status. Ignored for an out-of-range
  // vcpu or after hang-up.
  virtual void EndOfMessage(uint32_t vcpu) = 0;

  // False once the host hung up (or was disconnected); never becomes true again.
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  // An eventfd that becomes readable (and stays readable) once the host hung up; poll it together
  // with the interrupt fds to learn about hang-up without a thread of your own.
  int DisconnectFd() const { return disconnect_fd_.get(); }

  const GuestPartitionStats& stats() const { return stats_; }

 protected:
  // `interrupts` are the vCPUs' eventfds (one per vCPU, 1..kMaxVcpus). `ram` holds at least
  // 2 * vcpus pages (checked by the implementations' factories).
  GuestPartition(GuestRam ram, std::vector<UniqueFd> interrupts, UniqueFd disconnect_fd);

  // Transport's slow SignalEvent (no doorbell registered for connection_id yet).
  virtual wire::HvStatus SlowSignalEvent(uint32_t connection_id) = 0;

  // Marks the partition disconnected and makes DisconnectFd() readable (idempotent).
  void MarkDisconnected();

  DoorbellTable& doorbells() { return doorbells_; }
  GuestPartitionStats& mutable_stats() { return stats_; }

 private:
  GuestRam ram_;
  GuestPageAllocator allocator_;
  std::vector<UniqueFd> interrupts_;
  UniqueFd disconnect_fd_;
  DoorbellTable doorbells_;
  std::atomic<bool> connected_{true};
  GuestPartitionStats stats_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_GUEST_PARTITION_H_
