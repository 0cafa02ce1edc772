// ARP/ICMP responder, builders and checksums, against frames captured from the Linux kernel.
#include "net/responder.h"

#include <gtest/gtest.h>

#include <vector>

#include "net_test_util.h"

namespace uvmbus::net {
namespace {

// ICMP echo request sent by Linux 6.18 (ping socket) from 02:..:01/10.0.0.1 to
// 02:..:02/10.0.0.2: id 0xb468, seq 7, 32 data bytes 0x10..0x2f, IPv4 id 0x01c8 with DF, TTL 64;
// captured with tcpdump -xx on a veth.
const std::vector<uint8_t> kKernelEchoRequest = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x3c, 0x01, 0xc8, 0x40, 0x00, 0x40, 0x01, 0x24, 0xf7, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
    0x00, 0x02, 0x08, 0x00, 0x51, 0x8e, 0xb4, 0x68, 0x00, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f};

// ARP request sent by the same kernel: who-has 10.0.0.3 tell 10.0.0.1 (42 bytes, unpadded).
const std::vector<uint8_t> kKernelArpRequest = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x03};

const MacAddress kMac1{{0x02, 0, 0, 0, 0, 0x01}};
const MacAddress kMac2{{0x02, 0, 0, 0, 0, 0x02}};
const MacAddress kMac3{{0x02, 0, 0, 0, 0, 0x03}};
const Ipv4Address kIp1{{10, 0, 0, 1}};
const Ipv4Address kIp2{{10, 0, 0, 2}};
const Ipv4Address kIp3{{10, 0, 0, 3}};

TEST(InternetChecksumTest, MatchesRfc1071Example) {
  // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2; the checksum its complement.
  const std::vector<uint8_t> data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(InternetChecksum(data), static_cast<uint16_t>(~0xddf2));
  const std::vector<uint8_t> odd = {0x00, 0x01, 0xf2};  // odd length pads with zero
  EXPECT_EQ(InternetChecksum(odd), static_cast<uint16_t>(~(0x0001 + 0xf200)));
}

TEST(InternetChecksumTest, KernelHeadersSumToZero) {
  const std::span<const uint8_t> f(kKernelEchoRequest);
  EXPECT_EQ(InternetChecksum(f.subspan(14, 20)), 0);
  EXPECT_EQ(InternetChecksum(f.subspan(34)), 0);
}

TEST(ParseIcmpEchoTest, ParsesTheKernelRequest) {
  const EchoParseResult r = ParseIcmpEcho(kKernelEchoRequest);
  ASSERT_TRUE(r.echo);
  EXPECT_EQ(r.echo->type, 8);
  EXPECT_EQ(r.echo->identifier, 0xb468);
  EXPECT_EQ(r.echo->sequence, 7);
  EXPECT_EQ(r.echo->src_ip, kIp1);
  EXPECT_EQ(r.echo->dst_ip, kIp2);
  EXPECT_EQ(r.echo->ttl, 64);
  ASSERT_EQ(r.echo->payload.size(), 32u);
  EXPECT_EQ(r.echo->payload[0], 0x10);
}

