// File: host/host_service.cc — see host_service.h.
#include "host/host_service.h"

#include <utility>

#include "common/log.h"
#include "wire/device_guids.h"
#include "wire/versions.h"

namespace uvmbus::host {

// ---------------------------------------------------------------------------------------------
// GuestHandler: forwards the partition's callbacks to the guest's server and tells the service
// about progress (Shutdown waits on it) and departure (the reaper removes the guest).
// ---------------------------------------------------------------------------------------------
class HostService::GuestHandler final : public partition::HostPartition::Handler {
 public:
  GuestHandler(HostService* service, Guest* guest, VmbusServer* server)
      : service_(service), guest_(guest), server_(server) {}

  wire::HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                               std::span<const uint8_t> payload) override {
    const wire::HvStatus status = server_->OnPostMessage(connection_id, message_type, payload);
    service_->Notify(guest_, false);
    return status;
  }
  wire::HvStatus OnSignalEvent(uint32_t connection_id) override {
    return server_->OnSignalEvent(connection_id);
  }
  void OnDisconnect() override {
    server_->OnDisconnect();  // releases guest memory before the partition revokes it
    service_->Notify(guest_, true);
  }

 private:
  HostService* const service_;
  Guest* const guest_;
  VmbusServer* const server_;
};

HostService::HostService(DeviceFactory factory, HostServiceOptions options)
    : factory_(std::move(factory)), options_(std::move(options)) {
  if (options_.reaper_thread) reaper_ = std::thread([this] { ReaperLoop(); });
}

HostService::~HostService() {
  Shutdown(std::chrono::milliseconds(0));
}

Status HostService::AddGuest(std::unique_ptr<partition::HostPartition> partition) {
  if (partition == nullptr) return MakeError(ErrorCode::kInvalidArgument, "null partition");
  partition::HostPartition* raw = partition.get();
  return AddGuestImpl(std::move(partition), raw);
}

Status HostService::AddGuest(partition::HostPartition* partition) {
  if (partition == nullptr) return MakeError(ErrorCode::kInvalidArgument, "null partition");
  return AddGuestImpl(nullptr, partition);
}

Status HostService::AddGuestImpl(std::unique_ptr<partition::HostPartition> owned,
                                 partition::HostPartition* partition) {
  auto guest = std::make_unique<Guest>();
  guest->owned = std::move(owned);
  guest->partition = partition;
  const partition::PeerInfo& peer = partition->peer();
  ServerOptions server_options = options_.server;
  server_options.log_name = fmt::format("guest {} (pid {})", peer.name, peer.pid);
  guest->server = std::make_unique<VmbusServer>(partition, server_options);
  if (factory_) {
    for (auto& device : factory_(peer)) {
      if (device != nullptr) guest->server->AddDevice(std::move(device));
    }
  }
  guest->handler = std::make_unique<GuestHandler>(this, guest.get(), guest->server.get());
  Guest* raw = guest.get();
  {
    std::lock_guard lock(mu_);
    if (shutdown_) {
      return MakeError(ErrorCode::kUnavailable, "host service is shutting down");
    }
    guests_.push_back(std::move(guest));
    ++accepted_;
  }
  cv_.notify_all();
  UVMBUS_LOG_INFO("host", "serving guest {} (pid {}, {})", peer.name, peer.pid, peer.transport);
  if (auto started = raw->partition->Start(raw->handler.get()); !started) {
    Notify(raw, true);  // never served: the reaper removes it
    return started;
  }
  return Ok();
}

partition::SocketHost::GuestCallback HostService::GuestCallback() {
  return [this](std::unique_ptr<partition::HostPartition> partition) {
    if (auto added = AddGuest(std::move(partition)); !added) {
      UVMBUS_LOG_WARN("host", "guest refused: {}", added.error().message);
    }
  };
}

void HostService::Notify(Guest* guest, bool gone) {
  {
    std::lock_guard lock(mu_);
    if (gone) guest->gone = true;
    ++progress_;
  }
  cv_.notify_all();
}

void HostService::Destroy(std::list<std::unique_ptr<Guest>>& guests) {
  for (auto& g : guests) {
    // No more callbacks, then release (the server's destructor closes what is still open), then
    // the partition itself.
    g->partition->Stop();
    g->server.reset();
    g->handler.reset();
    g->owned.reset();
  }
  guests.clear();
}

