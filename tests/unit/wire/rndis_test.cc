// Tests for wire/rndis.h: round trip of every RNDIS message, PACKET_MSG with each PPI, NDIS
// offload / RSS / config-parameter objects; rejection of truncated forms; each parsing rule of
// spec 9.6 (D1-D27) and 9.7 (P11, P13, P17) fed its violating input with the exact error or PPI
// status; deterministic random-input and mutation robustness runs.
#include "wire/rndis.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "wire/nvsp.h"

namespace uvmbus::wire {
namespace {

constexpr Direction kH2G = Direction::kHostToGuest;
constexpr Direction kG2H = Direction::kGuestToHost;

template <typename T>
void ExpectError(const Expected<T>& result, ErrorCode code, const std::string& message) {
  ASSERT_FALSE(result.has_value()) << "expected error: " << message;
  EXPECT_EQ(result.error().code, code) << result.error();
  EXPECT_EQ(result.error().message, message);
}

void Put32(std::vector<uint8_t>& v, size_t offset, uint32_t value) {
  std::memcpy(v.data() + offset, &value, 4);
}

uint32_t Get32(const std::vector<uint8_t>& v, size_t offset) {
  uint32_t value;
  std::memcpy(&value, v.data() + offset, 4);
  return value;
}

std::vector<uint8_t> Frame(size_t len) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(i * 7 + 1);
  return f;
}

template <typename Fn>
std::vector<uint8_t> Encoded(Fn&& encode) {
  std::vector<uint8_t> out(8192, 0xEE);
  auto n = encode(std::span<uint8_t>(out));
  EXPECT_TRUE(n.has_value()) << n.error();
  out.resize(n.value_or(0));
  return out;
}

template <RndisFixedMessage T>
std::vector<uint8_t> EncodedFixed(const T& msg) {
  return Encoded([&](std::span<uint8_t> out) { return EncodeRndis(out, msg); });
}

std::vector<uint8_t> PacketBytes(const RndisPpiSet& ppis, size_t frame_len, uint32_t pad = 1) {
  const auto frame = Frame(frame_len);
  return Encoded([&](std::span<uint8_t> out) { return EncodeRndisPacket(out, ppis, frame, pad); });
}

RndisPpiSet AllPpis() {
  RndisPpiSet p;
  p.hash_value = 0x51ccc178;
  p.hash_info = kNdisHashFunctionToeplitz | kNdisHashTcpIpv4;
  p.vlan = PackVlanInfo({.priority = 5, .dei = true, .vlan_id = 0xABC});
  p.lso = PackLsoInfo({.mss = 1460, .tcp_header_offset = 34, .v2 = true, .ipv6 = false});
  p.checksum = MakeTxChecksumInfo(kTxChecksumIsIpv4 | kTxChecksumTcp, 34);
  p.packet_id = PackPacketIdInfo({.version = 1, .flags = kPacketIdFlagFirstFrag, .pkt_id = 9});
  return p;
}

// A PACKET_MSG whose PPI area is exactly `area` (Linux layout otherwise).
std::vector<uint8_t> PacketWithPpiArea(const std::vector<uint8_t>& area, size_t frame_len) {
  std::vector<uint8_t> m(kRndisPacketHeaderSize, 0);
  m.insert(m.end(), area.begin(), area.end());
  const auto frame = Frame(frame_len);
  m.insert(m.end(), frame.begin(), frame.end());
  Put32(m, 0, 1);
  Put32(m, 4, static_cast<uint32_t>(m.size()));
  Put32(m, 8, static_cast<uint32_t>(kRndisPacketBodySize + area.size()));  // data_offset
  Put32(m, 12, static_cast<uint32_t>(frame_len));
  Put32(m, 28, kRndisPacketBodySize);
  Put32(m, 32, static_cast<uint32_t>(area.size()));
  return m;
}

// Appends one PPI element with exactly these header fields and data bytes.
void AppendElement(std::vector<uint8_t>& area, uint32_t size, uint32_t type, uint32_t ppi_offset,
                   const std::vector<uint8_t>& data) {
  const size_t at = area.size();
  area.resize(at + 12);
  Put32(area, at, size);
  Put32(area, at + 4, type);
  Put32(area, at + 8, ppi_offset);
  area.insert(area.end(), data.begin(), data.end());
}

void AppendU32Element(std::vector<uint8_t>& area, uint32_t type, uint32_t value) {
  std::vector<uint8_t> data(4);
  std::memcpy(data.data(), &value, 4);
  AppendElement(area, 16, type, 12, data);
}

// ---------------------------------------------------------------------------------------------
// Layouts and round trips
// ---------------------------------------------------------------------------------------------

TEST(RndisTest, FixedMessagesRoundTripInTheirDirection) {
  const RndisInitializeRequest init{.request_id = 1, .max_transfer_size = 0x4000};
  const RndisInitializeComplete init_c{.request_id = 1, .max_packets_per_message = 8};
  const RndisHaltRequest halt{.request_id = 9};
  const RndisSetComplete set_c{.request_id = 3, .status = RndisStatus::kNotSupported};
  const RndisResetRequest reset{};
  const RndisKeepaliveRequest ka{.request_id = 4};
  const RndisKeepaliveComplete ka_c{.request_id = 4, .status = RndisStatus::kSuccess};

  auto check = [](const auto& msg, Direction dir) {
    using T = std::decay_t<decltype(msg)>;
    const auto bytes = EncodedFixed(msg);
    ASSERT_EQ(bytes.size(), T::kWireSize);
    EXPECT_EQ(Get32(bytes, 0), static_cast<uint32_t>(T::kType));
    EXPECT_EQ(Get32(bytes, 4), T::kWireSize);
    auto parsed = ParseRndisMessage(bytes, dir);
    ASSERT_TRUE(parsed.has_value()) << parsed.error();
    EXPECT_EQ(std::get<T>(*parsed), msg);
    EXPECT_EQ(TypeOf(*parsed), T::kType);
    auto decoded = DecodeRndisMessage(bytes);
    ASSERT_TRUE(decoded.has_value()) << decoded.error();
    EXPECT_EQ(std::get<T>(*decoded), msg);
  };
  check(init, kG2H);
  check(init_c, kH2G);
  check(halt, kG2H);
  check(set_c, kH2G);
  check(reset, kG2H);
  check(ka, kG2H);
  check(ka_c, kG2H);
}

TEST(RndisTest, DeviceOnlyCompletionsDecodeWithoutADirection) {
  const RndisResetComplete reset_c{.status = RndisStatus::kSuccess, .addressing_reset = 1};
  auto decoded = DecodeRndisMessage(EncodedFixed(reset_c));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(std::get<RndisResetComplete>(*decoded), reset_c);

  const auto info = Frame(6);
  const auto set_ex_c = Encoded([&](std::span<uint8_t> out) {
    return EncodeRndisSetExComplete(out, 5, RndisStatus::kNotSupported, info);
  });
  decoded = DecodeRndisMessage(set_ex_c);
  ASSERT_TRUE(decoded.has_value());
  const auto& m = std::get<RndisSetExCompleteMessage>(*decoded);
  EXPECT_EQ(m.fixed.request_id, 5u);
  EXPECT_EQ(m.fixed.status, RndisStatus::kNotSupported);
  EXPECT_EQ(std::vector<uint8_t>(m.info.begin(), m.info.end()), info);
}

TEST(RndisTest, InitializeCompleteDefaultsAreOpenVmmValues) {
  const auto bytes = EncodedFixed(RndisInitializeComplete{.request_id = 7});
  const std::vector<uint32_t> words = {0x80000002, 52, 7, 0, 1, 0, 1, 0, 8, 0xEFFFFFFF, 3, 0, 0};
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(Get32(bytes, 4 * i), words[i]) << i;
}

TEST(RndisTest, QueryAndSetPutTheBufferRightAfterTheFixedPart) {
  const auto info = Frame(18);
  for (auto type : {RndisMessageType::kQuery, RndisMessageType::kSet, RndisMessageType::kSetEx}) {
    const auto bytes = Encoded([&](std::span<uint8_t> out) {
      switch (type) {
        case RndisMessageType::kQuery:
          return EncodeRndisQuery(out, 11, NdisOid::kGenReceiveScaleCapabilities, info);
        case RndisMessageType::kSet:
          return EncodeRndisSet(out, 11, NdisOid::kGenReceiveScaleCapabilities, info);
        default:
          return EncodeRndisSetEx(out, 11, NdisOid::kGenReceiveScaleCapabilities, info);
      }
    });
    ASSERT_EQ(bytes.size(), 46u);  // 28 + 18: not a multiple of 4, like Linux's RSS query
    EXPECT_EQ(Get32(bytes, 0), static_cast<uint32_t>(type));
    EXPECT_EQ(Get32(bytes, 4), 46u);
    EXPECT_EQ(Get32(bytes, 8), 11u);
    EXPECT_EQ(Get32(bytes, 12), 0x00010203u);
    EXPECT_EQ(Get32(bytes, 16), 18u);
    EXPECT_EQ(Get32(bytes, 20), 20u);
    EXPECT_EQ(Get32(bytes, 24), 0u);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 28, bytes.end()), info);
    auto parsed = ParseRndisMessage(bytes, kG2H);
    ASSERT_TRUE(parsed.has_value()) << parsed.error();
    std::span<const uint8_t> got;
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (requires { m.fixed.oid; }) {
            got = m.info;
            EXPECT_EQ(m.fixed.request_id, 11u);
            EXPECT_EQ(m.fixed.oid, NdisOid::kGenReceiveScaleCapabilities);
            EXPECT_EQ(T::kType, type);
          } else {
            ADD_FAILURE() << "wrong alternative";
          }
        },
        *parsed);
    EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), info);
  }
}

