// Tests of host/vmbus_server.h driven by a scripted fake guest over a LocalPartition: no threads,
// no sleeps. Spec sections are cited per test (vmbus-protocol.md 2.x, 9.3 Hn, 10.1 Vn).
#include "host/vmbus_server.h"

#include <gtest/gtest.h>

#include <cstring>

#include "host/gpadl_view.h"
#include "host_test_util.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/gpa_range.h"
#include "wire/versions.h"

namespace uvmbus::host::test {
namespace {

using wire::HvStatus;

constexpr uint32_t kV53 = wire::kVersionWin10V5_3;

// Connects at `version`, requests offers, returns them.
std::vector<wire::OfferChannel> Connect(HostEnv& env, uint32_t version = kV53) {
  auto offers = env.guest->ConnectAndRequestOffers(version);
  EXPECT_TRUE(offers.has_value());
  return offers.value_or(std::vector<wire::OfferChannel>{});
}

std::vector<uint64_t> Pfns(const partition::PageRun& run) {
  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < run.count(); ++i) pfns.push_back(run.gpn() + i);
  return pfns;
}

// A GPADL_HEADER carrying `words` of range data and declaring `range_buflen`/`rangecount`.
wire::GpadlHeaderMessage RawHeader(uint32_t relid, uint32_t handle, uint16_t rangecount,
                                   uint16_t range_buflen, std::vector<uint64_t> words) {
  wire::GpadlHeaderMessage h;
  h.fixed.child_relid = relid;
  h.fixed.gpadl = handle;
  h.fixed.rangecount = rangecount;
  h.fixed.range_buflen = range_buflen;
  for (size_t i = 0; i < words.size() && i < h.range_words.size(); ++i) h.range_words[i] = words[i];
  h.range_word_count = static_cast<uint8_t>(std::min(words.size(), h.range_words.size()));
  return h;
}

uint64_t RangeWord(uint32_t byte_count, uint32_t byte_offset) {
  return uint64_t{byte_count} | uint64_t{byte_offset} << 32;
}

// ------------------------------------------------------------------------------------------
// Version negotiation (spec 2.5, 9.3 H1, H3-H6)
// ------------------------------------------------------------------------------------------

TEST(VmbusServerNegotiation, AcceptsEverySupportedVersionExactly) {
  for (uint32_t version : kSupportedVersions) {
    auto env = HostEnv::Create();
    auto r = env->guest->InitiateContact(version);
    ASSERT_TRUE(r.has_value()) << wire::VersionString(version);
    EXPECT_EQ(r->version_supported, 1) << wire::VersionString(version);
    EXPECT_EQ(r->connection_state, wire::kConnectionStateSuccessful);
    // >= 5.0: the port for later messages; below: the version itself (V1).
    EXPECT_EQ(r->msg_conn_id, version >= wire::kVersionWin10V5 ? 1u : version);
    EXPECT_EQ(env->server->version(), version);
  }
}

TEST(VmbusServerNegotiation, RefusesUnknownVersionsWithVersionSupportedZero) {
  auto env = HostEnv::Create();
  for (uint32_t version : {wire::kVersionCopper, wire::kVersionWs2008, wire::kVersionWin7,
                           wire::MakeVersion(5, 4), 0x12345678u}) {
    auto r = env->guest->InitiateContact(version);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->version_supported, 0) << wire::VersionString(version);
    EXPECT_FALSE(env->server->connected());
  }
  EXPECT_EQ(env->server->rejections(Rejection::kVersionRefused), 5u);
  // The guest falls back and connects.
  auto r = env->guest->InitiateContact(kV53);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_supported, 1);
}

TEST(VmbusServerNegotiation, MaxVersionOptionCapsAcceptedVersions) {
  ServerOptions options;
  options.max_version = wire::kVersionWin10;
  auto env = HostEnv::Create(2, options);
  EXPECT_EQ(env->guest->InitiateContact(kV53)->version_supported, 0);
  EXPECT_EQ(env->guest->InitiateContact(wire::kVersionWin10)->version_supported, 1);
}

TEST(VmbusServerNegotiation, Version5RequiresConnectionId4) {
  auto env = HostEnv::Create();
  auto r = env->guest->InitiateContact(wire::kVersionWin10V5, 0, wire::kVmbusMessageConnectionId);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_supported, 0);
  // And an older version is refused on the multi-client port.
  r = env->guest->InitiateContact(wire::kVersionWin10, 0, wire::kVmbusMessageConnectionId4);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_supported, 0);
  EXPECT_EQ(env->server->rejections(Rejection::kVersionRefused), 2u);
  r = env->guest->InitiateContact(wire::kVersionWin10V5, 0, wire::kVmbusMessageConnectionId4);
  EXPECT_EQ(r->version_supported, 1);
}

TEST(VmbusServerNegotiation, MessagesGoToTargetVcpuFromVersion30) {
  {
    auto env = HostEnv::Create(2);
    auto r = env->guest->InitiateContact(wire::kVersionWin8_1, /*target_vcpu=*/1, {}, 1);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->version_supported, 1);
    EXPECT_TRUE(env->guest->SlotEmpty(0));
    env->guest->Post(wire::RequestOffers{});
    EXPECT_TRUE(env->guest->ReceiveAs<wire::AllOffersDelivered>(1).has_value());
  }
  {
    // 2.4 ignores target_vcpu: everything goes to VP 0.
    auto env = HostEnv::Create(2);
    auto r = env->guest->InitiateContact(wire::kVersionWin8, /*target_vcpu=*/1, {}, 0);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->version_supported, 1);
    EXPECT_TRUE(env->guest->SlotEmpty(1));
  }
}

TEST(VmbusServerNegotiation, OneMonitorPageZeroIsInvalid) {
  auto env = HostEnv::Create();
  wire::InitiateContact msg;
  msg.vmbus_version_requested = kV53;
  msg.msg_sint = 2;
  msg.monitor_page1 = 0x10000;
  msg.monitor_page2 = 0;
  ASSERT_EQ(env->guest->Post(msg, 4), HvStatus::kSuccess);
  auto r = env->guest->ReceiveAs<wire::VersionResponse>();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_supported, 0);
  EXPECT_EQ(r->connection_state, wire::kConnectionStateFailedUnknownFailure);
  EXPECT_EQ(env->server->rejections(Rejection::kBadInitiateContact), 1u);
}

