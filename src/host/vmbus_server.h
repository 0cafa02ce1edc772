// File: host/vmbus_server.h
//
// What: `VmbusServer`, the host side of one guest's VMBus connection: an explicit, synchronous
// state machine over the channel-management protocol, driven by the guest's PostMessage
// hypercalls (it implements partition::HostPartition::Handler) and by the host (AddDevice,
// RescindDevice, device requests). It owns the guest's devices, their channels, and the GPADLs
// the guest created.
//
//   connection:  Disconnected --INITIATE_CONTACT ok--> Connected --UNLOAD--> Unloading
//                     ^                                                        |
//                     +-------------------- all closes done, UNLOAD_RESPONSE --+
//                (any) --guest hang-up--> Gone
//   channel:     Offered --OPENCHANNEL ok--> Open --CLOSECHANNEL--> Closing --done--> Offered
//                   |   (Opening while the device's Open() runs)    | OPENCHANNEL: remembered
//                   |                                               v  and performed after
//                   +--rescind--> Rescinded <--rescind-- Open/Closing    the close (spec 2.8)
//                                     | RELID_RELEASED
//                                     v  (relid free, channel gone)
//
// Every message is parsed with wire::ParseChannelMessage(..., kGuestToHost) from the
// partition's private copy (spec 9.1 G1); every rejection is counted in a named counter
// (Rejection), logged rate-limited, and answered the way spec 9.3 says (GPADL_CREATED /
// OPENCHANNEL_RESULT / MODIFYCHANNEL_RESPONSE with a failure status, VERSION_RESPONSE with
// version_supported = 0) or dropped. Host->guest messages go through
// HostPartition::PostToGuest (slot/pending/EOM is the partition's job) to the VP named by
// INITIATE_CONTACT (>= 3.0; VP 0 before).
//
// Decisions where the spec leaves room:
//   * versions: exact matches of 2.4, 3.0, 4.0, 4.1, 5.0, 5.1, 5.2, 5.3 (capped by
//     ServerOptions::max_version); < 5.0 must arrive on connection 1, >= 5.0 on connection 4;
//     msg_conn_id = 1 for >= 5.0, the version itself below (spec 10.1 V1, OpenVMM).
//   * an invalid INITIATE_CONTACT (H4, H5, bad target VP / SINT / VTL) is answered with
//     version_supported = 0 and connection_state FAILED_UNKNOWN_FAILURE, so a guest never hangs.
//   * offers: relids dense from 1, connection_id = relid | 0x2000 (V6), is_dedicated_interrupt
//     1; 6.0-only offer flags cleared (V5). Monitors (spec 1.5): channels of a device whose
//     OfferParams::monitored is set get monitor_allocated 1 and a monitor id unique in this
//     connection (lowest free of 0..127) when INITIATE_CONTACT's monitor_page2 is a page of guest
//     RAM; the partition polls that page while such a channel is open and rings the channel's
//     doorbell for its bit. Everything else: monitor_allocated 0 / monitorid 0xFF (V7).
//   * closing a primary channel rescinds its sub-channels (Linux vmbus_close() expects the host
//     to; a reopened primary asks for fresh ones, spec 7.8).
//   * GPADL teardown is answered at once; an open channel keeps the pages it uses mapped
//     (GpadlView pins) until it is closed.
//
// Spec: vmbus-protocol.md 1.3-1.7, 2.1-2.10, 9.3 H1-H23, 10.1 V1-V9.
// OpenVMM: vm/devices/vmbus/vmbus_server/src/channels.rs (ChannelState, Notifier, the
//       synchronous server), lib.rs. Linux (guest side it must satisfy): drivers/hv/connection.c,
//       channel_mgmt.c, channel.c.
// Thread-safety: all public methods are thread-safe. Two locks: the control lock serialises
// every operation that changes channel state or calls device callbacks (guest messages,
// AddDevice, RescindDevice, CompleteClose, disconnect); the state lock guards the tables and is
// released around device callbacks, so DeviceControl::OfferSubchannels (state lock only) works
// from any thread, including a worker that a device's Close() waits for. Lock order:
// control -> state.
#ifndef UVMBUS_HOST_VMBUS_SERVER_H_
#define UVMBUS_HOST_VMBUS_SERVER_H_

