// File: ring/outgoing_ring.cc
//
// Producer side of a VMBus ring (spec 3.2-3.5, 3.7). Memory-order notes: the index, mask and
// pending fields are accessed through std::atomic_ref. The two "store, full barrier, load"
// steps of the protocol (publish write_index then read interrupt_mask/read_index; publish
// pending_send_sz then re-read read_index) are Dekker pairs with the reader's mirror-image
// steps; they use a seq_cst store followed by seq_cst loads, which C++ orders like
// store; full fence; load (x86: XCHG; arm64: STLR then LDAR), i.e. Linux's virt_mb().
#include "ring/outgoing_ring.h"

#include <algorithm>
#include <cstring>

namespace uvmbus::ring {
namespace {

constexpr uint8_t kZeroPadding[8] = {};

std::span<const uint8_t> DescriptorBytes(const wire::PacketDescriptor& d) {
  return {reinterpret_cast<const uint8_t*>(&d), sizeof(d)};
}

}  // namespace

OutgoingRing::OutgoingRing(RingView view, uint32_t write_index, uint32_t read_index)
    : view_(view),
      // D - 16 keeps one spare quadword beyond Linux's "free > total" rule, so OpenVMM peers
      // (which refuse total >= D - 8) accept every packet we send (spec 3.3).
      max_total_(std::min<uint32_t>(view.data_size() - 16,
                                    wire::kMaxPacketLength + wire::kPacketTrailerSize)),
      write_index_(write_index),
      cached_read_index_(read_index),
      stats_(std::make_unique<OutgoingRingStats>()) {}

tl::expected<OutgoingRing, RingError> OutgoingRing::Create(RingView view,
                                                           const Options& options) {
  if (view.data_size() < wire::kRingMinDataSize) {
    return tl::unexpected(RingError::kBadRingMemory);
  }
  // Acquire: pairs with the release that published the formatted header (InitRingControl) or
  // with the previous producer's last commit.
  const uint32_t w = view.write_index().load(std::memory_order_acquire);
  if (!view.IsValidIndex(w)) return tl::unexpected(RingError::kBadWriteIndex);
  // Acquire: pairs with the reader's release of read_index; space behind it is ours to reuse.
  const uint32_t r = view.read_index().load(std::memory_order_acquire);
  if (!view.IsValidIndex(r)) return tl::unexpected(RingError::kBadReadIndex);
  OutgoingRing ring(view, w, r);
  // We are not blocked; a value left from an earlier owner would make the reader signal
  // for nothing.
  view.pending_send_sz().store(0, std::memory_order_relaxed);
  if (options.advertise_pending_send_sz) ring.SetFeaturePendingSendSize(true);
  return ring;
}

WriteResult OutgoingRing::Fail(WriteStatus status, RingError error) {
  stats_->errors.Add(error);
  WriteResult r;
  r.status = status;
  r.error = error;
  return r;
}

WriteResult OutgoingRing::Full(uint32_t total) {
  // Linux semantics: out_full_total counts every full write, out_full_first only the first
  // one after a successful write (the flag is reset in WriteGather on success).
  stats_->out_full_total.Add(1);
  if (!out_full_flag_) {
    stats_->out_full_first.Add(1);
    out_full_flag_ = true;
  }
  WriteResult r;
  r.status = WriteStatus::kFull;
  r.total = total;
  return r;
}

WriteResult OutgoingRing::Write(WriteCursor& cursor, std::span<const uint8_t> header,
                                std::span<const uint8_t> payload) {
  return WriteGather(cursor, header, std::span<const std::span<const uint8_t>>(&payload, 1));
}

WriteResult OutgoingRing::WriteGather(WriteCursor& cursor, std::span<const uint8_t> header,
                                      std::span<const std::span<const uint8_t>> payload_parts) {
  // All size arithmetic in 64 bits: the caller's sizes are unbounded until checked.
  uint64_t payload_len = 0;
  for (const auto& part : payload_parts) payload_len += part.size();
  const uint64_t header_len = header.size();
  if (header_len < wire::kPacketDescriptorSize || header_len % 8 != 0) {
    return Fail(WriteStatus::kInvalid, RingError::kBadHeader);
  }
  const uint64_t packet_len = (header_len + payload_len + 7) / 8 * 8;
  const uint64_t total64 = packet_len + wire::kPacketTrailerSize;
  if (total64 > max_total_) return Fail(WriteStatus::kInvalid, RingError::kPacketTooLarge);
  wire::PacketDescriptor desc;
  std::memcpy(&desc, header.data(), sizeof(desc));
  if (uint64_t{desc.offset8} * 8 != header_len || uint64_t{desc.len8} * 8 != packet_len) {
    return Fail(WriteStatus::kInvalid, RingError::kBadHeader);
  }
  const auto total = static_cast<uint32_t>(total64);
  const uint32_t d = view_.data_size();
  const uint32_t start = cursor.next_;

  // Space check (spec 3.3): strictly more free space than the packet needs, so the ring never
  // becomes completely full (w == r must keep meaning "empty"). The cached read index can only
  // understate the free space (the reader only moves forward), so it is re-read only when it
  // says the packet does not fit.
  if (RingBytesToWrite(start, cursor.cached_read_, d) <= total) {
    // Acquire: pairs with the reader's release store of read_index, so its copies out of the
    // space it freed are complete before we overwrite that space.
    const uint32_t r = view_.read_index().load(std::memory_order_acquire);
    if (!view_.IsValidIndex(r)) return Fail(WriteStatus::kCorrupt, RingError::kBadReadIndex);
    cursor.cached_read_ = r;
    if (RingBytesToWrite(start, r, d) <= total) return Full(total);
  }

  // Frame: header, payload, zero padding, trailer; each copy wraps at the end of the data
  // area. Plain stores: nothing here is visible to the reader until CommitWrite() publishes the
  // index with release semantics.
  uint32_t pos = view_.CopyIn(start, header.data(), static_cast<uint32_t>(header_len));
  for (const auto& part : payload_parts) {
    pos = view_.CopyIn(pos, part.data(), static_cast<uint32_t>(part.size()));
  }
  const auto padding = static_cast<uint32_t>(packet_len - header_len - payload_len);
  pos = view_.CopyIn(pos, kZeroPadding, padding);
  // Trailer: the start index in the high 32 bits (spec 3.2). `pos` is 8-aligned here and D is
  // a multiple of 8, so the trailer never straddles the wrap point.
  const uint64_t trailer = wire::MakePacketTrailer(start);
  pos = view_.CopyIn(pos, &trailer, sizeof(trailer));

  cursor.next_ = pos;
  ++cursor.packets_;
  cursor.bytes_ += total;
  out_full_flag_ = false;
  WriteResult result;
  result.total = total;
  return result;
}

WriteResult OutgoingRing::WriteInband(WriteCursor& cursor, std::span<const uint8_t> payload,
                                      uint64_t trans_id, bool completion_requested) {
  const uint64_t packet_len = (wire::kPacketDescriptorSize + uint64_t{payload.size()} + 7) / 8 * 8;
  if (packet_len > wire::kMaxPacketLength) {
    return Fail(WriteStatus::kInvalid, RingError::kPacketTooLarge);
  }
  wire::PacketDescriptor desc{};
  desc.type = static_cast<uint16_t>(wire::PacketType::kDataInband);
  desc.offset8 = wire::kPacketDescriptorSize8;
  desc.len8 = static_cast<uint16_t>(packet_len / 8);
  desc.flags = completion_requested ? wire::kPacketFlagCompletionRequested : 0;
  desc.trans_id = trans_id;
  return Write(cursor, DescriptorBytes(desc), payload);
}

WriteResult OutgoingRing::WriteCompletion(WriteCursor& cursor, std::span<const uint8_t> payload,
                                          uint64_t trans_id) {
  const uint64_t packet_len = (wire::kPacketDescriptorSize + uint64_t{payload.size()} + 7) / 8 * 8;
  if (packet_len > wire::kMaxPacketLength) {
    return Fail(WriteStatus::kInvalid, RingError::kPacketTooLarge);
  }
  wire::PacketDescriptor desc{};
  desc.type = static_cast<uint16_t>(wire::PacketType::kComp);
  desc.offset8 = wire::kPacketDescriptorSize8;
  desc.len8 = static_cast<uint16_t>(packet_len / 8);
  desc.flags = 0;  // a completion never requests a completion
  desc.trans_id = trans_id;
  return Write(cursor, DescriptorBytes(desc), payload);
}

WriteCommit OutgoingRing::CommitWrite(WriteCursor& cursor) {
  WriteCommit result;
  result.old_write_index = cursor.start_;
  result.new_write_index = cursor.next_;
  if (cursor.packets_ == 0) return result;  // nothing to publish, nothing to signal

  // Spec 3.4 steps 5-6 (3.7 rows 1-2). The seq_cst store is a release: every packet byte of
  // the batch is visible before a reader can observe the new index. Being seq_cst it is also
  // ordered before the seq_cst loads below (the full barrier of step 7): without that, our
  // read of interrupt_mask/read_index could be satisfied before the index store is visible,
  // and a reader that just unmasked and found the ring empty would sleep while we decide not
  // to signal - a lost wakeup.
  view_.write_index().store(cursor.next_, std::memory_order_seq_cst);
  write_index_ = cursor.next_;
  result.committed = true;

  if (pending_set_) {
    // We wrote, so we are no longer blocked (spec 3.5 writer side). Relaxed: at worst the
    // reader sees the stale value and sends one spurious signal.
    view_.pending_send_sz().store(0, std::memory_order_relaxed);
    pending_set_ = false;
  }

  // Step 7. A masked reader is polling and promised to re-check before sleeping: no signal.
  // The seq_cst (hence acquire) load orders the read_index load after it - the "read barrier"
  // that keeps a stale read_index from being paired with a fresh mask.
  const uint32_t mask = view_.interrupt_mask().load(std::memory_order_seq_cst);
  result.interrupt_mask = mask;
  if (mask == 0) {
    const uint32_t r = view_.read_index().load(std::memory_order_seq_cst);
    result.read_index_sampled = true;
    result.read_index = r;
    // Signal only on empty -> non-empty: the reader had consumed everything up to where this
    // batch began. Hyper-V penalises other signals, so this must be exact (spec 3.4). No
    // validation needed for an equality test against our own index.
    result.needs_signal = r == cursor.start_;
    // A fresh, valid read index is a better cache than the one the cursor holds.
    if (view_.IsValidIndex(r)) cursor.cached_read_ = r;
  }
  cached_read_index_ = cursor.cached_read_;

  stats_->packets.Add(cursor.packets_);
  stats_->bytes.Add(cursor.bytes_);
  if (result.needs_signal) stats_->intr_out_empty.Add(1);

  cursor.start_ = cursor.next_;
  cursor.packets_ = 0;
  cursor.bytes_ = 0;
  return result;
}

tl::expected<bool, RingError> OutgoingRing::SetPendingSendSize(uint32_t total) {
  // Multiple of 8, as every ring size is (OpenVMM rounds up the same way).
  const uint64_t rounded = (uint64_t{total} + 7) / 8 * 8;
  if (rounded == 0) {
    ClearPendingSendSize();
    return true;
  }
  if (rounded > max_total_) {
    stats_->errors.Add(RingError::kPacketTooLarge);
    return tl::unexpected(RingError::kPacketTooLarge);
  }
  // Dekker pair with IncomingRing::CommitRead (store read_index; full barrier; load
  // pending_send_sz): seq_cst store then seq_cst load. Either the reader sees our value and
  // applies the transition rule, or our re-read below sees the space it freed - never neither,
  // so a blocked writer cannot sleep through the only wakeup.
  view_.pending_send_sz().store(static_cast<uint32_t>(rounded), std::memory_order_seq_cst);
  pending_set_ = true;
  stats_->pending_send_sz_set.Add(1);
  const uint32_t r = view_.read_index().load(std::memory_order_seq_cst);
  if (!view_.IsValidIndex(r)) {
    stats_->errors.Add(RingError::kBadReadIndex);
    return tl::unexpected(RingError::kBadReadIndex);
  }
  cached_read_index_ = r;
  return RingBytesToWrite(write_index_, r, view_.data_size()) > rounded;
}

void OutgoingRing::ClearPendingSendSize() {
  // Relaxed: clearing only ever suppresses a signal we no longer need.
  view_.pending_send_sz().store(0, std::memory_order_relaxed);
  pending_set_ = false;
}

void OutgoingRing::SetFeaturePendingSendSize(bool enabled) {
  // Relaxed: it is set when attaching, before the first packet; the release store of
  // write_index in CommitWrite() then publishes it to every reader that has seen a packet.
  view_.feature_bits().store(enabled ? wire::kRingFeaturePendingSendSz : 0,
                             std::memory_order_relaxed);
}

tl::expected<uint32_t, RingError> OutgoingRing::BytesFree() const {
  const uint32_t r = view_.read_index().load(std::memory_order_acquire);
  if (!view_.IsValidIndex(r)) return tl::unexpected(RingError::kBadReadIndex);
  return RingBytesToWrite(write_index_, r, view_.data_size());
}

}  // namespace uvmbus::ring
