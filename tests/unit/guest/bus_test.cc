// Tests of VmbusBus: version negotiation (spec 2.5, M16-M18), offers -> probe by class GUID,
// sub-channel offers -> sc_creation_callback, rescind -> remove + RELID_RELEASED (M10-M12),
// unload, host hang-up, and the post retry policy (spec 1.7).
#include <algorithm>
#include <optional>
#include <thread>

#include "guest_test_util.h"

namespace uvmbus::guest::testing {
namespace {

using wire::ChannelMessageType;

TEST_F(BusTest, ConnectNegotiatesNewestVersionOnConnectionFourThenUsesMsgConnId) {
  fakes::FakeVmbusHost::Options opts;
  opts.msg_conn_id = 7;
  Init(2, opts);
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(bus_->version(), wire::kVersionWin10V5_3);
  EXPECT_EQ(bus_->message_connection_id(), 7u);

  const auto contacts = host_->contacts();
  ASSERT_EQ(contacts.size(), 1u);
  EXPECT_EQ(contacts[0].first, wire::kVmbusMessageConnectionId4);
  EXPECT_EQ(contacts[0].second.vmbus_version_requested, wire::kVersionWin10V5_3);
  EXPECT_EQ(contacts[0].second.msg_sint, 2);
  EXPECT_EQ(contacts[0].second.target_vcpu, 0u);
  EXPECT_NE(contacts[0].second.monitor_page1, 0u);
  EXPECT_NE(contacts[0].second.monitor_page2, 0u);

  // REQUESTOFFERS went to the connection id the host returned.
  const auto received = host_->received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(wire::TypeOf(received[1].message), ChannelMessageType::kRequestOffers);
  EXPECT_EQ(received[1].connection_id, 7u);
}

TEST_F(BusTest, ConnectFallsBackWhenHostRefusesNewerVersions) {
  fakes::FakeVmbusHost::Options opts;
  opts.accepted_versions = {wire::kVersionWin10V5_1};
  Init(2, opts);
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(bus_->version(), wire::kVersionWin10V5_1);
  const auto contacts = host_->contacts();
  ASSERT_EQ(contacts.size(), 3u);
  EXPECT_EQ(contacts[0].second.vmbus_version_requested, wire::kVersionWin10V5_3);
  EXPECT_EQ(contacts[1].second.vmbus_version_requested, wire::kVersionWin10V5_2);
  EXPECT_EQ(contacts[2].second.vmbus_version_requested, wire::kVersionWin10V5_1);
  EXPECT_EQ(bus_->stats().version_refused.Get(), 2u);  // M16
}

TEST_F(BusTest, ConnectSkipsMultiClientVersionsWhenHostHasNoPortFour) {
  fakes::FakeVmbusHost::Options opts;
  opts.has_port4 = false;
  opts.accepted_versions = {wire::kVersionWin10, wire::kVersionWin8_1};
  Init(2, opts);
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(bus_->version(), wire::kVersionWin10);
  EXPECT_EQ(bus_->message_connection_id(), wire::kVmbusMessageConnectionId);
  // M18: 5.3, 5.2, 5.1, 5.0 refused by the hypercall itself; 4.1 refused by the host.
  EXPECT_EQ(bus_->stats().version_no_port.Get(), 4u);
  EXPECT_EQ(bus_->stats().version_refused.Get(), 1u);
  const auto contacts = host_->contacts();
  ASSERT_EQ(contacts.size(), 6u);
  EXPECT_EQ(contacts[4].first, wire::kVmbusMessageConnectionId);
  EXPECT_EQ(contacts[5].second.vmbus_version_requested, wire::kVersionWin10);
  // Pre-5.0 form: bytes 16..23 carry the interrupt page GPA.
  EXPECT_NE(contacts[5].second.interrupt_page(), 0u);
  EXPECT_EQ(contacts[5].second.interrupt_page() % 4096, 0u);
}

TEST_F(BusTest, ConnectFailsWhenHostAcceptsNoVersion) {
  fakes::FakeVmbusHost::Options opts;
  opts.accepted_versions = {wire::kVersionWs2008};
  Init(1, opts);
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnsupported);
  EXPECT_FALSE(bus_->connected());
  EXPECT_EQ(host_->contacts().size(), 8u);  // 5.3 ... 2.4
}

TEST_F(BusTest, ConnectHonoursMaxVersion) {
  BusOptions bopts;
  bopts.max_version = wire::kVersionWin10V4_1;
  Init(1, {}, bopts);
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(bus_->version(), wire::kVersionWin10V4_1);
  EXPECT_EQ(host_->contacts().size(), 1u);
  EXPECT_EQ(host_->contacts()[0].first, wire::kVmbusMessageConnectionId);
}

TEST_F(BusTest, ConnectRejectsUnusableMsgConnId) {
  fakes::FakeVmbusHost::Options opts;
  opts.msg_conn_id = 0x01000002;  // reserved bits 24-31 set (M17)
  Init(1, opts);
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kProtocol);
}

