// File: tests/unit/ring/ring_test_util.h
//
// What: helpers for the ring tests: page-aligned ring memory formatted like Linux, raw pokes
// that play a hostile peer (set indices, write bytes into the data area), and packet payload
// patterns that let a reader check every byte.
// Thread-safety: TestRingMemory is not synchronised; the pokes are for single-threaded tests.
#ifndef UVMBUS_TESTS_UNIT_RING_RING_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_RING_RING_TEST_UTIL_H_

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"
#include "wire/ring_format.h"

namespace uvmbus::ring::testing {

// A heap ring: one control page + `data_pages` 4 KiB data pages, page aligned, formatted by
// InitRingControl().
class TestRingMemory {
 public:
  explicit TestRingMemory(uint32_t data_pages, const RingInitOptions& options = {})
      : size_(size_t{data_pages + 1} * wire::kRingPageSize),
        mem_(static_cast<uint8_t*>(std::aligned_alloc(wire::kRingPageSize, size_))) {
    std::memset(mem_.get(), 0xA5, size_);  // garbage everywhere until formatted
    auto v = InitRingControl(span(), options);
    EXPECT_TRUE(v.has_value());
    view_ = *v;
  }

  std::span<uint8_t> span() { return {mem_.get(), size_}; }
  const RingView& view() const { return view_; }
  uint32_t data_size() const { return view_.data_size(); }

  // Hostile-peer pokes (relaxed: single-threaded tests).
  void SetWriteIndex(uint32_t v) { view_.write_index().store(v, std::memory_order_relaxed); }
  void SetReadIndex(uint32_t v) { view_.read_index().store(v, std::memory_order_relaxed); }
  void SetPendingSendSz(uint32_t v) {
    view_.pending_send_sz().store(v, std::memory_order_relaxed);
  }
  void SetFeatureBits(uint32_t v) { view_.feature_bits().store(v, std::memory_order_relaxed); }
  void SetInterruptMask(uint32_t v) {
    view_.interrupt_mask().store(v, std::memory_order_relaxed);
  }
  uint32_t write_index() const { return view_.write_index().load(std::memory_order_relaxed); }
  uint32_t read_index() const { return view_.read_index().load(std::memory_order_relaxed); }
  uint32_t pending_send_sz() const {
    return view_.pending_send_sz().load(std::memory_order_relaxed);
  }
  uint32_t interrupt_mask() const {
    return view_.interrupt_mask().load(std::memory_order_relaxed);
  }

  // Writes raw bytes into the data area at `offset`, wrapping.
  void Poke(uint32_t offset, std::span<const uint8_t> bytes) {
    view_.CopyIn(offset, bytes.data(), static_cast<uint32_t>(bytes.size()));
  }
  // Reads raw bytes from the data area at `offset`, wrapping.
  std::vector<uint8_t> Peek(uint32_t offset, uint32_t len) const {
    std::vector<uint8_t> out(len);
    view_.CopyOut(offset, out.data(), len);
    return out;
  }
  uint64_t PeekU64(uint32_t offset) const {
    uint64_t v;
    view_.CopyOut(offset, &v, sizeof(v));
    return v;
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  size_t size_;
  std::unique_ptr<uint8_t, Free> mem_;
  RingView view_;
};

// Bytes of a hand-made descriptor (for hostile packets).
inline std::vector<uint8_t> DescriptorBytes(uint16_t type, uint16_t offset8, uint16_t len8,
                                            uint16_t flags, uint64_t trans_id) {
  wire::PacketDescriptor d{type, offset8, len8, flags, trans_id};
  std::vector<uint8_t> out(sizeof(d));
  std::memcpy(out.data(), &d, sizeof(d));
  return out;
}

// A deterministic pseudo-random byte pattern; the payload of packet `seq` with `len` bytes is
// pattern.Slice(seq, len), so a reader can check every byte with one memcmp.
class PayloadPattern {
 public:
  explicit PayloadPattern(size_t max_len, uint64_t seed = 0x9E3779B97F4A7C15ull)
      : bytes_(max_len + kSpread) {
    uint64_t x = seed;
    for (auto& b : bytes_) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<uint8_t>(x >> 24);
    }
  }
  std::span<const uint8_t> Slice(uint64_t seq, size_t len) const {
    return {bytes_.data() + (seq * 7919) % kSpread, len};
  }

 private:
  static constexpr size_t kSpread = 4093;  // prime: neighbouring packets get different bytes
  std::vector<uint8_t> bytes_;
};

// Checks that `payload` (as read: padded to 8) carries Slice(seq, len) followed by zeros.
inline ::testing::AssertionResult PayloadMatches(const PayloadPattern& pattern, uint64_t seq,
                                                 size_t len, std::span<const uint8_t> payload) {
  const size_t padded = (len + 16 + 7) / 8 * 8 - 16;
  if (payload.size() != padded) {
    return ::testing::AssertionFailure()
           << "packet " << seq << ": payload size " << payload.size() << ", want " << padded;
  }
  auto want = pattern.Slice(seq, len);
  if (len != 0 && std::memcmp(payload.data(), want.data(), len) != 0) {
    return ::testing::AssertionFailure() << "packet " << seq << ": payload bytes differ";
  }
  for (size_t i = len; i < padded; ++i) {
    if (payload[i] != 0) {
      return ::testing::AssertionFailure() << "packet " << seq << ": padding byte " << i
                                           << " is " << int{payload[i]};
    }
  }
  return ::testing::AssertionSuccess();
}

// Ring bytes of an in-band packet with `len` payload bytes (packet + padding + trailer).
constexpr uint32_t InbandTotal(uint32_t len) { return (16 + len + 7) / 8 * 8 + 8; }

// Spec 3.3 free space, written independently of the implementation.
inline int64_t ModelFree(int64_t w, int64_t r, int64_t d) { return w >= r ? d - (w - r) : r - w; }

// Spec 3.4 step 7, literally: signal iff the batch committed, the mask was clear and the
// reader stood where the batch began.
inline bool ModelWriterSignal(bool committed, uint32_t mask, uint32_t read_index,
                              uint32_t old_write_index) {
  return committed && mask == 0 && read_index == old_write_index;
}

// Spec 3.5 steps 5-9, literally (Linux hv_pkt_iter_close): with p = pending & ~7 (R13),
// cur_free = free space now, freed = bytes this commit released:
//   no signal if !feature, p == 0, cur_free - freed > p (writer was not blocked) or
//   cur_free <= p (still not enough); otherwise signal.
inline bool ModelReaderSignal(bool committed, int64_t d, uint32_t old_r, uint32_t new_r,
                              bool feature, uint32_t pending_raw, uint32_t w) {
  if (!committed || !feature) return false;
  const int64_t p = pending_raw & ~uint32_t{7};
  if (p == 0) return false;
  const int64_t cur_free = ModelFree(w, new_r, d);
  const int64_t freed = ((int64_t{new_r} - int64_t{old_r}) % d + d) % d;
  if (cur_free - freed > p) return false;
  if (cur_free <= p) return false;
  return true;
}

}  // namespace uvmbus::ring::testing

#endif  // UVMBUS_TESTS_UNIT_RING_RING_TEST_UTIL_H_
