// File: ring/ring_view.h
//
// What: `RingView`, a non-owning view of one VMBus ring in mapped memory: the 4 KiB control
// page followed by a data area of D bytes (D a multiple of 4096, >= 4096). It offers
//   * the control fields (write_index, read_index, interrupt_mask, pending_send_sz,
//     feature_bits) as std::atomic_ref<uint32_t>, so every access is a single, non-torn load or
//     store with an explicit memory order chosen at the call site (spec 3.7);
//   * wrap-around byte copies into and out of the data area (the ring is mapped once; a copy
//     that passes the end continues at offset 0, spec 3.2 - no double mapping needed, 3.8);
//   * the space formulas of spec 3.3 and a relaxed snapshot for statistics.
// `InitRingControl()` formats a fresh ring header the way Linux does.
//
// The peer shares this memory and is hostile: every index read from it must be validated
// (IsValidIndex) before use, and packet bytes are copied out before parsing (spec 9.1 G1).
// Only the ring classes (OutgoingRing / IncomingRing) implement the protocol; use them.
//
// Spec: vmbus-protocol.md 3.1 (layout, index rules), 3.2 (wrap), 3.3 (space), 3.7 (ordering),
//       3.8 (why a single mapping suffices).
// Linux: drivers/hv/ring_buffer.c (hv_ringbuffer_init, hv_get_bytes_to_read/_write).
// OpenVMM: vm/devices/vmbus/vmbus_ring/src/lib.rs (RingMem, SingleMappedRingMem, InnerRing).
// Thread-safety: RingView is an immutable value (pointer + size), freely copied between
// threads. The memory it views is shared by one writer thread and one reader thread, possibly
// in different processes; the ring classes document who touches what.
#ifndef UVMBUS_RING_RING_VIEW_H_
#define UVMBUS_RING_RING_VIEW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include <tl/expected.hpp>

#include "ring/ring_error.h"
#include "wire/ring_format.h"

namespace uvmbus::ring {

// Largest data area accepted. Indices are u32 and the code adds an index (< D) and a length
// (<= D); keeping D <= 2^31 makes every such sum fit in 32 bits.
inline constexpr uint32_t kMaxRingDataSize = 1u << 31;

// Bytes a reader at `r` may read when the writer is at `w` (Linux hv_get_bytes_to_read).
constexpr uint32_t RingBytesToRead(uint32_t w, uint32_t r, uint32_t data_size) {
  return w >= r ? w - r : data_size - r + w;
}

// Raw free bytes for a writer at `w` when the reader is at `r` (Linux hv_get_bytes_to_write,
// spec 3.3). A write of `total` bytes is allowed only if this is > total (the ring is never
// filled completely: w == r means empty).
constexpr uint32_t RingBytesToWrite(uint32_t w, uint32_t r, uint32_t data_size) {
  return w >= r ? data_size - (w - r) : r - w;
}

// A relaxed, possibly inconsistent snapshot of a ring's control fields (for statistics, e.g.
// Linux sysfs in_/out_read_index, _write_index, _intr_mask, _read_bytes_avail,
// _write_bytes_avail).
struct RingSnapshot {
  uint32_t data_size = 0;
  uint32_t write_index = 0;
  uint32_t read_index = 0;
  uint32_t interrupt_mask = 0;
  uint32_t pending_send_sz = 0;
  uint32_t feature_bits = 0;

  bool indices_valid() const {
    return write_index < data_size && read_index < data_size && write_index % 8 == 0 &&
           read_index % 8 == 0;
  }
  // "read_avail": bytes the reader could consume; 0 if an index is invalid.
  uint32_t read_bytes_avail() const {
    return indices_valid() ? RingBytesToRead(write_index, read_index, data_size) : 0;
  }
  // "write_avail": raw free bytes for the writer; 0 if an index is invalid.
  uint32_t write_bytes_avail() const {
    return indices_valid() ? RingBytesToWrite(write_index, read_index, data_size) : 0;
  }
};

class RingView {
 public:
  // An empty view (data_size() == 0); only useful as a placeholder.
  RingView() = default;

  // Views `ring` = control page + data area. Fails with kBadRingMemory unless ring.size() is
  // 4096 + D with D a non-zero multiple of 4096, D <= kMaxRingDataSize, and ring.data() is
  // 8-byte aligned. The memory must outlive the view and every ring object built on it.
  static tl::expected<RingView, RingError> Create(std::span<uint8_t> ring);

