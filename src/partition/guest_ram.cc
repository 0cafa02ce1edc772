// File: partition/guest_ram.cc — see guest_ram.h.
#include "partition/guest_ram.h"

#include <sys/mman.h>

#include <cerrno>

namespace uvmbus::partition {

GuestRam::GuestRam(UniqueFd fd, MappedRegion region, uint64_t size)
    : fd_(std::move(fd)), region_(std::move(region)), size_(size) {}

GuestRam::GuestRam(GuestRam&& other) noexcept
    : fd_(std::move(other.fd_)),
      region_(std::move(other.region_)),
      size_(std::exchange(other.size_, 0)),
      revoked_(other.revoked_.exchange(false, std::memory_order_acq_rel)) {}

GuestRam& GuestRam::operator=(GuestRam&& other) noexcept {
  if (this != &other) {
    fd_ = std::move(other.fd_);
    region_ = std::move(other.region_);
    size_ = std::exchange(other.size_, 0);
    revoked_.store(other.revoked_.exchange(false, std::memory_order_acq_rel),
                   std::memory_order_release);
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
  if (gpn >= pages || count > pages - gpn) {
    return MakeError(ErrorCode::kMalformed, "guest pages [{:#x}, +{}) outside RAM of {} pages", gpn,
                     count, pages);
  }
  return std::span<uint8_t>(region_.data() + (gpn << kPageShift),
                            static_cast<size_t>(count << kPageShift));
}

Expected<std::span<uint8_t>> GuestRam::Range(uint64_t gpa, uint64_t length) const {
  if (length == 0) return MakeError(ErrorCode::kInvalidArgument, "guest range of 0 bytes");
  if (!mapped()) return MakeError(ErrorCode::kUnavailable, "guest RAM released");
  if (gpa >= size_ || length > size_ - gpa) {
    return MakeError(ErrorCode::kMalformed, "guest range [{:#x}, +{}) outside RAM of {} bytes", gpa,
                     length, size_);
  }
  return std::span<uint8_t>(region_.data() + gpa, static_cast<size_t>(length));
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
}

}  // namespace uvmbus::partition
