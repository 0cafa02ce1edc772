#include "bench/harness/frames.h"

#include <algorithm>

namespace uvmbus::bench {
namespace {

size_t RoundUpToCacheLine(size_t n) { return (n + 63) & ~size_t{63}; }

}  // namespace

bool CheckFrame(std::span<const uint8_t> frame, uint32_t frame_bytes, uint64_t seq,
                FrameCheck level) {
  if (frame.size() != frame_bytes || frame_bytes < kMinFrameBytes) return false;
  uint64_t got = 0;
  std::memcpy(&got, frame.data(), sizeof got);
  if (got != seq) return false;
  const auto slot = static_cast<uint32_t>(seq % kFramePoolFrames);
  const uint32_t from = level == FrameCheck::kEveryByte ? 8 : frame_bytes - 8;
  for (uint32_t i = from; i < frame_bytes; ++i) {
    if (frame[i] != PatternByte(slot, i)) return false;
  }
  return true;
}

FrameSource::FrameSource(uint32_t frame_bytes)
    : frame_bytes_(std::clamp(frame_bytes, kMinFrameBytes, kMaxFrameBytes)),
      stride_(RoundUpToCacheLine(frame_bytes_)),
      pool_(new uint8_t[stride_ * kFramePoolFrames]) {
  for (uint32_t s = 0; s < kFramePoolFrames; ++s) {
    uint8_t* f = pool_.get() + s * stride_;
    std::memset(f, 0, stride_);
    for (uint32_t i = 8; i < frame_bytes_; ++i) f[i] = PatternByte(s, i);
  }
}

FrameSink::FrameSink(size_t slot_bytes)
    : slot_bytes_(slot_bytes),
      stride_(RoundUpToCacheLine(slot_bytes)),
      pool_(new uint8_t[stride_ * kFramePoolFrames]()) {}

}  // namespace uvmbus::bench
