// File: net/switch.h
//
// What: `Switch`, a built-in L2 learning switch (a "vSwitch" named e.g. "sw0"), and `SwitchPort`,
// the Endpoint through which one NIC (all its queues) attaches to it.
//
// Behaviour (IEEE 802.1D transparent bridging, the subset a vSwitch needs):
//   * Learning: a frame's source MAC is bound to the sending port; an entry not refreshed for
//     `ageing_ns` (Linux bridge default 300 s) is ignored by lookups and removed at the next
//     table rebuild or ExpireEntries(). Time comes from an injectable Clock.
//   * Forwarding: a known, fresh unicast destination goes to its port only; unknown unicast,
//     broadcast and multicast are flooded to every other attached port. No hairpin: a frame is
//     never sent back out of the port it came from (a unicast whose destination lives on the
//     sending port is filtered and counted as `hairpin`).
//   * Anti-spoofing: unless the port was attached with allow_spoof (spoof=on), a frame whose
//     source MAC is not the port's MAC is dropped (tx_dropped, `spoofed`). A multicast or
//     all-zero source MAC is always dropped (tx_dropped, `invalid_source`).
//   * Bounded queues: every port queue is a FrameRing of `ring_depth` frames. When it is full the
//     frame is dropped and counted on the receiving queue (rx_missed_errors); a sender never
//     blocks and never waits for a receiver. A frame larger than the receiving port's MTU is
//     dropped there (rx_errors); a frame for a port whose link is down is dropped there
//     (rx_dropped).
//   * Queue steering: a frame for a port with several active queues goes to queue
//     hash(flow) % active, the flow being the IPv4 addresses (and TCP/UDP ports of unfragmented
//     packets) or else the MAC pair, so a flow stays on one queue (in order).
//
// Concurrency design (no global lock per frame):
//   * The MAC table and the port list form one immutable `Snapshot` (an open-addressing hash
//     table of MAC -> entry, plus the attached ports), published RCU-style: writers (learning,
//     attach, detach, expiry; all rare) build a new snapshot under the switch mutex and bump an
//     atomic generation. Each sending queue caches a shared_ptr to a snapshot and re-reads it only
//     when the generation changed: the per-batch cost is one atomic load, the per-frame cost is
//     hash lookups in memory nobody writes. Old snapshots (and the ports and entries they
//     reference) stay alive while any queue still holds them, so a queue sending to a port that
//     is being detached never touches freed memory.
//   * Ageing refresh does not rebuild: each entry has an atomic last-seen time, re-stored (relaxed)
//     by its port's queues at most every ageing_ns/8 so that busy ports do not bounce the line.
//   * New source MACs seen in a batch are learned once at the end of the batch (one mutex
//     acquisition per batch with a new MAC; a port with allow_spoof that sprays source MACs is
//     capped by max_macs_per_port / max_mac_entries and counted as learn_refused).
//   * Delivery is a copy into the receiving queue's lock-free MPSC FrameRing; the receiver is
//     woken once per batch per ring (FrameRing wake protocol).
//   * Copy-out (spec 9.1 G1): frames may live in a guest's shared memory. The switch copies the
//     first bytes of each frame once, takes every decision on that private copy, and stamps the
//     copied header over what it delivers, so a receiver sees the addresses that were checked.
//
// Spec: none for the switch itself (host-side policy); 9.1 G1/G3 (untrusted input), 5.8 (queues).
// Linux/OpenVMM: Linux net/bridge (br_fdb.c learning/ageing, br_forward.c flooding, no hairpin by
//       default); OpenVMM vm/devices/net/vmswitch; Hyper-V vSwitch MAC spoofing option.
// Thread-safety: Switch is fully thread-safe. SwitchPort: as net/endpoint.h (one thread per
//       queue on the data path; many ports on many threads concurrently). A SwitchPort keeps its
//       Switch alive; destroying the port detaches it.
#ifndef UVMBUS_NET_SWITCH_H_
#define UVMBUS_NET_SWITCH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "net/endpoint.h"

