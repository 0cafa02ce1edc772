// File: devices/netvsc/rx_ring.h
//
// What: `RxRing`, one queue's receive ring between netvsc's NAPI poll (the producer: it copies
// each frame out of the shared receive buffer into a free slot, together with what the host's
// PPIs said about it) and the frontend thread that drains the queue with NetDevice::Receive()
// (the consumer). Single producer, single consumer, fixed slots allocated once: no lock, no
// allocation, one copy in and one copy out.
//
//   producer (NAPI, vCPU thread)              consumer (frontend thread)
//   Push(frame, info) per frame               Pop(batch, infos) -> n
//   WakeIfArmed() once per poll               if n == 0 && PrepareWait(): poll(wait_fd())
//
// Wake-up is the arm / re-check / sleep protocol of net/frame_ring.h: the consumer drains the
// eventfd, sets `armed` with an acq_rel exchange and re-checks for frames; the producer, after a
// batch, exchanges `armed` back to false and writes the eventfd only if it was armed. Both sides
// use read-modify-writes on `armed`, so either the producer sees the arm (and wakes) or the
// consumer sees the frames (and does not sleep). The same eventfd also wakes the consumer when
// its queue's transmit side is woken (Wake()), so a frontend sleeps on one fd per queue.
//
// Spec: vmbus-protocol.md 7.6 (NAPI hands frames to the stack before completing the ranges),
//       9.1 G1 (frames are copied out of shared memory once).
// Linux: the role of napi_gro_receive + the socket receive queue; DPDK rte_ring SP/SC.
// Thread-safety: Push()/WakeIfArmed() from one producer thread at a time, Pop()/PrepareWait()
// from one consumer thread at a time; Wake(), wait_fd() and the counters from any thread.
#ifndef UVMBUS_DEVICES_NETVSC_RX_RING_H_
#define UVMBUS_DEVICES_NETVSC_RX_RING_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "common/error.h"
#include "common/unique_fd.h"
#include "net/frame.h"

namespace uvmbus::netvsc {

// What the host's per-packet information said about a received frame (spec 6.6).
struct RxFrameInfo {
  static constexpr uint8_t kHasHash = 1u << 0;      // `hash` holds NBL_HASH_VALUE (type 8)
  static constexpr uint8_t kHasVlan = 1u << 1;      // `vlan_tci` holds the 802.1Q PPI (type 6)
  static constexpr uint8_t kHasChecksum = 1u << 2;  // `checksum` holds the RX checksum bits (0)
  static constexpr uint8_t kChecksumOk = 1u << 3;   // the host verified the TCP/UDP checksum

  uint32_t hash = 0;
  uint32_t checksum = 0;  // wire::kRxChecksum* bits as received
  uint16_t vlan_tci = 0;  // PCP << 13 | DEI << 12 | VLAN id (Linux __vlan_hwaccel_put_tag form)
  uint8_t flags = 0;
};

class RxRing {
 public:
  // `depth` frames (a power of two, 2..65536) of at most `slot_size` bytes (14..65536).
  // Errors: kInvalidArgument; kIo if the eventfd cannot be created.
  static Expected<std::unique_ptr<RxRing>> Create(uint32_t depth, uint32_t slot_size);
  ~RxRing();
  RxRing(const RxRing&) = delete;
  RxRing& operator=(const RxRing&) = delete;

  // Producer: copies `frame` (from shared memory; copied exactly once) and `info` into the next
  // slot. False if the ring is full or the frame is larger than slot_size() (nothing stored).
  bool Push(std::span<const uint8_t> frame, const RxFrameInfo& info);
  // Producer: after a batch of Push()es, wakes the consumer if it is about to sleep.
  void WakeIfArmed();

  // Consumer: moves up to batch.size() frames into the batch's buffers, in order; sets each
  // filled slot's length and, if `infos` is not null, infos[i]. A frame larger than the buffer
  // offered for it is dropped (counted in dropped_too_big()). Returns the number filled.
  uint32_t Pop(net::RxBatch& batch, RxFrameInfo* infos);
  // Consumer: true if at least one frame is ready.
  bool Ready() const;
  // Consumer: arm before sleeping. False if frames are already waiting (do not sleep).
  bool PrepareWait();
  // Any thread: wakes the consumer unconditionally if it armed (transmit-queue wake-ups).
  void Wake();
  // Becomes readable (POLLIN) when the consumer should look again. Owned by the ring.
  int wait_fd() const { return event_fd_.get(); }

  uint32_t depth() const { return depth_; }
  uint32_t slot_size() const { return slot_size_; }
  uint64_t dropped_too_big() const { return dropped_too_big_.load(std::memory_order_relaxed); }

 private:
  RxRing(uint32_t depth, uint32_t slot_size, uint32_t stride, UniqueFd event_fd);
  void WriteEvent();

  struct Slot {
    uint32_t length = 0;
    RxFrameInfo info;
  };

  const uint32_t depth_;
  const uint32_t mask_;
  const uint32_t slot_size_;
  const uint32_t stride_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint8_t[]> data_;
  UniqueFd event_fd_;

  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the producer
  uint64_t cached_head_ = 0;                   // producer's view of head_
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the consumer
  alignas(64) std::atomic<bool> armed_{false};
  std::atomic<uint64_t> dropped_too_big_{0};
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_RX_RING_H_
