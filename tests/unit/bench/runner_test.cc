#include "bench/harness/runner.h"

#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

// Records every call; succeeds with `pps` packets in one second unless told otherwise.
class FakeContender final : public Contender {
 public:
  FakeContender(std::string name, std::vector<std::string>* calls) : name_(name), calls_(calls) {}

  std::string name() const override { return name_; }
  std::string description() const override { return "fake " + name_; }
  Status CheckAvailable() const override {
    if (!available_) return MakeError(ErrorCode::kUnavailable, "not installed: fake");
    return Ok();
  }
  bool Supports(const RunConfig& config) const override {
    return !poll_only_ || config.mode == Mode::kPoll;
  }
  Expected<RunResult> Run(const RunConfig& config) override {
    calls_->push_back(name_ + " " + config.Key());
    if (fail_) return MakeError(ErrorCode::kTimeout, "fake hang");
    RunResult r;
    r.packets = 1000;
    r.sent = 1000;
    r.bytes = 1000 * config.frame_bytes;
    r.seconds = 1;
    return r;
  }

  bool available_ = true;
  bool poll_only_ = false;
  bool fail_ = false;

 private:
  std::string name_;
  std::vector<std::string>* calls_;
};

// Scripted machine: probe results are taken from a queue, foreign CPU is fixed.
class ScriptedEnvironment final : public BenchEnvironment {
 public:
  bool WaitForIdle() override {
    ++idle_waits;
    return true;
  }
  Expected<double> ProbePlacement(int cpu_a, int cpu_b) override {
    last_cpus = {cpu_a, cpu_b};
    std::optional<double> v;
    if (!probes.empty()) {
      v = probes.front();
      probes.pop_front();
    }
    if (!v) return MakeError(ErrorCode::kUnavailable, "probe completed no round trip");
    return *v;
  }
  void BeginRun() override { ++begun; }
  std::optional<double> EndRun() override { return 0.05; }

  std::deque<std::optional<double>> probes;
  int idle_waits = 0;
  int begun = 0;
  std::pair<int, int> last_cpus{-1, -1};
};

std::vector<RunConfig> TwoConfigs() {
  RunConfig base;
  const Workload w[] = {Workload::kThroughput};
  const uint32_t frames[] = {64};
  const uint32_t queues[] = {1};
  const Mode modes[] = {Mode::kPoll, Mode::kInterrupt};
  return ConfigMatrix(base, w, frames, queues, modes);
}

TEST(ConfigMatrixTest, NestsWorkloadFrameQueuesMode) {
  RunConfig base;
  base.seconds = 0.5;
  const Workload w[] = {Workload::kThroughput, Workload::kLatency};
  const uint32_t frames[] = {64, 1500};
  const uint32_t queues[] = {1, 2};
  const Mode modes[] = {Mode::kPoll, Mode::kInterrupt};
  const auto configs = ConfigMatrix(base, w, frames, queues, modes);
  ASSERT_EQ(configs.size(), 16u);
  EXPECT_EQ(configs[0].Key(), "throughput 64B q1 poll");
  EXPECT_EQ(configs[1].Key(), "throughput 64B q1 interrupt");
  EXPECT_EQ(configs[2].Key(), "throughput 64B q2 poll");
  EXPECT_EQ(configs[4].Key(), "throughput 1500B q1 poll");
  EXPECT_EQ(configs[8].Key(), "latency 64B q1 poll");
  EXPECT_EQ(configs[15].seconds, 0.5);
}

TEST(RunRoundsTest, InterleavesEveryContenderAndConfigEachRoundRotatingTheOrder) {
  std::vector<std::string> calls;
  FakeContender a("a", &calls), b("b", &calls);
  Contender* list[] = {&a, &b};
  ScriptedEnvironment env;
  RunnerOptions options;
  options.rounds = 2;
  options.configs = TwoConfigs();
  const RunLog log = RunRounds(options, list, env);
  const std::vector<std::string> expected = {
      "a throughput 64B q1 poll", "b throughput 64B q1 poll",
      "a throughput 64B q1 interrupt", "b throughput 64B q1 interrupt",
      // round 1 starts with the next contender
      "b throughput 64B q1 poll", "a throughput 64B q1 poll",
      "b throughput 64B q1 interrupt", "a throughput 64B q1 interrupt"};
  EXPECT_EQ(calls, expected);
  ASSERT_EQ(log.records.size(), 8u);
  EXPECT_EQ(log.records[4].round, 1);
  EXPECT_EQ(env.idle_waits, 8);
  EXPECT_EQ(env.begun, 8);
}

