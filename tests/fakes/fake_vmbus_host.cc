// File: tests/fakes/fake_vmbus_host.cc — see fake_vmbus_host.h.
#include "fakes/fake_vmbus_host.h"

#include <atomic>
#include <cstring>
#include <type_traits>
#include <utility>
#include <variant>

#include "partition/guest_partition.h"
#include "ring/ring_view.h"

namespace uvmbus::fakes {

FakeVmbusHost::FakeVmbusHost(partition::HostPartition& host, Options options)
    : host_(host), options_(std::move(options)), transient_left_(options_.transient_failures) {}

FakeVmbusHost::~FakeVmbusHost() { host_.Stop(); }

Status FakeVmbusHost::Start() { return host_.Start(this); }

wire::OfferChannel FakeVmbusHost::MakeOffer(const Guid& class_id, const Guid& instance_id,
                                            uint32_t relid, uint16_t sub_channel_index) {
  wire::OfferChannel offer;
  offer.if_type = class_id;
  offer.if_instance = instance_id;
  offer.sub_channel_index = sub_channel_index;
  offer.child_relid = relid;
  offer.monitorid = wire::kNoMonitorId;
  offer.monitor_allocated = 0;
  offer.is_dedicated_interrupt = 1;
  offer.connection_id = relid | 0x2000;  // OpenVMM's scheme (spec 10.1 V6)
  return offer;
}

void FakeVmbusHost::AddOffer(const wire::OfferChannel& offer) {
  std::lock_guard lock(mu_);
  offers_.push_back(offer);
}

void FakeVmbusHost::SetOpenStatus(uint32_t status) {
  std::lock_guard lock(mu_);
  options_.open_status = status;
}

void FakeVmbusHost::SetAnswerOpen(bool answer) {
  std::lock_guard lock(mu_);
  options_.answer_open = answer;
}

void FakeVmbusHost::NotifyLocked() {
  ++events_;
  cv_.notify_all();
}

void FakeVmbusHost::PostLocked(std::span<const uint8_t> payload) {
  // Channel messages go to the vCPU named by INITIATE_CONTACT (the guest always asks for 0).
  (void)host_.PostToGuest(0, payload);
}

Status FakeVmbusHost::SendRaw(std::span<const uint8_t> payload, uint32_t vcpu) {
  return host_.PostToGuest(vcpu, payload);
}

Status FakeVmbusHost::SendRescind(uint32_t relid) {
  wire::RescindChannelOffer msg;
  msg.child_relid = relid;
  return Send(msg);
}

Status FakeVmbusHost::ReplyOpen(uint32_t relid, uint32_t status) {
  std::lock_guard lock(mu_);
  auto it = pending_opens_.find(relid);
  if (it == pending_opens_.end()) {
    return MakeError(ErrorCode::kNotFound, "no pending OPENCHANNEL for relid {}", relid);
  }
  const wire::OpenChannel msg = it->second;
  pending_opens_.erase(it);
  OpenLocked(msg, status);
  return Ok();
}

void FakeVmbusHost::RaiseInterrupt(uint32_t vcpu) {
  if (options_.raise_interrupt) options_.raise_interrupt(vcpu);
}

Status FakeVmbusHost::WriteSlot(uint32_t vcpu, uint32_t message_type, uint8_t payload_size,
                                uint8_t flags, std::span<const uint8_t> payload) {
  auto page = host_.GuestPages(partition::GuestPartition::MessagePageGpn(vcpu), 1);
  if (!page) return unexpected(page.error());
  uint8_t* slot = page->data() + wire::kVmbusMessageSlotOffset;
  std::atomic_ref<uint32_t> type(*reinterpret_cast<uint32_t*>(slot));
  if (type.load(std::memory_order_acquire) != wire::kHvMsgNone) {
    return MakeError(ErrorCode::kUnavailable, "slot of vcpu {} is occupied", vcpu);
  }
  slot[4] = payload_size;
  slot[6] = 0;
  slot[7] = 0;
  std::memset(slot + 8, 0, 8);
  const size_t n = std::min<size_t>(payload.size(), wire::kHvMessagePayloadMax);
  std::memcpy(slot + wire::kHvMessageHeaderSize, payload.data(), n);
  std::atomic_ref<uint8_t>(slot[wire::kHvMessageFlagsOffset]).store(flags, std::memory_order_relaxed);
  type.store(message_type, std::memory_order_release);
  RaiseInterrupt(vcpu);
  return Ok();
}

std::vector<FakeVmbusHost::Received> FakeVmbusHost::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

std::vector<wire::ChannelMessageType> FakeVmbusHost::received_types() const {
  std::lock_guard lock(mu_);
  std::vector<wire::ChannelMessageType> out;
  for (const auto& r : received_) out.push_back(wire::TypeOf(r.message));
  return out;
}

size_t FakeVmbusHost::Count(wire::ChannelMessageType type) const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& r : received_) n += wire::TypeOf(r.message) == type ? 1 : 0;
  return n;
}

