// CI smoke test of `uvmbus bench` (issue 4): one quick round of a small subset - uvmbus's NIC
// both ways and the raw ring, 64 B, one queue, polling - through the real binary, checking the
// JSON document's shape and that every run moved intact frames. No timing assertions: the
// figures depend on the machine and its load.
#include <stdio.h>
#include <sys/wait.h>

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#ifndef UVMBUS_BINARY
#error "UVMBUS_BINARY must name the uvmbus executable"
#endif

namespace {

// Runs `command` through the shell; returns its stdout, and its exit status in *status.
std::string RunCapture(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = ::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  *status = ::pclose(pipe);
  return out;
}

TEST(UvmbusBenchSmokeTest, QuickSubsetPrintsJsonWithEveryRunAndTheNicCounters) {
  const std::string cmd = std::string(UVMBUS_BINARY) +
                          " bench --quick --rounds 1 --json --no-idle-wait --nice 0"
                          " --only uvmbus-nic-g2h,uvmbus-nic-h2g,raw-ring-512KiB"
                          " --frames 64 --queues 1 --modes poll --workloads throughput"
                          " 2>/dev/null";
  int status = 0;
  const std::string out = RunCapture(cmd, &status);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_TRUE(j.contains("schema"));
  EXPECT_TRUE(j.contains("units"));
  ASSERT_TRUE(j["runs"].is_array());
  ASSERT_EQ(j["runs"].size(), 3u) << j["runs"].dump(2);
  for (const auto& run : j["runs"]) {
    EXPECT_TRUE(run["ok"].get<bool>()) << run.dump(2);
    EXPECT_TRUE(run["placement"].contains("tag"));
  }
  ASSERT_TRUE(j["summary"].is_array());
  bool saw_nic = false;
  for (const auto& row : j["summary"]) {
    EXPECT_TRUE(row.contains("rx_pps")) << row.dump(2);
    EXPECT_TRUE(row.contains("ratios"));
    const std::string name = row["contender"].get<std::string>();
    if (name.starts_with("uvmbus-nic")) {
      saw_nic = true;
      EXPECT_EQ(row["failed"], 0) << row.dump(2);
      for (const char* extra : {"doorbells_per_packet", "interrupts_per_packet",
                                "cpu_ns_per_packet"}) {
        EXPECT_TRUE(row["extras"].contains(extra)) << extra << ": " << row.dump(2);
      }
    }
  }
  EXPECT_TRUE(saw_nic);
}

}  // namespace