TEST(VmbusServerNegotiation, UnalignedInterruptPageIsInvalid) {
  auto env = HostEnv::Create();
  wire::InitiateContact msg;
  msg.vmbus_version_requested = wire::kVersionWin10;
  msg.set_interrupt_page(0x10010);
  ASSERT_EQ(env->guest->Post(msg, 1), HvStatus::kSuccess);
  EXPECT_EQ(env->guest->ReceiveAs<wire::VersionResponse>()->version_supported, 0);
  EXPECT_EQ(env->server->rejections(Rejection::kBadInitiateContact), 1u);
}

TEST(VmbusServerNegotiation, TargetVcpuOutOfRangeIsInvalid) {
  auto env = HostEnv::Create(2);
  auto r = env->guest->InitiateContact(kV53, /*target_vcpu=*/7);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_supported, 0);
  EXPECT_EQ(env->server->rejections(Rejection::kBadInitiateContact), 1u);
}

TEST(VmbusServerNegotiation, MessagesBeforeInitiateContactAreRejected) {
  auto env = HostEnv::Create();
  EXPECT_EQ(env->guest->Post(wire::RequestOffers{}), HvStatus::kSuccess);
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(env->server->rejections(Rejection::kNotConnected), 1u);
}

TEST(VmbusServerNegotiation, SecondInitiateContactWhileConnectedIsRejected) {
  auto env = HostEnv::Create();
  ASSERT_EQ(env->guest->InitiateContact(kV53)->version_supported, 1);
  EXPECT_FALSE(env->guest->InitiateContact(kV53).has_value());  // no answer
  EXPECT_EQ(env->server->rejections(Rejection::kAlreadyConnected), 1u);
}

TEST(VmbusServerMessages, UnknownPortAnswersInvalidConnectionId) {
  auto env = HostEnv::Create();
  EXPECT_EQ(env->guest->Post(wire::RequestOffers{}, 7), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(env->server->rejections(Rejection::kUnknownPort), 1u);
}

TEST(VmbusServerMessages, MalformedAndWrongDirectionMessagesAreCountedAndDropped) {
  auto env = HostEnv::Create();
  const uint8_t short_msg[5] = {3, 0, 0, 0, 0};
  EXPECT_EQ(env->guest->PostRaw(short_msg), HvStatus::kSuccess);
  // A host->guest type (OFFERCHANNEL) sent by the guest (M4 seen from the host).
  EXPECT_EQ(env->guest->Post(wire::OfferChannel{}), HvStatus::kSuccess);
  // A SynIC message type other than 1.
  EXPECT_EQ(env->guest->PostRaw(wire::Encode(wire::RequestOffers{}).span(), 1, 2),
            HvStatus::kSuccess);
  EXPECT_EQ(env->server->rejections(Rejection::kMalformed), 2u);
  EXPECT_EQ(env->server->rejections(Rejection::kBadMessageType), 1u);
  EXPECT_TRUE(env->guest->SlotEmpty());
}

// ------------------------------------------------------------------------------------------
// Offers (spec 2.3, 2.5, 10.1 V5-V7, V9)
// ------------------------------------------------------------------------------------------

TEST(VmbusServerOffers, OffersEveryDeviceThenAllOffersDelivered) {
  auto env = HostEnv::Create();
  env->AddFake(1);
  env->AddFake(2, 0, wire::kHeartbeatClassGuid);
  auto offers = Connect(*env);
  ASSERT_EQ(offers.size(), 2u);
  for (uint32_t i = 0; i < 2; ++i) {
    const wire::OfferChannel& o = offers[i];
    EXPECT_EQ(o.child_relid, i + 1);                 // dense from 1
    EXPECT_EQ(o.connection_id, (i + 1) | 0x2000u);   // V6
    EXPECT_EQ(o.monitorid, 0xFF);                    // V7
    EXPECT_EQ(o.monitor_allocated, 0);
    EXPECT_EQ(o.is_dedicated_interrupt, 1);
    EXPECT_EQ(o.sub_channel_index, 0);
    EXPECT_EQ(o.chn_flags, wire::kOfferFlagEnumerateDeviceInterface);  // 0x2 cleared (V5)
    EXPECT_EQ(o.user_def[0], 0xAB);
    EXPECT_EQ(o.user_def[119], 0xCD);
    EXPECT_EQ(o.if_instance, TestInstance(static_cast<uint8_t>(i + 1)));
  }
  EXPECT_EQ(offers[0].if_type, wire::kNetworkClassGuid);
  EXPECT_EQ(offers[1].if_type, wire::kHeartbeatClassGuid);
}

TEST(VmbusServerOffers, NoDevicesStillSendsAllOffersDelivered) {
  auto env = HostEnv::Create();
  EXPECT_TRUE(Connect(*env).empty());
}

TEST(VmbusServerOffers, SecondRequestOffersIsAnError) {
  auto env = HostEnv::Create();
  env->AddFake();
  Connect(*env);
  EXPECT_EQ(env->guest->Post(wire::RequestOffers{}), HvStatus::kSuccess);
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(env->server->rejections(Rejection::kDuplicateRequestOffers), 1u);
}

TEST(VmbusServerOffers, HotAddedDeviceIsOfferedAtOnce) {
  auto env = HostEnv::Create();
  Connect(*env);
  env->AddFake(3);
  auto offer = env->guest->ReceiveAs<wire::OfferChannel>();
  ASSERT_TRUE(offer.has_value());
  EXPECT_EQ(offer->child_relid, 1u);
}

// ------------------------------------------------------------------------------------------
// GPADLs (spec 2.9, 9.3 H8-H16)
// ------------------------------------------------------------------------------------------

class VmbusServerGpadl : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = HostEnv::Create();
    dev_ = env_->AddFake();
    Connect(*env_);
  }
  std::unique_ptr<HostEnv> env_;
  std::shared_ptr<FakeDeviceState> dev_;
};

TEST_F(VmbusServerGpadl, HeaderOnlyGpadlIsCreated) {
  auto run = env_->partition->guest().allocator().AllocateRun(4);
  ASSERT_TRUE(run.has_value());
  auto created = env_->guest->CreateGpadl(1, 0xE1E10, Pfns(*run));
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->child_relid, 1u);
  EXPECT_EQ(created->gpadl, 0xE1E10u);
  EXPECT_EQ(created->creation_status, 0u);
  EXPECT_EQ(env_->server->gpadl_count(), 1u);
}

