// File: devices/netvsc/netvsc_stats.h
//
// What: the counters of one netvsc NIC. Three groups:
//   * netvsc's own `ethtool -S` counters, verbatim (conventions.md 2b; Linux
//     drivers/net/hyperv/netvsc_drv.c netvsc_ethtool_stats / struct netvsc_ethtool_stats):
//       tx_scattered  frames that could not be copied into a send-buffer section and were copied
//                     into a guest-RAM bounce slot for a GPA-direct send (Linux: skbs that had to
//                     be linearised before a page-buffer send - the same "extra copy to describe
//                     it by pages")
//       tx_no_memory  frames held back because no bounce slot was free (Linux: allocation failure)
//       tx_no_space   frames dropped because the ring was full although nothing of the queue was
//                     outstanding (Linux -EAGAIN turned into -ENOSPC in netvsc_send_pkt)
//       tx_too_big    frames dropped: shorter than an Ethernet header, longer than the NIC's
//                     largest frame, or too long for a ring packet
//       tx_busy       sends refused for now because the ring (or the request table) was full
//                     (Linux NETDEV_TX_BUSY)
//       tx_send_full  frames that found no free send-buffer section (fell back to GPA-direct)
//       rx_comp_busy  receive-completion flushes stopped by a full ring (retried next poll)
//       rx_no_memory  frames dropped because the queue's receive ring was full (Linux: skb
//                     allocation failure; completed with NVSP status FAIL as Linux does)
//       stop_queue    times a TX queue was stopped (ring below 10 % free, or full)
//       wake_queue    times it was woken (above 20 % free, or nothing outstanding)
//   * per queue: tx_queue_<n>_packets|bytes (counted when the host completes the send, as Linux),
//     rx_queue_<n>_packets|bytes;
//   * one counter per kind of hostile host input rejected (spec 9.4-9.6), named after the rule.
//
// Spec: vmbus-protocol.md 3.5 (10 %/20 % thresholds), 9.4 R16/R17, 9.5 N1-N22, 9.6 D1-D27.
// Linux: drivers/net/hyperv/hyperv_net.h (struct netvsc_ethtool_stats), netvsc_drv.c,
//        netvsc.c (where each counter is incremented).
// Thread-safety: every counter is relaxed and may be read from any thread. Global counters are
// `Counter` (several queues' threads add to them); per-queue counters are written only by the
// thread that owns that side of the queue (SingleWriterCounter).
#ifndef UVMBUS_DEVICES_NETVSC_NETVSC_STATS_H_
#define UVMBUS_DEVICES_NETVSC_NETVSC_STATS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/counter.h"

namespace uvmbus::netvsc {

// Global counters of one NIC (ethtool names first, then the hostile-input counters).
struct NetvscStats {
  // ---- Linux netvsc ethtool -S names ----
  Counter tx_scattered;
  Counter tx_no_memory;
  Counter tx_no_space;
  Counter tx_too_big;
  Counter tx_busy;
  Counter tx_send_full;
  Counter rx_comp_busy;
  Counter rx_no_memory;
  Counter stop_queue;
  Counter wake_queue;

  // ---- Hostile host input (spec 9.4-9.6); each names the rule(s) ----
  Counter rx_ring_corrupt;         // R1-R9: the inbound ring is corrupt; the queue stops reading
  Counter rx_bad_packet_type;      // a host packet of a type netvsc never receives (e.g. 9)
  Counter comp_empty;              // N1: empty COMP for a request that cannot complete that way
  Counter comp_malformed;          // N2, N3: COMP payload shorter than its NVSP type needs
  Counter comp_unknown_type;       // N4: COMP with an NVSP type netvsc never asked for
  Counter comp_bad_trans_id;       // R16, N22: trans_id 0, beyond the table, or a free slot
  Counter comp_wrong_kind;         // R17: the slot's request is of another kind
  Counter comp_unexpected;         // a control completion nobody waits for (late / duplicate)
  Counter send_status_fail;        // N12: RNDIS_PKT_COMPLETE status != SUCCESS (still released)
  Counter xfer_malformed;          // N13, N14, N16: transfer-page header / NVSP payload invalid
  Counter xfer_bad_pageset;        // N15: xfer_pageset_id != 0xCAFE
  Counter xfer_too_many_ranges;    // more ranges than 375 (562 with RSC)
  Counter xfer_bad_range;          // N17: a range outside the receive buffer (skipped, FAIL)
  Counter recv_comp_ring_full;     // N18: receive-completion ring full (completion dropped)
  Counter inband_malformed;        // N19: in-band packet shorter than 4 bytes / unknown type
  Counter send_table_invalid;      // N20: send table < 12 bytes, count != 16, bad offset, or an
                                   // entry naming a channel that does not exist
  Counter vf_association_invalid;  // N21: VF association shorter than 12 bytes
  Counter rndis_bad_length;        // D1, D2: range < 8, msg_len < 8 or > range
  Counter rndis_bad_type;          // D15: RNDIS type a guest never accepts (KEEPALIVE, ...)
  Counter rndis_bad_packet;        // D3-D5: PACKET_MSG data outside the message
  Counter rndis_bad_ppi;           // D6-D10: PPIs ignored or walk stopped (frame delivered)
  Counter rndis_rsc_dropped;       // D12-D14: RSC fragments out of order / too many / too big
  Counter rndis_uninitialized;     // D16: RNDIS message before INITIALIZE was sent
  Counter rndis_bad_control;       // D17, D20, D22, D23: malformed completion / indication
  Counter rndis_control_unmatched; // D18: completion for no outstanding request id
  Counter rndis_control_overflow;  // D19: completion longer than 52 + 4096 bytes
  Counter rndis_query_failed;      // D20, D21, D24-D26: a bring-up query/set the driver refused
  Counter subchannel_offer_ignored;  // M8: sub-channel offer beyond the channels requested

  // Calls fn(name, value) for every counter above, in declaration order.
  void ForEach(const std::function<void(std::string_view, uint64_t)>& fn) const;
};

// Counters of one queue (channel).
struct QueueStats {
  SingleWriterCounter tx_packets;  // frames whose send the host completed
  SingleWriterCounter tx_bytes;    // their frame bytes
  SingleWriterCounter rx_packets;  // frames delivered to the frontend
  SingleWriterCounter rx_bytes;
};

// A plain copy of every counter, for `ethtool -S`-style output and JSON.
struct StatsSnapshot {
  // In ethtool order: the ten global names, tx_queue_<n>_packets/bytes and
  // rx_queue_<n>_packets/bytes for each queue, then the hostile-input counters.
  std::vector<std::pair<std::string, uint64_t>> counters;

  // The value of `name`, or 0 if absent.
  uint64_t Get(std::string_view name) const;
  // "NIC statistics:\n" then "     name: value\n" per counter (ethtool -S layout).
  std::string FormatEthtool() const;
};

// Builds the snapshot of `global` and the per-queue counters `queues` (index = queue number).
StatsSnapshot MakeSnapshot(const NetvscStats& global, const std::vector<const QueueStats*>& queues);

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_NETVSC_STATS_H_
