// File: tests/support/scratch_dir.h
//
// What: a scratch directory for tests (socket files, logs, captures), short and under /tmp
// because sun_path holds 108 bytes, removed with its contents when the test ends.
// Thread-safety: none (one test thread owns it).
#ifndef UVMBUS_TESTS_SUPPORT_SCRATCH_DIR_H_
#define UVMBUS_TESTS_SUPPORT_SCRATCH_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace uvmbus::testing {

class ScratchDir {
 public:
  // Creates /tmp/uvmbus-<tag>-XXXXXX; path() is empty if that failed.
  explicit ScratchDir(std::string_view tag = "t") {
    std::string tmpl = "/tmp/uvmbus-" + std::string(tag) + "-XXXXXX";
    const char* dir = ::mkdtemp(tmpl.data());
    path_ = dir != nullptr ? dir : "";
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace uvmbus::testing

#endif  // UVMBUS_TESTS_SUPPORT_SCRATCH_DIR_H_
