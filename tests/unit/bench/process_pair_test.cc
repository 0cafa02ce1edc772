#include "bench/harness/process_pair.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

class ProcessPairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (UsableCpuCount() < 2) GTEST_SKIP() << "needs two CPUs";
  }
};

TEST_F(ProcessPairTest, SidesReportThroughSharedMemory) {
  auto producer = [](PairContext& ctx) {
    uint64_t n = 0;
    while (!ctx.StopRequested()) ++n;
    ctx.report().packets = n;
    ctx.report().counters[3] = 42;
    ctx.SetProducerDone();
    return 0;
  };
  auto consumer = [](PairContext& ctx) {
    while (!ctx.ProducerDone()) CpuRelax();
    ctx.report().packets = 7;
    ctx.report().first_ns = 1;
    return 0;
  };
  auto out = RunPair({.run_seconds = 0.02}, producer, consumer);
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_GT(out->producer.report.packets, 0u);
  EXPECT_EQ(out->producer.report.counters[3], 42u);
  EXPECT_EQ(out->consumer.report.packets, 7u);
  EXPECT_GT(out->producer.cpu_seconds + out->consumer.cpu_seconds, 0.0);
  EXPECT_GT(out->wall_seconds, 0.0);
}

TEST_F(ProcessPairTest, SidesRunOnTheirPinnedCpus) {
  auto side = [](PairContext& ctx) {
    ctx.report().packets = static_cast<uint64_t>(sched_getcpu());
    if (ctx.side() == Side::kProducer) ctx.SetProducerDone();
    return 0;
  };
  auto out = RunPair({.producer_cpu = 1, .consumer_cpu = 0, .run_seconds = 0.001}, side, side);
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_EQ(out->producer.report.packets, 1u);
  EXPECT_EQ(out->consumer.report.packets, 0u);
}

TEST_F(ProcessPairTest, FailingSideFailsTheRunWithItsMessage) {
  auto producer = [](PairContext& ctx) { return ctx.Fail("ring exploded"); };
  auto consumer = [](PairContext& ctx) {
    while (!ctx.ProducerDone()) CpuRelax();
    return 0;
  };
  auto out = RunPair({.run_seconds = 0.01}, producer, consumer);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kInternal);
  EXPECT_NE(out.error().message.find("producer exited with 1: ring exploded"), std::string::npos)
      << out.error();
}

TEST_F(ProcessPairTest, HungSideIsKilledAfterTheStopTimeout) {
  auto producer = [](PairContext& ctx) {
    ctx.SetProducerDone();
    return 0;
  };
  auto consumer = [](PairContext&) {
    for (;;) ::pause();  // ignores every flag
    return 0;
  };
  auto out = RunPair({.run_seconds = 0.001, .stop_timeout_seconds = 0.1}, producer, consumer);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kTimeout);
}

TEST_F(ProcessPairTest, CrashingSideIsReported) {
  auto producer = [](PairContext& ctx) {
    ctx.SetProducerDone();
    return 0;
  };
  auto consumer = [](PairContext&) -> int { ::_exit(9); };
  auto out = RunPair({.run_seconds = 0.01}, producer, consumer);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kInternal);
  EXPECT_NE(out.error().message.find("consumer exited with 9"), std::string::npos)
      << out.error();
}

TEST_F(ProcessPairTest, SameCpuForBothSidesIsRejected) {
  auto side = [](PairContext&) { return 0; };
  auto out = RunPair({.producer_cpu = 0, .consumer_cpu = 0}, side, side);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(ProcessPairTest, UnpinnableCpuFailsBeforeStart) {
  auto side = [](PairContext&) { return 0; };
  auto out = RunPair({.producer_cpu = 0, .consumer_cpu = 1000}, side, side);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, ErrorCode::kInternal);
  EXPECT_NE(out.error().message.find("sched_setaffinity(cpu 1000)"), std::string::npos)
      << out.error();
}

TEST(PinToCpuTest, RejectsNegativeCpu) {
  auto st = PinToCpu(-1);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
}

TEST(MapSharedAnonymousTest, RejectsZeroBytes) {
  auto m = MapSharedAnonymous(0);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace uvmbus::bench
