// File: devices/netvsp/rx_buffer.cc — see rx_buffer.h.
#include "devices/netvsp/rx_buffer.h"

namespace uvmbus::netvsp {

Expected<ReceiveBufferLayout> ComputeReceiveBufferLayout(uint64_t buffer_bytes,
                                                         uint32_t max_frame) {
  if (buffer_bytes > kMaxReceiveBufferBytes) {
    return MakeError(ErrorCode::kMalformed, "receive buffer of {} bytes > {}", buffer_bytes,
                     kMaxReceiveBufferBytes);
  }
  const uint64_t size = (uint64_t{kRxHeaderReserve} + max_frame + kRxTailPad + 7) / 8 * 8;
  if (buffer_bytes < size) {
    return MakeError(ErrorCode::kMalformed,
                     "receive buffer of {} bytes < one {}-byte sub-allocation", buffer_bytes,
                     size);
  }
  ReceiveBufferLayout layout;
  layout.sub_alloc_size = static_cast<uint32_t>(size);
  // buffer_bytes <= 64 MiB, so the count and size * count fit in 32 bits.
  layout.num_sub_allocs = static_cast<uint32_t>(buffer_bytes / size);
  return layout;
}

SectionPool::SectionPool(uint32_t count)
    : count_(count == kNone ? kNone - 1 : count),
      next_(new std::atomic<uint32_t>[count_ == 0 ? 1 : count_]),
      head_(Pack(count_ == 0 ? kNone : 0, 0)),
      free_(count_) {
  for (uint32_t i = 0; i < count_; ++i) {
    next_[i].store(i + 1 < count_ ? i + 1 : kNone, std::memory_order_relaxed);
  }
}

uint32_t SectionPool::Pop() {
  uint64_t head = head_.load(std::memory_order_acquire);
  for (;;) {
    const auto index = static_cast<uint32_t>(head);
    if (index == kNone) return kNone;
    // May be stale if another thread popped `index` meanwhile; the tag makes the CAS fail then.
    const uint32_t next = next_[index].load(std::memory_order_relaxed);
    const uint64_t desired = Pack(next, static_cast<uint32_t>(head >> 32) + 1);
    // acquire on success: the chain links written before the push that published `index` are
    // visible (they were written before that push's release CAS).
    if (head_.compare_exchange_weak(head, desired, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      free_.fetch_sub(1, std::memory_order_relaxed);
      return index;
    }
  }
}

void SectionPool::PushChain(uint32_t first, uint32_t last) {
  if (first >= count_ || last >= count_) return;  // caller bug; never index out of range
  uint32_t n = 1;
  for (uint32_t s = first; s != last && n <= count_; s = next_[s].load(std::memory_order_relaxed)) {
    ++n;
  }
  uint64_t head = head_.load(std::memory_order_relaxed);
  for (;;) {
    next_[last].store(static_cast<uint32_t>(head), std::memory_order_relaxed);
    const uint64_t desired = Pack(first, static_cast<uint32_t>(head >> 32) + 1);
    // release: the links of the chain (and next_[last]) are published with the new head.
    if (head_.compare_exchange_weak(head, desired, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      break;
    }
  }
  free_.fetch_add(n, std::memory_order_relaxed);
}

void SectionPool::PushMany(const uint32_t* sections, uint32_t n) {
  if (n == 0) return;
  for (uint32_t i = 0; i + 1 < n; ++i) SetNext(sections[i], sections[i + 1]);
  PushChain(sections[0], sections[n - 1]);
}

InflightTable::InflightTable(uint32_t capacity) : slots_(capacity == 0 ? 1 : capacity) {
  free_.reserve(slots_.size());
  for (uint32_t i = static_cast<uint32_t>(slots_.size()); i > 0; --i) free_.push_back(i - 1);
}

uint64_t InflightTable::Begin(const Entry& entry) {
  if (free_.empty()) return kFull;
  const uint32_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  s.entry = entry;
  s.used = true;
  // The bare index (spec 4.7 leaves host ids to the host; 0 is a valid id for a packet the host
  // sends, the guest echoes it). See the header for why it must stay small.
  return index;
}

std::optional<InflightTable::Entry> InflightTable::Complete(uint64_t trans_id) {
  if (trans_id >= slots_.size()) return std::nullopt;
  Slot& s = slots_[static_cast<size_t>(trans_id)];
  if (!s.used) return std::nullopt;
  const auto index = static_cast<uint32_t>(trans_id);
  s.used = false;
  free_.push_back(index);
  return s.entry;
}

}  // namespace uvmbus::netvsp