TEST_F(VmbusServerGpadl, HeaderPlusBodiesGpadlIsCreated) {
  auto run = env_->partition->guest().allocator().AllocateRun(100);  // 1 header + 3 bodies
  ASSERT_TRUE(run.has_value());
  auto created = env_->guest->CreateGpadl(1, 0xE1E11, Pfns(*run));
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->creation_status, 0u);
}

TEST_F(VmbusServerGpadl, UnknownChannelFailsH8) {
  auto run = env_->partition->guest().allocator().AllocateRun(1);
  auto created = env_->guest->CreateGpadl(9, 0x100, Pfns(*run));
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->creation_status, wire::kStatusUnsuccessful);
  EXPECT_EQ(created->child_relid, 9u);
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlBadChannel), 1u);
}

TEST_F(VmbusServerGpadl, DuplicateHandleFailsH9) {
  auto run = env_->partition->guest().allocator().AllocateRun(1);
  EXPECT_EQ(env_->guest->CreateGpadl(1, 0x100, Pfns(*run))->creation_status, 0u);
  EXPECT_EQ(env_->guest->CreateGpadl(1, 0x100, Pfns(*run))->creation_status,
            wire::kStatusUnsuccessful);
  // An in-progress handle used again: header of 40 pages (needs bodies), then another header.
  auto big = env_->partition->guest().allocator().AllocateRun(40);
  auto messages = wire::BuildGpadlMessages(1, 0x200, Pfns(*big));
  ASSERT_TRUE(messages.has_value());
  env_->guest->Post((*messages)[0]);
  EXPECT_TRUE(env_->guest->SlotEmpty());
  env_->guest->Post((*messages)[0]);
  EXPECT_EQ(env_->guest->ReceiveAs<wire::GpadlCreated>()->creation_status,
            wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlDuplicateHandle), 2u);
}

TEST_F(VmbusServerGpadl, BodyForUnknownOrCompletedHandleIsDroppedH10) {
  wire::GpadlBodyMessage body;
  body.fixed.gpadl = 0x777;
  body.range_words[0] = 5;
  body.range_word_count = 1;
  env_->guest->Post(wire::Encode(body));
  auto run = env_->partition->guest().allocator().AllocateRun(1);
  EXPECT_EQ(env_->guest->CreateGpadl(1, 0x778, Pfns(*run))->creation_status, 0u);
  body.fixed.gpadl = 0x778;
  env_->guest->Post(wire::Encode(body));
  EXPECT_TRUE(env_->guest->SlotEmpty());
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlBodyUnknown), 2u);
}

TEST_F(VmbusServerGpadl, InvalidRangesFailH11ToH14) {
  const uint64_t gpn = env_->partition->guest().allocator().AllocateRun(4)->gpn();
  struct Case {
    const char* name;
    std::vector<uint64_t> words;
  } cases[] = {
      {"H11 byte_count 0", {RangeWord(0, 0), gpn}},
      {"H12 byte_offset > 0xfff", {RangeWord(4096, 0x1000), gpn, gpn + 1}},
      {"H13 fewer pfns than needed", {RangeWord(3 * 4096, 0)}},
      {"H14 offset + count overflows", {RangeWord(0xFFFFF000u, 1), gpn}},
  };
  uint32_t handle = 0x300;
  for (const Case& c : cases) {
    auto h = RawHeader(1, handle, 1, static_cast<uint16_t>(c.words.size() * 8), c.words);
    env_->guest->Post(wire::Encode(h));
    auto created = env_->guest->ReceiveAs<wire::GpadlCreated>();
    ASSERT_TRUE(created.has_value()) << c.name;
    EXPECT_EQ(created->gpadl, handle) << c.name;
    EXPECT_EQ(created->creation_status, wire::kStatusUnsuccessful) << c.name;
    ++handle;
  }
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlInvalidRanges), 4u);
  EXPECT_EQ(env_->server->gpadl_count(), 0u);
}

TEST_F(VmbusServerGpadl, RangeDataBeyondRangeBuflenIsIgnoredH15) {
  const uint64_t gpn = env_->partition->guest().allocator().AllocateRun(2)->gpn();
  // range_buflen covers one range of one page; the message carries two junk words more.
  auto h = RawHeader(1, 0x400, 1, 16, {RangeWord(4096, 0), gpn, 0xDEAD, 0xBEEF});
  env_->guest->Post(wire::Encode(h));
  EXPECT_EQ(env_->guest->ReceiveAs<wire::GpadlCreated>()->creation_status, 0u);
}

TEST_F(VmbusServerGpadl, PfnOutsideGuestRamFails) {
  const uint64_t beyond = env_->partition->guest().ram().page_count();
  auto h = RawHeader(1, 0x500, 1, 16, {RangeWord(4096, 0), beyond});
  env_->guest->Post(wire::Encode(h));
  EXPECT_EQ(env_->guest->ReceiveAs<wire::GpadlCreated>()->creation_status,
            wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlBadPages), 1u);
}

TEST_F(VmbusServerGpadl, TeardownAnswersTorndownAndReleasesTheView) {
  const int64_t live = GpadlView::LiveCount();
  auto run = env_->partition->guest().allocator().AllocateRun(2);
  EXPECT_EQ(env_->guest->CreateGpadl(1, 0x600, Pfns(*run))->creation_status, 0u);
  EXPECT_EQ(GpadlView::LiveCount(), live + 1);
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0x600;
  env_->guest->Post(td);
  auto torndown = env_->guest->ReceiveAs<wire::GpadlTorndown>();
  ASSERT_TRUE(torndown.has_value());
  EXPECT_EQ(torndown->gpadl, 0x600u);
  EXPECT_EQ(GpadlView::LiveCount(), live);
}

TEST_F(VmbusServerGpadl, InvalidTeardownsAreErrorsH16) {
  env_->AddFake(2);  // hot add: relid 2
  env_->guest->ReceiveAll();
  auto run = env_->partition->guest().allocator().AllocateRun(40);
  const std::vector<uint64_t> pfns = Pfns(*run);
  EXPECT_EQ(env_->guest->CreateGpadl(1, 0x700, std::span(pfns).first(2))->creation_status, 0u);
  auto messages = wire::BuildGpadlMessages(1, 0x701, Pfns(*run));
  env_->guest->Post((*messages)[0]);  // in progress
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0x999;  // unknown
  env_->guest->Post(td);
  td.child_relid = 2;
  td.gpadl = 0x700;  // wrong channel
  env_->guest->Post(td);
  td.child_relid = 1;
  td.gpadl = 0x701;  // in progress
  env_->guest->Post(td);
  EXPECT_TRUE(env_->guest->SlotEmpty());
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlTeardownInvalid), 3u);
  td.gpadl = 0x700;
  env_->guest->Post(td);
  td.gpadl = 0x700;  // already torn down
  env_->guest->Post(td);
  EXPECT_TRUE(env_->guest->ReceiveAs<wire::GpadlTorndown>().has_value());
  EXPECT_EQ(env_->server->rejections(Rejection::kGpadlTeardownInvalid), 4u);
}

