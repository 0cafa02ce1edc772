// File: host/host_channel.h
//
// What: `HostChannel`, what a device gets for one open channel: its identity (relid,
// sub-channel index, connection id, target VP), its two rings (guest->host `inbound()`, read by
// the host; host->guest `outbound()`, written by the host), the doorbell the guest rings with
// SignalEvent(connection_id), the host->guest signal (event bit relid on the target VP), lookup
// of the other GPADLs the guest created for this channel (netvsp's receive/send buffers), and
// per-channel counters named after Linux's sysfs attributes
// (Documentation/ABI/stable/sysfs-bus-vmbus: events, interrupts, in_mask, out_mask, read_avail,
// write_avail, intr_in_full, intr_out_empty, out_full_first, out_full_total).
//
// Created by the VmbusServer when the guest's OPENCHANNEL is accepted (spec 2.8), destroyed after
// the device's Close() finished. The channel pins its ring GPADL and every GPADL handed out by
// GpadlSpan()/Gpadl(), so a guest that tears a GPADL down while the device still uses it cannot
// make the host touch unmapped memory (the mapping lives until the channel is destroyed).
//
// Spec: vmbus-protocol.md 1.4/1.7 (host->guest signal: SIEF bit relid on target_vp), 2.3
//       OPENCHANNEL (target_vp, downstream_ringbuffer_pageoffset, userdata), 3.1 (ring A at GPADL
//       offset 0 = guest->host, ring B at the downstream offset = host->guest), 9.3 H21
//       (target_vp 0xFFFFFFFF: interrupts disabled).
// Linux: include/linux/hyperv.h struct vmbus_channel (sysfs counters), drivers/hv/vmbus_drv.c
//       (channel attributes). OpenVMM: vm/devices/vmbus/vmbus_channel/src/channel.rs
//       (OpenRequest, ChannelControl), gpadl_ring.rs.
// Thread-safety: inbound()/outbound()/ConsumeDoorbell() follow the ring classes: one data thread
// at a time (the device's worker). SignalGuest() is lock-free and may be called from any thread.
// target_vp() is atomic (MODIFYCHANNEL may change it while the worker runs). Gpadl()/GpadlSpan()
// take the server's state lock briefly (control path). Stats() may be called from any thread.
#ifndef UVMBUS_HOST_HOST_CHANNEL_H_
#define UVMBUS_HOST_HOST_CHANNEL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "host/gpadl_view.h"
#include "partition/doorbell.h"
#include "partition/host_partition.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/channel_messages.h"

namespace uvmbus::host {

// A snapshot of one channel's counters and ring state, with Linux sysfs names.
struct ChannelStats {
  uint32_t relid = 0;
  uint16_t subchannel_id = 0;        // sub_channel_index
  uint32_t cpu = 0;                  // target VP (0xFFFFFFFF: interrupts disabled)
  uint32_t monitor_id = wire::kNoMonitorId;  // 0..127 if offered with a monitor (spec 1.5), else 0xFF
  uint32_t in_mask = 0;              // interrupt_mask of the guest->host ring (host sets it)
  uint32_t out_mask = 0;             // interrupt_mask of the host->guest ring (guest sets it)
  uint32_t read_avail = 0;           // bytes waiting in the guest->host ring
  uint32_t write_avail = 0;          // raw free bytes in the host->guest ring
  uint32_t pending = 0;              // pending_send_sz the guest published in its ring
  uint64_t events = 0;               // guest->host signals received (doorbell)
  uint64_t interrupts = 0;           // host->guest signals sent
  uint64_t intr_in_full = 0;         // signals sent because reading freed room for the guest
  uint64_t intr_out_empty = 0;       // signals sent because outbound went empty -> non-empty
  uint64_t out_full_first = 0;       // writes that first found the outbound ring full
  uint64_t out_full_total = 0;       // all writes that found the outbound ring full
  uint64_t in_packets = 0;           // packets read from the inbound ring
  uint64_t out_packets = 0;          // packets written to the outbound ring
  uint64_t ring_errors = 0;          // ring corruption seen (both rings)
};

class HostChannel {
 public:
  // Looks up a created GPADL of this channel by handle (implemented by the server).
  using GpadlLookup = std::function<Expected<std::shared_ptr<GpadlView>>(uint32_t handle)>;

