// File: common/clock.h
//
// What: the time seam. Code that needs "now" or a deadline takes a `Clock&` so tests can drive
// time with `ManualClock` instead of sleeping (style.md 1.9 #13).
// Thread-safety: SteadyClock is stateless; ManualClock is thread-safe (atomic).
#ifndef UVMBUS_COMMON_CLOCK_H_
#define UVMBUS_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace uvmbus {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic nanoseconds since an arbitrary epoch.
  virtual int64_t NowNs() const = 0;
};

class SteadyClock final : public Clock {
 public:
  int64_t NowNs() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static SteadyClock& Instance() {
    static SteadyClock clock;
    return clock;
  }
};

class ManualClock final : public Clock {
 public:
  int64_t NowNs() const override { return now_.load(std::memory_order_relaxed); }
  void AdvanceNs(int64_t ns) { now_.fetch_add(ns, std::memory_order_relaxed); }
  void SetNs(int64_t ns) { now_.store(ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_{0};
};

}  // namespace uvmbus

#endif  // UVMBUS_COMMON_CLOCK_H_
