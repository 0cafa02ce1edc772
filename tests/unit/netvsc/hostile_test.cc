// File: tests/unit/netvsc/hostile_test.cc
//
// A hostile host (spec 9.4-9.6): malformed completions, unknown ids, bad transfer-page packets and
// ranges, invalid send tables, broken RNDIS messages, PPIs and RSC fragments, a corrupt ring.
// Each input must be rejected with its counter incremented, nothing read outside the buffers
// (the suite also runs under ASan/UBSan), and the NIC must keep working afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "netvsc_test_util.h"

namespace uvmbus::netvsc {
namespace {

using fakes::FakeNetvspHost;
using testing::EnvOptions;
using testing::NetvscEnv;
using testing::ReceiveFrames;
using testing::SendAll;
using testing::UdpFrame;

void PutU32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
uint32_t U32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

std::vector<uint8_t> PacketMsg(const std::vector<uint8_t>& frame, const wire::RndisPpiSet& ppis = {}) {
  std::vector<uint8_t> m(wire::RndisPacketHeaderSize(ppis) + frame.size());
  m.resize(*wire::EncodeRndisPacket(m, ppis, frame));
  return m;
}

std::vector<uint8_t> HostNvsp107(uint32_t channel_type) {
  wire::NvspSendRndisPacket m;
  m.channel_type = channel_type;
  std::vector<uint8_t> out(wire::kNvspLegacyMessageSize);
  (void)wire::EncodeNvsp(std::span<uint8_t>(out), m, out.size());
  return out;
}

template <typename T>
std::vector<uint8_t> Nvsp(const T& msg, size_t padded = 40) {
  std::vector<uint8_t> out(std::max(padded, sizeof(T)));
  out.resize(*wire::EncodeNvsp(std::span<uint8_t>(out), msg, padded));
  return out;
}

// The NIC still carries frames both ways on `queue`.
void ExpectStillWorks(NetvscEnv& env, NetvscDevice& dev, uint16_t queue = 0) {
  const auto in = UdpFrame(4242, 4242, 77, 0x42);
  auto tid = env.host().SendFrames(queue, {in});
  ASSERT_TRUE(tid.has_value()) << tid.error().message;
  const auto got = ReceiveFrames(dev, queue, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], in);
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().receive_completions().count(*tid) == 1; }));
  EXPECT_EQ(env.host().receive_completions().at(*tid), 1u);
  const size_t before = env.host().frame_count();
  const auto out = UdpFrame(2424, 2424, 55, 0x24);
  ASSERT_TRUE(SendAll(dev, queue, {out}));
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().frame_count() == before + 1; }));
  EXPECT_EQ(env.host().frames().back().bytes, out);
}

// The NVSP status the guest completed host packet `tid` with (0 if it never did).
uint32_t CompletionOf(NetvscEnv& env, uint64_t tid) {
  env.host().WaitUntil([&] { return env.host().receive_completions().count(tid) == 1; });
  auto c = env.host().receive_completions();
  return c.count(tid) ? c.at(tid) : 0;
}

class NetvscHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = env_.Up();
    ASSERT_NE(dev_, nullptr);
  }
  const NetvscStats& c() const { return dev_->counters(); }
  // Waits until counter `get` reaches `n` (the guest handles host input on its vCPU threads).
  bool Reaches(const Counter& counter, uint64_t n) {
    return env_.host().WaitUntil([&] { return counter.Get() >= n; });
  }

  NetvscEnv env_;
  std::shared_ptr<NetvscDevice> dev_;
};

// ---- Completions (spec 9.5 N1-N4, 9.4 R16/R17) ----

