// File: devices/netvsp/rss.h
//
// What: receive-side scaling as the host applies it (spec 8): the guest's RSS configuration
// (Toeplitz key, hash types, indirection table) turned into an immutable `RssConfig`, and the
// per-frame work: classify an Ethernet frame (IPv4/IPv6, TCP/UDP, fragment; an 802.1Q tag is
// skipped), pick the hash input by the NDIS rule (spec 8.3), hash it with the guest's key and
// map the hash to a queue through the indirection table (8.5). Also the receive packet filter
// (spec 6.10): which destination MACs the guest asked to see.
//
// Input is a private copy of the frame's first bytes (spec 9.1 G1: the frame sits in guest
// memory); every offset is checked against the copied length.
//
// Spec: vmbus-protocol.md 6.9 (RSS parameters), 6.10 (packet filter), 8.1-8.5.
// Linux/OpenVMM: OpenVMM vm/devices/net/netvsp/src/lib.rs (indirection table, RSS state);
//       NDIS RSS hashing rules (learn.microsoft.com "RSS hashing types").
// Thread-safety: RssConfig is immutable after construction and shared read-only between queues;
//       the free functions are pure.
#ifndef UVMBUS_DEVICES_NETVSP_RSS_H_
#define UVMBUS_DEVICES_NETVSP_RSS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "net/frame.h"
#include "wire/rndis.h"
#include "wire/toeplitz.h"

namespace uvmbus::netvsp {

// Bytes of a frame copied for classification: Ethernet + VLAN tag + the longest IPv4 header
// (60; IPv6's fixed header is 40) + the two ports, rounded up.
inline constexpr size_t kClassifyBytes = 96;

// What the classifier found in a frame.
struct FrameClass {
  wire::RssPacketClass rss;       // the NDIS selection inputs
  std::array<uint8_t, 16> src{};  // IP source address (IPv4 in the first 4 bytes)
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;          // host order; valid when rss.tcp || rss.udp
  uint16_t dst_port = 0;
};

// Classifies the frame whose first bytes are `head` (at most kClassifyBytes). Frames that are
// not IP, too short, or malformed give a class with every flag false (no hash: spec 8.3).
FrameClass ClassifyFrame(std::span<const uint8_t> head);

// The guest's RSS configuration, ready for the data path.
struct RssConfig {
  uint32_t hashinfo = 0;               // hash function | hash types (kNdisHash*)
  wire::ToeplitzHasher hasher;         // built from the guest's key (zero-padded to 40 bytes)
  std::vector<uint32_t> table;         // queue per entry (validated < the channel count)

  // Queue and hash for a frame. `hash` is nullopt when no enabled type applies (the frame goes
  // to table[0], spec 8.3 "default queue").
  struct Result {
    uint32_t queue = 0;
    std::optional<uint32_t> hash;
  };
  Result Classify(std::span<const uint8_t> head) const;
};

// The receive filter (OID_GEN_CURRENT_PACKET_FILTER, spec 6.10): does a frame whose destination
// MAC is `dst` pass for a NIC with address `own`? 0 passes nothing ("stop Rx").
bool PacketFilterAccepts(uint32_t filter, const net::MacAddress& own, const uint8_t* dst);

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_RSS_H_
