// File: devices/netvsc/flow_hash.cc
#include "devices/netvsc/flow_hash.h"

#include <cstring>

namespace uvmbus::netvsc {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88A8;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

}  // namespace

uint32_t FlowHasher::Hash(std::span<const uint8_t> frame) const {
  if (frame.size() < 14) return 0;
  size_t l3 = 14;
  uint16_t type = Be16(frame.data() + 12);
  if ((type == kEtherTypeVlan || type == kEtherTypeQinQ) && frame.size() >= 18) {
    type = Be16(frame.data() + 16);
    l3 = 18;
  }
  const std::span<const uint8_t> ip = frame.subspan(l3);
  if (type == kEtherTypeIpv4) {
    if (ip.size() < 20 || (ip[0] >> 4) != 4) return 0;
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0F) * 4;
    if (ihl < 20 || ip.size() < ihl) return 0;
    wire::Ipv4Address src;
    wire::Ipv4Address dst;
    std::memcpy(src.data(), ip.data() + 12, 4);
    std::memcpy(dst.data(), ip.data() + 16, 4);
    const uint8_t proto = ip[9];
    // More-fragments flag or a fragment offset: the ports are absent or unreliable (spec 8.3).
    const bool fragment = (Be16(ip.data() + 6) & 0x3FFF) != 0;
    if ((proto == kIpProtoTcp || proto == kIpProtoUdp) && !fragment && ip.size() >= ihl + 4) {
      return hasher_.Hash(
          wire::ToeplitzInputIpv4Ports(src, dst, Be16(ip.data() + ihl), Be16(ip.data() + ihl + 2))
              .span());
    }
    return hasher_.Hash(wire::ToeplitzInputIpv4(src, dst).span());
  }
  if (type == kEtherTypeIpv6) {
    if (ip.size() < 40 || (ip[0] >> 4) != 6) return 0;
    wire::Ipv6Address src;
    wire::Ipv6Address dst;
    std::memcpy(src.data(), ip.data() + 8, 16);
    std::memcpy(dst.data(), ip.data() + 24, 16);
    const uint8_t next = ip[6];
    // Only a TCP/UDP header right after the fixed header is used (no extension-header walk).
    if ((next == kIpProtoTcp || next == kIpProtoUdp) && ip.size() >= 44) {
      return hasher_.Hash(
          wire::ToeplitzInputIpv6Ports(src, dst, Be16(ip.data() + 40), Be16(ip.data() + 42))
              .span());
    }
    return hasher_.Hash(wire::ToeplitzInputIpv6(src, dst).span());
  }
  return 0;
}

}  // namespace uvmbus::netvsc
