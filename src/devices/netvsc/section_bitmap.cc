// File: devices/netvsc/section_bitmap.cc
#include "devices/netvsc/section_bitmap.h"

#include <bit>

namespace uvmbus::netvsc {

SectionBitmap::SectionBitmap(uint32_t count)
    : count_(count),
      words_((count + 63) / 64),
      bits_(std::make_unique<std::atomic<uint64_t>[]>(words_ == 0 ? 1 : words_)) {
  for (uint32_t w = 0; w < words_; ++w) bits_[w].store(0, std::memory_order_relaxed);
  // Bits past the last section are permanently "in use", so the scan never hands them out.
  if (const uint32_t tail = count % 64; tail != 0) {
    bits_[words_ - 1].store(~uint64_t{0} << tail, std::memory_order_relaxed);
  }
}

uint32_t SectionBitmap::Allocate(uint32_t hint) {
  if (count_ == 0) return kNone;
  const uint32_t start_word = (hint % count_) / 64;
  // Every word is visited at most twice: a lost race on a word (another thread took the bit we
  // saw clear) re-reads that word, and each retry means some thread made progress.
  for (uint32_t n = 0; n < 2 * words_ + 1; ++n) {
    const uint32_t w = (start_word + n % words_) % words_;
    uint64_t word = bits_[w].load(std::memory_order_relaxed);
    while (word != ~uint64_t{0}) {
      const uint32_t bit = static_cast<uint32_t>(std::countr_one(word));
      const uint64_t mask = uint64_t{1} << bit;
      const uint64_t old = bits_[w].fetch_or(mask, std::memory_order_acq_rel);
      if ((old & mask) == 0) {
        in_use_.fetch_add(1, std::memory_order_relaxed);
        return w * 64 + bit;
      }
      word = old | mask;
    }
  }
  return kNone;
}

bool SectionBitmap::Free(uint32_t index) {
  if (index >= count_) return false;
  const uint64_t mask = uint64_t{1} << (index % 64);
  const uint64_t old = bits_[index / 64].fetch_and(~mask, std::memory_order_acq_rel);
  if ((old & mask) == 0) return false;
  in_use_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

}  // namespace uvmbus::netvsc
