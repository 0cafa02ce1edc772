// Tests for wire/ic_messages.h: the heartbeat negotiate/heartbeat exchange byte for byte (as
// documented in the header), the Linux negotiation outcomes, and the parsers' rejections.
#include "wire/ic_messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace uvmbus::wire {
namespace {

using Bytes = std::vector<uint8_t>;

// The host's NEGOTIATE request of ic_messages.h, step 1.
const Bytes kNegotiateRequest = {
    0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,              // pipe: flags 1, msgsize 44
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // fw 0.0, type 0, msg 0.0
    0x18, 0x00,                                                  // icmsgsize 24
    0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,              // status, txid, flags 3, rsvd
    0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,              // counts 2/2, reserved
    0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // framework 1.0, 3.0
    0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // heartbeat 1.0, 3.0
};

// A Linux guest's answer, step 2.
const Bytes kNegotiateResponse = {
    0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,              // pipe header echoed
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // versions/type echoed
    0x10, 0x00,                                                  // icmsgsize 0x10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,              // flags TRANSACTION|RESPONSE
    0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,              // counts 1/1
    0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // chosen framework 3.0, hb 3.0
    0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // request's tail echoed
};

// The host's HEARTBEAT request with seq_num 0x0102030405060708, step 3.
const Bytes kHeartbeatRequest = {
    0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00,              // pipe: flags 1, msgsize 60
    0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,  // fw 3.0, type 1, hb 3.0
    0x28, 0x00,                                                  // icmsgsize 40
    0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,              // status, txid, flags 3, rsvd
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,              // seq_num
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

Bytes HeartbeatResponseBytes() {
  Bytes b = kHeartbeatRequest;
  b[25] = 0x05;  // flags
  b[28] = 0x09;  // seq_num + 1
  return b;
}

IcPacket MustParse(const Bytes& bytes) {
  auto p = ParseIcPacket(bytes);
  EXPECT_TRUE(p.has_value()) << p.error();
  return p.value_or(IcPacket{});
}

// --- the byte-exact heartbeat exchange -------------------------------------------------------

TEST(IcHeartbeatExchangeTest, HostNegotiateRequestIsByteExact) {
  auto request = EncodeIcNegotiateRequest(kHostIcFrameworkVersions, kHostHeartbeatVersions);
  ASSERT_TRUE(request.has_value()) << request.error();
  EXPECT_EQ(*request, kNegotiateRequest);
}

TEST(IcHeartbeatExchangeTest, GuestAnswersNegotiateAsLinuxDoes) {
  auto reply = PrepareIcNegotiateResponse(kNegotiateRequest, kLinuxIcFrameworkVersions,
                                          kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kAgreed);
  EXPECT_EQ(reply->framework_version, kIcFrameworkVersion3);
  EXPECT_EQ(reply->service_version, kHeartbeatVersion3);
  EXPECT_EQ(reply->packet, kNegotiateResponse);
}

TEST(IcHeartbeatExchangeTest, HostReadsTheChosenVersionsFromTheAnswer) {
  auto versions = ParseIcNegotiateResponse(MustParse(kNegotiateResponse));
  ASSERT_TRUE(versions.has_value()) << versions.error();
  EXPECT_EQ(*versions, (IcNegotiatedVersions{kIcFrameworkVersion3, kHeartbeatVersion3}));
}

TEST(IcHeartbeatExchangeTest, HostHeartbeatRequestIsByteExact) {
  EXPECT_EQ(EncodeHeartbeatRequest(kIcFrameworkVersion3, kHeartbeatVersion3, 0x0102030405060708),
            kHeartbeatRequest);
}

TEST(IcHeartbeatExchangeTest, GuestAnswersHeartbeatWithTheNextSequenceNumber) {
  auto response = PrepareHeartbeatResponse(kHeartbeatRequest);
  ASSERT_TRUE(response.has_value()) << response.error();
  EXPECT_EQ(*response, HeartbeatResponseBytes());

  const IcPacket packet = MustParse(*response);
  EXPECT_EQ(packet.header.icflags, kIcFlagTransaction | kIcFlagResponse);
  EXPECT_EQ(packet.header.status, kIcStatusOk);
  auto data = ParseHeartbeat(packet);
  ASSERT_TRUE(data.has_value()) << data.error();
  EXPECT_EQ(data->seq_num, 0x0102030405060709u);
}

TEST(IcHeartbeatExchangeTest, SequenceNumberWrapsLikeAnUnsignedCounter) {
  auto response = PrepareHeartbeatResponse(
      EncodeHeartbeatRequest(kIcFrameworkVersion3, kHeartbeatVersion3, UINT64_MAX));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(ParseHeartbeat(MustParse(*response))->seq_num, 0u);
}

// --- negotiation outcomes (Linux vmbus_prep_negotiate_resp) -----------------------------------

Bytes Request(std::vector<uint32_t> frameworks, std::vector<uint32_t> messages) {
  auto r = EncodeIcNegotiateRequest(frameworks, messages);
  EXPECT_TRUE(r.has_value()) << r.error();
  return r.value_or(Bytes{});
}

uint32_t U32At(const Bytes& b, size_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + offset, 4);
  return v;
}
uint16_t U16At(const Bytes& b, size_t offset) {
  uint16_t v = 0;
  std::memcpy(&v, b.data() + offset, 2);
  return v;
}

TEST(IcNegotiateTest, GuestPicksItsOwnMostPreferredCommonVersion) {
  // The host lists 3.0 first, but the guest prefers 1.0 here: the guest's order decides.
  const Bytes request = Request({kIcFrameworkVersion3, kIcFrameworkVersion1},
                                {kHeartbeatVersion3, kHeartbeatVersion1});
  const std::vector<uint32_t> fw = {kIcFrameworkVersion1, kIcFrameworkVersion3};
  const std::vector<uint32_t> hb = {kHeartbeatVersion1};
  auto reply = PrepareIcNegotiateResponse(request, fw, hb);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kAgreed);
  EXPECT_EQ(reply->framework_version, kIcFrameworkVersion1);
  EXPECT_EQ(reply->service_version, kHeartbeatVersion1);
}

