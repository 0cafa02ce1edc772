// File: guest/driver.cc — see driver.h.
#include "guest/driver.h"

#include <algorithm>
#include <utility>

#include "guest/bus_core.h"
#include "wire/device_guids.h"

namespace uvmbus::guest {

Status DriverRegistry::Register(Driver* driver) {
  if (driver == nullptr || driver->name().empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "driver without a name");
  }
  std::lock_guard lock(mu_);
  for (Driver* d : drivers_) {
    if (d == driver || d->name() == driver->name()) {
      return MakeError(ErrorCode::kAlreadyExists, "driver {} already registered", driver->name());
    }
  }
  drivers_.push_back(driver);
  return Ok();
}

Status DriverRegistry::Unregister(Driver* driver) {
  std::lock_guard lock(mu_);
  auto it = std::find(drivers_.begin(), drivers_.end(), driver);
  if (it == drivers_.end()) {
    return MakeError(ErrorCode::kNotFound, "driver is not registered");
  }
  drivers_.erase(it);
  return Ok();
}

Driver* DriverRegistry::Match(const Guid& class_id, bool hvsock_offer) const {
  std::lock_guard lock(mu_);
  for (Driver* d : drivers_) {
    if (hvsock_offer) {
      if (d->handles_hvsock()) return d;
      continue;
    }
    const auto ids = d->id_table();
    if (std::find(ids.begin(), ids.end(), class_id) != ids.end()) return d;
  }
  return nullptr;
}

std::vector<Driver*> DriverRegistry::drivers() const {
  std::lock_guard lock(mu_);
  return drivers_;
}

VmbusDevice::VmbusDevice(BusCore& core, std::shared_ptr<Channel> primary)
    : core_(core), primary_(std::move(primary)) {}

VmbusDevice::~VmbusDevice() = default;

std::string_view VmbusDevice::description() const {
  return wire::DeviceDescription(class_id());
}

std::vector<Channel*> VmbusDevice::subchannels() const {
  std::lock_guard lock(mu_);
  std::vector<Channel*> out;
  out.reserve(subchannels_.size());
  for (const auto& c : subchannels_) {
    if (!c->rescinded()) out.push_back(c.get());
  }
  return out;
}

void VmbusDevice::SetSubchannelCallback(std::function<void(Channel&)> callback) {
  std::lock_guard lock(mu_);
  sc_callback_ = std::move(callback);
}

void VmbusDevice::SetSubchannelRescindCallback(std::function<void(Channel&)> callback) {
  std::lock_guard lock(mu_);
  sc_rescind_callback_ = std::move(callback);
}

uint32_t VmbusDevice::bus_version() const { return core_.version(); }

partition::GuestPageAllocator& VmbusDevice::page_allocator() const {
  return core_.partition().allocator();
}

void VmbusDevice::RunCallback(CallbackKind kind, Channel& channel) {
  std::function<void(Channel&)> callback;
  {
    std::lock_guard lock(mu_);
    const bool allowed = kind == CallbackKind::kCreate ? removal_ == Removal::kLive
                                                       : removal_ != Removal::kRemoved;
    if (!allowed) return;
    callback = kind == CallbackKind::kCreate ? sc_callback_ : sc_rescind_callback_;
    if (!callback) return;
    ++callbacks_running_;
  }
  // Not under mu_: the driver may call back into the device (subchannels(), Set*Callback).
  callback(channel);
  {
    std::lock_guard lock(mu_);
    --callbacks_running_;
  }
  idle_cv_.notify_all();
}

void VmbusDevice::QuiesceCallbacks() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return callbacks_running_ == 0; });
  sc_callback_ = nullptr;
  sc_rescind_callback_ = nullptr;
}

bool VmbusDevice::BeginRemoval() {
  std::lock_guard lock(mu_);
  if (removal_ != Removal::kLive) return false;
  removal_ = Removal::kRemoving;
  removed_.store(true, std::memory_order_release);
  return true;
}

std::vector<std::shared_ptr<Channel>> VmbusDevice::FinishRemoval() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return callbacks_running_ == 0; });
  removal_ = Removal::kRemoved;
  return std::exchange(deferred_, {});
}

bool VmbusDevice::DeferTeardown(const std::shared_ptr<Channel>& channel) {
  std::lock_guard lock(mu_);
  if (removal_ != Removal::kRemoving) return false;
  deferred_.push_back(channel);
  return true;
}

void VmbusDevice::AddSubchannel(std::shared_ptr<Channel> channel) {
  std::lock_guard lock(mu_);
  subchannels_.push_back(std::move(channel));
}

std::shared_ptr<Channel> VmbusDevice::TakeSubchannel(uint32_t relid) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(subchannels_.begin(), subchannels_.end(),
                         [&](const auto& c) { return c->relid() == relid; });
  if (it == subchannels_.end()) return nullptr;
  std::shared_ptr<Channel> c = std::move(*it);
  subchannels_.erase(it);
  return c;
}

std::vector<std::shared_ptr<Channel>> VmbusDevice::subchannel_refs() const {
  std::lock_guard lock(mu_);
  return subchannels_;
}

}  // namespace uvmbus::guest
