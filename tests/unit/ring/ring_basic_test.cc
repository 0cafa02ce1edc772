// Basic behaviour of RingView, OutgoingRing and IncomingRing: creation, framing (spec 3.2),
// space accounting (3.3), copy-out reads, batching and statistics.
#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"
#include "ring_test_util.h"
#include "wire/ring_format.h"

namespace uvmbus::ring {
namespace {

using testing::InbandTotal;
using testing::PayloadMatches;
using testing::PayloadPattern;
using testing::TestRingMemory;

std::vector<uint8_t> Bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

// Writes one in-band packet and commits it; returns the commit.
WriteCommit WriteOne(OutgoingRing& out, std::span<const uint8_t> payload, uint64_t trans_id = 0) {
  WriteCursor c = out.BeginWrite();
  WriteResult r = out.WriteInband(c, payload, trans_id, false);
  EXPECT_TRUE(r.ok()) << static_cast<int>(r.status);
  return out.CommitWrite(c);
}

TEST(RingViewTest, CreateAcceptsHeaderPlusWholeDataPages) {
  TestRingMemory mem(3);
  auto v = RingView::Create(mem.span());
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->data_size(), 3u * 4096);
  EXPECT_EQ(v->data(), mem.span().data() + 4096);
}

TEST(RingViewTest, CreateRejectsUnusableSpans) {
  TestRingMemory mem(2);
  auto s = mem.span();
  EXPECT_EQ(RingView::Create(s.first(4096)).error(), RingError::kBadRingMemory);  // no data
  EXPECT_EQ(RingView::Create(s.first(4096 + 100)).error(), RingError::kBadRingMemory);
  EXPECT_EQ(RingView::Create(s.first(8192 + 8)).error(), RingError::kBadRingMemory);
  EXPECT_EQ(RingView::Create(s.subspan(4, 8192)).error(), RingError::kBadRingMemory);  // align
  EXPECT_EQ(RingView::Create({}).error(), RingError::kBadRingMemory);
}

TEST(RingViewTest, InitRingControlFormatsTheHeaderLikeLinux) {
  TestRingMemory mem(1);  // constructor filled the page with 0xA5, then formatted it
  const RingSnapshot s = mem.view().Snapshot();
  EXPECT_EQ(s.write_index, 0u);
  EXPECT_EQ(s.read_index, 0u);
  EXPECT_EQ(s.interrupt_mask, 0u);
  EXPECT_EQ(s.pending_send_sz, 0u);
  EXPECT_EQ(s.feature_bits, wire::kRingFeaturePendingSendSz);
  const uint8_t* page = mem.span().data();
  for (size_t i = 16; i < 4096; ++i) {
    if (i >= 64 && i < 68) continue;  // feature_bits
    ASSERT_EQ(page[i], 0) << "byte " << i;
  }
  auto v = InitRingControl(mem.span(), {.feature_pending_send_sz = false, .interrupt_mask = 1});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->Snapshot().feature_bits, 0u);
  EXPECT_EQ(v->Snapshot().interrupt_mask, 1u);
}

TEST(RingViewTest, SpaceFormulasFollowSpec33) {
  constexpr uint32_t d = 4096;
  EXPECT_EQ(RingBytesToRead(0, 0, d), 0u);
  EXPECT_EQ(RingBytesToWrite(0, 0, d), d);  // empty: everything free
  EXPECT_EQ(RingBytesToRead(64, 16, d), 48u);
  EXPECT_EQ(RingBytesToWrite(64, 16, d), d - 48);
  EXPECT_EQ(RingBytesToRead(16, 4000, d), d - 4000 + 16);  // wrapped
  EXPECT_EQ(RingBytesToWrite(16, 4000, d), 4000u - 16);
}

TEST(RingViewTest, SnapshotReportsAvailableBytes) {
  TestRingMemory mem(1);
  mem.SetWriteIndex(128);
  mem.SetReadIndex(64);
  const RingSnapshot s = mem.view().Snapshot();
  EXPECT_EQ(s.read_bytes_avail(), 64u);
  EXPECT_EQ(s.write_bytes_avail(), 4096u - 64);
  mem.SetWriteIndex(4096);  // invalid: no numbers from garbage
  EXPECT_EQ(mem.view().Snapshot().read_bytes_avail(), 0u);
}

