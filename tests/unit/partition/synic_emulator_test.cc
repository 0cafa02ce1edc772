// SynicEmulator: the hypervisor side of spec 1.3 (slot/msg_pending/EOM) and 1.4 (event bits),
// driven without threads or I/O.
#include "partition/synic_emulator.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "common/mapped_region.h"
#include "partition/guest_ram.h"
#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::TakeMessage;
using testing::TestAndClearEvent;

class RecordingSink final : public InterruptSink {
 public:
  void Raise(uint32_t vcpu) override { ++raised[vcpu]; }
  std::map<uint32_t, int> raised;
};

class SynicEmulatorTest : public ::testing::Test {
 protected:
  void Make(uint32_t vcpus, size_t depth = kDefaultMessageQueueDepth) {
    auto mem = MappedRegion::MapAnonymous(size_t{2} * kPageSize * vcpus);
    ASSERT_TRUE(mem);
    mem_ = std::move(*mem);
    std::vector<SynicEmulator::VcpuPages> pages;
    for (uint32_t v = 0; v < vcpus; ++v) {
      pages.push_back({mem_.span().subspan(size_t{2} * v * kPageSize, kPageSize),
                       mem_.span().subspan((size_t{2} * v + 1) * kPageSize, kPageSize)});
    }
    synic_ = std::make_unique<SynicEmulator>(std::move(pages), &sink_, depth);
  }
  std::span<uint8_t> Simp(uint32_t v) {
    return mem_.span().subspan(size_t{2} * v * kPageSize, kPageSize);
  }
  std::span<uint8_t> Siefp(uint32_t v) {
    return mem_.span().subspan((size_t{2} * v + 1) * kPageSize, kPageSize);
  }
  uint8_t* Slot(uint32_t v) { return Simp(v).data() + wire::kVmbusMessageSlotOffset; }
  uint32_t SlotType(uint32_t v) {
    uint32_t t;
    std::memcpy(&t, Slot(v), 4);
    return t;
  }
  Status Post(uint32_t v, uint8_t tag, size_t size = 8) {
    std::vector<uint8_t> payload(size, tag);
    return synic_->Post(v, wire::kHvMsgVmbus, payload);
  }

  MappedRegion mem_;
  RecordingSink sink_;
  std::unique_ptr<SynicEmulator> synic_;
};

TEST_F(SynicEmulatorTest, FreeSlotGetsTheMessageAndOneInterrupt) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11, 12));
  EXPECT_EQ(SlotType(0), wire::kHvMsgVmbus);
  EXPECT_EQ(Slot(0)[4], 12);  // payload_size
  EXPECT_EQ(Slot(0)[5], 0);   // no msg_pending
  EXPECT_EQ(Slot(0)[16], 0x11);
  EXPECT_EQ(Slot(0)[16 + 11], 0x11);
  EXPECT_EQ(sink_.raised[0], 1);
  EXPECT_EQ(synic_->stats().messages_delivered.Get(), 1u);
  // Other slots of the page are untouched.
  EXPECT_EQ(Simp(0)[0], 0);
  EXPECT_EQ(Simp(0)[3 * 256], 0);
}

TEST_F(SynicEmulatorTest, BusySlotQueuesAndSetsMsgPendingWithoutOverwriting) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11));
  ASSERT_TRUE(Post(0, 0x22));
  EXPECT_EQ(Slot(0)[16], 0x11);  // never overwritten
  EXPECT_EQ(Slot(0)[5] & wire::kHvMessageFlagPending, wire::kHvMessageFlagPending);
  EXPECT_EQ(synic_->queued(0), 1u);
  EXPECT_EQ(sink_.raised[0], 1);  // only deliveries interrupt
  EXPECT_EQ(synic_->stats().messages_queued.Get(), 1u);
}

TEST_F(SynicEmulatorTest, EomDeliversTheNextMessageInOrder) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11));
  ASSERT_TRUE(Post(0, 0x22));
  ASSERT_TRUE(Post(0, 0x33));
  auto first = TakeMessage(Simp(0));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload[0], 0x11);
  EXPECT_TRUE(first->pending);
  synic_->EndOfMessage(0);
  auto second = TakeMessage(Simp(0));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->payload[0], 0x22);
  EXPECT_TRUE(second->pending);  // 0x33 is still queued
  synic_->EndOfMessage(0);
  auto third = TakeMessage(Simp(0));
  ASSERT_TRUE(third);
  EXPECT_EQ(third->payload[0], 0x33);
  EXPECT_FALSE(third->pending);
  EXPECT_EQ(sink_.raised[0], 3);
  EXPECT_EQ(synic_->stats().eoms.Get(), 2u);
}

TEST_F(SynicEmulatorTest, EomWhileTheSlotIsStillOccupiedDeliversNothing) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11));
  ASSERT_TRUE(Post(0, 0x22));
  synic_->EndOfMessage(0);  // guest wrote EOM without freeing the slot
  EXPECT_EQ(Slot(0)[16], 0x11);
  EXPECT_EQ(synic_->queued(0), 1u);
  EXPECT_EQ(sink_.raised[0], 1);
}

TEST_F(SynicEmulatorTest, NextPostDeliversTheBacklogFirstWhenItSeesTheSlotFree) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11));
  ASSERT_TRUE(Post(0, 0x22));
  ASSERT_TRUE(TakeMessage(Simp(0)));  // freed, but no EOM
  ASSERT_TRUE(Post(0, 0x33));
  auto m = TakeMessage(Simp(0));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload[0], 0x22);  // order kept
  EXPECT_TRUE(m->pending);
  EXPECT_EQ(synic_->queued(0), 1u);
}

