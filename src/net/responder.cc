#include "net/responder.h"

#include <algorithm>
#include <cstring>

namespace uvmbus::net {
namespace {

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Field offsets (RFC 826 / RFC 791 / RFC 792), from the start of the frame.
constexpr size_t kEthDst = 0, kEthSrc = 6, kEthType = 12;
constexpr size_t kArp = kEthHeaderSize;
constexpr size_t kArpHtype = kArp + 0, kArpPtype = kArp + 2, kArpHlen = kArp + 4,
                 kArpPlen = kArp + 5, kArpOper = kArp + 6, kArpSha = kArp + 8,
                 kArpSpa = kArp + 14, kArpTha = kArp + 18, kArpTpa = kArp + 24;
constexpr size_t kIp = kEthHeaderSize;
constexpr size_t kIpVerIhl = 0, kIpTos = 1, kIpTotalLen = 2, kIpId = 4, kIpFrag = 6,
                 kIpTtl = 8, kIpProto = 9, kIpChecksum = 10, kIpSrc = 12, kIpDst = 16;
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIcmpEchoReply = 0, kIcmpEchoRequest = 8;

// Replies are padded like a NIC pads runts on the wire, so that what the responder emits has the
// same shape as what a switch or TAP delivers. Callers guarantee out.size() >= 60.
uint32_t PadToWire(std::span<uint8_t> out, uint32_t len) {
  if (len < kMinWireFrameSize) {
    std::memset(out.data() + len, 0, kMinWireFrameSize - len);
    len = kMinWireFrameSize;
  }
  return len;
}

void WriteArp(uint8_t* p, uint16_t oper, const MacAddress& eth_dst, const MacAddress& sha,
              const Ipv4Address& spa, const MacAddress& tha, const Ipv4Address& tpa) {
  std::memcpy(p + kEthDst, eth_dst.bytes.data(), 6);
  std::memcpy(p + kEthSrc, sha.bytes.data(), 6);
  Store16(p + kEthType, kEtherTypeArp);
  Store16(p + kArpHtype, 1);  // Ethernet
  Store16(p + kArpPtype, kEtherTypeIpv4);
  p[kArpHlen] = 6;
  p[kArpPlen] = 4;
  Store16(p + kArpOper, oper);
  std::memcpy(p + kArpSha, sha.bytes.data(), 6);
  std::memcpy(p + kArpSpa, spa.bytes.data(), 4);
  std::memcpy(p + kArpTha, tha.bytes.data(), 6);
  std::memcpy(p + kArpTpa, tpa.bytes.data(), 4);
}

}  // namespace

uint16_t InternetChecksum(std::span<const uint8_t> data, uint32_t initial) {
  // A 64-bit accumulator cannot overflow for any frame (< 2^48 16-bit words), so the end-around
  // carries can all be folded once at the end.
  uint64_t sum = initial;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += Load16(&data[i]);
  if (i < data.size()) sum += uint32_t{data[i]} << 8;  // odd length: pad with a zero byte
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

uint32_t BuildArpRequest(std::span<uint8_t> out, const MacAddress& sender_mac,
                         const Ipv4Address& sender_ip, const Ipv4Address& target_ip) {
  if (out.size() < kMinWireFrameSize) return 0;
  WriteArp(out.data(), 1, MacAddress::Broadcast(), sender_mac, sender_ip, MacAddress{},
           target_ip);
  return PadToWire(out, kArpFrameSize);
}

uint32_t BuildIcmpEcho(std::span<uint8_t> out, const IcmpEcho& e) {
  const size_t icmp_len = kIcmpEchoHeaderSize + e.payload.size();
  const size_t ip_len = kIpv4HeaderSize + icmp_len;
  const size_t frame_len = kEthHeaderSize + ip_len;
  if (ip_len > 0xffff || out.size() < std::max<size_t>(frame_len, kMinWireFrameSize)) return 0;
  uint8_t* p = out.data();
  std::memcpy(p + kEthDst, e.dst_mac.bytes.data(), 6);
  std::memcpy(p + kEthSrc, e.src_mac.bytes.data(), 6);
  Store16(p + kEthType, kEtherTypeIpv4);
  // A fresh 20-byte header (no options, DF clear, id chosen by the caller) rather than a copy of
  // the request's: options such as record-route would need per-option processing to be echoed
  // correctly (RFC 1122 3.2.2.6), and Linux does not echo them either.
  uint8_t* ip = p + kIp;
  ip[kIpVerIhl] = 0x45;
  ip[kIpTos] = 0;
  Store16(ip + kIpTotalLen, static_cast<uint16_t>(ip_len));
  Store16(ip + kIpId, e.ip_id);
  Store16(ip + kIpFrag, 0);
  ip[kIpTtl] = e.ttl;
  ip[kIpProto] = kIpProtoIcmp;
  Store16(ip + kIpChecksum, 0);
  std::memcpy(ip + kIpSrc, e.src_ip.bytes.data(), 4);
  std::memcpy(ip + kIpDst, e.dst_ip.bytes.data(), 4);
  Store16(ip + kIpChecksum, InternetChecksum({ip, kIpv4HeaderSize}));
  uint8_t* icmp = ip + kIpv4HeaderSize;
  icmp[0] = e.reply ? kIcmpEchoReply : kIcmpEchoRequest;
  icmp[1] = 0;
  Store16(icmp + 2, 0);
  Store16(icmp + 4, e.identifier);
  Store16(icmp + 6, e.sequence);
  if (!e.payload.empty()) std::memcpy(icmp + 8, e.payload.data(), e.payload.size());
  // The checksum field is zero while summing, then holds the complement (RFC 792).
  Store16(icmp + 2, InternetChecksum({icmp, icmp_len}));
  return PadToWire(out, static_cast<uint32_t>(frame_len));
}

std::optional<ParsedArp> ParseArp(std::span<const uint8_t> f) {
  if (f.size() < kArpFrameSize || Load16(&f[kEthType]) != kEtherTypeArp) return std::nullopt;
  if (Load16(&f[kArpHtype]) != 1 || Load16(&f[kArpPtype]) != kEtherTypeIpv4 ||
      f[kArpHlen] != 6 || f[kArpPlen] != 4) {
    return std::nullopt;
  }
  ParsedArp a;
  a.operation = Load16(&f[kArpOper]);
  a.sender_mac = MacAddress::FromBytes(&f[kArpSha]);
  a.sender_ip = Ipv4Address::FromBytes(&f[kArpSpa]);
  a.target_mac = MacAddress::FromBytes(&f[kArpTha]);
  a.target_ip = Ipv4Address::FromBytes(&f[kArpTpa]);
  return a;
}

EchoParseResult ParseIcmpEcho(std::span<const uint8_t> f) {
  EchoParseResult r;
  if (f.size() < kEthHeaderSize + kIpv4HeaderSize || Load16(&f[kEthType]) != kEtherTypeIpv4) {
    return r;  // kNotEcho
  }
  const uint8_t* ip = &f[kIp];
  const size_t avail = f.size() - kEthHeaderSize;
  if ((ip[kIpVerIhl] >> 4) != 4 || ip[kIpProto] != kIpProtoIcmp) return r;
  const size_t ihl = size_t{ip[kIpVerIhl] & 0x0fu} * 4;
  const size_t total = Load16(ip + kIpTotalLen);
  // Ethernet may pad short packets: the IPv4 total length, not the frame, bounds the packet.
  if (ihl < kIpv4HeaderSize || total < ihl + kIcmpEchoHeaderSize || total > avail) {
    r.error = EchoParseError::kTruncated;
    return r;
  }
  if (InternetChecksum({ip, ihl}) != 0) {
    r.error = EchoParseError::kBadIpChecksum;
    return r;
  }
  const uint16_t frag = Load16(ip + kIpFrag);
  const uint8_t* icmp = ip + ihl;
  const size_t icmp_len = total - ihl;
  if ((icmp[0] != kIcmpEchoRequest && icmp[0] != kIcmpEchoReply) || icmp[1] != 0) return r;
  if ((frag & 0x3fff) != 0) {  // MF set or a non-zero offset
    r.error = EchoParseError::kFragment;
    return r;
  }
  if (InternetChecksum({icmp, icmp_len}) != 0) {
    r.error = EchoParseError::kBadIcmpChecksum;
    return r;
  }
  ParsedIcmpEcho e;
  e.dst_mac = MacAddress::FromBytes(&f[kEthDst]);
  e.src_mac = MacAddress::FromBytes(&f[kEthSrc]);
  e.src_ip = Ipv4Address::FromBytes(ip + kIpSrc);
  e.dst_ip = Ipv4Address::FromBytes(ip + kIpDst);
  e.ttl = ip[kIpTtl];
  e.type = icmp[0];
  e.identifier = Load16(icmp + 4);
  e.sequence = Load16(icmp + 6);
  e.payload = {icmp + kIcmpEchoHeaderSize, icmp_len - kIcmpEchoHeaderSize};
  r.echo = e;
  return r;
}

uint32_t Responder::Respond(std::span<const uint8_t> frame, std::span<uint8_t> reply) {
  if (frame.size() < kEthHeaderSize) {
    malformed_.Add();
    return 0;
  }
  switch (Load16(&frame[kEthType])) {
    case kEtherTypeArp: return RespondArp(frame, reply);
    case kEtherTypeIpv4: return RespondIcmp(frame, reply);
    default: ignored_.Add(); return 0;
  }
}

uint32_t Responder::RespondArp(std::span<const uint8_t> frame, std::span<uint8_t> reply) {
  const auto arp = ParseArp(frame);
  if (!arp) {
    malformed_.Add();
    return 0;
  }
  const MacAddress dst = MacAddress::FromBytes(&frame[kEthDst]);
  // Answer only requests for our address that reach us (broadcast, or unicast re-validation by a
  // neighbour cache); a group sender MAC would turn the reply into a multicast.
  if (arp->operation != 1 || arp->target_ip != ip_ || (dst != mac_ && !dst.IsBroadcast()) ||
      arp->sender_mac.IsMulticast()) {
    ignored_.Add();
    return 0;
  }
  if (reply.size() < kMinWireFrameSize) {
    no_buffer_.Add();
    return 0;
  }
  // The reply goes to the requester's hardware address from the ARP body (RFC 826), which is also
  // where it asked us to answer.
  WriteArp(reply.data(), 2, arp->sender_mac, mac_, ip_, arp->sender_mac, arp->sender_ip);
  arp_replies_.Add();
  return PadToWire(reply, kArpFrameSize);
}

uint32_t Responder::RespondIcmp(std::span<const uint8_t> frame, std::span<uint8_t> reply) {
  const EchoParseResult r = ParseIcmpEcho(frame);
  if (!r.echo) {
    (r.error == EchoParseError::kNotEcho ? ignored_ : malformed_).Add();
    return 0;
  }
  const ParsedIcmpEcho& req = *r.echo;
  // Only unicast echo requests to our MAC and address: answering broadcast pings or replies would
  // make the responder an amplifier (RFC 1122 3.2.2.6 lets hosts ignore broadcast echoes).
  if (req.type != kIcmpEchoRequest || req.dst_mac != mac_ || req.dst_ip != ip_ ||
      req.src_mac.IsMulticast() || req.src_ip.bytes[0] >= 224) {  // never answer to a group
    ignored_.Add();
    return 0;
  }
  IcmpEcho e;
  e.src_mac = mac_;
  e.dst_mac = req.src_mac;
  e.src_ip = ip_;
  e.dst_ip = req.src_ip;
  e.identifier = req.identifier;
  e.sequence = req.sequence;
  e.payload = req.payload;
  e.reply = true;
  const uint32_t len = BuildIcmpEcho(reply, e);
  if (len == 0) {
    no_buffer_.Add();
    return 0;
  }
  echo_replies_.Add();
  return len;
}

ResponderStats Responder::stats() const {
  ResponderStats s;
  s.arp_replies = arp_replies_.Get();
  s.echo_replies = echo_replies_.Get();
  s.ignored = ignored_.Get();
  s.malformed = malformed_.Get();
  s.no_buffer = no_buffer_.Get();
  return s;
}

}  // namespace uvmbus::net
