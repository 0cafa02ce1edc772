// File: partition/doorbell.h
//
// What: the guest->host "SignalEvent" fast path, the analogue of KVM's ioeventfd. The host creates
// a `Doorbell` (an eventfd) for a connection id; the guest's SignalEvent(connection_id) becomes a
// write() to it, so the data path never touches the control socket and the host data worker can
// poll/wait on fd(). `DoorbellTable` is the guest's connection_id -> fd table, read lock-free on
// every SignalEvent.
// Spec: vmbus-protocol.md 1.7 (HvCallSignalEvent), 1.1 (per-channel connection id from the offer);
//       design.md section 3 ("SignalEvent is a write to the doorbell eventfd").
// Linux/OpenVMM: KVM_IOEVENTFD / KVM_HYPERV_EVENTFD (Linux virt/kvm/eventfd.c, hyperv.c
//       kvm_hv_eventfd_assign); OpenVMM vmcore Interrupt / Event.
// Thread-safety: Doorbell: Consume()/fd() may be called from one host thread at a time (the data
//       worker that owns it); destruction from any thread. DoorbellTable: Signal() is lock-free and
//       may run on any number of threads concurrently with Add()/Remove(), which serialise on a
//       mutex.
#ifndef UVMBUS_PARTITION_DOORBELL_H_
#define UVMBUS_PARTITION_DOORBELL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace uvmbus::partition {

// Most distinct connection ids one partition may register doorbells for (relids are < 2048).
inline constexpr uint32_t kMaxDoorbells = 2048;

// Implemented by a HostPartition: forgets the doorbell of `connection_id` (and tells the guest).
class DoorbellOwner {
 public:
  virtual ~DoorbellOwner() = default;
  virtual void UnregisterDoorbell(uint32_t connection_id) = 0;
};

// Host side: a registered doorbell for one connection id. Move-only; destroying it (or Reset())
// unregisters it: the guest's later SignalEvent(connection_id) goes the slow path again
// (HostPartition::Handler::OnSignalEvent). May outlive its HostPartition (then it only closes).
class Doorbell {
 public:
  Doorbell() = default;
  Doorbell(std::shared_ptr<DoorbellOwner> owner, uint32_t connection_id, UniqueFd fd)
      : owner_(std::move(owner)), connection_id_(connection_id), fd_(std::move(fd)) {}
  Doorbell(Doorbell&&) noexcept = default;
  Doorbell& operator=(Doorbell&& other) noexcept {
    if (this != &other) {
      Reset();
      owner_ = std::move(other.owner_);
      connection_id_ = other.connection_id_;
      fd_ = std::move(other.fd_);
    }
    return *this;
  }
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  ~Doorbell() { Reset(); }

  // Non-blocking eventfd: POLLIN when the guest signalled since the last Consume().
  int fd() const { return fd_.get(); }
  uint32_t connection_id() const { return connection_id_; }
  bool valid() const { return fd_.valid(); }

  // Reads and clears the eventfd. Returns how many signals were coalesced since the last call
  // (0 if none: not an error).
  uint64_t Consume() const;

  // Unregisters and closes now.
  void Reset();

 private:
  std::shared_ptr<DoorbellOwner> owner_;
  uint32_t connection_id_ = 0;
  UniqueFd fd_;
};

// Guest side: connection_id -> doorbell fd, fixed capacity, lock-free lookup.
//
// Entries are never deleted, only disabled, and a disabled entry's fd number is kept alive by
// dup2()ing a private "sink" eventfd over it. So a SignalEvent racing with Remove() (or with a
// re-Add() that dup2()s the new eventfd over the same number) writes either to the old doorbell,
// the new one, or the sink, and never to an unrelated fd that reused the number.
class DoorbellTable {
 public:
  DoorbellTable();
  ~DoorbellTable();
  DoorbellTable(const DoorbellTable&) = delete;
  DoorbellTable& operator=(const DoorbellTable&) = delete;

  // Registers (or replaces) the doorbell of `connection_id`; takes ownership of `fd`.
  // Errors: kInvalidArgument (fd invalid, connection id has reserved bits 24-31 set),
  // kResourceExhausted (kMaxDoorbells distinct ids already seen), kIo (dup failed).
  Status Add(uint32_t connection_id, UniqueFd fd) EXCLUDES(mu_);

  // Disables the doorbell of `connection_id`. Errors: kNotFound if none is enabled.
  Status Remove(uint32_t connection_id) EXCLUDES(mu_);

  // Rings the doorbell of `connection_id` (one 8-byte eventfd write). Returns false if no doorbell
  // is enabled for it. Lock-free.
  bool Signal(uint32_t connection_id) const;

  // Number of enabled doorbells.
  uint32_t enabled() const { return enabled_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint32_t kSlots = kMaxDoorbells * 2;  // load factor <= 0.5
  struct Slot {
    // connection_id + 1 (0 = empty). Published with release after fd, read with acquire.
    std::atomic<uint32_t> key{0};
    std::atomic<int> fd{-1};
    std::atomic<bool> live{false};
  };
  const Slot* Find(uint32_t connection_id) const;

  std::mutex mu_;
  std::unique_ptr<std::array<Slot, kSlots>> slots_;
  UniqueFd sink_;
  uint32_t used_ GUARDED_BY(mu_) = 0;
  std::atomic<uint32_t> enabled_{0};
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_DOORBELL_H_
