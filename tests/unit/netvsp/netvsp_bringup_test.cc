// File: tests/unit/netvsp/netvsp_bringup_test.cc
//
// The control plane of NetvspDevice driven through Linux's bring-up (spec 5.7, 7.8) by a
// scripted guest, step by step, with every reply checked against the spec's layouts.
#include <cstring>

#include <gtest/gtest.h>

#include "netvsp/netvsp_test_util.h"
#include "wire/device_guids.h"

namespace uvmbus::netvsp::test {
namespace {

using testing::HostPacket;

template <typename T>
const T* As(const std::optional<wire::NvspMessage>& m) {
  return m ? std::get_if<T>(&*m) : nullptr;
}

uint32_t U32At(std::span<const uint8_t> b, size_t off) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

TEST(NetvspOfferTest, OffersNetworkClassWithSubchannelLimit) {
  NetvspEnv env({.queues = 4});
  ASSERT_TRUE(env.guest().Connect());
  const wire::OfferChannel& offer = env.guest().primary_offer();
  EXPECT_EQ(offer.if_type, wire::kNetworkClassGuid);
  EXPECT_EQ(offer.if_instance, env.device().instance_id());
  EXPECT_EQ(offer.sub_channel_index, 0);
  EXPECT_EQ(env.device().MaxSubchannels(), 3);
  EXPECT_EQ(env.device().max_frame_size(), 1514u);
}

TEST(NetvspBringUpTest, RepliesFollowTheSpecLayouts) {
  NetvspEnv env({.queues = 4});
  auto& g = env.guest();
  ASSERT_TRUE(g.Connect());
  ASSERT_TRUE(g.OpenPrimary());

  // 5.7 3.1.1: INIT 6.1 -> INIT_COMPLETE {negotiated 0xFFFFFFFF, max_mdl 34, SUCCESS}, 40 bytes.
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  const uint64_t init_id = g.NextTransId();
  std::array<uint8_t, 40> ibuf{};
  ASSERT_TRUE(wire::EncodeNvsp(ibuf, init, 40));
  ASSERT_TRUE(g.SendInband(0, ibuf, init_id));
  auto init_comp = g.WaitCompletion(0, init_id);
  ASSERT_TRUE(init_comp);
  EXPECT_EQ(init_comp->payload().size(), 40u);  // NVSP 6.1: 40-byte messages (spec 5.1)
  auto init_reply = wire::ParseNvspMessage(init_comp->payload(), wire::Direction::kHostToGuest,
                                           wire::PacketType::kComp, wire::kNvspVersionNone);
  ASSERT_TRUE(init_reply);
  const auto& ic = std::get<wire::NvspInitComplete>(*init_reply);
  EXPECT_EQ(ic.status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(ic.max_mdl_chain_len, 34u);
  EXPECT_EQ(ic.negotiated_protocol_ver, 0xFFFFFFFFu);

  // 3.1.2/3.1.3: NDIS config and version need no completion.
  wire::NvspSendNdisConfig config;
  config.mtu = 1514;
  config.capability = wire::kNdisConfigCapIeee8021q | wire::kNdisConfigCapSriov;
  ASSERT_TRUE(g.Post(0, config));
  wire::NvspSendNdisVersion ndis;
  ndis.ndis_major_ver = 6;
  ndis.ndis_minor_ver = 30;
  ASSERT_TRUE(g.Post(0, ndis));
  EXPECT_TRUE(g.NothingPending(0, wire::PacketType::kComp));

  // 3.1.4: receive buffer: one section at 0, sub_alloc_size >= 68, size * count <= buffer.
  auto recv = g.SetupReceiveBuffer(64);
  ASSERT_TRUE(recv);
  EXPECT_EQ(recv->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(recv->num_sections, 1u);
  EXPECT_EQ(recv->section.offset, 0u);
  EXPECT_GE(recv->section.sub_alloc_size, 256u + 1514u);
  EXPECT_EQ(recv->section.sub_alloc_size % 8, 0u);
  EXPECT_EQ(recv->section.num_sub_allocs, 64u * 4096u / recv->section.sub_alloc_size);
  EXPECT_EQ(recv->section.end_offset,
            recv->section.sub_alloc_size * recv->section.num_sub_allocs);
  // Send buffer: 6144-byte sections.
  auto send = g.SetupSendBuffer(16);
  ASSERT_TRUE(send);
  EXPECT_EQ(send->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(send->section_size, 6144u);
  EXPECT_EQ(g.send_section_count(), 16u * 4096u / 6144u);

  // 3.2: RNDIS INITIALIZE -> INITIALIZE_CMPLT (52 bytes) through the receive buffer, control.
  wire::RndisInitializeRequest req;
  req.request_id = g.NextRequestId();
  std::array<uint8_t, 24> rbuf{};
  ASSERT_TRUE(wire::EncodeRndis(rbuf, req));
  ASSERT_EQ(g.SendRndis(0, rbuf, testing::SendMode::kGpaMultiPage,
                        wire::kNvspRndisChannelControl),
            wire::NvspStatus::kSuccess);
  auto ind = g.WaitIndication(0);
  ASSERT_TRUE(ind);
  EXPECT_EQ(ind->xfer_pageset_id, wire::kNetvscReceiveBufferId);
  EXPECT_EQ(ind->channel_type, wire::kNvspRndisChannelControl);
  EXPECT_EQ(ind->packet.desc.flags, wire::kPacketFlagCompletionRequested);
  // A slot index below the sub-allocation count (DPDK indexes an array with it).
  EXPECT_LT(ind->packet.desc.trans_id, g.num_sub_allocs());
  ASSERT_EQ(ind->messages.size(), 1u);
  EXPECT_EQ(ind->messages[0].byte_offset % g.sub_alloc_size(), 0u);
  const auto& ic_bytes = ind->messages[0].bytes;
  ASSERT_EQ(ic_bytes.size(), 52u);
  auto parsed = wire::ParseRndisMessage(ic_bytes, wire::Direction::kHostToGuest);
  ASSERT_TRUE(parsed);
  const auto& c = std::get<wire::RndisInitializeComplete>(*parsed);
  EXPECT_EQ(c.request_id, req.request_id);
  EXPECT_EQ(c.status, wire::RndisStatus::kSuccess);
  EXPECT_EQ(c.major_version, 1u);
  EXPECT_EQ(c.minor_version, 0u);
  EXPECT_EQ(c.device_flags, wire::kRndisDeviceFlagConnectionless);
  EXPECT_EQ(c.medium, wire::kRndisMedium802_3);
  EXPECT_EQ(c.max_packets_per_message, 8u);
  EXPECT_EQ(c.packet_alignment_factor, 3u);

  // 3.3 maximum frame size (payload MTU), 3.4 MAC, 3.5 friendly name.
  auto mtu = g.Query(wire::NdisOid::kGenMaximumFrameSize);
  ASSERT_TRUE(mtu);
  EXPECT_EQ(mtu->fixed.status, wire::RndisStatus::kSuccess);
  EXPECT_EQ(mtu->fixed.info_buf_offset, 16u);
  ASSERT_EQ(mtu->info.size(), 4u);
  EXPECT_EQ(U32At(mtu->info, 0), 1500u);
  auto mac = g.Query(wire::NdisOid::k802_3PermanentAddress);
  ASSERT_TRUE(mac);
  ASSERT_EQ(mac->info.size(), 6u);
  EXPECT_TRUE(std::equal(kGuestMac.begin(), kGuestMac.end(), mac->info.begin()));
  auto name = g.Query(wire::NdisOid::kGenFriendlyName);
  ASSERT_TRUE(name);
  const std::string_view expected = "Network Adapter";
  ASSERT_EQ(name->info.size(), 2 * (expected.size() + 1));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(name->info[2 * i], expected[i]);
    EXPECT_EQ(name->info[2 * i + 1], 0);
  }

  // 3.6 offload capabilities: NVSP >= 5 asks revision 3 / 156 bytes; the answer parses as
  // Linux requires (type 0xA7, revision >= 1, size >= 112) and offers nothing.
  const wire::NdisObjectHeader oh = wire::NdisOffloadQueryHeader(wire::kNvspVersion61);
  std::array<uint8_t, 4> ohb{};
  std::memcpy(ohb.data(), &oh, 4);
  auto caps = g.Query(wire::NdisOid::kTcpOffloadHardwareCapabilities, ohb);
  ASSERT_TRUE(caps);
  auto offload = wire::ParseNdisOffload(caps->info);
  ASSERT_TRUE(offload) << offload.error();
  EXPECT_EQ(offload->header.revision, 3);
  EXPECT_EQ(offload->header.size, 156);
  EXPECT_EQ(offload->csum.ip4_txcsum, 0u);
  EXPECT_EQ(offload->lsov2.ip4_encap, 0u);
  // Linux disables what was not offered; the host accepts.
  wire::NdisOffloadParams params;
  params.ip_v4_csum = wire::kOffloadParamCsumTxRxDisabled;
  std::array<uint8_t, 28> pbuf{};
  std::memcpy(pbuf.data(), &params, 28);
  EXPECT_EQ(g.Set(wire::NdisOid::kTcpOffloadParameters, pbuf), wire::RndisStatus::kSuccess);
  // Enabling checksum offload the host never offered is refused.
  params.tcp_ip_v4_csum = wire::kOffloadParamCsumTxRxEnabled;
  std::memcpy(pbuf.data(), &params, 28);
  EXPECT_EQ(g.Set(wire::NdisOid::kTcpOffloadParameters, pbuf), wire::RndisStatus::kNotSupported);

  // 3.7 media connect status: 0 = connected; 3.9 link speed; 3.10 RSS capabilities.
  auto media = g.Query(wire::NdisOid::kGenMediaConnectStatus);
  ASSERT_TRUE(media);
  EXPECT_EQ(U32At(media->info, 0), wire::kNdisMediaStateConnected);
  auto speed = g.Query(wire::NdisOid::kGenLinkSpeed);
  ASSERT_TRUE(speed);
  EXPECT_EQ(U32At(speed->info, 0), 100'000'000u);
  wire::NdisReceiveScaleCapabilities caps_in;
  std::array<uint8_t, 18> cbuf{};
  std::memcpy(cbuf.data(), &caps_in, 18);
  auto rss = g.Query(wire::NdisOid::kGenReceiveScaleCapabilities, cbuf);
  ASSERT_TRUE(rss);
  auto rss_caps = wire::ParseRssCapabilities(rss->info);
  ASSERT_TRUE(rss_caps) << rss_caps.error();
  EXPECT_EQ(rss_caps->num_recv_que, 4u);
  EXPECT_EQ(rss_caps->num_indirect_tabent, 128);
  EXPECT_EQ(rss_caps->cap_flag & wire::kNdisHashFunctionMask, wire::kNdisHashFunctionToeplitz);

  // An OID the host does not implement: NOT_SUPPORTED, never silence (spec 6.4).
  auto unknown = g.Query(static_cast<wire::NdisOid>(0x00ABCDEF));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->fixed.status, wire::RndisStatus::kNotSupported);
  EXPECT_EQ(env.Stat("oid_unsupported"), 2u);  // + the refused checksum offload

  const NicState state = env.device().State();
  EXPECT_EQ(state.nvsp_version, wire::kNvspVersion61);
  EXPECT_EQ(state.ndis_version, 0x0006001Eu);
  EXPECT_EQ(state.ndis_mtu, 1514u);
  EXPECT_EQ(state.rndis_state, "initialized");
  EXPECT_EQ(state.recv_sections, g.num_sub_allocs());
}

TEST(NetvspBringUpTest, SubchannelsSendTableAndRssFollowSpec78) {
  NetvspEnv env({.queues = 4});
  auto& g = env.guest();
  ASSERT_TRUE(env.Up(false));
  wire::NvspSubchannelRequest req;
  req.num_subchannels = 3;
  auto reply = g.Request(0, req);
  const auto* done = As<wire::NvspSubchannelComplete>(reply);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(done->num_subchannels, 3u);
  ASSERT_TRUE(g.OpenSubchannels(3));
  EXPECT_EQ(g.open_channels(), 4u);

  // Once all are open: SEND_INDIRECTION_TABLE in-band on the primary, no completion requested,
  // table at offset 40 (104 bytes), 16 entries i % 4 (spec 5.5, 10.2 N-b).
  auto table = g.WaitPacket(0, wire::PacketType::kDataInband);
  ASSERT_TRUE(table);
  EXPECT_EQ(table->desc.flags, 0);
  EXPECT_EQ(table->payload().size(), 104u);
  EXPECT_EQ(U32At(table->payload(), 0), 134u);
  EXPECT_EQ(U32At(table->payload(), 4), 16u);
  EXPECT_EQ(U32At(table->payload(), 8), 40u);
  auto parsed = wire::ParseNvspMessage(table->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kDataInband, wire::kNvspVersion61);
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& t = std::get<wire::NvspSendIndirectionTable>(*parsed);
  for (uint32_t i = 0; i < 16; ++i) EXPECT_EQ(t.table[i], i % 4) << i;
  EXPECT_EQ(env.Stat("send_tables_sent"), 1u);

  // RSS: DISABLE, then the 128-entry table and the standard key; then the packet filter.
  EXPECT_TRUE(env.SetRss(false));
  EXPECT_FALSE(env.device().State().rss_enabled);
  EXPECT_TRUE(env.SetRss(true));
  EXPECT_TRUE(env.EnableRx());
  const NicState s = env.device().State();
  EXPECT_TRUE(s.rss_enabled);
  EXPECT_EQ(s.packet_filter, wire::kNdisPacketFilterLinuxDefault);
  EXPECT_EQ(s.channels_allocated, 4u);
  EXPECT_EQ(s.channels_open, 4u);
}

TEST(NetvspBringUpTest, SubchannelGrantIsCappedByTheNicQueues) {
  NetvspEnv env({.queues = 2});
  auto& g = env.guest();
  ASSERT_TRUE(env.Up(false));
  wire::NvspSubchannelRequest req;
  req.num_subchannels = 7;  // Linux asks for min(8, CPUs) - 1; the host has 2 queues
  auto reply = g.Request(0, req);
  const auto* done = As<wire::NvspSubchannelComplete>(reply);
  ASSERT_NE(done, nullptr);
  // P14: a count >= the host's queue count is refused (OpenVMM).
  EXPECT_EQ(done->status, wire::NvspStatus::kFail);
  EXPECT_EQ(done->num_subchannels, 0u);
  EXPECT_EQ(env.Stat("subchannel_refused"), 1u);
  req.num_subchannels = 1;
  reply = g.Request(0, req);
  done = As<wire::NvspSubchannelComplete>(reply);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(done->num_subchannels, 1u);
  ASSERT_TRUE(g.OpenSubchannels(1));
  auto table = g.WaitPacket(0, wire::PacketType::kDataInband);
  ASSERT_TRUE(table);
  auto parsed = wire::ParseNvspMessage(table->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kDataInband, wire::kNvspVersion61);
  ASSERT_TRUE(parsed);
  for (uint32_t i = 0; i < 16; ++i) {
    EXPECT_EQ(std::get<wire::NvspSendIndirectionTable>(*parsed).table[i], i % 2);
  }
}

TEST(NetvspBringUpTest, EveryNvspVersionCanBeNegotiated) {
  for (uint32_t v : wire::kNvspVersionsNewestFirst) {
    NetvspEnv env({.queues = 1});
    ASSERT_TRUE(env.Up(false, v)) << std::hex << v;
    EXPECT_EQ(env.device().State().nvsp_version, v);
    // Completions are 28 bytes below 6.1, 40 from 6.1 (spec 5.1, 10.2 N-a).
    wire::NvspSendRndisPacket bogus;  // control message with no data: fails, but answers
    const uint64_t id = env.guest().NextTransId();
    std::array<uint8_t, 40> buf{};
    ASSERT_TRUE(wire::EncodeNvsp(buf, bogus, 40));
    ASSERT_TRUE(env.guest().SendInband(0, buf, id));
    auto comp = env.guest().WaitCompletion(0, id);
    ASSERT_TRUE(comp);
    EXPECT_EQ(comp->payload().size(), v >= wire::kNvspVersion61 ? 40u : 32u);  // 28 padded to 8
  }
}

TEST(NetvspBringUpTest, GuestFallsBackBelowTheHostsHighestVersion) {
  NetvspEnv env({.queues = 1, .max_nvsp_version = wire::kNvspVersion5});
  auto& g = env.guest();
  ASSERT_TRUE(g.Connect());
  ASSERT_TRUE(g.OpenPrimary());
  // Linux tries 6.1, 6.0, 5 ... (spec 5.2): refused ones answer status NONE.
  for (uint32_t v : {wire::kNvspVersion61, wire::kNvspVersion6}) {
    wire::NvspInit init;
    init.min_protocol_ver = init.max_protocol_ver = v;
    auto r = g.Request(0, init);
    const auto* ic = As<wire::NvspInitComplete>(r);
    ASSERT_NE(ic, nullptr);
    EXPECT_EQ(ic->status, wire::NvspStatus::kNone);
  }
  EXPECT_EQ(env.Stat("nvsp_version_refused"), 2u);
  ASSERT_TRUE(g.BringUp(wire::kNvspVersion5));
  EXPECT_EQ(env.device().State().nvsp_version, wire::kNvspVersion5);
}

TEST(NetvspBringUpTest, RemovalAndReprobeStartAFreshSession) {
  NetvspEnv env({.queues = 4});
  ASSERT_TRUE(env.Up());
  EXPECT_EQ(env.device().State().rndis_state, "initialized");
  // Linux's MTU change / ethtool -L: the whole device goes (spec 5.7 step 7) and comes back.
  ASSERT_TRUE(env.guest().Remove());
  EXPECT_EQ(env.Stat("buffer_revoked"), 2u);  // P16
  EXPECT_EQ(env.device().State().nvsp_version, 0u);
  EXPECT_EQ(env.device().State().channels_open, 0u);
  ASSERT_TRUE(env.guest().OpenPrimary());
  ASSERT_TRUE(env.guest().BringUp(wire::kNvspVersion61, 32, 8));
  ASSERT_TRUE(env.Multiqueue());
  ASSERT_TRUE(env.EnableRx());
  EXPECT_EQ(env.device().State().rndis_state, "initialized");
  EXPECT_EQ(env.device().State().channels_open, 4u);
  // Traffic flows again both ways.
  auto f = testing::MakeFrame(kPeerMac, kGuestMac, 200, 9);
  EXPECT_EQ(env.guest().SendFrames(1, {f}, testing::SendMode::kSection),
            wire::NvspStatus::kSuccess);
  auto got = env.Collect(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], f);
  env.Inject(0, {testing::MakeFrame(kGuestMac, kPeerMac, 150, 2)});
  EXPECT_EQ(env.guest().ReceiveFrames(0).size(), 1u);
}

TEST(NetvspBringUpTest, HaltStopsDataUntilInitializeAgain) {
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up());
  wire::RndisHaltRequest halt;
  halt.request_id = env.guest().NextRequestId();
  std::array<uint8_t, 12> buf{};
  ASSERT_TRUE(wire::EncodeRndis(buf, halt));
  // HALT has no reply (spec 6.1): only the NVSP completion.
  EXPECT_EQ(env.guest().SendRndis(0, buf, testing::SendMode::kGpaMultiPage,
                                  wire::kNvspRndisChannelControl),
            wire::NvspStatus::kSuccess);
  EXPECT_TRUE(env.guest().NothingPending(0, wire::PacketType::kDataUsingXferPages));
  EXPECT_EQ(env.device().State().rndis_state, "halted");
  // Data after HALT is refused (P5).
  auto f = testing::MakeFrame(kPeerMac, kGuestMac, 100, 1);
  EXPECT_EQ(env.guest().SendFrames(0, {f}, testing::SendMode::kSection),
            wire::NvspStatus::kFail);
  EXPECT_EQ(env.Stat("tx_not_ready"), 1u);
}

TEST(NetvspBringUpTest, KeepaliveAndResetAreAnswered) {
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up(false));
  wire::RndisKeepaliveRequest ka;
  ka.request_id = env.guest().NextRequestId();
  std::array<uint8_t, 12> kbuf{};
  ASSERT_TRUE(wire::EncodeRndis(kbuf, ka));
  auto reply = env.guest().RndisRequest(kbuf);
  ASSERT_TRUE(reply);
  auto parsed = wire::DecodeRndisMessage(*reply);
  ASSERT_TRUE(parsed) << parsed.error();
  const auto& kc = std::get<wire::RndisKeepaliveComplete>(*parsed);
  EXPECT_EQ(kc.request_id, ka.request_id);
  EXPECT_EQ(kc.status, wire::RndisStatus::kSuccess);

