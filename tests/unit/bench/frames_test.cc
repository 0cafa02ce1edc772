#include "bench/harness/frames.h"

#include <vector>

#include <gtest/gtest.h>

namespace uvmbus::bench {
namespace {

std::vector<uint8_t> Copy(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

TEST(FramesTest, StampedFramePassesBothCheckLevels) {
  for (uint32_t size : {16u, 64u, 1500u, 9000u}) {
    FrameSource source(size);
    for (uint64_t seq : {0ull, 1ull, 511ull, 512ull, 123456ull}) {
      const auto frame = Copy(source.Stamp(seq));
      ASSERT_EQ(frame.size(), size);
      EXPECT_TRUE(CheckFrame(frame, size, seq, FrameCheck::kSeqAndTail)) << size << "/" << seq;
      EXPECT_TRUE(CheckFrame(frame, size, seq, FrameCheck::kEveryByte)) << size << "/" << seq;
    }
  }
}

TEST(FramesTest, WrongSequenceNumberFails) {
  FrameSource source(64);
  const auto frame = Copy(source.Stamp(7));
  EXPECT_FALSE(CheckFrame(frame, 64, 8, FrameCheck::kSeqAndTail));
  EXPECT_FALSE(CheckFrame(frame, 64, 6, FrameCheck::kEveryByte));
}

TEST(FramesTest, WrongLengthFails) {
  FrameSource source(64);
  const auto frame = Copy(source.Stamp(3));
  EXPECT_FALSE(CheckFrame(std::span(frame).first(63), 64, 3, FrameCheck::kSeqAndTail));
  EXPECT_FALSE(CheckFrame(frame, 65, 3, FrameCheck::kSeqAndTail));
}

TEST(FramesTest, DamagedTailFailsBothLevels) {
  FrameSource source(1500);
  auto frame = Copy(source.Stamp(42));
  frame[1499] ^= 0x01;
  EXPECT_FALSE(CheckFrame(frame, 1500, 42, FrameCheck::kSeqAndTail));
  EXPECT_FALSE(CheckFrame(frame, 1500, 42, FrameCheck::kEveryByte));
}

TEST(FramesTest, DamagedMiddleIsFoundOnlyByTheFullCheck) {
  FrameSource source(1500);
  auto frame = Copy(source.Stamp(42));
  frame[700] ^= 0x80;
  EXPECT_TRUE(CheckFrame(frame, 1500, 42, FrameCheck::kSeqAndTail));
  EXPECT_FALSE(CheckFrame(frame, 1500, 42, FrameCheck::kEveryByte));
}

TEST(FramesTest, FramesOfDifferentSlotsDiffer) {
  FrameSource source(64);
  const auto a = Copy(source.Stamp(1));
  auto b = Copy(source.Stamp(2));
  // Same sequence number stamped into another slot's bytes: the pattern gives it away.
  std::copy(a.begin(), a.begin() + 8, b.begin());
  EXPECT_FALSE(CheckFrame(b, 64, 1, FrameCheck::kSeqAndTail));
}

TEST(FramesTest, SinkSlotsAreDistinctAndWrapAfterThePool) {
  FrameSink sink(100);
  EXPECT_EQ(sink.Slot(0).size(), 100u);
  EXPECT_NE(sink.Slot(0).data(), sink.Slot(1).data());
  EXPECT_EQ(sink.Slot(0).data(), sink.Slot(kFramePoolFrames).data());
}

}  // namespace
}  // namespace uvmbus::bench
