// File: common/counter.h
//
// What: cheap statistics counters. A `Counter` is a relaxed atomic u64: increments from any
// thread, reads are racy snapshots (fine for statistics). Names follow Linux (sysfs, ethtool)
// where a Linux equivalent exists; each layer documents its counters.
// Thread-safety: all operations are thread-safe (relaxed atomics; no ordering implied).
#ifndef UVMBUS_COMMON_COUNTER_H_
#define UVMBUS_COMMON_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace uvmbus {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }
  void Set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A counter owned by exactly one writer thread: the increment is a plain load+store (no locked
// instruction), readers on other threads see a recent value. Use on per-queue hot paths.
class SingleWriterCounter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace uvmbus

#endif  // UVMBUS_COMMON_COUNTER_H_