TEST(RingTest, CreateAttachesAtTheCurrentIndicesAndAdvertisesFeature) {
  TestRingMemory mem(2, {.feature_pending_send_sz = false});
  mem.SetWriteIndex(256);
  mem.SetReadIndex(256);
  mem.SetPendingSendSz(1000);
  auto out = OutgoingRing::Create(mem.view());
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->write_index(), 256u);
  EXPECT_EQ(mem.pending_send_sz(), 0u);
  EXPECT_EQ(mem.view().Snapshot().feature_bits, wire::kRingFeaturePendingSendSz);
  auto in = IncomingRing::Create(mem.view());
  ASSERT_TRUE(in.has_value());
  EXPECT_EQ(in->read_index(), 256u);
  EXPECT_TRUE(in->PeerSupportsPendingSendSize());

  TestRingMemory quiet(1, {.feature_pending_send_sz = false});
  auto out2 = OutgoingRing::Create(quiet.view(), {.advertise_pending_send_sz = false});
  ASSERT_TRUE(out2.has_value());
  EXPECT_EQ(quiet.view().Snapshot().feature_bits, 0u);
}

TEST(RingTest, InbandPacketRoundTripsWithDescriptorFields) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({1, 2, 3, 4, 5});
  WriteCursor wc = out.BeginWrite();
  WriteResult wr = out.WriteInband(wc, payload, 0x1122334455667788ull, true);
  ASSERT_TRUE(wr.ok());
  EXPECT_EQ(wr.total, 32u);  // 16 + 5 -> 24, + trailer
  out.CommitWrite(wc);

  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr.packet.type(), wire::PacketType::kDataInband);
  EXPECT_EQ(rr.packet.desc.offset8, 2);
  EXPECT_EQ(rr.packet.desc.len8, 3);
  EXPECT_TRUE(rr.packet.completion_requested());
  EXPECT_EQ(rr.packet.desc.trans_id, 0x1122334455667788ull);
  EXPECT_EQ(rr.packet.bytes.size(), 24u);
  ASSERT_EQ(rr.packet.payload.size(), 8u);  // padded
  EXPECT_EQ(std::vector<uint8_t>(rr.packet.payload.begin(), rr.packet.payload.begin() + 5),
            payload);
  EXPECT_EQ(rr.packet.payload[5], 0);
  EXPECT_EQ(in.Read(rc).status, ReadStatus::kEmpty);
  in.CommitRead(rc);
  EXPECT_EQ(mem.read_index(), 32u);
}

TEST(RingTest, FramingHasZeroPaddingAndTrailerWithStartIndex) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  const auto five = Bytes({9, 9, 9, 9, 9});
  WriteOne(out, five);  // at 0: 24-byte packet + trailer
  WriteOne(out, five);  // at 32
  EXPECT_EQ(mem.write_index(), 64u);
  // First packet: descriptor, payload, 3 zero bytes of padding, trailer (start 0).
  auto first = mem.Peek(0, 24);
  wire::PacketDescriptor d;
  std::memcpy(&d, first.data(), sizeof(d));
  EXPECT_EQ(d.type, 6);
  EXPECT_EQ(d.offset8, 2);
  EXPECT_EQ(d.len8, 3);
  EXPECT_EQ(d.flags, 0);
  EXPECT_EQ(first[20], 9);  // last payload byte
  EXPECT_EQ(first[21], 0);
  EXPECT_EQ(first[22], 0);
  EXPECT_EQ(first[23], 0);
  EXPECT_EQ(mem.PeekU64(24), wire::MakePacketTrailer(0));
  // Second packet's trailer carries its start index, 32, in the high half.
  EXPECT_EQ(mem.PeekU64(56), uint64_t{32} << 32);
}

TEST(RingTest, PacketAndTrailerWrapAroundTheEndOfTheDataArea) {
  TestRingMemory mem(1);
  const uint32_t d = mem.data_size();
  // Both sides attach 24 bytes before the end: the next packet must wrap.
  mem.SetWriteIndex(d - 24);
  mem.SetReadIndex(d - 24);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  PayloadPattern pattern(64);
  auto payload = pattern.Slice(1, 40);  // packet 56 bytes + trailer = 64
  WriteOne(out, payload, 1);
  EXPECT_EQ(mem.write_index(), 40u);  // (d - 24 + 64) mod d
  EXPECT_EQ(mem.PeekU64(32), wire::MakePacketTrailer(d - 24));

  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_TRUE(PayloadMatches(pattern, 1, 40, rr.packet.payload));
  EXPECT_EQ(rc.next_index(), 40u);
}