TEST(ParseIcmpEchoTest, ReportsEachKindOfDamage) {
  auto bad_ip = kKernelEchoRequest;
  bad_ip[24] ^= 1;
  EXPECT_EQ(ParseIcmpEcho(bad_ip).error, EchoParseError::kBadIpChecksum);
  auto bad_icmp = kKernelEchoRequest;
  bad_icmp[60] ^= 1;
  EXPECT_EQ(ParseIcmpEcho(bad_icmp).error, EchoParseError::kBadIcmpChecksum);
  auto truncated = kKernelEchoRequest;
  truncated.resize(60);  // total length 60 claims 74 - 14 bytes
  EXPECT_EQ(ParseIcmpEcho(truncated).error, EchoParseError::kTruncated);
  auto short_ihl = kKernelEchoRequest;
  short_ihl[14] = 0x44;
  EXPECT_EQ(ParseIcmpEcho(short_ihl).error, EchoParseError::kTruncated);
  auto fragment = kKernelEchoRequest;
  fragment[20] = 0x20;  // MF; fix the header checksum so only the fragment check fails
  fragment[24] = fragment[25] = 0;
  const uint16_t c = InternetChecksum(std::span<const uint8_t>(fragment).subspan(14, 20));
  fragment[24] = static_cast<uint8_t>(c >> 8);
  fragment[25] = static_cast<uint8_t>(c);
  EXPECT_EQ(ParseIcmpEcho(fragment).error, EchoParseError::kFragment);
  EXPECT_EQ(ParseIcmpEcho(kKernelArpRequest).error, EchoParseError::kNotEcho);
  EXPECT_FALSE(ParseIcmpEcho(std::span<const uint8_t>(kKernelEchoRequest).first(20)).echo);
}

TEST(ResponderTest, AnswersTheKernelEchoRequestWithExactBytes) {
  Responder r(kMac2, kIp2);
  std::vector<uint8_t> reply(1514, 0xcc);
  const uint32_t len = r.Respond(kKernelEchoRequest, reply);
  ASSERT_EQ(len, 74u);
  // Expected reply: addresses swapped; fresh IPv4 header (id 0, no DF, TTL 64), whose checksum is
  // the request's 0x24f7 without id 0x01c8 and DF 0x4000 (RFC 1624): 0x66bf; ICMP type 0 with
  // checksum 0x518e + 0x0800 = 0x598e; identifier, sequence and data unchanged.
  std::vector<uint8_t> expected = kKernelEchoRequest;
  std::copy(kMac1.bytes.begin(), kMac1.bytes.end(), expected.begin());
  std::copy(kMac2.bytes.begin(), kMac2.bytes.end(), expected.begin() + 6);
  expected[18] = expected[19] = 0;  // id
  expected[20] = 0;                 // flags
  expected[24] = 0x66;
  expected[25] = 0xbf;
  std::copy(kIp2.bytes.begin(), kIp2.bytes.end(), expected.begin() + 26);
  std::copy(kIp1.bytes.begin(), kIp1.bytes.end(), expected.begin() + 30);
  expected[34] = 0;
  expected[36] = 0x59;
  expected[37] = 0x8e;
  EXPECT_EQ(std::vector<uint8_t>(reply.begin(), reply.begin() + len), expected);
  EXPECT_EQ(r.stats().echo_replies, 1u);
}

TEST(ResponderTest, AnswersTheKernelArpRequestPaddedToSixtyBytes) {
  Responder r(kMac3, kIp3);
  std::vector<uint8_t> reply(100, 0xcc);
  const uint32_t len = r.Respond(kKernelArpRequest, reply);
  ASSERT_EQ(len, 60u);
  const std::vector<uint8_t> expected_head = {
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x06,  // eth
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,                                      // reply
      0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x03,                          // us
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01};                         // them
  EXPECT_EQ(std::vector<uint8_t>(reply.begin(), reply.begin() + 42), expected_head);
  for (uint32_t i = 42; i < 60; ++i) EXPECT_EQ(reply[i], 0) << i;
  EXPECT_EQ(r.stats().arp_replies, 1u);
}

