// File: devices/netvsp/mailbox.cc — see mailbox.h.
#include "devices/netvsp/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace uvmbus::netvsp {

Expected<std::unique_ptr<Mailbox>> Mailbox::Create(uint32_t depth) {
  if (depth < 2 || depth > 65536 || (depth & (depth - 1)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "mailbox depth {} is not a power of two in [2, 65536]", depth);
  }
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) return tl::unexpected(Error::FromErrno("eventfd", errno));
  return std::unique_ptr<Mailbox>(new Mailbox(depth, std::move(efd)));
}

Mailbox::Mailbox(uint32_t depth, UniqueFd event_fd)
    : depth_(depth), mask_(depth - 1), slots_(new Slot[depth]), event_fd_(std::move(event_fd)) {
  for (uint32_t i = 0; i < depth; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
}

Mailbox::~Mailbox() = default;

bool Mailbox::Push(const SteeredFrame& item) {
  uint64_t pos = tail_.load(std::memory_order_relaxed);
  Slot* slot;
  for (;;) {
    slot = &slots_[pos & mask_];
    // Acquire pairs with Pop()'s release: the consumer is done with the slot's previous item.
    const uint64_t seq = slot->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<int64_t>(seq - pos);
    if (diff == 0) {
      if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      return false;  // one lap behind is still occupied: full
    } else {
      pos = tail_.load(std::memory_order_relaxed);
    }
  }
  slot->item = item;
  // Release publishes the item (and the frame bytes the producer wrote into guest memory before
  // pushing) to the consumer's acquire.
  slot->seq.store(pos + 1, std::memory_order_release);
  return true;
}

void Mailbox::WakeIfArmed() {
  if (armed_.exchange(false, std::memory_order_acq_rel)) Kick();
}

void Mailbox::Kick() {
  const uint64_t one = 1;
  // An eventfd only fails to take the write when its counter is saturated, which still leaves
  // it readable: nothing is lost.
  (void)!::write(event_fd_.get(), &one, sizeof(one));
}

bool Mailbox::Pop(SteeredFrame* out) {
  Slot& slot = slots_[head_ & mask_];
  if (slot.seq.load(std::memory_order_acquire) != head_ + 1) return false;
  *out = slot.item;
  slot.seq.store(head_ + depth_, std::memory_order_release);
  ++head_;
  return true;
}

bool Mailbox::PeekReady() const {
  return slots_[head_ & mask_].seq.load(std::memory_order_acquire) == head_ + 1;
}

bool Mailbox::PrepareWait() {
  uint64_t value = 0;
  (void)!::read(event_fd_.get(), &value, sizeof(value));
  armed_.exchange(true, std::memory_order_acq_rel);
  return !PeekReady();
}

}  // namespace uvmbus::netvsp
