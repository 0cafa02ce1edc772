// File: partition/synic_emulator.cc — see synic_emulator.h.
#include "partition/synic_emulator.h"

#include <atomic>
#include <cstring>

#include "partition/guest_ram.h"

namespace uvmbus::partition {
namespace {

// The live words of a slot / event area, accessed atomically: the guest reads and frees the slot
// concurrently (spec 1.3 steps 2-4), and test-and-clears event bits concurrently (spec 1.4).
std::atomic_ref<uint32_t> SlotType(uint8_t* slot) {
  return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(slot + wire::kHvMessageTypeOffset));
}
std::atomic_ref<uint8_t> SlotFlags(uint8_t* slot) {
  return std::atomic_ref<uint8_t>(slot[wire::kHvMessageFlagsOffset]);
}

uint8_t* VmbusSlot(std::span<uint8_t> message_page) {
  return message_page.data() + wire::kVmbusMessageSlotOffset;
}

}  // namespace

SynicEmulator::SynicEmulator(std::vector<VcpuPages> pages, InterruptSink* sink, size_t queue_depth)
    : sink_(sink), queue_depth_(queue_depth == 0 ? 1 : queue_depth) {
  vcpus_.reserve(pages.size());
  for (auto& p : pages) {
    auto v = std::make_unique<Vcpu>();
    // A page of the wrong size would make every offset below unsafe: such a vCPU gets no pages
    // and every operation on it fails (the partitions never build one).
    if (p.message_page.size() == kPageSize && p.event_page.size() == kPageSize) v->pages = p;
    vcpus_.push_back(std::move(v));
  }
}

void SynicEmulator::Raise(uint32_t vcpu) {
  stats_.interrupts_raised.Add();
  if (sink_ != nullptr) sink_->Raise(vcpu);
}

void SynicEmulator::WriteSlot(Vcpu& v, const QueuedMessage& msg, bool more) {
  uint8_t* slot = VmbusSlot(v.pages.message_page);
  // Header and payload first, message_type last with release: a guest that acquire-loads a
  // non-zero type sees the whole message (spec 1.3 "write only when message_type == 0").
  slot[4] = msg.payload_size;
  slot[6] = 0;
  slot[7] = 0;
  std::memset(slot + 8, 0, 8);  // sender: host-originated messages carry port 0
  std::memcpy(slot + wire::kHvMessageHeaderSize, msg.payload, msg.payload_size);
  SlotFlags(slot).store(more ? wire::kHvMessageFlagPending : 0, std::memory_order_relaxed);
  SlotType(slot).store(msg.message_type, std::memory_order_release);
  stats_.messages_delivered.Add();
}

bool SynicEmulator::TryDeliverLocked(uint32_t index, Vcpu& v) {
  if (v.queue.empty() || v.pages.message_page.empty()) return false;
  uint8_t* slot = VmbusSlot(v.pages.message_page);
  // Acquire pairs with the guest's release when it frees the slot: its reads of the old message
  // are done before we overwrite it. seq_cst (a plain load on x86) so that, after Post()'s seq_cst
  // msg_pending RMW, this load cannot be ordered before that store (the Dekker pair).
  if (SlotType(slot).load(std::memory_order_seq_cst) != wire::kHvMsgNone) return false;
  const QueuedMessage msg = v.queue.front();
  v.queue.pop_front();
  WriteSlot(v, msg, /*more=*/!v.queue.empty());
  Raise(index);
  return true;
}