  wire::RndisResetRequest reset;
  std::array<uint8_t, 12> rbuf{};
  ASSERT_TRUE(wire::EncodeRndis(rbuf, reset));
  reply = env.guest().RndisRequest(rbuf);
  ASSERT_TRUE(reply);
  parsed = wire::DecodeRndisMessage(*reply);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(std::get<wire::RndisResetComplete>(*parsed).status, wire::RndisStatus::kSuccess);
}

TEST(NetvspBringUpTest, NetworkAddressParameterChangesTheCurrentMac) {
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up());
  const std::array<uint8_t, 6> mac = {0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc};
  std::array<uint8_t, 72> block{};
  ASSERT_TRUE(wire::EncodeNetworkAddressParameter(block, mac));
  EXPECT_EQ(env.guest().Set(wire::NdisOid::kGenRndisConfigParameter, block),
            wire::RndisStatus::kSuccess);
  EXPECT_EQ(env.device().State().mac.bytes, mac);
  auto cur = env.guest().Query(wire::NdisOid::k802_3CurrentAddress);
  ASSERT_TRUE(cur);
  EXPECT_TRUE(std::equal(mac.begin(), mac.end(), cur->info.begin()));
  // Frames to the new MAC pass the DIRECTED filter; the old one no longer does.
  env.Inject(0, {testing::MakeFrame(mac, kPeerMac, 80, 3)});
  auto frames = env.guest().ReceiveFrames(0);
  ASSERT_EQ(frames.size(), 1u);
  env.Inject(0, {testing::MakeFrame(kGuestMac, kPeerMac, 80, 4)});
  EXPECT_TRUE(env.guest().NothingPending(0, wire::PacketType::kDataUsingXferPages));
  EXPECT_EQ(env.Stat("rx_filtered"), 1u);
}

