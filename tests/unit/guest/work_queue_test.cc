// Tests of WorkQueue (ordered single-thread worker) and RequestTracker (response matching,
// spec 7.3, M12, M13).
#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "guest/request_tracker.h"
#include "guest/work_queue.h"

namespace uvmbus::guest {
namespace {

using std::chrono::milliseconds;

TEST(WorkQueueTest, RunsTasksInOrderOnItsOwnThread) {
  WorkQueue wq("test");
  ASSERT_TRUE(wq.Start());
  std::mutex mu;
  std::vector<int> order;
  std::atomic<bool> on_worker{true};
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(wq.Post([&, i] {
      if (!wq.IsCurrent()) on_worker = false;
      std::lock_guard lock(mu);
      order.push_back(i);
    }));
  }
  ASSERT_TRUE(wq.Flush());
  std::lock_guard lock(mu);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_TRUE(on_worker.load());
  EXPECT_FALSE(wq.IsCurrent());
}

TEST(WorkQueueTest, FlushFromTheWorkerReturnsAtOnce) {
  WorkQueue wq("test");
  ASSERT_TRUE(wq.Start());
  std::atomic<bool> flushed{false};
  wq.Post([&] { flushed = wq.Flush(); });
  ASSERT_TRUE(wq.Flush());
  EXPECT_TRUE(flushed.load());
}

TEST(WorkQueueTest, PostAfterStopIsRefused) {
  WorkQueue wq("test");
  ASSERT_TRUE(wq.Start());
  wq.Stop();
  EXPECT_FALSE(wq.Post([] {}));
  auto again = wq.Start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
}

TEST(RequestTrackerTest, OpenResultMatchesRelidAndOpenid) {
  RequestTracker t;
  const auto id = t.Register(RequestKind::kOpenChannel, 5, 5);
  wire::OpenChannelResult wrong;
  wrong.child_relid = 5;
  wrong.openid = 6;
  EXPECT_FALSE(t.Complete(wrong));  // M13
  wire::OpenChannelResult right;
  right.child_relid = 5;
  right.openid = 5;
  right.status = 7;
  EXPECT_TRUE(t.Complete(right));
  auto r = t.Wait(id, milliseconds(1000));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<wire::OpenChannelResult>(*r).status, 7u);
  EXPECT_EQ(t.pending(), 0u);
}

TEST(RequestTrackerTest, GpadlMessagesMatchByTheirFields) {
  RequestTracker t;
  const auto created = t.Register(RequestKind::kGpadlCreate, 3, 0xE1E10);
  const auto torn = t.Register(RequestKind::kGpadlTeardown, 3, 0xE1E11);
  wire::GpadlCreated c;
  c.child_relid = 4;  // other channel
  c.gpadl = 0xE1E10;
  EXPECT_FALSE(t.Complete(c));
  c.child_relid = 3;
  EXPECT_TRUE(t.Complete(c));
  wire::GpadlTorndown d;
  d.gpadl = 0xE1E11;  // matched by handle only
  EXPECT_TRUE(t.Complete(d));
  EXPECT_TRUE(t.Wait(created, milliseconds(1000)));
  EXPECT_TRUE(t.Wait(torn, milliseconds(1000)));
}

TEST(RequestTrackerTest, VersionResponseCompletesTheOldestContact) {
  RequestTracker t;
  const auto a = t.Register(RequestKind::kVersion, 0, 0);
  const auto b = t.Register(RequestKind::kVersion, 0, 0);
  wire::VersionResponse r;
  r.version_supported = 1;
  EXPECT_TRUE(t.Complete(r));
  EXPECT_TRUE(t.Wait(a, milliseconds(1000)));
  auto rb = t.Wait(b, milliseconds(1));
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().code, ErrorCode::kTimeout);
}

TEST(RequestTrackerTest, FailChannelWakesOnlyThatChannelsWaiters) {
  RequestTracker t;
  const auto open = t.Register(RequestKind::kOpenChannel, 8, 8);
  const auto other = t.Register(RequestKind::kOpenChannel, 9, 9);
  const auto version = t.Register(RequestKind::kVersion, 0, 0);
  EXPECT_EQ(t.FailChannel(8, Error::Make(ErrorCode::kUnavailable, "rescinded")), 1u);
  auto r = t.Wait(open, milliseconds(1000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(t.FailAll(Error::Make(ErrorCode::kCancelled, "stop")), 2u);
  EXPECT_EQ(t.Wait(other, milliseconds(1000)).error().code, ErrorCode::kCancelled);
  EXPECT_EQ(t.Wait(version, milliseconds(1000)).error().code, ErrorCode::kCancelled);
}

TEST(RequestTrackerTest, NonResponsesNeverMatch) {
  RequestTracker t;
  t.Register(RequestKind::kOpenChannel, 1, 1);
  wire::OfferChannel offer;
  EXPECT_FALSE(t.Complete(offer));
}

}  // namespace
}  // namespace uvmbus::guest
