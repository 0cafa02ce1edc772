// File: devices/netvsp/queue_worker.h
//
// What: `QueueWorker`, the thread that serves one NIC queue: it sleeps in epoll on every
// descriptor that can bring the queue work - the channel's doorbell (the guest signalled), the
// backend queue's wait fd (frames from the network), the queue's mailbox eventfd (frames steered
// from another queue, control requests) - and runs the queue's service round when any is
// readable. Before sleeping it asks the service to arm its wake-ups (PrepareSleep: the backend's
// and the mailbox's "arm, re-check" protocols); a round that stopped at a quota runs again
// without sleeping (style 1.9 #11).
//
// It plays the role of host::ChannelWorker for netvsp: ChannelWorker wakes only on doorbells,
// while a NIC queue also needs the backend and mailbox descriptors (see
// /work/notes/requests-netvsp.md). The ring masking rule of spec 3.6 (mask while draining,
// unmask, re-check) lives in the service round (NicQueue::Run), exactly as ChannelWorker applies
// it around its callbacks.
//
// Polling (issue 4, benchmarks): with a spin limit set (SetSpinLimitNs, process-wide, default 0)
// a worker that armed its wake-ups checks its descriptors without blocking (epoll_wait with a
// zero timeout, yielding the core every ~2 us to other threads of the process) for up to that
// long before it sleeps, so frames that arrive meanwhile cost no blocking wake-up.
//
// Spec: vmbus-protocol.md 3.4-3.6 (signalling and masking), 1.7 (SignalEvent -> doorbell);
//       design.md section 4 (one worker per queue, no locks on the per-queue path).
// Linux/OpenVMM: OpenVMM vm/devices/net/netvsp/src/lib.rs (one async worker per queue polling
//       the channel and the backend queue).
// Thread-safety: Start/Stop from the control path (not from the worker itself). The service is
//       called only on the worker thread.
#ifndef UVMBUS_DEVICES_NETVSP_QUEUE_WORKER_H_
#define UVMBUS_DEVICES_NETVSP_QUEUE_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::netvsp {

// What a worker runs.
class QueueService {
 public:
  virtual ~QueueService() = default;
  // One service round. Returns true when work is left (a quota was hit): run again at once.
  virtual bool Run() = 0;
  // Arms every wake-up source before sleeping. Returns false if work arrived meanwhile (run
  // again instead of sleeping).
  virtual bool PrepareSleep() = 0;
};

class QueueWorker {
 public:
  // Starts a thread named `name` (truncated to 15 characters) that serves `service` and wakes on
  // any of `fds` becoming readable (level-triggered; the service clears them). `service` must
  // outlive Stop(). Errors: kIo (epoll/eventfd/epoll_ctl).
  static Expected<std::unique_ptr<QueueWorker>> Start(std::string name, QueueService* service,
                                                      std::span<const int> fds);
  // Stop()s.
  ~QueueWorker();
  QueueWorker(const QueueWorker&) = delete;
  QueueWorker& operator=(const QueueWorker&) = delete;

  // Stops the thread after its current round and joins it. Idempotent.
  void Stop();

  // How long workers started afterwards poll before sleeping, in ns (0: sleep at once).
  static void SetSpinLimitNs(uint64_t ns);
  static uint64_t SpinLimitNs();

 private:
  QueueWorker(std::string name, QueueService* service, UniqueFd epoll, UniqueFd stop);
  void Loop();

  const std::string name_;
  QueueService* const service_;
  UniqueFd epoll_;
  UniqueFd stop_fd_;
  std::atomic<bool> stop_{false};
  uint64_t spin_ns_ = 0;
  std::thread thread_;
};

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_QUEUE_WORKER_H_
