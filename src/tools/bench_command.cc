// File: tools/bench_command.cc
//
// What: `uvmbus bench` (issue 4): the end-to-end benchmark of bench/harness (placement probe,
// interleaved rounds, raw ring, vmbus ring, AF_UNIX, DPDK memif, ping-pong) plus uvmbus's own
// synthetic NIC as contenders, in one run on the same two cores:
//   uvmbus-nic-g2h  guest -> host: the guest process transmits through the netvsc burst API
//                   (NetDevice::Send), the host process's netvsp hands the frames to an
//                   in-process sink endpoint that copies every frame out and checks it;
//                   latency workload: 64 B request/response, the host endpoint echoes.
//   uvmbus-nic-h2g  host -> guest: an in-process source endpoint copies frames into netvsp's
//                   receive path, the guest process takes them with NetDevice::Receive and
//                   checks them.
// Each run is two processes (RunPair, bench/harness/process_pair.h): `uvmbus host`'s pieces
// (HostService + SocketHost + NetvspDevice) pinned to one core and `uvmbus guest`'s pieces
// (SocketGuestPartition + VmbusBus + NetvscDriver) pinned to the other, bring-up outside the
// measurement window. Modes: poll = the host's queue workers poll their descriptors before
// sleeping (netvsp::QueueWorker::SetSpinLimitNs) and the application thread busy-polls for up
// to 50 us of idleness before it sleeps; interrupt = host workers sleep in epoll and the
// application sleeps on NetDevice::wait_fd. Both use the default adaptive vCPU spin.
// Per run it reports, over the measurement window only: doorbells per packet (eventfd writes:
// guest SignalEvent fast path + host interrupt raises), interrupts per packet (vCPU eventfd
// wake-ups that ran the ISR), vCPU spin hits per packet, and CPU time of both processes
// (getrusage(RUSAGE_SELF) deltas).
//
// Frames: Ethernet (dst = the NIC's MAC, src 02:00:00:00:00:<queue>, IPv4) | IPv4 198.18.<q>.<f>
// -> 198.19.0.1 | UDP 10000+f -> 20000 | @42 u64 sequence number (per sending queue) | @50 u16
// flow id | pattern bytes PatternByte(seq % 512, i) to the end. The receiver copies each frame
// out and checks length, flow id, a per-flow increasing sequence number and the last 8 bytes
// (every byte with --check-every-byte). Frames the host drops for a full receive buffer show up
// as `sent` > `packets`, never as damage.
// Spec: vmbus-protocol.md 3.4-3.6 (signalling), 5 (NVSP), 6 (RNDIS), 8.5 (queue selection).
// Linux/OpenVMM: DPDK testpmd txonly/rxonly (the shape of the runs).
// Thread-safety: RunBench owns the process (it forks per run); call it from the main thread
// before any other thread exists.
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/harness/bench_command.h"
#include "bench/harness/contender.h"
#include "bench/harness/frames.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/statistics.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "devices/netvsc/netvsc_drv.h"
#include "devices/netvsp/netvsp_device.h"
#include "devices/netvsp/queue_worker.h"
#include "guest/vcpu_thread.h"
#include "guest/vmbus_bus.h"
#include "host/host_service.h"
#include "net/endpoint.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"

