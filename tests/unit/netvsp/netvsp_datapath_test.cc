// File: tests/unit/netvsp/netvsp_datapath_test.cc
//
// Frames both ways through NetvspDevice (manual mode, deterministic): every transmit form of
// spec 5.6 (send section, batched section, GPA page-buffer, GPA multi-page, cp_partial mix),
// receive indications (multi-range transfer-page packets, hash PPI, RSS steering to the guest's
// queue, filter, exhaustion of the receive buffer), link indications, and the counters.
#include <cstring>
#include <map>

#include <gtest/gtest.h>

#include "netvsp/netvsp_test_util.h"

namespace uvmbus::netvsp::test {
namespace {

using testing::MakeFrame;
using testing::MakeTcp4Frame;
using testing::SendMode;

class NetvspDataTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.Up()); }
  NetvspEnv env_{EnvOptions{.queues = 4}};
};

TEST_F(NetvspDataTest, TransmitInEverySendFormReachesTheBackendUnchanged) {
  uint8_t seed = 0;
  for (SendMode mode : {SendMode::kSection, SendMode::kGpaPageBuffer, SendMode::kGpaMultiPage,
                        SendMode::kMixed}) {
    for (uint32_t size : {60u, 1000u, 1514u}) {
      auto f = MakeFrame(kPeerMac, kGuestMac, size, ++seed);
      EXPECT_EQ(env_.guest().SendFrames(0, {f}, mode), wire::NvspStatus::kSuccess)
          << static_cast<int>(mode) << " " << size;
      auto got = env_.Collect(0);
      ASSERT_EQ(got.size(), 1u) << static_cast<int>(mode) << " " << size;
      EXPECT_EQ(got[0], f);
    }
  }
  EXPECT_EQ(env_.Stat("tx_queue_0_packets"), 12u);
  EXPECT_EQ(env_.Stat("tx_queue_0_bytes"), 4u * (60 + 1000 + 1514));
}

TEST_F(NetvspDataTest, SeveralPacketMessagesInOneSectionBecomeSeveralFrames) {
  // Linux batches up to max_packets_per_message PACKET_MSGs into one section, each padded to
  // the granted alignment (spec 5.6).
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 8; ++i) frames.push_back(MakeFrame(kPeerMac, kGuestMac, 61 + 97 * i,
                                                              static_cast<uint8_t>(i)));
  EXPECT_EQ(env_.guest().SendFrames(2, frames, SendMode::kSection), wire::NvspStatus::kSuccess);
  auto got = env_.Collect(2, frames.size());
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(got[i], frames[i]) << i;
  EXPECT_EQ(env_.Stat("tx_queue_2_packets"), 8u);
  // One more than granted is a malformed batch: nothing of it is sent (P11).
  frames.push_back(MakeFrame(kPeerMac, kGuestMac, 64, 77));
  EXPECT_EQ(env_.guest().SendFrames(2, frames, SendMode::kSection), wire::NvspStatus::kFail);
  EXPECT_TRUE(env_.Collect(2).empty());
  EXPECT_EQ(env_.Stat("tx_bad_rndis"), 1u);
}

TEST_F(NetvspDataTest, VlanPpiIsInsertedAsAnEightOTwoDotOneQTag) {
  auto f = MakeFrame(kPeerMac, kGuestMac, 100, 5);
  wire::RndisPpiSet ppis;
  ppis.vlan = wire::PackVlanInfo({3, false, 42});
  EXPECT_EQ(env_.guest().SendFrames(1, {f}, SendMode::kSection, ppis),
            wire::NvspStatus::kSuccess);
  auto got = env_.Collect(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].size(), f.size() + 4);
  EXPECT_TRUE(std::equal(f.begin(), f.begin() + 12, got[0].begin()));
  EXPECT_EQ(got[0][12], 0x81);
  EXPECT_EQ(got[0][13], 0x00);
  EXPECT_EQ((got[0][14] << 8) | got[0][15], (3 << 13) | 42);
  EXPECT_TRUE(std::equal(f.begin() + 12, f.end(), got[0].begin() + 16));
  EXPECT_EQ(env_.Stat("tx_vlan_tagged"), 1u);
}

