// File: devices/netvsc/rx_ring.cc
#include "devices/netvsc/rx_ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace uvmbus::netvsc {

Expected<std::unique_ptr<RxRing>> RxRing::Create(uint32_t depth, uint32_t slot_size) {
  if (depth < 2 || depth > 65536 || (depth & (depth - 1)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "rx ring depth {} is not a power of two in 2..65536",
                     depth);
  }
  if (slot_size < net::kEthHeaderSize || slot_size > 65536) {
    return MakeError(ErrorCode::kInvalidArgument, "rx ring slot size {} outside 14..65536",
                     slot_size);
  }
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error::FromErrno("eventfd", errno));
  const uint32_t stride = (slot_size + 63) / 64 * 64;
  return std::unique_ptr<RxRing>(new RxRing(depth, slot_size, stride, UniqueFd(fd)));
}

RxRing::RxRing(uint32_t depth, uint32_t slot_size, uint32_t stride, UniqueFd event_fd)
    : depth_(depth),
      mask_(depth - 1),
      slot_size_(slot_size),
      stride_(stride),
      slots_(std::make_unique<Slot[]>(depth)),
      data_(std::make_unique<uint8_t[]>(size_t{depth} * stride)),
      event_fd_(std::move(event_fd)) {}

RxRing::~RxRing() = default;

bool RxRing::Push(std::span<const uint8_t> frame, const RxFrameInfo& info) {
  if (frame.size() > slot_size_) return false;
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (tail - cached_head_ >= depth_) {
    // Acquire: the consumer finished copying out of the slot before it published head.
    cached_head_ = head_.load(std::memory_order_acquire);
    if (tail - cached_head_ >= depth_) return false;
  }
  const uint32_t index = static_cast<uint32_t>(tail) & mask_;
  std::memcpy(data_.get() + size_t{index} * stride_, frame.data(), frame.size());
  slots_[index].length = static_cast<uint32_t>(frame.size());
  slots_[index].info = info;
  // Release: the slot's bytes are visible before the consumer can see the new tail.
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

void RxRing::WriteEvent() {
  const uint64_t one = 1;
  // A full eventfd counter (EAGAIN) is already readable: nothing is lost.
  [[maybe_unused]] const ssize_t n = ::write(event_fd_.get(), &one, sizeof(one));
}

void RxRing::WakeIfArmed() {
  // Pairs with the consumer's exchange in PrepareWait (see the file comment): one RMW per batch.
  // A plain load could miss an arm that is ordered before our Push()es only through this RMW.
  if (armed_.exchange(false, std::memory_order_acq_rel)) WriteEvent();
}

void RxRing::Wake() {
  if (armed_.exchange(false, std::memory_order_acq_rel)) WriteEvent();
}

uint32_t RxRing::Pop(net::RxBatch& batch, RxFrameInfo* infos) {
  uint64_t head = head_.load(std::memory_order_relaxed);
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  uint32_t filled = 0;
  while (head != tail && filled < batch.size()) {
    const uint32_t index = static_cast<uint32_t>(head) & mask_;
    const Slot& slot = slots_[index];
    net::RxBatch::Frame& dst = batch[filled];
    if (slot.length > dst.capacity) {
      dropped_too_big_.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::memcpy(dst.data, data_.get() + size_t{index} * stride_, slot.length);
      dst.length = slot.length;
      if (infos != nullptr) infos[filled] = slot.info;
      ++filled;
    }
    ++head;
  }
  // Release: our reads of the slots are done before the producer may reuse them.
  head_.store(head, std::memory_order_release);
  return filled;
}

bool RxRing::Ready() const {
  return tail_.load(std::memory_order_acquire) != head_.load(std::memory_order_relaxed);
}

bool RxRing::PrepareWait() {
  uint64_t drained = 0;
  [[maybe_unused]] const ssize_t n = ::read(event_fd_.get(), &drained, sizeof(drained));
  // acq_rel: totally ordered with the producer's exchange (see the file comment).
  armed_.exchange(true, std::memory_order_acq_rel);
  if (Ready()) {
    armed_.store(false, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace uvmbus::netvsc
