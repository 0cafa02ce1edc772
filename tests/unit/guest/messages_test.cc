// Hostile host messages (spec 9.2): each malformed or unexpected message is counted, dropped,
// its slot freed (the next message still arrives) and EOM written when msg_pending was set.
#include <vector>

#include "guest_test_util.h"

namespace uvmbus::guest::testing {
namespace {

using wire::ChannelMessageType;

class MessagesTest : public BusTest {
 protected:
  void SetUp() override {
    Init(1);
    ASSERT_TRUE(bus_->Connect());
    // Connect returns once ALLOFFERS_DELIVERED was seen, possibly before its slot was freed (and
    // EOMed): settle the slot so the counters below only see this test's messages.
    SyncVcpu(0);
  }

  // A valid offer after a bad message proves the slot was freed and the bus still works.
  void ExpectBusStillWorks(uint32_t relid) {
    const uint64_t offers = bus_->stats().offers.Get();
    SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(relid), relid));
    EXPECT_EQ(bus_->stats().offers.Get(), offers + 1);
    EXPECT_NE(bus_->FindChannel(relid), nullptr);
  }

  static std::vector<uint8_t> Header(uint32_t msgtype, size_t size) {
    std::vector<uint8_t> bytes(size, 0);
    std::memcpy(bytes.data(), &msgtype, sizeof(msgtype));
    return bytes;
  }
};

TEST_F(MessagesTest, M1EmptySlotInterruptDoesNothing) {
  const uint64_t received = bus_->stats().messages_received.Get();
  const uint64_t eoms = lp_->guest().stats().eoms.Get();
  host_->RaiseInterrupt(0);
  SendAndWait(wire::Encode(wire::AllOffersDelivered{}).span());
  EXPECT_EQ(bus_->stats().messages_received.Get(), received + 1);
  EXPECT_EQ(lp_->guest().stats().eoms.Get(), eoms);
}

TEST_F(MessagesTest, M2MessageTypeOutOfRangeIsDropped) {
  SendAndWait(Header(25, 8));  // MODIFY_CONNECTION: beyond Linux's table
  SendAndWait(Header(30, 8));
  SendAndWait(Header(0, 8));
  SendAndWait(Header(0xFFFFFFFF, 16));
  EXPECT_EQ(bus_->stats().msg_bad_type.Get(), 4u);
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, M3PayloadSizeOver240IsDropped) {
  const auto offer = wire::Encode(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  InjectSlotAndWait(0, wire::kHvMsgVmbus, 241, 0, offer.span());
  InjectSlotAndWait(0, wire::kHvMsgVmbus, 255, 0, offer.span());
  EXPECT_EQ(bus_->stats().msg_bad_payload_size.Get(), 2u);
  EXPECT_EQ(bus_->stats().offers.Get(), 0u);
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, M4GuestToHostTypeFromHostIsDropped) {
  wire::OpenChannel open;
  open.child_relid = 1;
  SendAndWait(wire::Encode(open).span());
  SendAndWait(wire::Encode(wire::RequestOffers{}).span());
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kInitiateContact), 40));
  EXPECT_EQ(bus_->stats().msg_wrong_direction.Get(), 3u);
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, M5TruncatedMessagesAreDropped) {
  auto offer = wire::Encode(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  SendAndWait(std::span<const uint8_t>(offer.bytes.data(), 100));  // OFFER < 196
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kVersionResponse), 8));  // < 16
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kOpenChannelResult), 16));  // < 20
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kRescindChannelOffer), 8));  // < 12
  // Shorter than the 8-byte header (only possible through a raw slot: hosts round to 8).
  const auto rescind = Header(2, 12);
  InjectSlotAndWait(0, wire::kHvMsgVmbus, 4, 0, rescind);
  EXPECT_EQ(bus_->stats().msg_too_short.Get(), 5u);
  EXPECT_EQ(bus_->stats().offers.Get(), 0u);
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, M6OfferWithBadOrUsedRelidIsRejected) {
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 2048));
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(2), 0));
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(3), 0xFFFFFFFF));
  EXPECT_EQ(bus_->stats().offer_bad_relid.Get(), 3u);
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(4), 7));
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(5), 7));  // in use
  EXPECT_EQ(bus_->stats().offer_relid_in_use.Get(), 1u);
  EXPECT_EQ(bus_->FindChannel(7)->instance_id(), InstanceGuid(4));
  EXPECT_EQ(bus_->ListDevices().size(), 1u);
}

TEST_F(MessagesTest, M7DuplicatePrimaryOfferIsDropped) {
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 3));
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 4));  // index 0 again
  EXPECT_EQ(bus_->stats().offer_duplicate.Get(), 1u);
  EXPECT_EQ(bus_->FindChannel(4), nullptr);
  EXPECT_EQ(bus_->ListDevices().size(), 1u);
}