TEST(RingTest, TrailerAloneWrapsToOffsetZero) {
  TestRingMemory mem(1);
  const uint32_t d = mem.data_size();
  mem.SetWriteIndex(d - 24);
  mem.SetReadIndex(d - 24);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({7, 7, 7, 7, 7, 7, 7, 7});  // 24-byte packet ends exactly at d
  WriteOne(out, payload);
  EXPECT_EQ(mem.PeekU64(0), wire::MakePacketTrailer(d - 24));
  EXPECT_EQ(mem.write_index(), 8u);
  ReadCursor rc = in.BeginRead();
  ASSERT_TRUE(in.Read(rc).ok());
  EXPECT_EQ(rc.next_index(), 8u);
}

TEST(RingTest, GatherWriteConcatenatesParts) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto a = Bytes({1, 2, 3});
  const auto b = Bytes({});
  const auto c = Bytes({4, 5, 6, 7, 8, 9, 10});
  std::array<uint8_t, 16> header{};
  ASSERT_EQ(wire::EncodeInbandHeader(header, 10, 5, false).value(), 16u);
  const std::span<const uint8_t> parts[] = {a, b, c};
  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.WriteGather(wc, header, parts).ok());
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(std::vector<uint8_t>(rr.packet.payload.begin(), rr.packet.payload.begin() + 10),
            Bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(RingTest, CompletionPacketHasTypeCompAndNoFlags) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({108, 0, 0, 0, 1, 0, 0, 0});  // an NVSP receive completion
  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.WriteCompletion(wc, payload, 42).ok());
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr.packet.type(), wire::PacketType::kComp);
  EXPECT_EQ(rr.packet.desc.flags, 0);
  EXPECT_EQ(rr.packet.desc.len8, 3);  // spec 4.6: receive completion is 24 bytes
  EXPECT_EQ(rr.packet.desc.trans_id, 42u);
}

TEST(RingTest, TransferPageAndGpaDirectPacketsCarryTheirHeaders) {
  TestRingMemory mem(2);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view(), {.max_packet_size = 4624}).value();
  const auto nvsp = Bytes({1, 0, 0, 0, 2, 0, 0, 0});
  const wire::TransferPageRange ranges[] = {{1514, 0}, {60, 1728}};
  std::array<uint8_t, 64> header{};
  auto hl = wire::EncodeTransferPageHeader(header, 0xCAFE, ranges,
                                           static_cast<uint32_t>(nvsp.size()), 77);
  ASSERT_TRUE(hl.has_value());
  const uint64_t pfns[] = {0x1234, 0x1235};
  const wire::GpaDirectRangeRef gpa[] = {{100, 4000, pfns}};
  std::array<uint8_t, 64> gheader{};
  auto gl = wire::EncodeGpaDirectHeader(gheader, gpa, static_cast<uint32_t>(nvsp.size()), 78);
  ASSERT_TRUE(gl.has_value());

  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.Write(wc, std::span(header).first(*hl), nvsp).ok());
  ASSERT_TRUE(out.Write(wc, std::span(gheader).first(*gl), nvsp).ok());
  out.CommitWrite(wc);

  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  auto tp = wire::ParseTransferPagePacket(rr.packet.bytes);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->xfer_pageset_id, 0xCAFE);
  ASSERT_EQ(tp->range_cnt, 2u);
  EXPECT_EQ(tp->range(1).byte_offset, 1728u);
  EXPECT_EQ(tp->payload.size(), 8u);

  rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  auto gp = wire::ParseGpaDirectPacket(rr.packet.bytes);
  ASSERT_TRUE(gp.has_value());
  wire::GpaDirectRangeReader reader(*gp);
  wire::GpaDirectRange range;
  ASSERT_TRUE(reader.Next(&range));
  EXPECT_EQ(range.page_count(), 2u);
  EXPECT_EQ(range.pfn(1), 0x1235u);
  EXPECT_FALSE(reader.Next(&range));
}