TEST(IcNegotiateTest, OldHostOfferingOnlyVersionOneGetsVersionOne) {
  const Bytes request = Request({kIcFrameworkVersion1}, {kHeartbeatVersion1});
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kAgreed);
  EXPECT_EQ(reply->packet.size(), request.size());
  EXPECT_EQ(U16At(reply->packet, 28), 1);
  EXPECT_EQ(U16At(reply->packet, 30), 1);
  EXPECT_EQ(U32At(reply->packet, 36), 0x00000001u);  // {major 1, minor 0}
  EXPECT_EQ(U32At(reply->packet, 40), 0x00000001u);
  auto versions = ParseIcNegotiateResponse(MustParse(reply->packet));
  ASSERT_TRUE(versions.has_value()) << versions.error();
  EXPECT_EQ(*versions, (IcNegotiatedVersions{kIcFrameworkVersion1, kHeartbeatVersion1}));
}

TEST(IcNegotiateTest, NoCommonFrameworkAnswersZeroCountsAndEchoesTheCounts) {
  const Bytes request = Request({MakeIcVersion(2, 0), MakeIcVersion(4, 0)},
                                {kHeartbeatVersion3, kHeartbeatVersion1, MakeIcVersion(9, 9)});
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kNoCommonFramework);
  const Bytes& p = reply->packet;
  EXPECT_EQ(p[25], 0x05);
  EXPECT_EQ(U16At(p, 18), 0x10);
  EXPECT_EQ(U16At(p, 28), 0);
  EXPECT_EQ(U16At(p, 30), 0);
  EXPECT_EQ(U32At(p, 36), 0x00000002u);  // {major = framework count 2, minor 0}
  EXPECT_EQ(U32At(p, 40), 0x00000003u);  // {major = message count 3, minor 0}

  auto host_view = ParseIcNegotiateResponse(MustParse(p));
  ASSERT_FALSE(host_view.has_value());
  EXPECT_EQ(host_view.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(host_view.error().message, "IC negotiate: guest found no common version (counts 0/0)");
}

