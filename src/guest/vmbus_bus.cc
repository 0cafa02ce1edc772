// File: guest/vmbus_bus.cc — see vmbus_bus.h.
//
// Threads and what runs where (Linux equivalents in brackets):
//   vCPU v thread   ISR: event scan -> Channel::OnInterrupt; message slot -> validation ->
//                   responses complete waiters inline, offers/rescinds queued; softirq pass
//                   [vmbus_isr, vmbus_chan_sched, vmbus_on_msg_dpc, tasklets, NET_RX]
//   offer worker    ProcessOffer: validate, create channel (+device), publish relid, queue probe
//                   or sub-channel callback [hv_vmbus_con ordered work queue]
//   rescind worker  ProcessRescind: waits for offers in progress (M11), marks the channel,
//                   wakes its waiters (M12), queues the removal [system work queue]
//   device worker   probe / remove of primary devices, driver (un)registration [hv_pri_chan]
//   sub-ch worker   sc_creation_callback / sub-channel removal [hv_sub_chan]
// Locks: mu_ (devices/channels maps) is never held while posting, waiting or calling a driver.
#include "guest/vmbus_bus.h"

#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "common/log.h"
#include "guest/work_queue.h"
#include "wire/device_guids.h"

namespace uvmbus::guest {

// ---------------------------------------------------------------------------------------------
// Events

std::string_view BusEventKindName(BusEventKind kind) {
  switch (kind) {
    case BusEventKind::kConnected:
      return "connected";
    case BusEventKind::kOffer:
      return "offer";
    case BusEventKind::kProbe:
      return "probe";
    case BusEventKind::kProbeFailed:
      return "probe failed";
    case BusEventKind::kNoDriver:
      return "no driver";
    case BusEventKind::kSubchannel:
      return "sub-channel";
    case BusEventKind::kRescind:
      return "rescind";
    case BusEventKind::kRemove:
      return "remove";
    case BusEventKind::kRelidReleased:
      return "released";
    case BusEventKind::kDisconnected:
      return "disconnected";
    case BusEventKind::kHostGone:
      return "host gone";
  }
  return "unknown";
}

namespace {
// "Heartbeat" from lsvmbus's "[Heartbeat]".
std::string_view ClassName(const Guid& class_id) {
  std::string_view d = wire::DeviceDescription(class_id);
  if (d.size() >= 2 && d.front() == '[' && d.back() == ']') d = d.substr(1, d.size() - 2);
  return d;
}
}  // namespace

std::string BusEvent::ToString() const {
  const std::string_view kind_name = BusEventKindName(kind);
  const auto device = [&] {
    return fmt::format("{} {{{}}} relid {}", ClassName(class_id), class_id.ToString(), relid);
  };
  switch (kind) {
    case BusEventKind::kConnected:
    case BusEventKind::kDisconnected:
    case BusEventKind::kHostGone:
      return detail.empty() ? std::string(kind_name) : fmt::format("{}: {}", kind_name, detail);
    case BusEventKind::kOffer:
      return sub_channel_index == 0
                 ? fmt::format("offer: {}", device())
                 : fmt::format("offer: {} (sub-channel {})", device(), sub_channel_index);
    case BusEventKind::kProbe:
      return fmt::format("probe: {} -> driver {}", device(), driver);
    case BusEventKind::kProbeFailed:
      return fmt::format("probe failed: {} -> driver {}: {}", device(), driver, detail);
    case BusEventKind::kNoDriver:
      return fmt::format("no driver: {}", device());
    case BusEventKind::kSubchannel:
      return fmt::format("sub-channel: {} index {}", device(), sub_channel_index);
    case BusEventKind::kRescind:
      return fmt::format("rescind: relid {}", relid);
    case BusEventKind::kRemove:
      return fmt::format("remove: {} (driver {})", device(), driver);
    case BusEventKind::kRelidReleased:
      return fmt::format("released: relid {}", relid);
  }
  return std::string(kind_name);
}

namespace internal {

// ---------------------------------------------------------------------------------------------
// BusImpl

class BusImpl final : public BusCore, public VcpuThread::Handler {
 public:
  BusImpl(partition::GuestPartition& partition, const BusOptions& options)
      : BusCore(partition, options) {
    CreateVcpus(this);
  }
  ~BusImpl() override { Shutdown(); }

  Status Start();
  void Shutdown();

  Status Connect();
  Status Disconnect();

  Status RegisterDriver(Driver& driver);
  Status UnregisterDriver(Driver& driver);
  void AddObserver(BusObserver observer) {
    std::lock_guard lock(observers_mu_);
    observers_.push_back(std::move(observer));
  }

  std::vector<DeviceInfo> ListDevices() const;
  std::shared_ptr<VmbusDevice> FindDevice(const Guid& instance_id) const;
  std::shared_ptr<Channel> FindChannel(uint32_t relid) const;

  uint32_t message_connection_id() const { return msg_conn_id_.load(std::memory_order_acquire); }
  bool WaitForMessages(uint64_t count, std::chrono::milliseconds timeout) const;
  bool Flush(std::chrono::milliseconds timeout);

  // VcpuThread::Handler
  void OnInterrupt(VcpuThread& vcpu) override;
  void OnHostDisconnect() override;

 private:
  // ---- ISR ----
  void ScanEvents(VcpuThread& vcpu);
  void HandleMessageSlot(VcpuThread& vcpu);
  void DispatchMessage(const wire::HvMessage& message);
  void OnAllOffersDelivered();

