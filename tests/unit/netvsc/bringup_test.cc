// File: tests/unit/netvsc/bringup_test.cc
//
// netvsc's bring-up and removal against the scripted host: every message the guest sends is
// checked against the spec's layouts (5.5, 6.2, 6.8, 6.9) and Linux's order (5.7, 7.8), and the
// host's refusals and odd answers take the paths spec 9.5 / 9.6 give them.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "netvsc_test_util.h"

namespace uvmbus::netvsc {
namespace {

using fakes::FakeNetvspHost;
using testing::EnvOptions;
using testing::NetvscEnv;

uint32_t U32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}

// One line per guest packet: "NVSP <type>" or "RNDIS <type> [oid]".
std::vector<std::string> Transcript(const std::vector<FakeNetvspHost::GuestPacket>& packets,
                                    bool with_completions = false) {
  std::vector<std::string> out;
  for (const auto& p : packets) {
    if (p.desc.type == static_cast<uint16_t>(wire::PacketType::kComp) && !with_completions) {
      continue;
    }
    if (p.nvsp_type == 107 && !p.rndis.empty()) {
      if (p.oid != 0) {
        out.push_back(fmt::format("RNDIS {:#x} {:#010x}", p.rndis_type, p.oid));
      } else {
        out.push_back(fmt::format("RNDIS {:#x}", p.rndis_type));
      }
    } else {
      out.push_back(fmt::format("NVSP {}", p.nvsp_type));
    }
  }
  return out;
}

// The guest's requests only (its receive completions left out).
std::vector<FakeNetvspHost::GuestPacket> Requests(const FakeNetvspHost& host) {
  std::vector<FakeNetvspHost::GuestPacket> out;
  for (auto& p : host.packets()) {
    if (p.desc.type != static_cast<uint16_t>(wire::PacketType::kComp)) out.push_back(p);
  }
  return out;
}

const std::vector<std::string> kRndisBringUp = {
    "RNDIS 0x2",              // INITIALIZE
    "RNDIS 0x4 0x00010106",   // QUERY MAXIMUM_FRAME_SIZE
    "RNDIS 0x4 0x01010101",   // QUERY PERMANENT_ADDRESS
    "RNDIS 0x4 0x00020216",   // QUERY FRIENDLY_NAME
    "RNDIS 0x4 0xfc01020d",   // QUERY TCP_OFFLOAD_HARDWARE_CAPABILITIES
    "RNDIS 0x5 0xfc01020c",   // SET TCP_OFFLOAD_PARAMETERS
    "RNDIS 0x4 0x00010114",   // QUERY MEDIA_CONNECT_STATUS
};

TEST(NetvscBringUpTest, FollowsLinuxOrderWithSpecLayouts) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  FakeNetvspHost& host = env.host();
  EXPECT_TRUE(host.bad_guest_messages().empty()) << host.bad_guest_messages().front();

  std::vector<std::string> expect = {"NVSP 1", "NVSP 125", "NVSP 100", "NVSP 101", "NVSP 104"};
  expect.insert(expect.end(), kRndisBringUp.begin(), kRndisBringUp.end());
  expect.insert(expect.end(), {
                                  "RNDIS 0x4 0x00010107",  // QUERY LINK_SPEED
                                  "RNDIS 0x4 0x00010203",  // QUERY RSS capabilities
                                  "NVSP 133",              // SUBCHANNEL
                                  "RNDIS 0x5 0x00010204",  // SET RSS (disable)
                                  "RNDIS 0x5 0x00010204",  // SET RSS (enable)
                                  "RNDIS 0x5 0x0001010e",  // SET packet filter (open)
                              });
  const auto packets = Requests(host);
  EXPECT_EQ(Transcript(packets), expect);

  // Every control message travels on the primary channel.
  for (const auto& p : packets) EXPECT_EQ(p.queue, 0u);

