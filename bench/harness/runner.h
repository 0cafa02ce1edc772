// File: bench/harness/runner.h
//
// What: the interleaved runner (peers README B.2 method). For each round it runs every
// configuration with every contender that supports it (contender order rotated by one per
// round, so no contender always runs right after the same neighbour), and for each run:
// waits for an idle machine (bounded), probes the placement, runs, probes again, tags the run
// fast/slow/mixed, and records the foreign CPU used meanwhile. Contenders that are not
// available (CheckAvailable) are listed once and never run. report.h turns the records into
// medians, ratios, the table and JSON.
// The machine is reached only through BenchEnvironment (style.md 1.9 #10), so the runner is
// tested with a scripted environment and fake contenders.
// Spec: none (benchmark infrastructure; design.md section 6).
// Linux/OpenVMM: none.
// Thread-safety: RunRounds() runs on the calling thread and forks through the contenders;
// call it from a single-threaded process.
#ifndef UVMBUS_BENCH_HARNESS_RUNNER_H_
#define UVMBUS_BENCH_HARNESS_RUNNER_H_

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bench/harness/contender.h"
#include "bench/harness/machine_load.h"
#include "bench/harness/placement.h"

namespace uvmbus::bench {

// Everything the runner needs from the machine.
class BenchEnvironment {
 public:
  virtual ~BenchEnvironment() = default;
  // Waits (bounded) until the machine is quiet; false if it gave up.
  virtual bool WaitForIdle() = 0;
  // Cache-line round trip p50 in ns between the two CPUs; an error says why there is none
  // (probe failed, or probing is switched off: kUnavailable).
  virtual Expected<double> ProbePlacement(int cpu_a, int cpu_b) = 0;
  // Foreign CPU accounting around the run itself (not the probes).
  virtual void BeginRun() = 0;
  virtual std::optional<double> EndRun() = 0;  // foreign CPUs' worth, if known
};

struct SystemEnvironmentOptions {
  bool wait_for_idle = true;
  IdleOptions idle;
  bool probe_placement = true;
  ProbeOptions probe;  // cpu_a / cpu_b are overridden per run
};

// The real machine: /proc/stat, forked probes.
class SystemEnvironment final : public BenchEnvironment {
 public:
  explicit SystemEnvironment(const SystemEnvironmentOptions& options) : options_(options) {}
  bool WaitForIdle() override;
  Expected<double> ProbePlacement(int cpu_a, int cpu_b) override;
  void BeginRun() override { meter_.Start(); }
  std::optional<double> EndRun() override { return meter_.Stop(); }

 private:
  SystemEnvironmentOptions options_;
  ForeignCpuMeter meter_;
};

// One run of one contender on one configuration.
struct RunRecord {
  int round = 0;
  std::string contender;
  RunConfig config;
  PlacementTag tag = PlacementTag::kUnknown;
  std::optional<double> probe_before_ns;
  std::optional<double> probe_after_ns;
  std::string probe_error;  // why a probe is missing (the last failing one)
  std::optional<double> foreign_cpus;
  bool idle_before = false;  // the idle wait succeeded (false: gave up, or was skipped)
  bool ok = false;           // Run() succeeded
  std::string error;         // why not, when !ok
  RunResult result;
  double wall_seconds = 0;   // the Run() call, probes excluded
};

struct ContenderInfo {
  std::string name;
  std::string description;
  bool available = true;
  std::string reason;  // CheckAvailable()'s message when not available
};

struct MachineInfo {
  int usable_cpus = 0;
  std::string kernel;  // uname -r
};

// Everything a benchmark invocation produced.
struct RunLog {
  int rounds = 0;
  MachineInfo machine;
  std::vector<ContenderInfo> contenders;
  std::vector<RunConfig> configs;
  std::vector<RunRecord> records;
};

struct RunnerOptions {
  int rounds = 5;
  std::vector<RunConfig> configs;
  PlacementThresholds thresholds;
  // Called after every run (progress output).
  std::function<void(const RunRecord&)> on_record;
};

// Runs the rounds. Never fails as a whole: failed runs are recorded with their error.
RunLog RunRounds(const RunnerOptions& options, std::span<Contender* const> contenders,
                 BenchEnvironment& environment);

// uname -r and the usable CPU count of this process.
MachineInfo DescribeMachine();

// The configuration matrix: every workload x frame size x queue count x mode, in that nesting
// order; `base` supplies the duration, CPUs and check level.
std::vector<RunConfig> ConfigMatrix(const RunConfig& base, std::span<const Workload> workloads,
                                    std::span<const uint32_t> frame_sizes,
                                    std::span<const uint32_t> queues,
                                    std::span<const Mode> modes);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_RUNNER_H_
