// File: partition/monitor_poller.h
//
// What: `MonitorPoller`, the hypervisor half of the Monitored Notification Facility for one guest:
// a thread that polls the guest's child->parent monitor page (INITIATE_CONTACT monitor_page2),
// atomically takes (fetch_and) the armed bits of each trigger group's `pending` word and turns
// every one that was set into that channel's doorbell (the same eventfd the guest's SignalEvent
// rings). A guest that cannot hypercall (DPDK's netvsc PMD: its only doorbell is an atomic OR
// into the monitor page) thus reaches the host's data workers exactly like one that can.
//
// CPU bound: the thread parks (blocks, no timeout) while no monitor is armed or no page is set.
// Otherwise the interval adapts: right after a hit it re-polls at once for a few rounds (yielding
// the CPU each time), then sleeps 10 us, doubling on every empty poll up to `max_interval_us`
// (default 2 ms). Only `pending` is read and written; latency[][] and the other fields of the
// page are the guest's and are ignored. A sender sets a bit only when a ring goes empty ->
// non-empty, and the data worker drains until empty before re-arming, so a poll interval only
// adds latency, never loses a signal.
//
// Spec: vmbus-protocol.md 1.5 (monitor page layout, group = id / 32, bit = id % 32), 2.5
//       (INITIATE_CONTACT monitor_page2), 1.7 (the signal a monitor bit stands for).
// Linux/OpenVMM: Linux vmbus_set_event / hv_monitor_page; DPDK drivers/bus/vmbus/vmbus_channel.c
//       vmbus_set_monitor; OpenVMM vmbus_server (monitor page handling).
// Thread-safety: all public methods are thread-safe. The `ring` callback runs on the poller's
// thread with no lock of the poller held; it must not call back into the poller. The destructor
// (or Shutdown) joins the thread: do not call them from the callback.
#ifndef UVMBUS_PARTITION_MONITOR_POLLER_H_
#define UVMBUS_PARTITION_MONITOR_POLLER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>

#include "common/counter.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "wire/synic.h"

namespace uvmbus::partition {

class MonitorPoller {
 public:
  // Rings the doorbell of `connection_id`; returns false if it has none (counted as spurious).
  using RingFn = std::function<bool(uint32_t connection_id)>;

  // Longest sleep between two polls while idle.
  static constexpr uint32_t kDefaultMaxIntervalUs = 2000;
  // Immediate re-polls after a hit before the sleeps start.
  static constexpr uint32_t kSpinPolls = 32;

  // Errors: kInvalidArgument (null callback, interval 0), kIo (eventfd).
  static Expected<std::unique_ptr<MonitorPoller>> Create(
      RingFn ring, uint32_t max_interval_us = kDefaultMaxIntervalUs);
  ~MonitorPoller();
  MonitorPoller(const MonitorPoller&) = delete;
  MonitorPoller& operator=(const MonitorPoller&) = delete;

  // The monitor page to poll (4096 bytes of guest RAM, span kept by the caller's RAM: after the
  // RAM is revoked it reads zeros). An empty span stops polling.
  void SetPage(std::span<uint8_t> page) EXCLUDES(mu_);
  // Monitor `monitor_id` (0..127) now stands for `connection_id`. Errors: kInvalidArgument.
  Status Arm(uint32_t monitor_id, uint32_t connection_id) EXCLUDES(mu_);
  // Forgets `monitor_id`: later bits for it stay pending (not taken) until it is armed again.
  // Unknown ids are ignored.
  void Disarm(uint32_t monitor_id) EXCLUDES(mu_);
  // Disarms everything and forgets the page; the thread parks.
  void Reset() EXCLUDES(mu_);
  // Stops and joins the thread (idempotent); later calls only update the table.
  void Shutdown() EXCLUDES(mu_);

  // Polls made (each a read of the armed groups' pending words), bits that rang a doorbell, and
  // bits for armed monitors whose connection had no doorbell (bits of unarmed monitors are left
  // pending).
  uint64_t polls() const { return polls_.Get(); }
  uint64_t hits() const { return hits_.Get(); }
  uint64_t spurious() const { return spurious_.Get(); }
  // True while the thread is polling (page set and at least one monitor armed).
  bool active() const EXCLUDES(mu_);

  // One poll of `page` with `armed`/`connection` tables: takes the armed bits, rings. Returns
  // the number of doorbells rung. Exposed for deterministic tests (no thread involved).
  size_t PollOnce() EXCLUDES(mu_);

 private:
  MonitorPoller(RingFn ring, uint32_t max_interval_us, UniqueFd wake);
  void Loop();
  void Wake();
  struct Table {
    std::span<uint8_t> page;
    std::array<uint32_t, wire::kMonitorGroupCount> armed{};  // bit set = monitor armed
    std::array<uint32_t, wire::kMaxMonitorId + 1> connection{};
    uint64_t generation = 0;
  };
  size_t Poll(const Table& table);
  bool Active(const Table& t) const;

  const RingFn ring_;
  const uint32_t max_interval_us_;
  UniqueFd wake_;  // eventfd: table changed or shutdown
  mutable std::mutex mu_;
  Table table_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  bool started_ GUARDED_BY(mu_) = false;
  std::thread thread_;
  Counter polls_;
  Counter hits_;
  Counter spurious_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_MONITOR_POLLER_H_