// ------------------------------------------------------------------------------------------
// Open / close (spec 2.8, 9.3 H17-H22)
// ------------------------------------------------------------------------------------------

class VmbusServerOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = HostEnv::Create();
    dev_ = env_->AddFake(1, /*max_sub=*/2);
    offers_ = Connect(*env_);
    ASSERT_EQ(offers_.size(), 1u);
  }
  std::optional<testing::FakeVmbusGuest::OpenChannelState> Open(uint32_t relid = 1,
                                                                 uint32_t gpadl = 0xE1E10,
                                                                 uint32_t vp = 0) {
    return env_->guest->OpenChannel(relid, relid | 0x2000, gpadl, vp);
  }
  std::unique_ptr<HostEnv> env_;
  std::shared_ptr<FakeDeviceState> dev_;
  std::vector<wire::OfferChannel> offers_;
};

TEST_F(VmbusServerOpen, OpenSucceedsAndHandsTheDeviceAChannel) {
  auto ch = Open(1, 0xE1E10, /*vp=*/1);
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(ch->result.child_relid, 1u);
  EXPECT_EQ(ch->result.openid, 1u);
  EXPECT_EQ(ch->result.status, 0u);
  ASSERT_EQ(dev_->opens, 1);
  HostChannel* hc = dev_->Channel(0);
  ASSERT_NE(hc, nullptr);
  EXPECT_EQ(hc->relid(), 1u);
  EXPECT_EQ(hc->connection_id(), 0x2001u);
  EXPECT_EQ(hc->target_vp(), 1u);
  EXPECT_EQ(hc->class_id(), wire::kNetworkClassGuid);
  EXPECT_GE(hc->doorbell_fd(), 0);
  EXPECT_EQ(env_->server->open_channel_count(), 1u);
}

TEST_F(VmbusServerOpen, OpenUnknownRelidIsDroppedH17) {
  wire::OpenChannel open;
  open.child_relid = 42;
  env_->guest->Post(open);
  EXPECT_TRUE(env_->guest->SlotEmpty());
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenUnknownChannel), 1u);
}

TEST_F(VmbusServerOpen, OpenWhileOpenIsAnErrorH17) {
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.downstream_ringbuffer_pageoffset = 4;
  env_->guest->Post(open);
  EXPECT_TRUE(env_->guest->SlotEmpty());
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenAlreadyOpen), 1u);
  EXPECT_EQ(dev_->opens, 1);
}

TEST_F(VmbusServerOpen, RingGpadlMustBeOnePageAlignedRangeH19) {
  const uint64_t gpn = env_->partition->guest().allocator().AllocateRun(8)->gpn();
  std::vector<uint64_t> words = {RangeWord(8 * 4096 - 8, 8)};
  for (uint64_t i = 0; i < 8; ++i) words.push_back(gpn + i);
  env_->guest->Post(wire::Encode(RawHeader(1, 0x10, 1, static_cast<uint16_t>(words.size() * 8),
                                           words)));
  ASSERT_EQ(env_->guest->ReceiveAs<wire::GpadlCreated>()->creation_status, 0u);
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 77;
  open.ringbuffer_gpadlhandle = 0x10;
  open.downstream_ringbuffer_pageoffset = 4;
  env_->guest->Post(open);
  auto r = env_->guest->ReceiveAs<wire::OpenChannelResult>();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->openid, 77u);
  EXPECT_EQ(r->status, wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenBadRingGpadl), 1u);
  // An unknown ring GPADL fails the same way.
  open.ringbuffer_gpadlhandle = 0x11;
  env_->guest->Post(open);
  EXPECT_EQ(env_->guest->ReceiveAs<wire::OpenChannelResult>()->status, wire::kStatusUnsuccessful);
  EXPECT_EQ(dev_->opens, 0);
}

TEST_F(VmbusServerOpen, DownstreamOffsetMustLeaveTwoPagesPerRingH20) {
  auto run = env_->partition->guest().allocator().AllocateRun(8);
  ASSERT_TRUE(run.has_value());
  ASSERT_EQ(env_->guest->CreateGpadl(1, 0x20, Pfns(*run))->creation_status, 0u);
  for (uint32_t offset : {0u, 1u, 7u, 8u, 100u}) {
    wire::OpenChannel open;
    open.child_relid = 1;
    open.openid = 1;
    open.ringbuffer_gpadlhandle = 0x20;
    open.downstream_ringbuffer_pageoffset = offset;
    env_->guest->Post(open);
    EXPECT_EQ(env_->guest->ReceiveAs<wire::OpenChannelResult>()->status,
              wire::kStatusUnsuccessful)
        << offset;
  }
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenBadDownstreamOffset), 5u);
  EXPECT_EQ(dev_->opens, 0);
}

TEST_F(VmbusServerOpen, TargetVpAllOnesOpensWithInterruptsDisabledH21) {
  auto ch = Open(1, 0xE1E10, wire::kTargetVpNone);
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(ch->result.status, 0u);
  HostChannel* hc = dev_->Channel(0);
  ASSERT_NE(hc, nullptr);
  const uint64_t before = env_->partition->host().stats().interrupts_raised;
  hc->SignalGuest();
  EXPECT_EQ(env_->partition->host().stats().interrupts_raised, before);
  EXPECT_EQ(hc->Stats().interrupts, 0u);
}

TEST_F(VmbusServerOpen, TargetVpThatDoesNotExistFailsTheOpen) {
  auto ch = Open(1, 0xE1E10, /*vp=*/5);
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(ch->result.status, wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenBadTargetVp), 1u);
}

TEST_F(VmbusServerOpen, DeviceOpenFailureFailsTheOpenAndAllowsRetry) {
  dev_->fail_open = true;
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  EXPECT_EQ(ch->result.status, wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenFailed), 1u);
  EXPECT_EQ(env_->server->open_channel_count(), 0u);
  dev_->fail_open = false;
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.downstream_ringbuffer_pageoffset = 4;
  env_->guest->Post(open);
  EXPECT_EQ(env_->guest->ReceiveAs<wire::OpenChannelResult>()->status, 0u);
  EXPECT_EQ(dev_->opens, 1);
}

