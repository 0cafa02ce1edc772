// Tests for wire/nvsp.h: round trip of every NVSP message through encode/parse, byte-exact
// layouts, rejection of every truncated form and of every type on a wrong direction/carrier,
// each parsing rule of spec 9.5 (N1-N21) and 9.7 (P1, P6, P8, P9, P14) fed its violating input
// with the exact error, and a deterministic random-input robustness run.
#include "wire/nvsp.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace uvmbus::wire {
namespace {

constexpr Direction kH2G = Direction::kHostToGuest;
constexpr Direction kG2H = Direction::kGuestToHost;
constexpr PacketType kInband = PacketType::kDataInband;
constexpr PacketType kXfer = PacketType::kDataUsingXferPages;
constexpr PacketType kGpa = PacketType::kDataUsingGpaDirect;
constexpr PacketType kComp = PacketType::kComp;

template <typename T>
void ExpectError(const Expected<T>& result, ErrorCode code, const std::string& message) {
  ASSERT_FALSE(result.has_value()) << "expected error: " << message;
  EXPECT_EQ(result.error().code, code) << result.error();
  EXPECT_EQ(result.error().message, message);
}

std::vector<uint8_t> EncodeToVector(const NvspMessage& msg, size_t padded) {
  std::vector<uint8_t> out(256);
  auto n = EncodeNvsp(std::span<uint8_t>(out), msg, padded);
  EXPECT_TRUE(n.has_value()) << n.error();
  out.resize(n.value_or(0));
  return out;
}

template <NvspFixedMessage T>
std::vector<uint8_t> EncodeToVector(const T& msg, size_t padded) {
  return EncodeToVector(NvspMessage{msg}, padded);
}

std::vector<uint8_t> Le32(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> out;
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(w >> (8 * i)));
  }
  return out;
}

std::array<uint32_t, 16> SampleTable() {
  std::array<uint32_t, 16> t{};
  for (uint32_t i = 0; i < 16; ++i) t[i] = (i * 5) % 7;
  return t;
}

struct Sample {
  NvspMessage msg;
  Direction dir;
  PacketType carrier;
};

// One message of every struct, on each carrier it legitimately travels, with distinctive values.
std::vector<Sample> AllSamples() {
  std::vector<Sample> s;
  s.push_back({NvspEmptyCompletion{}, kH2G, kComp});
  s.push_back({NvspEmptyCompletion{}, kG2H, kComp});
  s.push_back({NvspInit{.min_protocol_ver = kNvspVersion61, .max_protocol_ver = kNvspVersion61},
               kG2H, kInband});
  s.push_back({NvspInitComplete{.negotiated_protocol_ver = kNvspVersionInvalid,
                                .max_mdl_chain_len = kNvspMaxMdlChainLength,
                                .status = NvspStatus::kSuccess},
               kH2G, kComp});
  s.push_back({NvspSendNdisVersion{.ndis_major_ver = 6, .ndis_minor_ver = 30}, kG2H, kInband});
  s.push_back({NvspSendReceiveBuffer{.gpadl_handle = 0xE1E10, .id = kNetvscReceiveBufferId}, kG2H,
               kInband});
  s.push_back({NvspSendReceiveBufferComplete{.status = NvspStatus::kSuccess,
                                             .num_sections = 1,
                                             .section = {.offset = 0,
                                                         .sub_alloc_size = 1806,
                                                         .num_sub_allocs = 9289,
                                                         .end_offset = 1806 * 9289}},
               kH2G, kComp});
  s.push_back({NvspRevokeReceiveBuffer{.id = kNetvscReceiveBufferId}, kG2H, kInband});
  s.push_back(
      {NvspSendSendBuffer{.gpadl_handle = 0xE1E11, .id = kDpdkSendBufferId}, kG2H, kInband});
  s.push_back({NvspSendSendBufferComplete{.status = NvspStatus::kSuccess, .section_size = 6144},
               kH2G, kComp});
  s.push_back({NvspRevokeSendBuffer{.id = 7}, kG2H, kInband});
  s.push_back({NvspSendRndisPacket{.channel_type = kNvspRndisChannelData,
                                   .send_buf_section_index = 12,
                                   .send_buf_section_size = 1514},
               kG2H, kInband});
  s.push_back({NvspSendRndisPacket{.channel_type = kNvspRndisChannelControl}, kG2H, kGpa});
  s.push_back({NvspSendRndisPacket{.channel_type = kNvspRndisChannelControl}, kH2G, kXfer});
  s.push_back({NvspSendRndisPacketComplete{.status = NvspStatus::kFail}, kH2G, kComp});
  s.push_back({NvspSendRndisPacketComplete{.status = NvspStatus::kSuccess}, kG2H, kComp});
  s.push_back(
      {NvspSendNdisConfig{.mtu = 1514,
                          .capability = kNdisConfigCapIeee8021q | kNdisConfigCapSriov |
                                        kNdisConfigCapTeaming | kNdisConfigCapRsc | (1ull << 63)},
       kG2H, kInband});
  s.push_back({NvspSendVfAssociation{.allocated = 1, .serial = 0x1234}, kH2G, kInband});
  s.push_back({NvspSwitchDataPath{.active_datapath = kNvspDataPathVf}, kG2H, kInband});
  s.push_back({NvspSwitchDataPath{.active_datapath = kNvspDataPathSynthetic}, kH2G, kInband});
  s.push_back(
      {NvspOidQueryEx{.header = {kNdisObjectTypeDefault, 1, 4}, .oid = 0x00010107}, kG2H, kInband});
  s.push_back({NvspOidQueryExComplete{.status = 0xC00000BB, .bytes = 4}, kH2G, kComp});
  s.push_back({NvspSubchannelRequest{.op = kNvspSubchannelOpAllocate, .num_subchannels = 7}, kG2H,
               kInband});
  s.push_back(
      {NvspSubchannelComplete{.status = NvspStatus::kSuccess, .num_subchannels = 3}, kH2G, kComp});
  NvspSendIndirectionTable table;
  table.table_offset = kNvspSendIndirectionTableOffset;
  table.table = SampleTable();
  s.push_back({table, kH2G, kInband});
  NvspPdApiRequest pd_req{.op = kNvspPdOpCreateQueue};
  for (size_t i = 0; i < sizeof(pd_req.data); ++i) pd_req.data[i] = static_cast<uint8_t>(i + 1);
  s.push_back({pd_req, kG2H, kInband});
  s.push_back({pd_req, kH2G, kInband});
  NvspPdApiComplete pd_comp{.op = kNvspPdOpCreateQueue, .status = 0xC0000001};
  for (size_t i = 0; i < sizeof(pd_comp.data); ++i) pd_comp.data[i] = static_cast<uint8_t>(~i);
  s.push_back({pd_comp, kH2G, kComp});
  s.push_back({pd_comp, kG2H, kComp});
  NvspPdPostBatch batch{.count = 3, .flags = kNvspPdBatchGuestToHost | kNvspPdBatchIsReceive};
  batch.entries[0] = {0x1000, 1, 0};
  batch.entries[1] = {0x2000, 2, 1};
  batch.entries[2] = {0x3000, 3, 0};
  s.push_back({batch, kG2H, kInband});
  return s;
}

