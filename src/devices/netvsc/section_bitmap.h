// File: devices/netvsc/section_bitmap.h
//
// What: `SectionBitmap`, the lock-free allocator of send-buffer sections (Linux
// netvsc_device.send_section_map with sync_test_and_set_bit / sync_change_bit). One bit per
// section; a set bit is a section in use. Allocate() scans from a caller hint (each queue starts
// in its own region of the buffer, so queues rarely touch the same cache line) for a clear bit
// and claims it with an atomic fetch_or; Free() clears it with fetch_and. The send buffer is
// shared by every channel (spec 5.8), so several queues' transmit threads allocate concurrently
// while the channels' NAPI polls free sections as the host completes sends.
//
// Spec: vmbus-protocol.md 5.6 (send buffer sections), 5.8 (buffers shared by all channels).
// Linux: drivers/net/hyperv/netvsc.c (netvsc_get_next_send_section, netvsc_free_send_slot).
// Thread-safety: Allocate() and Free() may be called from any number of threads concurrently.
// Allocation allocates no memory and takes no lock. A successful Allocate() happens-before the
// Free() of that section (acq_rel read-modify-writes), so the section's bytes written before a
// send are never seen by the next owner out of order.
#ifndef UVMBUS_DEVICES_NETVSC_SECTION_BITMAP_H_
#define UVMBUS_DEVICES_NETVSC_SECTION_BITMAP_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace uvmbus::netvsc {

class SectionBitmap {
 public:
  // "No section" (Linux NETVSC_INVALID_INDEX), also the NVSP send_buf_section_index meaning
  // "send buffer not used".
  static constexpr uint32_t kNone = 0xFFFFFFFF;

  // A bitmap of `count` sections, all free. count may be 0 (nothing to allocate).
  explicit SectionBitmap(uint32_t count);
  SectionBitmap(const SectionBitmap&) = delete;
  SectionBitmap& operator=(const SectionBitmap&) = delete;

  // Claims a free section, scanning from `hint` (any value; taken modulo count) and wrapping.
  // Returns its index, or kNone if every section is in use.
  uint32_t Allocate(uint32_t hint);
  // Releases a section. Returns false (and changes nothing) if `index` is out of range or was
  // not in use - a double free, which only a confused caller can cause.
  bool Free(uint32_t index);

  uint32_t count() const { return count_; }
  // Sections in use now (racy snapshot).
  uint32_t in_use() const { return in_use_.load(std::memory_order_relaxed); }

 private:
  const uint32_t count_;
  const uint32_t words_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
  std::atomic<uint32_t> in_use_{0};
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_SECTION_BITMAP_H_
