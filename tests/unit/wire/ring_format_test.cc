// wire/ring_format: sizes from the spec, encoders (spec 4.3-4.6) and the validating parsers
// for transfer-page and GPA-direct packets (spec 9.4 R3, R6, R9-R11).
#include "wire/ring_format.h"

#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace uvmbus::wire {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& buf, size_t offset, const T& v) {
  if (buf.size() < offset + sizeof(T)) buf.resize(offset + sizeof(T));
  std::memcpy(buf.data() + offset, &v, sizeof(T));
}

PacketDescriptor Desc(PacketType type, uint16_t offset8, uint16_t len8, uint16_t flags = 1) {
  return PacketDescriptor{static_cast<uint16_t>(type), offset8, len8, flags, 0x55};
}

TEST(RingFormatTest, SizesMatchTheSpec) {
  EXPECT_EQ(sizeof(RingControlPage), 4096u);
  EXPECT_EQ(sizeof(PacketDescriptor), 16u);
  EXPECT_EQ(sizeof(TransferPageHeader), 24u);
  EXPECT_EQ(sizeof(GpaDirectHeader), 24u);
  EXPECT_EQ(MakePacketTrailer(0x1238), uint64_t{0x1238} << 32);
  // Spec 3.9: netvsc rings are VMBUS_RING_SIZE(128 pages) = 129 pages.
  EXPECT_EQ(VmbusRingSize(128 * 4096), 528384u);
  EXPECT_EQ(VmbusRingSize(1), 8192u);
  EXPECT_EQ(PacketRingSize(16, 40), 64u);
  EXPECT_EQ(PacketRingSize(16, 0), 24u);
  EXPECT_EQ(TransferPageHeaderSize(1), 32u);
  EXPECT_EQ(GpaRangePageCount(1, 4095), 1u);  // the last byte of a page
  EXPECT_EQ(GpaRangePageCount(2, 4095), 2u);
  EXPECT_EQ(GpaRangePageCount(4096, 0), 1u);
}

TEST(RingFormatTest, AcceptedPacketTypesAreTheFourUsedInPractice) {
  for (uint16_t t = 0; t < 0x20; ++t) {
    EXPECT_EQ(IsAcceptedPacketType(t), t == 6 || t == 7 || t == 9 || t == 11) << t;
  }
  EXPECT_EQ(PacketTypeName(7), "xfer_pages");
  EXPECT_EQ(PacketTypeName(0x99), "unknown");
  EXPECT_EQ(PacketErrorName(PacketError::kRangePastHeader), "range_past_header");
}

TEST(RingFormatTest, InbandHeaderForA40ByteNvspMessageIsLen8Seven) {
  std::array<uint8_t, 16> out{};
  auto n = EncodeInbandHeader(out, 40, 0xABCD, true);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 16u);
  auto d = ParseDescriptor(std::span<const uint8_t>(out.data(), 16));
  ASSERT_FALSE(d.has_value());  // len8 * 8 = 56 > the 16 bytes given
  EXPECT_EQ(d.error(), PacketError::kTooShort);
  PacketDescriptor desc;
  std::memcpy(&desc, out.data(), sizeof(desc));
  EXPECT_EQ(desc.type, 6);
  EXPECT_EQ(desc.offset8, 2);
  EXPECT_EQ(desc.len8, 7);  // spec 4.6
  EXPECT_EQ(desc.flags, kPacketFlagCompletionRequested);
  EXPECT_EQ(desc.trans_id, 0xABCDu);
}

TEST(RingFormatTest, CompletionHeaderForAReceiveCompletionIsLen8Three) {
  std::array<uint8_t, 16> out{};
  ASSERT_TRUE(EncodeCompletionHeader(out, 8, 7).has_value());
  PacketDescriptor desc;
  std::memcpy(&desc, out.data(), sizeof(desc));
  EXPECT_EQ(desc.type, 11);
  EXPECT_EQ(desc.offset8, 2);
  EXPECT_EQ(desc.len8, 3);  // spec 4.6
  EXPECT_EQ(desc.flags, 0);
  EXPECT_EQ(desc.trans_id, 7u);
}

