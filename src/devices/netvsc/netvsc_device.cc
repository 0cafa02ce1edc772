// File: devices/netvsc/netvsc_device.cc
//
// NetvscDevice: bring-up and removal order, the NetDevice API, link state (Linux netvsc_drv.c
// netvsc_probe / netvsc_remove / netvsc_open / netvsc_close, rndis_filter_device_remove,
// netvsc_device_remove). See netvsc_device.h.
#include <algorithm>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "devices/netvsc/netvsc_device.h"

namespace uvmbus::netvsc {
namespace {

constexpr std::string_view kLog = "netvsc";

Status CheckConfig(const NetvscConfig& c) {
  if (c.ring_bytes % 4096 != 0 || c.ring_bytes < 8192) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsc: ring size {} is not >= 8192 in pages",
                     c.ring_bytes);
  }
  if (!net::IsValidMtu(c.mtu)) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsc: MTU {} outside {}..{}", c.mtu,
                     net::kMinMtu, net::kMaxMtu);
  }
  // One single-range GPADL each (spec 2.9: at most 8190 pages per GPADL message chain).
  constexpr uint64_t kMaxBuffer = 8190ull * 4096;
  if (c.recv_buffer_bytes == 0 || c.recv_buffer_bytes > kMaxBuffer || c.send_buffer_bytes == 0 ||
      c.send_buffer_bytes > kMaxBuffer) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "netvsc: buffer sizes {} / {} outside 1..{} bytes", c.recv_buffer_bytes,
                     c.send_buffer_bytes, kMaxBuffer);
  }
  if (c.tx_bounce_slots == 0 || c.tx_bounce_slots > 4096) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsc: {} bounce slots outside 1..4096",
                     c.tx_bounce_slots);
  }
  return Ok();
}

}  // namespace

NetvscDevice::NetvscDevice(guest::VmbusDevice& vdev, partition::GuestPartition& partition,
                           const NetvscConfig& config)
    : vdev_(vdev),
      partition_(partition),
      config_(config),
      instance_id_(vdev.device_id()),
      flow_hasher_(config.rss_key),
      mtu_(config.mtu),
      gate_(std::make_shared<CallbackGate>()) {
  for (auto& e : tx_table_) e.store(0, std::memory_order_relaxed);
  wire::FillDefaultIndirectionTable(rx_table_, 1);
  name_ = fmt::format("netvsc-{}", instance_id_.ToString().substr(0, 8));
  std::lock_guard lock(gate_->mu);
  gate_->device = this;
}

NetvscDevice::~NetvscDevice() {
  // The driver always calls Stop() before dropping its reference; this covers a device that was
  // constructed and never started.
  if (!stopped_.load()) Stop();
}

bool NetvscDevice::Dead() const {
  return vdev_.channel().rescinded() || !partition_.connected();
}

NetvscDevice::Queue* NetvscDevice::QueueAt(uint32_t queue) const {
  if (!ready_.load(std::memory_order_acquire) || queue >= queue_count()) return nullptr;
  return queues_[queue].get();
}

// ---------------------------------------------------------------------------------------------
// Bring-up and removal

Status NetvscDevice::Start() {
  if (Status st = CheckConfig(config_); !st) return st;
  auto q0 = CreateQueue(0);
  if (!q0) return tl::unexpected(q0.error());
  {
    std::lock_guard lock(sc_mu_);
    queues_[0] = std::move(*q0);
  }
  auto control = partition_.allocator().AllocateRun(kControlBuffers);
  if (!control) return tl::unexpected(control.error());
  control_run_ = std::move(*control);

  // netvsc_device_add: HV_CALL_ISR, ring sizes, max packet 4624, NAPI 0; then the VSP.
  if (Status st = OpenQueue(*queues_[0], vdev_.channel()); !st) return st;
  if (Status st = ConnectVsp(); !st) return st;
  if (Status st = RndisDeviceAdd(); !st) return st;

  ready_.store(true, std::memory_order_release);
  UVMBUS_LOG_INFO(kLog, "{}: {} up, NVSP {:#x}, {} queue(s), MTU {}", name(), mac_.ToString(),
                  nvsp_version(), queue_count(), mtu());
  if (config_.auto_open) {
    // netvsc_open: a failure leaves the device registered but down, as in Linux.
    if (Status st = Open(); !st) UVMBUS_LOG_WARN(kLog, "{}: open failed: {}", name(), st.error().message);
  }
  NotifyLink();
  return Ok();
}

