// File: bench/harness/report.h
//
// What: from run records to results. Runs are grouped by (configuration, contender, placement
// tag); a group's figure is the median with [min..max] over its usable runs (Run() succeeded,
// every frame intact, something arrived), using only the clean runs (foreign CPU below the
// limit) when there are enough of them, else all usable runs marked "contaminated" (peers
// driver.py rule). Each row carries its ratio to the baseline contender's row with the same
// configuration and tag: throughput rows compare packets/s (1.0 = as fast as the baseline),
// latency rows compare RTT p50 (1.0 = as quick; > 1 is slower).
// Output: a text table shaped like testpmd's rate block (Rx-pps, Rx-bps) plus ratios, and JSON
// whose every number has its unit in its name and in the "units" map.
// Spec: none (benchmark infrastructure).
// Linux/OpenVMM: none. DPDK app/test-pmd's "Throughput (since last show)" block for the look.
// Thread-safety: pure functions over values.
#ifndef UVMBUS_BENCH_HARNESS_REPORT_H_
#define UVMBUS_BENCH_HARNESS_REPORT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/harness/runner.h"
#include "bench/harness/statistics.h"

namespace uvmbus::bench {

struct SummaryOptions {
  std::string throughput_baseline = "raw-ring-1MiB";
  std::string latency_baseline = "pingpong";
  // Further throughput contenders every row is also compared with (same configuration and
  // tag), shown as "vs NAME" in the notes and as "ratios" in the JSON.
  std::vector<std::string> also_compare = {"dpdk-memif", "unix-dgram"};
  double foreign_cpu_limit = 0.15;  // CPUs' worth; runs at or above are contaminated
  size_t min_clean_runs = 3;
  PlacementThresholds thresholds;   // echoed in the output
};

// A per-packet counter's summary over the runs (extras such as doorbells_per_packet).
struct NamedSummary {
  std::string name;
  Summary summary;
};

struct SummaryRow {
  RunConfig config;
  std::string contender;
  PlacementTag tag = PlacementTag::kUnknown;
  size_t runs = 0;            // runs in the group
  size_t failed = 0;          // Run() failed, frames arrived damaged, or nothing arrived
  bool contaminated = false;  // figures include runs with foreign CPU >= the limit
  std::string last_error;     // of the last failed run
  // Throughput: packets/s; latency: RTT p50 in ns. n == 0: no usable run.
  Summary primary;
  Summary bits_per_second;    // throughput only
  Summary rtt_p99_ns;         // latency only
  Summary producer_cpu_ns;    // CPU ns per packet (per round trip for latency)
  Summary consumer_cpu_ns;
  bool cpu_estimated = false;
  bool content_checked = true;
  std::vector<NamedSummary> extras;
  std::optional<double> ratio;  // primary median / the baseline row's primary median
  std::string baseline;         // the baseline contender's name (empty: none applies)
  // primary median / that of each SummaryOptions::also_compare row present (throughput only).
  std::vector<std::pair<std::string, double>> other_ratios;
};

struct Report {
  SummaryOptions options;
  RunLog log;
  std::vector<SummaryRow> rows;  // configuration order, then contender order, then tag
};

Report BuildReport(RunLog log, const SummaryOptions& options);

// The text table (one block per configuration) with a header naming what was not run.
std::string FormatTable(const Report& report);

// {"schema": "uvmbus-bench/1", "units": {...}, "settings": {...}, "machine": {...},
//  "contenders": [...], "runs": [...], "summary": [...]}.
nlohmann::json ReportToJson(const Report& report);

// One record as JSON (the elements of "runs").
nlohmann::json RunRecordToJson(const RunRecord& record);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_REPORT_H_