#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "host/device.h"
#include "host/gpadl_view.h"
#include "host/host_channel.h"
#include "partition/host_partition.h"
#include "wire/channel_messages.h"
#include "wire/gpa_range.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace uvmbus::host {

// The relid space (spec 1.4): 1..2047.
inline constexpr uint32_t kMaxRelid = wire::kMaxChannelRelids - 1;
// connection_id = relid | (SINT 2 << 12), OpenVMM's scheme for VTL0 (spec 1.1, 10.1 V6).
inline constexpr uint32_t kOfferConnectionIdBase = 0x2000;
// GPADLs one guest may have in progress at once (a Linux guest has one; spec 9.1 G4).
inline constexpr size_t kMaxGpadlsInProgress = 64;
// The host's message connection id handed out as msg_conn_id for >= 5.0.
inline constexpr uint32_t kServerMessageConnectionId = wire::kVmbusMessageConnectionId;

// The versions this server accepts (exact matches only, spec 2.5 / 10.1 V3), newest first.
inline constexpr std::array<uint32_t, 8> kSupportedVersions = {
    wire::kVersionWin10V5_3, wire::kVersionWin10V5_2, wire::kVersionWin10V5_1,
    wire::kVersionWin10V5,   wire::kVersionWin10V4_1, wire::kVersionWin10,
    wire::kVersionWin8_1,    wire::kVersionWin8,
};

// Why a guest message (or part of it) was refused. One counter each; tests check the exact one.
enum class Rejection : uint8_t {
  kUnknownPort,          // posted to a connection id the server does not listen on
  kBadMessageType,       // SynIC message type other than 1 (VMBus)
  kMalformed,            // ParseChannelMessage failed (H2, M2-M5 host side)
  kNotConnected,         // anything but INITIATE_CONTACT before the connection (H1)
  kNotValidForVersion,   // type not allowed at the negotiated version / features (H1)
  kUnsupported,          // valid but not implemented (reserved channels, hv_sock, ...)
  kAlreadyConnected,     // INITIATE_CONTACT while connected
  kVersionRefused,       // unsupported version or wrong connection id for it (H3)
  kBadInitiateContact,   // monitor pages (H4), interrupt page (H5), target VP/SINT/VTL
  kDuplicateRequestOffers,  // second REQUESTOFFERS (H7)
  kGpadlBadChannel,      // GPADL_HEADER for an unknown / rescinded channel (H8)
  kGpadlDuplicateHandle,  // handle already used on the channel or in progress (H9)
  kGpadlBodyUnknown,     // GPADL_BODY for an unknown / completed handle (H10)
  kGpadlInvalidRanges,   // range validation failed (H11-H14)
  kGpadlBadPages,        // a PFN outside guest RAM, or the view could not be mapped
  kGpadlLimit,           // too many GPADLs for this guest (G4)
  kGpadlTeardownInvalid,  // teardown of unknown / other channel's / in-progress GPADL (H16)
  kOpenUnknownChannel,   // OPENCHANNEL for an unknown relid (H17)
  kOpenAlreadyOpen,      // OPENCHANNEL while open / opening / a reopen already queued (H17)
  kOpenRescinded,        // OPENCHANNEL for a rescinded channel (ignored, spec 2.7)
  kOpenBadRingGpadl,     // ring GPADL unknown, not one page-aligned range (H19)
  kOpenBadDownstreamOffset,  // downstream offset 0 / too large, a ring < 2 pages (H20)
  kOpenBadTargetVp,      // target_vp is not a VP of the partition (and not 0xFFFFFFFF)
  kOpenFailed,           // doorbell / ring attach / device Open() failed
  kCloseNotOpen,         // CLOSECHANNEL for a channel that is not open (H22)
  kModifyNotOpen,        // MODIFYCHANNEL on a channel that is not open (H23)
  kModifyBadTargetVp,    // MODIFYCHANNEL to a VP that does not exist
  kRelidReleaseInvalid,  // RELID_RELEASED for a channel that was not rescinded
  kSignalWithoutDoorbell,  // slow-path SignalEvent for a connection with no open channel
  kSendFailed,           // PostToGuest failed (guest not consuming: queue full)
  kCount,
};
inline constexpr size_t kRejectionCount = static_cast<size_t>(Rejection::kCount);

