// File: wire/toeplitz.h
//
// What: the Toeplitz hash that NDIS RSS uses to spread received flows over a NIC's queues
// (spec 8.1), the standard 40-byte key (8.2), builders for the four input formats (8.3), the
// NDIS rule that picks which format applies to a packet (8.3), and the pure functions netvsc and
// netvsp use to turn a hash into a channel (8.5).
//
// Two implementations:
//   ToeplitzHashBitwise() - the definition of 8.1, one key window per input bit; slow, obvious,
//                           used as the reference in tests;
//   ToeplitzHasher        - per-key tables: for every input byte position p (< 36) and byte
//                           value v, the XOR of the 32-bit key windows v selects; a hash is then
//                           one table load + XOR per input byte. Building the tables costs
//                           36 * 256 window computations; hashing allocates nothing and never
//                           fails. The object is 36 KiB: keep one per RSS configuration (heap or
//                           static), not per packet.
//
// Spec: vmbus-protocol.md 8.1-8.5, 6.9 (hash types), 5.8 (queue = sub_channel_index).
// Linux: drivers/net/hyperv/rndis_filter.c (netvsc_hash_key), netvsc_drv.c (netvsc_select_queue,
//        tx_table); DPDK lib/hash/rte_thash.h and app/test/test_thash.c (the vectors of 8.4).
// OpenVMM: vm/devices/net/netvsp/src/lib.rs (indirection tables).
// Thread-safety: ToeplitzHasher is immutable after construction: Hash() may be called from any
// number of threads concurrently. Free functions are pure.
#ifndef UVMBUS_WIRE_TOEPLITZ_H_
#define UVMBUS_WIRE_TOEPLITZ_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace uvmbus::wire {

// Key length (NETVSC_HASH_KEYLEN) and the longest input the key supports: 8n + 32 <= 320.
inline constexpr size_t kToeplitzKeySize = 40;
inline constexpr size_t kToeplitzMaxInputSize = 36;

using ToeplitzKey = std::array<uint8_t, kToeplitzKeySize>;

// The Microsoft RSS verification key, also Linux netvsc's default key (spec 8.2).
inline constexpr ToeplitzKey kStandardToeplitzKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// The hash of 8.1, computed bit by bit. Input bytes beyond kToeplitzMaxInputSize are ignored
// (the key has no window for them).
uint32_t ToeplitzHashBitwise(const ToeplitzKey& key, std::span<const uint8_t> input);

// Table-driven Toeplitz hash for one key.
class ToeplitzHasher {
 public:
  explicit ToeplitzHasher(const ToeplitzKey& key = kStandardToeplitzKey);

  // Same result as ToeplitzHashBitwise(key, input); bytes beyond 36 are ignored.
  uint32_t Hash(std::span<const uint8_t> input) const {
    const size_t n = input.size() < kToeplitzMaxInputSize ? input.size() : kToeplitzMaxInputSize;
    uint32_t result = 0;
    for (size_t i = 0; i < n; ++i) result ^= table_[i][input[i]];
    return result;
  }

  const ToeplitzKey& key() const { return key_; }

 private:
  ToeplitzKey key_;
  // table_[p][v] = XOR of the key windows starting at bits 8p + j for every set bit j of v
  // (bit 7 of v selects window 8p, bit 0 window 8p + 7).
  std::array<std::array<uint32_t, 256>, kToeplitzMaxInputSize> table_;
};

// ---------------------------------------------------------------------------------------------
// Input formats (spec 8.3). Addresses are in network byte order as they appear in the packet;
// ports are host-order integers and are written big-endian. The source always comes first.
// ---------------------------------------------------------------------------------------------

// A hash input of at most 36 bytes (no allocation).
struct ToeplitzInput {
  std::array<uint8_t, kToeplitzMaxInputSize> bytes{};
  uint8_t size = 0;
  std::span<const uint8_t> span() const { return {bytes.data(), size}; }
};

using Ipv4Address = std::array<uint8_t, 4>;
using Ipv6Address = std::array<uint8_t, 16>;

// NDIS_HASH_IPV4: src ‖ dst (8 bytes).
ToeplitzInput ToeplitzInputIpv4(const Ipv4Address& src, const Ipv4Address& dst);
// NDIS_HASH_TCP_IPV4 (and UDP/IPv4): src ‖ dst ‖ sport ‖ dport (12 bytes).
ToeplitzInput ToeplitzInputIpv4Ports(const Ipv4Address& src, const Ipv4Address& dst,
                                     uint16_t src_port, uint16_t dst_port);
// NDIS_HASH_IPV6: src ‖ dst (32 bytes).
ToeplitzInput ToeplitzInputIpv6(const Ipv6Address& src, const Ipv6Address& dst);
// NDIS_HASH_TCP_IPV6 (and UDP/IPv6): src ‖ dst ‖ sport ‖ dport (36 bytes).
ToeplitzInput ToeplitzInputIpv6Ports(const Ipv6Address& src, const Ipv6Address& dst,
                                     uint16_t src_port, uint16_t dst_port);

// Which input a packet is hashed with (spec 8.3 selection rule).
enum class RssHashType : uint8_t {
  kNone,  // no enabled type applies: the packet goes to queue 0 / indirection entry 0
  kIpv4,
  kTcpIpv4,
  kUdpIpv4,
  kIpv6,
  kTcpIpv6,
  kUdpIpv6,
};

// What the selection rule needs to know about a packet.
struct RssPacketClass {
  bool ipv4 = false;      // IPv4 header present
  bool ipv6 = false;      // IPv6 header present
  bool tcp = false;       // L4 is TCP
  bool udp = false;       // L4 is UDP
  bool fragment = false;  // IP fragment (ports unavailable or unreliable)
};

// The NDIS rule for `hashinfo` (kNdisHash* bits, spec 6.9): the 4-tuple type when enabled and
// the packet is TCP (UDP when a UDP type is enabled) and not a fragment; else the 2-tuple type
// when enabled; else kNone. Only the Toeplitz function (hashinfo low byte 0x01) hashes at all.
RssHashType SelectRssHashType(uint32_t hashinfo, const RssPacketClass& packet);

// ---------------------------------------------------------------------------------------------
// Channel mapping (spec 8.5)
// ---------------------------------------------------------------------------------------------

// Receive side (host): queue = table[hash & (N - 1)] with N = table.size() (128 from Linux; a
// power of two). A non-power-of-two N uses hash % N (never produced by Linux; defined so peer
// input cannot index out of range). An empty table (RSS disabled / not configured) gives 0, the
// primary channel. The result is a channel's sub_channel_index; the caller checks it against the
// channels actually open.
uint32_t RssQueueForHash(uint32_t hash, std::span<const uint32_t> indirection_table);

// Size of the guest's send table (VRSS_SEND_TAB_SIZE).
inline constexpr size_t kSendTableSize = 16;

// Transmit side (guest): tx_table[hash & 15].
constexpr uint32_t SendTableChannel(uint32_t hash,
                                    std::span<const uint32_t, kSendTableSize> tx_table) {
  return tx_table[hash & (kSendTableSize - 1)];
}

// Fills `table` with i % num_channels, the default for both the 128-entry receive table and the
// 16-entry send table (Linux, and OpenVMM's SEND_INDIRECTION_TABLE). num_channels 0 counts as 1.
void FillDefaultIndirectionTable(std::span<uint32_t> table, uint32_t num_channels);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_TOEPLITZ_H_
