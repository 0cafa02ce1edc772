// The "vmbus ring, no NIC" contender: frames as DATA_INBAND packets through uvmbus's own
// ring::OutgoingRing / IncomingRing between two processes. It is the floor of the NIC: the
// NIC adds NVSP/RNDIS framing, buffers and completions on top of exactly this.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/frames.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/streaming_pair.h"
#include "common/unique_fd.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"
#include "wire/ring_format.h"

namespace uvmbus::bench {
namespace {

constexpr uint32_t kMaxQueues = 16;
constexpr size_t kDoorbells = 0;  // producer counter slot: eventfd writes
constexpr size_t kWakeups = 0;    // consumer counter slot: blocking reads that returned

// Ring bytes of one packet: descriptor + payload padded to 8 (trailer excluded).
uint32_t PacketBytes(uint32_t frame_bytes) {
  return wire::kPacketDescriptorSize + ((frame_bytes + 7u) & ~7u);
}

void Kick(int fd) {
  const uint64_t one = 1;
  // Fails only if the counter would overflow, i.e. a wake-up is pending anyway.
  [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
}

class VmbusRingContender final : public Contender {
 public:
  explicit VmbusRingContender(const VmbusRingOptions& options) : options_(options) {}

  std::string name() const override {
    std::string n = "vmbus-ring-" + FormatSize(options_.data_bytes);
    if (options_.batch != 32) n += fmt::format("-b{}", options_.batch);
    return n;
  }
  std::string description() const override {
    return fmt::format(
        "uvmbus ring::OutgoingRing/IncomingRing, {} data area per queue, DATA_INBAND packets, "
        "batch {} (VMBus ring, no NIC)",
        FormatSize(options_.data_bytes), options_.batch);
  }
  bool Supports(const RunConfig& config) const override {
    const uint32_t d = options_.data_bytes;
    const bool ring_ok = d >= wire::kRingMinDataSize && d % wire::kRingPageSize == 0 &&
                         d <= ring::kMaxRingDataSize && options_.batch >= 1 &&
                         options_.batch <= 4096;
    // Leave room for at least two packets + trailers (spec 3.3: never completely full).
    return config.workload == Workload::kThroughput && ring_ok &&
           ValidateCommon(config).has_value() && config.queues <= kMaxQueues &&
           uint64_t{PacketBytes(config.frame_bytes) + 8} * 2 + 16 <= d;
  }
  Expected<RunResult> Run(const RunConfig& config) override;

 private:
  VmbusRingOptions options_;
};

Expected<RunResult> VmbusRingContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  const uint32_t frame_bytes = config.frame_bytes;
  const uint32_t queues = config.queues;
  const uint32_t batch = options_.batch;
  const bool interrupt = config.mode == Mode::kInterrupt;
  const FrameCheck level =
      config.check_every_byte ? FrameCheck::kEveryByte : FrameCheck::kSeqAndTail;
  const size_t ring_bytes = size_t{wire::kRingHeaderSize} + options_.data_bytes;

  auto region = MapSharedAnonymous(ring_bytes * queues);
  if (!region) return unexpected(region.error());
  std::vector<ring::RingView> views;
  for (uint32_t q = 0; q < queues; ++q) {
    auto view = ring::InitRingControl({region->data() + q * ring_bytes, ring_bytes});
    if (!view) return unexpected(ring::ToError(view.error()));
    views.push_back(*view);
  }
  UniqueFd doorbell(::eventfd(0, EFD_CLOEXEC));
  if (!doorbell) return unexpected(Error::FromErrno("eventfd", errno));
  const int efd = doorbell.get();

  auto producer = [&](PairContext& ctx) -> int {
    std::vector<ring::OutgoingRing> outs;
    for (const auto& v : views) {
      auto out = ring::OutgoingRing::Create(v);
      if (!out) return ctx.Fail(ring::RingErrorName(out.error()));
      outs.push_back(std::move(*out));
    }
    FrameSource source(frame_bytes);
    std::vector<uint64_t> seq(queues, 0);
    uint64_t sent = 0, doorbells = 0;
    uint32_t q = 0;
    while (!ctx.StopRequested()) {
      ring::OutgoingRing& out = outs[q];
      ring::WriteCursor c = out.BeginWrite();
      for (uint32_t n = 0; n < batch; ++n) {
        const ring::WriteResult r = out.WriteInband(c, source.Stamp(seq[q]), seq[q], false);
        if (r.status == ring::WriteStatus::kFull) break;  // flow control: publish what we have
        if (!r.ok()) return ctx.Fail(ring::RingErrorName(r.error));
        ++seq[q];
      }
      if (c.packets() == 0) {
        CpuRelax();  // full: the producer busy-waits for room in both modes
      } else {
        sent += c.packets();
        const ring::WriteCommit commit = out.CommitWrite(c);
        // Spec 3.4: signal only when the reader had drained the ring and is not masked. In
        // poll mode the consumer stays masked, so this is never true.
        if (commit.needs_signal) {
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
    std::vector<ring::IncomingRing> ins;
    for (const auto& v : views) {
      // No own buffer: packets are copied straight into the sink (one copy out).
      auto in = ring::IncomingRing::Create(v, {.max_packet_size = 0});
      if (!in) return ctx.Fail(ring::RingErrorName(in.error()));
      ins.push_back(std::move(*in));
    }
    // A polling consumer keeps interrupt_mask set (spec 3.6), so the producer never signals.
    for (auto& in : ins) in.BeginReadMask();
    const uint32_t packet_bytes = PacketBytes(frame_bytes);
    FrameSink sink(packet_bytes);
    std::vector<uint64_t> expect(queues, 0);
    uint64_t got = 0, bad = 0, wakeups = 0;
    int64_t first_ns = 0;
    int idle = 0;
    bool final_pass = false;
    for (;;) {
      bool any = false;
      for (uint32_t q = 0; q < queues; ++q) {
        ring::IncomingRing& in = ins[q];
        ring::ReadCursor c = in.BeginRead();
        for (uint32_t n = 0; n < batch; ++n) {
          const ring::ReadResult r = in.Read(c, sink.Slot(got).first(packet_bytes));
          if (r.status == ring::ReadStatus::kEmpty) break;
          if (!r.ok()) return ctx.Fail(ring::RingErrorName(r.error));
          // payload includes the padding to 8 bytes: the frame is its first frame_bytes.
          const auto frame = r.packet.payload.first(std::min<size_t>(frame_bytes,
                                                                     r.packet.payload.size()));
          if (r.packet.desc.trans_id != expect[q] ||
              !CheckFrame(frame, frame_bytes, expect[q], level)) {
            ++bad;
          }
          ++expect[q];
          ++got;
        }
        if (c.packets() > 0) {
          // The producer spins when full and never sets pending_send_sz, so the commit's
          // signal decision is always false here.
          in.CommitRead(c);
          any = true;
        }
      }
      if (any) {
        if (first_ns == 0) first_ns = NowNs();
        idle = 0;
        continue;
      }
      if (final_pass) break;
      if (ctx.ProducerDone()) {
        final_pass = true;
        continue;
      }
      if (interrupt && ++idle > kIdlePollsBeforeSleep) {
        // Spec 3.6 hv_end_read: unmask, full barrier, re-check; data that raced in is read now
        // because no signal will come for it.
        bool raced = false;
        for (auto& in : ins) {
          auto avail = in.EndReadMask();
          if (!avail) return ctx.Fail(ring::RingErrorName(avail.error()));
          raced = raced || *avail > 0;
        }
        if (!raced && !ctx.ProducerDone()) {
          uint64_t v = 0;
          if (::read(efd, &v, sizeof v) == sizeof v) ++wakeups;
        }
        for (auto& in : ins) in.BeginReadMask();
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

std::unique_ptr<Contender> MakeVmbusRingContender(const VmbusRingOptions& options) {
  return std::make_unique<VmbusRingContender>(options);
}

}  // namespace uvmbus::bench
