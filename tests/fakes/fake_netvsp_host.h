// File: tests/fakes/fake_netvsp_host.h
//
// What: a scripted NetVSP host for netvsc tests. It is a host::Device (added to a real
// host::VmbusServer over a LocalPartition, so channel management, GPADLs, rings and signals are
// the real ones) that speaks the host half of NVSP and RNDIS the way its Options say, and records
// everything the guest sent so tests can check each message against the spec's layouts and order:
//
//   * NVSP: INIT (accepting the configured versions), NDIS config/version, receive and send
//     buffers (answering with the configured layout), SUBCHANNEL (granting, then offering the
//     sub-channels through DeviceControl::OfferSubchannels and, once all are open, sending the
//     send indirection table), REVOKE_*, SEND_RNDIS_PKT (control messages answered through the
//     receive buffer; data frames recorded and completed), receive completions;
//   * RNDIS: INITIALIZE, QUERY (MAC, frame size, friendly name, offloads, link, speed, RSS
//     capabilities), SET (packet filter, offloads, RSS), HALT; a hook may rewrite or suppress any
//     answer (hostile-host tests);
//   * data to the guest: frames written as RNDIS PACKET_MSGs (with PPIs) into receive-buffer
//     sub-allocations and sent as transfer-page packets on any queue; raw injection of arbitrary
//     packets, receive-buffer bytes, completions and in-band messages.
//
// Every guest message is also run through the wire/ parsers in the guest->host direction (the
// rules a strict host applies, spec 9.7); a failure is recorded in bad_guest_messages().
//
// One worker thread per open channel drains the guest->host ring (doorbell-driven, masking the
// ring while it reads, spec 3.6) and answers; the test thread may inject concurrently (each
// channel's host->guest ring is guarded by a mutex).
//
// Spec: vmbus-protocol.md 4.3-4.7, 5 (the host half), 6, 7.8, 9.7.
// Thread-safety: all public methods are thread-safe.
#ifndef UVMBUS_TESTS_FAKES_FAKE_NETVSP_HOST_H_
#define UVMBUS_TESTS_FAKES_FAKE_NETVSP_HOST_H_

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "common/unique_fd.h"
#include "host/device.h"
#include "host/host_channel.h"
#include "net/frame.h"
#include "partition/host_partition.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"
#include "wire/rndis.h"

namespace uvmbus::fakes {

class FakeNetvspHost {
 public:
  struct Options {
    Guid instance_id = Guid::FromString("0e0b6031-aaaa-bbbb-cccc-111122223333");
    uint16_t max_subchannels = 7;
    // NVSP versions answered with SUCCESS (others: status NONE, as OpenVMM).
    std::set<uint32_t> accepted_versions = {
        wire::kNvspVersion61, wire::kNvspVersion6, wire::kNvspVersion5,
        wire::kNvspVersion4,  wire::kNvspVersion2, wire::kNvspVersion1};
    // SEND_RECV_BUF_COMPLETE.
    uint32_t recv_status = 1;
    uint32_t recv_num_sections = 1;
    uint32_t recv_section_offset = 0;
    uint32_t recv_sub_alloc_size = 1806;  // OpenVMM: 256 + 1514 + 36
    uint32_t recv_num_sub_allocs = 0;     // 0: buffer size / sub_alloc_size
    // SEND_SEND_BUF_COMPLETE.
    uint32_t send_status = 1;
    uint32_t send_section_size = 6144;
    // SUBCHANNEL completion: status and how many are granted (-1: min(requested, max)).
    uint32_t subchannel_status = 1;
    int32_t subchannel_grant = -1;
    // After all granted sub-channels opened: send SEND_INDIRECTION_TABLE (i % channels).
    bool send_indirection_table = true;
    // RNDIS answers.
    net::MacAddress mac{{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}};
    uint32_t max_frame_size = 1500;  // OID_GEN_MAXIMUM_FRAME_SIZE (payload MTU)
    bool media_connected = true;
    uint32_t link_speed = 100'000'000;  // 100 bit/s units = 10 Gbit/s
    std::string friendly_name = "Network Adapter";
    uint32_t rss_queues = 8;  // num_recv_que; 0: RSS capabilities query NOT_SUPPORTED
    wire::RndisStatus init_status = wire::RndisStatus::kSuccess;
    uint32_t max_packets_per_message = 8;
    uint32_t packet_alignment_factor = 3;
    wire::NdisOffload offload = DefaultOffload();
    // Data: complete the guest's sends at once with this NVSP status.
    bool complete_tx = true;
    uint32_t tx_completion_status = 1;

    static wire::NdisOffload DefaultOffload();
  };

