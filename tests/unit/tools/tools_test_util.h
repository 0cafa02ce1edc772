// File: tests/unit/tools/tools_test_util.h
//
// What: a scratch directory for socket files (short, under /tmp, because sun_path holds 108
// bytes), removed with its contents when the test ends.
// Thread-safety: none (one test thread).
#ifndef UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_

#include "support/scratch_dir.h"

namespace uvmbus::tools::testing {

using ScratchDir = ::uvmbus::testing::ScratchDir;

}  // namespace uvmbus::tools::testing

#endif  // UVMBUS_TESTS_UNIT_TOOLS_TOOLS_TEST_UTIL_H_
