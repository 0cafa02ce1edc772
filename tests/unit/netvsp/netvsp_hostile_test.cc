// File: tests/unit/netvsp/netvsp_hostile_test.cc
//
// Spec 9.7 (P1-P18) and the malformed-input cases of 9.4/10.2 against NetvspDevice: each input
// is rejected the way the spec says, counted by its own name, never crashes (the suite runs
// under ASan+UBSan), and the NIC keeps working afterwards (ExpectStillWorks).
#include <cstring>

#include <gtest/gtest.h>

#include "netvsp/netvsp_test_util.h"

namespace uvmbus::netvsp::test {
namespace {

using testing::MakeFrame;
using testing::SendMode;

template <typename T>
const T* As(const std::optional<wire::NvspMessage>& m) {
  return m ? std::get_if<T>(&*m) : nullptr;
}

// Frames still flow both ways on queue 0.
void ExpectStillWorks(NetvspEnv& env) {
  auto f = MakeFrame(kPeerMac, kGuestMac, 300, 0x5A);
  EXPECT_EQ(env.guest().SendFrames(0, {f}, SendMode::kSection), wire::NvspStatus::kSuccess);
  auto got = env.Collect(0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], f);
  auto in = MakeFrame(kGuestMac, kPeerMac, 200, 0xA5);
  env.Inject(0, {in});
  auto frames = env.guest().ReceiveFrames(0);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].frame, in);
}

// SEND_RNDIS_PKT naming a send section, in-band; returns the completion status.
std::optional<wire::NvspStatus> SendSectionPacket(NetvspEnv& env, uint16_t ch, uint32_t index,
                                                  uint32_t size) {
  wire::NvspSendRndisPacket m;
  m.send_buf_section_index = index;
  m.send_buf_section_size = size;
  auto reply = env.guest().Request(ch, m);
  const auto* done = As<wire::NvspSendRndisPacketComplete>(reply);
  if (done == nullptr) return std::nullopt;
  return done->status;
}

// Raw NVSP bytes in-band with completion requested; returns the completion payload.
std::optional<std::vector<uint8_t>> RawRequest(NetvspEnv& env, uint16_t ch,
                                               std::vector<uint8_t> payload) {
  const uint64_t id = env.guest().NextTransId();
  if (!env.guest().SendInband(ch, payload, id)) return std::nullopt;
  auto comp = env.guest().WaitCompletion(ch, id);
  if (!comp) return std::nullopt;
  auto p = comp->payload();
  return std::vector<uint8_t>(p.begin(), p.end());
}

std::vector<uint8_t> Packet(const std::vector<uint8_t>& frame, const wire::RndisPpiSet& ppis = {}) {
  std::vector<uint8_t> msg(wire::RndisPacketHeaderSize(ppis) + frame.size());
  auto n = wire::EncodeRndisPacket(msg, ppis, frame);
  EXPECT_TRUE(n);
  return msg;
}

void Put32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }

// ---------------------------------------------------------------------------------------------
// NVSP state machine (P1-P4, P7, P14)
// ---------------------------------------------------------------------------------------------

TEST(NetvspHostileTest, MessagesBeforeInitAreRefusedWithTheirOwnCompletion) {  // P2
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspSendReceiveBuffer rb;
  rb.gpadl_handle = 1;
  auto reply = env.guest().Request(0, rb);
  const auto* done = As<wire::NvspSendReceiveBufferComplete>(reply);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->status, wire::NvspStatus::kFail);
  wire::NvspSendRndisPacket pkt;
  reply = env.guest().Request(0, pkt);
  ASSERT_NE(As<wire::NvspSendRndisPacketComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspSendRndisPacketComplete>(reply)->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("nvsp_before_init"), 2u);
  ASSERT_TRUE(env.guest().BringUp());
}

TEST(NetvspHostileTest, InitWithAnUnknownVersionAnswersStatusNone) {  // P2
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  for (uint32_t v : {0u, 0x00040001u, 0x00070000u, 0xFFFFFFFFu}) {
    wire::NvspInit init;
    init.min_protocol_ver = init.max_protocol_ver = v;
    auto reply = env.guest().Request(0, init);
    const auto* ic = As<wire::NvspInitComplete>(reply);
    ASSERT_NE(ic, nullptr);
    EXPECT_EQ(ic->status, wire::NvspStatus::kNone) << std::hex << v;
  }
  EXPECT_EQ(env.Stat("nvsp_version_refused"), 4u);
  ASSERT_TRUE(env.guest().BringUp());
}