TEST(IcNegotiateTest, NoCommonServiceKeepsTheChosenFramework) {
  const Bytes request = Request({kIcFrameworkVersion3}, {MakeIcVersion(7, 0)});
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kNoCommonService);
  EXPECT_EQ(U16At(reply->packet, 28), 0);
  EXPECT_EQ(U16At(reply->packet, 30), 0);
  EXPECT_EQ(U32At(reply->packet, 36), 0x00000003u);  // framework 3.0
  EXPECT_EQ(U32At(reply->packet, 40), 0x00000001u);  // {message count 1, 0}
}

TEST(IcNegotiateTest, TooManyVersionsIsRefusedLikeNoMatch) {
  Bytes request = Request({kIcFrameworkVersion3}, {kHeartbeatVersion3});
  request[28] = 101;  // icframe_vercnt > 100
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kInvalidRequest);
  EXPECT_EQ(U16At(reply->packet, 28), 0);
  EXPECT_EQ(U32At(reply->packet, 36), 101u);
  EXPECT_EQ(U32At(reply->packet, 40), 1u);
}

TEST(IcNegotiateTest, VersionListBeyondThePacketIsRefusedAndNotReadPast) {
  Bytes request = Request({kIcFrameworkVersion3, kIcFrameworkVersion1},
                          {kHeartbeatVersion3, kHeartbeatVersion1});
  request.resize(44);  // room for 2 of the 4 listed versions
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kInvalidRequest);
  EXPECT_EQ(reply->packet.size(), 44u);
  EXPECT_EQ(U32At(reply->packet, 36), 2u);
  EXPECT_EQ(U32At(reply->packet, 40), 2u);
}

TEST(IcNegotiateTest, RefusalEntriesOutsideAShortPacketAreNotWritten) {
  Bytes request = Request({kIcFrameworkVersion3}, {kHeartbeatVersion3});
  request.resize(38);  // counts present, entry 0 only half present
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kInvalidRequest);
  ASSERT_EQ(reply->packet.size(), 38u);
  EXPECT_EQ(U16At(reply->packet, 28), 0);
  EXPECT_EQ(U16At(reply->packet, 36), 0x0003);  // untouched request bytes
}

TEST(IcNegotiateTest, PacketTooShortForTheCountsIsEchoedWithResponseFlags) {
  Bytes request = Request({kIcFrameworkVersion3}, {kHeartbeatVersion3});
  request.resize(31);
  auto reply =
      PrepareIcNegotiateResponse(request, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->outcome, IcNegotiateOutcome::kTruncated);
  Bytes expected = request;
  expected[25] = 0x05;
  EXPECT_EQ(reply->packet, expected);  // icmsgsize untouched, as Linux
}

