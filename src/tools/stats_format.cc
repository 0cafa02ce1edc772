// File: tools/stats_format.cc
#include "tools/stats_format.h"

#include <algorithm>
#include <charconv>
#include <tuple>

#include <fmt/format.h>

#include "common/guid.h"
#include "wire/device_guids.h"

namespace uvmbus::tools {
namespace {

using nlohmann::json;

uint64_t UnsignedOr0(const json& obj, std::string_view key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
std::string StringOr(const json& obj, std::string_view key, std::string fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// "tx_queue_3_bytes" -> (block 0, queue 3, field 1); others -> block 2 (by name).
std::tuple<int, uint32_t, int> SortKey(std::string_view name) {
  for (int block = 0; block < 2; ++block) {
    const std::string_view prefix = block == 0 ? "tx_queue_" : "rx_queue_";
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());
    uint32_t queue = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), queue);
    if (ec != std::errc() || ptr == rest.data()) break;
    std::string_view field(ptr, static_cast<size_t>(rest.data() + rest.size() - ptr));
    // netvsc: packets before bytes, then anything else (xdp_*).
    const int f = field == "_packets" ? 0 : field == "_bytes" ? 1 : 2;
    return {block, queue, f};
  }
  return {2, 0, 0};
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> OrderCounters(const json& flat) {
  std::vector<std::pair<std::string, uint64_t>> out;
  if (!flat.is_object()) return out;
  for (const auto& [name, value] : flat.items()) {
    if (value.is_number_unsigned()) out.emplace_back(name, value.get<uint64_t>());
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    const auto ka = SortKey(a.first);
    const auto kb = SortKey(b.first);
    if (ka != kb) return ka < kb;
    return a.first < b.first;
  });
  return out;
}

Expected<std::vector<NicReport>> ParseNics(const json& doc, std::string_view guest_filter) {
  if (!doc.is_object() || !doc.contains("guests") || !doc["guests"].is_array()) {
    return MakeError(ErrorCode::kMalformed, "ls document: \"guests\" is not an array");
  }
  std::vector<NicReport> out;
  for (const json& g : doc["guests"]) {
    if (!g.is_object()) return MakeError(ErrorCode::kMalformed, "ls document: guest not an object");
    const std::string name = StringOr(g, "name", "?");
    if (!guest_filter.empty() && name != guest_filter) continue;
    auto devices = g.find("devices");
    if (devices == g.end() || !(devices->is_object() || devices->is_array())) continue;
    std::vector<NicReport> mine;
    for (const auto& [key, dev] : devices->items()) {
      if (!dev.is_object()) continue;
      auto class_id = Guid::Parse(StringOr(dev, "class_id", ""));
      if (!class_id || *class_id != wire::kNetworkClassGuid) continue;
      const json stats = dev.value("stats", json::object());
      const json nic = dev.value("nic", json::object());
      NicReport r;
      r.guest = name;
      r.device_id = StringOr(dev, "device_id", "");
      r.id = StringOr(nic, "id", StringOr(stats, "id", "net?"));
      r.mac = StringOr(stats, "mac", StringOr(nic, "mac", ""));
      r.channels = static_cast<uint32_t>(UnsignedOr0(stats, "channels_open"));
      r.max_channels = static_cast<uint32_t>(UnsignedOr0(nic, "max_channels"));
      if (r.max_channels == 0 && dev.contains("channel_vp_mapping") &&
          dev["channel_vp_mapping"].is_array()) {
        r.max_channels = static_cast<uint32_t>(dev["channel_vp_mapping"].size());
      }
      r.counters = OrderCounters(stats.value("stats", json::object()));
      mine.push_back(std::move(r));
    }
    std::sort(mine.begin(), mine.end(),
              [](const NicReport& a, const NicReport& b) { return a.id < b.id; });
    for (NicReport& r : mine) out.push_back(std::move(r));
  }
  return out;
}

std::string FormatEthtoolStats(const std::vector<std::pair<std::string, uint64_t>>& counters) {
  std::string out = "NIC statistics:\n";
  for (const auto& [name, value] : counters) out += fmt::format("     {}: {}\n", name, value);
  return out;
}

std::string FormatStats(const std::vector<NicReport>& nics) {
  std::string out;
  for (const NicReport& n : nics) {
    if (!out.empty()) out += "\n";
    out += fmt::format("NIC {}/{} ({}):\n", n.guest, n.id, n.mac);
    out += FormatEthtoolStats(n.counters);
  }
  return out;
}

json StatsToJson(const std::vector<NicReport>& nics) {
  json out = json::object();
  for (const NicReport& n : nics) {
    json flat = json::object();
    for (const auto& [name, value] : n.counters) flat[name] = value;
    out[n.guest][n.id] = std::move(flat);
  }
  return out;
}

std::string FormatEthtoolChannels(std::string_view ifname, uint32_t max_combined,
                                  uint32_t combined) {
  return fmt::format(
      "Channel parameters for {}:\n"
      "Pre-set maximums:\n"
      "RX:\t\tn/a\n"
      "TX:\t\tn/a\n"
      "Other:\t\tn/a\n"
      "Combined:\t{}\n"
      "Current hardware settings:\n"
      "RX:\t\tn/a\n"
      "TX:\t\tn/a\n"
      "Other:\t\tn/a\n"
      "Combined:\t{}\n",
      ifname, max_combined, combined);
}

std::string FormatChannels(const std::vector<NicReport>& nics) {
  std::string out;
  for (const NicReport& n : nics) {
    if (!out.empty()) out += "\n";
    out += FormatEthtoolChannels(fmt::format("{}/{}", n.guest, n.id), n.max_channels,
                                 n.channels);
  }
  return out;
}

json ChannelsToJson(const std::vector<NicReport>& nics) {
  json out = json::object();
  for (const NicReport& n : nics) {
    out[n.guest][n.id] = {{"combined-max", n.max_channels}, {"combined-count", n.channels}};
  }
  return out;
}

}  // namespace uvmbus::tools