TEST(RunRoundsTest, UnavailableContendersAreListedAndNeverRun) {
  std::vector<std::string> calls;
  FakeContender a("a", &calls), missing("dpdk", &calls);
  missing.available_ = false;
  Contender* list[] = {&a, &missing};
  ScriptedEnvironment env;
  RunnerOptions options;
  options.rounds = 1;
  options.configs = TwoConfigs();
  const RunLog log = RunRounds(options, list, env);
  EXPECT_EQ(calls.size(), 2u);
  ASSERT_EQ(log.contenders.size(), 2u);
  EXPECT_TRUE(log.contenders[0].available);
  EXPECT_FALSE(log.contenders[1].available);
  EXPECT_EQ(log.contenders[1].reason, "not installed: fake");
}

TEST(RunRoundsTest, UnsupportedConfigurationsAreSkipped) {
  std::vector<std::string> calls;
  FakeContender pmd("pmd", &calls);
  pmd.poll_only_ = true;
  Contender* list[] = {&pmd};
  ScriptedEnvironment env;
  RunnerOptions options;
  options.rounds = 1;
  options.configs = TwoConfigs();
  const RunLog log = RunRounds(options, list, env);
  ASSERT_EQ(log.records.size(), 1u);
  EXPECT_EQ(log.records[0].config.mode, Mode::kPoll);
}

TEST(RunRoundsTest, TagsEachRunFromTheProbesAroundIt) {
  std::vector<std::string> calls;
  FakeContender a("a", &calls);
  Contender* list[] = {&a};
  ScriptedEnvironment env;
  env.probes = {120, 118, 310, 330, 120, 330, std::nullopt, 100};
  RunnerOptions options;
  options.rounds = 2;
  options.configs = TwoConfigs();
  options.configs[0].producer_cpu = 1;
  options.configs[0].consumer_cpu = 0;
  const RunLog log = RunRounds(options, list, env);
  ASSERT_EQ(log.records.size(), 4u);
  EXPECT_EQ(log.records[0].tag, PlacementTag::kFast);
  EXPECT_EQ(*log.records[0].probe_before_ns, 120);
  EXPECT_EQ(*log.records[0].probe_after_ns, 118);
  EXPECT_EQ(log.records[1].tag, PlacementTag::kSlow);
  EXPECT_EQ(log.records[2].tag, PlacementTag::kMixed);
  EXPECT_EQ(log.records[3].tag, PlacementTag::kUnknown);
  EXPECT_FALSE(log.records[3].probe_before_ns.has_value());
  EXPECT_EQ(*log.records[3].probe_after_ns, 100);
  EXPECT_EQ(log.records[3].probe_error, "unavailable: probe completed no round trip");
  EXPECT_TRUE(log.records[0].probe_error.empty());
  EXPECT_EQ(*log.records[0].foreign_cpus, 0.05);
  EXPECT_TRUE(log.records[0].idle_before);
  // The probe runs on the run's own CPUs.
  EXPECT_EQ(env.last_cpus, (std::pair<int, int>{0, 1}));
}

TEST(RunRoundsTest, FailedRunIsRecordedWithItsError) {
  std::vector<std::string> calls;
  FakeContender a("a", &calls);
  a.fail_ = true;
  Contender* list[] = {&a};
  ScriptedEnvironment env;
  RunnerOptions options;
  options.rounds = 1;
  options.configs = TwoConfigs();
  int seen = 0;
  options.on_record = [&](const RunRecord&) { ++seen; };
  const RunLog log = RunRounds(options, list, env);
  ASSERT_EQ(log.records.size(), 2u);
  EXPECT_FALSE(log.records[0].ok);
  EXPECT_NE(log.records[0].error.find("fake hang"), std::string::npos);
  EXPECT_EQ(seen, 2);
}

TEST(RunRoundsTest, RecordsTheMachine) {
  ScriptedEnvironment env;
  RunnerOptions options;
  options.rounds = 0;
  const RunLog log = RunRounds(options, {}, env);
  EXPECT_GE(log.machine.usable_cpus, 1);
  EXPECT_FALSE(log.machine.kernel.empty());
}

}  // namespace
}  // namespace uvmbus::bench
