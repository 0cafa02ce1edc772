// File: tools/ls_command.cc
//
// `uvmbus ls`: asks the host daemon's admin socket for the "ls" document (ls_document.h) and
// prints it as lsvmbus would, one block per guest (ls_format.h), or with --json as one JSON
// document (2-space indent). Exit 3 when no daemon answers on <socket>.ctl.
// Spec: none (tool). Linux: tools/hv/lsvmbus.
// Thread-safety: single-threaded.
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/ls_format.h"
#include "tools/output.h"

namespace uvmbus::tools {

int RunLs(const LsOptions& options) {
  const std::string admin = AdminSocketPath(options.socket);
  auto doc = AdminCall(admin, kAdminCommandLs);
  if (!doc) {
    PrintError("uvmbus ls: {}: {}", admin, doc.error());
    return ToInt(doc.error().code == ErrorCode::kUnavailable ? ExitCode::kHostUnavailable
                                                             : ExitCode::kFailure);
  }
  if (options.json) {
    PrintLine(doc->dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return ToInt(ExitCode::kOk);
  }
  auto guests = ParseLsDocument(*doc);
  if (!guests) {
    PrintError("uvmbus ls: unexpected answer from {}: {}", admin, guests.error());
    return ToInt(ExitCode::kFailure);
  }
  if (guests->empty()) PrintError("uvmbus ls: no guest is connected to {}", options.socket);
  PrintRaw(FormatLs(*guests, options.verbose));
  return ToInt(ExitCode::kOk);
}

}  // namespace uvmbus::tools
