// Tests for wire/channel_messages.h, wire/versions.h and wire/device_guids.h: round trips of every
// channel message type and form, rejection of every truncated / out-of-range / wrong-direction
// form with the exact error, and byte-exact layouts checked against hand-written bytes.
#include "wire/channel_messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "wire/device_guids.h"
#include "wire/versions.h"

namespace uvmbus::wire {
namespace {

std::vector<uint8_t> Bytes(const MessageBuffer& buf) {
  return {buf.bytes.begin(), buf.bytes.begin() + buf.size};
}

Direction OtherDirection(Direction d) {
  return d == Direction::kHostToGuest ? Direction::kGuestToHost : Direction::kHostToGuest;
}

std::string DirectionText(Direction d) {
  return d == Direction::kHostToGuest ? "host-to-guest" : "guest-to-host";
}

// One message of every type and every size form, with distinctive non-zero field values.
std::vector<ChannelMessage> AllSampleMessages() {
  std::vector<ChannelMessage> out;

  OfferChannel offer;
  offer.if_type = kNetworkClassGuid;
  offer.if_instance = Guid::FromString("01234567-89ab-cdef-0123-456789abcdef");
  offer.reserved1[0] = 1;
  offer.reserved2[7] = 2;
  offer.chn_flags = kOfferFlagNamedPipeMode | kOfferFlagRequestMonitoredNotification;
  offer.mmio_megabytes = 3;
  for (size_t i = 0; i < OfferChannel::kUserDefinedBytes; ++i) {
    offer.user_def[i] = static_cast<uint8_t>(i + 1);
  }
  offer.sub_channel_index = 4;
  offer.reserved3 = 5;
  offer.child_relid = 2047;
  offer.monitorid = 127;
  offer.monitor_allocated = 1;
  offer.is_dedicated_interrupt = 1;
  offer.connection_id = 0x2000 | 2047;
  out.emplace_back(offer);

  out.emplace_back(RescindChannelOffer{.child_relid = 7});
  out.emplace_back(RequestOffers{});
  out.emplace_back(AllOffersDelivered{});

  OpenChannel open;
  open.child_relid = 9;
  open.openid = 9;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.target_vp = 3;
  open.downstream_ringbuffer_pageoffset = 129;
  for (size_t i = 0; i < OpenChannel::kUserDataBytes; ++i) {
    open.userdata[i] = static_cast<uint8_t>(0xA0 ^ i);
  }
  out.emplace_back(open);
  out.emplace_back(OpenChannel2{.base = open,
                                .connection_id = 0x2009,
                                .event_flag = 11,
                                .flags = kOpenChannelFlagRedirectInterrupt});

  out.emplace_back(OpenChannelResult{.child_relid = 9, .openid = 9, .status = 0xC0000001});
  out.emplace_back(CloseChannel{.child_relid = 12});

  GpadlHeaderMessage gpadl_header;
  gpadl_header.fixed.child_relid = 9;
  gpadl_header.fixed.gpadl = 0xE1E11;
  gpadl_header.fixed.range_buflen = 8 + 8 * 258;
  gpadl_header.fixed.rangecount = 1;
  gpadl_header.range_word_count = kGpadlHeaderMaxRangeWords;
  gpadl_header.range_words[0] = 258 * 4096;
  for (size_t i = 1; i < kGpadlHeaderMaxRangeWords; ++i) {
    gpadl_header.range_words[i] = 0x100000 + i;
  }
  out.emplace_back(gpadl_header);

  GpadlBodyMessage gpadl_body;
  gpadl_body.fixed.msgnumber = 3;
  gpadl_body.fixed.gpadl = 0xE1E11;
  gpadl_body.range_word_count = 5;
  for (size_t i = 0; i < 5; ++i) gpadl_body.range_words[i] = 0xFFFFFFFFF0ull + i;
  out.emplace_back(gpadl_body);

  out.emplace_back(
      GpadlCreated{.child_relid = 9, .gpadl = 0xE1E11, .creation_status = kStatusUnsuccessful});
  out.emplace_back(GpadlTeardown{.child_relid = 9, .gpadl = 0xE1E11});
  out.emplace_back(GpadlTorndown{.gpadl = 0xE1E11});
  out.emplace_back(RelidReleased{.child_relid = 9});

  InitiateContact contact;
  contact.vmbus_version_requested = kVersionWin10V5_3;
  contact.target_vcpu = 1;
  contact.msg_sint = kVmbusMessageSint;
  contact.msg_vtl = 0;
  contact.feature_flags = 0;
  contact.monitor_page1 = 0x1000;
  contact.monitor_page2 = 0x2000;
  out.emplace_back(contact);
  InitiateContact contact6 = contact;
  contact6.vmbus_version_requested = kVersionCopper;
  contact6.feature_flags = kFeatureClientId | kFeatureModifyConnection;
  out.emplace_back(InitiateContact2{
      .base = contact6, .client_id = Guid::FromString("11111111-2222-3333-4444-555555555555")});

  const VersionResponse accepted{.version_supported = 1,
                                 .connection_state = kConnectionStateSuccessful,
                                 .padding = 0,
                                 .msg_conn_id = 1};
  out.emplace_back(accepted);
  out.emplace_back(VersionResponse2{.base = accepted, .supported_features = kAllFeatureFlags});
  out.emplace_back(VersionResponse3{
      .base = VersionResponse2{.base = accepted,
                               .supported_features = kFeatureServerSpecifiedMonitorPages},
      .padding = 0,
      .parent_to_child_monitor_page_gpa = 0x7000,
      .child_to_parent_monitor_page_gpa = 0x8000});

  out.emplace_back(Unload{});
  out.emplace_back(UnloadResponse{});
  out.emplace_back(OpenReservedChannel{.channel_id = 1,
                                       .target_vp = 2,
                                       .target_sint = 3,
                                       .ring_buffer_gpadl = 4,
                                       .downstream_page_offset = 5});
  out.emplace_back(CloseReservedChannel{.channel_id = 6, .target_vp = 7, .target_sint = 8});
  out.emplace_back(CloseReservedResponse{.channel_id = 6});

  const TlConnectRequest tl{
      .guest_endpoint_id = Guid::FromString("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
      .host_service_id = Guid::FromString("99999999-8888-7777-6666-555555555555")};
  out.emplace_back(tl);
  out.emplace_back(TlConnectRequest2{
      .base = tl, .silo_id = Guid::FromString("12121212-3434-5656-7878-909090909090")});

  out.emplace_back(ModifyChannel{.child_relid = 9, .target_vp = 5});
  out.emplace_back(TlConnectResult{.endpoint_id = tl.guest_endpoint_id,
                                   .service_id = tl.host_service_id,
                                   .status = -1073741823});
  out.emplace_back(ModifyChannelResponse{.child_relid = 9, .status = 1});
  out.emplace_back(ModifyConnection{.parent_to_child_monitor_page_gpa = 0x9000,
                                    .child_to_parent_monitor_page_gpa = 0xA000});
  out.emplace_back(
      ModifyConnectionResponse{.connection_state = kConnectionStateFailedLowResources});
  out.emplace_back(Pause{});
  out.emplace_back(PauseResponse{});
  out.emplace_back(Resume{});
  return out;
}

// --- coverage of the sample set itself -------------------------------------------------------

TEST(ChannelMessagesTest, SamplesCoverEveryVariantAlternativeAndEveryType) {
  const auto samples = AllSampleMessages();
  ASSERT_EQ(samples.size(), std::variant_size_v<ChannelMessage>);
  std::vector<bool> alternative_seen(std::variant_size_v<ChannelMessage>, false);
  std::vector<bool> type_seen(static_cast<size_t>(ChannelMessageType::kCount), false);
  for (const auto& m : samples) {
    alternative_seen[m.index()] = true;
    type_seen[static_cast<size_t>(TypeOf(m))] = true;
  }
  for (size_t i = 0; i < alternative_seen.size(); ++i) EXPECT_TRUE(alternative_seen[i]) << i;
  for (size_t t = 1; t < type_seen.size(); ++t) EXPECT_TRUE(type_seen[t]) << "type " << t;
}

// --- round trips ------------------------------------------------------------------------------

TEST(ChannelMessagesTest, EveryMessageRoundTripsThroughEncodeAndParse) {
  for (const auto& sample : AllSampleMessages()) {
    const ChannelMessageType type = TypeOf(sample);
    SCOPED_TRACE(std::string(ChannelMessageName(type)) + " alternative " +
                 std::to_string(sample.index()));
    const MessageBuffer buf = Encode(sample);
    EXPECT_EQ(buf.size % 8, 0);
    EXPECT_GE(buf.size, ChannelMessageMinSize(type));
    EXPECT_LE(buf.size, kMaxChannelMessageSize);
    uint32_t wire_type = 0;
    std::memcpy(&wire_type, buf.bytes.data(), 4);
    EXPECT_EQ(wire_type, static_cast<uint32_t>(type));

    auto parsed = ParseChannelMessage(buf.span(), ChannelMessageDirection(type));
    ASSERT_TRUE(parsed.has_value()) << parsed.error();
    EXPECT_EQ(parsed->index(), sample.index());
    EXPECT_TRUE(*parsed == sample);
    // Encoding the parsed copy reproduces the bytes exactly.
    EXPECT_EQ(Bytes(Encode(*parsed)), Bytes(buf));
  }
}

TEST(ChannelMessagesTest, EncodedSizeIsWireSizeRoundedUpToEightAndZeroFilled) {
  EXPECT_EQ(Encode(OfferChannel{}).size, 200);        // 196
  EXPECT_EQ(Encode(RescindChannelOffer{}).size, 16);  // 12
  EXPECT_EQ(Encode(RequestOffers{}).size, 8);
  EXPECT_EQ(Encode(OpenChannel{}).size, 152);       // 148
  EXPECT_EQ(Encode(OpenChannel2{}).size, 160);      // 156
  EXPECT_EQ(Encode(OpenChannelResult{}).size, 24);  // 20
  EXPECT_EQ(Encode(InitiateContact{}).size, 40);
  EXPECT_EQ(Encode(InitiateContact2{}).size, 56);
  EXPECT_EQ(Encode(VersionResponse{}).size, 16);
  EXPECT_EQ(Encode(VersionResponse2{}).size, 24);  // 20
  EXPECT_EQ(Encode(VersionResponse3{}).size, 40);
  EXPECT_EQ(Encode(TlConnectResult{}).size, 48);           // 44
  EXPECT_EQ(Encode(ModifyConnectionResponse{}).size, 16);  // 9
  OfferChannel offer;
  offer.connection_id = 0xFFFFFFFF;
  const MessageBuffer buf = Encode(offer);
  for (size_t i = 196; i < 240; ++i) EXPECT_EQ(buf.bytes[i], 0) << i;
}

TEST(ChannelMessagesTest, EncodeWritesTheStructTypeWhateverTheHeaderHolds) {
  GpadlCreated created;
  created.header.msgtype = ChannelMessageType::kOfferChannel;
  created.header.padding = 0xDEADBEEF;
  const MessageBuffer buf = Encode(created);
  const std::vector<uint8_t> expected_header = {10, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(buf.bytes.begin(), buf.bytes.begin() + 8), expected_header);
}

// --- byte-exact layouts -----------------------------------------------------------------------

TEST(ChannelMessagesTest, OfferChannelBytesMatchTheSpecLayout) {
  OfferChannel offer;
  offer.if_type = kNetworkClassGuid;
  offer.chn_flags = 0x2000;
  offer.sub_channel_index = 2;
  offer.child_relid = 0x11223344;
  offer.monitorid = 0x7F;
  offer.monitor_allocated = 1;
  offer.is_dedicated_interrupt = 1;
  offer.connection_id = 0x55667788;
  const MessageBuffer buf = Encode(offer);
  ASSERT_EQ(buf.size, 200);
  const std::vector<uint8_t> nic = {0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46,
                                    0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e};
  EXPECT_EQ(std::vector<uint8_t>(buf.bytes.begin() + 8, buf.bytes.begin() + 24), nic);
  EXPECT_EQ(buf.bytes[0], 1);
  EXPECT_EQ(buf.bytes[56], 0x00);
  EXPECT_EQ(buf.bytes[57], 0x20);
  EXPECT_EQ(buf.bytes[180], 2);
  EXPECT_EQ(buf.bytes[184], 0x44);
  EXPECT_EQ(buf.bytes[187], 0x11);
  EXPECT_EQ(buf.bytes[188], 0x7F);
  EXPECT_EQ(buf.bytes[189], 0x01);
  EXPECT_EQ(buf.bytes[190], 0x01);
  EXPECT_EQ(buf.bytes[191], 0x00);
  EXPECT_EQ(buf.bytes[192], 0x88);
  EXPECT_EQ(buf.bytes[195], 0x55);
  EXPECT_TRUE(offer.MonitorAllocated());
  EXPECT_TRUE(offer.DedicatedInterrupt());
}

TEST(ChannelMessagesTest, DefaultOfferAdvertisesNoMonitor) {
  const OfferChannel offer;
  EXPECT_EQ(offer.monitorid, 0xFF);
  EXPECT_FALSE(offer.MonitorAllocated());
}

TEST(ChannelMessagesTest, VersionResponseBytesMatchTheSpecLayout) {
  const MessageBuffer buf =
      Encode(VersionResponse{.version_supported = 1, .connection_state = 2, .msg_conn_id = 4});
  const std::vector<uint8_t> expected = {15, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 4, 0, 0, 0};
  EXPECT_EQ(Bytes(buf), expected);
}

TEST(ChannelMessagesTest, InitiateContactCarriesSintVtlAndFeaturesWhereTheInterruptPageWas) {
  InitiateContact contact;
  contact.vmbus_version_requested = kVersionCopper;
  contact.msg_sint = 2;
  contact.msg_vtl = 1;
  contact.feature_flags = 0x8;
  const MessageBuffer buf = Encode(contact);
  const std::vector<uint8_t> bytes_16_to_24 = {2, 1, 0, 0, 8, 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(buf.bytes.begin() + 16, buf.bytes.begin() + 24), bytes_16_to_24);
  EXPECT_EQ(contact.interrupt_page(), 0x0000000800000102ull);
  contact.set_interrupt_page(0x123456789000ull);
  EXPECT_EQ(contact.interrupt_page(), 0x123456789000ull);
  const MessageBuffer old = Encode(contact);
  uint64_t page = 0;
  std::memcpy(&page, old.bytes.data() + 16, 8);
  EXPECT_EQ(page, 0x123456789000ull);
}

TEST(ChannelMessagesTest, ModifyConnectionResponseIsNineBytesPaddedToSixteen) {
  const MessageBuffer buf = Encode(ModifyConnectionResponse{.connection_state = 2});
  const std::vector<uint8_t> expected = {26, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(Bytes(buf), expected);
  // A 9-byte payload (the exact wire size) parses.
  auto parsed = ParseChannelMessage(std::span(buf.bytes.data(), 9), Direction::kHostToGuest);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(std::get<ModifyConnectionResponse>(*parsed).connection_state, 2);
}

// --- size-dependent forms --------------------------------------------------------------------

TEST(ChannelMessagesTest, ParsePicksTheLargestFormThePayloadHolds) {
  struct Case {
    ChannelMessageType type;
    size_t size;
    size_t expected_index;
  };
  const ChannelMessage open2 = OpenChannel2{};
  const ChannelMessage open = OpenChannel{};
  const ChannelMessage contact = InitiateContact{};
  const ChannelMessage contact2 = InitiateContact2{};
  const ChannelMessage vr = VersionResponse{};
  const ChannelMessage vr2 = VersionResponse2{};
  const ChannelMessage vr3 = VersionResponse3{};
  const ChannelMessage tl = TlConnectRequest{};
  const ChannelMessage tl2 = TlConnectRequest2{};
  const Case cases[] = {
      {ChannelMessageType::kOpenChannel, 148, open.index()},
      {ChannelMessageType::kOpenChannel, 152, open.index()},  // 148 rounded up by the sender
      {ChannelMessageType::kOpenChannel, 155, open.index()},
      {ChannelMessageType::kOpenChannel, 156, open2.index()},
      {ChannelMessageType::kOpenChannel, 240, open2.index()},
      {ChannelMessageType::kInitiateContact, 40, contact.index()},
      {ChannelMessageType::kInitiateContact, 55, contact.index()},
      {ChannelMessageType::kInitiateContact, 56, contact2.index()},
      {ChannelMessageType::kVersionResponse, 16, vr.index()},
      {ChannelMessageType::kVersionResponse, 19, vr.index()},
      {ChannelMessageType::kVersionResponse, 20, vr2.index()},
      {ChannelMessageType::kVersionResponse, 24, vr2.index()},
      {ChannelMessageType::kVersionResponse, 39, vr2.index()},
      {ChannelMessageType::kVersionResponse, 40, vr3.index()},
      {ChannelMessageType::kTlConnectRequest, 40, tl.index()},
      {ChannelMessageType::kTlConnectRequest, 48, tl.index()},
      {ChannelMessageType::kTlConnectRequest, 56, tl2.index()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(ChannelMessageName(c.type)) + " size " + std::to_string(c.size));
    std::array<uint8_t, kMaxChannelMessageSize> bytes{};
    const auto raw = static_cast<uint32_t>(c.type);
    std::memcpy(bytes.data(), &raw, 4);
    auto parsed =
        ParseChannelMessage(std::span(bytes.data(), c.size), ChannelMessageDirection(c.type));
    ASSERT_TRUE(parsed.has_value()) << parsed.error();
    EXPECT_EQ(parsed->index(), c.expected_index);
  }
}

TEST(ChannelMessagesTest, ExtendedFormKeepsTheBaseFieldsOfAFullLengthMessage) {
  OpenChannel open;
  open.child_relid = 5;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  MessageBuffer buf = Encode(open);
  buf.size = kMaxChannelMessageSize;  // a client that always sends 240 bytes
  auto parsed = ParseChannelMessage(buf.span(), Direction::kGuestToHost);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  const auto& open2 = std::get<OpenChannel2>(*parsed);
  EXPECT_EQ(open2.base, open);
  EXPECT_EQ(open2.connection_id, 0u);
}

TEST(ChannelMessagesTest, BytesBeyondAFixedMessageAreIgnored) {
  MessageBuffer buf = Encode(GpadlTorndown{.gpadl = 77});
  for (size_t i = 12; i < kMaxChannelMessageSize; ++i) buf.bytes[i] = 0xEE;
  buf.size = kMaxChannelMessageSize;
  auto parsed = ParseChannelMessage(buf.span(), Direction::kHostToGuest);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(std::get<GpadlTorndown>(*parsed), GpadlTorndown{.gpadl = 77});
}

TEST(ChannelMessagesTest, GpadlRangeDataKeepsWholeWordsOnly) {
  GpadlBodyMessage body;
  body.fixed.gpadl = 1;
  body.range_word_count = 2;
  body.range_words[0] = 0x1111;
  body.range_words[1] = 0x2222;
  const MessageBuffer buf = Encode(body);
  ASSERT_EQ(buf.size, 32);
  // 16 + 8 + 7 bytes: the second word is incomplete and dropped.
  auto parsed = ParseChannelMessage(std::span(buf.bytes.data(), 31), Direction::kGuestToHost);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  const auto& got = std::get<GpadlBodyMessage>(*parsed);
  ASSERT_EQ(got.words().size(), 1u);
  EXPECT_EQ(got.words()[0], 0x1111u);
  // A header with only its fixed part carries no words.
  GpadlHeaderMessage header;
  header.fixed.gpadl = 2;
  auto fixed_only =
      ParseChannelMessage(Encode(header.fixed).span().first(20), Direction::kGuestToHost);
  ASSERT_TRUE(fixed_only.has_value()) << fixed_only.error();
  EXPECT_EQ(std::get<GpadlHeaderMessage>(*fixed_only).range_word_count, 0);
}

TEST(ChannelMessagesTest, FullGpadlMessagesUseAllTwoHundredFortyBytes) {
  GpadlHeaderMessage header;
  header.range_word_count = kGpadlHeaderMaxRangeWords;
  EXPECT_EQ(Encode(header).size, 240);  // 20 + 27 * 8 = 236, rounded
  GpadlBodyMessage body;
  body.range_word_count = kGpadlBodyMaxRangeWords;
  EXPECT_EQ(Encode(body).size, 240);  // 16 + 28 * 8
}

// --- rejections -------------------------------------------------------------------------------

TEST(ChannelMessagesTest, EveryTruncatedFormIsRejectedWithItsMinimumSize) {
  for (const auto& sample : AllSampleMessages()) {
    const ChannelMessageType type = TypeOf(sample);
    const size_t min = ChannelMessageMinSize(type);
    const MessageBuffer buf = Encode(sample);
    const std::string name(ChannelMessageName(type));
    for (size_t len = 0; len < min; ++len) {
      SCOPED_TRACE(name + " truncated to " + std::to_string(len));
      auto parsed =
          ParseChannelMessage(std::span(buf.bytes.data(), len), ChannelMessageDirection(type));
      ASSERT_FALSE(parsed.has_value());
      EXPECT_EQ(parsed.error().code, ErrorCode::kMalformed);
      const std::string expected =
          len < 8 ? "channel message payload " + std::to_string(len) + " < 8-byte header"
                  : name + " payload " + std::to_string(len) + " < " + std::to_string(min);
      EXPECT_EQ(parsed.error().message, expected);
    }
  }
}

TEST(ChannelMessagesTest, MinimumSizesMatchTheSpecTable) {
  const std::pair<ChannelMessageType, size_t> expected[] = {
      {ChannelMessageType::kOfferChannel, 196},
      {ChannelMessageType::kRescindChannelOffer, 12},
      {ChannelMessageType::kRequestOffers, 8},
      {ChannelMessageType::kAllOffersDelivered, 8},
      {ChannelMessageType::kOpenChannel, 148},
      {ChannelMessageType::kOpenChannelResult, 20},
      {ChannelMessageType::kCloseChannel, 12},
      {ChannelMessageType::kGpadlHeader, 20},
      {ChannelMessageType::kGpadlBody, 16},
      {ChannelMessageType::kGpadlCreated, 20},
      {ChannelMessageType::kGpadlTeardown, 16},
      {ChannelMessageType::kGpadlTorndown, 12},
      {ChannelMessageType::kRelidReleased, 12},
      {ChannelMessageType::kInitiateContact, 40},
      {ChannelMessageType::kVersionResponse, 16},
      {ChannelMessageType::kUnload, 8},
      {ChannelMessageType::kUnloadResponse, 8},
      {ChannelMessageType::kOpenReservedChannel, 28},
      {ChannelMessageType::kCloseReservedChannel, 20},
      {ChannelMessageType::kCloseReservedResponse, 12},
      {ChannelMessageType::kTlConnectRequest, 40},
      {ChannelMessageType::kModifyChannel, 16},
      {ChannelMessageType::kTlConnectResult, 44},
      {ChannelMessageType::kModifyChannelResponse, 16},
      {ChannelMessageType::kModifyConnection, 24},
      {ChannelMessageType::kModifyConnectionResponse, 9},
      {ChannelMessageType::kPause, 8},
      {ChannelMessageType::kPauseResponse, 8},
      {ChannelMessageType::kResume, 8},
  };
  for (const auto& [type, size] : expected) {
    EXPECT_EQ(ChannelMessageMinSize(type), size) << ChannelMessageName(type);
  }
}

TEST(ChannelMessagesTest, EveryMessageIsRejectedInTheWrongDirection) {
  for (const auto& sample : AllSampleMessages()) {
    const ChannelMessageType type = TypeOf(sample);
    const Direction legal = ChannelMessageDirection(type);
    auto parsed = ParseChannelMessage(Encode(sample).span(), OtherDirection(legal));
    ASSERT_FALSE(parsed.has_value()) << ChannelMessageName(type);
    EXPECT_EQ(parsed.error().code, ErrorCode::kMalformed);
    EXPECT_EQ(parsed.error().message, std::string(ChannelMessageName(type)) + " is " +
                                          DirectionText(legal) + ", received " +
                                          DirectionText(OtherDirection(legal)));
  }
}

TEST(ChannelMessagesTest, DirectionsMatchTheSpecTable) {
  // Spec 2.2 and 9.2 M4: the guest->host types are exactly these.
  const std::set<uint32_t> guest_to_host = {3,  5,  7,  8,  9,  11, 13, 14,
                                            16, 18, 19, 21, 22, 25, 27, 29};
  for (uint32_t t = 1; t < static_cast<uint32_t>(ChannelMessageType::kCount); ++t) {
    const auto type = static_cast<ChannelMessageType>(t);
    EXPECT_EQ(ChannelMessageDirection(type),
              guest_to_host.count(t) != 0 ? Direction::kGuestToHost : Direction::kHostToGuest)
        << ChannelMessageName(type);
  }
}

TEST(ChannelMessagesTest, OutOfRangeTypesAreRejected) {
  for (uint32_t raw : {30u, 31u, 0x80000000u, 0xFFFFFFFFu}) {
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &raw, 4);
    for (Direction dir : {Direction::kHostToGuest, Direction::kGuestToHost}) {
      auto parsed = ParseChannelMessage(bytes, dir);
      ASSERT_FALSE(parsed.has_value());
      EXPECT_EQ(parsed.error().code, ErrorCode::kMalformed);
      EXPECT_EQ(parsed.error().message,
                "channel message type " + std::to_string(raw) + " out of range");
    }
  }
  std::array<uint8_t, 8> invalid{};
  auto parsed = ParseChannelMessage(invalid, Direction::kHostToGuest);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message, "channel message type 0 (INVALID)");
}

TEST(ChannelMessagesTest, PayloadsLargerThanTwoHundredFortyAreRejected) {
  std::vector<uint8_t> big(241, 0);
  big[0] = 1;  // an otherwise valid OFFERCHANNEL
  for (size_t size : {241u, 256u, 4096u}) {
    big.resize(size);
    auto parsed = ParseChannelMessage(big, Direction::kHostToGuest);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code, ErrorCode::kMalformed);
    EXPECT_EQ(parsed.error().message, "channel message payload " + std::to_string(size) + " > 240");
  }
  big.resize(240);
  EXPECT_TRUE(ParseChannelMessage(big, Direction::kHostToGuest).has_value());
}

TEST(ChannelMessagesTest, OfferShorterThanItsLayoutNamesTheViolation) {
  MessageBuffer buf = Encode(OfferChannel{});
  auto parsed = ParseChannelMessage(std::span(buf.bytes.data(), 100), Direction::kHostToGuest);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message, "OFFERCHANNEL payload 100 < 196");
}

