// File: partition/guest_ram.cc — see guest_ram.h.
#include "partition/guest_ram.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <mutex>

#include "common/counter.h"
#include "common/thread_annotations.h"

namespace uvmbus::partition {

// The extra regions. Slots [0, count) are immutable once published: AddRegion fills slot `count`
// completely, then stores count + 1 with release; lookups load count with acquire and read only
// published slots, without a lock.
class GuestRam::RegionTable {
 public:
  struct Region {
    uint64_t gpa_base = 0;
    uint64_t size = 0;
    uint8_t* data = nullptr;
    MappedRegion map;
    UniqueFd fd;
  };
  std::array<Region, kMaxRamRegions> slots;
  std::atomic<size_t> count{0};
  std::mutex add_mu;  // serialises AddRegion / Revoke (writers)
  Counter rejected;
  Counter bad_accesses;
};

GuestRam::GuestRam(UniqueFd fd, MappedRegion region, uint64_t size)
    : fd_(std::move(fd)),
      region_(std::move(region)),
      size_(size),
      regions_(std::make_unique<RegionTable>()) {}

GuestRam::GuestRam() = default;
GuestRam::~GuestRam() = default;

GuestRam::GuestRam(GuestRam&& other) noexcept
    : fd_(std::move(other.fd_)),
      region_(std::move(other.region_)),
      size_(std::exchange(other.size_, 0)),
      revoked_(other.revoked_.exchange(false, std::memory_order_acq_rel)),
      regions_(std::move(other.regions_)) {}

GuestRam& GuestRam::operator=(GuestRam&& other) noexcept {
  if (this != &other) {
    fd_ = std::move(other.fd_);
    region_ = std::move(other.region_);
    size_ = std::exchange(other.size_, 0);
    revoked_.store(other.revoked_.exchange(false, std::memory_order_acq_rel),
                   std::memory_order_release);
    regions_ = std::move(other.regions_);
  }
  return *this;
}

Expected<GuestRam> GuestRam::Create(uint64_t page_count, const std::string& name) {
  if (page_count == 0) return MakeError(ErrorCode::kInvalidArgument, "guest RAM of 0 pages");
  if (page_count > (kMaxGuestRamBytes >> kPageShift)) {
    return MakeError(ErrorCode::kInvalidArgument, "guest RAM of {} pages exceeds the {} byte limit",
                     page_count, kMaxGuestRamBytes);
  }
  const uint64_t size = page_count << kPageShift;
  auto fd = CreateMemfd(name, size, /*seal_size=*/true);
  if (!fd) return unexpected(fd.error());
  auto region = MappedRegion::MapShared(fd->get(), size);
  if (!region) return unexpected(region.error());
  return GuestRam(std::move(*fd), std::move(*region), size);
}

Expected<GuestRam> GuestRam::FromFd(UniqueFd fd, uint64_t expected_bytes) {
  if (!fd) return MakeError(ErrorCode::kMalformed, "guest RAM fd missing");
  if (expected_bytes == 0 || expected_bytes % kPageSize != 0 ||
      expected_bytes > kMaxGuestRamBytes) {
    return MakeError(ErrorCode::kMalformed,
                     "guest RAM size {} is not a non-zero multiple of {} up to {}", expected_bytes,
                     kPageSize, kMaxGuestRamBytes);
  }
  auto info = InspectMemfd(fd.get());
  if (!info) return unexpected(info.error());
  // Without the shrink seal the guest could ftruncate() the file under our mapping and turn any
  // host access into SIGBUS: the size must be immutable before we trust it.
  if (!info->size_sealed) {
    return MakeError(ErrorCode::kMalformed, "guest RAM memfd size is not sealed (F_SEAL_SHRINK)");
  }
  if (info->size != expected_bytes) {
    return MakeError(ErrorCode::kMalformed, "guest RAM memfd holds {} bytes, guest announced {}",
                     info->size, expected_bytes);
  }
  auto region = MappedRegion::MapShared(fd.get(), expected_bytes);
  if (!region) return unexpected(region.error());
  return GuestRam(std::move(fd), std::move(*region), expected_bytes);
}

Expected<std::span<uint8_t>> GuestRam::Pages(uint64_t gpn, uint64_t count) const {
  if (count == 0) return MakeError(ErrorCode::kInvalidArgument, "page range of 0 pages");
  if (!mapped()) return MakeError(ErrorCode::kUnavailable, "guest RAM released");
  const uint64_t pages = page_count();
  // Overflow-safe form of "gpn + count <= pages" (spec 9.1 G3).
  if (gpn < pages && count <= pages - gpn) {
    return std::span<uint8_t>(region_.data() + (gpn << kPageShift),
                              static_cast<size_t>(count << kPageShift));
  }
  // Beyond region 0: an extra region, if the byte range is representable at all.
  constexpr uint64_t kMaxPages = kMaxGpaExclusive >> kPageShift;
  if (gpn < kMaxPages && count <= kMaxPages - gpn) {
    auto extra = ExtraRange(gpn << kPageShift, count << kPageShift);
    if (extra) return extra;
  } else if (regions_) {
    regions_->bad_accesses.Add();
  }
  return MakeError(ErrorCode::kMalformed,
                   "guest pages [{:#x}, +{}) not inside one RAM region (region 0: {} pages)", gpn,
                   count, pages);
}

Expected<std::span<uint8_t>> GuestRam::Range(uint64_t gpa, uint64_t length) const {
  if (length == 0) return MakeError(ErrorCode::kInvalidArgument, "guest range of 0 bytes");
  if (!mapped()) return MakeError(ErrorCode::kUnavailable, "guest RAM released");
  if (gpa < size_ && length <= size_ - gpa) {
    return std::span<uint8_t>(region_.data() + gpa, static_cast<size_t>(length));
  }
  auto extra = ExtraRange(gpa, length);
  if (extra) return extra;
  return MakeError(ErrorCode::kMalformed,
                   "guest range [{:#x}, +{}) not inside one RAM region (region 0: {} bytes)", gpa,
                   length, size_);
}

Expected<std::span<uint8_t>> GuestRam::ExtraRange(uint64_t gpa, uint64_t length) const {
  if (!regions_) return MakeError(ErrorCode::kMalformed, "no RAM regions");
  const size_t n = regions_->count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    const RegionTable::Region& r = regions_->slots[i];
    // Overflow-safe "r.base <= gpa && gpa + length <= r.base + r.size".
    if (gpa >= r.gpa_base && gpa - r.gpa_base < r.size) {
      const uint64_t offset = gpa - r.gpa_base;
      if (length > r.size - offset) break;  // crosses the end of the region it starts in
      return std::span<uint8_t>(r.data + offset, static_cast<size_t>(length));
    }
  }
  regions_->bad_accesses.Add();
  return MakeError(ErrorCode::kMalformed, "outside every RAM region");
}

