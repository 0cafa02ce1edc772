#include "bench/harness/report.h"

#include <cmath>

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

RunConfig Throughput64() {
  RunConfig c;
  c.frame_bytes = 64;
  return c;
}

RunConfig Latency64() {
  RunConfig c;
  c.workload = Workload::kLatency;
  c.frame_bytes = 64;
  return c;
}

// A successful throughput run of `mpps` over one second.
RunRecord Tput(std::string contender, double mpps, PlacementTag tag, double foreign = 0.01,
               int round = 0) {
  RunRecord r;
  r.round = round;
  r.contender = std::move(contender);
  r.config = Throughput64();
  r.tag = tag;
  r.probe_before_ns = tag == PlacementTag::kFast ? 120 : 320;
  r.probe_after_ns = tag == PlacementTag::kFast ? 118 : 330;
  r.foreign_cpus = foreign;
  r.ok = true;
  r.result.packets = static_cast<uint64_t>(std::llround(mpps * 1e6));
  r.result.sent = r.result.packets;
  r.result.bytes = r.result.packets * 64;
  r.result.seconds = 1.0;
  r.result.producer_cpu_seconds = 1.0;
  r.result.consumer_cpu_seconds = 0.5;
  return r;
}

RunRecord Lat(std::string contender, double p50, PlacementTag tag) {
  RunRecord r;
  r.contender = std::move(contender);
  r.config = Latency64();
  r.tag = tag;
  r.foreign_cpus = 0;
  r.ok = true;
  r.result.packets = 1000;
  r.result.seconds = 0.1;
  r.result.rtt_p50_ns = p50;
  r.result.rtt_p99_ns = p50 * 3;
  r.result.producer_cpu_seconds = 0.1;
  r.result.consumer_cpu_seconds = 0.1;
  return r;
}

RunLog CannedLog() {
  RunLog log;
  log.rounds = 3;
  log.machine = {2, "6.18.0-test"};
  log.configs = {Throughput64(), Latency64()};
  log.contenders = {{"raw-ring-1MiB", "raw ring", true, {}},
                    {"unix-dgram", "sockets", true, {}},
                    {"dpdk-memif", "testpmd", false, "not installed: dpdk-testpmd not found"},
                    {"pingpong", "latency", true, {}}};
  for (int round = 0; round < 3; ++round) {
    log.records.push_back(Tput("raw-ring-1MiB", 30 + round, PlacementTag::kFast, 0.01, round));
    log.records.push_back(Tput("unix-dgram", 1.2 + 0.1 * round, PlacementTag::kFast, 0.01, round));
  }
  log.records.push_back(Tput("raw-ring-1MiB", 7, PlacementTag::kSlow));
  log.records.push_back(Tput("unix-dgram", 0.7, PlacementTag::kSlow));
  log.records.push_back(Lat("pingpong", 120, PlacementTag::kFast));
  log.records.push_back(Lat("pingpong", 130, PlacementTag::kFast));
  return log;
}

const SummaryRow* Find(const Report& report, std::string_view contender, PlacementTag tag,
                       Workload workload = Workload::kThroughput) {
  for (const auto& row : report.rows) {
    if (row.contender == contender && row.tag == tag && row.config.workload == workload) {
      return &row;
    }
  }
  return nullptr;
}

TEST(BuildReportTest, MedianAndRangePerContenderConfigAndTag) {
  const Report report = BuildReport(CannedLog(), {});
  const SummaryRow* raw = Find(report, "raw-ring-1MiB", PlacementTag::kFast);
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(raw->runs, 3u);
  EXPECT_EQ(raw->primary.n, 3u);
  EXPECT_DOUBLE_EQ(raw->primary.median, 31e6);
  EXPECT_DOUBLE_EQ(raw->primary.min, 30e6);
  EXPECT_DOUBLE_EQ(raw->primary.max, 32e6);
  EXPECT_DOUBLE_EQ(raw->bits_per_second.median, 31e6 * 64 * 8);
  EXPECT_NEAR(raw->producer_cpu_ns.median, 1e9 / 31e6, 1e-9);
  EXPECT_FALSE(raw->contaminated);
  // Slow runs are a separate row.
  const SummaryRow* slow = Find(report, "raw-ring-1MiB", PlacementTag::kSlow);
  ASSERT_NE(slow, nullptr);
  EXPECT_EQ(slow->primary.n, 1u);
  EXPECT_DOUBLE_EQ(slow->primary.median, 7e6);
}

