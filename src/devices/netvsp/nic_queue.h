// File: devices/netvsp/nic_queue.h (internal to devices/netvsp)
//
// What: the two halves of NetvspDevice's engine.
//
//   `Session` - what one opening of the primary channel establishes and every queue of that
//     opening shares: the negotiated NVSP version, the guest's receive buffer (with its
//     SectionPool) and send buffer, the receive configuration (packet filter, MAC, RSS) and the
//     per-queue mailboxes. Values written by the primary queue's thread and read by the others
//     are published with release/acquire atomics (buffers are set once and never replaced while
//     the session lives), or as an immutable RxConfig behind a generation counter (readers take
//     the mutex only when the generation changed, i.e. after a guest SET).
//
//   `NicQueue` - one channel = one queue. Its service round (Run) drains the guest->host ring
//     with the spec 3.6 mask rule: completions of receive packets (NVSP 108), NVSP control
//     messages (primary only), RNDIS messages (SEND_RNDIS_PKT: control on the primary, data on
//     any channel), sending data frames to the backend queue in batches and writing NVSP 108
//     completions; then it moves frames from its mailbox and its backend queue into the receive
//     buffer and indicates them with transfer-page packets. Completions have priority over
//     indications: when the host->guest ring has no room for a completion the queue stops reading
//     (pending_send_sz tells the guest to signal when it freed room), while indications are
//     dropped and counted.
//
// Spec: vmbus-protocol.md 3.4-3.6, 4.3-4.5, 5.5-5.8, 6.1-6.12, 7.8, 8.5, 9.1, 9.7, 10.2.
// Linux/OpenVMM: OpenVMM vm/devices/net/netvsp/src/lib.rs (Worker, process_control_messages,
//       process_rx, handle_rndis, handle_oid_set), buffers.rs.
// Thread-safety: a NicQueue is used by one thread at a time (its worker, or the Poll() caller);
//       Session members are annotated (atomics, or written by the primary queue only).
#ifndef UVMBUS_DEVICES_NETVSP_NIC_QUEUE_H_
#define UVMBUS_DEVICES_NETVSP_NIC_QUEUE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "devices/netvsp/mailbox.h"
#include "devices/netvsp/netvsp_device.h"
#include "devices/netvsp/netvsp_stats.h"
#include "devices/netvsp/queue_worker.h"
#include "devices/netvsp/rndis_oids.h"
#include "devices/netvsp/rss.h"
#include "devices/netvsp/rx_buffer.h"
#include "host/gpadl_view.h"
#include "host/host_channel.h"
#include "net/endpoint.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"
#include "wire/rndis.h"

namespace uvmbus::netvsp {

// Cable state, shared by the device and its sessions. `epoch` counts transitions so the primary
// queue can tell "down and up again" from "no change".
struct LinkState {
  std::atomic<bool> up{true};
  std::atomic<uint64_t> epoch{0};
};

// The guest's receive buffer as the host uses it.
struct RecvBuffer {
  std::shared_ptr<host::GpadlView> view;  // keeps the mapping alive (GPADL teardown-safe)
  std::span<uint8_t> bytes;
  ReceiveBufferLayout layout;
  uint16_t id = 0;  // xfer_pageset_id of every transfer-page packet (Linux 0xCAFE)
  std::unique_ptr<SectionPool> pool;
  uint8_t* section(uint32_t s) const {
    return bytes.data() + size_t{s} * layout.sub_alloc_size;
  }
};

// The guest's send buffer.
struct SendBuffer {
  std::shared_ptr<host::GpadlView> view;
  std::span<const uint8_t> bytes;
  uint32_t section_size = 0;
  uint32_t section_count = 0;
  uint16_t id = 0;
};

// Receive-side configuration the guest SETs; immutable once published.
struct RxConfig {
  uint32_t filter = 0;
  net::MacAddress mac{};
  std::shared_ptr<const RssConfig> rss;  // null: RSS off, every frame goes to queue 0
};

enum class RndisState : uint8_t { kUninitialized, kInitialized, kHalted };

class Session {
 public:
  // Errors: kIo (mailbox eventfds).
  static Expected<std::shared_ptr<Session>> Create(const NicConfig& config,
                                                   std::shared_ptr<NicCounters> counters,
                                                   std::shared_ptr<LinkState> link,
                                                   host::DeviceControl* control,
                                                   uint32_t max_frame, uint32_t channel_limit);