  // One packet the guest sent, decoded.
  struct GuestPacket {
    uint16_t queue = 0;
    wire::PacketDescriptor desc{};
    std::vector<uint8_t> payload;  // NVSP bytes as sent (the packet payload, padding included)
    uint32_t nvsp_type = 0;
    // For SEND_RNDIS_PKT: the RNDIS bytes (section part or GPA ranges) and their origin.
    std::vector<uint8_t> rndis;
    uint32_t rndis_type = 0;       // first message's type
    uint32_t oid = 0;              // QUERY/SET: the OID
    uint32_t range_count = 0;      // GPA-direct ranges
    uint32_t first_range_bytes = 0;
  };

  // A frame the guest transmitted.
  struct TxFrame {
    uint16_t queue = 0;
    std::vector<uint8_t> bytes;
    wire::RndisPpiSet ppis;
    bool gpa_direct = false;
  };

  explicit FakeNetvspHost(partition::HostPartition& partition);
  FakeNetvspHost(partition::HostPartition& partition, Options options);
  ~FakeNetvspHost();
  FakeNetvspHost(const FakeNetvspHost&) = delete;
  FakeNetvspHost& operator=(const FakeNetvspHost&) = delete;

  // The host::Device to hand to VmbusServer::AddDevice (call once). It refers to this object,
  // which must outlive the server's use of it.
  std::unique_ptr<host::Device> MakeDevice();

  // ---- Script changes while running ----
  void SetCompleteTx(bool complete);
  // Completes every guest send held back while complete_tx was false.
  void CompleteHeldTx(uint32_t status = 1);
  // Stops / resumes reading the guest->host ring of `queue` (its ring fills up).
  void PauseReading(uint16_t queue, bool paused);
  // Rewrites (or, by clearing `send`, suppresses) the answer to an RNDIS request.
  using RndisHook = std::function<void(uint32_t request_type, uint32_t oid,
                                       std::vector<uint8_t>& response, bool& send)>;
  void SetRndisHook(RndisHook hook);
  // Rewrites (or suppresses) the completion of an NVSP control request.
  using NvspHook = std::function<void(uint32_t request_type, std::vector<uint8_t>& reply,
                                      bool& send)>;
  void SetNvspHook(NvspHook hook);

  // ---- What the guest sent ----
  std::vector<GuestPacket> packets() const;
  std::vector<TxFrame> frames() const;
  size_t frame_count() const;
  // Guest messages a strict host's parser refused (should stay 0).
  std::vector<std::string> bad_guest_messages() const;
  // NVSP types in the order received (all queues).
  std::vector<uint32_t> nvsp_types() const;
  // Values the guest set.
  std::optional<uint32_t> packet_filter() const;
  std::vector<wire::RssParameters> rss_sets() const;
  std::optional<wire::NdisOffloadParams> offload_params() const;
  std::optional<wire::NvspSendNdisConfig> ndis_config() const;
  uint32_t negotiated_version() const;
  uint32_t subchannels_granted() const;
  uint32_t open_channels() const;
  bool halted() const;
  // The receive completions the guest sent: trans_id -> NVSP status.
  std::map<uint64_t, uint32_t> receive_completions() const;
  // Guest sends not yet completed (complete_tx = false).
  size_t held_tx() const;
  // Transfer-page packets (from the pool) the guest has not completed yet.
  size_t inflight_receives() const;

