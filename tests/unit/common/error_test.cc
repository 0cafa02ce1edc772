#include "common/error.h"

#include <cerrno>

#include <gtest/gtest.h>

#include "common/mapped_region.h"

namespace uvmbus {
namespace {

Expected<int> Half(int v) {
  if (v % 2 != 0) return MakeError(ErrorCode::kInvalidArgument, "{} is odd", v);
  return v / 2;
}

TEST(ErrorTest, ExpectedCarriesCodeAndMessage) {
  EXPECT_EQ(Half(4).value(), 2);
  auto r = Half(3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().ToString(), "invalid argument: 3 is odd");
}

TEST(ErrorTest, FromErrnoNamesTheCall) {
  const Error e = Error::FromErrno("open", ENOENT);
  EXPECT_EQ(e.code, ErrorCode::kIo);
  EXPECT_EQ(e.message, "open: No such file or directory");
}

TEST(MappedRegionTest, SealedMemfdReportsSizeAndSeal) {
  auto fd = CreateMemfd("test", 8192, /*seal_size=*/true);
  ASSERT_TRUE(fd.has_value()) << fd.error();
  auto info = InspectMemfd(fd->get());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->size, 8192u);
  EXPECT_TRUE(info->size_sealed);
  EXPECT_NE(::ftruncate(fd->get(), 4096), 0);  // cannot shrink a sealed memfd
  auto map = MappedRegion::MapShared(fd->get(), 8192);
  ASSERT_TRUE(map.has_value());
  map->data()[8191] = 7;
  EXPECT_EQ(map->span().back(), 7);
}

}  // namespace
}  // namespace uvmbus