TEST_F(BusTest, PostRetriesTransientInsufficientBuffers) {
  fakes::FakeVmbusHost::Options opts;
  opts.transient_failures = 3;
  Init(1, opts);
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(bus_->stats().post_retries.Get(), 3u);
  EXPECT_EQ(bus_->version(), wire::kVersionWin10V5_3);
}

TEST_F(BusTest, PostGivesUpAfterMaxAttempts) {
  fakes::FakeVmbusHost::Options opts;
  opts.transient_failures = 1000;
  BusOptions bopts;
  bopts.post_max_attempts = 4;
  Init(1, opts, bopts);
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(bus_->stats().post_retries.Get(), 3u);
  EXPECT_EQ(bus_->stats().post_failures.Get(), 1u);
}

TEST_F(BusTest, ConnectTimesOutWithoutAllOffersDelivered) {
  fakes::FakeVmbusHost::Options opts;
  opts.send_all_offers_delivered = false;
  BusOptions bopts;
  bopts.offers_timeout = std::chrono::milliseconds(50);
  Init(1, opts, bopts);
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kTimeout);
  EXPECT_NE(st.error().message.find("ALLOFFERS_DELIVERED"), std::string::npos);
}

TEST_F(BusTest, SecondConnectIsAProtocolError) {
  Init(1);
  ASSERT_TRUE(bus_->Connect());
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kProtocol);
}

TEST_F(BusTest, OffersProbeMatchingDriverByClassGuidAndNotUnknownOnes) {
  Init(2);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(wire::kHeartbeatClassGuid, InstanceGuid(1), 1));
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kUnknownClass, InstanceGuid(2), 2));
  RecordingDriver& utils = NewDriver("hv_utils", {wire::kHeartbeatClassGuid, wire::kShutdownClassGuid});
  ASSERT_TRUE(bus_->RegisterDriver(utils));
  ASSERT_TRUE(bus_->Connect());

  // Connect returns after the initial probes.
  EXPECT_EQ(utils.probed(), std::vector<uint32_t>{1});
  EXPECT_EQ(bus_->stats().offers.Get(), 2u);
  EXPECT_EQ(bus_->stats().probes.Get(), 1u);
  EXPECT_EQ(bus_->stats().no_driver.Get(), 1u);

  const auto ev = events();
  EXPECT_NE(std::find(ev.begin(), ev.end(),
                      "probe: Heartbeat {57164f39-9115-4e78-ab55-382f3bd5422d} relid 1 -> driver "
                      "hv_utils"),
            ev.end());

  const auto devices = bus_->ListDevices();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].description, "[Heartbeat]");
  EXPECT_EQ(devices[0].driver, "hv_utils");
  ASSERT_EQ(devices[0].channels.size(), 1u);
  EXPECT_EQ(devices[0].channels[0].relid, 1u);
  EXPECT_EQ(devices[0].channels[0].target_vcpu, 0u);  // non-performance device (spec 7.7)
  EXPECT_EQ(devices[1].description, "Unknown");
  EXPECT_EQ(devices[1].driver, "");
}

TEST_F(BusTest, DriverRegisteredAfterConnectProbesExistingDevices) {
  Init(1);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 3));
  ASSERT_TRUE(bus_->Connect());
  RecordingDriver& d = NewDriver("late", {kTestClassA});
  ASSERT_TRUE(bus_->RegisterDriver(d));
  EXPECT_EQ(d.probed(), std::vector<uint32_t>{3});
  // Same name twice is refused.
  RecordingDriver& d2 = NewDriver("late", {kTestClassA});
  auto st = bus_->RegisterDriver(d2);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(BusTest, UnregisterDriverRemovesItFromItsDevices) {
  Init(1);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 3));
  RecordingDriver& d = NewDriver("drv", {kTestClassA});
  ASSERT_TRUE(bus_->RegisterDriver(d));
  ASSERT_TRUE(bus_->Connect());
  ASSERT_TRUE(bus_->UnregisterDriver(d));
  EXPECT_EQ(d.removed(), std::vector<uint32_t>{3});
  EXPECT_EQ(bus_->FindDevice(InstanceGuid(1))->driver(), nullptr);
  auto st = bus_->UnregisterDriver(d);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
}

