// Child processes with captured stdout (tools/subprocess.h), driven through /bin/sh.
#include "tools/subprocess.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace uvmbus::tools {
namespace {

using std::chrono::milliseconds;

TEST(SubprocessTest, CapturesLinesAndTheExitCode) {
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo one; echo two; printf three; exit 3"});
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ((*p)->Wait(milliseconds(10'000)), 3);
  ASSERT_TRUE((*p)->WaitForStdoutClosed(milliseconds(10'000)));
  EXPECT_EQ((*p)->Lines(), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ((*p)->Lines(2), (std::vector<std::string>{"three"}));
  EXPECT_FALSE((*p)->Running());
}

TEST(SubprocessTest, ReportsDeathBySignalAs128PlusN) {
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo ready; exec sleep 1000"});
  ASSERT_TRUE(p) << p.error();
  ASSERT_TRUE((*p)->WaitForLine([](std::string_view l) { return l == "ready"; },
                                milliseconds(10'000)));
  EXPECT_FALSE((*p)->Wait(milliseconds(0)).has_value()) << "still running";
  ASSERT_TRUE((*p)->Signal(SIGTERM));
  EXPECT_EQ((*p)->Wait(milliseconds(10'000)), 128 + SIGTERM);
}

TEST(SubprocessTest, ChildStartsWithDefaultSignalsEvenIfTheParentBlocksThem) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo ready; exec sleep 1000"});
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(p) << p.error();
  ASSERT_TRUE((*p)->WaitForLine([](std::string_view l) { return l == "ready"; },
                                milliseconds(10'000)));
  ASSERT_TRUE((*p)->Signal(SIGTERM));
  EXPECT_EQ((*p)->Wait(milliseconds(10'000)), 128 + SIGTERM);
}

TEST(SubprocessTest, WaitForLineCountCountsMatches) {
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "for i in 1 2 3 4; do echo hb $i; echo x; done"});
  ASSERT_TRUE(p) << p.error();
  auto is_hb = [](std::string_view l) { return l.starts_with("hb "); };
  EXPECT_TRUE((*p)->WaitForLineCount(is_hb, 4, milliseconds(10'000)));
  EXPECT_FALSE((*p)->WaitForLineCount(is_hb, 5, milliseconds(10'000)))
      << "stdout closes before a fifth";
  EXPECT_TRUE((*p)->WaitForLineCount(is_hb, 0, milliseconds(0)));
}

TEST(SubprocessTest, WaitForLineGivesUpWhenStdoutCloses) {
  auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo a"});
  ASSERT_TRUE(p) << p.error();
  EXPECT_FALSE((*p)->WaitForLine([](std::string_view l) { return l == "b"; },
                                 milliseconds(10'000)));
  EXPECT_EQ((*p)->Wait(milliseconds(10'000)), 0);
}

TEST(SubprocessTest, ExecFailureIsExitCode127) {
  auto p = Subprocess::Spawn({"/nonexistent/program"});
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ((*p)->Wait(milliseconds(10'000)), 127);
}

TEST(SubprocessTest, DestructorKillsARunningChild) {
  pid_t pid = 0;
  {
    auto p = Subprocess::Spawn({"/bin/sh", "-c", "echo ready; exec sleep 1000"});
    ASSERT_TRUE(p) << p.error();
    ASSERT_TRUE((*p)->WaitForLine([](std::string_view l) { return l == "ready"; },
                                  milliseconds(10'000)));
    pid = (*p)->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "reaped, so the pid no longer exists";
}

TEST(SubprocessTest, EmptyArgvIsInvalid) {
  auto p = Subprocess::Spawn({});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace uvmbus::tools
