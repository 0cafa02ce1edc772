#include "common/guid.h"

#include <gtest/gtest.h>

namespace uvmbus {
namespace {

TEST(GuidTest, NetworkClassGuidHasSpecWireBytes) {
  // Spec section 0: f8615163-df3e-46c5-913f-f2d2f965ed0e is transmitted as these bytes.
  const Guid g = Guid::FromString("f8615163-df3e-46c5-913f-f2d2f965ed0e");
  const std::array<uint8_t, 16> wire = {0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46,
                                        0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e};
  EXPECT_EQ(g.bytes, wire);
  EXPECT_EQ(g.ToString(), "f8615163-df3e-46c5-913f-f2d2f965ed0e");
}

TEST(GuidTest, AcceptsBracesAndUpperCase) {
  auto g = Guid::Parse("{57164F39-9115-4E78-AB55-382F3BD5422D}");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->ToString(), "57164f39-9115-4e78-ab55-382f3bd5422d");
}

TEST(GuidTest, RejectsMalformedText) {
  EXPECT_FALSE(Guid::Parse("").has_value());
  EXPECT_FALSE(Guid::Parse("f8615163-df3e-46c5-913f-f2d2f965ed0").has_value());
  EXPECT_FALSE(Guid::Parse("f8615163-df3e-46c5-913f-f2d2f965ed0g").has_value());
  EXPECT_FALSE(Guid::Parse("f8615163+df3e-46c5-913f-f2d2f965ed0e").has_value());
  EXPECT_FALSE(Guid::Parse("{f8615163-df3e-46c5-913f-f2d2f965ed0e").has_value());
}

TEST(GuidTest, RandomGuidsDifferAndAreVersion4) {
  const Guid a = RandomGuid();
  const Guid b = RandomGuid();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.ToString()[14], '4');
  EXPECT_FALSE(a.IsZero());
  EXPECT_TRUE(Guid{}.IsZero());
}

}  // namespace
}  // namespace uvmbus
