// Tests for wire/toeplitz.h: every known-answer vector of spec 8.4 (an acceptance criterion of
// the NIC milestone) through both implementations, the input formats of 8.3, the hash-type
// selection rule and the channel mapping of 8.5.
#include "wire/toeplitz.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "wire/rndis.h"

namespace uvmbus::wire {
namespace {

Ipv4Address V4(const char* text) {
  Ipv4Address a{};
  EXPECT_EQ(inet_pton(AF_INET, text, a.data()), 1) << text;
  return a;
}

Ipv6Address V6(const char* text) {
  Ipv6Address a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

// Spec 8.4: destination and source as listed; inputs are built source first.
struct V4Vector {
  const char* dst;
  uint16_t dst_port;
  const char* src;
  uint16_t src_port;
  uint32_t ip_only;
  uint32_t with_ports;
};

constexpr V4Vector kV4Vectors[] = {
    {"161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178},
    {"65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea},
    {"12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a},
    {"209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f},
    {"202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2},
};

struct V6Vector {
  const char* dst;
  uint16_t dst_port;
  const char* src;
  uint16_t src_port;
  uint32_t ip_only;
  uint32_t with_ports;
};

constexpr V6Vector kV6Vectors[] = {
    {"3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d},
    {"ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf},
    {"fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61e985,
     0x02d1feef},
};

class ToeplitzTest : public ::testing::Test {
 protected:
  // 36 KiB: on the heap, as production code would keep it.
  std::unique_ptr<ToeplitzHasher> hasher_ = std::make_unique<ToeplitzHasher>();
};

TEST_F(ToeplitzTest, StandardKeyIsTheMicrosoftVerificationKey) {
  EXPECT_EQ(kStandardToeplitzKey[0], 0x6d);
  EXPECT_EQ(kStandardToeplitzKey[15], 0xb0);
  EXPECT_EQ(kStandardToeplitzKey[39], 0xfa);
  EXPECT_EQ(hasher_->key(), kStandardToeplitzKey);
}

TEST_F(ToeplitzTest, AllIpv4KnownAnswerVectorsPass) {
  for (const auto& v : kV4Vectors) {
    SCOPED_TRACE(std::string(v.src) + " -> " + v.dst);
    const auto ip = ToeplitzInputIpv4(V4(v.src), V4(v.dst));
    const auto ports = ToeplitzInputIpv4Ports(V4(v.src), V4(v.dst), v.src_port, v.dst_port);
    EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, ip.span()), v.ip_only);
    EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, ports.span()), v.with_ports);
    EXPECT_EQ(hasher_->Hash(ip.span()), v.ip_only);
    EXPECT_EQ(hasher_->Hash(ports.span()), v.with_ports);
  }
}

TEST_F(ToeplitzTest, AllIpv6KnownAnswerVectorsPass) {
  for (const auto& v : kV6Vectors) {
    SCOPED_TRACE(std::string(v.src) + " -> " + v.dst);
    const auto ip = ToeplitzInputIpv6(V6(v.src), V6(v.dst));
    const auto ports = ToeplitzInputIpv6Ports(V6(v.src), V6(v.dst), v.src_port, v.dst_port);
    EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, ip.span()), v.ip_only);
    EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, ports.span()), v.with_ports);
    EXPECT_EQ(hasher_->Hash(ip.span()), v.ip_only);
    EXPECT_EQ(hasher_->Hash(ports.span()), v.with_ports);
  }
}

TEST_F(ToeplitzTest, InputBytesOfTheSpecExampleAreSourceFirstNetworkOrder) {
  const auto in = ToeplitzInputIpv4Ports(V4("66.9.149.187"), V4("161.142.100.80"), 2794, 1766);
  const std::vector<uint8_t> expected = {0x42, 0x09, 0x95, 0xbb, 0xa1, 0x8e,
                                         0x64, 0x50, 0x0a, 0xea, 0x06, 0xe6};
  EXPECT_EQ(std::vector<uint8_t>(in.span().begin(), in.span().end()), expected);
  EXPECT_EQ(hasher_->Hash(expected), 0x51ccc178u);
}

TEST_F(ToeplitzTest, InputSizesMatchTheFormatTable) {
  const Ipv4Address a4{};
  const Ipv6Address a6{};
  EXPECT_EQ(ToeplitzInputIpv4(a4, a4).size, 8);
  EXPECT_EQ(ToeplitzInputIpv4Ports(a4, a4, 1, 2).size, 12);
  EXPECT_EQ(ToeplitzInputIpv6(a6, a6).size, 32);
  EXPECT_EQ(ToeplitzInputIpv6Ports(a6, a6, 1, 2).size, 36);
}

TEST_F(ToeplitzTest, EmptyInputHashesToZero) {
  EXPECT_EQ(hasher_->Hash({}), 0u);
  EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, {}), 0u);
}

