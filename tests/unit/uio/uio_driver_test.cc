// Tests of UioNetDriver against the real host VMBus server with a scripted NetVSP host
// (tests/fakes): the probe does uio_hv_generic's work (raw primary open, two buffer GPADLs, the
// tree) and leaves the rings exactly as a user-space driver expects them.
#include "devices/uio/uio_driver.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <sstream>

#include "fakes/fake_netvsp_host.h"
#include "guest/vmbus_bus.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"

namespace uvmbus::devices::uio {
namespace {

UioConfig SmallConfig() {
  UioConfig c;
  c.ring_bytes = 16 * 4096;
  c.subchannel_ring_bytes = 16 * 4096;
  c.recv_buffer_bytes = 1u << 20;
  c.send_buffer_bytes = 1u << 20;
  return c;
}

uint32_t ReadU32(const partition::GuestRam& ram, uint64_t gpa) {
  auto bytes = ram.Range(gpa, 4);
  EXPECT_TRUE(bytes.has_value());
  uint32_t v = 0;
  if (bytes) std::memcpy(&v, bytes->data(), 4);
  return v;
}

class UioDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/uio-driver-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto p = partition::LocalPartition::Create(2, 32ull << 20, "uio-test");
    ASSERT_TRUE(p.has_value());
    partition_ = std::move(*p);
    host_ = std::make_unique<fakes::FakeNetvspHost>(partition_->host());
    server_ = std::make_unique<host::VmbusServer>(&partition_->host());
    ASSERT_TRUE(partition_->host().Start(server_.get()).has_value());
    server_->AddDevice(host_->MakeDevice());
    tree_ = std::make_unique<SysfsTree>(dir_);
    driver_ = std::make_unique<UioNetDriver>(*tree_, SmallConfig());
    auto bus = guest::VmbusBus::Create(partition_->guest());
    ASSERT_TRUE(bus.has_value());
    bus_ = std::move(*bus);
    ASSERT_TRUE(bus_->RegisterDriver(*driver_).has_value());
  }
  void TearDown() override {
    if (bus_) (void)bus_->Disconnect();
    bus_.reset();
    partition_->host().Stop();
    server_.reset();
    host_.reset();
    driver_.reset();
    partition_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<fakes::FakeNetvspHost> host_;
  std::unique_ptr<host::VmbusServer> server_;
  std::unique_ptr<SysfsTree> tree_;
  std::unique_ptr<UioNetDriver> driver_;
  std::unique_ptr<guest::VmbusBus> bus_;
  std::mutex mu_;
  std::vector<std::string> lines_;  // observer lines (the observer outlives a test body)
};

TEST_F(UioDriverTest, ProbeOpensThePrimaryRawAndDescribesEverythingInTheTree) {
  driver_->SetObserver([this](const std::string& line) {
    std::lock_guard lock(mu_);
    lines_.push_back(line);
  });
  ASSERT_TRUE(bus_->Connect().has_value());
  const auto layout = driver_->layout();
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(driver_->stats().probes.Get(), 1u);

  auto device = bus_->FindDevice(layout->device_id);
  ASSERT_NE(device, nullptr);
  guest::Channel& primary = device->channel();
  EXPECT_EQ(primary.state(), guest::ChannelState::kOpen);
  EXPECT_EQ(layout->relid, primary.relid());
  EXPECT_EQ(layout->monitor_id, primary.monitor_id());
  // Both rings in one contiguous run, the one the channel was opened with.
  EXPECT_EQ(layout->rings.size, 2u * SmallConfig().ring_bytes);
  EXPECT_EQ(layout->rings.gpa, primary.ring_gpn() * 4096);
  // The guest->host monitor page of INITIATE_CONTACT.
  EXPECT_EQ(layout->monitor_page.gpa, primary.guest_to_host_monitor_page_gpa());
  EXPECT_NE(layout->monitor_page.gpa, 0u);
  EXPECT_EQ(layout->recv_buffer.size, SmallConfig().recv_buffer_bytes);
  EXPECT_EQ(layout->send_buffer.size, SmallConfig().send_buffer_bytes);
  EXPECT_NE(layout->recv_gpadl, layout->send_gpadl);
  const auto gpadls = primary.gpadls();
  EXPECT_EQ(gpadls.size(), 2u);

  // Ring headers as uio_hv_generic leaves them: feature_bits = 1 on both, the inbound
  // (host->guest) ring masked, the outbound one not.
  const partition::GuestRam& ram = partition_->guest().ram();
  const uint64_t in = layout->rings.gpa + layout->rings.size / 2;
  EXPECT_EQ(ReadU32(ram, layout->rings.gpa + 64), 1u);
  EXPECT_EQ(ReadU32(ram, in + 64), 1u);
  EXPECT_EQ(ReadU32(ram, in + 8), 1u);
  EXPECT_EQ(ReadU32(ram, layout->rings.gpa + 8), 0u);

  // The tree names the same resources.
  std::ifstream name(tree_->DevicePath(layout->device_id) + "/uio/uio0/maps/map3/name");
  std::stringstream text;
  text << name.rdbuf();
  EXPECT_EQ(text.str(), "recv:" + std::to_string(layout->recv_gpadl) + "\n");
  const auto entries = tree_->entries();
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[2].gpa, layout->monitor_page.gpa);
  std::lock_guard lock(mu_);
  ASSERT_FALSE(lines_.empty());
  EXPECT_NE(lines_.front().find("relid " + std::to_string(layout->relid)), std::string::npos);
}

TEST_F(UioDriverTest, HostInterruptsAreCountedButTheRingsAreNotTouched) {
  ASSERT_TRUE(bus_->Connect().has_value());
  const auto layout = driver_->layout();
  ASSERT_TRUE(layout.has_value());
  const partition::GuestRam& ram = partition_->guest().ram();
  const uint64_t in = layout->rings.gpa + layout->rings.size / 2;
  const uint32_t read_index = ReadU32(ram, in + 4);
  // The user-space owner unmasks; the runtime must not re-mask or move the read index.
  auto mask = ram.Range(in + 8, 4);
  ASSERT_TRUE(mask.has_value());
  const uint32_t zero = 0;
  std::memcpy(mask->data(), &zero, 4);
  EXPECT_EQ(ReadU32(ram, in + 4), read_index);
  EXPECT_EQ(ReadU32(ram, in + 8), 0u);
}

TEST_F(UioDriverTest, RemoveClosesTheChannelAndTearsDownTheBuffers) {
  ASSERT_TRUE(bus_->Connect().has_value());
  const auto layout = driver_->layout();
  ASSERT_TRUE(layout.has_value());
  ASSERT_TRUE(host_->WaitUntil([&] { return host_->open_channels() == 1; }));
  auto device = bus_->FindDevice(layout->device_id);
  ASSERT_NE(device, nullptr);
  ASSERT_TRUE(bus_->UnregisterDriver(*driver_).has_value());
  EXPECT_FALSE(driver_->layout().has_value());
  EXPECT_EQ(device->channel().state(), guest::ChannelState::kOffered);
  EXPECT_TRUE(device->channel().gpadls().empty());
  EXPECT_TRUE(host_->WaitUntil([&] { return host_->open_channels() == 0; }));
  EXPECT_EQ(bus_->stats().gpadls_torn_down.Get(), 3u);  // ring + receive + send
}

TEST_F(UioDriverTest, ASecondNicIsRefused) {
  ASSERT_TRUE(bus_->Connect().has_value());
  auto device = bus_->FindDevice(driver_->layout()->device_id);
  ASSERT_NE(device, nullptr);
  auto st = driver_->Probe(*device);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace uvmbus::devices::uio
