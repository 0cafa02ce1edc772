// File: guest/softirq.cc — see softirq.h.
#include "guest/softirq.h"

#include <sys/eventfd.h>

namespace uvmbus::guest {
namespace {
thread_local SoftirqQueue* t_current_queue = nullptr;
}  // namespace

// ---------------------------------------------------------------------------------------------
// SoftirqItem

bool SoftirqItem::Link() {
  for (;;) {
    SoftirqQueue* q = queue_.load(std::memory_order_acquire);
    if (q == nullptr) return false;
    std::unique_lock lock(q->mu_);
    // Rebind() changes queue_ under the old queue's lock: re-check under the lock we hold.
    if (queue_.load(std::memory_order_relaxed) != q) continue;
    if (disabled_ || linked_) return false;
    linked_ = true;
    next_ = nullptr;
    if (q->tail_ != nullptr) {
      q->tail_->next_ = this;
    } else {
      q->head_ = this;
    }
    q->tail_ = this;
    q->count_.fetch_add(1, std::memory_order_release);
    lock.unlock();
    // The owner thread runs a pass before it sleeps again; anyone else must wake it.
    if (SoftirqQueue::Current() != q) q->Wake();
    return true;
  }
}

void SoftirqItem::DisableAndWait() {
  for (;;) {
    SoftirqQueue* q = queue_.load(std::memory_order_acquire);
    if (q == nullptr) return;
    std::unique_lock lock(q->mu_);
    if (queue_.load(std::memory_order_relaxed) != q) continue;
    disabled_ = true;
    if (linked_) {
      SoftirqItem* prev = nullptr;
      for (SoftirqItem* it = q->head_; it != nullptr; prev = it, it = it->next_) {
        if (it != this) continue;
        if (prev != nullptr) {
          prev->next_ = next_;
        } else {
          q->head_ = next_;
        }
        if (q->tail_ == this) q->tail_ = prev;
        break;
      }
      linked_ = false;
      next_ = nullptr;
      q->count_.fetch_sub(1, std::memory_order_release);
    }
    // Waiting for ourselves from inside our own run would never end; the caller is then the run
    // itself and nothing else touches the item afterwards.
    if (q->running_ == this && SoftirqQueue::Current() != q) {
      ++q->waiters_;
      q->idle_cv_.wait(lock, [&] { return q->running_ != this; });
      --q->waiters_;
    }
    return;
  }
}

void SoftirqItem::EnableLinking() {
  for (;;) {
    SoftirqQueue* q = queue_.load(std::memory_order_acquire);
    if (q == nullptr) return;
    std::lock_guard lock(q->mu_);
    if (queue_.load(std::memory_order_relaxed) != q) continue;
    disabled_ = false;
    return;
  }
}

void SoftirqItem::Rebind(SoftirqQueue* queue) {
  SoftirqQueue* old = queue_.load(std::memory_order_acquire);
  if (old == nullptr) {
    queue_.store(queue, std::memory_order_release);
    return;
  }
  std::lock_guard lock(old->mu_);
  // Precondition: disabled and unlinked, so no queue refers to the item. The store happens under
  // the old lock so that a racing Link() (which re-checks under that lock) sees it.
  queue_.store(queue, std::memory_order_release);
}

// ---------------------------------------------------------------------------------------------
// SoftirqQueue

SoftirqQueue::SoftirqQueue(uint32_t vcpu, int wake_fd) : vcpu_(vcpu), wake_fd_(wake_fd) {}

SoftirqQueue::~SoftirqQueue() {
  if (t_current_queue == this) t_current_queue = nullptr;
}

SoftirqQueue* SoftirqQueue::Current() { return t_current_queue; }

SoftirqQueue::ScopedOwner::ScopedOwner(SoftirqQueue& queue) : previous_(t_current_queue) {
  t_current_queue = &queue;
}

SoftirqQueue::ScopedOwner::~ScopedOwner() { t_current_queue = previous_; }

void SoftirqQueue::Wake() {
  if (wake_fd_ < 0) return;
  stats_.remote_wakeups.Add();
  // A full eventfd counter (never in practice) still leaves it readable: the wake-up is not lost.
  (void)::eventfd_write(wake_fd_, 1);
}

size_t SoftirqQueue::RunPass() {
  std::unique_lock lock(mu_);
  // Only what is linked now: an item that reschedules itself (a tasklet over its time budget, a
  // NAPI that used its whole budget) runs again after the next ISR, not in a loop here.
  const size_t budget = count_.load(std::memory_order_relaxed);
  size_t run = 0;
  while (run < budget && head_ != nullptr) {
    SoftirqItem* item = head_;
    head_ = item->next_;
    if (head_ == nullptr) tail_ = nullptr;
    item->next_ = nullptr;
    item->linked_ = false;
    count_.fetch_sub(1, std::memory_order_release);
    running_ = item;
    lock.unlock();
    item->RunSoftirq();
    ++run;
    lock.lock();
    // Until running_ is cleared a DisableAndWait() on another thread keeps the item alive.
    running_ = nullptr;
    if (waiters_ != 0) idle_cv_.notify_all();
  }
  if (run != 0) {
    stats_.passes.Add();
    stats_.items_run.Add(run);
  }
  return run;
}

// ---------------------------------------------------------------------------------------------
// Tasklet

bool Tasklet::Schedule() {
  if ((state_.fetch_or(kSched, std::memory_order_acq_rel) & kSched) != 0) return false;
  if (!Link()) {
    state_.fetch_and(~kSched, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void Tasklet::Kill() {
  DisableAndWait();
  state_.store(0, std::memory_order_release);
}

void Tasklet::RunSoftirq() {
  // Cleared before the call (as Linux does) so that fn may reschedule the tasklet, and so that
  // an interrupt arriving while fn runs schedules one more run instead of being lost.
  state_.fetch_and(~kSched, std::memory_order_acq_rel);
  if (fn_) fn_();
}

// ---------------------------------------------------------------------------------------------
// Napi

bool Napi::Schedule() {
  uint32_t old = state_.load(std::memory_order_acquire);
  uint32_t desired = 0;
  do {
    desired = (old & kSched) != 0 ? (old | kMissed) : (old | kSched);
  } while (!state_.compare_exchange_weak(old, desired, std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  if ((old & kSched) != 0) {
    stats_.missed.Add();
    return false;
  }
  if (!Link()) {
    state_.fetch_and(~(kSched | kMissed), std::memory_order_acq_rel);
    return false;
  }
  stats_.schedules.Add();
  return true;
}

bool Napi::Complete() {
  completed_in_poll_ = true;
  uint32_t old = state_.load(std::memory_order_acquire);
  uint32_t desired = 0;
  do {
    // A schedule that came in while we polled keeps SCHED set: poll once more (Linux
    // napi_complete_done with NAPIF_STATE_MISSED).
    desired = (old & kMissed) != 0 ? (old & ~kMissed) : (old & ~kSched);
  } while (!state_.compare_exchange_weak(old, desired, std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  if ((old & kMissed) != 0) {
    Link();
    return false;
  }
  stats_.completes.Add();
  return true;
}

void Napi::Disable() {
  DisableAndWait();
  state_.store(0, std::memory_order_release);
}

void Napi::RunSoftirq() {
  completed_in_poll_ = false;
  const int work = poll_ ? poll_(*this, weight_) : 0;
  stats_.polls.Add();
  if (work > 0) stats_.packets.Add(static_cast<uint64_t>(work));
  if (work >= weight_) {
    // Budget used up: more work is likely; stay scheduled and poll again in the next pass.
    stats_.budget_exhausted.Add();
    if (!completed_in_poll_) Link();
  } else if (!completed_in_poll_) {
    // The driver broke the contract (less than the budget without completing); completing for
    // it keeps the instance usable instead of leaving it scheduled forever.
    stats_.implicit_completes.Add();
    Complete();
  }
}

}  // namespace uvmbus::guest
