// Smoke runs of every built-in contender: ~100 ms each, every byte of every frame checked.
// No timing assertions (the machine is shared); only that frames arrive, intact and complete.
#include <gtest/gtest.h>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/process_pair.h"

namespace uvmbus::bench {
namespace {

RunConfig Smoke(Workload workload, uint32_t frame_bytes, Mode mode, uint32_t queues = 1) {
  RunConfig c;
  c.workload = workload;
  c.frame_bytes = frame_bytes;
  c.mode = mode;
  c.queues = queues;
  c.seconds = 0.1;
  c.check_every_byte = true;
  return c;
}

void ExpectIntactThroughput(Contender& contender, const RunConfig& config) {
  SCOPED_TRACE(contender.name() + " " + config.Key());
  ASSERT_TRUE(contender.Supports(config));
  auto r = contender.Run(config);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_GT(r->packets, 0u);
  EXPECT_EQ(r->bad, 0u);
  EXPECT_EQ(r->packets, r->sent);  // the consumer drained everything that was handed over
  EXPECT_EQ(r->bytes, r->packets * config.frame_bytes);
  EXPECT_GT(r->seconds, 0.0);
  EXPECT_GT(r->packets_per_second(), 0.0);
  EXPECT_TRUE(r->content_checked);
  EXPECT_TRUE(r->producer_cpu_ns_per_packet().has_value());
}

class ContenderSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (UsableCpuCount() < 2) GTEST_SKIP() << "needs two CPUs";
  }
};

TEST_F(ContenderSmokeTest, RawRingDeliversIntactFrames) {
  auto c = MakeRawRingContender({.footprint_bytes = 64 << 10, .batch = 32});
  EXPECT_EQ(c->name(), "raw-ring-64KiB");
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kPoll));
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kPoll, 2));
  // 1500 B records do not divide the ring: every wrap splits a copy.
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kInterrupt));
}

TEST_F(ContenderSmokeTest, RawRingInterruptModeCountsDoorbellsAndWakeups) {
  auto c = MakeRawRingContender({.footprint_bytes = 1 << 20, .batch = 4});
  EXPECT_EQ(c->name(), "raw-ring-1MiB-b4");
  auto r = c->Run(Smoke(Workload::kThroughput, 64, Mode::kInterrupt));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->bad, 0u);
  ASSERT_EQ(r->extras.size(), 2u);
  EXPECT_EQ(r->extras[0].name, "doorbells_per_packet");
  EXPECT_EQ(r->extras[1].name, "wakeups_per_packet");
}

TEST_F(ContenderSmokeTest, RawRingRejectsWhatItCannotRun) {
  auto c = MakeRawRingContender({.footprint_bytes = 4096, .batch = 32});
  EXPECT_FALSE(c->Supports(Smoke(Workload::kLatency, 64, Mode::kPoll)));
  EXPECT_FALSE(c->Supports(Smoke(Workload::kThroughput, 4000, Mode::kPoll)));  // > half
  auto not_pow2 = MakeRawRingContender({.footprint_bytes = 3 << 20, .batch = 32});
  EXPECT_FALSE(not_pow2->Supports(Smoke(Workload::kThroughput, 64, Mode::kPoll)));
  auto r = not_pow2->Run(Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(ContenderSmokeTest, VmbusRingDeliversIntactFrames) {
  auto c = MakeVmbusRingContender({.data_bytes = 64 << 10, .batch = 32});
  EXPECT_EQ(c->name(), "vmbus-ring-64KiB");
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kPoll, 2));
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kInterrupt));
}

TEST_F(ContenderSmokeTest, VmbusRingInterruptModeSignalsOnlyAsTheSpecSays) {
  auto c = MakeVmbusRingContender({.data_bytes = 1 << 20, .batch = 32});
  auto r = c->Run(Smoke(Workload::kThroughput, 64, Mode::kInterrupt));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->bad, 0u);
  ASSERT_EQ(r->extras.size(), 2u);
  // A signal is sent only when the ring was drained and unmasked: never more than one per
  // commit, so at most one per packet.
  EXPECT_LE(r->extras[0].value, 1.0);
}

TEST_F(ContenderSmokeTest, UnixDgramDeliversIntactFrames) {
  auto c = MakeUnixDgramContender({});
  EXPECT_EQ(c->name(), "unix-dgram");
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ExpectIntactThroughput(*c, Smoke(Workload::kThroughput, 1500, Mode::kInterrupt));
  EXPECT_FALSE(c->Supports(Smoke(Workload::kThroughput, 64, Mode::kPoll, 2)));
}