TEST(RndisTest, QueryWithoutBufferHasLengthTwentyEight) {
  const auto bytes = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisQuery(out, 2, NdisOid::k802_3PermanentAddress, {});
  });
  EXPECT_EQ(bytes.size(), 28u);
  auto parsed = ParseRndisMessage(bytes, kG2H);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(std::get<RndisQueryMessage>(*parsed).info.empty());
}

TEST(RndisTest, QueryCompleteAlwaysReportsOffsetSixteen) {
  const std::vector<uint8_t> mac = {0x00, 0x15, 0x5d, 0x01, 0x02, 0x03};
  const auto bytes = Encoded([&](std::span<uint8_t> out) {
    return EncodeRndisQueryComplete(out, 4, RndisStatus::kSuccess, mac);
  });
  ASSERT_EQ(bytes.size(), 30u);
  EXPECT_EQ(Get32(bytes, 16), 6u);
  EXPECT_EQ(Get32(bytes, 20), 16u);
  auto parsed = ParseRndisMessage(bytes, kH2G);
  ASSERT_TRUE(parsed.has_value());
  const auto& m = std::get<RndisQueryCompleteMessage>(*parsed);
  EXPECT_EQ(std::vector<uint8_t>(m.info.begin(), m.info.end()), mac);
  // Empty buffer (failed query): offset is still 16, which Linux requires.
  const auto failed = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisQueryComplete(out, 5, RndisStatus::kNotSupported, {});
  });
  EXPECT_EQ(failed.size(), 24u);
  EXPECT_EQ(Get32(failed, 20), 16u);
  EXPECT_TRUE(ParseRndisMessage(failed, kH2G).has_value());
}

TEST(RndisTest, IndicateStatusWithoutBufferHasOffsetZero) {
  const auto bytes = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisIndicateStatus(out, RndisStatus::kMediaConnect, {});
  });
  const std::vector<uint32_t> words = {7, 20, 0x4001000B, 0, 0};
  ASSERT_EQ(bytes.size(), 20u);
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(Get32(bytes, 4 * i), words[i]);
  auto parsed = ParseRndisMessage(bytes, kH2G);
  ASSERT_TRUE(parsed.has_value());
  const auto& m = std::get<RndisIndicateStatusMessage>(*parsed);
  EXPECT_EQ(m.fixed.status, RndisStatus::kMediaConnect);
  EXPECT_TRUE(m.status_buffer.empty());
  EXPECT_EQ(LinkSpeedFromIndication(m), std::nullopt);
}

TEST(RndisTest, LinkSpeedChangeCarriesTheSpeedAtOffsetTwelve) {
  const auto bytes =
      Encoded([](std::span<uint8_t> out) { return EncodeRndisLinkSpeedChange(out, 100000000); });
  ASSERT_EQ(bytes.size(), 24u);
  EXPECT_EQ(Get32(bytes, 12), 4u);
  EXPECT_EQ(Get32(bytes, 16), 12u);
  EXPECT_EQ(Get32(bytes, 20), 100000000u);
  auto parsed = ParseRndisMessage(bytes, kH2G);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(LinkSpeedFromIndication(std::get<RndisIndicateStatusMessage>(*parsed)), 100000000u);
}

TEST(RndisTest, PacketWithEveryPpiRoundTripsInBothDirections) {
  const RndisPpiSet ppis = AllPpis();
  const auto bytes = PacketBytes(ppis, 60);
  ASSERT_EQ(bytes.size(), 44u + 6 * 16 + 60);
  for (Direction dir : {kH2G, kG2H}) {
    auto p = ParseRndisPacket(bytes, dir);
    ASSERT_TRUE(p.has_value()) << p.error();
    EXPECT_EQ(p->ppis, ppis);
    EXPECT_EQ(p->ppi_count, 6u);
    EXPECT_EQ(p->ppi_status, PpiStatus::kOk);
    EXPECT_EQ(std::vector<uint8_t>(p->frame.begin(), p->frame.end()), Frame(60));
    auto any = ParseRndisMessage(bytes, dir);
    ASSERT_TRUE(any.has_value());
    EXPECT_EQ(std::get<RndisPacket>(*any).ppis, ppis);
  }
}

TEST(RndisTest, PacketHeaderFollowsTheLinuxTransmitLayout) {
  RndisPpiSet ppis;
  ppis.hash_value = 0x1234;
  ppis.vlan = PackVlanInfo({.vlan_id = 10});
  const auto bytes = PacketBytes(ppis, 14);
  ASSERT_EQ(bytes.size(), 44u + 32 + 14);
  EXPECT_EQ(Get32(bytes, 0), 1u);
  EXPECT_EQ(Get32(bytes, 4), 90u);
  EXPECT_EQ(Get32(bytes, 8), 36u + 32);  // data_offset = 36 + per_pkt_info_len
  EXPECT_EQ(Get32(bytes, 12), 14u);
  EXPECT_EQ(Get32(bytes, 28), 36u);  // per_pkt_info_offset
  EXPECT_EQ(Get32(bytes, 32), 32u);
  // First PPI: hash value {16, 8, 12, value}; second: 802.1Q.
  EXPECT_EQ(Get32(bytes, 44), 16u);
  EXPECT_EQ(Get32(bytes, 48), 8u);
  EXPECT_EQ(Get32(bytes, 52), 12u);
  EXPECT_EQ(Get32(bytes, 56), 0x1234u);
  EXPECT_EQ(Get32(bytes, 64), 6u);
  EXPECT_EQ(RndisPacketHeaderSize(ppis), 76u);
  EXPECT_EQ(kRndisAndPpiSize, 116u);
}

TEST(RndisTest, PacketWithoutPpisHasOffsetThirtySixAndLengthZero) {
  const auto bytes = PacketBytes({}, 64);
  EXPECT_EQ(Get32(bytes, 28), 36u);
  EXPECT_EQ(Get32(bytes, 32), 0u);
  for (Direction dir : {kH2G, kG2H}) {
    auto p = ParseRndisPacket(bytes, dir);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->ppi_count, 0u);
    EXPECT_EQ(p->ppis, RndisPpiSet{});
  }
}

TEST(RndisTest, PaddedPacketRoundsMessageLengthAndZeroFills) {
  const auto bytes = PacketBytes(AllPpis(), 61, 8);
  ASSERT_EQ(bytes.size() % 8, 0u);
  EXPECT_EQ(Get32(bytes, 4), bytes.size());
  EXPECT_EQ(Get32(bytes, 12), 61u);
  const size_t unpadded = 44 + 96 + 61;
  for (size_t i = unpadded; i < bytes.size(); ++i) EXPECT_EQ(bytes[i], 0) << i;
  auto p = ParseRndisPacket(bytes, kG2H);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->frame.size(), 61u);
  std::vector<uint8_t> out(512);
  ExpectError(EncodeRndisPacket(out, {}, Frame(10), 6), ErrorCode::kInvalidArgument,
              "RNDIS padding 6 is not a power of two");
  ExpectError(EncodeRndisPacket(std::span<uint8_t>(out).first(50), {}, Frame(10), 1),
              ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG needs 54 bytes, buffer has 50");
}

