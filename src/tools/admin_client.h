// File: tools/admin_client.h
//
// What: the client side of the admin protocol (admin_protocol.h): connect to `<socket>.ctl`,
// send one request line, read one response line, return its result document (or the server's
// error). Used by `uvmbus ls`, the demo and the integration tests.
// Spec: none (tool protocol).
// Thread-safety: a free function; no shared state.
#ifndef UVMBUS_TOOLS_ADMIN_CLIENT_H_
#define UVMBUS_TOOLS_ADMIN_CLIENT_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace uvmbus::tools {

// Sends `command` to the admin socket at `admin_path` (the `.ctl` path itself) and waits at most
// `timeout_ms` for the answer. Errors: kUnavailable (no daemon listening, or it closed the
// connection without answering), kPermissionDenied, kTimeout, kMalformed (not a response line,
// or longer than kMaxAdminResponseBytes), kIo, or the error the server answered with.
Expected<nlohmann::json> AdminCall(const std::string& admin_path, std::string_view command,
                                   int timeout_ms = 5000);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_ADMIN_CLIENT_H_
