// File: partition/synic_emulator.h
//
// What: the host-side ("hypervisor") emulation of the guest's SynIC for SINT 2, shared by every
// partition implementation and testable without threads or I/O: message delivery into the VMBus
// slot of each vCPU's message page with the exact slot/msg_pending/EOM contract, and event-flag
// setting in area 2 of each vCPU's event-flags page, raising the vCPU's interrupt through an
// `InterruptSink` (style 1.9 #10).
// Spec: vmbus-protocol.md 1.3 (delivery/EOM protocol, "a host implementation that emulates the
//       SynIC must implement the same contract"), 1.4 (event flags, raise only on a clear->set
//       transition), 1.7 ("Host-side equivalent").
// Linux/OpenVMM: KVM arch/x86/kvm/hyperv.c (synic_deliver_msg, synic_set_event); OpenVMM
//       vm/hv1/hv1_emulator/src/synic.rs.
// Thread-safety: all methods are thread-safe. Message delivery (Post/EndOfMessage/DeliverPending)
// takes a per-vCPU mutex (control path). SignalEvent is lock-free (one atomic OR on the shared
// word plus, on a 0->1 transition, one InterruptSink::Raise) so data workers may call it
// concurrently. The page spans must stay dereferenceable for the emulator's lifetime.
#ifndef UVMBUS_PARTITION_SYNIC_EMULATOR_H_
#define UVMBUS_PARTITION_SYNIC_EMULATOR_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "wire/synic.h"

namespace uvmbus::partition {

// Default bound of the per-vCPU queue of messages waiting for a free slot. Hyper-V's own queue is
// small; the VMBus server sends at most a few hundred messages (offers) in a burst.
inline constexpr size_t kDefaultMessageQueueDepth = 256;

// Where the emulator raises a vCPU's (SINT2) interrupt. Implementations must be thread-safe and
// must not block (eventfd write, a test recorder).
class InterruptSink {
 public:
  virtual ~InterruptSink() = default;
  // Asserts the interrupt of `vcpu` (< vcpu count).
  virtual void Raise(uint32_t vcpu) = 0;
};

// Counters of one emulator (relaxed; snapshot via the getters).
struct SynicStats {
  Counter messages_delivered;  // messages written into a slot
  Counter messages_queued;     // messages that found the slot busy and were queued
  Counter messages_dropped;    // messages refused because the vCPU's queue was full
  Counter eoms;                // EndOfMessage calls
  Counter interrupts_raised;   // InterruptSink::Raise calls
  Counter events_signalled;    // SignalEvent calls that set a clear bit
  Counter events_coalesced;    // SignalEvent calls that found the bit already set
};

class SynicEmulator {
 public:
  // The two per-vCPU SynIC pages, each exactly kPageSize bytes (spans into guest RAM).
  struct VcpuPages {
    std::span<uint8_t> message_page;  // SIMP
    std::span<uint8_t> event_page;    // SIEFP
  };

  // `pages[v]` are vCPU v's pages; `sink` must outlive the emulator; `queue_depth` >= 1 bounds
  // each vCPU's pending-message queue.
  SynicEmulator(std::vector<VcpuPages> pages, InterruptSink* sink,
                size_t queue_depth = kDefaultMessageQueueDepth);
  SynicEmulator(const SynicEmulator&) = delete;
  SynicEmulator& operator=(const SynicEmulator&) = delete;

  uint32_t vcpu_count() const { return static_cast<uint32_t>(vcpus_.size()); }

  // Delivers a message of `message_type` (normally wire::kHvMsgVmbus) with `payload` into SINT 2's
  // slot of `vcpu`, following spec 1.3 from the hypervisor side:
  //  - if older messages are queued, or the slot's message_type is not 0, the message is queued
  //    and msg_pending is set in the occupied slot (then the slot is re-checked, so a guest that
  //    freed it concurrently is not left waiting for an EOM it will not send);
  //  - otherwise it is written (header and payload first, message_type last with release order)
  //    and the vCPU's interrupt is raised.
  // Errors: kInvalidArgument (vcpu out of range, payload empty or > 240 bytes, message_type 0);
  // kResourceExhausted when the vCPU's queue is full (counted in messages_dropped).
  Status Post(uint32_t vcpu, uint32_t message_type, std::span<const uint8_t> payload);

  // The guest wrote EOM on `vcpu`: if the slot is free, deliver the next queued message.
  // Ignores an out-of-range vcpu (guest input: counted by the caller).
  void EndOfMessage(uint32_t vcpu);

  // Delivers the next queued message of `vcpu` if its slot has become free (the "observed free"
  // rule of spec 1.3). Returns true if a message was delivered.
  bool DeliverPending(uint32_t vcpu);

  // Sets event flag `flag` (a relid, 1..2047) in area 2 of `vcpu`'s event page with an atomic OR
  // and raises the interrupt only if the bit was clear (spec 1.4). Returns true if it raised.
  // Errors: kInvalidArgument for vcpu out of range or flag 0 / >= 2048.
  Expected<bool> SignalEvent(uint32_t vcpu, uint32_t flag);

  // Messages waiting for a free slot on `vcpu` (0 for an out-of-range vcpu).
  size_t queued(uint32_t vcpu) const;

  const SynicStats& stats() const { return stats_; }

 private:
  struct QueuedMessage {
    uint32_t message_type;
    uint8_t payload_size;
    uint8_t payload[wire::kHvMessagePayloadMax];
  };
  struct Vcpu {
    VcpuPages pages;
    std::mutex mu;
    std::deque<QueuedMessage> queue GUARDED_BY(mu);
  };

  // Writes `msg` into the free slot of `vcpu` with msg_pending = `more`. Caller holds v.mu and has
  // observed message_type == 0.
  void WriteSlot(Vcpu& v, const QueuedMessage& msg, bool more) REQUIRES(v.mu);
  // Delivers the queue head if the slot is free. Caller holds v.mu.
  bool TryDeliverLocked(uint32_t index, Vcpu& v) REQUIRES(v.mu);
  void Raise(uint32_t vcpu);

  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  InterruptSink* sink_;
  const size_t queue_depth_;
  SynicStats stats_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_SYNIC_EMULATOR_H_
