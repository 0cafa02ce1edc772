// File: devices/netvsc/netvsc_stats.cc
#include "devices/netvsc/netvsc_stats.h"

#include <fmt/format.h>

namespace uvmbus::netvsc {
namespace {
// The ten netvsc counters `ethtool -S` prints before the per-queue ones (netvsc_drv.c order).
constexpr size_t kEthtoolGlobalCount = 10;
}  // namespace

void NetvscStats::ForEach(const std::function<void(std::string_view, uint64_t)>& fn) const {
#define UVMBUS_NETVSC_COUNTER(name) fn(#name, name.Get())
  UVMBUS_NETVSC_COUNTER(tx_scattered);
  UVMBUS_NETVSC_COUNTER(tx_no_memory);
  UVMBUS_NETVSC_COUNTER(tx_no_space);
  UVMBUS_NETVSC_COUNTER(tx_too_big);
  UVMBUS_NETVSC_COUNTER(tx_busy);
  UVMBUS_NETVSC_COUNTER(tx_send_full);
  UVMBUS_NETVSC_COUNTER(rx_comp_busy);
  UVMBUS_NETVSC_COUNTER(rx_no_memory);
  UVMBUS_NETVSC_COUNTER(stop_queue);
  UVMBUS_NETVSC_COUNTER(wake_queue);
  UVMBUS_NETVSC_COUNTER(rx_ring_corrupt);
  UVMBUS_NETVSC_COUNTER(rx_bad_packet_type);
  UVMBUS_NETVSC_COUNTER(comp_empty);
  UVMBUS_NETVSC_COUNTER(comp_malformed);
  UVMBUS_NETVSC_COUNTER(comp_unknown_type);
  UVMBUS_NETVSC_COUNTER(comp_bad_trans_id);
  UVMBUS_NETVSC_COUNTER(comp_wrong_kind);
  UVMBUS_NETVSC_COUNTER(comp_unexpected);
  UVMBUS_NETVSC_COUNTER(send_status_fail);
  UVMBUS_NETVSC_COUNTER(xfer_malformed);
  UVMBUS_NETVSC_COUNTER(xfer_bad_pageset);
  UVMBUS_NETVSC_COUNTER(xfer_too_many_ranges);
  UVMBUS_NETVSC_COUNTER(xfer_bad_range);
  UVMBUS_NETVSC_COUNTER(recv_comp_ring_full);
  UVMBUS_NETVSC_COUNTER(inband_malformed);
  UVMBUS_NETVSC_COUNTER(send_table_invalid);
  UVMBUS_NETVSC_COUNTER(vf_association_invalid);
  UVMBUS_NETVSC_COUNTER(rndis_bad_length);
  UVMBUS_NETVSC_COUNTER(rndis_bad_type);
  UVMBUS_NETVSC_COUNTER(rndis_bad_packet);
  UVMBUS_NETVSC_COUNTER(rndis_bad_ppi);
  UVMBUS_NETVSC_COUNTER(rndis_rsc_dropped);
  UVMBUS_NETVSC_COUNTER(rndis_uninitialized);
  UVMBUS_NETVSC_COUNTER(rndis_bad_control);
  UVMBUS_NETVSC_COUNTER(rndis_control_unmatched);
  UVMBUS_NETVSC_COUNTER(rndis_control_overflow);
  UVMBUS_NETVSC_COUNTER(rndis_query_failed);
  UVMBUS_NETVSC_COUNTER(subchannel_offer_ignored);
#undef UVMBUS_NETVSC_COUNTER
}

uint64_t StatsSnapshot::Get(std::string_view name) const {
  for (const auto& [n, v] : counters) {
    if (n == name) return v;
  }
  return 0;
}

std::string StatsSnapshot::FormatEthtool() const {
  std::string out = "NIC statistics:\n";
  for (const auto& [name, value] : counters) out += fmt::format("     {}: {}\n", name, value);
  return out;
}

StatsSnapshot MakeSnapshot(const NetvscStats& global, const std::vector<const QueueStats*>& queues) {
  StatsSnapshot s;
  std::vector<std::pair<std::string, uint64_t>> all;
  global.ForEach([&](std::string_view name, uint64_t v) { all.emplace_back(std::string(name), v); });
  for (size_t i = 0; i < kEthtoolGlobalCount && i < all.size(); ++i) s.counters.push_back(all[i]);
  // Linux prints tx_queue_<n>_* for every queue, then rx_queue_<n>_*.
  for (size_t q = 0; q < queues.size(); ++q) {
    const QueueStats* qs = queues[q];
    s.counters.emplace_back(fmt::format("tx_queue_{}_packets", q), qs ? qs->tx_packets.Get() : 0);
    s.counters.emplace_back(fmt::format("tx_queue_{}_bytes", q), qs ? qs->tx_bytes.Get() : 0);
  }
  for (size_t q = 0; q < queues.size(); ++q) {
    const QueueStats* qs = queues[q];
    s.counters.emplace_back(fmt::format("rx_queue_{}_packets", q), qs ? qs->rx_packets.Get() : 0);
    s.counters.emplace_back(fmt::format("rx_queue_{}_bytes", q), qs ? qs->rx_bytes.Get() : 0);
  }
  for (size_t i = kEthtoolGlobalCount; i < all.size(); ++i) s.counters.push_back(all[i]);
  return s;
}

}  // namespace uvmbus::netvsc