TEST_F(BusTest, NicChannelsAreSpreadOverVcpus) {
  Init(2);
  for (uint32_t i = 1; i <= 4; ++i) {
    host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(i), i));
  }
  ASSERT_TRUE(bus_->Connect());
  std::vector<uint32_t> vcpus;
  for (uint32_t i = 1; i <= 4; ++i) vcpus.push_back(bus_->FindChannel(i)->target_vcpu());
  EXPECT_EQ(vcpus, (std::vector<uint32_t>{0, 1, 0, 1}));
}

TEST_F(BusTest, SubchannelOfferGoesToScCreationCallback) {
  Init(2);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(9), 1));
  Latch sub_calls;
  std::vector<uint32_t> sub_relids;
  std::mutex mu;
  RecordingDriver& nic = NewDriver("hv_netvsc", {wire::kNetworkClassGuid});
  nic.probe_fn = [&](VmbusDevice& dev) {
    dev.SetSubchannelCallback([&](Channel& ch) {
      {
        std::lock_guard lock(mu);
        sub_relids.push_back(ch.relid());
      }
      sub_calls.Add();
    });
    return Ok();
  };
  ASSERT_TRUE(bus_->RegisterDriver(nic));
  ASSERT_TRUE(bus_->Connect());

  SendAndWait(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(9), 2, 1));
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(9), 3, 2));
  ASSERT_TRUE(sub_calls.WaitFor(2));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(sub_relids, (std::vector<uint32_t>{2, 3}));
  }
  EXPECT_EQ(nic.probed(), std::vector<uint32_t>{1});  // no probe for sub-channels
  auto dev = bus_->FindDevice(InstanceGuid(9));
  ASSERT_NE(dev, nullptr);
  ASSERT_EQ(dev->subchannels().size(), 2u);
  EXPECT_EQ(dev->subchannels()[1]->sub_channel_index(), 2);
  EXPECT_FALSE(dev->subchannels()[0]->is_primary());
  EXPECT_EQ(bus_->stats().subchannel_offers.Get(), 2u);
  EXPECT_EQ(bus_->ListDevices()[0].channels.size(), 3u);
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(BusTest, RescindRemovesDeviceClosesChannelAndReleasesRelid) {
  Init(2);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(wire::kHeartbeatClassGuid, InstanceGuid(1), 5));
  RecordingDriver& utils = NewDriver("hv_utils", {wire::kHeartbeatClassGuid});
  utils.probe_fn = [](VmbusDevice& dev) {
    return dev.channel().Open(SmallRings([](Channel&) {}));
  };
  utils.remove_fn = [](VmbusDevice& dev) { (void)dev.channel().Close(); };
  ASSERT_TRUE(bus_->RegisterDriver(utils));
  const uint64_t free_before = FreePages();
  ASSERT_TRUE(bus_->Connect());
  ASSERT_TRUE(host_->IsOpen(5));
  const size_t before = host_->received().size();

  wire::RescindChannelOffer rescind;
  rescind.child_relid = 5;
  SendAndWait(rescind);
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kRelidReleased, 1));

  EXPECT_EQ(utils.removed(), std::vector<uint32_t>{5});
  const auto types = host_->received_types();
  std::vector<ChannelMessageType> tail(types.begin() + static_cast<long>(before), types.end());
  EXPECT_EQ(tail, (std::vector<ChannelMessageType>{ChannelMessageType::kCloseChannel,
                                                   ChannelMessageType::kGpadlTeardown,
                                                   ChannelMessageType::kRelidReleased}));
  EXPECT_EQ(bus_->FindChannel(5), nullptr);
  EXPECT_EQ(bus_->FindDevice(InstanceGuid(1)), nullptr);
  EXPECT_EQ(bus_->stats().rescinds.Get(), 1u);
  EXPECT_EQ(bus_->stats().relids_released.Get(), 1u);
  // Ring pages are back (the interrupt and monitor pages stay allocated while connected).
  EXPECT_EQ(FreePages(), free_before - 3);

  // The relid may be offered again after its release.
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(wire::kHeartbeatClassGuid, InstanceGuid(1), 5));
  ASSERT_TRUE(utils.probes.WaitFor(2));
  EXPECT_NE(bus_->FindChannel(5), nullptr);
}

