// LocalPartition: guest and host halves in one process, end to end.
#include "partition/local_partition.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::Bytes;
using testing::FdReadable;
using testing::RecordingHandler;
using testing::TakeMessageAndEom;
using testing::TestAndClearEvent;
using testing::WaitFd;
using wire::HvStatus;

constexpr uint64_t kRam = 64 * kPageSize;

class LocalPartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = LocalPartition::Create(2, kRam, "t");
    ASSERT_TRUE(p) << p.error();
    p_ = std::move(*p);
    ASSERT_TRUE(p_->host().Start(&handler_));
  }
  GuestPartition& guest() { return p_->guest(); }
  HostPartition& host() { return p_->host(); }

  RecordingHandler handler_;
  std::unique_ptr<LocalPartition> p_;
};

TEST(LocalPartitionCreateTest, RejectsImpossibleShapes) {
  EXPECT_EQ(LocalPartition::Create(0, kRam).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(LocalPartition::Create(kMaxVcpus + 1, kRam).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(LocalPartition::Create(1, kRam + 1).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(LocalPartition::Create(2, 4 * kPageSize).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(LocalPartition::Create(1, 0).error().code, ErrorCode::kInvalidArgument);
}

// A handler that stops its partition from inside OnPostMessage (e.g. a server shutting down).
class StoppingHandler : public RecordingHandler {
 public:
  HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                         std::span<const uint8_t> payload) override {
    partition->Stop();
    return RecordingHandler::OnPostMessage(connection_id, message_type, payload);
  }
  HostPartition* partition = nullptr;
};

TEST(LocalPartitionStartTest, StopFromInsideACallbackTakesEffectAfterIt) {
  auto p = LocalPartition::Create(1, kRam);
  ASSERT_TRUE(p);
  StoppingHandler h;
  h.partition = &(*p)->host();
  ASSERT_TRUE((*p)->host().Start(&h));
  EXPECT_EQ((*p)->guest().PostMessage(1, 1, Bytes({1})), HvStatus::kSuccess);
  EXPECT_EQ((*p)->guest().PostMessage(1, 1, Bytes({1})), HvStatus::kInvalidPortId);
  EXPECT_EQ(h.post_count(), 1u);
}

TEST_F(LocalPartitionTest, ShapeAndReservedSynicPages) {
  EXPECT_EQ(guest().vcpu_count(), 2u);
  EXPECT_EQ(host().vcpu_count(), 2u);
  EXPECT_EQ(host().guest_page_count(), 64u);
  EXPECT_EQ(guest().allocator().first_gpn(), 4u);
  EXPECT_EQ(guest().MessagePage(1).data(), guest().ram().all().data() + 2 * kPageSize);
  EXPECT_EQ(guest().EventPage(1).data(), guest().ram().all().data() + 3 * kPageSize);
  EXPECT_TRUE(guest().MessagePage(2).empty());
  EXPECT_EQ(guest().InterruptFd(2), -1);
  EXPECT_EQ(host().peer().transport, "local");
  EXPECT_EQ(host().peer().name, "t");
}

TEST_F(LocalPartitionTest, HostSeesGuestAllocatedPagesThroughGuestPages) {
  auto run = guest().allocator().AllocateRun(3);
  ASSERT_TRUE(run);
  run->bytes()[5] = 0x5A;
  auto pages = host().GuestPages(run->gpn(), 3);
  ASSERT_TRUE(pages) << pages.error();
  EXPECT_EQ((*pages)[5], 0x5A);
  EXPECT_EQ(host().GuestPages(63, 2).error().code, ErrorCode::kMalformed);
}

TEST_F(LocalPartitionTest, PostMessageReachesTheHandlerAndReturnsItsStatus) {
  const auto payload = Bytes({14, 0, 0, 0, 0, 0, 0, 0, 1, 2});
  EXPECT_EQ(guest().PostMessage(4, wire::kHvMsgVmbus, payload), HvStatus::kSuccess);
  handler_.post_status = HvStatus::kInsufficientBuffers;
  EXPECT_EQ(guest().PostMessage(4, wire::kHvMsgVmbus, payload), HvStatus::kInsufficientBuffers);
  ASSERT_EQ(handler_.posts.size(), 2u);
  EXPECT_EQ(handler_.posts[0].connection_id, 4u);
  EXPECT_EQ(handler_.posts[0].message_type, wire::kHvMsgVmbus);
  EXPECT_EQ(handler_.posts[0].payload, payload);
  EXPECT_EQ(host().stats().messages_posted, 2u);
  EXPECT_EQ(guest().stats().post_failures.Get(), 1u);
}

TEST_F(LocalPartitionTest, PostMessageIsValidatedBeforeReachingTheHost) {
  std::vector<uint8_t> big(241, 1);
  EXPECT_EQ(guest().PostMessage(4, 1, {}), HvStatus::kInvalidParameter);
  EXPECT_EQ(guest().PostMessage(4, 1, big), HvStatus::kInvalidParameter);
  EXPECT_EQ(guest().PostMessage(4, 0, Bytes({1})), HvStatus::kInvalidParameter);
  EXPECT_EQ(guest().PostMessage(4, 0x80000000u, Bytes({1})), HvStatus::kInvalidParameter);
  EXPECT_EQ(guest().PostMessage(0x01000004, 1, Bytes({1})), HvStatus::kInvalidConnectionId);
  EXPECT_TRUE(handler_.posts.empty());
}

TEST(LocalPartitionStartTest, PostBeforeStartIsInvalidPortIdAndStartIsOnce) {
  auto p = LocalPartition::Create(1, kRam);
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->guest().PostMessage(1, 1, Bytes({1})), HvStatus::kInvalidPortId);
  RecordingHandler h;
  EXPECT_EQ((*p)->host().Start(nullptr).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE((*p)->host().Start(&h));
  EXPECT_EQ((*p)->host().Start(&h).error().code, ErrorCode::kAlreadyExists);
  (*p)->host().Stop();
  EXPECT_EQ((*p)->guest().PostMessage(1, 1, Bytes({1})), HvStatus::kInvalidPortId);
}

TEST_F(LocalPartitionTest, HostMessagesArriveWithInterruptAndPendingEomFlow) {
  ASSERT_TRUE(host().PostToGuest(1, Bytes({1, 0, 0, 0, 0, 0, 0, 0})));
  ASSERT_TRUE(host().PostToGuest(1, Bytes({2, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_FALSE(FdReadable(guest().InterruptFd(0)));
  ASSERT_TRUE(FdReadable(guest().InterruptFd(1)));
  EXPECT_EQ(guest().AckInterrupt(1), 1u);
  auto m1 = TakeMessageAndEom(guest(), 1);  // pending -> EOM -> next delivered
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->payload[0], 1);
  ASSERT_TRUE(FdReadable(guest().InterruptFd(1)));
  EXPECT_EQ(guest().AckInterrupt(1), 1u);
  auto m2 = TakeMessageAndEom(guest(), 1);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->payload[0], 2);
  EXPECT_FALSE(m2->pending);
  const auto s = host().stats();
  EXPECT_EQ(s.messages_delivered, 2u);
  EXPECT_EQ(s.messages_queued, 1u);
  EXPECT_EQ(s.eoms, 1u);
  EXPECT_EQ(s.interrupts_raised, 2u);
  EXPECT_EQ(host().PostToGuest(2, Bytes({1})).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(LocalPartitionTest, SignalGuestSetsTheRelidBitAndInterruptsOnce) {
  ASSERT_TRUE(host().SignalGuest(0, 42));
  ASSERT_TRUE(host().SignalGuest(0, 42));
  EXPECT_EQ(guest().AckInterrupt(0), 1u);
  EXPECT_TRUE(TestAndClearEvent(guest().EventPage(0), 42));
  EXPECT_FALSE(TestAndClearEvent(guest().EventPage(0), 42));
  EXPECT_EQ(host().stats().events_signalled, 1u);
  EXPECT_EQ(host().stats().events_coalesced, 1u);
  EXPECT_EQ(host().SignalGuest(0, 0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(host().SignalGuest(0, 2048).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(host().SignalGuest(5, 1).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(LocalPartitionTest, SignalEventWithoutDoorbellTakesTheSlowPathToTheHandler) {
  EXPECT_EQ(guest().SignalEvent(0x2007, 0), HvStatus::kInvalidConnectionId);
  ASSERT_EQ(handler_.signals.size(), 1u);
  EXPECT_EQ(handler_.signals[0], 0x2007u);
  EXPECT_EQ(guest().stats().events_slow.Get(), 1u);
  EXPECT_EQ(host().stats().guest_signals_slow, 1u);
}

TEST_F(LocalPartitionTest, DoorbellMakesSignalEventAFastEventfdWrite) {
  auto bell = host().CreateDoorbell(0x2007);
  ASSERT_TRUE(bell) << bell.error();
  EXPECT_EQ(host().CreateDoorbell(0x2007).error().code, ErrorCode::kAlreadyExists);
  EXPECT_FALSE(FdReadable(bell->fd()));
  EXPECT_EQ(guest().SignalEvent(0x2007, 0), HvStatus::kSuccess);
  EXPECT_EQ(guest().SignalEvent(0x2007, 0), HvStatus::kSuccess);
  ASSERT_TRUE(FdReadable(bell->fd()));
  EXPECT_EQ(bell->Consume(), 2u);
  EXPECT_TRUE(handler_.signals.empty());
  EXPECT_EQ(guest().stats().events_fast.Get(), 2u);
  // Destroying the doorbell unregisters it: back to the slow path.
  bell->Reset();
  EXPECT_EQ(guest().SignalEvent(0x2007, 0), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(handler_.signals.size(), 1u);
}

TEST_F(LocalPartitionTest, SignalEventChecksFlagAndReservedBits) {
  EXPECT_EQ(guest().SignalEvent(0x2007, 1), HvStatus::kInvalidParameter);
  EXPECT_EQ(guest().SignalEvent(0x01002007, 0), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(host().CreateDoorbell(0x01000000).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(handler_.signals.empty());
}

TEST_F(LocalPartitionTest, DisconnectNotifiesTheHandlerOnceAndReleasesGuestMemory) {
  auto bell = host().CreateDoorbell(0x2001);
  ASSERT_TRUE(bell);
  p_->Disconnect();
  p_->Disconnect();
  EXPECT_EQ(handler_.disconnects, 1);
  EXPECT_FALSE(host().connected());
  EXPECT_EQ(host().GuestPages(10, 1).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(host().PostToGuest(0, Bytes({1})).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(host().CreateDoorbell(0x2002).error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(guest().connected());
  EXPECT_TRUE(FdReadable(guest().DisconnectFd()));
  EXPECT_EQ(guest().PostMessage(1, 1, Bytes({1})), HvStatus::kInvalidPortId);
  EXPECT_EQ(guest().SignalEvent(0x2001, 0), HvStatus::kInvalidPortId);
}

TEST_F(LocalPartitionTest, DoorbellMayOutliveThePartition) {
  auto bell = host().CreateDoorbell(0x2001);
  ASSERT_TRUE(bell);
  p_.reset();
  bell->Reset();  // only closes
  SUCCEED();
}

// Many messages through one slot with a real guest vCPU thread: exercises the msg_pending/EOM
// race (spec 1.3 steps 3-4 against the host's pending-then-recheck) under TSan.
TEST_F(LocalPartitionTest, MessageStreamArrivesCompleteAndInOrderAcrossThreads) {
  auto p = LocalPartition::Create(1, kRam, "stream", /*queue_depth=*/2000);
  ASSERT_TRUE(p);
  GuestPartition& g = (*p)->guest();
  HostPartition& h = (*p)->host();
  constexpr int kCount = 1000;
  std::vector<int> received;
  std::thread vcpu([&] {
    while (static_cast<int>(received.size()) < kCount) {
      if (!WaitFd(g.InterruptFd(0))) return;  // guard: fails the size check below
      g.AckInterrupt(0);
      while (auto m = TakeMessageAndEom(g, 0)) {
        received.push_back(m->payload[0] | (m->payload[1] << 8));
      }
    }
  });
  for (int i = 0; i < kCount; ++i) {
    const uint8_t payload[2] = {static_cast<uint8_t>(i & 0xFF), static_cast<uint8_t>(i >> 8)};
    ASSERT_TRUE(h.PostToGuest(0, payload));
  }
  vcpu.join();
  ASSERT_EQ(received.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(received[i], i);
  EXPECT_EQ(h.stats().messages_dropped, 0u);
}

TEST_F(LocalPartitionTest, ConcurrentGuestPostsAreSerialisedIntoTheHandler) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (guest().PostMessage(4, 1, Bytes({static_cast<uint8_t>(t)})) == HvStatus::kSuccess) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(handler_.posts.size(), 200u);
}

}  // namespace
}  // namespace uvmbus::partition
