// File: guest/channel.h
//
// What: `Channel`, one VMBus channel as the guest sees it (Linux struct vmbus_channel): the offer
// the host made, the vCPU its interrupts go to, and - once opened - its pair of rings in guest
// pages (guest->host "outbound", host->guest "inbound") described to the host by one GPADL, the
// driver's callback and how it is invoked, per-channel counters with Linux's sysfs names, and
// driver GPADLs (netvsc's receive/send buffers).
//
//   Open():  ring pages from the guest page allocator -> both ring headers initialised
//            (feature_bits = 1) -> GPADL over both rings -> callbacks armed -> OPENCHANNEL
//            (openid = relid, downstream offset = send ring pages) -> wait OPENCHANNEL_RESULT.
//            A refusal (M14), a rescind while waiting (M12) or a timeout tears the GPADL down and
//            frees the pages.
//   Close(): callbacks stopped (and every vCPU past its ISR) -> CLOSECHANNEL -> GPADL_TEARDOWN
//            of the ring GPADL, wait GPADL_TORNDOWN -> pages freed.
//
// Interrupt path (spec 7.4), per callback mode, on the vCPU whose event bit fired:
//   kIsr      the driver callback runs right in the ISR (netvsc: mask + schedule NAPI);
//   kBatched  the inbound ring is masked (hv_begin_read) and the channel tasklet scheduled; the
//             tasklet calls the callback until unmasking finds the ring empty, within a time
//             budget, then reschedules itself (spec 7.5);
//   kDirect   the tasklet is scheduled; it calls the callback once.
//
// Data path: outbound()/inbound() are the ring objects (ring/); a writer calls SignalHost() only
// when CommitWrite() says so (spec 3.4), as SendInband() does.
//
// Spec: vmbus-protocol.md 1.5/1.7 (SignalEvent on the offer's connection id), 2.3 (OFFERCHANNEL,
//       OPENCHANNEL, GPADL, MODIFYCHANNEL), 2.7 (rescind), 2.8 (open/close order), 2.9 (GPADL
//       split, handles), 3.1 (ring headers), 3.4-3.6, 7.4-7.7, 9.2 M12, M14, M15.
// Linux: include/linux/hyperv.h (struct vmbus_channel), drivers/hv/channel.c (vmbus_open,
//        vmbus_close, vmbus_establish_gpadl, vmbus_teardown_gpadl, vmbus_send_modifychannel),
//        drivers/hv/connection.c (vmbus_on_event, vmbus_set_event), drivers/hv/vmbus_drv.c
//        (vmbus_chan_sched, sysfs channel attributes).
// Thread-safety: control operations (Open, Close, EstablishGpadl, TeardownGpadl, SetTargetVcpu)
//       are thread-safe but block waiting for the host: never call them from a vCPU thread (a
//       channel callback, tasklet or NAPI poll) - they return kInvalidArgument there. The data
//       path (outbound(), inbound(), SendInband) follows the ring classes: one producer and one
//       consumer thread at a time, chosen by the driver; valid only while the channel is open.
//       Accessors and counters may be read from any thread.
#ifndef UVMBUS_GUEST_CHANNEL_H_
#define UVMBUS_GUEST_CHANNEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "guest/softirq.h"
#include "partition/guest_page_allocator.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/channel_messages.h"

