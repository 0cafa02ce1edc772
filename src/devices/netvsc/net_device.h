// File: devices/netvsc/net_device.h
//
// What: `NetDevice`, what a frontend (the TAP frontend, an application using the burst API, a
// benchmark) sees of one synthetic NIC that netvsc brought up: its identity (MAC, MTU, name),
// link state with a change callback, how many queues (channels) it has, burst transmit and
// receive per queue, one wait fd per queue for threads that sleep, and a statistics snapshot with
// `ethtool -S` names. The Linux analogue is the net_device netvsc registers (netvsc_drv.c:
// ndo_open/ndo_stop, ndo_start_xmit + ndo_select_queue, NAPI -> the stack, ethtool ops).
//
// Transmit: Send(queue, batch) copies every frame it consumes into a send-buffer section (or a
// guest-RAM bounce slot for frames that do not fit one) before it returns, so the caller may
// reuse its buffers at once. It returns how many frames from the front of the batch were
// consumed (sent, or dropped and counted); fewer than batch.size() means back-pressure: the
// queue's ring or buffers are full, the queue may be stopped (tx_stopped()), and the caller
// retries after the queue's wait fd fires. kAutoQueue picks each frame's queue from its flow hash
// through the host's 16-entry send table (spec 7.9, 8.5).
//
// Receive: frames the host delivered on queue q wait in q's receive ring until Receive(q, ...)
// moves them into the caller's buffers (with what the host's PPIs said: hash, VLAN, checksum).
// A full ring drops frames (rx_no_memory).
//
// Sleeping: a consumer thread per queue loops { Receive / Send; if nothing to do and
// PrepareWait(q) then poll(wait_fd(q)) }. After PrepareWait() returns true, a thread that waits
// for transmit room re-checks tx_stopped(q) before sleeping: the fd fires for frames received
// and for the queue being woken, but only after it was armed.
//
// Spec: vmbus-protocol.md 5.8 (queue = channel), 6.6 (PPIs), 6.10 (packet filter), 6.12 (link),
//       7.6 (NAPI delivery), 7.9 and 8.5 (queue selection).
// Linux: drivers/net/hyperv/netvsc_drv.c.
// Thread-safety: every method is thread-safe. Send() on a queue may be called from several
// threads (the queue's ring is taken once per call), but a queue is meant to be driven by one
// thread; Receive() and PrepareWait() of one queue must be called by one thread at a time.
// The link callback runs on a netvsc thread (a vCPU thread for host indications): it must be
// quick and must not call Open()/Close()/SetPacketFilter().
#ifndef UVMBUS_DEVICES_NETVSC_NET_DEVICE_H_
#define UVMBUS_DEVICES_NETVSC_NET_DEVICE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/error.h"
#include "common/guid.h"
#include "devices/netvsc/netvsc_stats.h"
#include "devices/netvsc/rx_ring.h"
#include "net/frame.h"

namespace uvmbus::netvsc {

// Send(kAutoQueue, ...): choose each frame's queue by its flow hash.
inline constexpr uint32_t kAutoQueue = 0xFFFFFFFF;
// Size of the send indirection table (VRSS_SEND_TAB_SIZE).
inline constexpr uint32_t kSendTableSize = 16;

// Called with the new link state (true = carrier up).
using LinkCallback = std::function<void(bool up)>;

class NetDevice {
 public:
  virtual ~NetDevice() = default;

  // ---- Identity ----
  // The device's instance GUID (the offer's if_instance).
  virtual const Guid& instance_id() const = 0;
  // "netvsc<instance short>" or the host's friendly name (OID_GEN_FRIENDLY_NAME) when it is not
  // "Network Adapter" (Linux sets it as the interface alias).
  virtual std::string name() const = 0;
  // The permanent MAC address (OID_802_3_PERMANENT_ADDRESS).
  virtual net::MacAddress mac() const = 0;
  // Payload MTU (the configured one, lowered to OID_GEN_MAXIMUM_FRAME_SIZE if the host's is
  // smaller) and the largest frame the NIC sends (MTU + 14).
  virtual uint32_t mtu() const = 0;
  uint32_t max_frame_size() const { return mtu() + net::kEthHeaderSize; }
  // The negotiated NVSP version word (spec 5.2) and the NDIS version announced.
  virtual uint32_t nvsp_version() const = 0;

  // ---- Link ----
  // Carrier: the host reports the medium connected and the interface is open.
  virtual bool link_up() const = 0;
  // Link speed in Mbit/s (OID_GEN_LINK_SPEED / LINK_SPEED_CHANGE; 0 if unknown).
  virtual uint32_t link_speed_mbps() const = 0;
  // Installs the link change callback (replacing any previous one; empty = none).
  virtual void SetLinkCallback(LinkCallback callback) = 0;

  // ---- Interface up / down (Linux netvsc_open / netvsc_close) ----
  // SET OID_GEN_CURRENT_PACKET_FILTER = DIRECTED | ALL_MULTICAST | BROADCAST (0x0D): the host
  // starts delivering frames. Errors: kUnavailable (device removed), kTimeout, kProtocol (the
  // host refused).
  virtual Status Open() = 0;
  // Packet filter 0: the host stops delivering (spec 6.10). Errors as Open().
  virtual Status Close() = 0;
  // Any filter (wire::kNdisPacketFilter* bits, e.g. PROMISCUOUS). Errors as Open().
  virtual Status SetPacketFilter(uint32_t filter) = 0;
  virtual bool is_open() const = 0;

  // ---- Queues ----
  // Channels in use (primary + sub-channels), 1..64.
  virtual uint32_t queue_count() const = 0;
  // Transmits frames on `queue` (< queue_count()) or kAutoQueue; see the file comment. Returns 0
  // while the interface is closed or the device removed, and for an invalid queue.
  virtual uint32_t Send(uint32_t queue, const net::FrameBatch& batch) = 0;
  // True while the queue is stopped (ring below 10 % free; spec 3.5 / Linux netvsc).
  virtual bool tx_stopped(uint32_t queue) const = 0;
  // The queue kAutoQueue would pick for `frame`.
  virtual uint32_t SelectQueue(std::span<const uint8_t> frame) const = 0;
  // The send indirection table in force (host's NVSP 134, or i % queue_count()).
  virtual std::array<uint32_t, kSendTableSize> send_table() const = 0;

  // Moves received frames of `queue` into `batch`'s buffers; `info` (optional) receives
  // batch.size() entries. Returns the number filled (0: nothing waiting).
  virtual uint32_t Receive(uint32_t queue, net::RxBatch& batch, RxFrameInfo* info = nullptr) = 0;
  // The queue's wait fd (POLLIN) and the arm step; see the file comment. -1 / false for an
  // invalid queue.
  virtual int wait_fd(uint32_t queue) const = 0;
  virtual bool PrepareWait(uint32_t queue) = 0;

  // ---- Statistics ----
  virtual StatsSnapshot Stats() const = 0;
  virtual const NetvscStats& counters() const = 0;
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_NET_DEVICE_H_