TEST(NetvspHostileTest, DuplicateInitConfigAndBuffersAreRefused) {  // P3
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  auto reply = env.guest().Request(0, init);
  ASSERT_NE(As<wire::NvspInitComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspInitComplete>(reply)->status, wire::NvspStatus::kFail);
  wire::NvspSendNdisConfig config;
  config.mtu = 9000;
  ASSERT_TRUE(env.guest().Post(0, config));
  wire::NvspSendNdisVersion ndis;
  ASSERT_TRUE(env.guest().Post(0, ndis));
  EXPECT_TRUE(env.guest().NothingPending(0, wire::PacketType::kComp));
  EXPECT_EQ(env.device().State().ndis_mtu, 1514u);  // the first one stays
  ASSERT_TRUE(env.guest().CreateGpadl(16, 0x777));
  wire::NvspSendReceiveBuffer rb;
  rb.gpadl_handle = 0x777;
  reply = env.guest().Request(0, rb);
  ASSERT_NE(As<wire::NvspSendReceiveBufferComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspSendReceiveBufferComplete>(reply)->status, wire::NvspStatus::kFail);
  wire::NvspSendSendBuffer sb;
  sb.gpadl_handle = 0x777;
  reply = env.guest().Request(0, sb);
  ASSERT_NE(As<wire::NvspSendSendBufferComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspSendSendBufferComplete>(reply)->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("nvsp_duplicate"), 5u);
  ExpectStillWorks(env);
}

TEST(NetvspHostileTest, MessagesNewerThanTheNegotiatedVersionAreRefused) {  // P1
  NetvspEnv env({.queues = 2});
  ASSERT_TRUE(env.Up(false, wire::kNvspVersion2));
  wire::NvspSubchannelRequest req;
  req.num_subchannels = 1;
  auto reply = env.guest().Request(0, req);
  const auto* done = As<wire::NvspSubchannelComplete>(reply);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("nvsp_bad_version"), 1u);
  EXPECT_EQ(env.device().State().channels_allocated, 1u);
}

TEST(NetvspHostileTest, TruncatedAndUnknownNvspMessagesAreMalformed) {
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up());
  // (A payload shorter than the 4-byte type cannot exist: the ring pads payloads to 8 bytes.)
  // Unknown type 99: an empty completion answers the waiting requester.
  auto r = RawRequest(env, 0, {99, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  // Type 0 (NONE).
  r = RawRequest(env, 0, std::vector<uint8_t>(40, 0));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  // SEND_RECV_BUF with 8 of its 12 bytes: its own completion, status FAIL.
  r = RawRequest(env, 0, {101, 0, 0, 0, 1, 0, 0, 0});
  ASSERT_TRUE(r);
  ASSERT_GE(r->size(), 8u);
  uint32_t type = 0, status = 0;
  std::memcpy(&type, r->data(), 4);
  std::memcpy(&status, r->data() + 4, 4);
  EXPECT_EQ(type, 102u);
  EXPECT_EQ(status, static_cast<uint32_t>(wire::NvspStatus::kFail));
  // Obsolete chimney message (type 116), and an INIT_COMPLETE sent by the guest.
  std::vector<uint8_t> chimney(40, 0);
  chimney[0] = 116;
  r = RawRequest(env, 0, chimney);
  ASSERT_TRUE(r);
  std::vector<uint8_t> init_complete(40, 0);
  init_complete[0] = 2;
  r = RawRequest(env, 0, init_complete);
  ASSERT_TRUE(r);
  EXPECT_EQ(env.Stat("nvsp_malformed"), 5u);
  ExpectStillWorks(env);
}

TEST(NetvspHostileTest, ReceiveBufferBeforeNdisConfigIsRefused) {  // P4
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  ASSERT_TRUE(env.guest().Request(0, init));
  auto recv = env.guest().SetupReceiveBuffer(32);
  ASSERT_TRUE(recv);
  EXPECT_EQ(recv->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("recv_buf_before_ndis_config"), 1u);
}

TEST(NetvspHostileTest, BufferGpadlsThatDoNotExistAreRefused) {  // P7
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  ASSERT_TRUE(env.guest().Request(0, init));
  wire::NvspSendNdisConfig config;
  config.mtu = 1514;
  ASSERT_TRUE(env.guest().Post(0, config));
  wire::NvspSendReceiveBuffer rb;
  rb.gpadl_handle = 0xDEAD;
  auto reply = env.guest().Request(0, rb);
  ASSERT_NE(As<wire::NvspSendReceiveBufferComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspSendReceiveBufferComplete>(reply)->status, wire::NvspStatus::kFail);
  wire::NvspSendSendBuffer sb;
  sb.gpadl_handle = 0xBEEF;
  reply = env.guest().Request(0, sb);
  ASSERT_NE(As<wire::NvspSendSendBufferComplete>(reply), nullptr);
  EXPECT_EQ(As<wire::NvspSendSendBufferComplete>(reply)->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("recv_buf_bad_gpadl"), 1u);
  EXPECT_EQ(env.Stat("send_buf_bad_gpadl"), 1u);
  // A send buffer smaller than one 6144-byte section is refused too.
  auto small = env.guest().SetupSendBuffer(1, 0x5E001);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("send_buf_bad_size"), 1u);
  // The real ones still work afterwards.
  auto recv = env.guest().SetupReceiveBuffer(32);
  ASSERT_TRUE(recv);
  EXPECT_EQ(recv->status, wire::NvspStatus::kSuccess);
}

