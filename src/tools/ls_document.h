// File: tools/ls_document.h
//
// What: the document the host daemon answers the admin "ls" command with (and `uvmbus ls --json`
// prints): host::HostService's snapshot JSON (sysfs attribute names, host/host_service.h),
// reshaped to the conventions of shared/conventions.md 2b and completed with what only the
// daemon knows:
//   * "host": the daemon's identity (pid, sockets, program version, heartbeat interval, uptime);
//   * each guest's "devices" keyed by device id (the instance GUID without braces, i.e. the
//     directory name under /sys/bus/vmbus/devices), not by position;
//   * per device, extra members from the daemon's device providers (the heartbeat device's
//     counters under "heartbeat");
//   * "totals" over all guests: guests, devices, channels (offered), open_channels, gpadls,
//     gpadls_in_progress - what must drop to the survivors' values when a guest dies.
// The full schema is in docs/cli.md ("uvmbus ls --json").
// Spec: none (tool); names: Linux Documentation/ABI/stable/sysfs-bus-vmbus.
// Thread-safety: pure function (the callback is called on the caller's thread).
#ifndef UVMBUS_TOOLS_LS_DOCUMENT_H_
#define UVMBUS_TOOLS_LS_DOCUMENT_H_

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace uvmbus::tools {

// Who answers (the "host" member).
struct HostIdentity {
  int64_t pid = 0;
  std::string socket;
  std::string admin_socket;
  std::string program_version;
  uint32_t heartbeat_interval_ms = 0;
  int64_t uptime_ms = 0;
};

// Extra members for one device, given its device_id as the snapshot spells it ("{guid}");
// a JSON object whose members are merged into the device, or null for none.
using DeviceExtras = std::function<nlohmann::json(const std::string& device_id)>;

// Builds the "ls" document from HostService's snapshot JSON. Tolerates either form of "devices"
// (array or object) and missing members (they count as zero).
nlohmann::json BuildLsDocument(nlohmann::json snapshot, const HostIdentity& host,
                               const DeviceExtras& extras);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_LS_DOCUMENT_H_
