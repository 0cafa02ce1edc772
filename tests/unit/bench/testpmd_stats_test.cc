#include "bench/harness/testpmd_stats.h"

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

// Shaped like dpdk-testpmd 22.11 --stats-period output (with its clear-screen escapes).
constexpr const char* kServerLog =
    "Set rxonly packet forwarding mode\n"
    "\x1b[2J\x1b[1;1H\n"
    "Port statistics ====================================\n"
    "  ######################## NIC statistics for port 0  ########################\n"
    "  RX-packets: 0          RX-missed: 0          RX-bytes:  0\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:            0          Rx-bps:            0\n"
    "  Tx-pps:            0          Tx-bps:            0\n"
    "  ############################################################################\n"
    "\x1b[2J\x1b[1;1H\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:      1421405          Rx-bps:    727759544\n"
    "  Tx-pps:            0          Tx-bps:            0\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:      2126130          Rx-bps:   1088581192\n"
    "  Tx-pps:            0          Tx-bps:            0\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:      2000000          Rx-bps:   1024000000\n"
    "  Tx-pps:           12          Tx-bps:         6144\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:      2200000          Rx-bps:   1126400000\n"
    "  Tx-pps:            0          Tx-bps:            0\n"
    "  Throughput (since last show)\n"
    "  Rx-pps:            0          Rx-bps:            0\n"
    "  Tx-pps:            0          Tx-bps:            0\n"
    "Telling cores to stop...\n";

TEST(TestpmdStatsTest, ParsesEveryRateBlock) {
  const auto rates = ParseTestpmdRates(kServerLog);
  ASSERT_EQ(rates.size(), 6u);
  EXPECT_EQ(rates[0].rx_pps, 0);
  EXPECT_EQ(rates[1].rx_pps, 1421405);
  EXPECT_EQ(rates[1].rx_bps, 727759544);
  EXPECT_EQ(rates[3].tx_pps, 12);
  EXPECT_EQ(rates[3].tx_bps, 6144);
}

TEST(TestpmdStatsTest, SteadyRateDropsZerosAndTheFirstPartialSecond) {
  const auto rates = ParseTestpmdRates(kServerLog);
  const auto steady = SteadyRxRate(rates);
  ASSERT_TRUE(steady.has_value());
  EXPECT_EQ(steady->samples, 3u);            // 2126130, 2000000, 2200000
  EXPECT_EQ(steady->rx_pps, 2126130);        // their median
  EXPECT_EQ(steady->rx_bps, 1088581192);
}

TEST(TestpmdStatsTest, NoSteadyRateFromAStartupLog) {
  EXPECT_TRUE(ParseTestpmdRates("EAL: Detected CPU lcores: 2\nEAL: Error\n").empty());
  const std::vector<TestpmdRate> one = {{0, 0, 0, 0}, {5, 40, 0, 0}};  // only the first
  EXPECT_FALSE(SteadyRxRate(one).has_value());
}

TEST(TestpmdStatsTest, IgnoresATruncatedBlock) {
  const auto rates = ParseTestpmdRates("  Rx-pps:      1000          Rx-b");
  EXPECT_TRUE(rates.empty());
}

}  // namespace
}  // namespace uvmbus::bench