TEST(NetvspHostileTest, ReceiveBufferSmallerThanOneSubAllocationIsRefused) {  // P7
  NetvspEnv env({.queues = 1, .mtu = 9000});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  ASSERT_TRUE(env.guest().Request(0, init));
  wire::NvspSendNdisConfig config;
  config.mtu = 9014;
  ASSERT_TRUE(env.guest().Post(0, config));
  auto recv = env.guest().SetupReceiveBuffer(2);  // 8 KiB < 256 + 9014 + 36
  ASSERT_TRUE(recv);
  EXPECT_EQ(recv->status, wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("recv_buf_bad_size"), 1u);
}

TEST(NetvspHostileTest, SubchannelRequestsWithBadOpOrCountAreRefused) {  // P14
  NetvspEnv env({.queues = 4});
  ASSERT_TRUE(env.Up(false));
  for (auto [op, n] : {std::pair<uint32_t, uint32_t>{0, 1}, {1, 0}, {1, 4}, {1, 0xFFFFFFFF}}) {
    wire::NvspSubchannelRequest req;
    req.op = op;
    req.num_subchannels = n;
    auto reply = env.guest().Request(0, req);
    const auto* done = As<wire::NvspSubchannelComplete>(reply);
    ASSERT_NE(done, nullptr);
    EXPECT_EQ(done->status, wire::NvspStatus::kFail);
    EXPECT_EQ(done->num_subchannels, 0u);
  }
  EXPECT_EQ(env.Stat("subchannel_refused"), 4u);
  ASSERT_TRUE(env.Multiqueue());  // a proper request still works
}

// ---------------------------------------------------------------------------------------------
// Transmit (P5, P8-P11, P16, P17)
// ---------------------------------------------------------------------------------------------

class NetvspHostileDataTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.Up()); }
  NetvspEnv env_{EnvOptions{.queues = 4}};
};

