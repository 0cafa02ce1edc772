// File: devices/netvsp/queue_worker.cc — see queue_worker.h.
#include "devices/netvsp/queue_worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>

namespace uvmbus::netvsp {
namespace {

constexpr uint64_t kStopKey = UINT64_MAX;
constexpr int64_t kYieldEveryNs = 2'000;

std::atomic<uint64_t> g_spin_limit_ns{0};

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Expected<std::unique_ptr<QueueWorker>> QueueWorker::Start(std::string name, QueueService* service,
                                                          std::span<const int> fds) {
  if (service == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument, "queue worker {} without a service", name);
  }
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return tl::unexpected(Error::FromErrno("epoll_create1", errno));
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return tl::unexpected(Error::FromErrno("eventfd", errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kStopKey;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, stop.get(), &ev) != 0) {
    return tl::unexpected(Error::FromErrno("epoll_ctl(stop)", errno));
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i] < 0) continue;
    ev.events = EPOLLIN;  // level-triggered: the service clears each source when it runs
    ev.data.u64 = i;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fds[i], &ev) != 0) {
      return tl::unexpected(Error::FromErrno("epoll_ctl", errno));
    }
  }
  std::unique_ptr<QueueWorker> worker(
      new QueueWorker(std::move(name), service, std::move(epoll), std::move(stop)));
  QueueWorker* raw = worker.get();
  worker->thread_ = std::thread([raw] { raw->Loop(); });
  (void)::pthread_setname_np(worker->thread_.native_handle(), raw->name_.substr(0, 15).c_str());
  return worker;
}

void QueueWorker::SetSpinLimitNs(uint64_t ns) {
  g_spin_limit_ns.store(ns, std::memory_order_relaxed);
}

uint64_t QueueWorker::SpinLimitNs() { return g_spin_limit_ns.load(std::memory_order_relaxed); }

QueueWorker::QueueWorker(std::string name, QueueService* service, UniqueFd epoll, UniqueFd stop)
    : name_(std::move(name)), service_(service), epoll_(std::move(epoll)),
      stop_fd_(std::move(stop)), spin_ns_(SpinLimitNs()) {}

QueueWorker::~QueueWorker() { Stop(); }

void QueueWorker::Stop() {
  if (!stop_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof(one));
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void QueueWorker::Loop() {
  std::array<epoll_event, 8> events;
  while (!stop_.load(std::memory_order_acquire)) {
    if (service_->Run()) continue;  // quota hit: more to do now
    if (!service_->PrepareSleep()) continue;
    if (stop_.load(std::memory_order_acquire)) break;
    if (spin_ns_ > 0) {
      // Poll the armed descriptors without blocking first (see the header).
      const int64_t start = MonotonicNs();
      const int64_t deadline =
          start + static_cast<int64_t>(std::min<uint64_t>(spin_ns_, uint64_t{1} << 62));
      int64_t next_yield = start + kYieldEveryNs;
      int ready = 0;
      for (;;) {
        ready = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
        const int64_t now = MonotonicNs();
        if (ready != 0 || now >= deadline) break;
        if (now >= next_yield) {
          (void)::sched_yield();
          next_yield = now + kYieldEveryNs;
        }
      }
      if (ready != 0) continue;
    }
    // Which source fired does not matter: the round looks at all of them.
    (void)::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
  }
}

}  // namespace uvmbus::netvsp
