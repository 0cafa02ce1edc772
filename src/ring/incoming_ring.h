// File: ring/incoming_ring.h
//
// What: `IncomingRing`, the consumer side of one VMBus ring (the side that owns read_index and
// interrupt_mask). Reading is a cursor protocol (OpenVMM IncomingRing::incoming / read /
// commit_read; Linux hv_pkt_iter_first / next / close):
//
//   ReadCursor c = in.BeginRead();
//   for (int n = 0; n < kQuota; ++n) {
//     ReadResult r = in.Read(c);                    // kEmpty ends the batch; kCorrupt: stop
//     if (!r.ok()) break;
//     Handle(r.packet.desc, r.packet.payload);      // a private, validated copy
//   }
//   if (in.CommitRead(c)) channel.SignalPeer();     // one signal decision per batch
//
// Copy-out (spec 9.1 G1, 3.8): Read() copies each packet once out of shared memory into a
// private buffer - the caller's, or the ring's own reusable buffer of max_packet_size bytes -
// and validates the copy of the descriptor before copying the rest, so later changes by the
// peer cannot affect what was validated. The returned spans point into that buffer (valid
// until the next Read() into it).
//
// Validation is strict (OpenVMM style: reject, never clamp), checked in this order, each with
// its own RingError (spec 9.4): write_index >= D or unaligned (R1, kBadWriteIndex);
// 0 < available < 16 (R2, kShortAvailable); len8*8 < 16 (R3, kBadLength); len8*8 + 8 >
// available (R4, kBeyondAvailable); len8*8 > max packet size (R5, kPacketTooLarge); offset8 < 2
// or > len8 (R6, kBadOffset); flags beyond bit 0 (R7, kBadFlags); type not 6/7/9/11 (R8,
// kBadType); offset8 < 3 for types 7 and 9 (R9, kBadOffset). A rejected packet is counted and
// not consumed; the channel should be stopped.
//
// Signalling (spec 3.5): CommitRead() publishes read_index and, if the writer advertised
// feat_pending_send_sz and has a pending_send_sz p (low 3 bits masked, R13; p >= D is never
// satisfiable, R14), signals only on the transition "free <= p" -> "free > p" caused by this
// commit. Interrupt masking (spec 3.6): BeginReadMask() / EndReadMask(), the latter returning
// the bytes that raced in (the caller must then read again).
//
// Spec: vmbus-protocol.md 3.2, 3.3, 3.5, 3.6, 3.7, 9.1 G1-G3, 9.4 R1-R9, R13, R14.
// Linux: drivers/hv/ring_buffer.c (hv_pkt_iter_first/__hv_pkt_iter_next/hv_pkt_iter_close,
//        hv_begin_read/hv_end_read), drivers/hv/channel.c (intr_in_full counting).
// OpenVMM: vm/devices/vmbus/vmbus_ring/src/lib.rs (IncomingRing, IncomingOffset,
//          parse_packet).
// Thread-safety: one IncomingRing is used by one thread at a time (the consumer). The producer
// runs concurrently on another thread or process and is treated as hostile: every index and
// descriptor field it controls is validated before use and no access leaves the ring or the
// destination buffer. stats() may be read from any thread.
#ifndef UVMBUS_RING_INCOMING_RING_H_
#define UVMBUS_RING_INCOMING_RING_H_

#include <cstdint>
#include <memory>
#include <span>

#include <tl/expected.hpp>

#include "common/counter.h"
#include "ring/ring_error.h"
#include "ring/ring_view.h"
#include "wire/ring_format.h"

namespace uvmbus::ring {

// Consumer-side statistics (Linux Documentation/ABI/stable/sysfs-bus-vmbus names where Linux
// has the counter, per channel, for the channel's inbound ring).
struct IncomingRingStats {
  // intr_in_full: commits that returned needs_signal, i.e. freed space crossed the writer's
  // pending_send_sz (full -> not full while a packet waits for room).
  SingleWriterCounter intr_in_full;
  // Packets consumed and ring bytes (packets + trailers) released by CommitRead().
  SingleWriterCounter packets;
  SingleWriterCounter bytes;
  // Rejections by kind.
  RingErrorCounters errors;
};

// Position of an open read batch. Obtain from IncomingRing::BeginRead(); at most one open
// cursor per ring; only CommitRead() hands the space back to the writer.
class ReadCursor {
 public:
  // read_index when the batch began.
  uint32_t start_index() const { return start_; }
  // Where the next packet is read from (Linux priv_read_index).
  uint32_t next_index() const { return next_; }
  // Packets read in this batch so far.
  uint32_t packets() const { return packets_; }

 private:
  friend class IncomingRing;
  uint32_t start_ = 0;
  uint32_t next_ = 0;
  uint32_t cached_write_ = 0;  // writer's write_index as last seen (validated)
  uint32_t packets_ = 0;
  uint64_t bytes_ = 0;
};

// A validated packet, copied out of the ring.
struct IncomingPacket {
  wire::PacketDescriptor desc{};      // the validated descriptor (also at bytes[0..16))
  std::span<const uint8_t> bytes;     // the whole packet, len8 * 8 bytes, trailer excluded
  std::span<const uint8_t> payload;   // bytes[offset8 * 8, len8 * 8): includes padding