  // ---- Workers ----
  void ProcessOffer(const wire::OfferChannel& offer);
  void ProcessRescind(uint32_t relid);
  void ProbeDevice(const std::shared_ptr<VmbusDevice>& device);
  void RunSubchannelCallback(const std::shared_ptr<VmbusDevice>& device,
                             const std::shared_ptr<Channel>& channel);
  // Device worker: driver Remove(), channels shut down; with `release` (rescind) the primary's
  // relid is released too.
  void RemoveDevice(const std::shared_ptr<VmbusDevice>& device, bool release);
  // Sub-channel worker: rescind of a sub-channel of `device` (null if the device is gone).
  void RemoveSubchannel(const std::shared_ptr<VmbusDevice>& device,
                        const std::shared_ptr<Channel>& channel);
  // Device worker: every device (disconnect / host gone).
  void RemoveAllDevices(bool talk_to_host);
  // Unpublishes, waits for the vCPUs, sends RELID_RELEASED (if `send`), forgets the channel.
  void ReleaseChannel(const std::shared_ptr<Channel>& channel, bool send);
  void UnbindDriver(const std::shared_ptr<VmbusDevice>& device);

  uint32_t ChooseTargetVcpu(const Guid& class_id);
  void Emit(BusEvent event);
  BusEvent DeviceEvent(BusEventKind kind, const Channel& channel) const;
  Status NegotiateVersion();
  Status EnsureContactPages();

  WorkQueue offer_wq_{"vmbus-offer"};
  WorkQueue rescind_wq_{"vmbus-rescind"};
  WorkQueue device_wq_{"vmbus-pri"};
  WorkQueue sc_wq_{"vmbus-sub"};
  DriverRegistry drivers_;

  // Serialises Connect / Disconnect / Shutdown.
  std::mutex connect_mu_;
  partition::PageRun interrupt_page_;
  partition::PageRun monitor_pages_;

  mutable std::mutex mu_;
  std::map<uint32_t, std::shared_ptr<Channel>> channels_ GUARDED_BY(mu_);
  std::map<uint32_t, std::shared_ptr<VmbusDevice>> devices_ GUARDED_BY(mu_);  // by primary relid
  uint32_t next_perf_vcpu_ GUARDED_BY(mu_) = 0;

  std::mutex observers_mu_;
  std::vector<BusObserver> observers_ GUARDED_BY(observers_mu_);

  // Offers queued but not yet processed (M11: a rescind waits for them).
  std::mutex offer_mu_;
  std::condition_variable offer_cv_;
  uint64_t offers_in_progress_ GUARDED_BY(offer_mu_) = 0;
  bool stopping_ GUARDED_BY(offer_mu_) = false;

  // Connect's waits.
  std::mutex conn_mu_;
  std::condition_variable conn_cv_;
  bool all_offers_received_ GUARDED_BY(conn_mu_) = false;
  bool initial_probes_done_ GUARDED_BY(conn_mu_) = false;
  std::atomic<bool> host_gone_{false};

  // Messages fully handled (WaitForMessages).
  mutable std::mutex progress_mu_;
  mutable std::condition_variable progress_cv_;
  uint64_t messages_done_ GUARDED_BY(progress_mu_) = 0;

