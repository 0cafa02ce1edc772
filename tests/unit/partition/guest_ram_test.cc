// GuestRam: the bounds check every guest page number goes through (spec 9.1 G3), and memfd
// validation on the host side.
#include "partition/guest_ram.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

namespace uvmbus::partition {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

UniqueFd DupFd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

TEST(GuestRamTest, CreateRejectsZeroPages) {
  auto r = GuestRam::Create(0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(GuestRamTest, CreateRejectsMoreThanTheLimit) {
  auto r = GuestRam::Create((kMaxGuestRamBytes >> kPageShift) + 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(GuestRamTest, PagesCoversExactlyTheRequestedRange) {
  auto ram = GuestRam::Create(8);
  ASSERT_TRUE(ram) << ram.error();
  EXPECT_EQ(ram->size(), 8u * kPageSize);
  EXPECT_EQ(ram->page_count(), 8u);
  auto p = ram->Pages(3, 5);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->size(), 5u * kPageSize);
  EXPECT_EQ(p->data(), ram->all().data() + 3 * kPageSize);
}

TEST(GuestRamTest, PagesRejectsCountZero) {
  auto ram = GuestRam::Create(8);
  ASSERT_TRUE(ram);
  auto p = ram->Pages(0, 0);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
}

TEST(GuestRamTest, PagesRejectsRangesPastTheEnd) {
  auto ram = GuestRam::Create(8);
  ASSERT_TRUE(ram);
  EXPECT_TRUE(ram->Pages(7, 1));
  for (auto [gpn, count] : {std::pair<uint64_t, uint64_t>{8, 1}, {7, 2}, {0, 9}, {100, 1}}) {
    auto p = ram->Pages(gpn, count);
    ASSERT_FALSE(p) << gpn << "+" << count;
    EXPECT_EQ(p.error().code, ErrorCode::kMalformed);
  }
}

TEST(GuestRamTest, PagesRejectsRangesWhoseEndOverflows) {
  auto ram = GuestRam::Create(8);
  ASSERT_TRUE(ram);
  for (auto [gpn, count] : {std::pair<uint64_t, uint64_t>{kMax, 2},
                            {1, kMax},
                            {kMax, kMax},
                            {kMax >> kPageShift, 1},
                            {4, kMax - 3}}) {
    auto p = ram->Pages(gpn, count);
    ASSERT_FALSE(p) << gpn << "+" << count;
    EXPECT_EQ(p.error().code, ErrorCode::kMalformed);
  }
}

TEST(GuestRamTest, RangeChecksBytesOverflowSafely) {
  auto ram = GuestRam::Create(2);
  ASSERT_TRUE(ram);
  EXPECT_TRUE(ram->Range(kPageSize - 1, kPageSize + 1));
  EXPECT_EQ(ram->Range(0, 0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ram->Range(1, 2 * kPageSize).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram->Range(kMax, 2).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram->Range(8, kMax - 4).error().code, ErrorCode::kMalformed);
}

TEST(GuestRamTest, HostMappingSeesTheGuestsWrites) {
  auto guest = GuestRam::Create(4);
  ASSERT_TRUE(guest);
  auto host = GuestRam::FromFd(DupFd(guest->fd()), 4 * kPageSize);
  ASSERT_TRUE(host) << host.error();
  std::memcpy(guest->Pages(2, 1)->data(), "hello", 5);
  EXPECT_EQ(std::memcmp(host->Pages(2, 1)->data(), "hello", 5), 0);
}

TEST(GuestRamTest, FromFdRejectsAMemfdWithoutSizeSeal) {
  auto fd = CreateMemfd("unsealed", 4 * kPageSize, /*seal_size=*/false);
  ASSERT_TRUE(fd);
  auto r = GuestRam::FromFd(std::move(*fd), 4 * kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  EXPECT_NE(r.error().message.find("not sealed"), std::string::npos) << r.error();
}

TEST(GuestRamTest, FromFdRejectsASizeOtherThanAnnounced) {
  auto guest = GuestRam::Create(4);
  ASSERT_TRUE(guest);
  auto r = GuestRam::FromFd(DupFd(guest->fd()), 8 * kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
}

TEST(GuestRamTest, FromFdRejectsImpossibleAnnouncedSizes) {
  auto guest = GuestRam::Create(4);
  ASSERT_TRUE(guest);
  for (uint64_t bytes : {uint64_t{0}, uint64_t{100}, kMaxGuestRamBytes + kPageSize, kMax}) {
    auto r = GuestRam::FromFd(DupFd(guest->fd()), bytes);
    ASSERT_FALSE(r) << bytes;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  }
  EXPECT_EQ(GuestRam::FromFd(UniqueFd(), kPageSize).error().code, ErrorCode::kMalformed);
}

TEST(GuestRamTest, RevokeFailsLaterLookupsButKeepsOldSpansDereferenceable) {
  auto guest = GuestRam::Create(4);
  ASSERT_TRUE(guest);
  auto host = GuestRam::FromFd(DupFd(guest->fd()), 4 * kPageSize);
  ASSERT_TRUE(host);
  std::span<uint8_t> old = *host->Pages(1, 1);
  host->Revoke();
  EXPECT_FALSE(host->mapped());
  EXPECT_EQ(host->fd(), -1);
  EXPECT_EQ(host->Pages(1, 1).error().code, ErrorCode::kUnavailable);
  old[0] = 42;  // a stale writer hits private memory, not the guest
  EXPECT_EQ(guest->Pages(1, 1)->data()[0], 0);
  host->Revoke();  // idempotent
}

TEST(GuestRamTest, DefaultConstructedRamHasNoPages) {
  GuestRam ram;
  EXPECT_EQ(ram.size(), 0u);
  EXPECT_FALSE(ram.Pages(0, 1));
  EXPECT_TRUE(ram.all().empty());
}

}  // namespace
}  // namespace uvmbus::partition
