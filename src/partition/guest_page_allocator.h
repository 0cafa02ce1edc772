// File: partition/guest_page_allocator.h
//
// What: the guest's "kernel page allocator" for its own RAM: hands out runs of physically
// contiguous 4 KiB pages (ring buffers, receive/send buffers, monitor pages) by guest page number,
// zeroed on allocation. First-fit over a sorted free list with coalescing on free. Pages below
// `first_gpn` are reserved (the per-vCPU SynIC message and event pages; see GuestPartition).
// Control path only: one mutex, allocation is O(free runs).
// Spec: none directly; guest pages named in GPADLs are 4 KiB frame numbers (spec 0, 2.9).
// Linux: the page allocator behind vzalloc()/alloc_pages() used by vmbus_open() and netvsc.
// Thread-safety: all methods are thread-safe (internal mutex). The GuestRam must outlive it.
#ifndef UVMBUS_PARTITION_GUEST_PAGE_ALLOCATOR_H_
#define UVMBUS_PARTITION_GUEST_PAGE_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <utility>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "partition/guest_ram.h"

namespace uvmbus::partition {

class GuestPageAllocator;

// A move-only owned run of pages; frees itself on destruction. The allocator must outlive it.
class PageRun {
 public:
  PageRun() = default;
  PageRun(PageRun&& other) noexcept { *this = std::move(other); }
  PageRun& operator=(PageRun&& other) noexcept;
  PageRun(const PageRun&) = delete;
  PageRun& operator=(const PageRun&) = delete;
  ~PageRun() { Reset(); }

  // First guest page number and number of pages (0 for an empty run).
  uint64_t gpn() const { return gpn_; }
  uint64_t count() const { return count_; }
  // The pages' bytes in this process (count * 4096 bytes).
  std::span<uint8_t> bytes() const { return bytes_; }
  bool valid() const { return allocator_ != nullptr; }
  // Frees the run now (no-op on an empty run).
  void Reset();

 private:
  friend class GuestPageAllocator;
  PageRun(GuestPageAllocator* allocator, uint64_t gpn, uint64_t count, std::span<uint8_t> bytes)
      : allocator_(allocator), gpn_(gpn), count_(count), bytes_(bytes) {}

  GuestPageAllocator* allocator_ = nullptr;
  uint64_t gpn_ = 0;
  uint64_t count_ = 0;
  std::span<uint8_t> bytes_;
};

class GuestPageAllocator {
 public:
  // Manages pages [first_gpn, ram.page_count()) of `ram`. first_gpn > page_count() leaves
  // nothing to allocate.
  GuestPageAllocator(const GuestRam& ram, uint64_t first_gpn);
  GuestPageAllocator(const GuestPageAllocator&) = delete;
  GuestPageAllocator& operator=(const GuestPageAllocator&) = delete;

  // Allocates `count` contiguous pages (first fit), zeroes them and returns the first page number.
  // Errors: kInvalidArgument if count is 0; kResourceExhausted if no free run is long enough.
  Expected<uint64_t> Allocate(uint64_t count) EXCLUDES(mu_);

  // Frees a run returned by Allocate(). The run must be exactly one earlier allocation.
  // Errors: kNotFound if (gpn, count) is not a live allocation (double free, wrong count).
  Status Free(uint64_t gpn, uint64_t count) EXCLUDES(mu_);

  // Allocate() wrapped in an owning PageRun.
  Expected<PageRun> AllocateRun(uint64_t count) EXCLUDES(mu_);

  // Free pages now / pages managed in total.
  uint64_t free_pages() const EXCLUDES(mu_);
  uint64_t total_pages() const { return total_pages_; }
  // First page number this allocator manages.
  uint64_t first_gpn() const { return first_gpn_; }

 private:
  const GuestRam& ram_;
  const uint64_t first_gpn_;
  const uint64_t total_pages_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> free_ GUARDED_BY(mu_);       // gpn -> count, coalesced
  std::map<uint64_t, uint64_t> allocated_ GUARDED_BY(mu_);  // gpn -> count
  uint64_t free_pages_ GUARDED_BY(mu_) = 0;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_GUEST_PAGE_ALLOCATOR_H_
