// File: bench/harness/bench_cli.h
//
// What: binds every BenchCommand field to a CLI11 option, so `uvmbus-bench` and the future
// `uvmbus bench` subcommand accept the same flags. Header-only: the harness library itself does
// not depend on CLI11; the including program does.
// Spec: none (benchmark infrastructure).
// Linux/OpenVMM: none.
// Thread-safety: CLI parsing happens on one thread before the run.
#ifndef UVMBUS_BENCH_HARNESS_BENCH_CLI_H_
#define UVMBUS_BENCH_HARNESS_BENCH_CLI_H_

#include <CLI/CLI.hpp>

#include "bench/harness/bench_command.h"

namespace uvmbus::bench {

// Adds the benchmark's options to `app` (an App or a subcommand); `command` must outlive the
// parse. Flags that switch something off are stored inverted.
inline void AddBenchOptions(CLI::App& app, BenchCommand& command) {
  app.add_flag("--quick", command.quick,
               "about a minute: 1 round of 0.25 s runs, idle waits of at most 1 s");
  app.add_option("--rounds", command.rounds, "rounds (default 3; --quick 1)");
  app.add_option("--seconds", command.seconds, "traffic per run in s (default 0.5; --quick 0.25)");
  app.add_option("--frames", command.frames, "throughput frame sizes, bytes")->delimiter(',');
  app.add_option("--latency-frames", command.latency_frames, "latency frame sizes, bytes")
      ->delimiter(',');
  app.add_option("--queues", command.queues, "queue counts")->delimiter(',');
  app.add_option("--modes", command.modes, "poll,interrupt")->delimiter(',');
  app.add_option("--workloads", command.workloads, "throughput,latency")->delimiter(',');
  app.add_option("--contenders,--only", command.contenders, "run only these (names from --list)")
      ->delimiter(',');
  app.add_option("--raw-ring-sizes", command.raw_ring_sizes, "raw ring footprints per queue")
      ->delimiter(',');
  app.add_option("--vmbus-ring-sizes", command.vmbus_ring_sizes, "vmbus ring data sizes")
      ->delimiter(',');
  app.add_option("--batch", command.batch, "ring publish batch (raw and vmbus rings)");
  app.add_option("--testpmd", command.testpmd, "dpdk-testpmd name or path");
  app.add_option("--baseline", command.summary.throughput_baseline,
                 "throughput baseline contender for ratios");
  app.add_option("--latency-baseline", command.summary.latency_baseline,
                 "latency baseline contender for ratios");
  app.add_option("--foreign-limit", command.summary.foreign_cpu_limit,
                 "runs with this much foreign CPU (CPUs) or more count as contaminated");
  app.add_option("--min-clean", command.summary.min_clean_runs,
                 "clean runs that suffice to leave contaminated ones out");
  app.add_option("--json", command.json_path,
                 "write the JSON report to FILE ('-' or no FILE: stdout, the table to stderr)")
      ->expected(0, 1);
  app.add_flag("!--no-idle-wait", command.wait_for_idle,
               "do not wait for an idle machine before each run");
  app.add_option("--idle-limit", command.idle_limit_seconds,
                 "longest idle wait per run in s (default 60; --quick 1)");
  app.add_flag("!--no-probe", command.probe_placement,
               "skip the placement probe (every run tagged unknown)");
  app.add_option("--nice", command.nice, "scheduling priority for the run (default -20)");
  app.add_option("--cpus", command.cpus, "producer,consumer CPUs (default 0,1)")
      ->delimiter(',')
      ->expected(2);
  app.add_flag("--check-every-byte", command.check_every_byte,
               "check every byte of every frame (default: length, sequence, tail)");
  app.add_flag("--list", command.list, "list the contenders and whether they can run");
}

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_BENCH_CLI_H_
