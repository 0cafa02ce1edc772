// File: devices/netvsp/netvsp_device.cc — see netvsp_device.h.
#include "devices/netvsp/netvsp_device.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "common/log.h"
#include "devices/netvsp/nic_queue.h"
#include "devices/netvsp/queue_worker.h"
#include "wire/device_guids.h"

namespace uvmbus::netvsp {
namespace {

constexpr std::string_view kComponent = "netvsp";
// Largest guest->host packet a channel's ring buffer accepts (spec 9.4 R5): GPA-direct packets
// with many ranges (Linux's page-buffer form is at most 24 + 32 * 16 + 40 bytes; multi-page
// ranges of a 64 KiB send are longer).
constexpr uint32_t kMaxInboundPacket = 16384;

// Hyper-V's OUI (00:15:5d) plus three bytes of the instance GUID.
net::MacAddress DefaultMac(const Guid& instance) {
  net::MacAddress mac{{0x00, 0x15, 0x5d, instance.bytes[13], instance.bytes[14],
                       instance.bytes[15]}};
  return mac;
}

std::string_view RndisStateName(uint8_t state) {
  switch (static_cast<RndisState>(state)) {
    case RndisState::kUninitialized:
      return "uninitialized";
    case RndisState::kInitialized:
      return "initialized";
    case RndisState::kHalted:
      return "halted";
  }
  return "unknown";
}

}  // namespace

// Everything that changes while the device runs.
class NetvspDevice::Impl {
 public:
  struct QueueSlot {
    host::HostChannel* channel = nullptr;
    std::unique_ptr<NicQueue> queue;
    std::unique_ptr<QueueWorker> worker;
  };

  std::shared_ptr<LinkState> link = std::make_shared<LinkState>();
  host::DeviceControl* control = nullptr;

  mutable std::mutex mu;
  std::shared_ptr<Session> session GUARDED_BY(mu);  // of the open primary channel, else null
  std::array<QueueSlot, kMaxQueues> slots GUARDED_BY(mu);
};

Expected<std::unique_ptr<NetvspDevice>> NetvspDevice::Create(NicConfig config) {
  if (config.backend == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: no backend endpoint", config.id);
  }
  if (config.queues == 0 || config.queues > kMaxQueues) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: {} queues outside 1..{}", config.id,
                     config.queues, kMaxQueues);
  }
  if (!net::IsValidMtu(config.mtu)) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: MTU {} outside {}..{}", config.id,
                     config.mtu, net::kMinMtu, net::kMaxMtu);
  }
  if (config.send_section_size < wire::kNetvscMinSectionSize ||
      config.send_section_size > (1u << 20)) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: send section size {} outside {}..{}",
                     config.id, config.send_section_size, wire::kNetvscMinSectionSize, 1u << 20);
  }
  if (config.max_packets_per_message == 0 || config.max_packets_per_message > net::kMaxBatch ||
      config.packet_alignment_factor > 12) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "netvsp {}: RNDIS grants {} packets / alignment 2^{} out of range", config.id,
                     config.max_packets_per_message, config.packet_alignment_factor);
  }
  if (config.min_nvsp_version > config.max_nvsp_version ||
      !wire::IsKnownNvspVersion(config.max_nvsp_version)) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: NVSP version range {:#x}..{:#x}",
                     config.id, config.min_nvsp_version, config.max_nvsp_version);
  }
  const uint32_t mailbox = config.mailbox_depth;
  if (mailbox < 2 || mailbox > 65536 || (mailbox & (mailbox - 1)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: mailbox depth {} not a power of two",
                     config.id, mailbox);
  }
  const Guid instance = config.instance_id.value_or(RandomGuid());
  if (config.mac.IsZero()) config.mac = DefaultMac(instance);
  if (config.mac.IsMulticast()) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: MAC {} is a group address",
                     config.id, config.mac.ToString());
  }
  const uint32_t max_frame =
      std::min(net::MaxFrameSizeForMtu(config.mtu), config.backend->max_frame_size());
  const uint32_t channels = std::min(config.queues, config.backend->max_queues());
  if (channels == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: backend has no queues", config.id);
  }
  std::unique_ptr<NetvspDevice> device(
      new NetvspDevice(std::move(config), instance, max_frame, channels));
  return device;
}

NetvspDevice::NetvspDevice(NicConfig config, Guid instance_id, uint32_t max_frame,
                           uint32_t channel_limit)
    : config_(std::move(config)),
      instance_id_(instance_id),
      max_frame_(max_frame),
      channel_limit_(channel_limit),
      counters_(std::make_shared<NicCounters>(config_.id, channel_limit)),
      impl_(std::make_unique<Impl>()) {
  impl_->link->up.store(config_.backend->link_up(), std::memory_order_relaxed);
  config_.backend->SetLinkListener(this);
}

