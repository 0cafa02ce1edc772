// File: bench/harness/placement.h
//
// What: the placement probe. On these nested VMs the host sometimes runs our two vCPUs close
// together (a cache-line round trip of ~120 ns: "fast") and sometimes far apart (300-360 ns:
// "slow"); every cross-core figure moves by up to 5x with it (peers README B.2/B.3). So each
// run is bracketed by a busy-poll cache-line ping-pong between two processes pinned to the run's
// cores, and tagged fast (both probes < 200 ns), slow (both > 250 ns) or mixed; results are only
// compared within a tag.
// Spec: none (benchmark infrastructure).
// Linux/OpenVMM: none. Method: peers' pingpong.c "cacheline" mode and driver.py clprobe().
// Thread-safety: ClassifyPlacement is pure; ProbeCacheLineRtt forks (see process_pair.h).
#ifndef UVMBUS_BENCH_HARNESS_PLACEMENT_H_
#define UVMBUS_BENCH_HARNESS_PLACEMENT_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/error.h"

namespace uvmbus::bench {

enum class PlacementTag : uint8_t {
  kFast,     // both probes below PlacementThresholds::fast_below_ns
  kSlow,     // both probes above PlacementThresholds::slow_above_ns
  kMixed,    // anything else: placement changed during the run, or in between
  kUnknown,  // a probe failed or was not taken
};

std::string_view PlacementTagName(PlacementTag tag);  // "fast" | "slow" | "mixed" | "unknown"
bool ParsePlacementTag(std::string_view text, PlacementTag* out);

struct PlacementThresholds {
  double fast_below_ns = 200;
  double slow_above_ns = 250;
};

// Tags a run from the probes taken before and after it (p50 RTT in ns).
PlacementTag ClassifyPlacement(std::optional<double> before_ns, std::optional<double> after_ns,
                               const PlacementThresholds& thresholds = {});

struct ProbeOptions {
  int cpu_a = 0;
  int cpu_b = 1;
  // The probe ends once it has run window_seconds ("a short window") with at least
  // min_round_trips samples, or at max_round_trips samples, or after max_seconds (a busy
  // machine may deschedule one side for whole time slices).
  double window_seconds = 0.02;
  uint64_t min_round_trips = 1000;
  uint64_t max_round_trips = 200000;
  double max_seconds = 1.0;
};

// Busy-poll cache-line ping-pong between two forked processes pinned to cpu_a and cpu_b;
// returns the p50 round-trip time in ns (after a short warm-up). kUnavailable if no round trip
// completed.
Expected<double> ProbeCacheLineRtt(const ProbeOptions& options);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_PLACEMENT_H_
