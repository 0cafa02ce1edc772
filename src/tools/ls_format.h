// File: tools/ls_format.h
//
// What: the text output of `uvmbus ls`: Linux tools/hv/lsvmbus's exact layout, one block per
// connected guest under a heading line. The input is the JSON document the host's admin socket
// returns for "ls" (schema in docs/cli.md and snapshot_json.h: sysfs attribute names), parsed and
// validated into plain structs first (ParseLsDocument), then formatted (FormatLs) - so the format
// can be unit-tested on canned documents, byte for byte.
//
// lsvmbus layout (verbosity 0 / 1 / 2), devices sorted by primary relid (`id`), channels by relid:
//   VMBUS ID %2s: <description>
//   VMBUS ID %2s: Class_ID = {class} - <description>\n  + per channel "\tRel_ID=R, target_cpu=C\n"
//                 + an empty line
//   -vv additionally, before the channels: "\tDevice_ID = {device}\n\tSysfs path: <path>\n"
// where <description> comes from the class GUID (wire::DeviceDescription: "[Heartbeat]",
// "Synthetic network adapter", "Unknown") and <path> is /sys/bus/vmbus/devices/<device id>, the
// path a Linux guest would show.
// Spec: none (tool); sysfs names: Linux Documentation/ABI/stable/sysfs-bus-vmbus.
// Linux: tools/hv/lsvmbus (layout), drivers/hv/vmbus_drv.c (class_id/device_id print "{%pUl}",
//        channel_vp_mapping "relid:cpu" lines, devices named by instance GUID).
// Thread-safety: pure functions.
#ifndef UVMBUS_TOOLS_LS_FORMAT_H_
#define UVMBUS_TOOLS_LS_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace uvmbus::tools {

// One entry of channel_vp_mapping.
struct LsChannel {
  uint32_t relid = 0;
  uint32_t cpu = 0;
};

// One device, as lsvmbus reads it from sysfs.
struct LsDevice {
  uint32_t id = 0;          // primary channel's relid (sysfs `id`)
  std::string class_id;     // "{57164f39-9115-4e78-ab55-382f3bd5422d}" (sysfs `class_id`)
  std::string device_id;    // "{...}" (sysfs `device_id`)
  std::string description;  // lsvmbus description of class_id
  std::vector<LsChannel> channels;  // sorted by relid (sysfs `channel_vp_mapping`)
};

// One connected guest.
struct LsGuest {
  std::string name;
  int64_t pid = 0;
  std::string state;    // "connected", ...
  std::string version;  // "5.3"; empty before negotiation
  std::vector<LsDevice> devices;  // sorted by id
};

// Validates the admin "ls" document and extracts what the text output needs. Guests keep the
// document's order. Errors: kMalformed naming the offending field.
Expected<std::vector<LsGuest>> ParseLsDocument(const nlohmann::json& doc);

// The heading line of one guest (with '\n'): "Guest g1 (pid 4242, VMBus 5.3, connected):".
std::string FormatGuestHeading(const LsGuest& guest);

// lsvmbus's lines for one guest's devices at `verbosity` 0, 1 or 2 (higher counts as 2).
std::string FormatLsvmbus(const std::vector<LsDevice>& devices, int verbosity);

// The whole `uvmbus ls` text: each guest's heading followed by its lsvmbus lines; guests are
// separated by one empty line. No guests: empty string.
std::string FormatLs(const std::vector<LsGuest>& guests, int verbosity);

// The sysfs path lsvmbus -vv prints for a device id ("{abc...}" -> /sys/bus/vmbus/devices/abc...).
std::string SysfsPath(const std::string& device_id);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_LS_FORMAT_H_