Status GuestRam::AddRegion(UniqueFd fd, uint64_t gpa_base, uint64_t size) {
  if (!regions_ || !region_.valid()) {
    return MakeError(ErrorCode::kUnavailable, "no guest RAM to add a region to");
  }
  RegionTable& t = *regions_;
  std::lock_guard lock(t.add_mu);
  auto refuse = [&](ErrorCode code, std::string message) -> Status {
    t.rejected.Add();
    return unexpected(Error{code, std::move(message)});
  };
  if (revoked_.load(std::memory_order_acquire)) {
    return refuse(ErrorCode::kUnavailable, "guest RAM released");
  }
  if (!fd) return refuse(ErrorCode::kInvalidArgument, "RAM region fd missing");
  if (size == 0 || size % kPageSize != 0 || gpa_base % kPageSize != 0 ||
      size > kMaxGuestRamBytes) {
    return refuse(ErrorCode::kInvalidArgument,
                  fmt::format("RAM region [{:#x}, +{:#x}): base and size must be multiples of {} "
                              "and 0 < size <= {}",
                              gpa_base, size, kPageSize, kMaxGuestRamBytes));
  }
  if (gpa_base >= kMaxGpaExclusive || size > kMaxGpaExclusive - gpa_base) {
    return refuse(ErrorCode::kInvalidArgument,
                  fmt::format("RAM region [{:#x}, +{:#x}) ends above 2^52", gpa_base, size));
  }
  // Half-open intervals [a, a + as) and [b, b + bs) overlap iff a < b + bs && b < a + as; no sum
  // can wrap: every region ends below 2^52.
  auto overlaps = [&](uint64_t b, uint64_t bs) { return gpa_base < b + bs && b < gpa_base + size; };
  if (overlaps(0, size_)) {
    return refuse(ErrorCode::kInvalidArgument,
                  fmt::format("RAM region [{:#x}, +{:#x}) overlaps RAM [0, {:#x})", gpa_base, size,
                              size_));
  }
  const size_t n = t.count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (overlaps(t.slots[i].gpa_base, t.slots[i].size)) {
      return refuse(ErrorCode::kInvalidArgument,
                    fmt::format("RAM region [{:#x}, +{:#x}) overlaps region [{:#x}, +{:#x})",
                                gpa_base, size, t.slots[i].gpa_base, t.slots[i].size));
    }
  }
  if (n >= kMaxRamRegions) {
    return refuse(ErrorCode::kResourceExhausted,
                  fmt::format("more than {} RAM regions", kMaxRamRegions));
  }
  // Both seals: without SHRINK the guest could truncate the file under our mapping (host
  // SIGBUS); without GROW the size we checked would not be the size that stays.
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0 || (seals & F_SEAL_GROW) == 0) {
    return refuse(ErrorCode::kInvalidArgument,
                  "RAM region fd is not a memfd sealed with F_SEAL_SHRINK and F_SEAL_GROW");
  }
  auto info = InspectMemfd(fd.get());
  if (!info) return refuse(info.error().code, info.error().message);
  if (info->size != size) {
    return refuse(ErrorCode::kInvalidArgument,
                  fmt::format("RAM region memfd holds {} bytes, guest announced {}", info->size,
                              size));
  }
  auto map = MappedRegion::MapShared(fd.get(), static_cast<size_t>(size));
  if (!map) return refuse(map.error().code, map.error().message);
  RegionTable::Region& r = t.slots[n];
  r.gpa_base = gpa_base;
  r.size = size;
  r.data = map->data();
  r.map = std::move(*map);
  r.fd = std::move(fd);
  t.count.store(n + 1, std::memory_order_release);  // publishes the slot to lock-free readers
  return Ok();
}

