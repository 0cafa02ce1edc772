// File: tools/admin_protocol.h
//
// What: the host daemon's admin protocol (docs/cli.md "Admin socket"): a Unix stream socket at
// `<--socket>.ctl` (mode 0600) carrying JSON Lines. The client writes one request per line,
//     {"command": "ls"}
// and the server answers each with exactly one line,
//     {"ok": true, "result": <document>}        or
//     {"ok": false, "error": {"code": "not_found", "message": "..."}}
// Requests are answered in order; the client may send several on one connection or close after
// one. Commands: "ls" (the snapshot `uvmbus ls` prints), "version" (server identity: program
// version, pid, protocol version). This header holds the constants and the pure encode/parse
// functions; admin_server.h / admin_client.h do the I/O.
// Every field of a peer's line is validated: a request that is not a JSON object with a string
// "command" is answered with code "malformed", an unknown command with "unsupported".
// Spec: none (tool protocol). Compare systemd's varlink / QEMU's QMP (one JSON per line).
// Thread-safety: constants and pure functions.
#ifndef UVMBUS_TOOLS_ADMIN_PROTOCOL_H_
#define UVMBUS_TOOLS_ADMIN_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace uvmbus::tools {

// The admin socket lives next to the guest socket.
inline constexpr std::string_view kAdminSocketSuffix = ".ctl";
// Version of this protocol, reported by the "version" command.
inline constexpr int kAdminProtocolVersion = 1;
// Longest request line the server accepts (requests are tiny; anything longer is hostile).
inline constexpr size_t kMaxAdminRequestBytes = 64 * 1024;
// Longest response line the client accepts (a snapshot of many guests with all counters).
inline constexpr size_t kMaxAdminResponseBytes = 16 * 1024 * 1024;

// Command names.
inline constexpr std::string_view kAdminCommandLs = "ls";
inline constexpr std::string_view kAdminCommandVersion = "version";
// {"command": "nic-remove" | "nic-add", "args": {"guest": G, "id": ID}}: rescind a guest's
// synthetic NIC / offer it again (host_command.cc, docs/cli.md).
inline constexpr std::string_view kAdminCommandNicRemove = "nic-remove";
inline constexpr std::string_view kAdminCommandNicAdd = "nic-add";

// `<socket>.ctl`.
std::string AdminSocketPath(std::string_view socket_path);

// A parsed request.
struct AdminRequest {
  std::string command;
  nlohmann::json args = nlohmann::json::object();  // optional "args" object (none used yet)
};

// One request line (with the trailing '\n').
std::string EncodeAdminRequest(std::string_view command);
// Parses a request line (without its '\n'). Errors: kMalformed (not JSON, not an object,
// "command" missing or not a string, "args" present but not an object).
Expected<AdminRequest> ParseAdminRequest(std::string_view line);

// One response line (with the trailing '\n') for a handler's result.
std::string EncodeAdminResponse(const Expected<nlohmann::json>& result);
// Parses a response line (without its '\n'): the result document, or the server's error with
// its code and message. Errors: kMalformed when the line is not a valid response.
Expected<nlohmann::json> ParseAdminResponse(std::string_view line);

// Stable wire names of error codes ("not_found", "unavailable", ...), and back.
std::string_view ErrorCodeWireName(ErrorCode code);
std::optional<ErrorCode> ErrorCodeFromWireName(std::string_view name);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_ADMIN_PROTOCOL_H_
