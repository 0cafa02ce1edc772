// File: partition/host_partition.cc — see host_partition.h.
#include "partition/host_partition.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace uvmbus::partition {

// Raises a vCPU interrupt by writing its eventfd (the guest polls it). Never blocks: the fds are
// non-blocking eventfds (checked by the socket handshake), and a saturated counter (EAGAIN) is
// still readable, so the interrupt is not lost.
class HostPartition::EventfdSink final : public InterruptSink {
 public:
  explicit EventfdSink(std::vector<UniqueFd> fds) : fds_(std::move(fds)) {}
  void Raise(uint32_t vcpu) override {
    if (vcpu >= fds_.size()) return;
    const uint64_t one = 1;
    (void)::write(fds_[vcpu].get(), &one, sizeof(one));
  }

 private:
  std::vector<UniqueFd> fds_;
};

// connection id -> the doorbell eventfd (a dup), for routing slow-path signals; shared with every
// Doorbell so a Doorbell may outlive the partition.
class HostPartition::DoorbellRegistry final : public DoorbellOwner {
 public:
  void UnregisterDoorbell(uint32_t connection_id) override {
    std::lock_guard lock(mu_);
    if (detached_) return;
    if (fds_.erase(connection_id) != 0 && on_remove_) on_remove_(connection_id);
  }

  Expected<UniqueFd> Add(uint32_t connection_id, int fd) {
    std::lock_guard lock(mu_);
    if (detached_) return MakeError(ErrorCode::kUnavailable, "partition is going away");
    if (fds_.count(connection_id) != 0) {
      return MakeError(ErrorCode::kAlreadyExists, "doorbell for connection id {:#x} exists",
                       connection_id);
    }
    if (fds_.size() >= kMaxDoorbells) {
      return MakeError(ErrorCode::kResourceExhausted, "more than {} doorbells", kMaxDoorbells);
    }
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!dup) return unexpected(Error::FromErrno("dup doorbell", errno));
    UniqueFd guest_dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!guest_dup) return unexpected(Error::FromErrno("dup doorbell", errno));
    fds_.emplace(connection_id, std::move(dup));
    return guest_dup;
  }

  // Rings the doorbell of `connection_id`; false if there is none.
  bool Ring(uint32_t connection_id) {
    std::lock_guard lock(mu_);
    auto it = fds_.find(connection_id);
    if (it == fds_.end()) return false;
    const uint64_t one = 1;
    (void)::write(it->second.get(), &one, sizeof(one));
    return true;
  }

  void SetHook(std::function<void(uint32_t)> hook) {
    std::lock_guard lock(mu_);
    on_remove_ = std::move(hook);
  }

  void Detach() {
    std::lock_guard lock(mu_);
    detached_ = true;
    on_remove_ = nullptr;
    fds_.clear();
  }

 private:
  std::mutex mu_;
  std::map<uint32_t, UniqueFd> fds_ GUARDED_BY(mu_);
  std::function<void(uint32_t)> on_remove_ GUARDED_BY(mu_);
  bool detached_ GUARDED_BY(mu_) = false;
};

HostPartition::HostPartition(GuestRam ram, std::vector<SynicEmulator::VcpuPages> pages,
                             std::vector<UniqueFd> interrupts, PeerInfo peer, size_t queue_depth)
    : ram_(std::move(ram)),
      sink_(std::make_unique<EventfdSink>(std::move(interrupts))),
      synic_(std::move(pages), sink_.get(), queue_depth),
      peer_(std::move(peer)),
      doorbells_(std::make_shared<DoorbellRegistry>()) {}

HostPartition::~HostPartition() {
  StopMonitors();
  doorbells_->Detach();
}

