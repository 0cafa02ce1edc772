// File: devices/netvsc/netvsc_drv.h
//
// What: `NetvscDriver`, the guest driver of the synthetic network adapter (class
// f8615163-df3e-46c5-913f-f2d2f965ed0e), registered as "hv_netvsc" like Linux's. Probe builds a
// NetvscDevice for the offered NIC and runs its whole bring-up (spec 5.7, 7.8) synchronously on
// the bus's device worker - including the sub-channel handshake, which Linux runs from a work
// item right after probe - so when VmbusBus::Connect() returns (it waits for the initial probes)
// every NIC is up with all its queues. Remove tears the NIC down in Linux's order. Frontends find
// the NICs through devices() / FindDevice() or an observer told about each one added and removed.
//
// The driver needs the guest partition (for guest pages: buffers, bounce slots, control pages),
// which the bus's driver API does not hand to drivers.
//
// Spec: vmbus-protocol.md 5.7 (probe order), 7.3 (driver match by class GUID; probe on a worker
//       that may sleep; sub-channel offers go to the primary's sc_creation_callback), 7.8.
// Linux: drivers/net/hyperv/netvsc_drv.c (netvsc_drv, netvsc_probe, netvsc_remove).
// Thread-safety: Probe/Remove run on the bus's device worker. devices(), FindDevice(),
// SetObserver() and WaitForDevices() are thread-safe. The observer runs on the device worker:
// it may block briefly but must not call the bus's blocking methods.
#ifndef UVMBUS_DEVICES_NETVSC_NETVSC_DRV_H_
#define UVMBUS_DEVICES_NETVSC_NETVSC_DRV_H_

#include <array>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/netvsc/netvsc_device.h"
#include "guest/driver.h"
#include "partition/guest_partition.h"
#include "wire/device_guids.h"

namespace uvmbus::netvsc {

// Told about every NIC that came up (added = true, after its bring-up) and went away (false,
// after its removal).
using DeviceObserver = std::function<void(const std::shared_ptr<NetvscDevice>& device, bool added)>;

class NetvscDriver final : public guest::Driver {
 public:
  // `partition` must outlive the driver's registration.
  explicit NetvscDriver(partition::GuestPartition& partition, NetvscConfig config = {});
  ~NetvscDriver() override;
  NetvscDriver(const NetvscDriver&) = delete;
  NetvscDriver& operator=(const NetvscDriver&) = delete;

  // ---- guest::Driver ----
  std::string_view name() const override { return "hv_netvsc"; }
  std::span<const Guid> id_table() const override { return kIdTable; }
  // Builds and starts a NetvscDevice. Errors: those of NetvscDevice::Start() (the device is
  // removed again before returning).
  Status Probe(guest::VmbusDevice& device) override;
  // Stops and forgets the device.
  void Remove(guest::VmbusDevice& device) override;

  // ---- Frontends ----
  std::vector<std::shared_ptr<NetvscDevice>> devices() const;
  std::shared_ptr<NetvscDevice> FindDevice(const Guid& instance_id) const;
  void SetObserver(DeviceObserver observer);
  // Waits until at least `count` devices are up. False on timeout.
  bool WaitForDevices(size_t count, std::chrono::milliseconds timeout) const;

  const NetvscConfig& config() const { return config_; }

 private:
  static constexpr std::array<Guid, 1> kIdTable = {wire::kNetworkClassGuid};

  partition::GuestPartition& partition_;
  const NetvscConfig config_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<guest::VmbusDevice*, std::shared_ptr<NetvscDevice>> devices_ GUARDED_BY(mu_);
  DeviceObserver observer_ GUARDED_BY(mu_);
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_NETVSC_DRV_H_
