// File: guest/bus_core.h
//
// What: the parts of the guest VMBus connection that channels use directly (Linux
// vmbus_connection): options, named counters, the 2048-entry relid -> channel table read by the
// ISR, the pending-request list, the message posting policy of spec 1.7 (retries on transient
// hypercall statuses), the GPADL handle counter, the per-vCPU threads and the quiescent-state wait
// that makes unpublishing a channel safe. VmbusBus (vmbus_bus.h) builds the channel manager on
// top of it; nothing outside guest/ uses this header.
//
// Spec: vmbus-protocol.md 1.4 (relids 1..2047), 1.7 (HvCallPostMessage statuses, Linux retry
//       policy), 2.6 (message connection id per version), 2.9 (GPADL handles from 0xE1E10),
//       7.4 (RCU-protected relid table), 9.2 (counters of rejected host input).
// Linux: drivers/hv/connection.c (vmbus_connection, vmbus_post_msg, relid2channel),
//        drivers/hv/channel.c (next_gpadl_handle), drivers/hv/hyperv_vmbus.h.
// Thread-safety: every method is thread-safe. RelidTable::Get() is lock-free (ISR path); its
//       results stay valid while the caller is inside a vCPU critical section (see
//       VcpuThread::WaitQuiescent).
#ifndef UVMBUS_GUEST_BUS_CORE_H_
#define UVMBUS_GUEST_BUS_CORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/counter.h"
#include "common/error.h"
#include "guest/request_tracker.h"
#include "guest/vcpu_thread.h"
#include "partition/guest_partition.h"
#include "wire/channel_messages.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace uvmbus::guest {

class Channel;

