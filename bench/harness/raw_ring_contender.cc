// The physical-limit contender: a VMBus-like batched byte ring between two processes, written
// from the method of the peers' spsc.c (their README section B.3), not from its code.
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/frames.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/streaming_pair.h"
#include "common/unique_fd.h"

namespace uvmbus::bench {
namespace {

constexpr uint32_t kMaxQueues = 16;
constexpr uint32_t kRecordMagic = 0x52574152;  // "RAWR"

// Each record: this header, then the frame, padded to 8 bytes.
struct RecordHeader {
  uint32_t len;
  uint32_t magic;
};
static_assert(sizeof(RecordHeader) == 8);

// Per-queue indices, each on its own cache line so the two sides do not false-share. They are
// byte positions that only grow (the ring offset is position & (footprint - 1)).
struct alignas(64) QueueIndices {
  alignas(64) std::atomic<uint64_t> write{0};  // producer-owned
  alignas(64) std::atomic<uint64_t> read{0};   // consumer-owned
};

struct Shared {
  // Interrupt mode: 1 while the consumer is (about to be) asleep on the doorbell.
  alignas(64) std::atomic<uint32_t> sleeping{0};
  std::array<QueueIndices, kMaxQueues> queues;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "cross-process atomics must be lock-free");

// Counter slots in SideReport::counters.
constexpr size_t kDoorbells = 0;  // producer: eventfd writes
constexpr size_t kWakeups = 0;    // consumer: blocking reads that returned

uint64_t RecordBytes(uint32_t frame_bytes) { return 8 + ((uint64_t{frame_bytes} + 7) & ~7ull); }

class RawRingContender final : public Contender {
 public:
  explicit RawRingContender(const RawRingOptions& options) : options_(options) {}

  std::string name() const override {
    std::string n = "raw-ring-" + FormatSize(options_.footprint_bytes);
    if (options_.batch != 32) n += fmt::format("-b{}", options_.batch);
    return n;
  }
  std::string description() const override {
    return fmt::format(
        "raw shared-memory byte ring, {} per queue, batch {}, 8-byte record headers, cached "
        "peer index (the physical limit)",
        FormatSize(options_.footprint_bytes), options_.batch);
  }
  bool Supports(const RunConfig& config) const override {
    return config.workload == Workload::kThroughput && ValidOptions() &&
           ValidateCommon(config).has_value() && config.queues <= kMaxQueues &&
           RecordBytes(config.frame_bytes) * 2 <= options_.footprint_bytes;
  }
  Expected<RunResult> Run(const RunConfig& config) override;

 private:
  bool ValidOptions() const {
    const uint32_t f = options_.footprint_bytes;
    return f >= 4096 && (f & (f - 1)) == 0 && options_.batch >= 1 && options_.batch <= 4096;
  }

  RawRingOptions options_;
};

// Copies with the split at the wrap point (the ring is mapped once).
inline void CopyIn(uint8_t* ring, uint64_t mask, uint64_t pos, const void* src, size_t n) {
  const size_t off = pos & mask;
  const size_t first = mask + 1 - off;
  if (n <= first) {
    std::memcpy(ring + off, src, n);
  } else {
    std::memcpy(ring + off, src, first);
    std::memcpy(ring, static_cast<const uint8_t*>(src) + first, n - first);
  }
}

inline void CopyOut(const uint8_t* ring, uint64_t mask, uint64_t pos, void* dst, size_t n) {
  const size_t off = pos & mask;
  const size_t first = mask + 1 - off;
  if (n <= first) {
    std::memcpy(dst, ring + off, n);
  } else {
    std::memcpy(dst, ring + off, first);
    std::memcpy(static_cast<uint8_t*>(dst) + first, ring, n - first);
  }
}

void Kick(int fd) {
  const uint64_t one = 1;
  // An eventfd write fails only if the counter would overflow: a wake-up is pending anyway.
  [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
}

Expected<RunResult> RawRingContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  if (Status st = ValidateCommon(config); !st) return unexpected(st.error());
  const uint64_t footprint = options_.footprint_bytes;
  const uint64_t mask = footprint - 1;
  const uint32_t frame_bytes = config.frame_bytes;
  const uint64_t rec = RecordBytes(frame_bytes);
  const uint32_t queues = config.queues;
  const uint32_t batch = options_.batch;
  const bool interrupt = config.mode == Mode::kInterrupt;
  const FrameCheck level =
      config.check_every_byte ? FrameCheck::kEveryByte : FrameCheck::kSeqAndTail;

  auto shared_region = MapSharedAnonymous(sizeof(Shared));
  if (!shared_region) return unexpected(shared_region.error());
  auto ring_region = MapSharedAnonymous(footprint * queues);
  if (!ring_region) return unexpected(ring_region.error());
  Shared* shared = ConstructIn<Shared>(*shared_region);
  uint8_t* rings = ring_region->data();
  UniqueFd doorbell(::eventfd(0, EFD_CLOEXEC));
  if (!doorbell) return unexpected(Error::FromErrno("eventfd", errno));
  const int efd = doorbell.get();

  auto producer = [&](PairContext& ctx) -> int {
    FrameSource source(frame_bytes);
    std::array<uint64_t, kMaxQueues> wr{}, rd_cached{}, seq{};
    uint64_t sent = 0, doorbells = 0;
    uint32_t q = 0;
    while (!ctx.StopRequested()) {
      QueueIndices& k = shared->queues[q];
      uint8_t* ring = rings + q * footprint;
      uint64_t free = footprint - (wr[q] - rd_cached[q]);
      if (free < rec * batch) {
        // Acquire: the consumer copied the records out before it released this index.
        rd_cached[q] = k.read.load(std::memory_order_acquire);
        if (rd_cached[q] > wr[q] || wr[q] - rd_cached[q] > footprint) {
          return ctx.Fail("consumer published an impossible read index");
        }
        free = footprint - (wr[q] - rd_cached[q]);
        if (free < rec) {
          CpuRelax();
          q = q + 1 == queues ? 0 : q + 1;
          continue;
        }
      }
      uint32_t n = 0;
      while (n < batch && free >= rec) {
        const auto frame = source.Stamp(seq[q]);
        const RecordHeader header{frame_bytes, kRecordMagic};
        CopyIn(ring, mask, wr[q], &header, sizeof header);
        CopyIn(ring, mask, wr[q] + sizeof header, frame.data(), frame_bytes);
        wr[q] += rec;
        free -= rec;
        ++seq[q];
        ++n;
      }
      // Release: the records' bytes become visible no later than the index covering them.
      k.write.store(wr[q], std::memory_order_release);
      sent += n;
      if (interrupt) {
        // Dekker with the consumer's sleep: we store write then load sleeping, it stores
        // sleeping then loads write, each with a full fence between; one of us sees the other,
        // so a consumer never sleeps on published data.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (shared->sleeping.load(std::memory_order_relaxed) != 0 &&
            shared->sleeping.exchange(0, std::memory_order_acq_rel) != 0) {
          Kick(efd);
          ++doorbells;
        }
      }
      q = q + 1 == queues ? 0 : q + 1;
    }
    SideReport& rep = ctx.report();
    rep.packets = sent;
    rep.bytes = sent * frame_bytes;
    rep.counters[kDoorbells] = doorbells;
    ctx.SetProducerDone();
    if (interrupt) Kick(efd);  // a sleeping consumer must see "done"
    return 0;
  };