TEST_F(NetvspDataTest, ReceivedFramesCarryTheToeplitzHashAndLandOnTheTablesQueue) {
  // Flows injected on backend queue 0; RSS sends each to table[hash & 127] = that % 4 (spec 8.5).
  const std::array<uint8_t, 4> dst_ip = {10, 0, 0, 1};
  std::map<uint32_t, uint32_t> per_queue;
  for (uint16_t port = 1000; port < 1032; ++port) {
    const std::array<uint8_t, 4> src_ip = {192, 168, 1, static_cast<uint8_t>(port & 0xFF)};
    auto f = MakeTcp4Frame(kGuestMac, kPeerMac, src_ip, dst_ip, port, 80);
    const ExpectedRss want = RssFor(src_ip, dst_ip, port, 80, 4);
    env_.Inject(0, {f});
    auto got = env_.guest().ReceiveFrames(static_cast<uint16_t>(want.queue));
    ASSERT_EQ(got.size(), 1u) << "port " << port << " queue " << want.queue;
    EXPECT_EQ(got[0].frame, f);
    ASSERT_TRUE(got[0].ppis.hash_value.has_value());
    EXPECT_EQ(*got[0].ppis.hash_value, want.hash);
    ++per_queue[want.queue];
  }
  EXPECT_GT(per_queue.size(), 1u);  // the flows spread over several queues
  uint64_t steered = 0;
  for (uint32_t q = 0; q < 4; ++q) {
    EXPECT_EQ(env_.Stat(fmt::format("rx_queue_{}_packets", q)), per_queue[q]) << q;
    if (q != 0) steered += per_queue[q];
  }
  EXPECT_EQ(env_.Stat("rx_steered"), steered);
}

TEST_F(NetvspDataTest, ABatchOfFramesIsOneTransferPagePacketWithOneRangeEach) {
  const std::array<uint8_t, 4> src = {192, 168, 7, 7};
  const std::array<uint8_t, 4> dst = {10, 0, 0, 1};
  const ExpectedRss want = RssFor(src, dst, 4444, 443, 4);
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 5; ++i) frames.push_back(MakeTcp4Frame(kGuestMac, kPeerMac, src, dst,
                                                                   4444, 443, 100 * i + 10));
  env_.Inject(0, frames);
  auto ind = env_.guest().WaitIndication(static_cast<uint16_t>(want.queue));
  ASSERT_TRUE(ind);
  EXPECT_EQ(ind->xfer_pageset_id, wire::kNetvscReceiveBufferId);
  EXPECT_EQ(ind->channel_type, wire::kNvspRndisChannelData);
  EXPECT_EQ(ind->packet.desc.offset8, 3 + 5);  // 24-byte header + 5 ranges (spec 4.4)
  ASSERT_EQ(ind->messages.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const auto& m = ind->messages[i];
    EXPECT_EQ(m.byte_offset % env_.guest().sub_alloc_size(), 0u);
    EXPECT_LE(m.byte_count, env_.guest().sub_alloc_size());
    auto p = wire::ParseRndisPacket(m.bytes, wire::Direction::kHostToGuest);
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->fixed.header.msg_len, m.byte_count);
    EXPECT_EQ(p->ppi_status, wire::PpiStatus::kOk);
    EXPECT_TRUE(std::equal(p->frame.begin(), p->frame.end(), frames[i].begin()));
    EXPECT_EQ(p->ppis.hash_value, want.hash);
  }
}