namespace uvmbus::guest {

class BusCore;
class Channel;
class VcpuThread;
class VmbusDevice;
namespace internal {
class BusImpl;
}  // namespace internal

// How the driver callback is invoked when the channel's event bit fires (spec 7.4; Linux
// HV_CALL_BATCHED / HV_CALL_DIRECT / HV_CALL_ISR). Linux's default is kBatched.
enum class CallbackMode : uint8_t {
  kBatched,
  kDirect,
  kIsr,
};
std::string_view CallbackModeName(CallbackMode mode);

// Lifecycle of a channel (guest side).
enum class ChannelState : uint8_t {
  kOffered,   // offered by the host, not open (also after a close)
  kOpening,   // Open() in progress
  kOpen,      // rings set up, OPENCHANNEL_RESULT success
  kClosing,   // Close() in progress
  kReleased,  // rescinded and RELID_RELEASED sent, or bus disconnected: unusable
};
std::string_view ChannelStateName(ChannelState state);

// The driver's channel callback (Linux onchannel_callback).
using ChannelCallback = std::function<void(Channel&)>;

// Parameters of Channel::Open().
struct OpenParams {
  // Size of the guest->host ring and of the host->guest ring, each including its 4 KiB header
  // page: multiples of 4096, at least 8192 (header + one data page). Linux netvsc: 528384 each
  // (VMBUS_RING_SIZE(128 * 4096), spec 3.9).
  uint32_t send_ring_bytes = 0;
  uint32_t recv_ring_bytes = 0;
  // OPENCHANNEL userdata (at most 120 bytes; netvsc sends zeros).
  std::span<const uint8_t> userdata;
  // Called when the host signals the channel, as `mode` says. Required.
  ChannelCallback callback;
  CallbackMode mode = CallbackMode::kBatched;
  // Largest inbound packet accepted (Linux max_pkt_size: 4096 default, netvsc 4624).
  uint32_t max_packet_size = wire::kVmbusDefaultMaxPacketSize;
  // Raw mode (Linux uio_hv_generic): the rings belong to someone else (a user-space driver that
  // maps them through ring_gpn() / ring_page_count()). The inbound ring starts with
  // interrupt_mask = 1 (the host should not interrupt, the owner polls), `callback` and `mode`
  // are ignored, and after Open() the runtime never reads or writes the rings: host interrupts
  // are only counted.
  bool raw = false;
};

// Outcome of SendInband(): flow control (kFull) is not an error (style 1.9 #3).
enum class SendStatus : uint8_t {
  kOk,       // written and committed; the host was signalled if the ring had been empty
  kFull,     // no room now
  kInvalid,  // payload too large for the ring
  kCorrupt,  // the host corrupted the ring's read index: stop the channel
  kNotOpen,  // the channel is not open
};

// Per-channel counters (relaxed). Names are Linux's sysfs channel attributes
// (Documentation/ABI/stable/sysfs-bus-vmbus) where Linux has them.
struct ChannelStats {
  Counter interrupts;      // "interrupts": host->guest interrupts seen for this channel
  Counter events;          // "events": guest->host signals (SignalEvent) on this channel
  Counter callbacks;       // driver callback invocations
  Counter tasklet_yields;  // BATCHED tasklet runs that hit the time budget and rescheduled
  // BATCHED tasklet runs that stopped because the driver consumed nothing although the ring
  // holds data (a corrupt host ring, spec 9.4): the channel is left masked instead of spinning.
  Counter tasklet_stalls;
};

// A snapshot of every counter of a channel, including the ring counters.
struct ChannelCounters {
  uint64_t interrupts = 0;
  uint64_t events = 0;
  uint64_t intr_in_full = 0;    // inbound ring: signals to the host that space freed up
  uint64_t intr_out_empty = 0;  // outbound ring: commits that needed a signal
  uint64_t out_full_first = 0;
  uint64_t out_full_total = 0;
  uint64_t callbacks = 0;
  uint64_t tasklet_yields = 0;
  uint64_t tasklet_stalls = 0;
};

// Channels are created and shared-owned by the bus; a driver may keep one alive with
// shared_from_this() (see driver.h, "Lifetime and ordering contract").
class Channel : public std::enable_shared_from_this<Channel> {
 public:
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // ---- The offer (immutable) ----
  const wire::OfferChannel& offer() const { return offer_; }
  uint32_t relid() const { return offer_.child_relid; }
  uint16_t sub_channel_index() const { return offer_.sub_channel_index; }
  bool is_primary() const { return primary_; }
  const Guid& class_id() const { return offer_.if_type; }
  const Guid& instance_id() const { return offer_.if_instance; }
  // Guest->host event connection (opaque, from the offer; spec 1.1).
  uint32_t connection_id() const { return offer_.connection_id; }
  bool monitor_allocated() const { return offer_.MonitorAllocated(); }
  uint8_t monitor_id() const { return offer_.monitorid; }
  // The device this channel belongs to (the primary's device for a sub-channel). Valid while the
  // device's driver is bound; device_ref() for a reference that keeps it alive.
  VmbusDevice* device() const { return device_; }
  std::shared_ptr<VmbusDevice> device_ref() const { return device_ref_.lock(); }