  // Waits until pred() holds (re-evaluated whenever something is recorded). False on timeout.
  bool WaitUntil(const std::function<bool()>& pred,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const;

  // ---- To the guest ----
  // Writes each frame as an RNDIS PACKET_MSG (header + `ppis` + frame) into its own
  // sub-allocation and sends them as one transfer-page packet on `queue`. Returns the trans_id.
  // Errors: kUnavailable (queue not open, no receive buffer), kResourceExhausted (no free
  // sub-allocation), kInternal (ring full).
  Expected<uint64_t> SendFrames(uint16_t queue, const std::vector<std::vector<uint8_t>>& frames,
                                const wire::RndisPpiSet& ppis = {});
  // Sends RNDIS messages (each in its own sub-allocation, ranges of exactly their length unless
  // `range_bytes` overrides them) as one transfer-page packet with NVSP channel_type
  // `channel_type` on `queue`. Returns the trans_id.
  Expected<uint64_t> SendRndisMessages(uint16_t queue,
                                       const std::vector<std::vector<uint8_t>>& messages,
                                       uint32_t channel_type = 1,
                                       std::vector<uint32_t> range_bytes = {});
  // INDICATE_STATUS(status) on the primary channel.
  Expected<uint64_t> IndicateStatus(wire::RndisStatus status, std::span<const uint8_t> buffer = {});
  // Writes `bytes` at `offset` of the receive buffer (hostile-range tests).
  Status WriteReceiveBuffer(uint64_t offset, std::span<const uint8_t> bytes);
  uint64_t receive_buffer_size() const;
  uint32_t sub_alloc_size() const;
  // Raw packets: `header` is a descriptor (+ type-specific header) built by the test, `payload`
  // follows it; committed and signalled. kInternal if the ring refused it.
  Status InjectPacket(uint16_t queue, std::span<const uint8_t> header,
                      std::span<const uint8_t> payload);
  // Several raw packets (header, payload) made visible by one commit (one batch for the guest).
  Status InjectBatch(uint16_t queue,
                     const std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>>& packets);
  Status SendInband(uint16_t queue, std::span<const uint8_t> payload, uint64_t trans_id = 0,
                    bool completion_requested = false);
  Status SendCompletion(uint16_t queue, uint64_t trans_id, std::span<const uint8_t> payload);
  // Transfer-page packet with explicit ranges and NVSP payload.
  Status SendTransferPages(uint16_t queue, std::span<const wire::TransferPageRange> ranges,
                           std::span<const uint8_t> nvsp, uint64_t trans_id,
                           uint16_t pageset_id = wire::kNetvscReceiveBufferId);
  // Writes raw bytes into the host->guest ring data area and moves write_index (ring corruption).
  // The fake never writes to that ring again (a later commit would store a valid write_index and
  // heal the corruption before a slow guest has read it); writes to it fail with kUnavailable.
  Status CorruptGuestRing(uint16_t queue, uint32_t write_index);
  // Signals the guest on `queue` without writing anything (R19).
  void Signal(uint16_t queue);

  // A fresh host trans_id for transfer-page packets.
  uint64_t NextTransId() { return next_trans_id_.fetch_add(1); }

 private:
  class Device;
  struct Chan {
    host::HostChannel* channel = nullptr;
    std::mutex out_mu;  // the host->guest ring
    bool corrupted = false;  // guarded by out_mu: CorruptGuestRing() ran, no more writes
    std::thread worker;
    UniqueFd stop_fd;
    std::atomic<bool> stop{false};
    std::atomic<bool> paused{false};
  };

  Status OnOpen(host::HostChannel& channel);
  void OnClose(host::HostChannel& channel);
  void Worker(Chan* chan);
  void HandlePacket(Chan& chan, const ring::IncomingPacket& packet);
  void HandleNvspControl(Chan& chan, const ring::IncomingPacket& packet,
                         const wire::NvspMessage& msg);
  void HandleRndisPacket(Chan& chan, const ring::IncomingPacket& packet,
                         const wire::NvspSendRndisPacket& msg, GuestPacket& record);
  void HandleRndisControl(std::span<const uint8_t> bytes);
  std::vector<uint8_t> GatherGpaDirect(std::span<const uint8_t> packet, uint32_t* ranges,
                                       uint32_t* first_range);
  Status WriteToGuest(Chan& chan, std::span<const uint8_t> header, std::span<const uint8_t> payload);
  Status ReplyCompletion(Chan& chan, uint64_t trans_id, std::span<const uint8_t> payload);
  void SendIndirectionTable();
  Chan* FindChan(uint16_t queue) const;
  void Record(std::function<void()> fn) const;
  std::optional<uint32_t> TakeSubAlloc();

  partition::HostPartition& partition_;
  Options options_;
  host::DeviceControl* control_ = nullptr;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<uint16_t, std::unique_ptr<Chan>> chans_;
  std::vector<GuestPacket> packets_;
  std::vector<TxFrame> frames_;
  std::vector<std::string> bad_;
  std::optional<uint32_t> filter_;
  std::vector<wire::RssParameters> rss_;
  std::optional<wire::NdisOffloadParams> offload_params_;
  std::optional<wire::NvspSendNdisConfig> ndis_config_;
  uint32_t version_ = 0;
  uint32_t granted_ = 0;
  bool table_sent_ = false;
  bool halted_ = false;
  std::map<uint64_t, uint32_t> recv_completions_;
  std::vector<std::pair<uint16_t, uint64_t>> held_;  // (queue, trans_id) not completed yet
  RndisHook rndis_hook_;
  NvspHook nvsp_hook_;

  // Buffers (host views; set from the primary's GPADLs).
  std::span<uint8_t> recv_buf_;
  std::span<uint8_t> send_buf_;
  uint32_t sub_alloc_size_ = 0;
  uint32_t sub_allocs_ = 0;
  std::vector<uint32_t> free_sub_allocs_;
  std::map<uint64_t, std::vector<uint32_t>> inflight_;  // trans_id -> sub-allocations
  // RNDIS answers waiting for a free sub-allocation (sent when the guest completes one).
  std::vector<std::vector<uint8_t>> pending_rndis_;
  std::atomic<uint64_t> next_trans_id_{0x100};
};

}  // namespace uvmbus::fakes

#endif  // UVMBUS_TESTS_FAKES_FAKE_NETVSP_HOST_H_