  bool started_ = false;
};

Status BusImpl::Start() {
  for (WorkQueue* wq : {&offer_wq_, &rescind_wq_, &device_wq_, &sc_wq_}) {
    if (Status st = wq->Start(); !st) return st;
  }
  for (auto& v : vcpus_) {
    if (Status st = v->Start(); !st) return st;
  }
  started_ = true;
  return Ok();
}

void BusImpl::Shutdown() {
  std::lock_guard connect(connect_mu_);
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(offer_mu_);
    stopping_ = true;
  }
  offer_cv_.notify_all();
  // Wake every waiter first so no worker stays blocked on a host answer.
  requests_.FailAll(Error::Make(ErrorCode::kCancelled, "VMBus bus shutting down"));
  // A host hang-up queued RemoveAllDevices() on the device worker (OnHostDisconnect), and Stop()
  // below discards queued work: the drivers must get their Remove() before the devices are
  // dropped, since a driver holds references to its devices. Let that work run first (bounded:
  // with the host gone nothing in it waits for an answer).
  if (host_gone_.load(std::memory_order_acquire)) {
    (void)device_wq_.Flush(std::chrono::milliseconds(10'000));
  }
  offer_wq_.Stop();
  rescind_wq_.Stop();
  sc_wq_.Stop();
  device_wq_.Stop();
  for (auto& v : vcpus_) v->Stop();
  connected_.store(false, std::memory_order_release);
  // Drop channels and devices while the softirq queues (in vcpus_) still exist.
  std::map<uint32_t, std::shared_ptr<Channel>> channels;
  std::map<uint32_t, std::shared_ptr<VmbusDevice>> devices;
  {
    std::lock_guard lock(mu_);
    channels.swap(channels_);
    devices.swap(devices_);
  }
  for (auto& [relid, ch] : channels) {
    relids_.Unpublish(relid, ch.get());
    ch->Detach();
  }
}

// ---------------------------------------------------------------------------------------------
// ISR (vCPU threads)

void BusImpl::OnInterrupt(VcpuThread& vcpu) {
  // Events first, then messages: the order Windows asked Linux to keep (spec 7.2).
  ScanEvents(vcpu);
  HandleMessageSlot(vcpu);
}

void BusImpl::ScanEvents(VcpuThread& vcpu) {
  const std::span<uint8_t> page = partition_.EventPage(vcpu.vcpu());
  if (page.size() < wire::kHvPageSize) return;
  uint8_t* area = page.data() + wire::kVmbusEventAreaOffset;
  constexpr uint32_t kWords = wire::kSynicEventAreaSize / 8;
  for (uint32_t w = 0; w < kWords; ++w) {
    std::atomic_ref<uint64_t> word(*reinterpret_cast<uint64_t*>(area + 8 * w));
    if (word.load(std::memory_order_relaxed) == 0) continue;
    // Test-and-clear every set bit of the word at once; acquire pairs with the host's set
    // (release), so ring data written before the signal is visible to the callback.
    uint64_t bits = word.exchange(0, std::memory_order_acquire);
    while (bits != 0) {
      const uint32_t bit = static_cast<uint32_t>(std::countr_zero(bits));
      bits &= bits - 1;
      const uint32_t relid = w * 64 + bit;
      // Bit 0 is the reserved legacy bit (spec 1.4); a relid without a channel is stale or hostile.
      Channel* channel = relid == 0 ? nullptr : relids_.Get(relid);
      if (channel == nullptr || channel->rescinded()) {
        vcpu.mutable_stats().stray_events.Add();
        continue;
      }
      vcpu.mutable_stats().channel_events.Add();
      channel->OnInterrupt();
    }
  }
}

void BusImpl::HandleMessageSlot(VcpuThread& vcpu) {
  const std::span<uint8_t> page = partition_.MessagePage(vcpu.vcpu());
  if (page.size() < wire::kHvPageSize) return;
  uint8_t* slot = page.data() + wire::kVmbusMessageSlotOffset;
  std::atomic_ref<uint32_t> type_ref(*reinterpret_cast<uint32_t*>(slot + wire::kHvMessageTypeOffset));
  // M1: an empty slot means nothing to do. Acquire pairs with the host's release store of the
  // type (written last): the rest of the message is visible.
  const uint32_t type = type_ref.load(std::memory_order_acquire);
  if (type == wire::kHvMsgNone) return;

  // Spec 1.3 step 2 / 9.1 G1: copy the slot once, parse only the copy.
  wire::HvMessage copy;
  std::memcpy(&copy, slot, sizeof(copy));
  copy.message_type = type;
  vcpu.mutable_stats().messages.Add();
  stats_.messages_received.Add();
  DispatchMessage(copy);

  // Step 3: free the slot only if it still holds what we processed.
  uint32_t expected = type;
  type_ref.compare_exchange_strong(expected, wire::kHvMsgNone, std::memory_order_acq_rel);
  // Step 4: full barrier, then EOM if the host has more queued (M19). The flag is read from the
  // live slot after the free: the host may set it while we were processing.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint8_t flags = std::atomic_ref<uint8_t>(slot[wire::kHvMessageFlagsOffset])
                            .load(std::memory_order_relaxed);
  if (((flags | copy.message_flags) & wire::kHvMessageFlagPending) != 0) {
    stats_.eoms.Add();
    partition_.EndOfMessage(vcpu.vcpu());
  }
  {
    std::lock_guard lock(progress_mu_);
    ++messages_done_;
  }
  progress_cv_.notify_all();
}

void BusImpl::DispatchMessage(const wire::HvMessage& message) {
  if (message.message_type != wire::kHvMsgVmbus) {
    // Hypervisor messages (synthetic timer, intercepts) are not VMBus's business: drop.
    stats_.msg_not_vmbus.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped SynIC message type {:#x}",
                           message.message_type);
    return;
  }
  if (message.payload_size > wire::kHvMessagePayloadMax) {  // M3
    stats_.msg_bad_payload_size.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped message: payload_size {} > {}",
                           message.payload_size, wire::kHvMessagePayloadMax);
    return;
  }
  const std::span<const uint8_t> payload(message.payload, message.payload_size);
  if (payload.size() < wire::kChannelMessageHeaderSize) {  // M5
    stats_.msg_too_short.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped message of {} bytes",
                           payload.size());
    return;
  }
  uint32_t msgtype = 0;
  std::memcpy(&msgtype, payload.data(), sizeof(msgtype));
  // M2: Linux's table has 25 entries (types 0..24); anything else is dropped.
  constexpr uint32_t kLinuxMessageCount = 25;
  if (msgtype == 0 || msgtype >= kLinuxMessageCount) {
    stats_.msg_bad_type.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped message type {}", msgtype);
    return;
  }
  const auto type = static_cast<wire::ChannelMessageType>(msgtype);
  if (wire::ChannelMessageDirection(type) != wire::Direction::kHostToGuest) {  // M4
    stats_.msg_wrong_direction.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped guest-to-host message {} from host",
                           wire::ChannelMessageName(type));
    return;
  }
  if (payload.size() < wire::ChannelMessageMinSize(type)) {  // M5
    stats_.msg_too_short.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped {}: {} bytes < {}",
                           wire::ChannelMessageName(type), payload.size(),
                           wire::ChannelMessageMinSize(type));
    return;
  }
  auto parsed = wire::ParseChannelMessage(payload, wire::Direction::kHostToGuest);
  if (!parsed) {
    stats_.msg_malformed.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "dropped message: {}",
                           parsed.error().message);
    return;
  }
  if (version_.load(std::memory_order_acquire) == 0 &&
      type != wire::ChannelMessageType::kVersionResponse) {
    // Nothing but VERSION_RESPONSE makes sense before a version was negotiated.
    stats_.msg_unexpected.Add();
    return;
  }

  switch (type) {
    case wire::ChannelMessageType::kOfferChannel: {
      const auto offer = std::get<wire::OfferChannel>(*parsed);
      {
        std::lock_guard lock(offer_mu_);
        ++offers_in_progress_;
      }
      const bool queued = offer_wq_.Post([this, offer] {
        ProcessOffer(offer);
        {
          std::lock_guard lock(offer_mu_);
          --offers_in_progress_;
        }
        offer_cv_.notify_all();
      });
      if (!queued) {
        std::lock_guard lock(offer_mu_);
        --offers_in_progress_;
      }
      return;
    }
    case wire::ChannelMessageType::kRescindChannelOffer: {
      const uint32_t relid = std::get<wire::RescindChannelOffer>(*parsed).child_relid;
      rescind_wq_.Post([this, relid] { ProcessRescind(relid); });
      return;
    }
    case wire::ChannelMessageType::kAllOffersDelivered:
      OnAllOffersDelivered();
      return;
    case wire::ChannelMessageType::kOpenChannelResult:
    case wire::ChannelMessageType::kGpadlCreated:
    case wire::ChannelMessageType::kGpadlTorndown:
    case wire::ChannelMessageType::kVersionResponse:
    case wire::ChannelMessageType::kUnloadResponse:
    case wire::ChannelMessageType::kModifyChannelResponse:
      // Non-blocking handlers: complete the waiter inline (spec 7.3 step 4).
      if (!requests_.Complete(*parsed)) {
        stats_.responses_unmatched.Add();  // M13
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "ignored unmatched {}",
                               wire::ChannelMessageName(type));
      }
      return;
    default:
      // CLOSE_RESERVED_RESPONSE (20), TL_CONNECT_RESULT (23): no handler in Linux.
      stats_.msg_unhandled.Add();
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "ignored {}",
                             wire::ChannelMessageName(type));
      return;
  }
}