  // ---- State ----
  ChannelState state() const EXCLUDES(mu_);
  bool rescinded() const { return rescinded_.load(std::memory_order_acquire); }
  // The vCPU the host interrupts for this channel (OPENCHANNEL target_vp, spec 7.7).
  uint32_t target_vcpu() const { return target_vcpu_.load(std::memory_order_acquire); }
  CallbackMode callback_mode() const { return mode_.load(std::memory_order_acquire); }

  // ---- Control (blocking; not from a vCPU thread) ----

  // Opens the channel (see the file comment). Errors: kInvalidArgument (bad sizes, userdata >
  // 120 bytes, no callback, called from a vCPU thread); kProtocol (not in state kOffered);
  // kUnavailable (rescinded, bus disconnected, host refused: M14 / M15); kResourceExhausted (no
  // guest pages); kTimeout (no OPENCHANNEL_RESULT / GPADL_CREATED in time).
  Status Open(const OpenParams& params) EXCLUDES(mu_);

  // Closes an open channel (see the file comment). Errors: kProtocol (not open);
  // kInvalidArgument (vCPU thread). Teardown problems are logged and counted, not returned:
  // the channel is closed on the guest side in any case (pages the host may still use are kept).
  Status Close() EXCLUDES(mu_);

  // Describes guest pages to the host for device use (netvsc receive/send buffers): one
  // page-aligned range (spec 2.9), handle from the bus counter, waits for GPADL_CREATED.
  // Errors: kInvalidArgument (no pages, > 8190 pages, a page outside guest RAM, vCPU thread);
  // kUnavailable (rescinded, disconnected, host refused: M15); kTimeout.
  Expected<uint32_t> EstablishGpadl(std::span<const uint64_t> pfns) EXCLUDES(mu_);
  // The pages of an allocator run.
  Expected<uint32_t> EstablishGpadl(const partition::PageRun& run) EXCLUDES(mu_);
  // A page-aligned, page-multiple byte range of guest RAM (kInvalidArgument otherwise).
  Expected<uint32_t> EstablishGpadl(std::span<const uint8_t> buffer) EXCLUDES(mu_);
  // GPADL_TEARDOWN and wait for GPADL_TORNDOWN. Errors: kNotFound (not a GPADL of this channel),
  // kUnavailable, kTimeout, kInvalidArgument (vCPU thread). The handle is forgotten in any case.
  Status TeardownGpadl(uint32_t handle) EXCLUDES(mu_);
  // GPADL handles established through EstablishGpadl() and not torn down.
  std::vector<uint32_t> gpadls() const EXCLUDES(mu_);

  // Moves the channel's interrupts to `vcpu` (spec 7.7). Before Open: just records it. While
  // open: MODIFYCHANNEL (needs >= 4.1; waits for MODIFYCHANNEL_RESPONSE only from 5.3, V8), then
  // the channel tasklet moves to the new vCPU. Errors: kInvalidArgument (vcpu out of range),
  // kUnsupported (< 4.1), kUnavailable (host refused / rescinded), kTimeout.
  Status SetTargetVcpu(uint32_t vcpu) EXCLUDES(mu_);

  // Changes how the callback is invoked (Linux set_channel_read_mode). Takes effect at the next
  // interrupt; meant to be set before Open() (OpenParams::mode does that).
  void SetCallbackMode(CallbackMode mode) { mode_.store(mode, std::memory_order_release); }

  // ---- Data path (channel open) ----
  ring::OutgoingRing& outbound() { return *outbound_; }
  ring::IncomingRing& inbound() { return *inbound_; }
  // HvCallSignalEvent on the offer's connection id (spec 1.7); counts "events". Call only when
  // a commit says the host needs a signal.
  void SignalHost();
  // Writes one DATA_INBAND packet, commits it, and signals only if CommitWrite() says so.
  SendStatus SendInband(std::span<const uint8_t> payload, uint64_t trans_id,
                        bool request_completion);
  // The softirq queue of the channel's target vCPU (bind the driver's NAPI to it).
  SoftirqQueue& softirq() const;
  // Guest RAM pages holding both rings while open: [guest->host ring | host->guest ring], one
  // contiguous run starting at GPN ring_gpn(), ring_page_count() pages (0 when not open). For
  // raw-mode owners (OpenParams::raw) that map the rings themselves.
  uint64_t ring_gpn() const { return ring_gpn_.load(std::memory_order_acquire); }
  uint64_t ring_page_count() const { return ring_page_count_.load(std::memory_order_acquire); }
  // Guest physical address of the guest->host monitor page the bus passed in INITIATE_CONTACT
  // (monitor_page2, spec 2.5): where a raw-mode owner sets this channel's monitor bit
  // (monitor_id()) to signal the host. 0 before the bus connected.
  uint64_t guest_to_host_monitor_page_gpa() const;

