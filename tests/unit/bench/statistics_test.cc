#include "bench/harness/statistics.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

TEST(SummarizeTest, EmptyInputHasNoValues) {
  const Summary s = Summarize({});
  EXPECT_EQ(s.n, 0u);
  EXPECT_EQ(s.median, 0);
}

TEST(SummarizeTest, OneValueIsMedianMinAndMax) {
  const std::vector<double> v = {7.5};
  const Summary s = Summarize(v);
  EXPECT_EQ(s.n, 1u);
  EXPECT_EQ(s.median, 7.5);
  EXPECT_EQ(s.min, 7.5);
  EXPECT_EQ(s.max, 7.5);
}

TEST(SummarizeTest, OddCountTakesTheMiddleValue) {
  const std::vector<double> v = {30, 10, 20, 50, 40};
  const Summary s = Summarize(v);
  EXPECT_EQ(s.n, 5u);
  EXPECT_EQ(s.median, 30);
  EXPECT_EQ(s.min, 10);
  EXPECT_EQ(s.max, 50);
}

TEST(SummarizeTest, EvenCountAveragesTheTwoMiddleValues) {
  const std::vector<double> v = {4, 1, 3, 2};
  const Summary s = Summarize(v);
  EXPECT_EQ(s.median, 2.5);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
}

TEST(SummarizeTest, IgnoresNonFiniteValues) {
  const std::vector<double> v = {std::numeric_limits<double>::quiet_NaN(), 5,
                                 std::numeric_limits<double>::infinity(), 3};
  const Summary s = Summarize(v);
  EXPECT_EQ(s.n, 2u);
  EXPECT_EQ(s.median, 4);
}

TEST(RatioTest, DividesByTheBaseline) {
  ASSERT_TRUE(Ratio(20.6, 35.1).has_value());
  EXPECT_NEAR(*Ratio(20.6, 35.1), 0.5869, 1e-4);
  EXPECT_EQ(*Ratio(0, 3), 0);
}

TEST(RatioTest, NoRatioAgainstZeroNegativeOrNonFiniteBaseline) {
  EXPECT_FALSE(Ratio(1, 0).has_value());
  EXPECT_FALSE(Ratio(1, -2).has_value());
  EXPECT_FALSE(Ratio(1, std::numeric_limits<double>::quiet_NaN()).has_value());
  EXPECT_FALSE(Ratio(std::numeric_limits<double>::infinity(), 1).has_value());
}

TEST(PercentileTest, NearestRank) {
  std::vector<uint64_t> v = {50, 10, 40, 20, 30, 60, 70, 80, 90, 100};
  EXPECT_EQ(*Percentile(v, 0.5), 50u);
  EXPECT_EQ(*Percentile(v, 0.99), 100u);
  EXPECT_EQ(*Percentile(v, 0.0), 10u);
  EXPECT_EQ(*Percentile(v, 1.0), 100u);
  std::vector<uint64_t> empty;
  EXPECT_FALSE(Percentile(empty, 0.5).has_value());
}

TEST(LatencyHistogramTest, ExactBelow128Nanoseconds) {
  LatencyHistogram h;
  for (uint64_t v : {100u, 120u, 120u, 127u}) h.Record(v);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(*h.Percentile(0.25), 100);
  EXPECT_EQ(*h.Percentile(0.5), 120);
  EXPECT_EQ(*h.Percentile(1.0), 127);
}

TEST(LatencyHistogramTest, EmptyHasNoPercentile) {
  LatencyHistogram h;
  EXPECT_FALSE(h.Percentile(0.5).has_value());
}

TEST(LatencyHistogramTest, BucketsAreContiguousAndCoverTheirValues) {
  for (size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    ASSERT_EQ(LatencyHistogram::BucketLower(b) + LatencyHistogram::BucketWidth(b),
              LatencyHistogram::BucketLower(b + 1))
        << "bucket " << b;
  }
  for (uint64_t v : {0ull, 127ull, 128ull, 129ull, 255ull, 256ull, 1000ull, 42'000ull,
                     123'456'789ull, (1ull << 40) + 5}) {
    const size_t b = LatencyHistogram::BucketOf(v);
    EXPECT_LE(LatencyHistogram::BucketLower(b), v) << v;
    EXPECT_LT(v, LatencyHistogram::BucketLower(b) + LatencyHistogram::BucketWidth(b)) << v;
  }
}

TEST(LatencyHistogramTest, HugeValuesLandInTheLastBucket) {
  EXPECT_EQ(LatencyHistogram::BucketOf(~0ull), LatencyHistogram::kBuckets - 1);
  LatencyHistogram h;
  h.Record(~0ull);
  EXPECT_TRUE(h.Percentile(0.5).has_value());
}

TEST(LatencyHistogramTest, PercentileWithinTwoPercentAboveExactRange) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100'000; ++v) h.Record(v * 10);  // 10 ns .. 1 ms, uniform
  EXPECT_NEAR(*h.Percentile(0.5), 500'000, 500'000 * 0.02);
  EXPECT_NEAR(*h.Percentile(0.99), 990'000, 990'000 * 0.02);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b;
  a.Record(10);
  b.Record(20);
  b.Record(30);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(*a.Percentile(1.0), 30);
}

}  // namespace
}  // namespace uvmbus::bench
