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
// Several regions (host side): region 0 is the memfd of the HELLO at GPA 0; AddRegion() adds up
// to kMaxRamRegions more, each its own sealed memfd at its own page-aligned GPA base (a guest
// runtime registering memory it did not allocate itself, e.g. DPDK's no-huge heap whose IOVA is
// its virtual address: docs/socket-protocol.md RAM_REGION_ADD). A lookup succeeds only inside ONE
// region; a range crossing a region boundary or touching a gap fails and is counted
// (rejected_accesses()). Regions are only ever added (until Revoke), never removed or moved.
// Thread-safety: all const methods are thread-safe and lock-free (regions are published with a
// release store of the region count, readers acquire it). AddRegion() is serialised internally
// and may run concurrently with lookups. The bytes themselves are shared memory with a hostile
// peer: no synchronisation; readers copy out before parsing (spec 9.1 G1). `Revoke()` must not
// race with itself or the destructor, but may run while other threads still hold spans: they keep
// pointing at valid (private, zero) memory.
#ifndef UVMBUS_PARTITION_GUEST_RAM_H_
#define UVMBUS_PARTITION_GUEST_RAM_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
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
// Extra RAM regions one guest may add besides region 0 (AddRegion), and the GPA limit every
// region must end below (52 bits: the x64 physical address width, so GPA >> 12 fits in the
// 40-bit PFN fields of the protocol).
inline constexpr size_t kMaxRamRegions = 16;
inline constexpr uint64_t kMaxGpaExclusive = uint64_t{1} << 52;

class GuestRam {
 public:
  // An empty RAM (size 0, no fd); every Pages() call fails.
  GuestRam();
  GuestRam(GuestRam&& other) noexcept;
  GuestRam& operator=(GuestRam&& other) noexcept;
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;
  ~GuestRam();

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

  // Host side: adds an extra region: `size` bytes of memfd `fd` seen by the guest at guest
  // physical address `gpa_base`. Rules (each refusal is counted in regions_rejected()):
  // the fd is sealed against shrinking AND growing and holds exactly `size` bytes; gpa_base and
  // size are non-zero multiples of kPageSize, size <= kMaxGuestRamBytes, gpa_base + size <=
  // kMaxGpaExclusive (overflow-safe); no overlap with region 0 or another region; at most
  // kMaxRamRegions extra regions. Maps the whole file shared.
  // Errors: kInvalidArgument (alignment, size, range, overlap, fd not sealed/size mismatch),
  // kResourceExhausted (region limit), kUnavailable (revoked or empty RAM), kIo (mmap failed).
  Status AddRegion(UniqueFd fd, uint64_t gpa_base, uint64_t size);
  // Extra regions added so far / refused AddRegion() calls / lookups (Pages, Range) that failed
  // because they were outside every region or crossed a boundary.
  size_t region_count() const;
  uint64_t regions_rejected() const;
  uint64_t rejected_accesses() const;

  // Total bytes / 4 KiB pages of region 0 (the HELLO memfd at GPA 0).
  uint64_t size() const { return size_; }
  uint64_t page_count() const { return size_ >> kPageShift; }
  // The memfd (owned; -1 after Revoke() or on an empty GuestRam). Passed to the host by the socket
  // guest with SCM_RIGHTS.
  int fd() const { return fd_.get(); }

  // `count` pages starting at guest page number `gpn`, as host-visible bytes, resolved in
  // region 0 or one extra region. Errors: kInvalidArgument if count is 0; kMalformed if the pages
  // are not all inside one region (past the end, in a gap, across a boundary; overflow-safe: no
  // addition can wrap); kUnavailable after Revoke().
  Expected<std::span<uint8_t>> Pages(uint64_t gpn, uint64_t count) const;

  // `length` bytes starting at guest physical address `gpa` (no alignment needed), with the same
  // errors as Pages() (length 0 is kInvalidArgument).
  Expected<std::span<uint8_t>> Range(uint64_t gpa, uint64_t length) const;

  // Whole region 0 (empty span after Revoke()). For the owner (guest) and tests only.
  std::span<uint8_t> all() const;

  // True until Revoke().
  bool mapped() const { return !revoked_.load(std::memory_order_acquire) && region_.valid(); }

  // Host side, on guest hang-up: releases the guest's memory. The address range is replaced with
  // private anonymous zero pages (MAP_FIXED) so spans other threads still hold stay dereferenceable
  // (writes go nowhere), the shared mapping and the memfd are dropped (the kernel frees the guest's
  // pages once the guest is gone too), and every later Pages()/Range() fails with kUnavailable.
  void Revoke();

 private:
  class RegionTable;
  GuestRam(UniqueFd fd, MappedRegion region, uint64_t size);
  // Lookup in the extra regions: [gpa, gpa + length) must lie inside one of them.
  Expected<std::span<uint8_t>> ExtraRange(uint64_t gpa, uint64_t length) const;

  UniqueFd fd_;
  MappedRegion region_;
  uint64_t size_ = 0;
  // Set once by Revoke(); acquire/release so a reader that sees false also sees the mapping.
  std::atomic<bool> revoked_{false};
  // Extra regions (null for an empty GuestRam). Heap-allocated so GuestRam stays movable.
  std::unique_ptr<RegionTable> regions_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_GUEST_RAM_H_
