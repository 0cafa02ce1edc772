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
//
// Lifetime and ordering contract (notes/requests-netvsc.md items 1, 1b):
//   * A VmbusDevice is shared-owned: the bus's work items hold it while they use it, so it is
//     never freed under a pending rescind (the device worker may drop its map entry at any time).
//   * Every Channel a driver was handed (channel(), subchannels(), a sub-channel callback) stays
//     valid until the driver's Remove() returned, rescinded or not: the bus tears a rescinded
//     sub-channel of a device being removed down only after Remove() returned. A driver that
//     wants a channel for longer keeps a std::shared_ptr (Channel::shared_from_this(),
//     subchannel_refs()); the object stays valid, the channel becomes kReleased.
//   * The sub-channel rescind callback is always called for a rescinded sub-channel while the
//     driver is bound, also while its Remove() runs (concurrently, on the sub-channel worker):
//     the driver stops that channel's NAPI/tasklets there. The bus closes the channel only
//     after the callback returned (and, during a removal, after Remove() returned).
//   * Sub-channel callbacks (creation and rescind) belong to the bound driver: the bus waits for
//     a running one and clears both once Remove() returned; none starts after that (the kRemove
//     bus event). A creation callback is not started once the device's removal began.
#ifndef UVMBUS_GUEST_DRIVER_H_
#define UVMBUS_GUEST_DRIVER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
#include "partition/guest_page_allocator.h"

namespace uvmbus::guest {

class BusCore;
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
  // worker. Every channel of the device is still valid here (also rescinded sub-channels; their
  // rescind callback may run concurrently). The bus closes whatever is left open afterwards.
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
  // Shared references to the primary and to every sub-channel the device holds (rescinded ones
  // included until the bus released them): keep one to use a channel beyond Remove(). A held
  // channel must not be used after the bus is destroyed.
  std::shared_ptr<Channel> channel_ref() const { return primary_; }
  std::vector<std::shared_ptr<Channel>> subchannel_refs() const EXCLUDES(mu_);

  // The negotiated VMBus version word (wire/versions.h; 0 once the bus disconnected). Linux
  // drivers test vmbus_proto_version (netvsc: GPADL teardown before/after close, spec 5.7).
  uint32_t bus_version() const;
  // The guest page allocator of the bus's partition (ring, receive/send buffer and bounce
  // pages). Valid while the bus exists.
  partition::GuestPageAllocator& page_allocator() const;

  // Linux vmbus_set_sc_create_callback: called (on the sub-channel worker) for every sub-channel
  // offered after this call. Set it before asking the host for sub-channels.
  void SetSubchannelCallback(std::function<void(Channel&)> callback) EXCLUDES(mu_);

  // Linux chn_rescind_callback for sub-channels: called (on the sub-channel worker) when the host
  // rescinds one of this device's sub-channels while a driver is bound - also while its Remove()
  // runs - so the driver can stop its NAPI/tasklets and close it. The bus closes it afterwards
  // if it is still open (during a removal: after Remove() returned), then releases the relid.
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

  // kLive -> kRemoving (removal began: driver Remove() may run) -> kRemoved (Remove() returned).
  enum class Removal : uint8_t { kLive, kRemoving, kRemoved };
  enum class CallbackKind : uint8_t { kCreate, kRescind };

  VmbusDevice(BusCore& core, std::shared_ptr<Channel> primary);

  void AddSubchannel(std::shared_ptr<Channel> channel) EXCLUDES(mu_);
  // Removes and returns the sub-channel (null if absent).
  std::shared_ptr<Channel> TakeSubchannel(uint32_t relid) EXCLUDES(mu_);
  // Runs the driver's sub-channel callback of `kind` on `channel` if the device's state allows
  // it (kCreate: kLive only; kRescind: until kRemoved), counted so that QuiesceCallbacks() and
  // FinishRemoval() can wait for it. Sub-channel worker only.
  void RunCallback(CallbackKind kind, Channel& channel) EXCLUDES(mu_);
  // Device worker, after the driver's Remove() returned: waits for a running sub-channel
  // callback, then clears both (they belong to the unbound driver).
  void QuiesceCallbacks() EXCLUDES(mu_);
  // kLive -> kRemoving (and removed() true). False if the removal had begun already.
  bool BeginRemoval() EXCLUDES(mu_);
  // kRemoving -> kRemoved once no callback runs; returns the rescinded sub-channels whose
  // teardown was deferred to the removal (DeferTeardown).
  std::vector<std::shared_ptr<Channel>> FinishRemoval() EXCLUDES(mu_);
  // While kRemoving, queues the rescinded `channel` for FinishRemoval()'s caller and returns
  // true; otherwise false (the caller tears it down now).
  bool DeferTeardown(const std::shared_ptr<Channel>& channel) EXCLUDES(mu_);

  BusCore& core_;
  std::shared_ptr<Channel> primary_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // callbacks_running_ dropped to 0
  std::vector<std::shared_ptr<Channel>> subchannels_ GUARDED_BY(mu_);
  std::function<void(Channel&)> sc_callback_ GUARDED_BY(mu_);
  std::function<void(Channel&)> sc_rescind_callback_ GUARDED_BY(mu_);
  Removal removal_ GUARDED_BY(mu_) = Removal::kLive;
  uint32_t callbacks_running_ GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Channel>> deferred_ GUARDED_BY(mu_);
  std::atomic<Driver*> driver_{nullptr};
  std::atomic<void*> driver_data_{nullptr};
  std::atomic<bool> removed_{false};
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_DRIVER_H_