TEST(RingTest, WriterRejectsInconsistentHeadersWithoutWriting) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  const auto payload = Bytes({1, 2, 3});
  WriteCursor wc = out.BeginWrite();
  std::array<uint8_t, 24> header{};
  ASSERT_TRUE(wire::EncodeInbandHeader(header, 3, 0, false).has_value());
  // Shorter than a descriptor; not a multiple of 8.
  EXPECT_EQ(out.Write(wc, std::span(header).first(8), payload).error, RingError::kBadHeader);
  EXPECT_EQ(out.Write(wc, std::span(header).first(20), payload).status, WriteStatus::kInvalid);
  // offset8 says 16 bytes of header but 24 are given.
  EXPECT_EQ(out.Write(wc, header, payload).error, RingError::kBadHeader);
  // len8 does not match the payload.
  const auto longer = Bytes({1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(out.Write(wc, std::span(header).first(16), longer).error, RingError::kBadHeader);
  EXPECT_EQ(wc.packets(), 0u);
  EXPECT_FALSE(out.CommitWrite(wc).committed);
  EXPECT_EQ(mem.write_index(), 0u);
  EXPECT_EQ(out.stats().errors.Get(RingError::kBadHeader), 4u);
}

TEST(RingTest, WriterRefusesPacketsLargerThanDataSizeMinus16) {
  TestRingMemory mem(1);
  const uint32_t d = mem.data_size();
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view(), {.max_packet_size = d}).value();
  EXPECT_EQ(out.max_total(), d - 16);
  EXPECT_EQ(out.max_inband_payload(), d - 40);
  std::vector<uint8_t> big(d - 39);
  WriteCursor wc = out.BeginWrite();
  WriteResult r = out.WriteInband(wc, big, 0, false);  // total = d - 8: R12
  EXPECT_EQ(r.status, WriteStatus::kInvalid);
  EXPECT_EQ(r.error, RingError::kPacketTooLarge);
  EXPECT_EQ(out.stats().errors.Get(RingError::kPacketTooLarge), 1u);
  big.resize(d - 40);  // total = d - 16: the largest, fits into the empty ring
  r = out.WriteInband(wc, big, 0, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.total, d - 16);
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr.packet.bytes.size(), d - 24);
}

TEST(RingTest, WriteReportsBytesNeededWhenFullAndNeverFillsTheRingCompletely) {
  TestRingMemory mem(1);  // d = 4096
  auto out = OutgoingRing::Create(mem.view()).value();
  std::vector<uint8_t> payload(1000);  // 16 + 1000 -> 1016, total 1024
  WriteCursor wc = out.BeginWrite();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
  // Free is now exactly 1024 = total: writing would make w == r ("empty"), so it is full.
  WriteResult r = out.WriteInband(wc, payload, 0, false);
  EXPECT_EQ(r.status, WriteStatus::kFull);
  EXPECT_EQ(r.total, 1024u);
  // One quadword less fits: free (1024) > total (1016).
  std::vector<uint8_t> smaller(992);
  ASSERT_TRUE(out.WriteInband(wc, smaller, 0, false).ok());
  out.CommitWrite(wc);
  EXPECT_EQ(mem.write_index(), 4088u);
  EXPECT_EQ(out.BytesFree().value(), 8u);
}

TEST(RingTest, FullCountersFollowLinuxOutFullFirstAndTotal) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  std::vector<uint8_t> payload(2100);  // total 2128: one fits, the second does not
  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
  EXPECT_EQ(out.WriteInband(wc, payload, 0, false).status, WriteStatus::kFull);
  EXPECT_EQ(out.WriteInband(wc, payload, 0, false).status, WriteStatus::kFull);
  EXPECT_EQ(out.stats().out_full_total.Get(), 2u);
  EXPECT_EQ(out.stats().out_full_first.Get(), 1u);
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ASSERT_TRUE(in.Read(rc).ok());
  in.CommitRead(rc);
  ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());  // success resets "first"
  EXPECT_EQ(out.WriteInband(wc, payload, 0, false).status, WriteStatus::kFull);
  EXPECT_EQ(out.stats().out_full_total.Get(), 3u);
  EXPECT_EQ(out.stats().out_full_first.Get(), 2u);
}

TEST(RingTest, NothingIsVisibleBeforeCommitAndAbandonedCursorsDiscardPackets) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({1, 2, 3});
  {
    WriteCursor wc = out.BeginWrite();
    ASSERT_TRUE(out.WriteInband(wc, payload, 1, false).ok());
    ReadCursor rc = in.BeginRead();
    EXPECT_EQ(in.Read(rc).status, ReadStatus::kEmpty);
  }  // abandoned
  WriteCursor wc = out.BeginWrite();
  EXPECT_EQ(wc.start_index(), 0u);
  ASSERT_TRUE(out.WriteInband(wc, payload, 2, false).ok());
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr.packet.desc.trans_id, 2u);
}