// Stable snake_case counter name ("gpadl_bad_channel", ...).
std::string_view RejectionName(Rejection r);

struct ServerOptions {
  // Highest version accepted (a lower cap makes the guest fall back, spec 2.5).
  uint32_t max_version = wire::kVersionWin10V5_3;
  // Created plus in-progress GPADLs one guest may hold (spec 9.1 G4; every non-contiguous GPADL
  // costs mappings, bounded by vm.max_map_count).
  size_t max_gpadls = 1024;
  // Name for logs ("guest <name>").
  std::string log_name = "vmbus";
};

// Identifies a device inside one server (AddDevice's result).
using DeviceId = uint64_t;

// Snapshots (plain structs; host_service.h turns them into JSON with sysfs names).
struct ChannelInfo {
  uint32_t relid = 0;
  uint16_t sub_channel_index = 0;
  uint32_t connection_id = 0;
  std::string state;          // "offered", "opening", "open", "closing", "rescinded"
  bool open = false;          // stats are meaningful only when open
  ChannelStats stats;
};
struct DeviceInfo {
  DeviceId id = 0;
  std::string name;
  Guid class_id;
  Guid instance_id;
  uint32_t primary_relid = 0;  // 0 while not offered
  uint16_t max_subchannels = 0;
  bool rescinded = false;
  std::vector<ChannelInfo> channels;  // ordered by relid
  nlohmann::json inspect;             // Device::InspectJson() (null when it has nothing)
};
struct ServerSnapshot {
  partition::PeerInfo peer;
  std::string state;          // "disconnected", "connected", "unloading", "gone"
  uint32_t version = 0;       // negotiated version (0 when not connected)
  uint32_t target_vcpu = 0;
  bool offers_requested = false;
  size_t gpadls = 0;
  size_t gpadls_in_progress = 0;
  std::vector<DeviceInfo> devices;
  std::vector<std::pair<std::string, uint64_t>> rejections;  // non-zero counters only
  uint64_t messages_received = 0;
  uint64_t messages_sent = 0;
  partition::HostPartitionStats partition;
};

class VmbusServer final : public partition::HostPartition::Handler {
 public:
  // `partition` must outlive the server; the caller Start()s the partition with this server as
  // its handler (and Stop()s it before destroying the server).
  explicit VmbusServer(partition::HostPartition* partition, ServerOptions options = {});
  // Releases everything still held (device Close() for open channels, GPADL views, doorbells),
  // then destroys the devices. Must not run inside a partition callback.
  ~VmbusServer() override;
  VmbusServer(const VmbusServer&) = delete;
  VmbusServer& operator=(const VmbusServer&) = delete;

  // Adds a device. Before REQUESTOFFERS it is offered with the others; after it, it is offered
  // at once (hot add, spec 2.7). Install() is called before this returns.
  DeviceId AddDevice(std::unique_ptr<Device> device);

  // Removes a device (spec 2.7): RESCIND_CHANNELOFFER for each of its offered channels (open ones
  // are closed in the device first); the device is destroyed once the guest released every relid
  // (RELID_RELEASED), or at once if it was never offered. Errors: kNotFound.
  Status RescindDevice(DeviceId id);
  // Rescinds every device (server shutdown: "rescind and drain").
  void RescindAll();
  // True when no channel is offered any more (every rescinded relid was released) or the guest
  // is gone: what Shutdown() waits for.
  bool Drained() const;

  // Releases everything the guest had as if it had hung up (no messages are sent).
  void ReleaseAll();

