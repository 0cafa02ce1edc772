// File: tools/ls_document.cc
#include "tools/ls_document.h"

#include <string_view>

namespace uvmbus::tools {
namespace {

using nlohmann::json;

uint64_t UnsignedOr0(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// sysfs's directory name for a device: the instance GUID without braces.
std::string DeviceKey(const json& device, size_t index) {
  auto it = device.find("device_id");
  if (it != device.end() && it->is_string()) {
    std::string id = it->get<std::string>();
    if (id.size() >= 2 && id.front() == '{' && id.back() == '}') id = id.substr(1, id.size() - 2);
    if (!id.empty()) return id;
  }
  return "device-" + std::to_string(index);  // never happens with HostService's snapshot
}

}  // namespace

json BuildLsDocument(json snapshot, const HostIdentity& host, const DeviceExtras& extras) {
  json doc = snapshot.is_object() ? std::move(snapshot) : json::object();
  json guests = doc.contains("guests") && doc["guests"].is_array() ? doc["guests"] : json::array();

  uint64_t devices_total = 0;
  uint64_t channels_total = 0;
  uint64_t open_total = 0;
  uint64_t gpadls_total = 0;
  uint64_t gpadls_in_progress_total = 0;
  for (json& guest : guests) {
    if (!guest.is_object()) continue;
    gpadls_total += UnsignedOr0(guest, "gpadls");
    gpadls_in_progress_total += UnsignedOr0(guest, "gpadls_in_progress");
    json devices = json::object();
    auto add = [&](json device, size_t index) {
      if (!device.is_object()) return;
      ++devices_total;
      if (auto ch = device.find("channels"); ch != device.end() && ch->is_object()) {
        for (const auto& [relid, channel] : ch->items()) {
          ++channels_total;
          auto state = channel.find("state");
          if (state != channel.end() && state->is_string() && *state == "open") ++open_total;
        }
      }
      if (extras) {
        auto id = device.find("device_id");
        if (id != device.end() && id->is_string()) {
          json more = extras(id->get<std::string>());
          if (more.is_object()) device.update(more);
        }
      }
      std::string key = DeviceKey(device, index);
      devices[key] = std::move(device);
    };
    if (auto it = guest.find("devices"); it != guest.end()) {
      if (it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) add((*it)[i], i);
      } else if (it->is_object()) {
        size_t i = 0;
        for (auto& [key, device] : it->items()) add(device, i++);
      }
    }
    guest["devices"] = std::move(devices);
  }

  doc["guests"] = std::move(guests);
  doc["host"] = {{"pid", host.pid},
                 {"socket", host.socket},
                 {"admin_socket", host.admin_socket},
                 {"program_version", host.program_version},
                 {"heartbeat_interval_ms", host.heartbeat_interval_ms},
                 {"uptime_ms", host.uptime_ms}};
  doc["totals"] = {{"guests", doc["guests"].size()},
                   {"devices", devices_total},
                   {"channels", channels_total},
                   {"open_channels", open_total},
                   {"gpadls", gpadls_total},
                   {"gpadls_in_progress", gpadls_in_progress_total}};
  return doc;
}

}  // namespace uvmbus::tools
