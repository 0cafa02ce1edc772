// File: tools/stats_command.cc
//
// `uvmbus stats` (ethtool -S) and `uvmbus channels` (ethtool -l) for the synthetic NICs: both ask
// the host daemon's admin socket for the "ls" document (the NICs' counters travel in it, see
// ls_document.h) and format it with stats_format.h. Exit 3 when no daemon answers; exit 1 with a
// message on stderr when no guest (or not the --guest one) has a NIC.
// Spec: none (tool). Linux: ethtool -S / -l.
// Thread-safety: single-threaded.
#include "tools/admin_client.h"
#include "tools/admin_protocol.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/output.h"
#include "tools/stats_format.h"

namespace uvmbus::tools {
namespace {

// The NICs, or the exit code to return.
Expected<std::vector<NicReport>> FetchNics(std::string_view command, const std::string& socket,
                                           const std::string& guest, int* code) {
  const std::string admin = AdminSocketPath(socket);
  auto doc = AdminCall(admin, kAdminCommandLs);
  if (!doc) {
    PrintError("uvmbus {}: {}: {}", command, admin, doc.error());
    *code = ToInt(doc.error().code == ErrorCode::kUnavailable ? ExitCode::kHostUnavailable
                                                              : ExitCode::kFailure);
    return unexpected(doc.error());
  }
  auto nics = ParseNics(*doc, guest);
  if (!nics) {
    PrintError("uvmbus {}: unexpected answer from {}: {}", command, admin, nics.error());
    *code = ToInt(ExitCode::kFailure);
    return unexpected(nics.error());
  }
  return nics;
}

}  // namespace

int RunStats(const StatsOptions& options) {
  int code = 0;
  auto nics = FetchNics("stats", options.socket, options.guest, &code);
  if (!nics) return code;
  if (options.json) {
    PrintLine(StatsToJson(*nics).dump(2));
    return ToInt(ExitCode::kOk);
  }
  if (nics->empty()) {
    PrintError("uvmbus stats: no synthetic NIC{}", options.guest.empty()
                                                       ? std::string()
                                                       : " on guest " + options.guest);
    return ToInt(ExitCode::kFailure);
  }
  PrintRaw(FormatStats(*nics));
  return ToInt(ExitCode::kOk);
}

int RunChannels(const ChannelsOptions& options) {
  int code = 0;
  auto nics = FetchNics("channels", options.socket, options.guest, &code);
  if (!nics) return code;
  if (options.json) {
    PrintLine(ChannelsToJson(*nics).dump(2));
    return ToInt(ExitCode::kOk);
  }
  if (nics->empty()) {
    PrintError("uvmbus channels: no synthetic NIC{}", options.guest.empty()
                                                          ? std::string()
                                                          : " on guest " + options.guest);
    return ToInt(ExitCode::kFailure);
  }
  PrintRaw(FormatChannels(*nics));
  return ToInt(ExitCode::kOk);
}

}  // namespace uvmbus::tools
