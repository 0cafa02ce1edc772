// File: partition/guest_partition.cc — see guest_partition.h.
#include "partition/guest_partition.h"

#include <unistd.h>

namespace uvmbus::partition {

GuestPartition::GuestPartition(GuestRam ram, std::vector<UniqueFd> interrupts,
                               UniqueFd disconnect_fd)
    : ram_(std::move(ram)),
      allocator_(ram_, uint64_t{2} * interrupts.size()),
      interrupts_(std::move(interrupts)),
      disconnect_fd_(std::move(disconnect_fd)) {}

GuestPartition::~GuestPartition() = default;

std::span<uint8_t> GuestPartition::MessagePage(uint32_t vcpu) const {
  if (vcpu >= vcpu_count()) return {};
  auto page = ram_.Pages(MessagePageGpn(vcpu), 1);
  return page ? *page : std::span<uint8_t>();
}

std::span<uint8_t> GuestPartition::EventPage(uint32_t vcpu) const {
  if (vcpu >= vcpu_count()) return {};
  auto page = ram_.Pages(EventPageGpn(vcpu), 1);
  return page ? *page : std::span<uint8_t>();
}

int GuestPartition::InterruptFd(uint32_t vcpu) const {
  return vcpu < vcpu_count() ? interrupts_[vcpu].get() : -1;
}

uint64_t GuestPartition::AckInterrupt(uint32_t vcpu) {
  if (vcpu >= vcpu_count()) return 0;
  uint64_t value = 0;
  if (::read(interrupts_[vcpu].get(), &value, sizeof(value)) !=
      static_cast<ssize_t>(sizeof(value))) {
    return 0;  // EAGAIN: not raised since the last ack
  }
  stats_.interrupts_acked.Add(value);
  return value;
}

wire::HvStatus GuestPartition::SignalEvent(uint32_t connection_id, uint16_t flag_number) {
  if ((connection_id & ~wire::kHvConnectionIdMask) != 0) {
    return wire::HvStatus::kInvalidConnectionId;
  }
  // Each of our ports owns exactly one flag (VMBus always signals flag 0, spec 1.7).
  if (flag_number != 0) return wire::HvStatus::kInvalidParameter;
  if (!connected()) return wire::HvStatus::kInvalidPortId;
  if (doorbells_.Signal(connection_id)) {
    stats_.events_fast.Add();
    return wire::HvStatus::kSuccess;
  }
  stats_.events_slow.Add();
  return SlowSignalEvent(connection_id);
}

void GuestPartition::MarkDisconnected() {
  if (!connected_.exchange(false, std::memory_order_acq_rel)) return;
  if (disconnect_fd_) {
    const uint64_t one = 1;
    (void)::write(disconnect_fd_.get(), &one, sizeof(one));
  }
}

}  // namespace uvmbus::partition
