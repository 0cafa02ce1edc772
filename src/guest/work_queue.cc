// File: guest/work_queue.cc — see work_queue.h.
#include "guest/work_queue.h"

#include <system_error>
#include <utility>

namespace uvmbus::guest {

WorkQueue::WorkQueue(std::string name) : name_(std::move(name)) {}

WorkQueue::~WorkQueue() { Stop(); }

Status WorkQueue::Start() {
  std::lock_guard lock(mu_);
  if (started_) return MakeError(ErrorCode::kAlreadyExists, "work queue {} already started", name_);
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    return MakeError(ErrorCode::kInternal, "work queue {}: cannot start thread: {}", name_,
                     e.what());
  }
  thread_id_.store(thread_.get_id(), std::memory_order_release);
  started_ = true;
  return Ok();
}

bool WorkQueue::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    tasks_.push_back(std::move(task));
    ++posted_;
  }
  cv_.notify_one();
  return true;
}

bool WorkQueue::Flush(std::chrono::milliseconds timeout) {
  if (IsCurrent()) return true;
  std::unique_lock lock(mu_);
  const uint64_t target = posted_;
  auto pred = [&] { return done_ >= target || stopping_; };
  if (timeout == std::chrono::milliseconds::max()) {
    done_cv_.wait(lock, pred);
  } else if (!done_cv_.wait_for(lock, timeout, pred)) {
    return false;
  }
  return done_ >= target;
}

void WorkQueue::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    tasks_.clear();
  }
  cv_.notify_all();
  done_cv_.notify_all();
  if (thread_.joinable() && !IsCurrent()) thread_.join();
}

void WorkQueue::Run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (stopping_) return;
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    // Destroy captures (shared_ptrs to channels/devices) outside the lock.
    task = nullptr;
    lock.lock();
    ++done_;
    done_cv_.notify_all();
  }
}

}  // namespace uvmbus::guest
