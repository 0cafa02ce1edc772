// Tests of the private sysfs tree: the exact files and formats DPDK 22.11 reads
// (shared/dpdk-interop.md section 1) and the publish order of sub-channel rings.
#include "devices/uio/sysfs_tree.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace uvmbus::devices::uio {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ~uint64_t{0};
  return static_cast<uint64_t>(st.st_size);
}

class SysfsTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/uio-tree-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static DeviceLayout Layout() {
    DeviceLayout l;
    l.class_id = Guid::FromString("f8615163-df3e-46c5-913f-f2d2f965ed0e");
    l.device_id = Guid::FromString("0e0b6031-aaaa-bbbb-cccc-111122223333");
    l.relid = 14;
    l.monitor_id = 3;
    l.rings = {0x10000, 0x200000};
    l.int_page = {0x8000, 0x1000};
    l.monitor_page = {0x5000, 0x1000};
    l.recv_buffer = {0x400000, 0x1000000};
    l.send_buffer = {0x1400000, 0x1000000};
    l.recv_gpadl = 0xE1E10;
    l.send_gpadl = 0xE1E11;
    return l;
  }

  std::string dir_;
};

TEST_F(SysfsTreeTest, DeviceFilesHaveTheKernelsFormats) {
  SysfsTree tree(dir_);
  ASSERT_TRUE(tree.WriteDevice(Layout()).has_value());
  const std::string dev = dir_ + "/sys/bus/vmbus/devices/0e0b6031-aaaa-bbbb-cccc-111122223333";
  EXPECT_EQ(tree.DevicePath(Layout().device_id), dev);
  EXPECT_EQ(Read(dev + "/class_id"), "{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n");
  EXPECT_EQ(Read(dev + "/device_id"), "{0e0b6031-aaaa-bbbb-cccc-111122223333}\n");
  EXPECT_EQ(Read(dev + "/id"), "14\n");
  EXPECT_EQ(Read(dev + "/monitor_id"), "3\n");
  EXPECT_EQ(Read(dev + "/numa_node"), "0\n");
  const char* names[] = {"txrx_rings\n", "int_page\n", "monitor_page\n", "recv:925200\n",
                         "send:925201\n"};
  const char* sizes[] = {"0x200000\n", "0x1000\n", "0x1000\n", "0x1000000\n", "0x1000000\n"};
  for (int i = 0; i < 5; ++i) {
    const std::string map = dev + "/uio/uio0/maps/map" + std::to_string(i);
    EXPECT_EQ(Read(map + "/name"), names[i]) << i;
    EXPECT_EQ(Read(map + "/size"), sizes[i]) << i;
  }
  // The primary's channel directory: its ring file turns DPDK's multi-queue support on.
  EXPECT_EQ(Read(dev + "/channels/14/subchannel_id"), "0\n");
  EXPECT_EQ(Read(dev + "/channels/14/monitor_id"), "3\n");
  EXPECT_EQ(FileSize(dev + "/channels/14/ring"), 0x200000u);
  EXPECT_EQ(FileSize(dir_ + "/dev/uio0"), 0u);
  EXPECT_EQ(Read(tree.TablePath()),
            "uvmbus-uio-table 1\n"
            "map 0 0x10000 0x200000\n"
            "map 1 0x8000 0x1000\n"
            "map 2 0x5000 0x1000\n"
            "map 3 0x400000 0x1000000\n"
            "map 4 0x1400000 0x1000000\n"
            "ring 14 0x10000 0x200000\n");
  // No temporary file is left behind.
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  }
}

TEST_F(SysfsTreeTest, SubchannelIsPublishedWithItsRingAndTableLine) {
  SysfsTree tree(dir_);
  ASSERT_TRUE(tree.WriteDevice(Layout()).has_value());
  ASSERT_TRUE(tree.PublishChannel({15, 1, 4, {0x300000, 0x200000}}).has_value());
  const std::string ch = tree.DevicePath(Layout().device_id) + "/channels/15";
  EXPECT_EQ(Read(ch + "/subchannel_id"), "1\n");
  EXPECT_EQ(Read(ch + "/monitor_id"), "4\n");
  EXPECT_EQ(FileSize(ch + "/ring"), 0x200000u);
  const auto entries = tree.entries();
  ASSERT_EQ(entries.size(), 7u);
  EXPECT_EQ(entries.back().kind, MapEntryKind::kRing);
  EXPECT_EQ(entries.back().id, 15u);
  EXPECT_EQ(entries.back().gpa, 0x300000u);
}

TEST_F(SysfsTreeTest, RemoveChannelDeletesItsDirectoryAndLine) {
  SysfsTree tree(dir_);
  ASSERT_TRUE(tree.WriteDevice(Layout()).has_value());
  ASSERT_TRUE(tree.PublishChannel({15, 1, 4, {0x300000, 0x200000}}).has_value());
  ASSERT_TRUE(tree.RemoveChannel(15).has_value());
  EXPECT_FALSE(std::filesystem::exists(tree.DevicePath(Layout().device_id) + "/channels/15"));
  EXPECT_EQ(tree.entries().size(), 6u);
  auto again = tree.RemoveChannel(15);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(SysfsTreeTest, RejectsDuplicatesAndMisuse) {
  SysfsTree tree(dir_);
  auto early = tree.PublishChannel({15, 1, 4, {0x300000, 0x200000}});
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, ErrorCode::kProtocol);
  DeviceLayout bad = Layout();
  bad.int_page.size = 0;
  auto zero = tree.WriteDevice(bad);
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(tree.WriteDevice(Layout()).has_value());
  auto second = tree.WriteDevice(Layout());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kProtocol);
  auto dup = tree.PublishChannel({14, 1, 4, {0x300000, 0x200000}});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kProtocol);
  auto odd = tree.PublishChannel({16, 2, 5, {0x300000, 0x3000}});
  ASSERT_FALSE(odd.has_value());
  EXPECT_EQ(odd.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace uvmbus::devices::uio
