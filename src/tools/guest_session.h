// File: tools/guest_session.h
//
// What: the two halves of `uvmbus guest`'s crash/restart story (docs/robustness.md section 4):
//   * `GuestSession`: one connection to the host, everything that must be thrown away when the
//     host goes away and rebuilt when it comes back - the socket partition (a fresh guest RAM
//     memfd and interrupt eventfds), the heartbeat and netvsc drivers, the VmbusBus (version
//     negotiation, fresh offers, probes) and the NIC attachment (the responder / traffic loop,
//     or the persistent TAP's pump threads);
//   * `GuestPersistent`: what outlives sessions - the TAP interface (same ifindex, MAC, addresses
//     and namespace; only its carrier follows the NIC), the heartbeat count, the traffic result,
//     the supervisor counters and the wake-up eventfds the main loop polls;
//   * `ReconnectBackoff`: the delay between reconnect attempts, 100 ms doubling to 5 s with
//     "equal jitter" (each delay drawn from [base/2, base]) so guests restarted together do not
//     reconnect in lock-step.
// The supervisor loop itself is RunGuest() (guest_command.cc): open a session, serve until the
// host hangs up, Close() it (link down), back off, open the next one.
//
// Linux's hv_vmbus has no such path (a VM does not outlive its hypervisor); the closest analogue
// is a NIC that loses its carrier and keeps its net_device (netif_carrier_off) while the device
// behind it is re-probed (hot remove + hot add, spec 2.7).
// Spec: vmbus-protocol.md 2.5 (re-negotiation), 2.7 (offers, rescind), 5.7 (NIC bring-up),
//       6.12 (link status); design.md section 3 ("the guest marks links down and reconnects with
//       back-off, receiving fresh offers").
// Thread-safety: GuestSession and GuestPersistent are driven by the main thread; the callbacks
// they install run on bus threads and only print, count and write eventfds. ReconnectBackoff is
// a plain value (one thread).
#ifndef UVMBUS_TOOLS_GUEST_SESSION_H_
#define UVMBUS_TOOLS_GUEST_SESSION_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "devices/heartbeat/guest_heartbeat.h"
#include "devices/netvsc/netvsc_drv.h"
#include "guest/vmbus_bus.h"
#include "partition/socket_guest_partition.h"
#include "tools/cli.h"
#include "tools/guest_nic.h"
#include "tools/traffic.h"

namespace uvmbus::tools {

// Back-off between reconnect attempts (see the file comment).
class ReconnectBackoff {
 public:
  static constexpr std::chrono::milliseconds kInitial{100};
  static constexpr std::chrono::milliseconds kMax{5000};

  explicit ReconnectBackoff(uint64_t seed, std::chrono::milliseconds initial = kInitial,
                            std::chrono::milliseconds max = kMax);
  // The delay to wait before the next attempt, drawn from [base/2, base]; then the base doubles
  // (capped at max).
  std::chrono::milliseconds Next();
  // Back to the initial base (after a successful connection).
  void Reset();
  // The base of the next delay, and the number of Next() calls since the last Reset().
  std::chrono::milliseconds base() const { return base_; }
  uint32_t step() const { return step_; }

 private:
  const std::chrono::milliseconds initial_;
  const std::chrono::milliseconds max_;
  std::chrono::milliseconds base_;
  uint32_t step_ = 0;
  std::mt19937_64 rng_;
};

// Counters of the supervisor (printed as the `{"guest": {...}}` line at exit).
struct SupervisorCounters {
  uint64_t sessions = 0;          // sessions that connected (bus Connect() succeeded)
  uint64_t reconnects = 0;        // of which after a host loss
  uint64_t host_losses = 0;       // sessions ended by the host hanging up
  uint64_t connect_attempts = 0;  // reconnect attempts (the first connection not counted)
  uint64_t connect_failures = 0;  // of which failed
  uint64_t link_downs = 0;        // NIC attachments ended (host gone, rescind): link down
  uint64_t nic_attaches = 0;      // NICs served (responder/traffic loop or TAP pump started)
  nlohmann::json ToJson() const;
};

// What outlives a session (see the file comment). Owned by RunGuest().
struct GuestPersistent {
  GuestPersistent(const GuestOptions& opts, std::string guest_name);