TEST(IcNegotiateTest, PacketWithoutAnIcHeaderIsDroppedAndOtherTypesAreRefused) {
  auto short_packet =
      PrepareIcNegotiateResponse(Bytes(27, 0), kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions);
  ASSERT_FALSE(short_packet.has_value());
  EXPECT_EQ(short_packet.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(short_packet.error().message, "IC packet 27 < 28-byte header");

  auto heartbeat = PrepareIcNegotiateResponse(kHeartbeatRequest, kLinuxIcFrameworkVersions,
                                              kLinuxHeartbeatVersions);
  ASSERT_FALSE(heartbeat.has_value());
  EXPECT_EQ(heartbeat.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(heartbeat.error().message, "IC message type 1 is not NEGOTIATE");
}

// --- heartbeat answers ------------------------------------------------------------------------

TEST(IcHeartbeatTest, HeartbeatWithOnlyTheSequenceNumberIsAnswered) {
  Bytes request = kHeartbeatRequest;
  request.resize(kIcHeaderSize + 8);
  request[18] = 8;  // icmsgsize
  auto response = PrepareHeartbeatResponse(request);
  ASSERT_TRUE(response.has_value()) << response.error();
  ASSERT_EQ(response->size(), 36u);
  EXPECT_EQ((*response)[28], 0x09);
  auto data = ParseHeartbeat(MustParse(*response));
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->seq_num, 0x0102030405060709u);
  EXPECT_EQ(data->reserved[0], 0u);
}

TEST(IcHeartbeatTest, HeartbeatWithoutASequenceNumberIsDropped) {
  Bytes request = kHeartbeatRequest;
  request.resize(35);
  auto response = PrepareHeartbeatResponse(request);
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(response.error().message, "IC heartbeat packet 35 < 36");
}

TEST(IcHeartbeatTest, UnknownMessageTypeIsAnsweredWithFailStatus) {
  Bytes request = kHeartbeatRequest;
  request[12] = kIcMsgTypeShutdown;
  auto response = PrepareHeartbeatResponse(request);
  ASSERT_TRUE(response.has_value());
  Bytes expected = request;
  expected[20] = 0x05;  // HV_E_FAIL = 0x80004005, little-endian
  expected[21] = 0x40;
  expected[22] = 0x00;
  expected[23] = 0x80;
  expected[25] = 0x05;
  EXPECT_EQ(*response, expected);
  EXPECT_EQ(MustParse(*response).header.status, kIcStatusFail);
}

TEST(IcHeartbeatTest, NegotiateIsNotAHeartbeatRequest) {
  auto response = PrepareHeartbeatResponse(kNegotiateRequest);
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kInvalidArgument);
}

// --- parsers ----------------------------------------------------------------------------------

TEST(IcParseTest, PacketSplitsIntoHeadersAndBody) {
  const IcPacket p = MustParse(kHeartbeatRequest);
  EXPECT_EQ(p.pipe, (VmbusPipeHeader{kIcPipeFlagData, 60}));
  EXPECT_EQ(p.header.icverframe, (IcVersion{3, 0}));
  EXPECT_EQ(p.header.icmsgtype, kIcMsgTypeHeartbeat);
  EXPECT_EQ(p.header.icvermsg, (IcVersion{3, 0}));
  EXPECT_EQ(p.header.icmsgsize, 40);
  EXPECT_EQ(p.header.icflags, kIcFlagTransaction | kIcFlagRequest);
  EXPECT_EQ(p.body.size(), 40u);
  EXPECT_EQ(p.body.data(), kHeartbeatRequest.data() + 28);
}

TEST(IcParseTest, RejectsShortPacketsAndOversizedBodies) {
  auto short_packet = ParseIcPacket(Bytes(20, 0));
  ASSERT_FALSE(short_packet.has_value());
  EXPECT_EQ(short_packet.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(short_packet.error().message, "IC packet 20 < 28-byte header");

  Bytes truncated = kHeartbeatRequest;
  truncated.resize(40);
  auto oversized = ParseIcPacket(truncated);
  ASSERT_FALSE(oversized.has_value());
  EXPECT_EQ(oversized.error().message, "IC message size 40 > 12 bytes present");
}

TEST(IcParseTest, BodyIsLimitedToIcmsgsize) {
  // A Linux negotiate answer says 0x10 although the echoed packet is longer.
  const IcPacket p = MustParse(kNegotiateResponse);
  EXPECT_EQ(p.body.size(), 16u);
}

TEST(IcParseTest, NegotiateListsAreDecodedAsVersionWords) {
  auto n = ParseIcNegotiate(MustParse(kNegotiateRequest));
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(std::vector<uint32_t>(n->frameworks().begin(), n->frameworks().end()),
            (std::vector<uint32_t>{kIcFrameworkVersion1, kIcFrameworkVersion3}));
  EXPECT_EQ(std::vector<uint32_t>(n->messages().begin(), n->messages().end()),
            (std::vector<uint32_t>{kHeartbeatVersion1, kHeartbeatVersion3}));
}

TEST(IcParseTest, NegotiateRejectsEveryMalformedBody) {
  {
    auto n = ParseIcNegotiate(MustParse(kHeartbeatRequest));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().message, "IC message type 1 is not NEGOTIATE");
  }
  {
    Bytes b = kNegotiateRequest;
    b[18] = 4;  // icmsgsize 4
    auto n = ParseIcNegotiate(MustParse(b));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().message, "IC negotiate body 4 < 8");
  }
  {
    Bytes b = kNegotiateRequest;
    b[28] = 101;
    auto n = ParseIcNegotiate(MustParse(b));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().message, "IC negotiate version counts 101/2 exceed 100");
  }
  {
    Bytes b = kNegotiateRequest;
    b[18] = 12;  // icmsgsize: negotiate + one version
    auto n = ParseIcNegotiate(MustParse(b));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().code, ErrorCode::kMalformed);
    EXPECT_EQ(n.error().message, "IC negotiate lists 2+2 versions, body holds 1");
  }
}

