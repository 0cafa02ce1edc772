// File: tools/stats_format.h
//
// What: `uvmbus stats` and `uvmbus channels`: the synthetic NICs found in the host daemon's "ls"
// document (ls_document.h: each network device carries netvsp's StatsJson() under "stats" and
// the daemon's NIC facts under "nic"), extracted into plain structs (ParseNics) and printed the
// way Linux users read a NIC (conventions.md 2b):
//
//   stats (ethtool -S), per NIC:        NIC <guest>/<id> (<mac>):
//                                       NIC statistics:
//                                            tx_queue_0_packets: 12
//                                            ...
//   channels (ethtool -l 6.1), per NIC: Channel parameters for <guest>/<id>:
//                                       Pre-set maximums:
//                                       RX:\t\tn/a
//                                       TX:\t\tn/a
//                                       Other:\t\tn/a
//                                       Combined:\t4
//                                       Current hardware settings:
//                                       ... (same four lines, Combined = channels open)
// NIC blocks are separated by one empty line. Counter order is netvsc's: tx_queue_<n>_* for every
// queue, then rx_queue_<n>_*, then every other counter by name (the JSON document does not keep
// the host's order). `--json`: {"<guest>": {"<id>": {flat map of the same names}}} for stats,
// and ethtool's netlink names (combined-max, combined-count) for channels.
// Spec: none (tool). Linux: ethtool netlink/channels.c (layout, n/a when the kernel omits an
//       attribute: netvsc reports only combined), drivers/net/hyperv/netvsc_drv.c
//       (netvsc_get_channels, netvsc_get_ethtool_stats).
// Thread-safety: pure functions.
#ifndef UVMBUS_TOOLS_STATS_FORMAT_H_
#define UVMBUS_TOOLS_STATS_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace uvmbus::tools {

// One synthetic NIC of one guest.
struct NicReport {
  std::string guest;
  std::string id;         // "net0"
  std::string mac;        // current MAC
  std::string device_id;  // "{guid}"
  uint32_t max_channels = 0;   // what the host offers at most (Pre-set maximums)
  uint32_t channels = 0;       // channels open now (Current hardware settings)
  std::vector<std::pair<std::string, uint64_t>> counters;  // netvsc order
};

// The NICs of every guest (or of `guest` only, when not empty), in document order (guests) and
// by NIC id within a guest. Errors: kMalformed for a document that is not an ls document.
Expected<std::vector<NicReport>> ParseNics(const nlohmann::json& ls_doc, std::string_view guest);

// netvsc's order for a flat counter map (see the file comment).
std::vector<std::pair<std::string, uint64_t>> OrderCounters(const nlohmann::json& flat);

// "NIC statistics:\n" + "     name: value\n" per counter.
std::string FormatEthtoolStats(const std::vector<std::pair<std::string, uint64_t>>& counters);
// Every NIC: heading line + FormatEthtoolStats, blocks separated by an empty line.
std::string FormatStats(const std::vector<NicReport>& nics);
// {"<guest>": {"<id>": {counters}}}.
nlohmann::json StatsToJson(const std::vector<NicReport>& nics);

// ethtool -l's block for one interface (only Combined is supported).
std::string FormatEthtoolChannels(std::string_view ifname, uint32_t max_combined,
                                  uint32_t combined);
// Every NIC, blocks separated by an empty line.
std::string FormatChannels(const std::vector<NicReport>& nics);
// {"<guest>": {"<id>": {"combined-max": N, "combined-count": M}}}.
nlohmann::json ChannelsToJson(const std::vector<NicReport>& nics);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_STATS_FORMAT_H_
