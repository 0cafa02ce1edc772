// Monitored notification (spec 1.5): MonitorPoller's poll step (deterministic, no thread), and the
// partition-level path a DPDK-style guest uses: an atomic OR into monitor_page2's pending word
// rings the channel's doorbell, while SignalEvent keeps working for the same connection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstddef>
#include <mutex>
#include <vector>

#include "common/mapped_region.h"
#include "partition/local_partition.h"
#include "partition/monitor_poller.h"
#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::WaitFd;

// What DPDK's vmbus_set_monitor does: atomic OR of 1 << (id % 32) into trigs[id / 32].pending.
void GuestSetsMonitorBit(std::span<uint8_t> page, uint32_t id) {
  auto* word = reinterpret_cast<uint32_t*>(page.data() + offsetof(wire::HvMonitorPage, trigger_group) +
                                           (id / 32) * sizeof(wire::HvMonitorTriggerGroup));
  std::atomic_ref<uint32_t>(*word).fetch_or(1u << (id % 32), std::memory_order_seq_cst);
}

uint32_t PendingWord(std::span<uint8_t> page, uint32_t group) {
  auto* word = reinterpret_cast<uint32_t*>(page.data() + offsetof(wire::HvMonitorPage, trigger_group) +
                                           group * sizeof(wire::HvMonitorTriggerGroup));
  return std::atomic_ref<uint32_t>(*word).load(std::memory_order_seq_cst);
}

class MonitorPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto page = MappedRegion::MapAnonymous(kPageSize);
    ASSERT_TRUE(page);
    page_ = std::move(*page);
    auto p = MonitorPoller::Create([this](uint32_t connection_id) {
      std::lock_guard lock(mu_);
      rung_.push_back(connection_id);
      return connection_id != 0xDEAD;  // 0xDEAD: "no doorbell"
    });
    ASSERT_TRUE(p) << p.error();
    poller_ = std::move(*p);
  }
  std::vector<uint32_t> Rung() {
    std::lock_guard lock(mu_);
    return rung_;
  }
  MappedRegion page_;
  std::mutex mu_;
  std::vector<uint32_t> rung_;
  std::unique_ptr<MonitorPoller> poller_;
};

TEST_F(MonitorPollerTest, SetBitsOfArmedMonitorsRingTheirConnectionsAndAreCleared) {
  ASSERT_TRUE(poller_->Arm(0, 0x2001));
  ASSERT_TRUE(poller_->Arm(33, 0x2002));
  ASSERT_TRUE(poller_->Arm(127, 0x2003));
  poller_->SetPage({});  // nothing polled without a page
  EXPECT_EQ(poller_->PollOnce(), 0u);
  GuestSetsMonitorBit(page_.span(), 33);
  GuestSetsMonitorBit(page_.span(), 127);
  GuestSetsMonitorBit(page_.span(), 5);  // not armed: left for when it is armed
  poller_->SetPage(page_.span());  // starts the thread, which may take the first bits
  poller_->Shutdown();  // deterministic from here: no thread
  GuestSetsMonitorBit(page_.span(), 33);
  GuestSetsMonitorBit(page_.span(), 127);
  GuestSetsMonitorBit(page_.span(), 5);
  EXPECT_EQ(poller_->PollOnce(), 2u);
  std::vector<uint32_t> rung = Rung();
  ASSERT_GE(rung.size(), 2u);
  EXPECT_EQ(rung[rung.size() - 2], 0x2002u);
  EXPECT_EQ(rung.back(), 0x2003u);
  EXPECT_EQ(PendingWord(page_.span(), 0), 1u << 5);  // the one unarmed bit stays set
  EXPECT_EQ(PendingWord(page_.span(), 1), 0u);
  EXPECT_EQ(PendingWord(page_.span(), 3), 0u);
  EXPECT_EQ(poller_->spurious(), 0u);
  EXPECT_GE(poller_->hits(), 2u);
}

// Regression (DPDK SIGKILL-and-rerun flake): a bit set for a monitor that is armed only after
// the poller took its snapshot must not be lost, because the guest signals a ring once, on its
// empty -> non-empty edge. It stays pending and rings as soon as the monitor is armed.
TEST_F(MonitorPollerTest, ABitSetBeforeItsMonitorIsArmedRingsOnceArmed) {
  poller_->Shutdown();
  poller_->SetPage(page_.span());
  ASSERT_TRUE(poller_->Arm(1, 0x2001));
  GuestSetsMonitorBit(page_.span(), 7);
  EXPECT_EQ(poller_->PollOnce(), 0u);
  EXPECT_EQ(PendingWord(page_.span(), 0), 1u << 7);
  ASSERT_TRUE(poller_->Arm(7, 0x2007));
  EXPECT_EQ(poller_->PollOnce(), 1u);
  ASSERT_FALSE(Rung().empty());
  EXPECT_EQ(Rung().back(), 0x2007u);
  EXPECT_EQ(PendingWord(page_.span(), 0), 0u);
  EXPECT_EQ(poller_->spurious(), 0u);
}