TEST_F(ToeplitzTest, SingleBitSelectsTheKeyWindowAtThatBit) {
  // Input bit 0 set: the first 32 key bits. Bit 9 set: key bits 9..40.
  const std::vector<uint8_t> first = {0x80};
  EXPECT_EQ(hasher_->Hash(first), 0x6d5a56dau);
  const std::vector<uint8_t> ninth = {0x00, 0x40};
  const uint64_t key40 = 0x6d5a56da255bull;  // first 48 key bits
  EXPECT_EQ(hasher_->Hash(ninth), static_cast<uint32_t>((key40 >> (48 - 9 - 32)) & 0xFFFFFFFF));
}

TEST_F(ToeplitzTest, BytesBeyondThirtySixAreIgnored) {
  std::vector<uint8_t> in(40, 0xA5);
  const uint32_t h36 = hasher_->Hash(std::span<const uint8_t>(in).first(36));
  EXPECT_EQ(hasher_->Hash(in), h36);
  EXPECT_EQ(ToeplitzHashBitwise(kStandardToeplitzKey, in), h36);
}

TEST_F(ToeplitzTest, TableHasherMatchesBitwiseForRandomKeysAndInputs) {
  std::mt19937 rng(20240611);
  for (int k = 0; k < 8; ++k) {
    ToeplitzKey key;
    for (auto& b : key) b = static_cast<uint8_t>(rng());
    auto hasher = std::make_unique<ToeplitzHasher>(key);
    for (int i = 0; i < 200; ++i) {
      std::vector<uint8_t> in(rng() % 37);
      for (auto& b : in) b = static_cast<uint8_t>(rng());
      ASSERT_EQ(hasher->Hash(in), ToeplitzHashBitwise(key, in));
    }
  }
}

TEST_F(ToeplitzTest, HashIsLinearInTheInput) {
  // Toeplitz is XOR-linear: H(a ^ b) == H(a) ^ H(b). A property the table form must keep.
  std::mt19937 rng(7);
  for (int i = 0; i < 100; ++i) {
    std::vector<uint8_t> a(36), b(36), c(36);
    for (size_t j = 0; j < 36; ++j) {
      a[j] = static_cast<uint8_t>(rng());
      b[j] = static_cast<uint8_t>(rng());
      c[j] = a[j] ^ b[j];
    }
    ASSERT_EQ(hasher_->Hash(c), hasher_->Hash(a) ^ hasher_->Hash(b));
  }
}

// ---------------------------------------------------------------------------------------------
// Hash-type selection (spec 8.3)
// ---------------------------------------------------------------------------------------------

TEST(RssHashTypeTest, LinuxSettingsHashTcpWithPortsAndUdpOnAddressesOnly) {
  const uint32_t linux_info = kNdisHashInfoLinux;
  EXPECT_EQ(linux_info, 0x1701u);
  EXPECT_EQ(SelectRssHashType(linux_info, {.ipv4 = true, .tcp = true}), RssHashType::kTcpIpv4);
  EXPECT_EQ(SelectRssHashType(linux_info, {.ipv4 = true, .udp = true}), RssHashType::kIpv4);
  EXPECT_EQ(SelectRssHashType(linux_info, {.ipv6 = true, .tcp = true}), RssHashType::kTcpIpv6);
  EXPECT_EQ(SelectRssHashType(linux_info, {.ipv6 = true, .udp = true}), RssHashType::kIpv6);
  EXPECT_EQ(SelectRssHashType(linux_info, {.ipv4 = true}), RssHashType::kIpv4);
}

TEST(RssHashTypeTest, FragmentsAreHashedOnAddressesOnly) {
  EXPECT_EQ(SelectRssHashType(kNdisHashInfoLinux, {.ipv4 = true, .tcp = true, .fragment = true}),
            RssHashType::kIpv4);
  EXPECT_EQ(SelectRssHashType(kNdisHashInfoLinux, {.ipv6 = true, .tcp = true, .fragment = true}),
            RssHashType::kIpv6);
}