TEST_F(MessagesTest, M9ConfidentialOfferFlagsWithoutFeatureAreDropped) {
  for (uint16_t flag : {wire::kOfferFlagConfidentialRingBuffer,
                        wire::kOfferFlagConfidentialExternalMemory,
                        wire::kOfferFlagRequirePinnedExternalMemory}) {
    auto offer = fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(flag), 20u + flag);
    offer.chn_flags = flag;
    SendAndWait(offer);
  }
  EXPECT_EQ(bus_->stats().offer_confidential.Get(), 3u);
  EXPECT_TRUE(bus_->ListDevices().empty());
}

TEST_F(MessagesTest, M13UnmatchedResponsesAreIgnored) {
  wire::OpenChannelResult open;
  open.child_relid = 9;
  open.openid = 9;
  SendAndWait(open);
  wire::GpadlCreated created;
  created.child_relid = 9;
  created.gpadl = 0xE1E10;
  SendAndWait(created);
  wire::GpadlTorndown torndown;
  torndown.gpadl = 0x1234;
  SendAndWait(torndown);
  SendAndWait(wire::ModifyChannelResponse{});
  wire::VersionResponse version;
  version.version_supported = 1;
  SendAndWait(version);
  SendAndWait(wire::UnloadResponse{});
  EXPECT_EQ(bus_->stats().responses_unmatched.Get(), 6u);
  EXPECT_TRUE(bus_->connected());
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, M19MessageWithPendingFlagIsFollowedByEom) {
  const uint64_t eoms = lp_->guest().stats().eoms.Get();
  const uint64_t bus_eoms = bus_->stats().eoms.Get();
  const auto msg = wire::Encode(wire::AllOffersDelivered{});
  InjectSlotAndWait(0, wire::kHvMsgVmbus, msg.size, wire::kHvMessageFlagPending, msg.span());
  EXPECT_EQ(lp_->guest().stats().eoms.Get(), eoms + 1);
  EXPECT_EQ(bus_->stats().eoms.Get(), bus_eoms + 1);
  // Without the flag: no EOM.
  InjectSlotAndWait(0, wire::kHvMsgVmbus, msg.size, 0, msg.span());
  EXPECT_EQ(lp_->guest().stats().eoms.Get(), eoms + 1);
  // Dropped messages are EOMed too (M2 "drop, then EOM").
  const auto bad = Header(99, 8);
  InjectSlotAndWait(0, wire::kHvMsgVmbus, 8, wire::kHvMessageFlagPending, bad);
  EXPECT_EQ(lp_->guest().stats().eoms.Get(), eoms + 2);
}

TEST_F(MessagesTest, NonVmbusSynicMessagesAreDroppedAndFreed) {
  const auto msg = wire::Encode(wire::AllOffersDelivered{});
  InjectSlotAndWait(0, static_cast<uint32_t>(wire::HvMessageType::kTimerExpired), 24, 0,
                    msg.span());
  InjectSlotAndWait(0, 0x7777, 8, 0, msg.span());
  EXPECT_EQ(bus_->stats().msg_not_vmbus.Get(), 2u);
  ExpectBusStillWorks(10);
}

TEST_F(MessagesTest, HostToGuestTypesWithoutHandlerAreIgnored) {
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kCloseReservedResponse), 16));
  SendAndWait(Header(static_cast<uint32_t>(ChannelMessageType::kTlConnectResult), 48));
  EXPECT_EQ(bus_->stats().msg_unhandled.Get(), 2u);
  ExpectBusStillWorks(10);
}

TEST_F(BusTest, MessagesBeforeVersionNegotiationAreUnexpected) {
  Init(1);
  SendAndWait(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1));
  EXPECT_EQ(bus_->stats().msg_unexpected.Get(), 1u);
  EXPECT_EQ(bus_->stats().offers.Get(), 0u);
}

TEST_F(BusTest, MessagesOnAnotherVcpuSlotAreHandledToo) {
  Init(2);
  ASSERT_TRUE(bus_->Connect());
  const uint64_t before = bus_->stats().messages_received.Get();
  ASSERT_TRUE(host_->SendRaw(
      wire::Encode(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(1), 1)).span(), 1));
  ASSERT_TRUE(bus_->WaitForMessages(before + 1, kWait));
  ASSERT_TRUE(bus_->Flush());
  EXPECT_EQ(bus_->vcpu_stats(1).messages.Get(), 1u);
  EXPECT_NE(bus_->FindChannel(1), nullptr);
}

}  // namespace
}  // namespace uvmbus::guest::testing