Status HostPartition::AddRamRegion(UniqueFd fd, uint64_t gpa_base, uint64_t size) {
  if (!connected()) return MakeError(ErrorCode::kUnavailable, "guest {} is gone", peer_.name);
  auto added = ram_.AddRegion(std::move(fd), gpa_base, size);
  if (!added) {
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "partition", "guest {}: RAM region refused: {}",
                           peer_.name, added.error().message);
    return added;
  }
  UVMBUS_LOG_INFO("partition", "guest {}: RAM region [{:#x}, +{:#x}) added ({} extra)",
                  peer_.name, gpa_base, size, ram_.region_count());
  return Ok();
}

MonitorPoller* HostPartition::Monitors() {
  if (monitors_stopped_) return nullptr;
  if (!monitors_) {
    // The callback keeps the registry alive on its own: it may run while the partition is
    // being torn down (StopMonitors joins before anything it uses goes away).
    auto created = MonitorPoller::Create(
        [registry = doorbells_](uint32_t connection_id) { return registry->Ring(connection_id); });
    if (!created) {
      UVMBUS_LOG_ERROR("partition", "guest {}: monitor poller: {}", peer_.name,
                       created.error().message);
      return nullptr;
    }
    monitors_ = std::move(*created);
  }
  return monitors_.get();
}

Status HostPartition::SetMonitorPage(uint64_t gpa) {
  if (gpa % kPageSize != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "monitor page GPA {:#x} not page-aligned", gpa);
  }
  std::lock_guard lock(monitor_mu_);
  if (gpa == 0) {
    if (monitors_) monitors_->SetPage({});
    return Ok();
  }
  auto page = ram_.Pages(gpa >> kPageShift, 1);
  if (!page) {
    if (monitors_) monitors_->SetPage({});
    return unexpected(page.error());
  }
  MonitorPoller* m = Monitors();
  if (m == nullptr) return MakeError(ErrorCode::kIo, "no monitor poller");
  m->SetPage(*page);
  return Ok();
}

void HostPartition::ClearMonitors() {
  std::lock_guard lock(monitor_mu_);
  if (monitors_) monitors_->Reset();
}

Status HostPartition::ArmMonitor(uint32_t monitor_id, uint32_t connection_id) {
  std::lock_guard lock(monitor_mu_);
  MonitorPoller* m = Monitors();
  if (m == nullptr) return MakeError(ErrorCode::kUnavailable, "monitors stopped");
  return m->Arm(monitor_id, connection_id);
}

void HostPartition::DisarmMonitor(uint32_t monitor_id) {
  std::lock_guard lock(monitor_mu_);
  if (monitors_) monitors_->Disarm(monitor_id);
}

bool HostPartition::monitor_polling() const {
  std::lock_guard lock(monitor_mu_);
  return monitors_ != nullptr && monitors_->active();
}

void HostPartition::StopMonitors() {
  MonitorPoller* m = nullptr;
  {
    std::lock_guard lock(monitor_mu_);
    monitors_stopped_ = true;
    m = monitors_.get();
  }
  // Joined outside the lock; the object itself lives until the partition is destroyed, so
  // concurrent Arm/Disarm calls still find it (they only update its table).
  if (m != nullptr) m->Shutdown();
}

Status HostPartition::PostToGuest(uint32_t vcpu, std::span<const uint8_t> payload) {
  if (!connected()) return MakeError(ErrorCode::kUnavailable, "guest {} is gone", peer_.name);
  return synic_.Post(vcpu, wire::kHvMsgVmbus, payload);
}

Status HostPartition::SignalGuest(uint32_t vcpu, uint32_t relid) {
  auto raised = synic_.SignalEvent(vcpu, relid);
  if (!raised) return unexpected(raised.error());
  return Ok();
}

