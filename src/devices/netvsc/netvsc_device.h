// File: devices/netvsc/netvsc_device.h
//
// What: `NetvscDevice`, one synthetic NIC as netvsc drives it: the implementation of NetDevice
// plus everything Linux keeps in struct netvsc_device / rndis_device / net_device_context.
// Its code is split the way Linux splits hv_netvsc:
//   netvsc.cc         the NVSP layer: channel open (HV_CALL_ISR, ring sizes, max packet 4624),
//                     NVSP version negotiation, NDIS config/version, receive and send buffers,
//                     the data path (transmit through send sections or GPA-direct bounce slots,
//                     NAPI receive, completions both ways), the send indirection table;
//   rndis_filter.cc   RNDIS control: INITIALIZE, OID queries and sets, offloads, RSS, the
//                     sub-channel handshake, received RNDIS messages (data, completions, status);
//   netvsc_device.cc  bring-up order, removal order, the NetDevice API, link state.
//
// Bring-up (Start(), spec 5.7 and 7.8; Linux netvsc_probe -> rndis_filter_device_add):
//   queue 0 (NAPI) -> open the primary channel (kIsr, config ring sizes, max packet 4624) ->
//   NVSP INIT 6.1, 6.0, 5, 4, 2, 1 until one succeeds -> SEND_NDIS_CONFIG (>= 2) ->
//   SEND_NDIS_VER -> receive buffer GPADL + SEND_RECV_BUF -> send buffer GPADL + SEND_SEND_BUF ->
//   RNDIS INITIALIZE -> QUERY MAXIMUM_FRAME_SIZE, PERMANENT_ADDRESS, FRIENDLY_NAME ->
//   QUERY offload capabilities, SET offload parameters -> QUERY MEDIA_CONNECT_STATUS ->
//   (NVSP >= 5) QUERY LINK_SPEED, RSS capabilities -> queues 1..n-1 -> NVSP SUBCHANNEL ->
//   each sub-channel offer opened by the sc_creation_callback (on the bus's sub-channel worker,
//   interrupts on the sub-channel's own vCPU) -> wait until all are open (bounded) ->
//   send table i % n -> SET RSS parameters (DISABLE_RSS, then enabled with table and key) ->
//   (auto_open) SET packet filter 0x0D -> carrier on if the medium is connected.
// Removal (Stop(), spec 5.7 step 7): RNDIS HALT -> wait (bounded) for outstanding sends and
//   receive completions -> REVOKE_RECV_BUF, REVOKE_SEND_BUF -> NAPI disabled -> sub-channels
//   closed, then the primary -> buffer GPADLs torn down (after the close: VMBus >= 4.0 hosts).
//
// Hostile host (spec 9.4-9.6): every packet is copied out of the ring before it is parsed
// (ring/), every NVSP and RNDIS message is validated by wire/ parsers, every trans_id goes
// through the channel's Requestor, every receive range is checked against the receive buffer,
// and each rejection is counted in NetvscStats; a corrupt ring stops that queue only.
//
// Spec: vmbus-protocol.md 3.5, 3.6, 4.3-4.7, 5, 6, 7.4-7.9, 8.5, 9.4-9.6, 10.1 V16, 10.2.
// Linux: drivers/net/hyperv/hyperv_net.h, netvsc.c, rndis_filter.c, netvsc_drv.c.
// Thread-safety: Start()/Stop() run on the bus's device worker (they block); the sub-channel
// callbacks on its sub-channel worker; NAPI polls on each channel's vCPU thread; the NetDevice
// API from any thread (see net_device.h). Each queue's outbound ring, request table and bounce
// slots are guarded by that queue's `out_mu` (taken once per transmit batch and once per NAPI
// poll); the send-section bitmap is lock-free; control requests are serialised by control_mu_.
#ifndef UVMBUS_DEVICES_NETVSC_NETVSC_DEVICE_H_
#define UVMBUS_DEVICES_NETVSC_NETVSC_DEVICE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/netvsc/flow_hash.h"
#include "devices/netvsc/net_device.h"
#include "devices/netvsc/netvsc_stats.h"
#include "devices/netvsc/requestor.h"
#include "devices/netvsc/rx_ring.h"
#include "devices/netvsc/section_bitmap.h"
#include "guest/channel.h"
#include "guest/driver.h"
#include "guest/softirq.h"
#include "partition/guest_page_allocator.h"
#include "partition/guest_partition.h"
#include "ring/incoming_ring.h"
#include "wire/nvsp.h"
#include "wire/rndis.h"
#include "wire/toeplitz.h"

