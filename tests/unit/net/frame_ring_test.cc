// FrameRing: the bounded MPSC frame queue and its arm/re-check/sleep wake protocol.
#include "net/frame_ring.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "net_test_util.h"

namespace uvmbus::net {
namespace {

using testing::FdReadable;
using testing::Mac;
using testing::MakeFrame;

std::unique_ptr<FrameRing> NewRing(uint32_t depth = 4, uint32_t slot = 1514) {
  auto r = FrameRing::Create(depth, slot);
  EXPECT_TRUE(r) << r.error();
  return std::move(*r);
}

TEST(FrameRingTest, RejectsBadGeometry) {
  EXPECT_EQ(FrameRing::Create(3, 1514).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(FrameRing::Create(1, 1514).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(FrameRing::Create(131072, 1514).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(FrameRing::Create(4, 13).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(FrameRing::Create(4, kMaxFrameSize + 1).error().code, ErrorCode::kInvalidArgument);
}

TEST(FrameRingTest, PopReturnsFramesInOrderAndEmptyAfterwards) {
  auto ring = NewRing();
  auto a = MakeFrame(Mac(1), Mac(2), 100, 1);
  auto b = MakeFrame(Mac(1), Mac(2), 200, 2);
  ASSERT_TRUE(ring->Push(a, {}));
  ASSERT_TRUE(ring->Push(b, {}));
  std::vector<uint8_t> out(1514);
  uint32_t len = 0;
  ASSERT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + len), a);
  ASSERT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + len), b);
  EXPECT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kEmpty);
}

TEST(FrameRingTest, FullRingRefusesWithoutBlockingAndRecoversAfterPop) {
  auto ring = NewRing(4);
  auto f = MakeFrame(Mac(1), Mac(2));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ring->Push(f, {}));
  EXPECT_FALSE(ring->Push(f, {}));
  std::vector<uint8_t> out(1514);
  uint32_t len = 0;
  ASSERT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  EXPECT_TRUE(ring->Push(f, {}));
  EXPECT_FALSE(ring->Push(f, {}));
}

TEST(FrameRingTest, ShortFramesArePaddedToSixtyBytesWithZeros) {
  auto ring = NewRing();
  auto f = MakeFrame(Mac(1), Mac(2), 42, 9);
  ASSERT_TRUE(ring->Push(f, {}));
  std::vector<uint8_t> out(100, 0xee);
  uint32_t len = 0;
  ASSERT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  ASSERT_EQ(len, 60u);
  EXPECT_TRUE(std::equal(f.begin(), f.end(), out.begin()));
  for (uint32_t i = 42; i < 60; ++i) EXPECT_EQ(out[i], 0) << i;
}

TEST(FrameRingTest, HeaderOverrideReplacesTheFirstBytes) {
  auto ring = NewRing();
  auto f = MakeFrame(Mac(1), Mac(2), 80);
  auto h = MakeFrame(Mac(7), Mac(8), 14);
  ASSERT_TRUE(ring->Push(f, h));
  std::vector<uint8_t> out(100);
  uint32_t len = 0;
  ASSERT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  EXPECT_TRUE(std::equal(h.begin(), h.end(), out.begin()));
  EXPECT_TRUE(std::equal(f.begin() + 14, f.end(), out.begin() + 14));
}

TEST(FrameRingTest, FrameLargerThanTheBufferIsDiscardedAndReported) {
  auto ring = NewRing();
  auto big = MakeFrame(Mac(1), Mac(2), 1000);
  auto small = MakeFrame(Mac(1), Mac(2), 100);
  ASSERT_TRUE(ring->Push(big, {}));
  ASSERT_TRUE(ring->Push(small, {}));
  std::vector<uint8_t> out(500);
  uint32_t len = 0;
  EXPECT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kTooBig);
  EXPECT_EQ(len, 1000u);
  EXPECT_EQ(ring->Pop(out, &len), FrameRing::PopResult::kOk);
  EXPECT_EQ(len, 100u);
}