TEST(RndisTest, HeaderOnlyEncoderSupportsAFixedFrameOffset) {
  // OpenVMM-style receive layout: 256 bytes of header room, frame at 256.
  RndisPpiSet ppis;
  ppis.checksum = kRxChecksumTcpSucceeded | kRxChecksumIpSucceeded;
  std::vector<uint8_t> sub_alloc(1806, 0xEE);
  auto off = EncodeRndisPacketHeader(sub_alloc, ppis, 1500, 256);
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(*off, 256u);
  for (size_t i = 60; i < 256; ++i) EXPECT_EQ(sub_alloc[i], 0) << i;
  const auto frame = Frame(1500);
  std::copy(frame.begin(), frame.end(), sub_alloc.begin() + 256);
  EXPECT_EQ(Get32(sub_alloc, 4), 1756u);
  EXPECT_EQ(Get32(sub_alloc, 8), 248u);
  auto p = ParseRndisPacket(sub_alloc, kH2G);  // the range is the whole sub-allocation
  ASSERT_TRUE(p.has_value()) << p.error();
  EXPECT_EQ(std::vector<uint8_t>(p->frame.begin(), p->frame.end()), frame);
  EXPECT_EQ(p->ppis.checksum, ppis.checksum);

  ExpectError(EncodeRndisPacketHeader(sub_alloc, ppis, 10, 40), ErrorCode::kInvalidArgument,
              "RNDIS frame offset 40 < header size 60");
  ExpectError(EncodeRndisPacketHeader(std::span<uint8_t>(sub_alloc).first(59), ppis, 10),
              ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG header needs 60 bytes, buffer has 59");
  ExpectError(EncodeRndisPacketHeader(sub_alloc, ppis, 0xFFFFFFF0u, 256),
              ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG of 4294967536 bytes too large");
}

TEST(RndisTest, HeadParserValidatesAgainstTheRangeAndLeavesTheFrameInPlace) {
  // The receive-buffer range stays in shared memory; only its first 256 bytes are copied.
  RndisPpiSet ppis;
  ppis.checksum = kRxChecksumUdpSucceeded;
  ppis.hash_value = 0x0f0c461c;
  std::vector<uint8_t> range(1806, 0);
  ASSERT_TRUE(EncodeRndisPacketHeader(range, ppis, 1500, 256).has_value());
  const std::vector<uint8_t> head(range.begin(), range.begin() + 256);
  for (Direction dir : {kH2G, kG2H}) {
    auto p = ParseRndisPacketHead(head, range.size(), dir);
    ASSERT_TRUE(p.has_value()) << p.error();
    EXPECT_TRUE(p->frame.empty());  // not inside the copy: the caller copies it once
    EXPECT_EQ(kRndisHeaderSize + p->fixed.data_offset, 256u);
    EXPECT_EQ(p->fixed.data_len, 1500u);
    EXPECT_EQ(p->ppis, ppis);
  }
  // The lengths are still checked against the whole range.
  auto bad = head;
  Put32(bad, 12, 1551);  // msg_len 1806 below: 1806 - 8 - 248 = 1550 bytes fit
  Put32(bad, 4, 1806);
  ExpectError(ParseRndisPacketHead(bad, range.size(), kH2G), ErrorCode::kMalformed,
              "RNDIS data_len 1551 > 1550 bytes after data_offset");
  ExpectError(ParseRndisPacketHead(head, 255, kH2G), ErrorCode::kInvalidArgument,
              "RNDIS head copy 256 > 255 bytes available");
  ExpectError(ParseRndisPacketHead(std::span<const uint8_t>(head).first(43), range.size(), kH2G),
              ErrorCode::kInvalidArgument, "RNDIS head copy 43 < 44 bytes");
  ExpectError(ParseRndisPacketHead(std::span<const uint8_t>(head).first(4), 4, kH2G),
              ErrorCode::kMalformed, "RNDIS message 4 < 8-byte header");
}

TEST(RndisTest, HeadParserNeedsThePpisInsideTheCopy) {
  const auto bytes = PacketBytes(AllPpis(), 100);  // PPIs end at 44 + 96 = 140
  ExpectError(ParseRndisPacketHead(std::span<const uint8_t>(bytes).first(139), bytes.size(), kH2G),
              ErrorCode::kMalformed, "RNDIS PPIs end at 140, beyond the 139 bytes copied");
  auto p = ParseRndisPacketHead(std::span<const uint8_t>(bytes).first(140), bytes.size(), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppis, AllPpis());
}

TEST(RndisTest, PacketParserRejectsOtherMessageTypes) {
  const auto bytes = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisQuery(out, 1, NdisOid::kGenLinkSpeed, std::vector<uint8_t>(20, 0));
  });
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS QUERY_MSG (0x4) is not a PACKET_MSG");
}

TEST(RndisTest, FixedEncodersCheckTheBufferAndForceTheHeader) {
  std::array<uint8_t, 51> small{};
  ExpectError(EncodeRndis(small, RndisInitializeComplete{}), ErrorCode::kInvalidArgument,
              "RNDIS INITIALIZE_CMPLT needs 52 bytes, buffer has 51");
  RndisHaltRequest halt{.request_id = 1};
  halt.header = {RndisMessageType::kPacket, 999};
  const auto bytes = EncodedFixed(halt);
  EXPECT_EQ(Get32(bytes, 0), 3u);
  EXPECT_EQ(Get32(bytes, 4), 12u);
}

// ---------------------------------------------------------------------------------------------
// Batches (Linux packs several PACKET_MSGs into one send section)
// ---------------------------------------------------------------------------------------------

TEST(RndisSplitterTest, SplitsAPaddedBatchIntoItsMessages) {
  std::vector<uint8_t> section;
  for (size_t len : {60u, 61u, 1514u}) {
    const auto m = PacketBytes(AllPpis(), len, len == 1514 ? 1 : 8);
    section.insert(section.end(), m.begin(), m.end());
  }
  RndisMessageSplitter split(section, 8);
  std::vector<size_t> frames;
  while (!split.Done()) {
    auto m = split.Next();
    ASSERT_TRUE(m.has_value()) << m.error();
    auto p = ParseRndisPacket(*m, kG2H);
    ASSERT_TRUE(p.has_value()) << p.error();
    frames.push_back(p->frame.size());
  }
  EXPECT_EQ(frames, (std::vector<size_t>{60, 61, 1514}));
}

TEST(RndisSplitterTest, RejectsTrailingBytesOverlongLengthAndTooManyMessages) {
  auto one = PacketBytes({}, 20);
  auto tail = one;
  tail.resize(tail.size() + 4, 0);
  RndisMessageSplitter a(tail, 8);
  EXPECT_TRUE(a.Next().has_value());
  ExpectError(a.Next(), ErrorCode::kMalformed, "RNDIS batch: 4 trailing bytes");
  EXPECT_TRUE(a.Done());  // poisoned: a `while (!Done())` loop ends

  auto overlong = one;
  Put32(overlong, 4, 1000);
  RndisMessageSplitter b(overlong, 8);
  ExpectError(b.Next(), ErrorCode::kMalformed, "RNDIS batch: msg_len 1000 > 64 bytes remaining");

  auto zero = one;
  Put32(zero, 4, 0);
  RndisMessageSplitter c(zero, 8);
  ExpectError(c.Next(), ErrorCode::kMalformed, "RNDIS batch: msg_len 0 < 8");

  std::vector<uint8_t> three;
  for (int i = 0; i < 3; ++i) three.insert(three.end(), one.begin(), one.end());
  RndisMessageSplitter d(three, 2);
  EXPECT_TRUE(d.Next().has_value());
  EXPECT_TRUE(d.Next().has_value());
  ExpectError(d.Next(), ErrorCode::kMalformed, "RNDIS batch: more than 2 messages");
}

// ---------------------------------------------------------------------------------------------
// Guest receiving from the host (spec 9.6)
// ---------------------------------------------------------------------------------------------

TEST(RndisGuestRulesTest, D1RangeShorterThanTheHeaderFails) {
  const std::vector<uint8_t> seven(7, 0);
  ExpectError(ParseRndisMessage(seven, kH2G), ErrorCode::kMalformed,
              "RNDIS message 7 < 8-byte header");
  ExpectError(ParseRndisPacket(seven, kH2G), ErrorCode::kMalformed,
              "RNDIS message 7 < 8-byte header");
  ExpectError(ParseRndisMessage({}, kH2G), ErrorCode::kMalformed,
              "RNDIS message 0 < 8-byte header");
}

