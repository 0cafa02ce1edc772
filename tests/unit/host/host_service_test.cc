// Tests of host/host_service.h: one server per guest, removal of departed guests, snapshots with
// sysfs names, Shutdown's rescind-and-drain, and a guest over the socket partition. Waits are on
// events (futures, interrupt fds, condition variables), never sleeps.
#include "host/host_service.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <future>

#include "host_test_util.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"

namespace uvmbus::host::test {
namespace {

using namespace std::chrono_literals;

struct FactoryLog {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<std::shared_ptr<FakeDeviceState>> states;
};

DeviceFactory MakeFactory(std::shared_ptr<FactoryLog> log, uint16_t max_sub = 0) {
  return [log, max_sub](const partition::PeerInfo&) {
    log->calls.fetch_add(1);
    auto state = std::make_shared<FakeDeviceState>();
    {
      std::lock_guard lock(log->mu);
      log->states.push_back(state);
    }
    std::vector<std::unique_ptr<Device>> devices;
    devices.push_back(std::make_unique<FakeDevice>(state, wire::kNetworkClassGuid,
                                                   TestInstance(1), max_sub, "net0"));
    return devices;
  };
}

std::unique_ptr<partition::LocalPartition> MakeLocal(const std::string& name) {
  auto p = partition::LocalPartition::Create(2, 4u << 20, name);
  EXPECT_TRUE(p.has_value());
  return p ? std::move(*p) : nullptr;
}

TEST(HostServiceTest, EachGuestGetsItsOwnServerAndDevices) {
  auto log = std::make_shared<FactoryLog>();
  HostServiceOptions options;
  options.reaper_thread = false;
  auto a = MakeLocal("guest-a");  // the partitions outlive the service
  auto b = MakeLocal("guest-b");
  HostService service(MakeFactory(log), options);
  ASSERT_TRUE(service.AddGuest(&a->host()).has_value());
  ASSERT_TRUE(service.AddGuest(&b->host()).has_value());
  EXPECT_EQ(log->calls.load(), 2);
  EXPECT_EQ(service.guest_count(), 2u);
  testing::FakeVmbusGuest ga(a->guest());
  testing::FakeVmbusGuest gb(b->guest());
  auto offers_a = ga.ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  auto offers_b = gb.ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  ASSERT_TRUE(offers_a && offers_b);
  ASSERT_EQ(offers_a->size(), 1u);
  EXPECT_EQ((*offers_a)[0].child_relid, 1u);  // relids are per guest
  EXPECT_EQ((*offers_b)[0].child_relid, 1u);
  ASSERT_TRUE(ga.OpenChannel(1, 0x2001, 0xE1E10, 1).has_value());
  EXPECT_EQ(log->states[0]->opens, 1);
  EXPECT_EQ(log->states[1]->opens, 0);

  // Guest A goes away: its device is closed at once, the service removes it on Reap().
  a->Disconnect();
  EXPECT_EQ(log->states[0]->closes, 1);
  EXPECT_EQ(service.Reap(), 1u);
  EXPECT_TRUE(log->states[0]->destroyed);
  EXPECT_EQ(service.guest_count(), 1u);
  // B keeps working.
  auto opened = gb.OpenChannel(1, 0x2001, 0xE1E10);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->result.status, 0u);
  EXPECT_EQ(log->states[1]->opens, 1);
  service.Shutdown(0ms);
  EXPECT_EQ(log->states[1]->closes, 1);
  EXPECT_EQ(service.AddGuest(&a->host()).error().code, ErrorCode::kUnavailable);
}

TEST(HostServiceTest, SnapshotJsonUsesSysfsNames) {
  auto log = std::make_shared<FactoryLog>();
  HostServiceOptions options;
  options.reaper_thread = false;
  auto a = MakeLocal("guest-a");  // outlives the service
  HostService service(MakeFactory(log, 1), options);
  ASSERT_TRUE(service.AddGuest(&a->host()).has_value());
  testing::FakeVmbusGuest ga(a->guest());
  ASSERT_TRUE(ga.ConnectAndRequestOffers(wire::kVersionWin10V5_3).has_value());
  ASSERT_TRUE(ga.OpenChannel(1, 0x2001, 0xE1E10, 1).has_value());
  nlohmann::json j = service.SnapshotJson();
  ASSERT_EQ(j["guests"].size(), 1u);
  const nlohmann::json& g = j["guests"][0];
  EXPECT_EQ(g["name"], "guest-a");
  EXPECT_EQ(g["pid"], ::getpid());
  EXPECT_EQ(g["version"], "5.3");
  EXPECT_EQ(g["state"], "connected");
  ASSERT_EQ(g["devices"].size(), 1u);
  const nlohmann::json& d = g["devices"][0];
  EXPECT_EQ(d["id"], 1);
  EXPECT_EQ(d["class_id"], "{f8615163-df3e-46c5-913f-f2d2f965ed0e}");
  EXPECT_EQ(d["device_id"], "{" + TestInstance(1).ToString() + "}");
  EXPECT_EQ(d["description"], "Synthetic network adapter");
  EXPECT_EQ(d["channel_vp_mapping"], nlohmann::json::array({"1:1"}));
  EXPECT_EQ(d["stats"]["fake_name"], "net0");  // Device::InspectJson() is carried through
  const nlohmann::json& ch = d["channels"]["1"];
  for (const char* key : {"cpu", "in_mask", "out_mask", "read_avail", "write_avail", "events",
                          "interrupts", "subchannel_id", "monitor_id", "pending", "intr_in_full",
                          "intr_out_empty", "out_full_first", "out_full_total"}) {
    EXPECT_TRUE(ch.contains(key)) << key;
  }
  EXPECT_EQ(ch["cpu"], 1);
  EXPECT_EQ(ch["monitor_id"], 0xFF);
  EXPECT_EQ(ch["state"], "open");
  EXPECT_EQ(j["guests_accepted"], 1);
}

TEST(HostServiceTest, ReaperThreadRemovesDepartedGuests) {
  auto log = std::make_shared<FactoryLog>();
  auto a = MakeLocal("guest-a");  // outlives the service
  HostService service(MakeFactory(log));
  ASSERT_TRUE(service.AddGuest(&a->host()).has_value());
  a->Disconnect();
  EXPECT_TRUE(service.WaitForGuestCount(0, 10s));
  std::lock_guard lock(log->mu);
  EXPECT_TRUE(log->states[0]->destroyed);
}

// Waits until the guest's vCPU 0 interrupt fires (the host posted a message).
bool WaitInterrupt(partition::GuestPartition& guest) {
  pollfd p{guest.InterruptFd(0), POLLIN, 0};
  return ::poll(&p, 1, 10000) == 1;
}

TEST(HostServiceTest, ShutdownRescindsAndWaitsForRelease) {
  auto log = std::make_shared<FactoryLog>();
  HostServiceOptions options;
  options.reaper_thread = false;
  auto a = MakeLocal("guest-a");  // outlives the service
  HostService service(MakeFactory(log), options);
  ASSERT_TRUE(service.AddGuest(&a->host()).has_value());
  testing::FakeVmbusGuest ga(a->guest());
  ASSERT_TRUE(ga.ConnectAndRequestOffers(wire::kVersionWin10V5_3).has_value());
  a->guest().AckInterrupt(0);
  auto done = std::async(std::launch::async, [&] { service.Shutdown(30s); });
  ASSERT_TRUE(WaitInterrupt(a->guest()));
  auto rescind = ga.ReceiveAs<wire::RescindChannelOffer>();
  ASSERT_TRUE(rescind.has_value());
  EXPECT_EQ(rescind->child_relid, 1u);
  wire::RelidReleased released;
  released.child_relid = 1;
  ga.Post(released);
  done.get();  // returns because the relid was released, not because 30 s passed
  EXPECT_EQ(service.guest_count(), 0u);
  EXPECT_TRUE(log->states[0]->destroyed);
}

TEST(HostServiceTest, GuestOverTheSocketPartition) {
  auto log = std::make_shared<FactoryLog>();
  HostService service(MakeFactory(log));
  const std::string path = fmt::format("/tmp/uvmbus-host-test-{}.sock", ::getpid());
  auto host = partition::SocketHost::Listen(path, service.GuestCallback());
  ASSERT_TRUE(host.has_value()) << host.error();
  auto guest = partition::SocketGuestPartition::Connect(path, "sock-guest", 1, 4u << 20);
  ASSERT_TRUE(guest.has_value()) << guest.error();
  ASSERT_TRUE(service.WaitForGuestCount(1, 10s));
  testing::FakeVmbusGuest fg(**guest);
  fg.set_receive_timeout_ms(10000);
  auto offers = fg.ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  ASSERT_TRUE(offers.has_value());
  ASSERT_EQ(offers->size(), 1u);
  auto ch = fg.OpenChannel(1, 0x2001, 0xE1E10);
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(ch->result.status, 0u);
  auto snap = service.Snapshot();
  ASSERT_EQ(snap.guests.size(), 1u);
  EXPECT_EQ(snap.guests[0].peer.transport, "socket");
  (*guest)->Disconnect();
  EXPECT_TRUE(service.WaitForGuestCount(0, 10s));
  {
    std::lock_guard lock(log->mu);
    EXPECT_EQ(log->states[0]->closes, 1);
    EXPECT_TRUE(log->states[0]->destroyed);
  }
  (*host)->Stop();
}

}  // namespace
}  // namespace uvmbus::host::test
