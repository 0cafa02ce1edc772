// File: net/net_stats.h
//
// What: per-queue NIC statistics with Linux's names. `QueueCounters` are the live counters a queue
// updates (relaxed atomics, added once per batch, never per frame on the fast path);
// `NetStats` is a plain snapshot that adds up across queues. Field names are the kernel's
// struct rtnl_link_stats64 / /sys/class/net/<if>/statistics/ names, which `ip -s link` prints as
// "RX: bytes packets errors dropped missed mcast" and "TX: bytes packets errors dropped carrier
// collsns" (conventions.md 2b).
//
// Direction is the NIC's: "tx" = frames the NIC handed to the endpoint (Queue::Send), "rx" =
// frames the endpoint delivered to the NIC (Queue::Poll).
//
// Meaning in net/:
//   rx_missed_errors   a frame for this queue was dropped because its queue was full (slow
//                      receiver); ip's "missed" column.
//   rx_dropped         dropped for this queue for another reason (link down, a receive buffer
//                      smaller than the frame).
//   rx_errors          a malformed frame arrived (shorter than 14 bytes, larger than the MTU).
//   tx_errors          Send() refused a malformed frame (runt, larger than the MTU) or the OS
//                      failed the write.
//   tx_dropped         Send() dropped a well-formed frame by policy (anti-spoofing, invalid source
//                      MAC). A frame the switch filters because it would hairpin is sent, not
//                      dropped (see SwitchPortStats).
//   tx_carrier_errors  Send() while the link was down.
//
// Spec: none (observability; conventions.md 2b "ip -s link").
// Linux/OpenVMM: include/uapi/linux/if_link.h struct rtnl_link_stats64; OpenVMM net_backend
//       QueueStats.
// Thread-safety: QueueCounters may be updated and read from any thread (relaxed atomics; a read is
//       a racy but monotone snapshot). NetStats is a value type.
#ifndef UVMBUS_NET_NET_STATS_H_
#define UVMBUS_NET_NET_STATS_H_

#include <cstdint>
#include <string_view>

#include "common/counter.h"

namespace uvmbus::net {

// Snapshot of one queue or a sum of queues.
struct NetStats {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t rx_errors = 0;
  uint64_t rx_dropped = 0;
  uint64_t rx_missed_errors = 0;
  uint64_t multicast = 0;  // received multicast frames, broadcast included (Linux's rule)
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_errors = 0;
  uint64_t tx_dropped = 0;
  uint64_t tx_carrier_errors = 0;

  NetStats& operator+=(const NetStats& o) {
    rx_packets += o.rx_packets;
    rx_bytes += o.rx_bytes;
    rx_errors += o.rx_errors;
    rx_dropped += o.rx_dropped;
    rx_missed_errors += o.rx_missed_errors;
    multicast += o.multicast;
    tx_packets += o.tx_packets;
    tx_bytes += o.tx_bytes;
    tx_errors += o.tx_errors;
    tx_dropped += o.tx_dropped;
    tx_carrier_errors += o.tx_carrier_errors;
    return *this;
  }

  // Calls fn(name, value) for every field, with the sysfs statistics/ file names.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    fn(std::string_view("rx_packets"), rx_packets);
    fn(std::string_view("rx_bytes"), rx_bytes);
    fn(std::string_view("rx_errors"), rx_errors);
    fn(std::string_view("rx_dropped"), rx_dropped);
    fn(std::string_view("rx_missed_errors"), rx_missed_errors);
    fn(std::string_view("multicast"), multicast);
    fn(std::string_view("tx_packets"), tx_packets);
    fn(std::string_view("tx_bytes"), tx_bytes);
    fn(std::string_view("tx_errors"), tx_errors);
    fn(std::string_view("tx_dropped"), tx_dropped);
    fn(std::string_view("tx_carrier_errors"), tx_carrier_errors);
  }
};

// Live counters of one queue.
struct QueueCounters {
  Counter rx_packets;
  Counter rx_bytes;
  Counter rx_errors;
  Counter rx_dropped;
  Counter rx_missed_errors;
  Counter multicast;
  Counter tx_packets;
  Counter tx_bytes;
  Counter tx_errors;
  Counter tx_dropped;
  Counter tx_carrier_errors;

  NetStats Snapshot() const {
    NetStats s;
    s.rx_packets = rx_packets.Get();
    s.rx_bytes = rx_bytes.Get();
    s.rx_errors = rx_errors.Get();
    s.rx_dropped = rx_dropped.Get();
    s.rx_missed_errors = rx_missed_errors.Get();
    s.multicast = multicast.Get();
    s.tx_packets = tx_packets.Get();
    s.tx_bytes = tx_bytes.Get();
    s.tx_errors = tx_errors.Get();
    s.tx_dropped = tx_dropped.Get();
    s.tx_carrier_errors = tx_carrier_errors.Get();
    return s;
  }
};

// Per-batch accumulator: a queue counts into this on its own stack and publishes once per batch
// (one relaxed add per non-zero counter instead of one per frame).
struct BatchTally {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t multicast = 0;
  uint64_t errors = 0;
  uint64_t dropped = 0;
  uint64_t missed = 0;
  uint64_t carrier = 0;

  void PublishRx(QueueCounters& c) const {
    if (packets != 0) c.rx_packets.Add(packets);
    if (bytes != 0) c.rx_bytes.Add(bytes);
    if (multicast != 0) c.multicast.Add(multicast);
    if (errors != 0) c.rx_errors.Add(errors);
    if (dropped != 0) c.rx_dropped.Add(dropped);
    if (missed != 0) c.rx_missed_errors.Add(missed);
  }
  void PublishTx(QueueCounters& c) const {
    if (packets != 0) c.tx_packets.Add(packets);
    if (bytes != 0) c.tx_bytes.Add(bytes);
    if (errors != 0) c.tx_errors.Add(errors);
    if (dropped != 0) c.tx_dropped.Add(dropped);
    if (carrier != 0) c.tx_carrier_errors.Add(carrier);
  }
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_NET_STATS_H_
