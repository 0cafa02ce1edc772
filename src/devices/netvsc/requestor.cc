// File: devices/netvsc/requestor.cc
#include "devices/netvsc/requestor.h"

#include <algorithm>

namespace uvmbus::netvsc {

Requestor::Requestor(uint32_t size)
    : size_(std::max<uint32_t>(size, 1)),
      slots_(std::make_unique<RequestCookie[]>(size_)),
      free_(std::make_unique<uint32_t[]>(size_)),
      free_count_(size_) {
  // Pop order 0, 1, 2, ...: the first requests get trans_ids 1, 2, 3 like Linux's table.
  for (uint32_t i = 0; i < size_; ++i) free_[i] = size_ - 1 - i;
}

uint64_t Requestor::Allocate(const RequestCookie& cookie) {
  if (free_count_ == 0 || cookie.kind == RequestKind::kFree) return 0;
  const uint32_t slot = free_[--free_count_];
  slots_[slot] = cookie;
  return uint64_t{slot} + 1;
}

tl::expected<uint32_t, CompleteError> Requestor::Slot(uint64_t trans_id) const {
  if (trans_id == 0) return tl::unexpected(CompleteError::kZeroId);
  if (trans_id - 1 >= size_) return tl::unexpected(CompleteError::kOutOfRange);
  const auto slot = static_cast<uint32_t>(trans_id - 1);
  if (slots_[slot].kind == RequestKind::kFree) return tl::unexpected(CompleteError::kNotAllocated);
  return slot;
}

tl::expected<RequestCookie, CompleteError> Requestor::Peek(uint64_t trans_id) const {
  auto slot = Slot(trans_id);
  if (!slot) return tl::unexpected(slot.error());
  return slots_[*slot];
}

tl::expected<RequestCookie, CompleteError> Requestor::Complete(uint64_t trans_id,
                                                                uint32_t allowed) {
  auto slot = Slot(trans_id);
  if (!slot) return tl::unexpected(slot.error());
  const RequestCookie cookie = slots_[*slot];
  if ((Bit(cookie.kind) & allowed) == 0) return tl::unexpected(CompleteError::kWrongKind);
  slots_[*slot] = RequestCookie{};
  free_[free_count_++] = *slot;
  return cookie;
}

tl::expected<RequestCookie, CompleteError> Requestor::Cancel(uint64_t trans_id) {
  return Complete(trans_id, ~0u);
}

}  // namespace uvmbus::netvsc