TEST(RndisGuestRulesTest, D2MessageLengthOutsideTheRangeFails) {
  auto bytes = PacketBytes({}, 20);
  Put32(bytes, 4, 4);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed, "RNDIS msg_len 4 < 8");
  Put32(bytes, 4, 65);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS msg_len 65 > 64 bytes available");
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS msg_len 65 > 64 bytes available");
  Put32(bytes, 4, 0xFFFFFFFF);
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS msg_len 4294967295 > 64 bytes available");
}

TEST(RndisGuestRulesTest, D3PacketShorterThanItsHeaderFails) {
  auto bytes = PacketBytes({}, 20);
  Put32(bytes, 4, 43);
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS PACKET_MSG msg_len 43 < 44");
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS PACKET_MSG msg_len 43 < 44");
}

TEST(RndisGuestRulesTest, D4DataOffsetBeyondTheMessageFails) {
  auto bytes = PacketBytes({}, 20);  // msg_len 64, body 56
  Put32(bytes, 8, 56);
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS data_offset 56 beyond msg_len 64");
  Put32(bytes, 8, 0xFFFFFFFF);
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS data_offset 4294967295 beyond msg_len 64");
}

TEST(RndisGuestRulesTest, D5DataLengthPastTheMessageFails) {
  auto bytes = PacketBytes({}, 20);  // data_offset 36, body 56: 20 bytes after
  Put32(bytes, 12, 21);
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS data_len 21 > 20 bytes after data_offset");
  Put32(bytes, 12, 0xFFFFFFFF);  // would wrap a 32-bit offset + len
  ExpectError(ParseRndisPacket(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS data_len 4294967295 > 20 bytes after data_offset");
}

TEST(RndisGuestRulesTest, D6BadPpiOffsetMakesThePpisBeIgnored) {
  auto bytes = PacketBytes(AllPpis(), 30);
  for (uint32_t bad : {20u, 35u, static_cast<uint32_t>(bytes.size()), 0xFFFFFFF0u}) {
    Put32(bytes, 28, bad);
    auto p = ParseRndisPacket(bytes, kH2G);
    ASSERT_TRUE(p.has_value()) << p.error();
    EXPECT_EQ(p->ppi_status, PpiStatus::kBadOffset) << bad;
    EXPECT_EQ(p->ppis, RndisPpiSet{});
    EXPECT_EQ(p->frame.size(), 30u);  // the frame is still delivered
  }
}

TEST(RndisGuestRulesTest, D7BadPpiLengthMakesThePpisBeIgnored) {
  auto bytes = PacketBytes(AllPpis(), 30);
  for (uint32_t bad : {11u, 1u, static_cast<uint32_t>(bytes.size()), 0xFFFFFFFFu}) {
    Put32(bytes, 32, bad);
    auto p = ParseRndisPacket(bytes, kH2G);
    ASSERT_TRUE(p.has_value()) << p.error();
    EXPECT_EQ(p->ppi_status, PpiStatus::kBadLength) << bad;
    EXPECT_EQ(p->ppis, RndisPpiSet{});
  }
}

TEST(RndisGuestRulesTest, D8ElementLargerThanTheRestStopsTheWalk) {
  std::vector<uint8_t> area;
  AppendU32Element(area, kPpiHashValue, 0xAAAA);
  AppendElement(area, 40, kPpiIeee8021q, 12, {1, 0, 0, 0});  // claims 40, 16 remain
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kElementOverrun);
  EXPECT_EQ(p->ppis.hash_value, 0xAAAAu);  // found before the bad element: kept
  EXPECT_FALSE(p->ppis.vlan.has_value());
  EXPECT_EQ(p->ppi_count, 1u);
}

TEST(RndisGuestRulesTest, D8ZeroSizeElementStopsInsteadOfSpinning) {
  std::vector<uint8_t> area;
  AppendElement(area, 0, kPpiHashValue, 12, {1, 2, 3, 4});
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kElementOverrun);
  EXPECT_EQ(p->ppi_count, 0u);
}

TEST(RndisGuestRulesTest, D9ElementSmallerThanItsHeaderOrBadDataOffsetStops) {
  struct Case {
    uint32_t size;
    uint32_t ppi_offset;
  };
  for (const Case& c : {Case{8, 12}, Case{16, 8}, Case{16, 16}, Case{16, 0xFFFFFFFF}}) {
    std::vector<uint8_t> area;
    AppendElement(area, c.size, kPpiHashValue, c.ppi_offset, {1, 2, 3, 4});
    area.resize(16, 0);
    auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->ppi_status, PpiStatus::kElementBadHeader) << c.size << "/" << c.ppi_offset;
    EXPECT_FALSE(p->ppis.hash_value.has_value());
  }
}

TEST(RndisGuestRulesTest, D10KnownPpiWithTooLittleDataStops) {
  std::vector<uint8_t> area;
  AppendElement(area, 16, kPpiHashValue, 14, {0, 0, 5, 6});  // 2 data bytes
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kElementDataShort);
  EXPECT_FALSE(p->ppis.hash_value.has_value());
}

TEST(RndisGuestRulesTest, PpiDataIsReadAtItsOffset) {
  // Linux honours ppi_offset (10.2 N-i): data at 16 inside a 20-byte element.
  std::vector<uint8_t> area;
  AppendElement(area, 20, kPpiHashValue, 16, {0xFF, 0xFF, 0xFF, 0xFF, 0x78, 0x56, 0x34, 0x12});
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kOk);
  EXPECT_EQ(p->ppis.hash_value, 0x12345678u);
}

TEST(RndisGuestRulesTest, D11WrongInternalBitIsNotAMatch) {
  std::vector<uint8_t> area;
  AppendU32Element(area, kRndisPpiInternalBit | kPpiHashValue, 1);  // internal 8: not the hash
  AppendU32Element(area, 1, 2);                                     // public 1 (IPsec): not the id
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kOk);
  EXPECT_EQ(p->ppi_count, 2u);
  EXPECT_FALSE(p->ppis.hash_value.has_value());
  EXPECT_FALSE(p->ppis.packet_id.has_value());
}

TEST(RndisGuestRulesTest, FirstPpiOfATypeWinsAndUnknownTypesAreSkipped) {
  std::vector<uint8_t> area;
  AppendU32Element(area, 11, 0xDEAD);  // SHORT_PKT_PADINFO: unused
  AppendU32Element(area, kPpiIeee8021q, 0x50);
  AppendU32Element(area, kPpiIeee8021q, 0x60);
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppis.vlan, 0x50u);
  EXPECT_EQ(p->ppi_count, 3u);
}

TEST(RndisGuestRulesTest, PpiCountIsCapped) {
  std::vector<uint8_t> area;
  for (uint32_t i = 0; i < kRndisMaxPpiCount + 1; ++i) AppendU32Element(area, 11, i);
  auto p = ParseRndisPacket(PacketWithPpiArea(area, 20), kH2G);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->ppi_status, PpiStatus::kTooMany);
  EXPECT_EQ(p->ppi_count, kRndisMaxPpiCount);
}

TEST(RndisGuestRulesTest, D15OnlyLinuxAcceptedTypesComeFromTheHost) {
  for (RndisMessageType t : {RndisMessageType::kKeepalive, RndisMessageType::kResetComplete,
                             RndisMessageType::kKeepaliveComplete, RndisMessageType::kSetExComplete,
                             RndisMessageType::kInitialize, RndisMessageType::kQuery}) {
    std::vector<uint8_t> bytes(64, 0);
    Put32(bytes, 0, static_cast<uint32_t>(t));
    Put32(bytes, 4, 64);
    ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
                "RNDIS " + std::string(RndisMessageName(t)) + " not accepted from the host");
  }
  std::vector<uint8_t> unknown(16, 0);
  Put32(unknown, 0, 0x42);
  Put32(unknown, 4, 16);
  ExpectError(ParseRndisMessage(unknown, kH2G), ErrorCode::kMalformed,
              "RNDIS message type 0x42 unknown");
  Put32(unknown, 0, 0xFF000001);  // BUS_MSG
  ExpectError(DecodeRndisMessage(unknown), ErrorCode::kMalformed,
              "RNDIS message type 0xff000001 unknown");
}

