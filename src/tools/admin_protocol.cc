// File: tools/admin_protocol.cc
//
// Encoding and validation of admin-protocol lines (admin_protocol.h). Parsing never throws:
// nlohmann's non-throwing parse is used and every access is type-checked first.
#include "tools/admin_protocol.h"

#include <array>
#include <utility>

namespace uvmbus::tools {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<ErrorCode, std::string_view>, 14> kErrorNames = {{
    {ErrorCode::kInvalidArgument, "invalid_argument"},
    {ErrorCode::kMalformed, "malformed"},
    {ErrorCode::kProtocol, "protocol"},
    {ErrorCode::kCorrupt, "corrupt"},
    {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kAlreadyExists, "already_exists"},
    {ErrorCode::kUnavailable, "unavailable"},
    {ErrorCode::kTimeout, "timeout"},
    {ErrorCode::kResourceExhausted, "resource_exhausted"},
    {ErrorCode::kUnsupported, "unsupported"},
    {ErrorCode::kPermissionDenied, "permission_denied"},
    {ErrorCode::kIo, "io"},
    {ErrorCode::kCancelled, "cancelled"},
    {ErrorCode::kInternal, "internal"},
}};

// Parses without exceptions; a discarded value means "not JSON".
json ParseJson(std::string_view text) {
  return json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
}

}  // namespace

std::string AdminSocketPath(std::string_view socket_path) {
  std::string path(socket_path);
  path += kAdminSocketSuffix;
  return path;
}

std::string_view ErrorCodeWireName(ErrorCode code) {
  for (const auto& [c, name] : kErrorNames) {
    if (c == code) return name;
  }
  return "internal";
}

std::optional<ErrorCode> ErrorCodeFromWireName(std::string_view name) {
  for (const auto& [c, n] : kErrorNames) {
    if (n == name) return c;
  }
  return std::nullopt;
}

std::string EncodeAdminRequest(std::string_view command) {
  json request = {{"command", std::string(command)}};
  return request.dump() + "\n";
}

Expected<AdminRequest> ParseAdminRequest(std::string_view line) {
  json doc = ParseJson(line);
  if (doc.is_discarded()) return MakeError(ErrorCode::kMalformed, "request is not valid JSON");
  if (!doc.is_object()) return MakeError(ErrorCode::kMalformed, "request is not a JSON object");
  auto command = doc.find("command");
  if (command == doc.end() || !command->is_string()) {
    return MakeError(ErrorCode::kMalformed, "request has no string \"command\"");
  }
  AdminRequest request;
  request.command = command->get<std::string>();
  if (auto args = doc.find("args"); args != doc.end()) {
    if (!args->is_object()) return MakeError(ErrorCode::kMalformed, "\"args\" is not an object");
    request.args = *args;
  }
  return request;
}

std::string EncodeAdminResponse(const Expected<json>& result) {
  json response;
  if (result) {
    response = {{"ok", true}, {"result", *result}};
  } else {
    response = {{"ok", false},
                {"error",
                 {{"code", std::string(ErrorCodeWireName(result.error().code))},
                  {"message", result.error().message}}}};
  }
  // Invalid UTF-8 in a string (a guest name is printable ASCII, so this should not happen) is
  // replaced rather than thrown on.
  return response.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Expected<json> ParseAdminResponse(std::string_view line) {
  json doc = ParseJson(line);
  if (doc.is_discarded() || !doc.is_object()) {
    return MakeError(ErrorCode::kMalformed, "admin response is not a JSON object");
  }
  auto ok = doc.find("ok");
  if (ok == doc.end() || !ok->is_boolean()) {
    return MakeError(ErrorCode::kMalformed, "admin response has no boolean \"ok\"");
  }
  if (ok->get<bool>()) {
    auto result = doc.find("result");
    if (result == doc.end()) {
      return MakeError(ErrorCode::kMalformed, "admin response has no \"result\"");
    }
    return std::move(*result);
  }
  auto error = doc.find("error");
  if (error == doc.end() || !error->is_object()) {
    return MakeError(ErrorCode::kMalformed, "admin error response has no \"error\" object");
  }
  auto code = error->find("code");
  auto message = error->find("message");
  if (code == error->end() || !code->is_string() || message == error->end() ||
      !message->is_string()) {
    return MakeError(ErrorCode::kMalformed, "admin error response lacks code/message strings");
  }
  // An unknown code from a newer server is still an error; report it as internal.
  ErrorCode parsed = ErrorCodeFromWireName(code->get<std::string>()).value_or(ErrorCode::kInternal);
  return unexpected(Error{parsed, message->get<std::string>()});
}

}  // namespace uvmbus::tools
