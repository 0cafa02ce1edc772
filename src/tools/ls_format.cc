// File: tools/ls_format.cc
#include "tools/ls_format.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include <fmt/format.h>

#include "common/guid.h"
#include "wire/device_guids.h"

namespace uvmbus::tools {
namespace {

using nlohmann::json;

constexpr std::string_view kSysfsDevices = "/sys/bus/vmbus/devices/";

const json* Find(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Expected<std::string> GetString(const json& obj, std::string_view key, std::string_view where,
                                bool required = true) {
  const json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) {
    if (!required) return std::string();
    return MakeError(ErrorCode::kMalformed, "{}: missing \"{}\"", where, key);
  }
  if (!v->is_string()) {
    return MakeError(ErrorCode::kMalformed, "{}: \"{}\" is not a string", where, key);
  }
  return v->get<std::string>();
}

Expected<uint64_t> GetUnsigned(const json& obj, std::string_view key, std::string_view where,
                               uint64_t max) {
  const json* v = Find(obj, key);
  if (v == nullptr) return MakeError(ErrorCode::kMalformed, "{}: missing \"{}\"", where, key);
  if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
    return MakeError(ErrorCode::kMalformed, "{}: \"{}\" is not an integer in 0..{}", where, key,
                     max);
  }
  return v->get<uint64_t>();
}

bool ParseU32(std::string_view text, uint32_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// "{guid}" in sysfs's form (lower case, braces) from any form Guid::Parse accepts.
Expected<std::string> CanonicalGuid(const std::string& text, std::string_view where,
                                    std::string_view key, Guid* parsed) {
  auto guid = Guid::Parse(text);
  if (!guid) return MakeError(ErrorCode::kMalformed, "{}: \"{}\" is not a GUID", where, key);
  *parsed = *guid;
  return "{" + guid->ToString() + "}";
}

Expected<LsDevice> ParseDevice(const json& dev, const std::string& where) {
  if (!dev.is_object()) return MakeError(ErrorCode::kMalformed, "{}: not an object", where);
  LsDevice out;
  auto id = GetUnsigned(dev, "id", where, UINT32_MAX);
  if (!id) return unexpected(id.error());
  out.id = static_cast<uint32_t>(*id);
  auto class_id = GetString(dev, "class_id", where);
  if (!class_id) return unexpected(class_id.error());
  Guid class_guid;
  auto class_text = CanonicalGuid(*class_id, where, "class_id", &class_guid);
  if (!class_text) return unexpected(class_text.error());
  out.class_id = std::move(*class_text);
  out.description = std::string(wire::DeviceDescription(class_guid));
  auto device_id = GetString(dev, "device_id", where);
  if (!device_id) return unexpected(device_id.error());
  Guid device_guid;
  auto device_text = CanonicalGuid(*device_id, where, "device_id", &device_guid);
  if (!device_text) return unexpected(device_text.error());
  out.device_id = std::move(*device_text);

  if (const json* mapping = Find(dev, "channel_vp_mapping"); mapping != nullptr) {
    if (!mapping->is_array()) {
      return MakeError(ErrorCode::kMalformed, "{}: \"channel_vp_mapping\" is not an array", where);
    }
    for (const json& entry : *mapping) {
      if (!entry.is_string()) {
        return MakeError(ErrorCode::kMalformed, "{}: channel_vp_mapping entry is not a string",
                         where);
      }
      const std::string text = entry.get<std::string>();
      const size_t colon = text.find(':');
      LsChannel ch;
      if (colon == std::string::npos ||
          !ParseU32(std::string_view(text).substr(0, colon), &ch.relid) ||
          !ParseU32(std::string_view(text).substr(colon + 1), &ch.cpu)) {
        return MakeError(ErrorCode::kMalformed,
                         "{}: channel_vp_mapping entry '{}' is not \"relid:cpu\"", where, text);
      }
      out.channels.push_back(ch);
    }
  }
  std::sort(out.channels.begin(), out.channels.end(),
            [](const LsChannel& a, const LsChannel& b) { return a.relid < b.relid; });
  return out;
}

Expected<LsGuest> ParseGuest(const json& g, size_t index) {
  const std::string where = fmt::format("guests[{}]", index);
  if (!g.is_object()) return MakeError(ErrorCode::kMalformed, "{}: not an object", where);
  LsGuest out;
  auto name = GetString(g, "name", where);
  if (!name) return unexpected(name.error());
  out.name = std::move(*name);
  auto pid = GetUnsigned(g, "pid", where, INT32_MAX);
  if (!pid) return unexpected(pid.error());
  out.pid = static_cast<int64_t>(*pid);
  auto state = GetString(g, "state", where, /*required=*/false);
  if (!state) return unexpected(state.error());
  out.state = std::move(*state);
  auto version = GetString(g, "version", where, /*required=*/false);
  if (!version) return unexpected(version.error());
  out.version = std::move(*version);
  // Devices keyed by device id (the ls document), or a plain array (HostService's own JSON).
  const json* devices = Find(g, "devices");
  if (devices == nullptr || !(devices->is_object() || devices->is_array())) {
    return MakeError(ErrorCode::kMalformed, "{}: \"devices\" is neither an object nor an array",
                     where);
  }
  for (const auto& [key, dev] : devices->items()) {
    auto parsed = ParseDevice(dev, fmt::format("{}.devices[{}]", where, key));
    if (!parsed) return unexpected(parsed.error());
    out.devices.push_back(std::move(*parsed));
  }
  std::sort(out.devices.begin(), out.devices.end(),
            [](const LsDevice& a, const LsDevice& b) { return a.id < b.id; });
  return out;
}

}  // namespace

Expected<std::vector<LsGuest>> ParseLsDocument(const json& doc) {
  if (!doc.is_object()) return MakeError(ErrorCode::kMalformed, "ls document is not an object");
  const json* guests = Find(doc, "guests");
  if (guests == nullptr || !guests->is_array()) {
    return MakeError(ErrorCode::kMalformed, "ls document: \"guests\" is not an array");
  }
  std::vector<LsGuest> out;
  out.reserve(guests->size());
  for (size_t i = 0; i < guests->size(); ++i) {
    auto guest = ParseGuest((*guests)[i], i);
    if (!guest) return unexpected(guest.error());
    out.push_back(std::move(*guest));
  }
  return out;
}

std::string SysfsPath(const std::string& device_id) {
  std::string_view id(device_id);
  if (id.size() >= 2 && id.front() == '{' && id.back() == '}') id = id.substr(1, id.size() - 2);
  return fmt::format("{}{}", kSysfsDevices, id);
}

std::string FormatGuestHeading(const LsGuest& guest) {
  const std::string version =
      guest.version.empty() ? std::string("VMBus not negotiated") : "VMBus " + guest.version;
  const std::string state = guest.state.empty() ? std::string("unknown") : guest.state;
  return fmt::format("Guest {} (pid {}, {}, {}):\n", guest.name, guest.pid, version, state);
}

std::string FormatLsvmbus(const std::vector<LsDevice>& devices, int verbosity) {
  std::string out;
  for (const LsDevice& d : devices) {
    if (verbosity <= 0) {
      out += fmt::format("VMBUS ID {:>2}: {}\n", d.id, d.description);
      continue;
    }
    // lsvmbus: format1/format2 end in the channel lines (each ending in '\n'), and print() adds
    // one more '\n': every verbose device block ends with an empty line.
    out += fmt::format("VMBUS ID {:>2}: Class_ID = {} - {}\n", d.id, d.class_id, d.description);
    if (verbosity >= 2) {
      out += fmt::format("\tDevice_ID = {}\n\tSysfs path: {}\n", d.device_id,
                         SysfsPath(d.device_id));
    }
    for (const LsChannel& ch : d.channels) {
      out += fmt::format("\tRel_ID={}, target_cpu={}\n", ch.relid, ch.cpu);
    }
    out += "\n";
  }
  return out;
}

std::string FormatLs(const std::vector<LsGuest>& guests, int verbosity) {
  std::string out;
  for (const LsGuest& g : guests) {
    // One empty line between guests (verbose blocks already end in one).
    if (!out.empty() && !out.ends_with("\n\n")) out += "\n";
    out += FormatGuestHeading(g);
    out += FormatLsvmbus(g.devices, verbosity);
  }
  return out;
}

}  // namespace uvmbus::tools