TEST(RndisGuestRulesTest, D17CompletionWithoutRequestIdIsDropped) {
  auto bytes = EncodedFixed(RndisSetComplete{.request_id = 33});
  Put32(bytes, 4, 11);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS SET_CMPLT msg_len 11 < 16");
  EXPECT_EQ(RndisCompletionRequestId(bytes), std::nullopt);
  Put32(bytes, 4, 12);  // id present, status missing: the request can still be failed
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS SET_CMPLT msg_len 12 < 16");
  EXPECT_EQ(RndisCompletionRequestId(bytes), 33u);
  EXPECT_EQ(RndisCompletionRequestId(EncodedFixed(RndisResetComplete{})), std::nullopt);
  EXPECT_EQ(RndisCompletionRequestId(EncodedFixed(RndisHaltRequest{})), std::nullopt);
}

TEST(RndisGuestRulesTest, D19OverlongCompletionFailsButNamesItsRequest) {
  std::vector<uint8_t> info(4096 + 52 + 1 - 24, 0x11);  // msg_len 4149
  const auto bytes = Encoded([&](std::span<uint8_t> out) {
    return EncodeRndisQueryComplete(out, 77, RndisStatus::kSuccess, info);
  });
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT msg_len 4149 > 4148");
  EXPECT_EQ(RndisCompletionRequestId(bytes), 77u);
  // One byte less is fine.
  info.pop_back();
  EXPECT_TRUE(ParseRndisMessage(Encoded([&](std::span<uint8_t> out) {
                                  return EncodeRndisQueryComplete(out, 77, RndisStatus::kSuccess,
                                                                  info);
                                }),
                                kH2G)
                  .has_value());
}

TEST(RndisGuestRulesTest, D20MalformedQueryCompletionFails) {
  const std::vector<uint8_t> info = {1, 2, 3, 4};
  const auto good = Encoded([&](std::span<uint8_t> out) {
    return EncodeRndisQueryComplete(out, 1, RndisStatus::kSuccess, info);
  });  // msg_len 28, body 20, offset 16, length 4
  auto bytes = good;
  Put32(bytes, 4, 20);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT msg_len 20 < 24");
  bytes = good;
  Put32(bytes, 20, 12);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT info_buf_offset 12 < 16");
  bytes = good;
  Put32(bytes, 20, 21);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT info_buf_offset 21 beyond the 20-byte body");
  bytes = good;
  Put32(bytes, 16, 5);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT info_buflen 5 > 4 bytes after info_buf_offset");
  bytes = good;
  Put32(bytes, 16, 0xFFFFFFFF);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS QUERY_CMPLT info_buflen 4294967295 > 4 bytes after info_buf_offset");
}

TEST(RndisGuestRulesTest, D22ShortIndicationIsDropped) {
  auto bytes = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisIndicateStatus(out, RndisStatus::kMediaDisconnect, {});
  });
  Put32(bytes, 4, 19);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS INDICATE_STATUS_MSG msg_len 19 < 20");
}

TEST(RndisGuestRulesTest, D23MalformedLinkSpeedIndicationIsDropped) {
  const auto good =
      Encoded([](std::span<uint8_t> out) { return EncodeRndisLinkSpeedChange(out, 12345); });
  auto bytes = good;
  Put32(bytes, 12, 2);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS LINK_SPEED_CHANGE status_buflen 2 < 4");
  bytes = good;
  Put32(bytes, 16, 8);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS INDICATE_STATUS_MSG status_buf_offset 8 < 12");
  bytes = good;
  Put32(bytes, 16, 17);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS INDICATE_STATUS_MSG status_buf_offset 17 beyond the 16-byte body");
  bytes = good;
  Put32(bytes, 12, 5);
  ExpectError(ParseRndisMessage(bytes, kH2G), ErrorCode::kMalformed,
              "RNDIS INDICATE_STATUS_MSG status_buflen 5 > 4 bytes after status_buf_offset");
}

TEST(RndisGuestRulesTest, LinkSpeedBufferOutsideMsgLenButInsideTheRangeIsAccepted) {
  // Pre-"Fe" Hyper-V (10.2 N-m): msg_len 20 leaves the buffer out; the range holds it.
  auto bytes =
      Encoded([](std::span<uint8_t> out) { return EncodeRndisLinkSpeedChange(out, 100000); });
  Put32(bytes, 4, 20);
  auto parsed = ParseRndisMessage(bytes, kH2G);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(LinkSpeedFromIndication(std::get<RndisIndicateStatusMessage>(*parsed)), 100000u);
}

TEST(RndisGuestRulesTest, D24OffloadCapabilitiesAreValidated) {
  NdisOffload caps;
  caps.csum.ip4_txcsum = kNdisTxCsumTcp | kNdisTxCsumTcpOptions | kNdisTxCsumUdp;
  caps.lsov2.ip4_encap = kNdisEncap802_3;
  caps.lsov2.ip4_maxsz = 62780;
  caps.rsc = {1, 1, {}};
  caps.encap_gre = {1, 2};
  std::vector<uint8_t> info(156);
  ASSERT_TRUE(EncodeNdisObject(info, caps).has_value());
  auto parsed = ParseNdisOffload(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, caps);

  auto bad = info;
  bad[0] = 0x80;
  ExpectError(ParseNdisOffload(bad), ErrorCode::kMalformed,
              "offload capabilities type 0x80 != 0xa7");
  bad = info;
  bad[1] = 0;
  ExpectError(ParseNdisOffload(bad), ErrorCode::kMalformed, "offload capabilities revision 0 < 1");
  bad = info;
  bad[2] = 111;
  bad[3] = 0;
  ExpectError(ParseNdisOffload(bad), ErrorCode::kMalformed, "offload capabilities size 111 < 112");
  ExpectError(ParseNdisOffload(std::span<const uint8_t>(info).first(155)), ErrorCode::kMalformed,
              "offload capabilities size 156 > 155 bytes present");
  ExpectError(ParseNdisOffload(std::span<const uint8_t>(info).first(3)), ErrorCode::kMalformed,
              "offload capabilities 3 bytes < 4-byte header");
}

TEST(RndisGuestRulesTest, RevisionOneOffloadLeavesNewerFieldsZero) {
  NdisOffload caps;
  caps.header = {kNdisObjectTypeOffload, 1, kNdisOffloadSizeRev1};
  caps.flags = 7;
  std::vector<uint8_t> info(156, 0xFF);  // garbage past the object
  ASSERT_TRUE(EncodeNdisObject(info, caps).has_value());
  auto parsed = ParseNdisOffload(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->flags, 7u);
  EXPECT_EQ(parsed->ipsecv2, NdisIpsecV2Offload{});
  EXPECT_EQ(parsed->rsc, NdisRscOffload{});
}

TEST(RndisGuestRulesTest, OffloadQueryHeaderFollowsTheNvspVersion) {
  EXPECT_EQ(NdisOffloadQueryHeader(kNvspVersion61), (NdisObjectHeader{0xA7, 3, 156}));
  EXPECT_EQ(NdisOffloadQueryHeader(kNvspVersion5), (NdisObjectHeader{0xA7, 3, 156}));
  EXPECT_EQ(NdisOffloadQueryHeader(kNvspVersion4), (NdisObjectHeader{0xA7, 2, 144}));
  EXPECT_EQ(NdisOffloadQueryHeader(kNvspVersion2), (NdisObjectHeader{0xA7, 1, 112}));
}

TEST(RndisGuestRulesTest, D25RssCapabilitiesAreValidated) {
  NdisReceiveScaleCapabilities caps;
  caps.cap_flag = kNdisRssCapsHashTypeTcpIpv4 | kNdisHashFunctionToeplitz;
  caps.num_int_msg = 1;
  caps.num_recv_que = 8;
  caps.num_indirect_tabent = 128;
  std::vector<uint8_t> info(18);
  ASSERT_TRUE(EncodeNdisObject(info, caps).has_value());
  auto parsed = ParseRssCapabilities(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, caps);
  // Revision 1: 16 bytes, no table-entry count.
  caps.header = {kNdisObjectTypeRssCapabilities, 1, kNdisRssCapsSizeRev1};
  ASSERT_TRUE(EncodeNdisObject(info, caps).has_value());
  parsed = ParseRssCapabilities(std::span<const uint8_t>(info).first(16));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->num_recv_que, 8u);
  EXPECT_EQ(parsed->num_indirect_tabent, 0u);
  info[0] = kNdisObjectTypeRssParameters;
  ExpectError(ParseRssCapabilities(info), ErrorCode::kMalformed,
              "RSS capabilities type 0x89 != 0x88");
}