  const GuestOptions& options;
  const std::string name;
  // Written by bus threads: --count reached, a traffic run ended (no stay=on).
  UniqueFd done_fd;
  // Written by netvsc's observer when a NIC came up or went away (hot add, rescind, host gone).
  UniqueFd nic_fd;
  std::atomic<uint64_t> answered{0};     // heartbeats answered, every session
  std::atomic<bool> count_reached{false};
  std::atomic<bool> traffic_done{false};  // a traffic run completed (ok or not)
  std::atomic<bool> traffic_ok{false};    // the last completed run's verdict
  std::unique_ptr<TapPump> tap;           // --tap: created with the first NIC, kept
  SupervisorCounters counters;            // main thread only
};

// Wakes a poll()ing thread through an eventfd (never blocks: a saturated eventfd is awake).
void WakeFd(int fd);
// Reads an eventfd to zero (non-blocking).
void DrainFd(int fd);

class GuestSession {
 public:
  // Connects (partition, drivers, bus: negotiation, offers, probes), prints the bring-up lines
  // and serves the first NIC that is up. `number` is 1 for the first session. Errors: those of
  // SocketGuestPartition::Connect, VmbusBus::Create/RegisterDriver/Connect; kUnavailable when
  // the host hung up meanwhile. A failed Open() leaves nothing behind.
  static Expected<std::unique_ptr<GuestSession>> Open(GuestPersistent& persistent,
                                                      uint32_t number);
  // Close(/*unload=*/false) if not closed yet.
  ~GuestSession();
  GuestSession(const GuestSession&) = delete;
  GuestSession& operator=(const GuestSession&) = delete;

  // Readable once the host hung up.
  int disconnect_fd() const { return partition_->DisconnectFd(); }
  bool host_connected() const { return partition_->connected(); }
  // --tap/--traffic with no NIC offered at the end of Open(): the caller's setup failure.
  bool missing_nic() const;
  // The NIC was offered but its TAP could not be created (the error is printed).
  bool setup_failed() const { return setup_failed_; }
  // Matches the served NIC to netvsc's devices: a NIC that went away (rescinded, host gone) is
  // detached (link down, TAP carrier off), and the first NIC that is up is attached when none is
  // served (a re-added NIC is served again). `why` names the reason in the log line.
  void ReconcileNic(std::string_view why);
  // Stops serving the NIC (link down); with `unload` and a live host, removes the drivers and
  // sends UNLOAD (spec 2.10). Then tears down the bus, the drivers and the partition.
  // Idempotent. Errors: those of VmbusBus::Disconnect.
  Status Close(bool unload);

  uint32_t number() const { return number_; }

 private:
  explicit GuestSession(GuestPersistent& persistent, uint32_t number);
  class HeartbeatPrinter;
  // Serves `nic`: TAP pump or responder / traffic thread.
  Status Attach(const std::shared_ptr<netvsc::NetvscDevice>& nic);
  void Detach(std::string_view why);

  GuestPersistent& persistent_;
  const uint32_t number_;
  bool closed_ = false;
  bool setup_failed_ = false;
  // Destruction order (reverse of declaration): NIC attachment, bus, drivers, partition.
  std::unique_ptr<partition::SocketGuestPartition> partition_;
  std::unique_ptr<HeartbeatPrinter> heartbeat_printer_;
  std::unique_ptr<devices::HeartbeatDriver> heartbeat_;
  std::unique_ptr<netvsc::NetvscDriver> netvsc_;
  std::unique_ptr<guest::VmbusBus> bus_;
  // The NIC served, and how (one of loop_ / the persistent TAP).
  std::shared_ptr<netvsc::NetvscDevice> nic_;
  std::unique_ptr<GuestNicLoop> loop_;
  std::thread loop_thread_;
  std::atomic<bool> detaching_{false};  // the loop is stopped because the NIC goes away
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_GUEST_SESSION_H_