  // NVSP INIT (spec 5.5): 40 bytes, min = max = 6.1, completion requested, trans_id != 0.
  const auto& init = packets[0];
  EXPECT_EQ(init.desc.type, static_cast<uint16_t>(wire::PacketType::kDataInband));
  EXPECT_EQ(init.payload.size(), 40u);
  EXPECT_EQ(U32(init.payload, 4), wire::kNvspVersion61);
  EXPECT_EQ(U32(init.payload, 8), wire::kNvspVersion61);
  EXPECT_EQ(init.desc.flags, wire::kPacketFlagCompletionRequested);
  EXPECT_NE(init.desc.trans_id, 0u);
  // NDIS config: mtu 1514, 802.1Q + SR-IOV + teaming + RSC; no completion requested.
  const auto cfg = host.ndis_config();
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->mtu, 1514u);
  const uint64_t caps = cfg->capability;
  EXPECT_EQ(caps, wire::kNdisConfigCapIeee8021q | wire::kNdisConfigCapSriov |
                      wire::kNdisConfigCapTeaming | wire::kNdisConfigCapRsc);
  EXPECT_EQ(packets[1].desc.flags, 0u);
  EXPECT_EQ(packets[1].desc.trans_id, wire::kVmbusRqstIdNoResponse);
  // NDIS version 6.30 for NVSP >= 5.
  EXPECT_EQ(U32(packets[2].payload, 4), 6u);
  EXPECT_EQ(U32(packets[2].payload, 8), 30u);
  // Receive buffer id 0xCAFE, send buffer id 0.
  EXPECT_EQ(U32(packets[3].payload, 8) & 0xFFFF, 0xCAFEu);
  EXPECT_EQ(U32(packets[4].payload, 8) & 0xFFFF, 0u);

  // RNDIS control messages: GPA-direct, one range, channel_type 1, no send section.
  for (size_t i = 5; i < packets.size(); ++i) {
    const auto& p = packets[i];
    if (p.nvsp_type != 107) continue;
    EXPECT_EQ(p.desc.type, static_cast<uint16_t>(wire::PacketType::kDataUsingGpaDirect));
    EXPECT_EQ(p.range_count, 1u);
    EXPECT_EQ(U32(p.payload, 4), wire::kNvspRndisChannelControl);
    EXPECT_EQ(U32(p.payload, 8), wire::kNvspNoSendSection);
    EXPECT_EQ(U32(p.payload, 12), 0u);
  }
  // INITIALIZE: 24 bytes, request id 1, version 1.0, max transfer 0x4000.
  const auto& rinit = packets[5].rndis;
  ASSERT_EQ(rinit.size(), 24u);
  EXPECT_EQ(U32(rinit, 4), 24u);
  EXPECT_EQ(U32(rinit, 8), 1u);
  EXPECT_EQ(U32(rinit, 12), 1u);
  EXPECT_EQ(U32(rinit, 16), 0u);
  EXPECT_EQ(U32(rinit, 20), 0x4000u);
  // Request ids count up from 1.
  uint32_t id = 1;
  for (size_t i = 5; i < packets.size(); ++i) {
    if (packets[i].nvsp_type == 107) {
      EXPECT_EQ(U32(packets[i].rndis, 8), id++);
    }
  }
  // The offload capabilities query carries a {0xA7, 3, 156} input header: msg_len 28 + 156.
  const auto& hw = packets[9].rndis;
  EXPECT_EQ(U32(hw, 4), 28u + 156u);
  EXPECT_EQ(U32(hw, 16), 156u);
  EXPECT_EQ(U32(hw, 20), 20u);
  EXPECT_EQ(hw[28], 0xA7);
  EXPECT_EQ(hw[29], 3);
  // The RSS capabilities query: 18-byte input, msg_len 46 (not a multiple of 4).
  const auto& rss_caps = packets[13].rndis;
  EXPECT_EQ(U32(rss_caps, 4), 46u);
  EXPECT_EQ(rss_caps[28], 0x88);
  // SUBCHANNEL {ALLOCATE, 3}: 4 vCPUs cap the 8 requested queues.
  EXPECT_EQ(U32(packets[14].payload, 4), wire::kNvspSubchannelOpAllocate);
  EXPECT_EQ(U32(packets[14].payload, 8), 3u);

  // What the guest ended up with.
  EXPECT_EQ(dev->nvsp_version(), wire::kNvspVersion61);
  EXPECT_EQ(dev->ndis_version(), wire::kNdisVersion6_30);
  EXPECT_EQ(dev->mac(), (net::MacAddress{{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}}));
  EXPECT_EQ(dev->mtu(), 1500u);
  EXPECT_EQ(dev->link_speed_mbps(), 10000u);
  EXPECT_EQ(dev->queue_count(), 4u);
  EXPECT_EQ(dev->recv_section_size(), 1806u);
  EXPECT_EQ(dev->recv_section_count(), (1u << 20) / 1806);
  EXPECT_EQ(dev->send_section_size(), 6144u);
  EXPECT_EQ(dev->send_section_count(), 64u);
  EXPECT_EQ(dev->rndis_max_packets(), 8u);
  EXPECT_EQ(dev->rndis_packet_alignment(), 8u);
  EXPECT_TRUE(dev->is_open());
  EXPECT_TRUE(dev->link_up());
  EXPECT_EQ(host.packet_filter(), wire::kNdisPacketFilterLinuxDefault);
  EXPECT_EQ(host.subchannels_granted(), 3u);
  EXPECT_EQ(host.open_channels(), 4u);

  // Each channel in HV_CALL_ISR mode; the sub-channels' interrupts spread over the vCPUs.
  std::set<uint32_t> vcpus;
  for (uint32_t q = 0; q < 4; ++q) {
    guest::Channel* ch = dev->channel(q);
    ASSERT_NE(ch, nullptr);
    EXPECT_EQ(ch->callback_mode(), guest::CallbackMode::kIsr);
    EXPECT_EQ(ch->sub_channel_index(), q);
    vcpus.insert(ch->target_vcpu());
  }
  EXPECT_EQ(vcpus.size(), 4u);

  // RSS (spec 6.9): DISABLE first, then enabled, 128 entries i % 4, the standard key.
  const auto rss = host.rss_sets();
  ASSERT_EQ(rss.size(), 2u);
  EXPECT_EQ(rss[0].fixed.flag, wire::kNdisRssParamFlagDisableRss);
  EXPECT_EQ(rss[1].fixed.flag, 0u);
  for (const auto& r : rss) {
    EXPECT_EQ(r.fixed.header.type, wire::kNdisObjectTypeRssParameters);
    EXPECT_EQ(r.fixed.header.revision, 2u);
    EXPECT_EQ(r.fixed.header.size, 40u);
    EXPECT_EQ(r.fixed.hashinfo, wire::kNdisHashInfoLinux);
    EXPECT_EQ(r.fixed.indirect_tabsize, 512u);
    EXPECT_EQ(r.fixed.indirect_taboffset, 40u);
    EXPECT_EQ(r.fixed.hashkey_size, 40u);
    EXPECT_EQ(r.fixed.hashkey_offset, 552u);
  }
  ASSERT_EQ(rss[1].table_entries, 128u);
  for (uint32_t i = 0; i < 128; ++i) EXPECT_EQ(rss[1].table[i], i % 4);
  EXPECT_EQ(rss[1].key, wire::kStandardToeplitzKey);
  EXPECT_EQ(dev->rss_table()[5], 1u);

  // Send table: the host's SEND_INDIRECTION_TABLE (i % 4).
  ASSERT_TRUE(host.WaitUntil([&] { return dev->send_table()[3] == 3; }));
  for (uint32_t i = 0; i < kSendTableSize; ++i) EXPECT_EQ(dev->send_table()[i], i % 4);

  // Offloads (spec 6.8) from the default Hyper-V-like capabilities.
  const auto op = host.offload_params();
  ASSERT_TRUE(op.has_value());
  EXPECT_EQ(op->header.type, wire::kNdisObjectTypeDefault);
  EXPECT_EQ(op->header.revision, 3u);
  EXPECT_EQ(op->header.size, 28u);
  EXPECT_EQ(op->ip_v4_csum, wire::kOffloadParamCsumTxRxDisabled);
  EXPECT_EQ(op->tcp_ip_v4_csum, wire::kOffloadParamCsumTxRxEnabled);
  EXPECT_EQ(op->udp_ip_v4_csum, wire::kOffloadParamCsumTxRxEnabled);
  EXPECT_EQ(op->tcp_ip_v6_csum, wire::kOffloadParamCsumTxRxEnabled);
  EXPECT_EQ(op->udp_ip_v6_csum, wire::kOffloadParamCsumTxRxEnabled);
  EXPECT_EQ(op->lso_v2_ipv4, wire::kOffloadParamLsoEnabled);
  EXPECT_EQ(op->lso_v2_ipv6, wire::kOffloadParamLsoEnabled);
  EXPECT_EQ(op->rsc_ip_v4, wire::kOffloadParamRscDisabled);
  EXPECT_EQ(op->rsc_ip_v6, wire::kOffloadParamRscDisabled);
  EXPECT_EQ(dev->counters().rndis_query_failed.Get(), 0u);
}

