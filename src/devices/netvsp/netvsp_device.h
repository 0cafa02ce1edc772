// File: devices/netvsp/netvsp_device.h
//
// What: `NetvspDevice`, the host half of the synthetic network adapter (class
// f8615163-df3e-46c5-913f-f2d2f965ed0e): the NVSP + RNDIS server a Linux (or Windows, DPDK)
// netvsc guest drives, attached to a net::Endpoint backend (switch port, TAP, loopback, pipe).
//
//   guest netvsc <== VMBus channels (primary + sub-channels) ==> NetvspDevice <==> net::Endpoint
//
// Control plane (primary channel, spec 5.7 / 7.8): NVSP INIT (versions 1, 2, 4, 5, 6, 6.1; the
// guest's request is taken if the host allows it), NDIS version and config, the receive buffer
// (GPADL; the host cuts it into sub-allocations and reports the layout) and the send buffer
// (6144-byte sections), RNDIS INITIALIZE / QUERY / SET / KEEPALIVE / RESET / HALT carried in
// SEND_RNDIS_PKT, sub-channel allocation (NVSP 133 -> DeviceControl::OfferSubchannels), the send
// indirection table (NVSP 134) once every sub-channel is open, and media connect/disconnect
// indications (SetLinkUp, or the backend's own link changes).
//
// Data plane (every channel is one queue, served by one thread: no locks, no allocation per
// packet): guest transmits (RNDIS PACKET_MSGs in a send-buffer section, in GPA-direct page
// ranges, or both; several per NVSP message) are copied out once (spec 9.1 G1), validated, sent
// to the backend queue in batches, and completed (NVSP 108) in a batch with one signal decision.
// Frames from the backend are written into receive-buffer sub-allocations with an RNDIS header
// (hash PPI when RSS is on), steered to the channel the guest's indirection table names, and
// indicated with one transfer-page packet per batch (one range per frame); sub-allocations come
// back with the guest's completion (trans_id checked). A full receive buffer or ring drops and
// counts; nothing waits on the guest. Every rejection of spec 9.7 is counted by name (see
// netvsp_stats.h) and never crashes or stops the device; only a corrupt ring stops its queue.
//
// Modes: with `worker_threads` each open channel gets a QueueWorker thread; without it nothing
// runs until the owner calls Poll() (deterministic tests).
//
// Spec: vmbus-protocol.md 5 (NVSP), 6 (RNDIS), 7.8 (sub-channel handshake), 8 (RSS), 9.7
//       (host-side rules P1-P18), 10.2 (N-a..N-p: what a host sends and accepts).
// Linux/OpenVMM: OpenVMM vm/devices/net/netvsp/src/lib.rs (the reference host), protocol.rs,
//       rndisprot.rs, buffers.rs; Linux drivers/net/hyperv/netvsc.c, rndis_filter.c (the guest it
//       must satisfy).
// Thread-safety: host::Device callbacks follow host/device.h (never concurrent). SetLinkUp(),
//       Stats(), StatsJson(), State() and counters() may be called from any thread. Poll() is for
//       manual mode and must not run concurrently with Open/Close (tests drive both from one
//       thread).
#ifndef UVMBUS_DEVICES_NETVSP_NETVSP_DEVICE_H_
#define UVMBUS_DEVICES_NETVSP_NETVSP_DEVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/netvsp/netvsp_stats.h"
#include "host/device.h"
#include "host/host_channel.h"
#include "net/endpoint.h"
#include "net/frame.h"
#include "partition/host_partition.h"
#include "wire/nvsp.h"

