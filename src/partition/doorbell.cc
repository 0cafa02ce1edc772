// File: partition/doorbell.cc — see doorbell.h.
#include "partition/doorbell.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "wire/synic.h"

namespace uvmbus::partition {

uint64_t Doorbell::Consume() const {
  if (!fd_) return 0;
  uint64_t value = 0;
  // Non-blocking eventfd: EAGAIN simply means "not signalled".
  if (::read(fd_.get(), &value, sizeof(value)) != static_cast<ssize_t>(sizeof(value))) return 0;
  return value;
}

void Doorbell::Reset() {
  if (owner_ != nullptr) owner_->UnregisterDoorbell(connection_id_);
  owner_.reset();
  fd_.Reset();
}

namespace {
uint32_t HashConnectionId(uint32_t id) {
  // Fibonacci hashing: connection ids are dense small numbers (relid | 0x2000).
  return (id * 2654435769u) >> 20;  // 12 bits: kSlots == 4096
}
}  // namespace

static_assert(kMaxDoorbells * 2 == 4096, "HashConnectionId yields 12 bits");

DoorbellTable::DoorbellTable()
    : slots_(std::make_unique<std::array<Slot, kSlots>>()),
      sink_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

DoorbellTable::~DoorbellTable() {
  for (Slot& s : *slots_) {
    const int fd = s.fd.load(std::memory_order_relaxed);
    if (fd >= 0) ::close(fd);
  }
}

const DoorbellTable::Slot* DoorbellTable::Find(uint32_t connection_id) const {
  const uint32_t key = connection_id + 1;
  uint32_t i = HashConnectionId(connection_id);
  for (uint32_t n = 0; n < kSlots; ++n, i = (i + 1) % kSlots) {
    const Slot& s = (*slots_)[i];
    // Acquire pairs with the release in Add(): a matching key implies its fd is visible.
    const uint32_t k = s.key.load(std::memory_order_acquire);
    if (k == key) return &s;
    if (k == 0) return nullptr;  // entries are never deleted: an empty slot ends the probe
  }
  return nullptr;
}

Status DoorbellTable::Add(uint32_t connection_id, UniqueFd fd) {
  if (!fd) return MakeError(ErrorCode::kInvalidArgument, "doorbell fd missing");
  if ((connection_id & ~wire::kHvConnectionIdMask) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "connection id {:#x} has reserved bits set",
                     connection_id);
  }
  std::lock_guard lock(mu_);
  if (const Slot* found = Find(connection_id); found != nullptr) {
    Slot& s = const_cast<Slot&>(*found);
    // Re-registration: dup2 swaps the open file behind the same number atomically, so a
    // concurrent Signal() writes to either the old or the new eventfd, never to a closed number.
    if (::dup2(fd.get(), s.fd.load(std::memory_order_relaxed)) < 0) {
      return unexpected(Error::FromErrno("dup2 doorbell", errno));
    }
    if (!s.live.exchange(true, std::memory_order_release)) {
      enabled_.fetch_add(1, std::memory_order_relaxed);
    }
    return Ok();
  }
  if (used_ >= kMaxDoorbells) {
    return MakeError(ErrorCode::kResourceExhausted, "more than {} doorbell connection ids",
                     kMaxDoorbells);
  }
  uint32_t i = HashConnectionId(connection_id);
  while ((*slots_)[i].key.load(std::memory_order_relaxed) != 0) i = (i + 1) % kSlots;
  Slot& s = (*slots_)[i];
  s.fd.store(fd.Release(), std::memory_order_relaxed);
  s.live.store(true, std::memory_order_relaxed);
  s.key.store(connection_id + 1, std::memory_order_release);
  ++used_;
  enabled_.fetch_add(1, std::memory_order_relaxed);
  return Ok();
}

Status DoorbellTable::Remove(uint32_t connection_id) {
  std::lock_guard lock(mu_);
  const Slot* found = Find(connection_id);
  if (found == nullptr || !found->live.load(std::memory_order_relaxed)) {
    return MakeError(ErrorCode::kNotFound, "no doorbell for connection id {:#x}", connection_id);
  }
  Slot& s = const_cast<Slot&>(*found);
  s.live.store(false, std::memory_order_release);
  // Keep the number allocated but point it at the sink: a Signal() that already passed the
  // `live` check writes harmlessly, and the host's eventfd is released by this process.
  if (sink_) (void)::dup2(sink_.get(), s.fd.load(std::memory_order_relaxed));
  enabled_.fetch_sub(1, std::memory_order_relaxed);
  return Ok();
}

bool DoorbellTable::Signal(uint32_t connection_id) const {
  const Slot* s = Find(connection_id);
  if (s == nullptr || !s->live.load(std::memory_order_acquire)) return false;
  const uint64_t one = 1;
  // A full eventfd counter (EAGAIN) still leaves it readable: the host will wake up.
  (void)::write(s->fd.load(std::memory_order_relaxed), &one, sizeof(one));
  return true;
}

}  // namespace uvmbus::partition