void BusImpl::OnAllOffersDelivered() {
  {
    std::lock_guard lock(conn_mu_);
    all_offers_received_ = true;
  }
  conn_cv_.notify_all();
  // Every offer before this message is queued on the offer worker; once it has run them, their
  // probes / sub-channel callbacks are queued on the two device workers: a marker behind them on
  // each tells Connect() that the initial devices are probed.
  offer_wq_.Post([this] {
    auto pending = std::make_shared<std::atomic<int>>(2);
    auto done = [this, pending] {
      if (pending->fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      {
        std::lock_guard lock(conn_mu_);
        initial_probes_done_ = true;
      }
      conn_cv_.notify_all();
    };
    device_wq_.Post(done);
    sc_wq_.Post(done);
  });
}

void BusImpl::OnHostDisconnect() {
  if (host_gone_.exchange(true, std::memory_order_acq_rel)) return;
  connected_.store(false, std::memory_order_release);
  requests_.FailAll(Error::Make(ErrorCode::kUnavailable, "the VMBus host hung up"));
  conn_cv_.notify_all();
  UVMBUS_LOG_WARN("guest", "VMBus host hung up");
  BusEvent e;
  e.kind = BusEventKind::kHostGone;
  Emit(std::move(e));
  // Drivers still need their Remove(); nothing is sent to the host any more.
  device_wq_.Post([this] { RemoveAllDevices(/*talk_to_host=*/false); });
}

// ---------------------------------------------------------------------------------------------
// Offers, rescinds, probes

uint32_t BusImpl::ChooseTargetVcpu(const Guid& class_id) {
  // Spec 7.7: performance devices (IDE, SCSI, FC, NIC, ND) spread round-robin over the vCPUs;
  // everything else on vCPU 0.
  const bool performance =
      class_id == wire::kNetworkClassGuid || class_id == wire::kScsiClassGuid ||
      class_id == wire::kIdeClassGuid || class_id == wire::kFibreChannelClassGuid ||
      class_id == wire::kNetworkDirectClassGuid;
  if (!performance || vcpu_count() == 0) return 0;
  std::lock_guard lock(mu_);
  return next_perf_vcpu_++ % vcpu_count();
}

void BusImpl::ProcessOffer(const wire::OfferChannel& offer) {
  const uint32_t relid = offer.child_relid;
  if (relid == 0 || relid >= wire::kMaxChannelRelids) {  // M6
    stats_.offer_bad_relid.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "rejected offer with relid {}", relid);
    return;
  }
  // M9: these flags have meanings only with VMBus 6.0 features we never negotiate; Linux drops
  // such offers (spec 2.3 "Offer flags").
  constexpr uint16_t kConfidentialFlags = wire::kOfferFlagConfidentialRingBuffer |
                                          wire::kOfferFlagConfidentialExternalMemory |
                                          wire::kOfferFlagRequirePinnedExternalMemory;
  if ((offer.chn_flags & kConfidentialFlags) != 0) {
    stats_.offer_confidential.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest",
                           "rejected offer relid {} with flags {:#x} (not negotiated)", relid,
                           offer.chn_flags);
    return;
  }
  const uint32_t target = ChooseTargetVcpu(offer.if_type);

  std::shared_ptr<Channel> channel;
  std::shared_ptr<VmbusDevice> device;
  bool sub = false;
  {
    std::lock_guard lock(mu_);
    if (channels_.count(relid) != 0) {  // M6 (newer kernels): relid in use
      stats_.offer_relid_in_use.Add();
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "rejected offer: relid {} in use", relid);
      return;
    }
    for (const auto& [r, d] : devices_) {
      if (!d->removed() && d->class_id() == offer.if_type && d->device_id() == offer.if_instance) {
        device = d;
        break;
      }
    }
    if (device != nullptr && offer.sub_channel_index == 0) {  // M7
      stats_.offer_duplicate.Add();
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest",
                             "dropped duplicate offer relid {} of device {}", relid,
                             offer.if_instance.ToString());
      return;
    }
    sub = device != nullptr;
    channel.reset(new Channel(*this, offer, /*primary=*/!sub, target));
    // Published before anything can open it (and before the host can signal it).
    if (!relids_.Publish(relid, channel.get())) {
      stats_.offer_relid_in_use.Add();
      return;
    }
    channels_[relid] = channel;
    if (sub) {
      channel->set_device(device);
      device->AddSubchannel(channel);
    } else {
      device.reset(new VmbusDevice(*this, channel));
      channel->set_device(device);
      devices_[relid] = device;
    }
  }
  stats_.offers.Add();
  if (sub) stats_.subchannel_offers.Add();
  Emit(DeviceEvent(BusEventKind::kOffer, *channel));
  if (sub) {
    sc_wq_.Post([this, device, channel] { RunSubchannelCallback(device, channel); });
  } else {
    device_wq_.Post([this, device] { ProbeDevice(device); });
  }
}

