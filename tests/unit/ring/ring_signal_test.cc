// Signal decisions: the writer's empty -> non-empty rule (spec 3.4), the reader's
// pending_send_sz transition rule (3.5, R13, R14), interrupt masking (3.6), and a
// single-threaded random interleaving of both sides checked against an exact model.
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring_test_util.h"

namespace uvmbus::ring {
namespace {

using testing::InbandTotal;
using testing::ModelFree;
using testing::ModelReaderSignal;
using testing::ModelWriterSignal;
using testing::PayloadMatches;
using testing::PayloadPattern;
using testing::TestRingMemory;

WriteCommit WriteOne(OutgoingRing& out, uint32_t payload_len) {
  std::vector<uint8_t> payload(payload_len, 0x5A);
  WriteCursor c = out.BeginWrite();
  EXPECT_TRUE(out.WriteInband(c, payload, 0, false).ok());
  return out.CommitWrite(c);
}

// Reads `count` packets and commits once.
ReadCommit ReadAndCommit(IncomingRing& in, int count) {
  ReadCursor c = in.BeginRead();
  for (int i = 0; i < count; ++i) EXPECT_TRUE(in.Read(c).ok()) << "packet " << i;
  return in.CommitRead(c);
}

// --- Writer: spec 3.4 ------------------------------------------------------------------------

TEST(WriterSignalTest, SignalsOnlyWhenTheRingWasEmptyBeforeTheBatch) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  WriteCommit first = WriteOne(out, 8);
  EXPECT_TRUE(first.needs_signal);
  EXPECT_TRUE(first.committed);
  EXPECT_EQ(first.old_write_index, 0u);
  EXPECT_EQ(first.interrupt_mask, 0u);
  EXPECT_TRUE(first.read_index_sampled);
  EXPECT_EQ(first.read_index, 0u);
  EXPECT_FALSE(WriteOne(out, 8).needs_signal);  // not empty: reader is still at 0
  ReadAndCommit(in, 1);                          // reader at 32, writer at 64: still not empty
  EXPECT_FALSE(WriteOne(out, 8).needs_signal);
  ReadAndCommit(in, 2);                          // drained
  EXPECT_TRUE(WriteOne(out, 8).needs_signal);
  EXPECT_EQ(out.stats().intr_out_empty.Get(), 2u);
}

TEST(WriterSignalTest, BatchDecidesOnceFromTheIndexBeforeItsFirstPacket) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  std::vector<uint8_t> payload(40);
  WriteCursor c = out.BeginWrite();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(out.WriteInband(c, payload, 0, false).ok());
  WriteCommit commit = out.CommitWrite(c);
  EXPECT_TRUE(commit.needs_signal);
  EXPECT_EQ(commit.old_write_index, 0u);
  EXPECT_EQ(commit.new_write_index, 5u * 64);
  EXPECT_EQ(out.stats().intr_out_empty.Get(), 1u);
  // The cursor continues with a new batch that starts at the committed index.
  ASSERT_TRUE(out.WriteInband(c, payload, 0, false).ok());
  WriteCommit second = out.CommitWrite(c);
  EXPECT_EQ(second.old_write_index, 5u * 64);
  EXPECT_FALSE(second.needs_signal);
}

TEST(WriterSignalTest, EmptyCommitNeitherStoresNorSignals) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  WriteCursor c = out.BeginWrite();
  WriteCommit commit = out.CommitWrite(c);
  EXPECT_FALSE(commit.committed);
  EXPECT_FALSE(commit.needs_signal);
  EXPECT_FALSE(commit.read_index_sampled);
}

// --- Interrupt mask: spec 3.6 ----------------------------------------------------------------