namespace uvmbus::tools {
namespace {

using bench::Mode;
using bench::NowNs;
using bench::PairContext;
using bench::RunConfig;
using bench::RunResult;
using bench::Workload;

// ---- frames -------------------------------------------------------------------------------

constexpr uint32_t kSeqOffset = 42;
constexpr uint32_t kFlowOffset = 50;
constexpr uint32_t kPatternFrom = 52;
constexpr uint32_t kMinNicFrame = 64;       // header + seq + flow + 8 tail bytes, padded
constexpr uint32_t kMaxNicFrame = 1514;     // MTU 1500 + 14
constexpr uint32_t kMaxFlows = 64 * 16;     // flow id = queue * 16 + flow
constexpr uint32_t kFlowsPerQueue = 16;
constexpr uint32_t kBatch = 32;             // frames per Send / Poll burst (DPDK's default)
constexpr net::MacAddress kNicMac = {{0x00, 0x15, 0x5d, 0x00, 0xbe, 0x01}};

// Spinning budgets of poll mode: longer than any run, so nothing sleeps while traffic flows.
constexpr uint64_t kPollSpinNs = 5'000'000'000;

// Counter slots of SideReport::counters.
constexpr size_t kCpuNs = 0;          // both sides: CPU ns of the process in the window
constexpr size_t kGuestSignals = 1;   // guest: SignalEvent through a doorbell (eventfd writes)
constexpr size_t kHostRaises = 2;     // guest: interrupt raises by the host (eventfd writes)
constexpr size_t kInterrupts = 3;     // guest: vCPU wake-ups that ran the ISR
constexpr size_t kSpinHits = 4;       // guest: vCPU spins that found work
constexpr size_t kSpinNs = 5;         // guest: ns the vCPUs spent spinning

uint8_t NicPattern(uint64_t seq, uint32_t i) {
  return bench::PatternByte(static_cast<uint32_t>(seq % bench::kFramePoolFrames), i);
}

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// 512 pre-built frames per sending queue; Stamp() writes seq and flow into slot seq % 512.
class NicFrameSource {
 public:
  NicFrameSource(uint32_t frame_bytes, uint32_t queue)
      : frame_bytes_(frame_bytes),
        stride_((size_t{frame_bytes} + 63) & ~size_t{63}),
        pool_(new uint8_t[stride_ * bench::kFramePoolFrames]()) {
    for (uint32_t s = 0; s < bench::kFramePoolFrames; ++s) {
      uint8_t* f = pool_.get() + s * stride_;
      std::memcpy(f, kNicMac.bytes.data(), 6);
      const uint8_t src[6] = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(queue)};
      std::memcpy(f + 6, src, 6);
      Put16(f + 12, net::kEtherTypeIpv4);
      uint8_t* ip = f + 14;
      ip[0] = 0x45;
      Put16(ip + 2, static_cast<uint16_t>(frame_bytes - 14));
      ip[8] = 64;
      ip[9] = 17;  // UDP
      ip[12] = 198;
      ip[13] = 18;
      ip[14] = static_cast<uint8_t>(queue);
      ip[16] = 198;
      ip[17] = 19;
      ip[19] = 1;
      uint8_t* udp = ip + 20;
      Put16(udp + 2, 20000);
      Put16(udp + 4, static_cast<uint16_t>(frame_bytes - 34));
      for (uint32_t i = kPatternFrom; i < frame_bytes; ++i) f[i] = NicPattern(s, i);
    }
  }

  // The frame carrying `seq` of flow `flow` (< kFlowsPerQueue) of this queue.
  std::span<const uint8_t> Stamp(uint64_t seq, uint32_t queue, uint32_t flow) {
    uint8_t* f = pool_.get() + (seq % bench::kFramePoolFrames) * stride_;
    f[14 + 15] = static_cast<uint8_t>(flow);           // IPv4 source, last byte
    Put16(f + 34, static_cast<uint16_t>(10000 + flow));  // UDP source port
    std::memcpy(f + kSeqOffset, &seq, sizeof seq);
    const uint16_t id = static_cast<uint16_t>(queue * kFlowsPerQueue + flow);
    std::memcpy(f + kFlowOffset, &id, sizeof id);
    return {f, frame_bytes_};
  }

 private:
  uint32_t frame_bytes_;
  size_t stride_;
  std::unique_ptr<uint8_t[]> pool_;
};

// Receiver-side check: length, flow id, per-flow increasing sequence, pattern.
class NicFrameCheck {
 public:
  NicFrameCheck(uint32_t frame_bytes, bool every_byte)
      : frame_bytes_(frame_bytes), every_byte_(every_byte), last_(kMaxFlows, 0),
        seen_(kMaxFlows, false) {}

  bool Check(std::span<const uint8_t> frame) {
    if (frame.size() != frame_bytes_) return false;
    uint64_t seq = 0;
    uint16_t flow = 0;
    std::memcpy(&seq, frame.data() + kSeqOffset, sizeof seq);
    std::memcpy(&flow, frame.data() + kFlowOffset, sizeof flow);
    if (flow >= kMaxFlows) return false;
    if (seen_[flow] && seq <= last_[flow]) return false;
    seen_[flow] = true;
    last_[flow] = seq;
    const uint32_t from = every_byte_ ? kPatternFrom : frame_bytes_ - 8;
    for (uint32_t i = from; i < frame_bytes_; ++i) {
      if (frame[i] != NicPattern(seq, i)) return false;
    }
    return true;
  }