TEST_F(NetvscHostileTest, EmptyCompletionIsDropped) {  // N1
  ASSERT_TRUE(env_.host().SendCompletion(0, 1, {}).has_value());
  ASSERT_TRUE(Reaches(c().comp_empty, 1));
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, ShortCompletionsAreDropped) {  // N3
  // Packet payloads are padded to 8 bytes, so N2 (< 4 bytes) cannot reach the driver; N3 can.
  std::vector<uint8_t> init(8, 0);
  PutU32(init, 0, 2);  // INIT_COMPLETE needs 16
  ASSERT_TRUE(env_.host().SendCompletion(0, 1, init).has_value());
  std::vector<uint8_t> sub(8, 0);
  PutU32(sub, 0, 133);  // SUBCHANNEL needs 12
  ASSERT_TRUE(env_.host().SendCompletion(0, 1, sub).has_value());
  std::vector<uint8_t> recv(24, 0);
  PutU32(recv, 0, 102);  // SEND_RECV_BUF_COMPLETE needs 28
  ASSERT_TRUE(env_.host().SendCompletion(0, 1, recv).has_value());
  ASSERT_TRUE(Reaches(c().comp_malformed, 3));
  EXPECT_EQ(c().comp_bad_trans_id.Get(), 0u);
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, UnknownCompletionTypesAreDropped) {  // N4
  std::vector<uint8_t> unknown(40, 0);
  PutU32(unknown, 0, 99);
  ASSERT_TRUE(env_.host().SendCompletion(0, 1, unknown).has_value());
  std::vector<uint8_t> oid_comp(40, 0);
  PutU32(oid_comp, 0, 132);  // OID_QUERY_EX_COMP: never asked for
  ASSERT_TRUE(env_.host().SendCompletion(1, 1, oid_comp).has_value());
  ASSERT_TRUE(Reaches(c().comp_unknown_type, 2));
  ExpectStillWorks(env_, *dev_);
  ExpectStillWorks(env_, *dev_, 1);
}

TEST_F(NetvscHostileTest, CompletionsWithUnknownIdsAreDropped) {  // R16, N22
  const auto ok = Nvsp(wire::NvspSendRndisPacketComplete{wire::NvspSendRndisPacketComplete::kType,
                                                         wire::NvspStatus::kSuccess},
                       8);
  ASSERT_TRUE(env_.host().SendCompletion(0, 0, ok).has_value());
  ASSERT_TRUE(env_.host().SendCompletion(0, 1ull << 40, ok).has_value());
  ASSERT_TRUE(env_.host().SendCompletion(0, 4000, ok).has_value());  // in range, never used
  ASSERT_TRUE(env_.host().SendCompletion(0, wire::kVmbusRqstIdNoResponse, ok).has_value());
  ASSERT_TRUE(Reaches(c().comp_bad_trans_id, 4));
  EXPECT_EQ(dev_->Stats().Get("tx_queue_0_packets"), 0u);
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, CompletionOfTheWrongKindLeavesTheRequestPending) {  // R17
  env_.host().SetCompleteTx(false);
  ASSERT_TRUE(SendAll(*dev_, 0, {UdpFrame(1, 2, 40)}));
  ASSERT_TRUE(env_.host().WaitUntil([&] { return env_.host().held_tx() == 1; }));
  uint64_t data_id = 0;
  for (const auto& p : env_.host().packets()) {
    if (p.nvsp_type == 107 && U32(p.payload, 4) == 0) data_id = p.desc.trans_id;
  }
  ASSERT_NE(data_id, 0u);
  wire::NvspInitComplete ic;
  ic.status = wire::NvspStatus::kSuccess;
  ASSERT_TRUE(env_.host().SendCompletion(0, data_id, Nvsp(ic)).has_value());
  ASSERT_TRUE(Reaches(c().comp_wrong_kind, 1));
  EXPECT_EQ(dev_->outstanding_sends(0), 1u);
  // The genuine completion still releases the send; a repeat of it is refused.
  env_.host().SetCompleteTx(true);
  env_.host().CompleteHeldTx();
  ASSERT_TRUE(env_.host().WaitUntil([&] { return dev_->Stats().Get("tx_queue_0_packets") == 1; }));
  const auto ok = Nvsp(wire::NvspSendRndisPacketComplete{wire::NvspSendRndisPacketComplete::kType,
                                                         wire::NvspStatus::kSuccess},
                       8);
  ASSERT_TRUE(env_.host().SendCompletion(0, data_id, ok).has_value());
  ASSERT_TRUE(Reaches(c().comp_bad_trans_id, 1));
  EXPECT_EQ(dev_->send_sections_in_use(), 0u);
  ExpectStillWorks(env_, *dev_);
}

// ---- Transfer-page packets (N13-N18) ----