TEST(InterruptMaskTest, MaskedReaderIsNeverSignalled) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  in.BeginReadMask();
  EXPECT_EQ(mem.interrupt_mask(), 1u);
  for (int round = 0; round < 3; ++round) {
    WriteCommit commit = WriteOne(out, 100);  // ring empty each time: would signal unmasked
    EXPECT_FALSE(commit.needs_signal);
    EXPECT_EQ(commit.interrupt_mask, 1u);
    EXPECT_FALSE(commit.read_index_sampled);
    ReadAndCommit(in, 1);
  }
  EXPECT_EQ(out.stats().intr_out_empty.Get(), 0u);
}

TEST(InterruptMaskTest, EndReadMaskReportsDataThatRacedIn) {
  TestRingMemory mem(1);
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view()).value();
  in.BeginReadMask();
  EXPECT_FALSE(WriteOne(out, 8).needs_signal);   // arrives while masked: no signal ...
  EXPECT_FALSE(WriteOne(out, 16).needs_signal);
  auto avail = in.EndReadMask();                 // ... so unmasking must report it
  ASSERT_TRUE(avail.has_value());
  EXPECT_EQ(*avail, 32u + 40u);
  EXPECT_EQ(mem.interrupt_mask(), 0u);
  ReadAndCommit(in, 2);
  EXPECT_EQ(in.EndReadMask().value(), 0u);       // nothing raced in: safe to sleep
  EXPECT_TRUE(WriteOne(out, 8).needs_signal);    // unmasked and empty: signal
  EXPECT_EQ(in.BytesAvailable().value(), 32u);
}

TEST(InterruptMaskTest, EndReadMaskRejectsACorruptWriteIndex) {
  TestRingMemory mem(1);
  auto in = IncomingRing::Create(mem.view()).value();
  in.BeginReadMask();
  mem.SetWriteIndex(4);
  EXPECT_EQ(in.EndReadMask().error(), RingError::kBadWriteIndex);
  EXPECT_EQ(in.BytesAvailable().error(), RingError::kBadWriteIndex);
  EXPECT_EQ(in.stats().errors.Get(RingError::kBadWriteIndex), 1u);
}

// --- Reader: spec 3.5 ------------------------------------------------------------------------

// A 16 KiB ring filled with 15 packets of 1024 ring bytes: 1024 bytes free.
class PendingSendSizeTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kPayload = 1000;  // 16 + 1000 -> 1016, + trailer = 1024
  static constexpr uint32_t kTotal = 1024;

  void SetUp() override {
    out_.emplace(OutgoingRing::Create(mem_.view()).value());
    in_.emplace(IncomingRing::Create(mem_.view()).value());
    FillRing();
  }

  void FillRing() {
    std::vector<uint8_t> payload(kPayload);
    WriteCursor c = out_->BeginWrite();
    WriteResult r;
    while ((r = out_->WriteInband(c, payload, 0, false)).ok()) {
    }
    ASSERT_EQ(r.status, WriteStatus::kFull);
    ASSERT_EQ(r.total, kTotal);
    out_->CommitWrite(c);
    ASSERT_EQ(out_->BytesFree().value(), kTotal);
  }

  TestRingMemory mem_{4};
  std::optional<OutgoingRing> out_;
  std::optional<IncomingRing> in_;
};

TEST_F(PendingSendSizeTest, ReaderSignalsExactlyOnceWhenFreeSpaceCrossesTheThreshold) {
  // The writer is blocked on a 3072-byte packet: free must become > 3072.
  auto room = out_->SetPendingSendSize(3 * kTotal);
  ASSERT_TRUE(room.has_value());
  EXPECT_FALSE(*room);  // 1024 free: wait
  EXPECT_EQ(mem_.pending_send_sz(), 3 * kTotal);

  ReadCommit below = ReadAndCommit(*in_, 1);  // free 2048 < 3072
  EXPECT_FALSE(below.needs_signal);
  EXPECT_TRUE(below.feature_pending_send_sz);
  EXPECT_EQ(below.pending_send_sz, 3 * kTotal);
  EXPECT_TRUE(below.write_index_sampled);
  ReadCommit at = ReadAndCommit(*in_, 1);  // free 3072 == pending: still not enough (3.3)
  EXPECT_FALSE(at.needs_signal);
  ReadCommit over = ReadAndCommit(*in_, 1);  // free 4096 > 3072: the crossing
  EXPECT_TRUE(over.needs_signal);
  ReadCommit after = ReadAndCommit(*in_, 1);  // free 5120: already past, no second signal
  EXPECT_FALSE(after.needs_signal);
  EXPECT_EQ(in_->stats().intr_in_full.Get(), 1u);

  // Woken, the writer's packet fits; the commit clears pending_send_sz.
  std::vector<uint8_t> big(3 * kTotal - 24);
  WriteCursor c = out_->BeginWrite();
  ASSERT_TRUE(out_->WriteInband(c, big, 0, false).ok());
  out_->CommitWrite(c);
  EXPECT_EQ(mem_.pending_send_sz(), 0u);
}