TEST(NetvspBringUpTest, HostSideGuidanceOfSpec102IsFollowed) {
  NetvspEnv env({.queues = 1});
  auto& g = env.guest();
  ASSERT_TRUE(g.Connect());
  ASSERT_TRUE(g.OpenPrimary());
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion4;
  ASSERT_TRUE(g.Request(0, init));
  // P6: an MTU outside 1514..9216 in NDIS config is replaced by 1514.
  wire::NvspSendNdisConfig config;
  config.mtu = 100;
  ASSERT_TRUE(g.Post(0, config));
  // N-f: any NDIS 6.x.
  wire::NvspSendNdisVersion ndis;
  ndis.ndis_major_ver = 6;
  ndis.ndis_minor_ver = 20;
  ASSERT_TRUE(g.Post(0, ndis));
  ASSERT_TRUE(g.SetupReceiveBuffer(32));
  // N-e: DPDK's send buffer id 0xFACE is as good as Linux's 0.
  auto send = g.SetupSendBuffer(16, 0x5E000, wire::kDpdkSendBufferId);
  ASSERT_TRUE(send);
  EXPECT_EQ(send->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(env.device().State().ndis_mtu, 1514u);
  // N-p: a Windows guest may put RNDIS control messages into a send section.
  wire::RndisInitializeRequest req;
  req.request_id = g.NextRequestId();
  std::array<uint8_t, 24> buf{};
  ASSERT_TRUE(wire::EncodeRndis(buf, req));
  auto reply = g.RndisRequest(buf, testing::SendMode::kSection);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->size(), 52u);
  // N-n: NVSP <= 4 offload parameters are 22 bytes.
  wire::NdisOffloadParams params;
  params.header.size = 22;
  params.ip_v4_csum = wire::kOffloadParamCsumTxRxDisabled;
  std::array<uint8_t, 22> pbuf{};
  std::memcpy(pbuf.data(), &params, 22);
  EXPECT_EQ(g.Set(wire::NdisOid::kTcpOffloadParameters, pbuf), wire::RndisStatus::kSuccess);
  // N-k: SWITCH_DATA_PATH with a completion request gets an empty completion.
  wire::NvspSwitchDataPath sw;
  sw.active_datapath = wire::kNvspDataPathVf;
  auto comp = g.Request(0, sw);
  ASSERT_TRUE(comp);
  EXPECT_TRUE(std::holds_alternative<wire::NvspEmptyCompletion>(*comp));
  // NVSP 4 has no vRSS: one receive queue is reported (spec 5.7 step 3.8).
  wire::NdisReceiveScaleCapabilities caps_in;
  std::array<uint8_t, 18> cbuf{};
  std::memcpy(cbuf.data(), &caps_in, 18);
  auto rss = g.Query(wire::NdisOid::kGenReceiveScaleCapabilities, cbuf);
  ASSERT_TRUE(rss);
  EXPECT_EQ(wire::ParseRssCapabilities(rss->info)->num_recv_que, 1u);
}

}  // namespace
}  // namespace uvmbus::netvsp::test