TEST_F(NetvscHostileTest, RangesOutsideTheReceiveBufferAreSkippedAndFailTheCompletion) {  // N17
  const uint64_t size = env_.host().receive_buffer_size();
  const auto frame = UdpFrame(1, 1, 64, 1);
  const auto msg = PacketMsg(frame);
  const uint64_t good_off = size - 4096;
  ASSERT_TRUE(env_.host().WriteReceiveBuffer(good_off, msg).has_value());
  const std::vector<wire::TransferPageRange> ranges = {
      {100, static_cast<uint32_t>(size - 50)},  // runs past the end
      {8, 0xFFFFFFF0u},                         // starts past the end
      {0xFFFFFFFFu, 16},                        // count past the end
      {static_cast<uint32_t>(msg.size()), static_cast<uint32_t>(good_off)}};
  const uint64_t tid = env_.host().NextTransId();
  ASSERT_TRUE(env_.host().SendTransferPages(0, ranges, HostNvsp107(0), tid).has_value());
  EXPECT_EQ(CompletionOf(env_, tid), 2u);  // FAIL
  EXPECT_EQ(c().xfer_bad_range.Get(), 3u);
  const auto got = ReceiveFrames(*dev_, 0, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], frame);
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, WrongPagesetIdIsDroppedWithoutCompletion) {  // N15
  const std::vector<wire::TransferPageRange> ranges = {{64, 0}};
  const uint64_t tid = env_.host().NextTransId();
  ASSERT_TRUE(env_.host().SendTransferPages(0, ranges, HostNvsp107(0), tid, 0xBEEF).has_value());
  ASSERT_TRUE(Reaches(c().xfer_bad_pageset, 1));
  ExpectStillWorks(env_, *dev_);
  EXPECT_EQ(env_.host().receive_completions().count(tid), 0u);
}

TEST_F(NetvscHostileTest, TransferPagesCarryingAnythingButSendRndisPacketAreDropped) {  // N13
  const std::vector<wire::TransferPageRange> ranges = {{64, 0}};
  std::vector<uint8_t> comp(28, 0);
  PutU32(comp, 0, 108);
  ASSERT_TRUE(env_.host().SendTransferPages(0, ranges, comp, env_.host().NextTransId()).has_value());
  const std::vector<uint8_t> tiny = {7, 1};
  ASSERT_TRUE(env_.host().SendTransferPages(0, ranges, tiny, env_.host().NextTransId()).has_value());
  ASSERT_TRUE(Reaches(c().xfer_malformed, 2));
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, RangeCountRunningIntoThePayloadIsDropped) {  // N16
  const std::vector<wire::TransferPageRange> one = {{64, 0}};
  const auto nvsp = HostNvsp107(0);
  std::vector<uint8_t> header(wire::TransferPageHeaderSize(1));
  ASSERT_TRUE(wire::EncodeTransferPageHeader(header, wire::kNetvscReceiveBufferId, one,
                                             static_cast<uint32_t>(nvsp.size()), 77, true)
                  .has_value());
  PutU32(header, 20, 100);  // range_cnt far beyond offset8
  ASSERT_TRUE(env_.host().InjectPacket(0, header, nvsp).has_value());
  ASSERT_TRUE(Reaches(c().xfer_malformed, 1));
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, TooManyRangesAreDropped) {
  std::vector<wire::TransferPageRange> ranges(wire::kNvspRscMaxPacketsPerReceive + 1, {64, 0});
  ASSERT_TRUE(
      env_.host().SendTransferPages(0, ranges, HostNvsp107(0), env_.host().NextTransId()).has_value());
  ASSERT_TRUE(Reaches(c().xfer_too_many_ranges, 1));
  ExpectStillWorks(env_, *dev_);
}