// ---------------------------------------------------------------------------------------------
// Round trips and layouts
// ---------------------------------------------------------------------------------------------

TEST(NvspTest, SamplesCoverEveryVariantAlternative) {
  std::set<size_t> seen;
  for (const auto& s : AllSamples()) seen.insert(s.msg.index());
  EXPECT_EQ(seen.size(), std::variant_size_v<NvspMessage>);
}

TEST(NvspTest, EveryMessageRoundTripsThroughEncodeAndParse) {
  for (const auto& s : AllSamples()) {
    SCOPED_TRACE(std::string(NvspMessageName(TypeOf(s.msg))));
    for (size_t padded : {size_t{0}, kNvspLegacyMessageSize, kNvspLinuxMessageSize}) {
      const auto bytes = EncodeToVector(s.msg, padded);
      auto parsed = ParseNvspMessage(bytes, s.dir, s.carrier, kNvspVersion61);
      ASSERT_TRUE(parsed.has_value()) << parsed.error();
      EXPECT_EQ(*parsed, s.msg);
      EXPECT_EQ(TypeOf(*parsed), TypeOf(s.msg));
    }
  }
}

TEST(NvspTest, EncodePadsWithZerosToTheRequestedSize) {
  const auto linux_size =
      EncodeToVector(NvspInit{.min_protocol_ver = 2, .max_protocol_ver = 2}, kNvspLinuxMessageSize);
  ASSERT_EQ(linux_size.size(), 40u);
  for (size_t i = 12; i < 40; ++i) EXPECT_EQ(linux_size[i], 0) << i;
  EXPECT_EQ(EncodeToVector(NvspInit{}, NvspHostMessageSize(kNvspVersion6)).size(), 28u);
  EXPECT_EQ(EncodeToVector(NvspInit{}, NvspHostMessageSize(kNvspVersion61)).size(), 40u);
  // Receive completions are exactly 8 bytes.
  EXPECT_EQ(EncodeToVector(NvspSendRndisPacketComplete{.status = NvspStatus::kSuccess},
                           kNvspReceiveCompletionSize),
            Le32({108, 1}));
  // A padded size below the layout never truncates.
  EXPECT_EQ(EncodeToVector(NvspSendNdisConfig{}, 8).size(), 20u);
}

TEST(NvspTest, EncodeForcesTheStructTypeAndChecksTheBuffer) {
  NvspInit init;
  init.msg_type = NvspMessageType::kSendRndisPacket;
  const auto bytes = EncodeToVector(init, 0);
  EXPECT_EQ(bytes[0], 1);
  std::array<uint8_t, 39> small{};
  ExpectError(EncodeNvsp(std::span<uint8_t>(small), NvspInit{}, kNvspLinuxMessageSize),
              ErrorCode::kInvalidArgument, "NVSP message needs 40 bytes, buffer has 39");
}

TEST(NvspTest, InitBytesMatchTheSpecLayout) {
  EXPECT_EQ(
      EncodeToVector(
          NvspInit{.min_protocol_ver = kNvspVersion61, .max_protocol_ver = kNvspVersion61}, 0),
      Le32({1, 0x00060001, 0x00060001}));
  EXPECT_EQ(EncodeToVector(NvspInitComplete{.negotiated_protocol_ver = 2,
                                            .max_mdl_chain_len = 34,
                                            .status = NvspStatus::kSuccess},
                           0),
            Le32({2, 2, 34, 1}));
}

TEST(NvspTest, NdisConfigCapabilityIsAnUnalignedU64AtTwelve) {
  const auto bytes = EncodeToVector(
      NvspSendNdisConfig{.mtu = 1514, .reserved = 0, .capability = 0x0102030405060708ull}, 0);
  const std::vector<uint8_t> expected = {125, 0, 0, 0, 0xEA, 0x05, 0, 0, 0, 0,
                                         0,   0, 8, 7, 6,    5,    4, 3, 2, 1};
  EXPECT_EQ(bytes, expected);
}

TEST(NvspTest, ReceiveBufferCompleteCarriesOneSectionAtTwelve) {
  const auto bytes = EncodeToVector(
      NvspSendReceiveBufferComplete{
          .status = NvspStatus::kSuccess, .num_sections = 1, .section = {0, 1806, 100, 180600}},
      0);
  EXPECT_EQ(bytes, Le32({102, 1, 1, 0, 1806, 100, 180600}));
}

TEST(NvspTest, SendRndisPacketDefaultsMeanNoSendSection) {
  EXPECT_EQ(EncodeToVector(NvspSendRndisPacket{}, 0), Le32({107, 0, 0xFFFFFFFF, 0}));
}

TEST(NvspTest, SendIndirectionTableIsEncodedAtFortyInOneHundredFourBytes) {
  const auto table = SampleTable();
  std::vector<uint8_t> out(200, 0xEE);
  auto n = EncodeNvspSendIndirectionTable(out, table);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 104u);
  std::vector<uint8_t> expected = Le32({134, 16, 40});
  expected.resize(40, 0);
  for (uint32_t v : table) {
    const auto w = Le32({v});
    expected.insert(expected.end(), w.begin(), w.end());
  }
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 104), expected);
  std::array<uint8_t, 103> small{};
  ExpectError(EncodeNvspSendIndirectionTable(small, table), ErrorCode::kInvalidArgument,
              "NVSP message needs 104 bytes, buffer has 103");
}

