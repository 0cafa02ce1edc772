// File: partition/host_partition.h
//
// What: the host's view of one connected guest, i.e. what the VMBus server (host/) is built on:
// bounds-checked access to the guest's RAM by page number, SynIC message delivery into the guest's
// SINT2 slots (with pending/EOM), channel event signalling (event-flag bit + interrupt), doorbells
// for the guest's SignalEvent (the ioeventfd analogue), and a `Handler` the server implements to
// receive the guest's hypercalls; guest RAM of several regions (AddRamRegion) and the
// hypervisor's polling of the guest's monitor page (spec 1.5, MonitorPoller: a monitor bit rings
// the same doorbell as SignalEvent). Implementations: LocalPartition (same process),
// the socket partition created by SocketHost. The SynIC logic is SynicEmulator, shared by both.
//
// Lifecycle: created connected but idle. Start(handler) begins delivering guest requests to the
// handler. When the guest goes away, connected() turns false, the guest's RAM is released
// (GuestRam::Revoke: GuestPages() fails with kUnavailable; spans still held stay dereferenceable
// but no longer reach the guest: reads see zeros, writes are discarded), then
// Handler::OnDisconnect() runs (once, the last callback). Stop() ends callbacks without
// OnDisconnect. Destroy the partition from a thread that is not inside a handler callback.
//
// Spec: vmbus-protocol.md 1.3 (host must never overwrite an occupied slot, set msg_pending, deliver
//       on EOM), 1.4 (event bits, relid 1..2047), 1.7 (HvCallPostMessage/HvCallSignalEvent as
//       seen by the host; "Host-side equivalent").
// Linux/OpenVMM: OpenVMM vm/devices/vmbus/vmbus_server (SynicPortAccess, GuestEventPort), KVM
//       hyperv.c; QEMU hw/hyperv/hyperv.c (hyperv_post_msg, hyperv_set_event_flag).
// Thread-safety: all public methods are thread-safe. Handler callbacks of one partition are never
// concurrent with each other (one control thread, or serialised); they may call any method of this
// partition except Stop() and the destructor. SignalGuest() is lock-free (data path).
#ifndef UVMBUS_PARTITION_HOST_PARTITION_H_
#define UVMBUS_PARTITION_HOST_PARTITION_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "partition/doorbell.h"
#include "partition/guest_ram.h"
#include "partition/monitor_poller.h"
#include "partition/synic_emulator.h"
#include "wire/synic.h"

namespace uvmbus::partition {

// Who the guest is (for logs and `uvmbus ls`).
struct PeerInfo {
  std::string name;  // guest-chosen name from HELLO (printable ASCII), "local" for local
  pid_t pid = 0;     // SO_PEERCRED (own pid for local)
  uid_t uid = 0;
  gid_t gid = 0;
  std::string transport;  // "local" or "socket"
};

// Snapshot of a HostPartition's counters.
struct HostPartitionStats {
  uint64_t messages_posted = 0;     // guest->host PostMessage hypercalls received
  uint64_t messages_delivered = 0;  // host->guest messages written into a SIMP slot
  uint64_t messages_queued = 0;     // host->guest messages that found the slot busy
  uint64_t messages_dropped = 0;    // host->guest messages refused: vCPU queue full
  uint64_t eoms = 0;                // guest EOM writes
  uint64_t interrupts_raised = 0;   // vCPU interrupts raised
  uint64_t events_signalled = 0;    // SignalGuest calls that set a clear bit
  uint64_t events_coalesced = 0;    // SignalGuest calls that found the bit set (no interrupt)
  uint64_t guest_signals_slow = 0;  // guest SignalEvent requests over the control path
  uint64_t bad_requests = 0;        // malformed guest requests (counted, answered or dropped)
  uint64_t ram_regions = 0;            // extra guest RAM regions added (AddRamRegion)
  uint64_t ram_regions_rejected = 0;   // AddRamRegion calls refused
  uint64_t ram_bad_accesses = 0;       // guest page lookups outside every region / across one
  uint64_t monitor_polls = 0;          // polls of the guest's monitor page (spec 1.5)
  uint64_t monitor_hits = 0;           // monitor bits that rang a channel's doorbell
  uint64_t monitor_spurious = 0;       // monitor bits for no armed monitor / no doorbell
};

class HostPartition {
 public:
  // Implemented by the VMBus server. Called on the partition's control thread (socket) or the
  // calling guest thread (local), never concurrently for one partition.
  class Handler {
   public:
    virtual ~Handler() = default;
    // The guest's HvCallPostMessage. Inputs are already checked as the hypervisor would
    // (wire::CheckPostMessageInput); the payload is a private copy (<= 240 bytes) valid for the
    // call. Return the hypercall status: kSuccess, kInvalidConnectionId (no such port),
    // kInsufficientBuffers (transient), ...
    virtual wire::HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                                         std::span<const uint8_t> payload) = 0;
    // The guest's HvCallSignalEvent for a connection id that has no Doorbell (slow path). Ids that
    // do have one are routed to it by the partition and never reach the handler. Return kSuccess
    // or kInvalidConnectionId.
    virtual wire::HvStatus OnSignalEvent(uint32_t connection_id) = 0;
    // The guest went away (socket hang-up, process death, LocalPartition::Disconnect). Last
    // callback. The guest RAM is already released when it runs (see the lifecycle above): tear
    // down the guest's channels and stop the data workers that used its memory.
    virtual void OnDisconnect() = 0;
  };

