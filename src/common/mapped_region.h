// File: common/mapped_region.h
//
// What: move-only owner of an mmap()ed region, and helpers to create/map memfds (the backing of
// guest RAM: design.md section 3).
// Thread-safety: value type; the mapped bytes themselves are shared memory and carry no
// synchronisation of their own.
#ifndef UVMBUS_COMMON_MAPPED_REGION_H_
#define UVMBUS_COMMON_MAPPED_REGION_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus {

class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(void* base, size_t size) : base_(static_cast<uint8_t*>(base)), size_(size) {}
  ~MappedRegion() { Reset(); }
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  MappedRegion(MappedRegion&& o) noexcept
      : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& o) noexcept {
    if (this != &o) {
      Reset();
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  uint8_t* data() const { return base_; }
  size_t size() const { return size_; }
  std::span<uint8_t> span() const { return {base_, size_}; }
  bool valid() const { return base_ != nullptr; }
  void Reset();

  // Maps `size` bytes of `fd` from offset 0, shared, read-write.
  static Expected<MappedRegion> MapShared(int fd, size_t size);
  // Anonymous private zeroed mapping (tests, scratch).
  static Expected<MappedRegion> MapAnonymous(size_t size);

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

// Creates a memfd of `size` bytes. With `seal_size`, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL are
// applied so a peer that maps it can trust the size (design.md section 3).
Expected<UniqueFd> CreateMemfd(const std::string& name, size_t size, bool seal_size);

// Returns the size of the file behind `fd` and whether its size is sealed against shrinking.
struct MemfdInfo {
  size_t size = 0;
  bool size_sealed = false;
};
Expected<MemfdInfo> InspectMemfd(int fd);

}  // namespace uvmbus

#endif  // UVMBUS_COMMON_MAPPED_REGION_H_