 private:
  uint32_t frame_bytes_;
  bool every_byte_;
  std::vector<uint64_t> last_;
  std::vector<bool> seen_;
};

// ---- the host's in-process backend ----------------------------------------------------------

enum class Role : uint8_t { kSink, kSource, kEcho };

// Written by the queues' worker threads (one writer per field group), read by the side's main
// thread after the traffic: relaxed atomics.
struct SinkTotals {
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> bad{0};
  std::atomic<int64_t> first_ns{0};
  std::atomic<int64_t> last_ns{0};
};

class BenchQueue final : public net::Queue {
 public:
  BenchQueue(Role role, uint32_t index, uint32_t frame_bytes, bool every_byte,
             std::atomic<bool>* running, SinkTotals* totals)
      : role_(role), index_(index), frame_bytes_(frame_bytes), running_(running),
        totals_(totals), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        source_(frame_bytes, index), check_(frame_bytes, every_byte),
        sink_(kMaxNicFrame) {}

  uint32_t Send(const net::FrameBatch& batch) override {
    if (role_ == Role::kEcho) {
      for (const auto& f : batch) {
        if (echo_count_ == echo_.size()) break;
        const uint32_t n = std::min<uint32_t>(f.length, kMaxNicFrame);
        std::memcpy(echo_[echo_count_].data(), f.data, n);
        echo_len_[echo_count_++] = n;
      }
      return batch.size();
    }
    if (role_ != Role::kSink) return batch.size();
    uint64_t good = 0, bad = 0, bytes = 0;
    for (const auto& f : batch) {
      // Copy out (a real backend moves the frame into its own memory), then check the copy.
      std::span<uint8_t> slot = sink_.Slot(received_++);
      const uint32_t n = std::min<uint32_t>(f.length, static_cast<uint32_t>(slot.size()));
      std::memcpy(slot.data(), f.data, n);
      if (n == f.length && check_.Check(slot.first(n))) {
        ++good;
        bytes += n;
      } else {
        ++bad;
      }
    }
    const int64_t now = NowNs();
    int64_t zero = 0;
    totals_->first_ns.compare_exchange_strong(zero, now, std::memory_order_relaxed);
    totals_->last_ns.store(now, std::memory_order_relaxed);
    totals_->packets.fetch_add(good, std::memory_order_relaxed);
    totals_->bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (bad != 0) totals_->bad.fetch_add(bad, std::memory_order_relaxed);
    return batch.size();
  }

  uint32_t Poll(net::RxBatch& batch) override {
    if (role_ == Role::kEcho) {
      const uint32_t n = std::min(echo_count_, batch.size());
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t len = std::min(echo_len_[i], batch[i].capacity);
        std::memcpy(batch[i].data, echo_[i].data(), len);
        batch[i].length = len;
      }
      echo_count_ = 0;  // the echo holds one burst at a time (latency: one frame)
      return n;
    }
    if (role_ != Role::kSource || !running_->load(std::memory_order_relaxed)) return 0;
    const uint32_t n = std::min<uint32_t>(batch.size(), kBatch);
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t seq = seq_++;
      std::span<const uint8_t> frame =
          source_.Stamp(seq, index_, static_cast<uint32_t>(seq % kFlowsPerQueue));
      const uint32_t len = std::min<uint32_t>(frame_bytes_, batch[i].capacity);
      std::memcpy(batch[i].data, frame.data(), len);
      batch[i].length = len;
    }
    sent_.store(seq_, std::memory_order_relaxed);
    return n;
  }

  int wait_fd() const override { return wake_.get(); }

  bool PrepareWait() override {
    eventfd_t ignored = 0;
    (void)::eventfd_read(wake_.get(), &ignored);
    if (role_ == Role::kEcho) return echo_count_ == 0;
    if (role_ == Role::kSource) return !running_->load(std::memory_order_acquire);
    return true;
  }

  net::NetStats stats() const override { return {}; }

  void Wake() { (void)::eventfd_write(wake_.get(), 1); }
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  const Role role_;
  const uint32_t index_;
  const uint32_t frame_bytes_;
  std::atomic<bool>* running_;
  SinkTotals* totals_;
  UniqueFd wake_;
  NicFrameSource source_;
  NicFrameCheck check_;
  bench::FrameSink sink_;
  uint64_t received_ = 0;
  uint64_t seq_ = 0;
  std::atomic<uint64_t> sent_{0};
  std::array<std::array<uint8_t, kMaxNicFrame>, net::kMaxBatch> echo_{};
  std::array<uint32_t, net::kMaxBatch> echo_len_{};
  uint32_t echo_count_ = 0;
};