TEST_F(NetvspDataTest, WithoutRssEverythingArrivesOnThePrimaryWithoutHash) {
  ASSERT_TRUE(env_.SetRss(false));
  for (uint32_t q = 0; q < 4; ++q) {
    env_.Inject(q, {MakeFrame(kGuestMac, kPeerMac, 90, static_cast<uint8_t>(q))});
    auto got = env_.guest().ReceiveFrames(0);
    ASSERT_EQ(got.size(), 1u) << q;
    EXPECT_FALSE(got[0].ppis.hash_value.has_value());
  }
  EXPECT_EQ(env_.Stat("rx_queue_0_packets"), 4u);
}

TEST_F(NetvspDataTest, NonIpFramesGoToTheFirstTableEntryWithoutHash) {
  env_.Inject(2, {MakeFrame(kGuestMac, kPeerMac, 90, 1)});
  auto got = env_.guest().ReceiveFrames(0);  // table[0] = 0 (spec 8.3 default queue)
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(got[0].ppis.hash_value.has_value());
}

TEST_F(NetvspDataTest, PacketFilterZeroStopsReceiveAndBroadcastNeedsItsBit) {
  ASSERT_TRUE(env_.SetFilter(0));  // Linux "stop Rx" before an MTU change
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 90, 1)});
  EXPECT_TRUE(env_.guest().NothingPending(0, wire::PacketType::kDataUsingXferPages));
  EXPECT_EQ(env_.Stat("rx_filtered"), 1u);
  ASSERT_TRUE(env_.SetFilter(wire::kNdisPacketFilterDirected));
  const std::array<uint8_t, 6> bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  env_.Inject(0, {MakeFrame(bcast, kPeerMac, 90, 2)});
  EXPECT_TRUE(env_.guest().NothingPending(0, wire::PacketType::kDataUsingXferPages));
  EXPECT_EQ(env_.Stat("rx_filtered"), 2u);
  ASSERT_TRUE(env_.SetFilter(wire::kNdisPacketFilterDirected | wire::kNdisPacketFilterBroadcast));
  env_.Inject(0, {MakeFrame(bcast, kPeerMac, 90, 3)});
  EXPECT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
  ASSERT_TRUE(env_.SetFilter(wire::kNdisPacketFilterPromiscuous));
  env_.Inject(0, {MakeFrame(kPeerMac, kPeerMac, 90, 4)});  // not for us: promiscuous only
  EXPECT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
}

TEST_F(NetvspDataTest, FullReceiveBufferDropsAndCountsThenRecovers) {
  // The guest holds every indication (no completions): sub-allocations run out, frames are
  // dropped and counted (never queued without bound, P18); completions bring delivery back.
  std::vector<testing::ReceivedIndication> held;
  const uint32_t sections = env_.guest().num_sub_allocs();
  for (uint32_t i = 0; i < sections + 8; ++i) {
    env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 100, static_cast<uint8_t>(i))});
    env_.device().Poll();
  }
  while (auto ind = env_.guest().WaitIndication(0, /*complete=*/false)) held.push_back(*ind);
  size_t delivered = 0;
  for (const auto& h : held) delivered += h.messages.size();
  EXPECT_LE(delivered, sections);
  EXPECT_GT(env_.Stat("rx_no_buffer"), 0u);
  EXPECT_EQ(delivered + env_.Stat("rx_no_buffer"), sections + 8);
  for (const auto& h : held) {
    ASSERT_TRUE(env_.guest().CompleteIndication(0, h.packet.desc.trans_id));
  }
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 100, 200)});
  EXPECT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
  // Nothing leaked: every sub-allocation is free again except the queues' small private stocks
  // (at most a quarter of the buffer between them).
  EXPECT_GE(env_.device().State().recv_sections_free, sections - sections / 4);
}

