#include "net/pipe.h"

#include <array>
#include <atomic>
#include <vector>

#include "net/frame_ring.h"

namespace uvmbus::net {
namespace {

// State shared by the ends of one pipe (or the single end of a loopback): one receive ring per
// queue per side, and each side's link and active queue count. Kept alive by shared_ptr so that
// either end may be destroyed while the other still sends into it.
struct RingCore {
  uint32_t max_queues = 0;
  uint32_t max_frame = 0;
  std::array<std::vector<std::unique_ptr<FrameRing>>, 2> rings;  // [side][queue]
  std::array<std::atomic<bool>, 2> link_up{true, true};
  std::array<std::atomic<uint32_t>, 2> active{0, 0};
  std::array<std::vector<std::unique_ptr<QueueCounters>>, 2> counters;  // [side][queue]
};

class RingQueue final : public Queue {
 public:
  RingQueue(std::shared_ptr<RingCore> core, int side, int peer, uint32_t index)
      : core_(std::move(core)), side_(side), peer_(peer), index_(index),
        rx_(*core_->rings[static_cast<size_t>(side)][index]),
        counters_(*core_->counters[static_cast<size_t>(side)][index]) {}

  uint32_t Send(const FrameBatch& batch) override {
    BatchTally tx;
    const auto peer = static_cast<size_t>(peer_);
    if (!core_->link_up[static_cast<size_t>(side_)].load(std::memory_order_relaxed)) {
      tx.carrier = batch.size();
      tx.PublishTx(counters_);
      return batch.size();
    }
    // Relaxed loads: link and queue-count changes need no ordering with frames; a frame racing
    // with a change is delivered or dropped, both acceptable.
    const bool peer_up = core_->link_up[peer].load(std::memory_order_relaxed);
    const uint32_t active = core_->active[peer].load(std::memory_order_relaxed);
    const uint32_t q = index_ % (active == 0 ? 1 : active);
    FrameRing& ring = *core_->rings[peer][q];
    QueueCounters& peer_counters = *core_->counters[peer][q];
    bool pushed = false;
    for (const auto& f : batch) {
      if (CheckFrameLength(f.length, core_->max_frame) != FrameCheck::kOk) {
        ++tx.errors;
        continue;
      }
      ++tx.packets;
      tx.bytes += f.length;
      if (!peer_up) {
        peer_counters.rx_dropped.Add();
      } else if (ring.Push(f.bytes(), {})) {
        pushed = true;
      } else {
        peer_counters.rx_missed_errors.Add();  // receiver too slow: drop, never block
      }
    }
    if (pushed) ring.WakeIfArmed();
    tx.PublishTx(counters_);
    return batch.size();
  }

  uint32_t Poll(RxBatch& batch) override { return PollRingInto(rx_, batch, counters_); }

  int wait_fd() const override { return rx_.wait_fd(); }
  bool PrepareWait() override { return rx_.PrepareWait(); }
  NetStats stats() const override { return counters_.Snapshot(); }

 private:
  std::shared_ptr<RingCore> core_;
  const int side_;
  const int peer_;
  const uint32_t index_;
  FrameRing& rx_;
  QueueCounters& counters_;
};

class RingEndpoint final : public Endpoint {
 public:
  RingEndpoint(std::string name, std::shared_ptr<RingCore> core, int side, int peer)
      : name_(std::move(name)), core_(std::move(core)), side_(side) {
    for (uint32_t q = 0; q < core_->max_queues; ++q) {
      queues_.push_back(std::make_unique<RingQueue>(core_, side, peer, q));
    }
  }
  ~RingEndpoint() override {
    // A vanished end behaves like an unplugged cable for its peer.
    core_->link_up[static_cast<size_t>(side_)].store(false, std::memory_order_relaxed);
  }

  std::string_view name() const override { return name_; }
  uint32_t max_frame_size() const override { return core_->max_frame; }
  uint32_t max_queues() const override { return core_->max_queues; }
  uint32_t queue_count() const override {
    return core_->active[static_cast<size_t>(side_)].load(std::memory_order_relaxed);
  }
  Status SetQueueCount(uint32_t count) override {
    if (count == 0 || count > core_->max_queues) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: queue count {} outside 1..{}", name_,
                       count, core_->max_queues);
    }
    core_->active[static_cast<size_t>(side_)].store(count, std::memory_order_relaxed);
    return Ok();
  }
  Queue& queue(uint32_t index) override { return *queues_[index]; }
  bool link_up() const override {
    return core_->link_up[static_cast<size_t>(side_)].load(std::memory_order_relaxed);
  }
  Status SetLinkUp(bool up) override {
    if (core_->link_up[static_cast<size_t>(side_)].exchange(up, std::memory_order_relaxed) != up) {
      NotifyLinkChange(up);
    }
    return Ok();
  }

 private:
  std::string name_;
  std::shared_ptr<RingCore> core_;
  const int side_;
  std::vector<std::unique_ptr<RingQueue>> queues_;
};

Expected<std::shared_ptr<RingCore>> MakeCore(const RingEndpointOptions& o, int sides) {
  if (o.queues == 0 || o.queues > kMaxQueues) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: {} queues outside 1..{}", o.name, o.queues,
                     kMaxQueues);
  }
  if (!IsValidMtu(o.mtu)) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: MTU {} outside {}..{}", o.name, o.mtu,
                     kMinMtu, kMaxMtu);
  }
  auto core = std::make_shared<RingCore>();
  core->max_queues = o.queues;
  core->max_frame = MaxFrameSizeForMtu(o.mtu);
  for (int s = 0; s < sides; ++s) {
    const auto side = static_cast<size_t>(s);
    core->active[side].store(o.queues, std::memory_order_relaxed);
    for (uint32_t q = 0; q < o.queues; ++q) {
      auto ring = FrameRing::Create(o.ring_depth, core->max_frame);
      if (!ring) return tl::unexpected(ring.error());
      core->rings[side].push_back(std::move(*ring));
      core->counters[side].push_back(std::make_unique<QueueCounters>());
    }
  }
  return core;
}

}  // namespace

Expected<std::unique_ptr<Endpoint>> CreateLoopback(const RingEndpointOptions& options) {
  auto core = MakeCore(options, 1);
  if (!core) return tl::unexpected(core.error());
  return std::unique_ptr<Endpoint>(new RingEndpoint(options.name, std::move(*core), 0, 0));
}

Expected<PipeEnds> CreatePipe(const RingEndpointOptions& options) {
  auto core = MakeCore(options, 2);
  if (!core) return tl::unexpected(core.error());
  PipeEnds ends;
  ends.nic = std::make_unique<RingEndpoint>(options.name + "/nic", *core, 0, 1);
  ends.app = std::make_unique<RingEndpoint>(options.name + "/app", *core, 1, 0);
  return ends;
}

}  // namespace uvmbus::net
