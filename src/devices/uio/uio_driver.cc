// File: devices/uio/uio_driver.cc
//
// UioNetDriver (uio_driver.h). Order matters in two places: the primary is opened before the
// buffer GPADLs are established on it (Linux uio_hv_generic opens in probe, then creates the
// GPADLs), and a sub-channel is published in the tree only after OPENCHANNEL_RESULT, with its
// `ring` file last, because DPDK starts using a ring the moment the file is there.
#include "devices/uio/uio_driver.h"

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "wire/synic.h"

namespace uvmbus::devices::uio {
namespace {

constexpr uint64_t kPage = 4096;

Expected<partition::PageRun> AllocateBytes(guest::VmbusDevice& device, uint64_t bytes) {
  if (bytes == 0 || bytes % kPage != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "buffer of {} bytes is not a page multiple",
                     bytes);
  }
  return device.page_allocator().AllocateRun(bytes / kPage);
}

guest::OpenParams RawOpenParams(uint32_t ring_bytes) {
  guest::OpenParams params;
  params.send_ring_bytes = ring_bytes;
  params.recv_ring_bytes = ring_bytes;
  params.raw = true;
  return params;
}

GuestRange RingRange(const guest::Channel& channel) {
  return {channel.ring_gpn() * kPage, channel.ring_page_count() * kPage};
}

}  // namespace

UioNetDriver::UioNetDriver(SysfsTree& tree, UioConfig config) : tree_(tree), config_(config) {}

UioNetDriver::~UioNetDriver() = default;

void UioNetDriver::SetObserver(std::function<void(const std::string&)> observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

void UioNetDriver::Notify(const std::string& line) {
  std::function<void(const std::string&)> observer;
  {
    std::lock_guard lock(mu_);
    observer = observer_;
  }
  if (observer) observer(line);
}

std::optional<DeviceLayout> UioNetDriver::layout() const {
  std::lock_guard lock(mu_);
  if (!bound_) return std::nullopt;
  return bound_->layout;
}

size_t UioNetDriver::open_subchannels() const {
  std::lock_guard lock(mu_);
  return bound_ ? bound_->subchannels.size() : 0;
}

bool UioNetDriver::WaitForSubchannels(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout,
                      [&] { return bound_ != nullptr && bound_->subchannels.size() >= count; });
}

Status UioNetDriver::Probe(guest::VmbusDevice& device) {
  {
    std::lock_guard lock(mu_);
    if (bound_) {
      return MakeError(ErrorCode::kUnsupported, "uio: one NIC per instance (device {} is bound)",
                       bound_->layout.device_id.ToString());
    }
  }
  guest::Channel& primary = device.channel();
  const uint64_t monitor_gpa = primary.guest_to_host_monitor_page_gpa();
  if (monitor_gpa == 0) {
    return MakeError(ErrorCode::kUnavailable, "uio: the bus passed no monitor page to the host");
  }
  if (!primary.monitor_allocated()) {
    // DPDK's only doorbell is the monitor bit; without one the host never hears from it.
    UVMBUS_LOG_WARN("uio", "relid {}: offer has monitor_allocated = 0; the user-space driver's "
                    "doorbell (monitor id {}) will go unnoticed", primary.relid(),
                    primary.monitor_id());
  }

  auto bound = std::make_unique<Bound>();
  bound->device = &device;
  DeviceLayout& l = bound->layout;
  l.class_id = device.class_id();
  l.device_id = device.device_id();
  l.relid = primary.relid();
  l.monitor_id = primary.monitor_id();
  l.monitor_page = {monitor_gpa, kPage};

  auto fail = [&](Error error) -> Status {
    Release(*bound);
    return unexpected(std::move(error));
  };
  // 1. Primary ring pair, opened raw.
  if (Status st = primary.Open(RawOpenParams(config_.ring_bytes)); !st) return st;
  l.rings = RingRange(primary);
  // 2. Receive and send buffers, a GPADL each on the primary.
  auto recv = AllocateBytes(device, config_.recv_buffer_bytes);
  if (!recv) return fail(recv.error());
  bound->recv = std::move(*recv);
  auto recv_gpadl = primary.EstablishGpadl(bound->recv);
  if (!recv_gpadl) return fail(recv_gpadl.error());
  l.recv_gpadl = *recv_gpadl;
  l.recv_buffer = {bound->recv.gpn() * kPage, bound->recv.count() * kPage};
  auto send = AllocateBytes(device, config_.send_buffer_bytes);
  if (!send) return fail(send.error());
  bound->send = std::move(*send);
  auto send_gpadl = primary.EstablishGpadl(bound->send);
  if (!send_gpadl) return fail(send_gpadl.error());
  l.send_gpadl = *send_gpadl;
  l.send_buffer = {bound->send.gpn() * kPage, bound->send.count() * kPage};
  // 3. The interrupt page (uio map1): DPDK maps it but never touches it.
  auto int_page = AllocateBytes(device, kPage);
  if (!int_page) return fail(int_page.error());
  bound->int_page = std::move(*int_page);
  l.int_page = {bound->int_page.gpn() * kPage, kPage};
  // 4. The tree.
  if (Status st = tree_.WriteDevice(l); !st) return fail(st.error());

  device.SetSubchannelCallback([this](guest::Channel& c) { OnSubchannel(c); });
  device.SetSubchannelRescindCallback([this](guest::Channel& c) { OnSubchannelRescind(c); });
  const std::string line = fmt::format(
      "uio: {} relid {} monitor id {}: rings {:#x}+{:#x}, recv:{} {:#x}+{:#x}, send:{} "
      "{:#x}+{:#x}, monitor page {:#x}",
      l.device_id.ToString(), l.relid, l.monitor_id, l.rings.gpa, l.rings.size, l.recv_gpadl,
      l.recv_buffer.gpa, l.recv_buffer.size, l.send_gpadl, l.send_buffer.gpa, l.send_buffer.size,
      l.monitor_page.gpa);
  {
    std::lock_guard lock(mu_);
    bound_ = std::move(bound);
  }
  stats_.probes.Add();
  cv_.notify_all();
  Notify(line);
  return Ok();
}

