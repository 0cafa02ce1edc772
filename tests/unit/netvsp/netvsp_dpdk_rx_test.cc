// Regression test for "testpmd receives no frames" (issue 6, docs/interop.md): the exact bytes
// of the host's receive path, run through every check DPDK 22.11's netvsc PMD applies before it
// hands a frame to the application, in its order:
//   vmbus_channel.c rte_vmbus_chan_recv_raw: hlen >= VMBUS_CHANPKT_HLEN_MIN (2 qwords),
//     hlen <= tlen (else -EIO and the PMD exits), whole packet + 8-byte offset trailer readable;
//   hn_rxtx.c hn_nvs_handle_rxbuf: NVS type RNDIS (107), hlen >= sizeof(vmbus_chanpkt_rxbuf),
//     rxbuf_id == NVS_RXBUF_SIG (0xCAFE), hlen covers rxbuf[rxbuf_cnt], xactid <= slotcnt (it
//     indexes an array), ofs + len <= receive buffer size, len != 0;
//   hn_rndis_rx_data: dlen >= 44, len <= dlen, len >= datalen + oobdatalen + pktinfolen,
//     datalen != 0, dataoffset >= 36, pktinfooffset 0 or >= 36 and 4-aligned, data inside len,
//     datalen >= 14; hn_rndis_rxinfo: each PPI 4-aligned, size <= remaining, size >= offset.
// The investigation found these bytes correct (the stall was DPDK 22.11's netvsc never marking
// its queues started, so testpmd never polled them: tools/uio_preload/ethdev_queue_state.cc);
// this test keeps them that way.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "netvsp_test_util.h"