TEST(NetvscBringUpTest, FallsBackThroughNvspVersionsUntilTheHostAccepts) {
  EnvOptions o;
  o.host.accepted_versions = {wire::kNvspVersion5, wire::kNvspVersion4};
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  const auto packets = Requests(env.host());
  ASSERT_GE(packets.size(), 4u);
  // 6.1 and 6.0 refused (N5), 5 accepted.
  EXPECT_EQ(U32(packets[0].payload, 4), wire::kNvspVersion61);
  EXPECT_EQ(U32(packets[1].payload, 4), wire::kNvspVersion6);
  EXPECT_EQ(U32(packets[2].payload, 4), wire::kNvspVersion5);
  EXPECT_EQ(packets[3].nvsp_type, 125u);
  EXPECT_EQ(dev->nvsp_version(), wire::kNvspVersion5);
  const uint64_t caps = env.host().ndis_config()->capability;  // packed field: copy first
  EXPECT_EQ(caps,
            wire::kNdisConfigCapIeee8021q | wire::kNdisConfigCapSriov | wire::kNdisConfigCapTeaming);
  EXPECT_EQ(dev->queue_count(), 4u);
}

TEST(NetvscBringUpTest, Nvsp4HostGetsNdis61OlderOffloadObjectsAndOneQueue) {
  EnvOptions o;
  o.host.accepted_versions = {wire::kNvspVersion4, wire::kNvspVersion2, wire::kNvspVersion1};
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->nvsp_version(), wire::kNvspVersion4);
  EXPECT_EQ(dev->ndis_version(), wire::kNdisVersion6_1);
  EXPECT_EQ(dev->queue_count(), 1u);
  // 6.1, 6.0 and 5 refused, 4 accepted.
  std::vector<std::string> expect = {"NVSP 1",   "NVSP 1",   "NVSP 1",  "NVSP 1",
                                     "NVSP 125", "NVSP 100", "NVSP 101", "NVSP 104"};
  expect.insert(expect.end(), kRndisBringUp.begin(), kRndisBringUp.end());
  expect.push_back("RNDIS 0x5 0x0001010e");
  EXPECT_EQ(Transcript(env.host().packets()), expect);
  const auto packets = Requests(env.host());
  EXPECT_EQ(U32(packets[5].payload, 8), 1u);  // NDIS minor 1
  // Offload query header revision 2 / 144 bytes; parameters 22 bytes without UDP.
  ASSERT_EQ(packets[12].oid, static_cast<uint32_t>(wire::NdisOid::kTcpOffloadHardwareCapabilities));
  EXPECT_EQ(packets[12].rndis[29], 2);
  EXPECT_EQ(U32(packets[12].rndis, 16), 144u);
  const auto op = env.host().offload_params();
  ASSERT_TRUE(op.has_value());
  EXPECT_EQ(op->header.size, 22u);
  EXPECT_EQ(op->udp_ip_v4_csum, 0u);
  EXPECT_EQ(op->udp_ip_v6_csum, 0u);
  EXPECT_EQ(op->tcp_ip_v4_csum, wire::kOffloadParamCsumTxRxEnabled);
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