TEST_F(BusTest, RescindOfSubchannelCallsRescindCallbackAndReleasesOnlyIt) {
  Init(2);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(9), 1));
  Latch opened;
  Latch rescinded;
  RecordingDriver& nic = NewDriver("hv_netvsc", {wire::kNetworkClassGuid});
  nic.probe_fn = [&](VmbusDevice& dev) {
    dev.SetSubchannelCallback([&](Channel& ch) {
      if (ch.Open(SmallRings([](Channel&) {}))) opened.Add();
    });
    dev.SetSubchannelRescindCallback([&](Channel& ch) {
      (void)ch.Close();
      rescinded.Add();
    });
    return Ok();
  };
  ASSERT_TRUE(bus_->RegisterDriver(nic));
  ASSERT_TRUE(bus_->Connect());
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(wire::kNetworkClassGuid, InstanceGuid(9), 2, 1));
  ASSERT_TRUE(opened.WaitFor(1));
  ASSERT_TRUE(host_->IsOpen(2));

  wire::RescindChannelOffer rescind;
  rescind.child_relid = 2;
  SendAndWait(rescind);
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kRelidReleased, 1));
  EXPECT_EQ(rescinded.count(), 1u);
  EXPECT_FALSE(host_->IsOpen(2));
  EXPECT_EQ(nic.removed().size(), 0u);  // the device stays
  auto dev = bus_->FindDevice(InstanceGuid(9));
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->subchannels().empty());
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(BusTest, RescindWhileWaitingForOpenResultWakesTheOpenWithAnError) {
  fakes::FakeVmbusHost::Options opts;
  opts.answer_open = false;  // the host never answers OPENCHANNEL (M12)
  Init(2, opts);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 4));
  std::optional<Error> open_error;
  RecordingDriver& d = NewDriver("blocked", {kTestClassA});
  d.probe_fn = [&](VmbusDevice& dev) {
    Status st = dev.channel().Open(SmallRings([](Channel&) {}));
    if (!st) open_error = st.error();
    return st;
  };
  ASSERT_TRUE(bus_->RegisterDriver(d));
  const uint64_t free_before = FreePages();
  // Connect would wait for the blocked probe; run it and let it time out on that wait only.
  std::thread connector([&] { (void)bus_->Connect(); });
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kOpenChannel, 1));

  ASSERT_TRUE(host_->SendRescind(4));
  ASSERT_TRUE(d.probes.WaitFor(1));
  connector.join();
  ASSERT_TRUE(open_error.has_value());
  EXPECT_EQ(open_error->code, ErrorCode::kUnavailable);
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kRelidReleased, 1));
  ASSERT_TRUE(bus_->Flush());
  // The ring GPADL was torn down and the pages freed; no CLOSECHANNEL for a channel never opened.
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlTeardown), 1u);
  EXPECT_EQ(host_->Count(ChannelMessageType::kCloseChannel), 0u);
  EXPECT_EQ(FreePages(), free_before - 3);
  EXPECT_EQ(bus_->stats().probe_failures.Get(), 1u);
  EXPECT_TRUE(d.removed().empty());  // never bound
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(BusTest, RescindOfUnknownRelidAndSecondRescindAreIgnored) {
  Init(1);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 6));
  ASSERT_TRUE(bus_->Connect());
  wire::RescindChannelOffer r;
  r.child_relid = 77;
  SendAndWait(r);
  EXPECT_EQ(bus_->stats().rescind_unknown.Get(), 1u);  // M10
  r.child_relid = 6;
  // Two rescinds back to back: the second finds the channel already rescinded or gone.
  ASSERT_TRUE(host_->Send(r));
  SendAndWait(r);
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kRelidReleased, 1));
  ASSERT_TRUE(bus_->Flush());
  EXPECT_EQ(bus_->stats().rescinds.Get(), 1u);
  EXPECT_EQ(bus_->stats().rescind_duplicate.Get() + bus_->stats().rescind_unknown.Get(), 2u);
  EXPECT_EQ(host_->Count(ChannelMessageType::kRelidReleased), 1u);
}