TEST(ChannelMessagesTest, ArbitraryBytesNeverCrashTheParser) {
  // Deterministic pseudo-random payloads with a valid type in half the cases (ASan/UBSan watch).
  std::mt19937 rng(12345);
  std::array<uint8_t, 300> bytes{};
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0) {
      const uint32_t type = rng() % 32;
      std::memcpy(bytes.data(), &type, 4);
    }
    const size_t len = rng() % bytes.size();
    const Direction dir = i % 4 < 2 ? Direction::kHostToGuest : Direction::kGuestToHost;
    auto parsed = ParseChannelMessage(std::span(bytes.data(), len), dir);
    if (parsed.has_value()) {
      ++accepted;
      EXPECT_LE(len, kMaxChannelMessageSize);
      EXPECT_EQ(ChannelMessageDirection(TypeOf(*parsed)), dir);
      EXPECT_LE(Encode(*parsed).size, kMaxChannelMessageSize);
    }
  }
  EXPECT_GT(accepted, 0u);
}

// --- names ------------------------------------------------------------------------------------

TEST(ChannelMessagesTest, NamesFollowTheSpec) {
  const char* expected[] = {"INVALID",
                            "OFFERCHANNEL",
                            "RESCIND_CHANNELOFFER",
                            "REQUESTOFFERS",
                            "ALLOFFERS_DELIVERED",
                            "OPENCHANNEL",
                            "OPENCHANNEL_RESULT",
                            "CLOSECHANNEL",
                            "GPADL_HEADER",
                            "GPADL_BODY",
                            "GPADL_CREATED",
                            "GPADL_TEARDOWN",
                            "GPADL_TORNDOWN",
                            "RELID_RELEASED",
                            "INITIATE_CONTACT",
                            "VERSION_RESPONSE",
                            "UNLOAD",
                            "UNLOAD_RESPONSE",
                            "OPEN_RESERVED_CHANNEL",
                            "CLOSE_RESERVED_CHANNEL",
                            "CLOSE_RESERVED_RESPONSE",
                            "TL_CONNECT_REQUEST",
                            "MODIFYCHANNEL",
                            "TL_CONNECT_RESULT",
                            "MODIFYCHANNEL_RESPONSE",
                            "MODIFY_CONNECTION",
                            "MODIFY_CONNECTION_RESPONSE",
                            "PAUSE",
                            "PAUSE_RESPONSE",
                            "RESUME"};
  static_assert(std::size(expected) == static_cast<size_t>(ChannelMessageType::kCount));
  for (uint32_t t = 0; t < std::size(expected); ++t) {
    EXPECT_EQ(ChannelMessageName(static_cast<ChannelMessageType>(t)), expected[t]);
  }
  EXPECT_EQ(ChannelMessageName(ChannelMessageType::kCount), "UNKNOWN");
  EXPECT_EQ(ChannelMessageName(static_cast<ChannelMessageType>(0xFFFFFFFF)), "UNKNOWN");
}