TEST(NvspTest, BytesBeyondTheLayoutAreIgnored) {
  auto bytes = Le32({133, 1, 3});  // subchannel completion
  bytes.resize(40, 0xAB);
  auto parsed = ParseNvspMessage(bytes, kH2G, kComp, kNvspVersion61);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(std::get<NvspSubchannelComplete>(*parsed),
            (NvspSubchannelComplete{.status = NvspStatus::kSuccess, .num_subchannels = 3}));
}

TEST(NvspTest, SubchannelRequestAndCompletionShareTheTypeNumber) {
  const auto bytes = Le32({133, 1, 4});
  auto req = ParseNvspMessage(bytes, kG2H, kInband, kNvspVersion5);
  ASSERT_TRUE(req.has_value());
  EXPECT_TRUE(std::holds_alternative<NvspSubchannelRequest>(*req));
  auto comp = ParseNvspMessage(bytes, kH2G, kComp, kNvspVersion5);
  ASSERT_TRUE(comp.has_value());
  EXPECT_TRUE(std::holds_alternative<NvspSubchannelComplete>(*comp));
}

TEST(NvspTest, ObsoleteV2StructsHaveTheLegacyLayout) {
  std::vector<uint8_t> out(64);
  auto n = EncodeNvsp(std::span<uint8_t>(out),
                      NvspFreeReceiveBuffer{.recv_buf_id = 0x1122334455667788}, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 12u);
  EXPECT_EQ(out[4], 0x88);
  EXPECT_EQ(out[11], 0x11);
  n = EncodeNvsp(std::span<uint8_t>(out),
                 NvspAllocReceiveBufferComplete{.alloc_id = 5, .recv_buf_id = 9}, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 24u);
  EXPECT_EQ(out[16], 9);
}

// ---------------------------------------------------------------------------------------------
// Direction and carrier (spec 5.3 "Direction" and "Carried as")
// ---------------------------------------------------------------------------------------------

// A payload of type `type` that passes every content check once the type is accepted.
std::vector<uint8_t> ValidPayloadOfType(uint32_t type) {
  std::vector<uint8_t> p(104, 0);
  std::memcpy(p.data(), &type, 4);
  if (type == 134) {
    const auto fields = Le32({134, 16, 40});
    std::copy(fields.begin(), fields.end(), p.begin());
  }
  return p;
}

TEST(NvspTest, CarrierAndDirectionMatchTheSpecTable) {
  // (type, sender, carrier) combinations of spec 5.3 / 5.9.
  const std::set<std::tuple<uint32_t, Direction, PacketType>> legal = {
      {1, kG2H, kInband},   {2, kH2G, kComp},     {100, kG2H, kInband}, {101, kG2H, kInband},
      {102, kH2G, kComp},   {103, kG2H, kInband}, {104, kG2H, kInband}, {105, kH2G, kComp},
      {106, kG2H, kInband}, {107, kG2H, kInband}, {107, kG2H, kGpa},    {107, kH2G, kXfer},
      {108, kH2G, kComp},   {108, kG2H, kComp},   {125, kG2H, kInband}, {128, kH2G, kInband},
      {129, kG2H, kInband}, {129, kH2G, kInband}, {131, kG2H, kInband}, {132, kH2G, kComp},
      {133, kG2H, kInband}, {133, kH2G, kComp},   {134, kH2G, kInband}, {135, kG2H, kInband},
      {135, kH2G, kInband}, {135, kG2H, kComp},   {135, kH2G, kComp},   {136, kG2H, kInband},
      {136, kH2G, kInband},
  };
  for (uint32_t type = 0; type < 200; ++type) {
    for (Direction dir : {kH2G, kG2H}) {
      for (PacketType carrier : {kInband, kXfer, kGpa, kComp}) {
        SCOPED_TRACE(testing::Message() << "type " << type << " dir " << static_cast<int>(dir)
                                        << " carrier " << static_cast<int>(carrier));
        auto parsed = ParseNvspMessage(ValidPayloadOfType(type), dir, carrier, kNvspVersion61);
        const bool expected = legal.count({type, dir, carrier}) != 0;
        EXPECT_EQ(parsed.has_value(), expected) << (parsed ? "" : parsed.error().message);
        if (parsed) {
          EXPECT_EQ(static_cast<uint32_t>(TypeOf(*parsed)), type);
        }
      }
    }
  }
}

