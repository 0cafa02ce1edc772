// File: host/host_service.h
//
// What: `HostService`, what the host daemon runs: one VmbusServer per connected guest, each with
// its own devices from the DeviceFactory. Guests come from a partition::SocketHost (use
// GuestCallback()) or are added directly (a LocalPartition's host half). When a guest goes away
// its server releases everything (channels closed in the devices, GPADL views unmapped,
// doorbells destroyed) inside the disconnect callback; the service then removes the server and
// the partition from a thread that is not inside a partition callback (its reaper thread, or
// Reap()), and keeps serving the others. Snapshot() reports every guest with Linux sysfs names
// (conventions.md 2b) as a plain struct or JSON. Shutdown() is the SIGTERM path: rescind every
// device, wait (bounded) for the guests to release them, then stop.
//
// Spec: vmbus-protocol.md 2.7 (rescind / RELID_RELEASED), 2.10; design.md sections 3-4
//       (process model, one control thread per guest connection, host goes on when a guest dies).
// Linux: Documentation/ABI/stable/sysfs-bus-vmbus (snapshot key names), tools/hv/lsvmbus.
// Thread-safety: all public methods are thread-safe. GuestCallback() may run on SocketHost's
// accept thread. The service must outlive the SocketHost that feeds it (stop that first).
#ifndef UVMBUS_HOST_HOST_SERVICE_H_
#define UVMBUS_HOST_HOST_SERVICE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "host/device.h"
#include "host/vmbus_server.h"
#include "partition/host_partition.h"
#include "partition/socket_host.h"

namespace uvmbus::host {

struct HostServiceOptions {
  ServerOptions server;
  // Run a reaper thread that removes disconnected guests by itself. Without it the owner calls
  // Reap() (tests).
  bool reaper_thread = true;
};

// Every connected guest.
struct HostSnapshot {
  std::vector<ServerSnapshot> guests;
  uint64_t guests_accepted = 0;  // since start
  uint64_t guests_removed = 0;
};

// JSON with sysfs names: per device `id` (primary relid), `class_id`, `device_id`,
// `description`, `channel_vp_mapping` ("relid:cpu"), and under `channels` per relid `cpu`,
// `in_mask`, `out_mask`, `read_avail`, `write_avail`, `events`, `interrupts`, `subchannel_id`,
// `monitor_id`, `pending`, `intr_in_full`, `intr_out_empty`, `out_full_first`,
// `out_full_total`, `state`.
nlohmann::json ToJson(const ServerSnapshot& snapshot);
nlohmann::json ToJson(const HostSnapshot& snapshot);

class HostService {
 public:
  explicit HostService(DeviceFactory factory, HostServiceOptions options = {});
  // Shutdown(0): rescinds, does not wait, releases and stops everything.
  ~HostService();
  HostService(const HostService&) = delete;
  HostService& operator=(const HostService&) = delete;

  // Serves a guest whose partition the service owns from now on (SocketHost hand-over).
  // Creates its server and devices, then Start()s the partition.
  // Errors: kUnavailable after Shutdown(), or the partition's Start() error.
  Status AddGuest(std::unique_ptr<partition::HostPartition> partition);
  // Same for a partition owned by the caller, which must keep it alive until the guest was
  // reaped or the service is destroyed (LocalPartition in tests and the embedded demo).
  Status AddGuest(partition::HostPartition* partition);

  // The callback to give partition::SocketHost::Listen().
  partition::SocketHost::GuestCallback GuestCallback();

  // Removes the guests that disconnected (stops their partitions, destroys servers and devices).
  // Returns how many were removed. Not from inside a partition callback.
  size_t Reap();

  // Waits (on a condition, not by sleeping) until exactly `count` guests exist (served, or
  // departed but not yet destroyed) or `timeout` passed. Returns true if the count was reached.
  bool WaitForGuestCount(size_t count, std::chrono::milliseconds timeout);

  // SIGTERM: rescind every device of every guest (RESCIND_CHANNELOFFER), wait up to `drain` for
  // the guests to release the relids (or go away), then release everything and stop all
  // partitions. Later AddGuest() calls fail. Idempotent.
  void Shutdown(std::chrono::milliseconds drain);

  // Rescinds device `instance` of the connected guest named `guest` (spec 2.7; the admin
  // "nic-remove" request): VmbusServer::RescindDevice. Errors: kNotFound (no such live guest or
  // device).
  Status RescindDevice(const std::string& guest, const Guid& instance);
  // Offers `device` to the connected guest named `guest` (hot add, spec 2.7; the admin "nic-add"
  // request). Errors: kNotFound (no such live guest), kUnavailable (after Shutdown()).
  Status AddDevice(const std::string& guest, std::unique_ptr<Device> device);

  size_t guest_count() const;
  HostSnapshot Snapshot() const;
  nlohmann::json SnapshotJson() const { return ToJson(Snapshot()); }

 private:
  class GuestHandler;
  struct Guest {
    std::unique_ptr<partition::HostPartition> owned;
    partition::HostPartition* partition = nullptr;
    std::unique_ptr<VmbusServer> server;
    std::unique_ptr<GuestHandler> handler;
    bool gone = false;
  };

  Status AddGuestImpl(std::unique_ptr<partition::HostPartition> owned,
                      partition::HostPartition* partition);
  // Called by a guest's handler after it processed a message or the guest left.
  void Notify(Guest* guest, bool gone);
  void ReaperLoop();
  // Stops and destroys `guests` (outside mu_).
  static void Destroy(std::list<std::unique_ptr<Guest>>& guests);

  const DeviceFactory factory_;
  const HostServiceOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // guest list / gone flags / server progress changed
  std::list<std::unique_ptr<Guest>> guests_ GUARDED_BY(mu_);
  bool shutdown_ GUARDED_BY(mu_) = false;
  bool stop_reaper_ GUARDED_BY(mu_) = false;
  uint64_t accepted_ GUARDED_BY(mu_) = 0;
  uint64_t removed_ GUARDED_BY(mu_) = 0;
  uint64_t progress_ GUARDED_BY(mu_) = 0;  // bumped after every guest message
  size_t being_destroyed_ GUARDED_BY(mu_) = 0;  // taken out of guests_, not destroyed yet
  std::thread reaper_;
};

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_HOST_SERVICE_H_