  // Data area size D in bytes.
  uint32_t data_size() const { return data_size_; }
  // Start of the control page / of the data area.
  uint8_t* base() const { return base_; }
  uint8_t* data() const { return base_ + wire::kRingHeaderSize; }

  // The control fields (spec 3.1). Callers pick the memory order and say why.
  std::atomic_ref<uint32_t> write_index() const {
    return Field(offsetof(wire::RingControlPage, write_index));
  }
  std::atomic_ref<uint32_t> read_index() const {
    return Field(offsetof(wire::RingControlPage, read_index));
  }
  std::atomic_ref<uint32_t> interrupt_mask() const {
    return Field(offsetof(wire::RingControlPage, interrupt_mask));
  }
  std::atomic_ref<uint32_t> pending_send_sz() const {
    return Field(offsetof(wire::RingControlPage, pending_send_sz));
  }
  std::atomic_ref<uint32_t> feature_bits() const {
    return Field(offsetof(wire::RingControlPage, feature_bits));
  }

  // An index read from shared memory is usable only if it is inside the data area and 8-byte
  // aligned (spec 3.1, 9.4 R1).
  bool IsValidIndex(uint32_t index) const { return index < data_size_ && index % 8 == 0; }

  // (offset + len) mod D for offset < D and len <= D; cannot overflow (D <= 2^31).
  uint32_t Advance(uint32_t offset, uint32_t len) const {
    const uint32_t next = offset + len;
    return next >= data_size_ ? next - data_size_ : next;
  }

  // Copies `len` (<= D) bytes to the data area at `offset` (< D), continuing at 0 past the end.
  // Returns Advance(offset, len).
  uint32_t CopyIn(uint32_t offset, const void* src, uint32_t len) const {
    if (len == 0) return offset;  // src may be null for an empty span
    const uint32_t first = len < data_size_ - offset ? len : data_size_ - offset;
    std::memcpy(data() + offset, src, first);
    if (first < len) std::memcpy(data(), static_cast<const uint8_t*>(src) + first, len - first);
    return Advance(offset, len);
  }

  // Copies `len` (<= D) bytes from the data area at `offset` (< D), wrapping as CopyIn().
  uint32_t CopyOut(uint32_t offset, void* dst, uint32_t len) const {
    if (len == 0) return offset;
    const uint32_t first = len < data_size_ - offset ? len : data_size_ - offset;
    std::memcpy(dst, data() + offset, first);
    if (first < len) std::memcpy(static_cast<uint8_t*>(dst) + first, data(), len - first);
    return Advance(offset, len);
  }

  // Relaxed loads of every control field (statistics only; never base a protocol decision on
  // it).
  RingSnapshot Snapshot() const;

 private:
  RingView(uint8_t* base, uint32_t data_size) : base_(base), data_size_(data_size) {}

  std::atomic_ref<uint32_t> Field(size_t offset) const {
    // The control page is the one place shared memory is accessed in place rather than copied
    // out: spec 3.7 requires single, non-torn 32-bit loads/stores of these fields. Create()
    // checked the 8-byte alignment atomic_ref needs.
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(base_ + offset));
  }

  uint8_t* base_ = nullptr;
  uint32_t data_size_ = 0;
};

// Options for InitRingControl().
struct RingInitOptions {
  // feature_bits bit 0 (feat_pending_send_sz). Linux sets it in both rings it creates.
  bool feature_pending_send_sz = true;
  // Initial interrupt_mask. Linux: 0. OpenVMM's host starts its incoming ring masked (1).
  uint32_t interrupt_mask = 0;
};

// Formats a new ring's control page as Linux hv_ringbuffer_init() does: the whole page zeroed
// (indices 0, pending_send_sz 0), then feature_bits and interrupt_mask from `options`.
// Precondition: the ring is not yet shared with a peer (the memset is not atomic).
// Fails as RingView::Create().
tl::expected<RingView, RingError> InitRingControl(std::span<uint8_t> ring,
                                                  const RingInitOptions& options = {});

}  // namespace uvmbus::ring

#endif  // UVMBUS_RING_RING_VIEW_H_
