// File: devices/netvsp/mailbox.h
//
// What: `Mailbox`, how one NIC queue hands received frames to another. RSS (spec 8.5) picks the
// channel a frame must be delivered on from the frame's Toeplitz hash and the guest's
// indirection table, but the frame arrives on whichever backend queue the backend chose; only
// the thread serving a channel may write that channel's host->guest ring. So the receiving
// queue copies the frame straight into a receive-buffer sub-allocation (as it would for itself),
// writes the RNDIS header, and posts {section, length} to the target queue's mailbox; the
// target puts it into its next transfer-page packet. No frame bytes are copied twice.
//
// Storage: a bounded multi-producer / single-consumer queue of small PODs (D. Vyukov's bounded
// queue: per-slot sequence numbers, one CAS per push, no lock, no allocation after Create). A
// full mailbox makes Push() fail: the producer drops the frame and counts it (never waits).
//
// Wake-up: an eventfd the target's worker polls. Producers call WakeIfArmed() once per batch;
// the consumer arms before sleeping (PrepareWait: drain the eventfd, armed = true with a
// read-modify-write, re-check). Both sides use RMWs on `armed`, so either the producer sees
// armed (and writes the eventfd) or the consumer sees the item (and does not sleep) - the same
// protocol as net/frame_ring.h. Kick() writes the eventfd unconditionally (control requests:
// "send the indirection table", "link changed", "stop").
//
// Spec: vmbus-protocol.md 8.5 (queue = indirection table entry), 5.8 (one queue per channel).
// Linux/OpenVMM: OpenVMM netvsp delegates steering to the backend (Endpoint::get_queues with an
//       RSS config); uvmbus backends steer by their own hash, so netvsp re-steers here.
// Thread-safety: Push/WakeIfArmed/Kick from any thread; Pop/PrepareWait from the consumer thread.
#ifndef UVMBUS_DEVICES_NETVSP_MAILBOX_H_
#define UVMBUS_DEVICES_NETVSP_MAILBOX_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::netvsp {

// One steered frame: it sits in receive-buffer sub-allocation `section`, its RNDIS PACKET_MSG
// (header, PPIs, frame) is `msg_len` bytes, already written.
struct SteeredFrame {
  uint32_t section = 0;
  uint32_t msg_len = 0;
  uint32_t frame_len = 0;
};

class Mailbox {
 public:
  // depth: a power of two in [2, 65536]. Errors: kInvalidArgument, kIo (eventfd).
  static Expected<std::unique_ptr<Mailbox>> Create(uint32_t depth);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Producer: false if full (nothing stored).
  bool Push(const SteeredFrame& item);
  // Producer, after a batch of pushes: wakes the consumer if it armed a sleep.
  void WakeIfArmed();
  // Any thread: wakes the consumer whether or not it is armed.
  void Kick();

  // Consumer: the oldest item, or false when none is visible.
  bool Pop(SteeredFrame* out);
  // Consumer: true if an item is ready to Pop().
  bool PeekReady() const;
  // Consumer: drains the eventfd, arms, and returns false if an item is already visible (do not
  // sleep), true otherwise.
  bool PrepareWait();
  int fd() const { return event_fd_.get(); }

  // Whether the consumer queue is serving (producers fall back to delivering themselves when
  // not). Set by the owner of the consumer thread.
  void set_accepting(bool accepting) { accepting_.store(accepting, std::memory_order_release); }
  bool accepting() const { return accepting_.load(std::memory_order_acquire); }

 private:
  struct Slot {
    std::atomic<uint64_t> seq{0};
    SteeredFrame item;
  };
  Mailbox(uint32_t depth, UniqueFd event_fd);

  const uint32_t depth_;
  const uint32_t mask_;
  std::unique_ptr<Slot[]> slots_;
  UniqueFd event_fd_;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) uint64_t head_ = 0;
  alignas(64) std::atomic<bool> armed_{false};
  std::atomic<bool> accepting_{false};
};

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_MAILBOX_H_