void BusImpl::ProcessRescind(uint32_t relid) {
  {
    // M11: an offer still queued for this relid must be processed first.
    std::unique_lock lock(offer_mu_);
    offer_cv_.wait(lock, [&] { return offers_in_progress_ == 0 || stopping_; });
    if (stopping_) return;
  }
  std::shared_ptr<Channel> channel;
  std::shared_ptr<VmbusDevice> device;
  {
    std::lock_guard lock(mu_);
    auto it = channels_.find(relid);
    if (it != channels_.end()) channel = it->second;
    if (channel != nullptr && channel->is_primary()) {
      auto d = devices_.find(relid);
      if (d != devices_.end()) device = d->second;
    }
  }
  // A sub-channel's removal holds its device: the device worker may drop the device's last
  // map reference (Disconnect, rescind of the primary) before the sub-channel worker runs it
  // (notes/requests-netvsc.md item 1).
  std::shared_ptr<VmbusDevice> parent =
      channel != nullptr && !channel->is_primary() ? channel->device_ref() : nullptr;
  if (channel == nullptr) {  // M10
    stats_.rescind_unknown.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "ignored rescind of unknown relid {}",
                           relid);
    return;
  }
  if (channel->rescinded_.exchange(true, std::memory_order_seq_cst)) {  // M10
    stats_.rescind_duplicate.Add();
    return;
  }
  stats_.rescinds.Add();
  // M12: whoever waits for an answer about this channel will not get one.
  requests_.FailChannel(relid,
                        Error::Make(ErrorCode::kUnavailable, "channel {} was rescinded", relid));
  Emit(DeviceEvent(BusEventKind::kRescind, *channel));
  if (device != nullptr) {
    device_wq_.Post([this, device] { RemoveDevice(device, /*release=*/true); });
  } else {
    sc_wq_.Post([this, parent, channel] { RemoveSubchannel(parent, channel); });
  }
}

void BusImpl::ProbeDevice(const std::shared_ptr<VmbusDevice>& device) {
  if (device->removed() || device->driver() != nullptr) return;
  const Channel& primary = device->channel();
  const bool hvsock = (primary.offer().chn_flags & wire::kOfferFlagTlnpiProviderOffer) != 0;
  Driver* driver = drivers_.Match(device->class_id(), hvsock);
  if (driver == nullptr) {
    stats_.no_driver.Add();
    Emit(DeviceEvent(BusEventKind::kNoDriver, primary));
    return;
  }
  BusEvent e = DeviceEvent(BusEventKind::kProbe, primary);
  e.driver = std::string(driver->name());
  Status st = driver->Probe(*device);
  if (st) {
    device->driver_.store(driver, std::memory_order_release);
    stats_.probes.Add();
  } else {
    stats_.probe_failures.Add();
    UVMBUS_LOG_WARN("guest", "driver {} failed to probe relid {}: {}", driver->name(),
                    primary.relid(), st.error().message);
    e.kind = BusEventKind::kProbeFailed;
    e.detail = st.error().message;
  }
  Emit(std::move(e));
}

void BusImpl::RunSubchannelCallback(const std::shared_ptr<VmbusDevice>& device,
                                    const std::shared_ptr<Channel>& channel) {
  if (device->removed() || channel->rescinded()) return;
  Emit(DeviceEvent(BusEventKind::kSubchannel, *channel));
  // Not once the device's removal began; the removal waits for a callback already running.
  device->RunCallback(VmbusDevice::CallbackKind::kCreate, *channel);
}

void BusImpl::UnbindDriver(const std::shared_ptr<VmbusDevice>& device) {
  Driver* driver = device->driver_.exchange(nullptr, std::memory_order_acq_rel);
  if (driver == nullptr) return;
  BusEvent e = DeviceEvent(BusEventKind::kRemove, device->channel());
  e.driver = std::string(driver->name());
  driver->Remove(*device);
  // The sub-channel callbacks were the driver's: none may start (or still run) once the bus
  // reports the removal.
  device->QuiesceCallbacks();
  stats_.removes.Add();
  Emit(std::move(e));
}

void BusImpl::ReleaseChannel(const std::shared_ptr<Channel>& channel, bool send) {
  if (!channel->ClaimRelease()) return;  // a racing rescind / removal did it
  const uint32_t relid = channel->relid();
  relids_.Unpublish(relid, channel.get());
  SynchronizeVcpus();
  if (send && connected()) {
    wire::RelidReleased msg;
    msg.child_relid = relid;
    if (Status st = Post(wire::Encode(msg)); st) {
      stats_.relids_released.Add();
      Emit(DeviceEvent(BusEventKind::kRelidReleased, *channel));
    } else {
      UVMBUS_LOG_WARN("guest", "relid {}: {}", relid, st.error().message);
    }
  }
  channel->MarkReleased();
  channel->Detach();
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  if (it != channels_.end() && it->second == channel) channels_.erase(it);
}

void BusImpl::RemoveDevice(const std::shared_ptr<VmbusDevice>& device, bool release) {
  if (!device->BeginRemoval()) return;
  // Order (notes/requests-netvsc.md item 1b): the driver's Remove() first - every channel of
  // the device, rescinded or not, stays open-able/closable and allocated meanwhile, and
  // sub-channel rescinds processed meanwhile call the driver's rescind callback but defer the
  // teardown to here; then no callback runs any more; then the bus closes what is left.
  UnbindDriver(device);
  const std::vector<std::shared_ptr<Channel>> deferred = device->FinishRemoval();
  const bool talk = connected();
  // Sub-channels before the primary (Linux closes them first, spec 2.8).
  for (const auto& sc : device->subchannel_refs()) {
    sc->Shutdown(talk);
    const bool rescind_done_here =
        std::find(deferred.begin(), deferred.end(), sc) != deferred.end();
    if (rescind_done_here) {
      // Its rescind was processed during Remove(): release it now (spec 2.7).
      ReleaseChannel(sc, /*send=*/true);
      device->TakeSubchannel(sc->relid());
    } else if (!release) {
      // Disconnect / host gone: UNLOAD releases everything; a channel the host rescinded
      // already still gets its RELID_RELEASED (its queued rescind then finds it released).
      ReleaseChannel(sc, /*send=*/sc->rescinded());
    }
    // Otherwise (rescind of the primary) its own rescind releases it.
  }
  Channel& primary = device->channel();
  primary.Shutdown(talk);
  ReleaseChannel(device->primary_, /*send=*/release);
  std::lock_guard lock(mu_);
  auto it = devices_.find(primary.relid());
  if (it != devices_.end() && it->second == device) devices_.erase(it);
}

