// File: ring/outgoing_ring.h
//
// What: `OutgoingRing`, the producer side of one VMBus ring (the side that owns write_index and
// pending_send_sz). Writing is a cursor protocol (OpenVMM OutgoingRing::outgoing / write /
// commit_write; style.md 1.9 #4):
//
//   WriteCursor c = out.BeginWrite();
//   WriteResult r = out.Write(c, header, payload);   // repeat for a batch; kFull => stop
//   if (out.CommitWrite(c)) channel.SignalPeer();     // one signal decision per batch
//
// Write() frames the packet in the data area - header, payload, zero padding to 8 bytes, then
// the 8-byte trailer whose high 32 bits are the packet's start index - wrapping at the end of
// the data area (spec 3.2). Nothing is visible to the reader until CommitWrite() publishes the
// new write_index; an abandoned cursor simply discards its packets.
//
// Space (spec 3.3): a packet of `total` ring bytes (packet + padding + trailer) is written only
// if raw free space > total, so the ring is never completely full, and `total` must be
// <= D - 16 (the portable maximum; larger packets are refused as kInvalid/kPacketTooLarge, R12).
// The peer's read_index is cached and re-read (and validated, R1) only when the cached value
// says there is not enough room.
//
// Signalling (spec 3.4): CommitWrite() stores write_index, then - after a full barrier - reads
// interrupt_mask and, if it is 0, read_index; it reports needs_signal iff the mask was 0 and
// read_index == the write index before the batch (the ring was empty: the reader had consumed
// everything). The returned WriteCommit also carries the values the decision was based on.
//
// Flow control (spec 3.5, writer side): after kFull, commit what the cursor holds, then
// SetPendingSendSize(total); if it returns true there is room already (retry), else wait for
// the reader's signal and retry. The next successful CommitWrite() clears pending_send_sz.
//
// Spec: vmbus-protocol.md 3.2, 3.3, 3.4, 3.5 (writer side), 3.7, 9.4 R1, R12.
// Linux: drivers/hv/ring_buffer.c (hv_ringbuffer_write, hv_signal_on_write),
//        drivers/hv/channel.c (out_full_first/out_full_total, intr_out_empty counting).
// OpenVMM: vm/devices/vmbus/vmbus_ring/src/lib.rs (OutgoingRing, OutgoingOffset).
// Thread-safety: one OutgoingRing is used by one thread at a time (the producer). The consumer
// runs concurrently on another thread or process through the same shared memory and is
// treated as hostile: every value read from it is validated; memory outside the ring is never
// touched whatever it writes. stats() may be read from any thread.
#ifndef UVMBUS_RING_OUTGOING_RING_H_
#define UVMBUS_RING_OUTGOING_RING_H_

#include <cstdint>
#include <memory>
#include <span>

#include <tl/expected.hpp>

#include "common/counter.h"
#include "ring/ring_error.h"
#include "ring/ring_view.h"

namespace uvmbus::ring {

// Producer-side statistics. Names follow Linux Documentation/ABI/stable/sysfs-bus-vmbus where
// Linux has the counter (per channel, for the channel's outbound ring).
struct OutgoingRingStats {
  // intr_out_empty: commits that returned needs_signal, i.e. the ring went empty -> non-empty
  // while the reader was not masked (Linux counts it where it signals the host).
  SingleWriterCounter intr_out_empty;
  // out_full_first: writes that found the ring full and were the first to do so since the last
  // successful write.
  SingleWriterCounter out_full_first;
  // out_full_total: every write that found the ring full.
  SingleWriterCounter out_full_total;
  // Packets and ring bytes (packet + padding + trailer) published by CommitWrite().
  SingleWriterCounter packets;
  SingleWriterCounter bytes;
  // Non-zero pending_send_sz values published by SetPendingSendSize().
  SingleWriterCounter pending_send_sz_set;
  // Rejections by kind (peer corruption and caller errors).
  RingErrorCounters errors;
};

// Position of an open write batch. Obtain from OutgoingRing::BeginWrite(); at most one open
// cursor per ring; only CommitWrite() makes its packets visible.
class WriteCursor {
 public:
  // Write index before the first packet of this batch (old_w of spec 3.4).
  uint32_t start_index() const { return start_; }
  // Where the next packet will start.
  uint32_t next_index() const { return next_; }
  // Packets written into this batch so far.
  uint32_t packets() const { return packets_; }

 private:
  friend class OutgoingRing;
  uint32_t start_ = 0;
  uint32_t next_ = 0;
  uint32_t cached_read_ = 0;  // peer's read_index as last seen (validated)
  uint32_t packets_ = 0;
  uint64_t bytes_ = 0;
};

enum class WriteStatus : uint8_t {
  kOk,       // packet framed into the batch
  kFull,     // not enough room now (flow control, not an error): see WriteResult::total
  kInvalid,  // caller error, nothing written: kPacketTooLarge (R12) or kBadHeader
  kCorrupt,  // the peer's read_index is invalid (kBadReadIndex, R1): stop the channel
};

struct WriteResult {
  WriteStatus status = WriteStatus::kOk;
  // Which rule failed, for kInvalid / kCorrupt.
  RingError error = RingError::kBadHeader;
  // Ring bytes the packet takes: payload + header padded to 8, plus the 8-byte trailer (the
  // `total` of spec 3.3). For kFull this is the space needed: pass it to SetPendingSendSize().
  uint32_t total = 0;