std::vector<std::pair<uint32_t, wire::InitiateContact>> FakeVmbusHost::contacts() const {
  std::lock_guard lock(mu_);
  return contacts_;
}

uint64_t FakeVmbusHost::signals(uint32_t connection_id) const {
  std::lock_guard lock(mu_);
  auto it = signals_.find(connection_id);
  return it == signals_.end() ? 0 : it->second;
}

std::optional<std::vector<uint64_t>> FakeVmbusHost::gpadl_pages(uint32_t handle) const {
  std::lock_guard lock(mu_);
  auto it = gpadls_.find(handle);
  if (it == gpadls_.end()) return std::nullopt;
  return it->second.pages;
}

size_t FakeVmbusHost::gpadl_count() const {
  std::lock_guard lock(mu_);
  return gpadls_.size();
}

bool FakeVmbusHost::WaitUntil(const std::function<bool()>& pred,
                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    const uint64_t seen = events_;
    lock.unlock();
    if (pred()) return true;
    lock.lock();
    if (!cv_.wait_until(lock, deadline, [&] { return events_ != seen; })) {
      lock.unlock();
      return pred();
    }
  }
}

bool FakeVmbusHost::WaitForCount(wire::ChannelMessageType type, size_t n,
                                 std::chrono::milliseconds timeout) {
  return WaitUntil([&] { return Count(type) >= n; }, timeout);
}

bool FakeVmbusHost::disconnected() const {
  std::lock_guard lock(mu_);
  return disconnected_;
}

bool FakeVmbusHost::IsOpen(uint32_t relid) const {
  std::lock_guard lock(mu_);
  return channels_.count(relid) != 0;
}

std::optional<uint32_t> FakeVmbusHost::target_vp(uint32_t relid) const {
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  if (it == channels_.end()) return std::nullopt;
  return it->second->target_vp;
}

Expected<bool> FakeVmbusHost::WriteToGuest(uint32_t relid, std::span<const uint8_t> payload,
                                           bool signal) {
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  if (it == channels_.end() || !it->second->to_guest) {
    return MakeError(ErrorCode::kNotFound, "channel {} is not open", relid);
  }
  HostChannel& ch = *it->second;
  ring::WriteCursor cursor = ch.to_guest->BeginWrite();
  const ring::WriteResult r = ch.to_guest->WriteInband(cursor, payload, 0, false);
  if (!r.ok()) {
    return MakeError(r.status == ring::WriteStatus::kFull ? ErrorCode::kResourceExhausted
                                                           : ErrorCode::kInvalidArgument,
                     "write to guest failed: {}", ring::RingErrorName(r.error));
  }
  const ring::WriteCommit commit = ch.to_guest->CommitWrite(cursor);
  if (commit.needs_signal && signal) (void)host_.SignalGuest(ch.target_vp, relid);
  return commit.needs_signal;
}

Status FakeVmbusHost::SignalGuest(uint32_t relid) {
  uint32_t vp = 0;
  {
    std::lock_guard lock(mu_);
    auto it = channels_.find(relid);
    if (it != channels_.end()) vp = it->second->target_vp;
  }
  return host_.SignalGuest(vp, relid);
}