TEST(NetvscHostileRingTest, FullReceiveCompletionRingDropsTheCompletion) {  // N18
  EnvOptions o;
  o.host.recv_num_sub_allocs = 2;  // the guest's completion ring holds 3 slots, 2 usable
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  // Every receive completion of the bring-up has reached the host: the ring starts empty.
  ASSERT_TRUE(env.host().WaitUntil([&] { return env.host().inflight_receives() == 0; }));
  const auto msg = PacketMsg(UdpFrame(1, 1, 40));
  ASSERT_TRUE(env.host().WriteReceiveBuffer(0, msg).has_value());
  std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> batch;
  std::vector<uint64_t> tids;
  for (int i = 0; i < 3; ++i) {
    const std::vector<wire::TransferPageRange> r = {{static_cast<uint32_t>(msg.size()), 0}};
    const auto nvsp = HostNvsp107(0);
    std::vector<uint8_t> header(wire::TransferPageHeaderSize(1));
    const uint64_t tid = env.host().NextTransId();
    tids.push_back(tid);
    ASSERT_TRUE(wire::EncodeTransferPageHeader(header, wire::kNetvscReceiveBufferId, r,
                                               static_cast<uint32_t>(nvsp.size()), tid, true)
                    .has_value());
    batch.emplace_back(header, nvsp);
  }
  ASSERT_TRUE(env.host().InjectBatch(0, batch).has_value());
  ASSERT_TRUE(env.host().WaitUntil([&] { return dev->counters().recv_comp_ring_full.Get() == 1; }));
  EXPECT_EQ(ReceiveFrames(*dev, 0, 3).size(), 3u);
  EXPECT_EQ(CompletionOf(env, tids[0]), 1u);
  EXPECT_EQ(CompletionOf(env, tids[1]), 1u);
  EXPECT_EQ(env.host().receive_completions().count(tids[2]), 0u);
}

// ---- In-band messages (N19-N21) ----

TEST_F(NetvscHostileTest, InvalidSendTablesAreIgnored) {  // N20
  ASSERT_TRUE(env_.host().WaitUntil([&] { return dev_->send_table()[3] == 3; }));
  const auto before = dev_->send_table();
  std::array<uint32_t, 16> table{};
  std::array<uint8_t, wire::kNvspSendIndirectionTableMessageSize> good{};
  ASSERT_TRUE(wire::EncodeNvspSendIndirectionTable(good, table).has_value());
  // count != 16.
  std::vector<uint8_t> bad_count(good.begin(), good.end());
  PutU32(bad_count, 4, 8);
  ASSERT_TRUE(env_.host().SendInband(0, bad_count).has_value());
  // offset past the message (6.1 trusts the offset).
  std::vector<uint8_t> bad_offset(good.begin(), good.end());
  PutU32(bad_offset, 8, 200);
  ASSERT_TRUE(env_.host().SendInband(0, bad_offset).has_value());
  // Shorter than 12 bytes.
  std::vector<uint8_t> tiny(8, 0);
  PutU32(tiny, 0, 134);
  ASSERT_TRUE(env_.host().SendInband(0, tiny).has_value());
  // An entry naming a channel that does not exist.
  std::array<uint32_t, 16> far{};
  far[7] = 9;
  std::array<uint8_t, wire::kNvspSendIndirectionTableMessageSize> bad_entry{};
  ASSERT_TRUE(wire::EncodeNvspSendIndirectionTable(bad_entry, far).has_value());
  ASSERT_TRUE(env_.host().SendInband(0, bad_entry).has_value());
  ASSERT_TRUE(Reaches(c().send_table_invalid, 4));
  EXPECT_EQ(dev_->send_table(), before);
  // OpenVMM's layout (table at 12, 76 bytes) is valid.
  std::vector<uint8_t> openvmm(12 + 64, 0);
  PutU32(openvmm, 0, 134);
  PutU32(openvmm, 4, 16);
  PutU32(openvmm, 8, 12);
  for (uint32_t i = 0; i < 16; ++i) PutU32(openvmm, 12 + 4 * i, 3 - i % 4);
  ASSERT_TRUE(env_.host().SendInband(0, openvmm).has_value());
  ASSERT_TRUE(env_.host().WaitUntil([&] { return dev_->send_table()[0] == 3; }));
  EXPECT_EQ(dev_->send_table()[1], 2u);
  EXPECT_EQ(c().send_table_invalid.Get(), 4u);
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, ShortAndUnknownInbandMessagesAreIgnored) {  // N19, N21
  const std::vector<uint8_t> two = {1, 2};
  ASSERT_TRUE(env_.host().SendInband(0, two).has_value());
  std::vector<uint8_t> init(40, 0);
  PutU32(init, 0, 1);  // INIT from the host
  ASSERT_TRUE(env_.host().SendInband(0, init).has_value());
  ASSERT_TRUE(Reaches(c().inband_malformed, 2));
  std::vector<uint8_t> vf_short(8, 0);
  PutU32(vf_short, 0, 128);
  ASSERT_TRUE(env_.host().SendInband(0, vf_short).has_value());
  ASSERT_TRUE(Reaches(c().vf_association_invalid, 1));
  EXPECT_FALSE(dev_->vf_allocated());
  wire::NvspSendVfAssociation vf;
  vf.allocated = 1;
  vf.serial = 42;
  ASSERT_TRUE(env_.host().SendInband(0, Nvsp(vf), wire::kNetvspVfAssociationTransId, true).has_value());
  ASSERT_TRUE(env_.host().WaitUntil([&] { return dev_->vf_allocated(); }));
  EXPECT_EQ(dev_->vf_serial(), 42u);
  ExpectStillWorks(env_, *dev_);
}

