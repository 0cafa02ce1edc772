// File: ring/ring_view.cc
//
// RingView creation, snapshots, ring-header initialisation and RingError names.
#include "ring/ring_view.h"

#include <cstring>

namespace uvmbus::ring {

std::string_view RingErrorName(RingError error) {
  switch (error) {
    case RingError::kBadRingMemory: return "bad_ring_memory";
    case RingError::kBadReadIndex: return "bad_read_index";
    case RingError::kBadWriteIndex: return "bad_write_index";
    case RingError::kShortAvailable: return "short_available";
    case RingError::kBadLength: return "bad_length";
    case RingError::kBeyondAvailable: return "beyond_available";
    case RingError::kPacketTooLarge: return "packet_too_large";
    case RingError::kBadOffset: return "bad_offset";
    case RingError::kBadFlags: return "bad_flags";
    case RingError::kBadType: return "bad_type";
    case RingError::kBadHeader: return "bad_header";
  }
  return "unknown";
}

Error ToError(RingError error) {
  const ErrorCode code =
      error == RingError::kBadRingMemory || error == RingError::kBadHeader
          ? ErrorCode::kInvalidArgument
          : ErrorCode::kCorrupt;
  return Error::Make(code, "ring: {}", RingErrorName(error));
}

tl::expected<RingView, RingError> RingView::Create(std::span<uint8_t> ring) {
  if (ring.data() == nullptr ||
      ring.size() < uint64_t{wire::kRingHeaderSize} + wire::kRingMinDataSize ||
      ring.size() % wire::kRingPageSize != 0 ||
      ring.size() - wire::kRingHeaderSize > kMaxRingDataSize ||
      reinterpret_cast<uintptr_t>(ring.data()) % 8 != 0) {
    return tl::unexpected(RingError::kBadRingMemory);
  }
  return RingView(ring.data(), static_cast<uint32_t>(ring.size() - wire::kRingHeaderSize));
}

RingSnapshot RingView::Snapshot() const {
  RingSnapshot s;
  s.data_size = data_size_;
  if (base_ == nullptr) return s;
  // Relaxed: statistics only; the fields may be mutually inconsistent.
  s.write_index = write_index().load(std::memory_order_relaxed);
  s.read_index = read_index().load(std::memory_order_relaxed);
  s.interrupt_mask = interrupt_mask().load(std::memory_order_relaxed);
  s.pending_send_sz = pending_send_sz().load(std::memory_order_relaxed);
  s.feature_bits = feature_bits().load(std::memory_order_relaxed);
  return s;
}

tl::expected<RingView, RingError> InitRingControl(std::span<uint8_t> ring,
                                                  const RingInitOptions& options) {
  auto view = RingView::Create(ring);
  if (!view) return view;
  std::memset(view->base(), 0, wire::kRingHeaderSize);
  view->feature_bits().store(options.feature_pending_send_sz ? wire::kRingFeaturePendingSendSz : 0,
                             std::memory_order_relaxed);
  view->interrupt_mask().store(options.interrupt_mask, std::memory_order_relaxed);
  // Release: a peer that learns of this ring through a later synchronising operation (e.g. the
  // GPADL/open handshake) sees a fully formatted header.
  view->write_index().store(0, std::memory_order_release);
  return view;
}

}  // namespace uvmbus::ring