// --- versions.h -------------------------------------------------------------------------------

TEST(VersionsTest, VersionWordsMatchTheSpecTable) {
  EXPECT_EQ(kVersionWs2008, 0x0000000Du);
  EXPECT_EQ(kVersionWin7, 0x00010001u);
  EXPECT_EQ(kVersionWin8, 0x00020004u);
  EXPECT_EQ(kVersionWin8_1, 0x00030000u);
  EXPECT_EQ(kVersionWin10, 0x00040000u);
  EXPECT_EQ(kVersionWin10V4_1, 0x00040001u);
  EXPECT_EQ(kVersionWin10V5, 0x00050000u);
  EXPECT_EQ(kVersionWin10V5_1, 0x00050001u);
  EXPECT_EQ(kVersionWin10V5_2, 0x00050002u);
  EXPECT_EQ(kVersionWin10V5_3, 0x00050003u);
  EXPECT_EQ(kVersionCopper, 0x00060000u);
  for (size_t i = 1; i < kAllVersions.size(); ++i) {
    EXPECT_GT(kAllVersions[i - 1], kAllVersions[i]);  // newest first
  }
  EXPECT_TRUE(IsKnownVersion(kVersionWin8));
  EXPECT_FALSE(IsKnownVersion(MakeVersion(2, 0)));
}