  const NicConfig& config() const { return config_; }
  NicCounters& counters() { return *counters_; }
  LinkState& link() { return *link_; }
  host::DeviceControl* control() const { return control_; }
  net::Endpoint& backend() const { return *config_.backend; }
  uint32_t max_frame() const { return max_frame_; }
  uint32_t channel_limit() const { return channel_limit_; }
  Mailbox& mailbox(uint32_t queue) { return *mailboxes_[queue]; }

  // Negotiated NVSP version (0 before INIT). Written by the primary queue.
  std::atomic<uint32_t> nvsp_version{0};
  // Reporting copies of primary-queue state (NicState).
  std::atomic<uint32_t> ndis_version{0};
  std::atomic<uint32_t> ndis_mtu{0};
  std::atomic<uint8_t> rndis_state{0};  // RndisState
  std::atomic<bool> rss_enabled{false};
  // RNDIS INITIALIZE done and not halted: data may flow (P5).
  std::atomic<bool> rndis_ready{false};
  // Sub-channels: 1 + granted, and how many of them are open now.
  std::atomic<uint32_t> channels_allocated{1};
  std::atomic<uint32_t> subchannels_open{0};
  // Set when every granted sub-channel is open: the primary sends NVSP 134.
  std::atomic<bool> send_table_pending{false};
  // The primary channel closed: everything stops.
  std::atomic<bool> closed{false};

  // Buffers: published once by the primary queue (release), never replaced.
  const RecvBuffer* recv() const { return recv_.load(std::memory_order_acquire); }
  const SendBuffer* send() const { return send_.load(std::memory_order_acquire); }
  void PublishRecv(std::unique_ptr<RecvBuffer> buffer);
  void PublishSend(std::unique_ptr<SendBuffer> buffer);
  std::atomic<bool> recv_revoked{false};
  std::atomic<bool> send_revoked{false};

  // Receive configuration (filter, MAC, RSS), read per batch by every queue.
  uint64_t rx_generation() const { return rx_gen_.load(std::memory_order_acquire); }
  std::shared_ptr<const RxConfig> rx_config() const EXCLUDES(rx_mu_);
  void PublishRxConfig(std::shared_ptr<const RxConfig> config) EXCLUDES(rx_mu_);

 private:
  Session(const NicConfig& config, std::shared_ptr<NicCounters> counters,
          std::shared_ptr<LinkState> link, host::DeviceControl* control, uint32_t max_frame,
          uint32_t channel_limit);

  const NicConfig& config_;
  std::shared_ptr<NicCounters> counters_;
  std::shared_ptr<LinkState> link_;
  host::DeviceControl* const control_;
  const uint32_t max_frame_;
  const uint32_t channel_limit_;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;  // [channel_limit]

  std::unique_ptr<RecvBuffer> recv_storage_;  // written before recv_ is published
  std::unique_ptr<SendBuffer> send_storage_;
  std::atomic<const RecvBuffer*> recv_{nullptr};
  std::atomic<const SendBuffer*> send_{nullptr};

  mutable std::mutex rx_mu_;
  std::shared_ptr<const RxConfig> rx_config_ GUARDED_BY(rx_mu_);
  std::atomic<uint64_t> rx_gen_{0};
};

class NicQueue final : public QueueService {
 public:
  // Errors: kInvalidArgument (index beyond the session's channels).
  static Expected<std::unique_ptr<NicQueue>> Create(std::shared_ptr<Session> session,
                                                    host::HostChannel& channel, uint16_t index);
  ~NicQueue() override;
  NicQueue(const NicQueue&) = delete;
  NicQueue& operator=(const NicQueue&) = delete;