TEST(RndisGuestRulesTest, D27AlignmentAndPacketsPerMessageAreClamped) {
  EXPECT_EQ(RndisPacketAlignment(0), 1u);
  EXPECT_EQ(RndisPacketAlignment(3), 8u);
  EXPECT_EQ(RndisPacketAlignment(12), 4096u);
  EXPECT_EQ(RndisPacketAlignment(13), 4096u);
  EXPECT_EQ(RndisPacketAlignment(0xFFFFFFFF), 4096u);
  EXPECT_EQ(RndisMaxPacketsPerMessage(0), 1u);
  EXPECT_EQ(RndisMaxPacketsPerMessage(8), 8u);
}

// ---------------------------------------------------------------------------------------------
// Host receiving from the guest (spec 9.7)
// ---------------------------------------------------------------------------------------------

TEST(RndisHostRulesTest, P11MessageLongerThanTheBytesFails) {
  auto bytes = PacketBytes({}, 20);
  Put32(bytes, 4, 65);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS msg_len 65 > 64 bytes available");
}

TEST(RndisHostRulesTest, P11FrameOutsideTheMessageFails) {
  auto bytes = PacketBytes({}, 20);
  Put32(bytes, 8, 60);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS data_offset 60 beyond msg_len 64");
  bytes = PacketBytes({}, 20);
  Put32(bytes, 12, 100);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS data_len 100 > 20 bytes after data_offset");
}

