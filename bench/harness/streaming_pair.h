// File: bench/harness/streaming_pair.h
//
// What: the common tail of every streaming (producer -> consumer) contender: run the two sides
// with RunPair on the configured cores for the configured time, then turn both sides' reports
// into a RunResult (packets and bytes the consumer accepted, what the producer sent, CPU time of
// each side, and optional per-packet ratios of side counters such as doorbells per packet).
// Thread-safety: a plain function; it forks, so call it from the runner thread only.
#ifndef UVMBUS_BENCH_HARNESS_STREAMING_PAIR_H_
#define UVMBUS_BENCH_HARNESS_STREAMING_PAIR_H_

#include <cstddef>
#include <span>
#include <string>

#include "bench/harness/contender.h"
#include "bench/harness/process_pair.h"
#include "common/error.h"

namespace uvmbus::bench {

// "counter slot `slot` of the producer's (or consumer's) report, divided by packets received".
struct PerPacketCounter {
  std::string name;  // the extra's name in the report, e.g. "doorbells_per_packet"
  bool producer_side = true;
  size_t slot = 0;
};

Expected<RunResult> RunStreamingPair(const RunConfig& config, const SideFn& producer,
                                     const SideFn& consumer,
                                     std::span<const PerPacketCounter> per_packet);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_STREAMING_PAIR_H_
