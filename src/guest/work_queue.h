// File: guest/work_queue.h
//
// What: an ordered, single-threaded work queue (Linux alloc_ordered_workqueue): tasks run one at a
// time, in posting order, on the queue's own thread. The guest bus uses four of them, as Linux
// does, so that a blocking task on one cannot stall the others (spec 7.3): offers, rescinds,
// primary-device probe/remove, sub-channel creation callbacks.
// Spec: vmbus-protocol.md 7.3 (hv_vmbus_con, system work queue for rescinds, hv_pri_chan,
//       hv_sub_chan), 2.7 (rescinds on a different queue than offers).
// Linux: kernel/workqueue.c (alloc_ordered_workqueue, queue_work, flush_workqueue).
// Thread-safety: Post()/Flush()/Stop() may be called from any thread. Flush() from the queue's
//       own thread returns at once (waiting for itself would deadlock).
#ifndef UVMBUS_GUEST_WORK_QUEUE_H_
#define UVMBUS_GUEST_WORK_QUEUE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/thread_annotations.h"

namespace uvmbus::guest {

class WorkQueue {
 public:
  explicit WorkQueue(std::string name);
  // Stops the thread; tasks not yet run are dropped.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Starts the worker thread. Errors: kAlreadyExists if started; kInternal if the thread
  // cannot be created.
  Status Start() EXCLUDES(mu_);

  // Appends a task. Returns false (and drops it) once Stop() was called.
  bool Post(std::function<void()> task) EXCLUDES(mu_);

  // Waits until every task posted before this call has run. Returns false on timeout or if the
  // queue stopped first. From the queue's own thread: returns true at once.
  bool Flush(std::chrono::milliseconds timeout = std::chrono::milliseconds::max()) EXCLUDES(mu_);

  // Stops accepting tasks, drops the ones not started, waits for the running one, joins.
  // Idempotent. Not from the queue's own thread.
  void Stop() EXCLUDES(mu_);

  // True when called from the queue's own thread.
  bool IsCurrent() const {
    return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire);
  }
  const std::string& name() const { return name_; }

 private:
  void Run() EXCLUDES(mu_);

  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;       // new task or stop (worker waits)
  std::condition_variable done_cv_;  // a task finished (Flush waits)
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);
  uint64_t posted_ GUARDED_BY(mu_) = 0;
  uint64_t done_ GUARDED_BY(mu_) = 0;
  bool started_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_WORK_QUEUE_H_
