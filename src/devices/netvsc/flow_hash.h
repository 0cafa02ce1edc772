// File: devices/netvsc/flow_hash.h
//
// What: the transmit flow hash netvsc uses to pick a queue for a frame (spec 7.9, 8.5): the
// Toeplitz hash (spec 8.1) with the NIC's RSS key over the frame's flow - source and destination
// address plus, for TCP and UDP that are not IP fragments, the two ports (Linux's default
// `l4_hash`: TCP/UDP over IPv4/IPv6) - looked up as tx_table[hash & 15]. Frames that are not IP
// hash to 0 (queue tx_table[0]). One optional 802.1Q tag is skipped. The same value is sent to
// the host in the NBL_HASH_VALUE PPI when more than one queue is active (spec 6.5).
//
// Linux uses its own flow hash (jhash by default) here; Toeplitz with the RSS key is what the
// host uses for receive steering, so a flow's transmit and receive land on the same queue when
// the host honours the guest's key and indirection table (both default to i % queues).
//
// Spec: vmbus-protocol.md 7.9 (netvsc_select_queue), 8.1-8.5 (Toeplitz, inputs, mapping).
// Linux: drivers/net/hyperv/netvsc_drv.c (netvsc_get_hash, netvsc_pick_tx).
// Thread-safety: FlowHasher is immutable after construction; Hash() from any thread. It reads
// only caller-owned frame bytes (never shared memory).
#ifndef UVMBUS_DEVICES_NETVSC_FLOW_HASH_H_
#define UVMBUS_DEVICES_NETVSC_FLOW_HASH_H_

#include <cstdint>
#include <span>

#include "wire/toeplitz.h"

namespace uvmbus::netvsc {

class FlowHasher {
 public:
  explicit FlowHasher(const wire::ToeplitzKey& key = wire::kStandardToeplitzKey) : hasher_(key) {}

  // The flow hash of an Ethernet frame (0 when it is not IPv4/IPv6 or too short to tell).
  uint32_t Hash(std::span<const uint8_t> frame) const;

  const wire::ToeplitzKey& key() const { return hasher_.key(); }

 private:
  wire::ToeplitzHasher hasher_;
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_FLOW_HASH_H_
