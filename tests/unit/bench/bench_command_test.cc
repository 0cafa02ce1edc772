#include "bench/harness/bench_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/harness/bench_cli.h"
#include "bench/harness/process_pair.h"

namespace uvmbus::bench {
namespace {

// Captures what RunBenchCommand prints.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() { std::fclose(file_); }
  std::FILE* get() { return file_; }
  std::string Text() {
    std::fflush(file_);
    std::rewind(file_);
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) s.append(buf, n);
    return s;
  }

 private:
  std::FILE* file_;
};

TEST(ParseSizeTest, AcceptsBytesAndBinarySuffixes) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseSize("64KiB"), 64u << 10);
  EXPECT_EQ(*ParseSize("1M"), 1u << 20);
  EXPECT_EQ(*ParseSize("4MiB"), 4u << 20);
  EXPECT_EQ(*ParseSize("2G"), uint64_t{2} << 30);
}

TEST(ParseSizeTest, RejectsMalformedAndOverflowingSizes) {
  EXPECT_FALSE(ParseSize("").has_value());
  EXPECT_FALSE(ParseSize("MiB").has_value());
  EXPECT_FALSE(ParseSize("1.5M").has_value());
  EXPECT_FALSE(ParseSize("-1").has_value());
  EXPECT_FALSE(ParseSize("12X").has_value());
  EXPECT_FALSE(ParseSize("99999999999999999999").has_value());
  EXPECT_FALSE(ParseSize("18014398509481984G").has_value());  // 2^54 GiB overflows
}

TEST(BenchCliTest, BindsEveryOption) {
  CLI::App app;
  BenchCommand command;
  AddBenchOptions(app, command);
  const char* argv[] = {"uvmbus-bench", "--quick",         "--frames",     "64,256",
                        "--modes",      "poll",            "--contenders", "raw-ring-1MiB,pingpong",
                        "--no-idle-wait", "--no-probe",    "--nice",       "5",
                        "--cpus",       "1,0",             "--json",       "-",
                        "--baseline",   "vmbus-ring-1MiB", "--batch",      "64"};
  app.parse(static_cast<int>(std::size(argv)), argv);
  EXPECT_TRUE(command.quick);
  EXPECT_EQ(command.frames, (std::vector<uint32_t>{64, 256}));
  EXPECT_EQ(command.modes, (std::vector<std::string>{"poll"}));
  EXPECT_EQ(command.contenders, (std::vector<std::string>{"raw-ring-1MiB", "pingpong"}));
  EXPECT_FALSE(command.wait_for_idle);
  EXPECT_FALSE(command.probe_placement);
  EXPECT_EQ(command.nice, 5);
  EXPECT_EQ(command.cpus, (std::vector<int>{1, 0}));
  EXPECT_EQ(command.json_path, "-");
  EXPECT_EQ(command.summary.throughput_baseline, "vmbus-ring-1MiB");
  EXPECT_EQ(command.batch, 64u);
}

TEST(BenchCliTest, DefaultsMatchTheMethod) {
  CLI::App app;
  BenchCommand command;
  AddBenchOptions(app, command);
  const char* argv[] = {"uvmbus-bench"};
  app.parse(1, argv);
  EXPECT_TRUE(command.wait_for_idle);
  EXPECT_TRUE(command.probe_placement);
  EXPECT_EQ(command.nice, -20);
  EXPECT_EQ(command.summary.foreign_cpu_limit, 0.15);
  // The baseline is the raw ring with netvsc's ring footprint; both queue counts run.
  EXPECT_EQ(command.summary.throughput_baseline, "raw-ring-512KiB");
  EXPECT_EQ(command.raw_ring_sizes, (std::vector<std::string>{"512KiB", "4MiB"}));
  EXPECT_EQ(command.queues, (std::vector<uint32_t>{1, 2}));
}

TEST(RunBenchCommandTest, ListNamesEveryContenderAndWhatIsMissing) {
  BenchCommand command;
  command.list = true;
  command.testpmd = "/nonexistent/dpdk-testpmd";
  Capture out, err;
  EXPECT_EQ(RunBenchCommand(command, {}, out.get(), err.get()), 0);
  const std::string text = out.Text();
  for (const char* name : {"raw-ring-512KiB", "raw-ring-4MiB", "vmbus-ring-512KiB", "unix-dgram",
                           "dpdk-memif", "pingpong"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  EXPECT_NE(text.find("[not installed: /nonexistent/dpdk-testpmd not found on PATH]"),
            std::string::npos)
      << text;
}

TEST(RunBenchCommandTest, BadArgumentsExitWithTwo) {
  Capture out, err;
  BenchCommand unknown;
  unknown.contenders = {"carrier-pigeon"};
  EXPECT_EQ(RunBenchCommand(unknown, {}, out.get(), err.get()), 2);
  BenchCommand mode;
  mode.modes = {"sometimes"};
  EXPECT_EQ(RunBenchCommand(mode, {}, out.get(), err.get()), 2);
  BenchCommand size;
  size.raw_ring_sizes = {"lots"};
  EXPECT_EQ(RunBenchCommand(size, {}, out.get(), err.get()), 2);
  BenchCommand cpus;
  cpus.cpus = {0, 0};
  EXPECT_EQ(RunBenchCommand(cpus, {}, out.get(), err.get()), 2);
  BenchCommand frame;
  frame.frames = {8};
  EXPECT_EQ(RunBenchCommand(frame, {}, out.get(), err.get()), 2);
  const std::string text = err.Text();
  EXPECT_NE(text.find("unknown contender 'carrier-pigeon'"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown mode 'sometimes'"), std::string::npos);
  EXPECT_NE(text.find("bad ring size 'lots'"), std::string::npos);
  EXPECT_NE(text.find("frame size 8 outside"), std::string::npos);
}

TEST(RunBenchCommandTest, ShortRunPrintsTheTableAndWritesJson) {
  if (UsableCpuCount() < 2) GTEST_SKIP() << "needs two CPUs";
  const auto json_path =
      std::filesystem::temp_directory_path() / ("uvmbus-bench-test-" + std::to_string(getpid()));
  BenchCommand command;
  command.rounds = 1;
  command.seconds = 0.05;
  command.frames = {64};
  command.modes = {"poll"};
  command.queues = {1};
  command.contenders = {"raw-ring-512KiB", "vmbus-ring-512KiB", "pingpong"};
  command.wait_for_idle = false;
  command.probe_placement = false;
  command.nice.reset();
  command.json_path = json_path.string();
  Capture out, err;
  ASSERT_EQ(RunBenchCommand(command, {}, out.get(), err.get()), 0) << err.Text();
  const std::string table = out.Text();
  EXPECT_NE(table.find("throughput 64B q1 poll"), std::string::npos) << table;
  EXPECT_NE(table.find("latency 64B q1 poll"), std::string::npos) << table;
  EXPECT_NE(table.find("vmbus-ring-512KiB"), std::string::npos);
  std::ifstream in(json_path);
  const nlohmann::json j = nlohmann::json::parse(in);
  std::filesystem::remove(json_path);
  ASSERT_EQ(j["runs"].size(), 3u);  // 2 throughput contenders + pingpong
  for (const auto& run : j["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump();
    EXPECT_EQ(run["placement"]["tag"], "unknown");
    EXPECT_EQ(run["placement"]["probe_error"], "unavailable: placement probe switched off");
  }
  EXPECT_EQ(j["summary"].size(), 3u);
}

}  // namespace
}  // namespace uvmbus::bench
