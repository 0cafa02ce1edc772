// File: bench/harness/machine_load.h
//
// What: how busy the rest of the machine is. Before each run the runner waits (bounded) for an
// idle machine - the share of all CPUs' time spent busy over a short sample below a threshold,
// from /proc/stat - and around each run it records the foreign CPU use: busy CPU time of the
// whole machine minus the CPU time of this process and its children, per second of wall time
// ("CPUs' worth" used by others, including steal and unattributed softirq time). Runs with too
// much foreign CPU are excluded from the medians (peers README B.2: >= 0.15).
// Spec: none (benchmark infrastructure).
// Linux: Documentation/filesystems/proc.rst (/proc/stat "cpu" line).
// Thread-safety: the pure functions are thread-safe; ForeignCpuMeter is a value owned by one
// thread.
#ifndef UVMBUS_BENCH_HARNESS_MACHINE_LOAD_H_
#define UVMBUS_BENCH_HARNESS_MACHINE_LOAD_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/error.h"

namespace uvmbus::bench {

// The aggregate "cpu" line of /proc/stat, in clock ticks (USER_HZ).
struct CpuTimes {
  uint64_t busy = 0;   // user + nice + system + irq + softirq + steal
  uint64_t total = 0;  // busy + idle + iowait
};

// Parses the first line of /proc/stat ("cpu  user nice system idle iowait irq softirq steal
// ..."; guest time is already inside user). kMalformed if it is not there or too short.
Expected<CpuTimes> ParseProcStat(std::string_view text);
Expected<CpuTimes> ReadProcStat();

// Busy share of all CPUs between two samples, in [0, 1]; nullopt if no tick elapsed.
std::optional<double> BusyFraction(const CpuTimes& before, const CpuTimes& after);

// CPUs' worth used by others: (busy ticks / ticks_per_second - own CPU seconds) / wall
// seconds, clamped at 0. nullopt if wall_seconds <= 0.
std::optional<double> ForeignCpus(uint64_t busy_ticks, long ticks_per_second,
                                  double own_cpu_seconds, double wall_seconds);

// User + system CPU seconds of this process plus its reaped children (getrusage).
double OwnCpuSeconds();

struct IdleOptions {
  double busy_below = 0.10;     // idle: less than this share of all CPUs busy
  double sample_seconds = 0.3;  // length of one /proc/stat sample
  double limit_seconds = 60;    // give up after this long (the run goes ahead, marked)
};

// Samples until one sample is idle (true) or the limit passed (false). Sleeps.
bool WaitForIdle(const IdleOptions& options);

// Foreign CPU accounting around one run.
class ForeignCpuMeter {
 public:
  // Takes the "before" sample.
  void Start();
  // Foreign CPUs' worth since Start(); nullopt if /proc/stat could not be read.
  std::optional<double> Stop() const;

 private:
  std::optional<CpuTimes> start_;
  double own_cpu_start_ = 0;
  int64_t start_ns_ = 0;
};

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_MACHINE_LOAD_H_