TEST(IcParseTest, NegotiateResponseNeedsResponseFlags) {
  auto r = ParseIcNegotiateResponse(MustParse(kNegotiateRequest));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(r.error().message, "IC negotiate response flags 0x3 lack TRANSACTION|RESPONSE");
}

TEST(IcParseTest, HeartbeatRejectsOtherTypesAndShortBodies) {
  auto wrong = ParseHeartbeat(MustParse(kNegotiateRequest));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().message, "IC message type 0 is not HEARTBEAT");
  Bytes b = kHeartbeatRequest;
  b[18] = 4;
  auto short_body = ParseHeartbeat(MustParse(b));
  ASSERT_FALSE(short_body.has_value());
  EXPECT_EQ(short_body.error().message, "IC heartbeat body 4 < 8");
}

TEST(IcEncodeTest, NegotiateRequestRejectsEmptyOrOversizedLists) {
  const std::vector<uint32_t> none;
  const std::vector<uint32_t> one = {kIcFrameworkVersion3};
  const std::vector<uint32_t> too_many(kIcMaxVersionCount + 1, kHeartbeatVersion3);
  auto empty = EncodeIcNegotiateRequest(none, one);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.error().message, "IC negotiate needs 1..100 versions of each kind, got 0/1");
  EXPECT_FALSE(EncodeIcNegotiateRequest(one, too_many).has_value());
  const std::vector<uint32_t> max(kIcMaxVersionCount, kHeartbeatVersion3);
  auto largest = EncodeIcNegotiateRequest(max, max);
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(largest->size(), 28u + 8u + 800u);
  auto parsed = ParseIcNegotiate(MustParse(*largest));
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->framework_count, 100);
}

TEST(IcParseTest, ArbitraryBytesNeverCrashTheParsersOrTheGuestLogic) {
  std::mt19937 rng(4242);
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 120);
    for (auto& x : b) x = static_cast<uint8_t>(rng() % (i % 2 ? 256 : 8));
    if (auto p = ParseIcPacket(b)) {
      (void)ParseIcNegotiate(*p);
      (void)ParseIcNegotiateResponse(*p);
      (void)ParseHeartbeat(*p);
    }
    if (auto r =
            PrepareIcNegotiateResponse(b, kLinuxIcFrameworkVersions, kLinuxHeartbeatVersions)) {
      EXPECT_EQ(r->packet.size(), b.size());
    }
    if (auto r = PrepareHeartbeatResponse(b)) {
      EXPECT_EQ(r->size(), b.size());
    }
  }
}

TEST(IcVersionTest, WireOrderIsMajorThenMinor) {
  EXPECT_EQ(IcVersion::FromWord(MakeIcVersion(3, 2)), (IcVersion{3, 2}));
  EXPECT_EQ((IcVersion{4, 1}).ToWord(), 0x00040001u);
  const IcVersion v{1, 2};
  uint8_t bytes[4];
  std::memcpy(bytes, &v, 4);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[2], 2);
}

}  // namespace
}  // namespace uvmbus::wire