TEST_F(NetvscHostileTest, AGpaDirectPacketFromTheHostIsIgnored) {
  const uint64_t pfn = 100;
  const std::array<wire::GpaDirectRangeRef, 1> r = {
      wire::GpaDirectRangeRef{64, 0, std::span<const uint64_t>(&pfn, 1)}};
  const auto nvsp = HostNvsp107(0);
  std::vector<uint8_t> header(64);
  auto n = wire::EncodeGpaDirectHeader(header, r, static_cast<uint32_t>(nvsp.size()), 5);
  ASSERT_TRUE(n.has_value());
  header.resize(*n);
  ASSERT_TRUE(env_.host().InjectPacket(0, header, nvsp).has_value());
  ASSERT_TRUE(Reaches(c().rx_bad_packet_type, 1));
  ExpectStillWorks(env_, *dev_);
}

// ---- RNDIS data (D1-D15) ----

struct BadRndisCase {
  std::string name;
  std::function<std::vector<uint8_t>(std::vector<uint8_t>)> mutate;  // of a valid PACKET_MSG
  uint32_t range = 0;  // range length override (0: the message size)
  Counter NetvscStats::*counter;
};

class NetvscBadRndisTest : public NetvscHostileTest,
                           public ::testing::WithParamInterface<BadRndisCase> {};

TEST_P(NetvscBadRndisTest, IsRefusedWithFailAndCounted) {
  const auto& p = GetParam();
  const auto msg = p.mutate(PacketMsg(UdpFrame(1, 2, 60)));
  std::vector<uint32_t> ranges;
  if (p.range != 0) ranges.push_back(p.range);
  auto tid = env_.host().SendRndisMessages(0, {msg}, 0, ranges);
  ASSERT_TRUE(tid.has_value());
  EXPECT_EQ(CompletionOf(env_, *tid), 2u);
  EXPECT_EQ((c().*(p.counter)).Get(), 1u);
  EXPECT_EQ(dev_->Stats().Get("rx_queue_0_packets"), 0u);
  ExpectStillWorks(env_, *dev_);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NetvscBadRndisTest,
    ::testing::Values(
        BadRndisCase{"RangeShorterThanHeader",  // D1
                     [](std::vector<uint8_t> m) { return m; }, 6, &NetvscStats::rndis_bad_length},
        BadRndisCase{"MsgLenPastRange",  // D2
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 4, static_cast<uint32_t>(m.size()) + 8);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_length},
        BadRndisCase{"MsgLenBelowHeader",  // D2
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 4, 4);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_length},
        BadRndisCase{"PacketShorterThanItsHeader",  // D3
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 4, 40);
                       m.resize(40);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_packet},
        BadRndisCase{"DataOffsetPastMessage",  // D4
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 8, static_cast<uint32_t>(m.size()));
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_packet},
        BadRndisCase{"DataLenPastMessage",  // D5
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 12, U32(m, 12) + 1);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_packet},
        BadRndisCase{"HugeDataLen",  // D5, overflow-safe
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 12, 0xFFFFFFF0u);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_packet},
        BadRndisCase{"KeepaliveFromHost",  // D15
                     [](std::vector<uint8_t>) {
                       std::vector<uint8_t> k(12, 0);
                       PutU32(k, 0, 8);
                       PutU32(k, 4, 12);
                       return k;
                     },
                     0, &NetvscStats::rndis_bad_type},
        BadRndisCase{"UnknownType",  // D15
                     [](std::vector<uint8_t> m) {
                       PutU32(m, 0, 0x42);
                       return m;
                     },
                     0, &NetvscStats::rndis_bad_type}),
    [](const ::testing::TestParamInfo<BadRndisCase>& i) { return i.param.name; });