TEST(RingFormatTest, EncodersReportSmallBuffersAndOversizedPackets) {
  std::array<uint8_t, 8> small{};
  EXPECT_EQ(EncodeInbandHeader(small, 0, 0, false).error(), PacketError::kBufferTooSmall);
  std::array<uint8_t, 16> out{};
  EXPECT_EQ(EncodeInbandHeader(out, kMaxPacketLength - 16 + 1, 0, false).error(),
            PacketError::kTooLarge);
  EXPECT_TRUE(EncodeInbandHeader(out, kMaxPacketLength - 16, 0, false).has_value());
  const TransferPageRange ranges[2] = {};
  std::array<uint8_t, 32> tp{};
  EXPECT_EQ(EncodeTransferPageHeader(tp, 1, ranges, 0, 0).error(), PacketError::kBufferTooSmall);
}

TEST(RingFormatTest, TransferPagePacketRoundTrips) {
  const TransferPageRange ranges[] = {{1514, 0}, {42, 1728}, {9000, 3456}};
  std::array<uint8_t, 64> header{};
  const std::array<uint8_t, 12> payload = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  auto hl = EncodeTransferPageHeader(header, 0xCAFE, ranges,
                                     static_cast<uint32_t>(payload.size()), 0x99);
  ASSERT_TRUE(hl.has_value());
  EXPECT_EQ(*hl, 48u);  // 24 + 3 * 8: offset8 = 3 + range_cnt
  std::array<uint8_t, 128> packet{};
  auto len = EncodePacket(packet, std::span(header).first(*hl), payload);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len, 64u);  // 48 + 12 -> 60, padded to 64
  auto p = ParseTransferPagePacket(std::span(packet).first(*len));
  ASSERT_TRUE(p.has_value()) << PacketErrorName(p.error());
  EXPECT_EQ(p->desc.offset8, 6);
  EXPECT_EQ(p->desc.flags, kPacketFlagCompletionRequested);
  EXPECT_EQ(p->xfer_pageset_id, 0xCAFE);
  ASSERT_EQ(p->range_cnt, 3u);
  EXPECT_EQ(p->range(2).byte_count, 9000u);
  EXPECT_EQ(p->range(2).byte_offset, 3456u);
  ASSERT_EQ(p->payload.size(), 16u);
  EXPECT_EQ(p->payload[11], 12);
  EXPECT_EQ(p->payload[12], 0);  // padding
}

TEST(RingFormatTest, GpaDirectPageBufferFormHasSpecSizes) {
  // Spec 4.6: k single-page ranges + a 40-byte NVSP message.
  constexpr int k = 3;
  uint64_t pfns[k] = {0x100, 0x200, 0x300};
  GpaDirectRangeRef ranges[k];
  for (int i = 0; i < k; ++i) ranges[i] = {1000, 96, std::span(&pfns[i], 1)};
  EXPECT_EQ(GpaDirectHeaderSize(ranges), 24u + 16 * k);
  std::array<uint8_t, 128> header{};
  auto hl = EncodeGpaDirectHeader(header, ranges, 40, 5);
  ASSERT_TRUE(hl.has_value());
  PacketDescriptor desc;
  std::memcpy(&desc, header.data(), sizeof(desc));
  EXPECT_EQ(desc.type, 9);
  EXPECT_EQ(desc.flags, 1);
  EXPECT_EQ(desc.offset8, (24 + 16 * k) / 8);
  EXPECT_EQ(desc.len8, (24 + 16 * k + 40) / 8);

  std::array<uint8_t, 40> nvsp{};
  std::array<uint8_t, 256> packet{};
  auto len = EncodePacket(packet, std::span(header).first(*hl), nvsp);
  ASSERT_TRUE(len.has_value());
  auto p = ParseGpaDirectPacket(std::span(packet).first(*len));
  ASSERT_TRUE(p.has_value()) << PacketErrorName(p.error());
  EXPECT_EQ(p->range_cnt, 3u);
  EXPECT_EQ(p->payload.size(), 40u);
  GpaDirectRangeReader reader(*p);
  GpaDirectRange r;
  for (int i = 0; i < k; ++i) {
    ASSERT_TRUE(reader.Next(&r));
    EXPECT_EQ(r.byte_count, 1000u);
    EXPECT_EQ(r.byte_offset, 96u);
    ASSERT_EQ(r.page_count(), 1u);
    EXPECT_EQ(r.pfn(0), pfns[i]);
  }
  EXPECT_FALSE(reader.Next(&r));
}

