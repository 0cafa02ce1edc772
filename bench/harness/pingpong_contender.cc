// Latency contender: one frame in flight, copied across and echoed back through shared memory,
// written from the method of the peers' pingpong.c (cacheline and eventfd modes).
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/frames.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/statistics.h"
#include "common/unique_fd.h"

namespace uvmbus::bench {
namespace {

// Round trips discarded at the start (cold caches, first wake-ups).
constexpr uint64_t kWarmupRoundTrips = 100;
// Measured round trips a run always collects, even past the stop request (a busy machine can
// deschedule one side for whole time slices; RunPair's stop timeout still bounds the run).
constexpr uint64_t kMinMeasuredRoundTrips = 100;

struct Shared {
  // Sequence number of the frame in each direction; the frame bytes are published by the
  // release store of its sequence number.
  alignas(64) std::atomic<uint64_t> ping_seq{0};  // ping -> pong
  alignas(64) std::atomic<uint64_t> pong_seq{0};  // pong -> ping
  alignas(64) LatencyHistogram rtt;               // written by the ping side only
};

void Kick(int fd) {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
}

void Wait(int fd) {
  uint64_t v = 0;
  [[maybe_unused]] ssize_t r = ::read(fd, &v, sizeof v);
}

class PingPongContender final : public Contender {
 public:
  std::string name() const override { return "pingpong"; }
  std::string description() const override {
    return "one frame across and back through shared memory; poll: busy-poll a cache line, "
           "interrupt: blocking eventfd read";
  }
  bool Supports(const RunConfig& config) const override {
    return config.workload == Workload::kLatency && config.queues == 1 &&
           ValidateCommon(config).has_value();
  }
  Expected<RunResult> Run(const RunConfig& config) override;
};

Expected<RunResult> PingPongContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  const uint32_t frame_bytes = config.frame_bytes;
  const size_t stride = (size_t{frame_bytes} + 63) & ~size_t{63};
  const bool interrupt = config.mode == Mode::kInterrupt;
  const FrameCheck level =
      config.check_every_byte ? FrameCheck::kEveryByte : FrameCheck::kSeqAndTail;

  auto shared_region = MapSharedAnonymous(sizeof(Shared));
  if (!shared_region) return unexpected(shared_region.error());
  auto frame_region = MapSharedAnonymous(2 * stride);
  if (!frame_region) return unexpected(frame_region.error());
  Shared* shared = ConstructIn<Shared>(*shared_region);
  uint8_t* to_pong = frame_region->data();
  uint8_t* to_ping = frame_region->data() + stride;
  UniqueFd efd_pong(::eventfd(0, EFD_CLOEXEC));  // wakes the pong side
  UniqueFd efd_ping(::eventfd(0, EFD_CLOEXEC));  // wakes the ping side
  if (!efd_pong || !efd_ping) return unexpected(Error::FromErrno("eventfd", errno));
  const int wake_pong = efd_pong.get();
  const int wake_ping = efd_ping.get();

  auto ping = [&](PairContext& ctx) -> int {
    FrameSource source(frame_bytes);
    std::vector<uint8_t> local(frame_bytes);
    uint64_t seq = 1, bad = 0;
    int64_t first_ns = 0, last_ns = 0;
    while (!ctx.StopRequested() || shared->rtt.count() < kMinMeasuredRoundTrips) {
      if (ctx.Aborted()) return ctx.Fail("aborted");
      const int64_t t0 = NowNs();
      const auto frame = source.Stamp(seq);
      std::memcpy(to_pong, frame.data(), frame_bytes);
      // Release: the frame bytes are visible before its sequence number.
      shared->ping_seq.store(seq, std::memory_order_release);
      if (interrupt) Kick(wake_pong);
      while (shared->pong_seq.load(std::memory_order_acquire) != seq) {
        if (ctx.Aborted()) return ctx.Fail("aborted");
        if (interrupt) {
          Wait(wake_ping);
        } else {
          CpuRelax();
        }
      }
      std::memcpy(local.data(), to_ping, frame_bytes);
      if (!CheckFrame(local, frame_bytes, seq, level)) ++bad;
      const int64_t t1 = NowNs();
      if (seq > kWarmupRoundTrips) {
        shared->rtt.Record(static_cast<uint64_t>(t1 - t0));
        if (first_ns == 0) first_ns = t0;
        last_ns = t1;
      }
      ++seq;
    }
    SideReport& rep = ctx.report();
    rep.packets = seq - 1;
    rep.bytes = rep.packets * frame_bytes;
    rep.bad = bad;
    rep.first_ns = first_ns;
    rep.last_ns = last_ns;
    ctx.SetProducerDone();
    if (interrupt) Kick(wake_pong);  // the pong side may be asleep waiting for a next frame
    return 0;
  };

  auto pong = [&](PairContext& ctx) -> int {
    std::vector<uint8_t> local(frame_bytes);
    uint64_t expect = 1, bad = 0;
    for (;;) {
      bool done = false;
      while (shared->ping_seq.load(std::memory_order_acquire) != expect) {
        // The ping side sets "done" only after our last echo arrived: nothing is in flight.
        if (ctx.ProducerDone()) {
          done = true;
          break;
        }
        if (interrupt) {
          Wait(wake_pong);
        } else {
          CpuRelax();
        }
      }
      if (done) break;
      std::memcpy(local.data(), to_pong, frame_bytes);
      if (!CheckFrame(local, frame_bytes, expect, level)) ++bad;
      std::memcpy(to_ping, local.data(), frame_bytes);
      shared->pong_seq.store(expect, std::memory_order_release);
      if (interrupt) Kick(wake_ping);
      ++expect;
    }
    SideReport& rep = ctx.report();
    rep.packets = expect - 1;
    rep.bad = bad;
    return 0;
  };

  PairSpec spec;
  spec.producer_cpu = config.producer_cpu;
  spec.consumer_cpu = config.consumer_cpu;
  spec.run_seconds = config.seconds;
  auto outcome = RunPair(spec, ping, pong);
  if (!outcome) return unexpected(outcome.error());

  const SideReport& p = outcome->producer.report;
  RunResult r;
  r.packets = p.packets;
  r.sent = p.packets;
  r.bytes = p.bytes;
  r.bad = p.bad + outcome->consumer.report.bad;
  r.seconds = p.first_ns > 0 ? static_cast<double>(p.last_ns - p.first_ns) * 1e-9 : 0;
  r.producer_cpu_seconds = outcome->producer.cpu_seconds;
  r.consumer_cpu_seconds = outcome->consumer.cpu_seconds;
  r.rtt_p50_ns = shared->rtt.Percentile(0.50);
  r.rtt_p99_ns = shared->rtt.Percentile(0.99);
  if (!r.rtt_p50_ns) {
    return MakeError(ErrorCode::kUnavailable, "no round trip completed after the warm-up");
  }
  return r;
}

}  // namespace

std::unique_ptr<Contender> MakePingPongContender() {
  return std::make_unique<PingPongContender>();
}

}  // namespace uvmbus::bench
