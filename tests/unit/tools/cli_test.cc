// Command-line parsing of `uvmbus` and the exit codes of usage errors (tools/cli.h).
#include "tools/cli.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tools/exit_codes.h"

namespace uvmbus::tools {
namespace {

struct Parsed {
  ParseResult result;
  std::string out;
  std::string err;
};

Parsed Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "uvmbus");
  std::ostringstream out;
  std::ostringstream err;
  Parsed p{ParseCommandLine(args, out, err), "", ""};
  p.out = out.str();
  p.err = err.str();
  return p;
}

template <typename T>
T As(const Parsed& p) {
  EXPECT_TRUE(p.result.command.has_value()) << p.err;
  return std::get<T>(*p.result.command);
}

TEST(CliTest, NoSubcommandIsAUsageError) {
  Parsed p = Parse({});
  EXPECT_FALSE(p.result.command);
  EXPECT_EQ(p.result.exit_code, 2);
  EXPECT_NE(p.err.find("subcommand is required"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("--help"), std::string::npos) << p.err;
}

TEST(CliTest, HelpGoesToStdoutAndExitsZero) {
  Parsed p = Parse({"--help"});
  EXPECT_FALSE(p.result.command);
  EXPECT_EQ(p.result.exit_code, 0);
  EXPECT_NE(p.out.find("Subcommands:"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("128+N"), std::string::npos) << "exit codes are listed in --help";
}

TEST(CliTest, SubcommandHelpExitsZero) {
  Parsed p = Parse({"guest", "--help"});
  EXPECT_FALSE(p.result.command);
  EXPECT_EQ(p.result.exit_code, 0);
  EXPECT_NE(p.out.find("--count"), std::string::npos) << p.out;
}

TEST(CliTest, VersionExitsZero) {
  Parsed p = Parse({"--version"});
  EXPECT_EQ(p.result.exit_code, 0);
  EXPECT_NE(p.out.find("uvmbus"), std::string::npos);
}

TEST(CliTest, UnknownSubcommandIsAUsageError) {
  Parsed p = Parse({"frobnicate"});
  EXPECT_FALSE(p.result.command);
  EXPECT_EQ(p.result.exit_code, 2);
}

TEST(CliTest, UnknownFlagIsAUsageErrorNotCli11sCode) {
  // CLI11 reports ExtrasError as 109; the tool maps every parse error onto 2.
  Parsed p = Parse({"host", "--socket", "/tmp/x", "--bogus"});
  EXPECT_EQ(p.result.exit_code, 2);
  EXPECT_NE(p.err.find("--bogus"), std::string::npos) << p.err;
}

TEST(CliTest, HostRequiresSocket) {
  Parsed p = Parse({"host"});
  EXPECT_EQ(p.result.exit_code, 2);
  EXPECT_NE(p.err.find("--socket"), std::string::npos) << p.err;
}

TEST(CliTest, HostDefaults) {
  Parsed p = Parse({"host", "--socket", "/run/uvmbus.sock"});
  const auto host = As<HostOptions>(p);
  EXPECT_EQ(host.socket, "/run/uvmbus.sock");
  EXPECT_EQ(host.heartbeat_interval_ms, kDefaultHeartbeatIntervalMs);
  EXPECT_EQ(host.log_level, "info");
}

TEST(CliTest, HostParsesIntervalAndLogLevel) {
  Parsed p = Parse({"host", "--socket=/s", "--heartbeat-interval", "5", "--log-level", "debug"});
  const auto host = As<HostOptions>(p);
  EXPECT_EQ(host.heartbeat_interval_ms, 5u);
  EXPECT_EQ(host.log_level, "debug");
}

TEST(CliTest, HostRejectsZeroInterval) {
  EXPECT_EQ(Parse({"host", "--socket", "/s", "--heartbeat-interval", "0"}).result.exit_code, 2);
}

TEST(CliTest, HostRejectsNonNumericInterval) {
  EXPECT_EQ(Parse({"host", "--socket", "/s", "--heartbeat-interval", "fast"}).result.exit_code, 2);
}

TEST(CliTest, RejectsUnknownLogLevel) {
  Parsed p = Parse({"host", "--socket", "/s", "--log-level", "chatty"});
  EXPECT_EQ(p.result.exit_code, 2);
}

TEST(CliTest, GuestDefaults) {
  Parsed p = Parse({"guest", "--socket", "/s"});
  const auto guest = As<GuestOptions>(p);
  EXPECT_EQ(guest.socket, "/s");
  EXPECT_EQ(guest.name, "");
  EXPECT_EQ(guest.cpus, kDefaultGuestCpus);
  EXPECT_EQ(guest.count, 0u);
}

TEST(CliTest, GuestParsesEverything) {
  Parsed p = Parse({"guest", "--socket", "/s", "--name", "vm-1", "--cpus", "4", "--count", "100",
                    "--ram", "32"});
  const auto guest = As<GuestOptions>(p);
  EXPECT_EQ(guest.name, "vm-1");
  EXPECT_EQ(guest.cpus, 4u);
  EXPECT_EQ(guest.count, 100u);
  EXPECT_EQ(guest.ram_mib, 32u);
}

TEST(CliTest, GuestCpuBoundaries) {
  EXPECT_EQ(Parse({"guest", "--socket", "/s", "--cpus", "0"}).result.exit_code, 2);
  EXPECT_EQ(Parse({"guest", "--socket", "/s", "--cpus", "65"}).result.exit_code, 2);
  EXPECT_EQ(As<GuestOptions>(Parse({"guest", "--socket", "/s", "--cpus", "64"})).cpus, 64u);
  EXPECT_EQ(As<GuestOptions>(Parse({"guest", "--socket", "/s", "--cpus", "1"})).cpus, 1u);
}

TEST(CliTest, GuestRejectsZeroCount) {
  EXPECT_EQ(Parse({"guest", "--socket", "/s", "--count", "0"}).result.exit_code, 2);
}

TEST(CliTest, GuestRejectsNamesTheHelloCannotCarry) {
  EXPECT_EQ(Parse({"guest", "--socket", "/s", "--name", "has space"}).result.exit_code, 2);
  EXPECT_EQ(Parse({"guest", "--socket", "/s", "--name", std::string(64, 'a')}).result.exit_code,
            2);
  EXPECT_EQ(As<GuestOptions>(Parse({"guest", "--socket", "/s", "--name", std::string(63, 'a')}))
                .name.size(),
            63u);
}

TEST(CliTest, LsCountsVerbosity) {
  EXPECT_EQ(As<LsOptions>(Parse({"ls", "--socket", "/s"})).verbose, 0);
  EXPECT_EQ(As<LsOptions>(Parse({"ls", "--socket", "/s", "-v"})).verbose, 1);
  EXPECT_EQ(As<LsOptions>(Parse({"ls", "--socket", "/s", "-vv"})).verbose, 2);
  EXPECT_EQ(As<LsOptions>(Parse({"ls", "--socket", "/s", "-v", "-v"})).verbose, 2);
  // lsvmbus prints -vvv like -vv.
  EXPECT_EQ(As<LsOptions>(Parse({"ls", "--socket", "/s", "-vvv"})).verbose, 2);
}

TEST(CliTest, LsJson) {
  const auto ls = As<LsOptions>(Parse({"ls", "--socket", "/s", "-v", "--json"}));
  EXPECT_TRUE(ls.json);
  EXPECT_EQ(ls.verbose, 1);
}

TEST(CliTest, DemoNeedsNoFlags) {
  const auto demo = As<DemoOptions>(Parse({"demo"}));
  EXPECT_EQ(demo.guests, kDefaultDemoGuests);
  EXPECT_EQ(demo.heartbeats, kDefaultDemoHeartbeats);
}

TEST(CliTest, DemoGuestBoundaries) {
  EXPECT_EQ(Parse({"demo", "--guests", "0"}).result.exit_code, 2);
  EXPECT_EQ(Parse({"demo", "--guests", "9"}).result.exit_code, 2);
}

TEST(ExitCodeTest, DocumentedValues) {
  EXPECT_EQ(ToInt(ExitCode::kOk), 0);
  EXPECT_EQ(ToInt(ExitCode::kFailure), 1);
  EXPECT_EQ(ToInt(ExitCode::kUsage), 2);
  EXPECT_EQ(ToInt(ExitCode::kHostUnavailable), 3);
  EXPECT_EQ(SignalExitCode(15), 143);
  EXPECT_EQ(SignalExitCode(9), 137);
}

}  // namespace
}  // namespace uvmbus::tools
