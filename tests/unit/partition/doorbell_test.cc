// Doorbell / DoorbellTable: the SignalEvent fast path (ioeventfd analogue).
#include "partition/doorbell.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::FdReadable;

UniqueFd NewEventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }
UniqueFd Dup(int fd) { return UniqueFd(::dup(fd)); }
uint64_t Drain(int fd) {
  uint64_t v = 0;
  return ::read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

TEST(DoorbellTableTest, SignalWritesTheRegisteredEventfd) {
  DoorbellTable table;
  UniqueFd bell = NewEventfd();
  ASSERT_TRUE(table.Add(0x2005, Dup(bell.get())));
  EXPECT_EQ(table.enabled(), 1u);
  EXPECT_TRUE(table.Signal(0x2005));
  EXPECT_TRUE(table.Signal(0x2005));
  EXPECT_EQ(Drain(bell.get()), 2u);
}

TEST(DoorbellTableTest, UnknownConnectionIdIsNotSignalled) {
  DoorbellTable table;
  EXPECT_FALSE(table.Signal(7));
  UniqueFd bell = NewEventfd();
  ASSERT_TRUE(table.Add(0x2005, Dup(bell.get())));
  EXPECT_FALSE(table.Signal(0x2006));
  EXPECT_FALSE(FdReadable(bell.get()));
}

TEST(DoorbellTableTest, RemovedDoorbellIsNoLongerWrittenAndCanComeBack) {
  DoorbellTable table;
  UniqueFd first = NewEventfd();
  ASSERT_TRUE(table.Add(9, Dup(first.get())));
  ASSERT_TRUE(table.Remove(9));
  EXPECT_EQ(table.enabled(), 0u);
  EXPECT_FALSE(table.Signal(9));
  EXPECT_FALSE(FdReadable(first.get()));
  EXPECT_EQ(table.Remove(9).error().code, ErrorCode::kNotFound);
  UniqueFd second = NewEventfd();
  ASSERT_TRUE(table.Add(9, Dup(second.get())));
  EXPECT_TRUE(table.Signal(9));
  EXPECT_EQ(Drain(second.get()), 1u);
  EXPECT_FALSE(FdReadable(first.get()));
}

TEST(DoorbellTableTest, ReAddReplacesTheEventfd) {
  DoorbellTable table;
  UniqueFd first = NewEventfd();
  UniqueFd second = NewEventfd();
  ASSERT_TRUE(table.Add(9, Dup(first.get())));
  ASSERT_TRUE(table.Add(9, Dup(second.get())));
  EXPECT_EQ(table.enabled(), 1u);
  EXPECT_TRUE(table.Signal(9));
  EXPECT_FALSE(FdReadable(first.get()));
  EXPECT_EQ(Drain(second.get()), 1u);
}

TEST(DoorbellTableTest, RejectsMissingFdAndReservedBits) {
  DoorbellTable table;
  EXPECT_EQ(table.Add(1, UniqueFd()).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(table.Add(0x01000001, NewEventfd()).error().code, ErrorCode::kInvalidArgument);
}

TEST(DoorbellTableTest, CapacityIsBounded) {
  // Needs ~kMaxDoorbells fds: raise the soft limit as far as the hard one allows.
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 3 * kMaxDoorbells) {
    if (lim.rlim_max < 3 * kMaxDoorbells) GTEST_SKIP() << "RLIMIT_NOFILE too low";
    lim.rlim_cur = 3 * kMaxDoorbells;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  DoorbellTable table;
  UniqueFd bell = NewEventfd();
  for (uint32_t id = 0; id < kMaxDoorbells; ++id) {
    ASSERT_TRUE(table.Add(id, Dup(bell.get()))) << id;
  }
  EXPECT_EQ(table.Add(kMaxDoorbells, Dup(bell.get())).error().code, ErrorCode::kResourceExhausted);
  EXPECT_TRUE(table.Signal(kMaxDoorbells - 1));
  EXPECT_TRUE(table.Signal(0));
}

TEST(DoorbellTableTest, SignalRacingWithRemoveAndReAddNeverCrashes) {
  DoorbellTable table;
  UniqueFd bell = NewEventfd();
  ASSERT_TRUE(table.Add(3, Dup(bell.get())));
  std::atomic<bool> stop{false};
  std::thread signaller([&] {
    while (!stop.load(std::memory_order_relaxed)) table.Signal(3);
  });
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(table.Remove(3));
    ASSERT_TRUE(table.Add(3, Dup(bell.get())));
  }
  stop = true;
  signaller.join();
  EXPECT_EQ(table.enabled(), 1u);
}

class RecordingOwner final : public DoorbellOwner {
 public:
  void UnregisterDoorbell(uint32_t connection_id) override { removed.push_back(connection_id); }
  std::vector<uint32_t> removed;
};

TEST(DoorbellTest, ConsumeReturnsCoalescedCountAndZeroWhenIdle) {
  auto owner = std::make_shared<RecordingOwner>();
  UniqueFd fd = NewEventfd();
  const int raw = fd.get();
  Doorbell bell(owner, 0x2001, std::move(fd));
  EXPECT_EQ(bell.fd(), raw);
  EXPECT_EQ(bell.Consume(), 0u);
  const uint64_t three = 3;
  ASSERT_EQ(::write(raw, &three, sizeof(three)), 8);
  EXPECT_EQ(bell.Consume(), 3u);
  EXPECT_EQ(bell.Consume(), 0u);
}

TEST(DoorbellTest, DestructionUnregistersOnceEvenAfterMove) {
  auto owner = std::make_shared<RecordingOwner>();
  {
    Doorbell a(owner, 0x2001, NewEventfd());
    Doorbell b = std::move(a);
    Doorbell c;
    c = std::move(b);
    EXPECT_TRUE(c.valid());
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking moved-from state
  }
  ASSERT_EQ(owner->removed.size(), 1u);
  EXPECT_EQ(owner->removed[0], 0x2001u);
}

}  // namespace
}  // namespace uvmbus::partition
