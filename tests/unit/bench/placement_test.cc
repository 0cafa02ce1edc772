#include "bench/harness/placement.h"

#include <gtest/gtest.h>

#include "bench/harness/process_pair.h"

namespace uvmbus::bench {
namespace {

TEST(ClassifyPlacementTest, FastWhenBothProbesBelow200) {
  EXPECT_EQ(ClassifyPlacement(120, 118), PlacementTag::kFast);
  EXPECT_EQ(ClassifyPlacement(199.9, 111), PlacementTag::kFast);
}

TEST(ClassifyPlacementTest, SlowWhenBothProbesAbove250) {
  EXPECT_EQ(ClassifyPlacement(300, 360), PlacementTag::kSlow);
  EXPECT_EQ(ClassifyPlacement(250.1, 900), PlacementTag::kSlow);
}

TEST(ClassifyPlacementTest, MixedWhenProbesDisagreeOrSitBetween) {
  EXPECT_EQ(ClassifyPlacement(120, 320), PlacementTag::kMixed);  // placement changed
  EXPECT_EQ(ClassifyPlacement(330, 115), PlacementTag::kMixed);
  EXPECT_EQ(ClassifyPlacement(220, 230), PlacementTag::kMixed);  // in the gap
}

TEST(ClassifyPlacementTest, BoundariesAreExclusive) {
  EXPECT_EQ(ClassifyPlacement(200, 100), PlacementTag::kMixed);  // 200 is not < 200
  EXPECT_EQ(ClassifyPlacement(250, 300), PlacementTag::kMixed);  // 250 is not > 250
}

TEST(ClassifyPlacementTest, UnknownWithoutBothProbes) {
  EXPECT_EQ(ClassifyPlacement(std::nullopt, 100), PlacementTag::kUnknown);
  EXPECT_EQ(ClassifyPlacement(100, std::nullopt), PlacementTag::kUnknown);
}

TEST(ClassifyPlacementTest, UsesGivenThresholds) {
  const PlacementThresholds t{.fast_below_ns = 100, .slow_above_ns = 150};
  EXPECT_EQ(ClassifyPlacement(120, 120, t), PlacementTag::kMixed);
  EXPECT_EQ(ClassifyPlacement(160, 170, t), PlacementTag::kSlow);
}

TEST(PlacementTagTest, NamesRoundTrip) {
  for (PlacementTag t :
       {PlacementTag::kFast, PlacementTag::kSlow, PlacementTag::kMixed, PlacementTag::kUnknown}) {
    PlacementTag parsed = PlacementTag::kUnknown;
    ASSERT_TRUE(ParsePlacementTag(PlacementTagName(t), &parsed));
    EXPECT_EQ(parsed, t);
  }
  PlacementTag out;
  EXPECT_FALSE(ParsePlacementTag("quick", &out));
}

TEST(ProbeCacheLineRttTest, MeasuresAPositiveRoundTrip) {
  if (UsableCpuCount() < 2) GTEST_SKIP() << "needs two CPUs";
  auto rtt = ProbeCacheLineRtt({.cpu_a = 0, .cpu_b = 1, .window_seconds = 0.01,
                                .max_round_trips = 20000});
  ASSERT_TRUE(rtt.has_value()) << rtt.error();
  EXPECT_GT(*rtt, 0);  // no timing assertion: the machine may be busy
}

TEST(ProbeCacheLineRttTest, FailsOnTheSameCpu) {
  auto rtt = ProbeCacheLineRtt({.cpu_a = 0, .cpu_b = 0});
  ASSERT_FALSE(rtt.has_value());
  EXPECT_EQ(rtt.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace uvmbus::bench