Status FakeVmbusHost::SignalTogether(uint32_t vcpu, std::span<const uint32_t> relids) {
  if (relids.empty()) return Ok();
  auto page = host_.GuestPages(partition::GuestPartition::EventPageGpn(vcpu), 1);
  if (!page) return unexpected(page.error());
  uint8_t* area = page->data() + wire::kVmbusEventAreaOffset;
  for (size_t i = 0; i + 1 < relids.size(); ++i) {
    const uint32_t relid = relids[i];
    if (relid == 0 || relid >= wire::kMaxChannelRelids) {
      return MakeError(ErrorCode::kInvalidArgument, "relid {}", relid);
    }
    std::atomic_ref<uint64_t>(
        *reinterpret_cast<uint64_t*>(area + 8 * wire::EventFlagWordIndex(relid)))
        .fetch_or(wire::EventFlagWordMask(relid), std::memory_order_acq_rel);
  }
  // The last one through the partition: it sets its bit and raises the (single) interrupt.
  return host_.SignalGuest(vcpu, relids.back());
}

Expected<std::vector<std::vector<uint8_t>>> FakeVmbusHost::ReadFromGuest(uint32_t relid) {
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  if (it == channels_.end() || !it->second->from_guest) {
    return MakeError(ErrorCode::kNotFound, "channel {} is not open", relid);
  }
  HostChannel& ch = *it->second;
  std::vector<std::vector<uint8_t>> out;
  ring::ReadCursor cursor = ch.from_guest->BeginRead();
  for (;;) {
    ring::ReadResult r = ch.from_guest->Read(cursor);
    if (r.status == ring::ReadStatus::kEmpty) break;
    if (!r.ok()) {
      return MakeError(ErrorCode::kCorrupt, "guest ring: {}", ring::RingErrorName(r.error));
    }
    out.emplace_back(r.packet.payload.begin(), r.packet.payload.end());
  }
  if (ch.from_guest->CommitRead(cursor).needs_signal) {
    (void)host_.SignalGuest(ch.target_vp, relid);
  }
  return out;
}

std::optional<uint32_t> FakeVmbusHost::GuestInterruptMask(uint32_t relid) const {
  std::lock_guard lock(mu_);
  auto it = channels_.find(relid);
  if (it == channels_.end() || !it->second->to_guest) return std::nullopt;
  return it->second->to_guest->view().interrupt_mask().load(std::memory_order_acquire);
}

void FakeVmbusHost::FinishGpadlLocked(uint32_t handle) {
  auto it = assembling_.find(handle);
  if (it == assembling_.end() || !it->second.IsComplete()) return;
  const uint32_t relid = it->second.child_relid();
  auto ranges = it->second.Finish();
  assembling_.erase(it);
  uint32_t status = options_.gpadl_status;
  if (!ranges || ranges->size() != 1) status = wire::kStatusUnsuccessful;
  if (status == 0) gpadls_[handle] = Gpadl{relid, (*ranges)[0].pfns};
  if (!options_.answer_gpadl) return;
  wire::GpadlCreated created;
  created.child_relid = relid;
  created.gpadl = handle;
  created.creation_status = status;
  PostLocked(created);
}

void FakeVmbusHost::OpenLocked(const wire::OpenChannel& msg, uint32_t status) {
  if (status == 0) {
    auto ch = std::make_unique<HostChannel>();
    ch->relid = msg.child_relid;
    ch->gpadl = msg.ringbuffer_gpadlhandle;
    ch->target_vp = msg.target_vp;
    auto g = gpadls_.find(msg.ringbuffer_gpadlhandle);
    bool ok = g != gpadls_.end() && !g->second.pages.empty();
    if (ok) {
      const auto& pages = g->second.pages;
      for (size_t i = 1; i < pages.size(); ++i) ok = ok && pages[i] == pages[0] + i;
      const uint64_t down = msg.downstream_ringbuffer_pageoffset;
      ok = ok && down >= 2 && down + 2 <= pages.size();
      if (ok) {
        auto span = host_.GuestPages(pages[0], pages.size());
        ok = static_cast<bool>(span);
        if (ok) {
          auto from_view = ring::RingView::Create(span->subspan(0, down * wire::kHvPageSize));
          auto to_view = ring::RingView::Create(span->subspan(down * wire::kHvPageSize));
          ok = from_view && to_view;
          if (ok) {
            auto out = ring::OutgoingRing::Create(*to_view);
            auto in = ring::IncomingRing::Create(*from_view);
            ok = out && in;
            if (ok) {
              ch->to_guest.emplace(std::move(*out));
              ch->from_guest.emplace(std::move(*in));
            }
          }
        }
      }
    }
    if (!ok) status = wire::kStatusUnsuccessful;
    if (ok) channels_[msg.child_relid] = std::move(ch);
  }
  wire::OpenChannelResult result;
  result.child_relid = msg.child_relid;
  result.openid = msg.openid;
  result.status = status;
  PostLocked(result);
}