TEST_F(NetvspDataTest, LinkDownAndUpAreIndicatedAsMediaStatus) {
  ASSERT_TRUE(env_.device().SetLinkUp(false).has_value());
  auto ind = env_.guest().WaitIndication(0);
  ASSERT_TRUE(ind);
  EXPECT_EQ(ind->channel_type, wire::kNvspRndisChannelControl);
  ASSERT_EQ(ind->messages.size(), 1u);
  auto msg = wire::ParseRndisMessage(ind->messages[0].bytes, wire::Direction::kHostToGuest);
  ASSERT_TRUE(msg);
  EXPECT_EQ(std::get<wire::RndisIndicateStatusMessage>(*msg).fixed.status,
            wire::RndisStatus::kMediaDisconnect);
  auto media = env_.guest().Query(wire::NdisOid::kGenMediaConnectStatus);
  ASSERT_TRUE(media);
  uint32_t state = 0;
  std::memcpy(&state, media->info.data(), 4);
  EXPECT_EQ(state, wire::kNdisMediaStateDisconnected);
  // A frame sent while the cable is out is dropped by the backend (carrier), not by netvsp.
  EXPECT_EQ(env_.guest().SendFrames(0, {MakeFrame(kPeerMac, kGuestMac, 80, 1)}, SendMode::kSection),
            wire::NvspStatus::kSuccess);
  EXPECT_EQ(env_.nic().stats().tx_carrier_errors, 1u);

  ASSERT_TRUE(env_.device().SetLinkUp(true).has_value());
  ind = env_.guest().WaitIndication(0);
  ASSERT_TRUE(ind);
  msg = wire::ParseRndisMessage(ind->messages[0].bytes, wire::Direction::kHostToGuest);
  ASSERT_TRUE(msg);
  EXPECT_EQ(std::get<wire::RndisIndicateStatusMessage>(*msg).fixed.status,
            wire::RndisStatus::kMediaConnect);
  EXPECT_EQ(env_.Stat("link_indications"), 2u);
}

TEST_F(NetvspDataTest, AQuickFlapIsIndicatedAsBothTransitions) {
  // Down and up again before the primary queue ran: the guest still sees both edges.
  ASSERT_TRUE(env_.device().SetLinkUp(false).has_value());
  ASSERT_TRUE(env_.device().SetLinkUp(true).has_value());
  std::vector<wire::RndisStatus> seen;
  for (int i = 0; i < 2; ++i) {
    auto ind = env_.guest().WaitIndication(0);
    ASSERT_TRUE(ind);
    auto msg = wire::ParseRndisMessage(ind->messages[0].bytes, wire::Direction::kHostToGuest);
    ASSERT_TRUE(msg);
    seen.push_back(std::get<wire::RndisIndicateStatusMessage>(*msg).fixed.status);
  }
  EXPECT_EQ(seen, (std::vector<wire::RndisStatus>{wire::RndisStatus::kMediaDisconnect,
                                                  wire::RndisStatus::kMediaConnect}));
}

TEST_F(NetvspDataTest, StatsUseNetvscEthtoolNamesAndJsonIsAFlatMap) {
  auto f = MakeFrame(kPeerMac, kGuestMac, 128, 1);
  ASSERT_EQ(env_.guest().SendFrames(3, {f}, SendMode::kSection), wire::NvspStatus::kSuccess);
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 128, 2)});
  ASSERT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
  const NicStats s = env_.device().Stats();
  EXPECT_EQ(s.id, "net0");
  EXPECT_EQ(s.queues, 4u);
  EXPECT_EQ(s.counters[0].first, "tx_queue_0_packets");
  EXPECT_EQ(s.Get("tx_queue_3_packets"), 1u);
  EXPECT_EQ(s.Get("tx_queue_3_bytes"), 128u);
  EXPECT_EQ(s.Get("rx_queue_0_packets"), 1u);
  EXPECT_EQ(s.Get("rx_queue_0_bytes"), 128u);
  const nlohmann::json j = env_.device().StatsJson();
  EXPECT_EQ(j["id"], "net0");
  EXPECT_EQ(j["link"], "up");
  EXPECT_EQ(j["nvsp_version"], wire::kNvspVersion61);
  EXPECT_EQ(j["stats"]["tx_queue_3_packets"], 1);
  EXPECT_EQ(j["stats"]["rx_no_buffer"], 0);
  EXPECT_TRUE(j["stats"].contains("tx_bad_section"));
  EXPECT_FALSE(DescribeNic(env_.device().State()).empty());
}