TEST(NvspTest, WrongDirectionNamesTypeDirectionAndCarrier) {
  ExpectError(ParseNvspMessage(Le32({1, 2, 2}), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed,
              "NVSP INIT (1) not accepted in a host-to-guest in-band packet");
  ExpectError(ParseNvspMessage(Le32({2, 0, 0, 1}), kG2H, kComp, kNvspVersion61),
              ErrorCode::kMalformed,
              "NVSP INIT_COMPLETE (2) not accepted in a guest-to-host completion");
}

TEST(NvspTest, ObsoleteTypesAreNotAccepted) {
  ExpectError(ParseNvspMessage(Le32({120, 1, 2}), kG2H, kInband, kNvspVersion61),
              ErrorCode::kMalformed,
              "NVSP MSG2_ALLOC_RXBUF (120) not accepted in a guest-to-host in-band packet");
  ExpectError(ParseNvspMessage(Le32({130, 0}), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed,
              "NVSP MSG4_UPLINK_CONNECT_STATE_DEPRECATED (130) not accepted in a host-to-guest "
              "in-band packet");
}

TEST(NvspTest, UnsupportedCarrierIsRejected) {
  ExpectError(ParseNvspMessage(Le32({1, 2, 2}), kG2H, PacketType::kAddXferPageset, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP carried in packet type 2 (add_xfer_pageset)");
}

// ---------------------------------------------------------------------------------------------
// Truncation (spec 9.5 N2, N3, N13, N19, N20, N21; 9.7 host side)
// ---------------------------------------------------------------------------------------------

TEST(NvspTest, EveryTruncatedFormIsRejectedWithItsMinimumSize) {
  for (const auto& s : AllSamples()) {
    if (std::holds_alternative<NvspEmptyCompletion>(s.msg)) continue;
    const auto name = std::string(NvspMessageName(TypeOf(s.msg)));
    SCOPED_TRACE(name);
    const auto bytes = EncodeToVector(s.msg, 0);
    size_t min = bytes.size();
    if (std::holds_alternative<NvspSendIndirectionTable>(s.msg)) min = 12;
    if (std::holds_alternative<NvspPdApiRequest>(s.msg)) min = 8;
    if (std::holds_alternative<NvspPdApiComplete>(s.msg)) min = 12;
    if (std::holds_alternative<NvspPdPostBatch>(s.msg)) min = 8;  // count checks: separate test
    for (size_t len = s.carrier == kComp ? 1 : 0; len < min; ++len) {
      auto parsed = ParseNvspMessage(std::span<const uint8_t>(bytes).first(len), s.dir, s.carrier,
                                     kNvspVersion61);
      if (len < 4) {
        ExpectError(parsed, ErrorCode::kMalformed,
                    "NVSP payload " + std::to_string(len) + " < 4-byte header");
      } else if (std::holds_alternative<NvspPdApiComplete>(s.msg) && len >= 8) {
        ExpectError(parsed, ErrorCode::kMalformed,
                    "NVSP MSG6_PD_API completion payload " + std::to_string(len) + " < 12");
      } else {
        ExpectError(parsed, ErrorCode::kMalformed,
                    "NVSP " + name + " payload " + std::to_string(len) + " < " +
                        std::to_string(std::holds_alternative<NvspPdApiComplete>(s.msg) ? 8 : min));
      }
    }
  }
}

TEST(NvspTest, N1EmptyCompletionIsReportedForTheCallerToMatch) {
  auto parsed = ParseNvspMessage({}, kH2G, kComp, kNvspVersion61);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(std::holds_alternative<NvspEmptyCompletion>(*parsed));
  EXPECT_EQ(TypeOf(*parsed), NvspMessageType::kNone);
  // Only a completion may be empty.
  ExpectError(ParseNvspMessage({}, kH2G, kInband, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP payload 0 < 4-byte header");
}

TEST(NvspTest, N2CompletionShorterThanTheTypeIsDropped) {
  const std::vector<uint8_t> three = {2, 0, 0};
  ExpectError(ParseNvspMessage(three, kH2G, kComp, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP payload 3 < 4-byte header");
}

TEST(NvspTest, N3ShortCompletionsAreDroppedAtTheirSpecMinimums) {
  struct Case {
    uint32_t type;
    size_t min;
    const char* name;
  };
  for (const Case& c :
       {Case{2, 16, "INIT_COMPLETE"}, Case{102, 28, "MSG1_SEND_RECV_BUF_COMPLETE"},
        Case{105, 12, "MSG1_SEND_SEND_BUF_COMPLETE"}, Case{133, 12, "MSG5_SUBCHANNEL"},
        Case{108, 8, "MSG1_SEND_RNDIS_PKT_COMPLETE"}}) {
    auto bytes = ValidPayloadOfType(c.type);
    bytes.resize(c.min - 1);
    ExpectError(ParseNvspMessage(bytes, kH2G, kComp, kNvspVersion61), ErrorCode::kMalformed,
                "NVSP " + std::string(c.name) + " payload " + std::to_string(c.min - 1) + " < " +
                    std::to_string(c.min));
    bytes.resize(c.min);
    EXPECT_TRUE(ParseNvspMessage(bytes, kH2G, kComp, kNvspVersion61).has_value()) << c.name;
  }
}

TEST(NvspTest, N4UnknownTypeInACompletionIsDropped) {
  ExpectError(ParseNvspMessage(Le32({99, 1}), kH2G, kComp, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP type 99 unknown");
  ExpectError(ParseNvspMessage(Le32({0, 1}), kH2G, kComp, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP type 0 unknown");
  ExpectError(ParseNvspMessage(Le32({0xFFFFFFFF, 1}), kH2G, kComp, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP type 4294967295 unknown");
  // A known type that never completes anything.
  ExpectError(ParseNvspMessage(ValidPayloadOfType(134), kH2G, kComp, kNvspVersion61),
              ErrorCode::kMalformed,
              "NVSP MSG5_SEND_INDIRECTION_TABLE (134) not accepted in a host-to-guest completion");
}

TEST(NvspTest, N13TransferPagePayloadMustBeASendRndisPacket) {
  ExpectError(ParseNvspMessage(Le32({108, 1}), kH2G, kXfer, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP MSG1_SEND_RNDIS_PKT_COMPLETE (108) not accepted in a host-to-guest "
              "transfer-page packet");
  const std::vector<uint8_t> short_payload = {107, 0};
  ExpectError(ParseNvspMessage(short_payload, kH2G, kXfer, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP payload 2 < 4-byte header");
}

TEST(NvspTest, N19ShortInbandPacketIsDropped) {
  const std::vector<uint8_t> one = {128};
  ExpectError(ParseNvspMessage(one, kH2G, kInband, kNvspVersion61), ErrorCode::kMalformed,
              "NVSP payload 1 < 4-byte header");
}

TEST(NvspTest, N21ShortVfAssociationIsIgnored) {
  ExpectError(ParseNvspMessage(Le32({128, 1}), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP MSG4_SEND_VF_ASSOCIATION payload 8 < 12");
}

// ---------------------------------------------------------------------------------------------
// SEND_INDIRECTION_TABLE placement (spec 5.5, 9.5 N20, 10.2 N-b)
// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> TableMessage(uint32_t count, uint32_t offset, size_t table_at, size_t len) {
  std::vector<uint8_t> p(len, 0);
  const auto fields = Le32({134, count, offset});
  std::copy(fields.begin(), fields.end(), p.begin());
  for (uint32_t i = 0; i < 16 && table_at + 4 * i + 4 <= len; ++i) {
    const uint32_t v = 100 + i;
    std::memcpy(p.data() + table_at + 4 * i, &v, 4);
  }
  return p;
}

void ExpectTableAt(const Expected<NvspMessage>& parsed, uint32_t offset) {
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  const auto& t = std::get<NvspSendIndirectionTable>(*parsed);
  EXPECT_EQ(t.table_offset, offset);
  for (uint32_t i = 0; i < 16; ++i) EXPECT_EQ(t.table[i], 100 + i);
}

TEST(NvspTest, N20ShortTableMessageIsIgnored) {
  ExpectError(ParseNvspMessage(Le32({134, 16}), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP MSG5_SEND_INDIRECTION_TABLE payload 8 < 12");
}

TEST(NvspTest, N20TableCountOtherThanSixteenIsIgnored) {
  ExpectError(ParseNvspMessage(TableMessage(8, 40, 40, 104), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP send table count 8 != 16");
}

TEST(NvspTest, N20TableOffsetBeyondTheMessageIsIgnored) {
  ExpectError(ParseNvspMessage(TableMessage(16, 48, 40, 104), kH2G, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP send table offset 48 + 64 > payload 104");
  ExpectError(
      ParseNvspMessage(TableMessage(16, 0xFFFFFFFF, 40, 104), kH2G, kInband, kNvspVersion61),
      ErrorCode::kMalformed, "NVSP send table offset 4294967295 + 64 > payload 104");
  // Shorter than the table itself: offset 0 cannot help either.
  ExpectError(ParseNvspMessage(TableMessage(16, 0, 40, 60), kH2G, kInband, kNvspVersion5),
              ErrorCode::kMalformed, "NVSP send table offset 0 + 64 > payload 60");
}

TEST(NvspTest, OldHostsTableIsReadAtFortyWhateverTheOffsetSays) {
  // NVSP <= 6.0 with a full-size message: Linux ignores the (possibly wrong) offset.
  ExpectTableAt(ParseNvspMessage(TableMessage(16, 1000, 40, 104), kH2G, kInband, kNvspVersion6),
                40);
  ExpectTableAt(ParseNvspMessage(TableMessage(16, 12, 40, 104), kH2G, kInband, kNvspVersion5), 40);
}

TEST(NvspTest, OpenVmmTableAtTwelveIsReadAtTheReportedOffset) {
  // 76-byte message, table at 12: too short for the <= 6.0 rule, so the offset is used.
  ExpectTableAt(ParseNvspMessage(TableMessage(16, 12, 12, 76), kH2G, kInband, kNvspVersion5), 12);
  ExpectTableAt(ParseNvspMessage(TableMessage(16, 12, 12, 76), kH2G, kInband, kNvspVersion61), 12);
}

TEST(NvspTest, Version61TrustsTheReportedOffset) {
  ExpectTableAt(ParseNvspMessage(TableMessage(16, 24, 24, 104), kH2G, kInband, kNvspVersion61), 24);
}

// ---------------------------------------------------------------------------------------------
// Transfer-page receive packets (spec 5.6, 9.5 N13-N17)
// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> ReceivePacket(uint16_t pageset, uint32_t ranges,
                                   const std::vector<uint8_t>& nvsp) {
  std::vector<TransferPageRange> r(ranges);
  for (uint32_t i = 0; i < ranges; ++i) r[i] = {1806, 1806 * i};
  std::vector<uint8_t> header(TransferPageHeaderSize(ranges));
  auto h = EncodeTransferPageHeader(header, pageset, r, static_cast<uint32_t>(nvsp.size()), 77);
  EXPECT_TRUE(h.has_value());
  std::vector<uint8_t> packet(header.size() + nvsp.size() + 8);
  auto n = EncodePacket(packet, header, nvsp);
  EXPECT_TRUE(n.has_value());
  packet.resize(n.value_or(0));
  return packet;
}

TEST(NvspReceivePacketTest, ValidPacketYieldsRangesAndTheRndisHeader) {
  const auto nvsp = EncodeToVector(NvspSendRndisPacket{.channel_type = 1}, 40);
  const auto packet = ReceivePacket(kNetvscReceiveBufferId, 3, nvsp);
  auto parsed = ParseNvspReceivePacket(packet, false);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->packet.range_cnt, 3u);
  EXPECT_EQ(parsed->packet.range(2).byte_offset, 3612u);
  EXPECT_EQ(parsed->packet.desc.trans_id, 77u);
  EXPECT_EQ(parsed->rndis.channel_type, 1u);
}

TEST(NvspReceivePacketTest, N13NonRndisPayloadIsDropped) {
  const auto packet = ReceivePacket(kNetvscReceiveBufferId, 1, Le32({108, 1}));
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "NVSP MSG1_SEND_RNDIS_PKT_COMPLETE (108) not accepted in a host-to-guest "
              "transfer-page packet");
}

TEST(NvspReceivePacketTest, N14OffsetBelowTheTransferPageHeaderIsDropped) {
  auto packet = ReceivePacket(kNetvscReceiveBufferId, 1, Le32({107, 0, 0xFFFFFFFF, 0}));
  packet[2] = 2;  // offset8 = 2: 16 < 24
  packet[3] = 0;
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "transfer-page packet: bad_offset");
}

TEST(NvspReceivePacketTest, N15WrongPagesetIdIsDropped) {
  const auto packet = ReceivePacket(0xFACE, 1, Le32({107, 0, 0xFFFFFFFF, 0}));
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "transfer-page packet xfer_pageset_id 0xface != 0xcafe");
}

TEST(NvspReceivePacketTest, N16RangesPastTheHeaderAreDropped) {
  auto packet = ReceivePacket(kNetvscReceiveBufferId, 2, Le32({107, 0, 0xFFFFFFFF, 0}));
  packet[20] = 3;  // range_cnt 3 but offset8 leaves room for 2
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "transfer-page packet: range_past_header");
  packet[20] = 0xFF;
  packet[23] = 0xFF;  // range_cnt 0xFF0000FF: 64-bit arithmetic, no wrap
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "transfer-page packet: range_past_header");
}

TEST(NvspReceivePacketTest, RangeCountIsCappedAtThreeSeventyFiveOrRscMax) {
  const auto nvsp = Le32({107, 0, 0xFFFFFFFF, 0});
  EXPECT_TRUE(ParseNvspReceivePacket(ReceivePacket(kNetvscReceiveBufferId, 375, nvsp), false));
  ExpectError(ParseNvspReceivePacket(ReceivePacket(kNetvscReceiveBufferId, 376, nvsp), false),
              ErrorCode::kMalformed, "transfer-page packet with 376 ranges > 375");
  EXPECT_TRUE(ParseNvspReceivePacket(ReceivePacket(kNetvscReceiveBufferId, 562, nvsp), true));
  ExpectError(ParseNvspReceivePacket(ReceivePacket(kNetvscReceiveBufferId, 563, nvsp), true),
              ErrorCode::kMalformed, "transfer-page packet with 563 ranges > 562");
}

TEST(NvspReceivePacketTest, WrongPacketTypeIsDropped) {
  std::vector<uint8_t> packet(64);
  auto h = EncodeInbandHeader(packet, 16, 1, true);
  ASSERT_TRUE(h.has_value());
  ExpectError(ParseNvspReceivePacket(packet, false), ErrorCode::kMalformed,
              "transfer-page packet: wrong_type");
}

TEST(NvspReceivePacketTest, N17RangeOutsideTheReceiveBufferIsRejected) {
  EXPECT_TRUE(CheckReceiveBufferRange({100, 4000 - 100}, 4000));
  EXPECT_TRUE(CheckReceiveBufferRange({0, 4000}, 4000));
  ExpectError(CheckReceiveBufferRange({100, 3901}, 4000), ErrorCode::kMalformed,
              "receive range offset 3901 + count 100 > buffer 4000");
  ExpectError(CheckReceiveBufferRange({0, 4001}, 4000), ErrorCode::kMalformed,
              "receive range offset 4001 + count 0 > buffer 4000");
  // Offset + count wraps 32 bits: still rejected.
  ExpectError(CheckReceiveBufferRange({0x20, 0xFFFFFFF0}, 0x100000000ull), ErrorCode::kMalformed,
              "receive range offset 4294967280 + count 32 > buffer 4294967296");
}

// ---------------------------------------------------------------------------------------------
// Checks of completion values (spec 9.5 N5-N11)
// ---------------------------------------------------------------------------------------------

NvspSendReceiveBufferComplete GoodReceiveBufferComplete() {
  return {
      .status = NvspStatus::kSuccess,
      .num_sections = 1,
      .section = {
          .offset = 0, .sub_alloc_size = 1728, .num_sub_allocs = 9709, .end_offset = 1728 * 9709}};
}

TEST(NvspChecksTest, ValidReceiveBufferCompletionGivesTheLayout) {
  auto layout = ValidateReceiveBufferComplete(GoodReceiveBufferComplete(), 16 << 20);
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->sub_alloc_size, 1728u);
  EXPECT_EQ(layout->num_sub_allocs, 9709u);
}

TEST(NvspChecksTest, N6ReceiveBufferFailureStatusFailsTheDevice) {
  auto msg = GoodReceiveBufferComplete();
  msg.status = NvspStatus::kFail;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kProtocol,
              "receive buffer refused: status FAIL (2)");
  msg.status = static_cast<NvspStatus>(99);
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kProtocol,
              "receive buffer refused: status UNKNOWN (99)");
}

TEST(NvspChecksTest, N7SectionCountOrOffsetOtherThanOneAndZeroFails) {
  auto msg = GoodReceiveBufferComplete();
  msg.num_sections = 2;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer completion with 2 sections != 1");
  msg.num_sections = 0;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer completion with 0 sections != 1");
  msg = GoodReceiveBufferComplete();
  msg.section.offset = 4096;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer section offset 4096 != 0");
}

TEST(NvspChecksTest, N8SmallSubAllocationOrOversizedSectionFails) {
  auto msg = GoodReceiveBufferComplete();
  msg.section.sub_alloc_size = 67;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer sub_alloc_size 67 < 68");
  msg = GoodReceiveBufferComplete();
  msg.section.num_sub_allocs = 9710;  // one more than fits 16 MiB
  ExpectError(ValidateReceiveBufferComplete(msg, 1728 * 9709), ErrorCode::kMalformed,
              "receive buffer 1728 x 9710 = 16778880 > buffer size 16777152");
  // 0x80000000 * 2 wraps to 0 in 32 bits; the 64-bit product catches it.
  msg.section.sub_alloc_size = 0x80000000u;
  msg.section.num_sub_allocs = 2;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer 2147483648 x 2 = 4294967296 > buffer size 16777216");
  msg = GoodReceiveBufferComplete();
  msg.section.num_sub_allocs = 0;
  ExpectError(ValidateReceiveBufferComplete(msg, 16 << 20), ErrorCode::kMalformed,
              "receive buffer with 0 sub-allocations");
}

TEST(NvspChecksTest, N9SendBufferStatusAndSectionSizeAreChecked) {
  auto count =
      ValidateSendBufferComplete({.status = NvspStatus::kSuccess, .section_size = 6144}, 1044480);
  ASSERT_TRUE(count.has_value());
  EXPECT_EQ(*count, 170u);
  ExpectError(
      ValidateSendBufferComplete({.status = NvspStatus::kBusy, .section_size = 6144}, 1044480),
      ErrorCode::kProtocol, "send buffer refused: status BUSY (6)");
  ExpectError(
      ValidateSendBufferComplete({.status = NvspStatus::kSuccess, .section_size = 67}, 1044480),
      ErrorCode::kMalformed, "send buffer section_size 67 < 68");
}

TEST(NvspChecksTest, N10N11SubchannelCompletionIsChecked) {
  auto n = ValidateSubchannelComplete({.status = NvspStatus::kSuccess, .num_subchannels = 3}, 7);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 3u);
  ExpectError(ValidateSubchannelComplete({.status = NvspStatus::kFail, .num_subchannels = 0}, 7),
              ErrorCode::kProtocol, "sub-channel request refused: status FAIL (2)");
  ExpectError(ValidateSubchannelComplete({.status = NvspStatus::kSuccess, .num_subchannels = 8}, 7),
              ErrorCode::kMalformed, "host granted 8 sub-channels > 7 requested");
}

// ---------------------------------------------------------------------------------------------
// Host side (spec 9.7)
// ---------------------------------------------------------------------------------------------

TEST(NvspHostTest, P1MessageNewerThanTheNegotiatedVersionIsAnError) {
  ExpectError(ParseNvspMessage(EncodeToVector(NvspSendNdisConfig{.mtu = 1514}, 40), kG2H, kInband,
                               kNvspVersion1),
              ErrorCode::kProtocol,
              "NVSP MSG2_SEND_NDIS_CONFIG (125) needs version 0x30002, negotiated 0x2");
  ExpectError(ParseNvspMessage(EncodeToVector(NvspSubchannelRequest{.num_subchannels = 1}, 40),
                               kG2H, kInband, kNvspVersion4),
              ErrorCode::kProtocol,
              "NVSP MSG5_SUBCHANNEL (133) needs version 0x50000, negotiated 0x40000");
  EXPECT_TRUE(ParseNvspMessage(EncodeToVector(NvspSubchannelRequest{.num_subchannels = 1}, 40),
                               kG2H, kInband, kNvspVersion5));
  // Before INIT there is no version: the host state machine handles that (P2).
  EXPECT_TRUE(ParseNvspMessage(EncodeToVector(NvspSubchannelRequest{}, 40), kG2H, kInband,
                               kNvspVersionNone));
}

TEST(NvspHostTest, P1StandaloneVersionCheckMatchesTheTypeTable) {
  EXPECT_TRUE(CheckNvspMessageVersion(NvspMessageType::kInit, kNvspVersionNone));
  EXPECT_TRUE(CheckNvspMessageVersion(NvspMessageType::kSendRndisPacket, kNvspVersion1));
  EXPECT_TRUE(CheckNvspMessageVersion(NvspMessageType::kPdApi, kNvspVersion61));
  ExpectError(CheckNvspMessageVersion(NvspMessageType::kSendRndisPacket, kNvspVersionNone),
              ErrorCode::kProtocol,
              "NVSP MSG1_SEND_RNDIS_PKT (107) needs version 0x2, negotiated 0x0");
  ExpectError(CheckNvspMessageVersion(NvspMessageType::kSwitchDataPath, kNvspVersion2),
              ErrorCode::kProtocol,
              "NVSP MSG4_SWITCH_DATA_PATH (129) needs version 0x40000, negotiated 0x30002");
  ExpectError(CheckNvspMessageVersion(static_cast<NvspMessageType>(50), kNvspVersion61),
              ErrorCode::kProtocol, "NVSP type 50 unknown");
}

TEST(NvspHostTest, P6MtuOutsideTheRangeBecomesTheDefault) {
  EXPECT_EQ(EffectiveNdisConfigMtu(1514), 1514u);
  EXPECT_EQ(EffectiveNdisConfigMtu(9216), 9216u);
  EXPECT_EQ(EffectiveNdisConfigMtu(1513), 1514u);
  EXPECT_EQ(EffectiveNdisConfigMtu(9217), 1514u);
  EXPECT_EQ(EffectiveNdisConfigMtu(0), 1514u);
}

TEST(NvspHostTest, P8SectionWithoutASendBufferIsAnError) {
  ExpectError(
      ResolveSendSection({.send_buf_section_index = 0, .send_buf_section_size = 60}, 6144, 0),
      ErrorCode::kMalformed, "send section 0 used without a send buffer");
  auto none = ResolveSendSection({}, 6144, 0);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->used);
}

TEST(NvspHostTest, P9SectionOutsideTheSendBufferIsAnError) {
  auto ok = ResolveSendSection({.send_buf_section_index = 169, .send_buf_section_size = 6144}, 6144,
                               1044480);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, (NvspSendSection{true, 169u * 6144, 6144}));
  ExpectError(ResolveSendSection({.send_buf_section_index = 170, .send_buf_section_size = 1}, 6144,
                                 1044480),
              ErrorCode::kMalformed,
              "send section 170 (offset 1044480, 1 bytes) outside the 1044480-byte send buffer");
  ExpectError(ResolveSendSection({.send_buf_section_index = 169, .send_buf_section_size = 6145},
                                 6144, 1044480),
              ErrorCode::kMalformed,
              "send section 169 (offset 1038336, 6145 bytes) outside the 1044480-byte send buffer");
  // index * size overflows 32 bits: the 64-bit product keeps it outside.
  ExpectError(ResolveSendSection({.send_buf_section_index = 0xFFFFFFFE, .send_buf_section_size = 0},
                                 6144, 1044480),
              ErrorCode::kMalformed,
              "send section 4294967294 (offset 26388279054336, 0 bytes) outside the "
              "1044480-byte send buffer");
  ExpectError(ResolveSendSection({.send_buf_section_index = 1}, 0, 1044480),
              ErrorCode::kInvalidArgument, "send section size 0 with a send buffer");
}

TEST(NvspHostTest, P14SubchannelRequestMustAllocateFewerThanMaxQueues) {
  EXPECT_TRUE(CheckSubchannelRequest({.op = 1, .num_subchannels = 7}, 8));
  ExpectError(CheckSubchannelRequest({.op = 0, .num_subchannels = 1}, 8), ErrorCode::kProtocol,
              "SUBCHANNEL op 0 != ALLOCATE");
  ExpectError(CheckSubchannelRequest({.op = 1, .num_subchannels = 8}, 8), ErrorCode::kProtocol,
              "SUBCHANNEL request for 8 sub-channels >= 8 queues");
}

TEST(NvspHostTest, ReceiveCompletionFromTheGuestIsAcceptedAtEightBytes) {
  auto parsed = ParseNvspMessage(Le32({108, 1}), kG2H, kComp, kNvspVersion61);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(std::get<NvspSendRndisPacketComplete>(*parsed).status, NvspStatus::kSuccess);
}

TEST(NvspHostTest, PdPostBatchCountIsBounded) {
  ExpectError(ParseNvspMessage(Le32({136, 5}), kG2H, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP MSG6_PD_POST_BATCH count 5 > 4");
  ExpectError(ParseNvspMessage(Le32({136, 2, 0, 0}), kG2H, kInband, kNvspVersion61),
              ErrorCode::kMalformed, "NVSP MSG6_PD_POST_BATCH count 2 needs 24 bytes, payload 16");
}

// ---------------------------------------------------------------------------------------------
// Constants and names (spec 5.1-5.4)
// ---------------------------------------------------------------------------------------------

TEST(NvspConstantsTest, VersionsMatchTheSpecTable) {
  EXPECT_EQ(kNvspVersion1, 0x00000002u);
  EXPECT_EQ(kNvspVersion2, 0x00030002u);
  EXPECT_EQ(kNvspVersion4, 0x00040000u);
  EXPECT_EQ(kNvspVersion5, 0x00050000u);
  EXPECT_EQ(kNvspVersion6, 0x00060000u);
  EXPECT_EQ(kNvspVersion61, 0x00060001u);
  EXPECT_EQ(kNvspVersionsNewestFirst.front(), kNvspVersion61);
  EXPECT_EQ(kNvspVersionsNewestFirst.back(), kNvspVersion1);
  EXPECT_TRUE(IsKnownNvspVersion(kNvspVersion4));
  EXPECT_FALSE(IsKnownNvspVersion(0x00030000));
  EXPECT_EQ(NvspDeprecatedNegotiatedVersion(kNvspVersion1), 2u);
  EXPECT_EQ(NvspDeprecatedNegotiatedVersion(kNvspVersion5), 0xFFFFFFFFu);
  EXPECT_EQ(NdisVersionForNvsp(kNvspVersion4), 0x00060001u);
  EXPECT_EQ(NdisVersionForNvsp(kNvspVersion5), 0x0006001Eu);
}

TEST(NvspConstantsTest, MessageSizesFollowTheLinuxAndWindowsConventions) {
  EXPECT_EQ(kNvspLinuxMessageSize, 40u);
  EXPECT_EQ(NvspHostMessageSize(kNvspVersion1), 28u);
  EXPECT_EQ(NvspHostMessageSize(kNvspVersion6), 28u);
  EXPECT_EQ(NvspHostMessageSize(kNvspVersion61), 40u);
  EXPECT_EQ(kNvspReceiveCompletionSize, 8u);
  EXPECT_EQ(kNvspSendIndirectionTableMessageSize, 104u);
}

TEST(NvspConstantsTest, NamesAndMinimumVersionsFollowTheTypeTable) {
  EXPECT_EQ(NvspMessageName(NvspMessageType::kInit), "INIT");
  EXPECT_EQ(NvspMessageName(NvspMessageType::kSendRndisPacket), "MSG1_SEND_RNDIS_PKT");
  EXPECT_EQ(NvspMessageName(NvspMessageType::kPdPostBatch), "MSG6_PD_POST_BATCH");
  EXPECT_EQ(NvspMessageName(static_cast<NvspMessageType>(99)), "UNKNOWN");
  EXPECT_EQ(NvspMessageName(static_cast<NvspMessageType>(137)), "UNKNOWN");
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kInitComplete), 0u);
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kRevokeSendBuffer), kNvspVersion1);
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kSendNdisConfig), kNvspVersion2);
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kSendVfAssociation), kNvspVersion4);
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kSendIndirectionTable), kNvspVersion5);
  EXPECT_EQ(NvspMessageMinVersion(NvspMessageType::kPdApi), kNvspVersion6);
  EXPECT_EQ(NvspMessageMinVersion(static_cast<NvspMessageType>(3)), kNvspVersionInvalid);
  // Every number 100..136 is named.
  for (uint32_t t = 100; t <= 136; ++t) {
    EXPECT_NE(NvspMessageName(static_cast<NvspMessageType>(t)), "UNKNOWN") << t;
  }
  EXPECT_EQ(NvspStatusName(NvspStatus::kInvalidRndisPacket), "INVALID_RNDIS_PKT");
  EXPECT_EQ(static_cast<uint32_t>(NvspStatus::kProtocolUnsupported), 7u);
}

// ---------------------------------------------------------------------------------------------
// Robustness (spec 9: never crash on peer input)
// ---------------------------------------------------------------------------------------------

TEST(NvspRobustnessTest, ArbitraryPayloadsNeverCrashTheParser) {
  std::mt19937 rng(0x4E565350);  // "NVSP"
  const std::vector<uint32_t> types = {0,   1,   2,   100, 101, 102, 103, 104,
                                       105, 106, 107, 108, 120, 125, 128, 129,
                                       131, 132, 133, 134, 135, 136, 137, 0xFFFF};
  const std::vector<uint32_t> versions = {kNvspVersionNone, kNvspVersion1, kNvspVersion5,
                                          kNvspVersion6, kNvspVersion61};
  std::vector<uint8_t> out(256);
  size_t accepted = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    std::vector<uint8_t> payload(rng() % 130);
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    if (payload.size() >= 4 && rng() % 4 != 0) {
      const uint32_t t = types[rng() % types.size()];
      std::memcpy(payload.data(), &t, 4);
    }
    if (payload.size() >= 8 && rng() % 3 == 0) {
      const auto small =
          static_cast<uint32_t>(rng() % 20);  // counts/offsets near interesting boundaries
      std::memcpy(payload.data() + 4, &small, 4);
    }
    const Direction dir = rng() % 2 ? kH2G : kG2H;
    const PacketType carrier = std::array{kInband, kXfer, kGpa, kComp}[rng() % 4];
    auto parsed = ParseNvspMessage(payload, dir, carrier, versions[rng() % versions.size()]);
    if (parsed) {
      ++accepted;
      ASSERT_TRUE(EncodeNvsp(std::span<uint8_t>(out), *parsed, 40).has_value());
    }
  }
  EXPECT_GT(accepted, 1000u);  // the generator reaches the decoders, not only the type check
}

TEST(NvspRobustnessTest, ArbitraryTransferPagePacketsNeverCrash) {
  std::mt19937 rng(0xCAFE);
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> packet(rng() % 200);
    for (auto& b : packet) b = static_cast<uint8_t>(rng());
    if (packet.size() >= 24 && rng() % 2) {
      // A plausible descriptor so that later checks are reached.
      PacketDescriptor d{7, static_cast<uint16_t>(rng() % 8),
                         static_cast<uint16_t>(packet.size() / 8), 1, 1};
      std::memcpy(packet.data(), &d, sizeof(d));
      if (rng() % 2) {
        const uint16_t id = kNetvscReceiveBufferId;
        std::memcpy(packet.data() + 16, &id, 2);
        const auto cnt = static_cast<uint32_t>(rng() % 6);
        std::memcpy(packet.data() + 20, &cnt, 4);
      }
    }
    auto parsed = ParseNvspReceivePacket(packet, rng() % 2);
    if (parsed) {
      for (uint32_t i = 0; i < parsed->packet.range_cnt; ++i) {
        (void)CheckReceiveBufferRange(parsed->packet.range(i), rng());
      }
    }
  }
}

TEST(NvspRobustnessTest, ArbitraryCompletionValuesNeverCrashTheChecks) {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 20000; ++iter) {
    NvspSendReceiveBufferComplete r;
    r.status = static_cast<NvspStatus>(rng() % 3);
    r.num_sections = static_cast<uint32_t>(rng() % 3);
    r.section = {static_cast<uint32_t>(rng() % 2), static_cast<uint32_t>(rng()),
                 static_cast<uint32_t>(rng()), 0};
    (void)ValidateReceiveBufferComplete(r, rng() % (64 << 20));
    (void)ValidateSendBufferComplete(
        {.status = NvspStatus::kSuccess, .section_size = static_cast<uint32_t>(rng())}, rng());
    (void)ResolveSendSection({.send_buf_section_index = static_cast<uint32_t>(rng()),
                              .send_buf_section_size = static_cast<uint32_t>(rng())},
                             static_cast<uint32_t>(rng()), rng() % 2 ? rng() : 0);
  }
}

}  // namespace
}  // namespace uvmbus::wire
