#include "bench/harness/machine_load.h"

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

constexpr const char* kProcStat =
    "cpu  1000 20 300 5000 40 5 6 7 0 0\n"
    "cpu0 500 10 150 2500 20 2 3 3 0 0\n"
    "intr 12345\n";

TEST(ParseProcStatTest, SumsBusyAndTotalTicks) {
  auto t = ParseProcStat(kProcStat);
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_EQ(t->busy, 1000u + 20 + 300 + 5 + 6 + 7);  // user nice system irq softirq steal
  EXPECT_EQ(t->total, t->busy + 5000 + 40);          // + idle + iowait
}

TEST(ParseProcStatTest, AcceptsExactlyEightFields) {
  auto t = ParseProcStat("cpu 1 2 3 4 5 6 7 8");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->busy, 1u + 2 + 3 + 6 + 7 + 8);
}

TEST(ParseProcStatTest, RejectsTextWithoutTheCpuLine) {
  auto t = ParseProcStat("intr 1 2 3\n");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kMalformed);
  EXPECT_FALSE(ParseProcStat("cpu0 1 2 3 4 5 6 7 8\n").has_value());  // per-CPU line only
  EXPECT_FALSE(ParseProcStat("").has_value());
}

TEST(ParseProcStatTest, RejectsShortOrNonNumericLines) {
  auto short_line = ParseProcStat("cpu 1 2 3 4\n");
  ASSERT_FALSE(short_line.has_value());
  EXPECT_EQ(short_line.error().code, ErrorCode::kMalformed);
  auto junk = ParseProcStat("cpu 1 2 x 4 5 6 7 8\n");
  ASSERT_FALSE(junk.has_value());
  EXPECT_EQ(junk.error().code, ErrorCode::kMalformed);
}

TEST(ReadProcStatTest, ReadsThisMachine) {
  auto t = ReadProcStat();
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_GE(t->total, t->busy);
}

TEST(BusyFractionTest, BusyShareOfAllTicks) {
  const CpuTimes a{100, 1000}, b{150, 1200};
  EXPECT_DOUBLE_EQ(*BusyFraction(a, b), 0.25);
}

TEST(BusyFractionTest, NoAnswerWithoutElapsedTicksOrWhenCountersGoBack) {
  EXPECT_FALSE(BusyFraction({100, 1000}, {100, 1000}).has_value());
  EXPECT_FALSE(BusyFraction({100, 1000}, {90, 1100}).has_value());
}

TEST(ForeignCpusTest, SubtractsOwnCpuPerWallSecond) {
  // 300 ticks at 100 Hz = 3 CPU-s busy, 2 s of them ours, over 2 s: 0.5 CPUs of others.
  EXPECT_DOUBLE_EQ(*ForeignCpus(300, 100, 2.0, 2.0), 0.5);
}

TEST(ForeignCpusTest, ClampsAtZeroAndNeedsWallTime) {
  EXPECT_DOUBLE_EQ(*ForeignCpus(100, 100, 2.0, 1.0), 0.0);  // tick granularity
  EXPECT_FALSE(ForeignCpus(100, 100, 0.0, 0.0).has_value());
  EXPECT_FALSE(ForeignCpus(100, 0, 0.0, 1.0).has_value());
}

TEST(WaitForIdleTest, GivesUpWhenTheThresholdCannotBeMet) {
  // busy_below 0: no sample can be below it; one 10 ms sample, then the (zero) limit.
  EXPECT_FALSE(WaitForIdle({.busy_below = 0, .sample_seconds = 0.01, .limit_seconds = 0}));
}

TEST(WaitForIdleTest, ReturnsAtOnceWhenAnyLoadCounts) {
  EXPECT_TRUE(WaitForIdle({.busy_below = 1.01, .sample_seconds = 0.05, .limit_seconds = 5}));
}

}  // namespace
}  // namespace uvmbus::bench