HostPartitionStats HostPartition::stats() const {
  const SynicStats& s = synic_.stats();
  HostPartitionStats out;
  out.messages_posted = messages_posted_.Get();
  out.messages_delivered = s.messages_delivered.Get();
  out.messages_queued = s.messages_queued.Get();
  out.messages_dropped = s.messages_dropped.Get();
  out.eoms = s.eoms.Get();
  out.interrupts_raised = s.interrupts_raised.Get();
  out.events_signalled = s.events_signalled.Get();
  out.events_coalesced = s.events_coalesced.Get();
  out.guest_signals_slow = guest_signals_slow_.Get();
  out.bad_requests = bad_requests_.Get();
  out.ram_regions = ram_.region_count();
  out.ram_regions_rejected = ram_.regions_rejected();
  out.ram_bad_accesses = ram_.rejected_accesses();
  {
    std::lock_guard lock(monitor_mu_);
    if (monitors_) {
      out.monitor_polls = monitors_->polls();
      out.monitor_hits = monitors_->hits();
      out.monitor_spurious = monitors_->spurious();
    }
  }
  return out;
}

wire::HvStatus HostPartition::DispatchPostMessage(Handler* handler, uint32_t connection_id,
                                                  uint32_t message_type,
                                                  std::span<const uint8_t> payload) {
  messages_posted_.Add();
  const wire::HvStatus check =
      wire::CheckPostMessageInput(connection_id, message_type, payload.size());
  if (check != wire::HvStatus::kSuccess) return check;
  if (handler == nullptr || !connected()) return wire::HvStatus::kInvalidPortId;
  return handler->OnPostMessage(connection_id, message_type, payload);
}

wire::HvStatus HostPartition::DispatchSignalEvent(Handler* handler, uint32_t connection_id,
                                                  uint16_t flag_number) {
  guest_signals_slow_.Add();
  if ((connection_id & ~wire::kHvConnectionIdMask) != 0) {
    return wire::HvStatus::kInvalidConnectionId;
  }
  if (flag_number != 0) return wire::HvStatus::kInvalidParameter;
  // The guest may not have processed the doorbell registration yet (it travels separately from
  // the offer that names the connection id): deliver to the doorbell all the same.
  if (doorbells_->Ring(connection_id)) return wire::HvStatus::kSuccess;
  if (handler == nullptr || !connected()) return wire::HvStatus::kInvalidPortId;
  return handler->OnSignalEvent(connection_id);
}

void HostPartition::DispatchEndOfMessage(uint32_t vcpu) {
  if (vcpu >= synic_.vcpu_count()) {
    bad_requests_.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "partition", "guest {}: EOM for vcpu {} of {}",
                           peer_.name, vcpu, synic_.vcpu_count());
  }
  synic_.EndOfMessage(vcpu);
}

void HostPartition::DispatchDisconnect(Handler* handler) {
  std::call_once(disconnect_once_, [&] {
    connected_.store(false, std::memory_order_release);
    UVMBUS_LOG_INFO("partition", "guest {} (pid {}) disconnected", peer_.name, peer_.pid);
    // Nobody sets monitor bits any more, and the page is about to be revoked.
    StopMonitors();
    // Release the guest's memory first: the guest is gone, nothing it shared can be trusted or
    // needed, and a handler (or data worker) still touching an old span reads zeros instead of
    // racing with the unmapping. OnDisconnect then runs with the RAM already released.
    ram_.Revoke();
    if (handler != nullptr) handler->OnDisconnect();
  });
}

Expected<HostPartition::NewDoorbell> HostPartition::RegisterDoorbell(uint32_t connection_id) {
  if ((connection_id & ~wire::kHvConnectionIdMask) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "connection id {:#x} has reserved bits set",
                     connection_id);
  }
  if (!connected()) return MakeError(ErrorCode::kUnavailable, "guest {} is gone", peer_.name);
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return unexpected(Error::FromErrno("eventfd", errno));
  auto guest_fd = doorbells_->Add(connection_id, fd.get());
  if (!guest_fd) return unexpected(guest_fd.error());
  NewDoorbell out;
  out.doorbell = Doorbell(doorbells_, connection_id, std::move(fd));
  out.guest_fd = std::move(*guest_fd);
  return out;
}

void HostPartition::SetDoorbellRemoveHook(std::function<void(uint32_t)> on_remove) {
  doorbells_->SetHook(std::move(on_remove));
}

void HostPartition::DetachDoorbells() { doorbells_->Detach(); }

}  // namespace uvmbus::partition