TEST_F(VmbusServerOpen, CloseNotOpenIsAnErrorH22) {
  wire::CloseChannel close;
  close.child_relid = 1;
  env_->guest->Post(close);
  close.child_relid = 9;
  env_->guest->Post(close);
  EXPECT_EQ(env_->server->rejections(Rejection::kCloseNotOpen), 2u);
  EXPECT_EQ(dev_->closes, 0);
}

TEST_F(VmbusServerOpen, CloseClosesTheDeviceAndDestroysTheDoorbell) {
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  // While open the guest's signal takes the doorbell (fast path).
  EXPECT_EQ(env_->guest->Signal(0x2001), HvStatus::kSuccess);
  EXPECT_EQ(dev_->Channel(0)->ConsumeDoorbell(), 1u);
  wire::CloseChannel close;
  close.child_relid = 1;
  env_->guest->Post(close);
  EXPECT_TRUE(env_->guest->SlotEmpty());  // no reply exists
  EXPECT_EQ(dev_->closes, 1);
  EXPECT_EQ(env_->server->open_channel_count(), 0u);
  // Doorbell gone: the guest's signal takes the slow path and finds no port.
  EXPECT_EQ(env_->guest->Signal(0x2001), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(env_->server->rejections(Rejection::kSignalWithoutDoorbell), 1u);
  // Teardown of the ring GPADL and reopen with a new one.
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0xE1E10;
  env_->guest->Post(td);
  EXPECT_TRUE(env_->guest->ReceiveAs<wire::GpadlTorndown>().has_value());
  auto again = Open(1, 0xE1E11);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->result.status, 0u);
  EXPECT_EQ(dev_->opens, 2);
}

TEST_F(VmbusServerOpen, OpenWhileClosingIsPerformedAfterTheCloseH18) {
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  dev_->async_close = true;
  wire::CloseChannel close;
  close.child_relid = 1;
  env_->guest->Post(close);
  ASSERT_NE(dev_->pending_close, nullptr);
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 5;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.downstream_ringbuffer_pageoffset = 4;
  env_->guest->Post(open);
  EXPECT_TRUE(env_->guest->SlotEmpty());  // remembered, not answered yet
  EXPECT_EQ(dev_->opens, 1);
  // A second OPENCHANNEL while one is queued is an error.
  env_->guest->Post(open);
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenAlreadyOpen), 1u);
  dev_->async_close = false;
  dev_->control->CompleteClose(*dev_->pending_close);
  auto r = env_->guest->ReceiveAs<wire::OpenChannelResult>();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->openid, 5u);
  EXPECT_EQ(r->status, 0u);
  EXPECT_EQ(dev_->opens, 2);
}

// ------------------------------------------------------------------------------------------
// Data path through the rings (spec 3, 4.3)
// ------------------------------------------------------------------------------------------

void ExchangeOnePacket(HostEnv& env, FakeDeviceState& dev, testing::FakeVmbusGuest::OpenChannelState& ch) {
  // Guest: in-band packet requesting a completion, then SignalEvent (ring was empty).
  const uint8_t request[] = {1, 2, 3, 4, 5, 6, 7};
  auto wc = ch.out->BeginWrite();
  ASSERT_TRUE(ch.out->WriteInband(wc, request, /*trans_id=*/42, true).ok());
  ASSERT_TRUE(ch.out->CommitWrite(wc).needs_signal);
  ASSERT_EQ(env.guest->Signal(ch.connection_id), HvStatus::kSuccess);
  // Device side.
  HostChannel* hc = dev.Channel(0);
  ASSERT_NE(hc, nullptr);
  EXPECT_EQ(hc->ConsumeDoorbell(), 1u);
  auto rc = hc->inbound().BeginRead();
  auto pkt = hc->inbound().Read(rc);
  ASSERT_TRUE(pkt.ok());
  EXPECT_EQ(pkt.packet.type(), wire::PacketType::kDataInband);
  EXPECT_EQ(pkt.packet.desc.trans_id, 42u);
  ASSERT_GE(pkt.packet.payload.size(), sizeof(request));
  EXPECT_EQ(std::memcmp(pkt.packet.payload.data(), request, sizeof(request)), 0);
  hc->inbound().CommitRead(rc);
  const uint8_t reply[] = {9, 9};
  auto oc = hc->outbound().BeginWrite();
  ASSERT_TRUE(hc->outbound().WriteCompletion(oc, reply, 42).ok());
  ASSERT_TRUE(hc->outbound().CommitWrite(oc).needs_signal);
  hc->SignalGuest();
  // Guest: the event bit of the relid is set on VP 0 and the completion is in its ring.
  const auto page = env.partition->guest().EventPage(0);
  const uint64_t word = std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(
                            page.data() + wire::kVmbusEventAreaOffset))
                            .load();
  EXPECT_NE(word & wire::EventFlagWordMask(ch.relid), 0u);
  auto grc = ch.in->BeginRead();
  auto comp = ch.in->Read(grc);
  ASSERT_TRUE(comp.ok());
  EXPECT_EQ(comp.packet.type(), wire::PacketType::kComp);
  EXPECT_EQ(comp.packet.desc.trans_id, 42u);
  EXPECT_EQ(comp.packet.payload[0], 9);
  ch.in->CommitRead(grc);
  const ChannelStats stats = hc->Stats();
  EXPECT_EQ(stats.events, 1u);
  EXPECT_EQ(stats.interrupts, 1u);
  EXPECT_EQ(stats.in_packets, 1u);
  EXPECT_EQ(stats.out_packets, 1u);
  EXPECT_EQ(stats.intr_out_empty, 1u);
}

TEST_F(VmbusServerOpen, PacketRoundTripThroughTheRings) {
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  ASSERT_EQ(ch->result.status, 0u);
  ExchangeOnePacket(*env_, *dev_, *ch);
}

TEST_F(VmbusServerOpen, PacketRoundTripOverNonContiguousRingGpadl) {
  const int64_t aliases = GpadlView::LiveAliasCount();
  auto ch = env_->guest->OpenChannel(1, 0x2001, 0xE1E10, 0, 4, 4, /*scatter=*/true);
  ASSERT_TRUE(ch.has_value());
  ASSERT_EQ(ch->result.status, 0u);
  EXPECT_EQ(GpadlView::LiveAliasCount(), aliases + 1);
  EXPECT_FALSE(dev_->Channel(0)->ring_gpadl().direct());
  ExchangeOnePacket(*env_, *dev_, *ch);
}

