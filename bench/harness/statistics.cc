#include "bench/harness/statistics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

namespace uvmbus::bench {

Summary Summarize(std::span<const double> values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values) {
    if (std::isfinite(x)) v.push_back(x);
  }
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const size_t mid = v.size() / 2;
  s.median = v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return s;
}

std::optional<double> Ratio(double value, double baseline) {
  if (!std::isfinite(value) || !std::isfinite(baseline) || baseline <= 0) return std::nullopt;
  return value / baseline;
}

std::optional<uint64_t> Percentile(std::span<uint64_t> values, double q) {
  if (values.empty()) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least ceil(q * n) values <= it (rank >= 1).
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  auto nth = values.begin() + static_cast<std::ptrdiff_t>(rank - 1);
  std::nth_element(values.begin(), nth, values.end());
  return *nth;
}

size_t LatencyHistogram::BucketOf(uint64_t ns) {
  if (ns < kExactBelow) return static_cast<size_t>(ns);
  // e = floor(log2 ns) >= 7; the 6 bits below the leading one pick the sub-bucket.
  const auto e = static_cast<uint32_t>(63 - std::countl_zero(ns));
  if (e > kMaxExponent) return kBuckets - 1;
  const uint64_t sub = (ns >> (e - 6)) & (kSubBuckets - 1);
  return static_cast<size_t>(kExactBelow + (e - 7) * kSubBuckets + sub);
}

uint64_t LatencyHistogram::BucketLower(size_t bucket) {
  if (bucket < kExactBelow) return bucket;
  const uint64_t i = bucket - kExactBelow;
  const uint64_t e = 7 + i / kSubBuckets;
  const uint64_t sub = i % kSubBuckets;
  return (kSubBuckets + sub) << (e - 6);
}

uint64_t LatencyHistogram::BucketWidth(size_t bucket) {
  if (bucket < kExactBelow) return 1;
  const uint64_t e = 7 + (bucket - kExactBelow) / kSubBuckets;
  return uint64_t{1} << (e - 6);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
}

std::optional<double> LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      if (i < kExactBelow) return static_cast<double>(i);
      return static_cast<double>(BucketLower(i)) + static_cast<double>(BucketWidth(i)) / 2;
    }
  }
  return static_cast<double>(BucketLower(kBuckets - 1));
}

}  // namespace uvmbus::bench