void BusImpl::RemoveSubchannel(const std::shared_ptr<VmbusDevice>& device,
                               const std::shared_ptr<Channel>& channel) {
  if (device != nullptr) {
    // Always told while a driver may use the channel (also during its Remove()): the driver
    // stops NAPI / tasklets on it before the bus closes it.
    device->RunCallback(VmbusDevice::CallbackKind::kRescind, *channel);
    // The device is being removed: its driver's Remove() may still close or poll this channel;
    // RemoveDevice() tears it down after Remove() returned.
    if (device->DeferTeardown(channel)) return;
  }
  channel->Shutdown(connected());
  ReleaseChannel(channel, /*send=*/true);
  if (device != nullptr) device->TakeSubchannel(channel->relid());
}

void BusImpl::RemoveAllDevices(bool talk_to_host) {
  std::vector<std::shared_ptr<VmbusDevice>> devices;
  {
    std::lock_guard lock(mu_);
    for (const auto& [relid, d] : devices_) devices.push_back(d);
  }
  for (const auto& d : devices) RemoveDevice(d, /*release=*/false);
  // Channels whose device is gone already (sub-channels of a removed primary whose rescind is
  // still queued): shut them down too.
  std::vector<std::shared_ptr<Channel>> rest;
  {
    std::lock_guard lock(mu_);
    for (const auto& [relid, c] : channels_) rest.push_back(c);
  }
  for (const auto& c : rest) {
    c->Shutdown(talk_to_host && connected());
    ReleaseChannel(c, /*send=*/false);
  }
}

// ---------------------------------------------------------------------------------------------
// Connect / disconnect

Status BusImpl::EnsureContactPages() {
  // Linux allocates the (legacy) interrupt page and the two monitor pages once; the host is
  // given their GPAs in every INITIATE_CONTACT (OpenVMM rejects one monitor page without the
  // other).
  if (!interrupt_page_.valid()) {
    auto run = partition_.allocator().AllocateRun(1);
    if (!run) return unexpected(run.error());
    interrupt_page_ = std::move(*run);
  }
  if (!monitor_pages_.valid()) {
    auto run = partition_.allocator().AllocateRun(2);
    if (!run) return unexpected(run.error());
    monitor_pages_ = std::move(*run);
    monitor_page2_gpa_.store((monitor_pages_.gpn() + 1) << wire::kHvPageShift,
                             std::memory_order_release);
  }
  return Ok();
}

Status BusImpl::NegotiateVersion() {
  // Linux's table since 2022 (spec 2.5), newest first.
  static constexpr uint32_t kVersions[] = {
      wire::kVersionWin10V5_3, wire::kVersionWin10V5_2, wire::kVersionWin10V5_1,
      wire::kVersionWin10V5,   wire::kVersionWin10V4_1, wire::kVersionWin10,
      wire::kVersionWin8_1,    wire::kVersionWin8,
  };
  std::string tried;
  for (uint32_t version : kVersions) {
    if (version > options_.max_version) continue;
    if (!tried.empty()) tried += ", ";
    tried += wire::VersionString(version);

    wire::InitiateContact msg;
    msg.vmbus_version_requested = version;
    msg.target_vcpu = 0;  // VMBUS_CONNECT_CPU: all channel messages come to vCPU 0
    const bool multi_client = version >= wire::kVersionWin10V5;
    if (multi_client) {
      msg.msg_sint = wire::kVmbusMessageSint;
      msg.msg_vtl = 0;
    } else {
      msg.set_interrupt_page(interrupt_page_.gpn() << wire::kHvPageShift);
    }
    msg.monitor_page1 = monitor_pages_.gpn() << wire::kHvPageShift;
    msg.monitor_page2 = (monitor_pages_.gpn() + 1) << wire::kHvPageShift;
    const uint32_t connection =
        multi_client ? wire::kVmbusMessageConnectionId4 : wire::kVmbusMessageConnectionId;

    const RequestTracker::Id id = requests_.Register(RequestKind::kVersion, 0, 0);
    const wire::HvStatus status = PostRaw(wire::Encode(msg).span(), connection, true);
    if (status != wire::HvStatus::kSuccess) {
      requests_.Cancel(id);
      if (status == wire::HvStatus::kInvalidConnectionId) {
        // M18: an old host has no port 4; try the next (older) version.
        stats_.version_no_port.Add();
        continue;
      }
      return MakeError(ErrorCode::kUnavailable, "INITIATE_CONTACT {} failed: {}",
                       wire::VersionString(version), wire::HvStatusName(status));
    }
    auto response = requests_.Wait(id, options_.response_timeout);
    if (!response) {
      return MakeError(response.error().code, "INITIATE_CONTACT {}: {}",
                       wire::VersionString(version), response.error().message);
    }
    const wire::VersionResponse* vr = nullptr;
    if (const auto* r1 = std::get_if<wire::VersionResponse>(&*response)) vr = r1;
    if (const auto* r2 = std::get_if<wire::VersionResponse2>(&*response)) vr = &r2->base;
    if (const auto* r3 = std::get_if<wire::VersionResponse3>(&*response)) vr = &r3->base.base;
    if (vr == nullptr) return MakeError(ErrorCode::kInternal, "unexpected VERSION_RESPONSE form");
    if (vr->version_supported == 0) {  // M16
      stats_.version_refused.Add();
      continue;
    }
    uint32_t conn_id = wire::kVmbusMessageConnectionId;
    if (multi_client) {
      // M17: a connection id we cannot post to would make every later message fail.
      if (vr->msg_conn_id == 0 || (vr->msg_conn_id & ~wire::kHvConnectionIdMask) != 0) {
        return MakeError(ErrorCode::kProtocol, "host accepted {} with unusable msg_conn_id {:#x}",
                         wire::VersionString(version), vr->msg_conn_id);
      }
      conn_id = vr->msg_conn_id;
    }
    msg_conn_id_.store(conn_id, std::memory_order_release);
    version_.store(version, std::memory_order_release);
    connected_.store(true, std::memory_order_release);
    return Ok();
  }
  return MakeError(ErrorCode::kUnsupported, "host accepted none of the VMBus versions tried ({})",
                   tried);
}