TEST(NetvscBringUpTest, Nvsp1HostGetsNoNdisConfig) {
  EnvOptions o;
  o.host.accepted_versions = {wire::kNvspVersion1};
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->nvsp_version(), wire::kNvspVersion1);
  EXPECT_FALSE(env.host().ndis_config().has_value());
  const auto types = env.host().nvsp_types();
  EXPECT_EQ(std::count(types.begin(), types.end(), 1u), 6);  // every version tried
  EXPECT_EQ(std::count(types.begin(), types.end(), 125u), 0);
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

TEST(NetvscBringUpTest, NoAcceptedVersionFailsTheProbeAndClosesTheChannel) {
  EnvOptions o;
  o.host.accepted_versions = {};
  NetvscEnv env(o);
  ASSERT_TRUE(env.Connect().has_value());
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_EQ(env.bus().stats().probe_failures.Get(), 1u);
  EXPECT_EQ(env.host().nvsp_types(), std::vector<uint32_t>(6, 1u));
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.host().open_channels() == 0; }));
}

struct BadBufferCase {
  std::string name;
  std::function<void(FakeNetvspHost::Options&)> script;
};

class NetvscBadBufferTest : public ::testing::TestWithParam<BadBufferCase> {};

TEST_P(NetvscBadBufferTest, ProbeFailsAndEveryGpadlIsTornDown) {
  EnvOptions o;
  GetParam().script(o.host);
  NetvscEnv env(o);
  ASSERT_TRUE(env.Connect().has_value());
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_EQ(env.bus().stats().probe_failures.Get(), 1u);
  // No RNDIS was attempted, the channel is closed and the buffer GPADLs are gone.
  for (const auto& p : env.host().packets()) EXPECT_NE(p.nvsp_type, 107u);
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.host().open_channels() == 0; }));
  EXPECT_EQ(env.server().gpadl_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NetvscBadBufferTest,
    ::testing::Values(
        BadBufferCase{"RecvStatusFail", [](auto& h) { h.recv_status = 2; }},            // N6
        BadBufferCase{"TwoSections", [](auto& h) { h.recv_num_sections = 2; }},        // N7
        BadBufferCase{"SectionOffset", [](auto& h) { h.recv_section_offset = 64; }},   // N7
        BadBufferCase{"SubAllocTooSmall", [](auto& h) { h.recv_sub_alloc_size = 67; }},  // N8
        BadBufferCase{"SubAllocsPastBuffer",
                      [](auto& h) { h.recv_num_sub_allocs = 0xFFFFFFFF; }},            // N8
        BadBufferCase{"SendStatusFail", [](auto& h) { h.send_status = 2; }},            // N9
        BadBufferCase{"SendSectionTooSmall", [](auto& h) { h.send_section_size = 64; }}),  // N9
    [](const ::testing::TestParamInfo<BadBufferCase>& i) { return i.param.name; });

