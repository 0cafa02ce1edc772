// File: bench/harness/bench_command.h
//
// What: the benchmark as a command: every knob of `uvmbus-bench` (and later `uvmbus bench`) in
// one struct, and the function that turns it into contenders, configurations and a run, and
// prints the table (and JSON). Callers add their own contenders - `uvmbus bench` will pass the
// NIC's - next to the built-in ones. bench_cli.h binds the struct to CLI11 options.
// Spec: none (benchmark infrastructure; design.md section 6).
// Linux/OpenVMM: none.
// Thread-safety: RunBenchCommand() forks (see process_pair.h): call it from a single-threaded
// process.
#ifndef UVMBUS_BENCH_HARNESS_BENCH_COMMAND_H_
#define UVMBUS_BENCH_HARNESS_BENCH_COMMAND_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/harness/contender.h"
#include "bench/harness/report.h"

namespace uvmbus::bench {

struct BenchCommand {
  // The ratios' baseline is the raw ring with netvsc's ring footprint (raw_ring_sizes[0]).
  BenchCommand() { summary.throughput_baseline = "raw-ring-512KiB"; }

  // Defaults sized so that a full run of every contender (NIC included) takes <= 6 minutes on an
  // idle machine and --quick about a minute.
  bool quick = false;  // about a minute: 1 round of 0.25 s runs, short idle waits
  int rounds = 0;      // 0: 3 (quick: 1)
  double seconds = 0;  // traffic per run; 0: 0.5 s (quick: 0.25 s)
  std::vector<uint32_t> frames = {64, 1500};    // throughput frame sizes
  std::vector<uint32_t> latency_frames = {64};  // latency frame sizes
  std::vector<uint32_t> queues = {1, 2};
  std::vector<std::string> modes = {"poll", "interrupt"};
  std::vector<std::string> workloads = {"throughput", "latency"};
  std::vector<std::string> contenders;  // run only these names (empty: all)
  // 512 KiB: the data area of one netvsc ring (NetvscConfig::ring_bytes minus the header page),
  // the "same footprint" baseline; 4 MiB: past the 1 MiB L2 (peers README B.3).
  std::vector<std::string> raw_ring_sizes = {"512KiB", "4MiB"};
  std::vector<std::string> vmbus_ring_sizes = {"512KiB"};  // netvsc's ring data area
  uint32_t batch = 32;                  // raw and vmbus ring publish batch
  std::string testpmd = "dpdk-testpmd";
  SummaryOptions summary;               // baselines, foreign-CPU limit, clean-run rule
  std::string json_path;                // "" none, "-" stdout (the table then goes to stderr)
  bool wait_for_idle = true;
  double idle_limit_seconds = -1;       // < 0: 60 s (quick: 1 s)
  bool probe_placement = true;
  std::optional<int> nice = -20;        // scheduling priority for the run; nullopt: leave
  std::vector<int> cpus = {0, 1};       // producer, consumer
  bool check_every_byte = false;
  bool list = false;                    // list the contenders and exit
};

// Runs `command`: the built-in contenders plus `extra`, filtered by command.contenders.
// Progress lines go to `err`, the table to `out` (or `err` with JSON on stdout). Returns the
// process exit code: 0 done, 1 the JSON file could not be written, 2 bad arguments (the
// message is on `err`).
int RunBenchCommand(const BenchCommand& command, std::vector<std::unique_ptr<Contender>> extra,
                    std::FILE* out, std::FILE* err);

// "4096", "64K", "64KiB", "1M", "1MiB", "1G" -> bytes; nullopt if malformed or overflowing.
std::optional<uint64_t> ParseSize(std::string_view text);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_BENCH_COMMAND_H_