TEST(RingFormatTest, GpaDirectMultiPageRangeCarriesAllItsPfns) {
  const uint64_t pfns[] = {7, 8, 9};
  const GpaDirectRangeRef ranges[] = {{8200, 100, pfns}};  // ceil(8300 / 4096) = 3 pages
  std::array<uint8_t, 64> header{};
  auto hl = EncodeGpaDirectHeader(header, ranges, 0, 1);
  ASSERT_TRUE(hl.has_value());
  EXPECT_EQ(*hl, 24u + 8 + 24);
  auto p = ParseGpaDirectPacket(std::span(header).first(*hl));
  ASSERT_TRUE(p.has_value());
  GpaDirectRangeReader reader(*p);
  GpaDirectRange r;
  ASSERT_TRUE(reader.Next(&r));
  EXPECT_EQ(r.page_count(), 3u);
  EXPECT_EQ(r.pfn(2), 9u);
  EXPECT_TRUE(p->payload.empty());
}

TEST(RingFormatTest, GpaDirectEncoderRejectsBadRanges) {
  std::array<uint8_t, 128> out{};
  const uint64_t one[] = {1};
  const uint64_t two[] = {1, 2};
  EXPECT_EQ(EncodeGpaDirectHeader(out, {}, 0, 0).error(), PacketError::kBadRangeCount);
  const GpaDirectRangeRef empty[] = {{0, 0, one}};
  EXPECT_EQ(EncodeGpaDirectHeader(out, empty, 0, 0).error(), PacketError::kEmptyRange);
  const GpaDirectRangeRef far[] = {{1, 4096, two}};
  EXPECT_EQ(EncodeGpaDirectHeader(out, far, 0, 0).error(), PacketError::kRangeOffsetTooLarge);
  const GpaDirectRangeRef mismatch[] = {{4000, 200, one}};  // needs 2 PFNs
  EXPECT_EQ(EncodeGpaDirectHeader(out, mismatch, 0, 0).error(), PacketError::kBadRangeCount);
  const GpaDirectRangeRef huge[] = {{0xFFFFFFFFu, 1, one}};
  EXPECT_EQ(EncodeGpaDirectHeader(out, huge, 0, 0).error(), PacketError::kRangeOverflow);
  EXPECT_EQ(GpaDirectHeaderSize(mismatch), 0u);
}

TEST(RingFormatTest, EncodePacketChecksTheHeaderAgainstThePayload) {
  std::array<uint8_t, 16> header{};
  ASSERT_TRUE(EncodeInbandHeader(header, 5, 0, false).has_value());
  const std::array<uint8_t, 5> five{};
  const std::array<uint8_t, 9> nine{};
  std::array<uint8_t, 64> out{};
  EXPECT_EQ(EncodePacket(out, header, five).value(), 24u);
  EXPECT_EQ(EncodePacket(out, header, nine).error(), PacketError::kBadLength);
  EXPECT_EQ(EncodePacket(out, std::span(header).first(8), five).error(), PacketError::kBadLength);
  EXPECT_EQ(EncodePacket(std::span(out).first(16), header, five).error(),
            PacketError::kBufferTooSmall);
  std::array<uint8_t, 24> long_header{};
  std::memcpy(long_header.data(), header.data(), 16);
  EXPECT_EQ(EncodePacket(out, long_header, five).error(), PacketError::kBadOffset);
}

// --- Hostile input ----------------------------------------------------------------------------

TEST(RingFormatParseTest, DescriptorRulesR3AndR6) {
  std::vector<uint8_t> buf(64, 0);
  EXPECT_EQ(ParseDescriptor(std::span(buf).first(15)).error(), PacketError::kTooShort);
  Put(buf, 0, Desc(PacketType::kDataInband, 2, 1));
  EXPECT_EQ(ParseDescriptor(buf).error(), PacketError::kBadLength);
  Put(buf, 0, Desc(PacketType::kDataInband, 1, 4));
  EXPECT_EQ(ParseDescriptor(buf).error(), PacketError::kBadOffset);
  Put(buf, 0, Desc(PacketType::kDataInband, 5, 4));
  EXPECT_EQ(ParseDescriptor(buf).error(), PacketError::kBadOffset);
  Put(buf, 0, Desc(PacketType::kDataInband, 2, 9));  // 72 > 64 bytes present
  EXPECT_EQ(ParseDescriptor(buf).error(), PacketError::kTooShort);
  Put(buf, 0, Desc(PacketType::kDataInband, 2, 8));
  EXPECT_TRUE(ParseDescriptor(buf).has_value());
}