TEST_F(MonitorPollerTest, MissingDoorbellsAreSpuriousAndDisarmedBitsAreLeftAlone) {
  poller_->Shutdown();
  poller_->SetPage(page_.span());
  ASSERT_TRUE(poller_->Arm(1, 0xDEAD));
  ASSERT_TRUE(poller_->Arm(2, 0x2002));
  poller_->Disarm(2);
  GuestSetsMonitorBit(page_.span(), 1);
  GuestSetsMonitorBit(page_.span(), 2);
  EXPECT_EQ(poller_->PollOnce(), 0u);
  EXPECT_EQ(poller_->spurious(), 1u);  // monitor 1: armed, but its connection has no doorbell
  EXPECT_EQ(PendingWord(page_.span(), 0), 1u << 2);  // monitor 2 (disarmed) left pending
  EXPECT_EQ(poller_->hits(), 0u);
  EXPECT_EQ(poller_->polls(), 1u);
  // Groups with no armed monitor are not touched at all.
  poller_->Disarm(1);
  GuestSetsMonitorBit(page_.span(), 40);
  EXPECT_EQ(poller_->PollOnce(), 0u);
  EXPECT_EQ(PendingWord(page_.span(), 1), 1u << 8);
}

TEST_F(MonitorPollerTest, RejectsBadArguments) {
  EXPECT_EQ(poller_->Arm(128, 1).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(MonitorPoller::Create(nullptr).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(MonitorPoller::Create([](uint32_t) { return true; }, 0).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(MonitorPollerTest, ThreadParksWithoutArmedMonitorsAndWakesOnArm) {
  poller_->SetPage(page_.span());
  EXPECT_FALSE(poller_->active());
  ASSERT_TRUE(poller_->Arm(7, 0x2007));
  EXPECT_TRUE(poller_->active());
  GuestSetsMonitorBit(page_.span(), 7);
  // The thread clears the bit and rings; wait for the ring (guard-bounded, not a sleep).
  const auto guard = std::chrono::steady_clock::now() + std::chrono::milliseconds(testing::kGuardMs);
  while (poller_->hits() == 0 && std::chrono::steady_clock::now() < guard) {
    std::this_thread::yield();
  }
  EXPECT_EQ(poller_->hits(), 1u);
  EXPECT_EQ(Rung(), std::vector<uint32_t>{0x2007});
  poller_->Reset();
  EXPECT_FALSE(poller_->active());
}

// The partition: SetMonitorPage + ArmMonitor route a monitor bit to the doorbell of the
// connection, the same doorbell SignalEvent rings.
TEST(HostPartitionMonitorTest, MonitorBitRingsTheSameDoorbellAsSignalEvent) {
  auto lp = LocalPartition::Create(1, 32 * kPageSize);
  ASSERT_TRUE(lp) << lp.error();
  HostPartition& host = (*lp)->host();
  GuestPartition& guest = (*lp)->guest();
  testing::RecordingHandler handler;
  ASSERT_TRUE(host.Start(&handler));
  auto bell = host.CreateDoorbell(0x2001);
  ASSERT_TRUE(bell) << bell.error();
  constexpr uint64_t kMonitorGpn = 20;
  EXPECT_EQ(host.SetMonitorPage(kMonitorGpn * kPageSize + 8).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(host.SetMonitorPage(1000 * kPageSize).error().code, ErrorCode::kMalformed);
  ASSERT_TRUE(host.SetMonitorPage(kMonitorGpn * kPageSize));
  EXPECT_FALSE(host.monitor_polling());
  ASSERT_TRUE(host.ArmMonitor(3, 0x2001));
  EXPECT_TRUE(host.monitor_polling());
  auto page = guest.ram().Pages(kMonitorGpn, 1);
  ASSERT_TRUE(page);
  GuestSetsMonitorBit(*page, 3);
  ASSERT_TRUE(WaitFd(bell->fd()));
  EXPECT_EQ(bell->Consume(), 1u);
  EXPECT_EQ(PendingWord(*page, 0), 0u);
  // SignalEvent still works on the same connection.
  EXPECT_EQ(guest.SignalEvent(0x2001, 0), wire::HvStatus::kSuccess);
  ASSERT_TRUE(WaitFd(bell->fd()));
  EXPECT_GE(bell->Consume(), 1u);
  // The poller counts a hit right after ringing: wait for the count (guard-bounded).
  const auto guard = std::chrono::steady_clock::now() + std::chrono::milliseconds(testing::kGuardMs);
  while (host.stats().monitor_hits == 0 && std::chrono::steady_clock::now() < guard) {
    std::this_thread::yield();
  }
  const HostPartitionStats s = host.stats();
  EXPECT_EQ(s.monitor_hits, 1u);
  EXPECT_GE(s.monitor_polls, 1u);
  host.DisarmMonitor(3);
  EXPECT_FALSE(host.monitor_polling());
  (*lp)->Disconnect();
  EXPECT_FALSE(host.monitor_polling());
}

}  // namespace
}  // namespace uvmbus::partition