Status BusImpl::Connect() {
  std::lock_guard connect(connect_mu_);
  if (!started_) return MakeError(ErrorCode::kUnavailable, "bus is shut down");
  if (connected()) return MakeError(ErrorCode::kProtocol, "VMBus already connected");
  if (host_gone_.load(std::memory_order_acquire) || !partition_.connected()) {
    return MakeError(ErrorCode::kUnavailable, "the VMBus host is gone");
  }
  if (OnVcpuThread()) return MakeError(ErrorCode::kInvalidArgument, "Connect() on a vCPU thread");
  if (Status st = EnsureContactPages(); !st) return st;
  {
    std::lock_guard lock(conn_mu_);
    all_offers_received_ = false;
    initial_probes_done_ = false;
  }
  if (Status st = NegotiateVersion(); !st) return st;
  {
    BusEvent e;
    e.kind = BusEventKind::kConnected;
    e.detail = fmt::format("VMBus {}, message connection {}", wire::VersionString(version()),
                           message_connection_id());
    Emit(std::move(e));
  }

  if (Status st = Post(wire::Encode(wire::RequestOffers{})); !st) return st;
  {
    std::unique_lock lock(conn_mu_);
    const bool got = conn_cv_.wait_for(lock, options_.offers_timeout, [&] {
      return all_offers_received_ || host_gone_.load(std::memory_order_acquire);
    });
    if (host_gone_.load(std::memory_order_acquire)) {
      return MakeError(ErrorCode::kUnavailable, "the VMBus host hung up during connect");
    }
    if (!got) {
      return MakeError(ErrorCode::kTimeout,
                       "host did not send ALLOFFERS_DELIVERED within {} ms ({} offers received)",
                       options_.offers_timeout.count(), stats_.offers.Get());
    }
    if (options_.wait_for_probes &&
        !conn_cv_.wait_for(lock, options_.offers_timeout, [&] { return initial_probes_done_; })) {
      UVMBUS_LOG_WARN("guest", "initial device probes still running after {} ms",
                      options_.offers_timeout.count());
    }
  }
  return Ok();
}