  struct Params {
    uint32_t relid = 0;
    uint16_t sub_channel_index = 0;
    uint32_t connection_id = 0;
    uint32_t target_vp = 0;
    Guid class_id;
    Guid instance_id;
    std::array<uint8_t, wire::OpenChannel::kUserDataBytes> userdata{};
    // The ring GPADL (already checked page-aligned, one range) and the downstream offset in
    // pages (already checked: 2 <= offset <= pages - 2).
    std::shared_ptr<GpadlView> ring_gpadl;
    uint32_t downstream_page_offset = 0;
    // Largest guest->host packet the inbound ring's own buffer accepts (R5).
    uint32_t max_inbound_packet_size = 0;
    partition::Doorbell doorbell;
    partition::HostPartition* partition = nullptr;
    GpadlLookup lookup;
  };

  // Attaches to the two rings inside the ring GPADL (validating the indices the guest
  // initialised). Errors: kInvalidArgument / kCorrupt from the ring layer (bad ring memory or
  // indices), kInvalidArgument for missing parameters.
  static Expected<std::unique_ptr<HostChannel>> Create(Params params);

  HostChannel(const HostChannel&) = delete;
  HostChannel& operator=(const HostChannel&) = delete;
  ~HostChannel();

  uint32_t relid() const { return relid_; }
  uint16_t sub_channel_index() const { return sub_channel_index_; }
  uint32_t connection_id() const { return connection_id_; }
  const Guid& class_id() const { return class_id_; }
  const Guid& instance_id() const { return instance_id_; }
  // OPENCHANNEL userdata (device specific; netvsc sends zeros).
  std::span<const uint8_t> userdata() const { return userdata_; }

  // The VP host->guest interrupts go to; wire::kTargetVpNone means interrupts are disabled.
  uint32_t target_vp() const { return target_vp_.load(std::memory_order_relaxed); }

  // Guest->host ring (the host reads) and host->guest ring (the host writes).
  ring::IncomingRing& inbound() { return inbound_; }
  ring::OutgoingRing& outbound() { return outbound_; }

  // Signals the guest on this channel (event bit relid on target_vp(), spec 1.7); nothing when
  // interrupts are disabled (target_vp == 0xFFFFFFFF, spec 9.3 H21). Counts `interrupts`.
  // Lock-free.
  void SignalGuest();

  // The doorbell: a non-blocking eventfd that becomes readable when the guest signalled this
  // channel. ConsumeDoorbell() clears it and counts `events`; returns the coalesced count.
  int doorbell_fd() const { return doorbell_.fd(); }
  uint64_t ConsumeDoorbell();

  // A GPADL the guest created for this channel (netvsp's receive/send buffers), pinned until the
  // channel is destroyed. GpadlSpan() is its data() (the single range's bytes).
  // Errors: kNotFound (no such created GPADL on this channel), kUnavailable (server gone).
  Expected<std::shared_ptr<GpadlView>> Gpadl(uint32_t handle);
  Expected<std::span<uint8_t>> GpadlSpan(uint32_t handle);

  // The guest this channel belongs to: devices resolve guest page numbers of GPA-direct packets
  // through it (HostPartition::GuestPages, bounds-checked; spec 4.5, 9.7).
  partition::HostPartition& partition() const { return *partition_; }

  // The ring GPADL (pinned for the channel's lifetime).
  const GpadlView& ring_gpadl() const { return *ring_gpadl_; }

  // Counters and ring state.
  ChannelStats Stats() const;

 private:
  friend class VmbusServer;
  HostChannel(Params params, ring::IncomingRing inbound, ring::OutgoingRing outbound);
  void set_target_vp(uint32_t vp) { target_vp_.store(vp, std::memory_order_relaxed); }

  const uint32_t relid_;
  const uint16_t sub_channel_index_;
  const uint32_t connection_id_;
  const Guid class_id_;
  const Guid instance_id_;
  const std::array<uint8_t, wire::OpenChannel::kUserDataBytes> userdata_;
  std::atomic<uint32_t> target_vp_;
  partition::HostPartition* const partition_;
  std::shared_ptr<GpadlView> ring_gpadl_;
  ring::IncomingRing inbound_;
  ring::OutgoingRing outbound_;
  partition::Doorbell doorbell_;
  Counter events_;
  Counter interrupts_;

  const GpadlLookup lookup_;  // valid while the channel exists (the server outlives it)
  std::mutex pins_mu_;
  std::vector<std::shared_ptr<GpadlView>> pins_ GUARDED_BY(pins_mu_);
};

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_HOST_CHANNEL_H_
