// File: devices/netvsp/rss.cc — see rss.h.
#include "devices/netvsp/rss.h"

#include <cstring>

namespace uvmbus::netvsp {
namespace {

constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88A8;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint8_t kIpv6Fragment = 44;

uint16_t Load16Be(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>((uint16_t{b[off]} << 8) | b[off + 1]);
}

// Reads the ports at `l4` when both fit in the copied head.
void ReadPorts(std::span<const uint8_t> head, size_t l4, FrameClass* c) {
  if (l4 > head.size() || head.size() - l4 < 4) {
    // Ports not visible: hash on addresses only (treat like a fragment).
    c->rss.tcp = c->rss.udp = false;
    return;
  }
  c->src_port = Load16Be(head, l4);
  c->dst_port = Load16Be(head, l4 + 2);
}

}  // namespace

FrameClass ClassifyFrame(std::span<const uint8_t> head) {
  FrameClass c;
  if (head.size() < net::kEthHeaderSize) return c;
  size_t l3 = net::kEthHeaderSize;
  uint16_t type = Load16Be(head, 12);
  if (type == kEtherTypeVlan || type == kEtherTypeQinQ) {
    if (head.size() < l3 + 4) return c;
    type = Load16Be(head, l3 + 2);
    l3 += 4;
  }
  if (type == net::kEtherTypeIpv4) {
    if (head.size() - l3 < 20) return c;
    const uint8_t vihl = head[l3];
    const size_t ihl = size_t{vihl & 0x0Fu} * 4;
    if ((vihl >> 4) != 4 || ihl < 20) return c;
    c.rss.ipv4 = true;
    std::memcpy(c.src.data(), &head[l3 + 12], 4);
    std::memcpy(c.dst.data(), &head[l3 + 16], 4);
    // More-fragments flag or a fragment offset: ports are not (reliably) present.
    c.rss.fragment = (Load16Be(head, l3 + 6) & 0x3FFF) != 0;
    const uint8_t proto = head[l3 + 9];
    if (!c.rss.fragment) {
      c.rss.tcp = proto == kIpProtoTcp;
      c.rss.udp = proto == kIpProtoUdp;
      if (c.rss.tcp || c.rss.udp) ReadPorts(head, l3 + ihl, &c);
    }
    return c;
  }
  if (type == kEtherTypeIpv6) {
    if (head.size() - l3 < 40 || (head[l3] >> 4) != 6) return c;
    c.rss.ipv6 = true;
    std::memcpy(c.src.data(), &head[l3 + 8], 16);
    std::memcpy(c.dst.data(), &head[l3 + 24], 16);
    const uint8_t next = head[l3 + 6];
    // Only an L4 header right after the fixed header is looked at; other extension headers
    // leave the 2-tuple hash (the -EX types are not offered, spec 8.3).
    c.rss.fragment = next == kIpv6Fragment;
    c.rss.tcp = next == kIpProtoTcp;
    c.rss.udp = next == kIpProtoUdp;
    if (c.rss.tcp || c.rss.udp) ReadPorts(head, l3 + 40, &c);
    return c;
  }
  return c;
}

RssConfig::Result RssConfig::Classify(std::span<const uint8_t> head) const {
  Result r;
  const FrameClass c = ClassifyFrame(head);
  const wire::RssHashType type = wire::SelectRssHashType(hashinfo, c.rss);
  wire::ToeplitzInput input;
  wire::Ipv4Address s4{}, d4{};
  wire::Ipv6Address s6{}, d6{};
  std::memcpy(s4.data(), c.src.data(), 4);
  std::memcpy(d4.data(), c.dst.data(), 4);
  std::memcpy(s6.data(), c.src.data(), 16);
  std::memcpy(d6.data(), c.dst.data(), 16);
  switch (type) {
    case wire::RssHashType::kNone:
      r.queue = table.empty() ? 0 : table[0];
      return r;
    case wire::RssHashType::kIpv4:
      input = wire::ToeplitzInputIpv4(s4, d4);
      break;
    case wire::RssHashType::kTcpIpv4:
    case wire::RssHashType::kUdpIpv4:
      input = wire::ToeplitzInputIpv4Ports(s4, d4, c.src_port, c.dst_port);
      break;
    case wire::RssHashType::kIpv6:
      input = wire::ToeplitzInputIpv6(s6, d6);
      break;
    case wire::RssHashType::kTcpIpv6:
    case wire::RssHashType::kUdpIpv6:
      input = wire::ToeplitzInputIpv6Ports(s6, d6, c.src_port, c.dst_port);
      break;
  }
  const uint32_t hash = hasher.Hash(input.span());
  r.hash = hash;
  r.queue = wire::RssQueueForHash(hash, table);
  return r;
}

bool PacketFilterAccepts(uint32_t filter, const net::MacAddress& own, const uint8_t* dst) {
  if (filter == 0) return false;
  if ((filter & wire::kNdisPacketFilterPromiscuous) != 0) return true;
  const net::MacAddress d = net::MacAddress::FromBytes(dst);
  if (d.IsBroadcast()) return (filter & wire::kNdisPacketFilterBroadcast) != 0;
  if (d.IsMulticast()) {
    // No multicast list is kept (OID_802_3_MULTICAST_LIST is accepted and ignored), so MULTICAST
    // admits every group like ALL_MULTICAST.
    return (filter & (wire::kNdisPacketFilterAllMulticast | wire::kNdisPacketFilterMulticast)) !=
           0;
  }
  return (filter & wire::kNdisPacketFilterDirected) != 0 && d == own;
}

}  // namespace uvmbus::netvsp
