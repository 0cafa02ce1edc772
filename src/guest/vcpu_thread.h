// File: guest/vcpu_thread.h
//
// What: one guest vCPU as a thread: it sleeps in poll() on the vCPU's interrupt eventfd, the
// partition's hang-up fd and a private wake-up eventfd; on each wake-up it acks the interrupt
// (before scanning, so a raise during the scan is not lost), runs the ISR (Handler::OnInterrupt:
// events first, then the message slot, spec 7.2) and then its softirq pass (tasklets and NAPI
// polls), and sleeps again. One interrupt serves every channel whose event bit was set before
// the scan: that is VMBus interrupt sharing.
//
// It is also the read side of the bus's quiescent-state scheme (Linux uses RCU for the relid
// table): everything the ISR and softirq pass do happens inside a "critical section" bracketed by
// a sequence counter (odd while inside). WaitQuiescent() returns once the vCPU has left the
// section it was in when called, so after unpublishing a channel (relid table slot cleared,
// callbacks disabled) and waiting on every vCPU, no thread can still be using it.
//
// Spec: vmbus-protocol.md 1.2 ("the single per-CPU interrupt"), 7.1, 7.2 (ISR order), 7.4.
// Linux: drivers/hv/vmbus_drv.c (vmbus_isr, per-CPU sysvec), kernel/softirq.c (irq_exit ->
//        softirq), RCU (synchronize_rcu after removing a channel from the relid table).
// Thread-safety: Start()/Stop() from one controlling thread. WaitQuiescent() from any thread (from
//       the vCPU's own thread it returns at once). stats() snapshots from any thread.
#ifndef UVMBUS_GUEST_VCPU_THREAD_H_
#define UVMBUS_GUEST_VCPU_THREAD_H_

#include <atomic>
#include <cstdint>
#include <thread>

#include "common/counter.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "guest/softirq.h"
#include "partition/guest_partition.h"

namespace uvmbus::guest {

// Per-vCPU counters.
struct VcpuStats {
  // Wake-ups on which the vCPU's interrupt was found raised (eventfd wake-ups): the number of
  // times the ISR ran. Linux: the per-CPU "HYP" count of /proc/interrupts.
  SingleWriterCounter interrupts;
  // Sum of the eventfd counts read: raises by the host, coalesced into `interrupts` wake-ups.
  SingleWriterCounter raises;
  // SIEF bits found set whose relid had a live channel (one per channel per interrupt).
  SingleWriterCounter channel_events;
  // SIEF bits for a relid with no channel (stale or hostile; bit 0 counted here too).
  SingleWriterCounter stray_events;
  // SynIC messages taken from this vCPU's slot.
  SingleWriterCounter messages;
};

class VcpuThread {
 public:
  // What the vCPU calls on its own thread.
  class Handler {
   public:
    virtual ~Handler() = default;
    // The ISR: the interrupt was raised (and acked). Runs inside the critical section.
    virtual void OnInterrupt(VcpuThread& vcpu) = 0;
    // The partition's hang-up fd became readable (called once per vCPU thread).
    virtual void OnHostDisconnect() = 0;
  };

  // The partition and handler must outlive the thread. Creates the wake-up eventfd; errors are
  // reported by Start().
  VcpuThread(partition::GuestPartition& partition, uint32_t vcpu, Handler* handler);
  // Stops and joins.
  ~VcpuThread();
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;

  // Starts the thread. Errors: kIo (no wake-up eventfd), kInternal (thread creation), kAlreadyExists.
  Status Start();
  // Asks the thread to exit after its current pass and joins it. Idempotent.
  void Stop();

  uint32_t vcpu() const { return vcpu_; }
  SoftirqQueue& softirq() { return softirq_; }
  const VcpuStats& stats() const { return stats_; }
  VcpuStats& mutable_stats() { return stats_; }

  // Waits until this vCPU is outside the critical section it was in at the call (if any).
  void WaitQuiescent();
  // True when called on this vCPU's thread.
  bool IsCurrentThread() const {
    return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire);
  }
  // The vCPU whose thread is calling, or null.
  static VcpuThread* Current();

 private:
  void Run();

  partition::GuestPartition& partition_;
  const uint32_t vcpu_;
  Handler* const handler_;
  UniqueFd wake_fd_;
  SoftirqQueue softirq_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> stop_{false};
  // Quiescent-state sequence: odd while the thread runs an ISR + softirq pass.
  std::atomic<uint32_t> qs_seq_{0};
  VcpuStats stats_;
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_VCPU_THREAD_H_
