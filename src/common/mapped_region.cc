#include "common/mapped_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>

namespace uvmbus {

void MappedRegion::Reset() {
  if (base_ != nullptr) ::munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
}

Expected<MappedRegion> MappedRegion::MapShared(int fd, size_t size) {
  if (size == 0) return MakeError(ErrorCode::kInvalidArgument, "cannot map 0 bytes");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return unexpected(Error::FromErrno("mmap", errno));
  return MappedRegion(p, size);
}

Expected<MappedRegion> MappedRegion::MapAnonymous(size_t size) {
  if (size == 0) return MakeError(ErrorCode::kInvalidArgument, "cannot map 0 bytes");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return unexpected(Error::FromErrno("mmap", errno));
  return MappedRegion(p, size);
}

Expected<UniqueFd> CreateMemfd(const std::string& name, size_t size, bool seal_size) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return unexpected(Error::FromErrno("memfd_create", errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return unexpected(Error::FromErrno("ftruncate", errno));
  }
  if (seal_size &&
      ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return unexpected(Error::FromErrno("F_ADD_SEALS", errno));
  }
  return fd;
}

Expected<MemfdInfo> InspectMemfd(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return unexpected(Error::FromErrno("fstat", errno));
  MemfdInfo info;
  info.size = static_cast<size_t>(st.st_size);
  const int seals = ::fcntl(fd, F_GET_SEALS);
  info.size_sealed = seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
  return info;
}

}  // namespace uvmbus
