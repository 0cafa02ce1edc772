// File: wire/toeplitz.cc
//
// Toeplitz hash (spec 8.1) and the RSS mapping helpers (8.3, 8.5).
#include "wire/toeplitz.h"

#include <algorithm>

#include "wire/rndis.h"  // kNdisHash* bits

namespace uvmbus::wire {
namespace {

// The 32 key bits starting at key bit `bit` (MSB first). Reads five bytes so that any bit
// alignment is covered: for every bit an input can reach (< 8 * 36), bytes bit / 8 .. bit / 8 + 4
// are inside the 40-byte key.
uint32_t KeyWindow(const ToeplitzKey& key, size_t bit) {
  const size_t byte = bit / 8;
  const unsigned shift = static_cast<unsigned>(bit % 8);
  uint64_t v = 0;
  for (size_t i = 0; i < 5; ++i) {
    v <<= 8;
    if (byte + i < key.size()) v |= key[byte + i];  // always true for bit < 288
  }
  // v holds 40 bits; the wanted 32 start `shift` bits below its top.
  return static_cast<uint32_t>(v >> (8 - shift));
}

void StoreBigEndian16(uint8_t* out, uint16_t v) {
  out[0] = static_cast<uint8_t>(v >> 8);
  out[1] = static_cast<uint8_t>(v & 0xFF);
}

}  // namespace

uint32_t ToeplitzHashBitwise(const ToeplitzKey& key, std::span<const uint8_t> input) {
  const size_t n = input.size() < kToeplitzMaxInputSize ? input.size() : kToeplitzMaxInputSize;
  uint32_t result = 0;
  for (size_t i = 0; i < 8 * n; ++i) {
    const bool bit = ((input[i / 8] >> (7 - i % 8)) & 1) != 0;
    if (bit) result ^= KeyWindow(key, i);
  }
  return result;
}

ToeplitzHasher::ToeplitzHasher(const ToeplitzKey& key) : key_(key), table_{} {
  for (size_t p = 0; p < kToeplitzMaxInputSize; ++p) {
    // The eight windows byte position p can select; each table entry XORs a subset.
    std::array<uint32_t, 8> window{};
    for (size_t j = 0; j < 8; ++j) window[j] = KeyWindow(key, 8 * p + j);
    for (size_t v = 0; v < 256; ++v) {
      uint32_t acc = 0;
      for (size_t j = 0; j < 8; ++j) {
        if ((v >> (7 - j)) & 1) acc ^= window[j];
      }
      table_[p][v] = acc;
    }
  }
}

ToeplitzInput ToeplitzInputIpv4(const Ipv4Address& src, const Ipv4Address& dst) {
  ToeplitzInput in;
  std::copy(src.begin(), src.end(), in.bytes.begin());
  std::copy(dst.begin(), dst.end(), in.bytes.begin() + 4);
  in.size = 8;
  return in;
}

ToeplitzInput ToeplitzInputIpv4Ports(const Ipv4Address& src, const Ipv4Address& dst,
                                     uint16_t src_port, uint16_t dst_port) {
  ToeplitzInput in = ToeplitzInputIpv4(src, dst);
  StoreBigEndian16(in.bytes.data() + 8, src_port);
  StoreBigEndian16(in.bytes.data() + 10, dst_port);
  in.size = 12;
  return in;
}

ToeplitzInput ToeplitzInputIpv6(const Ipv6Address& src, const Ipv6Address& dst) {
  ToeplitzInput in;
  std::copy(src.begin(), src.end(), in.bytes.begin());
  std::copy(dst.begin(), dst.end(), in.bytes.begin() + 16);
  in.size = 32;
  return in;
}

ToeplitzInput ToeplitzInputIpv6Ports(const Ipv6Address& src, const Ipv6Address& dst,
                                     uint16_t src_port, uint16_t dst_port) {
  ToeplitzInput in = ToeplitzInputIpv6(src, dst);
  StoreBigEndian16(in.bytes.data() + 32, src_port);
  StoreBigEndian16(in.bytes.data() + 34, dst_port);
  in.size = 36;
  return in;
}

RssHashType SelectRssHashType(uint32_t hashinfo, const RssPacketClass& packet) {
  if ((hashinfo & kNdisHashFunctionMask) != kNdisHashFunctionToeplitz) return RssHashType::kNone;
  // Ports are usable only for an unfragmented TCP/UDP packet (spec 8.3; Azure also leaves ports
  // out for fragments). The -EX types are treated as their plain forms: uvmbus does not
  // substitute home-address / routing-header addresses.
  const bool ports = !packet.fragment;
  if (packet.ipv4) {
    if (packet.tcp && ports && (hashinfo & kNdisHashTcpIpv4)) return RssHashType::kTcpIpv4;
    if (packet.udp && ports && (hashinfo & kNdisHashUdpIpv4)) return RssHashType::kUdpIpv4;
    if (hashinfo & kNdisHashIpv4) return RssHashType::kIpv4;
    return RssHashType::kNone;
  }
  if (packet.ipv6) {
    if (packet.tcp && ports && (hashinfo & (kNdisHashTcpIpv6 | kNdisHashTcpIpv6Ex))) {
      return RssHashType::kTcpIpv6;
    }
    if (packet.udp && ports && (hashinfo & (kNdisHashUdpIpv6 | kNdisHashUdpIpv6Ex))) {
      return RssHashType::kUdpIpv6;
    }
    if (hashinfo & (kNdisHashIpv6 | kNdisHashIpv6Ex)) return RssHashType::kIpv6;
  }
  return RssHashType::kNone;
}

uint32_t RssQueueForHash(uint32_t hash, std::span<const uint32_t> indirection_table) {
  const size_t n = indirection_table.size();
  if (n == 0) return 0;
  // Power of two (the NDIS rule, Linux's 128): mask. Anything else: modulo, so a peer-chosen
  // size can never index outside the table.
  const size_t index = (n & (n - 1)) == 0 ? (hash & (n - 1)) : (hash % n);
  return indirection_table[index];
}

void FillDefaultIndirectionTable(std::span<uint32_t> table, uint32_t num_channels) {
  const uint32_t n = num_channels == 0 ? 1 : num_channels;
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<uint32_t>(i % n);
}

}  // namespace uvmbus::wire