TEST(NetvscBringUpTest, RefusedSubchannelsFallBackToOneQueue) {  // N10
  EnvOptions o;
  o.host.subchannel_status = 2;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->queue_count(), 1u);
  const std::array<uint32_t, kRssTableSize> zeros{};
  EXPECT_EQ(dev->rss_table(), zeros);
  EXPECT_TRUE(env.host().rss_sets().empty());
  EXPECT_TRUE(dev->link_up());
}

TEST(NetvscBringUpTest, MoreSubchannelsThanRequestedFallBackToOneQueue) {  // N11
  EnvOptions o;
  o.host.subchannel_grant = 5;  // 3 requested (4 vCPUs)
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->queue_count(), 1u);
}

TEST(NetvscBringUpTest, FewerSubchannelsGrantedMeansFewerQueues) {
  EnvOptions o;
  o.host.subchannel_grant = 1;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->queue_count(), 2u);
  const auto rss = env.host().rss_sets();
  ASSERT_EQ(rss.size(), 2u);
  for (uint32_t i = 0; i < 128; ++i) EXPECT_EQ(rss[1].table[i], i % 2);
}

TEST(NetvscBringUpTest, QueueCountIsCappedByHostQueuesVcpusAndConfig) {
  {
    EnvOptions o;
    o.host.rss_queues = 0;  // D25: RSS capabilities not supported
    NetvscEnv env(o);
    auto dev = env.Up();
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(dev->queue_count(), 1u);
    for (uint32_t t : env.host().nvsp_types()) EXPECT_NE(t, 133u);
  }
  {
    EnvOptions o;
    o.host.rss_queues = 2;
    NetvscEnv env(o);
    auto dev = env.Up();
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(dev->queue_count(), 2u);
  }
  {
    EnvOptions o;
    o.vcpus = 2;
    NetvscEnv env(o);
    auto dev = env.Up();
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(dev->queue_count(), 2u);
  }
  {
    EnvOptions o;
    o.config.num_queues = 1;
    NetvscEnv env(o);
    auto dev = env.Up();
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(dev->queue_count(), 1u);
  }
}

