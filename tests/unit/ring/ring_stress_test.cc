// Two-thread producer/consumer over one ring: a few hundred thousand packets of random sizes
// (0 to the ring's maximum) in random batches, with wrap-around, real blocking on both sides
// (the reader sleeps when drained and unmasked, the writer sleeps with pending_send_sz set),
// every payload byte checked, and every signal decision checked against the spec's rules.
//
// A concurrent test cannot know the peer's exact index at decision time, so the check is
// split in two exact parts:
//   1. each CommitWrite/CommitRead reports the values it based its decision on; the decision
//      must be the spec's function (ModelWriterSignal / ModelReaderSignal) of those values;
//   2. those values must be real: every read_index the writer saw is a position the reader
//      committed (and they never go backwards), every write_index the reader saw is a position
//      the writer committed, every pending_send_sz the reader saw is 0 or a value the writer
//      stored, and the mask is 0 or 1 and read_index is sampled exactly when the mask is 0.
// Lost wakeups show up as a side that waits for a signal that never comes: the waits have a
// generous deadlock timeout that fails the test (not a timing assertion).
// (The single-threaded RingModelTest checks the same decisions with an exactly known state.)
//
// Packet count: UVMBUS_RING_STRESS_PACKETS, default 300000 (100000 under TSan).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring_test_util.h"

namespace uvmbus::ring {
namespace {

using testing::InbandTotal;
using testing::ModelReaderSignal;
using testing::ModelWriterSignal;
using testing::PayloadMatches;
using testing::PayloadPattern;
using testing::TestRingMemory;

#if defined(__SANITIZE_THREAD__)
constexpr size_t kDefaultPackets = 100'000;  // TSan instruments every byte copied
#else
constexpr size_t kDefaultPackets = 300'000;
#endif

size_t StressPacketCount() {
  if (const char* env = std::getenv("UVMBUS_RING_STRESS_PACKETS")) {
    const unsigned long long n = std::strtoull(env, nullptr, 10);
    if (n > 0) return static_cast<size_t>(n);
  }
  return kDefaultPackets;
}

// Generous: only a lost wakeup (a real bug) can make a side wait this long.
constexpr auto kDeadlockTimeout = std::chrono::seconds(60);

// A counting signal (the test's stand-in for a VMBus interrupt). mutex + condition variable
// rather than std::counting_semaphore, which has a lost-wakeup bug in some libstdc++ 12
// releases (GCC PR 104928) that would look like a ring bug here.
class Signal {
 public:
  void Raise() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
    }
    cv_.notify_one();
  }
  // Consumes one signal; false if none arrived within `timeout`.
  bool Wait(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return count_ > 0; })) return false;
    --count_;
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

struct WriterObservation {
  uint64_t old_abs;  // absolute stream positions (bytes ever written) before/after the batch
  uint64_t new_abs;
  WriteCommit commit;
};

struct ReaderObservation {
  uint64_t old_abs;
  uint64_t new_abs;
  ReadCommit commit;
};

