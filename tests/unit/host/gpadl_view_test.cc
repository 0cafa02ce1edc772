// Tests of host/gpadl_view.h: PFN validation and the contiguous view of scattered guest pages.
#include "host/gpadl_view.h"

#include <gtest/gtest.h>

#include <cstring>

#include "partition/local_partition.h"

namespace uvmbus::host {
namespace {

class GpadlViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = partition::LocalPartition::Create(1, 64 * 4096, "gpadl-view");
    ASSERT_TRUE(p.has_value());
    partition_ = std::move(*p);
    // Fill every page with its own page number so a view can be checked byte by byte.
    auto all = partition_->guest().ram().all();
    for (size_t page = 0; page < all.size() / 4096; ++page) {
      std::memset(all.data() + page * 4096, static_cast<int>(page & 0xFF), 4096);
    }
  }
  GpadlView::PageResolver Resolver() {
    return [this](uint64_t gpn, uint64_t count) {
      return partition_->host().GuestPages(gpn, count);
    };
  }
  static wire::GpaRange Range(std::vector<uint64_t> pfns, uint32_t offset = 0,
                              uint32_t count = 0) {
    wire::GpaRange r;
    r.byte_offset = offset;
    r.byte_count = count != 0 ? count : static_cast<uint32_t>(pfns.size() * 4096) - offset;
    r.pfns = std::move(pfns);
    return r;
  }
  std::unique_ptr<partition::LocalPartition> partition_;
};

TEST_F(GpadlViewTest, ContiguousPfnsViewGuestRamDirectly) {
  auto view = GpadlView::Create(Resolver(), 0x10, 1, {Range({10, 11, 12})});
  ASSERT_TRUE(view.has_value());
  EXPECT_TRUE((*view)->direct());
  EXPECT_EQ((*view)->run_count(), 1u);
  EXPECT_EQ((*view)->page_count(), 3u);
  // The host's own mapping of guest RAM (the guest maps the same memfd elsewhere).
  EXPECT_EQ((*view)->pages().data(), partition_->host().GuestPages(10, 1)->data());
  EXPECT_TRUE((*view)->IsPageAligned());
}

TEST_F(GpadlViewTest, NonContiguousPfnsAreAliasedInOrder) {
  const int64_t aliases = GpadlView::LiveAliasCount();
  const std::vector<uint64_t> pfns = {20, 5, 6, 33, 5};  // runs: 20 | 5,6 | 33 | 5 (repeat)
  auto view = GpadlView::Create(Resolver(), 0x11, 1, {Range(pfns)});
  ASSERT_TRUE(view.has_value());
  EXPECT_FALSE((*view)->direct());
  EXPECT_EQ((*view)->run_count(), 4u);
  EXPECT_EQ(GpadlView::LiveAliasCount(), aliases + 1);
  std::span<uint8_t> bytes = (*view)->pages();
  ASSERT_EQ(bytes.size(), pfns.size() * 4096);
  for (size_t i = 0; i < pfns.size(); ++i) {
    EXPECT_EQ(bytes[i * 4096], pfns[i]) << i;
    EXPECT_EQ(bytes[i * 4096 + 4095], pfns[i]) << i;
  }
  // Writes through the view land in the guest's pages (shared mapping, not a copy).
  bytes[1 * 4096 + 7] = 0xEE;
  EXPECT_EQ(partition_->guest().ram().all()[5 * 4096 + 7], 0xEE);
  EXPECT_EQ(bytes[4 * 4096 + 7], 0xEE);  // page 5 appears twice
  view->reset();
  EXPECT_EQ(GpadlView::LiveAliasCount(), aliases);
}

TEST_F(GpadlViewTest, PfnOutsideGuestRamIsRejected) {
  auto view = GpadlView::Create(Resolver(), 0x12, 1, {Range({3, 64})});
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error().code, ErrorCode::kMalformed);
  auto huge = GpadlView::Create(Resolver(), 0x13, 1, {Range({~uint64_t{0}})});
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().code, ErrorCode::kMalformed);
}

TEST_F(GpadlViewTest, NoRangesIsInvalid) {
  EXPECT_EQ(GpadlView::Create(Resolver(), 0x14, 1, {}).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(GpadlViewTest, RangeBytesHonourOffsetsAcrossRanges) {
  // Range 0: 100 bytes at offset 16 of page 40; range 1: pages 41..42 whole.
  auto view = GpadlView::Create(Resolver(), 0x15, 1,
                                {Range({40}, 16, 100), Range({41, 42})});
  ASSERT_TRUE(view.has_value());
  EXPECT_FALSE((*view)->IsPageAligned());
  auto r0 = (*view)->RangeBytes(0);
  EXPECT_EQ(r0.size(), 100u);
  EXPECT_EQ(r0.data(), (*view)->pages().data() + 16);
  auto r1 = (*view)->RangeBytes(1);
  EXPECT_EQ(r1.size(), 2u * 4096);
  EXPECT_EQ(r1[0], 41);
  EXPECT_TRUE((*view)->RangeBytes(2).empty());
  EXPECT_EQ((*view)->data().size(), 3u * 4096);  // several ranges: all pages
}

TEST_F(GpadlViewTest, RevokedGuestRamIsUnavailable) {
  partition_->Disconnect();
  auto view = GpadlView::Create(Resolver(), 0x16, 1, {Range({3})});
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace uvmbus::host