  virtual ~HostPartition();
  HostPartition(const HostPartition&) = delete;
  HostPartition& operator=(const HostPartition&) = delete;

  // Starts delivering guest requests to `handler` (must outlive the partition or Stop()). Guest
  // requests made before Start() wait (socket) or fail with kInvalidPortId (local).
  // Errors: kInvalidArgument (null), kAlreadyExists (started twice).
  virtual Status Start(Handler* handler) = 0;
  // Stops callbacks and joins the control thread; no OnDisconnect. Idempotent. Called from inside
  // a handler callback it takes effect when that callback returns (nothing is joined then; the
  // destructor, on another thread, joins). After Stop() the guest's requests are no longer
  // answered: destroy the partition next (the guest then sees a hang-up).
  virtual void Stop() = 0;

  // Registers a doorbell for `connection_id`: from now on the guest's SignalEvent(connection_id)
  // makes the returned Doorbell's fd readable instead of calling Handler::OnSignalEvent. The
  // guest learns about it asynchronously; until then its signals take the slow path and are
  // routed to the same Doorbell, so no signal is lost in between.
  // Errors: kInvalidArgument (reserved bits 24-31 set), kAlreadyExists, kResourceExhausted
  // (kMaxDoorbells), kUnavailable (guest gone), kIo.
  virtual Expected<Doorbell> CreateDoorbell(uint32_t connection_id) = 0;

  // `count` pages of guest RAM at guest page number `gpn`: the ONLY way the host follows a guest
  // page number. Errors: kInvalidArgument (count 0), kMalformed (out of range, overflow-safe),
  // kUnavailable (guest gone).
  Expected<std::span<uint8_t>> GuestPages(uint64_t gpn, uint64_t count) const {
    return ram_.Pages(gpn, count);
  }
  uint64_t guest_page_count() const { return ram_.page_count(); }
  uint32_t vcpu_count() const { return synic_.vcpu_count(); }

  // Adds an extra guest RAM region: `size` bytes of the sealed memfd `fd` at guest physical
  // address `gpa_base` (GuestRam::AddRegion has the rules; refusals are counted). The socket
  // partition calls it for the guest's RAM_REGION_ADD; with LocalPartition the owner calls it
  // directly. GuestPages() resolves pages in every region from then on.
  // Errors: those of GuestRam::AddRegion; kUnavailable once the guest is gone.
  Status AddRamRegion(UniqueFd fd, uint64_t gpa_base, uint64_t size);

  // ---- Monitored notification (spec 1.5): the hypervisor's polling of the guest's
  // child->parent monitor page, see MonitorPoller. ----
  // Sets the guest's monitor page (INITIATE_CONTACT monitor_page2). Errors: kInvalidArgument
  // (not page-aligned), kMalformed (not inside guest RAM), kUnavailable (guest gone). 0 or a
  // refused page leaves polling off.
  Status SetMonitorPage(uint64_t gpa);
  // Forgets the page and every armed monitor (UNLOAD, disconnect); polling stops.
  void ClearMonitors();
  // Monitor `monitor_id` (0..127) rings the doorbell of `connection_id` (registered with
  // CreateDoorbell) when the guest sets its pending bit. Errors: kInvalidArgument, kIo.
  Status ArmMonitor(uint32_t monitor_id, uint32_t connection_id);
  void DisarmMonitor(uint32_t monitor_id);
  // True while the partition polls a monitor page (a page is set and a monitor is armed).
  bool monitor_polling() const;