TEST_F(VmbusServerOpen, GpadlLookupPinsTheViewAcrossTeardown) {
  auto ch = Open();
  ASSERT_TRUE(ch.has_value());
  auto run = env_->partition->guest().allocator().AllocateRun(3);
  ASSERT_EQ(env_->guest->CreateGpadl(1, 0xCAFE, Pfns(*run))->creation_status, 0u);
  HostChannel* hc = dev_->Channel(0);
  auto span = hc->GpadlSpan(0xCAFE);
  ASSERT_TRUE(span.has_value());
  EXPECT_EQ(span->size(), 3u * 4096);
  // Contiguous: the host's RAM mapping itself.
  EXPECT_EQ(span->data(), env_->partition->host().GuestPages(run->gpn(), 3)->data());
  EXPECT_EQ(hc->GpadlSpan(0xBEEF).error().code, ErrorCode::kNotFound);
  const int64_t live = GpadlView::LiveCount();
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0xCAFE;
  env_->guest->Post(td);
  EXPECT_TRUE(env_->guest->ReceiveAs<wire::GpadlTorndown>().has_value());
  EXPECT_EQ(GpadlView::LiveCount(), live);  // still pinned by the open channel
  wire::CloseChannel close;
  close.child_relid = 1;
  env_->guest->Post(close);
  EXPECT_EQ(GpadlView::LiveCount(), live - 1);
}

// ------------------------------------------------------------------------------------------
// Sub-channels (spec 1.1, 7.8)
// ------------------------------------------------------------------------------------------

TEST_F(VmbusServerOpen, SubchannelsAreOfferedOnlyAfterThePrimaryOpens) {
  ASSERT_NE(dev_->control, nullptr);
  EXPECT_EQ(dev_->control->OfferSubchannels(2).error().code, ErrorCode::kProtocol);
  auto primary = Open();
  ASSERT_TRUE(primary.has_value());
  EXPECT_EQ(dev_->control->OfferSubchannels(3).error().code, ErrorCode::kInvalidArgument);
  auto offered = dev_->control->OfferSubchannels(2);
  ASSERT_TRUE(offered.has_value());
  EXPECT_EQ(*offered, 2u);
  for (uint16_t i = 1; i <= 2; ++i) {
    auto offer = env_->guest->ReceiveAs<wire::OfferChannel>();
    ASSERT_TRUE(offer.has_value());
    EXPECT_EQ(offer->sub_channel_index, i);
    EXPECT_EQ(offer->child_relid, 1u + i);
    EXPECT_EQ(offer->if_type, offers_[0].if_type);
    EXPECT_EQ(offer->if_instance, offers_[0].if_instance);
  }
  // Idempotent: already offered sub-channels are not offered again.
  EXPECT_EQ(*dev_->control->OfferSubchannels(2), 0u);
  // Open sub-channel 1 on VP 1.
  auto sub = env_->guest->OpenChannel(2, 0x2002, 0xE1E20, 1);
  ASSERT_TRUE(sub.has_value());
  EXPECT_EQ(sub->result.status, 0u);
  EXPECT_EQ(dev_->opened_indices, (std::vector<uint16_t>{0, 1}));
  // Closing the primary rescinds the sub-channels (the open one is closed in the device).
  wire::CloseChannel close;
  close.child_relid = 1;
  env_->guest->Post(close);
  auto r1 = env_->guest->ReceiveAs<wire::RescindChannelOffer>();
  auto r2 = env_->guest->ReceiveAs<wire::RescindChannelOffer>();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->child_relid, 2u);
  EXPECT_EQ(r2->child_relid, 3u);
  EXPECT_EQ(dev_->closes, 2);
  // The guest releases them; a reopened primary gets fresh sub-channels.
  for (uint32_t relid : {2u, 3u}) {
    wire::CloseChannel c;
    c.child_relid = relid;
    env_->guest->Post(c);  // closing a rescinded channel is accepted silently
    wire::RelidReleased rr;
    rr.child_relid = relid;
    env_->guest->Post(rr);
  }
  EXPECT_EQ(env_->server->total_rejections(), 0u);
  EXPECT_EQ(env_->server->channel_count(), 1u);
}

// ------------------------------------------------------------------------------------------
// MODIFYCHANNEL (spec 2.3, 9.3 H23, 10.1 V8)
// ------------------------------------------------------------------------------------------

TEST_F(VmbusServerOpen, CorruptRingIndicesFailTheOpen) {
  auto run = env_->partition->guest().allocator().AllocateRun(8);
  ASSERT_TRUE(run.has_value());
  // Ring A's read_index is not a multiple of 8 (spec 9.4 R1): the host refuses to attach.
  uint32_t bad_index = 5;
  std::memcpy(run->bytes().data() + 4, &bad_index, sizeof(bad_index));
  ASSERT_EQ(env_->guest->CreateGpadl(1, 0x30, Pfns(*run))->creation_status, 0u);
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0x30;
  open.downstream_ringbuffer_pageoffset = 4;
  env_->guest->Post(open);
  EXPECT_EQ(env_->guest->ReceiveAs<wire::OpenChannelResult>()->status, wire::kStatusUnsuccessful);
  EXPECT_EQ(env_->server->rejections(Rejection::kOpenFailed), 1u);
  EXPECT_EQ(dev_->opens, 0);
}

TEST(VmbusServerModify, RetargetsAndAnswersFrom53) {
  auto env = HostEnv::Create(2);
  auto dev = env->AddFake();
  Connect(*env, kV53);
  auto ch = env->guest->OpenChannel(1, 0x2001, 0xE1E10, 0);
  ASSERT_TRUE(ch.has_value());
  wire::ModifyChannel m;
  m.child_relid = 1;
  m.target_vp = 1;
  env->guest->Post(m);
  auto r = env->guest->ReceiveAs<wire::ModifyChannelResponse>();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->child_relid, 1u);
  EXPECT_EQ(r->status, 0u);
  EXPECT_EQ(dev->Channel(0)->target_vp(), 1u);
  EXPECT_EQ(dev->retargets.size(), 1u);
  // Not open (H23) and a VP that does not exist: failure responses.
  m.child_relid = 9;
  env->guest->Post(m);
  EXPECT_EQ(env->guest->ReceiveAs<wire::ModifyChannelResponse>()->status,
            wire::kStatusUnsuccessful);
  m.child_relid = 1;
  m.target_vp = 8;
  env->guest->Post(m);
  EXPECT_EQ(env->guest->ReceiveAs<wire::ModifyChannelResponse>()->status,
            wire::kStatusUnsuccessful);
  EXPECT_EQ(env->server->rejections(Rejection::kModifyNotOpen), 1u);
  EXPECT_EQ(env->server->rejections(Rejection::kModifyBadTargetVp), 1u);
}