Status BusImpl::Disconnect() {
  std::lock_guard connect(connect_mu_);
  if (!started_ || !connected()) return Ok();
  if (OnVcpuThread()) {
    return MakeError(ErrorCode::kInvalidArgument, "Disconnect() on a vCPU thread");
  }
  // Drivers first (they close their channels and GPADLs while the host still answers).
  device_wq_.Post([this] { RemoveAllDevices(/*talk_to_host=*/true); });
  device_wq_.Flush();
  // Rescinds the host sent while the drivers closed their channels (Hyper-V rescinds the
  // sub-channels of a closed primary) finish before UNLOAD; they hold what they touch, and
  // find the channels already released.
  offer_wq_.Flush();
  rescind_wq_.Flush();
  sc_wq_.Flush();

  Status result = Ok();
  if (version() >= wire::kVersionWin8_1 && connected()) {
    // UNLOAD: the host releases every channel and GPADL (spec 2.10). Linux sends it from 3.0.
    const wire::MessageBuffer unload = wire::Encode(wire::Unload{});
    auto response = Request(RequestKind::kUnload, 0, 0,
                            std::span<const wire::MessageBuffer>(&unload, 1), nullptr,
                            options_.unload_timeout);
    if (!response) result = unexpected(response.error());
  }
  connected_.store(false, std::memory_order_release);
  version_.store(0, std::memory_order_release);
  BusEvent e;
  e.kind = BusEventKind::kDisconnected;
  Emit(std::move(e));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Drivers, observers, listings

Status BusImpl::RegisterDriver(Driver& driver) {
  if (device_wq_.IsCurrent() || OnVcpuThread()) {
    return MakeError(ErrorCode::kInvalidArgument, "RegisterDriver() from a bus thread");
  }
  if (Status st = drivers_.Register(&driver); !st) return st;
  // Probe the unbound devices it matches, on the device worker (serialised with offers' probes).
  device_wq_.Post([this] {
    std::vector<std::shared_ptr<VmbusDevice>> devices;
    {
      std::lock_guard lock(mu_);
      for (const auto& [relid, d] : devices_) devices.push_back(d);
    }
    for (const auto& d : devices) ProbeDevice(d);
  });
  device_wq_.Flush();
  return Ok();
}

Status BusImpl::UnregisterDriver(Driver& driver) {
  if (device_wq_.IsCurrent() || OnVcpuThread()) {
    return MakeError(ErrorCode::kInvalidArgument, "UnregisterDriver() from a bus thread");
  }
  Status result = Ok();
  device_wq_.Post([this, &driver, &result] {
    std::vector<std::shared_ptr<VmbusDevice>> devices;
    {
      std::lock_guard lock(mu_);
      for (const auto& [relid, d] : devices_) devices.push_back(d);
    }
    for (const auto& d : devices) {
      if (d->driver() != &driver) continue;
      UnbindDriver(d);
      // Whatever the driver left open is closed; the device stays offered (unbound).
      for (const auto& sc : d->subchannel_refs()) sc->Shutdown(connected());
      d->channel().Shutdown(connected());
    }
    result = drivers_.Unregister(&driver);
  });
  device_wq_.Flush();
  return result;
}

void BusImpl::Emit(BusEvent event) {
  std::lock_guard lock(observers_mu_);
  for (const auto& observer : observers_) observer(event);
}

BusEvent BusImpl::DeviceEvent(BusEventKind kind, const Channel& channel) const {
  BusEvent e;
  e.kind = kind;
  e.relid = channel.relid();
  e.sub_channel_index = channel.sub_channel_index();
  e.class_id = channel.class_id();
  e.instance_id = channel.instance_id();
  return e;
}

namespace {
ChannelInfo InfoOf(const Channel& c) {
  ChannelInfo info;
  info.relid = c.relid();
  info.sub_channel_index = c.sub_channel_index();
  info.target_vcpu = c.target_vcpu();
  info.state = c.state();
  info.mode = c.callback_mode();
  info.connection_id = c.connection_id();
  info.monitor_allocated = c.monitor_allocated();
  info.monitor_id = c.monitor_id();
  info.rescinded = c.rescinded();
  info.counters = c.counters();
  return info;
}
}  // namespace

std::vector<DeviceInfo> BusImpl::ListDevices() const {
  std::vector<std::shared_ptr<VmbusDevice>> devices;
  {
    std::lock_guard lock(mu_);
    for (const auto& [relid, d] : devices_) devices.push_back(d);
  }
  std::vector<DeviceInfo> out;
  out.reserve(devices.size());
  for (const auto& d : devices) {
    DeviceInfo info;
    info.class_id = d->class_id();
    info.device_id = d->device_id();
    info.description = std::string(d->description());
    if (Driver* driver = d->driver()) info.driver = std::string(driver->name());
    info.channels.push_back(InfoOf(d->channel()));
    for (const auto& sc : d->subchannel_refs()) info.channels.push_back(InfoOf(*sc));
    out.push_back(std::move(info));
  }
  return out;
}

std::shared_ptr<VmbusDevice> BusImpl::FindDevice(const Guid& instance_id) const {
  std::lock_guard lock(mu_);
  for (const auto& [relid, d] : devices_) {
    if (d->device_id() == instance_id && !d->removed()) return d;
  }
  return nullptr;
}

std::shared_ptr<Channel> BusImpl::FindChannel(uint32_t relid) const {
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  return it == channels_.end() ? nullptr : it->second;
}

bool BusImpl::WaitForMessages(uint64_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(progress_mu_);
  return progress_cv_.wait_for(lock, timeout, [&] { return messages_done_ >= count; });
}

bool BusImpl::Flush(std::chrono::milliseconds timeout) {
  // Offers and rescinds feed the two device workers: drain them first.
  return offer_wq_.Flush(timeout) && rescind_wq_.Flush(timeout) && device_wq_.Flush(timeout) &&
         sc_wq_.Flush(timeout);
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// VmbusBus

Expected<std::unique_ptr<VmbusBus>> VmbusBus::Create(partition::GuestPartition& partition,
                                                     const BusOptions& options) {
  if (partition.vcpu_count() == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "partition without vCPUs");
  }
  auto impl = std::make_unique<internal::BusImpl>(partition, options);
  if (Status st = impl->Start(); !st) return unexpected(st.error());
  return std::unique_ptr<VmbusBus>(new VmbusBus(std::move(impl)));
}

VmbusBus::VmbusBus(std::unique_ptr<internal::BusImpl> impl) : impl_(std::move(impl)) {}

VmbusBus::~VmbusBus() {
  if (impl_->connected()) (void)impl_->Disconnect();
  impl_->Shutdown();
}

Status VmbusBus::Connect() { return impl_->Connect(); }
Status VmbusBus::Disconnect() { return impl_->Disconnect(); }
bool VmbusBus::connected() const { return impl_->connected(); }
uint32_t VmbusBus::version() const { return impl_->version(); }
uint32_t VmbusBus::message_connection_id() const { return impl_->message_connection_id(); }
Status VmbusBus::RegisterDriver(Driver& driver) { return impl_->RegisterDriver(driver); }
Status VmbusBus::UnregisterDriver(Driver& driver) { return impl_->UnregisterDriver(driver); }
void VmbusBus::AddObserver(BusObserver observer) { impl_->AddObserver(std::move(observer)); }
std::vector<DeviceInfo> VmbusBus::ListDevices() const { return impl_->ListDevices(); }
std::shared_ptr<VmbusDevice> VmbusBus::FindDevice(const Guid& instance_id) const {
  return impl_->FindDevice(instance_id);
}
std::shared_ptr<Channel> VmbusBus::FindChannel(uint32_t relid) const {
  return impl_->FindChannel(relid);
}
uint32_t VmbusBus::vcpu_count() const { return impl_->vcpu_count(); }
SoftirqQueue& VmbusBus::softirq(uint32_t vcpu) { return impl_->vcpu(vcpu)->softirq(); }
const VcpuStats& VmbusBus::vcpu_stats(uint32_t vcpu) const { return impl_->vcpu(vcpu)->stats(); }
const BusStats& VmbusBus::stats() const { return impl_->stats(); }
bool VmbusBus::WaitForMessages(uint64_t count, std::chrono::milliseconds timeout) const {
  return impl_->WaitForMessages(count, timeout);
}
bool VmbusBus::Flush(std::chrono::milliseconds timeout) { return impl_->Flush(timeout); }

}  // namespace uvmbus::guest
