// File: net/endpoint.h
//
// What: the packet-endpoint contract of the net/ layer. An `Endpoint` is one NIC's attachment to
// something that moves Ethernet frames (a switch port, a TAP device, a loopback, a pipe to an
// application); it owns `Queue`s, one per NIC queue (VMBus channel), each served by exactly one
// worker thread. The same contract serves both halves of the synthetic NIC:
//
//   host  (netvsp, backend):  Send = frames the guest transmitted, into the network;
//                             Poll = frames from the network, for the guest.
//   guest (netvsc, frontend): Send = frames the NIC received from the host, into the guest's
//                             stack (TAP) or application (pipe);
//                             Poll = frames the stack/application wants transmitted.
//
// A worker's loop (no locks, no allocation; one syscall per sleep at most):
//
//   Queue& q = endpoint.queue(i);
//   for (;;) {
//     RxBatch rx;  /* Add() up to kMaxBatch free buffers */
//     uint32_t n = q.Poll(rx);                      // fills rx[0..n)
//     ...deliver rx[0..n)...;  ...q.Send(tx) for frames going the other way...
//     if (n == 0 && nothing else to do && q.PrepareWait()) poll({q.wait_fd(), POLLIN, ...});
//   }
//
// Send() copies or writes every frame it consumes before it returns, so the caller may reuse all
// buffers at once (the contract an io_uring or AF_XDP backend keeps by copying into its own
// registered buffers/UMEM). Send() returns how many frames from the front of the batch it
// consumed - transmitted, or dropped and counted - and is short only on back-pressure (a TAP
// whose socket buffer is full); none of the built-in backends block.
//
// Queues exist for max_queues() from construction to destruction (references stay valid);
// SetQueueCount() chooses how many are active (receive steering spreads over the active ones).
// Reconfiguration (SetQueueCount) must not run concurrently with any queue's data path: the
// owner stops its workers first (netvsc/netvsp "detach + attach").
//
// Spec: vmbus-protocol.md 5.8 (one NIC queue per channel, sub-channels), 6.12 (link status).
// Linux/OpenVMM: OpenVMM vm/devices/net/net_backend/src/lib.rs (Endpoint::get_queues,
//       wait_for_endpoint_action, Queue::rx_poll/tx_avail, queue_stats); DPDK rte_ethdev bursts.
// Thread-safety: Queue: the data path (Send, Poll, PrepareWait) is called by one thread at a time
//       per queue (different queues on different threads concurrently); stats() and wait_fd()
//       from any thread. Endpoint: control calls (SetQueueCount, SetLinkUp, SetLinkListener) are
//       thread-safe with each other; link_up() and stats() from any thread.
#ifndef UVMBUS_NET_ENDPOINT_H_
#define UVMBUS_NET_ENDPOINT_H_

#include <cstdint>
#include <mutex>
#include <string_view>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "net/frame.h"
#include "net/net_stats.h"

namespace uvmbus::net {

// Most queues one endpoint has (OpenVMM's limit of 64 channels per vNIC; DPDK HN_MAX_CHANNELS).
inline constexpr uint32_t kMaxQueues = 64;

// One NIC queue of an endpoint.
class Queue {
 public:
  virtual ~Queue() = default;

  // Hands frames to the endpoint. Frames that fail CheckFrameLength() are dropped and counted
  // (tx_errors); while the link is down frames are dropped and counted (tx_carrier_errors).
  // Returns the number consumed from the front (== batch.size() unless back-pressure).
  virtual uint32_t Send(const FrameBatch& batch) = 0;

  // Fills the receive buffers of `batch` in order with frames for the NIC and returns how many
  // were filled (0: nothing pending: not an error). A frame larger than the buffer offered for it
  // is dropped and counted (rx_dropped); delivered frames are >= 60 bytes (zero-padded) when
  // the buffer allows.
  virtual uint32_t Poll(RxBatch& batch) = 0;

  // A descriptor that becomes readable (POLLIN) when frames may have arrived. The worker polls it
  // only after PrepareWait() returned true. Owned by the queue.
  virtual int wait_fd() const = 0;

  // Arms the wake-up before sleeping. Returns false if frames are already pending (poll again
  // instead of sleeping). After true, any frame that arrives makes wait_fd() readable. Spurious
  // wake-ups are possible.
  virtual bool PrepareWait() = 0;

  virtual NetStats stats() const = 0;
};

// Told about link (carrier) changes. Called synchronously on the thread that changed the link,
// with the endpoint's listener lock held: do not call back into SetLinkListener.
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  virtual void OnLinkChange(bool up) = 0;
};

// One NIC's attachment.
class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // For logs and capture files ("sw0/vm1", "tap3", "loopback").
  virtual std::string_view name() const = 0;

  // Largest frame accepted and delivered (MTU + 14).
  virtual uint32_t max_frame_size() const = 0;
  uint32_t mtu() const { return max_frame_size() - kEthHeaderSize; }

  // Queues: max_queues() exist; queue_count() (1..max_queues) are active.
  virtual uint32_t max_queues() const = 0;
  virtual uint32_t queue_count() const = 0;
  // Errors: kInvalidArgument if count is 0 or above max_queues(); backend errors (kIo).
  virtual Status SetQueueCount(uint32_t count) = 0;
  // index < max_queues(). The reference is valid for the endpoint's lifetime.
  virtual Queue& queue(uint32_t index) = 0;

  // Link (carrier) state. A down link drops what is sent and delivers nothing.
  virtual bool link_up() const = 0;
  // Changes the link state and, on a change, tells the listener.
  virtual Status SetLinkUp(bool up) = 0;

  // Installs (or, with nullptr, removes) the link listener; the listener must outlive the
  // installation.
  void SetLinkListener(LinkListener* listener) EXCLUDES(listener_mu_);

  // Sum over all queues (inactive ones included).
  NetStats stats();

 protected:
  // For implementations: reports a link change to the listener.
  void NotifyLinkChange(bool up) EXCLUDES(listener_mu_);

 private:
  std::mutex listener_mu_;
  LinkListener* listener_ GUARDED_BY(listener_mu_) = nullptr;
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_ENDPOINT_H_
