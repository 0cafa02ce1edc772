// File: ring/ring_error.h
//
// What: the typed ways a VMBus ring can be unusable, and per-ring counters for them. Flow
// control (ring empty / ring full) is NOT a RingError: readers report kEmpty and writers kFull
// through their own result types (style.md 1.9 #3, OpenVMM vmbus_ring Error / ReadError /
// WriteError). Each value names exactly one rule of spec 9.4 so that bad-input tests can check
// the precise rejection.
// Spec: vmbus-protocol.md 9.4 R1-R9, R12; 3.1 (index rules).
// OpenVMM: vm/devices/vmbus/vmbus_ring/src/lib.rs (enum Error).
// Thread-safety: RingErrorCounters follows SingleWriterCounter: one thread increments (the
// thread that owns the ring side), any thread may read snapshots.
#ifndef UVMBUS_RING_RING_ERROR_H_
#define UVMBUS_RING_RING_ERROR_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/counter.h"
#include "common/error.h"

namespace uvmbus::ring {

enum class RingError : uint8_t {
  // Creation: the span is not a 4 KiB header plus a whole number (>= 1) of 4 KiB data pages,
  // is not 8-byte aligned, or the data area exceeds kMaxRingDataSize.
  kBadRingMemory,
  // R1: read_index >= D or not a multiple of 8 (seen by the writer, or at reader creation).
  kBadReadIndex,
  // R1: write_index >= D or not a multiple of 8 (seen by the reader, or at writer creation).
  kBadWriteIndex,
  // R2: 0 < bytes available < 16 (less than one descriptor).
  kShortAvailable,
  // R3: len8 * 8 < 16 (a packet shorter than its descriptor).
  kBadLength,
  // R4: len8 * 8 + 8 (packet + trailer) > bytes available.
  kBeyondAvailable,
  // R5 (reader): len8 * 8 > the receiver's maximum packet size.
  // R12 (writer, caller error): packet + trailer > D - 16, or len8 would exceed 0xFFFF.
  kPacketTooLarge,
  // R6: offset8 < 2 or offset8 > len8; R9: offset8 < 3 for transfer-page / GPA-direct packets.
  kBadOffset,
  // R7: descriptor flags other than bit 0.
  kBadFlags,
  // R8: packet type not one of 6, 7, 9, 11.
  kBadType,
  // Writer, caller error: the header handed to Write() is not a descriptor whose offset8/len8
  // match the header and payload sizes.
  kBadHeader,
};
inline constexpr size_t kRingErrorCount = static_cast<size_t>(RingError::kBadHeader) + 1;

// Stable snake_case name, used in logs and as the counter name ("bad_read_index", ...).
std::string_view RingErrorName(RingError error);

// Converts to the project's Error for coarse boundaries (channel open/close): kCorrupt for
// ring corruption, kInvalidArgument for memory-shape errors. Allocates; control paths only.
Error ToError(RingError error);

// One counter per RingError kind.
class RingErrorCounters {
 public:
  void Add(RingError error) { counters_[static_cast<size_t>(error)].Add(1); }
  uint64_t Get(RingError error) const { return counters_[static_cast<size_t>(error)].Get(); }
  // Sum over all kinds.
  uint64_t Total() const {
    uint64_t sum = 0;
    for (const auto& c : counters_) sum += c.Get();
    return sum;
  }

 private:
  std::array<SingleWriterCounter, kRingErrorCount> counters_{};
};

}  // namespace uvmbus::ring

#endif  // UVMBUS_RING_RING_ERROR_H_