TEST(RingTest, ReaderBatchesSeveralPacketsAndReleasesSpaceOnlyAtCommit) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  PayloadPattern pattern(512);
  WriteCursor wc = out.BeginWrite();
  for (uint64_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(out.WriteInband(wc, pattern.Slice(i, 100 + i), i, false).ok());
  }
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  for (uint64_t i = 0; i < 5; ++i) {
    ReadResult rr = in.Read(rc);
    ASSERT_TRUE(rr.ok());
    EXPECT_EQ(rr.packet.desc.trans_id, i);
    EXPECT_TRUE(PayloadMatches(pattern, i, 100 + i, rr.packet.payload));
    EXPECT_EQ(mem.read_index(), 0u);  // not released yet
  }
  EXPECT_EQ(in.Read(rc).status, ReadStatus::kEmpty);
  ReadCommit commit = in.CommitRead(rc);
  EXPECT_TRUE(commit.committed);
  EXPECT_EQ(mem.read_index(), mem.write_index());
  EXPECT_EQ(in.stats().packets.Get(), 5u);
  EXPECT_EQ(out.stats().packets.Get(), 5u);
  EXPECT_EQ(in.stats().bytes.Get(), out.stats().bytes.Get());
  EXPECT_FALSE(in.CommitRead(rc).committed);  // nothing more to release
}

TEST(RingTest, ReadIntoCallerBufferKeepsEarlierPacketsIntact) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view(), {.max_packet_size = 0}).value();
  PayloadPattern pattern(64);
  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.WriteInband(wc, pattern.Slice(0, 20), 0, false).ok());
  ASSERT_TRUE(out.WriteInband(wc, pattern.Slice(1, 30), 1, false).ok());
  out.CommitWrite(wc);
  std::array<uint8_t, 64> a{}, b{};
  ReadCursor rc = in.BeginRead();
  ReadResult ra = in.Read(rc, a);
  ReadResult rb = in.Read(rc, b);
  ASSERT_TRUE(ra.ok());
  ASSERT_TRUE(rb.ok());
  EXPECT_TRUE(PayloadMatches(pattern, 0, 20, ra.packet.payload));
  EXPECT_TRUE(PayloadMatches(pattern, 1, 30, rb.packet.payload));
}

TEST(RingTest, ReadCopiesOutSoLaterPeerWritesDoNotChangeThePacket) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({1, 2, 3, 4, 5, 6, 7, 8});
  WriteOne(out, payload, 9);
  ReadCursor rc = in.BeginRead();
  ReadResult rr = in.Read(rc);
  ASSERT_TRUE(rr.ok());
  // The peer scribbles over the packet (R15): the copy is unaffected.
  std::vector<uint8_t> junk(32, 0xEE);
  mem.Poke(0, junk);
  EXPECT_EQ(rr.packet.desc.len8, 3);
  EXPECT_EQ(rr.packet.bytes[4], 3);  // len8 in the copy
  EXPECT_EQ(std::vector<uint8_t>(rr.packet.payload.begin(), rr.packet.payload.end()), payload);
}

TEST(RingTest, WriterReReadsReadIndexOnlyWhenTheCacheSaysFull) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  std::vector<uint8_t> payload(1000);  // total 1024
  // Corrupt read_index after attaching: writes that fit per the cached value (0) must not
  // look at it ...
  mem.SetReadIndex(12345);
  WriteCursor wc = out.BeginWrite();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
  // ... and the first one that does not fit re-reads and rejects it.
  WriteResult r = out.WriteInband(wc, payload, 0, false);
  EXPECT_EQ(r.status, WriteStatus::kCorrupt);
  EXPECT_EQ(r.error, RingError::kBadReadIndex);
}

TEST(RingTest, ReaderReReadsWriteIndexOnlyWhenTheCacheSaysDrained) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  const auto payload = Bytes({1, 2, 3});
  WriteCursor wc = out.BeginWrite();
  ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
  ASSERT_TRUE(out.WriteInband(wc, payload, 1, false).ok());
  out.CommitWrite(wc);
  ReadCursor rc = in.BeginRead();
  ASSERT_TRUE(in.Read(rc).ok());  // loads write_index = 64
  mem.SetWriteIndex(7);           // garbage, but the cache still covers packet 1
  ASSERT_TRUE(in.Read(rc).ok());
  ReadResult rr = in.Read(rc);
  EXPECT_EQ(rr.status, ReadStatus::kCorrupt);
  EXPECT_EQ(rr.error, RingError::kBadWriteIndex);
}

}  // namespace
}  // namespace uvmbus::ring