TEST_F(ContenderSmokeTest, PingPongMeasuresRoundTripsInBothModes) {
  auto c = MakePingPongContender();
  EXPECT_FALSE(c->Supports(Smoke(Workload::kThroughput, 64, Mode::kPoll)));
  for (Mode mode : {Mode::kPoll, Mode::kInterrupt}) {
    for (uint32_t size : {64u, 1500u}) {
      const RunConfig config = Smoke(Workload::kLatency, size, mode);
      SCOPED_TRACE(config.Key());
      auto r = c->Run(config);
      ASSERT_TRUE(r.has_value()) << r.error();
      EXPECT_GT(r->packets, 0u);
      EXPECT_EQ(r->bad, 0u);
      ASSERT_TRUE(r->rtt_p50_ns.has_value());
      ASSERT_TRUE(r->rtt_p99_ns.has_value());
      EXPECT_GT(*r->rtt_p50_ns, 0.0);
      EXPECT_GE(*r->rtt_p99_ns, *r->rtt_p50_ns);
    }
  }
}

TEST(MemifContenderTest, ReportsNotInstalledWithoutTestpmd) {
  auto c = MakeMemifContender({.testpmd = "/nonexistent/dpdk-testpmd"});
  EXPECT_EQ(c->name(), "dpdk-memif");
  const Status st = c->CheckAvailable();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(st.error().message, "not installed: /nonexistent/dpdk-testpmd not found on PATH");
  auto r = c->Run(Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST(MemifContenderTest, SupportsPollModeThroughputOnly) {
  auto c = MakeMemifContender({});
  EXPECT_TRUE(c->Supports(Smoke(Workload::kThroughput, 64, Mode::kPoll)));
  EXPECT_TRUE(c->Supports(Smoke(Workload::kThroughput, 1500, Mode::kPoll)));
  EXPECT_FALSE(c->Supports(Smoke(Workload::kThroughput, 64, Mode::kInterrupt)));
  EXPECT_FALSE(c->Supports(Smoke(Workload::kThroughput, 32, Mode::kPoll)));
  EXPECT_FALSE(c->Supports(Smoke(Workload::kLatency, 64, Mode::kPoll)));
}

// Runs only where DPDK is installed (the harness never installs it). A few seconds: testpmd
// reports once per second and needs its own start-up.
TEST(MemifContenderTest, RunsTestpmdWhenInstalled) {
  auto c = MakeMemifContender({.min_samples = 1});
  if (!c->CheckAvailable()) GTEST_SKIP() << "dpdk-testpmd not installed";
  if (UsableCpuCount() < 2) GTEST_SKIP() << "needs two CPUs";
  auto r = c->Run(Smoke(Workload::kThroughput, 64, Mode::kPoll));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_GT(r->packets, 0u);
  EXPECT_GT(r->bits_per_second(), 0.0);
  EXPECT_FALSE(r->content_checked);
  EXPECT_TRUE(r->cpu_estimated);
}

TEST(BuiltinContendersTest, DefaultSetAndNames) {
  auto all = MakeBuiltinContenders({});
  std::vector<std::string> names;
  for (const auto& c : all) names.push_back(c->name());
  const std::vector<std::string> expected = {"raw-ring-1MiB", "raw-ring-4MiB", "vmbus-ring-1MiB",
                                             "unix-dgram", "dpdk-memif", "pingpong"};
  EXPECT_EQ(names, expected);
}

TEST(BuiltinContendersTest, FormatSizeAndFindExecutable) {
  EXPECT_EQ(FormatSize(64 << 10), "64KiB");
  EXPECT_EQ(FormatSize(1 << 20), "1MiB");
  EXPECT_EQ(FormatSize(1u << 30), "1GiB");
  EXPECT_EQ(FormatSize(1536), "1536B");
  EXPECT_FALSE(FindExecutable("sh").empty());
  EXPECT_TRUE(FindExecutable("no-such-binary-uvmbus").empty());
  EXPECT_TRUE(FindExecutable("").empty());
  EXPECT_EQ(FindExecutable("/bin/sh"), "/bin/sh");
}

}  // namespace
}  // namespace uvmbus::bench