TEST(NetvscBringUpTest, FriendlyNameBecomesTheAliasAndHostFrameSizeLowersTheMtu) {
  EnvOptions o;
  o.host.friendly_name = "uplink-a";
  o.host.max_frame_size = 1400;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->name(), "uplink-a");
  EXPECT_EQ(dev->mtu(), 1400u);
  EXPECT_EQ(dev->max_frame_size(), 1414u);
}

TEST(NetvscBringUpTest, GenericFriendlyNameKeepsTheDefaultName) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->name().rfind("netvsc-", 0), 0u);
}

TEST(NetvscBringUpTest, RefusedRndisInitializeFailsTheProbe) {  // D26
  EnvOptions o;
  o.host.init_status = wire::RndisStatus::kFailure;
  NetvscEnv env(o);
  ASSERT_TRUE(env.Connect().has_value());
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_EQ(env.bus().stats().probe_failures.Get(), 1u);
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.host().open_channels() == 0; }));
}

TEST(NetvscBringUpTest, InvalidOffloadCapabilitiesFailTheProbe) {  // D24
  NetvscEnv env;
  env.host().SetRndisHook([](uint32_t type, uint32_t oid, std::vector<uint8_t>& resp, bool&) {
    if (type == 4 && oid == static_cast<uint32_t>(wire::NdisOid::kTcpOffloadHardwareCapabilities)) {
      resp[24] = 0x80;  // object type != 0xA7
    }
  });
  ASSERT_TRUE(env.Connect().has_value());
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_EQ(env.bus().stats().probe_failures.Get(), 1u);
}

TEST(NetvscBringUpTest, MissingMacFailsTheProbe) {
  NetvscEnv env;
  env.host().SetRndisHook([](uint32_t type, uint32_t oid, std::vector<uint8_t>& resp, bool&) {
    if (type == 4 && oid == static_cast<uint32_t>(wire::NdisOid::k802_3PermanentAddress)) {
      const uint32_t status = static_cast<uint32_t>(wire::RndisStatus::kNotSupported);
      std::memcpy(resp.data() + 12, &status, 4);
    }
  });
  ASSERT_TRUE(env.Connect().has_value());
  EXPECT_TRUE(env.driver().devices().empty());
}

TEST(NetvscBringUpTest, InitializeCompletionValuesAreClamped) {  // D27
  EnvOptions o;
  o.host.packet_alignment_factor = 40;
  o.host.max_packets_per_message = 0;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->rndis_packet_alignment(), 4096u);
  EXPECT_EQ(dev->rndis_max_packets(), 1u);
}

TEST(NetvscBringUpTest, LinkStartsDownWhenTheHostSaysDisconnected) {
  EnvOptions o;
  o.host.media_connected = false;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->is_open());
  EXPECT_FALSE(dev->link_up());
}

