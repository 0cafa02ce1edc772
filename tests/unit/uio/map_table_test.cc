// Tests of the map table line format (devices/uio/map_table.h) the LD_PRELOAD shim parses.
#include "devices/uio/map_table.h"

#include <gtest/gtest.h>

namespace uvmbus::devices::uio {
namespace {

TEST(MapTableTest, ParsesMapAndRingLinesInHexAndDecimal) {
  MapEntry e;
  ASSERT_EQ(ParseMapTableLine("map 3 0x400000 0x1000000\n", &e), 1);
  EXPECT_EQ(e.kind, MapEntryKind::kMap);
  EXPECT_EQ(e.id, 3u);
  EXPECT_EQ(e.gpa, 0x400000u);
  EXPECT_EQ(e.size, 0x1000000u);
  ASSERT_EQ(ParseMapTableLine("ring 17 8192 16384", &e), 1);
  EXPECT_EQ(e.kind, MapEntryKind::kRing);
  EXPECT_EQ(e.id, 17u);
  EXPECT_EQ(e.gpa, 8192u);
  EXPECT_EQ(e.size, 16384u);
}

TEST(MapTableTest, HeaderAndEmptyLinesAreSkipped) {
  MapEntry e;
  EXPECT_EQ(ParseMapTableLine("uvmbus-uio-table 1\n", &e), 0);
  EXPECT_EQ(ParseMapTableLine("\n", &e), 0);
  EXPECT_EQ(ParseMapTableLine("", &e), 0);
}

TEST(MapTableTest, RejectsMalformedLines) {
  MapEntry e;
  EXPECT_EQ(ParseMapTableLine("map 5 0x1000 0x1000", &e), -1);  // only maps 0..4 exist
  EXPECT_EQ(ParseMapTableLine("map 1 0x1000", &e), -1);         // size missing
  EXPECT_EQ(ParseMapTableLine("map 1 0x1000 0", &e), -1);       // empty resource
  EXPECT_EQ(ParseMapTableLine("ring 1 0xffffffffffff0000 0x20000", &e), -1);  // wraps
  EXPECT_EQ(ParseMapTableLine("ring 1 0x1000 0x2000 junk", &e), -1);
  EXPECT_EQ(ParseMapTableLine("ring -1 0x1000 0x2000", &e), -1);
  EXPECT_EQ(ParseMapTableLine("gpadl 1 2 3", &e), -1);
}

}  // namespace
}  // namespace uvmbus::devices::uio