TEST_F(SynicEmulatorTest, DeliverPendingMovesTheQueueHeadIntoAFreedSlot) {
  Make(1);
  ASSERT_TRUE(Post(0, 0x11));
  ASSERT_TRUE(Post(0, 0x22));
  EXPECT_FALSE(synic_->DeliverPending(0));  // still occupied
  ASSERT_TRUE(TakeMessage(Simp(0)));
  EXPECT_TRUE(synic_->DeliverPending(0));
  EXPECT_EQ(Slot(0)[16], 0x22);
  EXPECT_FALSE(synic_->DeliverPending(0));  // nothing left
}

TEST_F(SynicEmulatorTest, FullQueueRefusesAndCountsTheDrop) {
  Make(1, /*depth=*/2);
  ASSERT_TRUE(Post(0, 1));  // in the slot
  ASSERT_TRUE(Post(0, 2));
  ASSERT_TRUE(Post(0, 3));
  auto r = Post(0, 4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(synic_->stats().messages_dropped.Get(), 1u);
  EXPECT_EQ(synic_->queued(0), 2u);
  // Consuming makes room again.
  ASSERT_TRUE(TakeMessage(Simp(0)));
  synic_->EndOfMessage(0);
  EXPECT_TRUE(Post(0, 5));
}

TEST_F(SynicEmulatorTest, VcpusHaveIndependentSlotsAndQueues) {
  Make(2);
  ASSERT_TRUE(Post(0, 0x10));
  ASSERT_TRUE(Post(1, 0x20));
  EXPECT_EQ(Slot(0)[16], 0x10);
  EXPECT_EQ(Slot(1)[16], 0x20);
  EXPECT_EQ(sink_.raised[0], 1);
  EXPECT_EQ(sink_.raised[1], 1);
  EXPECT_EQ(synic_->queued(0), 0u);
}

TEST_F(SynicEmulatorTest, PostRejectsBadArguments) {
  Make(1);
  EXPECT_EQ(Post(1, 0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Post(0, 0, 0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Post(0, 0, 241).error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Post(0, 0, 240));
  const uint8_t b = 1;
  EXPECT_EQ(synic_->Post(0, wire::kHvMsgNone, {&b, 1}).error().code, ErrorCode::kInvalidArgument);
  synic_->EndOfMessage(7);  // out-of-range EOM is ignored
  EXPECT_EQ(synic_->queued(7), 0u);
}

TEST_F(SynicEmulatorTest, EventBitSetOnceRaisesOnce) {
  Make(1);
  auto r = synic_->SignalEvent(0, 5);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  EXPECT_EQ(Siefp(0)[512], 1u << 5);
  EXPECT_EQ(sink_.raised[0], 1);
  EXPECT_EQ(synic_->stats().events_signalled.Get(), 1u);
}

TEST_F(SynicEmulatorTest, EventBitAlreadySetRaisesNoNewInterrupt) {
  Make(1);
  ASSERT_TRUE(synic_->SignalEvent(0, 5));
  auto again = synic_->SignalEvent(0, 5);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  EXPECT_EQ(sink_.raised[0], 1);
  EXPECT_EQ(synic_->stats().events_coalesced.Get(), 1u);
  // Another relid in the same word is a clear->set transition of its own.
  EXPECT_TRUE(*synic_->SignalEvent(0, 6));
  EXPECT_EQ(sink_.raised[0], 2);
  // Once the guest test-and-cleared the bit, the next signal interrupts again.
  EXPECT_TRUE(TestAndClearEvent(Siefp(0), 5));
  EXPECT_TRUE(*synic_->SignalEvent(0, 5));
  EXPECT_EQ(sink_.raised[0], 3);
}

TEST_F(SynicEmulatorTest, EventBitsUseAreaTwoAndTheWholeRelidRange) {
  Make(1);
  ASSERT_TRUE(synic_->SignalEvent(0, 1));
  ASSERT_TRUE(synic_->SignalEvent(0, 2047));
  EXPECT_EQ(Siefp(0)[512], 0x02);
  EXPECT_EQ(Siefp(0)[512 + 255], 0x80);
  EXPECT_EQ(Siefp(0)[511], 0);  // area 1 untouched
  EXPECT_EQ(Siefp(0)[768], 0);  // area 3 untouched
}

TEST_F(SynicEmulatorTest, EventRejectsReservedAndOutOfRangeFlagsAndVcpus) {
  Make(1);
  EXPECT_EQ(synic_->SignalEvent(0, 0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(synic_->SignalEvent(0, 2048).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(synic_->SignalEvent(1, 5).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(sink_.raised[0], 0);
}

TEST(SynicEmulatorPagesTest, WrongSizedPagesMakeTheVcpuUnusableInsteadOfUnsafe) {
  RecordingSink sink;
  std::vector<uint8_t> small(100);
  SynicEmulator synic({{std::span<uint8_t>(small), std::span<uint8_t>(small)}}, &sink);
  const uint8_t b = 1;
  EXPECT_EQ(synic.Post(0, 1, {&b, 1}).error().code, ErrorCode::kInternal);
  EXPECT_EQ(synic.SignalEvent(0, 1).error().code, ErrorCode::kInternal);
}

}  // namespace
}  // namespace uvmbus::partition