TEST(FrameRingTest, PushLargerThanSlotIsRefused) {
  auto ring = NewRing(4, 100);
  EXPECT_FALSE(ring->Push(MakeFrame(Mac(1), Mac(2), 101), {}));
}

TEST(FrameRingTest, PrepareWaitRefusesToSleepWhenFramesArePending) {
  auto ring = NewRing();
  ASSERT_TRUE(ring->Push(MakeFrame(Mac(1), Mac(2)), {}));
  EXPECT_FALSE(ring->PrepareWait());
}

TEST(FrameRingTest, ArmedRingSignalsOnceAPublishedBatchIsWoken) {
  auto ring = NewRing();
  ASSERT_TRUE(ring->PrepareWait());
  EXPECT_FALSE(FdReadable(ring->wait_fd()));
  ASSERT_TRUE(ring->Push(MakeFrame(Mac(1), Mac(2)), {}));
  EXPECT_FALSE(FdReadable(ring->wait_fd()));  // the producer wakes after its batch
  ring->WakeIfArmed();
  EXPECT_TRUE(FdReadable(ring->wait_fd()));
  // Not armed any more: a second batch does not signal again.
  ASSERT_FALSE(ring->PrepareWait());  // drains the eventfd, sees the frame
  EXPECT_FALSE(FdReadable(ring->wait_fd()));
}

TEST(FrameRingTest, UnarmedRingDoesNotSignal) {
  auto ring = NewRing();
  ASSERT_TRUE(ring->Push(MakeFrame(Mac(1), Mac(2)), {}));
  ring->WakeIfArmed();
  EXPECT_FALSE(FdReadable(ring->wait_fd()));
}

// Several producers and a consumer that sleeps whenever the ring is empty: every frame that was
// accepted is received exactly once and per-producer order is kept. (The poll timeout only bounds
// the damage of a lost wake-up; TSan checks the publication protocol.)
TEST(FrameRingTest, ConcurrentProducersAndSleepingConsumerLoseNothing) {
  constexpr int kProducers = 3;
  constexpr uint32_t kPerProducer = 3000;
  auto ring = NewRing(64, 64);
  std::atomic<uint64_t> accepted{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<uint8_t> f(64, 0);
      f[0] = static_cast<uint8_t>(p);
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        std::memcpy(&f[16], &i, 4);
        if (ring->Push(f, {})) accepted.fetch_add(1, std::memory_order_relaxed);
        if (i % 8 == 7) ring->WakeIfArmed();
        if (i % 64 == 0) std::this_thread::yield();
      }
      ring->WakeIfArmed();
    });
  }
  std::atomic<bool> done{false};
  uint64_t received = 0;
  std::vector<int64_t> last(kProducers, -1);
  bool order_ok = true;
  std::thread consumer([&] {
    std::vector<uint8_t> out(64);
    for (;;) {
      // Read `done` before popping: producers joined before it was set, so an empty ring seen
      // after it is really empty.
      const bool finished = done.load();
      uint32_t len = 0;
      if (ring->Pop(out, &len) == FrameRing::PopResult::kOk) {
        ++received;
        uint32_t seq;
        std::memcpy(&seq, &out[16], 4);
        if (static_cast<int64_t>(seq) <= last[out[0]]) order_ok = false;
        last[out[0]] = seq;
        continue;
      }
      if (finished) break;
      if (ring->PrepareWait()) testing::FdReadable(ring->wait_fd(), 1000);
    }
  });
  for (auto& t : producers) t.join();
  done.store(true);
  ring->WakeIfArmed();  // get a sleeping consumer to notice `done`
  consumer.join();
  EXPECT_EQ(received, accepted.load());
  EXPECT_TRUE(order_ok);
  EXPECT_GT(accepted.load(), 0u);
}

}  // namespace
}  // namespace uvmbus::net
