// File: host/vmbus_server.cc — see vmbus_server.h.
#include "host/vmbus_server.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace uvmbus::host {
namespace {

constexpr std::string_view kComponent = "host";

// Offer flags whose 6.0 meanings need a negotiated feature this server never offers (V5).
constexpr uint16_t kOfferFlags60 = wire::kOfferFlagConfidentialRingBuffer |
                                   wire::kOfferFlagConfidentialExternalMemory |
                                   wire::kOfferFlagRequirePinnedExternalMemory;

bool IsSupportedVersion(uint32_t version, uint32_t max_version) {
  return version <= max_version &&
         std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
             kSupportedVersions.end();
}

}  // namespace

std::string_view RejectionName(Rejection r) {
  switch (r) {
    case Rejection::kUnknownPort: return "unknown_port";
    case Rejection::kBadMessageType: return "bad_message_type";
    case Rejection::kMalformed: return "malformed";
    case Rejection::kNotConnected: return "not_connected";
    case Rejection::kNotValidForVersion: return "not_valid_for_version";
    case Rejection::kUnsupported: return "unsupported";
    case Rejection::kAlreadyConnected: return "already_connected";
    case Rejection::kVersionRefused: return "version_refused";
    case Rejection::kBadInitiateContact: return "bad_initiate_contact";
    case Rejection::kDuplicateRequestOffers: return "duplicate_request_offers";
    case Rejection::kGpadlBadChannel: return "gpadl_bad_channel";
    case Rejection::kGpadlDuplicateHandle: return "gpadl_duplicate_handle";
    case Rejection::kGpadlBodyUnknown: return "gpadl_body_unknown";
    case Rejection::kGpadlInvalidRanges: return "gpadl_invalid_ranges";
    case Rejection::kGpadlBadPages: return "gpadl_bad_pages";
    case Rejection::kGpadlLimit: return "gpadl_limit";
    case Rejection::kGpadlTeardownInvalid: return "gpadl_teardown_invalid";
    case Rejection::kOpenUnknownChannel: return "open_unknown_channel";
    case Rejection::kOpenAlreadyOpen: return "open_already_open";
    case Rejection::kOpenRescinded: return "open_rescinded";
    case Rejection::kOpenBadRingGpadl: return "open_bad_ring_gpadl";
    case Rejection::kOpenBadDownstreamOffset: return "open_bad_downstream_offset";
    case Rejection::kOpenBadTargetVp: return "open_bad_target_vp";
    case Rejection::kOpenFailed: return "open_failed";
    case Rejection::kCloseNotOpen: return "close_not_open";
    case Rejection::kModifyNotOpen: return "modify_not_open";
    case Rejection::kModifyBadTargetVp: return "modify_bad_target_vp";
    case Rejection::kRelidReleaseInvalid: return "relid_release_invalid";
    case Rejection::kSignalWithoutDoorbell: return "signal_without_doorbell";
    case Rejection::kSendFailed: return "send_failed";
    case Rejection::kCount: break;
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// DeviceEntry: one device of this guest, and its DeviceControl.
// ---------------------------------------------------------------------------------------------
class VmbusServer::DeviceEntry final : public DeviceControl {
 public:
  DeviceEntry(VmbusServer* server, DeviceId device_id, std::unique_ptr<Device> dev)
      : server_(server), id(device_id), device(std::move(dev)) {
    offer = device->Offer();
    max_subchannels = device->MaxSubchannels();
    relids.assign(size_t{max_subchannels} + 1, 0);
  }

  Expected<uint16_t> OfferSubchannels(uint16_t count) override {
    return server_->OfferSubchannels(*this, count);
  }
  void CompleteClose(HostChannel& channel) override { server_->CompleteClose(*this, channel); }

  VmbusServer* const server_;
  const DeviceId id;
  std::unique_ptr<Device> device;
  OfferParams offer;
  uint16_t max_subchannels = 0;
  // relids[i] = relid of sub-channel i while offered and not rescinded; 0 otherwise.
  std::vector<uint32_t> relids;
  bool rescinded = false;  // RescindDevice(): destroyed once no channel refers to it
};

// ---------------------------------------------------------------------------------------------
// Construction / destruction
// ---------------------------------------------------------------------------------------------
VmbusServer::VmbusServer(partition::HostPartition* partition, ServerOptions options)
    : partition_(partition), options_(std::move(options)), state_(Disconnected{}) {}

VmbusServer::~VmbusServer() {
  std::vector<std::unique_ptr<DeviceEntry>> devices;
  {
    Lock control(control_mu_);
    Lock lock(mu_);
    if (!std::holds_alternative<Gone>(state_)) ReleaseEverything(lock, control);
    devices = std::move(devices_);
    for (auto& d : graveyard_) devices.push_back(std::move(d));
    graveyard_.clear();
  }
  // Device destructors may join threads: never under our locks.
  devices.clear();
}

// ---------------------------------------------------------------------------------------------
// Host-side API
// ---------------------------------------------------------------------------------------------
DeviceId VmbusServer::AddDevice(std::unique_ptr<Device> device) {
  Lock control(control_mu_);
  Lock lock(mu_);
  const DeviceId id = next_device_id_++;
  auto entry = std::make_unique<DeviceEntry>(this, id, std::move(device));
  DeviceEntry* raw = entry.get();
  devices_.push_back(std::move(entry));
  lock.unlock();
  raw->device->Install(raw);
  lock.lock();
  if (const Connected* c = connection(); c != nullptr && c->offers_requested) {
    (void)OfferDevice(*raw);  // hot add (spec 2.7)
  }
  return id;
}

Status VmbusServer::RescindDevice(DeviceId id) {
  Lock control(control_mu_);
  Lock lock(mu_);
  auto it = std::find_if(devices_.begin(), devices_.end(),
                         [id](const auto& d) { return d->id == id; });
  if (it == devices_.end()) return MakeError(ErrorCode::kNotFound, "no device {}", id);
  DeviceEntry& dev = **it;
  if (!dev.rescinded) {
    dev.rescinded = true;
    UVMBUS_LOG_INFO(kComponent, "{}: rescinding device {} ({})", options_.log_name, id,
                    dev.offer.name);
    const std::vector<uint32_t> relids = dev.relids;
    for (uint32_t relid : relids) {
      if (relid == 0) continue;
      if (Channel* ch = FindChannel(relid)) RescindChannel(lock, *ch);
    }
  }
  CollectDeadDevices();
  DestroyGraveyard(lock);
  return Ok();
}

void VmbusServer::RescindAll() {
  std::vector<DeviceId> ids;
  {
    Lock lock(mu_);
    for (const auto& d : devices_) ids.push_back(d->id);
  }
  for (DeviceId id : ids) (void)RescindDevice(id);
}

bool VmbusServer::Drained() const {
  Lock lock(mu_);
  return std::holds_alternative<Gone>(state_) || channels_.empty();
}

void VmbusServer::ReleaseAll() {
  std::vector<std::unique_ptr<DeviceEntry>> dead;
  Lock control(control_mu_);
  Lock lock(mu_);
  if (!std::holds_alternative<Gone>(state_)) ReleaseEverything(lock, control);
  dead = std::move(graveyard_);
  graveyard_.clear();
  lock.unlock();
  dead.clear();
}

// ---------------------------------------------------------------------------------------------
// Partition handler
// ---------------------------------------------------------------------------------------------
wire::HvStatus VmbusServer::OnPostMessage(uint32_t connection_id, uint32_t message_type,
                                          std::span<const uint8_t> payload) {
  Lock control(control_mu_);
  Lock lock(mu_);
  if (std::holds_alternative<Gone>(state_)) return wire::HvStatus::kInvalidPortId;
  messages_received_.Add();
  // The server listens on the legacy message port (1) and the multi-client port (4), spec 1.1.
  if (connection_id != wire::kVmbusMessageConnectionId &&
      connection_id != wire::kVmbusMessageConnectionId4) {
    Reject(Rejection::kUnknownPort, "message posted to connection {}", connection_id);
    return wire::HvStatus::kInvalidConnectionId;
  }
  if (message_type != wire::kHvMsgVmbus) {
    Reject(Rejection::kBadMessageType, "SynIC message type {:#x}", message_type);
    return wire::HvStatus::kSuccess;
  }
  auto parsed = wire::ParseChannelMessage(payload, wire::Direction::kGuestToHost);
  if (!parsed) {
    Reject(Rejection::kMalformed, "{}", parsed.error().message);
    return wire::HvStatus::kSuccess;
  }
  Dispatch(lock, connection_id, *parsed);
  DestroyGraveyard(lock);
  return wire::HvStatus::kSuccess;
}

wire::HvStatus VmbusServer::OnSignalEvent(uint32_t connection_id) {
  // Doorbells exist for every open channel; anything else has no port (spec 1.7).
  Reject(Rejection::kSignalWithoutDoorbell, "SignalEvent on connection {:#x}", connection_id);
  return wire::HvStatus::kInvalidConnectionId;
}

void VmbusServer::OnDisconnect() {
  std::vector<std::unique_ptr<DeviceEntry>> dead;
  Lock control(control_mu_);
  Lock lock(mu_);
  UVMBUS_LOG_INFO(kComponent, "{}: guest disconnected, releasing everything", options_.log_name);
  if (!std::holds_alternative<Gone>(state_)) ReleaseEverything(lock, control);
  dead = std::move(graveyard_);
  graveyard_.clear();
  lock.unlock();
  dead.clear();
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------
void VmbusServer::Dispatch(Lock& lock, uint32_t connection_id, const wire::ChannelMessage& msg) {
  const wire::ChannelMessageType type = wire::TypeOf(msg);
  const std::string_view name = wire::ChannelMessageName(type);
  if (const auto* ic = std::get_if<wire::InitiateContact>(&msg)) {
    HandleInitiateContact(connection_id, *ic);
    return;
  }
  if (const auto* ic2 = std::get_if<wire::InitiateContact2>(&msg)) {
    // The 56-byte form only matters with 6.0's client_id feature, which is never negotiated
    // here (6.0 is refused): use the base form (H6 cannot arise).
    HandleInitiateContact(connection_id, ic2->base);
    return;
  }
  const Connected* c = connection();
  if (c == nullptr) {
    Reject(Rejection::kNotConnected, "{} while not connected", name);
    return;
  }
  const uint32_t version = c->version;
  using T = wire::ChannelMessageType;
  switch (type) {
    case T::kRequestOffers:
      HandleRequestOffers();
      return;
    case T::kGpadlHeader:
      HandleGpadlHeader(std::get<wire::GpadlHeaderMessage>(msg));
      return;
    case T::kGpadlBody:
      HandleGpadlBody(std::get<wire::GpadlBodyMessage>(msg));
      return;
    case T::kGpadlTeardown:
      HandleGpadlTeardown(std::get<wire::GpadlTeardown>(msg));
      return;
    case T::kOpenChannel:
      // OpenChannel2 (156 bytes) only means something with 6.0 features: use the base form.
      if (const auto* open2 = std::get_if<wire::OpenChannel2>(&msg)) {
        HandleOpenChannel(lock, open2->base);
      } else {
        HandleOpenChannel(lock, std::get<wire::OpenChannel>(msg));
      }
      return;
    case T::kCloseChannel:
      HandleCloseChannel(lock, std::get<wire::CloseChannel>(msg).child_relid);
      return;
    case T::kRelidReleased:
      HandleRelidReleased(std::get<wire::RelidReleased>(msg).child_relid);
      return;
    case T::kUnload:
      HandleUnload(lock);
      return;
    case T::kModifyChannel:
      if (version < wire::kVersionWin10V4_1) {
        Reject(Rejection::kNotValidForVersion, "{} at version {}", name,
               wire::VersionString(version));
        return;
      }
      HandleModifyChannel(lock, std::get<wire::ModifyChannel>(msg));
      return;
    case T::kOpenReservedChannel:
    case T::kCloseReservedChannel:
    case T::kTlConnectRequest:
      if (version < wire::kVersionWin10) {
        Reject(Rejection::kNotValidForVersion, "{} at version {}", name,
               wire::VersionString(version));
      } else {
        // Reserved channels (Windows debugger) and hv_sock are not offered by this host.
        Reject(Rejection::kUnsupported, "{} not supported", name);
      }
      return;
    default:
      // MODIFY_CONNECTION, PAUSE, RESUME need 6.0 feature flags, never negotiated here.
      Reject(Rejection::kNotValidForVersion, "{} at version {}", name,
             wire::VersionString(version));
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Connection: INITIATE_CONTACT (spec 2.5, 9.3 H3-H6), REQUESTOFFERS (H7), UNLOAD (2.10)
// ---------------------------------------------------------------------------------------------
void VmbusServer::HandleInitiateContact(uint32_t connection_id, const wire::InitiateContact& msg) {
  if (!std::holds_alternative<Disconnected>(state_)) {
    Reject(Rejection::kAlreadyConnected, "INITIATE_CONTACT while connected");
    return;
  }
  const uint32_t version = msg.vmbus_version_requested;
  // target_vcpu is honoured from 3.0 on (spec 2.5); the answer goes there when it is a real VP.
  const bool honours_vp = version >= wire::kVersionWin8_1;
  const uint32_t reply_vp = honours_vp && VpValid(msg.target_vcpu) ? msg.target_vcpu : 0;
  auto refuse = [&](uint8_t connection_state) {
    wire::VersionResponse r;
    r.version_supported = 0;
    r.connection_state = connection_state;
    SendTo(reply_vp, r);
  };
  const std::string vs = wire::VersionString(version);
  if (!IsSupportedVersion(version, options_.max_version)) {
    Reject(Rejection::kVersionRefused, "version {} not supported", vs);
    refuse(wire::kConnectionStateSuccessful);  // H3: plain "not supported", guest tries older
    return;
  }
  // >= 5.0 is the multi-client protocol: INITIATE_CONTACT arrives on port 4; older versions
  // use port 1 (spec 2.5, 2.6).
  const bool multi_client = version >= wire::kVersionWin10V5;
  const uint32_t expected_port =
      multi_client ? wire::kVmbusMessageConnectionId4 : wire::kVmbusMessageConnectionId;
  if (connection_id != expected_port) {
    Reject(Rejection::kVersionRefused, "version {} requested on connection {} (expected {})", vs,
           connection_id, expected_port);
    refuse(wire::kConnectionStateSuccessful);
    return;
  }
  const char* invalid = nullptr;
  if ((msg.monitor_page1 == 0) != (msg.monitor_page2 == 0)) {
    invalid = "exactly one monitor page GPA is zero (H4)";
  } else if (!multi_client && (msg.interrupt_page() & (wire::kHvPageSize - 1)) != 0) {
    invalid = "interrupt page GPA not page-aligned (H5)";
  } else if (multi_client && msg.msg_sint != wire::kVmbusMessageSint) {
    invalid = "msg_sint is not 2";
  } else if (version >= wire::kVersionWin10V5_1 && msg.msg_vtl != 0) {
    invalid = "msg_vtl is not 0";
  } else if (honours_vp && !VpValid(msg.target_vcpu)) {
    invalid = "target_vcpu is not a VP of this partition";
  }
  if (invalid != nullptr) {
    Reject(Rejection::kBadInitiateContact, "INITIATE_CONTACT {}: {}", vs, invalid);
    refuse(wire::kConnectionStateFailedUnknownFailure);
    return;
  }
  Connected c;
  c.version = version;
  c.target_vcpu = honours_vp ? msg.target_vcpu : 0;
  // The child->parent monitor page (spec 1.5): only a page of guest RAM is polled; anything else
  // just means no channel is offered with a monitor (the guest then uses HvSignalEvent).
  if (msg.monitor_page2 != 0) {
    if (auto set = partition_->SetMonitorPage(msg.monitor_page2); set) {
      c.monitor_page = true;
    } else {
      UVMBUS_LOG_INFO(kComponent, "{}: monitor page {:#x} not usable ({}): no monitors",
                      options_.log_name, msg.monitor_page2, set.error().message);
    }
  }
  state_ = c;
  wire::VersionResponse r;
  r.version_supported = 1;
  r.connection_state = wire::kConnectionStateSuccessful;
  // >= 5.0: the port for every later message; below, OpenVMM echoes the version (V1).
  r.msg_conn_id = multi_client ? kServerMessageConnectionId : version;
  Send(r);
  UVMBUS_LOG_INFO(kComponent, "{}: connected, version {}, messages to VP {}", options_.log_name,
                  vs, c.target_vcpu);
}

void VmbusServer::HandleRequestOffers() {
  Connected* c = connection();
  if (c->offers_requested) {
    Reject(Rejection::kDuplicateRequestOffers, "REQUESTOFFERS after offers were sent (H7)");
    return;
  }
  c->offers_requested = true;
  for (auto& d : devices_) {
    if (!d->rescinded) (void)OfferDevice(*d);
  }
  // Always, even with no devices: Linux >= 6.14 waits for it (spec 10.1 V9).
  Send(wire::AllOffersDelivered{});
}

void VmbusServer::HandleUnload(Lock& lock) {
  const Connected c = *connection();
  state_ = Unloading{c.version, c.target_vcpu};
  // Release as if every channel were closed and every GPADL torn down (spec 2.10).
  std::vector<uint32_t> open;
  for (const auto& [relid, ch] : channels_) {
    if (std::holds_alternative<ChOpen>(ch->state)) open.push_back(relid);
  }
  for (uint32_t relid : open) {
    if (Channel* ch = FindChannel(relid); ch != nullptr && std::holds_alternative<ChOpen>(ch->state)) {
      BeginClose(lock, *ch, CloseReason::kUnload);
    }
  }
  MaybeFinishUnload();
}

void VmbusServer::MaybeFinishUnload() {
  const auto* u = std::get_if<Unloading>(&state_);
  if (u == nullptr || pending_closes_ != 0) return;
  const uint32_t vp = u->target_vcpu;
  channels_.clear();
  gpadls_.clear();
  gpadls_in_progress_.clear();
  relid_used_.fill(false);
  ReleaseMonitors();
  for (auto& d : devices_) std::fill(d->relids.begin(), d->relids.end(), 0);
  CollectDeadDevices();
  state_ = Disconnected{};
  SendTo(vp, wire::UnloadResponse{});
  UVMBUS_LOG_INFO(kComponent, "{}: unloaded", options_.log_name);
}

// ---------------------------------------------------------------------------------------------
// GPADLs (spec 2.9, 9.3 H8-H16)
// ---------------------------------------------------------------------------------------------
void VmbusServer::HandleGpadlHeader(const wire::GpadlHeaderMessage& msg) {
  const uint32_t relid = msg.fixed.child_relid;
  const uint32_t handle = msg.fixed.gpadl;
  auto fail = [&](Rejection r, std::string_view why) {
    Reject(r, "GPADL_HEADER relid {} handle {:#x}: {}", relid, handle, why);
    wire::GpadlCreated created;
    created.child_relid = relid;
    created.gpadl = handle;
    created.creation_status = wire::kStatusUnsuccessful;
    Send(created);
  };
  const Channel* ch = FindChannel(relid);
  if (ch == nullptr || std::holds_alternative<ChRescinded>(ch->state) ||
      (std::holds_alternative<ChClosing>(ch->state) &&
       std::get<ChClosing>(ch->state).rescinded)) {
    fail(Rejection::kGpadlBadChannel, "no such channel (H8)");
    return;
  }
  // Bodies carry no relid, so in-progress handles must be unique globally; created ones per
  // channel (spec 2.9, H9).
  if (gpadls_in_progress_.count(handle) != 0 || gpadls_.count({relid, handle}) != 0) {
    fail(Rejection::kGpadlDuplicateHandle, "handle already in use (H9)");
    return;
  }
  if (gpadls_.size() + gpadls_in_progress_.size() >= options_.max_gpadls ||
      gpadls_in_progress_.size() >= kMaxGpadlsInProgress) {
    fail(Rejection::kGpadlLimit, "too many GPADLs");
    return;
  }
  InProgressGpadl gpadl{relid, wire::GpadlAssembler(msg)};
  if (gpadl.assembler.IsComplete()) {
    FinishGpadl(handle, std::move(gpadl));
  } else {
    gpadls_in_progress_.emplace(handle, std::move(gpadl));
  }
}

void VmbusServer::HandleGpadlBody(const wire::GpadlBodyMessage& msg) {
  const uint32_t handle = msg.fixed.gpadl;
  auto it = gpadls_in_progress_.find(handle);
  if (it == gpadls_in_progress_.end()) {
    // No relid in a body: nothing to answer (H10).
    Reject(Rejection::kGpadlBodyUnknown, "GPADL_BODY for handle {:#x} not in progress", handle);
    return;
  }
  if (auto added = it->second.assembler.AddBody(msg); !added) {
    Reject(Rejection::kGpadlBodyUnknown, "GPADL_BODY {:#x}: {}", handle, added.error().message);
    return;
  }
  if (it->second.assembler.IsComplete()) {
    InProgressGpadl gpadl = std::move(it->second);
    gpadls_in_progress_.erase(it);
    FinishGpadl(handle, std::move(gpadl));
  }
}

void VmbusServer::FinishGpadl(uint32_t handle, InProgressGpadl gpadl) {
  const uint32_t relid = gpadl.child_relid;
  wire::GpadlCreated created;
  created.child_relid = relid;
  created.gpadl = handle;
  created.creation_status = wire::kStatusUnsuccessful;
  auto ranges = gpadl.assembler.Finish();
  if (!ranges) {
    Reject(Rejection::kGpadlInvalidRanges, "{}", ranges.error().message);
    Send(created);
    return;
  }
  auto view = GpadlView::Create(
      [this](uint64_t gpn, uint64_t count) { return partition_->GuestPages(gpn, count); },
      handle, relid, std::move(*ranges));
  if (!view) {
    Reject(Rejection::kGpadlBadPages, "{}", view.error().message);
    Send(created);
    return;
  }
  gpadls_.emplace(std::make_pair(relid, handle), std::move(*view));
  created.creation_status = 0;
  Send(created);
}

void VmbusServer::HandleGpadlTeardown(const wire::GpadlTeardown& msg) {
  const uint32_t relid = msg.child_relid;
  const uint32_t handle = msg.gpadl;
  auto it = gpadls_.find({relid, handle});
  if (it == gpadls_.end()) {
    const char* why = "unknown handle";
    if (gpadls_in_progress_.count(handle) != 0) {
      why = "GPADL still in progress";
    } else if (std::any_of(gpadls_.begin(), gpadls_.end(),
                           [handle](const auto& e) { return e.first.second == handle; })) {
      why = "GPADL belongs to another channel";
    }
    Reject(Rejection::kGpadlTeardownInvalid, "GPADL_TEARDOWN relid {} handle {:#x}: {} (H16)",
           relid, handle, why);
    return;
  }
  // Answered at once, also for rescinded channels (spec 2.7). A channel that still uses the
  // pages keeps its own reference, so nothing it touches is unmapped under it.
  gpadls_.erase(it);
  wire::GpadlTorndown torndown;
  torndown.gpadl = handle;
  Send(torndown);
}

Expected<std::shared_ptr<GpadlView>> VmbusServer::LookupGpadl(uint32_t relid,
                                                               uint32_t handle) const {
  Lock lock(mu_);
  auto it = gpadls_.find({relid, handle});
  if (it == gpadls_.end()) {
    return MakeError(ErrorCode::kNotFound, "no GPADL {:#x} on channel {}", handle, relid);
  }
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Open / close (spec 2.8, 9.3 H17-H22)
// ---------------------------------------------------------------------------------------------
void VmbusServer::HandleOpenChannel(Lock& lock, const wire::OpenChannel& msg) {
  Channel* ch = FindChannel(msg.child_relid);
  if (ch == nullptr) {
    Reject(Rejection::kOpenUnknownChannel, "OPENCHANNEL for unknown relid {} (H17)",
           msg.child_relid);
    return;
  }
  if (std::holds_alternative<ChOffered>(ch->state)) {
    OpenChannelNow(lock, *ch, msg);
    return;
  }
  if (std::holds_alternative<ChRescinded>(ch->state)) {
    // Silently ignored: the guest's rescind handling wakes its waiter (spec 2.7).
    Reject(Rejection::kOpenRescinded, "OPENCHANNEL for rescinded relid {}", ch->relid);
    return;
  }
  if (auto* closing = std::get_if<ChClosing>(&ch->state)) {
    if (closing->rescinded) {
      Reject(Rejection::kOpenRescinded, "OPENCHANNEL for rescinded relid {}", ch->relid);
    } else if (closing->reopen.has_value() || closing->reason != CloseReason::kGuest) {
      Reject(Rejection::kOpenAlreadyOpen, "OPENCHANNEL relid {}: reopen already queued",
             ch->relid);
    } else {
      // Remembered and performed once the close completes (OpenVMM ClosingReopen, H18).
      closing->reopen = msg;
      UVMBUS_LOG_DEBUG(kComponent, "{}: relid {} reopen queued behind close", options_.log_name,
                       ch->relid);
    }
    return;
  }
  Reject(Rejection::kOpenAlreadyOpen, "OPENCHANNEL for open relid {} (H17)", ch->relid);
}

void VmbusServer::OpenChannelNow(Lock& lock, Channel& ch, const wire::OpenChannel& msg) {
  const uint32_t relid = ch.relid;
  auto fail = [&](Rejection r, const std::string& why) {
    Reject(r, "OPENCHANNEL relid {}: {}", relid, why);
    wire::OpenChannelResult result;
    result.child_relid = relid;
    result.openid = msg.openid;
    result.status = wire::kStatusUnsuccessful;
    Send(result);
  };
  auto it = gpadls_.find({relid, msg.ringbuffer_gpadlhandle});
  if (it == gpadls_.end()) {
    fail(Rejection::kOpenBadRingGpadl,
         fmt::format("ring GPADL {:#x} not created on this channel", msg.ringbuffer_gpadlhandle));
    return;
  }
  std::shared_ptr<GpadlView> ring = it->second;
  if (ring->ranges().size() != 1 || !ring->IsPageAligned()) {
    fail(Rejection::kOpenBadRingGpadl, "ring GPADL is not one page-aligned range (H19)");
    return;
  }
  // Each ring needs its 4 KiB control page plus at least one data page (H20).
  const uint64_t pages = ring->page_count();
  const uint64_t offset = msg.downstream_ringbuffer_pageoffset;
  if (offset < 2 || pages < offset + 2) {
    fail(Rejection::kOpenBadDownstreamOffset,
         fmt::format("downstream offset {} in a {}-page ring GPADL (H20)", offset, pages));
    return;
  }
  // 0xFFFFFFFF = interrupts disabled (H21); anything else must name a VP.
  if (msg.target_vp != wire::kTargetVpNone && !VpValid(msg.target_vp)) {
    fail(Rejection::kOpenBadTargetVp, fmt::format("target_vp {}", msg.target_vp));
    return;
  }
  auto doorbell = partition_->CreateDoorbell(ch.connection_id);
  if (!doorbell) {
    fail(Rejection::kOpenFailed, "doorbell: " + doorbell.error().message);
    return;
  }
  // The channel's monitor bit rings the same doorbell as the guest's SignalEvent (spec 1.5).
  const uint32_t monitor_id = ch.monitor_id;
  if (monitor_id <= wire::kMaxMonitorId) {
    if (auto armed = partition_->ArmMonitor(monitor_id, ch.connection_id); !armed) {
      fail(Rejection::kOpenFailed, "monitor: " + armed.error().message);
      return;
    }
  }
  auto disarm = [&] {
    if (monitor_id <= wire::kMaxMonitorId) partition_->DisarmMonitor(monitor_id);
  };
  DeviceEntry* dev = ch.device;
  HostChannel::Params params;
  params.relid = relid;
  params.sub_channel_index = ch.sub_channel_index;
  params.connection_id = ch.connection_id;
  params.target_vp = msg.target_vp;
  params.class_id = dev->offer.class_id;
  params.instance_id = dev->offer.instance_id;
  std::memcpy(params.userdata.data(), msg.userdata, params.userdata.size());
  params.ring_gpadl = std::move(ring);
  params.downstream_page_offset = static_cast<uint32_t>(offset);
  params.max_inbound_packet_size = dev->offer.max_inbound_packet_size;
  params.doorbell = std::move(*doorbell);
  params.partition = partition_;
  params.lookup = [this, relid](uint32_t handle) { return LookupGpadl(relid, handle); };
  auto channel = HostChannel::Create(std::move(params));
  if (!channel) {
    disarm();
    fail(Rejection::kOpenFailed, "rings: " + channel.error().message);
    return;
  }
  HostChannel* raw = channel->get();
  ch.state = ChOpening{msg.openid, std::move(*channel)};

  // The device's Open() runs without the state lock (it may call OfferSubchannels or look up
  // GPADLs); the control lock keeps every other transition out meanwhile.
  lock.unlock();
  Status opened = dev->device->Open(*raw);
  lock.lock();

  Channel* again = FindChannel(relid);
  auto* opening = again != nullptr ? std::get_if<ChOpening>(&again->state) : nullptr;
  if (opening == nullptr) return;  // cannot happen: only the control path changes states
  if (!opened) {
    std::unique_ptr<HostChannel> dropped = std::move(opening->channel);
    disarm();
    again->state = ChOffered{};
    fail(Rejection::kOpenFailed, "device: " + opened.error().message);
    return;
  }
  again->state = ChOpen{msg.openid, std::move(opening->channel)};
  wire::OpenChannelResult result;
  result.child_relid = relid;
  result.openid = msg.openid;
  result.status = 0;
  Send(result);
}

void VmbusServer::HandleCloseChannel(Lock& lock, uint32_t relid) {
  Channel* ch = FindChannel(relid);
  if (ch == nullptr) {
    Reject(Rejection::kCloseNotOpen, "CLOSECHANNEL for unknown relid {} (H22)", relid);
    return;
  }
  if (std::holds_alternative<ChOpen>(ch->state)) {
    BeginClose(lock, *ch, CloseReason::kGuest);
    return;
  }
  const auto* closing = std::get_if<ChClosing>(&ch->state);
  if (std::holds_alternative<ChRescinded>(ch->state) ||
      (closing != nullptr && closing->rescinded)) {
    // The guest closes a channel we rescinded (spec 2.7): the host side is already closed.
    UVMBUS_LOG_DEBUG(kComponent, "{}: CLOSECHANNEL for rescinded relid {}", options_.log_name,
                     relid);
    return;
  }
  Reject(Rejection::kCloseNotOpen, "CLOSECHANNEL for relid {} that is not open (H22)", relid);
}

void VmbusServer::BeginClose(Lock& lock, Channel& ch, CloseReason reason) {
  auto* open = std::get_if<ChOpen>(&ch.state);
  if (open == nullptr) return;
  const uint32_t relid = ch.relid;
  DeviceEntry* dev = ch.device;
  HostChannel* raw = open->channel.get();
  ChClosing closing;
  closing.channel = std::move(open->channel);
  closing.reason = reason;
  closing.rescinded = reason == CloseReason::kRescind;
  ch.state = std::move(closing);
  ++pending_closes_;

  lock.unlock();
  const CloseStatus status = dev->device->Close(*raw);
  lock.lock();

  if (status == CloseStatus::kClosed) {
    Channel* again = FindChannel(relid);
    if (again != nullptr && std::holds_alternative<ChClosing>(again->state)) {
      FinishClose(lock, *again);
    }
  }
  // kPending: DeviceControl::CompleteClose() finishes it (it needs the control lock, which we
  // hold, so it cannot have run yet).
}

void VmbusServer::CompleteClose(DeviceEntry& device, HostChannel& channel) {
  std::vector<std::unique_ptr<DeviceEntry>> dead;
  Lock control(control_mu_);
  Lock lock(mu_);
  Channel* ch = FindChannel(channel.relid());
  auto* closing = ch != nullptr ? std::get_if<ChClosing>(&ch->state) : nullptr;
  if (closing == nullptr || closing->channel.get() != &channel || ch->device != &device) return;
  FinishClose(lock, *ch);
  dead = std::move(graveyard_);
  graveyard_.clear();
  lock.unlock();
  dead.clear();
}

void VmbusServer::FinishClose(Lock& lock, Channel& ch) {
  ChClosing closing = std::move(std::get<ChClosing>(ch.state));
  --pending_closes_;
  closes_cv_.notify_all();
  // Rings, GPADL pins and the doorbell go now: the device no longer uses them. Its monitor
  // stops ringing too (the id stays reserved for the channel until its relid is released).
  closing.channel.reset();
  if (ch.monitor_id <= wire::kMaxMonitorId) partition_->DisarmMonitor(ch.monitor_id);
  const uint32_t relid = ch.relid;
  if (closing.rescinded) {
    ch.state = ChRescinded{};
    if (closing.released) ReleaseChannel(relid);
    MaybeFinishUnload();
    return;
  }
  ch.state = ChOffered{};
  // Only a guest close on a live connection has follow-ups: after UNLOAD or hang-up a queued
  // reopen is dropped (the guest reconnects from scratch, spec 2.10).
  if (closing.reason == CloseReason::kGuest && connection() != nullptr) {
    // A closed primary takes its sub-channels with it; a reopened primary asks for new ones
    // (Linux vmbus_close() waits for their rescind; spec 7.8).
    if (ch.sub_channel_index == 0) RescindSubchannels(lock, *ch.device);
    if (closing.reopen.has_value()) {
      if (Channel* again = FindChannel(relid);
          again != nullptr && std::holds_alternative<ChOffered>(again->state)) {
        OpenChannelNow(lock, *again, *closing.reopen);
      }
    }
  }
  MaybeFinishUnload();
}

// ---------------------------------------------------------------------------------------------
// Rescind / release (spec 2.7)
// ---------------------------------------------------------------------------------------------
void VmbusServer::RescindChannel(Lock& lock, Channel& ch) {
  DeviceEntry* dev = ch.device;
  // The device slot is free again at once (a new sub-channel may take it); the relid stays
  // reserved until the guest's RELID_RELEASED.
  if (ch.sub_channel_index < dev->relids.size() && dev->relids[ch.sub_channel_index] == ch.relid) {
    dev->relids[ch.sub_channel_index] = 0;
  }
  wire::RescindChannelOffer rescind;
  rescind.child_relid = ch.relid;
  if (std::holds_alternative<ChOffered>(ch.state)) {
    ch.state = ChRescinded{};
    Send(rescind);
  } else if (std::holds_alternative<ChOpen>(ch.state)) {
    Send(rescind);
    BeginClose(lock, ch, CloseReason::kRescind);
  } else if (auto* closing = std::get_if<ChClosing>(&ch.state)) {
    if (!closing->rescinded) {
      closing->rescinded = true;
      closing->reopen.reset();
      Send(rescind);
    }
  }
  // ChOpening cannot be seen here (control lock); ChRescinded: nothing more to do.
}

void VmbusServer::RescindSubchannels(Lock& lock, DeviceEntry& device) {
  std::vector<uint32_t> subs(device.relids.begin() + 1, device.relids.end());
  for (uint32_t relid : subs) {
    if (relid == 0) continue;
    if (Channel* ch = FindChannel(relid)) RescindChannel(lock, *ch);
  }
}

void VmbusServer::HandleRelidReleased(uint32_t relid) {
  Channel* ch = FindChannel(relid);
  if (ch != nullptr && std::holds_alternative<ChRescinded>(ch->state)) {
    ReleaseChannel(relid);
    return;
  }
  if (ch != nullptr) {
    if (auto* closing = std::get_if<ChClosing>(&ch->state); closing != nullptr && closing->rescinded) {
      closing->released = true;  // finished when the device's close completes
      return;
    }
  }
  Reject(Rejection::kRelidReleaseInvalid, "RELID_RELEASED for relid {} that was not rescinded",
         relid);
}

void VmbusServer::ReleaseChannel(uint32_t relid) {
  // GPADLs the guest did not tear down go with the relid.
  for (auto it = gpadls_.begin(); it != gpadls_.end();) {
    it = it->first.first == relid ? gpadls_.erase(it) : std::next(it);
  }
  for (auto it = gpadls_in_progress_.begin(); it != gpadls_in_progress_.end();) {
    it = it->second.child_relid == relid ? gpadls_in_progress_.erase(it) : std::next(it);
  }
  if (Channel* ch = FindChannel(relid); ch != nullptr && ch->monitor_id <= wire::kMaxMonitorId) {
    partition_->DisarmMonitor(ch->monitor_id);
    monitor_relid_[ch->monitor_id] = 0;
  }
  channels_.erase(relid);
  if (relid < relid_used_.size()) relid_used_[relid] = false;
  CollectDeadDevices();
}

void VmbusServer::CollectDeadDevices() {
  for (auto it = devices_.begin(); it != devices_.end();) {
    DeviceEntry* d = it->get();
    const bool referenced = std::any_of(channels_.begin(), channels_.end(),
                                        [d](const auto& e) { return e.second->device == d; });
    if (d->rescinded && !referenced) {
      graveyard_.push_back(std::move(*it));
      it = devices_.erase(it);
    } else {
      ++it;
    }
  }
}

void VmbusServer::DestroyGraveyard(Lock& lock) {
  if (graveyard_.empty()) return;
  std::vector<std::unique_ptr<DeviceEntry>> dead = std::move(graveyard_);
  graveyard_.clear();
  lock.unlock();
  dead.clear();  // device destructors may join threads: not under the state lock
  lock.lock();
}

void VmbusServer::ReleaseEverything(Lock& lock, Lock& control) {
  state_ = Gone{};
  std::vector<uint32_t> open;
  for (const auto& [relid, ch] : channels_) {
    if (std::holds_alternative<ChOpen>(ch->state)) open.push_back(relid);
  }
  for (uint32_t relid : open) {
    if (Channel* ch = FindChannel(relid); ch != nullptr && std::holds_alternative<ChOpen>(ch->state)) {
      BeginClose(lock, *ch, CloseReason::kRelease);
    }
  }
  lock.unlock();
  WaitForPendingCloses(control);
  lock.lock();
  channels_.clear();
  gpadls_.clear();
  gpadls_in_progress_.clear();
  relid_used_.fill(false);
  ReleaseMonitors();
  for (auto& d : devices_) std::fill(d->relids.begin(), d->relids.end(), 0);
  CollectDeadDevices();
}

void VmbusServer::WaitForPendingCloses(Lock& control) {
  // Releases the control lock while waiting so devices can call CompleteClose().
  closes_cv_.wait(control, [this] {
    Lock lock(mu_);
    return pending_closes_ == 0;
  });
}

// ---------------------------------------------------------------------------------------------
// MODIFYCHANNEL (spec 2.3, 9.3 H23, 10.1 V8)
// ---------------------------------------------------------------------------------------------
void VmbusServer::HandleModifyChannel(Lock& lock, const wire::ModifyChannel& msg) {
  const bool respond = connection()->version >= wire::kVersionWin10V5_3;
  auto answer = [&](uint32_t status) {
    if (!respond) return;
    wire::ModifyChannelResponse response;
    response.child_relid = msg.child_relid;
    response.status = status;
    Send(response);
  };
  Channel* ch = FindChannel(msg.child_relid);
  auto* open = ch != nullptr ? std::get_if<ChOpen>(&ch->state) : nullptr;
  if (open == nullptr) {
    Reject(Rejection::kModifyNotOpen, "MODIFYCHANNEL for relid {} that is not open (H23)",
           msg.child_relid);
    answer(wire::kStatusUnsuccessful);
    return;
  }
  if (!VpValid(msg.target_vp)) {
    Reject(Rejection::kModifyBadTargetVp, "MODIFYCHANNEL relid {} to VP {}", msg.child_relid,
           msg.target_vp);
    answer(wire::kStatusUnsuccessful);
    return;
  }
  HostChannel* raw = open->channel.get();
  raw->set_target_vp(msg.target_vp);
  DeviceEntry* dev = ch->device;
  lock.unlock();
  dev->device->RetargetVp(*raw, msg.target_vp);
  lock.lock();
  answer(0);
}

// ---------------------------------------------------------------------------------------------
// Offers (spec 2.3, 2.5, 2.7, 7.8)
// ---------------------------------------------------------------------------------------------
Status VmbusServer::OfferDevice(DeviceEntry& device) {
  auto relid = OfferChannel(device, 0);
  if (!relid) {
    UVMBUS_LOG_ERROR(kComponent, "{}: cannot offer device {}: {}", options_.log_name,
                     device.offer.name, relid.error().message);
    return unexpected(relid.error());
  }
  return Ok();
}

Expected<uint32_t> VmbusServer::OfferChannel(DeviceEntry& device, uint16_t sub_channel_index) {
  auto relid = AllocateRelid();
  if (!relid) return relid;
  auto ch = std::make_unique<Channel>();
  ch->relid = *relid;
  ch->sub_channel_index = sub_channel_index;
  ch->connection_id = *relid | kOfferConnectionIdBase;
  ch->device = &device;
  ch->state = ChOffered{};
  device.relids[sub_channel_index] = *relid;

  wire::OfferChannel offer;
  offer.if_type = device.offer.class_id;
  offer.if_instance = device.offer.instance_id;
  offer.chn_flags = static_cast<uint16_t>(device.offer.chn_flags & ~kOfferFlags60);
  offer.mmio_megabytes = device.offer.mmio_megabytes;
  std::memcpy(offer.user_def, device.offer.user_def.data(), sizeof(offer.user_def));
  offer.sub_channel_index = sub_channel_index;
  offer.child_relid = *relid;
  // MNF only for devices that ask for it and guests whose monitor page we can poll; otherwise
  // the guest always uses SignalEvent (V7).
  offer.monitorid = wire::kNoMonitorId;
  offer.monitor_allocated = 0;
  if (const Connected* c = connection(); device.offer.monitored && c != nullptr && c->monitor_page) {
    const uint32_t monitor_id = AllocateMonitorId(*relid);
    if (monitor_id <= wire::kMaxMonitorId) {
      ch->monitor_id = monitor_id;
      offer.monitorid = static_cast<uint8_t>(monitor_id);
      offer.monitor_allocated = 1;
    }
  }
  offer.is_dedicated_interrupt = 1;
  offer.connection_id = ch->connection_id;
  channels_.emplace(*relid, std::move(ch));
  Send(offer);
  return relid;
}

Expected<uint16_t> VmbusServer::OfferSubchannels(DeviceEntry& device, uint16_t count) {
  // State lock only: callable from a data worker that the control path may be waiting for.
  Lock lock(mu_);
  const Connected* c = connection();
  if (c == nullptr || !c->offers_requested || device.rescinded) {
    return MakeError(ErrorCode::kUnavailable, "device {} is not offered", device.offer.name);
  }
  if (count > device.max_subchannels) {
    return MakeError(ErrorCode::kInvalidArgument, "{} sub-channels requested, at most {}", count,
                     device.max_subchannels);
  }
  const Channel* primary = device.relids[0] != 0 ? FindChannel(device.relids[0]) : nullptr;
  if (primary == nullptr || !std::holds_alternative<ChOpen>(primary->state)) {
    return MakeError(ErrorCode::kProtocol, "sub-channels of {} need an open primary channel",
                     device.offer.name);
  }
  uint16_t offered = 0;
  for (uint16_t i = 1; i <= count; ++i) {
    if (device.relids[i] != 0) continue;
    auto relid = OfferChannel(device, i);
    if (!relid) return unexpected(relid.error());
    ++offered;
  }
  return offered;
}

Expected<uint32_t> VmbusServer::AllocateRelid() {
  // Dense from 1 (spec 10.1 V11: Linux scans the event bits up to the highest relid).
  for (uint32_t relid = 1; relid <= kMaxRelid; ++relid) {
    if (!relid_used_[relid]) {
      relid_used_[relid] = true;
      return relid;
    }
  }
  return MakeError(ErrorCode::kResourceExhausted, "all {} relids in use", kMaxRelid);
}

uint32_t VmbusServer::AllocateMonitorId(uint32_t relid) {
  for (uint32_t id = 0; id <= wire::kMaxMonitorId; ++id) {
    if (monitor_relid_[id] == 0) {
      monitor_relid_[id] = relid;
      return id;
    }
  }
  return wire::kNoMonitorId;
}

void VmbusServer::ReleaseMonitors() {
  monitor_relid_.fill(0);
  partition_->ClearMonitors();
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------
template <typename T>
void VmbusServer::SendTo(uint32_t vp, const T& msg) {
  if (std::holds_alternative<Gone>(state_)) return;
  const wire::MessageBuffer buffer = wire::Encode(msg);
  if (auto posted = partition_->PostToGuest(vp, buffer.span()); !posted) {
    Reject(Rejection::kSendFailed, "{} to VP {}: {}", wire::ChannelMessageName(T::kType), vp,
           posted.error().message);
    return;
  }
  messages_sent_.Add();
}

template <typename T>
void VmbusServer::Send(const T& msg) {
  SendTo(message_vp(), msg);
}

template <typename... Args>
void VmbusServer::Reject(Rejection r, fmt::format_string<Args...> format, Args&&... args) {
  rejections_[static_cast<size_t>(r)].Add();
  UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: {}: {}", options_.log_name,
                         RejectionName(r), fmt::format(format, std::forward<Args>(args)...));
}

VmbusServer::Channel* VmbusServer::FindChannel(uint32_t relid) {
  auto it = channels_.find(relid);
  return it == channels_.end() ? nullptr : it->second.get();
}

const VmbusServer::Connected* VmbusServer::connection() const {
  return std::get_if<Connected>(&state_);
}
VmbusServer::Connected* VmbusServer::connection() { return std::get_if<Connected>(&state_); }

uint32_t VmbusServer::message_vp() const {
  if (const auto* c = std::get_if<Connected>(&state_)) return c->target_vcpu;
  if (const auto* u = std::get_if<Unloading>(&state_)) return u->target_vcpu;
  return 0;
}

bool VmbusServer::VpValid(uint32_t vp) const { return vp < partition_->vcpu_count(); }

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------
uint64_t VmbusServer::total_rejections() const {
  uint64_t sum = 0;
  for (const Counter& c : rejections_) sum += c.Get();
  return sum;
}

uint32_t VmbusServer::version() const {
  Lock lock(mu_);
  if (const auto* c = std::get_if<Connected>(&state_)) return c->version;
  return 0;
}

bool VmbusServer::connected() const {
  Lock lock(mu_);
  return std::holds_alternative<Connected>(state_);
}

size_t VmbusServer::gpadl_count() const {
  Lock lock(mu_);
  return gpadls_.size();
}

size_t VmbusServer::channel_count() const {
  Lock lock(mu_);
  return channels_.size();
}

size_t VmbusServer::open_channel_count() const {
  Lock lock(mu_);
  size_t n = 0;
  for (const auto& [relid, ch] : channels_) {
    if (!std::holds_alternative<ChOffered>(ch->state) &&
        !std::holds_alternative<ChRescinded>(ch->state)) {
      ++n;
    }
  }
  return n;
}

size_t VmbusServer::device_count() const {
  Lock lock(mu_);
  return devices_.size();
}

ChannelInfo VmbusServer::DescribeChannel(const Channel& ch) const {
  ChannelInfo info;
  info.relid = ch.relid;
  info.sub_channel_index = ch.sub_channel_index;
  info.connection_id = ch.connection_id;
  const HostChannel* hc = nullptr;
  if (std::holds_alternative<ChOffered>(ch.state)) {
    info.state = "offered";
  } else if (const auto* opening = std::get_if<ChOpening>(&ch.state)) {
    info.state = "opening";
    hc = opening->channel.get();
  } else if (const auto* open = std::get_if<ChOpen>(&ch.state)) {
    info.state = "open";
    hc = open->channel.get();
  } else if (const auto* closing = std::get_if<ChClosing>(&ch.state)) {
    info.state = "closing";
    hc = closing->channel.get();
  } else {
    info.state = "rescinded";
  }
  if (hc != nullptr) {
    info.open = true;
    info.stats = hc->Stats();
  } else {
    info.stats.relid = ch.relid;
    info.stats.subchannel_id = ch.sub_channel_index;
  }
  info.stats.monitor_id = ch.monitor_id;
  return info;
}

ServerSnapshot VmbusServer::Snapshot() const {
  Lock lock(mu_);
  ServerSnapshot s;
  s.peer = partition_->peer();
  s.partition = partition_->stats();
  if (const auto* c = std::get_if<Connected>(&state_)) {
    s.state = "connected";
    s.version = c->version;
    s.target_vcpu = c->target_vcpu;
    s.offers_requested = c->offers_requested;
  } else if (const auto* u = std::get_if<Unloading>(&state_)) {
    s.state = "unloading";
    s.version = u->version;
    s.target_vcpu = u->target_vcpu;
  } else if (std::holds_alternative<Disconnected>(state_)) {
    s.state = "disconnected";
  } else {
    s.state = "gone";
  }
  s.gpadls = gpadls_.size();
  s.gpadls_in_progress = gpadls_in_progress_.size();
  for (const auto& d : devices_) {
    DeviceInfo info;
    info.id = d->id;
    info.name = d->offer.name;
    info.class_id = d->offer.class_id;
    info.instance_id = d->offer.instance_id;
    info.max_subchannels = d->max_subchannels;
    info.rescinded = d->rescinded;
    info.primary_relid = d->relids.empty() ? 0 : d->relids[0];
    info.inspect = d->device->InspectJson();
    for (const auto& [relid, ch] : channels_) {
      if (ch->device == d.get()) info.channels.push_back(DescribeChannel(*ch));
    }
    s.devices.push_back(std::move(info));
  }
  for (size_t i = 0; i < kRejectionCount; ++i) {
    if (uint64_t v = rejections_[i].Get(); v != 0) {
      s.rejections.emplace_back(std::string(RejectionName(static_cast<Rejection>(i))), v);
    }
  }
  s.messages_received = messages_received_.Get();
  s.messages_sent = messages_sent_.Get();
  return s;
}

}  // namespace uvmbus::host
