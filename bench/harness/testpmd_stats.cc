#include "bench/harness/testpmd_stats.h"

#include <charconv>
#include <cstdint>

#include "bench/harness/statistics.h"

namespace uvmbus::bench {
namespace {

// Reads the unsigned number after `key` (skipping blanks) at or after `pos`, within `limit`.
std::optional<double> NumberAfter(std::string_view text, std::string_view key, size_t pos,
                                  size_t limit) {
  const size_t k = text.find(key, pos);
  if (k == std::string_view::npos || k >= limit) return std::nullopt;
  size_t i = k + key.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
  if (ec != std::errc() || ptr == text.data() + i) return std::nullopt;
  return static_cast<double>(v);
}

}  // namespace

std::vector<TestpmdRate> ParseTestpmdRates(std::string_view log) {
  std::vector<TestpmdRate> out;
  size_t pos = 0;
  for (;;) {
    const size_t rx = log.find("Rx-pps:", pos);
    if (rx == std::string_view::npos) break;
    // A block's lines are adjacent: look for its other fields before the next block.
    size_t next = log.find("Rx-pps:", rx + 1);
    if (next == std::string_view::npos) next = log.size();
    TestpmdRate r;
    const auto rx_pps = NumberAfter(log, "Rx-pps:", rx, next);
    const auto rx_bps = NumberAfter(log, "Rx-bps:", rx, next);
    if (rx_pps && rx_bps) {
      r.rx_pps = *rx_pps;
      r.rx_bps = *rx_bps;
      r.tx_pps = NumberAfter(log, "Tx-pps:", rx, next).value_or(0);
      r.tx_bps = NumberAfter(log, "Tx-bps:", rx, next).value_or(0);
      out.push_back(r);
    }
    pos = rx + 1;
  }
  return out;
}

std::optional<SteadyRate> SteadyRxRate(std::span<const TestpmdRate> samples) {
  std::vector<double> pps, bps;
  bool first = true;
  for (const auto& s : samples) {
    if (!(s.rx_pps > 0)) continue;
    if (first) {  // the second in which traffic started
      first = false;
      continue;
    }
    pps.push_back(s.rx_pps);
    bps.push_back(s.rx_bps);
  }
  if (pps.empty()) return std::nullopt;
  return SteadyRate{Summarize(pps).median, Summarize(bps).median, pps.size()};
}

}  // namespace uvmbus::bench
