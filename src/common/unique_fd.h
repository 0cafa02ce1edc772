// File: common/unique_fd.h
//
// What: move-only owner of a file descriptor (closes on destruction).
// Thread-safety: like any value type; not shared.
#ifndef UVMBUS_COMMON_UNIQUE_FD_H_
#define UVMBUS_COMMON_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace uvmbus {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace uvmbus

#endif  // UVMBUS_COMMON_UNIQUE_FD_H_
