// File: bench/harness/statistics.h
//
// What: the small statistics the benchmark harness reports: median with min..max of a set of
// per-run values (the peers README B.2 method: "median of the clean runs, with [min..max]"),
// ratios against a baseline, and a fixed-size latency histogram (HDR-style: exact below 128 ns,
// then 64 sub-buckets per power of two, <= 1.6 % relative error) that two processes can fill in
// shared memory without allocating.
// Spec: none (benchmark infrastructure; design.md section 6, performance targets).
// Linux/OpenVMM: none.
// Thread-safety: free functions are pure. LatencyHistogram is a plain value with no internal
// synchronisation: one writer at a time; read it after the writer is done.
#ifndef UVMBUS_BENCH_HARNESS_STATISTICS_H_
#define UVMBUS_BENCH_HARNESS_STATISTICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace uvmbus::bench {

// Median and range of a set of values. n == 0 means "no values" (then the others are 0).
struct Summary {
  size_t n = 0;
  double median = 0;
  double min = 0;
  double max = 0;
};

// Summarises `values`. The median of an even count is the mean of the two middle values.
// Non-finite values (NaN, inf) are ignored.
Summary Summarize(std::span<const double> values);

// value / baseline, or nullopt when either is not finite or the baseline is <= 0 (a ratio
// against nothing is not a ratio).
std::optional<double> Ratio(double value, double baseline);

// Nearest-rank percentile (q in [0, 1]) of `values`, which are reordered. Empty => nullopt.
std::optional<uint64_t> Percentile(std::span<uint64_t> values, double q);

// Latency histogram over nanoseconds. Trivially copyable, so it can live in MAP_SHARED memory
// and be copied out by the parent after the measuring process exited.
class LatencyHistogram {
 public:
  // Values below this are counted exactly (one bucket per nanosecond).
  static constexpr uint64_t kExactBelow = 128;
  // Sub-buckets per power of two above kExactBelow.
  static constexpr uint32_t kSubBuckets = 64;
  // Largest power of two tracked; larger values land in the last bucket (~18 minutes).
  static constexpr uint32_t kMaxExponent = 40;
  static constexpr size_t kBuckets = kExactBelow + (kMaxExponent - 7 + 1) * kSubBuckets;

  // Counts one sample of `ns` nanoseconds.
  void Record(uint64_t ns) {
    ++buckets_[BucketOf(ns)];
    ++count_;
  }
  // Adds every sample of `other`.
  void Merge(const LatencyHistogram& other);
  // Number of samples.
  uint64_t count() const { return count_; }
  // Nearest-rank percentile, q in [0, 1]: the midpoint of the bucket holding that rank (exact
  // below kExactBelow). nullopt if empty.
  std::optional<double> Percentile(double q) const;

  // Bucket index of a value, and the [lower, lower + width) range a bucket covers (exposed for
  // tests).
  static size_t BucketOf(uint64_t ns);
  static uint64_t BucketLower(size_t bucket);
  static uint64_t BucketWidth(size_t bucket);

 private:
  uint64_t count_ = 0;
  std::array<uint64_t, kBuckets> buckets_{};
};

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_STATISTICS_H_
