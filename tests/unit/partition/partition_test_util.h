// Helpers shared by the partition tests: a spec-1.3-compliant guest message consumer, an event-bit
// reader, and fd waits. Timeouts here are failure guards only (a broken build fails instead of
// hanging); tests never rely on them for ordering.
#ifndef UVMBUS_TESTS_UNIT_PARTITION_PARTITION_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_PARTITION_PARTITION_TEST_UTIL_H_

#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "partition/guest_partition.h"
#include "partition/host_partition.h"
#include "wire/synic.h"

namespace uvmbus::partition::testing {

inline constexpr int kGuardMs = 10000;

// Waits until `fd` is readable; false on timeout.
inline bool WaitFd(int fd, int timeout_ms = kGuardMs) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

inline bool FdReadable(int fd) { return WaitFd(fd, 0); }

struct ReceivedMessage {
  uint32_t message_type = 0;
  std::vector<uint8_t> payload;
  bool pending = false;
};

// The guest side of spec 1.3 on SINT 2's slot of `page`: copy out (acquire type), free with CAS,
// full fence, report msg_pending (the caller writes EOM). nullopt if the slot is empty.
inline std::optional<ReceivedMessage> TakeMessage(std::span<uint8_t> page) {
  uint8_t* slot = page.data() + wire::kVmbusMessageSlotOffset;
  std::atomic_ref<uint32_t> type(*reinterpret_cast<uint32_t*>(slot));
  const uint32_t t = type.load(std::memory_order_acquire);
  if (t == wire::kHvMsgNone) return std::nullopt;
  ReceivedMessage m;
  m.message_type = t;
  const uint8_t size = slot[4];
  m.payload.assign(slot + 16, slot + 16 + (size > 240 ? 240 : size));
  uint32_t expected = t;
  // seq_cst CAS and load stand in for Linux's cmpxchg + mb() (TSan does not model fences).
  type.compare_exchange_strong(expected, wire::kHvMsgNone, std::memory_order_seq_cst);
  m.pending = (std::atomic_ref<uint8_t>(slot[5]).load(std::memory_order_seq_cst) &
               wire::kHvMessageFlagPending) != 0;
  return m;
}

// Same, then EOM if pending (what a guest bus does on each interrupt).
inline std::optional<ReceivedMessage> TakeMessageAndEom(GuestPartition& g, uint32_t vcpu) {
  auto m = TakeMessage(g.MessagePage(vcpu));
  if (m && m->pending) g.EndOfMessage(vcpu);
  return m;
}

// Test-and-clear of event flag `relid` in area 2 of an event page.
inline bool TestAndClearEvent(std::span<uint8_t> page, uint32_t relid) {
  auto* words = reinterpret_cast<uint64_t*>(page.data() + wire::kVmbusEventAreaOffset);
  const uint64_t mask = wire::EventFlagWordMask(relid);
  return (std::atomic_ref<uint64_t>(words[wire::EventFlagWordIndex(relid)])
              .fetch_and(~mask, std::memory_order_acq_rel) &
          mask) != 0;
}

// A VMBus-server stand-in: records calls, answers with configurable statuses.
class RecordingHandler : public HostPartition::Handler {
 public:
  wire::HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                               std::span<const uint8_t> payload) override {
    std::lock_guard lock(mu);
    posts.push_back({connection_id, message_type, {payload.begin(), payload.end()}});
    return post_status;
  }
  wire::HvStatus OnSignalEvent(uint32_t connection_id) override {
    std::lock_guard lock(mu);
    signals.push_back(connection_id);
    return signal_status;
  }
  void OnDisconnect() override {
    std::lock_guard lock(mu);
    ++disconnects;
    cv.notify_all();
  }
  // Waits (guarded) until OnDisconnect ran.
  bool WaitDisconnect() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(kGuardMs), [&] { return disconnects > 0; });
  }
  int disconnect_count() {
    std::lock_guard lock(mu);
    return disconnects;
  }
  size_t post_count() {
    std::lock_guard lock(mu);
    return posts.size();
  }
  size_t signal_count() {
    std::lock_guard lock(mu);
    return signals.size();
  }

  struct Post {
    uint32_t connection_id;
    uint32_t message_type;
    std::vector<uint8_t> payload;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Post> posts;
  std::vector<uint32_t> signals;
  int disconnects = 0;
  wire::HvStatus post_status = wire::HvStatus::kSuccess;
  wire::HvStatus signal_status = wire::HvStatus::kInvalidConnectionId;
};

// Collects the partitions a SocketHost hands out.
class PartitionQueue {
 public:
  void Push(std::unique_ptr<HostPartition> p) {
    std::lock_guard lock(mu_);
    q_.push_back(std::move(p));
    cv_.notify_all();
  }
  // Guarded wait for the next partition (nullptr on timeout).
  std::unique_ptr<HostPartition> Pop(int timeout_ms = kGuardMs) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !q_.empty(); })) {
      return nullptr;
    }
    auto p = std::move(q_.front());
    q_.pop_front();
    return p;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<HostPartition>> q_;
};

inline std::vector<uint8_t> Bytes(std::initializer_list<uint8_t> b) { return b; }

}  // namespace uvmbus::partition::testing

#endif  // UVMBUS_TESTS_UNIT_PARTITION_PARTITION_TEST_UTIL_H_