TEST_F(PendingSendSizeTest, CrossingInsideOneCommitSignalsOnce) {
  ASSERT_FALSE(out_->SetPendingSendSize(3 * kTotal).value());
  ReadCommit commit = ReadAndCommit(*in_, 4);  // 1024 -> 5120 in one go
  EXPECT_TRUE(commit.needs_signal);
  EXPECT_FALSE(ReadAndCommit(*in_, 4).needs_signal);
}

TEST_F(PendingSendSizeTest, NoSignalWhileTheWriterIsNotBlocked) {
  for (int i = 0; i < 15; ++i) {
    ReadCommit commit = ReadAndCommit(*in_, 1);
    EXPECT_FALSE(commit.needs_signal);
    EXPECT_TRUE(commit.pending_sampled);
    EXPECT_EQ(commit.pending_send_sz, 0u);
    EXPECT_FALSE(commit.write_index_sampled);  // p == 0: nothing else is read
  }
}

TEST_F(PendingSendSizeTest, NoSignalWhenTheWriterDidNotAdvertiseTheFeature) {
  out_->SetFeaturePendingSendSize(false);
  ASSERT_FALSE(out_->SetPendingSendSize(3 * kTotal).value());
  EXPECT_FALSE(in_->PeerSupportsPendingSendSize());
  for (int i = 0; i < 15; ++i) {
    ReadCommit commit = ReadAndCommit(*in_, 1);
    EXPECT_FALSE(commit.needs_signal);
    EXPECT_FALSE(commit.feature_pending_send_sz);
    EXPECT_FALSE(commit.pending_sampled);
  }
}

TEST_F(PendingSendSizeTest, LowThreeBitsOfPendingAreMasked) {
  // R13: a peer stores D - 1, meaning "wake me when empty"; masked it is D - 8, satisfied
  // only when free > D - 8, i.e. the ring is empty.
  mem_.SetPendingSendSz(mem_.data_size() - 1);
  for (int i = 0; i < 14; ++i) EXPECT_FALSE(ReadAndCommit(*in_, 1).needs_signal) << i;
  EXPECT_TRUE(ReadAndCommit(*in_, 1).needs_signal);
}

TEST_F(PendingSendSizeTest, PendingOfAtLeastTheDataSizeNeverSignals) {
  // R14: free space never exceeds D.
  for (uint32_t pending : {mem_.data_size(), mem_.data_size() + 8, 0xFFFFFFF8u}) {
    SCOPED_TRACE(pending);
    mem_.SetPendingSendSz(pending);
    for (int i = 0; i < 15; ++i) {
      ReadCommit commit = ReadAndCommit(*in_, 1);
      EXPECT_FALSE(commit.needs_signal);
      EXPECT_FALSE(commit.write_index_sampled);
    }
    FillRing();
  }
}

TEST_F(PendingSendSizeTest, ReCheckReportsRoomFreedBeforePendingWasPublished) {
  // The reader frees space before the writer publishes pending_send_sz (so it cannot signal);
  // the writer's re-check must notice instead of sleeping.
  EXPECT_FALSE(ReadAndCommit(*in_, 3).needs_signal);
  auto room = out_->SetPendingSendSize(3 * kTotal);
  ASSERT_TRUE(room.has_value());
  EXPECT_TRUE(*room);  // 4096 free > 3072
}