class BenchEndpoint final : public net::Endpoint {
 public:
  BenchEndpoint(Role role, uint32_t queues, uint32_t frame_bytes, bool every_byte)
      : queues_(queues), active_(queues) {
    for (uint32_t q = 0; q < queues; ++q) {
      queue_objs_.push_back(std::make_unique<BenchQueue>(role, q, frame_bytes, every_byte,
                                                         &running_, &totals_));
    }
  }
  std::string_view name() const override { return "bench"; }
  uint32_t max_frame_size() const override { return kMaxNicFrame; }
  uint32_t max_queues() const override { return queues_; }
  uint32_t queue_count() const override { return active_.load(std::memory_order_relaxed); }
  Status SetQueueCount(uint32_t count) override {
    if (count == 0 || count > queues_) {
      return MakeError(ErrorCode::kInvalidArgument, "bench endpoint: {} queues", count);
    }
    active_.store(count, std::memory_order_relaxed);
    return Ok();
  }
  net::Queue& queue(uint32_t index) override { return *queue_objs_[index]; }
  bool link_up() const override { return true; }
  Status SetLinkUp(bool /*up*/) override { return Ok(); }

  void SetRunning(bool on) {
    running_.store(on, std::memory_order_release);
    for (auto& q : queue_objs_) q->Wake();
  }
  uint64_t sent() const {
    uint64_t n = 0;
    for (const auto& q : queue_objs_) n += q->sent();
    return n;
  }
  const SinkTotals& totals() const { return totals_; }

 private:
  const uint32_t queues_;
  std::atomic<uint32_t> active_;
  std::atomic<bool> running_{false};
  SinkTotals totals_;
  std::vector<std::unique_ptr<BenchQueue>> queue_objs_;
};

// ---- the two processes ----------------------------------------------------------------------

// Shared between the two sides (MAP_SHARED, created before fork).
struct NicShared {
  std::atomic<uint32_t> host_listening{0};
  std::atomic<uint32_t> guest_ready{0};   // NIC up, open, every queue present
  std::atomic<uint32_t> traffic{0};       // 1: the producer started its window
  std::atomic<uint32_t> consumer_done{0};
};

int64_t CpuNsNow() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto ns = [](const timeval& t) {
    return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + static_cast<int64_t>(t.tv_usec) * 1000;
  };
  return ns(u.ru_utime) + ns(u.ru_stime);
}

bool WaitFlag(const std::atomic<uint32_t>& flag, PairContext& ctx, double seconds) {
  const int64_t deadline = NowNs() + static_cast<int64_t>(seconds * 1e9);
  while (flag.load(std::memory_order_acquire) == 0) {
    if (ctx.Aborted() || NowNs() > deadline) return false;
    ::usleep(200);
  }
  return true;
}

