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
// Bounded adaptive spin (issue 4): before sleeping, the thread spins for up to a budget on the
// vCPU's own SynIC pages (the VMBus event-flags area and message slot; no syscall) and runs the
// ISR directly when the host set a bit or posted a message, so a busy channel never pays the
// ~42 us blocking eventfd wake-up of a halted vCPU. The budget adapts like Linux's haltpoll
// (cpuidle-haltpoll / guest_halt_poll_ns): it doubles when the spin found work or the following
// sleep was shorter than the limit, and halves when the sleep was longer, so an idle vCPU spins
// at most once after its last interrupt and then not at all. While spinning the thread yields the
// core every ~2 us (sched_yield) so that an application thread sharing the core keeps running.
// SpinPolicy sets the limit (0 disables the spin); every phase is counted in VcpuStats. The host
// still writes the interrupt eventfd when it sets a clear bit; the ISR that follows finds nothing
// (cheap, counted as an interrupt) - the point is that no sleep waits for it.
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
  // Adaptive spin before sleeping: phases started, phases that found work (the ISR ran without
  // an eventfd wake-up), phases that ran out of budget (the thread slept), and ns spent spinning.
  SingleWriterCounter spins;
  SingleWriterCounter spin_hits;
  SingleWriterCounter spin_misses;
  SingleWriterCounter spin_ns;
};

// How long a vCPU thread spins before it sleeps.
struct SpinPolicy {
  // Upper bound of one spin phase in ns; 0 = never spin (sleep at once, the old behaviour).
  uint64_t limit_ns = 50'000;
  // Adapt the budget within [0, limit_ns] (haltpoll-style); false = always spin limit_ns.
  bool adaptive = true;
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

  // The spin policy new threads start with (process-wide; VmbusBus creates the threads). Set it
  // before the bus starts its vCPUs; a running thread keeps the policy it started with.
  static void SetDefaultSpinPolicy(SpinPolicy policy);
  static SpinPolicy DefaultSpinPolicy();
  // This thread's policy; takes effect at Start().
  void set_spin_policy(SpinPolicy policy) { spin_policy_ = policy; }

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
  // Spins up to `budget_ns` for work visible without a syscall (SynIC event area or message
  // slot of this vCPU, softirq items, stop). Returns true if some was seen.
  bool Spin(uint64_t budget_ns);
  bool PagesPending() const;

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
  SpinPolicy spin_policy_;
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_VCPU_THREAD_H_
