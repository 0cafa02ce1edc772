// File: guest/vcpu_thread.cc — see vcpu_thread.h.
#include "guest/vcpu_thread.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <span>
#include <system_error>

#include "common/log.h"
#include "wire/synic.h"

namespace uvmbus::guest {
namespace {
thread_local VcpuThread* t_current_vcpu = nullptr;

UniqueFd MakeWakeFd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

// Process-wide default spin policy (VmbusBus creates the vCPU threads; the bench and tools set
// this before connecting).
std::atomic<uint64_t> g_spin_limit_ns{SpinPolicy{}.limit_ns};
std::atomic<bool> g_spin_adaptive{SpinPolicy{}.adaptive};

// Smallest non-zero spin budget, and how often a spinning thread yields the core.
constexpr uint64_t kMinSpinNs = 1'000;
constexpr int64_t kYieldEveryNs = 2'000;

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}
}  // namespace

void VcpuThread::SetDefaultSpinPolicy(SpinPolicy policy) {
  g_spin_limit_ns.store(policy.limit_ns, std::memory_order_relaxed);
  g_spin_adaptive.store(policy.adaptive, std::memory_order_relaxed);
}

SpinPolicy VcpuThread::DefaultSpinPolicy() {
  return SpinPolicy{g_spin_limit_ns.load(std::memory_order_relaxed),
                    g_spin_adaptive.load(std::memory_order_relaxed)};
}

VcpuThread::VcpuThread(partition::GuestPartition& partition, uint32_t vcpu, Handler* handler)
    : partition_(partition),
      vcpu_(vcpu),
      handler_(handler),
      wake_fd_(MakeWakeFd()),
      softirq_(vcpu, wake_fd_.get()),
      spin_policy_(DefaultSpinPolicy()) {}

VcpuThread::~VcpuThread() { Stop(); }

VcpuThread* VcpuThread::Current() { return t_current_vcpu; }

Status VcpuThread::Start() {
  if (thread_.joinable()) return MakeError(ErrorCode::kAlreadyExists, "vcpu {} started", vcpu_);
  if (!wake_fd_) return MakeError(ErrorCode::kIo, "vcpu {}: no wake-up eventfd", vcpu_);
  if (partition_.InterruptFd(vcpu_) < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "vcpu {} has no interrupt fd", vcpu_);
  }
  stop_.store(false, std::memory_order_release);
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    return MakeError(ErrorCode::kInternal, "vcpu {}: cannot start thread: {}", vcpu_, e.what());
  }
  thread_id_.store(thread_.get_id(), std::memory_order_release);
  return Ok();
}

void VcpuThread::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  (void)::eventfd_write(wake_fd_.get(), 1);
  thread_.join();
  thread_id_.store(std::thread::id(), std::memory_order_release);
}

void VcpuThread::WaitQuiescent() {
  if (IsCurrentThread()) return;
  // Pairs with the fence after the vCPU's Enter: either the vCPU entered after our caller's
  // unpublish (and will not see the channel), or we see it inside and wait for it to leave.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint32_t seq = qs_seq_.load(std::memory_order_acquire);
  if ((seq & 1) == 0) return;
  uint32_t now = qs_seq_.load(std::memory_order_acquire);
  while (now == seq) {
    qs_seq_.wait(seq, std::memory_order_acquire);
    now = qs_seq_.load(std::memory_order_acquire);
  }
}