namespace uvmbus::netvsp {
namespace {

using test::NetvspEnv;

uint16_t Le16(std::span<const uint8_t> b, size_t off) {
  uint16_t v = 0;
  if (off + 2 <= b.size()) std::memcpy(&v, b.data() + off, 2);
  return v;
}
uint32_t Le32(std::span<const uint8_t> b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}
uint64_t Le64(std::span<const uint8_t> b, size_t off) {
  uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
}

// DPDK 22.11 constants (rte_vmbus_reg.h, hn_nvs.h, rndis.h).
constexpr uint16_t kChanPktTypeRxbuf = 7;  // VMBUS_CHANPKT_TYPE_RXBUF
constexpr uint32_t kHlenMin = 2;           // VMBUS_CHANPKT_HLEN_MIN (16-byte header, in qwords)
constexpr uint32_t kRxbufPktSize = 24;     // sizeof(struct vmbus_chanpkt_rxbuf) without ranges
constexpr uint16_t kNvsRxbufSig = 0xCAFE;  // NVS_RXBUF_SIG
constexpr uint32_t kNvsTypeRndis = 107;    // NVS_TYPE_RNDIS
constexpr uint32_t kRndisPacketMsg = 1;    // RNDIS_PACKET_MSG
constexpr uint32_t kRndisPacketMsgSize = 44;
constexpr uint32_t kOffsetMin = 36;        // RNDIS_PACKET_MSG_OFFSET_MIN
constexpr uint32_t kOffsetAbs = 8;         // RNDIS_PACKET_MSG_OFFSET_ABS(x) = x + 8

// Applies DPDK's checks to one transfer-page packet; returns the frames it would deliver.
std::vector<std::vector<uint8_t>> DpdkAccepts(const testing::ReceivedIndication& ind,
                                              std::span<const uint8_t> rxbuf, uint32_t slotcnt) {
  std::vector<std::vector<uint8_t>> frames;
  std::span<const uint8_t> p(ind.packet.bytes);
  // rte_vmbus_chan_recv_raw.
  const uint16_t type = Le16(p, 0);
  const uint32_t hlen8 = Le16(p, 2);
  const uint32_t tlen8 = Le16(p, 4);
  EXPECT_EQ(type, kChanPktTypeRxbuf);
  EXPECT_GE(hlen8, kHlenMin);
  EXPECT_LE(hlen8, tlen8);
  EXPECT_EQ(size_t{tlen8} * 8, p.size());
  const uint32_t hlen = hlen8 * 8;
  // hn_nvs_handle_rxbuf.
  EXPECT_GE(p.size() - hlen, 4u);
  EXPECT_EQ(Le32(p, hlen), kNvsTypeRndis);
  EXPECT_GE(hlen, kRxbufPktSize);
  EXPECT_EQ(Le16(p, 16), kNvsRxbufSig);
  const uint32_t count = Le32(p, 20);
  EXPECT_GE(count, 1u);
  EXPECT_GE(hlen, kRxbufPktSize + 8 * count);
  const uint64_t xactid = Le64(p, 8);
  EXPECT_LT(xactid, slotcnt);  // DPDK allows <= slotcnt (off by one); the host stays below
  if (::testing::Test::HasFailure()) return frames;
  for (uint32_t i = 0; i < count; ++i) {
    // struct vmbus_rxbuf_desc {len; ofs}: byte count first.
    const uint32_t len = Le32(p, kRxbufPktSize + 8 * i);
    const uint32_t ofs = Le32(p, kRxbufPktSize + 8 * i + 4);
    EXPECT_LE(uint64_t{ofs} + len, rxbuf.size());
    EXPECT_NE(len, 0u);
    if (uint64_t{ofs} + len > rxbuf.size() || len == 0) continue;
    std::span<const uint8_t> m = rxbuf.subspan(ofs, len);
    // hn_rndis_receive / hn_rndis_rx_data.
    EXPECT_EQ(Le32(m, 0), kRndisPacketMsg);
    EXPECT_GE(len, kRndisPacketMsgSize);
    const uint32_t msg_len = Le32(m, 4);
    const uint32_t dataoffset = Le32(m, 8);
    const uint32_t datalen = Le32(m, 12);
    const uint32_t oobdatalen = Le32(m, 20);
    const uint32_t pktinfooffset = Le32(m, 28);
    const uint32_t pktinfolen = Le32(m, 32);
    EXPECT_LE(msg_len, len);
    EXPECT_GE(uint64_t{msg_len}, uint64_t{datalen} + oobdatalen + pktinfolen);
    EXPECT_NE(datalen, 0u);
    EXPECT_GE(dataoffset, kOffsetMin);
    if (pktinfooffset != 0) {
      EXPECT_GE(pktinfooffset, kOffsetMin);
      EXPECT_EQ(pktinfooffset % 4, 0u);
    }
    // hn_rndis_rxinfo: walk the PPIs.
    if (pktinfolen != 0) {
      uint64_t at = uint64_t{pktinfooffset} + kOffsetAbs;
      uint32_t left = pktinfolen;
      EXPECT_LE(at + left, msg_len);
      while (left != 0 && !::testing::Test::HasFailure()) {
        EXPECT_GE(left, 12u);
        const uint32_t size = Le32(m, static_cast<size_t>(at));
        const uint32_t offset = Le32(m, static_cast<size_t>(at) + 8);
        EXPECT_LE(size, left);
        EXPECT_EQ(size % 4, 0u);
        EXPECT_GE(size, offset);
        EXPECT_EQ(offset, 12u);  // DPDK reads the value at pi->data (+12) whatever offset says
        if (size == 0 || size > left) break;
        left -= size;
        at += size;
      }
    }
    const uint64_t data_off = uint64_t{dataoffset} + kOffsetAbs;
    EXPECT_LE(data_off + datalen, msg_len);
    EXPECT_GE(datalen, 14u);
    if (::testing::Test::HasFailure()) return frames;
    frames.emplace_back(m.begin() + static_cast<std::ptrdiff_t>(data_off),
                        m.begin() + static_cast<std::ptrdiff_t>(data_off + datalen));
  }
  return frames;
}

TEST(NetvspDpdkRxTest, TransferPagePacketsPassEveryCheckOfDpdksReceivePath) {
  test::EnvOptions o;
  o.queues = 1;
  NetvspEnv env(o);
  ASSERT_TRUE(env.Up(/*full=*/false));
  ASSERT_TRUE(env.EnableRx());
  auto& g = env.guest();
  // The sizes testpmd's peer sends: minimum, odd, maximum.
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t size : {60u, 61u, 1000u, 1514u}) {
    std::vector<uint8_t> f(size);
    for (uint32_t i = 0; i < size; ++i) f[i] = static_cast<uint8_t>(i * 7 + size);
    std::memcpy(f.data(), test::kGuestMac.data(), 6);
    sent.push_back(f);
  }
  env.Inject(0, sent);
  env.device().Poll();
  std::vector<std::vector<uint8_t>> delivered;
  bool first = true;
  while (delivered.size() < sent.size()) {
    auto ind = g.WaitIndication(0, /*complete=*/false);
    ASSERT_TRUE(ind.has_value()) << delivered.size() << " of " << sent.size();
    if (first) {
      // The bytes the investigation compared with DPDK (all four frames in one packet):
      //   07 00 | 07 00 | 0c 00 | 01 00 | xactid (8) | fe ca 00 00 | 04 00 00 00 | 4 x {len, ofs}
      //   | NVS: 6b 00 00 00 | 00 00 00 00 (data) | ff ff ff ff | 00 00 00 00 ...
      // type RXBUF, hlen 7 qwords (24 + 4 ranges), tlen 12 (+ 40-byte NVS message), flag
      // completion-requested; the first RNDIS PACKET_MSG: type 1, len 316, dataoffset 248
      // (frame at +256, kRxHeaderReserve), datalen 60.
      first = false;
      const std::vector<uint8_t> head(ind->packet.bytes.begin(), ind->packet.bytes.begin() + 8);
      EXPECT_EQ(head, (std::vector<uint8_t>{0x07, 0x00, 0x07, 0x00, 0x0c, 0x00, 0x01, 0x00}));
      std::span<const uint8_t> p(ind->packet.bytes);
      EXPECT_EQ(Le32(p, 16), 0x0000CAFEu);
      EXPECT_EQ(Le32(p, 20), 4u);
      EXPECT_EQ(Le32(p, 24), 316u);
      EXPECT_EQ(Le32(p, 56), kNvsTypeRndis);
      EXPECT_EQ(Le32(p, 60), 0u);  // channel_type data
      EXPECT_EQ(Le32(p, 64), 0xFFFFFFFFu);
      ASSERT_FALSE(ind->messages.empty());
      std::span<const uint8_t> m(ind->messages[0].bytes);
      EXPECT_EQ(Le32(m, 0), 1u);
      EXPECT_EQ(Le32(m, 4), 316u);
      EXPECT_EQ(Le32(m, 8), 248u);
      EXPECT_EQ(Le32(m, 12), 60u);
    }
    auto frames = DpdkAccepts(*ind, g.receive_buffer(), g.num_sub_allocs());
    ASSERT_FALSE(::testing::Test::HasFailure());
    for (auto& f : frames) delivered.push_back(std::move(f));
    // hn_nvs_ack_rxbuf: COMP 108 with the packet's xactid.
    ASSERT_TRUE(g.CompleteIndication(0, ind->packet.desc.trans_id));
    env.device().Poll();
  }
  EXPECT_EQ(delivered, sent);
  EXPECT_EQ(env.Total(Stat::kRxCompletionUnknown), 0u);
}

}  // namespace
}  // namespace uvmbus::netvsp