size_t HostService::Reap() {
  std::list<std::unique_ptr<Guest>> dead;
  {
    std::lock_guard lock(mu_);
    for (auto it = guests_.begin(); it != guests_.end();) {
      auto next = std::next(it);
      if ((*it)->gone) dead.splice(dead.end(), guests_, it);
      it = next;
    }
    removed_ += dead.size();
    being_destroyed_ += dead.size();
  }
  const size_t n = dead.size();
  Destroy(dead);
  {
    std::lock_guard lock(mu_);
    being_destroyed_ -= n;
  }
  if (n != 0) cv_.notify_all();
  return n;
}

void HostService::ReaperLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] {
      if (stop_reaper_) return true;
      for (const auto& g : guests_) {
        if (g->gone) return true;
      }
      return false;
    });
    if (stop_reaper_) return;
    lock.unlock();
    Reap();
    lock.lock();
  }
}

bool HostService::WaitForGuestCount(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout,
                      [&] { return guests_.size() + being_destroyed_ == count; });
}

void HostService::Shutdown(std::chrono::milliseconds drain) {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    stop_reaper_ = true;
  }
  cv_.notify_all();
  // The reaper must not destroy a server while we use it below.
  if (reaper_.joinable()) reaper_.join();

  std::vector<VmbusServer*> servers;
  {
    std::lock_guard lock(mu_);
    for (const auto& g : guests_) {
      if (!g->gone) servers.push_back(g->server.get());
    }
  }
  if (!servers.empty()) {
    UVMBUS_LOG_INFO("host", "shutting down: rescinding the devices of {} guests",
                    servers.size());
  }
  for (VmbusServer* s : servers) s->RescindAll();
  if (drain.count() > 0) {
    std::unique_lock lock(mu_);
    // Every guest message bumps progress_ and notifies: re-check after each one.
    cv_.wait_for(lock, drain, [this] {
      for (const auto& g : guests_) {
        if (!g->gone && !g->server->Drained()) return false;
      }
      return true;
    });
  }
  std::list<std::unique_ptr<Guest>> all;
  {
    std::lock_guard lock(mu_);
    removed_ += guests_.size();
    being_destroyed_ += guests_.size();
    all.splice(all.end(), guests_);
  }
  const size_t n = all.size();
  Destroy(all);
  {
    std::lock_guard lock(mu_);
    being_destroyed_ -= n;
  }
  cv_.notify_all();
}

Status HostService::RescindDevice(const std::string& guest, const Guid& instance) {
  // mu_ keeps the guest from being reaped meanwhile; nothing under the server's control lock
  // takes mu_ (GuestHandler notifies after the server returned), so the order mu_ -> control is
  // safe.
  std::lock_guard lock(mu_);
  for (const auto& g : guests_) {
    if (g->gone || g->partition->peer().name != guest) continue;
    for (const DeviceInfo& d : g->server->Snapshot().devices) {
      if (d.instance_id != instance || d.rescinded) continue;
      return g->server->RescindDevice(d.id);
    }
    return MakeError(ErrorCode::kNotFound, "guest {} has no device {{{}}}", guest,
                     instance.ToString());
  }
  return MakeError(ErrorCode::kNotFound, "no connected guest named '{}'", guest);
}

Status HostService::AddDevice(const std::string& guest, std::unique_ptr<Device> device) {
  if (device == nullptr) return MakeError(ErrorCode::kInvalidArgument, "null device");
  std::lock_guard lock(mu_);
  if (shutdown_) return MakeError(ErrorCode::kUnavailable, "host service is shutting down");
  for (const auto& g : guests_) {
    if (g->gone || g->partition->peer().name != guest) continue;
    g->server->AddDevice(std::move(device));
    return Ok();
  }
  return MakeError(ErrorCode::kNotFound, "no connected guest named '{}'", guest);
}

size_t HostService::guest_count() const {
  std::lock_guard lock(mu_);
  return guests_.size() + being_destroyed_;
}

HostSnapshot HostService::Snapshot() const {
  HostSnapshot s;
  std::lock_guard lock(mu_);
  for (const auto& g : guests_) s.guests.push_back(g->server->Snapshot());
  s.guests_accepted = accepted_;
  s.guests_removed = removed_;
  return s;
}

