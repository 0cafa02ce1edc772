#include "bench/harness/placement.h"

#include <atomic>

#include "bench/harness/process_pair.h"
#include "bench/harness/statistics.h"

namespace uvmbus::bench {
namespace {

constexpr uint64_t kProbeWarmup = 100;

struct ProbeShared {
  // The one cache line that bounces: odd values travel a -> b, even values b -> a.
  alignas(64) std::atomic<uint64_t> line{0};
  alignas(64) LatencyHistogram rtt;  // written by side a only
};

}  // namespace

std::string_view PlacementTagName(PlacementTag tag) {
  switch (tag) {
    case PlacementTag::kFast:
      return "fast";
    case PlacementTag::kSlow:
      return "slow";
    case PlacementTag::kMixed:
      return "mixed";
    case PlacementTag::kUnknown:
      return "unknown";
  }
  return "unknown";
}

bool ParsePlacementTag(std::string_view text, PlacementTag* out) {
  for (PlacementTag t :
       {PlacementTag::kFast, PlacementTag::kSlow, PlacementTag::kMixed, PlacementTag::kUnknown}) {
    if (text == PlacementTagName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

PlacementTag ClassifyPlacement(std::optional<double> before_ns, std::optional<double> after_ns,
                               const PlacementThresholds& thresholds) {
  if (!before_ns || !after_ns) return PlacementTag::kUnknown;
  if (*before_ns < thresholds.fast_below_ns && *after_ns < thresholds.fast_below_ns) {
    return PlacementTag::kFast;
  }
  if (*before_ns > thresholds.slow_above_ns && *after_ns > thresholds.slow_above_ns) {
    return PlacementTag::kSlow;
  }
  return PlacementTag::kMixed;
}

Expected<double> ProbeCacheLineRtt(const ProbeOptions& options) {
  auto region = MapSharedAnonymous(sizeof(ProbeShared));
  if (!region) return unexpected(region.error());
  ProbeShared* shared = ConstructIn<ProbeShared>(*region);
  const uint64_t limit = options.max_round_trips + kProbeWarmup;
  const uint64_t enough = options.min_round_trips + kProbeWarmup;
  const auto window_ns = static_cast<int64_t>(options.window_seconds * 1e9);

  auto side_a = [&](PairContext& ctx) -> int {
    const int64_t start = NowNs();
    uint64_t i = 0;
    for (; i < limit && !ctx.StopRequested(); ++i) {
      const int64_t t0 = NowNs();
      // Release/acquire: only the value matters, but the pairing keeps the line transfer the
      // thing being timed (no reordering of the timestamp reads around it on weak memory).
      shared->line.store(2 * i + 1, std::memory_order_release);
      while (shared->line.load(std::memory_order_acquire) != 2 * i + 2) {
        if (ctx.Aborted()) return ctx.Fail("aborted");
        CpuRelax();
      }
      const int64_t t1 = NowNs();
      if (i >= kProbeWarmup) shared->rtt.Record(static_cast<uint64_t>(t1 - t0));
      if (i + 1 >= enough && t1 - start >= window_ns) {
        ++i;
        break;
      }
    }
    ctx.report().packets = i;
    ctx.SetProducerDone();
    return 0;
  };
  auto side_b = [&](PairContext& ctx) -> int {
    for (uint64_t i = 0;; ++i) {
      while (shared->line.load(std::memory_order_acquire) != 2 * i + 1) {
        if (ctx.ProducerDone()) return 0;
        CpuRelax();
      }
      shared->line.store(2 * i + 2, std::memory_order_release);
    }
  };

  PairSpec spec;
  spec.producer_cpu = options.cpu_a;
  spec.consumer_cpu = options.cpu_b;
  spec.run_seconds = options.max_seconds;  // side a usually ends long before
  auto outcome = RunPair(spec, side_a, side_b);
  if (!outcome) return unexpected(outcome.error());
  auto p50 = shared->rtt.Percentile(0.5);
  if (!p50) return MakeError(ErrorCode::kUnavailable, "probe completed no round trip");
  return *p50;
}

}  // namespace uvmbus::bench