TEST_F(NetvscHostileTest, MalformedPpisAreIgnoredButTheFrameIsDelivered) {  // D6-D10
  const auto frame = UdpFrame(3, 3, 50, 3);
  wire::RndisPpiSet ppis;
  ppis.hash_value = 0x1234;
  // D8: an element of size 0 (Linux versions consulted loop forever on it).
  auto zero = PacketMsg(frame, ppis);
  PutU32(zero, 44, 0);
  // D9: ppi_offset beyond the element.
  auto off = PacketMsg(frame, ppis);
  PutU32(off, 44 + 8, 40);
  // D6: per_pkt_info_offset inside the fixed header.
  auto hdr = PacketMsg(frame, ppis);
  PutU32(hdr, 28, 8);
  auto tid = env_.host().SendRndisMessages(0, {zero, off, hdr}, 0);
  ASSERT_TRUE(tid.has_value());
  std::vector<RxFrameInfo> infos;
  const auto got = ReceiveFrames(*dev_, 0, 3, &infos);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i], frame);
    EXPECT_FALSE(infos[i].flags & RxFrameInfo::kHasHash);
  }
  EXPECT_EQ(CompletionOf(env_, *tid), 1u);
  EXPECT_EQ(c().rndis_bad_ppi.Get(), 3u);
}

TEST_F(NetvscHostileTest, OutOfOrderRscFragmentsAreDropped) {  // D12, D13
  const auto part = UdpFrame(1, 1, 100);
  auto frag = [&](uint8_t flags) {
    wire::RndisPpiSet p;
    p.packet_id = wire::PackPacketIdInfo({wire::kPacketIdVersion1, flags, 1});
    return PacketMsg(part, p);
  };
  // D12: a middle fragment with nothing pending.
  auto t1 = env_.host().SendRndisMessages(0, {frag(wire::kPacketIdFlagSubAlloc)}, 0);
  ASSERT_TRUE(t1.has_value());
  EXPECT_EQ(CompletionOf(env_, *t1), 2u);
  // D13: a first fragment ending the transfer-page packet without its last fragment.
  auto t2 = env_.host().SendRndisMessages(
      0, {frag(wire::kPacketIdFlagSubAlloc | wire::kPacketIdFlagFirstFrag)}, 0);
  ASSERT_TRUE(t2.has_value());
  EXPECT_EQ(CompletionOf(env_, *t2), 2u);
  EXPECT_EQ(c().rndis_rsc_dropped.Get(), 2u);
  ExpectStillWorks(env_, *dev_);
}

// ---- RNDIS control (D16-D23) ----

TEST_F(NetvscHostileTest, MalformedAndUnmatchedControlMessagesAreDropped) {
  // D18: a QUERY_CMPLT for a request nobody made.
  std::vector<uint8_t> qc(64);
  qc.resize(*wire::EncodeRndisQueryComplete(qc, 999, wire::RndisStatus::kSuccess, {}));
  ASSERT_TRUE(env_.host().SendRndisMessages(0, {qc}).has_value());
  ASSERT_TRUE(Reaches(c().rndis_control_unmatched, 1));
  // D17: a completion too short to hold its fixed part.
  std::vector<uint8_t> short_qc = qc;
  PutU32(short_qc, 4, 12);
  short_qc.resize(12);
  // D22: an indication shorter than 20 bytes.
  std::vector<uint8_t> short_ind(16, 0);
  PutU32(short_ind, 0, 7);
  PutU32(short_ind, 4, 16);
  // D23: LINK_SPEED_CHANGE with a 2-byte buffer.
  std::vector<uint8_t> speed(64);
  const std::array<uint8_t, 2> two = {1, 2};
  speed.resize(*wire::EncodeRndisIndicateStatus(speed, wire::RndisStatus::kLinkSpeedChange, two));
  // D20: QUERY_CMPLT whose info runs past the message.
  std::vector<uint8_t> over = qc;
  PutU32(over, 16, 100);
  ASSERT_TRUE(env_.host().SendRndisMessages(0, {short_qc, short_ind, speed, over}).has_value());
  ASSERT_TRUE(Reaches(c().rndis_bad_control, 4));
  EXPECT_EQ(dev_->link_speed_mbps(), 10000u);
  ExpectStillWorks(env_, *dev_);
  // Control requests still work.
  ASSERT_TRUE(dev_->Close().has_value());
  ASSERT_TRUE(dev_->Open().has_value());
}