  // QueueService.
  bool Run() override;
  bool PrepareSleep() override;

  // After the worker stopped for good (channel closing): returns every receive sub-allocation
  // the queue holds (stash, in flight, steered to it) to the pool.
  void Shutdown();

  uint16_t index() const { return index_; }
  host::HostChannel& channel() { return channel_; }
  Session& session() { return *session_; }
  // Descriptors the worker waits on: doorbell, backend wait fd, mailbox.
  std::array<int, 3> wait_fds() const;

 private:
  // Maximum packets read from the guest ring per drain pass, frames per backend poll, and
  // ranges per transfer-page packet (<= 375, spec 5.6).
  static constexpr uint32_t kInboundQuota = 256;
  static constexpr uint32_t kRxBatch = net::kMaxBatch;
  static constexpr uint32_t kMaxRanges = 128;
  static constexpr uint32_t kRxPollsPerRound = 4;
  static constexpr size_t kMaxControlQueue = 64;

  enum class Drain : uint8_t { kDrained, kQuota, kBlocked, kFailed };

  NicQueue(std::shared_ptr<Session> session, host::HostChannel& channel, uint16_t index);

  QueueCounters& stats() { return session_->counters().queue(index_); }
  void Fail(std::string_view why);
  // A ring read as corrupt: counted (ring_corrupt) and Fail()ed, unless the guest has hung up
  // (its RAM is revoked to zero pages first), which stops the queue quietly.
  void FailCorrupt(std::string_view why);

  // ---- guest -> host ----
  Drain DrainInbound();
  void HandlePacket(const ring::IncomingPacket& packet);
  void HandleGuestCompletion(const ring::IncomingPacket& packet);
  void HandleNvsp(const ring::IncomingPacket& packet, std::span<const uint8_t> payload,
                  const wire::GpaDirectPacket* gpa);
  // Primary-channel control messages.
  void HandleInit(const wire::NvspInit& msg, uint64_t trans_id, bool want_completion);
  void HandleRecvBuffer(const wire::NvspSendReceiveBuffer& msg, uint64_t trans_id,
                        bool want_completion);
  void HandleSendBuffer(const wire::NvspSendSendBuffer& msg, uint64_t trans_id,
                        bool want_completion);
  void HandleSubchannel(const wire::NvspSubchannelRequest& msg, uint64_t trans_id,
                        bool want_completion);
  // SEND_RNDIS_PKT: gathers, validates and dispatches the RNDIS message(s).
  void HandleRndisPacket(const wire::NvspSendRndisPacket& msg, uint64_t trans_id,
                         bool want_completion, const wire::GpaDirectPacket* gpa);
  // Copies the GPA-direct ranges' bytes to `dst` (spec 4.5, P10). False on a bad page.
  bool GatherGpa(const wire::GpaDirectPacket& gpa, uint8_t* dst);
  // One RNDIS data message: validates it and stages its frame. False on a violation (counted).
  bool StageDataMessage(const wire::RndisPacket& packet, const uint8_t* msg_begin);
  // One RNDIS control message (primary). Returns the NVSP status for the carrying packet.
  wire::NvspStatus HandleRndisControl(const wire::RndisMessage& msg);
  wire::RndisStatus HandleOidSet(wire::NdisOid oid, std::span<const uint8_t> info);
  wire::RndisStatus SetRssParameters(std::span<const uint8_t> info);
  void PublishRx();
  NicInfo BuildNicInfo() const;
  void QueueControlMessage(std::vector<uint8_t> msg);

