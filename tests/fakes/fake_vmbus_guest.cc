// File: tests/fakes/fake_vmbus_guest.cc — see fake_vmbus_guest.h.
#include "fakes/fake_vmbus_guest.h"

#include <poll.h>

#include <atomic>
#include <cstring>

#include "ring/ring_view.h"
#include "wire/gpa_range.h"
#include "wire/versions.h"

namespace uvmbus::testing {

wire::HvStatus FakeVmbusGuest::PostRaw(std::span<const uint8_t> payload, uint32_t connection_id,
                                       uint32_t message_type) {
  return guest_.PostMessage(connection_id, message_type, payload);
}

bool FakeVmbusGuest::SlotEmpty(uint32_t vcpu) const {
  std::span<uint8_t> page = guest_.MessagePage(vcpu);
  if (page.empty()) return true;
  auto* type = reinterpret_cast<uint32_t*>(page.data() + wire::kVmbusMessageSlotOffset);
  return std::atomic_ref<uint32_t>(*type).load(std::memory_order_acquire) == wire::kHvMsgNone;
}

std::optional<wire::ChannelMessage> FakeVmbusGuest::Receive(uint32_t vcpu) {
  std::span<uint8_t> page = guest_.MessagePage(vcpu);
  if (page.empty()) return std::nullopt;
  uint8_t* slot = page.data() + wire::kVmbusMessageSlotOffset;
  auto* type_word = reinterpret_cast<uint32_t*>(slot);
  uint32_t type = std::atomic_ref<uint32_t>(*type_word).load(std::memory_order_acquire);
  while (type == wire::kHvMsgNone) {
    if (receive_timeout_ms_ <= 0) return std::nullopt;
    pollfd p{guest_.InterruptFd(vcpu), POLLIN, 0};
    if (::poll(&p, 1, receive_timeout_ms_) <= 0) return std::nullopt;
    guest_.AckInterrupt(vcpu);
    type = std::atomic_ref<uint32_t>(*type_word).load(std::memory_order_acquire);
  }
  // Copy the whole slot out first (spec 1.3 step 2), then free it only if it still holds what
  // we copied (step 3), then EOM if the host has more (step 4).
  uint8_t copy[wire::kSynicMessageSlotSize];
  std::memcpy(copy, slot, sizeof(copy));
  (void)std::atomic_ref<uint32_t>(*type_word)
      .compare_exchange_strong(type, wire::kHvMsgNone, std::memory_order_acq_rel);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint8_t flags = copy[wire::kHvMessageFlagsOffset];
  if ((flags & wire::kHvMessageFlagPending) != 0) guest_.EndOfMessage(vcpu);
  const uint8_t size = copy[4];
  if (type != wire::kHvMsgVmbus || size > wire::kHvMessagePayloadMax) {
    ++bad_messages_;
    return std::nullopt;
  }
  auto parsed = wire::ParseChannelMessage(
      std::span<const uint8_t>(copy + wire::kHvMessageHeaderSize, size),
      wire::Direction::kHostToGuest);
  if (!parsed) {
    ++bad_messages_;
    return std::nullopt;
  }
  return *parsed;
}

std::vector<wire::ChannelMessage> FakeVmbusGuest::ReceiveAll(uint32_t vcpu) {
  std::vector<wire::ChannelMessage> out;
  while (auto msg = Receive(vcpu)) out.push_back(*msg);
  return out;
}

std::optional<wire::VersionResponse> FakeVmbusGuest::InitiateContact(
    uint32_t version, uint32_t target_vcpu, std::optional<uint32_t> connection_id,
    uint32_t reply_vcpu) {
  wire::InitiateContact msg;
  msg.vmbus_version_requested = version;
  msg.target_vcpu = target_vcpu;
  const bool multi_client = version >= wire::kVersionWin10V5;
  if (multi_client) {
    msg.msg_sint = wire::kVmbusMessageSint;
    msg.msg_vtl = 0;
  } else {
    msg.set_interrupt_page(0);  // a host >= 2.4 ignores the page
  }
  // Linux always sends two monitor pages it allocated: the host polls monitor_page2 for the
  // channels it offers with a monitor (spec 1.5), so they must be pages nobody else uses.
  if (!monitor_pages_.valid()) {
    if (auto run = guest_.allocator().AllocateRun(2); run) monitor_pages_ = std::move(*run);
  }
  if (monitor_pages_.valid()) {
    msg.monitor_page1 = monitor_pages_.gpn() << wire::kHvPageShift;
    msg.monitor_page2 = (monitor_pages_.gpn() + 1) << wire::kHvPageShift;
  } else {
    msg.monitor_page1 = 0x10000;
    msg.monitor_page2 = 0x11000;
  }
  const uint32_t port = connection_id.value_or(multi_client ? wire::kVmbusMessageConnectionId4
                                                            : wire::kVmbusMessageConnectionId);
  if (Post(msg, port) != wire::HvStatus::kSuccess) return std::nullopt;
  return ReceiveAs<wire::VersionResponse>(reply_vcpu);
}

std::optional<std::vector<wire::OfferChannel>> FakeVmbusGuest::ConnectAndRequestOffers(
    uint32_t version) {
  auto response = InitiateContact(version);
  if (!response || response->version_supported == 0) return std::nullopt;
  if (Post(wire::RequestOffers{}) != wire::HvStatus::kSuccess) return std::nullopt;
  std::vector<wire::OfferChannel> offers;
  while (auto msg = Receive()) {
    if (const auto* offer = std::get_if<wire::OfferChannel>(&*msg)) {
      offers.push_back(*offer);
    } else if (std::holds_alternative<wire::AllOffersDelivered>(*msg)) {
      return offers;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<wire::GpadlCreated> FakeVmbusGuest::CreateGpadl(uint32_t relid, uint32_t handle,
                                                              std::span<const uint64_t> pfns) {
  auto messages = wire::BuildGpadlMessages(relid, handle, pfns);
  if (!messages) return std::nullopt;
  for (const wire::MessageBuffer& m : *messages) {
    if (Post(m) != wire::HvStatus::kSuccess) return std::nullopt;
  }
  return ReceiveAs<wire::GpadlCreated>();
}

std::optional<FakeVmbusGuest::OpenChannelState> FakeVmbusGuest::OpenChannel(
    uint32_t relid, uint32_t connection_id, uint32_t gpadl, uint32_t target_vp,
    uint32_t out_ring_pages, uint32_t in_ring_pages, bool scatter) {
  OpenChannelState s;
  s.relid = relid;
  s.gpadl = gpadl;
  s.connection_id = connection_id;
  auto& alloc = guest_.allocator();
  // scatter: ring B first, so it sits below ring A and the GPADL is two separate runs.
  if (scatter) {
    auto in = alloc.AllocateRun(in_ring_pages);
    auto out = alloc.AllocateRun(out_ring_pages);
    if (!in || !out) return std::nullopt;
    s.in_pages = std::move(*in);
    s.out_pages = std::move(*out);
  } else {
    auto out = alloc.AllocateRun(out_ring_pages);
    auto in = alloc.AllocateRun(in_ring_pages);
    if (!in || !out) return std::nullopt;
    s.in_pages = std::move(*in);
    s.out_pages = std::move(*out);
  }
  // Both headers initialised as Linux does: indices 0, feature_bits = 1 (spec 3.1).
  auto out_view = ring::InitRingControl(s.out_pages.bytes());
  auto in_view = ring::InitRingControl(s.in_pages.bytes());
  if (!out_view || !in_view) return std::nullopt;
  auto out_ring = ring::OutgoingRing::Create(*out_view);
  auto in_ring = ring::IncomingRing::Create(*in_view);
  if (!out_ring || !in_ring) return std::nullopt;
  s.out.emplace(std::move(*out_ring));
  s.in.emplace(std::move(*in_ring));

  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < s.out_pages.count(); ++i) pfns.push_back(s.out_pages.gpn() + i);
  for (uint64_t i = 0; i < s.in_pages.count(); ++i) pfns.push_back(s.in_pages.gpn() + i);
  auto created = CreateGpadl(relid, gpadl, pfns);
  if (!created || created->creation_status != 0) return std::nullopt;

  wire::OpenChannel open;
  open.child_relid = relid;
  open.openid = relid;
  open.ringbuffer_gpadlhandle = gpadl;
  open.target_vp = target_vp;
  open.downstream_ringbuffer_pageoffset = out_ring_pages;
  if (Post(open) != wire::HvStatus::kSuccess) return std::nullopt;
  auto result = ReceiveAs<wire::OpenChannelResult>();
  if (!result) return std::nullopt;
  s.result = *result;
  return s;
}

}  // namespace uvmbus::testing