TEST_F(NetvscHostileTest, OverlongCompletionFailsItsRequestWithOverflow) {  // D19
  env_.host().SetRndisHook([this](uint32_t type, uint32_t, std::vector<uint8_t>& resp, bool& send) {
    if (type != static_cast<uint32_t>(wire::RndisMessageType::kSet)) return;
    send = false;
    // A SET_CMPLT of 5000 bytes (> 52 + 4096) for the same request, from a spot the host's pool
    // does not use.
    std::vector<uint8_t> big(5000, 0);
    std::memcpy(big.data(), resp.data(), resp.size());
    PutU32(big, 4, 5000);
    const uint64_t off = env_.host().receive_buffer_size() - 8192;
    ASSERT_TRUE(env_.host().WriteReceiveBuffer(off, big).has_value());
    const std::vector<wire::TransferPageRange> r = {{5000, static_cast<uint32_t>(off)}};
    ASSERT_TRUE(env_.host()
                    .SendTransferPages(0, r, HostNvsp107(1), env_.host().NextTransId())
                    .has_value());
  });
  auto st = dev_->SetPacketFilter(wire::kNdisPacketFilterPromiscuous);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(c().rndis_control_overflow.Get(), 1u);
  env_.host().SetRndisHook({});
  ExpectStillWorks(env_, *dev_);
}

TEST(NetvscHostileRndisTest, RndisBeforeInitializeIsDropped) {  // D16
  NetvscEnv env;
  env.host().SetNvspHook([&](uint32_t type, std::vector<uint8_t>&, bool&) {
    if (type != static_cast<uint32_t>(wire::NvspMessageType::kSendSendBuffer)) return;
    std::vector<uint8_t> ind(64);
    ind.resize(*wire::EncodeRndisIndicateStatus(ind, wire::RndisStatus::kMediaDisconnect, {}));
    EXPECT_TRUE(env.host().SendRndisMessages(0, {ind}).has_value());
  });
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->counters().rndis_uninitialized.Get(), 1u);
  EXPECT_TRUE(dev->link_up());  // the early indication changed nothing
}

// ---- Ring (spec 9.4) ----

TEST_F(NetvscHostileTest, ACorruptRingStopsOnlyItsQueue) {  // R1
  ASSERT_TRUE(env_.host().CorruptGuestRing(1, 13).has_value());
  ASSERT_TRUE(Reaches(c().rx_ring_corrupt, 1));
  ExpectStillWorks(env_, *dev_, 0);
  ExpectStillWorks(env_, *dev_, 2);
}

TEST_F(NetvscHostileTest, AnInterruptStormIsHarmless) {  // R19
  for (int i = 0; i < 200; ++i) env_.host().Signal(static_cast<uint16_t>(i % 4));
  ExpectStillWorks(env_, *dev_, 3);
  EXPECT_EQ(c().rx_ring_corrupt.Get(), 0u);
}

TEST(NetvscHostileOfferTest, SubchannelOffersBeyondTheRequestAreIgnored) {  // M8
  EnvOptions o;
  o.host.subchannel_grant = 5;  // more than the 3 requested: the guest keeps one queue
  NetvscEnv env(o);
  auto dev = env.Up();
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->queue_count(), 1u);
  ASSERT_TRUE(env.host().WaitUntil(
      [&] { return dev->counters().subchannel_offer_ignored.Get() == 5; }));
  ExpectStillWorks(env, *dev);
}

}  // namespace
}  // namespace uvmbus::netvsc