TEST(RingStressTest, TwoThreadsTransferEveryByteAndEverySignalFollowsTheSpec) {
  const size_t n = StressPacketCount();
  TestRingMemory mem(4);  // 16 KiB data area: wraps and fills constantly
  const uint32_t d = mem.data_size();
  auto out = OutgoingRing::Create(mem.view()).value();
  auto in = IncomingRing::Create(mem.view(), {.max_packet_size = d}).value();
  const uint32_t max_payload = out.max_inband_payload();

  // Sizes from 0 to the largest packet the ring takes, mostly small.
  std::mt19937_64 size_rng(12345);
  std::vector<uint32_t> sizes(n);
  for (auto& s : sizes) {
    const uint64_t kind = size_rng() % 100;
    const uint64_t hi = kind < 60 ? 64 : kind < 90 ? 1500 : max_payload;
    s = static_cast<uint32_t>(size_rng() % (hi + 1));
  }
  sizes[n / 2] = max_payload;  // at least one of each extreme
  sizes[n / 2 + 1] = 0;
  const PayloadPattern pattern(max_payload);

  Signal data_signal;   // writer -> reader: "ring became non-empty"
  Signal space_signal;  // reader -> writer: "room for pending_send_sz"
  std::atomic<bool> stop{false};
  std::string writer_error, reader_error;     // each written by one thread, read after join
  std::vector<WriterObservation> wobs;
  std::vector<ReaderObservation> robs;
  std::vector<uint32_t> pending_values;       // every pending_send_sz the writer stored
  wobs.reserve(n);
  robs.reserve(n);
  pending_values.reserve(n);

  auto fail = [&](std::string* slot, std::string what) {
    *slot = std::move(what);
    stop.store(true);
    data_signal.Raise();  // unblock the other side
    space_signal.Raise();
  };

  std::thread writer([&] {
    std::mt19937_64 rng(1);
    uint64_t abs = 0;
    size_t seq = 0;
    while (seq < n && !stop.load()) {
      WriteCursor c = out.BeginWrite();
      const uint64_t batch = 1 + rng() % 16;
      uint64_t bytes = 0;
      uint32_t blocked_on = 0;
      for (uint64_t i = 0; i < batch && seq < n; ++i) {
        WriteResult r = out.WriteInband(c, pattern.Slice(seq, sizes[seq]), seq, false);
        if (r.ok()) {
          bytes += r.total;
          ++seq;
          continue;
        }
        if (r.status != WriteStatus::kFull) return fail(&writer_error, "write failed");
        blocked_on = r.total;
        break;
      }
      // Publish what the batch holds before blocking (the reader cannot free space for
      // packets it cannot see).
      WriteCommit commit = out.CommitWrite(c);
      if (commit.committed) {
        wobs.push_back({abs, abs + bytes, commit});
        abs += bytes;
      }
      if (commit.needs_signal) data_signal.Raise();
      if (blocked_on == 0) continue;
      // Spec 3.5 writer side: publish pending_send_sz, re-check, then wait for the signal.
      auto room = out.SetPendingSendSize(blocked_on);
      if (!room) return fail(&writer_error, "SetPendingSendSize failed");
      pending_values.push_back((blocked_on + 7) / 8 * 8);
      if (!*room && !space_signal.Wait(kDeadlockTimeout)) {
        return fail(&writer_error, "writer never signalled for space (lost wakeup) at packet " +
                                       std::to_string(seq));
      }
    }
  });

  std::thread reader([&] {
    std::mt19937_64 rng(2);
    uint64_t abs = 0;
    size_t seq = 0;
    while (seq < n && !stop.load()) {
      // Vary the masking: sometimes drain masked (no signals come), sometimes unmasked.
      switch (rng() % 4) {
        case 0: in.BeginReadMask(); break;
        case 1: (void)in.EndReadMask(); break;
        default: break;
      }
      ReadCursor c = in.BeginRead();
      const uint64_t batch = 1 + rng() % 32;
      uint64_t bytes = 0;
      bool drained = false;
      for (uint64_t i = 0; i < batch && seq < n; ++i) {
        ReadResult r = in.Read(c);
        if (r.status == ReadStatus::kEmpty) {
          drained = true;
          break;
        }
        if (!r.ok()) {
          return fail(&reader_error, "read failed: " + std::string(RingErrorName(r.error)));
        }
        if (r.packet.desc.trans_id != seq) {
          return fail(&reader_error, "packet " + std::to_string(seq) + " out of order");
        }
        auto match = PayloadMatches(pattern, seq, sizes[seq], r.packet.payload);
        if (!match) return fail(&reader_error, match.message());
        bytes += InbandTotal(sizes[seq]);
        ++seq;
      }
      ReadCommit commit = in.CommitRead(c);
      if (commit.committed) {
        robs.push_back({abs, abs + bytes, commit});
        abs += bytes;
      }
      if (commit.needs_signal) space_signal.Raise();
      if (!drained) continue;
      // Spec 3.6: unmask, barrier, re-check; sleep only if nothing raced in.
      auto avail = in.EndReadMask();
      if (!avail) return fail(&reader_error, "EndReadMask failed");
      if (*avail == 0 && !data_signal.Wait(kDeadlockTimeout)) {
        return fail(&reader_error, "reader never signalled for data (lost wakeup) at packet " +
                                       std::to_string(seq));
      }
    }
  });
  writer.join();
  reader.join();
  ASSERT_EQ(writer_error, "");
  ASSERT_EQ(reader_error, "");

  // Positions each side published, for checking that observed values are real.
  std::vector<uint64_t> reader_positions{0}, writer_positions{0};
  for (const auto& o : robs) reader_positions.push_back(o.new_abs);
  for (const auto& o : wobs) writer_positions.push_back(o.new_abs);
  std::sort(pending_values.begin(), pending_values.end());
  EXPECT_EQ(writer_positions.back(), reader_positions.back());

  int reported = 0;
  auto report = [&](const std::string& what) {
    if (++reported <= 10) ADD_FAILURE() << what;
  };
  uint64_t writer_signals = 0, reader_signals = 0, last_r_abs = 0;
  for (size_t i = 0; i < wobs.size(); ++i) {
    const WriteCommit& c = wobs[i].commit;
    const uint32_t old_w = static_cast<uint32_t>(wobs[i].old_abs % d);
    if (c.old_write_index != old_w) report("writer commit " + std::to_string(i) + ": old_w");
    if (c.interrupt_mask > 1) report("writer commit " + std::to_string(i) + ": mask value");
    if (c.read_index_sampled != (c.interrupt_mask == 0)) {
      report("writer commit " + std::to_string(i) + ": read_index sampled with mask set");
    }
    if (c.needs_signal != ModelWriterSignal(true, c.interrupt_mask, c.read_index, old_w)) {
      report("writer commit " + std::to_string(i) + ": needs_signal differs from spec 3.4");
    }
    writer_signals += c.needs_signal;
    if (!c.read_index_sampled) continue;
    // The reader is at most D - 8 behind our new position: recover its absolute position.
    const uint64_t behind = (c.new_write_index + uint64_t{d} - c.read_index) % d;
    const uint64_t r_abs = wobs[i].new_abs - behind;
    if (c.read_index % 8 != 0 || c.read_index >= d ||
        !std::binary_search(reader_positions.begin(), reader_positions.end(), r_abs) ||
        r_abs < last_r_abs) {
      report("writer commit " + std::to_string(i) + ": saw a read_index the reader never had");
    }
    last_r_abs = r_abs;
  }
  for (size_t i = 0; i < robs.size(); ++i) {
    const ReadCommit& c = robs[i].commit;
    const uint32_t old_r = static_cast<uint32_t>(robs[i].old_abs % d);
    const uint32_t new_r = static_cast<uint32_t>(robs[i].new_abs % d);
    if (c.old_read_index != old_r || c.new_read_index != new_r) {
      report("reader commit " + std::to_string(i) + ": indices");
    }
    if (!c.feature_pending_send_sz || !c.pending_sampled) {
      report("reader commit " + std::to_string(i) + ": feature/pending not sampled");
    }
    if (c.pending_send_sz != 0 && !std::binary_search(pending_values.begin(),
                                                      pending_values.end(), c.pending_send_sz)) {
      report("reader commit " + std::to_string(i) + ": saw a pending_send_sz never stored");
    }
    const uint32_t p = c.pending_send_sz & ~7u;
    if (c.write_index_sampled != (p != 0 && p < d)) {
      report("reader commit " + std::to_string(i) + ": write_index sampling");
    }
    bool want = false;
    if (c.write_index_sampled) {
      const uint64_t ahead = (c.write_index + uint64_t{d} - new_r) % d;
      if (!std::binary_search(writer_positions.begin(), writer_positions.end(),
                              robs[i].new_abs + ahead)) {
        report("reader commit " + std::to_string(i) + ": saw a write_index never published");
      }
      want = ModelReaderSignal(true, d, old_r, new_r, true, c.pending_send_sz, c.write_index);
    }
    if (c.needs_signal != want) {
      report("reader commit " + std::to_string(i) + ": needs_signal differs from spec 3.5");
    }
    reader_signals += c.needs_signal;
  }
  EXPECT_EQ(out.stats().intr_out_empty.Get(), writer_signals);
  EXPECT_EQ(in.stats().intr_in_full.Get(), reader_signals);
  EXPECT_EQ(out.stats().packets.Get(), n);
  EXPECT_EQ(in.stats().packets.Get(), n);
  EXPECT_EQ(out.stats().errors.Total() + in.stats().errors.Total(), 0u);
  if (n >= 10'000) {
    // The run exercised what it is meant to: many wraps, both kinds of signal, blocking.
    EXPECT_GT(writer_positions.back(), uint64_t{100} * d);
    EXPECT_GT(writer_signals, 0u);
    EXPECT_GT(reader_signals, 0u);
    EXPECT_GT(pending_values.size(), 0u);
  }
  std::printf("[ stress ] %zu packets, %zu write batches (%llu signals), %zu read batches "
              "(%llu signals), writer blocked %zu times\n",
              n, wobs.size(), static_cast<unsigned long long>(writer_signals), robs.size(),
              static_cast<unsigned long long>(reader_signals), pending_values.size());
}

}  // namespace
}  // namespace uvmbus::ring