  // ---- Counters ----
  const ChannelStats& stats() const { return stats_; }
  ChannelCounters counters() const EXCLUDES(mu_);

 private:
  friend class internal::BusImpl;

  Channel(BusCore& core, const wire::OfferChannel& offer, bool primary, uint32_t target_vcpu);

  // ISR dispatch (vCPU thread, inside its critical section).
  void OnInterrupt();
  // The channel tasklet (spec 7.5).
  void RunTasklet();
  // Stops callbacks and waits until no vCPU is running them.
  void StopCallbacks();
  // Tears the GPADL down (post + wait).
  // Errors: kTimeout (the host never confirmed: its pages must not be reused), kUnavailable
  // (rescinded / host gone: the host released it anyway), posting errors.
  Status DoTeardown(uint32_t handle);
  // The body of Close() once the state is kClosing: stop callbacks, CLOSECHANNEL, ring GPADL
  // teardown, free or keep the ring pages.
  // `send_close` false when the channel never opened (Open failed after the GPADL).
  void CloseLocked(bool talk_to_host, bool send_close) EXCLUDES(mu_);
  Expected<uint32_t> DoEstablishGpadl(std::span<const uint64_t> pfns);
  // Releases everything the guest holds for this channel (rescind/disconnect path): closes it if
  // open, tears down driver GPADLs. `talk_to_host` false when the host is gone.
  void Shutdown(bool talk_to_host) EXCLUDES(mu_);
  void MarkRescinded() { rescinded_.store(true, std::memory_order_seq_cst); }
  // Cuts the channel loose from the vCPU queues (released channel, bus shutdown): objects the
  // user still holds may outlive the bus's threads.
  void Detach();
  void MarkReleased() EXCLUDES(mu_);
  void set_device(const std::shared_ptr<VmbusDevice>& device) {
    device_ = device.get();
    device_ref_ = device;
  }
  // True for the first caller only: the bus releases a channel once (a rescind and a removal may
  // race to do it).
  bool ClaimRelease() { return !release_claimed_.exchange(true, std::memory_order_acq_rel); }
  // Accumulates the ring counters before the rings go away (Close).
  void SaveRingCounters() REQUIRES(mu_);
  Status CheckControlContext() const;

  BusCore& core_;
  const wire::OfferChannel offer_;
  const bool primary_;
  // Set once, before the channel is visible to drivers or bus workers. Weak: the device owns
  // its channels.
  VmbusDevice* device_ = nullptr;
  std::weak_ptr<VmbusDevice> device_ref_;
  std::atomic<bool> release_claimed_{false};

  // Serialises the blocking control operations (Open, Close, SetTargetVcpu, Shutdown); taken
  // before mu_. Never held by the message path, so a rescind can wake a blocked Open (M12).
  std::mutex control_mu_;
  mutable std::mutex mu_;
  ChannelState state_ GUARDED_BY(mu_) = ChannelState::kOffered;
  std::vector<uint32_t> gpadls_ GUARDED_BY(mu_);
  std::vector<partition::PageRun> leaked_ GUARDED_BY(mu_);  // pages the host may still use
  ChannelCounters saved_ GUARDED_BY(mu_);

  // Set by Open() before callbacks are armed, reset by Close() after they are stopped; read by
  // the ISR/tasklet only while callbacks_enabled_ is true.
  partition::PageRun ring_pages_;
  uint32_t ring_gpadl_ = 0;
  std::optional<ring::OutgoingRing> outbound_;
  std::optional<ring::IncomingRing> inbound_;
  ChannelCallback callback_;

  std::atomic<uint64_t> ring_gpn_{0};
  std::atomic<uint64_t> ring_page_count_{0};
  std::atomic<bool> callbacks_enabled_{false};
  std::atomic<bool> rescinded_{false};
  std::atomic<CallbackMode> mode_{CallbackMode::kBatched};
  std::atomic<uint32_t> target_vcpu_;
  Tasklet tasklet_;
  ChannelStats stats_;
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_CHANNEL_H_
