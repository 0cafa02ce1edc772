// File: partition/guest_page_allocator.cc — see guest_page_allocator.h.
#include "partition/guest_page_allocator.h"

#include <cstring>
#include <iterator>

namespace uvmbus::partition {

PageRun& PageRun::operator=(PageRun&& other) noexcept {
  if (this != &other) {
    Reset();
    allocator_ = std::exchange(other.allocator_, nullptr);
    gpn_ = std::exchange(other.gpn_, 0);
    count_ = std::exchange(other.count_, 0);
    bytes_ = std::exchange(other.bytes_, {});
  }
  return *this;
}

void PageRun::Reset() {
  if (allocator_ != nullptr) {
    // Cannot fail for a run this object owns; ignore the status.
    (void)allocator_->Free(gpn_, count_);
  }
  allocator_ = nullptr;
  gpn_ = 0;
  count_ = 0;
  bytes_ = {};
}

GuestPageAllocator::GuestPageAllocator(const GuestRam& ram, uint64_t first_gpn)
    : ram_(ram),
      first_gpn_(first_gpn),
      total_pages_(first_gpn < ram.page_count() ? ram.page_count() - first_gpn : 0) {
  std::lock_guard lock(mu_);
  if (total_pages_ != 0) free_.emplace(first_gpn_, total_pages_);
  free_pages_ = total_pages_;
}

Expected<uint64_t> GuestPageAllocator::Allocate(uint64_t count) {
  if (count == 0) return MakeError(ErrorCode::kInvalidArgument, "allocation of 0 pages");
  uint64_t gpn = 0;
  {
    std::lock_guard lock(mu_);
    auto it = free_.begin();
    while (it != free_.end() && it->second < count) ++it;
    if (it == free_.end()) {
      return MakeError(ErrorCode::kResourceExhausted,
                       "no run of {} free guest pages ({} free in total)", count, free_pages_);
    }
    gpn = it->first;
    const uint64_t left = it->second - count;
    free_.erase(it);
    if (left != 0) free_.emplace(gpn + count, left);
    allocated_.emplace(gpn, count);
    free_pages_ -= count;
  }
  // Zero outside the lock: the run is ours now. Guest pages are handed to the host (rings,
  // buffers), which must never see stale data of a previous user.
  auto bytes = ram_.Pages(gpn, count);
  if (bytes) std::memset(bytes->data(), 0, bytes->size());
  return gpn;
}

Status GuestPageAllocator::Free(uint64_t gpn, uint64_t count) {
  std::lock_guard lock(mu_);
  auto it = allocated_.find(gpn);
  if (it == allocated_.end() || it->second != count) {
    return MakeError(ErrorCode::kNotFound, "pages [{:#x}, +{}) are not an allocation", gpn, count);
  }
  allocated_.erase(it);
  free_pages_ += count;
  // Insert and coalesce with the neighbours so first fit keeps finding long runs.
  auto [pos, inserted] = free_.emplace(gpn, count);
  (void)inserted;
  auto next = std::next(pos);
  if (next != free_.end() && pos->first + pos->second == next->first) {
    pos->second += next->second;
    free_.erase(next);
  }
  if (pos != free_.begin()) {
    auto prev = std::prev(pos);
    if (prev->first + prev->second == pos->first) {
      prev->second += pos->second;
      free_.erase(pos);
    }
  }
  return Ok();
}

Expected<PageRun> GuestPageAllocator::AllocateRun(uint64_t count) {
  auto gpn = Allocate(count);
  if (!gpn) return unexpected(gpn.error());
  auto bytes = ram_.Pages(*gpn, count);
  if (!bytes) {
    (void)Free(*gpn, count);
    return unexpected(bytes.error());
  }
  return PageRun(this, *gpn, count, *bytes);
}

uint64_t GuestPageAllocator::free_pages() const {
  std::lock_guard lock(mu_);
  return free_pages_;
}

}  // namespace uvmbus::partition