void VcpuThread::Run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  t_current_vcpu = this;
  SoftirqQueue::ScopedOwner owner(softirq_);
  pollfd fds[3] = {
      {partition_.InterruptFd(vcpu_), POLLIN, 0},
      {wake_fd_.get(), POLLIN, 0},
      {partition_.DisconnectFd(), POLLIN, 0},
  };
  const SpinPolicy policy = spin_policy_;
  uint64_t budget = policy.limit_ns;
  const auto grow = [&] {
    budget = std::min(policy.limit_ns, std::max(budget * 2, kMinSpinNs));
  };
  while (!stop_.load(std::memory_order_acquire)) {
    // Pending softirq work (a tasklet over its budget, a NAPI that used its whole budget) is run
    // after a non-blocking look at the interrupt, so new interrupts are served in between.
    int timeout = softirq_.HasWork() ? 0 : -1;
    bool spin_hit = false;
    if (timeout < 0 && budget > 0) {
      stats_.spins.Add();
      const int64_t t0 = MonotonicNs();
      spin_hit = Spin(budget);
      stats_.spin_ns.Add(static_cast<uint64_t>(MonotonicNs() - t0));
      if (spin_hit) {
        stats_.spin_hits.Add();
        if (policy.adaptive) grow();
        timeout = 0;
      } else {
        stats_.spin_misses.Add();
      }
    }
    const int64_t sleep_start = timeout < 0 && policy.adaptive ? MonotonicNs() : 0;
    const int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      UVMBUS_LOG_ERROR("guest", "vcpu {}: poll failed: {}", vcpu_, errno);
      break;
    }
    if (sleep_start != 0 && policy.limit_ns > 0) {
      // haltpoll: a sleep shorter than the limit would have been saved by a longer spin; a
      // longer one means the vCPU is idle and spinning only burns CPU.
      const uint64_t slept = static_cast<uint64_t>(MonotonicNs() - sleep_start);
      if (slept < policy.limit_ns) {
        grow();
      } else {
        budget /= 2;
        if (budget < kMinSpinNs) budget = 0;
      }
    }
    if (stop_.load(std::memory_order_acquire)) break;

    qs_seq_.fetch_add(1, std::memory_order_seq_cst);  // enter: odd
    std::atomic_thread_fence(std::memory_order_seq_cst);

    if ((fds[1].revents & POLLIN) != 0) {
      eventfd_t ignored = 0;
      (void)::eventfd_read(wake_fd_.get(), &ignored);
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      // The hang-up fd stays readable: stop watching it, report once.
      fds[2].fd = -1;
      handler_->OnHostDisconnect();
    }
    if ((fds[0].revents & POLLIN) != 0) {
      // Ack before scanning: a raise that happens while we scan leaves the fd readable.
      const uint64_t raised = partition_.AckInterrupt(vcpu_);
      if (raised != 0) {
        stats_.interrupts.Add();
        stats_.raises.Add(raised);
        handler_->OnInterrupt(*this);
      } else if (spin_hit) {
        handler_->OnInterrupt(*this);
      }
    } else if (spin_hit) {
      // The spin saw a bit or a message before the host's eventfd write arrived: serve it now.
      // The eventfd write that follows leaves one interrupt that finds nothing (harmless).
      handler_->OnInterrupt(*this);
    }
    softirq_.RunPass();

    qs_seq_.fetch_add(1, std::memory_order_release);  // leave: even
    qs_seq_.notify_all();
  }
  t_current_vcpu = nullptr;
}

bool VcpuThread::PagesPending() const {
  const std::span<uint8_t> events = partition_.EventPage(vcpu_);
  const std::span<uint8_t> messages = partition_.MessagePage(vcpu_);
  if (events.size() < wire::kHvPageSize || messages.size() < wire::kHvPageSize) return false;
  // Relaxed loads of the host-written words (the ISR re-reads them with the proper ordering);
  // only "is anything set" is decided here, never what.
  uint8_t* area = events.data() + wire::kVmbusEventAreaOffset;
  uint64_t any = 0;
  for (uint32_t w = 0; w < wire::kSynicEventAreaSize / 8; ++w) {
    any |= std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(area + 8 * w))
               .load(std::memory_order_relaxed);
  }
  if (any != 0) return true;
  uint8_t* slot = messages.data() + wire::kVmbusMessageSlotOffset;
  return std::atomic_ref<uint32_t>(
             *reinterpret_cast<uint32_t*>(slot + wire::kHvMessageTypeOffset))
             .load(std::memory_order_relaxed) != wire::kHvMsgNone;
}

bool VcpuThread::Spin(uint64_t budget_ns) {
  const int64_t start = MonotonicNs();
  const int64_t deadline =
      start + static_cast<int64_t>(std::min<uint64_t>(budget_ns, uint64_t{INT64_MAX} / 2));
  int64_t next_yield = start + kYieldEveryNs;
  for (;;) {
    if (PagesPending() || softirq_.HasWork() || stop_.load(std::memory_order_relaxed)) return true;
    for (int i = 0; i < 16; ++i) CpuRelax();
    const int64_t now = MonotonicNs();
    if (now >= deadline) return false;
    if (now >= next_yield) {
      // Another thread of this core (the application behind NetDevice) may be runnable.
      (void)::sched_yield();
      next_yield = MonotonicNs() + kYieldEveryNs;
    }
  }
}

}  // namespace uvmbus::guest