// A guest with tiny rings that does not read its host->guest ring for a while.
class NetvspSmallRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.guest().Connect());
    ASSERT_TRUE(env_.guest().OpenPrimary(/*ring_pages=*/2));  // 4 KiB of ring data each way
    ASSERT_TRUE(env_.guest().BringUp());
    ASSERT_TRUE(env_.EnableRx());
  }
  NetvspEnv env_{EnvOptions{.queues = 1}};
};

TEST_F(NetvspSmallRingTest, FullHostToGuestRingDropsIndicationsAndCountsThem) {
  // One frame per host round, the guest never drains: the ring fills, later indications are
  // dropped (never block the backend) and their sub-allocations return to the pool.
  for (int i = 0; i < 100; ++i) {
    env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 80, static_cast<uint8_t>(i))});
    env_.device().Poll();
  }
  const uint64_t dropped = env_.Stat("rx_ring_full");
  EXPECT_GT(dropped, 0u);
  size_t delivered = 0;
  while (auto ind = env_.guest().WaitIndication(0)) delivered += ind->messages.size();
  EXPECT_EQ(delivered + dropped, 100u);
  env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 80, 1)});
  EXPECT_EQ(env_.guest().ReceiveFrames(0).size(), 1u);
}

TEST_F(NetvspSmallRingTest, ACompletionWaitsForRingSpaceInsteadOfBeingDropped) {
  for (int i = 0; i < 100; ++i) {
    env_.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 80, static_cast<uint8_t>(i))});
    env_.device().Poll();
  }
  // The ring is full; the guest transmits without reading first.
  auto& g = env_.guest();
  std::vector<uint8_t> msg(wire::kRndisPacketHeaderSize + 100);
  auto frame = MakeFrame(kPeerMac, kGuestMac, 100, 7);
  auto n = wire::EncodeRndisPacket(msg, {}, frame);
  ASSERT_TRUE(n);
  std::memcpy(g.send_buffer().data(), msg.data(), *n);
  wire::NvspSendRndisPacket pkt;
  pkt.send_buf_section_index = 0;
  pkt.send_buf_section_size = static_cast<uint32_t>(*n);
  std::array<uint8_t, 40> payload{};
  ASSERT_TRUE(wire::EncodeNvsp(payload, pkt, 40));
  const uint64_t id = g.NextTransId();
  ASSERT_TRUE(g.SendInband(0, payload, id));
  env_.device().Poll();
  EXPECT_EQ(env_.Stat("tx_completions_deferred"), 1u);
  EXPECT_EQ(env_.Collect(0).size(), 1u);  // the frame itself went out
  // Reading the ring frees room (and signals, pending_send_sz): the completion follows.
  auto comp = g.WaitCompletion(0, id);
  ASSERT_TRUE(comp);
  auto parsed = wire::ParseNvspMessage(comp->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kComp, wire::kNvspVersion61);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(std::get<wire::NvspSendRndisPacketComplete>(*parsed).status,
            wire::NvspStatus::kSuccess);
}

TEST(NetvspDataSingleQueueTest, ReceiveBeforeRndisIsReadyIsDroppedAndCounted) {
  NetvspEnv env({.queues = 1});
  ASSERT_TRUE(env.Up(false));  // RNDIS up, filter still 0
  env.Inject(0, {MakeFrame(kGuestMac, kPeerMac, 90, 1)});
  EXPECT_TRUE(env.guest().NothingPending(0, wire::PacketType::kDataUsingXferPages));
  EXPECT_EQ(env.Stat("rx_filtered"), 1u);
}

}  // namespace
}  // namespace uvmbus::netvsp::test