size_t GuestRam::region_count() const {
  return regions_ ? regions_->count.load(std::memory_order_acquire) : 0;
}
uint64_t GuestRam::regions_rejected() const { return regions_ ? regions_->rejected.Get() : 0; }
uint64_t GuestRam::rejected_accesses() const {
  return regions_ ? regions_->bad_accesses.Get() : 0;
}

std::span<uint8_t> GuestRam::all() const {
  if (!mapped()) return {};
  return region_.span();
}

void GuestRam::Revoke() {
  if (!region_.valid() || revoked_.exchange(true, std::memory_order_acq_rel)) return;
  // Replace the shared mapping in place with private zero pages instead of munmap(): other
  // threads may still hold spans (a data worker finishing a batch), and an unmapped range could
  // be reused by an unrelated mmap. MAP_NORESERVE: the placeholder costs nothing until touched.
  void* p = ::mmap(region_.data(), region_.size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    // Cannot keep the range valid: unmap it (any stale user would fault, but no guest memory
    // stays pinned by us).
    region_.Reset();
  }
  fd_.Reset();
  if (regions_) {
    std::lock_guard lock(regions_->add_mu);
    const size_t n = regions_->count.load(std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {
      RegionTable::Region& r = regions_->slots[i];
      // Same as region 0: keep the addresses valid (zero pages), drop the guest's memory.
      void* q = ::mmap(r.map.data(), r.map.size(), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      if (q == MAP_FAILED) r.map.Reset();
      r.fd.Reset();
    }
  }
}

}  // namespace uvmbus::partition
