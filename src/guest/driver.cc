// File: guest/driver.cc — see driver.h.
#include "guest/driver.h"

#include <algorithm>
#include <utility>

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

VmbusDevice::VmbusDevice(std::shared_ptr<Channel> primary) : primary_(std::move(primary)) {}

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

std::function<void(Channel&)> VmbusDevice::subchannel_rescind_callback() const {
  std::lock_guard lock(mu_);
  return sc_rescind_callback_;
}

std::function<void(Channel&)> VmbusDevice::subchannel_callback() const {
  std::lock_guard lock(mu_);
  return sc_callback_;
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
