// File: net/responder.h
//
// What: a tiny ARP + ICMP echo responder and the frame builders/parsers that go with it. Given a
// MAC and an IPv4 address, `Responder` answers
//   * ARP requests (RFC 826: Ethernet/IPv4, oper 1) whose target protocol address is ours, sent
//     to our MAC or broadcast, with an ARP reply (oper 2) to the requester;
//   * ICMP echo requests (RFC 792 type 8 code 0) to our MAC and IPv4 address, unfragmented, with
//     a valid IPv4 header checksum and ICMP checksum, with an echo reply (type 0) carrying the
//     same identifier, sequence number and data, a fresh 20-byte IPv4 header (TTL 64) and both
//     checksums recomputed (RFC 1071 internet checksum).
// Everything else (IPv6, other protocols, requests for other addresses) is ignored and counted;
// malformed packets (bad lengths, bad checksums) are counted separately and never answered.
// The demo uses it as the "other host" when no TAP is used; the tests use it to answer the
// kernel's ping through a TAP.
//
// Input is untrusted (spec 9.1 G3): every length is checked against the frame before use; the
// IPv4 total length (not the possibly padded frame length) bounds the ICMP message.
//
// Spec: none in vmbus-protocol.md (test/demo traffic); RFC 826, RFC 791, RFC 792, RFC 1071.
// Linux/OpenVMM: Linux net/ipv4/arp.c arp_process, net/ipv4/icmp.c icmp_echo (behaviour only).
// Thread-safety: Responder: one thread at a time (its counters are relaxed atomics and may be
//       read from any thread). Free functions are pure.
#ifndef UVMBUS_NET_RESPONDER_H_
#define UVMBUS_NET_RESPONDER_H_

#include <cstdint>
#include <optional>
#include <span>

#include "common/counter.h"
#include "net/frame.h"

namespace uvmbus::net {

// RFC 1071 one's-complement sum of `data` folded to 16 bits and complemented, continuing from
// the partial (unfolded, uncomplemented) sum `initial`. A buffer that includes a correct
// checksum field sums to 0.
uint16_t InternetChecksum(std::span<const uint8_t> data, uint32_t initial = 0);

// Sizes of the frames the builders produce (before the 60-byte padding).
inline constexpr uint32_t kArpFrameSize = kEthHeaderSize + 28;        // 42
inline constexpr uint32_t kIpv4HeaderSize = 20;
inline constexpr uint32_t kIcmpEchoHeaderSize = 8;

// Writes an ARP request "who has target_ip? tell sender_ip" (broadcast), padded to 60 bytes.
// Returns the frame length, or 0 if `out` is shorter than 60 bytes.
uint32_t BuildArpRequest(std::span<uint8_t> out, const MacAddress& sender_mac,
                         const Ipv4Address& sender_ip, const Ipv4Address& target_ip);

struct IcmpEcho {
  MacAddress src_mac{};
  MacAddress dst_mac{};
  Ipv4Address src_ip{};
  Ipv4Address dst_ip{};
  uint16_t identifier = 0;
  uint16_t sequence = 0;
  std::span<const uint8_t> payload{};
  bool reply = false;  // type 0 (reply) instead of 8 (request)
  uint8_t ttl = 64;
  uint16_t ip_id = 0;
};

// Writes an ICMP echo request (or reply) frame with valid checksums, padded to 60 bytes.
// Returns its length, or 0 if `out` is too small or the packet would exceed 65535 bytes.
uint32_t BuildIcmpEcho(std::span<uint8_t> out, const IcmpEcho& echo);

struct ParsedArp {
  uint16_t operation = 0;  // 1 request, 2 reply
  MacAddress sender_mac;
  Ipv4Address sender_ip;
  MacAddress target_mac;
  Ipv4Address target_ip;
};
// Parses an Ethernet/IPv4 ARP packet; nullopt if the frame is not one or is truncated.
std::optional<ParsedArp> ParseArp(std::span<const uint8_t> frame);

struct ParsedIcmpEcho {
  MacAddress src_mac;
  MacAddress dst_mac;
  Ipv4Address src_ip;
  Ipv4Address dst_ip;
  uint8_t type = 0;  // 8 request, 0 reply
  uint16_t identifier = 0;
  uint16_t sequence = 0;
  uint8_t ttl = 0;
  std::span<const uint8_t> payload;  // points into the frame
};
// Why a frame is not a usable ICMP echo.
enum class EchoParseError : uint8_t {
  kNotEcho,            // not IPv4/ICMP echo (request or reply): not an error for a responder
  kTruncated,          // lengths do not fit the frame
  kBadIpChecksum,
  kBadIcmpChecksum,
  kFragment,
};
// Parses and validates an ICMP echo request/reply frame (both checksums).
struct EchoParseResult {
  std::optional<ParsedIcmpEcho> echo;
  EchoParseError error = EchoParseError::kNotEcho;
};
EchoParseResult ParseIcmpEcho(std::span<const uint8_t> frame);

struct ResponderStats {
  uint64_t arp_replies = 0;
  uint64_t echo_replies = 0;
  uint64_t ignored = 0;    // not for us / not ARP request or echo request
  uint64_t malformed = 0;  // truncated, bad checksum, fragment
  uint64_t no_buffer = 0;  // a reply did not fit the buffer offered
};

class Responder {
 public:
  Responder(const MacAddress& mac, const Ipv4Address& ip) : mac_(mac), ip_(ip) {}

  // Writes the reply to `frame` into `reply` and returns its length; 0 if no reply is due.
  uint32_t Respond(std::span<const uint8_t> frame, std::span<uint8_t> reply);

  // Answers frames [0, count) of `in`. Replies go, in order, into the buffers of `replies`
  // (their lengths set); returns how many: slots [0, n) of `replies` are the frames to send
  // (AsFrameBatch(replies, n)). Frames beyond the available reply buffers are not answered.
  template <typename Byte>
  uint32_t Process(const BasicFrameBatch<Byte>& in, uint32_t count, RxBatch& replies) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < count && i < in.size() && n < replies.size(); ++i) {
      auto& slot = replies[n];
      const uint32_t len = Respond({in[i].data, in[i].length}, {slot.data, slot.capacity});
      if (len != 0) {
        slot.length = len;
        ++n;
      }
    }
    return n;
  }

  const MacAddress& mac() const { return mac_; }
  const Ipv4Address& ip() const { return ip_; }
  ResponderStats stats() const;

 private:
  uint32_t RespondArp(std::span<const uint8_t> frame, std::span<uint8_t> reply);
  uint32_t RespondIcmp(std::span<const uint8_t> frame, std::span<uint8_t> reply);

  MacAddress mac_;
  Ipv4Address ip_;
  Counter arp_replies_, echo_replies_, ignored_, malformed_, no_buffer_;
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_RESPONDER_H_