  // Sends a VMBus channel message (SynIC message type 1) to `vcpu`'s SINT2 slot (spec 1.3): written
  // if the slot is free, else queued (bounded) with msg_pending set; delivered in order; the vCPU
  // interrupt is raised after each delivery.
  // Errors: kInvalidArgument (vcpu >= vcpu_count(), payload empty or > 240 bytes),
  // kResourceExhausted (queue full: the guest is not consuming; counted as a drop),
  // kUnavailable (guest gone).
  Status PostToGuest(uint32_t vcpu, std::span<const uint8_t> payload);

  // Signals channel `relid` to `vcpu` (spec 1.4/1.7 host side): atomic OR of bit relid in area 2
  // of the vCPU's event page; the interrupt is raised only if the bit was clear. Lock-free, no
  // allocation on success. After the guest went away it is harmless (the RAM is revoked).
  // Errors: kInvalidArgument (vcpu out of range, relid 0 or >= 2048).
  Status SignalGuest(uint32_t vcpu, uint32_t relid);

  // True until the guest went away.
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  const PeerInfo& peer() const { return peer_; }
  HostPartitionStats stats() const;

 protected:
  // `pages[v]` must be spans of `ram`; `interrupts[v]` the vCPUs' interrupt eventfds.
  HostPartition(GuestRam ram, std::vector<SynicEmulator::VcpuPages> pages,
                std::vector<UniqueFd> interrupts, PeerInfo peer, size_t queue_depth);

  // ---- For implementations (all thread-safe) ----

  // Dispatches a guest PostMessage: checks the input like the hypervisor, counts it, calls the
  // handler (which the caller guarantees is not running concurrently).
  wire::HvStatus DispatchPostMessage(Handler* handler, uint32_t connection_id,
                                     uint32_t message_type, std::span<const uint8_t> payload);
  // Dispatches a guest slow-path SignalEvent: rings the doorbell if one exists, else the handler.
  wire::HvStatus DispatchSignalEvent(Handler* handler, uint32_t connection_id,
                                     uint16_t flag_number);
  // A guest EOM on `vcpu` (ignored if out of range, counted as a bad request).
  void DispatchEndOfMessage(uint32_t vcpu);
  // The guest went away: once, marks disconnected, revokes the RAM, calls handler->OnDisconnect()
  // (if non-null).
  void DispatchDisconnect(Handler* handler);

  // Host-side doorbell bookkeeping shared by both implementations: creates the eventfd, records
  // it (for DispatchSignalEvent), returns the host's Doorbell plus a dup for the guest side.
  // `on_remove` is called (under the registry lock: it must not call back into the partition's
  // doorbell functions) when that Doorbell is destroyed while the partition still lives; it tells
  // the guest side (local table / DOORBELL_REMOVE message).
  struct NewDoorbell {
    Doorbell doorbell;
    UniqueFd guest_fd;
  };
  Expected<NewDoorbell> RegisterDoorbell(uint32_t connection_id);
  // Sets the removal hook; call once from the implementation's constructor.
  void SetDoorbellRemoveHook(std::function<void(uint32_t connection_id)> on_remove);
  // Detaches the registry (later Doorbell destructions only close). Call first in the
  // implementation's destructor, before the state the hook uses is torn down.
  void DetachDoorbells();

  Counter& bad_requests() { return bad_requests_; }
  // Stops the monitor poller's thread (joins it). Implementations call it first in their
  // destructor; DispatchDisconnect calls it too.
  void StopMonitors();

 private:
  // Creates the poller on first use (a guest that never arms a monitor costs no thread).
  MonitorPoller* Monitors();
  class EventfdSink;
  class DoorbellRegistry;
  GuestRam ram_;
  std::unique_ptr<EventfdSink> sink_;
  SynicEmulator synic_;
  PeerInfo peer_;
  std::shared_ptr<DoorbellRegistry> doorbells_;
  mutable std::mutex monitor_mu_;
  std::unique_ptr<MonitorPoller> monitors_ GUARDED_BY(monitor_mu_);
  bool monitors_stopped_ GUARDED_BY(monitor_mu_) = false;
  std::atomic<bool> connected_{true};
  std::once_flag disconnect_once_;
  Counter messages_posted_;
  Counter guest_signals_slow_;
  Counter bad_requests_;
};

}  // namespace uvmbus::partition

#endif  // UVMBUS_PARTITION_HOST_PARTITION_H_