// ---------------------------------------------------------------------------------------------
// JSON (sysfs names, conventions.md 2b)
// ---------------------------------------------------------------------------------------------
namespace {

std::string BracedGuid(const Guid& g) { return "{" + g.ToString() + "}"; }

nlohmann::json ChannelJson(const ChannelInfo& c) {
  const ChannelStats& s = c.stats;
  nlohmann::json j;
  j["state"] = c.state;
  j["subchannel_id"] = c.sub_channel_index;
  j["connection_id"] = c.connection_id;
  j["monitor_id"] = s.monitor_id;
  if (c.open) {
    j["cpu"] = s.cpu;
    j["in_mask"] = s.in_mask;
    j["out_mask"] = s.out_mask;
    j["read_avail"] = s.read_avail;
    j["write_avail"] = s.write_avail;
    j["pending"] = s.pending;
    j["events"] = s.events;
    j["interrupts"] = s.interrupts;
    j["intr_in_full"] = s.intr_in_full;
    j["intr_out_empty"] = s.intr_out_empty;
    j["out_full_first"] = s.out_full_first;
    j["out_full_total"] = s.out_full_total;
    j["in_packets"] = s.in_packets;
    j["out_packets"] = s.out_packets;
    j["ring_errors"] = s.ring_errors;
  }
  return j;
}

}  // namespace

nlohmann::json ToJson(const ServerSnapshot& s) {
  nlohmann::json j;
  j["name"] = s.peer.name;
  j["pid"] = s.peer.pid;
  j["uid"] = s.peer.uid;
  j["transport"] = s.peer.transport;
  j["state"] = s.state;
  j["version"] = s.version != 0 ? wire::VersionString(s.version) : std::string();
  j["target_vcpu"] = s.target_vcpu;
  j["offers_requested"] = s.offers_requested;
  j["gpadls"] = s.gpadls;
  j["gpadls_in_progress"] = s.gpadls_in_progress;
  j["messages_received"] = s.messages_received;
  j["messages_sent"] = s.messages_sent;
  nlohmann::json rejections = nlohmann::json::object();
  for (const auto& [name, value] : s.rejections) rejections[name] = value;
  j["rejections"] = rejections;
  const partition::HostPartitionStats& p = s.partition;
  j["partition"] = {{"messages_posted", p.messages_posted},
                    {"messages_delivered", p.messages_delivered},
                    {"messages_queued", p.messages_queued},
                    {"messages_dropped", p.messages_dropped},
                    {"eoms", p.eoms},
                    {"interrupts_raised", p.interrupts_raised},
                    {"events_signalled", p.events_signalled},
                    {"events_coalesced", p.events_coalesced},
                    {"guest_signals_slow", p.guest_signals_slow},
                    {"bad_requests", p.bad_requests},
                    {"ram_regions", p.ram_regions},
                    {"ram_regions_rejected", p.ram_regions_rejected},
                    {"ram_bad_accesses", p.ram_bad_accesses},
                    {"monitor_polls", p.monitor_polls},
                    {"monitor_hits", p.monitor_hits},
                    {"monitor_spurious", p.monitor_spurious}};
  nlohmann::json devices = nlohmann::json::array();
  for (const DeviceInfo& d : s.devices) {
    nlohmann::json dj;
    dj["id"] = d.primary_relid;
    dj["name"] = d.name;
    dj["class_id"] = BracedGuid(d.class_id);
    dj["device_id"] = BracedGuid(d.instance_id);
    dj["description"] = std::string(wire::DeviceDescription(d.class_id));
    dj["max_subchannels"] = d.max_subchannels;
    dj["rescinded"] = d.rescinded;
    if (!d.inspect.is_null()) dj["stats"] = d.inspect;
    nlohmann::json mapping = nlohmann::json::array();
    nlohmann::json channels = nlohmann::json::object();
    for (const ChannelInfo& c : d.channels) {
      if (c.open) mapping.push_back(fmt::format("{}:{}", c.relid, c.stats.cpu));
      channels[std::to_string(c.relid)] = ChannelJson(c);
    }
    dj["channel_vp_mapping"] = mapping;
    dj["channels"] = channels;
    devices.push_back(dj);
  }
  j["devices"] = devices;
  return j;
}

nlohmann::json ToJson(const HostSnapshot& s) {
  nlohmann::json j;
  nlohmann::json guests = nlohmann::json::array();
  for (const ServerSnapshot& g : s.guests) guests.push_back(ToJson(g));
  j["guests"] = guests;
  j["guests_accepted"] = s.guests_accepted;
  j["guests_removed"] = s.guests_removed;
  return j;
}

}  // namespace uvmbus::host
