// File: guest/softirq.h
//
// What: the guest's "softirq" machinery, one queue per vCPU: `SoftirqQueue` (the per-CPU list of
// work that runs after the ISR, before the vCPU thread sleeps again), `Tasklet` (Linux tasklet:
// one function, scheduled at most once at a time, never run concurrently with itself) and `Napi`
// (Linux NAPI: a poll function called with a budget of 64 packets, completed by the driver,
// re-armed by the driver when data raced in). Items are intrusive: scheduling links the item into
// the queue, so nothing is allocated per schedule.
//
//   ISR (vCPU thread)                      softirq pass (same vCPU thread, after the ISR)
//   tasklet.Schedule() -> linked           RunPass(): runs every item linked at its start; items
//   napi.Schedule()    -> linked           scheduled meanwhile run in the next pass, after the
//                                          next ISR, so one busy channel cannot starve the others
//
// Scheduling from another thread links the item and writes the queue's wake-up eventfd, so the
// owning vCPU thread leaves its poll() and runs the pass.
//
// Spec: vmbus-protocol.md 7.4 (callback modes schedule the channel tasklet), 7.5 (the tasklet
//       loop and its time budget), 7.6 (NAPI: poll weight 64, complete, unmask, re-arm).
// Linux: kernel/softirq.c (tasklet_schedule, tasklet_action, tasklet_kill), net/core/dev.c
//        (napi_schedule_prep, __napi_schedule, napi_complete_done, napi_disable, NAPIF_STATE_MISSED).
// Thread-safety: Schedule() (both kinds) may be called from any thread. RunPass() only from the
//       owning thread (the vCPU thread, or a test thread that owns a stand-alone queue). Kill()
//       / Disable() may be called from any thread except from inside the item's own run; they
//       return once the item is unlinked and not running. Napi::Complete() only from inside its
//       poll function. An item must be killed/disabled (its destructor does it) before its queue
//       is destroyed.
#ifndef UVMBUS_GUEST_SOFTIRQ_H_
#define UVMBUS_GUEST_SOFTIRQ_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

#include "common/counter.h"
#include "common/thread_annotations.h"

namespace uvmbus::guest {

class SoftirqQueue;

// Base of everything that runs in a softirq pass. Not for direct use: see Tasklet and Napi.
class SoftirqItem {
 public:
  SoftirqItem(const SoftirqItem&) = delete;
  SoftirqItem& operator=(const SoftirqItem&) = delete;

  // The queue the item is bound to (where Schedule() links it).
  SoftirqQueue* queue() const { return queue_.load(std::memory_order_acquire); }

 protected:
  explicit SoftirqItem(SoftirqQueue* queue) : queue_(queue) {}
  virtual ~SoftirqItem() = default;

  // Called on the queue's thread, once per time the item was linked.
  virtual void RunSoftirq() = 0;

  // Links the item at the tail of its queue unless it is already linked or disabled, and wakes
  // the queue's thread if the caller is another thread. Returns true if it linked the item.
  bool Link();
  // Disables the item (later Link() calls do nothing), unlinks it and waits until it is not
  // running. Must not be called from inside the item's own RunSoftirq().
  void DisableAndWait();
  // Allows Link() again.
  void EnableLinking();
  // Moves a disabled item to another queue. Precondition: DisableAndWait() was called.
  void Rebind(SoftirqQueue* queue);

 private:
  friend class SoftirqQueue;
  std::atomic<SoftirqQueue*> queue_;
  // Guarded by queue()->mu_ (the item's current queue).
  SoftirqItem* next_ = nullptr;
  bool linked_ = false;
  bool disabled_ = false;
};

// Statistics of one softirq queue.
struct SoftirqStats {
  SingleWriterCounter passes;     // RunPass() calls that ran at least one item
  SingleWriterCounter items_run;  // item runs
  Counter remote_wakeups;         // schedules from another thread that wrote the wake-up fd
};

class SoftirqQueue {
 public:
  // `vcpu` names the queue (logs, stats). `wake_fd` is an eventfd the owner thread polls; it is
  // written when an item is linked from another thread (-1: none, e.g. a queue a test drives).
  // The fd is not owned.
  SoftirqQueue(uint32_t vcpu, int wake_fd);
  ~SoftirqQueue();
  SoftirqQueue(const SoftirqQueue&) = delete;
  SoftirqQueue& operator=(const SoftirqQueue&) = delete;

  uint32_t vcpu() const { return vcpu_; }

  // Runs every item that is linked when the pass starts, in order; items linked during the pass
  // wait for the next one. Returns the number of items run. Owner thread only.
  size_t RunPass() EXCLUDES(mu_);

  // True if items are linked (a hint for the owner's poll timeout; racy by nature).
  bool HasWork() const { return count_.load(std::memory_order_acquire) != 0; }

  // The queue whose owner thread is the calling thread (set with ScopedOwner), or null.
  static SoftirqQueue* Current();