namespace uvmbus::net {

struct SwitchOptions {
  std::string name = "sw0";
  // Frames per port queue (a power of two).
  uint32_t ring_depth = 256;
  // Largest frame the switch carries (sizes the queue slots); ports' MTU + 14 must not exceed it.
  uint32_t max_frame_size = MaxFrameSizeForMtu(kDefaultMtu);
  // Learned entries not refreshed for this long are forgotten.
  int64_t ageing_ns = 300'000'000'000;
  uint32_t max_mac_entries = 4096;
  uint32_t max_macs_per_port = 256;
  // Time source for ageing (tests pass a ManualClock); nullptr = SteadyClock. Must outlive the
  // switch.
  const Clock* clock = nullptr;
};

struct SwitchPortOptions {
  // Endpoint name is "<switch>/<name>"; empty: "<switch>/p<id>".
  std::string name{};
  // The attached NIC's MAC (a unicast address). Required unless allow_spoof.
  MacAddress mac{};
  // spoof=on: the port may send with any unicast source MAC (a guest bridge, a TAP uplink).
  bool allow_spoof = false;
  uint32_t queues = 1;  // 1..kMaxQueues, all active at first
  uint32_t mtu = kDefaultMtu;
};

// Switch-level counters of one port (beyond the per-queue NetStats).
struct SwitchPortStats {
  uint64_t forwarded = 0;       // frames sent to exactly one learned port
  uint64_t flooded = 0;         // frames flooded (unknown unicast, broadcast, multicast)
  uint64_t hairpin = 0;         // unicast filtered: the destination lives on the sending port
  uint64_t spoofed = 0;         // dropped by anti-spoofing
  uint64_t invalid_source = 0;  // dropped: multicast or zero source MAC
  uint64_t learned = 0;         // MAC entries created or moved to this port
  uint64_t learn_refused = 0;   // not learned: table or per-port limit reached
};

class Switch;
namespace switch_internal {
struct PortCore;
struct Snapshot;
class SwitchQueue;
}  // namespace switch_internal

// One NIC attached to a Switch.
class SwitchPort final : public Endpoint {
 public:
  ~SwitchPort() override;  // detaches
  SwitchPort(const SwitchPort&) = delete;
  SwitchPort& operator=(const SwitchPort&) = delete;

  std::string_view name() const override;
  uint32_t max_frame_size() const override;
  uint32_t max_queues() const override;
  uint32_t queue_count() const override;
  Status SetQueueCount(uint32_t count) override;
  Queue& queue(uint32_t index) override;
  bool link_up() const override;
  Status SetLinkUp(bool up) override;

  // The switch-assigned port id (unique for the switch's lifetime).
  uint32_t port_id() const;
  const MacAddress& mac() const;
  SwitchPortStats port_stats() const;

 private:
  friend class Switch;
  SwitchPort(std::shared_ptr<Switch> sw, std::shared_ptr<switch_internal::PortCore> core);

  std::shared_ptr<Switch> switch_;
  std::shared_ptr<switch_internal::PortCore> core_;
  std::vector<std::unique_ptr<switch_internal::SwitchQueue>> queues_;
};

class Switch : public std::enable_shared_from_this<Switch> {
 public:
  // Errors: kInvalidArgument for bad options.
  static Expected<std::shared_ptr<Switch>> Create(const SwitchOptions& options);
  ~Switch();
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;

  // Attaches a NIC. Errors: kInvalidArgument (bad queue count, MTU above the switch's frame size,
  // a multicast/zero MAC without allow_spoof), kAlreadyExists (another anti-spoofing port has
  // the MAC), kIo.
  Expected<std::unique_ptr<SwitchPort>> AddPort(const SwitchPortOptions& options)
      EXCLUDES(mu_);

  // The port id a fresh entry binds `mac` to, if any.
  std::optional<uint32_t> Lookup(const MacAddress& mac) const EXCLUDES(mu_);
  // Entries in the table, expired ones not yet removed included.
  size_t mac_table_size() const EXCLUDES(mu_);
  // Removes expired entries now; returns how many.
  size_t ExpireEntries() EXCLUDES(mu_);
  size_t port_count() const EXCLUDES(mu_);

  const std::string& name() const { return options_.name; }
  const SwitchOptions& options() const { return options_; }

 private:
  friend class SwitchPort;
  friend class switch_internal::SwitchQueue;
  explicit Switch(const SwitchOptions& options);

  int64_t NowNs() const { return clock_->NowNs(); }
  // The current snapshot if `*generation` is stale (and updates it), else nullptr.
  std::shared_ptr<const switch_internal::Snapshot> Refresh(uint64_t* generation) const
      EXCLUDES(mu_);
  // Learns `macs` (new or moved source MACs) on `port`.
  void Learn(switch_internal::PortCore* port, const uint64_t* macs, uint32_t count,
             int64_t now_ns) EXCLUDES(mu_);
  void Detach(switch_internal::PortCore* port) EXCLUDES(mu_);
  void Publish(std::shared_ptr<const switch_internal::Snapshot> next) REQUIRES(mu_);

  const SwitchOptions options_;
  const Clock* clock_;
  mutable std::mutex mu_;
  std::shared_ptr<const switch_internal::Snapshot> current_ GUARDED_BY(mu_);
  uint32_t next_port_id_ GUARDED_BY(mu_) = 1;
  // Bumped (release) after every Publish; queues compare it once per batch.
  std::atomic<uint64_t> generation_{1};
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_SWITCH_H_