TEST(RingFormatParseTest, TransferPageRulesR9AndRangeBound) {
  std::vector<uint8_t> buf(64, 0);
  TransferPageHeader h{};
  h.desc = Desc(PacketType::kDataUsingXferPages, 2, 8);
  Put(buf, 0, h);
  EXPECT_EQ(ParseTransferPagePacket(buf).error(), PacketError::kBadOffset);  // R9
  h.desc = Desc(PacketType::kDataInband, 3, 8);
  Put(buf, 0, h);
  EXPECT_EQ(ParseTransferPagePacket(buf).error(), PacketError::kWrongType);
  h.desc = Desc(PacketType::kDataUsingXferPages, 5, 8);  // room for 2 ranges before payload
  for (uint32_t cnt : {3u, 100u, 0xFFFFFFFFu}) {
    h.range_cnt = cnt;
    Put(buf, 0, h);
    EXPECT_EQ(ParseTransferPagePacket(buf).error(), PacketError::kRangePastHeader) << cnt;
  }
  h.range_cnt = 2;
  h.sender_owns_set = 0xEE;  // OpenVMM: may be garbage - ignored
  h.reserved = 0xEE;
  Put(buf, 0, h);
  auto p = ParseTransferPagePacket(buf);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->payload.size(), 24u);
  h.range_cnt = 0;  // no ranges: the device protocol decides
  Put(buf, 0, h);
  EXPECT_TRUE(ParseTransferPagePacket(buf).has_value());
}

TEST(RingFormatParseTest, GpaDirectRulesR9R10R11) {
  std::vector<uint8_t> buf(96, 0);
  GpaDirectHeader h{};
  h.desc = Desc(PacketType::kDataUsingGpaDirect, 2, 12);
  h.range_cnt = 1;
  Put(buf, 0, h);
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kBadOffset);  // R9

  h.desc = Desc(PacketType::kDataUsingGpaDirect, 7, 12);  // 32 bytes of ranges
  h.range_cnt = 0;
  Put(buf, 0, h);
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kBadRangeCount);  // R10

  h.range_cnt = 1;
  h.reserved = 0xDEADBEEF;  // may be garbage
  Put(buf, 0, h);
  Put(buf, 24, GpaDirectRangeHeader{100, 0});
  Put(buf, 32, uint64_t{42});
  auto ok = ParseGpaDirectPacket(buf);
  ASSERT_TRUE(ok.has_value()) << PacketErrorName(ok.error());
  EXPECT_EQ(ok->range_bytes.size(), 16u);  // trailing header bytes are ignored
  EXPECT_EQ(ok->payload.size(), 40u);

  // R11: a range whose PFNs run past offset8 * 8 (4 pages = 32 bytes; 24 are left).
  Put(buf, 24, GpaDirectRangeHeader{4 * 4096, 0});
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kRangePastHeader);
  // The second of two ranges does not fit.
  h.range_cnt = 2;
  Put(buf, 0, h);
  Put(buf, 24, GpaDirectRangeHeader{100, 0});
  Put(buf, 40, GpaDirectRangeHeader{5000, 0});  // 2 PFNs = 16 bytes; 8 are left
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kRangePastHeader);
  // A count that cannot fit is rejected without walking it.
  h.range_cnt = 0xFFFFFFFF;
  Put(buf, 0, h);
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kRangePastHeader);

  h.range_cnt = 1;
  Put(buf, 0, h);
  Put(buf, 24, GpaDirectRangeHeader{0, 0});
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kEmptyRange);
  Put(buf, 24, GpaDirectRangeHeader{1, 0x1000});
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kRangeOffsetTooLarge);
  Put(buf, 24, GpaDirectRangeHeader{0xFFFFF000u, 0xFFF});
  EXPECT_EQ(ParseGpaDirectPacket(buf).error(), PacketError::kRangeOverflow);
}

}  // namespace
}  // namespace uvmbus::wire