Status SynicEmulator::Post(uint32_t vcpu, uint32_t message_type, std::span<const uint8_t> payload) {
  if (vcpu >= vcpus_.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "vcpu {} out of range ({} vcpus)", vcpu,
                     vcpus_.size());
  }
  if (payload.empty() || payload.size() > wire::kHvMessagePayloadMax) {
    return MakeError(ErrorCode::kInvalidArgument, "SynIC message payload of {} bytes (1..{})",
                     payload.size(), wire::kHvMessagePayloadMax);
  }
  if (message_type == wire::kHvMsgNone) {
    return MakeError(ErrorCode::kInvalidArgument, "SynIC message type 0 (HVMSG_NONE)");
  }
  Vcpu& v = *vcpus_[vcpu];
  if (v.pages.message_page.empty()) {
    return MakeError(ErrorCode::kInternal, "vcpu {} has no message page", vcpu);
  }
  QueuedMessage msg;
  msg.message_type = message_type;
  msg.payload_size = static_cast<uint8_t>(payload.size());
  std::memcpy(msg.payload, payload.data(), payload.size());

  std::lock_guard lock(v.mu);
  // Older messages go first (order is part of the channel protocol), and the slot may have been
  // freed by a guest that did not need to send EOM.
  TryDeliverLocked(vcpu, v);
  uint8_t* slot = VmbusSlot(v.pages.message_page);
  if (v.queue.empty() && SlotType(slot).load(std::memory_order_acquire) == wire::kHvMsgNone) {
    WriteSlot(v, msg, /*more=*/false);
    Raise(vcpu);
    return Ok();
  }
  if (v.queue.size() >= queue_depth_) {
    stats_.messages_dropped.Add();
    return MakeError(ErrorCode::kResourceExhausted,
                     "vcpu {} message queue full ({} messages): guest is not consuming", vcpu,
                     v.queue.size());
  }
  v.queue.push_back(msg);
  stats_.messages_queued.Add();
  // Tell the guest it has a backlog, then look at the slot again. This is a Dekker pair with the
  // guest's "free slot (CAS to 0); full barrier; read msg_pending": either the guest sees
  // msg_pending and writes EOM, or we see the slot free here and deliver ourselves. The
  // seq_cst RMW is the full barrier on our side (a locked instruction on x86), ordering the flag
  // store before the re-load of message_type in TryDeliverLocked.
  SlotFlags(slot).fetch_or(wire::kHvMessageFlagPending, std::memory_order_seq_cst);
  TryDeliverLocked(vcpu, v);
  return Ok();
}

void SynicEmulator::EndOfMessage(uint32_t vcpu) {
  stats_.eoms.Add();
  if (vcpu >= vcpus_.size()) return;
  Vcpu& v = *vcpus_[vcpu];
  std::lock_guard lock(v.mu);
  TryDeliverLocked(vcpu, v);
}

bool SynicEmulator::DeliverPending(uint32_t vcpu) {
  if (vcpu >= vcpus_.size()) return false;
  Vcpu& v = *vcpus_[vcpu];
  std::lock_guard lock(v.mu);
  return TryDeliverLocked(vcpu, v);
}

Expected<bool> SynicEmulator::SignalEvent(uint32_t vcpu, uint32_t flag) {
  if (vcpu >= vcpus_.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "vcpu {} out of range ({} vcpus)", vcpu,
                     vcpus_.size());
  }
  if (flag == 0 || flag >= wire::kSynicEventFlagsPerArea) {
    return MakeError(ErrorCode::kInvalidArgument, "event flag {} out of range 1..{}", flag,
                     wire::kSynicEventFlagsPerArea - 1);
  }
  const std::span<uint8_t> page = vcpus_[vcpu]->pages.event_page;
  if (page.empty()) return MakeError(ErrorCode::kInternal, "vcpu {} has no event page", vcpu);
  auto* words = reinterpret_cast<uint64_t*>(page.data() + wire::kVmbusEventAreaOffset);
  const uint64_t mask = wire::EventFlagWordMask(flag);
  // Release: the ring writes that this signal announces are visible to a guest that observes
  // the bit (its test-and-clear is an acquire). Acquire side is irrelevant here.
  const uint64_t old = std::atomic_ref<uint64_t>(words[wire::EventFlagWordIndex(flag)])
                           .fetch_or(mask, std::memory_order_acq_rel);
  if ((old & mask) != 0) {
    // Already pending: the guest has not scanned since the last interrupt, one wake-up covers
    // both (spec 1.4: assert the SINT only after setting a bit that was clear).
    stats_.events_coalesced.Add();
    return false;
  }
  stats_.events_signalled.Add();
  Raise(vcpu);
  return true;
}

size_t SynicEmulator::queued(uint32_t vcpu) const {
  if (vcpu >= vcpus_.size()) return 0;
  Vcpu& v = *vcpus_[vcpu];
  std::lock_guard lock(v.mu);
  return v.queue.size();
}

}  // namespace uvmbus::partition