TEST_F(PendingSendSizeTest, SetPendingSendSizeRoundsUpAndRejectsImpossibleSizes) {
  EXPECT_FALSE(out_->SetPendingSendSize(3 * kTotal - 5).value());
  EXPECT_EQ(mem_.pending_send_sz(), 3 * kTotal);
  EXPECT_EQ(out_->SetPendingSendSize(mem_.data_size() - 8).error(), RingError::kPacketTooLarge);
  out_->ClearPendingSendSize();
  EXPECT_EQ(mem_.pending_send_sz(), 0u);
  EXPECT_EQ(out_->stats().pending_send_sz_set.Get(), 1u);
}

TEST_F(PendingSendSizeTest, HostileWriteIndexDuringCommitIsCountedAndNotSignalled) {
  ASSERT_FALSE(out_->SetPendingSendSize(3 * kTotal).value());
  ReadCursor c = in_->BeginRead();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(in_->Read(c).ok());
  mem_.SetWriteIndex(12);  // unaligned
  ReadCommit commit = in_->CommitRead(c);
  EXPECT_TRUE(commit.committed);
  EXPECT_TRUE(commit.write_index_sampled);
  EXPECT_FALSE(commit.needs_signal);
  EXPECT_EQ(in_->stats().errors.Get(RingError::kBadWriteIndex), 1u);
}

// --- Exact model of both sides, single-threaded -----------------------------------------------

