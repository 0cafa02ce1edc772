// File: bench/harness/testpmd_stats.h
//
// What: parsing of dpdk-testpmd's periodic statistics block (--stats-period), the source of
// the dpdk-memif contender's rates:
//     Throughput (since last show)
//     Rx-pps:      2126130          Rx-bps:   1088581192
//     Tx-pps:            0          Tx-bps:            0
// Spec: none (benchmark infrastructure). DPDK: app/test-pmd/config.c nic_stats_display()
// prints this block (read for its format only).
// Thread-safety: pure functions.
#ifndef UVMBUS_BENCH_HARNESS_TESTPMD_STATS_H_
#define UVMBUS_BENCH_HARNESS_TESTPMD_STATS_H_

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace uvmbus::bench {

// One "Throughput (since last show)" block.
struct TestpmdRate {
  double rx_pps = 0;
  double rx_bps = 0;
  double tx_pps = 0;
  double tx_bps = 0;
};

// Every rate block in `log`, in order. A block missing its Tx line still yields its Rx rates;
// text that is not a rate block is ignored.
std::vector<TestpmdRate> ParseTestpmdRates(std::string_view log);

// The steady receive rate: samples with rx_pps > 0, minus the first of them (a partial second
// while traffic starts), median of rx_pps and of rx_bps. nullopt if none remain.
struct SteadyRate {
  double rx_pps = 0;
  double rx_bps = 0;
  size_t samples = 0;
};
std::optional<SteadyRate> SteadyRxRate(std::span<const TestpmdRate> samples);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_TESTPMD_STATS_H_