namespace uvmbus::netvsp {

// Configuration of one synthetic NIC.
struct NicConfig {
  // Name in logs, snapshots and JSON ("net0").
  std::string id = "net0";
  // Permanent MAC; all-zero = 00:15:5d (Hyper-V's OUI) + 3 bytes of the instance GUID.
  net::MacAddress mac{};
  // Channels (queues) offered: primary + sub-channels, 1..64; capped by the backend's
  // max_queues().
  uint32_t queues = 1;
  // Payload MTU; the NIC's largest frame is min(mtu + 14, backend->max_frame_size()).
  uint32_t mtu = net::kDefaultMtu;
  // The backend (required). Shared: it may outlive the device.
  std::shared_ptr<net::Endpoint> backend;
  // Offer instance GUID; unset = random.
  std::optional<Guid> instance_id;
  // Guest RAM for GPA-direct transmits (spec 4.5). Null (the default): each channel's own
  // HostChannel::partition(). Must outlive the device when set.
  partition::HostPartition* guest_memory = nullptr;
  // One worker thread per open channel (true) or manual Poll() (false).
  bool worker_threads = true;
  // OID_GEN_LINK_SPEED, in 100 bit/s (10 Gbit/s).
  uint32_t link_speed_100bps = 100'000'000;
  // NVSP versions accepted in INIT (exact values of spec 5.2 within [min, max]).
  uint32_t min_nvsp_version = wire::kNvspVersion1;
  uint32_t max_nvsp_version = wire::kNvspVersion61;
  // RNDIS INITIALIZE_CMPLT grants: PACKET_MSGs per send (1..64) and alignment 2^factor (0..12).
  uint32_t max_packets_per_message = 8;
  uint32_t packet_alignment_factor = 3;
  // Send-buffer section size reported in SEND_SEND_BUF_COMPLETE (>= 68; Hyper-V 6144).
  uint32_t send_section_size = wire::kNetvscSendSectionSize;
  // OID_GEN_FRIENDLY_NAME ("Network Adapter" keeps Linux from renaming the interface alias).
  std::string friendly_name = "Network Adapter";
  // Steered frames one queue's mailbox holds (a power of two).
  uint32_t mailbox_depth = 1024;
};

// What the NIC looks like now (for `uvmbus stats` and tests).
struct NicState {
  std::string id;
  net::MacAddress mac{};          // current (guest may change it, spec 6.11)
  bool link_up = false;
  uint32_t nvsp_version = 0;      // 0 until INIT succeeded on the current primary channel
  uint32_t ndis_version = 0;
  uint32_t ndis_mtu = 0;          // SEND_NDIS_CONFIG mtu as applied (P6)
  std::string rndis_state;        // "uninitialized", "initialized", "halted"
  uint32_t packet_filter = 0;
  bool rss_enabled = false;
  uint32_t channels_allocated = 0;  // 1 + sub-channels granted
  uint32_t channels_open = 0;
  uint32_t recv_sub_alloc_size = 0;
  uint32_t recv_sections = 0;
  uint32_t recv_sections_free = 0;
  uint32_t send_section_size = 0;
  uint32_t send_sections = 0;
  uint32_t max_frame_size = 0;
};

class NetvspDevice final : public host::Device, private net::LinkListener {
 public:
  // Validates `config` (backend present, queues 1..64, MTU valid, section size >= 68, ...).
  // Errors: kInvalidArgument.
  static Expected<std::unique_ptr<NetvspDevice>> Create(NicConfig config);
  ~NetvspDevice() override;
  NetvspDevice(const NetvspDevice&) = delete;
  NetvspDevice& operator=(const NetvspDevice&) = delete;

  // ---- host::Device ----
  host::OfferParams Offer() const override;
  uint16_t MaxSubchannels() const override;
  void Install(host::DeviceControl* control) override;
  Status Open(host::HostChannel& channel) override;
  host::CloseStatus Close(host::HostChannel& channel) override;

  // ---- runtime control ----
  // Plugs (true) or unplugs (false) the cable: sets the backend's link and, once RNDIS is
  // initialized, indicates MEDIA_CONNECT / MEDIA_DISCONNECT to the guest (spec 6.12). A quick
  // down-up is indicated as both transitions.
  Status SetLinkUp(bool up);
  bool link_up() const;

  // Manual mode: runs every open queue's service round until it has nothing left (bounded).
  // Returns true if some queue still reported work.
  bool Poll();

  // ---- introspection ----
  std::shared_ptr<const NicCounters> counters() const { return counters_; }
  NicStats Stats() const { return counters_->Snapshot(); }
  NicState State() const;
  // {"id", "mac", "link", "nvsp_version", ..., "stats": {ethtool -S names}}.
  nlohmann::json StatsJson() const;
  nlohmann::json InspectJson() const override { return StatsJson(); }
  const NicConfig& config() const { return config_; }
  const Guid& instance_id() const { return instance_id_; }
  // Largest frame this NIC carries (MTU + 14, capped by the backend).
  uint32_t max_frame_size() const { return max_frame_; }
  // Channels this NIC offers at most (config.queues capped by the backend).
  uint32_t channel_limit() const { return channel_limit_; }

 private:
  class Impl;
  NetvspDevice(NicConfig config, Guid instance_id, uint32_t max_frame, uint32_t channel_limit);
  void OnLinkChange(bool up) override;

  const NicConfig config_;
  const Guid instance_id_;
  const uint32_t max_frame_;
  const uint32_t channel_limit_;
  std::shared_ptr<NicCounters> counters_;
  std::unique_ptr<Impl> impl_;
};

// Text form of a NicState + stats for logs ("net0: link up, nvsp 0x60001, 4/4 channels, ...").
std::string DescribeNic(const NicState& state);

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_NETVSP_DEVICE_H_