TEST(VmbusServerModify, NoResponseBefore53) {
  auto env = HostEnv::Create(2);
  auto dev = env->AddFake();
  Connect(*env, wire::kVersionWin10V5_2);
  auto ch = env->guest->OpenChannel(1, 0x2001, 0xE1E10, 0);
  ASSERT_TRUE(ch.has_value());
  wire::ModifyChannel m;
  m.child_relid = 1;
  m.target_vp = 1;
  env->guest->Post(m);
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(dev->Channel(0)->target_vp(), 1u);
}

TEST(VmbusServerModify, NotValidBefore41) {
  auto env = HostEnv::Create(2);
  env->AddFake();
  Connect(*env, wire::kVersionWin10);
  wire::ModifyChannel m;
  m.child_relid = 1;
  env->guest->Post(m);
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(env->server->rejections(Rejection::kNotValidForVersion), 1u);
}

TEST(VmbusServerMessages, UnsupportedAndSixPointZeroMessagesAreRejected) {
  auto env = HostEnv::Create();
  Connect(*env, kV53);
  env->guest->Post(wire::TlConnectRequest{});  // hv_sock: not offered by this host
  env->guest->Post(wire::Pause{});             // needs 6.0 + pause_resume (H1)
  env->guest->Post(wire::ModifyConnection{});  // needs 6.0 + modify_connection (H1)
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(env->server->rejections(Rejection::kUnsupported), 1u);
  EXPECT_EQ(env->server->rejections(Rejection::kNotValidForVersion), 2u);
}

// ------------------------------------------------------------------------------------------
// Rescind and RELID_RELEASED (spec 2.7)
// ------------------------------------------------------------------------------------------

TEST(VmbusServerRescind, RescindOfferedDeviceThenRelease) {
  auto env = HostEnv::Create();
  auto state = std::make_shared<FakeDeviceState>();
  const DeviceId id = env->server->AddDevice(
      std::make_unique<FakeDevice>(state, wire::kNetworkClassGuid, TestInstance(1)));
  Connect(*env);
  auto run = env->partition->guest().allocator().AllocateRun(1);
  ASSERT_EQ(env->guest->CreateGpadl(1, 0x10, Pfns(*run))->creation_status, 0u);
  ASSERT_TRUE(env->server->RescindDevice(id).has_value());
  auto rescind = env->guest->ReceiveAs<wire::RescindChannelOffer>();
  ASSERT_TRUE(rescind.has_value());
  EXPECT_EQ(rescind->child_relid, 1u);
  // OPENCHANNEL for a rescinded channel is silently ignored; teardown is still answered.
  wire::OpenChannel open;
  open.child_relid = 1;
  env->guest->Post(open);
  EXPECT_TRUE(env->guest->SlotEmpty());
  EXPECT_EQ(env->server->rejections(Rejection::kOpenRescinded), 1u);
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0x10;
  env->guest->Post(td);
  EXPECT_TRUE(env->guest->ReceiveAs<wire::GpadlTorndown>().has_value());
  EXPECT_FALSE(state->destroyed);
  EXPECT_FALSE(env->server->Drained());
  wire::RelidReleased rr;
  rr.child_relid = 1;
  env->guest->Post(rr);
  EXPECT_TRUE(state->destroyed);
  EXPECT_TRUE(env->server->Drained());
  EXPECT_EQ(env->server->device_count(), 0u);
  // The relid is free again: a hot-added device takes relid 1.
  env->AddFake(2);
  EXPECT_EQ(env->guest->ReceiveAs<wire::OfferChannel>()->child_relid, 1u);
  EXPECT_EQ(env->server->RescindDevice(id).error().code, ErrorCode::kNotFound);
}

TEST(VmbusServerRescind, RescindOfOpenChannelClosesTheDevice) {
  auto env = HostEnv::Create();
  auto state = std::make_shared<FakeDeviceState>();
  const DeviceId id = env->server->AddDevice(
      std::make_unique<FakeDevice>(state, wire::kNetworkClassGuid, TestInstance(1)));
  Connect(*env);
  auto ch = env->guest->OpenChannel(1, 0x2001, 0xE1E10);
  ASSERT_TRUE(ch.has_value());
  ASSERT_TRUE(env->server->RescindDevice(id).has_value());
  EXPECT_TRUE(env->guest->ReceiveAs<wire::RescindChannelOffer>().has_value());
  EXPECT_EQ(state->closes, 1);
  // Guest: close, teardown the ring GPADL, release.
  wire::CloseChannel close;
  close.child_relid = 1;
  env->guest->Post(close);
  wire::GpadlTeardown td;
  td.child_relid = 1;
  td.gpadl = 0xE1E10;
  env->guest->Post(td);
  EXPECT_TRUE(env->guest->ReceiveAs<wire::GpadlTorndown>().has_value());
  wire::RelidReleased rr;
  rr.child_relid = 1;
  env->guest->Post(rr);
  EXPECT_TRUE(state->destroyed);
  EXPECT_EQ(env->server->total_rejections(), 0u);
}

TEST(VmbusServerRescind, RelidReleasedForLiveChannelIsAnError) {
  auto env = HostEnv::Create();
  env->AddFake();
  Connect(*env);
  wire::RelidReleased rr;
  rr.child_relid = 1;
  env->guest->Post(rr);
  rr.child_relid = 5;
  env->guest->Post(rr);
  EXPECT_EQ(env->server->rejections(Rejection::kRelidReleaseInvalid), 2u);
  EXPECT_EQ(env->server->channel_count(), 1u);
}

TEST(VmbusServerRescind, RescindBeforeOffersDestroysAtOnce) {
  auto env = HostEnv::Create();
  auto state = std::make_shared<FakeDeviceState>();
  const DeviceId id = env->server->AddDevice(
      std::make_unique<FakeDevice>(state, wire::kNetworkClassGuid, TestInstance(1)));
  ASSERT_TRUE(env->server->RescindDevice(id).has_value());
  EXPECT_TRUE(state->destroyed);
  EXPECT_TRUE(Connect(*env).empty());
}