TEST_F(BusTest, RescindRightAfterOfferIsProcessedAfterTheOffer) {
  Init(1);
  ASSERT_TRUE(bus_->Connect());
  // Back to back: the rescind must wait for the offer still queued on the offer worker (M11).
  for (uint32_t relid = 10; relid < 20; ++relid) {
    ASSERT_TRUE(host_->SendOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(relid),
                                                                 relid)));
    ASSERT_TRUE(host_->SendRescind(relid));
  }
  ASSERT_TRUE(host_->WaitForCount(ChannelMessageType::kRelidReleased, 10));
  ASSERT_TRUE(bus_->Flush());
  EXPECT_EQ(bus_->stats().rescind_unknown.Get(), 0u);
  EXPECT_EQ(bus_->stats().rescinds.Get(), 10u);
  EXPECT_TRUE(bus_->ListDevices().empty());
}

TEST_F(BusTest, DisconnectRemovesDriversAndSendsUnload) {
  Init(2);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  RecordingDriver& d = NewDriver("drv", {kTestClassA});
  d.probe_fn = [](VmbusDevice& dev) { return dev.channel().Open(SmallRings([](Channel&) {})); };
  ASSERT_TRUE(bus_->RegisterDriver(d));
  ASSERT_TRUE(bus_->Connect());
  ASSERT_TRUE(bus_->Disconnect());
  EXPECT_FALSE(bus_->connected());
  EXPECT_EQ(d.removed(), std::vector<uint32_t>{1});
  const auto types = host_->received_types();
  ASSERT_GE(types.size(), 3u);
  // The driver left its channel open: the bus closed it before UNLOAD.
  EXPECT_EQ(types[types.size() - 3], ChannelMessageType::kCloseChannel);
  EXPECT_EQ(types[types.size() - 2], ChannelMessageType::kGpadlTeardown);
  EXPECT_EQ(types.back(), ChannelMessageType::kUnload);
  EXPECT_EQ(host_->Count(ChannelMessageType::kRelidReleased), 0u);
  // Idempotent.
  EXPECT_TRUE(bus_->Disconnect());
}

TEST_F(BusTest, DisconnectTimesOutWithoutUnloadResponse) {
  fakes::FakeVmbusHost::Options opts;
  opts.answer_unload = false;
  BusOptions bopts;
  bopts.unload_timeout = std::chrono::milliseconds(50);
  Init(1, opts, bopts);
  ASSERT_TRUE(bus_->Connect());
  auto st = bus_->Disconnect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kTimeout);
  EXPECT_FALSE(bus_->connected());
}

TEST_F(BusTest, ReconnectAfterDisconnect) {
  Init(1);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  RecordingDriver& d = NewDriver("drv", {kTestClassA});
  ASSERT_TRUE(bus_->RegisterDriver(d));
  ASSERT_TRUE(bus_->Connect());
  ASSERT_TRUE(bus_->Disconnect());
  ASSERT_TRUE(bus_->Connect());
  EXPECT_EQ(d.probed(), (std::vector<uint32_t>{1, 1}));
}

TEST_F(BusTest, HostHangUpRemovesDevicesAndFailsOperations) {
  Init(1);
  host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  RecordingDriver& d = NewDriver("drv", {kTestClassA});
  d.probe_fn = [](VmbusDevice& dev) { return dev.channel().Open(SmallRings([](Channel&) {})); };
  d.remove_fn = [](VmbusDevice& dev) { (void)dev.channel().Close(); };
  ASSERT_TRUE(bus_->RegisterDriver(d));
  ASSERT_TRUE(bus_->Connect());
  lp_->Disconnect();
  ASSERT_TRUE(d.removes.WaitFor(1));
  ASSERT_TRUE(bus_->Flush());
  EXPECT_FALSE(bus_->connected());
  const auto ev = events();
  EXPECT_NE(std::find(ev.begin(), ev.end(), "host gone"), ev.end());
  auto st = bus_->Connect();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
}

TEST(BusEventTest, ToStringNamesClassGuidRelidAndDriver) {
  BusEvent e;
  e.kind = BusEventKind::kProbe;
  e.relid = 1;
  e.class_id = wire::kNetworkClassGuid;
  e.driver = "hv_netvsc";
  EXPECT_EQ(e.ToString(),
            "probe: Synthetic network adapter {f8615163-df3e-46c5-913f-f2d2f965ed0e} relid 1 -> "
            "driver hv_netvsc");
  e.kind = BusEventKind::kOffer;
  e.sub_channel_index = 2;
  EXPECT_EQ(e.ToString(),
            "offer: Synthetic network adapter {f8615163-df3e-46c5-913f-f2d2f965ed0e} relid 1 "
            "(sub-channel 2)");
}

}  // namespace
}  // namespace uvmbus::guest::testing