void UioNetDriver::OnSubchannel(guest::Channel& channel) {
  {
    std::lock_guard lock(mu_);
    if (!bound_) return;
  }
  if (Status st = channel.Open(RawOpenParams(config_.subchannel_ring_bytes)); !st) {
    stats_.subchannel_failures.Add();
    Notify(fmt::format("uio: sub-channel relid {} (index {}) failed to open: {}", channel.relid(),
                       channel.sub_channel_index(), st.error().ToString()));
    return;
  }
  const ChannelLayout layout{channel.relid(), channel.sub_channel_index(), channel.monitor_id(),
                             RingRange(channel)};
  Status published = Ok();
  {
    std::lock_guard lock(mu_);
    if (bound_) {
      published = tree_.PublishChannel(layout);
      if (published) bound_->subchannels.push_back(channel.shared_from_this());
    } else {
      published = MakeError(ErrorCode::kUnavailable, "the device was removed meanwhile");
    }
  }
  if (!published) {
    (void)channel.Close();
    stats_.subchannel_failures.Add();
    Notify(fmt::format("uio: sub-channel relid {} not published: {}", channel.relid(),
                       published.error().ToString()));
    return;
  }
  stats_.subchannels_opened.Add();
  cv_.notify_all();
  Notify(fmt::format("uio: sub-channel relid {} index {} monitor id {} open, ring {:#x}+{:#x}",
                     layout.relid, layout.subchannel_id, layout.monitor_id, layout.ring.gpa,
                     layout.ring.size));
}

void UioNetDriver::OnSubchannelRescind(guest::Channel& channel) {
  std::shared_ptr<guest::Channel> held;
  {
    std::lock_guard lock(mu_);
    if (!bound_) return;
    auto& subs = bound_->subchannels;
    auto it = std::find_if(subs.begin(), subs.end(),
                           [&](const auto& c) { return c.get() == &channel; });
    if (it == subs.end()) return;
    held = *it;
    subs.erase(it);
    (void)tree_.RemoveChannel(channel.relid());
  }
  stats_.subchannels_rescinded.Add();
  Notify(fmt::format("uio: sub-channel relid {} rescinded", channel.relid()));
}

void UioNetDriver::Release(Bound& bound) {
  guest::Channel& primary = bound.device->channel();
  for (const auto& sub : bound.subchannels) {
    if (sub->state() == guest::ChannelState::kOpen) (void)sub->Close();
  }
  bound.subchannels.clear();
  // Linux netvsc/uio: close first (the host stops using the buffers), then the GPADLs.
  if (primary.state() == guest::ChannelState::kOpen) (void)primary.Close();
  auto teardown = [&](uint32_t handle, partition::PageRun& run) {
    if (handle == 0 || !run.valid()) return;
    Status st = primary.TeardownGpadl(handle);
    if (!st && st.error().code == ErrorCode::kTimeout) {
      // The host may still write there: keep the pages out of the allocator.
      std::lock_guard lock(mu_);
      leaked_.push_back(std::move(run));
    }
  };
  teardown(bound.layout.recv_gpadl, bound.recv);
  teardown(bound.layout.send_gpadl, bound.send);
  bound.recv.Reset();
  bound.send.Reset();
  bound.int_page.Reset();
}

void UioNetDriver::Remove(guest::VmbusDevice& device) {
  std::unique_ptr<Bound> bound;
  {
    std::lock_guard lock(mu_);
    if (!bound_ || bound_->device != &device) return;
    bound = std::move(bound_);
  }
  Release(*bound);
  cv_.notify_all();
  Notify(fmt::format("uio: {} removed", bound->layout.device_id.ToString()));
}

}  // namespace uvmbus::devices::uio