  bool ok() const { return status == WriteStatus::kOk; }
};

// Outcome of CommitWrite(): the signal decision and the values it was based on (so tests can
// check the decision is exactly spec 3.4's function of them).
struct WriteCommit {
  bool needs_signal = false;
  // False if the cursor held no packets: nothing was stored and nothing was read.
  bool committed = false;
  uint32_t old_write_index = 0;  // old_w
  uint32_t new_write_index = 0;  // the value stored into write_index
  uint32_t interrupt_mask = 0;   // read after the store and a full barrier
  // read_index is read only when interrupt_mask == 0 (spec 3.4 step 7).
  bool read_index_sampled = false;
  uint32_t read_index = 0;

  explicit operator bool() const { return needs_signal; }
};

class OutgoingRing {
 public:
  struct Options {
    // Set feature_bits = feat_pending_send_sz in this ring (spec 3.1): promise to set
    // pending_send_sz when blocked and to honour the peer's in the opposite ring. Linux and
    // OpenVMM both advertise it.
    bool advertise_pending_send_sz = true;
  };

  // Attaches to the ring as its producer. Reads and validates write_index (kBadWriteIndex) and
  // read_index (kBadReadIndex) once; from then on the own write index is kept privately (the
  // writer is its only legitimate author, spec 3.4 step 1). Stores pending_send_sz = 0 and,
  // per options, feature_bits. Allocates the stats block once.
  static tl::expected<OutgoingRing, RingError> Create(RingView view, const Options& options);
  static tl::expected<OutgoingRing, RingError> Create(RingView view) {
    return Create(view, Options{});
  }

  OutgoingRing(OutgoingRing&&) noexcept = default;
  OutgoingRing& operator=(OutgoingRing&&) noexcept = default;
  OutgoingRing(const OutgoingRing&) = delete;
  OutgoingRing& operator=(const OutgoingRing&) = delete;

  // Opens a batch at the committed write index. Touches no shared memory.
  WriteCursor BeginWrite() const {
    WriteCursor c;
    c.start_ = c.next_ = write_index_;
    c.cached_read_ = cached_read_index_;
    return c;
  }

  // Frames one packet into the batch: `header` is a descriptor plus any type-specific header
  // (see wire::Encode*Header), with offset8 * 8 == header.size() and len8 * 8 ==
  // round_up_8(header.size() + payload.size()); `payload` follows it. No allocation, no
  // syscall; shared memory is touched only for the copy and, when the cached read index says
  // the packet does not fit, one load of read_index.
  WriteResult Write(WriteCursor& cursor, std::span<const uint8_t> header,
                    std::span<const uint8_t> payload);

  // As Write() with the payload gathered from several buffers, in order.
  WriteResult WriteGather(WriteCursor& cursor, std::span<const uint8_t> header,
                          std::span<const std::span<const uint8_t>> payload_parts);

  // DATA_INBAND packet (spec 4.3): offset8 = 2, flags = completion_requested.
  WriteResult WriteInband(WriteCursor& cursor, std::span<const uint8_t> payload,
                          uint64_t trans_id, bool completion_requested);

  // COMP packet answering `trans_id` (spec 4.3).
  WriteResult WriteCompletion(WriteCursor& cursor, std::span<const uint8_t> payload,
                              uint64_t trans_id);

  // Publishes the batch (spec 3.4 steps 5-7) and decides, once for the whole batch, whether
  // the reader must be signalled. Also clears pending_send_sz if SetPendingSendSize() set it.
  // The cursor stays usable for a further batch starting at the new index.
  WriteCommit CommitWrite(WriteCursor& cursor);

  // Writer side of spec 3.5: publishes pending_send_sz = `total` rounded up to 8 (the space
  // of the blocked packet including its trailer, i.e. WriteResult::total), then re-reads
  // read_index to close the race with a reader that freed space just before seeing it.
  // Returns true if the ring already has room for `total` (retry the write now), false if the
  // caller should wait for the reader's signal. Commit any open batch first: the re-check uses
  // the committed write index. Errors: kPacketTooLarge if total > D - 16 (can never fit),
  // kBadReadIndex if the re-read index is invalid.
  tl::expected<bool, RingError> SetPendingSendSize(uint32_t total);

  // Stores pending_send_sz = 0 (no longer blocked).
  void ClearPendingSendSize();

  // Sets or clears feat_pending_send_sz in this ring's feature_bits (spec 3.1).
  void SetFeaturePendingSendSize(bool enabled);

  // "write_avail": raw free bytes now (fresh read_index vs. the committed write index), or
  // kBadReadIndex.
  tl::expected<uint32_t, RingError> BytesFree() const;

  // Largest `total` (packet + padding + trailer) this ring accepts: D - 16 (spec 3.3), or less
  // on rings so large that len8 (16 bits) is the limit.
  uint32_t max_total() const { return max_total_; }
  // Largest payload of an in-band packet: max_total() - 16 (descriptor) - 8 (trailer).
  uint32_t max_inband_payload() const { return max_total() - 24; }

  // The committed (published) write index.
  uint32_t write_index() const { return write_index_; }
  const RingView& view() const { return view_; }
  // Counters; stable address for the lifetime of this object (moves keep it).
  const OutgoingRingStats& stats() const { return *stats_; }

 private:
  OutgoingRing(RingView view, uint32_t write_index, uint32_t read_index);

  WriteResult Full(uint32_t total);
  WriteResult Fail(WriteStatus status, RingError error);

  RingView view_;
  uint32_t max_total_ = 0;
  uint32_t write_index_ = 0;        // committed write index: our private copy
  uint32_t cached_read_index_ = 0;  // last validated read_index seen
  bool pending_set_ = false;        // we published a non-zero pending_send_sz
  bool out_full_flag_ = false;      // a write found the ring full since the last success
  std::unique_ptr<OutgoingRingStats> stats_;
};

}  // namespace uvmbus::ring

#endif  // UVMBUS_RING_OUTGOING_RING_H_