TEST_F(NetvspHostileDataTest, SendSectionsOutsideTheBufferAreRefused) {  // P9
  const uint32_t count = env_.guest().send_section_count();
  EXPECT_EQ(SendSectionPacket(env_, 0, count, 100), wire::NvspStatus::kFail);
  EXPECT_EQ(SendSectionPacket(env_, 1, 0, 6145), wire::NvspStatus::kFail);
  EXPECT_EQ(SendSectionPacket(env_, 2, 0xFFFFFFFE, 10), wire::NvspStatus::kFail);
  EXPECT_EQ(SendSectionPacket(env_, 3, count - 1, 0xFFFFFFFF), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("tx_bad_section"), 4u);
  // A section that exists but holds nothing is "no data".
  EXPECT_EQ(SendSectionPacket(env_, 0, 0, 0), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("tx_no_data"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, SendSectionsAfterRevokeFindNoBuffer) {  // P8, P16
  wire::NvspRevokeSendBuffer revoke;
  ASSERT_TRUE(env_.guest().Post(0, revoke));
  auto f = MakeFrame(kPeerMac, kGuestMac, 100, 1);
  EXPECT_EQ(env_.guest().SendFrames(0, {f}, SendMode::kSection), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("buffer_revoked"), 1u);
  EXPECT_EQ(env_.Stat("tx_no_send_buffer"), 1u);
  // GPA-direct sends do not need the send buffer.
  EXPECT_EQ(env_.guest().SendFrames(0, {f}, SendMode::kGpaMultiPage), wire::NvspStatus::kSuccess);
  EXPECT_EQ(env_.Collect(0).size(), 1u);
}

TEST_F(NetvspHostileDataTest, GpaRangesOutsideGuestRamAreFailed) {  // P10
  wire::NvspSendRndisPacket m;
  std::array<uint8_t, 40> payload{};
  ASSERT_TRUE(wire::EncodeNvsp(payload, m, 40));
  const std::array<uint64_t, 1> far = {0x7FFFFFFFull};
  const wire::GpaDirectRangeRef range{100, 0, far};
  const uint64_t id = env_.guest().NextTransId();
  ASSERT_TRUE(env_.guest().SendGpaDirect(1, std::span(&range, 1), payload, id));
  auto comp = env_.guest().WaitCompletion(1, id);
  ASSERT_TRUE(comp);
  auto parsed = wire::ParseNvspMessage(comp->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kComp, wire::kNvspVersion61);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(std::get<wire::NvspSendRndisPacketComplete>(*parsed).status,
            wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("tx_bad_gpa"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, MalformedRndisPacketsAreFailedWithoutReadingOutside) {  // P11
  auto f = MakeFrame(kPeerMac, kGuestMac, 100, 1);
  std::vector<std::vector<uint8_t>> bad;
  auto m = Packet(f);
  Put32(m, 4, static_cast<uint32_t>(m.size() + 8));  // msg_len beyond the bytes
  bad.push_back(m);
  m = Packet(f);
  Put32(m, 4, 20);  // msg_len below the PACKET_MSG header
  bad.push_back(m);
  m = Packet(f);
  Put32(m, 8, 1000);  // data_offset beyond msg_len
  bad.push_back(m);
  m = Packet(f);
  Put32(m, 12, 0xFFFFFFF0);  // data_len overflowing
  bad.push_back(m);
  wire::RndisPpiSet ppis;
  ppis.hash_value = 7;
  m = Packet(f, ppis);
  Put32(m, 32, 400);  // per_pkt_info_len beyond the message
  bad.push_back(m);
  m = Packet(f, ppis);
  Put32(m, 44, 0);  // PPI element of size 0 (Linux would spin, spec 9.6 D8)
  bad.push_back(m);
  m = Packet(MakeFrame(kPeerMac, kGuestMac, 14, 1));
  Put32(m, 12, 10);  // a 10-byte "frame"
  bad.push_back(m);
  bad.push_back({1, 0, 0, 0});  // 4 bytes: no header at all
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(env_.guest().SendRndis(0, bad[i], SendMode::kSection, 0), wire::NvspStatus::kFail)
        << i;
  }
  EXPECT_EQ(env_.Stat("tx_bad_rndis"), bad.size());
  EXPECT_TRUE(env_.Collect(0).empty());
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, OversizedFramesAreRefused) {
  auto f = MakeFrame(kPeerMac, kGuestMac, 1515, 1);  // MTU 1500 + 14 + 1
  EXPECT_EQ(env_.guest().SendFrames(0, {f}, SendMode::kGpaMultiPage), wire::NvspStatus::kFail);
  // A whole NVSP message bigger than any section + frame the host gathers.
  std::vector<uint8_t> huge(64 * 1024, 0);
  EXPECT_EQ(env_.guest().SendRndis(0, huge, SendMode::kGpaMultiPage, 0), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("tx_too_big"), 2u);
  EXPECT_TRUE(env_.Collect(0).empty());
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, OffloadRequestsThatDoNotFitTheFrameAreRefused) {  // P17
  auto f = MakeFrame(kPeerMac, kGuestMac, 100, 1);
  wire::RndisPpiSet lso;
  lso.lso = wire::PackLsoInfo({0, 34, true, false});  // MSS 0
  EXPECT_EQ(env_.guest().SendFrames(0, {f}, SendMode::kSection, lso), wire::NvspStatus::kFail);
  wire::RndisPpiSet csum;
  csum.checksum = wire::MakeTxChecksumInfo(wire::kTxChecksumIsIpv4 | wire::kTxChecksumTcp, 200);
  EXPECT_EQ(env_.guest().SendFrames(0, {f}, SendMode::kSection, csum), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("tx_bad_offload"), 2u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, TransferPagePacketsFromTheGuestAreMalformed) {
  const std::array<wire::TransferPageRange, 1> ranges = {{{16, 0}}};
  std::array<uint8_t, 40> header{};
  std::array<uint8_t, 16> payload{};
  auto n = wire::EncodeTransferPageHeader(header, 0xCAFE, ranges, 16, 1, false);
  ASSERT_TRUE(n);
  ASSERT_TRUE(env_.guest().Write(0, std::span<const uint8_t>(header.data(), *n), payload));
  EXPECT_TRUE(env_.guest().NothingPending(0, wire::PacketType::kComp));
  EXPECT_EQ(env_.Stat("nvsp_malformed"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, ControlMessagesOnASubchannelAreRefused) {
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  auto reply = env_.guest().Request(2, init);
  ASSERT_NE(As<wire::NvspInitComplete>(reply), nullptr);
  EXPECT_NE(As<wire::NvspInitComplete>(reply)->status, wire::NvspStatus::kSuccess);
  std::vector<uint8_t> query(28);
  ASSERT_TRUE(wire::EncodeRndisQuery(query, 99, wire::NdisOid::kGenLinkSpeed, {}));
  EXPECT_EQ(env_.guest().SendRndis(3, query, SendMode::kGpaMultiPage, 1), wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("nvsp_unexpected"), 2u);
  ExpectStillWorks(env_);
}

TEST(NetvspHostileTest, DataAndQueriesBeforeRndisInitializeAreRefused) {  // P5, P12
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  ASSERT_TRUE(env.guest().Request(0, init));
  wire::NvspSendNdisConfig config;
  config.mtu = 1514;
  ASSERT_TRUE(env.guest().Post(0, config));
  ASSERT_TRUE(env.guest().SetupReceiveBuffer(32));
  ASSERT_TRUE(env.guest().SetupSendBuffer(8));
  EXPECT_EQ(env.guest().SendFrames(0, {MakeFrame(kPeerMac, kGuestMac, 80, 1)}, SendMode::kSection),
            wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("tx_not_ready"), 1u);
  std::vector<uint8_t> query(28);
  ASSERT_TRUE(wire::EncodeRndisQuery(query, 5, wire::NdisOid::kGenLinkSpeed, {}));
  auto reply = env.guest().RndisRequest(query);
  ASSERT_TRUE(reply);
  auto parsed = wire::ParseRndisMessage(*reply, wire::Direction::kHostToGuest);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(std::get<wire::RndisQueryCompleteMessage>(*parsed).fixed.status,
            wire::RndisStatus::kAdapterNotReady);
  EXPECT_EQ(env.Stat("rndis_bad_state"), 1u);
}

TEST(NetvspHostileTest, RndisBeforeTheReceiveBufferIsFailed) {  // P5
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.guest().Connect());
  ASSERT_TRUE(env.guest().OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  ASSERT_TRUE(env.guest().Request(0, init));
  wire::RndisInitializeRequest req;
  std::array<uint8_t, 24> buf{};
  ASSERT_TRUE(wire::EncodeRndis(buf, req));
  EXPECT_EQ(env.guest().SendRndis(0, buf, SendMode::kGpaMultiPage, 1), wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("rndis_before_init"), 1u);
}

TEST_F(NetvspHostileDataTest, SecondRndisInitializeFails) {  // P12
  wire::RndisInitializeRequest req;
  req.request_id = env_.guest().NextRequestId();
  std::array<uint8_t, 24> buf{};
  ASSERT_TRUE(wire::EncodeRndis(buf, req));
  auto reply = env_.guest().RndisRequest(buf);
  ASSERT_TRUE(reply);
  auto parsed = wire::ParseRndisMessage(*reply, wire::Direction::kHostToGuest);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(std::get<wire::RndisInitializeComplete>(*parsed).status, wire::RndisStatus::kFailure);
  EXPECT_EQ(env_.Stat("rndis_bad_state"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, SetExAndUnknownRndisTypesAreNotSupported) {  // P13
  std::vector<uint8_t> set_ex(28 + 4);
  ASSERT_TRUE(wire::EncodeRndisSetEx(set_ex, 42, wire::NdisOid::kGenCurrentPacketFilter,
                                     std::vector<uint8_t>(4, 0)));
  auto reply = env_.guest().RndisRequest(set_ex);
  ASSERT_TRUE(reply);
  auto parsed = wire::DecodeRndisMessage(*reply);
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& c = std::get<wire::RndisSetExCompleteMessage>(*parsed);
  EXPECT_EQ(c.fixed.request_id, 42u);
  EXPECT_EQ(c.fixed.status, wire::RndisStatus::kNotSupported);
  std::vector<uint8_t> unknown = {0x42, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0};
  EXPECT_EQ(env_.guest().SendRndis(0, unknown, SendMode::kGpaMultiPage, 1),
            wire::NvspStatus::kFail);
  std::vector<uint8_t> completion(16, 0);  // a guest sending SET_CMPLT
  Put32(completion, 0, 0x80000005);
  Put32(completion, 4, 16);
  EXPECT_EQ(env_.guest().SendRndis(0, completion, SendMode::kGpaMultiPage, 1),
            wire::NvspStatus::kFail);
  EXPECT_EQ(env_.Stat("rndis_unsupported"), 2u);
  EXPECT_EQ(env_.Stat("rndis_malformed"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, SetsWithShortOrBadBuffersAreRefused) {
  EXPECT_EQ(env_.guest().Set(wire::NdisOid::kGenCurrentPacketFilter, std::vector<uint8_t>(2, 1)),
            wire::RndisStatus::kInvalidLength);
  EXPECT_EQ(env_.guest().Set(wire::NdisOid::kTcpOffloadParameters, std::vector<uint8_t>(8, 0)),
            wire::RndisStatus::kInvalidData);
  std::vector<uint8_t> param(20, 0xFF);  // offsets pointing far outside
  EXPECT_EQ(env_.guest().Set(wire::NdisOid::kGenRndisConfigParameter, param),
            wire::RndisStatus::kInvalidData);
  EXPECT_EQ(env_.guest().Set(static_cast<wire::NdisOid>(0x12345678), {}),
            wire::RndisStatus::kNotSupported);
  EXPECT_EQ(env_.Stat("oid_bad_length"), 1u);
  EXPECT_EQ(env_.Stat("rndis_malformed"), 2u);
  ExpectStillWorks(env_);
}

// ---------------------------------------------------------------------------------------------
// Receive completions (P15) and RSS parameters
// ---------------------------------------------------------------------------------------------

TEST_F(NetvspHostileDataTest, UnknownAndDuplicateReceiveCompletionsAreDropped) {  // P15
  std::array<uint8_t, 8> ok{};
  wire::NvspSendRndisPacketComplete done;
  done.status = wire::NvspStatus::kSuccess;
  ASSERT_TRUE(wire::EncodeNvsp(ok, done, 8));
  EXPECT_TRUE(env_.guest().NothingPending(0, wire::PacketType::kComp));  // settle the bring-up
  const uint64_t completions_before = env_.Stat("rx_completions");
  ASSERT_TRUE(env_.guest().SendCompletion(0, 0x123456789ull, ok));
  ASSERT_TRUE(env_.guest().SendCompletion(0, 0, ok));
  ASSERT_TRUE(env_.guest().SendCompletion(1, 0, {}));  // empty completion names nothing
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 100, 1)});
  auto ind = env_.guest().WaitIndication(0, /*complete=*/false);
  ASSERT_TRUE(ind);
  ASSERT_TRUE(env_.guest().CompleteIndication(0, ind->packet.desc.trans_id));
  ASSERT_TRUE(env_.guest().CompleteIndication(0, ind->packet.desc.trans_id));  // duplicate
  // A completion on another channel does not name this channel's packet either.
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 100, 2)});
  ind = env_.guest().WaitIndication(0, /*complete=*/false);
  ASSERT_TRUE(ind);
  ASSERT_TRUE(env_.guest().CompleteIndication(3, ind->packet.desc.trans_id));
  ASSERT_TRUE(env_.guest().CompleteIndication(0, ind->packet.desc.trans_id,
                                              wire::NvspStatus::kFail));
  // A completion whose payload is not a completion type at all.
  std::array<uint8_t, 16> not_a_completion = {107};
  ASSERT_TRUE(env_.guest().SendCompletion(0, 77, not_a_completion));
  EXPECT_TRUE(env_.guest().NothingPending(0, wire::PacketType::kComp));
  EXPECT_EQ(env_.Stat("rx_completion_unknown"), 5u);
  EXPECT_EQ(env_.Stat("rx_completions"), completions_before + 2);
  EXPECT_EQ(env_.Stat("rx_completion_failed"), 1u);
  EXPECT_EQ(env_.Stat("nvsp_malformed"), 1u);
  ExpectStillWorks(env_);
}

TEST_F(NetvspHostileDataTest, RssParametersWithBadTablesOrQueuesAreRefused) {
  std::vector<uint8_t> buf(40 + 512 + 40);
  auto set = [&](std::span<const uint32_t> table, std::span<const uint8_t> key) {
    auto n = wire::EncodeRssParameters(buf, 0, wire::kNdisHashInfoLinux, table, key);
    EXPECT_TRUE(n);
    return env_.guest().Set(wire::NdisOid::kGenReceiveScaleParameters,
                            std::span<const uint8_t>(buf.data(), n ? *n : 0));
  };
  std::vector<uint32_t> table(128);
  wire::FillDefaultIndirectionTable(table, 4);
  table[77] = 9;  // the NIC has 4 queues (OpenVMM PR #960/#3183)
  EXPECT_EQ(set(table, wire::kStandardToeplitzKey), wire::RndisStatus::kInvalidData);
  EXPECT_EQ(env_.Stat("rss_bad_queue"), 1u);
  std::vector<uint32_t> odd(48, 0);  // not a power of two
  EXPECT_EQ(set(odd, wire::kStandardToeplitzKey), wire::RndisStatus::kInvalidData);
  // Table offset pointing beyond the information buffer.
  wire::FillDefaultIndirectionTable(table, 4);
  auto n = wire::EncodeRssParameters(buf, 0, wire::kNdisHashInfoLinux, table,
                                     wire::kStandardToeplitzKey);
  ASSERT_TRUE(n);
  Put32(buf, 16, 0xFFFFFF00);
  EXPECT_EQ(env_.guest().Set(wire::NdisOid::kGenReceiveScaleParameters,
                             std::span<const uint8_t>(buf.data(), *n)),
            wire::RndisStatus::kInvalidData);
  EXPECT_EQ(env_.guest().Set(wire::NdisOid::kGenReceiveScaleParameters,
                             std::vector<uint8_t>(10, 0x89)),
            wire::RndisStatus::kInvalidData);
  EXPECT_EQ(env_.Stat("rss_bad_params"), 3u);
  EXPECT_TRUE(env_.device().State().rss_enabled);  // the earlier valid configuration stays
  EXPECT_EQ(set(table, wire::kStandardToeplitzKey), wire::RndisStatus::kSuccess);
  ExpectStillWorks(env_);
}

// ---------------------------------------------------------------------------------------------
// Ring corruption (spec 9.4): only that queue stops
// ---------------------------------------------------------------------------------------------

TEST_F(NetvspHostileDataTest, ACorruptRingStopsOnlyItsQueue) {
  // The guest writes an unaligned write_index into sub-channel 2's guest->host ring (R1).
  auto& st = env_.guest().channel_state(2);
  auto* ctl = reinterpret_cast<uint32_t*>(st.out_pages.bytes().data());
  std::atomic_ref<uint32_t>(ctl[0]).store(3, std::memory_order_release);
  env_.vmbus().Signal(st.connection_id);
  env_.device().Poll();
  EXPECT_EQ(env_.Stat("ring_corrupt"), 1u);
  // Frames that RSS would send to queue 2 are delivered by the receiving queue itself.
  const std::array<uint8_t, 4> dst = {10, 0, 0, 1};
  for (uint16_t port = 2000; port < 2040; ++port) {
    const std::array<uint8_t, 4> src = {172, 16, 0, static_cast<uint8_t>(port)};
    const ExpectedRss want = RssFor(src, dst, port, 80, 4);
    if (want.queue != 2) continue;
    env_.Inject(0, {testing::MakeTcp4Frame(kGuestMac, kPeerMac, src, dst, port, 80)});
    EXPECT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
    break;
  }
  ExpectStillWorks(env_);
  auto f = MakeFrame(kPeerMac, kGuestMac, 120, 3);
  EXPECT_EQ(env_.guest().SendFrames(1, {f}, SendMode::kSection), wire::NvspStatus::kSuccess);
  EXPECT_EQ(env_.Collect(1).size(), 1u);
}

}  // namespace
}  // namespace uvmbus::netvsp::test