NetvspDevice::~NetvspDevice() {
  config_.backend->SetLinkListener(nullptr);
  // The server closes every channel before destroying a device; stop anything left anyway.
  std::lock_guard lock(impl_->mu);
  for (auto& slot : impl_->slots) {
    if (slot.worker) slot.worker->Stop();
    if (slot.queue) slot.queue->Shutdown();
    slot = Impl::QueueSlot{};
  }
  impl_->session.reset();
}

host::OfferParams NetvspDevice::Offer() const {
  host::OfferParams p;
  p.class_id = wire::kNetworkClassGuid;
  p.instance_id = instance_id_;
  p.name = config_.id;
  p.max_inbound_packet_size = kMaxInboundPacket;
  // Hyper-V offers NIC channels with monitors; DPDK's netvsc PMD can signal in no other way
  // (spec 1.5). Guests that use HvSignalEvent keep doing so.
  p.monitored = true;
  return p;
}

uint16_t NetvspDevice::MaxSubchannels() const {
  return static_cast<uint16_t>(channel_limit_ - 1);
}

void NetvspDevice::Install(host::DeviceControl* control) { impl_->control = control; }

Status NetvspDevice::Open(host::HostChannel& channel) {
  const uint16_t index = channel.sub_channel_index();
  if (index >= channel_limit_) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp {}: channel index {} >= {}", config_.id,
                     index, channel_limit_);
  }
  std::shared_ptr<Session> session;
  bool others_open = false;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->slots[index].queue != nullptr) {
      return MakeError(ErrorCode::kAlreadyExists, "netvsp {}: queue {} already open", config_.id,
                       index);
    }
    for (uint32_t q = 1; q < kMaxQueues; ++q) others_open |= impl_->slots[q].queue != nullptr;
    if (index != 0) session = impl_->session;
  }
  if (index == 0) {
    auto created = Session::Create(config_, counters_, impl_->link, impl_->control, max_frame_,
                                   channel_limit_);
    if (!created) return tl::unexpected(created.error());
    session = std::move(*created);
    // A fresh primary starts with one backend queue (sub-channels come later, spec 7.8). Only
    // when no queue runs: the backend must not be resized under a running data path. (Called
    // without impl_->mu: the backend may call OnLinkChange, which takes it, under its own locks.)
    if (!others_open) (void)config_.backend->SetQueueCount(1);
  } else if (session == nullptr || session->closed.load(std::memory_order_acquire) ||
             index >= session->channels_allocated.load(std::memory_order_acquire)) {
    return MakeError(ErrorCode::kProtocol, "netvsp {}: sub-channel {} opened without a grant",
                     config_.id, index);
  }
  auto queue = NicQueue::Create(session, channel, index);
  if (!queue) return tl::unexpected(queue.error());
  std::unique_ptr<QueueWorker> worker;
  session->mailbox(index).set_accepting(true);
  if (config_.worker_threads) {
    const std::array<int, 3> fds = (*queue)->wait_fds();
    auto started = QueueWorker::Start(fmt::format("{}-q{}", config_.id, index), queue->get(), fds);
    if (!started) {
      session->mailbox(index).set_accepting(false);
      return tl::unexpected(started.error());
    }
    worker = std::move(*started);
  }
  {
    std::lock_guard lock(impl_->mu);
    Impl::QueueSlot& slot = impl_->slots[index];
    slot.channel = &channel;
    slot.queue = std::move(*queue);
    slot.worker = std::move(worker);
    if (index == 0) impl_->session = session;
  }
  if (index != 0) {
    const uint32_t open = session->subchannels_open.fetch_add(1, std::memory_order_acq_rel) + 1;
    // Spec 7.8: once every granted sub-channel is open, the primary sends the send table.
    if (open + 1 >= session->channels_allocated.load(std::memory_order_acquire)) {
      session->send_table_pending.store(true, std::memory_order_release);
      session->mailbox(0).Kick();
    }
  }
  UVMBUS_LOG_DEBUG(kComponent, "{}: queue {} open on relid {}", config_.id, index,
                   channel.relid());
  return Ok();
}

host::CloseStatus NetvspDevice::Close(host::HostChannel& channel) {
  const uint16_t index = channel.sub_channel_index();
  Impl::QueueSlot slot;
  {
    std::lock_guard lock(impl_->mu);
    if (index >= kMaxQueues || impl_->slots[index].channel != &channel) {
      return host::CloseStatus::kClosed;  // never opened here (its Open failed)
    }
    slot = std::move(impl_->slots[index]);
    impl_->slots[index] = Impl::QueueSlot{};
  }
  Session& session = slot.queue->session();
  // Other queues stop steering frames here before the worker goes away.
  session.mailbox(index).set_accepting(false);
  if (slot.worker) slot.worker->Stop();
  slot.queue->Shutdown();
  if (index == 0) {
    session.closed.store(true, std::memory_order_release);
    std::lock_guard lock(impl_->mu);
    if (impl_->session.get() == &session) impl_->session.reset();
  } else {
    session.subchannels_open.fetch_sub(1, std::memory_order_acq_rel);
  }
  UVMBUS_LOG_DEBUG(kComponent, "{}: queue {} closed (relid {})", config_.id, index,
                   channel.relid());
  return host::CloseStatus::kClosed;
}

