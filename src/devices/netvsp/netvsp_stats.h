// File: devices/netvsp/netvsp_stats.h
//
// What: the synthetic NIC host's counters. Every queue (VMBus channel) has one `QueueCounters`
// block, written only by the thread serving that queue (single-writer counters); `NicCounters`
// holds the blocks of all queues plus a few device-wide atomics, outlives the device (shared_ptr,
// so a tool can keep reading after the server destroyed the device) and produces snapshots:
//
//   * per queue, with Linux netvsc's ethtool -S names (conventions.md 2b): tx_queue_<n>_packets,
//     tx_queue_<n>_bytes (frames the guest transmitted on channel n), rx_queue_<n>_packets,
//     rx_queue_<n>_bytes (frames delivered to the guest on channel n);
//   * NIC-wide sums of every other counter, one name per rejection rule of spec 9.7 (P1-P18) and
//     per drop reason of the data path (rx_no_buffer, rx_ring_full, tx_bad_section, ...).
//
// `ToJson()` gives the flat map `uvmbus stats` prints (ethtool has no JSON for -S; our --json is a
// flat map of the same names, conventions.md 2b) plus a per-queue breakdown.
//
// Spec: vmbus-protocol.md 9.7 (each rejection counted by name), 5.6 (data movement).
// Linux/OpenVMM: Linux drivers/net/hyperv/netvsc_drv.c (ethtool stat names);
//       OpenVMM vm/devices/net/netvsp/src/lib.rs (QueueStats: rx_dropped_ring_full, ...).
// Thread-safety: QueueCounters: Add() from the one thread serving the queue, reads from any
//       thread (relaxed). NicCounters: all methods thread-safe.
#ifndef UVMBUS_DEVICES_NETVSP_NETVSP_STATS_H_
#define UVMBUS_DEVICES_NETVSP_NETVSP_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/counter.h"