// Tunables of a guest bus. Defaults follow Linux.
struct BusOptions {
  // Time source of the tasklet budget (spec 7.5); null = SteadyClock. Tests inject a ManualClock.
  Clock* clock = nullptr;
  // Budget of one run of a channel's tasklet loop in BATCHED mode: Linux's 2 jiffies (2 ms at
  // HZ=1000). Past it the tasklet reschedules itself so other channels run.
  int64_t tasklet_budget_ns = 2'000'000;
  // Newest protocol version tried; versions above it are skipped (Linux max_version parameter).
  uint32_t max_version = wire::kVersionWin10V5_3;
  // Wait for one reply of the host (VERSION_RESPONSE, OPENCHANNEL_RESULT, GPADL_CREATED/TORNDOWN,
  // MODIFYCHANNEL_RESPONSE). Linux waits forever for most; a bound turns a dead host into an error.
  std::chrono::milliseconds response_timeout{10'000};
  // Wait for ALLOFFERS_DELIVERED after REQUESTOFFERS (Linux >= 6.14 waits, warning every 10 s).
  std::chrono::milliseconds offers_timeout{10'000};
  // Wait for UNLOAD_RESPONSE (Linux: bounded, ~10 s).
  std::chrono::milliseconds unload_timeout{5'000};
  // PostMessage retry policy (spec 1.7): attempts, first delay, doubling for the first 21 retries,
  // capped at post_max_delay.
  uint32_t post_max_attempts = 100;
  std::chrono::nanoseconds post_initial_delay{1'000};
  std::chrono::nanoseconds post_max_delay{std::chrono::microseconds(1) * (1 << 21)};
  // Connect() returns only after the probes of the initially offered devices ran.
  bool wait_for_probes = true;
};

// Named counters of one bus (all relaxed; names used by `uvmbus guest` / stats output). The
// M-numbers are the rules of spec 9.2 each counter belongs to.
struct BusStats {
  // Message path.
  Counter messages_received;     // SynIC messages taken from a slot (every type)
  Counter msg_not_vmbus;         // SynIC message type other than 1 (timer, intercepts): dropped
  Counter msg_bad_payload_size;  // M3: payload_size > 240
  Counter msg_too_short;         // M5: shorter than the 8-byte header or the type's minimum
  Counter msg_bad_type;          // M2: msgtype 0 or >= 25 (Linux CHANNELMSG_COUNT)
  Counter msg_wrong_direction;   // M4: a guest->host type received from the host
  Counter msg_malformed;         // rejected by the parser for any other reason
  Counter msg_unhandled;         // valid host->guest type without a handler (20, 23)
  Counter msg_unexpected;        // valid message not expected in the current bus state
  Counter eoms;                  // M19: EOM writes after freeing a slot with msg_pending
  Counter responses_unmatched;   // M13: response matching no pending request
  // Offers and rescinds.
  Counter offers;                // OFFERCHANNEL accepted (primary and sub-channel)
  Counter subchannel_offers;     // of which sub-channels
  Counter offer_bad_relid;       // M6: relid 0 or >= 2048
  Counter offer_relid_in_use;    // M6: relid of a live channel
  Counter offer_duplicate;       // M7: same type+instance as a primary, sub_channel_index 0
  Counter offer_confidential;    // M9: confidential/pinned flags without negotiated 6.0 feature
  Counter rescinds;              // RESCIND_CHANNELOFFER processed
  Counter rescind_unknown;       // M10: unknown relid
  Counter rescind_duplicate;     // M10: second rescind of a channel
  Counter relids_released;       // RELID_RELEASED sent
  // Devices.
  Counter probes;                // successful driver probes
  Counter probe_failures;        // Probe() returned an error
  Counter no_driver;             // devices without a matching driver
  Counter removes;               // driver Remove() calls
  // Posting (spec 1.7).
  Counter posts;                 // channel messages posted successfully
  Counter post_retries;          // transient statuses retried
  Counter post_failures;         // posts that failed for good
  // Negotiation.
  Counter version_refused;       // M16: version_supported = 0
  Counter version_no_port;       // M18: INITIATE_CONTACT refused with INVALID_CONNECTION_ID
  // GPADLs.
  Counter gpadls_created;
  Counter gpadl_failures;        // M15 and posting/timeout failures
  Counter gpadls_torn_down;
  Counter pages_leaked;          // pages kept because the host never confirmed a teardown

  // Calls fn(name, value) for every counter, in declaration order.
  void ForEach(const std::function<void(std::string_view, uint64_t)>& fn) const;
};

// relid -> channel, read lock-free by the ISR (Linux vmbus_connection.channels[], RCU).
class RelidTable {
 public:
  // The channel published for `relid`, or null (also for relid >= 2048).
  Channel* Get(uint32_t relid) const {
    if (relid >= wire::kMaxChannelRelids) return nullptr;
    // Acquire pairs with Publish: the channel is fully constructed when seen.
    return slots_[relid].load(std::memory_order_acquire);
  }
  // Publishes `channel` for `relid` if the slot is free. False if in use or out of range.
  bool Publish(uint32_t relid, Channel* channel);
  // Clears the slot if it holds `channel`. Readers may still hold the pointer until every vCPU
  // passed a quiescent state (BusCore::SynchronizeVcpus).
  void Unpublish(uint32_t relid, Channel* channel);

 private:
  std::array<std::atomic<Channel*>, wire::kMaxChannelRelids> slots_{};
};

class BusCore {
 public:
  BusCore(partition::GuestPartition& partition, const BusOptions& options);
  virtual ~BusCore();
  BusCore(const BusCore&) = delete;
  BusCore& operator=(const BusCore&) = delete;

  partition::GuestPartition& partition() { return partition_; }
  const BusOptions& options() const { return options_; }
  Clock& clock() const { return *clock_; }
  RequestTracker& requests() { return requests_; }
  RelidTable& relids() { return relids_; }
  BusStats& stats() { return stats_; }
  const BusStats& stats() const { return stats_; }

  // Negotiated version (0 before Connect succeeded).
  uint32_t version() const { return version_.load(std::memory_order_acquire); }
  // True between a successful version negotiation and Disconnect()/host hang-up.
  bool connected() const { return connected_.load(std::memory_order_acquire); }

  // HvCallPostMessage of a channel message to `connection_id` with Linux's retry policy (spec
  // 1.7): up to post_max_attempts; INVALID_CONNECTION_ID fails at once for INITIATE_CONTACT
  // (`initiate_contact`, M18) and is retried otherwise; INSUFFICIENT_MEMORY/BUFFERS are retried;
  // anything else fails. Returns the last status.
  wire::HvStatus PostRaw(std::span<const uint8_t> message, uint32_t connection_id,
                         bool initiate_contact);
  // Posts to the negotiated message connection (spec 2.6). Errors: kUnavailable with the
  // hypercall status in the message.
  Status Post(const wire::MessageBuffer& message);

  // Registers a request, checks `rescinded` (if given) after registering so a concurrent
  // rescind cannot be missed, posts `messages` in order and waits for the matching response
  // (RequestTracker). Errors: posting errors, kUnavailable (rescinded / host gone), kTimeout.
  // `timeout` defaults to options().response_timeout.
  Expected<wire::ChannelMessage> Request(
      RequestKind kind, uint32_t relid, uint32_t key,
      std::span<const wire::MessageBuffer> messages, const std::atomic<bool>* rescinded,
      std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // A new GPADL handle (global counter from 0xE1E10, never reused within a bus, spec 2.9).
  uint32_t AllocateGpadlHandle() { return next_gpadl_.fetch_add(1, std::memory_order_relaxed); }

  // Waits until every vCPU thread left the ISR/softirq pass it was in: after unpublishing a
  // channel and disabling its callbacks, nothing uses it any more. From a vCPU thread its own
  // vCPU is skipped.
  void SynchronizeVcpus();

  uint32_t vcpu_count() const { return static_cast<uint32_t>(vcpus_.size()); }
  // vCPU `vcpu`'s thread (null if out of range).
  VcpuThread* vcpu(uint32_t vcpu) const {
    return vcpu < vcpus_.size() ? vcpus_[vcpu].get() : nullptr;
  }
  // True when called from any vCPU thread of this bus (blocking control operations refuse to
  // run there: the vCPU thread is what would deliver their answer).
  bool OnVcpuThread() const;

  // GPA of the guest->host monitor page (INITIATE_CONTACT monitor_page2, spec 2.5), 0 before the
  // contact pages were allocated. Raw-mode channel owners (uio) signal through it.
  uint64_t monitor_page2_gpa() const { return monitor_page2_gpa_.load(std::memory_order_acquire); }

 protected:
  // Creates one VcpuThread per partition vCPU with `handler` (not started).
  void CreateVcpus(VcpuThread::Handler* handler);

  partition::GuestPartition& partition_;
  const BusOptions options_;
  Clock* clock_;
  RequestTracker requests_;
  RelidTable relids_;
  BusStats stats_;
  std::vector<std::unique_ptr<VcpuThread>> vcpus_;
  std::atomic<uint32_t> version_{0};
  std::atomic<uint32_t> msg_conn_id_{wire::kVmbusMessageConnectionId};
  std::atomic<bool> connected_{false};
  std::atomic<uint32_t> next_gpadl_{0xE1E10};
  std::atomic<uint64_t> monitor_page2_gpa_{0};  // set by the bus when it allocates the pages
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_BUS_CORE_H_
