// File: guest/vcpu_thread.cc — see vcpu_thread.h.
#include "guest/vcpu_thread.h"

#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <system_error>

#include "common/log.h"

namespace uvmbus::guest {
namespace {
thread_local VcpuThread* t_current_vcpu = nullptr;

UniqueFd MakeWakeFd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }
}  // namespace

VcpuThread::VcpuThread(partition::GuestPartition& partition, uint32_t vcpu, Handler* handler)
    : partition_(partition),
      vcpu_(vcpu),
      handler_(handler),
      wake_fd_(MakeWakeFd()),
      softirq_(vcpu, wake_fd_.get()) {}

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
  while (!stop_.load(std::memory_order_acquire)) {
    // Pending softirq work (a tasklet over its budget, a NAPI that used its whole budget) is run
    // after a non-blocking look at the interrupt, so new interrupts are served in between.
    const int timeout = softirq_.HasWork() ? 0 : -1;
    const int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      UVMBUS_LOG_ERROR("guest", "vcpu {}: poll failed: {}", vcpu_, errno);
      break;
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
      }
    }
    softirq_.RunPass();

    qs_seq_.fetch_add(1, std::memory_order_release);  // leave: even
    qs_seq_.notify_all();
  }
  t_current_vcpu = nullptr;
}

}  // namespace uvmbus::guest