TEST(VersionsTest, VersionStringIsMajorDotMinorInDecimal) {
  EXPECT_EQ(VersionString(kVersionWin10V5_3), "5.3");
  EXPECT_EQ(VersionString(kVersionWs2008), "0.13");
  EXPECT_EQ(VersionString(kVersionCopper), "6.0");
  EXPECT_EQ(VersionString(0xFFFF0010u), "65535.16");
}

TEST(VersionsTest, ConnectionIdsSintAndFeatureBitsMatchTheSpec) {
  EXPECT_EQ(kVmbusMessageConnectionId, 1u);
  EXPECT_EQ(kVmbusMessageConnectionId4, 4u);
  EXPECT_EQ(kVmbusMessageSint, 2);
  EXPECT_EQ(kMaxChannelRelids, 2048u);
  const uint32_t bits[] = {kFeatureGuestSpecifiedSignalParameters,
                           kFeatureChannelInterruptRedirection,
                           kFeatureModifyConnection,
                           kFeatureClientId,
                           kFeatureConfidentialChannels,
                           kFeaturePauseResume,
                           kFeatureServerSpecifiedMonitorPages,
                           kFeatureGpaPinning};
  uint32_t all = 0;
  for (size_t i = 0; i < std::size(bits); ++i) {
    EXPECT_EQ(bits[i], 1u << i);
    all |= bits[i];
  }
  EXPECT_EQ(all, kAllFeatureFlags);
}