// Drives writer and reader in a random interleaving from one thread. Because nothing runs
// concurrently, the model knows the exact shared state at every decision, so every outcome -
// write ok/full, read ok/empty, every needs_signal, every value a commit reports having seen,
// SetPendingSendSize's answer and EndReadMask's count - is checked exactly.
TEST(RingModelTest, RandomInterleavingMatchesTheSpecModelExactly) {
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(seed);
    TestRingMemory mem(2);
    const uint32_t d = mem.data_size();
    auto out = OutgoingRing::Create(mem.view()).value();
    auto in = IncomingRing::Create(mem.view(), {.max_packet_size = d}).value();
    PayloadPattern pattern(d);
    std::mt19937_64 rng(seed);
    auto uniform = [&](uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); };

    // Model of the shared control fields.
    uint32_t m_w = 0, m_r = 0, m_mask = 0, m_pending = 0;
    bool m_feature = true, m_pending_by_writer = false;
    // Packets: lengths in write order; [0, committed) published, [0, consumed) released.
    std::vector<uint32_t> lens;
    size_t committed = 0, read_pos = 0, consumed = 0;
    // Cursors.
    WriteCursor wc = out.BeginWrite();
    uint32_t w_start = 0, w_next = 0, w_packets = 0;
    ReadCursor rc = in.BeginRead();
    uint32_t r_start = 0, r_next = 0, r_packets = 0;
    uint64_t writer_signals = 0, reader_signals = 0;

    for (int step = 0; step < 20000; ++step) {
      const uint64_t op = uniform(0, 99);
      if (op < 30) {  // write one packet
        const uint64_t kind = uniform(0, 99);
        const auto len = static_cast<uint32_t>(
            kind < 50 ? uniform(0, 64) : kind < 85 ? uniform(65, 1000) : uniform(1001, d - 40));
        const uint32_t total = InbandTotal(len);
        const bool fits = ModelFree(w_next, m_r, d) > total;
        WriteResult r = out.WriteInband(wc, pattern.Slice(lens.size(), len), lens.size(), false);
        ASSERT_EQ(r.status, fits ? WriteStatus::kOk : WriteStatus::kFull) << "step " << step;
        ASSERT_EQ(r.total, total);
        if (fits) {
          w_next = (w_next + total) % d;
          ++w_packets;
          lens.push_back(len);
        }
      } else if (op < 45) {  // commit the write batch
        WriteCommit c = out.CommitWrite(wc);
        const bool did = w_packets > 0;
        ASSERT_EQ(c.committed, did);
        ASSERT_EQ(c.old_write_index, w_start);
        ASSERT_EQ(c.needs_signal, ModelWriterSignal(did, m_mask, m_r, w_start)) << "step " << step;
        if (did) {
          ASSERT_EQ(c.interrupt_mask, m_mask);
          ASSERT_EQ(c.read_index_sampled, m_mask == 0);
          if (m_mask == 0) {
            ASSERT_EQ(c.read_index, m_r);
          }
          m_w = w_next;
          committed = lens.size();
          if (m_pending_by_writer) m_pending = 0, m_pending_by_writer = false;
          writer_signals += c.needs_signal;
        }
        w_start = w_next;
        w_packets = 0;
      } else if (op < 75) {  // read one packet
        ReadResult r = in.Read(rc);
        if (read_pos == committed) {
          ASSERT_EQ(r.status, ReadStatus::kEmpty) << "step " << step;
        } else {
          ASSERT_TRUE(r.ok()) << "step " << step;
          ASSERT_EQ(r.packet.desc.trans_id, read_pos);
          ASSERT_TRUE(PayloadMatches(pattern, read_pos, lens[read_pos], r.packet.payload));
          r_next = (r_next + InbandTotal(lens[read_pos])) % d;
          ++read_pos;
          ++r_packets;
        }
      } else if (op < 90) {  // commit the read batch
        ReadCommit c = in.CommitRead(rc);
        const bool did = r_packets > 0;
        ASSERT_EQ(c.committed, did);
        const bool want =
            ModelReaderSignal(did, d, r_start, r_next, m_feature, m_pending, m_w);
        ASSERT_EQ(c.needs_signal, want) << "step " << step;
        if (did) {
          ASSERT_EQ(c.feature_pending_send_sz, m_feature);
          ASSERT_EQ(c.pending_sampled, m_feature);
          if (m_feature) {
            ASSERT_EQ(c.pending_send_sz, m_pending);
          }
          m_r = r_next;
          consumed = read_pos;
          reader_signals += c.needs_signal;
        }
        r_start = r_next;
        r_packets = 0;
      } else if (op < 93) {
        in.BeginReadMask();
        m_mask = 1;
      } else if (op < 96) {
        auto avail = in.EndReadMask();
        m_mask = 0;
        ASSERT_TRUE(avail.has_value());
        ASSERT_EQ(*avail, (m_w - m_r + d) % d);
      } else if (op < 98) {  // the writer blocks on a packet of some size
        const auto total = static_cast<uint32_t>(uniform(1, d - 16));
        const uint32_t rounded = (total + 7) / 8 * 8;
        auto room = out.SetPendingSendSize(total);
        ASSERT_TRUE(room.has_value());
        ASSERT_EQ(*room, ModelFree(m_w, m_r, d) > rounded);
        m_pending = rounded;
        m_pending_by_writer = true;
      } else if (op < 99) {  // a quirky or hostile peer value (R13, R14)
        const uint32_t values[] = {0, d - 1, d, d + 8, 4100, 0xFFFFFFFFu};
        m_pending = values[uniform(0, 5)];
        mem.SetPendingSendSz(m_pending);
      } else {
        m_feature = !m_feature;
        out.SetFeaturePendingSendSize(m_feature);
      }
    }
    EXPECT_EQ(out.stats().intr_out_empty.Get(), writer_signals);
    EXPECT_EQ(in.stats().intr_in_full.Get(), reader_signals);
    EXPECT_GT(writer_signals, 0u);
    EXPECT_GT(reader_signals, 0u);
    EXPECT_GT(consumed, 1000u);  // plenty of wrap-arounds of an 8 KiB ring
  }
}

}  // namespace
}  // namespace uvmbus::ring
