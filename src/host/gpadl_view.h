// File: host/gpadl_view.h
//
// What: `GpadlView`, the host's contiguous view of one created GPADL (spec 2.9): every PFN the
// guest named is validated against guest RAM, then the pages are made visible at consecutive
// host addresses so rings and device buffers can be used as one plain byte span:
//   * PFNs that are one contiguous run of guest RAM: the view is that RAM span (no mapping);
//   * otherwise: a PROT_NONE region of (total pages x 4 KiB) is reserved and each run of
//     consecutive PFNs is aliased into it in order with mremap(old_size = 0, MREMAP_FIXED), which
//     creates a second mapping of the same shared guest pages (the guest RAM mapping is
//     MAP_SHARED). Control path only (one mremap per run).
// A guest may send any PFNs (a real Linux guest builds GPADLs from vmalloc()ed, scattered pages;
// a hostile one repeats pages or points outside its RAM): the view only ever maps pages the
// partition's bounds check accepted.
//
// Lifetime: shared (std::shared_ptr). The server's GPADL table holds one reference until
// GPADL_TEARDOWN; an open channel pins its ring GPADL and every GPADL its device looked up, so a
// teardown racing with a device never unmaps memory the device still uses: the alias mapping goes
// away with the last reference. Aliases keep the guest's pages alive, so the server drops every
// reference (channels closed, table cleared) when the guest disconnects.
//
// Spec: vmbus-protocol.md 2.3 (GPADL_HEADER ranges), 2.9 (host assembly), 9.1 G3/G4, 9.3 H11-H14
//       (range validation is wire::GpadlAssembler's), 3.8 (OpenVMM maps GPADL pages for rings).
// OpenVMM: vm/devices/vmbus/vmbus_channel/src/gpadl.rs (GpadlMap / GpadlView),
//       gpadl_ring.rs (PagedRingMem); vm/vmcore/guestmem (GuestMemory::lock_gpns).
// Thread-safety: immutable after Create(); all methods are thread-safe. The viewed bytes are
// guest memory shared with a hostile peer (copy out before parsing, spec 9.1 G1).
#ifndef UVMBUS_HOST_GPADL_VIEW_H_
#define UVMBUS_HOST_GPADL_VIEW_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/mapped_region.h"
#include "wire/gpa_range.h"

namespace uvmbus::host {

class GpadlView {
 public:
  // Resolves `count` guest pages at `gpn` to host bytes, failing for pages outside guest RAM
  // (normally partition::HostPartition::GuestPages).
  using PageResolver =
      std::function<Expected<std::span<uint8_t>>(uint64_t gpn, uint64_t count)>;

  // Builds the view of GPADL `handle` of channel `child_relid` from its validated ranges (as
  // returned by wire::GpadlAssembler::Finish()).
  // Errors: kInvalidArgument (no ranges / no pages), kMalformed (a PFN outside guest RAM, with the
  // partition's message), kUnavailable (guest gone), kUnsupported (non-contiguous PFNs on a host
  // whose page size is not 4 KiB), kIo (the reservation or an alias mapping failed, e.g. the
  // process hit vm.max_map_count).
  static Expected<std::shared_ptr<GpadlView>> Create(const PageResolver& resolve, uint32_t handle,
                                                     uint32_t child_relid,
                                                     std::vector<wire::GpaRange> ranges);

  ~GpadlView();
  GpadlView(const GpadlView&) = delete;
  GpadlView& operator=(const GpadlView&) = delete;

  uint32_t handle() const { return handle_; }
  uint32_t child_relid() const { return child_relid_; }
  const std::vector<wire::GpaRange>& ranges() const { return ranges_; }

  // Every page of every range, in order, as one span (page_count() * 4096 bytes).
  std::span<uint8_t> pages() const { return pages_; }
  uint64_t page_count() const { return pages_.size() / wire::kGpaPageSize; }

  // The bytes range `index` describes: [byte_offset, byte_offset + byte_count) of its pages.
  // Empty span for an index out of range.
  std::span<uint8_t> RangeBytes(size_t index) const;

  // What a device means by "the buffer": the single range's bytes when there is one range (the
  // shape Linux and DPDK always send, spec 10.1 V18), otherwise pages().
  std::span<uint8_t> data() const {
    return ranges_.size() == 1 ? RangeBytes(0) : pages_;
  }

  // True if the PFNs were contiguous and the view is the guest RAM span itself; false if an
  // alias mapping was built.
  bool direct() const { return !alias_.valid(); }
  // Number of runs of consecutive PFNs (1 for a direct view).
  size_t run_count() const { return run_count_; }
  // True when every range is page-aligned: byte_offset 0 and byte_count a multiple of 4096
  // (the shape a ring GPADL must have, spec 9.3 H19).
  bool IsPageAligned() const;

  // Views alive in this process, and how many of them own an alias mapping (tests check that a
  // disconnect releases them all).
  static int64_t LiveCount();
  static int64_t LiveAliasCount();

 private:
  GpadlView(uint32_t handle, uint32_t child_relid, std::vector<wire::GpaRange> ranges,
            std::span<uint8_t> pages, MappedRegion alias, size_t run_count);

  uint32_t handle_;
  uint32_t child_relid_;
  std::vector<wire::GpaRange> ranges_;
  std::span<uint8_t> pages_;
  MappedRegion alias_;  // the reserved region holding the aliases (invalid for a direct view)
  size_t run_count_;
};

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_GPADL_VIEW_H_