bool NetvspDevice::Poll() {
  std::lock_guard lock(impl_->mu);
  bool more = false;
  for (auto& slot : impl_->slots) {
    if (slot.queue == nullptr || slot.worker != nullptr) continue;
    bool again = true;
    for (int i = 0; i < 64 && again; ++i) again = slot.queue->Run() || !slot.queue->PrepareSleep();
    more |= again;
  }
  return more;
}

Status NetvspDevice::SetLinkUp(bool up) {
  // The backend tells us through OnLinkChange() when its state really changes.
  if (auto r = config_.backend->SetLinkUp(up); !r) return r;
  if (config_.backend->link_up() != up) {
    return MakeError(ErrorCode::kUnavailable, "netvsp {}: backend {} kept its link state",
                     config_.id, config_.backend->name());
  }
  return Ok();
}

bool NetvspDevice::link_up() const { return impl_->link->up.load(std::memory_order_acquire); }

void NetvspDevice::OnLinkChange(bool up) {
  LinkState& link = *impl_->link;
  if (link.up.exchange(up, std::memory_order_acq_rel) == up) return;
  link.epoch.fetch_add(1, std::memory_order_acq_rel);
  std::lock_guard lock(impl_->mu);
  if (impl_->session != nullptr) impl_->session->mailbox(0).Kick();
}

NicState NetvspDevice::State() const {
  NicState s;
  s.id = config_.id;
  s.mac = config_.mac;
  s.link_up = link_up();
  s.max_frame_size = max_frame_;
  std::lock_guard lock(impl_->mu);
  for (const auto& slot : impl_->slots) s.channels_open += slot.queue != nullptr ? 1 : 0;
  const Session* session = impl_->session.get();
  if (session == nullptr) {
    s.rndis_state = "uninitialized";
    return s;
  }
  s.nvsp_version = session->nvsp_version.load(std::memory_order_acquire);
  s.ndis_version = session->ndis_version.load(std::memory_order_relaxed);
  s.ndis_mtu = session->ndis_mtu.load(std::memory_order_relaxed);
  s.rndis_state = std::string(RndisStateName(session->rndis_state.load(std::memory_order_relaxed)));
  s.rss_enabled = session->rss_enabled.load(std::memory_order_relaxed);
  s.channels_allocated = session->channels_allocated.load(std::memory_order_acquire);
  auto rx = session->rx_config();
  s.packet_filter = rx->filter;
  s.mac = rx->mac;
  if (const RecvBuffer* recv = session->recv()) {
    s.recv_sub_alloc_size = recv->layout.sub_alloc_size;
    s.recv_sections = recv->layout.num_sub_allocs;
    s.recv_sections_free = recv->pool->free_count();
  }
  if (const SendBuffer* send = session->send()) {
    s.send_section_size = send->section_size;
    s.send_sections = send->section_count;
  }
  return s;
}

nlohmann::json NetvspDevice::StatsJson() const {
  const NicState s = State();
  nlohmann::json j;
  j["id"] = s.id;
  j["mac"] = s.mac.ToString();
  j["link"] = s.link_up ? "up" : "down";
  j["nvsp_version"] = s.nvsp_version;
  j["ndis_version"] = s.ndis_version;
  j["rndis_state"] = s.rndis_state;
  j["packet_filter"] = s.packet_filter;
  j["rss"] = s.rss_enabled;
  j["channels_allocated"] = s.channels_allocated;
  j["channels_open"] = s.channels_open;
  j["max_frame_size"] = s.max_frame_size;
  j["recv_sub_alloc_size"] = s.recv_sub_alloc_size;
  j["recv_sections"] = s.recv_sections;
  j["recv_sections_free"] = s.recv_sections_free;
  j["send_section_size"] = s.send_section_size;
  j["send_sections"] = s.send_sections;
  j["stats"] = ToJson(Stats());
  return j;
}

std::string DescribeNic(const NicState& s) {
  return fmt::format("{}: mac {}, link {}, nvsp {:#x}, rndis {}, filter {:#x}, rss {}, "
                     "{}/{} channels open, recv {}x{}, send {}x{}",
                     s.id, s.mac.ToString(), s.link_up ? "up" : "down", s.nvsp_version,
                     s.rndis_state, s.packet_filter, s.rss_enabled ? "on" : "off",
                     s.channels_open, s.channels_allocated, s.recv_sections,
                     s.recv_sub_alloc_size, s.send_sections, s.send_section_size);
}

}  // namespace uvmbus::netvsp