  // Makes the calling thread this queue's owner for the scope (the vCPU thread does this once;
  // tests that drive a queue by hand do it around RunPass()).
  class ScopedOwner {
   public:
    explicit ScopedOwner(SoftirqQueue& queue);
    ~ScopedOwner();
    ScopedOwner(const ScopedOwner&) = delete;
    ScopedOwner& operator=(const ScopedOwner&) = delete;

   private:
    SoftirqQueue* previous_;
  };

  const SoftirqStats& stats() const { return stats_; }

 private:
  friend class SoftirqItem;

  void Wake();

  const uint32_t vcpu_;
  const int wake_fd_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // signalled when running_ goes back to null
  SoftirqItem* head_ GUARDED_BY(mu_) = nullptr;
  SoftirqItem* tail_ GUARDED_BY(mu_) = nullptr;
  SoftirqItem* running_ GUARDED_BY(mu_) = nullptr;
  size_t waiters_ GUARDED_BY(mu_) = 0;
  std::atomic<size_t> count_{0};  // linked items; written under mu_
  SoftirqStats stats_;
};

// A Linux tasklet: `fn` runs on the bound queue's thread after Schedule(); scheduling an already
// scheduled (not yet running) tasklet does nothing; a tasklet may reschedule itself while it runs
// (it then runs again in the next pass).
class Tasklet final : public SoftirqItem {
 public:
  using Fn = std::function<void()>;

  Tasklet(SoftirqQueue* queue, Fn fn) : SoftirqItem(queue), fn_(std::move(fn)) {}
  ~Tasklet() { Kill(); }

  // tasklet_schedule(): returns true if this call linked it (false: already scheduled, disabled
  // or unbound).
  bool Schedule();
  // tasklet_kill() + disable: unlinks, waits for a running instance to finish; Schedule() does
  // nothing until Enable(). Not from inside fn.
  void Kill();
  void Enable() { EnableLinking(); }
  // Moves a killed tasklet to another queue (the channel's new target vCPU).
  void Bind(SoftirqQueue* queue) { Rebind(queue); }

  bool scheduled() const { return (state_.load(std::memory_order_acquire) & kSched) != 0; }

 private:
  void RunSoftirq() override;

  static constexpr uint32_t kSched = 1;
  Fn fn_;
  std::atomic<uint32_t> state_{0};
};

// Statistics of one NAPI instance.
struct NapiStats {
  Counter schedules;        // Schedule() calls that scheduled it
  Counter missed;           // Schedule() while scheduled/polling (NAPIF_STATE_MISSED)
  SingleWriterCounter polls;          // poll function calls
  SingleWriterCounter packets;        // sum of the poll function's results
  SingleWriterCounter budget_exhausted;  // polls that used the whole budget (polled again)
  SingleWriterCounter completes;      // Complete() calls that completed
  SingleWriterCounter implicit_completes;  // polls < budget without Complete() (driver bug)
};

// Linux NAPI. The poll function gets the budget (the weight, 64 = NAPI_POLL_WEIGHT by default)
// and returns the work done. Contract (spec 7.6): if it did less than the budget it calls
// Complete() and then, after unmasking its source, Schedule() again if data raced in; if it used
// the whole budget it does not complete and is polled again in the next pass.
class Napi final : public SoftirqItem {
 public:
  using PollFn = std::function<int(Napi&, int budget)>;
  static constexpr int kDefaultWeight = 64;  // NAPI_POLL_WEIGHT

  Napi(SoftirqQueue* queue, PollFn poll, int weight = kDefaultWeight)
      : SoftirqItem(queue), poll_(std::move(poll)), weight_(weight > 0 ? weight : 1) {}
  ~Napi() { Disable(); }

  // napi_schedule(): returns true if this call scheduled it. While scheduled or polling it
  // returns false and records a "missed" schedule, so the next Complete() polls once more.
  bool Schedule();
  // napi_complete_done(): from inside the poll function. Returns true if NAPI is now idle (the
  // driver should unmask and re-check); false if a schedule was missed meanwhile, in which case
  // it stays scheduled and is polled again.
  bool Complete();
  // napi_disable(): waits for a running poll, then no polls until Enable(). Not from inside the
  // poll function.
  void Disable();
  void Enable() { EnableLinking(); }
  void Bind(SoftirqQueue* queue) { Rebind(queue); }

  int weight() const { return weight_; }
  bool scheduled() const { return (state_.load(std::memory_order_acquire) & kSched) != 0; }
  const NapiStats& stats() const { return stats_; }

 private:
  void RunSoftirq() override;

  static constexpr uint32_t kSched = 1;
  static constexpr uint32_t kMissed = 2;
  PollFn poll_;
  const int weight_;
  std::atomic<uint32_t> state_{0};
  bool completed_in_poll_ = false;  // only touched by the queue's thread
  NapiStats stats_;
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_SOFTIRQ_H_
