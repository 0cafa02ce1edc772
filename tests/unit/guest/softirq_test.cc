// Tests of the softirq machinery on a stand-alone queue driven by the test thread: tasklet
// scheduling semantics (Linux tasklet_schedule/kill) and NAPI (schedule, poll with the weight as
// budget, complete, missed schedules, disable), spec 7.5/7.6.
#include <sys/eventfd.h>

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "guest/softirq.h"

namespace uvmbus::guest {
namespace {

class SoftirqTest : public ::testing::Test {
 protected:
  SoftirqTest() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), queue_(0, wake_.get()) {}

  // Runs passes as the queue's owner until nothing is linked (bounded).
  size_t RunAll(size_t max_passes = 100) {
    SoftirqQueue::ScopedOwner owner(queue_);
    size_t runs = 0;
    for (size_t i = 0; i < max_passes && queue_.HasWork(); ++i) runs += queue_.RunPass();
    return runs;
  }
  size_t RunOnePass() {
    SoftirqQueue::ScopedOwner owner(queue_);
    return queue_.RunPass();
  }
  uint64_t Wakeups() {
    eventfd_t v = 0;
    return ::eventfd_read(wake_.get(), &v) == 0 ? v : 0;
  }

  UniqueFd wake_;
  SoftirqQueue queue_;
};

TEST_F(SoftirqTest, TaskletRunsOncePerScheduleAndCoalescesRepeatedSchedules) {
  int runs = 0;
  Tasklet t(&queue_, [&] { ++runs; });
  EXPECT_TRUE(t.Schedule());
  EXPECT_FALSE(t.Schedule());  // already scheduled
  EXPECT_TRUE(t.scheduled());
  EXPECT_EQ(RunAll(), 1u);
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(t.scheduled());
  EXPECT_EQ(RunAll(), 0u);
}

TEST_F(SoftirqTest, TaskletRescheduledWhileRunningRunsInTheNextPass) {
  int runs = 0;
  Tasklet* self = nullptr;
  Tasklet t(&queue_, [&] {
    if (++runs < 3) self->Schedule();
  });
  self = &t;
  t.Schedule();
  EXPECT_EQ(RunOnePass(), 1u);  // the reschedule waits for the next pass
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(RunOnePass(), 1u);
  EXPECT_EQ(RunOnePass(), 1u);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(RunOnePass(), 0u);
}

TEST_F(SoftirqTest, PassRunsItemsInScheduleOrder) {
  std::vector<int> order;
  Tasklet a(&queue_, [&] { order.push_back(1); });
  Tasklet b(&queue_, [&] { order.push_back(2); });
  Tasklet c(&queue_, [&] { order.push_back(3); });
  b.Schedule();
  c.Schedule();
  a.Schedule();
  RunAll();
  EXPECT_EQ(order, (std::vector<int>{2, 3, 1}));
}

TEST_F(SoftirqTest, KilledTaskletDoesNotRunUntilEnabled) {
  int runs = 0;
  Tasklet t(&queue_, [&] { ++runs; });
  t.Schedule();
  t.Kill();
  EXPECT_FALSE(t.scheduled());
  EXPECT_EQ(RunAll(), 0u);
  EXPECT_FALSE(t.Schedule());
  t.Enable();
  EXPECT_TRUE(t.Schedule());
  RunAll();
  EXPECT_EQ(runs, 1);
}

TEST_F(SoftirqTest, TaskletMovesToAnotherQueue) {
  SoftirqQueue other(1, -1);
  int runs = 0;
  Tasklet t(&queue_, [&] { ++runs; });
  t.Kill();
  t.Bind(&other);
  t.Enable();
  t.Schedule();
  EXPECT_EQ(RunAll(), 0u);
  SoftirqQueue::ScopedOwner owner(other);
  EXPECT_EQ(other.RunPass(), 1u);
  EXPECT_EQ(runs, 1);
}

TEST_F(SoftirqTest, ScheduleFromAnotherThreadWakesTheOwner) {
  int runs = 0;
  Tasklet t(&queue_, [&] { ++runs; });
  std::thread other([&] { t.Schedule(); });
  other.join();
  EXPECT_EQ(Wakeups(), 1u);
  EXPECT_EQ(queue_.stats().remote_wakeups.Get(), 1u);
  RunAll();
  EXPECT_EQ(runs, 1);
  // From the owner thread itself: no wake-up needed.
  {
    SoftirqQueue::ScopedOwner owner(queue_);
    t.Schedule();
  }
  EXPECT_EQ(Wakeups(), 0u);
  RunAll();
  EXPECT_EQ(runs, 2);
}

TEST_F(SoftirqTest, KillWaitsForARunningTasklet) {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  Tasklet t(&queue_, [&] {
    entered = true;
    while (!release.load()) std::this_thread::yield();
    finished = true;
  });
  t.Schedule();
  std::thread runner([&] { RunAll(); });
  while (!entered.load()) std::this_thread::yield();
  std::thread killer([&] {
    t.Kill();
    EXPECT_TRUE(finished.load());  // Kill returned only after the run ended
  });
  release = true;
  killer.join();
  runner.join();
}

TEST_F(SoftirqTest, NapiPollGetsTheWeightAsBudgetAndStaysScheduledWhenItUsesIt) {
  std::vector<int> budgets;
  int remaining = 150;
  Napi napi(&queue_, [&](Napi& n, int budget) {
    budgets.push_back(budget);
    const int work = std::min(budget, remaining);
    remaining -= work;
    if (work < budget) {
      EXPECT_TRUE(n.Complete());
    }
    return work;
  });
  EXPECT_EQ(napi.weight(), Napi::kDefaultWeight);
  EXPECT_TRUE(napi.Schedule());
  EXPECT_EQ(RunOnePass(), 1u);  // 64: budget used, polled again next pass
  EXPECT_TRUE(napi.scheduled());
  EXPECT_EQ(RunOnePass(), 1u);  // 64
  EXPECT_EQ(RunOnePass(), 1u);  // 22: completes
  EXPECT_FALSE(napi.scheduled());
  EXPECT_EQ(RunOnePass(), 0u);
  EXPECT_EQ(budgets, (std::vector<int>{64, 64, 64}));
  EXPECT_EQ(napi.stats().polls.Get(), 3u);
  EXPECT_EQ(napi.stats().packets.Get(), 150u);
  EXPECT_EQ(napi.stats().budget_exhausted.Get(), 2u);
  EXPECT_EQ(napi.stats().completes.Get(), 1u);
}

TEST_F(SoftirqTest, NapiScheduleDuringPollIsNotLost) {
  int polls = 0;
  Napi napi(&queue_, [&](Napi& n, int) {
    ++polls;
    if (polls == 1) {
      // An interrupt arrives while polling (NAPIF_STATE_MISSED).
      EXPECT_FALSE(n.Schedule());
      EXPECT_FALSE(n.Complete());  // not idle: it will be polled once more
    } else {
      EXPECT_TRUE(n.Complete());
    }
    return 0;
  });
  napi.Schedule();
  RunAll();
  EXPECT_EQ(polls, 2);
  EXPECT_EQ(napi.stats().missed.Get(), 1u);
  EXPECT_FALSE(napi.scheduled());
}

TEST_F(SoftirqTest, NapiDriverRearmsAfterComplete) {
  int polls = 0;
  int pending = 1;  // one packet "raced in" after the first poll drained the source
  Napi napi(&queue_, [&](Napi& n, int budget) {
    ++polls;
    const int work = polls == 1 ? 5 : pending--;
    if (work < budget && n.Complete() && polls == 1) {
      // The driver unmasks, finds data, and schedules again (spec 7.6 step 3).
      EXPECT_TRUE(n.Schedule());
    }
    return work;
  });
  napi.Schedule();
  RunAll();
  EXPECT_EQ(polls, 2);
  EXPECT_EQ(napi.stats().schedules.Get(), 2u);
  EXPECT_EQ(napi.stats().completes.Get(), 2u);
}

TEST_F(SoftirqTest, NapiWithoutCompleteIsCompletedForTheDriver) {
  Napi napi(&queue_, [](Napi&, int) { return 3; }, 16);
  napi.Schedule();
  RunAll();
  EXPECT_FALSE(napi.scheduled());
  EXPECT_EQ(napi.stats().implicit_completes.Get(), 1u);
  EXPECT_TRUE(napi.Schedule());
  RunAll();
}

TEST_F(SoftirqTest, DisabledNapiIsNotPolled) {
  int polls = 0;
  Napi napi(&queue_, [&](Napi&, int) {
    ++polls;
    return 0;
  });
  napi.Schedule();
  napi.Disable();
  EXPECT_FALSE(napi.Schedule());
  RunAll();
  EXPECT_EQ(polls, 0);
  napi.Enable();
  EXPECT_TRUE(napi.Schedule());
  RunAll();
  EXPECT_EQ(polls, 1);
}

}  // namespace
}  // namespace uvmbus::guest
