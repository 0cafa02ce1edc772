// File: ring/incoming_ring.cc
//
// Consumer side of a VMBus ring (spec 3.5-3.7, 9.4). Memory-order notes: write_index is loaded
// with acquire (pairs with the writer's release/seq_cst store, making the packet bytes before
// it visible). The "store, full barrier, load" steps (publish read_index then read
// pending_send_sz; change interrupt_mask then read write_index) are Dekker pairs with the
// writer's mirror-image steps and use a seq_cst store followed by a seq_cst load (x86: XCHG;
// arm64: STLR then LDAR), i.e. Linux's virt_mb().
#include "ring/incoming_ring.h"

#include <algorithm>
#include <cstring>

namespace uvmbus::ring {

IncomingRing::IncomingRing(RingView view, uint32_t read_index, uint32_t buffer_size)
    : view_(view),
      read_index_(read_index),
      // "Nothing known to read": the first Read() loads write_index.
      cached_write_index_(read_index),
      buffer_size_(buffer_size),
      buffer_(buffer_size != 0 ? std::make_unique<uint8_t[]>(buffer_size) : nullptr),
      stats_(std::make_unique<IncomingRingStats>()) {}

tl::expected<IncomingRing, RingError> IncomingRing::Create(RingView view,
                                                           const Options& options) {
  if (view.data_size() < wire::kRingMinDataSize) {
    return tl::unexpected(RingError::kBadRingMemory);
  }
  // Acquire: pairs with the release that published the formatted header or with the previous
  // consumer's last commit.
  const uint32_t r = view.read_index().load(std::memory_order_acquire);
  if (!view.IsValidIndex(r)) return tl::unexpected(RingError::kBadReadIndex);
  return IncomingRing(view, r, std::min(options.max_packet_size, view.data_size()));
}

ReadResult IncomingRing::Fail(RingError error) {
  stats_->errors.Add(error);
  ReadResult r;
  r.status = ReadStatus::kCorrupt;
  r.error = error;
  return r;
}

ReadResult IncomingRing::Read(ReadCursor& cursor, std::span<uint8_t> buffer) {
  const uint32_t d = view_.data_size();
  const uint32_t r = cursor.next_;
  uint32_t w = cursor.cached_write_;
  if (w == r) {
    // Drained up to the last index we saw: look again (spec 3.5 step 2, one load - G2).
    // Acquire: pairs with the writer's release of write_index, so every packet byte before
    // `w` is visible to the copies below.
    w = view_.write_index().load(std::memory_order_acquire);
    if (!view_.IsValidIndex(w)) return Fail(RingError::kBadWriteIndex);  // R1
    cursor.cached_write_ = w;
    if (w == r) return ReadResult{};  // kEmpty
  }
  // A published write index always ends a whole packet + trailer, so fewer bytes than a
  // descriptor means the writer is broken (R2; Linux would just see "nothing to read").
  const uint32_t avail = RingBytesToRead(w, r, d);
  if (avail < wire::kPacketDescriptorSize) return Fail(RingError::kShortAvailable);

  // Copy the descriptor out once and validate the copy; it is also what the caller gets, so a
  // peer rewriting the ring meanwhile cannot change validated fields (G1, R15).
  wire::PacketDescriptor desc;
  view_.CopyOut(r, &desc, sizeof(desc));
  const uint32_t len = uint32_t{desc.len8} * 8;  // <= 524280: no overflow below
  if (len < wire::kPacketDescriptorSize) return Fail(RingError::kBadLength);            // R3
  if (len + wire::kPacketTrailerSize > avail) return Fail(RingError::kBeyondAvailable);  // R4
  if (len > buffer.size()) return Fail(RingError::kPacketTooLarge);                      // R5
  if (desc.offset8 < wire::kPacketDescriptorSize8 || desc.offset8 > desc.len8) {
    return Fail(RingError::kBadOffset);  // R6
  }
  if ((desc.flags & ~wire::kPacketFlagCompletionRequested) != 0) {
    return Fail(RingError::kBadFlags);  // R7
  }
  if (!wire::IsAcceptedPacketType(desc.type)) return Fail(RingError::kBadType);  // R8
  if ((desc.type == static_cast<uint16_t>(wire::PacketType::kDataUsingXferPages) ||
       desc.type == static_cast<uint16_t>(wire::PacketType::kDataUsingGpaDirect)) &&
      desc.offset8 < 3) {
    return Fail(RingError::kBadOffset);  // R9: 24-byte header must precede the payload
  }

  std::memcpy(buffer.data(), &desc, sizeof(desc));
  view_.CopyOut(view_.Advance(r, wire::kPacketDescriptorSize),
                buffer.data() + wire::kPacketDescriptorSize, len - wire::kPacketDescriptorSize);
  // Skip packet and trailer (spec 3.2; the trailer is never interpreted).
  const uint32_t consumed = len + wire::kPacketTrailerSize;
  cursor.next_ = view_.Advance(r, consumed);
  ++cursor.packets_;
  cursor.bytes_ += consumed;

  ReadResult result;
  result.status = ReadStatus::kOk;
  result.packet.desc = desc;
  result.packet.bytes = buffer.first(len);
  const uint32_t payload_offset = uint32_t{desc.offset8} * 8;
  result.packet.payload = buffer.subspan(payload_offset, len - payload_offset);
  return result;
}

ReadCommit IncomingRing::CommitRead(ReadCursor& cursor) {
  ReadCommit result;
  result.old_read_index = cursor.start_;
  result.new_read_index = cursor.next_;
  if (cursor.packets_ == 0) return result;  // nothing freed: nothing to publish or signal
  const uint32_t d = view_.data_size();

  // Spec 3.5 steps 4 and 6 (3.7 rows 3-4). The seq_cst store is a release: all our copies out
  // of the consumed packets complete before the writer can see the space as free and reuse
  // it. Being seq_cst it is also ordered before the seq_cst load of pending_send_sz below (the
  // full barrier): otherwise a writer that stores pending_send_sz just after our load and then
  // re-checks free space could miss this store too, and sleep forever.
  view_.read_index().store(cursor.next_, std::memory_order_seq_cst);
  read_index_ = cursor.next_;
  result.committed = true;
  stats_->packets.Add(cursor.packets_);
  stats_->bytes.Add(cursor.bytes_);

  // Step 5: no signalling unless the writer promised to use pending_send_sz. Relaxed: the
  // writer sets it once when attaching, before its first packet.
  const uint32_t features = view_.feature_bits().load(std::memory_order_relaxed);
  result.feature_pending_send_sz = (features & wire::kRingFeaturePendingSendSz) != 0;
  if (result.feature_pending_send_sz) {
    // Step 7. seq_cst load after the seq_cst store above; being an acquire it also orders the
    // write_index load after it (the read barrier of step 8).
    const uint32_t raw = view_.pending_send_sz().load(std::memory_order_seq_cst);
    result.pending_sampled = true;
    result.pending_send_sz = raw;
    // R13: some writers store D - 1; sizes are multiples of 8, so mask the low bits.
    const uint32_t pending = raw & ~uint32_t{7};
    // pending == 0: writer not blocked (the common case). R14: free space never exceeds D,
    // so pending >= D can never be satisfied - never signal for it.
    if (pending != 0 && pending < d) {
      const uint32_t w = view_.write_index().load(std::memory_order_acquire);
      result.write_index_sampled = true;
      result.write_index = w;
      if (!view_.IsValidIndex(w)) {
        stats_->errors.Add(RingError::kBadWriteIndex);  // R1; no signal on garbage
      } else {
        cursor.cached_write_ = w;
        // Step 9: signal only on the transition "not enough room" -> "enough room" caused by
        // this commit. Room for the blocked packet means free > pending (spec 3.3), so
        // signal iff free_before <= pending < free_now. Signed 64-bit: a hostile write_index
        // can make cur_free < freed.
        const uint32_t cur_free = RingBytesToWrite(w, cursor.next_, d);
        const uint32_t freed = RingBytesToRead(cursor.next_, cursor.start_, d);
        const int64_t free_before = int64_t{cur_free} - int64_t{freed};
        result.needs_signal = free_before <= int64_t{pending} && cur_free > pending;
      }
    }
  }
  cached_write_index_ = cursor.cached_write_;
  if (result.needs_signal) stats_->intr_in_full.Add(1);

  cursor.start_ = cursor.next_;
  cursor.packets_ = 0;
  cursor.bytes_ = 0;
  return result;
}

void IncomingRing::BeginReadMask() {
  // seq_cst store: the full barrier after the mask store (3.7 last row) - our later reads of
  // write_index are ordered after the writer can see the mask.
  view_.interrupt_mask().store(1, std::memory_order_seq_cst);
}

tl::expected<uint32_t, RingError> IncomingRing::EndReadMask() {
  // Unmask, full barrier, re-check (spec 3.6): a Dekker pair with the writer's "store
  // write_index; full barrier; load interrupt_mask". Either the writer sees mask == 0 and
  // signals, or we see its new write_index here and read again - a packet committed while we
  // were masked can never be left without a wakeup.
  view_.interrupt_mask().store(0, std::memory_order_seq_cst);
  const uint32_t w = view_.write_index().load(std::memory_order_seq_cst);
  if (!view_.IsValidIndex(w)) {
    stats_->errors.Add(RingError::kBadWriteIndex);
    return tl::unexpected(RingError::kBadWriteIndex);
  }
  cached_write_index_ = w;
  return RingBytesToRead(w, read_index_, view_.data_size());
}

tl::expected<uint32_t, RingError> IncomingRing::BytesAvailable() const {
  const uint32_t w = view_.write_index().load(std::memory_order_acquire);
  if (!view_.IsValidIndex(w)) return tl::unexpected(RingError::kBadWriteIndex);
  return RingBytesToRead(w, read_index_, view_.data_size());
}

bool IncomingRing::PeerSupportsPendingSendSize() const {
  return (view_.feature_bits().load(std::memory_order_relaxed) &
          wire::kRingFeaturePendingSendSz) != 0;
}

}  // namespace uvmbus::ring
