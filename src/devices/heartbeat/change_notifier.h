// File: devices/heartbeat/change_notifier.h
//
// What: `ChangeNotifier`, how the heartbeat host device and guest driver let observers (tools,
// tests) wait for a counter condition without polling or sleeping: the single writer calls
// Notify() after changing its relaxed counters; WaitFor() re-evaluates a predicate on every
// notification until it holds or the timeout passes. Notify() takes a lock only when somebody
// waits, so the data path pays one uncontended atomic read-modify-write when nobody watches.
// Spec: none (infrastructure of the heartbeat device; style.md 1.9 #13: wait on conditions).
// Thread-safety: all methods are thread-safe. The predicate runs under the notifier's lock and
// must not call back into it.
#ifndef UVMBUS_DEVICES_HEARTBEAT_CHANGE_NOTIFIER_H_
#define UVMBUS_DEVICES_HEARTBEAT_CHANGE_NOTIFIER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace uvmbus::devices {

class ChangeNotifier {
 public:
  // Wakes WaitFor() callers. Call after the counter stores it should make visible.
  void Notify() const {
    // Both sides do a read-modify-write of waiters_ (no fences: TSan does not model them). RMWs
    // of one atomic are totally ordered: either this one comes after the waiter's increment and
    // sees it, or the waiter's acq_rel increment reads from this release and so sees every
    // counter store made before it. The lock then orders the notify after the waiter's
    // predicate check (no lost wake-up).
    if (waiters_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }

  // Waits until `predicate()` returns true (checked at once and after every Notify()) or
  // `timeout` passes. Returns the predicate's last value.
  template <typename Predicate>
  bool WaitFor(Predicate&& predicate, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    bool ok;
    {
      std::unique_lock lock(mu_);
      ok = cv_.wait_until(lock, deadline, predicate);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return ok;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::atomic<uint32_t> waiters_{0};
};

}  // namespace uvmbus::devices

#endif  // UVMBUS_DEVICES_HEARTBEAT_CHANGE_NOTIFIER_H_