TEST(BuildReportTest, RatioAgainstTheBaselineOfTheSameTag) {
  const Report report = BuildReport(CannedLog(), {});
  const SummaryRow* fast = Find(report, "unix-dgram", PlacementTag::kFast);
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->baseline, "raw-ring-1MiB");
  ASSERT_TRUE(fast->ratio.has_value());
  EXPECT_NEAR(*fast->ratio, 1.3e6 / 31e6, 1e-9);
  const SummaryRow* slow = Find(report, "unix-dgram", PlacementTag::kSlow);
  ASSERT_TRUE(slow->ratio.has_value());
  EXPECT_NEAR(*slow->ratio, 0.1, 1e-9);
  EXPECT_DOUBLE_EQ(*Find(report, "raw-ring-1MiB", PlacementTag::kFast)->ratio, 1.0);
}

TEST(BuildReportTest, LatencyRowsUseTheLatencyBaselineAndRttP50) {
  const Report report = BuildReport(CannedLog(), {});
  const SummaryRow* pp = Find(report, "pingpong", PlacementTag::kFast, Workload::kLatency);
  ASSERT_NE(pp, nullptr);
  EXPECT_DOUBLE_EQ(pp->primary.median, 125);
  EXPECT_DOUBLE_EQ(pp->rtt_p99_ns.median, 375);
  EXPECT_EQ(pp->baseline, "pingpong");
  EXPECT_DOUBLE_EQ(*pp->ratio, 1.0);
}

TEST(BuildReportTest, NoRatioWithoutABaselineRowInTheSameTag) {
  RunLog log = CannedLog();
  log.records.push_back(Tput("unix-dgram", 1.0, PlacementTag::kMixed));
  const Report report = BuildReport(std::move(log), {});
  const SummaryRow* mixed = Find(report, "unix-dgram", PlacementTag::kMixed);
  ASSERT_NE(mixed, nullptr);
  EXPECT_FALSE(mixed->ratio.has_value());
  EXPECT_TRUE(mixed->baseline.empty());
}

TEST(BuildReportTest, ContaminatedRunsAreLeftOutWhenEnoughCleanOnes) {
  RunLog log = CannedLog();
  log.records.push_back(Tput("raw-ring-1MiB", 100, PlacementTag::kFast, /*foreign=*/0.5));
  const Report report = BuildReport(std::move(log), {});
  const SummaryRow* raw = Find(report, "raw-ring-1MiB", PlacementTag::kFast);
  EXPECT_EQ(raw->runs, 4u);
  EXPECT_EQ(raw->primary.n, 3u);
  EXPECT_DOUBLE_EQ(raw->primary.max, 32e6);
  EXPECT_FALSE(raw->contaminated);
}

TEST(BuildReportTest, TooFewCleanRunsUsesAllAndSaysSo) {
  RunLog log;
  log.rounds = 3;
  log.records = {Tput("raw-ring-1MiB", 10, PlacementTag::kFast, 0.01),
                 Tput("raw-ring-1MiB", 20, PlacementTag::kFast, 0.30),
                 Tput("raw-ring-1MiB", 30, PlacementTag::kFast, 0.15)};  // 0.15 is not < 0.15
  const Report report = BuildReport(std::move(log), {});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_TRUE(report.rows[0].contaminated);
  EXPECT_EQ(report.rows[0].primary.n, 3u);
  EXPECT_DOUBLE_EQ(report.rows[0].primary.median, 20e6);
}

TEST(BuildReportTest, FailedAndDamagedRunsAreCountedNotAveraged) {
  RunLog log;
  RunRecord failed = Tput("unix-dgram", 0, PlacementTag::kFast);
  failed.ok = false;
  failed.error = "timeout: sides did not exit";
  RunRecord damaged = Tput("unix-dgram", 5, PlacementTag::kFast);
  damaged.result.bad = 3;
  log.records = {failed, damaged, Tput("unix-dgram", 1, PlacementTag::kFast)};
  const Report report = BuildReport(std::move(log), {});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_EQ(report.rows[0].failed, 2u);
  EXPECT_EQ(report.rows[0].primary.n, 1u);
  EXPECT_DOUBLE_EQ(report.rows[0].primary.median, 1e6);
  EXPECT_EQ(report.rows[0].last_error, "3 frames failed the content check");
}

TEST(BuildReportTest, ExtrasAreSummarisedByName) {
  RunLog log;
  for (double d : {0.01, 0.03, 0.02}) {
    RunRecord r = Tput("raw-ring-1MiB", 10, PlacementTag::kFast);
    r.result.extras = {{"doorbells_per_packet", d}, {"wakeups_per_packet", d / 2}};
    log.records.push_back(r);
  }
  const Report report = BuildReport(std::move(log), {});
  ASSERT_EQ(report.rows[0].extras.size(), 2u);
  EXPECT_EQ(report.rows[0].extras[0].name, "doorbells_per_packet");
  EXPECT_DOUBLE_EQ(report.rows[0].extras[0].summary.median, 0.02);
  EXPECT_DOUBLE_EQ(report.rows[0].extras[1].summary.median, 0.01);
}