  // Completions (NVSP COMP payloads), written into the round's write cursor; a completion that
  // does not fit is kept (one) and the queue stops reading until it is written.
  template <typename T>
  void Complete(uint64_t trans_id, const T& msg);
  void CompleteEmpty(uint64_t trans_id);
  void CompleteRaw(uint64_t trans_id, std::span<const uint8_t> payload);
  void FailRequest(uint32_t raw_type, uint64_t trans_id, bool want_completion);
  bool WritePendingCompletion();
  size_t MessageSize() const;

  // Backend transmit batch.
  void FlushTx();

  // ---- host -> guest ----
  bool ControlPhase();
  bool RxPhase();
  bool SendControlMessages();
  void RefreshRxConfig();
  uint32_t TakeSection();
  void ReturnSection(uint32_t section);
  bool RefillStash();
  void ProcessFrame(uint32_t section, uint32_t frame_len, uint64_t* wake);
  void AddRange(uint32_t section, uint32_t msg_len, uint32_t frame_len);
  void SendXfer(uint32_t channel_type);
  uint32_t DrainToScratch(Stat reason);
  void FreeChain(uint32_t first, uint32_t last);

  std::shared_ptr<Session> session_;
  host::HostChannel& channel_;
  const uint16_t index_;
  net::Queue* backend_q_ = nullptr;

  bool failed_ = false;
  bool masked_ = false;
  ring::WriteCursor wc_;
  // A completion that found the ring full (spec 3.5 writer side): kept and retried first.
  bool has_pending_completion_ = false;
  uint64_t pending_trans_id_ = 0;
  uint32_t pending_len_ = 0;
  std::array<uint8_t, wire::kNvspLinuxMessageSize> pending_payload_{};
  uint32_t blocked_total_ = 0;  // ring bytes a blocked write needs (pending_send_sz)
  bool table_deferred_ = false;  // the send table found the ring full: retry, no busy wait

  // Transmit staging (private copies of the guest's RNDIS messages, spec 9.1 G1).
  std::unique_ptr<uint8_t[]> arena_;
  size_t arena_size_ = 0;
  size_t arena_used_ = 0;
  size_t max_gather_ = 0;
  struct StagedFrame {
    const uint8_t* data = nullptr;
    uint32_t length = 0;
  };
  std::array<StagedFrame, net::kMaxBatch> staged_{};
  uint32_t staged_count_ = 0;

  // Receive side.
  InflightTable inflight_;
  std::array<uint32_t, kRxBatch> stash_{};
  uint32_t stash_count_ = 0;
  uint32_t stash_target_ = 0;
  std::array<wire::TransferPageRange, kMaxRanges> ranges_{};
  uint32_t range_count_ = 0;
  uint32_t chain_first_ = SectionPool::kNone;
  uint32_t chain_last_ = SectionPool::kNone;
  uint64_t xfer_bytes_ = 0;  // frame bytes in the packet being built
  bool rx_blocked_ = false;
  std::unique_ptr<uint8_t[]> scratch_;  // drop target for frames that cannot be delivered
  uint64_t rx_config_gen_ = UINT64_MAX;
  std::shared_ptr<const RxConfig> rx_config_;

  // Primary-channel control state (queue 0 only; its thread is the only reader and writer).
  struct Control {
    uint32_t version = 0;
    bool ndis_version_seen = false;
    bool ndis_config_seen = false;
    uint32_t ndis_version = 0;
    uint32_t ndis_mtu = wire::kNdisConfigMtuDefault;
    uint64_t ndis_capabilities = 0;
    RndisState rndis = RndisState::kUninitialized;
    uint32_t filter = 0;
    net::MacAddress mac{};
    wire::NdisOffloadParams offload{};
    bool rss_enabled = false;
    uint32_t rss_hashinfo = 0;
    wire::ToeplitzKey rss_key = wire::kStandardToeplitzKey;
    std::vector<uint32_t> rss_table;
    std::deque<std::vector<uint8_t>> out;  // RNDIS completions / indications to send
    uint64_t link_epoch = 0;
    bool link_indicated_up = true;
  };
  Control ctl_;
};

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_NIC_QUEUE_H_
