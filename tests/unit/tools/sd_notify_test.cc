// sd_notify over $NOTIFY_SOCKET (tools/sd_notify.h), checked against a real datagram socket.
#include "tools/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "tools_test_util.h"

namespace uvmbus::tools {
namespace {

// A bound datagram socket playing systemd.
UniqueFd BindDgram(const std::string& name, bool abstract) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t offset = abstract ? 1 : 0;  // abstract: sun_path[0] = '\0'
  std::memcpy(addr.sun_path + offset, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + name.size());
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  return fd;
}

std::string Receive(int fd) {
  char buf[512];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(SdNotifyTest, SendsEachStateAsOneDatagramToAPathSocket) {
  testing::ScratchDir dir;
  const std::string path = dir.File("notify");
  UniqueFd systemd = BindDgram(path, /*abstract=*/false);
  SdNotifier n = SdNotifier::ForSocket(path);
  ASSERT_TRUE(n.enabled());
  ASSERT_TRUE(n.Notify("READY=1\nSTATUS=0 guests"));
  ASSERT_TRUE(n.Notify("STOPPING=1"));
  EXPECT_EQ(Receive(systemd.get()), "READY=1\nSTATUS=0 guests");
  EXPECT_EQ(Receive(systemd.get()), "STOPPING=1");
}

TEST(SdNotifyTest, SupportsTheAbstractNamespace) {
  const std::string name = "uvmbus-sd-test-" + std::to_string(::getpid());
  UniqueFd systemd = BindDgram(name, /*abstract=*/true);
  SdNotifier n = SdNotifier::ForSocket("@" + name);
  ASSERT_TRUE(n.enabled());
  ASSERT_TRUE(n.Notify("READY=1"));
  EXPECT_EQ(Receive(systemd.get()), "READY=1");
}

TEST(SdNotifyTest, DisabledWithoutOrWithAnUnusableSocket) {
  EXPECT_FALSE(SdNotifier::ForSocket("").enabled());
  EXPECT_FALSE(SdNotifier::ForSocket("relative/path").enabled());
  EXPECT_FALSE(SdNotifier::ForSocket("/" + std::string(200, 'x')).enabled());
  // A disabled notifier accepts calls and does nothing.
  EXPECT_TRUE(SdNotifier::ForSocket("").Notify("READY=1"));
}

TEST(SdNotifyTest, NotifyToAVanishedSocketIsAnIoError) {
  testing::ScratchDir dir;
  SdNotifier n = SdNotifier::ForSocket(dir.File("nobody"));
  ASSERT_TRUE(n.enabled());
  auto st = n.Notify("READY=1");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
}

TEST(SdNotifyTest, RejectsAnEmptyState) {
  testing::ScratchDir dir;
  UniqueFd systemd = BindDgram(dir.File("n"), false);
  auto st = SdNotifier::ForSocket(dir.File("n")).Notify("");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
}

TEST(SdNotifyTest, WatchdogPingsAtHalfTheTimeout) {
  SdNotifier n = SdNotifier::ForSocket("/tmp/x", std::chrono::microseconds(10'000'000));
  ASSERT_TRUE(n.watchdog_interval().has_value());
  EXPECT_EQ(n.watchdog_interval()->count(), 5000);
  EXPECT_FALSE(SdNotifier::ForSocket("/tmp/x").watchdog_interval().has_value());
}

TEST(SdNotifyTest, FromEnvironmentHonoursWatchdogPid) {
  testing::ScratchDir dir;
  UniqueFd systemd = BindDgram(dir.File("n"), false);
  ::setenv("NOTIFY_SOCKET", dir.File("n").c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  SdNotifier mine = SdNotifier::FromEnvironment();
  ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
  SdNotifier other = SdNotifier::FromEnvironment();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  EXPECT_TRUE(mine.enabled());
  ASSERT_TRUE(mine.watchdog_interval().has_value());
  EXPECT_EQ(mine.watchdog_interval()->count(), 1000);
  EXPECT_TRUE(other.enabled());
  EXPECT_FALSE(other.watchdog_interval().has_value());
  EXPECT_FALSE(SdNotifier::FromEnvironment().enabled());
}

}  // namespace
}  // namespace uvmbus::tools
