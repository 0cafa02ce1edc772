// File: common/error.h
//
// What: the project's error value and result alias. `Expected<T>` carries a value or an
// `Error{code, message}`; flow-control outcomes (ring empty/full) are NOT errors and have their
// own typed results in the layers that need them (see ring/). Canonical codes follow Abseil's
// status codes, narrowed to what uvmbus reports.
// Spec: none (infrastructure).
// Thread-safety: value types; no shared state.
#ifndef UVMBUS_COMMON_ERROR_H_
#define UVMBUS_COMMON_ERROR_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace uvmbus {

enum class ErrorCode : uint8_t {
  kInvalidArgument,  // a caller passed something impossible
  kMalformed,        // peer input failed validation (length, range, type)
  kProtocol,         // well-formed peer input that is not allowed in the current state
  kCorrupt,          // shared-memory state (ring indices, descriptors) is inconsistent
  kNotFound,
  kAlreadyExists,
  kUnavailable,      // peer gone, channel rescinded, connection closed
  kTimeout,
  kResourceExhausted,
  kUnsupported,
  kPermissionDenied,
  kIo,               // an OS call failed (message has errno text)
  kCancelled,
  kInternal,
};

std::string_view ErrorCodeName(ErrorCode code);

// An error with a human-readable message. Construction allocates, so it is used on control
// paths and for (rare) corruption on data paths, never for flow control.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  template <typename... Args>
  static Error Make(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
    return Error{code, fmt::format(format, std::forward<Args>(args)...)};
  }
  // An kIo error whose message ends with strerror(err).
  static Error FromErrno(std::string_view what, int err);

  std::string ToString() const;
};

template <typename T>
using Expected = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;
using tl::unexpected;

inline Status Ok() { return {}; }

inline std::ostream& operator<<(std::ostream& os, const Error& e) { return os << e.ToString(); }

template <typename... Args>
tl::unexpected<Error> MakeError(ErrorCode code, fmt::format_string<Args...> format,
                                Args&&... args) {
  return tl::unexpected<Error>(Error::Make(code, format, std::forward<Args>(args)...));
}

}  // namespace uvmbus

template <>
struct fmt::formatter<uvmbus::Error> : fmt::formatter<std::string> {
  auto format(const uvmbus::Error& e, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(e.ToString(), ctx);
  }
};

#endif  // UVMBUS_COMMON_ERROR_H_