namespace uvmbus::netvsc {

// Linux netvsc_ring_bytes on 4 KiB-page guests: VMBUS_RING_SIZE(128 * 4096) (spec 3.9).
inline constexpr uint32_t kNetvscRingBytes = 528384;
// NETVSC_MAX_PKT_SIZE: the largest host->guest packet a netvsc channel accepts (spec 3.9).
inline constexpr uint32_t kNetvscMaxPacketSize = 4624;
// Linux defaults (spec 5.6): NETVSC_RECEIVE_BUFFER_DEFAULT, 170 send sections of 6144 bytes.
inline constexpr uint64_t kNetvscReceiveBufferDefault = 16ull << 20;
inline constexpr uint64_t kNetvscSendBufferDefault = 170ull * 6144;
// Receive buffer cap for NVSP <= 2 hosts (NETVSC_RECEIVE_BUFFER_SIZE_LEGACY).
inline constexpr uint64_t kNetvscReceiveBufferLegacyMax = 15ull << 20;
// Linux's stop/wake thresholds for a TX queue, percent of the outbound ring free (spec 3.5).
inline constexpr uint32_t kRingAvailPercentLowater = 10;
inline constexpr uint32_t kRingAvailPercentHiwater = 20;
// RSS receive indirection table entries (ITAB_NUM) and key length.
inline constexpr uint32_t kRssTableSize = 128;

// Tunables of the driver; defaults follow Linux.
struct NetvscConfig {
  // Each ring of each channel, header page included (multiple of 4096, >= 8192).
  uint32_t ring_bytes = kNetvscRingBytes;
  // Receive buffer bytes (rounded up to pages; at most 8190 pages, one GPADL) and send buffer.
  uint64_t recv_buffer_bytes = kNetvscReceiveBufferDefault;
  uint64_t send_buffer_bytes = kNetvscSendBufferDefault;
  // Newest NVSP version offered; older ones are tried in the order of spec 5.2.
  uint32_t max_nvsp_version = wire::kNvspVersion61;
  // Channels (queues) requested: VRSS_CHANNEL_DEFAULT; capped by vCPUs, the host's receive
  // queues and 64.
  uint32_t num_queues = wire::kVrssChannelDefault;
  // Payload MTU announced in SEND_NDIS_CONFIG (as mtu + 14) and used for frame sizes.
  uint32_t mtu = net::kDefaultMtu;
  // Frames each queue's receive ring holds (power of two).
  uint32_t rx_ring_depth = 512;
  // GPA-direct bounce slots per queue (frames that do not fit a send section in flight at once).
  uint32_t tx_bounce_slots = 16;
  // Set the packet filter (interface up) at the end of bring-up.
  bool auto_open = true;
  // Ask the host for receive segment coalescing (Linux: only with NETIF_F_LRO); fragments are
  // reassembled up to the receive ring's slot size either way.
  bool lro = false;
  // RSS key sent to the host and used for the transmit flow hash.
  wire::ToeplitzKey rss_key = wire::kStandardToeplitzKey;
  // Bounds on waits for the host: one control reply, all sub-channel opens, draining at removal.
  std::chrono::milliseconds control_timeout{10'000};
  std::chrono::milliseconds subchannel_timeout{10'000};
  std::chrono::milliseconds drain_timeout{2'000};
};

class NetvscDevice final : public NetDevice {
 public:
  // The device is not started; Start() does the bring-up. `vdev` and `partition` must outlive
  // the device's Stop().
  NetvscDevice(guest::VmbusDevice& vdev, partition::GuestPartition& partition,
               const NetvscConfig& config);
  ~NetvscDevice() override;
  NetvscDevice(const NetvscDevice&) = delete;
  NetvscDevice& operator=(const NetvscDevice&) = delete;

  // The whole bring-up (see the file comment). On error the device is left for Stop() to
  // release. Errors: kProtocol (a refusal: no NVSP version, buffer or RNDIS INITIALIZE refused,
  // no MAC), kMalformed (invalid host answers), kTimeout, kUnavailable (rescinded), and those of
  // guest::Channel::Open / EstablishGpadl, kResourceExhausted (guest RAM).
  Status Start();
  // Removes the device (see the file comment). Idempotent; never fails (problems are logged).
  void Stop();

  // ---- NetDevice ----
  const Guid& instance_id() const override { return instance_id_; }
  std::string name() const override;
  net::MacAddress mac() const override { return mac_; }
  uint32_t mtu() const override { return mtu_.load(std::memory_order_relaxed); }
  uint32_t nvsp_version() const override { return nvsp_version_.load(std::memory_order_acquire); }
  bool link_up() const override;
  uint32_t link_speed_mbps() const override { return speed_mbps_.load(std::memory_order_relaxed); }
  void SetLinkCallback(LinkCallback callback) override;
  Status Open() override;
  Status Close() override;
  Status SetPacketFilter(uint32_t filter) override;
  bool is_open() const override { return open_.load(std::memory_order_acquire); }
  uint32_t queue_count() const override { return queue_count_.load(std::memory_order_acquire); }
  uint32_t Send(uint32_t queue, const net::FrameBatch& batch) override;
  bool tx_stopped(uint32_t queue) const override;
  uint32_t SelectQueue(std::span<const uint8_t> frame) const override;
  std::array<uint32_t, kSendTableSize> send_table() const override;
  uint32_t Receive(uint32_t queue, net::RxBatch& batch, RxFrameInfo* info = nullptr) override;
  int wait_fd(uint32_t queue) const override;
  bool PrepareWait(uint32_t queue) override;
  StatsSnapshot Stats() const override;
  const NetvscStats& counters() const override { return stats_; }

  // ---- Introspection (tests, tools) ----
  uint32_t ndis_version() const { return ndis_version_; }
  uint32_t recv_section_size() const { return recv_sub_alloc_size_; }
  uint32_t recv_section_count() const { return recv_sections_; }
  uint32_t send_section_size() const { return send_section_size_; }
  uint32_t send_section_count() const { return sections_ ? sections_->count() : 0; }
  uint32_t send_sections_in_use() const { return sections_ ? sections_->in_use() : 0; }
  // RNDIS INITIALIZE_CMPLT values in force (clamped, D27).
  uint32_t rndis_max_packets() const { return max_pkt_; }
  uint32_t rndis_packet_alignment() const { return pkt_align_; }
  // The receive indirection table sent to the host (128 entries).
  std::array<uint32_t, kRssTableSize> rss_table() const { return rx_table_; }
  // The offload capabilities the host reported and the parameters set.
  const wire::NdisOffload& offload_capabilities() const { return hwcaps_; }
  const wire::NdisOffloadParams& offload_parameters() const { return offload_params_; }
  // Requests of `queue` waiting for a completion; frames waiting in its receive ring.
  uint32_t outstanding_sends(uint32_t queue) const;
  // The guest channel behind `queue` (null if not open).
  guest::Channel* channel(uint32_t queue) const;
  // Last VF association the host announced (spec 5.9).
  bool vf_allocated() const { return vf_allocated_.load(std::memory_order_relaxed); }
  uint32_t vf_serial() const { return vf_serial_.load(std::memory_order_relaxed); }

 private:
  // ---- Per-queue state (Linux struct netvsc_channel) ----
  struct ReceiveCompletion {
    uint64_t trans_id = 0;
    uint32_t status = 0;
  };
  struct PendingSendCompletion {
    uint64_t trans_id = 0;
    uint32_t status = 0;
  };
  // Send completions gathered during one poll before they are resolved under out_mu.
  static constexpr uint32_t kPendingCompletions = 64;

  struct Queue {
    explicit Queue(uint16_t i) : index(i) {}
    const uint16_t index;

    // The channel and its NAPI: set by OpenQueue() before the channel opens, never changed
    // afterwards (`usable` says whether the data path may use them).
    guest::Channel* channel = nullptr;
    std::unique_ptr<guest::Napi> napi;
    std::atomic<bool> usable{false};   // open and not rescinded/stopped (quick check)
    std::atomic<bool> broken{false};   // the inbound ring is corrupt: no more polls
    std::atomic<bool> gone{false};     // sub-channel rescinded: `channel` may be destroyed

    // Serialises the outbound ring (transmit batches, receive completions, control messages),
    // the request table and the bounce slots.
    std::mutex out_mu;
    bool open GUARDED_BY(out_mu) = false;  // the authoritative "may write the ring"
    std::unique_ptr<Requestor> requestor;  // guarded by out_mu
    std::vector<uint16_t> bounce_free GUARDED_BY(out_mu);

    // Bounce slots: guest RAM for frames sent by GPA-direct (immutable after creation).
    partition::PageRun bounce_run;
    uint32_t bounce_slot_pages = 0;
    std::vector<uint64_t> bounce_pfns;  // every page of bounce_run, in order

    std::atomic<uint32_t> queue_sends{0};  // data sends the host has not completed
    std::atomic<uint32_t> rcomp_pending{0};  // receive completions not yet written (drain)
    std::atomic<bool> tx_stopped{false};
    uint32_t section_hint = 0;  // where this queue starts looking for a free section

    std::unique_ptr<RxRing> rx_ring;
    QueueStats stats;

    // ---- Owned by the queue's NAPI poll (its vCPU thread) ----
    std::vector<ReceiveCompletion> rcomp;  // Linux multi_recv_comp: recv_completion_cnt slots
    uint32_t rc_first = 0;
    uint32_t rc_next = 0;
    std::array<PendingSendCompletion, kPendingCompletions> pending{};
    uint32_t pending_count = 0;
    uint32_t rx_delivered = 0;           // frames pushed during the current poll
    std::unique_ptr<uint8_t[]> scratch;  // private copy of a control message (<= 52 + 4096)
    // RSC reassembly (spec 6.6 RNDIS_PKTINFO_ID): fragments of one coalesced frame.
    std::unique_ptr<uint8_t[]> rsc_buf;
    uint32_t rsc_len = 0;
    uint32_t rsc_cnt = 0;
    wire::RndisPpiSet rsc_ppis;
  };

  // ---- netvsc.cc ----
  Expected<std::unique_ptr<Queue>> CreateQueue(uint16_t index);
  Status OpenQueue(Queue& q, guest::Channel& channel);
  void OnChannelInterrupt(Queue& q);
  int Poll(Queue& q, guest::Napi& napi, int budget);
  void HandleCompletion(Queue& q, const ring::IncomingPacket& packet);
  void HandleControlCompletion(Queue& q, uint64_t trans_id, wire::NvspMessageType type,
                               std::span<const uint8_t> payload);
  void FlushSendCompletions(Queue& q);
  void MaybeWakeLocked(Queue& q) REQUIRES(q.out_mu);
  int HandleReceive(Queue& q, const ring::IncomingPacket& packet);
  void HandleInband(Queue& q, const ring::IncomingPacket& packet);
  void EnqueueReceiveCompletion(Queue& q, uint64_t trans_id, uint32_t status);
  bool SendReceiveCompletions(Queue& q);
  // Transmits frames [begin, end) of `batch` on `q`; returns how many were consumed. `hashes`
  // (optional, indexed like the batch) are flow hashes already computed by queue selection.
  uint32_t SendRun(Queue& q, const net::FrameBatch& batch, uint32_t begin, uint32_t end,
                   const uint32_t* hashes = nullptr);
  Status ConnectVsp();
  Status NegotiateVersion();
  Status InitBuffers();
  // Sends an NVSP request (40 bytes, in-band, completion requested) on the primary channel and
  // waits for the completion of type `reply`; returns the reply payload.
  Expected<std::vector<uint8_t>> NvspRequest(std::span<const uint8_t> message,
                                             wire::NvspMessageType reply);
  // Sends an NVSP message without completion (trans_id VMBUS_RQST_ID_NO_RESPONSE).
  Status NvspSend(std::span<const uint8_t> message);
  void RevokeBuffers();

  // ---- rndis_filter.cc ----
  Status RndisDeviceAdd();
  Status RndisInitialize();
  Expected<std::vector<uint8_t>> RndisQuery(wire::NdisOid oid, std::span<const uint8_t> input);
  Status RndisSet(wire::NdisOid oid, std::span<const uint8_t> info);
  // Sends a control message (GPA-direct, channel_type 1) and waits for the completion whose
  // request id is `request_id` (unless `request_id` is 0: HALT expects none). Returns the
  // completion's bytes.
  Expected<std::vector<uint8_t>> RndisRequest(std::span<const uint8_t> message,
                                              uint32_t request_id);
  Status SetHardwareCapabilities();
  Status SetupSubchannels();
  Status SetRssParameters(uint16_t flag);
  void OnSubchannel(guest::Channel& channel);
  void OnSubchannelRescind(guest::Channel& channel);
  uint32_t NextRequestId() { return next_request_id_.fetch_add(1, std::memory_order_relaxed); }
  // Handles one RNDIS message in a receive range. Returns the NVSP status for the range.
  uint32_t RndisReceive(Queue& q, std::span<const uint8_t> range, bool last_range);
  uint32_t RndisReceiveData(Queue& q, std::span<const uint8_t> range,
                            std::span<const uint8_t> head, bool last_range);
  uint32_t RndisReceiveControl(Queue& q, std::span<const uint8_t> range, uint32_t type,
                               uint32_t msg_len);
  void HandleIndicateStatus(const wire::RndisIndicateStatusMessage& msg);
  bool Deliver(Queue& q, std::span<const uint8_t> frame, const wire::RndisPpiSet& ppis);

  // ---- netvsc_device.cc ----
  void SetMediaConnected(bool up);
  void NotifyLink();
  Status WaitForDrain();
  void CloseQueues();
  void TeardownBuffers();
  // The host can no longer answer: primary rescinded or partition disconnected.
  bool Dead() const;
  Queue* QueueAt(uint32_t queue) const;
  // The queue of a frame with flow hash `hash` among `count` queues (spec 7.9, 8.5).
  uint32_t QueueForHash(uint32_t hash, uint32_t count) const;
  // Control buffers (one page each) for RNDIS control messages sent by GPA-direct.
  Expected<uint32_t> AcquireControlBuffer();
  void ReleaseControlBuffer(uint32_t slot);

  // ---- Immutable after construction ----
  guest::VmbusDevice& vdev_;
  partition::GuestPartition& partition_;
  const NetvscConfig config_;
  const Guid instance_id_;
  FlowHasher flow_hasher_;

  NetvscStats stats_;

  // ---- Negotiated / discovered during Start() (written before ready_, read after) ----
  std::atomic<uint32_t> nvsp_version_{0};
  uint32_t ndis_version_ = 0;
  partition::PageRun recv_run_;
  partition::PageRun send_run_;
  uint32_t recv_gpadl_ = 0;
  uint32_t send_gpadl_ = 0;
  bool recv_gpadl_torn_ = false;
  bool send_gpadl_torn_ = false;
  std::span<const uint8_t> recv_buf_;  // host writes, NAPI reads (copy out first)
  std::atomic<bool> recv_ready_{false};  // recv_buf_ and queue 0's rcomp are set (release)
  std::span<uint8_t> send_buf_;
  uint32_t recv_sub_alloc_size_ = 0;
  uint32_t recv_sections_ = 0;
  uint32_t recv_completion_cnt_ = 0;
  uint32_t send_section_size_ = 0;
  std::unique_ptr<SectionBitmap> sections_;
  uint32_t max_pkt_ = 1;
  uint32_t pkt_align_ = 8;
  net::MacAddress mac_;
  wire::NdisOffload hwcaps_{};
  wire::NdisOffloadParams offload_params_{};
  std::array<uint32_t, kRssTableSize> rx_table_{};
  std::atomic<uint32_t> mtu_;
  std::atomic<uint32_t> speed_mbps_{0};
  std::atomic<uint32_t> next_request_id_{1};
  std::atomic<bool> rndis_initialized_{false};
  std::atomic<bool> vf_allocated_{false};
  std::atomic<uint32_t> vf_serial_{0};

  // ---- Queues ----
  // Created before the sub-channel request, never resized afterwards (read by every thread).
  // Slot i is filled (under sc_mu_) before anything can refer to queue i and never emptied
  // before the destructor; the data path reads slots < queue_count_ after ready_ (acquire).
  std::array<std::unique_ptr<Queue>, wire::kVrssChannelMax> queues_;
  std::atomic<uint32_t> queue_count_{1};
  // Channels negotiated (1 + sub-channels granted): the bound for send-table entries, known as
  // soon as the host answers SUBCHANNEL (its table may arrive before every open completed).
  std::atomic<uint32_t> channel_limit_{1};
  std::array<std::atomic<uint32_t>, kSendTableSize> tx_table_{};

  // ---- Sub-channel handshake ----
  // What the bus's sub-channel callbacks reach: cleared (under its mutex, which a running
  // callback holds) by Stop(), so a callback can never run on a destroyed device.
  struct CallbackGate {
    std::mutex mu;
    NetvscDevice* device GUARDED_BY(mu) = nullptr;
  };
  std::shared_ptr<CallbackGate> gate_;
  std::mutex sc_mu_;
  std::condition_variable sc_cv_;
  bool accepting_subchannels_ GUARDED_BY(sc_mu_) = false;
  uint32_t subchannels_expected_ GUARDED_BY(sc_mu_) = 0;  // num_chn - 1 once granted
  uint32_t subchannels_done_ GUARDED_BY(sc_mu_) = 0;      // opened or failed (Linux open_chn)
  uint32_t sc_limit_ GUARDED_BY(sc_mu_) = 0;  // offers with index >= this are ignored (M8)
  bool grant_known_ GUARDED_BY(sc_mu_) = false;  // the host's SUBCHANNEL answer was read
  uint32_t sc_callbacks_running_ GUARDED_BY(sc_mu_) = 0;

  // ---- Control requests ----
  struct Waiter {
    enum class Kind : uint8_t { kNone, kNvsp, kRndis };
    Kind kind = Kind::kNone;
    uint32_t sequence = 0;    // kNvsp: the request's sequence (stored in its cookie)
    uint32_t request_id = 0;  // kRndis: the RNDIS request id
    bool done = false;
    bool overflow = false;    // D19: completed with BUFFER_OVERFLOW
    std::vector<uint8_t> response;
  };
  std::mutex control_mu_;  // one control request at a time; taken before waiter_mu_
  std::mutex waiter_mu_;
  std::condition_variable waiter_cv_;
  Waiter waiter_ GUARDED_BY(waiter_mu_);
  uint32_t control_sequence_ = 0;  // under control_mu_
  static constexpr uint32_t kControlBuffers = 4;
  partition::PageRun control_run_;
  std::mutex control_buf_mu_;
  std::condition_variable control_buf_cv_;
  uint32_t control_buf_busy_ GUARDED_BY(control_buf_mu_) = 0;  // bit per slot

  // ---- State ----
  std::atomic<bool> ready_{false};     // bring-up finished, not stopping: data path allowed
  std::atomic<bool> stopping_{false};  // Stop() began
  std::atomic<bool> stopped_{false};
  std::atomic<bool> media_connected_{true};  // host's MEDIA_CONNECT / MEDIA_DISCONNECT
  std::atomic<bool> open_{false};            // packet filter non-zero (interface up)
  std::atomic<bool> carrier_reported_{false};
  std::mutex link_mu_;
  LinkCallback link_callback_ GUARDED_BY(link_mu_);
  mutable std::mutex name_mu_;
  std::string name_ GUARDED_BY(name_mu_);
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_NETVSC_DEVICE_H_