  wire::PacketType type() const { return static_cast<wire::PacketType>(desc.type); }
  bool completion_requested() const {
    return (desc.flags & wire::kPacketFlagCompletionRequested) != 0;
  }
};

enum class ReadStatus : uint8_t {
  kOk,       // `packet` is valid
  kEmpty,    // nothing to read (flow control, not an error)
  kCorrupt,  // see ReadResult::error; the packet was not consumed
};

struct ReadResult {
  ReadStatus status = ReadStatus::kEmpty;
  RingError error = RingError::kBadWriteIndex;  // meaningful only for kCorrupt
  IncomingPacket packet;

  bool ok() const { return status == ReadStatus::kOk; }
};

// Outcome of CommitRead(): the signal decision and the values it was based on (so tests can
// check the decision is exactly spec 3.5's function of them).
struct ReadCommit {
  bool needs_signal = false;
  // False if the cursor consumed nothing: nothing was stored and nothing was read.
  bool committed = false;
  uint32_t old_read_index = 0;  // read_index before the commit ("start")
  uint32_t new_read_index = 0;  // the value stored
  // feature_bits bit 0 as read after the store; pending_send_sz is read only if set.
  bool feature_pending_send_sz = false;
  bool pending_sampled = false;
  uint32_t pending_send_sz = 0;  // raw value (before masking the low 3 bits)
  // write_index is read only if (pending_send_sz & ~7) is in (0, D).
  bool write_index_sampled = false;
  uint32_t write_index = 0;

  explicit operator bool() const { return needs_signal; }
};

class IncomingRing {
 public:
  struct Options {
    // Size of the ring's own packet buffer used by Read(cursor): the largest packet accepted
    // (R5). Linux: 4096 by default, netvsc 4624 (spec 3.9). Clamped to D; 0 = no own buffer
    // (only Read(cursor, buffer) is usable).
    uint32_t max_packet_size = wire::kVmbusDefaultMaxPacketSize;
  };

  // Attaches to the ring as its consumer. Reads and validates read_index once
  // (kBadReadIndex); from then on it is kept privately. Allocates the packet buffer and the
  // stats block once; nothing is allocated per packet.
  static tl::expected<IncomingRing, RingError> Create(RingView view, const Options& options);
  static tl::expected<IncomingRing, RingError> Create(RingView view) {
    return Create(view, Options{});
  }

  IncomingRing(IncomingRing&&) noexcept = default;
  IncomingRing& operator=(IncomingRing&&) noexcept = default;
  IncomingRing(const IncomingRing&) = delete;
  IncomingRing& operator=(const IncomingRing&) = delete;

  // Opens a batch at the committed read index. Touches no shared memory.
  ReadCursor BeginRead() const {
    ReadCursor c;
    c.start_ = c.next_ = read_index_;
    c.cached_write_ = cached_write_index_;
    return c;
  }

  // Reads the next packet into the ring's own buffer (max_packet_size bytes). The result's
  // spans are valid until the next Read(cursor) on this ring. write_index is loaded only when
  // the cached value says the ring is drained.
  ReadResult Read(ReadCursor& cursor) {
    return Read(cursor, std::span<uint8_t>(buffer_.get(), buffer_size_));
  }

  // Reads the next packet into `buffer`, whose size is the largest packet accepted (R5).
  ReadResult Read(ReadCursor& cursor, std::span<uint8_t> buffer);

  // Hands the consumed space back (spec 3.5 steps 4-9) and decides, once for the batch,
  // whether the writer must be signalled. The cursor stays usable for a further batch.
  ReadCommit CommitRead(ReadCursor& cursor);

  // Spec 3.6 hv_begin_read: interrupt_mask = 1, full barrier. The writer stops signalling.
  void BeginReadMask();

  // Spec 3.6 hv_end_read: interrupt_mask = 0, full barrier, then the bytes available beyond
  // the committed read index (commit first). Non-zero means data arrived while masked and no
  // signal will come for it: read again. kBadWriteIndex if write_index is invalid.
  tl::expected<uint32_t, RingError> EndReadMask();

  // "read_avail": bytes between the committed read index and a fresh write_index.
  tl::expected<uint32_t, RingError> BytesAvailable() const;

  // Whether the writer advertised feat_pending_send_sz in this ring (spec 3.1).
  bool PeerSupportsPendingSendSize() const;

  // The committed read index.
  uint32_t read_index() const { return read_index_; }
  // Size of the own packet buffer (the max_packet_size option, clamped to D).
  uint32_t max_packet_size() const { return buffer_size_; }
  const RingView& view() const { return view_; }
  // Counters; stable address for the lifetime of this object (moves keep it).
  const IncomingRingStats& stats() const { return *stats_; }

 private:
  IncomingRing(RingView view, uint32_t read_index, uint32_t buffer_size);

  ReadResult Fail(RingError error);

  RingView view_;
  uint32_t read_index_ = 0;          // committed read index: our private copy
  uint32_t cached_write_index_ = 0;  // last validated write_index seen
  uint32_t buffer_size_ = 0;
  std::unique_ptr<uint8_t[]> buffer_;
  std::unique_ptr<IncomingRingStats> stats_;
};

}  // namespace uvmbus::ring

#endif  // UVMBUS_RING_INCOMING_RING_H_
