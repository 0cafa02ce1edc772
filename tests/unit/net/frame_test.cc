// Frame basics: address parsing, batches, length checks.
#include "net/frame.h"

#include <gtest/gtest.h>

#include <vector>

namespace uvmbus::net {
namespace {

TEST(MacAddressTest, ParsesAndFormatsColonAndDashForms) {
  auto m = MacAddress::Parse("02:00:5E:0a:ff:01");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ToString(), "02:00:5e:0a:ff:01");
  auto d = MacAddress::Parse("02-00-5e-0a-ff-01");
  ASSERT_TRUE(d);
  EXPECT_EQ(*m, *d);
  EXPECT_EQ(MacAddress::FromU64(m->ToU64()), *m);
}

TEST(MacAddressTest, RejectsMalformedText) {
  for (const char* bad : {"", "02:00:5e:0a:ff", "02:00:5e:0a:ff:011", "02:00-5e:0a:ff:01",
                          "0g:00:5e:0a:ff:01", "02:00:5e:0a:ff:1 "}) {
    EXPECT_FALSE(MacAddress::Parse(bad)) << bad;
  }
}

TEST(MacAddressTest, ClassifiesGroupAddresses) {
  EXPECT_TRUE(MacAddress::Broadcast().IsMulticast());
  EXPECT_TRUE(MacAddress::Broadcast().IsBroadcast());
  EXPECT_TRUE(MacAddress::Parse("01:00:5e:00:00:01")->IsMulticast());
  EXPECT_FALSE(MacAddress::Parse("02:00:5e:00:00:01")->IsMulticast());
  EXPECT_TRUE(MacAddress{}.IsZero());
}

TEST(Ipv4AddressTest, ParsesDottedQuadOnly) {
  auto a = Ipv4Address::Parse("10.0.255.1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ToString(), "10.0.255.1");
  EXPECT_EQ(a->ToHostOrder(), 0x0a00ff01u);
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "10.0.0.1.", "10..0.1", "010.0.0.1",
                          "1.2.3.4x", "1.2.3.1000"}) {
    EXPECT_FALSE(Ipv4Address::Parse(bad)) << bad;
  }
}

TEST(FrameBatchTest, HoldsAtMostMaxBatchFramesWithIds) {
  std::vector<uint8_t> buf(64);
  FrameBatch b;
  for (uint32_t i = 0; i < kMaxBatch; ++i) {
    ASSERT_TRUE(b.Add(std::span<const uint8_t>(buf.data(), 60 + i % 4), i + 100));
  }
  EXPECT_TRUE(b.full());
  EXPECT_FALSE(b.Add(std::span<const uint8_t>(buf.data(), 60)));
  EXPECT_EQ(b.size(), kMaxBatch);
  EXPECT_EQ(b[5].id, 105u);
  EXPECT_EQ(b[5].length, 61u);
  b.Clear();
  EXPECT_TRUE(b.empty());
}

TEST(FrameBatchTest, AsFrameBatchViewsFilledReceiveSlots) {
  std::vector<uint8_t> a(100), c(100);
  RxBatch rx;
  rx.Add(std::span<uint8_t>(a.data(), a.size()), 7);
  rx.Add(std::span<uint8_t>(c.data(), c.size()), 8);
  rx[0].length = 60;
  rx[1].length = 70;
  FrameBatch tx = AsFrameBatch(rx, 1);
  ASSERT_EQ(tx.size(), 1u);
  EXPECT_EQ(tx[0].data, a.data());
  EXPECT_EQ(tx[0].length, 60u);
  EXPECT_EQ(tx[0].id, 7u);
}

TEST(FrameCheckTest, AcceptsHeaderToMtuPlusHeader) {
  EXPECT_EQ(CheckFrameLength(13, 1514), FrameCheck::kRunt);
  EXPECT_EQ(CheckFrameLength(14, 1514), FrameCheck::kOk);
  EXPECT_EQ(CheckFrameLength(1514, 1514), FrameCheck::kOk);
  EXPECT_EQ(CheckFrameLength(1515, 1514), FrameCheck::kTooBig);
  EXPECT_EQ(CheckFrameLength(kMaxFrameSize, MaxFrameSizeForMtu(kMaxMtu)), FrameCheck::kOk);
  EXPECT_TRUE(IsValidMtu(68));
  EXPECT_TRUE(IsValidMtu(9202));
  EXPECT_FALSE(IsValidMtu(67));
  EXPECT_FALSE(IsValidMtu(9203));
}

}  // namespace
}  // namespace uvmbus::net
