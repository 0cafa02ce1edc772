// File: net/frame_ring.h
//
// What: `FrameRing`, the bounded multi-producer / single-consumer frame queue behind every
// in-memory endpoint (switch port queues, pipes, loopback), plus its sleep/wake protocol.
//
// Storage: `depth` (a power of two) fixed slots of `slot_size` bytes allocated once; a frame is
// copied in by a producer and copied out by the consumer (no allocation, no lock). The slot
// protocol is D. Vyukov's bounded queue: every slot carries a sequence number; a producer claims
// position p with one CAS on the shared tail when slot p's sequence == p, copies, and publishes
// with sequence = p + 1 (release); the consumer takes slot p when its sequence == p + 1 (acquire)
// and frees it with sequence = p + depth. A full ring is detected without waiting (the producer
// drops the frame and the caller counts it): a slow receiver never blocks a sender.
//
// Wake-up (the lost-wake-up-free "arm, re-check, sleep" protocol):
//   consumer: PrepareWait(): drain the eventfd; armed.exchange(true, acq_rel); if a frame is
//             already visible return false (do not sleep); else sleep in poll(wait_fd).
//   producer: after publishing a batch of frames, WakeIfArmed(): if armed.exchange(false,
//             acq_rel) was true, write the eventfd.
// Both sides use read-modify-writes on `armed`, so they are totally ordered: either the
// producer's exchange comes later and sees `true` (it writes the eventfd), or the consumer's
// exchange comes later and, by acquire on the release sequence of `armed`, sees every frame the
// producer published before its exchange (it does not sleep). No fences are needed, and
// ThreadSanitizer understands the protocol. The producer pays one RMW per batch per ring.
//
// A producer preempted between claiming and publishing a slot hides later slots from the
// consumer until it publishes (the consumer reports "empty"); it then wakes the consumer itself.
//
// Spec: none (host-internal queueing); design.md section 4 (no locks on the per-queue path).
// Linux/OpenVMM: the role of a NIC receive ring; 1024cores.net "Bounded MPMC queue".
// Thread-safety: Push() and WakeIfArmed() from any number of threads; Pop(), PeekReady() and
//       PrepareWait() from one consumer thread at a time; wait_fd() from any thread.
#ifndef UVMBUS_NET_FRAME_RING_H_
#define UVMBUS_NET_FRAME_RING_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "common/error.h"
#include "common/unique_fd.h"
#include "net/frame.h"
#include "net/net_stats.h"

namespace uvmbus::net {

class FrameRing {
 public:
  // depth: a power of two in [2, 65536]; slot_size: the largest frame stored (14..kMaxFrameSize).
  // Errors: kInvalidArgument; kIo if the eventfd cannot be created.
  static Expected<std::unique_ptr<FrameRing>> Create(uint32_t depth, uint32_t slot_size);

  FrameRing(const FrameRing&) = delete;
  FrameRing& operator=(const FrameRing&) = delete;
  ~FrameRing();

  // Producer: copies `frame` into a free slot, then overwrites its first header.size() bytes with
  // `header` (a private, already-validated copy of the frame's header: what a receiver sees in
  // the header is what the sender's checks saw, even if the source memory changes under us), and
  // zero-pads to 60 bytes. Returns false (nothing stored) if the ring is full. Preconditions:
  // header.size() <= frame.size() <= slot_size().
  bool Push(std::span<const uint8_t> frame, std::span<const uint8_t> header);

  // Producer: after a batch of Push()es, wakes the consumer if it armed a sleep.
  void WakeIfArmed();

  enum class PopResult : uint8_t { kEmpty, kOk, kTooBig };
  // Consumer: moves the oldest frame into `dst` and sets *length. kTooBig: the frame did not fit
  // `dst` and was discarded (*length = its size). kEmpty: nothing visible.
  PopResult Pop(std::span<uint8_t> dst, uint32_t* length);

  // Consumer: true if a frame is ready to Pop().
  bool PeekReady() const;

  // Consumer: the arming step described above.
  bool PrepareWait();
  int wait_fd() const { return event_fd_.get(); }

  uint32_t depth() const { return depth_; }
  uint32_t slot_size() const { return slot_size_; }

 private:
  FrameRing(uint32_t depth, uint32_t slot_size, uint32_t stride, UniqueFd event_fd);

  struct alignas(16) SlotHeader {
    std::atomic<uint64_t> seq{0};
    uint32_t length = 0;  // written by the producer before publishing seq
  };

  const uint32_t depth_;
  const uint32_t mask_;
  const uint32_t slot_size_;
  const uint32_t stride_;  // slot_size_ rounded up to 64 bytes
  std::unique_ptr<SlotHeader[]> slots_;
  std::unique_ptr<uint8_t[]> data_;
  UniqueFd event_fd_;

  // Separate cache lines: producers contend on tail_, the consumer owns head_, both touch armed_.
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) uint64_t head_ = 0;
  alignas(64) std::atomic<bool> armed_{false};
};

// Consumer helper shared by the ring-backed queues: Pop()s into the buffers of `batch` in order,
// drops frames too big for the buffer offered (rx_dropped), counts rx_packets/rx_bytes/multicast
// once for the batch, and returns how many slots were filled.
uint32_t PollRingInto(FrameRing& ring, RxBatch& batch, QueueCounters& counters);

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_FRAME_RING_H_
