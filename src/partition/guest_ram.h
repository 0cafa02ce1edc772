// File: partition/guest_ram.h
//
// What: a guest's RAM, addressed by guest page number (GPN = GPA >> 12), backed by a memfd whose
// size is sealed. The guest creates it (`GuestRam::Create`) and hands the fd to the host, which
// maps the same pages (`GuestRam::FromFd`), as a hypervisor maps a VM's memory. Everything shared
// between guest and host lives here and is named by page numbers: SynIC pages, rings, buffers.
// The host NEVER follows a guest-supplied page number without `Pages()`/`Range()`: they are the
// overflow-safe bounds check (spec 9.1 G3).
// Spec: vmbus-protocol.md section 0 (4 KiB protocol pages, PFNs are GPA >> 12), 1.2 (SIMP/SIEFP
//       name pages by GPN), design.md section 3 (guest RAM as a sealed memfd).
// Linux/OpenVMM: OpenVMM vm/vmcore/guestmem (GuestMemory); KVM memory slots.
// Thread-safety: all const methods are thread-safe. The bytes themselves are shared memory with
// a hostile peer: no synchronisation; readers copy out before parsing (spec 9.1 G1). `Revoke()`
// must not race with itself or the destructor, but may run while other threads still hold spans:
// they keep pointing at valid (private, zero) memory.
#ifndef UVMBUS_PARTITION_GUEST_RAM_H_
#define UVMBUS_PARTITION_GUEST_RAM_H_

#include <atomic>
#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"
#include "common/mapped_region.h"
#include "common/unique_fd.h"
#include "wire/synic.h"

namespace uvmbus::partition {

// The protocol page size: all page numbers in uvmbus are 4 KiB frame numbers.
inline constexpr uint32_t kPageSize = wire::kHvPageSize;
inline constexpr uint32_t kPageShift = wire::kHvPageShift;
// Upper bound on guest RAM a host accepts (and a guest may create): 16 GiB. A peer-provided size
// above it is rejected before mapping (spec 9.1 G4).
inline constexpr uint64_t kMaxGuestRamBytes = uint64_t{16} << 30;
// Upper bound on vCPUs per partition (both implementations).
inline constexpr uint32_t kMaxVcpus = 64;

class GuestRam {
 public:
  // An empty RAM (size 0, no fd); every Pages() call fails.
  GuestRam() = default;
  GuestRam(GuestRam&& other) noexcept;
  GuestRam& operator=(GuestRam&& other) noexcept;
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;
  ~GuestRam() = default;

  // Guest side: creates `page_count` zeroed pages in a new memfd named `name`, seals its size
  // (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL) and maps it shared. Errors: kInvalidArgument if
  // page_count is 0 or the size exceeds kMaxGuestRamBytes; kIo if a syscall fails.
  static Expected<GuestRam> Create(uint64_t page_count, const std::string& name = "uvmbus-ram");

  // Host side: adopts a memfd received from a guest. Verifies that its size is sealed against
  // shrinking (otherwise the guest could truncate it and make host accesses SIGBUS), that its size
  // equals `expected_bytes` (the size the guest announced), that expected_bytes is a non-zero
  // multiple of kPageSize and <= kMaxGuestRamBytes, then maps it shared.
  // Errors: kMalformed (size/seal mismatch, bad size), kIo (fstat/mmap failed).
  static Expected<GuestRam> FromFd(UniqueFd fd, uint64_t expected_bytes);

  // Total bytes / 4 KiB pages of guest RAM.
  uint64_t size() const { return size_; }
  uint64_t page_count() const { return size_ >> kPageShift; }
  // The memfd (owned; -1 after Revoke() or on an empty GuestRam). Passed to the host by the socket
  // guest with SCM_RIGHTS.
  int fd() const { return fd_.get(); }

  // `count` pages starting at guest page number `gpn`, as host-visible bytes.
  // Errors: kInvalidArgument if count is 0; kMalformed if gpn or gpn + count lies past the end
  // (overflow-safe: no addition can wrap); kUnavailable after Revoke().
  Expected<std::span<uint8_t>> Pages(uint64_t gpn, uint64_t count) const;

  // `length` bytes starting at guest physical address `gpa` (no alignment needed), with the same
  // errors as Pages() (length 0 is kInvalidArgument).
  Expected<std::span<uint8_t>> Range(uint64_t gpa, uint64_t length) const;

  // Whole RAM (empty span after Revoke()). For the owner (guest) and tests only.
  std::span<uint8_t> all() const;

  // True until Revoke().
  bool mapped() const { return !revoked_.load(std::memory_order_acquire) && region_.valid(); }

  // Host side, on guest hang-up: releases the guest's memory. The address range is replaced with
  // private anonymous zero pages (MAP_FIXED) so spans other threads still hold stay dereferenceable
  // (writes go nowhere), the shared mapping and the memfd are dropped (the kernel frees the guest's
  // pages once the guest is gone too), and every later Pages()/Range() fails with kUnavailable.
  void Revoke();

 private:
  GuestRam(UniqueFd fd, MappedRegion region, uint64_t size);

  UniqueFd fd_;
  MappedRegion region_;
  uint64_t size_ = 0;
  // Set once by Revoke(); acquire/release so a reader that sees false also sees the mapping.
  std::atomic<bool> revoked_{false};
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_GUEST_RAM_H_