// --- device_guids.h ---------------------------------------------------------------------------

TEST(DeviceGuidsTest, CompileTimeGuidsEqualRuntimeParsing) {
  static_assert(kNetworkClassGuid.bytes[0] == 0x63 && kNetworkClassGuid.bytes[3] == 0xf8);
  EXPECT_EQ(kNetworkClassGuid, Guid::FromString("f8615163-df3e-46c5-913f-f2d2f965ed0e"));
  EXPECT_EQ(kHeartbeatClassGuid, Guid::FromString("57164f39-9115-4e78-ab55-382f3bd5422d"));
  for (const DeviceClass& c : kKnownDeviceClasses) {
    const auto reparsed = Guid::Parse(c.class_guid.ToString());
    ASSERT_TRUE(reparsed.has_value());
    EXPECT_EQ(*reparsed, c.class_guid);
  }
}

TEST(DeviceGuidsTest, DescriptionsAreLsvmbusStrings) {
  EXPECT_EQ(DeviceDescription(kNetworkClassGuid), "Synthetic network adapter");
  EXPECT_EQ(DeviceDescription(kHeartbeatClassGuid), "[Heartbeat]");
  EXPECT_EQ(DeviceDescription(kShutdownClassGuid), "[Operating system shutdown]");
  EXPECT_EQ(DeviceDescription(kTimeSyncClassGuid), "[Time Synchronization]");
  EXPECT_EQ(DeviceDescription(kKvpClassGuid), "[Data Exchange]");
  EXPECT_EQ(DeviceDescription(kVssClassGuid), "[Backup (volume checkpoint)]");
  EXPECT_EQ(DeviceDescription(kFileCopyClassGuid), "[Guest services]");
  EXPECT_EQ(DeviceDescription(kScsiClassGuid), "Synthetic SCSI Controller");
  EXPECT_EQ(DeviceDescription(kRdvClassGuid), "[Reserved system device]");
  EXPECT_EQ(DeviceDescription(Guid{}), "Unknown");
  EXPECT_EQ(DeviceDescription(Guid::FromString("00000000-0000-0000-0000-000000000001")), "Unknown");
}

TEST(DeviceGuidsTest, KnownClassesAreDistinct) {
  for (size_t i = 0; i < kKnownDeviceClasses.size(); ++i) {
    for (size_t j = i + 1; j < kKnownDeviceClasses.size(); ++j) {
      EXPECT_NE(kKnownDeviceClasses[i].class_guid, kKnownDeviceClasses[j].class_guid);
    }
  }
}

}  // namespace
}  // namespace uvmbus::wire
