#include "common/error.h"

#include <cstring>

namespace uvmbus {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kProtocol: return "protocol error";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kResourceExhausted: return "resource exhausted";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kIo: return "I/O error";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown";
}

Error Error::FromErrno(std::string_view what, int err) {
  char buf[128];
  // GNU strerror_r returns the message pointer (may not use buf).
  const char* text = strerror_r(err, buf, sizeof buf);
  return Error{ErrorCode::kIo, fmt::format("{}: {}", what, text)};
}

std::string Error::ToString() const {
  return fmt::format("{}: {}", ErrorCodeName(code), message);
}

}  // namespace uvmbus