  auto consumer = [&](PairContext& ctx) -> int {
    FrameSink sink(frame_bytes);
    std::array<uint64_t, kMaxQueues> rd{}, wr_cached{}, expect{};
    uint64_t got = 0, bad = 0, wakeups = 0;
    int64_t first_ns = 0;
    int idle = 0;
    bool final_pass = false;
    for (;;) {
      bool any = false;
      for (uint32_t q = 0; q < queues; ++q) {
        QueueIndices& k = shared->queues[q];
        const uint8_t* ring = rings + q * footprint;
        if (wr_cached[q] == rd[q]) {
          // Acquire: pairs with the producer's release; the records up to it are complete.
          wr_cached[q] = k.write.load(std::memory_order_acquire);
          if (wr_cached[q] < rd[q] || wr_cached[q] - rd[q] > footprint) {
            return ctx.Fail("producer published an impossible write index");
          }
          if (wr_cached[q] == rd[q]) continue;
        }
        uint32_t n = 0;
        while (rd[q] != wr_cached[q] && n < batch) {
          RecordHeader header{};
          CopyOut(ring, mask, rd[q], &header, sizeof header);
          // The header came from the other process: check it before trusting its length.
          if (header.magic != kRecordMagic || header.len != frame_bytes ||
              wr_cached[q] - rd[q] < rec) {
            return ctx.Fail("corrupt record header");
          }
          const auto dst = sink.Slot(got).first(frame_bytes);
          CopyOut(ring, mask, rd[q] + sizeof header, dst.data(), frame_bytes);
          if (!CheckFrame(dst, frame_bytes, expect[q], level)) ++bad;
          ++expect[q];
          rd[q] += rec;
          ++got;
          ++n;
        }
        // Release: we are done reading these bytes before the producer may overwrite them.
        k.read.store(rd[q], std::memory_order_release);
        any = true;
      }
      if (any) {
        if (first_ns == 0) first_ns = NowNs();
        idle = 0;
        continue;
      }
      if (final_pass) break;
      if (ctx.ProducerDone()) {
        final_pass = true;  // one more pass sees everything published before "done"
        continue;
      }
      if (interrupt && ++idle > kIdlePollsBeforeSleep) {
        shared->sleeping.store(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool empty = true;
        for (uint32_t q = 0; q < queues && empty; ++q) {
          empty = shared->queues[q].write.load(std::memory_order_relaxed) == rd[q];
        }
        if (empty && !ctx.ProducerDone()) {
          uint64_t v = 0;
          if (::read(efd, &v, sizeof v) == sizeof v) ++wakeups;
        }
        shared->sleeping.store(0, std::memory_order_relaxed);
        idle = 0;
      } else {
        CpuRelax();
      }
    }
    SideReport& rep = ctx.report();
    rep.packets = got;
    rep.bytes = got * frame_bytes;
    rep.bad = bad;
    rep.first_ns = first_ns;
    rep.last_ns = NowNs();
    rep.counters[kWakeups] = wakeups;
    return 0;
  };


  const PerPacketCounter interrupt_counters[] = {{"doorbells_per_packet", true, kDoorbells},
                                                 {"wakeups_per_packet", false, kWakeups}};
  return RunStreamingPair(config, producer, consumer,
                          interrupt ? std::span<const PerPacketCounter>(interrupt_counters)
                                    : std::span<const PerPacketCounter>());
}

}  // namespace

std::unique_ptr<Contender> MakeRawRingContender(const RawRingOptions& options) {
  return std::make_unique<RawRingContender>(options);
}

}  // namespace uvmbus::bench