  // ---- partition::HostPartition::Handler ----
  wire::HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                               std::span<const uint8_t> payload) override;
  wire::HvStatus OnSignalEvent(uint32_t connection_id) override;
  void OnDisconnect() override;

  // ---- Introspection ----
  ServerSnapshot Snapshot() const;
  uint64_t rejections(Rejection r) const { return rejections_[static_cast<size_t>(r)].Get(); }
  uint64_t total_rejections() const;
  // Negotiated version, 0 when not connected.
  uint32_t version() const;
  bool connected() const;
  size_t gpadl_count() const;
  size_t channel_count() const;       // offered channels, any state
  size_t open_channel_count() const;  // channels holding a HostChannel (open/opening/closing)
  size_t device_count() const;

 private:
  // ---- connection states (style 1.9 #9) ----
  struct Disconnected {};
  struct Connected {
    uint32_t version = 0;
    uint32_t target_vcpu = 0;
    bool offers_requested = false;
    bool monitor_page = false;  // monitor_page2 accepted by the partition: monitors may be offered
  };
  struct Unloading {
    uint32_t version = 0;
    uint32_t target_vcpu = 0;
  };
  struct Gone {};
  using ConnectionState = std::variant<Disconnected, Connected, Unloading, Gone>;

  // ---- channel states ----
  enum class CloseReason : uint8_t { kGuest, kRescind, kUnload, kRelease };
  struct ChOffered {};
  struct ChOpening {
    uint32_t openid = 0;
    std::unique_ptr<HostChannel> channel;
  };
  struct ChOpen {
    uint32_t openid = 0;
    std::unique_ptr<HostChannel> channel;
  };
  struct ChClosing {
    std::unique_ptr<HostChannel> channel;
    CloseReason reason = CloseReason::kGuest;
    bool rescinded = false;                   // RESCIND sent meanwhile
    bool released = false;                    // RELID_RELEASED arrived meanwhile
    std::optional<wire::OpenChannel> reopen;  // OPENCHANNEL received while closing (H18)
  };
  struct ChRescinded {};
  using ChannelState = std::variant<ChOffered, ChOpening, ChOpen, ChClosing, ChRescinded>;

  class DeviceEntry;
  struct Channel {
    uint32_t relid = 0;
    uint16_t sub_channel_index = 0;
    uint32_t connection_id = 0;
    uint32_t monitor_id = wire::kNoMonitorId;  // 0..127 when offered with a monitor
    DeviceEntry* device = nullptr;
    ChannelState state;
  };
  struct InProgressGpadl {
    uint32_t child_relid;
    wire::GpadlAssembler assembler;
  };

  using Lock = std::unique_lock<std::mutex>;

  // ---- guest message handlers (control + state lock held; may drop the state lock around
  // device callbacks) ----
  void Dispatch(Lock& lock, uint32_t connection_id, const wire::ChannelMessage& msg)
      REQUIRES(control_mu_);
  void HandleInitiateContact(uint32_t connection_id, const wire::InitiateContact& msg)
      REQUIRES(control_mu_, mu_);
  void HandleRequestOffers() REQUIRES(control_mu_, mu_);
  void HandleGpadlHeader(const wire::GpadlHeaderMessage& msg) REQUIRES(control_mu_, mu_);
  void HandleGpadlBody(const wire::GpadlBodyMessage& msg) REQUIRES(control_mu_, mu_);
  void HandleGpadlTeardown(const wire::GpadlTeardown& msg) REQUIRES(control_mu_, mu_);
  void HandleOpenChannel(Lock& lock, const wire::OpenChannel& msg) REQUIRES(control_mu_);
  void HandleCloseChannel(Lock& lock, uint32_t relid) REQUIRES(control_mu_);
  void HandleModifyChannel(Lock& lock, const wire::ModifyChannel& msg) REQUIRES(control_mu_);
  void HandleRelidReleased(uint32_t relid) REQUIRES(control_mu_, mu_);
  void HandleUnload(Lock& lock) REQUIRES(control_mu_);

  // ---- transitions ----
  void FinishGpadl(uint32_t handle, InProgressGpadl gpadl) REQUIRES(mu_);
  void OpenChannelNow(Lock& lock, Channel& ch, const wire::OpenChannel& msg)
      REQUIRES(control_mu_);
  void BeginClose(Lock& lock, Channel& ch, CloseReason reason) REQUIRES(control_mu_);
  void FinishClose(Lock& lock, Channel& ch) REQUIRES(control_mu_);
  void RescindChannel(Lock& lock, Channel& ch) REQUIRES(control_mu_);
  void RescindSubchannels(Lock& lock, DeviceEntry& device) REQUIRES(control_mu_);
  void ReleaseChannel(uint32_t relid) REQUIRES(mu_);
  void MaybeFinishUnload() REQUIRES(mu_);
  void ReleaseEverything(Lock& lock, Lock& control) REQUIRES(control_mu_);
  void WaitForPendingCloses(Lock& control);
  Status OfferDevice(DeviceEntry& device) REQUIRES(mu_);
  Expected<uint32_t> OfferChannel(DeviceEntry& device, uint16_t sub_channel_index) REQUIRES(mu_);
  void CollectDeadDevices() REQUIRES(mu_);
  void DestroyGraveyard(Lock& lock);

  // ---- device requests ----
  Expected<uint16_t> OfferSubchannels(DeviceEntry& device, uint16_t count);
  void CompleteClose(DeviceEntry& device, HostChannel& channel);
  Expected<std::shared_ptr<GpadlView>> LookupGpadl(uint32_t relid, uint32_t handle) const;

  // ---- helpers ----
  // Encodes and posts `msg` to `vp` (Send: to the connection's message VP). Nothing after the
  // guest is gone; a failed post is counted (kSendFailed).
  template <typename T>
  void SendTo(uint32_t vp, const T& msg) REQUIRES(mu_);
  template <typename T>
  void Send(const T& msg) REQUIRES(mu_);
  template <typename... Args>
  void Reject(Rejection r, fmt::format_string<Args...> format, Args&&... args);
  Channel* FindChannel(uint32_t relid) REQUIRES(mu_);
  const Connected* connection() const REQUIRES(mu_);
  Connected* connection() REQUIRES(mu_);
  uint32_t message_vp() const REQUIRES(mu_);
  Expected<uint32_t> AllocateRelid() REQUIRES(mu_);
  // Lowest free monitor id for `relid`, or kNoMonitorId when all 128 are taken.
  uint32_t AllocateMonitorId(uint32_t relid) REQUIRES(mu_);
  // Frees every monitor id and stops the partition's polling (UNLOAD done, guest gone).
  void ReleaseMonitors() REQUIRES(mu_);
  bool VpValid(uint32_t vp) const;
  ChannelInfo DescribeChannel(const Channel& ch) const REQUIRES(mu_);

  partition::HostPartition* const partition_;
  const ServerOptions options_;

  // Lock order: control_mu_, then mu_.
  mutable std::mutex control_mu_;
  mutable std::mutex mu_;
  std::condition_variable closes_cv_;  // pending_closes_ reached 0 (waits on control_mu_)

  ConnectionState state_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<DeviceEntry>> devices_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<DeviceEntry>> graveyard_ GUARDED_BY(mu_);  // destroyed unlocked
  DeviceId next_device_id_ GUARDED_BY(mu_) = 1;
  std::map<uint32_t, std::unique_ptr<Channel>> channels_ GUARDED_BY(mu_);  // by relid
  std::array<bool, wire::kMaxChannelRelids> relid_used_ GUARDED_BY(mu_){};
  // Monitor id -> relid of the channel offered with it (0: free); per guest connection.
  std::array<uint32_t, wire::kMaxMonitorId + 1> monitor_relid_ GUARDED_BY(mu_){};
  std::map<uint32_t, InProgressGpadl> gpadls_in_progress_ GUARDED_BY(mu_);  // by handle
  std::map<std::pair<uint32_t, uint32_t>, std::shared_ptr<GpadlView>> gpadls_
      GUARDED_BY(mu_);  // by (relid, handle)
  size_t pending_closes_ GUARDED_BY(mu_) = 0;

  std::array<Counter, kRejectionCount> rejections_{};
  Counter messages_received_;
  Counter messages_sent_;
};

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_VMBUS_SERVER_H_