TEST(RndisHostRulesTest, P11PpiAreaOutsideTheMessageFails) {
  auto bytes = PacketBytes(AllPpis(), 20);  // msg_len 160, body 152
  Put32(bytes, 28, 20);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS per_pkt_info_offset 20 inside the 36-byte packet header");
  Put32(bytes, 28, 153);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS per_pkt_info_offset 153 beyond msg_len 160");
  bytes = PacketBytes(AllPpis(), 20);
  Put32(bytes, 32, 8);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS per_pkt_info_len 8 < 12-byte element");
  Put32(bytes, 32, 117);
  ExpectError(ParseRndisPacket(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS per_pkt_info_len 117 > 116 bytes after per_pkt_info_offset");
}

TEST(RndisHostRulesTest, P11MalformedPpiElementsFailThePacket) {
  std::vector<uint8_t> area;
  AppendU32Element(area, kPpiHashValue, 1);
  AppendElement(area, 40, kPpiIeee8021q, 12, {1, 0, 0, 0});
  ExpectError(ParseRndisPacket(PacketWithPpiArea(area, 20), kG2H), ErrorCode::kMalformed,
              "RNDIS PPI element 1 size 40 > 16 bytes remaining");

  area.clear();
  AppendElement(area, 16, kPpiHashValue, 16, {1, 2, 3, 4});
  ExpectError(ParseRndisPacket(PacketWithPpiArea(area, 20), kG2H), ErrorCode::kMalformed,
              "RNDIS PPI element 0 size 16 ppi_offset 16 invalid");

  area.clear();
  AppendElement(area, 16, kPpiLso, 13, {0, 1, 2, 3});
  ExpectError(ParseRndisPacket(PacketWithPpiArea(area, 20), kG2H), ErrorCode::kMalformed,
              "RNDIS PPI element 0 type 0x2 has 3 data bytes < 4");

  area.clear();
  AppendU32Element(area, kPpiHashValue, 1);
  area.resize(area.size() + 6, 0);  // a tail too short for another element header
  ExpectError(ParseRndisPacket(PacketWithPpiArea(area, 20), kG2H), ErrorCode::kMalformed,
              "RNDIS PPI element 1 needs 12 header bytes, 6 remaining");

  area.clear();
  for (uint32_t i = 0; i < kRndisMaxPpiCount + 1; ++i) AppendU32Element(area, 11, i);
  ExpectError(ParseRndisPacket(PacketWithPpiArea(area, 20), kG2H), ErrorCode::kMalformed,
              "RNDIS more than 32 PPIs");
}

TEST(RndisHostRulesTest, P11QueryAndSetBuffersMustLieInsideTheMessage) {
  const std::vector<uint8_t> info = {1, 2, 3, 4};
  const auto good = Encoded([&](std::span<uint8_t> out) {
    return EncodeRndisSet(out, 1, NdisOid::kGenCurrentPacketFilter, info);
  });  // msg_len 32, body 24
  auto bytes = good;
  Put32(bytes, 20, 8);
  ExpectError(ParseRndisMessage(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS SET_MSG info_buf_offset 8 < 20");
  bytes = good;
  Put32(bytes, 20, 25);
  ExpectError(ParseRndisMessage(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS SET_MSG info_buf_offset 25 beyond the 24-byte body");
  bytes = good;
  Put32(bytes, 16, 5);
  ExpectError(ParseRndisMessage(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS SET_MSG info_buflen 5 > 4 bytes after info_buf_offset");
  bytes = good;
  Put32(bytes, 4, 27);
  ExpectError(ParseRndisMessage(bytes, kG2H), ErrorCode::kMalformed,
              "RNDIS SET_MSG msg_len 27 < 28");
}

TEST(RndisHostRulesTest, P13SetExIsParsedSoTheHostCanRefuseIt) {
  const auto bytes = Encoded([](std::span<uint8_t> out) {
    return EncodeRndisSetEx(out, 6, NdisOid::kGenVlanId, std::vector<uint8_t>(4, 0));
  });
  auto parsed = ParseRndisMessage(bytes, kG2H);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(std::get<RndisSetExMessage>(*parsed).fixed.request_id, 6u);
}

TEST(RndisHostRulesTest, P13DeviceMessagesAndUnknownTypesFromTheGuestAreErrors) {
  for (RndisMessageType t :
       {RndisMessageType::kQueryComplete, RndisMessageType::kSetComplete,
        RndisMessageType::kIndicateStatus, RndisMessageType::kInitializeComplete,
        RndisMessageType::kResetComplete, RndisMessageType::kSetExComplete}) {
    std::vector<uint8_t> bytes(64, 0);
    Put32(bytes, 0, static_cast<uint32_t>(t));
    Put32(bytes, 4, 64);
    ExpectError(ParseRndisMessage(bytes, kG2H), ErrorCode::kMalformed,
                "RNDIS " + std::string(RndisMessageName(t)) + " not accepted from the guest");
  }
  std::vector<uint8_t> unknown(16, 0);
  Put32(unknown, 0, 0x0A);
  Put32(unknown, 4, 16);
  ExpectError(ParseRndisMessage(unknown, kG2H), ErrorCode::kMalformed,
              "RNDIS message type 0xa unknown");
}

TEST(RndisHostRulesTest, P17LsoAndChecksumRequestsAreCheckedAgainstTheFrame) {
  EXPECT_TRUE(CheckTxLsoInfo(PackLsoInfo({.mss = 1460, .tcp_header_offset = 34}), 9000));
  ExpectError(CheckTxLsoInfo(PackLsoInfo({.mss = 0, .tcp_header_offset = 34}), 9000),
              ErrorCode::kMalformed, "LSO with MSS 0");
  ExpectError(CheckTxLsoInfo(PackLsoInfo({.mss = 1460, .tcp_header_offset = 60}), 60),
              ErrorCode::kMalformed, "LSO TCP header offset 60 >= frame length 60");
  EXPECT_TRUE(CheckTxChecksumInfo(MakeTxChecksumInfo(kTxChecksumTcp, 34), 60));
  // No L4 checksum requested: the offset does not matter.
  EXPECT_TRUE(CheckTxChecksumInfo(MakeTxChecksumInfo(kTxChecksumIpHeader, 900), 60));
  ExpectError(CheckTxChecksumInfo(MakeTxChecksumInfo(kTxChecksumUdp, 70), 60),
              ErrorCode::kMalformed, "checksum TCP header offset 70 >= frame length 60");
}

TEST(RndisHostRulesTest, OffloadParametersOfBothLinuxSizesAreAccepted) {
  NdisOffloadParams params;
  params.ip_v4_csum = kOffloadParamCsumTxRxDisabled;
  params.tcp_ip_v4_csum = kOffloadParamCsumTxRxEnabled;
  params.lso_v2_ipv4 = kOffloadParamLsoEnabled;
  params.rsc_ip_v4 = kOffloadParamRscEnabled;
  std::vector<uint8_t> info(28);
  ASSERT_TRUE(EncodeNdisObject(info, params).has_value());
  auto parsed = ParseNdisOffloadParams(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, params);
  // NVSP <= 4 guests send 22 bytes: the RSC fields read as "no change".
  params.header.size = kNdisOffloadParamsSizeRev2;
  std::vector<uint8_t> info22(22);
  ASSERT_TRUE(EncodeNdisObject(info22, params).has_value());
  parsed = ParseNdisOffloadParams(info22);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->tcp_ip_v4_csum, kOffloadParamCsumTxRxEnabled);
  EXPECT_EQ(parsed->rsc_ip_v4, kOffloadParamNoChange);
  info22[0] = kNdisObjectTypeOffload;
  ExpectError(ParseNdisOffloadParams(info22), ErrorCode::kMalformed,
              "offload parameters type 0xa7 != 0x80");
  info22[0] = kNdisObjectTypeDefault;
  info22[2] = 19;
  ExpectError(ParseNdisOffloadParams(info22), ErrorCode::kMalformed,
              "offload parameters size 19 < 20");
}

// ---------------------------------------------------------------------------------------------
// RSS parameters (spec 6.9)
// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> LinuxRssParameters(uint16_t flag, size_t entries = 128, uint32_t chans = 4) {
  std::vector<uint32_t> table(entries);
  for (size_t i = 0; i < entries; ++i) table[i] = static_cast<uint32_t>(i % chans);
  std::vector<uint8_t> key(40);
  for (size_t i = 0; i < 40; ++i) key[i] = static_cast<uint8_t>(0x6d + i);
  return Encoded([&](std::span<uint8_t> out) {
    return EncodeRssParameters(out, flag, kNdisHashInfoLinux, table, key);
  });
}

TEST(RssParametersTest, LinuxLayoutRoundTrips) {
  const auto info = LinuxRssParameters(0);
  ASSERT_EQ(info.size(), 592u);  // SET message 28 + 592 = 620
  EXPECT_EQ(info[0], 0x89);
  EXPECT_EQ(info[1], 2);
  EXPECT_EQ(Get32(info, 8), 0x1701u);
  EXPECT_EQ(Get32(info, 12) & 0xFFFF, 512u);
  EXPECT_EQ(Get32(info, 16), 40u);
  EXPECT_EQ(Get32(info, 20) & 0xFFFF, 40u);
  EXPECT_EQ(Get32(info, 24), 552u);
  auto parsed = ParseRssParameters(info);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_FALSE(parsed->disabled());
  EXPECT_EQ(parsed->table_entries, 128u);
  EXPECT_EQ(parsed->table[5], 1u);
  EXPECT_EQ(parsed->key_size, 40u);
  EXPECT_EQ(parsed->key[39], 0x6d + 39);
  EXPECT_EQ(parsed->fixed.hashinfo, kNdisHashInfoLinux);
}

TEST(RssParametersTest, DisableNeedsNoTableOrKey) {
  auto info = LinuxRssParameters(kNdisRssParamFlagDisableRss);
  Put32(info, 16, 0xFFFFFFFF);  // garbage offsets are not looked at
  auto parsed = ParseRssParameters(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->disabled());
  EXPECT_EQ(parsed->table_entries, 0u);
  EXPECT_EQ(parsed->key_size, 0u);
}

TEST(RssParametersTest, UnchangedFlagsSkipTheirPart) {
  auto info =
      LinuxRssParameters(kNdisRssParamFlagItableUnchanged | kNdisRssParamFlagHashKeyUnchanged);
  Put32(info, 16, 0xFFFFFFFF);
  Put32(info, 24, 0xFFFFFFFF);
  auto parsed = ParseRssParameters(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->table_entries, 0u);
  EXPECT_EQ(parsed->key_size, 0u);
}

TEST(RssParametersTest, MalformedTablesAndKeysAreRejected) {
  ExpectError(ParseRssParameters(LinuxRssParameters(0, 48)), ErrorCode::kMalformed,
              "RSS indirection table 48 entries is not a power of two");
  auto info = LinuxRssParameters(0);
  info[12] = 0x02;  // 514 bytes
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS indirection table size 514 not a multiple of 4");
  info = LinuxRssParameters(0);
  info[12] = 0x04;
  info[13] = 0x02;  // 516 bytes = 129 entries
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS indirection table 129 entries outside 1..128");
  info = LinuxRssParameters(0);
  Put32(info, 16, 81);
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS indirection table offset 81 + 512 > 592");
  Put32(info, 16, 0xFFFFFFFF);
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS indirection table offset 4294967295 + 512 > 592");
  info = LinuxRssParameters(0);
  info[20] = 41;
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS hash key size 41 outside 1..40");
  info[20] = 0;
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed, "RSS hash key size 0 outside 1..40");
  info = LinuxRssParameters(0);
  Put32(info, 24, 553);
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed,
              "RSS hash key offset 553 + 40 > 592");
  info = LinuxRssParameters(0);
  info[2] = 27;
  ExpectError(ParseRssParameters(info), ErrorCode::kMalformed, "RSS parameters size 27 < 28");
  std::vector<uint8_t> out(100);
  ExpectError(EncodeRssParameters(out, 0, 0, std::vector<uint32_t>(129), {}),
              ErrorCode::kInvalidArgument, "RSS indirection table 129 entries > 128");
}

// ---------------------------------------------------------------------------------------------
// MAC change (spec 6.11)
// ---------------------------------------------------------------------------------------------

TEST(ConfigParameterTest, NetworkAddressBlockMatchesLinuxAndParsesBack) {
  const std::array<uint8_t, 6> mac = {0x00, 0x15, 0x5D, 0xAB, 0xCD, 0xEF};
  std::vector<uint8_t> info(72);
  auto n = EncodeNetworkAddressParameter(info, mac);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 72u);
  EXPECT_EQ(Get32(info, 0), 20u);
  EXPECT_EQ(Get32(info, 4), 28u);
  EXPECT_EQ(Get32(info, 8), 2u);
  EXPECT_EQ(Get32(info, 12), 48u);
  EXPECT_EQ(Get32(info, 16), 24u);
  EXPECT_EQ(info[20], 'N');
  EXPECT_EQ(info[48], '0');
  EXPECT_EQ(info[48 + 2 * 6], 'a');  // lowercase hex
  auto parsed = ParseRndisConfigParameter(info);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(RndisConfigNameEquals(parsed->name, "NetworkAddress"));
  EXPECT_TRUE(RndisConfigNameEquals(parsed->name, "networkaddress"));
  EXPECT_FALSE(RndisConfigNameEquals(parsed->name, "NetworkAddres"));
  EXPECT_EQ(ParseNetworkAddressValue(parsed->value), mac);
}

TEST(ConfigParameterTest, AddressValueAcceptsSeparatorsAndRejectsJunk) {
  auto utf16 = [](std::string_view s) {
    std::vector<uint8_t> v;
    for (char c : s) {
      v.push_back(static_cast<uint8_t>(c));
      v.push_back(0);
    }
    return v;
  };
  const std::array<uint8_t, 6> mac = {0x00, 0x15, 0x5D, 0x01, 0x02, 0x03};
  EXPECT_EQ(ParseNetworkAddressValue(utf16("00-15-5D-01-02-03")), mac);
  EXPECT_EQ(ParseNetworkAddressValue(utf16("00:15:5d:01:02:03")), mac);
  EXPECT_EQ(ParseNetworkAddressValue(utf16(std::string("00155d010203") + '\0')), mac);
  EXPECT_EQ(ParseNetworkAddressValue(utf16("00155d01020")), std::nullopt);
  EXPECT_EQ(ParseNetworkAddressValue(utf16("00155d0102030")), std::nullopt);
  EXPECT_EQ(ParseNetworkAddressValue(utf16("00155d01020g")), std::nullopt);
  EXPECT_EQ(ParseNetworkAddressValue({}), std::nullopt);
  std::vector<uint8_t> wide = utf16("00155d010203");
  wide[1] = 1;  // a non-ASCII code unit
  EXPECT_EQ(ParseNetworkAddressValue(wide), std::nullopt);
}

TEST(ConfigParameterTest, NameOrValueOutsideTheBlockIsRejected) {
  std::vector<uint8_t> info(72);
  ASSERT_TRUE(EncodeNetworkAddressParameter(info, {}).has_value());
  auto bad = info;
  Put32(bad, 0, 60);
  ExpectError(ParseRndisConfigParameter(bad), ErrorCode::kMalformed,
              "config parameter name offset 60 + 28 > 72");
  bad = info;
  Put32(bad, 4, 27);
  ExpectError(ParseRndisConfigParameter(bad), ErrorCode::kMalformed,
              "config parameter name length 27 is odd");
  bad = info;
  Put32(bad, 16, 0xFFFFFFFF);
  ExpectError(ParseRndisConfigParameter(bad), ErrorCode::kMalformed,
              "config parameter value offset 48 + 4294967295 > 72");
  ExpectError(ParseRndisConfigParameter(std::span<const uint8_t>(info).first(19)),
              ErrorCode::kMalformed, "config parameter 19 bytes < 20");
}

// ---------------------------------------------------------------------------------------------
// PPI values, filter bits, names (spec 6.3, 6.4, 6.6, 6.10)
// ---------------------------------------------------------------------------------------------

TEST(PpiValuesTest, BitLayoutsMatchTheSpecTables) {
  EXPECT_EQ(PackVlanInfo({.priority = 7, .dei = true, .vlan_id = 0xFFF}), 0xFFFFu);
  EXPECT_EQ(PackVlanInfo({.priority = 0, .dei = false, .vlan_id = 1}), 0x10u);
  EXPECT_EQ(UnpackVlanInfo(0x12345), (VlanInfo{5, false, 0x234}));  // bits 16+ reserved
  EXPECT_EQ(PackLsoInfo({.mss = 1460, .tcp_header_offset = 34, .v2 = true, .ipv6 = true}),
            1460u | (34u << 20) | (1u << 30) | (1u << 31));
  const LsoInfo lso{.mss = 0xFFFFF, .tcp_header_offset = 0x3FF, .v2 = false, .ipv6 = false};
  EXPECT_EQ(UnpackLsoInfo(PackLsoInfo(lso)), lso);
  EXPECT_EQ(MakeTxChecksumInfo(kTxChecksumIsIpv4 | kTxChecksumTcp, 34), 0x5u | (34u << 16));
  EXPECT_EQ(TxChecksumHeaderOffset(MakeTxChecksumInfo(0, 0x3FF)), 0x3FFu);
  EXPECT_EQ(PackPacketIdInfo({.version = 1, .flags = 6, .pkt_id = 0xBEEF}), 0xBEEF0601u);
  EXPECT_EQ(UnpackPacketIdInfo(0xBEEF0601u), (PacketIdInfo{1, 6, 0xBEEF}));
  EXPECT_EQ(kPpiPacketId, 0x80000001u);
  EXPECT_EQ(kRxChecksumIpValueInvalid, 0x100u);
}

TEST(PacketFilterTest, ReservedLinuxGroupBitsAreIgnored) {
  EXPECT_EQ(kNdisPacketFilterLinuxDefault,
            kNdisPacketFilterDirected | kNdisPacketFilterAllMulticast | kNdisPacketFilterBroadcast);
  EXPECT_EQ(EffectivePacketFilter(0x0F2D), 0x2Du);
  EXPECT_EQ(EffectivePacketFilter(kNdisPacketFilterMacFrame | kNdisPacketFilterGroup), 0x9000u);
  EXPECT_EQ(EffectivePacketFilter(0), 0u);
}

TEST(RndisNamesTest, NamesFollowTheSpec) {
  EXPECT_EQ(RndisMessageName(RndisMessageType::kIndicateStatus), "INDICATE_STATUS_MSG");
  EXPECT_EQ(RndisMessageName(static_cast<RndisMessageType>(0x80000007)), "UNKNOWN");
  EXPECT_EQ(RndisStatusName(RndisStatus::kMediaConnect), "MEDIA_CONNECT");
  EXPECT_EQ(RndisStatusName(RndisStatus::kNotSupported), "NOT_SUPPORTED");
  EXPECT_EQ(RndisStatusName(static_cast<RndisStatus>(1)), "UNKNOWN");
  EXPECT_EQ(NdisOidName(NdisOid::kTcpOffloadHardwareCapabilities),
            "OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES");
  EXPECT_EQ(NdisOidName(static_cast<NdisOid>(0x12345678)), "UNKNOWN");
  EXPECT_EQ(PpiStatusName(PpiStatus::kElementOverrun), "element_overrun");
  EXPECT_EQ(static_cast<uint32_t>(RndisStatus::kNetworkChange), 0x40010018u);
  EXPECT_EQ(static_cast<uint32_t>(NdisOid::k802_3PermanentAddress), 0x01010101u);
}

// ---------------------------------------------------------------------------------------------
// Robustness (spec 9: never crash on peer input)
// ---------------------------------------------------------------------------------------------

TEST(RndisRobustnessTest, ArbitraryBytesNeverCrashAnyParser) {
  std::mt19937 rng(0x524E4453);  // "RNDS"
  const std::vector<uint32_t> types = {
      1, 2,          3,          4,          5,          6,          7,          8,
      9, 0x80000002, 0x80000004, 0x80000005, 0x80000006, 0x80000008, 0x80000009, 0x42};
  for (int iter = 0; iter < 30000; ++iter) {
    std::vector<uint8_t> bytes(rng() % 200);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() % 64 : rng());
    if (bytes.size() >= 8) {
      Put32(bytes, 0, types[rng() % types.size()]);
      if (rng() % 2) Put32(bytes, 4, static_cast<uint32_t>(bytes.size() - rng() % 8));
    }
    const Direction dir = rng() % 2 ? kH2G : kG2H;
    (void)ParseRndisMessage(bytes, dir);
    (void)DecodeRndisMessage(bytes);
    (void)ParseRndisPacket(bytes, dir);
    (void)RndisCompletionRequestId(bytes);
    RndisMessageSplitter split(bytes, 8);
    for (int guard = 0; !split.Done() && guard < 100; ++guard) (void)split.Next();
    ASSERT_TRUE(split.Done());
    (void)ParseNdisOffload(bytes);
    (void)ParseNdisOffloadParams(bytes);
    (void)ParseRssCapabilities(bytes);
    (void)ParseRssParameters(bytes);
    if (auto c = ParseRndisConfigParameter(bytes)) (void)ParseNetworkAddressValue(c->value);
  }
}

TEST(RndisRobustnessTest, MutatedValidPacketsNeverCrashAndKeepSpansInBounds) {
  std::mt19937 rng(4242);
  const auto base = PacketBytes(AllPpis(), 64, 8);
  size_t delivered = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    auto bytes = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly hit the header and PPI headers, where the lengths live.
      const size_t at = rng() % 3 ? rng() % 140 : rng() % bytes.size();
      bytes[at] = static_cast<uint8_t>(rng());
    }
    for (Direction dir : {kH2G, kG2H}) {
      // A short head copy must never be read past, whatever the lengths claim.
      const size_t head_len = std::min<size_t>(bytes.size(), 44 + rng() % 120);
      auto head =
          ParseRndisPacketHead(std::span<const uint8_t>(bytes).first(head_len), bytes.size(), dir);
      if (head) {
        ASSERT_LE(uint64_t{kRndisHeaderSize} + head->fixed.data_offset + head->fixed.data_len,
                  bytes.size());
      }
      auto p = ParseRndisPacket(bytes, dir);
      if (!p) continue;
      ++delivered;
      ASSERT_GE(p->frame.data(), bytes.data());
      ASSERT_LE(p->frame.data() + p->frame.size(), bytes.data() + bytes.size());
      ASSERT_LE(p->ppi_count, kRndisMaxPpiCount);
    }
  }
  EXPECT_GT(delivered, 1000u);
}

TEST(RndisRobustnessTest, MutatedRssParametersNeverCrash) {
  std::mt19937 rng(5150);
  const auto base = LinuxRssParameters(0);
  for (int iter = 0; iter < 20000; ++iter) {
    auto bytes = base;
    for (int f = 0; f < 3; ++f) bytes[rng() % 40] = static_cast<uint8_t>(rng());
    auto parsed = ParseRssParameters(bytes);
    if (parsed) {
      ASSERT_LE(parsed->table_entries, kRssIndirectionTableMaxEntries);
      ASSERT_LE(parsed->key_size, kRssHashKeyMaxSize);
    }
  }
}

}  // namespace
}  // namespace uvmbus::wire
