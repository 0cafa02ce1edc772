// Regression tests with the exact bytes DPDK 22.11's netvsc PMD sends (drivers/net/netvsc/hn_nvs.c,
// hn_rndis.c, hn_rxtx.c; drivers/bus/vmbus/vmbus_channel.c) and what it requires of the host
// (../shared/dpdk-interop.md section 4): NVS INIT with ver_min == ver_max for each version in its
// order, NDIS_CONF / NDIS_INIT without a reply, one receive-buffer section, receive packets whose
// xactid is a small slot index it can index an array with, completions echoing 64-bit pointer
// xactids, RNDIS control messages as GPA-direct page buffers (xactid 0) in memory of an extra RAM
// region (its no-huge heap), GPA-direct data frames (RNDIS header range + one range per page).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "common/mapped_region.h"
#include "netvsp_test_util.h"

namespace uvmbus::netvsp {
namespace {

using test::NetvspEnv;

// Little-endian stores into a DPDK struct image.
void Put32(std::span<uint8_t> b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
void Put64(std::span<uint8_t> b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
uint32_t Get32(std::span<const uint8_t> b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}

// struct hn_nvs_init {type; ver_min; ver_max; rsvd[28]} (40 bytes).
std::array<uint8_t, 40> DpdkNvsInit(uint32_t version) {
  std::array<uint8_t, 40> m{};
  Put32(m, 0, 1);  // NVS_TYPE_INIT
  Put32(m, 4, version);
  Put32(m, 8, version);
  return m;
}

// DPDK's hn_nvs_version[], in the order it tries them.
constexpr std::array<uint32_t, 6> kDpdkVersions = {0x60001, 0x60000, 0x50000,
                                                   0x40000, 0x30002, 0x2};

constexpr uint64_t kRegionBase = uint64_t{1} << 32;  // testpmd's no-huge heap sits above 4 GiB
constexpr uint64_t kRegionPages = 8;

// The no-huge heap: a sealed memfd registered as an extra RAM region at its "IOVA".
struct NoHugeHeap {
  UniqueFd fd;
  MappedRegion map;
  static NoHugeHeap Create(partition::HostPartition& host) {
    NoHugeHeap h;
    h.fd = UniqueFd(::memfd_create("nohuge", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(::ftruncate(h.fd.get(), kRegionPages * 4096), 0);
    EXPECT_EQ(::fcntl(h.fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    auto m = MappedRegion::MapShared(h.fd.get(), kRegionPages * 4096);
    EXPECT_TRUE(m);
    h.map = std::move(*m);
    EXPECT_TRUE(host.AddRamRegion(UniqueFd(::fcntl(h.fd.get(), F_DUPFD_CLOEXEC, 0)), kRegionBase,
                                  kRegionPages * 4096));
    return h;
  }
  uint64_t pfn(uint64_t page) const { return (kRegionBase >> 12) + page; }
};

// What hn_nvs_doinit does for each version until one is accepted: the host must answer every
// one (status OK or not) and accept the first it supports, whatever its maximum is.
TEST(NetvspDpdkTest, NvsInitWithEqualMinMaxIsAnsweredForEveryDpdkVersion) {
  for (uint32_t max : kDpdkVersions) {
    test::EnvOptions o;
    o.max_nvsp_version = max;
    NetvspEnv env(o);
    ASSERT_TRUE(env.guest().Connect());
    ASSERT_TRUE(env.guest().OpenPrimary());
    for (uint32_t v : kDpdkVersions) {
      const auto msg = DpdkNvsInit(v);
      auto reply = env.guest().Request(0, std::span<const uint8_t>(msg));
      ASSERT_TRUE(reply.has_value()) << "no reply to INIT " << std::hex << v;
      const auto* init = std::get_if<wire::NvspInitComplete>(&*reply);
      ASSERT_NE(init, nullptr);
      if (v > max) {
        EXPECT_NE(init->status, wire::NvspStatus::kSuccess) << std::hex << v;
        continue;
      }
      EXPECT_EQ(init->status, wire::NvspStatus::kSuccess) << std::hex << v;
      EXPECT_EQ(env.device().State().nvsp_version, v);
      break;
    }
  }
}

TEST(NetvspDpdkTest, DpdkControlBringUpOverGpaDirectFromAnExtraRegion) {
  test::EnvOptions o;
  o.guest_memory = false;  // the channel's own partition resolves GPAs, as in `uvmbus host`
  NetvspEnv env(o);
  auto& g = env.guest();
  ASSERT_TRUE(g.Connect());
  ASSERT_TRUE(g.OpenPrimary());
  const auto init = DpdkNvsInit(0x60001);
  auto r = g.Request(0, std::span<const uint8_t>(init));
  ASSERT_TRUE(r && std::get_if<wire::NvspInitComplete>(&*r));
  // hn_nvs_conf_ndis: {type 125, mtu 1500 + 14, rsvd, caps VLAN|SRIOV @12}, flag NONE.
  std::array<uint8_t, 40> conf{};
  Put32(conf, 0, 125);
  Put32(conf, 4, 1514);
  Put64(conf, 12, 0x0008 | 0x0004);
  ASSERT_TRUE(g.SendInband(0, conf, 0, /*completion_requested=*/false));
  // hn_nvs_init_ndis: {type 100, major 6, minor 30}, flag NONE.
  std::array<uint8_t, 40> ndis{};
  Put32(ndis, 0, 100);
  Put32(ndis, 4, 6);
  Put32(ndis, 8, 30);
  ASSERT_TRUE(g.SendInband(0, ndis, 0, /*completion_requested=*/false));
  EXPECT_TRUE(g.NothingPending(0, wire::PacketType::kComp));  // no reply to either
  EXPECT_EQ(env.device().State().ndis_mtu, 1514u);
  // hn_nvs_conn_rxbuf: {type 101, gpadl, sig 0xcafe}: the same bytes as Linux's; exactly one
  // section (hn_nvs_conn_rxbuf fails on nsect != 1).
  auto rx = g.SetupReceiveBuffer(64);
  ASSERT_TRUE(rx.has_value());
  EXPECT_EQ(rx->status, wire::NvspStatus::kSuccess);
  EXPECT_EQ(rx->num_sections, 1u);
  // hn_nvs_conn_chim: the section size must be a non-zero multiple of 4; Hyper-V's 6144 keeps
  // every frame up to 1518 bytes (+ RNDIS header) in the copy path with tx_copybreak=1600.
  auto tx = g.SetupSendBuffer(16);
  ASSERT_TRUE(tx.has_value());
  EXPECT_EQ(tx->section_size, 6144u);

  // hn_nvs_send_rndis_ctrl: RNDIS INITIALIZE in rte_malloc memory of the no-huge heap, one page
  // range (type GPA, flag RC), xactid 0, NVS {type 107, mtype 1 (control), chim_idx ~0, sz 0}.
  NoHugeHeap heap = NoHugeHeap::Create(env.partition().host());
  constexpr uint32_t kReqOffset = 0x240;
  std::span<uint8_t> req = heap.map.span().subspan(2 * 4096 + kReqOffset, 24);
  Put32(req, 0, 2);        // RNDIS_INITIALIZE_MSG
  Put32(req, 4, 24);       // len
  Put32(req, 8, 1);        // rid
  Put32(req, 12, 1);       // ver_major
  Put32(req, 16, 0);       // ver_minor
  Put32(req, 20, 0x4000);  // max_xfersz (HN_RNDIS_XFER_SIZE)
  std::array<uint8_t, 40> nvs_rndis{};
  Put32(nvs_rndis, 0, 107);
  Put32(nvs_rndis, 4, 1);
  Put32(nvs_rndis, 8, 0xFFFFFFFF);
  const uint64_t pfn = heap.pfn(2);
  const wire::GpaDirectRangeRef range{24, kReqOffset, std::span<const uint64_t>(&pfn, 1)};
  ASSERT_TRUE(g.SendGpaDirect(0, std::span(&range, 1), nvs_rndis, /*trans_id=*/0));
  auto comp = g.WaitCompletion(0, 0);
  ASSERT_TRUE(comp.has_value());
  EXPECT_EQ(comp->desc.trans_id, 0u);
  EXPECT_EQ(Get32(comp->payload(), 0), 108u);  // NVS_TYPE_RNDIS_ACK
  EXPECT_EQ(Get32(comp->payload(), 4), 1u);    // NVS_STATUS_OK
  // The INITIALIZE_CMPLT comes in the receive buffer; its xactid indexes DPDK's rxbuf_info[]
  // (hn_nvs_handle_rxbuf rejects xactid > slot count).
  auto ind = g.WaitIndication(0, /*complete=*/false);
  ASSERT_TRUE(ind.has_value());
  EXPECT_EQ(ind->xfer_pageset_id, 0xCAFE);
  EXPECT_LT(ind->packet.desc.trans_id, g.num_sub_allocs());
  ASSERT_EQ(ind->messages.size(), 1u);
  EXPECT_EQ(Get32(ind->messages[0].bytes, 0), 0x80000002u);  // RNDIS_INITIALIZE_CMPLT
  EXPECT_EQ(Get32(ind->messages[0].bytes, 8), 1u);           // rid
  EXPECT_EQ(Get32(ind->messages[0].bytes, 12), 0u);          // RNDIS_STATUS_SUCCESS
  ASSERT_TRUE(g.CompleteIndication(0, ind->packet.desc.trans_id));
  EXPECT_EQ(env.device().State().rndis_state, "initialized");
  EXPECT_EQ(env.Total(Stat::kRxCompletionUnknown), 0u);
  EXPECT_EQ(env.Total(Stat::kTxBadGpa), 0u);
}

// The id the host gives each receive packet is a slot index below the sub-allocation count, even
// with many packets in flight; DPDK acks with the same id.
TEST(NetvspDpdkTest, ReceivePacketIdsAreSlotIndicesBelowTheSectionCount) {
  test::EnvOptions o;
  o.queues = 1;
  NetvspEnv env(o);
  ASSERT_TRUE(env.Up(/*full=*/false));
  ASSERT_TRUE(env.EnableRx());
  auto& g = env.guest();
  const uint32_t slots = g.num_sub_allocs();
  ASSERT_GT(slots, 8u);
  env.device().Poll();
  const uint32_t free_before = env.device().State().recv_sections_free;
  std::vector<uint64_t> ids;
  std::vector<uint8_t> frame(64, 0xAB);
  std::memcpy(frame.data(), test::kGuestMac.data(), 6);
  // Fill every section with single-frame packets, none completed.
  for (uint32_t i = 0; i < slots + 4; ++i) {
    env.Inject(0, {frame});
    env.device().Poll();
    auto ind = g.WaitIndication(0, /*complete=*/false);
    if (!ind) break;
    ids.push_back(ind->packet.desc.trans_id);
  }
  ASSERT_FALSE(ids.empty());
  for (uint64_t id : ids) EXPECT_LT(id, slots);
  // hn_nvs_ack_rxbuf: COMP {type 108, status 1} with the same xactid, flag NONE.
  for (uint64_t id : ids) ASSERT_TRUE(g.CompleteIndication(0, id));
  env.device().Poll();
  EXPECT_EQ(env.Total(Stat::kRxCompletionUnknown), 0u);
  EXPECT_EQ(env.device().State().recv_sections_free, free_before);
}

// hn_xmit_sg: a frame not copied into the send buffer: range 0 = the RNDIS PACKET_MSG header in a
// memzone, then one range per 4 KiB page of the mbuf (here 1000 bytes crossing a page boundary),
// xactid = the txd pointer, echoed verbatim in the RNDIS_ACK.
TEST(NetvspDpdkTest, GpaDirectFrameFromTheHeapIsSentAndTheCompletionEchoesThePointer) {
  test::EnvOptions o;
  o.queues = 1;
  o.guest_memory = false;
  NetvspEnv env(o);
  ASSERT_TRUE(env.Up(/*full=*/false));
  auto& g = env.guest();
  NoHugeHeap heap = NoHugeHeap::Create(env.partition().host());
  constexpr uint32_t kFrameLen = 1000;
  std::vector<uint8_t> frame(kFrameLen);
  for (uint32_t i = 0; i < kFrameLen; ++i) frame[i] = static_cast<uint8_t>(i * 7 + 1);
  // RNDIS header at page 1 + 0x80; the frame at page 4 + 3600, crossing into page 5.
  std::span<uint8_t> hdr = heap.map.span().subspan(4096 + 0x80, wire::kRndisPacketHeaderSize);
  auto hlen = wire::EncodeRndisPacketHeader(hdr, {}, kFrameLen);
  ASSERT_TRUE(hlen.has_value());
  constexpr uint32_t kFrameOff = 3600;
  std::memcpy(heap.map.data() + 4 * 4096 + kFrameOff, frame.data(), kFrameLen);
  const uint64_t p_hdr = heap.pfn(1), p4 = heap.pfn(4), p5 = heap.pfn(5);
  const uint32_t first = 4096 - kFrameOff;
  const std::array<wire::GpaDirectRangeRef, 3> ranges = {
      wire::GpaDirectRangeRef{wire::kRndisPacketHeaderSize, 0x80, std::span(&p_hdr, 1)},
      wire::GpaDirectRangeRef{first, kFrameOff, std::span(&p4, 1)},
      wire::GpaDirectRangeRef{kFrameLen - first, 0, std::span(&p5, 1)}};
  std::array<uint8_t, 40> nvs_rndis{};
  Put32(nvs_rndis, 0, 107);
  Put32(nvs_rndis, 4, 0);  // NVS_RNDIS_MTYPE_DATA
  Put32(nvs_rndis, 8, 0xFFFFFFFF);
  constexpr uint64_t kTxd = 0x00007f3a12345680ull;  // a struct hn_txdesc pointer
  ASSERT_TRUE(g.SendGpaDirect(0, ranges, nvs_rndis, kTxd));
  auto comp = g.WaitCompletion(0, kTxd);
  ASSERT_TRUE(comp.has_value());
  EXPECT_EQ(comp->desc.trans_id, kTxd);
  EXPECT_EQ(Get32(comp->payload(), 0), 108u);
  EXPECT_EQ(Get32(comp->payload(), 4), 1u);
  auto got = env.Collect(0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], frame);
  // The same with the frame's pages outside every region: refused, counted, completed FAIL.
  const uint64_t bad = heap.pfn(kRegionPages);
  const std::array<wire::GpaDirectRangeRef, 2> bad_ranges = {
      ranges[0], wire::GpaDirectRangeRef{kFrameLen, 0, std::span(&bad, 1)}};
  ASSERT_TRUE(g.SendGpaDirect(0, bad_ranges, nvs_rndis, kTxd + 0x40));
  auto failed = g.WaitCompletion(0, kTxd + 0x40);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(Get32(failed->payload(), 4), 2u);  // NVS_STATUS_FAILED
  EXPECT_EQ(env.Total(Stat::kTxBadGpa), 1u);
}

}  // namespace
}  // namespace uvmbus::netvsp
