// File: partition/monitor_poller.cc — see monitor_poller.h.
#include "partition/monitor_poller.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <ctime>

namespace uvmbus::partition {
namespace {

constexpr uint32_t kFirstSleepUs = 10;

// Byte offset of trigger_group[g].pending in the monitor page (spec 1.5).
constexpr size_t PendingOffset(uint32_t group) {
  return offsetof(wire::HvMonitorPage, trigger_group) +
         group * sizeof(wire::HvMonitorTriggerGroup) +
         offsetof(wire::HvMonitorTriggerGroup, pending);
}

}  // namespace

Expected<std::unique_ptr<MonitorPoller>> MonitorPoller::Create(RingFn ring,
                                                               uint32_t max_interval_us) {
  if (!ring) return MakeError(ErrorCode::kInvalidArgument, "null ring callback");
  if (max_interval_us == 0) return MakeError(ErrorCode::kInvalidArgument, "interval 0");
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return unexpected(Error::FromErrno("eventfd", errno));
  return std::unique_ptr<MonitorPoller>(
      new MonitorPoller(std::move(ring), max_interval_us, std::move(wake)));
}

MonitorPoller::MonitorPoller(RingFn ring, uint32_t max_interval_us, UniqueFd wake)
    : ring_(std::move(ring)), max_interval_us_(max_interval_us), wake_(std::move(wake)) {}

MonitorPoller::~MonitorPoller() { Shutdown(); }

bool MonitorPoller::Active(const Table& t) const {
  if (t.page.size() < sizeof(wire::HvMonitorPage)) return false;
  return std::any_of(t.armed.begin(), t.armed.end(), [](uint32_t a) { return a != 0; });
}

void MonitorPoller::Wake() {
  const uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
}

void MonitorPoller::SetPage(std::span<uint8_t> page) {
  std::lock_guard lock(mu_);
  table_.page = page;
  ++table_.generation;
  if (!started_ && !stop_ && Active(table_)) {
    started_ = true;
    thread_ = std::thread([this] { Loop(); });
  }
  Wake();
}

Status MonitorPoller::Arm(uint32_t monitor_id, uint32_t connection_id) {
  if (monitor_id > wire::kMaxMonitorId) {
    return MakeError(ErrorCode::kInvalidArgument, "monitor id {} > {}", monitor_id,
                     wire::kMaxMonitorId);
  }
  std::lock_guard lock(mu_);
  table_.armed[monitor_id / wire::kMonitorBitsPerGroup] |=
      1u << (monitor_id % wire::kMonitorBitsPerGroup);
  table_.connection[monitor_id] = connection_id;
  ++table_.generation;
  if (!started_ && !stop_ && Active(table_)) {
    started_ = true;
    thread_ = std::thread([this] { Loop(); });
  }
  Wake();
  return Ok();
}

void MonitorPoller::Disarm(uint32_t monitor_id) {
  if (monitor_id > wire::kMaxMonitorId) return;
  std::lock_guard lock(mu_);
  table_.armed[monitor_id / wire::kMonitorBitsPerGroup] &=
      ~(1u << (monitor_id % wire::kMonitorBitsPerGroup));
  table_.connection[monitor_id] = 0;
  ++table_.generation;
  Wake();
}

void MonitorPoller::Reset() {
  std::lock_guard lock(mu_);
  const uint64_t generation = table_.generation;
  table_ = Table{};
  table_.generation = generation + 1;
  Wake();
}

void MonitorPoller::Shutdown() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    Wake();
  }
  if (thread_.joinable()) thread_.join();
}

bool MonitorPoller::active() const {
  std::lock_guard lock(mu_);
  return !stop_ && Active(table_);
}

size_t MonitorPoller::PollOnce() {
  Table copy;
  {
    std::lock_guard lock(mu_);
    copy = table_;
  }
  if (!Active(copy)) return 0;
  return Poll(copy);
}

size_t MonitorPoller::Poll(const Table& t) {
  polls_.Add();
  size_t rung = 0;
  for (uint32_t g = 0; g < wire::kMonitorGroupCount; ++g) {
    if (t.armed[g] == 0) continue;
    // The pending word is shared with the guest, which sets bits with atomic ORs: the only safe
    // access is an atomic one on the aligned word itself (the page is 4 KiB aligned). A plain
    // load first keeps an idle poll from dirtying the guest's cache line.
    std::atomic_ref<uint32_t> pending(
        *reinterpret_cast<uint32_t*>(t.page.data() + PendingOffset(g)));
    if (pending.load(std::memory_order_relaxed) == 0) continue;
    // acquire: the ring writes the guest made before setting the bit are visible to the
    // doorbell's consumer (which also reads the ring indices with acquire).
    // Only the bits armed in this snapshot are taken: a bit for a monitor armed after the
    // snapshot (a channel opened meanwhile) stays set for the next poll instead of being lost,
    // since the guest signals only on a ring's empty -> non-empty edge and never again.
    uint32_t bits = pending.fetch_and(~t.armed[g], std::memory_order_acq_rel) & t.armed[g];
    while (bits != 0) {
      const auto bit = static_cast<uint32_t>(std::countr_zero(bits));
      bits &= bits - 1;
      const uint32_t id = g * wire::kMonitorBitsPerGroup + bit;
      if (ring_(t.connection[id])) {
        hits_.Add();
        ++rung;
      } else {
        spurious_.Add();
      }
    }
  }
  return rung;
}

void MonitorPoller::Loop() {
  Table local;
  uint64_t generation = UINT64_MAX;
  uint32_t interval_us = max_interval_us_;
  uint32_t spin = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      if (table_.generation != generation) {
        local = table_;
        generation = table_.generation;
      }
    }
    pollfd pfd{wake_.get(), POLLIN, 0};
    if (!Active(local)) {
      // Parked: nothing to poll until the table changes (no CPU while no monitored channel is
      // open).
      (void)::poll(&pfd, 1, -1);
      uint64_t drained = 0;
      (void)::read(wake_.get(), &drained, sizeof(drained));
      spin = 0;
      interval_us = max_interval_us_;
      continue;
    }
    if (Poll(local) != 0) {
      spin = kSpinPolls;
      interval_us = kFirstSleepUs;
    }
    if (spin > 0) {
      --spin;
      ::sched_yield();
      continue;
    }
    const timespec ts{static_cast<time_t>(interval_us / 1'000'000),
                      static_cast<long>(interval_us % 1'000'000) * 1000};
    if (::ppoll(&pfd, 1, &ts, nullptr) > 0) {
      uint64_t drained = 0;
      (void)::read(wake_.get(), &drained, sizeof(drained));
    }
    interval_us = std::min(interval_us * 2, max_interval_us_);
  }
}

}  // namespace uvmbus::partition
