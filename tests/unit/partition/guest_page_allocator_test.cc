// GuestPageAllocator: first-fit runs of guest pages, zeroed, reserved SynIC pages never handed out.
#include "partition/guest_page_allocator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace uvmbus::partition {
namespace {

class GuestPageAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ram = GuestRam::Create(16);
    ASSERT_TRUE(ram);
    ram_ = std::move(*ram);
  }
  GuestRam ram_;
};

TEST_F(GuestPageAllocatorTest, NeverHandsOutReservedPages) {
  GuestPageAllocator alloc(ram_, 4);
  EXPECT_EQ(alloc.total_pages(), 12u);
  EXPECT_EQ(alloc.first_gpn(), 4u);
  auto gpn = alloc.Allocate(12);
  ASSERT_TRUE(gpn) << gpn.error();
  EXPECT_EQ(*gpn, 4u);
  EXPECT_EQ(alloc.free_pages(), 0u);
}

TEST_F(GuestPageAllocatorTest, AllocationIsFirstFitAndContiguous) {
  GuestPageAllocator alloc(ram_, 0);
  EXPECT_EQ(*alloc.Allocate(3), 0u);
  EXPECT_EQ(*alloc.Allocate(2), 3u);
  EXPECT_EQ(*alloc.Allocate(1), 5u);
  EXPECT_EQ(alloc.free_pages(), 10u);
}

TEST_F(GuestPageAllocatorTest, RejectsZeroPages) {
  GuestPageAllocator alloc(ram_, 0);
  auto r = alloc.Allocate(0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(GuestPageAllocatorTest, ReportsExhaustionWhenNoRunIsLongEnough) {
  GuestPageAllocator alloc(ram_, 0);
  ASSERT_TRUE(alloc.Allocate(7));
  const uint64_t mid = *alloc.Allocate(2);
  ASSERT_TRUE(alloc.Allocate(7));
  ASSERT_TRUE(alloc.Free(mid, 2));
  auto r = alloc.Allocate(3);  // 2 pages free, but not 3 in a row
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(*alloc.Allocate(2), mid);
}

TEST_F(GuestPageAllocatorTest, FreedNeighboursCoalesceIntoOneRun) {
  GuestPageAllocator alloc(ram_, 0);
  const uint64_t a = *alloc.Allocate(4);
  const uint64_t b = *alloc.Allocate(4);
  const uint64_t c = *alloc.Allocate(4);
  ASSERT_TRUE(alloc.Allocate(4));
  ASSERT_TRUE(alloc.Free(a, 4));
  ASSERT_TRUE(alloc.Free(c, 4));
  ASSERT_TRUE(alloc.Free(b, 4));
  EXPECT_EQ(*alloc.Allocate(12), a);
}

TEST_F(GuestPageAllocatorTest, AllocationZeroesReusedPages) {
  GuestPageAllocator alloc(ram_, 0);
  const uint64_t gpn = *alloc.Allocate(2);
  std::memset(ram_.Pages(gpn, 2)->data(), 0xAB, 2 * kPageSize);
  ASSERT_TRUE(alloc.Free(gpn, 2));
  ASSERT_EQ(*alloc.Allocate(2), gpn);
  auto bytes = *ram_.Pages(gpn, 2);
  for (uint8_t b : bytes) ASSERT_EQ(b, 0);
}

TEST_F(GuestPageAllocatorTest, FreeRejectsDoubleFreeAndWrongCount) {
  GuestPageAllocator alloc(ram_, 0);
  const uint64_t gpn = *alloc.Allocate(3);
  EXPECT_EQ(alloc.Free(gpn, 2).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(alloc.Free(gpn + 1, 1).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(alloc.Free(gpn, 3));
  EXPECT_EQ(alloc.Free(gpn, 3).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(alloc.free_pages(), 16u);
}

TEST_F(GuestPageAllocatorTest, PageRunFreesOnDestructionAndExposesBytes) {
  GuestPageAllocator alloc(ram_, 2);
  {
    auto run = alloc.AllocateRun(5);
    ASSERT_TRUE(run) << run.error();
    EXPECT_EQ(run->gpn(), 2u);
    EXPECT_EQ(run->count(), 5u);
    EXPECT_EQ(run->bytes().data(), ram_.all().data() + 2 * kPageSize);
    EXPECT_EQ(run->bytes().size(), 5u * kPageSize);
    PageRun moved = std::move(*run);
    EXPECT_FALSE(run->valid());
    EXPECT_EQ(alloc.free_pages(), 9u);
  }
  EXPECT_EQ(alloc.free_pages(), 14u);
}

TEST_F(GuestPageAllocatorTest, FirstGpnPastTheEndLeavesNothing) {
  GuestPageAllocator alloc(ram_, 100);
  EXPECT_EQ(alloc.total_pages(), 0u);
  EXPECT_EQ(alloc.Allocate(1).error().code, ErrorCode::kResourceExhausted);
}

TEST_F(GuestPageAllocatorTest, ConcurrentAllocateAndFreeKeepAccounting) {
  GuestPageAllocator alloc(ram_, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto gpn = alloc.Allocate(2);
        if (gpn) {
          ASSERT_TRUE(alloc.Free(*gpn, 2));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(alloc.free_pages(), 16u);
  EXPECT_EQ(*alloc.Allocate(16), 0u);
}

}  // namespace
}  // namespace uvmbus::partition