Status NetvscDevice::WaitForDrain() {
  // netvsc_device_remove waits for outstanding sends and receive completions (bounded here).
  const auto deadline = std::chrono::steady_clock::now() + config_.drain_timeout;
  for (;;) {
    bool drained = true;
    for (const auto& slot : queues_) {
      const Queue* q = slot.get();
      if (q == nullptr || !q->usable.load()) continue;
      if (q->queue_sends.load() != 0 || q->rcomp_pending.load() != 0) drained = false;
    }
    {
      std::lock_guard lock(control_buf_mu_);
      if (control_buf_busy_ != 0) drained = false;
    }
    if (drained) return Ok();
    if (Dead() || std::chrono::steady_clock::now() >= deadline) {
      return MakeError(ErrorCode::kTimeout, "netvsc: sends still outstanding at removal");
    }
    // Removal path only: completions arrive on the vCPU threads meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void NetvscDevice::CloseQueues() {
  // Sub-channels first, then the primary (spec 5.7 step 7). When the host rescinded the device,
  // the bus is tearing the sub-channels down itself (and may already have freed them without
  // telling us): leave them alone (see notes/requests-netvsc.md).
  const bool host_removed_device = vdev_.channel().rescinded();
  for (size_t i = queues_.size(); !host_removed_device && i-- > 1;) {
    Queue* q = queues_[i].get();
    if (q == nullptr || q->channel == nullptr || q->gone.load()) continue;
    if (q->channel->state() == guest::ChannelState::kOpen) {
      if (Status st = q->channel->Close(); !st) {
        UVMBUS_LOG_WARN(kLog, "{}: close sub-channel {}: {}", name(), i, st.error().message);
      }
    }
  }
  guest::Channel& primary = vdev_.channel();
  if (primary.state() == guest::ChannelState::kOpen) {
    if (Status st = primary.Close(); !st) {
      UVMBUS_LOG_WARN(kLog, "{}: close primary channel: {}", name(), st.error().message);
    }
  }
}

void NetvscDevice::TeardownBuffers() {
  // After the close: hosts speaking VMBus >= 4.0 require the channel closed first.
  guest::Channel& primary = vdev_.channel();
  auto teardown = [&](uint32_t handle, partition::PageRun& run) {
    if (handle == 0) {
      run.Reset();
      return;
    }
    Status st = primary.TeardownGpadl(handle);
    if (!st && st.error().code == ErrorCode::kTimeout) {
      // The host never confirmed: it may still write these pages, so they are never reused.
      UVMBUS_LOG_ERROR(kLog, "{}: GPADL {:#x} teardown unconfirmed; {} pages leaked", name(),
                       handle, run.count());
      new partition::PageRun(std::move(run));  // intentionally leaked
      return;
    }
    run.Reset();
  };
  teardown(recv_gpadl_, recv_run_);
  teardown(send_gpadl_, send_run_);
  recv_gpadl_ = 0;
  send_gpadl_ = 0;
}

void NetvscDevice::Stop() {
  if (stopping_.exchange(true)) return;
  {
    // Late sub-channel offers are ignored from now on.
    std::lock_guard lock(sc_mu_);
    accepting_subchannels_ = false;
  }
  ready_.store(false, std::memory_order_release);
  NotifyLink();  // carrier off

  Queue* q0 = queues_[0].get();
  const bool primary_open = q0 != nullptr && q0->usable.load() && !Dead();
  if (primary_open) {
    if (rndis_initialized_.load()) {
      // rndis_filter_halt_device: HALT, no reply expected.
      wire::RndisHaltRequest halt;
      halt.request_id = NextRequestId();
      std::array<uint8_t, wire::RndisHaltRequest::kWireSize> buf{};
      if (wire::EncodeRndis(std::span<uint8_t>(buf), halt)) {
        if (auto r = RndisRequest(buf, 0); !r) {
          UVMBUS_LOG_WARN(kLog, "{}: HALT: {}", name(), r.error().message);
        }
      }
    }
    if (Status st = WaitForDrain(); !st) UVMBUS_LOG_WARN(kLog, "{}: {}", name(), st.error().message);
    RevokeBuffers();
  }
  // NAPI off, then nobody may write the rings, then the channels close.
  for (auto& slot : queues_) {
    if (slot && slot->napi) slot->napi->Disable();
  }
  for (auto& slot : queues_) {
    if (!slot) continue;
    std::lock_guard lock(slot->out_mu);
    slot->open = false;
    slot->usable.store(false);
  }
  {
    // The bus may rescind and free a sub-channel concurrently (the host rescinds them when the
    // primary closes, or removes the whole device): its rescind callback runs under the gate
    // before the bus releases the channel, so holding the gate keeps every sub-channel we have
    // not seen rescinded alive while we close it; afterwards no callback reaches this device.
    std::lock_guard gate(gate_->mu);
    CloseQueues();
    gate_->device = nullptr;
  }
  vdev_.SetSubchannelCallback({});
  vdev_.SetSubchannelRescindCallback({});
  TeardownBuffers();
  for (auto& slot : queues_) {
    if (!slot) continue;
    slot->napi.reset();
    // Guest RAM goes back to the allocator now: the partition may go away before the last
    // frontend drops its reference to this object.
    std::lock_guard lock(slot->out_mu);
    slot->bounce_free.clear();
    slot->bounce_run.Reset();
  }
  control_run_.Reset();
  for (auto& slot : queues_) {
    if (slot) slot->rx_ring->Wake();  // sleeping frontends see the device gone
  }
  stopped_.store(true);
}

// ---------------------------------------------------------------------------------------------
// Control buffers

Expected<uint32_t> NetvscDevice::AcquireControlBuffer() {
  std::unique_lock lock(control_buf_mu_);
  const auto deadline = std::chrono::steady_clock::now() + config_.control_timeout;
  for (;;) {
    for (uint32_t slot = 0; slot < kControlBuffers; ++slot) {
      if ((control_buf_busy_ & (1u << slot)) == 0) {
        control_buf_busy_ |= 1u << slot;
        return slot;
      }
    }
    // Every page is still held by the host (it has not completed the earlier messages).
    if (Dead() || std::chrono::steady_clock::now() >= deadline) {
      return MakeError(ErrorCode::kTimeout, "netvsc: host never completed control messages");
    }
    control_buf_cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
}

void NetvscDevice::ReleaseControlBuffer(uint32_t slot) {
  if (slot >= kControlBuffers) return;
  std::lock_guard lock(control_buf_mu_);
  control_buf_busy_ &= ~(1u << slot);
  control_buf_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Link

bool NetvscDevice::link_up() const { return carrier_reported_.load(std::memory_order_acquire); }

void NetvscDevice::SetLinkCallback(LinkCallback callback) {
  std::lock_guard lock(link_mu_);
  link_callback_ = std::move(callback);
}

void NetvscDevice::SetMediaConnected(bool up) {
  media_connected_.store(up);
  NotifyLink();
}

void NetvscDevice::NotifyLink() {
  // Carrier = the host says connected, the interface is open and the device is alive
  // (netvsc_link_change / netif_carrier_on/off). Serialised so callbacks arrive in order.
  std::lock_guard lock(link_mu_);
  const bool carrier = ready_.load() && !stopping_.load() && open_.load() && media_connected_.load();
  if (carrier_reported_.exchange(carrier) == carrier) return;
  UVMBUS_LOG_INFO(kLog, "{}: link {}", name(), carrier ? "up" : "down");
  if (link_callback_) link_callback_(carrier);
}

// ---------------------------------------------------------------------------------------------
// NetDevice

std::string NetvscDevice::name() const {
  std::lock_guard lock(name_mu_);
  return name_;
}

Status NetvscDevice::SetPacketFilter(uint32_t filter) {
  if (!ready_.load(std::memory_order_acquire)) {
    return MakeError(ErrorCode::kUnavailable, "netvsc: device not running");
  }
  std::array<uint8_t, 4> info;
  std::memcpy(info.data(), &filter, sizeof(filter));
  if (Status st = RndisSet(wire::NdisOid::kGenCurrentPacketFilter, info); !st) return st;
  open_.store(filter != 0, std::memory_order_release);
  NotifyLink();
  return Ok();
}

Status NetvscDevice::Open() { return SetPacketFilter(wire::kNdisPacketFilterLinuxDefault); }

Status NetvscDevice::Close() { return SetPacketFilter(0); }

uint32_t NetvscDevice::Send(uint32_t queue, const net::FrameBatch& batch) {
  if (!ready_.load(std::memory_order_acquire) || !open_.load(std::memory_order_acquire) ||
      batch.empty()) {
    return 0;
  }
  if (queue != kAutoQueue) {
    Queue* q = QueueAt(queue);
    if (q == nullptr || !q->usable.load(std::memory_order_acquire)) return 0;
    return SendRun(*q, batch, 0, batch.size());
  }
  // kAutoQueue: runs of consecutive frames that map to the same queue, in order, so the return
  // value still counts frames consumed from the front.
  std::array<uint32_t, net::kMaxBatch> target{};
  std::array<uint32_t, net::kMaxBatch> hashes{};
  const uint32_t count = std::max(queue_count(), 1u);
  for (uint32_t i = 0; i < batch.size(); ++i) {
    hashes[i] = flow_hasher_.Hash(std::span<const uint8_t>(batch[i].data, batch[i].length));
    target[i] = QueueForHash(hashes[i], count);
  }
  uint32_t done = 0;
  while (done < batch.size()) {
    uint32_t end = done + 1;
    while (end < batch.size() && target[end] == target[done]) ++end;
    Queue* q = QueueAt(target[done]);
    const uint32_t sent =
        q != nullptr && q->usable.load(std::memory_order_acquire)
            ? SendRun(*q, batch, done, end, hashes.data())
            : 0;
    done += sent;
    if (done < end) break;
  }
  return done;
}

bool NetvscDevice::tx_stopped(uint32_t queue) const {
  const Queue* q = QueueAt(queue);
  return q != nullptr && q->tx_stopped.load(std::memory_order_acquire);
}

uint32_t NetvscDevice::QueueForHash(uint32_t hash, uint32_t count) const {
  // netvsc_pick_tx: tx_table[hash & 15], wrapped into the real queue count; a queue that is not
  // usable (its sub-channel failed to open or was rescinded) falls back to the primary.
  uint32_t q = tx_table_[hash & (kSendTableSize - 1)].load(std::memory_order_relaxed) % count;
  const Queue* queue = QueueAt(q);
  if (queue == nullptr || !queue->usable.load(std::memory_order_relaxed)) q = 0;
  return q;
}

uint32_t NetvscDevice::SelectQueue(std::span<const uint8_t> frame) const {
  return QueueForHash(flow_hasher_.Hash(frame), std::max(queue_count(), 1u));
}

std::array<uint32_t, kSendTableSize> NetvscDevice::send_table() const {
  std::array<uint32_t, kSendTableSize> t{};
  for (size_t i = 0; i < kSendTableSize; ++i) t[i] = tx_table_[i].load(std::memory_order_relaxed);
  return t;
}

uint32_t NetvscDevice::Receive(uint32_t queue, net::RxBatch& batch, RxFrameInfo* info) {
  if (queue >= queue_count() || queues_[queue] == nullptr) return 0;
  return queues_[queue]->rx_ring->Pop(batch, info);
}

int NetvscDevice::wait_fd(uint32_t queue) const {
  if (queue >= queue_count() || queues_[queue] == nullptr) return -1;
  return queues_[queue]->rx_ring->wait_fd();
}

bool NetvscDevice::PrepareWait(uint32_t queue) {
  if (queue >= queue_count() || queues_[queue] == nullptr) return false;
  return queues_[queue]->rx_ring->PrepareWait();
}

uint32_t NetvscDevice::outstanding_sends(uint32_t queue) const {
  if (queue >= queues_.size() || queues_[queue] == nullptr) return 0;
  return queues_[queue]->queue_sends.load();
}

guest::Channel* NetvscDevice::channel(uint32_t queue) const {
  if (queue >= queues_.size() || queues_[queue] == nullptr) return nullptr;
  const Queue* q = queues_[queue].get();
  return q->usable.load(std::memory_order_acquire) ? q->channel : nullptr;
}

StatsSnapshot NetvscDevice::Stats() const {
  std::vector<const QueueStats*> queues;
  for (uint32_t i = 0; i < queue_count(); ++i) {
    queues.push_back(queues_[i] ? &queues_[i]->stats : nullptr);
  }
  return MakeSnapshot(stats_, queues);
}

}  // namespace uvmbus::netvsc