wire::HvStatus FakeVmbusHost::OnPostMessage(uint32_t connection_id, uint32_t message_type,
                                            std::span<const uint8_t> payload) {
  std::lock_guard lock(mu_);
  NotifyLocked();
  if (transient_left_ > 0) {
    --transient_left_;
    return wire::HvStatus::kInsufficientBuffers;
  }
  if (message_type != wire::kHvMsgVmbus) return wire::HvStatus::kInvalidParameter;
  auto parsed = wire::ParseChannelMessage(payload, wire::Direction::kGuestToHost);
  if (!parsed) return wire::HvStatus::kSuccess;  // the hypercall worked; the host drops it

  if (const auto* contact = std::get_if<wire::InitiateContact>(&*parsed)) {
    contacts_.emplace_back(connection_id, *contact);
    if (connection_id == wire::kVmbusMessageConnectionId4 && !options_.has_port4) {
      return wire::HvStatus::kInvalidConnectionId;
    }
  }
  received_.push_back(Received{connection_id, *parsed});

  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::InitiateContact>) {
          const uint32_t v = m.vmbus_version_requested;
          wire::VersionResponse r;
          r.version_supported = options_.accepted_versions.count(v) != 0 ? 1 : 0;
          if (r.version_supported != 0) {
            version_ = v;
            r.msg_conn_id = v >= wire::kVersionWin10V5 ? options_.msg_conn_id : v;
          }
          PostLocked(r);
        } else if constexpr (std::is_same_v<T, wire::RequestOffers>) {
          for (const auto& offer : offers_) PostLocked(offer);
          if (options_.send_all_offers_delivered) PostLocked(wire::AllOffersDelivered{});
        } else if constexpr (std::is_same_v<T, wire::GpadlHeaderMessage>) {
          const uint32_t handle = m.fixed.gpadl;
          assembling_.erase(handle);
          assembling_.emplace(handle, wire::GpadlAssembler(m));
          FinishGpadlLocked(handle);
        } else if constexpr (std::is_same_v<T, wire::GpadlBodyMessage>) {
          auto it = assembling_.find(m.fixed.gpadl);
          if (it != assembling_.end() && it->second.AddBody(m)) FinishGpadlLocked(m.fixed.gpadl);
        } else if constexpr (std::is_same_v<T, wire::GpadlTeardown>) {
          gpadls_.erase(m.gpadl);
          if (options_.answer_teardown) {
            wire::GpadlTorndown t;
            t.gpadl = m.gpadl;
            PostLocked(t);
          }
        } else if constexpr (std::is_same_v<T, wire::OpenChannel>) {
          if (options_.answer_open) {
            OpenLocked(m, options_.open_status);
          } else {
            pending_opens_[m.child_relid] = m;
          }
        } else if constexpr (std::is_same_v<T, wire::CloseChannel>) {
          channels_.erase(m.child_relid);
        } else if constexpr (std::is_same_v<T, wire::ModifyChannel>) {
          auto it = channels_.find(m.child_relid);
          if (it != channels_.end()) it->second->target_vp = m.target_vp;
          if (version_ >= wire::kVersionWin10V5_3) {
            wire::ModifyChannelResponse r;
            r.child_relid = m.child_relid;
            r.status = it != channels_.end() ? 0 : wire::kStatusUnsuccessful;
            PostLocked(r);
          }
        } else if constexpr (std::is_same_v<T, wire::Unload>) {
          channels_.clear();
          gpadls_.clear();
          if (options_.answer_unload) PostLocked(wire::UnloadResponse{});
        }
      },
      *parsed);
  return wire::HvStatus::kSuccess;
}

wire::HvStatus FakeVmbusHost::OnSignalEvent(uint32_t connection_id) {
  std::lock_guard lock(mu_);
  ++signals_[connection_id];
  NotifyLocked();
  return wire::HvStatus::kSuccess;
}

void FakeVmbusHost::OnDisconnect() {
  std::lock_guard lock(mu_);
  disconnected_ = true;
  channels_.clear();
  NotifyLocked();
}

}  // namespace uvmbus::fakes
