// File: devices/netvsc/netvsc_drv.cc
#include "devices/netvsc/netvsc_drv.h"

#include "common/log.h"

namespace uvmbus::netvsc {

NetvscDriver::NetvscDriver(partition::GuestPartition& partition, NetvscConfig config)
    : partition_(partition), config_(std::move(config)) {}

NetvscDriver::~NetvscDriver() {
  // The bus removes every device before a driver goes away; stop any left over regardless.
  std::map<guest::VmbusDevice*, std::shared_ptr<NetvscDevice>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(devices_);
  }
  for (auto& [vdev, dev] : left) dev->Stop();
}

Status NetvscDriver::Probe(guest::VmbusDevice& device) {
  auto dev = std::make_shared<NetvscDevice>(device, partition_, config_);
  if (Status st = dev->Start(); !st) {
    UVMBUS_LOG_WARN("netvsc", "probe of {} failed: {}", device.device_id().ToString(),
                    st.error().message);
    dev->Stop();
    return st;
  }
  device.set_driver_data(dev.get());
  DeviceObserver observer;
  {
    std::lock_guard lock(mu_);
    devices_[&device] = dev;
    observer = observer_;
    cv_.notify_all();
  }
  if (observer) observer(dev, true);
  return Ok();
}

void NetvscDriver::Remove(guest::VmbusDevice& device) {
  std::shared_ptr<NetvscDevice> dev;
  DeviceObserver observer;
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(&device);
    if (it == devices_.end()) return;
    dev = std::move(it->second);
    devices_.erase(it);
    observer = observer_;
  }
  dev->Stop();
  device.set_driver_data(nullptr);
  if (observer) observer(dev, false);
}

std::vector<std::shared_ptr<NetvscDevice>> NetvscDriver::devices() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<NetvscDevice>> out;
  for (const auto& [vdev, dev] : devices_) out.push_back(dev);
  return out;
}

std::shared_ptr<NetvscDevice> NetvscDriver::FindDevice(const Guid& instance_id) const {
  std::lock_guard lock(mu_);
  for (const auto& [vdev, dev] : devices_) {
    if (dev->instance_id() == instance_id) return dev;
  }
  return nullptr;
}

void NetvscDriver::SetObserver(DeviceObserver observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

bool NetvscDriver::WaitForDevices(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return devices_.size() >= count; });
}

}  // namespace uvmbus::netvsc