TEST(RssHashTypeTest, UdpTypesApplyWhenEnabled) {
  const uint32_t info = kNdisHashFunctionToeplitz | kNdisHashUdpIpv4 | kNdisHashUdpIpv6;
  EXPECT_EQ(SelectRssHashType(info, {.ipv4 = true, .udp = true}), RssHashType::kUdpIpv4);
  EXPECT_EQ(SelectRssHashType(info, {.ipv6 = true, .udp = true}), RssHashType::kUdpIpv6);
  // No 2-tuple type enabled: TCP over IPv4 is not hashed at all.
  EXPECT_EQ(SelectRssHashType(info, {.ipv4 = true, .tcp = true}), RssHashType::kNone);
}

TEST(RssHashTypeTest, NonIpOrNonToeplitzIsNotHashed) {
  EXPECT_EQ(SelectRssHashType(kNdisHashInfoLinux, {}), RssHashType::kNone);
  EXPECT_EQ(
      SelectRssHashType(kNdisHashInfoLinux & ~kNdisHashFunctionMask, {.ipv4 = true, .tcp = true}),
      RssHashType::kNone);
  EXPECT_EQ(SelectRssHashType(kNdisHashFunctionToeplitz | kNdisHashIpv6, {.ipv4 = true}),
            RssHashType::kNone);
}

TEST(RssHashTypeTest, ExTypesCountAsTheirPlainForms) {
  const uint32_t info = kNdisHashFunctionToeplitz | kNdisHashIpv6Ex | kNdisHashTcpIpv6Ex;
  EXPECT_EQ(SelectRssHashType(info, {.ipv6 = true, .tcp = true}), RssHashType::kTcpIpv6);
  EXPECT_EQ(SelectRssHashType(info, {.ipv6 = true}), RssHashType::kIpv6);
}

// ---------------------------------------------------------------------------------------------
// Channel mapping (spec 8.5)
// ---------------------------------------------------------------------------------------------

TEST(RssMappingTest, ReceiveQueueIsTheIndirectionEntryAtTheLowHashBits) {
  std::vector<uint32_t> table(128);
  FillDefaultIndirectionTable(table, 3);  // Linux: i % num_chn
  EXPECT_EQ(RssQueueForHash(0x51ccc178, table), (0x51ccc178u & 127) % 3);
  EXPECT_EQ(RssQueueForHash(0xFFFFFFFF, table), 127u % 3);
  EXPECT_EQ(RssQueueForHash(128, table), 0u);  // only the low 7 bits count
  table[0x78] = 9;
  EXPECT_EQ(RssQueueForHash(0x51ccc178, table), 9u);
}

TEST(RssMappingTest, NoTableMeansThePrimaryChannel) {
  EXPECT_EQ(RssQueueForHash(0xDEADBEEF, {}), 0u);
}

TEST(RssMappingTest, NonPowerOfTwoTableNeverIndexesOutOfRange) {
  const std::vector<uint32_t> table = {10, 11, 12};
  for (uint32_t h : {0u, 1u, 2u, 3u, 0xFFFFFFFFu}) {
    EXPECT_EQ(RssQueueForHash(h, table), table[h % 3]);
  }
}

TEST(RssMappingTest, SendChannelIsTheTxTableEntryAtTheLowFourBits) {
  std::array<uint32_t, kSendTableSize> tx{};
  FillDefaultIndirectionTable(tx, 4);
  EXPECT_EQ(SendTableChannel(0x12345673, tx), 3u % 4);
  EXPECT_EQ(SendTableChannel(0x1F, tx), 15u % 4);
  tx[5] = 7;
  EXPECT_EQ(SendTableChannel(0xABCD0005, tx), 7u);
}

TEST(RssMappingTest, DefaultTableIsIndexModuloChannels) {
  std::array<uint32_t, 16> t{};
  FillDefaultIndirectionTable(t, 5);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(t[i], i % 5);
  FillDefaultIndirectionTable(t, 0);  // treated as one channel
  for (uint32_t v : t) EXPECT_EQ(v, 0u);
}

TEST(RssMappingTest, KnownAnswerFlowLandsOnTheExpectedQueue) {
  // End to end: the first IPv4 TCP vector with Linux's default 128-entry table over 8 channels.
  auto hasher = std::make_unique<ToeplitzHasher>();
  const auto in = ToeplitzInputIpv4Ports(V4("66.9.149.187"), V4("161.142.100.80"), 2794, 1766);
  std::vector<uint32_t> table(128);
  FillDefaultIndirectionTable(table, 8);
  EXPECT_EQ(RssQueueForHash(hasher->Hash(in.span()), table), (0x51ccc178u & 127) % 8);
}

}  // namespace
}  // namespace uvmbus::wire
