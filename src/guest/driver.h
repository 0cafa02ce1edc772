// File: guest/driver.h
//
// What: the guest driver model (Linux hv_driver / hv_device on the vmbus bus_type). A `Driver`
// names the device classes it handles (its id table of interface-type GUIDs) and gets Probe()
// for each matching device the host offers and Remove() when the device goes away (rescind,
// driver unregistered, bus disconnect). A `VmbusDevice` is what a primary offer becomes: class
// and instance GUID, its primary `Channel`, the sub-channels offered later for it, a slot for the
// driver's private data, and the sub-channel creation callback (Linux sc_creation_callback).
// `DriverRegistry` holds the registered drivers and does the match.
//
// Spec: vmbus-protocol.md 2.7 (offer -> device, sub-channels share type + instance), 7.3 (match
//       by class GUID; hv_sock offers match only hv_sock; sub-channel offers go to the primary's
//       sc_creation_callback on a separate queue).
// Linux: include/linux/hyperv.h (struct hv_driver, struct hv_device, vmbus_set_sc_create_callback),
//        drivers/hv/vmbus_drv.c (vmbus_match, vmbus_probe, vmbus_remove).
// Thread-safety: DriverRegistry is thread-safe. A VmbusDevice is created and destroyed by the
//       bus; its accessors are thread-safe. Probe() and Remove() of all drivers run on the bus's
//       device worker, one at a time; a sub-channel callback runs on the bus's sub-channel
//       worker. Driver objects must outlive their registration.
#ifndef UVMBUS_GUEST_DRIVER_H_
#define UVMBUS_GUEST_DRIVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "guest/channel.h"

namespace uvmbus::guest {

class VmbusDevice;

// A guest device driver (Linux struct hv_driver).
class Driver {
 public:
  virtual ~Driver() = default;
  // Driver name ("hv_netvsc", "hv_utils"): unique among registered drivers.
  virtual std::string_view name() const = 0;
  // Device classes (OFFERCHANNEL if_type) this driver binds to.
  virtual std::span<const Guid> id_table() const = 0;
  // Binds to a new device: typically opens device.channel(). An error leaves the device unbound
  // (the driver must have released what it acquired). Runs on the bus's device worker; may block.
  virtual Status Probe(VmbusDevice& device) = 0;
  // Unbinds: closes the channels the driver opened and tears down its GPADLs. Runs on the device
  // worker. The bus closes whatever is left open afterwards.
  virtual void Remove(VmbusDevice& device) = 0;
  // hv_sock offers (TLNPI_PROVIDER_OFFER) match only a driver that returns true here (spec 7.3).
  virtual bool handles_hvsock() const { return false; }
};

// The registered drivers (Linux: the drivers on the vmbus bus_type).
class DriverRegistry {
 public:
  // Errors: kInvalidArgument (null, empty name), kAlreadyExists (same object or same name).
  Status Register(Driver* driver) EXCLUDES(mu_);
  // Errors: kNotFound.
  Status Unregister(Driver* driver) EXCLUDES(mu_);
  // The first registered driver whose id table holds `class_id` (for an hv_sock offer: the first
  // driver that handles_hvsock()), or null.
  Driver* Match(const Guid& class_id, bool hvsock_offer) const EXCLUDES(mu_);
  std::vector<Driver*> drivers() const EXCLUDES(mu_);

 private:
  mutable std::mutex mu_;
  std::vector<Driver*> drivers_ GUARDED_BY(mu_);
};

// A device created from a primary offer (Linux struct hv_device).
class VmbusDevice {
 public:
  ~VmbusDevice();
  VmbusDevice(const VmbusDevice&) = delete;
  VmbusDevice& operator=(const VmbusDevice&) = delete;

  // Interface type (device class) and instance GUIDs of the offer (Linux dev_type/dev_instance).
  const Guid& class_id() const { return primary_->class_id(); }
  const Guid& device_id() const { return primary_->instance_id(); }
  // lsvmbus description of the class ("Synthetic network adapter", "[Heartbeat]", "Unknown").
  std::string_view description() const;
  // The primary channel (sub_channel_index 0).
  Channel& channel() const { return *primary_; }
  // The sub-channels offered so far (in offer order), excluding rescinded ones.
  std::vector<Channel*> subchannels() const EXCLUDES(mu_);

  // Linux vmbus_set_sc_create_callback: called (on the sub-channel worker) for every sub-channel
  // offered after this call. Set it before asking the host for sub-channels.
  void SetSubchannelCallback(std::function<void(Channel&)> callback) EXCLUDES(mu_);

  // Linux chn_rescind_callback for sub-channels: called (on the sub-channel worker) when the host
  // rescinds one of this device's sub-channels, so the driver can stop using and close it. The
  // bus closes it afterwards if it is still open, then releases the relid.
  void SetSubchannelRescindCallback(std::function<void(Channel&)> callback) EXCLUDES(mu_);

  // Driver private data (Linux hv_set_drvdata / hv_get_drvdata). Not owned.
  void set_driver_data(void* data) { driver_data_.store(data, std::memory_order_release); }
  void* driver_data() const { return driver_data_.load(std::memory_order_acquire); }
  template <typename T>
  T* driver_data_as() const {
    return static_cast<T*>(driver_data());
  }

  // The bound driver, or null.
  Driver* driver() const { return driver_.load(std::memory_order_acquire); }
  // True once the device was removed (rescind, disconnect).
  bool removed() const { return removed_.load(std::memory_order_acquire); }

 private:
  friend class internal::BusImpl;

  explicit VmbusDevice(std::shared_ptr<Channel> primary);

  std::function<void(Channel&)> subchannel_callback() const EXCLUDES(mu_);
  std::function<void(Channel&)> subchannel_rescind_callback() const EXCLUDES(mu_);
  void AddSubchannel(std::shared_ptr<Channel> channel) EXCLUDES(mu_);
  // Removes and returns the sub-channel (null if absent).
  std::shared_ptr<Channel> TakeSubchannel(uint32_t relid) EXCLUDES(mu_);
  std::vector<std::shared_ptr<Channel>> subchannel_refs() const EXCLUDES(mu_);

  std::shared_ptr<Channel> primary_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Channel>> subchannels_ GUARDED_BY(mu_);
  std::function<void(Channel&)> sc_callback_ GUARDED_BY(mu_);
  std::function<void(Channel&)> sc_rescind_callback_ GUARDED_BY(mu_);
  std::atomic<Driver*> driver_{nullptr};
  std::atomic<void*> driver_data_{nullptr};
  std::atomic<bool> removed_{false};
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_DRIVER_H_