TEST(ResponderTest, IgnoresWhatIsNotForIt) {
  Responder r(kMac3, kIp3);
  std::vector<uint8_t> reply(1514);
  // An echo request for another host, an ARP request for another address, an ARP reply, IPv6.
  EXPECT_EQ(r.Respond(kKernelEchoRequest, reply), 0u);
  auto arp_other = kKernelArpRequest;
  arp_other[41] = 9;
  EXPECT_EQ(r.Respond(arp_other, reply), 0u);
  auto arp_reply = kKernelArpRequest;
  arp_reply[21] = 2;
  EXPECT_EQ(r.Respond(arp_reply, reply), 0u);
  auto ipv6 = kKernelEchoRequest;
  ipv6[12] = 0x86;
  ipv6[13] = 0xdd;
  EXPECT_EQ(r.Respond(ipv6, reply), 0u);
  EXPECT_EQ(r.stats().ignored, 4u);
  // Damaged requests are counted as malformed and never answered.
  Responder r2(kMac2, kIp2);
  auto bad = kKernelEchoRequest;
  bad[70] ^= 0xff;
  EXPECT_EQ(r2.Respond(bad, reply), 0u);
  EXPECT_EQ(r2.Respond(std::span<const uint8_t>(kKernelArpRequest).first(30), reply), 0u);
  EXPECT_EQ(r2.Respond(std::span<const uint8_t>(kKernelArpRequest).first(5), reply), 0u);
  EXPECT_EQ(r2.stats().malformed, 3u);
}

TEST(ResponderTest, ReplyThatDoesNotFitIsCountedNotWritten) {
  Responder r(kMac2, kIp2);
  std::vector<uint8_t> small(40, 0xcc);
  EXPECT_EQ(r.Respond(kKernelEchoRequest, small), 0u);
  EXPECT_EQ(r.stats().no_buffer, 1u);
  EXPECT_EQ(small[0], 0xcc);
}

TEST(ResponderTest, ProcessAnswersABatchInOrder) {
  Responder r(kMac2, kIp2);
  auto arp_for_2 = kKernelArpRequest;
  arp_for_2[41] = 2;
  FrameBatch in;
  in.Add(kKernelEchoRequest);
  in.Add(kKernelArpRequest);  // for 10.0.0.3: ignored
  in.Add(arp_for_2);
  std::vector<std::vector<uint8_t>> bufs(4, std::vector<uint8_t>(1514));
  RxBatch out;
  for (auto& b : bufs) out.Add(std::span<uint8_t>(b));
  ASSERT_EQ(r.Process(in, in.size(), out), 2u);
  EXPECT_TRUE(ParseIcmpEcho(out[0].bytes()).echo);
  auto arp = ParseArp(out[1].bytes());
  ASSERT_TRUE(arp);
  EXPECT_EQ(arp->operation, 2);
  EXPECT_EQ(arp->sender_ip, kIp2);
  FrameBatch send = AsFrameBatch(out, 2);
  EXPECT_EQ(send.size(), 2u);
}

TEST(BuildersTest, ArpRequestAndEchoRequestRoundTrip) {
  std::vector<uint8_t> buf(1514);
  const uint32_t arp_len = BuildArpRequest(buf, kMac1, kIp1, kIp3);
  ASSERT_EQ(arp_len, 60u);
  EXPECT_TRUE(std::equal(kKernelArpRequest.begin(), kKernelArpRequest.end(), buf.begin()));
  EXPECT_EQ(BuildArpRequest(std::span<uint8_t>(buf).first(59), kMac1, kIp1, kIp3), 0u);

  std::vector<uint8_t> data(32);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0x10 + i);
  IcmpEcho e{.src_mac = kMac1, .dst_mac = kMac2, .src_ip = kIp1, .dst_ip = kIp2,
             .identifier = 0xb468, .sequence = 7, .payload = data, .ip_id = 0x01c8};
  const uint32_t len = BuildIcmpEcho(buf, e);
  ASSERT_EQ(len, 74u);
  // Identical to the kernel's request except DF (which we do not set): checksum + 0x4000.
  auto expected = kKernelEchoRequest;
  expected[20] = 0;
  expected[24] = 0x64;
  expected[25] = 0xf7;
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + len), expected);
  EXPECT_EQ(BuildIcmpEcho(std::span<uint8_t>(buf).first(73), e), 0u);
}

}  // namespace
}  // namespace uvmbus::net
