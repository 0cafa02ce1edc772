#include "net/frame_ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/frame.h"

namespace uvmbus::net {

Expected<std::unique_ptr<FrameRing>> FrameRing::Create(uint32_t depth, uint32_t slot_size) {
  if (depth < 2 || depth > 65536 || (depth & (depth - 1)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "frame ring depth {} is not a power of two in "
                     "[2, 65536]", depth);
  }
  if (slot_size < kEthHeaderSize || slot_size > kMaxFrameSize) {
    return MakeError(ErrorCode::kInvalidArgument, "frame ring slot size {} outside [{}, {}]",
                     slot_size, kEthHeaderSize, kMaxFrameSize);
  }
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) return tl::unexpected(Error::FromErrno("eventfd", errno));
  // Slots are at least 60 bytes (Push pads to the wire minimum) and 64-byte aligned so two
  // producers copying into neighbouring slots do not share a cache line.
  const uint32_t stride = ((std::max(slot_size, kMinWireFrameSize) + 63u) / 64u) * 64u;
  return std::unique_ptr<FrameRing>(new FrameRing(depth, slot_size, stride, std::move(efd)));
}

FrameRing::FrameRing(uint32_t depth, uint32_t slot_size, uint32_t stride, UniqueFd event_fd)
    : depth_(depth),
      mask_(depth - 1),
      slot_size_(slot_size),
      stride_(stride),
      slots_(new SlotHeader[depth]),
      data_(new uint8_t[size_t{depth} * stride]),
      event_fd_(std::move(event_fd)) {
  // Slot i starts free for position i.
  for (uint32_t i = 0; i < depth; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
}

FrameRing::~FrameRing() = default;

bool FrameRing::Push(std::span<const uint8_t> frame, std::span<const uint8_t> header) {
  // Callers check sizes first; this guard only keeps a caller bug from writing out of bounds.
  if (frame.size() > slot_size_ || header.size() > frame.size()) return false;
  uint64_t pos = tail_.load(std::memory_order_relaxed);
  SlotHeader* slot;
  for (;;) {
    slot = &slots_[pos & mask_];
    // Acquire pairs with the consumer's release in Pop(): the slot's previous frame has been
    // copied out before we overwrite it.
    const uint64_t seq = slot->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<int64_t>(seq - pos);
    if (diff == 0) {
      if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      return false;  // the slot one lap behind is still occupied: full
    } else {
      pos = tail_.load(std::memory_order_relaxed);  // another producer took it
    }
  }
  uint8_t* dst = &data_[size_t{pos & mask_} * stride_];
  const auto len = static_cast<uint32_t>(frame.size());
  std::memcpy(dst, frame.data(), len);
  if (!header.empty()) std::memcpy(dst, header.data(), header.size());
  uint32_t stored = len;
  if (stored < kMinWireFrameSize) {
    std::memset(dst + stored, 0, kMinWireFrameSize - stored);
    stored = kMinWireFrameSize;
  }
  slot->length = stored;
  // Release publishes the bytes and the length to the consumer's acquire in Pop().
  slot->seq.store(pos + 1, std::memory_order_release);
  return true;
}

void FrameRing::WakeIfArmed() {
  // An RMW, not a load: see the header (it orders this producer's publications against the
  // consumer's arming without fences).
  if (armed_.exchange(false, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    // EAGAIN only if the counter would overflow: the consumer is awake anyway.
    [[maybe_unused]] ssize_t r = ::write(event_fd_.get(), &one, sizeof(one));
  }
}

FrameRing::PopResult FrameRing::Pop(std::span<uint8_t> dst, uint32_t* length) {
  SlotHeader& slot = slots_[head_ & mask_];
  if (slot.seq.load(std::memory_order_acquire) != head_ + 1) return PopResult::kEmpty;
  const uint32_t len = slot.length;
  *length = len;
  PopResult result = PopResult::kTooBig;
  if (len <= dst.size()) {
    std::memcpy(dst.data(), &data_[size_t{head_ & mask_} * stride_], len);
    result = PopResult::kOk;
  }
  // Hand the slot to the producer one lap ahead; release orders our copy-out before its reuse.
  slot.seq.store(head_ + depth_, std::memory_order_release);
  ++head_;
  return result;
}

bool FrameRing::PeekReady() const {
  return slots_[head_ & mask_].seq.load(std::memory_order_acquire) == head_ + 1;
}

bool FrameRing::PrepareWait() {
  // Clear wake-ups that were already consumed by polling; a write racing with this read only
  // causes a spurious wake-up later.
  uint64_t v;
  [[maybe_unused]] ssize_t r = ::read(event_fd_.get(), &v, sizeof(v));
  armed_.exchange(true, std::memory_order_acq_rel);
  if (PeekReady()) return false;  // leave armed: at worst one spurious eventfd write
  return true;
}

uint32_t PollRingInto(FrameRing& ring, RxBatch& batch, QueueCounters& counters) {
  BatchTally rx;
  uint32_t filled = 0;
  while (filled < batch.size()) {
    auto& slot = batch[filled];
    uint32_t len = 0;
    const FrameRing::PopResult r = ring.Pop({slot.data, slot.capacity}, &len);
    if (r == FrameRing::PopResult::kEmpty) break;
    if (r == FrameRing::PopResult::kTooBig) {
      ++rx.dropped;  // the buffer stays free for the next frame
      continue;
    }
    slot.length = len;
    ++rx.packets;
    rx.bytes += len;
    if ((slot.data[0] & 1) != 0) ++rx.multicast;  // group bit of the destination MAC
    ++filled;
  }
  rx.PublishRx(counters);
  return filled;
}

}  // namespace uvmbus::net
