// File: devices/netvsp/netvsp_stats.cc — see netvsp_stats.h.
#include "devices/netvsp/netvsp_stats.h"

#include <fmt/format.h>

namespace uvmbus::netvsp {
namespace {

constexpr std::array<std::string_view, kStatCount> kNames = {
    "tx_packets",
    "tx_bytes",
    "rx_packets",
    "rx_bytes",
    "tx_no_send_buffer",
    "tx_bad_section",
    "tx_bad_gpa",
    "tx_bad_rndis",
    "tx_bad_offload",
    "tx_too_big",
    "tx_no_data",
    "tx_not_ready",
    "tx_backend_busy",
    "tx_vlan_tagged",
    "tx_completions_deferred",
    "rx_no_buffer",
    "rx_ring_full",
    "rx_filtered",
    "rx_not_ready",
    "rx_steered",
    "rx_steer_full",
    "rx_completions",
    "rx_completion_unknown",
    "rx_completion_failed",
    "ring_corrupt",
    "nvsp_malformed",
    "nvsp_unexpected",
    "nvsp_bad_version",
    "nvsp_version_refused",
    "nvsp_before_init",
    "nvsp_duplicate",
    "recv_buf_before_ndis_config",
    "recv_buf_bad_gpadl",
    "recv_buf_bad_size",
    "send_buf_bad_gpadl",
    "send_buf_bad_size",
    "buffer_revoked",
    "rndis_before_init",
    "rndis_bad_state",
    "rndis_unsupported",
    "rndis_malformed",
    "oid_unsupported",
    "oid_bad_length",
    "rss_bad_params",
    "rss_bad_queue",
    "subchannel_refused",
    "control_dropped",
    "link_indications",
    "send_tables_sent",
    "wakeups",
};

bool IsTraffic(size_t i) { return i <= static_cast<size_t>(Stat::kRxBytes); }

}  // namespace

std::string_view StatName(Stat stat) {
  const auto i = static_cast<size_t>(stat);
  return i < kStatCount ? kNames[i] : std::string_view("unknown");
}

uint64_t NicStats::Get(std::string_view name) const {
  for (const auto& [n, v] : counters) {
    if (n == name) return v;
  }
  return 0;
}

NicCounters::NicCounters(std::string id, uint32_t queues)
    : id_(std::move(id)), queue_count_(queues > kMaxQueues ? kMaxQueues : queues) {}

uint64_t NicCounters::Total(Stat stat) const {
  uint64_t sum = 0;
  for (uint32_t q = 0; q < queue_count_; ++q) sum += queues_[q].Get(stat);
  return sum;
}

NicStats NicCounters::Snapshot() const {
  NicStats s;
  s.id = id_;
  s.queues = queue_count_;
  s.counters.reserve(4 * queue_count_ + kStatCount);
  // netvsc orders the per-queue block tx first, then rx (netvsc_get_ethtool_stats).
  for (uint32_t q = 0; q < queue_count_; ++q) {
    s.counters.emplace_back(fmt::format("tx_queue_{}_packets", q), queues_[q].Get(Stat::kTxPackets));
    s.counters.emplace_back(fmt::format("tx_queue_{}_bytes", q), queues_[q].Get(Stat::kTxBytes));
  }
  for (uint32_t q = 0; q < queue_count_; ++q) {
    s.counters.emplace_back(fmt::format("rx_queue_{}_packets", q), queues_[q].Get(Stat::kRxPackets));
    s.counters.emplace_back(fmt::format("rx_queue_{}_bytes", q), queues_[q].Get(Stat::kRxBytes));
  }
  for (size_t i = 0; i < kStatCount; ++i) {
    if (IsTraffic(i)) continue;
    s.counters.emplace_back(std::string(kNames[i]), Total(static_cast<Stat>(i)));
  }
  return s;
}

nlohmann::json ToJson(const NicStats& stats) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : stats.counters) j[name] = value;
  return j;
}

}  // namespace uvmbus::netvsp
