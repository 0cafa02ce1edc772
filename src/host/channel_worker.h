// File: host/channel_worker.h
//
// What: `ChannelWorker`, a host data-path helper: one thread (or the caller, via Poll()) waits
// with epoll on the doorbells of the channels bound to it and runs each channel's callback when
// the guest signalled it. Devices (heartbeat, netvsp) bind their open channels here instead of
// each owning threads (design.md section 4: data workers polling or sleeping on doorbells).
//
// Per channel it follows spec 3.6 on the host's inbound (guest->host) ring: interrupt_mask = 1
// while the callback drains, so the guest's writer does not signal for packets that arrive
// meanwhile; then unmask, full barrier, re-check (IncomingRing::EndReadMask): if bytes raced in,
// mask again and call the callback again, so no wake-up is lost. A callback that stops at its
// quota returns kMore and is called again on the next round without waiting (style 1.9 #11).
//
//   worker.Bind(channel, [&](HostChannel& ch) {
//     auto c = ch.inbound().BeginRead();
//     for (int n = 0; n < kQuota; ++n) { auto r = ch.inbound().Read(c); if (!r.ok()) break; ... }
//     if (ch.inbound().CommitRead(c)) ch.SignalGuest();
//     return n == kQuota ? WorkResult::kMore : WorkResult::kDone;
//   });
//
// Spec: vmbus-protocol.md 3.4 (writer skips the signal while interrupt_mask is set), 3.5, 3.6
//       (hv_begin_read / hv_end_read on the host side), 1.7 (SignalEvent -> doorbell).
// OpenVMM: vm/devices/vmbus/vmbus_async/src/queue.rs (poll_ready with interrupt masking);
//       Linux drivers/hv/connection.c vmbus_on_event (the guest's equivalent loop, spec 7.5).
// Thread-safety: Bind/Unbind/Stop are thread-safe. Callbacks run on the worker thread (or the
// thread calling Poll()), one at a time, with the worker's lock held: a callback must not call
// Bind/Unbind/Stop of its own worker. Unbind waits for a running callback to return, so after it
// returns the callback never runs again; it may be called from a device's Close().
#ifndef UVMBUS_HOST_CHANNEL_WORKER_H_
#define UVMBUS_HOST_CHANNEL_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/counter.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "host/host_channel.h"

namespace uvmbus::host {

// What a channel callback reports.
enum class WorkResult : uint8_t {
  kDone,  // drained what there was: unmask, re-check, then wait for the next signal
  kMore,  // stopped at a quota: call again soon (the ring stays masked)
};

// Worker counters.
struct ChannelWorkerStats {
  uint64_t wakeups = 0;      // epoll waits that returned events
  uint64_t runs = 0;         // callback invocations
  uint64_t mask_races = 0;   // unmask found bytes that arrived while masked (re-run)
  uint64_t ring_errors = 0;  // EndReadMask saw a corrupt write_index (callback not re-run)
  size_t channels = 0;       // channels bound now
};

class ChannelWorker {
 public:
  using Callback = std::function<WorkResult(HostChannel& channel)>;

  // Creates a worker. With `start_thread` a thread named `name` runs Poll() until Stop();
  // without it the owner calls Poll() (tests, or a device that polls from its own loop).
  // Errors: kIo (epoll/eventfd creation failed).
  static Expected<std::unique_ptr<ChannelWorker>> Create(std::string name, bool start_thread);

  // Stop()s and unbinds everything.
  ~ChannelWorker();
  ChannelWorker(const ChannelWorker&) = delete;
  ChannelWorker& operator=(const ChannelWorker&) = delete;

  // Binds an open channel: from now on its doorbell wakes the worker and `callback` drains it.
  // The callback also runs once soon after binding (packets may already be waiting). The channel
  // must stay valid until Unbind(channel) returns.
  // Errors: kAlreadyExists (channel already bound), kIo (epoll_ctl).
  Status Bind(HostChannel& channel, Callback callback);

  // Unbinds `channel`; waits for its callback if it is running. Unknown channels are ignored.
  void Unbind(HostChannel& channel);

  // One round: waits up to `timeout_ms` (-1 = forever, 0 = not at all; no wait at all when a
  // channel asked for kMore) for doorbells, then runs the callbacks that are due. Returns the
  // number of callback invocations. Only one thread may Poll() at a time (the worker thread when
  // started with one).
  size_t Poll(int timeout_ms);

  // Stops the thread (if any) and joins it. Idempotent. Not from a callback.
  void Stop();

  // Counters. Takes the worker's lock: not from inside a callback.
  ChannelWorkerStats Stats() const;
  const std::string& name() const { return name_; }

 private:
  struct Binding {
    HostChannel* channel = nullptr;
    Callback callback;
    bool due = true;      // run on the next round
    bool masked = false;  // we set interrupt_mask and have not cleared it yet
  };

  ChannelWorker(std::string name, UniqueFd epoll, UniqueFd wake);
  void Run();
  // Runs one channel's drain loop (spec 3.6). Caller holds mu_.
  void RunChannel(Binding& b) REQUIRES(mu_);
  void Wake();

  const std::string name_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: Bind() and Stop() wake the waiting thread
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;  // held while callbacks run
  std::map<uint64_t, Binding> bindings_ GUARDED_BY(mu_);  // by key (epoll data)
  uint64_t next_key_ GUARDED_BY(mu_) = 1;

  Counter wakeups_;
  Counter runs_;
  Counter mask_races_;
  Counter ring_errors_;
};

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_CHANNEL_WORKER_H_
