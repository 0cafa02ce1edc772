// File: host/channel_worker.cc — see channel_worker.h.
#include "host/channel_worker.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "common/log.h"

namespace uvmbus::host {
namespace {

constexpr uint64_t kWakeKey = 0;  // epoll data of the wake eventfd; bindings use keys >= 1
// Unmask/re-check rounds per channel per Poll() before yielding to the other channels.
constexpr int kMaxRoundsPerPoll = 8;

}  // namespace

Expected<std::unique_ptr<ChannelWorker>> ChannelWorker::Create(std::string name,
                                                                bool start_thread) {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return unexpected(Error::FromErrno("epoll_create1", errno));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return unexpected(Error::FromErrno("eventfd", errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0) {
    return unexpected(Error::FromErrno("epoll_ctl(wake)", errno));
  }
  std::unique_ptr<ChannelWorker> worker(
      new ChannelWorker(std::move(name), std::move(epoll), std::move(wake)));
  if (start_thread) {
    ChannelWorker* raw = worker.get();
    worker->thread_ = std::thread([raw] { raw->Run(); });
    // Thread names are at most 15 characters.
    (void)::pthread_setname_np(worker->thread_.native_handle(),
                               worker->name_.substr(0, 15).c_str());
  }
  return worker;
}

ChannelWorker::ChannelWorker(std::string name, UniqueFd epoll, UniqueFd wake)
    : name_(std::move(name)), epoll_(std::move(epoll)), wake_(std::move(wake)) {}

ChannelWorker::~ChannelWorker() {
  Stop();
  std::lock_guard lock(mu_);
  bindings_.clear();
}

Status ChannelWorker::Bind(HostChannel& channel, Callback callback) {
  std::lock_guard lock(mu_);
  for (const auto& [key, b] : bindings_) {
    if (b.channel == &channel) {
      return MakeError(ErrorCode::kAlreadyExists, "channel {} already bound to {}",
                       channel.relid(), name_);
    }
  }
  const uint64_t key = next_key_++;
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: readable until ConsumeDoorbell()
  ev.data.u64 = key;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, channel.doorbell_fd(), &ev) != 0) {
    return unexpected(Error::FromErrno("epoll_ctl(doorbell)", errno));
  }
  Binding b;
  b.channel = &channel;
  b.callback = std::move(callback);
  b.due = true;  // the guest may have written before we bound: drain once
  bindings_.emplace(key, std::move(b));
  Wake();
  return Ok();
}

void ChannelWorker::Unbind(HostChannel& channel) {
  // Taking mu_ waits for a running callback round to finish.
  std::lock_guard lock(mu_);
  for (auto it = bindings_.begin(); it != bindings_.end(); ++it) {
    if (it->second.channel == &channel) {
      (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, channel.doorbell_fd(), nullptr);
      bindings_.erase(it);
      return;
    }
  }
}

void ChannelWorker::Wake() {
  const uint64_t one = 1;
  // A full eventfd counter (never in practice) still leaves it readable: nothing to handle.
  (void)!::write(wake_.get(), &one, sizeof(one));
}

void ChannelWorker::Stop() {
  if (stop_.exchange(true, std::memory_order_acq_rel)) {
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    return;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

void ChannelWorker::Run() {
  while (!stop_.load(std::memory_order_acquire)) Poll(-1);
}

size_t ChannelWorker::Poll(int timeout_ms) {
  {
    // A channel that asked for kMore is served again without sleeping.
    std::lock_guard lock(mu_);
    for (const auto& [key, b] : bindings_) {
      if (b.due) {
        timeout_ms = 0;
        break;
      }
    }
  }
  std::array<epoll_event, 64> events;
  const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                             timeout_ms);
  std::lock_guard lock(mu_);
  if (n > 0) wakeups_.Add();
  for (int i = 0; i < n; ++i) {
    const uint64_t key = events[static_cast<size_t>(i)].data.u64;
    if (key == kWakeKey) {
      uint64_t value = 0;
      (void)!::read(wake_.get(), &value, sizeof(value));
      continue;
    }
    auto it = bindings_.find(key);
    if (it != bindings_.end()) it->second.due = true;  // unbound meanwhile: ignore
  }
  size_t ran = 0;
  for (auto& [key, b] : bindings_) {
    if (!b.due || stop_.load(std::memory_order_relaxed)) continue;
    const uint64_t before = runs_.Get();
    RunChannel(b);
    ran += static_cast<size_t>(runs_.Get() - before);
  }
  return ran;
}

void ChannelWorker::RunChannel(Binding& b) {
  b.due = false;
  HostChannel& ch = *b.channel;
  // Clear the doorbell before draining: a signal that arrives during the drain re-arms it.
  ch.ConsumeDoorbell();
  if (!b.masked) {
    // hv_begin_read (spec 3.6): the guest's writer stops signalling while we drain.
    ch.inbound().BeginReadMask();
    b.masked = true;
  }
  for (int round = 0; round < kMaxRoundsPerPoll; ++round) {
    runs_.Add();
    if (b.callback(ch) == WorkResult::kMore) {
      b.due = true;  // stay masked; next Poll() runs it again without waiting
      return;
    }
    // hv_end_read: unmask, full barrier, re-check. Bytes that arrived while masked came with
    // no signal, so they must be drained now or never.
    auto avail = ch.inbound().EndReadMask();
    b.masked = false;
    if (!avail) {
      ring_errors_.Add();
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "host", "{}: channel {} ring: {}", name_,
                             ch.relid(), ring::RingErrorName(avail.error()));
      return;  // a corrupt ring: the device notices on its next read and stops the channel
    }
    if (*avail == 0) return;
    mask_races_.Add();
    ch.inbound().BeginReadMask();
    b.masked = true;
  }
  b.due = true;  // still busy: give the other channels a turn first
}

ChannelWorkerStats ChannelWorker::Stats() const {
  ChannelWorkerStats s;
  s.wakeups = wakeups_.Get();
  s.runs = runs_.Get();
  s.mask_races = mask_races_.Get();
  s.ring_errors = ring_errors_.Get();
  std::lock_guard lock(mu_);
  s.channels = bindings_.size();
  return s;
}

}  // namespace uvmbus::host
