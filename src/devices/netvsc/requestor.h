// File: devices/netvsc/requestor.h
//
// What: `Requestor`, one channel's table of requests waiting for the host's completion (Linux
// struct vmbus_requestor, vmbus_next_request_id / vmbus_request_addr). Nothing of the guest ever
// goes on the wire as a pointer: a request's cookie (what to release when it completes) is stored
// in a free slot and the packet carries trans_id = slot + 1, so 0 is never used (spec 4.7). On a
// completion the trans_id is validated before anything is touched (R16: 0, beyond the table, or a
// free slot) and the slot's kind must be one the completing NVSP message can answer (R17).
// All storage is allocated at construction (a free-index stack); nothing per request.
//
// Spec: vmbus-protocol.md 4.7 (request ids, table size), 9.4 R16, R17, 9.5 N22.
// Linux: drivers/hv/channel.c (vmbus_next_request_id, vmbus_request_addr_match),
//        drivers/net/hyperv/netvsc.c (netvsc_rqstor_size).
// Thread-safety: none of its own. netvsc uses one per channel and calls it only with that
// channel's outbound lock held (the transmit thread allocates, the channel's NAPI poll completes;
// both hold the lock once per batch).
#ifndef UVMBUS_DEVICES_NETVSC_REQUESTOR_H_
#define UVMBUS_DEVICES_NETVSC_REQUESTOR_H_

#include <cstdint>
#include <memory>

#include <tl/expected.hpp>

namespace uvmbus::netvsc {

// What a slot is waiting for (the "cookie" kind Linux compares on completion, R17).
enum class RequestKind : uint8_t {
  kFree = 0,
  kData,          // a data send (SEND_RNDIS_PKT, channel_type 0): completes with NVSP 108
  kRndisControl,  // an RNDIS control message (channel_type 1): completes with NVSP 108
  kNvspControl,   // INIT / SEND_RECV_BUF / SEND_SEND_BUF / SUBCHANNEL: completes with their reply
};

// What to release when the request completes. 16 bytes; copied, never shared.
struct RequestCookie {
  RequestKind kind = RequestKind::kFree;
  uint8_t packets = 0;     // kData: frames in this send
  uint16_t bounce = 0;     // kData: bounce slot + 1 (0 = none); kRndisControl: buffer slot
  uint32_t section = 0;    // kData: send-buffer section (SectionBitmap::kNone = none)
  uint32_t bytes = 0;      // kData: frame bytes (for tx_queue_<n>_bytes)
  uint32_t sequence = 0;   // kNvspControl / kRndisControl: which request of the waiter
};

// Why a completion's trans_id was refused (R16 / R17).
enum class CompleteError : uint8_t {
  kZeroId,        // trans_id 0 (reserved for unsolicited host messages)
  kOutOfRange,    // trans_id - 1 >= table size
  kNotAllocated,  // the slot is free (a duplicate or invented completion)
  kWrongKind,     // the slot holds a request the completing message cannot answer
};

class Requestor {
 public:
  // Linux netvsc_rqstor_size(): ring_bytes / (16 + 40) + ring_bytes / 16 - room for every packet
  // one ring can hold, whether a 56-byte send or a 16-byte completion (42459 for 528384 bytes).
  static uint32_t LinuxSize(uint32_t ring_bytes) { return ring_bytes / 56 + ring_bytes / 16; }

  // A table of `size` slots (>= 1), all free.
  explicit Requestor(uint32_t size);
  Requestor(const Requestor&) = delete;
  Requestor& operator=(const Requestor&) = delete;

  // Stores `cookie` (kind != kFree) in a free slot and returns its trans_id (slot + 1), or 0 if
  // every slot is in use (Linux -EAGAIN).
  uint64_t Allocate(const RequestCookie& cookie);

  // Frees the slot of a request that was never sent (the ring write failed after Allocate).
  // Returns the cookie, or nothing if trans_id does not name an allocated slot.
  tl::expected<RequestCookie, CompleteError> Cancel(uint64_t trans_id);

  // Validates a completion's trans_id and, if the slot holds a request of one of `allowed`
  // kinds (a bit mask of 1 << RequestKind), frees the slot and returns its cookie. A wrong kind
  // leaves the slot allocated (the genuine completion may still come).
  tl::expected<RequestCookie, CompleteError> Complete(uint64_t trans_id, uint32_t allowed);

  // The cookie of an allocated slot without freeing it (for tests and diagnostics).
  tl::expected<RequestCookie, CompleteError> Peek(uint64_t trans_id) const;

  uint32_t size() const { return size_; }
  uint32_t outstanding() const { return size_ - free_count_; }

  static constexpr uint32_t Bit(RequestKind kind) { return 1u << static_cast<uint32_t>(kind); }

 private:
  tl::expected<uint32_t, CompleteError> Slot(uint64_t trans_id) const;

  const uint32_t size_;
  std::unique_ptr<RequestCookie[]> slots_;
  std::unique_ptr<uint32_t[]> free_;  // stack of free slot indexes
  uint32_t free_count_;
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_REQUESTOR_H_
