// Hostile peers (spec 9.4 R1-R9): every corrupt index or descriptor is rejected with its exact
// RingError, counted, and never consumed; random garbage never causes an out-of-bounds access
// (run under ASan/UBSan).
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring_test_util.h"
#include "wire/ring_format.h"

namespace uvmbus::ring {
namespace {

using testing::DescriptorBytes;
using testing::TestRingMemory;

constexpr uint16_t kInband = 6;
constexpr uint16_t kXfer = 7;
constexpr uint16_t kGpaDirect = 9;
constexpr uint16_t kComp = 11;

struct DescriptorCase {
  const char* name;
  uint16_t type;
  uint16_t offset8;
  uint16_t len8;
  uint16_t flags;
  uint32_t write_index;  // how much the "writer" claims to have written
  uint32_t max_packet_size;
  bool ok;
  RingError want;
};

// A hostile writer puts one descriptor at offset 0 (followed by zeros) and publishes
// `write_index`; the reader must reject it exactly.
class HostileDescriptorTest : public ::testing::TestWithParam<DescriptorCase> {};

TEST_P(HostileDescriptorTest, IsRejectedWithTheExactErrorAndNotConsumed) {
  const DescriptorCase& c = GetParam();
  TestRingMemory mem(1);
  std::vector<uint8_t> zeros(mem.data_size(), 0);
  mem.Poke(0, zeros);
  mem.Poke(0, DescriptorBytes(c.type, c.offset8, c.len8, c.flags, 0x77));
  mem.SetWriteIndex(c.write_index);
  auto in = IncomingRing::Create(mem.view(), {.max_packet_size = c.max_packet_size}).value();
  ReadCursor rc = in.BeginRead();
  ReadResult r = in.Read(rc);
  if (c.ok) {
    ASSERT_TRUE(r.ok()) << RingErrorName(r.error);
    EXPECT_EQ(r.packet.desc.len8, c.len8);
    EXPECT_EQ(in.stats().errors.Total(), 0u);
    return;
  }
  ASSERT_EQ(r.status, ReadStatus::kCorrupt);
  EXPECT_EQ(r.error, c.want) << "got " << RingErrorName(r.error);
  EXPECT_EQ(in.stats().errors.Get(c.want), 1u);
  EXPECT_EQ(in.stats().errors.Total(), 1u);
  EXPECT_EQ(rc.next_index(), 0u);  // not consumed
  EXPECT_EQ(rc.packets(), 0u);
  // Reading again meets the same packet and the same verdict.
  EXPECT_EQ(in.Read(rc).error, c.want);
  EXPECT_EQ(in.stats().errors.Get(c.want), 2u);
  EXPECT_FALSE(in.CommitRead(rc).committed);
  EXPECT_EQ(mem.read_index(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    R3ToR9, HostileDescriptorTest,
    ::testing::Values(
        // Controls: well-formed packets are accepted.
        DescriptorCase{"inband_ok", kInband, 2, 3, 1, 32, 4096, true, {}},
        DescriptorCase{"inband_empty_payload_ok", kInband, 2, 2, 0, 24, 4096, true, {}},
        DescriptorCase{"offset_equal_len_ok", kComp, 5, 5, 0, 48, 4096, true, {}},
        DescriptorCase{"xfer_ok", kXfer, 3, 4, 1, 40, 4096, true, {}},
        DescriptorCase{"gpa_direct_ok", kGpaDirect, 5, 6, 1, 56, 4096, true, {}},
        DescriptorCase{"exactly_max_packet_ok", kInband, 2, 32, 0, 264, 256, true, {}},
        // R3: shorter than a descriptor.
        DescriptorCase{"len8_zero", kInband, 2, 0, 0, 64, 4096, false, RingError::kBadLength},
        DescriptorCase{"len8_one", kInband, 0, 1, 0, 64, 4096, false, RingError::kBadLength},
        // R4: longer than what was published (packet + trailer must fit).
        DescriptorCase{"trailer_missing", kInband, 2, 8, 0, 64, 4096, false,
                       RingError::kBeyondAvailable},
        DescriptorCase{"len8_beyond_available", kInband, 2, 100, 0, 64, 4096, false,
                       RingError::kBeyondAvailable},
        DescriptorCase{"len8_max", kInband, 2, 0xFFFF, 0, 4088, 4096, false,
                       RingError::kBeyondAvailable},
        DescriptorCase{"only_a_descriptor_published", kInband, 2, 2, 0, 16, 4096, false,
                       RingError::kBeyondAvailable},
        // R5: larger than the receiver's buffer.
        DescriptorCase{"larger_than_max_packet", kInband, 2, 33, 0, 272, 256, false,
                       RingError::kPacketTooLarge},
        // R6: payload offset outside [2, len8].
        DescriptorCase{"offset8_zero", kInband, 0, 4, 0, 40, 4096, false, RingError::kBadOffset},
        DescriptorCase{"offset8_one", kInband, 1, 4, 0, 40, 4096, false, RingError::kBadOffset},
        DescriptorCase{"offset8_past_len8", kInband, 5, 4, 0, 40, 4096, false,
                       RingError::kBadOffset},
        // R7: undefined flag bits.
        DescriptorCase{"flags_bit1", kInband, 2, 3, 2, 32, 4096, false, RingError::kBadFlags},
        DescriptorCase{"flags_bit15", kInband, 2, 3, 0x8001, 32, 4096, false,
                       RingError::kBadFlags},
        // R8: types other than 6, 7, 9, 11.
        DescriptorCase{"type_invalid", 0, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        DescriptorCase{"type_synch", 1, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        DescriptorCase{"type_teardown_gpadl", 5, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        DescriptorCase{"type_using_gpadl", 8, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        DescriptorCase{"type_cancel", 10, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        DescriptorCase{"type_additional_data", 13, 2, 3, 0, 32, 4096, false,
                       RingError::kBadType},
        DescriptorCase{"type_ffff", 0xFFFF, 2, 3, 0, 32, 4096, false, RingError::kBadType},
        // R9: transfer-page / GPA-direct packets need their 24-byte header.
        DescriptorCase{"xfer_offset8_two", kXfer, 2, 4, 1, 40, 4096, false,
                       RingError::kBadOffset},
        DescriptorCase{"gpa_direct_offset8_two", kGpaDirect, 2, 4, 1, 40, 4096, false,
                       RingError::kBadOffset}),
    [](const ::testing::TestParamInfo<DescriptorCase>& p) { return p.param.name; });

TEST(HostileIndexTest, ReaderRejectsWriteIndexOutsideOrUnaligned) {
  for (uint32_t w : {4096u, 4104u, 0xFFFFFFF8u, 12u, 4u, 4095u}) {
    SCOPED_TRACE(w);
    TestRingMemory mem(1);
    auto in = IncomingRing::Create(mem.view()).value();
    mem.SetWriteIndex(w);
    ReadCursor rc = in.BeginRead();
    ReadResult r = in.Read(rc);
    EXPECT_EQ(r.status, ReadStatus::kCorrupt);
    EXPECT_EQ(r.error, RingError::kBadWriteIndex);
    EXPECT_EQ(in.stats().errors.Get(RingError::kBadWriteIndex), 1u);
    EXPECT_EQ(in.BytesAvailable().error(), RingError::kBadWriteIndex);
  }
}

TEST(HostileIndexTest, LessThanOneDescriptorAvailableIsCorrupt) {
  TestRingMemory mem(1);
  auto in = IncomingRing::Create(mem.view()).value();
  mem.SetWriteIndex(8);  // R2: 0 < 8 < 16
  ReadCursor rc = in.BeginRead();
  EXPECT_EQ(in.Read(rc).error, RingError::kShortAvailable);
  EXPECT_EQ(in.stats().errors.Get(RingError::kShortAvailable), 1u);
}

TEST(HostileIndexTest, ShortAvailableIsDetectedAcrossTheWrapPoint) {
  TestRingMemory mem(1);
  mem.SetReadIndex(mem.data_size() - 8);
  mem.SetWriteIndex(0);  // 8 bytes available, wrapped
  auto in = IncomingRing::Create(mem.view()).value();
  ReadCursor rc = in.BeginRead();
  EXPECT_EQ(in.Read(rc).error, RingError::kShortAvailable);
}

TEST(HostileIndexTest, ReaderCreationRejectsAnInvalidReadIndex) {
  for (uint32_t r : {4096u, 20u}) {
    TestRingMemory mem(1);
    mem.SetReadIndex(r);
    EXPECT_EQ(IncomingRing::Create(mem.view()).error(), RingError::kBadReadIndex);
  }
}

TEST(HostileIndexTest, WriterCreationRejectsInvalidIndices) {
  {
    TestRingMemory mem(1);
    mem.SetWriteIndex(4100);
    EXPECT_EQ(OutgoingRing::Create(mem.view()).error(), RingError::kBadWriteIndex);
  }
  {
    TestRingMemory mem(1);
    mem.SetReadIndex(3);
    EXPECT_EQ(OutgoingRing::Create(mem.view()).error(), RingError::kBadReadIndex);
  }
  EXPECT_EQ(OutgoingRing::Create(RingView()).error(), RingError::kBadRingMemory);
  EXPECT_EQ(IncomingRing::Create(RingView()).error(), RingError::kBadRingMemory);
}

TEST(HostileIndexTest, WriterRejectsReadIndexOutsideOrUnalignedWhenItNeedsIt) {
  for (uint32_t r : {4096u, 8192u, 0xFFFFFFF8u, 36u, 1u}) {
    SCOPED_TRACE(r);
    TestRingMemory mem(1);
    auto out = OutgoingRing::Create(mem.view()).value();
    std::vector<uint8_t> payload(3000);
    WriteCursor wc = out.BeginWrite();
    ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
    out.CommitWrite(wc);
    mem.SetReadIndex(r);
    WriteResult res = out.WriteInband(wc, payload, 0, false);  // does not fit: must re-read
    EXPECT_EQ(res.status, WriteStatus::kCorrupt);
    EXPECT_EQ(res.error, RingError::kBadReadIndex);
    EXPECT_EQ(out.stats().errors.Get(RingError::kBadReadIndex), 1u);
    EXPECT_EQ(out.SetPendingSendSize(3032).error(), RingError::kBadReadIndex);
    EXPECT_EQ(out.BytesFree().error(), RingError::kBadReadIndex);
  }
}

TEST(HostileIndexTest, GarbageReadIndexSeenAtCommitIsNeitherCachedNorSignalled) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  mem.SetReadIndex(4097);
  WriteCursor wc = out.BeginWrite();
  std::vector<uint8_t> payload(8);
  ASSERT_TRUE(out.WriteInband(wc, payload, 0, false).ok());
  WriteCommit c = out.CommitWrite(wc);
  EXPECT_TRUE(c.read_index_sampled);
  EXPECT_EQ(c.read_index, 4097u);
  EXPECT_FALSE(c.needs_signal);
}

// Random garbage in the data area and random (aligned, in-range) indices: whatever the reader
// returns must satisfy the validation rules, and nothing may touch memory outside the ring.
TEST(HostileFuzzTest, RandomRingContentsNeverEscapeValidation) {
  std::mt19937_64 rng(99);
  TestRingMemory mem(2);
  const uint32_t d = mem.data_size();
  std::vector<uint8_t> garbage(d);
  uint64_t packets = 0, corrupt = 0;
  for (int iter = 0; iter < 400; ++iter) {
    for (auto& b : garbage) b = static_cast<uint8_t>(rng());
    // Often plant plausible descriptors so validation gets past the first checks.
    for (int k = 0; k < 20; ++k) {
      const uint32_t at = static_cast<uint32_t>(rng() % (d / 8)) * 8;
      const uint16_t types[] = {6, 7, 9, 11, 3};
      auto desc = DescriptorBytes(types[rng() % 5], static_cast<uint16_t>(rng() % 6),
                                  static_cast<uint16_t>(rng() % 40),
                                  static_cast<uint16_t>(rng() % 4 == 0 ? 2 : 1),
                                  rng());
      for (size_t i = 0; i < desc.size(); ++i) garbage[(at + i) % d] = desc[i];
    }
    mem.Poke(0, garbage);
    mem.SetReadIndex(static_cast<uint32_t>(rng() % (d / 8)) * 8);
    mem.SetWriteIndex(static_cast<uint32_t>(rng() % (d / 8)) * 8);
    mem.SetPendingSendSz(static_cast<uint32_t>(rng()));
    auto in = IncomingRing::Create(mem.view(), {.max_packet_size = 200}).value();
    ReadCursor rc = in.BeginRead();
    for (int n = 0; n < 1000; ++n) {
      ReadResult r = in.Read(rc);
      if (r.status == ReadStatus::kEmpty) break;
      if (r.status == ReadStatus::kCorrupt) {
        ++corrupt;
        break;
      }
      ++packets;
      const auto& desc = r.packet.desc;
      ASSERT_GE(desc.len8, 2);
      ASSERT_LE(desc.len8 * 8u, 200u);
      ASSERT_GE(desc.offset8, 2);
      ASSERT_LE(desc.offset8, desc.len8);
      ASSERT_TRUE(wire::IsAcceptedPacketType(desc.type));
      ASSERT_EQ(desc.flags & ~1u, 0u);
      ASSERT_EQ(r.packet.bytes.size(), desc.len8 * 8u);
    }
    in.CommitRead(rc);  // pending_send_sz is garbage too: must not misbehave
  }
  EXPECT_GT(corrupt, 0u);
  EXPECT_GT(packets, 0u);
}

}  // namespace
}  // namespace uvmbus::ring