void SleepUntil(int64_t t, PairContext& ctx) {
  while (!ctx.StopRequested()) {
    const int64_t left = t - NowNs();
    if (left <= 0) return;
    ::usleep(static_cast<useconds_t>(std::min<int64_t>(left / 1000, 10'000)));
  }
}

struct NicRunSpec {
  RunConfig config;
  Role host_role = Role::kSink;
  std::string socket;
  NicShared* shared = nullptr;
  bench::LatencyHistogram* rtt = nullptr;  // latency: in shared memory, written by the guest
};

[[noreturn]] void ExitSide(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // Skip teardown (threads, the other side may be gone): the report is in shared memory.
  ::_exit(code);
}

[[noreturn]] void HostSide(PairContext& ctx, const NicRunSpec& spec) {
  log::SetLevel(log::Level::kError);
  const bool poll = spec.config.mode == Mode::kPoll;
  netvsp::QueueWorker::SetSpinLimitNs(poll ? kPollSpinNs : 0);
  auto endpoint = std::make_shared<BenchEndpoint>(spec.host_role, spec.config.queues,
                                                  spec.config.frame_bytes,
                                                  spec.config.check_every_byte);
  host::DeviceFactory factory = [&](const partition::PeerInfo&) {
    netvsp::NicConfig nic;
    nic.id = "bench0";
    nic.mac = kNicMac;
    nic.queues = spec.config.queues;
    nic.backend = endpoint;
    std::vector<std::unique_ptr<host::Device>> devices;
    auto dev = netvsp::NetvspDevice::Create(std::move(nic));
    if (dev) devices.push_back(std::move(*dev));
    return devices;
  };
  auto* service = new host::HostService(std::move(factory));  // never destroyed: ExitSide
  auto socket_host = partition::SocketHost::Listen(spec.socket, service->GuestCallback());
  if (!socket_host) ExitSide(ctx.Fail(socket_host.error().message));
  (void)(*socket_host).release();
  spec.shared->host_listening.store(1, std::memory_order_release);
  if (!WaitFlag(spec.shared->guest_ready, ctx, 20)) ExitSide(ctx.Fail("guest never came up"));

  bench::SideReport& rep = ctx.report();
  if (spec.host_role == Role::kSource) {
    const int64_t cpu0 = CpuNsNow();
    const int64_t t0 = NowNs();
    spec.shared->traffic.store(1, std::memory_order_release);
    endpoint->SetRunning(true);
    SleepUntil(t0 + static_cast<int64_t>(spec.config.seconds * 1e9), ctx);
    endpoint->SetRunning(false);
    rep.counters[kCpuNs] = static_cast<uint64_t>(CpuNsNow() - cpu0);
    rep.packets = endpoint->sent();
    rep.bytes = rep.packets * spec.config.frame_bytes;
    rep.first_ns = t0;
    rep.last_ns = NowNs();
    ctx.SetProducerDone();
    (void)WaitFlag(spec.shared->consumer_done, ctx, 10);
    ExitSide(0);
  }
  // Sink / echo: the guest drives; count until it is done and the sink went quiet.
  if (!WaitFlag(spec.shared->traffic, ctx, 20)) ExitSide(ctx.Fail("guest never started"));
  const int64_t cpu0 = CpuNsNow();
  while (!ctx.ProducerDone()) ::usleep(1000);
  const SinkTotals& t = endpoint->totals();
  uint64_t last = t.packets.load(std::memory_order_relaxed);
  for (int quiet = 0; quiet < 30;) {
    ::usleep(1000);
    const uint64_t now = t.packets.load(std::memory_order_relaxed);
    quiet = now == last ? quiet + 1 : 0;
    last = now;
  }
  rep.counters[kCpuNs] = static_cast<uint64_t>(CpuNsNow() - cpu0);
  rep.packets = t.packets.load(std::memory_order_relaxed);
  rep.bytes = t.bytes.load(std::memory_order_relaxed);
  rep.bad = t.bad.load(std::memory_order_relaxed);
  rep.first_ns = t.first_ns.load(std::memory_order_relaxed);
  rep.last_ns = t.last_ns.load(std::memory_order_relaxed);
  spec.shared->consumer_done.store(1, std::memory_order_release);
  ExitSide(0);
}

// The guest's event counters, summed.
struct GuestCounters {
  uint64_t signals = 0, raises = 0, interrupts = 0, spin_hits = 0, spin_ns = 0;
  int64_t cpu_ns = 0;
};

GuestCounters ReadGuestCounters(partition::GuestPartition& p, guest::VmbusBus& bus) {
  GuestCounters c;
  c.signals = p.stats().events_fast.Get();
  c.raises = p.stats().interrupts_acked.Get();
  for (uint32_t v = 0; v < p.vcpu_count(); ++v) {
    const guest::VcpuStats& s = bus.vcpu_stats(v);
    c.interrupts += s.interrupts.Get();
    c.spin_hits += s.spin_hits.Get();
    c.spin_ns += s.spin_ns.Get();
  }
  c.cpu_ns = CpuNsNow();
  return c;
}

void StoreGuestCounters(bench::SideReport& rep, const GuestCounters& a, const GuestCounters& b) {
  rep.counters[kCpuNs] = static_cast<uint64_t>(b.cpu_ns - a.cpu_ns);
  rep.counters[kGuestSignals] = b.signals - a.signals;
  rep.counters[kHostRaises] = b.raises - a.raises;
  rep.counters[kInterrupts] = b.interrupts - a.interrupts;
  rep.counters[kSpinHits] = b.spin_hits - a.spin_hits;
  rep.counters[kSpinNs] = b.spin_ns - a.spin_ns;
}

// Called when a pass made no progress. Poll mode busy-polls (yielding the core, which the
// vCPU threads share) for up to kAppPollNs of idleness; after that, and in interrupt mode, it
// sleeps on the queues' wait fds. An endless application spin starves the vCPU thread that
// runs NAPI on the same core (measured: 10-30x slower, 25 ms p99), hence the bound.
constexpr int64_t kAppPollNs = 50'000;

void Idle(netvsc::NetDevice& dev, bool poll_mode, bool want_tx_room, int64_t* idle_since) {
  const int64_t now = NowNs();
  if (*idle_since == 0) *idle_since = now;
  if (poll_mode && now - *idle_since < kAppPollNs) {
    (void)::sched_yield();
    return;
  }
  std::array<pollfd, 64> fds{};
  const uint32_t n = dev.queue_count();
  for (uint32_t q = 0; q < n; ++q) {
    if (!dev.PrepareWait(q)) return;
    if (want_tx_room && !dev.tx_stopped(q)) {
      (void)::sched_yield();  // short of sections, not of ring room: completions are coming
      return;
    }
    fds[q] = {dev.wait_fd(q), POLLIN, 0};
  }
  (void)::poll(fds.data(), n, 10);
}

[[noreturn]] void GuestSide(PairContext& ctx, const NicRunSpec& spec) {
  log::SetLevel(log::Level::kError);
  const RunConfig& cfg = spec.config;
  const bool poll_mode = cfg.mode == Mode::kPoll;
  guest::SpinPolicy policy;
  // Both modes use the default adaptive vCPU spin: the vCPU threads share the guest's core with
  // the application thread, and a fixed spin only steals its time (smoke runs with a fixed
  // 50 us spin: host -> guest 10x slower than with the adaptive one, which collapses to 0 while
  // the application keeps the core busy and the wake-ups are cheap).
  guest::VcpuThread::SetDefaultSpinPolicy(policy);
  if (!WaitFlag(spec.shared->host_listening, ctx, 20)) ExitSide(ctx.Fail("host never listened"));
  auto partition = partition::SocketGuestPartition::Connect(spec.socket, "bench", cfg.queues,
                                                            uint64_t{64} << 20);
  if (!partition) ExitSide(ctx.Fail("connect: " + partition.error().message));
  netvsc::NetvscConfig ncfg;
  ncfg.num_queues = cfg.queues;
  auto* driver = new netvsc::NetvscDriver(**partition, ncfg);  // never destroyed: ExitSide
  auto bus = guest::VmbusBus::Create(**partition);
  if (!bus) ExitSide(ctx.Fail("bus: " + bus.error().message));
  if (auto st = (*bus)->RegisterDriver(*driver); !st) ExitSide(ctx.Fail(st.error().message));
  if (auto st = (*bus)->Connect(); !st) ExitSide(ctx.Fail("connect: " + st.error().message));
  if (!driver->WaitForDevices(1, std::chrono::milliseconds(10'000))) {
    ExitSide(ctx.Fail("no NIC"));
  }
  std::shared_ptr<netvsc::NetvscDevice> dev = driver->devices()[0];
  const int64_t up_deadline = NowNs() + 10'000'000'000;
  while (!(dev->is_open() && dev->link_up() && dev->queue_count() == cfg.queues)) {
    if (NowNs() > up_deadline || ctx.Aborted()) {
      ExitSide(ctx.Fail(fmt::format("NIC not up with {} queues (open {}, link {}, queues {})",
                                    cfg.queues, dev->is_open(), dev->link_up(),
                                    dev->queue_count())));
    }
    ::usleep(1000);
  }
  guest::VmbusBus& b = **bus;
  partition::GuestPartition& p = **partition;
  spec.shared->guest_ready.store(1, std::memory_order_release);
  bench::SideReport& rep = ctx.report();

  if (spec.host_role == Role::kSource) {
    // Consumer: receive, copy out, check, until the host is done and nothing more arrives.
    if (!WaitFlag(spec.shared->traffic, ctx, 20)) ExitSide(ctx.Fail("host never started"));
    const GuestCounters c0 = ReadGuestCounters(p, b);
    NicFrameCheck check(cfg.frame_bytes, cfg.check_every_byte);
    bench::FrameSink sink(2048);
    uint64_t n_rx = 0;
    int64_t quiet_since = 0;
    int64_t idle_since = 0;
    for (;;) {
      uint32_t got = 0;
      for (uint32_t q = 0; q < cfg.queues; ++q) {
        net::RxBatch batch;
        for (uint32_t i = 0; i < kBatch; ++i) batch.Add(sink.Slot(n_rx + i));
        const uint32_t n = dev->Receive(q, batch);
        for (uint32_t i = 0; i < n; ++i) {
          if (check.Check(std::span<const uint8_t>(batch[i].data, batch[i].length))) {
            ++rep.packets;
            rep.bytes += batch[i].length;
          } else {
            ++rep.bad;
          }
        }
        n_rx += n;
        got += n;
      }
      const int64_t now = NowNs();
      if (got != 0) {
        if (rep.first_ns == 0) rep.first_ns = now;
        rep.last_ns = now;
        quiet_since = 0;
        idle_since = 0;
        continue;
      }
      if (ctx.ProducerDone()) {
        if (quiet_since == 0) quiet_since = now;
        if (now - quiet_since > 30'000'000) break;
      }
      Idle(*dev, poll_mode, false, &idle_since);
    }
    StoreGuestCounters(rep, c0, ReadGuestCounters(p, b));
    spec.shared->consumer_done.store(1, std::memory_order_release);
    ExitSide(0);
  }

  NicFrameSource source(cfg.frame_bytes, 0);
  if (cfg.workload == Workload::kLatency) {
    // One frame in flight: send, wait for the echo, check it.
    spec.shared->traffic.store(1, std::memory_order_release);
    NicFrameCheck check(cfg.frame_bytes, cfg.check_every_byte);
    std::vector<uint8_t> buf(2048);
    const GuestCounters c0 = ReadGuestCounters(p, b);
    const int64_t t0 = NowNs();
    const int64_t end = t0 + static_cast<int64_t>(cfg.seconds * 1e9);
    uint64_t seq = 0;
    constexpr uint64_t kWarmup = 100;
    while (!ctx.StopRequested() && (NowNs() < end || seq < kWarmup + 100)) {
      net::FrameBatch tx;
      tx.Add(source.Stamp(seq, 0, 0));
      const int64_t sent_at = NowNs();
      int64_t idle_since = 0;
      if (dev->Send(0, tx) != 1) {
        Idle(*dev, poll_mode, true, &idle_since);
        continue;
      }
      bool got = false;
      while (!got && !ctx.StopRequested()) {
        net::RxBatch rx;
        rx.Add(std::span<uint8_t>(buf));
        if (dev->Receive(0, rx) == 1) {
          got = true;
          if (!check.Check(std::span<const uint8_t>(rx[0].data, rx[0].length))) ++rep.bad;
          break;
        }
        // Poll mode: busy-poll, but let the vCPU thread (same core) run the NAPI pass.
        Idle(*dev, poll_mode, false, &idle_since);
      }
      if (!got) break;
      const int64_t rtt = NowNs() - sent_at;
      if (seq >= kWarmup) {
        spec.rtt->Record(static_cast<uint64_t>(rtt));
        ++rep.packets;
        rep.bytes += cfg.frame_bytes;
        if (rep.first_ns == 0) rep.first_ns = sent_at;
        rep.last_ns = NowNs();
      }
      ++seq;
    }
    StoreGuestCounters(rep, c0, ReadGuestCounters(p, b));
    ctx.SetProducerDone();
    (void)WaitFlag(spec.shared->consumer_done, ctx, 10);
    ExitSide(0);
  }

  // Throughput producer: bursts of kBatch on each queue in turn.
  std::vector<NicFrameSource> sources;
  for (uint32_t q = 0; q < cfg.queues; ++q) sources.emplace_back(cfg.frame_bytes, q);
  std::vector<uint64_t> seq(cfg.queues, 0);
  const GuestCounters c0 = ReadGuestCounters(p, b);
  const int64_t t0 = NowNs();
  const int64_t end = t0 + static_cast<int64_t>(cfg.seconds * 1e9);
  spec.shared->traffic.store(1, std::memory_order_release);
  rep.first_ns = t0;
  uint32_t q = 0;
  uint64_t sent = 0;
  int64_t idle_since = 0;
  while (!ctx.StopRequested()) {
    net::FrameBatch batch;
    for (uint32_t i = 0; i < kBatch; ++i) {
      const uint64_t s = seq[q] + i;
      batch.Add(sources[q].Stamp(s, q, 0));
    }
    const uint32_t n = dev->Send(q, batch);
    seq[q] += n;
    sent += n;
    if (n < kBatch) {
      if (NowNs() >= end) break;
      Idle(*dev, poll_mode, true, &idle_since);
    } else {
      idle_since = 0;
    }
    if (n == kBatch && (sent & 1023) < kBatch && NowNs() >= end) {
      break;
    }
    q = q + 1 == cfg.queues ? 0 : q + 1;
  }
  rep.last_ns = NowNs();
  rep.packets = sent;
  StoreGuestCounters(rep, c0, ReadGuestCounters(p, b));
  ctx.SetProducerDone();
  (void)WaitFlag(spec.shared->consumer_done, ctx, 10);
  ExitSide(0);
}

// ---- the contender ---------------------------------------------------------------------------

class NicContender final : public bench::Contender {
 public:
  explicit NicContender(bool guest_to_host) : g2h_(guest_to_host) {}

  std::string name() const override { return g2h_ ? "uvmbus-nic-g2h" : "uvmbus-nic-h2g"; }
  std::string description() const override {
    return g2h_ ? "uvmbus synthetic NIC, guest -> host: netvsc NetDevice::Send in the guest "
                  "process, netvsp + checking sink endpoint in the host process (latency: "
                  "the host endpoint echoes)"
                : "uvmbus synthetic NIC, host -> guest: netvsp + source endpoint in the host "
                  "process, netvsc NetDevice::Receive + check in the guest process";
  }
  bool Supports(const RunConfig& config) const override {
    if (config.frame_bytes < kMinNicFrame || config.frame_bytes > kMaxNicFrame) return false;
    if (config.queues < 1 || config.queues > 16) return false;
    if (config.workload == Workload::kLatency) return g2h_ && config.queues == 1;
    return true;
  }
  Expected<RunResult> Run(const RunConfig& config) override;

 private:
  const bool g2h_;
};

Expected<RunResult> NicContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  char tmpl[] = "/tmp/uvmbus-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return unexpected(Error::FromErrno("mkdtemp", errno));
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  auto region = bench::MapSharedAnonymous(sizeof(NicShared) + sizeof(bench::LatencyHistogram) +
                                          64);
  if (!region) return unexpected(region.error());
  NicRunSpec spec;
  spec.config = config;
  spec.host_role = !g2h_ ? Role::kSource
                         : (config.workload == Workload::kLatency ? Role::kEcho : Role::kSink);
  spec.socket = dir + "/vmbus.sock";
  spec.shared = bench::ConstructIn<NicShared>(*region);
  spec.rtt = new (region->data() + ((sizeof(NicShared) + 63) & ~size_t{63}))
      bench::LatencyHistogram();

  bench::SideFn host = [&spec](PairContext& ctx) -> int {
    HostSide(ctx, spec);
  };
  bench::SideFn guest = [&spec](PairContext& ctx) -> int {
    GuestSide(ctx, spec);
  };
  bench::PairSpec pair;
  pair.producer_cpu = config.producer_cpu;
  pair.consumer_cpu = config.consumer_cpu;
  pair.run_seconds = config.seconds + 30;  // the sides end the run themselves
  pair.stop_timeout_seconds = 15;
  auto outcome = g2h_ ? bench::RunPair(pair, guest, host) : bench::RunPair(pair, host, guest);
  if (!outcome) return unexpected(outcome.error());

  const bench::SideReport& prod = outcome->producer.report;
  const bench::SideReport& cons = outcome->consumer.report;
  const bench::SideReport& gst = g2h_ ? prod : cons;
  RunResult r;
  if (config.workload == Workload::kLatency) {
    r.packets = prod.packets;
    r.bytes = prod.bytes;
    r.sent = prod.packets;
    r.bad = prod.bad;
    r.seconds = prod.first_ns > 0 ? static_cast<double>(prod.last_ns - prod.first_ns) * 1e-9 : 0;
    r.rtt_p50_ns = spec.rtt->Percentile(0.5);
    r.rtt_p99_ns = spec.rtt->Percentile(0.99);
  } else {
    r.packets = cons.packets;
    r.bytes = cons.bytes;
    r.sent = prod.packets;
    r.bad = cons.bad + prod.bad;
    r.seconds = cons.first_ns > 0 ? static_cast<double>(cons.last_ns - cons.first_ns) * 1e-9 : 0;
  }
  // CPU over the measurement window of each process (bring-up excluded).
  r.producer_cpu_seconds = static_cast<double>(prod.counters[kCpuNs]) * 1e-9;
  r.consumer_cpu_seconds = static_cast<double>(cons.counters[kCpuNs]) * 1e-9;
  if (r.packets > 0) {
    const double n = static_cast<double>(r.packets);
    const auto per = [&](uint64_t v) { return static_cast<double>(v) / n; };
    r.extras.push_back({"doorbells_per_packet",
                        per(gst.counters[kGuestSignals] + gst.counters[kHostRaises])});
    r.extras.push_back({"guest_to_host_doorbells_per_packet", per(gst.counters[kGuestSignals])});
    r.extras.push_back({"host_to_guest_doorbells_per_packet", per(gst.counters[kHostRaises])});
    r.extras.push_back({"interrupts_per_packet", per(gst.counters[kInterrupts])});
    r.extras.push_back({"vcpu_spin_hits_per_packet", per(gst.counters[kSpinHits])});
    r.extras.push_back({"vcpu_spin_ns_per_packet", per(gst.counters[kSpinNs])});
    r.extras.push_back({"cpu_ns_per_packet", per(prod.counters[kCpuNs] + cons.counters[kCpuNs])});
  }
  return r;
}

}  // namespace

int RunBench(const BenchOptions& options) {
  std::vector<std::unique_ptr<bench::Contender>> extra;
  extra.push_back(std::make_unique<NicContender>(true));
  extra.push_back(std::make_unique<NicContender>(false));
  return bench::RunBenchCommand(options.command, std::move(extra), stdout, stderr);
}

}  // namespace uvmbus::tools
