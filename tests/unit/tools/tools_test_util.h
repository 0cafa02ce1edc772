// File: tests/unit/tools/tools_test_util.h
//
// What: a scratch directory for socket files (short, under /tmp, because sun_path holds 108
// bytes), removed with its contents when the test ends.
// Thread-safety: none (one test thread).
#ifndef UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace uvmbus::tools::testing {

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/uvmbus-tt-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    path_ = dir != nullptr ? dir : "";
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace uvmbus::tools::testing

#endif  // UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_
