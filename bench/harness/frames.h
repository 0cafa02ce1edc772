// File: bench/harness/frames.h
//
// What: the frames every contender moves, and how the consumer proves they arrived intact.
// The producer copies each frame from a pool of 512 pre-filled frames (so the copy-in reads
// memory like a real transmit path instead of re-sending one hot buffer, as the peers' spsc.c
// does) after stamping the frame's sequence number into its first 8 bytes; the consumer copies
// it out into its own 512-frame pool and checks the length, the sequence number and the
// pattern: the last 8 bytes (cheap, default) or every byte (tests). Byte i >= 8 of a frame with
// sequence number s is PatternByte(s % 512, i).
// Spec: none (benchmark infrastructure).
// Linux/OpenVMM: none.
// Thread-safety: FrameSource / FrameSink are owned by one side (process) each; CheckFrame is
// pure.
#ifndef UVMBUS_BENCH_HARNESS_FRAMES_H_
#define UVMBUS_BENCH_HARNESS_FRAMES_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace uvmbus::bench {

// Smallest frame: the 8-byte sequence number plus at least 8 pattern bytes.
inline constexpr uint32_t kMinFrameBytes = 16;
// Largest frame any built-in contender accepts (a jumbo frame with headroom).
inline constexpr uint32_t kMaxFrameBytes = 16384;
// Frames in a source or destination pool.
inline constexpr uint32_t kFramePoolFrames = 512;

// Byte `offset` (>= 8) of the frames stored in pool slot `slot`.
constexpr uint8_t PatternByte(uint32_t slot, uint32_t offset) {
  return static_cast<uint8_t>(offset * 7u + slot * 13u + 1u);
}

enum class FrameCheck : uint8_t {
  kSeqAndTail,  // length, sequence number and the last 8 bytes (the data path default)
  kEveryByte,   // length, sequence number and every pattern byte (tests)
};

// True if `frame` is exactly the frame FrameSource produced for `seq` with `frame_bytes`.
bool CheckFrame(std::span<const uint8_t> frame, uint32_t frame_bytes, uint64_t seq,
                FrameCheck level);

// The producer's pool.
class FrameSource {
 public:
  // frame_bytes in [kMinFrameBytes, kMaxFrameBytes] (callers validate).
  explicit FrameSource(uint32_t frame_bytes);

  // The frame carrying `seq`: pool slot seq % 512 with `seq` stamped into its first 8 bytes.
  // Valid until the same slot is stamped again (512 frames later).
  std::span<const uint8_t> Stamp(uint64_t seq) {
    uint8_t* f = pool_.get() + (seq % kFramePoolFrames) * stride_;
    std::memcpy(f, &seq, sizeof seq);
    return {f, frame_bytes_};
  }
  uint32_t frame_bytes() const { return frame_bytes_; }

 private:
  uint32_t frame_bytes_;
  size_t stride_;  // frame_bytes rounded up to a cache line
  std::unique_ptr<uint8_t[]> pool_;
};

// The consumer's pool: where received frames are copied to.
class FrameSink {
 public:
  // Slots of `slot_bytes` each (at least the largest thing a contender copies out at once,
  // e.g. a frame plus its ring header).
  explicit FrameSink(size_t slot_bytes);

  // Destination of the n-th received frame (slot n % 512).
  std::span<uint8_t> Slot(uint64_t n) {
    return {pool_.get() + (n % kFramePoolFrames) * stride_, slot_bytes_};
  }

 private:
  size_t slot_bytes_;
  size_t stride_;
  std::unique_ptr<uint8_t[]> pool_;
};

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_FRAMES_H_