// ------------------------------------------------------------------------------------------
// UNLOAD (spec 2.10) and disconnect
// ------------------------------------------------------------------------------------------

TEST(VmbusServerUnload, UnloadReleasesEverythingThenAnswers) {
  auto env = HostEnv::Create();
  auto dev = env->AddFake();
  Connect(*env);
  auto ch = env->guest->OpenChannel(1, 0x2001, 0xE1E10);
  ASSERT_TRUE(ch.has_value());
  auto run = env->partition->guest().allocator().AllocateRun(2);
  ASSERT_EQ(env->guest->CreateGpadl(1, 0x20, Pfns(*run))->creation_status, 0u);
  EXPECT_EQ(env->server->gpadl_count(), 2u);
  env->guest->Post(wire::Unload{});
  EXPECT_TRUE(env->guest->ReceiveAs<wire::UnloadResponse>().has_value());
  EXPECT_EQ(dev->closes, 1);
  EXPECT_EQ(env->server->gpadl_count(), 0u);
  EXPECT_EQ(env->server->channel_count(), 0u);
  EXPECT_FALSE(env->server->connected());
  // Reconnect: fresh offers from relid 1.
  auto offers = Connect(*env);
  ASSERT_EQ(offers.size(), 1u);
  EXPECT_EQ(offers[0].child_relid, 1u);
}

TEST(VmbusServerUnload, UnloadWaitsForPendingCloses) {
  auto env = HostEnv::Create();
  auto dev = env->AddFake();
  Connect(*env);
  ASSERT_TRUE(env->guest->OpenChannel(1, 0x2001, 0xE1E10).has_value());
  dev->async_close = true;
  env->guest->Post(wire::Unload{});
  EXPECT_TRUE(env->guest->SlotEmpty());
  // Messages while unloading are refused (not connected).
  env->guest->Post(wire::RequestOffers{});
  EXPECT_EQ(env->server->rejections(Rejection::kNotConnected), 1u);
  dev->control->CompleteClose(*dev->pending_close);
  EXPECT_TRUE(env->guest->ReceiveAs<wire::UnloadResponse>().has_value());
}

TEST(VmbusServerUnload, QueuedReopenIsDroppedByUnload) {
  auto env = HostEnv::Create();
  auto dev = env->AddFake();
  Connect(*env);
  ASSERT_TRUE(env->guest->OpenChannel(1, 0x2001, 0xE1E10).has_value());
  dev->async_close = true;
  wire::CloseChannel close;
  close.child_relid = 1;
  env->guest->Post(close);
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.downstream_ringbuffer_pageoffset = 4;
  env->guest->Post(open);  // queued behind the close (H18)
  env->guest->Post(wire::Unload{});
  dev->async_close = false;
  dev->control->CompleteClose(*dev->pending_close);
  // The reopen is dropped; only UNLOAD_RESPONSE arrives and nothing is left open.
  auto msgs = env->guest->ReceiveAll();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<wire::UnloadResponse>(msgs[0]));
  EXPECT_EQ(dev->opens, 1);
  EXPECT_EQ(env->server->open_channel_count(), 0u);
}

TEST(VmbusServerDisconnect, DisconnectReleasesChannelsViewsAndDoorbells) {
  const int64_t views = GpadlView::LiveCount();
  const int64_t aliases = GpadlView::LiveAliasCount();
  auto env = HostEnv::Create();
  auto dev = env->AddFake(1, 1);
  Connect(*env);
  auto ch = env->guest->OpenChannel(1, 0x2001, 0xE1E10, 0, 4, 4, /*scatter=*/true);
  ASSERT_TRUE(ch.has_value());
  ASSERT_EQ(ch->result.status, 0u);
  ASSERT_EQ(*dev->control->OfferSubchannels(1), 1u);
  env->guest->ReceiveAll();
  auto sub = env->guest->OpenChannel(2, 0x2002, 0xE1E11);
  ASSERT_TRUE(sub.has_value());
  EXPECT_EQ(GpadlView::LiveCount(), views + 2);
  EXPECT_EQ(GpadlView::LiveAliasCount(), aliases + 1);
  env->partition->Disconnect();
  EXPECT_EQ(dev->closes, 2);
  EXPECT_EQ(GpadlView::LiveCount(), views);
  EXPECT_EQ(GpadlView::LiveAliasCount(), aliases);
  EXPECT_EQ(env->server->channel_count(), 0u);
  EXPECT_EQ(env->server->Snapshot().state, "gone");
  EXPECT_FALSE(dev->destroyed);  // devices live until the server goes
  env->server.reset();
  EXPECT_TRUE(dev->destroyed);
}

TEST(VmbusServerDisconnect, ReleaseAllRemovesDoorbells) {
  auto env = HostEnv::Create();
  auto dev = env->AddFake();
  Connect(*env);
  ASSERT_TRUE(env->guest->OpenChannel(1, 0x2001, 0xE1E10).has_value());
  const uint64_t slow_before = env->partition->guest().stats().events_slow.Get();
  env->guest->Signal(0x2001);
  EXPECT_EQ(env->partition->guest().stats().events_slow.Get(), slow_before);
  env->server->ReleaseAll();
  EXPECT_EQ(dev->closes, 1);
  env->guest->Signal(0x2001);  // no doorbell any more: slow path
  EXPECT_EQ(env->partition->guest().stats().events_slow.Get(), slow_before + 1);
}

TEST(VmbusServerSnapshot, ReportsDevicesChannelsAndCounters) {
  auto env = HostEnv::Create();
  env->AddFake(1, 1);
  Connect(*env);
  ASSERT_TRUE(env->guest->OpenChannel(1, 0x2001, 0xE1E10, 1).has_value());
  env->guest->Post(wire::RequestOffers{});  // one rejection
  ServerSnapshot s = env->server->Snapshot();
  EXPECT_EQ(s.state, "connected");
  EXPECT_EQ(s.version, kV53);
  EXPECT_EQ(s.peer.name, "host-test");
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].primary_relid, 1u);
  ASSERT_EQ(s.devices[0].channels.size(), 1u);
  EXPECT_EQ(s.devices[0].channels[0].state, "open");
  EXPECT_EQ(s.devices[0].channels[0].stats.cpu, 1u);
  EXPECT_EQ(s.gpadls, 1u);
  ASSERT_EQ(s.rejections.size(), 1u);
  EXPECT_EQ(s.rejections[0].first, "duplicate_request_offers");
}

}  // namespace
}  // namespace uvmbus::host::test