TEST(NetvscBringUpTest, RemovalHaltsRevokesClosesAndTearsDownInLinuxOrder) {
  NetvscEnv env;
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  const size_t before = env.host().packets().size();
  ASSERT_TRUE(env.bus().UnregisterDriver(env.driver()).has_value());
  EXPECT_TRUE(env.host().halted());
  const auto packets = env.host().packets();
  std::vector<std::string> tail;
  for (size_t i = before; i < packets.size(); ++i) {
    if (packets[i].desc.type == static_cast<uint16_t>(wire::PacketType::kComp)) continue;
    tail.push_back(Transcript({packets[i]})[0]);
  }
  EXPECT_EQ(tail, (std::vector<std::string>{"RNDIS 0x3", "NVSP 103", "NVSP 106"}));
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.host().open_channels() == 0; }));
  EXPECT_EQ(env.server().gpadl_count(), 0u);
  EXPECT_FALSE(dev->link_up());
  EXPECT_EQ(dev->Send(0, net::FrameBatch{}), 0u);
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_TRUE(env.host().bad_guest_messages().empty());
}

TEST(NetvscBringUpTest, RescindWhileRunningRemovesTheNicWithoutTalkingToTheHost) {
  // One queue: with sub-channels the guest bus may free a rescinded sub-channel while the
  // driver's Remove still runs (notes/requests-netvsc.md, guest item 1b).
  EnvOptions o;
  o.config.num_queues = 1;
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(env.server().RescindDevice(env.device_id()).has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.driver().devices().empty() && !dev->link_up(); }));
  EXPECT_FALSE(env.host().halted());  // the host is gone for this device: no HALT
  const auto f = testing::UdpFrame(1, 2, 3);
  net::FrameBatch b;
  b.Add(std::span<const uint8_t>(f));
  EXPECT_EQ(dev->Send(0, b), 0u);
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.server().gpadl_count() == 0; }));
}

TEST(NetvscBringUpTest, RescindDuringBringUpFailsTheProbeCleanly) {
  NetvscEnv env;
  std::mutex mu;
  std::condition_variable cv;
  bool asked = false;
  // The host swallows SEND_SEND_BUF and rescinds the NIC instead (from another thread: the
  // rescind closes the channel whose worker runs this hook).
  env.host().SetNvspHook([&](uint32_t type, std::vector<uint8_t>&, bool& send) {
    if (type != static_cast<uint32_t>(wire::NvspMessageType::kSendSendBuffer)) return;
    send = false;
    std::lock_guard lock(mu);
    asked = true;
    cv.notify_all();
  });
  std::thread rescinder([&] {
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, testing::kWait, [&] { return asked; })) {
      EXPECT_TRUE(env.server().RescindDevice(env.device_id()).has_value());
    }
  });
  ASSERT_TRUE(env.Connect().has_value());
  rescinder.join();
  EXPECT_TRUE(env.driver().devices().empty());
  EXPECT_TRUE(env.host().WaitUntil([&] { return env.server().gpadl_count() == 0; }));
}

TEST(NetvscBringUpTest, ObserverHearsAboutAddAndRemove) {
  EnvOptions o;
  o.register_driver = false;
  NetvscEnv env(o);
  std::vector<bool> events;
  env.driver().SetObserver([&](const std::shared_ptr<NetvscDevice>& d, bool added) {
    EXPECT_NE(d, nullptr);
    events.push_back(added);
  });
  ASSERT_TRUE(env.bus().RegisterDriver(env.driver()).has_value());
  ASSERT_TRUE(env.Connect().has_value());
  ASSERT_TRUE(env.driver().WaitForDevices(1, testing::kWait));
  EXPECT_NE(env.driver().FindDevice(env.driver().devices()[0]->instance_id()), nullptr);
  ASSERT_TRUE(env.bus().UnregisterDriver(env.driver()).has_value());
  EXPECT_EQ(events, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace uvmbus::netvsc