namespace uvmbus::netvsp {

// Most queues (channels) one NIC has: primary + 63 sub-channels (spec 8.5 VRSS_CHANNEL_MAX).
inline constexpr uint32_t kMaxQueues = 64;

// Every counter. The comment names the spec rule it counts where there is one.
enum class Stat : uint8_t {
  // Traffic (per queue in snapshots).
  kTxPackets,          // frames the guest sent that went to the backend
  kTxBytes,
  kRxPackets,          // frames delivered to the guest
  kRxBytes,
  // Guest transmit path.
  kTxNoSendBuffer,     // P8: a send-buffer section named without a send buffer (or after revoke)
  kTxBadSection,       // P9: section index / size outside the send buffer or the section
  kTxBadGpa,           // P10: GPA-direct range outside guest RAM (or no guest memory access)
  kTxBadRndis,         // P11: malformed RNDIS message (lengths, offsets, PPIs, batch)
  kTxBadOffload,       // P17: LSO/checksum request that does not fit the frame
  kTxTooBig,           // RNDIS message (section + ranges) larger than the host accepts
  kTxNoData,           // SEND_RNDIS_PKT with neither a section nor GPA ranges
  kTxNotReady,         // P5: RNDIS data before RNDIS INITIALIZE / before the receive buffer
  kTxBackendBusy,      // the backend consumed fewer frames than offered (back-pressure): dropped
  kTxVlanTagged,       // frames the host tagged from an 802.1Q PPI (informational)
  kTxCompletionsDeferred,  // a completion waited for room in the host->guest ring
  // Receive path (host -> guest).
  kRxNoBuffer,         // no free receive sub-allocation or in-flight slot: frame dropped
  kRxRingFull,         // host->guest ring full: frames of the transfer-page packet dropped
  kRxFiltered,         // dropped by the guest's packet filter (0 = "stop Rx", spec 6.10)
  kRxNotReady,         // dropped: no receive buffer / RNDIS not initialized / buffer revoked
  kRxSteered,          // frames handed to another queue by RSS (informational)
  kRxSteerFull,        // the RSS target queue's mailbox was full: frame dropped
  kRxCompletions,      // transfer-page completions (NVSP 108) accepted
  kRxCompletionUnknown,  // P15: completion with an unknown / duplicate trans_id (dropped)
  kRxCompletionFailed,   // completion carrying a status other than SUCCESS (sections freed)
  // Ring and NVSP framing.
  kRingCorrupt,        // spec 9.4 R1-R9 on a guest->host ring: the queue stops
  kNvspMalformed,      // NVSP payload failed parsing (length, unknown type, wrong carrier)
  kNvspUnexpected,     // valid NVSP message not accepted here (control on a sub-channel, PD)
  kNvspBadVersion,     // P1: message type newer than the negotiated version
  kNvspVersionRefused,  // P2: INIT with a version the host does not accept (status NONE)
  kNvspBeforeInit,     // P2: any NVSP message before a successful INIT
  kNvspDuplicate,      // P3: a second INIT / NDIS version / NDIS config / buffer
  kRecvBufBeforeNdisConfig,  // P4: SEND_RECV_BUF before SEND_NDIS_CONFIG (NVSP >= 2)
  kRecvBufBadGpadl,    // P7: receive buffer GPADL unknown
  kRecvBufBadSize,     // P7: receive buffer too small for one sub-allocation, or too large
  kSendBufBadGpadl,    // P7: send buffer GPADL unknown
  kSendBufBadSize,     // P7: send buffer smaller than one section, or too large
  kBufferRevoked,      // P16: REVOKE_RECV_BUF / REVOKE_SEND_BUF received
  kRndisBeforeInit,    // P5: RNDIS message before the receive buffer exists
  kRndisBadState,      // P12: INITIALIZE when initialized; QUERY/SET before INITIALIZE
  kRndisUnsupported,   // P13: SET_EX or an RNDIS type a device does not accept
  kRndisMalformed,     // P11: malformed RNDIS control message (QUERY/SET buffers, ...)
  kOidUnsupported,     // QUERY/SET of an OID answered NOT_SUPPORTED (spec 6.4)
  kOidBadLength,       // SET with an information buffer too short for the OID
  kRssBadParams,       // RSS parameters rejected (object header, table/key size or offsets)
  kRssBadQueue,        // RSS indirection entry naming a queue the NIC does not have
  kSubchannelRefused,  // P14: SUBCHANNEL with op != ALLOCATE, bad count, or not ready
  kControlDropped,     // RNDIS control response / indication dropped (bounded queue full)
  kLinkIndications,    // INDICATE_STATUS media connect/disconnect sent
  kSendTablesSent,     // SEND_INDIRECTION_TABLE messages sent
  kWakeups,            // worker wake-ups (informational)
  kCount,
};
inline constexpr size_t kStatCount = static_cast<size_t>(Stat::kCount);

// Stable snake_case name ("tx_bad_section", ...); the traffic counters are "tx_packets",
// "tx_bytes", "rx_packets", "rx_bytes" (queue snapshots add the "_queue_<n>" form).
std::string_view StatName(Stat stat);

// The counters of one queue.
class QueueCounters {
 public:
  void Add(Stat stat, uint64_t n = 1) { counters_[static_cast<size_t>(stat)].Add(n); }
  uint64_t Get(Stat stat) const { return counters_[static_cast<size_t>(stat)].Get(); }

 private:
  std::array<SingleWriterCounter, kStatCount> counters_{};
};

// A snapshot: ethtool -S order (per-queue traffic first, then the NIC-wide counters).
struct NicStats {
  std::string id;  // NicConfig::id ("net0")
  uint32_t queues = 0;
  std::vector<std::pair<std::string, uint64_t>> counters;

  // Value of `name` (0 if absent).
  uint64_t Get(std::string_view name) const;
};

class NicCounters {
 public:
  NicCounters(std::string id, uint32_t queues);

  QueueCounters& queue(uint32_t index) { return queues_[index]; }
  const QueueCounters& queue(uint32_t index) const { return queues_[index]; }
  uint32_t queue_count() const { return queue_count_; }
  const std::string& id() const { return id_; }

  // Sum of `stat` over all queues.
  uint64_t Total(Stat stat) const;

  // ethtool -S style snapshot: tx_queue_<n>_packets/bytes and rx_queue_<n>_packets/bytes for
  // every queue, then every other counter summed over the queues.
  NicStats Snapshot() const;

 private:
  const std::string id_;
  const uint32_t queue_count_;
  std::array<QueueCounters, kMaxQueues> queues_{};
};

// Flat JSON map of a snapshot ({"tx_queue_0_packets": 3, ..., "rx_no_buffer": 0}).
nlohmann::json ToJson(const NicStats& stats);

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_NETVSP_STATS_H_
