// File: bench/harness/process_pair.h
//
// What: the two-process scaffolding every built-in contender uses (peers README B.2): shared
// memory is MAP_SHARED | MAP_ANONYMOUS, created before fork(); a producer process is pinned to
// one CPU (core 0) and a consumer to another (core 1); both wait at a start line, the parent
// lets them run for the configured time, asks the producer to stop, and the consumer drains
// and exits. Each side writes a SideReport into shared memory; the parent collects it with the
// side's own CPU time (wait4 rusage), so "CPU time per packet of each side" needs no
// cooperation from the side. Every wait is bounded: a side that does not reach the start line
// or does not exit in time is killed and the run fails with kTimeout.
// Spec: none (benchmark infrastructure).
// Linux/OpenVMM: none. The peers' spsc.c/pingpong.c use the same fork-after-mmap method.
// Thread-safety: RunPair() forks; call it from a single-threaded process (or one whose other
// threads hold no locks the children need). PairContext is used by one side (process) only;
// its control block is shared and accessed with atomics only.
#ifndef UVMBUS_BENCH_HARNESS_PROCESS_PAIR_H_
#define UVMBUS_BENCH_HARNESS_PROCESS_PAIR_H_

#include <time.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/error.h"
#include "common/mapped_region.h"

namespace uvmbus::bench {

// Monotonic nanoseconds (CLOCK_MONOTONIC through the vDSO: no syscall).
inline int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Spin-wait hint for busy-poll loops.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Pins the calling thread (and so a single-threaded process) to `cpu`.
Status PinToCpu(int cpu);

// Number of CPUs this process may run on (sched_getaffinity), at least 1.
int UsableCpuCount();

// Maps `bytes` (> 0) of zeroed, pre-faulted (MAP_POPULATE) memory that stays shared with
// children forked afterwards.
Expected<MappedRegion> MapSharedAnonymous(size_t bytes);

// Constructs a T at the start of `region` (which must be large enough and suitably aligned:
// mmap gives page alignment). Used for control blocks of atomics living in shared memory.
template <typename T>
T* ConstructIn(const MappedRegion& region) {
  static_assert(alignof(T) <= 4096);
  return new (region.data()) T();
}

// What one side reports back through shared memory. Written by that side only, read by the
// parent after the side exited (process exit orders the accesses).
struct SideReport {
  static constexpr size_t kMaxCounters = 8;
  static constexpr size_t kErrorBytes = 200;

  uint64_t packets = 0;  // frames sent (producer) or received intact (consumer)
  uint64_t bytes = 0;    // frame bytes of those frames
  uint64_t bad = 0;      // frames that failed the content check (consumer)
  int64_t first_ns = 0;  // NowNs() of the first packet (0: none)
  int64_t last_ns = 0;   // NowNs() of the last packet
  // Contender-defined event counts (doorbells, wake-ups, syscalls, ...).
  std::array<uint64_t, kMaxCounters> counters{};
  // NUL-terminated reason when the side returned non-zero.
  std::array<char, kErrorBytes> error{};
};
static_assert(std::is_trivially_copyable_v<SideReport>);

// The control block both sides and the parent share.
struct PairControl {
  alignas(64) std::atomic<uint32_t> ready{0};  // sides that reached the start line
  std::atomic<uint32_t> go{0};                 // parent: start
  // 0 running; 1 the parent asks the producer to stop; 2 the producer has published its last
  // frame (the consumer drains and exits).
  alignas(64) std::atomic<uint32_t> stop{0};
  std::atomic<uint32_t> abort{0};  // parent gave up: both sides leave at once
  alignas(64) SideReport producer;
  alignas(64) SideReport consumer;
};

enum class Side : uint8_t { kProducer, kConsumer };

// A side's view of the run. Only the methods below touch the shared control block.
class PairContext {
 public:
  PairContext(PairControl* control, Side side) : control_(control), side_(side) {}

  Side side() const { return side_; }
  // This side's report (in shared memory).
  SideReport& report() {
    return side_ == Side::kProducer ? control_->producer : control_->consumer;
  }
  // Producer: should stop sending (also true once aborted).
  bool StopRequested() const {
    // Relaxed: the flag itself is the only information; nothing else is published with it.
    return control_->stop.load(std::memory_order_relaxed) != 0 ||
           control_->abort.load(std::memory_order_relaxed) != 0;
  }
  // Consumer: the producer has published everything it will send. Acquire pairs with the
  // producer's release in SetProducerDone(), so every frame published before it is visible.
  bool ProducerDone() const {
    return control_->stop.load(std::memory_order_acquire) == 2 ||
           control_->abort.load(std::memory_order_relaxed) != 0;
  }
  // Producer: everything is published (release: the consumer's final drain sees it all).
  void SetProducerDone() { control_->stop.store(2, std::memory_order_release); }
  bool Aborted() const { return control_->abort.load(std::memory_order_relaxed) != 0; }

  // Records `message` as this side's error and returns the exit code to return from the side
  // function (1).
  int Fail(std::string_view message);

  // Called by RunPair() in the child before the side function (side functions need not):
  // marks this side ready and spins until the parent says go. False if the parent aborted.
  bool WaitForStart();

 private:
  PairControl* control_;
  Side side_;
};

// A side's body: runs in the forked, pinned child; returns its exit code (0 = success).
using SideFn = std::function<int(PairContext&)>;

struct PairSpec {
  int producer_cpu = 0;
  int consumer_cpu = 1;
  double run_seconds = 1.0;           // from "go" to the stop request
  double start_timeout_seconds = 10;  // both sides must reach the start line by then
  double stop_timeout_seconds = 10;   // both sides must exit by then after the stop request
};

struct SideOutcome {
  SideReport report;
  double cpu_seconds = 0;  // user + system time of the side's process (wait4)
};

struct PairOutcome {
  SideOutcome producer;
  SideOutcome consumer;
  double wall_seconds = 0;  // go -> both exited
};

// Forks the consumer (pinned to spec.consumer_cpu) then the producer (spec.producer_cpu), runs
// them as described above, and reaps both. Fails with kTimeout (a side hung and was killed),
// kInternal (a side crashed or returned non-zero; the message carries its error text) or kIo.
// Anything the sides share (rings, eventfds) must be created before the call; the side
// functions run in the children, so they may use everything captured by reference.
Expected<PairOutcome> RunPair(const PairSpec& spec, const SideFn& producer, const SideFn& consumer);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_PROCESS_PAIR_H_