TEST(FormatTableTest, ShowsRateBlockColumnsRatiosAndWhatWasNotRun) {
  const std::string table = FormatTable(BuildReport(CannedLog(), {}));
  EXPECT_NE(table.find("not run: dpdk-memif (not installed: dpdk-testpmd not found)"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find(" throughput 64B q1 poll "), std::string::npos) << table;
  EXPECT_NE(table.find("Rx-pps"), std::string::npos);
  EXPECT_NE(table.find("Rx-bps"), std::string::npos);
  EXPECT_NE(table.find("vs raw-ring-1MiB"), std::string::npos);
  // raw ring fast: 31000000 pps [30000000..32000000], 15872000000 bit/s, ratio 1.000.
  EXPECT_NE(table.find("31000000 [30000000..32000000]"), std::string::npos) << table;
  EXPECT_NE(table.find("15872000000"), std::string::npos) << table;
  EXPECT_NE(table.find("1.000"), std::string::npos);
  EXPECT_NE(table.find("0.042"), std::string::npos) << table;  // unix fast: 1.3 / 31
  EXPECT_NE(table.find("RTT-p50-ns"), std::string::npos);
  EXPECT_NE(table.find("vs pingpong"), std::string::npos);
}

TEST(FormatTableTest, GroupWithoutUsableRunShowsTheError) {
  RunLog log;
  RunRecord failed = Tput("unix-dgram", 0, PlacementTag::kFast);
  failed.ok = false;
  failed.error = "kTimeout: sides did not exit";
  log.records = {failed};
  const std::string table = FormatTable(BuildReport(std::move(log), {}));
  EXPECT_NE(table.find("no usable run: kTimeout: sides did not exit"), std::string::npos)
      << table;
}

TEST(ReportToJsonTest, CarriesUnitsSettingsRunsAndSummary) {
  const nlohmann::json j = ReportToJson(BuildReport(CannedLog(), {}));
  EXPECT_EQ(j["schema"], "uvmbus-bench/1");
  for (const char* unit : {"rx_pps", "rx_bits_per_s", "rtt_p50_ns", "producer_cpu_ns_per_packet",
                           "foreign_cpus", "probe_before_ns", "ratio"}) {
    EXPECT_TRUE(j["units"].contains(unit)) << unit;
  }
  EXPECT_EQ(j["settings"]["throughput_baseline"], "raw-ring-1MiB");
  EXPECT_EQ(j["settings"]["foreign_cpu_limit_cpus"], 0.15);
  EXPECT_EQ(j["machine"]["kernel"], "6.18.0-test");
  EXPECT_EQ(j["contenders"][2]["available"], false);
  EXPECT_EQ(j["contenders"][2]["reason"], "not installed: dpdk-testpmd not found");
  ASSERT_EQ(j["runs"].size(), 10u);
  const auto& run0 = j["runs"][0];
  EXPECT_EQ(run0["contender"], "raw-ring-1MiB");
  EXPECT_EQ(run0["config"]["frame_bytes"], 64);
  EXPECT_EQ(run0["config"]["mode"], "poll");
  EXPECT_EQ(run0["placement"]["tag"], "fast");
  EXPECT_EQ(run0["placement"]["probe_before_ns"], 120);
  EXPECT_DOUBLE_EQ(run0["result"]["rx_pps"].get<double>(), 30e6);
  EXPECT_DOUBLE_EQ(run0["result"]["rx_bits_per_s"].get<double>(), 30e6 * 512);
  const auto& first = j["summary"][0];
  EXPECT_EQ(first["contender"], "raw-ring-1MiB");
  EXPECT_EQ(first["tag"], "fast");
  EXPECT_DOUBLE_EQ(first["rx_pps"]["median"].get<double>(), 31e6);
  EXPECT_EQ(first["rx_pps"]["n"], 3);
  EXPECT_DOUBLE_EQ(first["ratio"].get<double>(), 1.0);
  bool saw_latency = false;
  for (const auto& row : j["summary"]) {
    if (row["config"]["workload"] == "latency") {
      saw_latency = true;
      EXPECT_DOUBLE_EQ(row["rtt_p50_ns"]["median"].get<double>(), 125);
      EXPECT_FALSE(row.contains("rx_pps"));
    }
  }
  EXPECT_TRUE(saw_latency);
}

TEST(ReportToJsonTest, FailedRunCarriesItsErrorAndNoResult) {
  RunRecord r = Tput("unix-dgram", 0, PlacementTag::kUnknown);
  r.ok = false;
  r.error = "boom";
  r.probe_before_ns.reset();
  const nlohmann::json j = RunRecordToJson(r);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"], "boom");
  EXPECT_FALSE(j.contains("result"));
  EXPECT_TRUE(j["placement"]["probe_before_ns"].is_null());
  EXPECT_EQ(j["placement"]["tag"], "unknown");
}

}  // namespace
}  // namespace uvmbus::bench
