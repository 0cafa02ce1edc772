// File: host/device.h
//
// What: the contract between the VMBus server (host/vmbus_server.h) and a device provider
// (heartbeat, netvsp, ...): what a device offers, how it is told that the guest opened or closed
// one of its channels, and how it asks the server for sub-channel offers. One `Device` object
// serves one guest: a `DeviceFactory` builds a fresh set for every connecting guest.
//
//   server -> device:  Offer() / MaxSubchannels()   what to put in OFFERCHANNEL (spec 2.3)
//                      Install(control)            once, before any other call
//                      Open(channel)               guest opened channel index i (0 = primary)
//                      Close(channel)              guest closed it / rescind / unload / hang-up
//                      RetargetVp(channel, vp)     MODIFYCHANNEL (spec 2.3, 9.3 H23)
//   device -> server:  control->OfferSubchannels(n)  spec 7.8 (netvsp's NVSP 133 handler)
//                      control->CompleteClose(ch)    finish a Close() that returned kPending
//
// Spec: vmbus-protocol.md 1.1 (channels, primary/sub-channels), 2.3 OFFERCHANNEL, 2.7, 2.8,
//       7.8 (sub-channel handshake).
// OpenVMM: vm/devices/vmbus/vmbus_channel/src/channel.rs (VmbusDevice: offer, max_subchannels,
//       install, open, close, retarget_vp; enable_subchannels), offer.rs (OfferParams).
// Thread-safety: the server never calls one device's callbacks concurrently; it calls them from
// its control path (a partition thread or the thread that called a server method), never while
// holding its state lock, so a device may call DeviceControl from inside a callback or from its
// own threads (see each method for the exceptions).
#ifndef UVMBUS_HOST_DEVICE_H_
#define UVMBUS_HOST_DEVICE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/guid.h"
#include "partition/host_partition.h"

namespace uvmbus::host {

class HostChannel;

// What a device puts into its OFFERCHANNEL messages (spec 2.3). Sub-channel offers repeat the
// same GUIDs, flags and user_def with sub_channel_index 1..n (spec 1.1).
struct OfferParams {
  Guid class_id;                     // if_type: the device class (wire/device_guids.h)
  Guid instance_id;                  // if_instance: unique per device instance
  uint16_t chn_flags = 0;            // wire::kOfferFlag*; the 6.0 bits 0x2/0x4/0x8 are cleared
  uint16_t mmio_megabytes = 0;       // MMIO space wanted (0 for every device we have)
  std::array<uint8_t, 120> user_def{};  // device specific (pipe offers: u32 pipe_mode @0)
  std::string name;                  // for logs and snapshots ("heartbeat", "net0", ...)
  // Host side, not on the wire: the largest guest->host packet the channel's inbound ring
  // accepts into its own buffer (spec 9.4 R5; Linux default 4096, netvsc 4624).
  uint32_t max_inbound_packet_size = 4096;
  // Host side: offer every channel of this device with a monitor id (monitor_allocated = 1,
  // spec 1.5) when the guest gave a usable monitor page, and poll that page for its bits, so a
  // guest that signals only through the monitor page (DPDK's netvsc PMD) is heard. Guests that
  // use HvSignalEvent anyway (Linux low-latency channels, our guest) keep working.
  bool monitored = false;
};

// How a Close() ended.
enum class CloseStatus : uint8_t {
  kClosed,   // the device no longer touches the channel (rings, doorbell, GPADL spans)
  kPending,  // the device is still stopping; it calls DeviceControl::CompleteClose() later
};

// Handed to a device once (Device::Install): the device's way back into the server.
// Valid until the device is destroyed (the server destroys its devices last).
class DeviceControl {
 public:
  virtual ~DeviceControl() = default;

  // Makes sure sub-channels 1..`count` of this device are offered to the guest (spec 7.8): the
  // missing ones get fresh relids and an OFFERCHANNEL each; already offered ones are kept.
  // Returns how many new offers were sent. Allowed only while the primary channel is open.
  // Callable from any thread, including from inside Open() and from a data worker that the
  // control path may be waiting for in Close().
  // Errors: kInvalidArgument (count > MaxSubchannels()), kProtocol (primary not open),
  // kUnavailable (device rescinded, guest not connected), kResourceExhausted (no free relid).
  virtual Expected<uint16_t> OfferSubchannels(uint16_t count) = 0;

  // Finishes a Close() that returned kPending: the server releases the channel (rings, GPADL
  // pins, doorbell) and performs what waited for the close (an OPENCHANNEL that arrived while
  // closing, spec 2.8; UNLOAD_RESPONSE, spec 2.10). Call it from a thread that is not inside a
  // server callback (it takes the server's control lock). Unknown/already closed channels are
  // ignored.
  virtual void CompleteClose(HostChannel& channel) = 0;
};

// A device provider. Owned by its VmbusServer.
class Device {
 public:
  virtual ~Device() = default;

  // Offer parameters; called once when the device is added to a server.
  virtual OfferParams Offer() const = 0;

  // Most sub-channels this device may ask for (0 = single channel). OpenVMM caps a NIC at 64
  // queues.
  virtual uint16_t MaxSubchannels() const { return 0; }

  // Called once, before any other callback, with the device's control object.
  virtual void Install(DeviceControl* control) { (void)control; }

  // The guest opened channel `channel.sub_channel_index()` (0 = primary): its rings, doorbell
  // and GPADLs are ready. Return an error to fail the open (the guest gets OPENCHANNEL_RESULT
  // with a failure status). `channel` stays valid until Close() returns kClosed or the device
  // calls CompleteClose().
  virtual Status Open(HostChannel& channel) = 0;

  // The channel is being closed (guest CLOSECHANNEL, rescind, UNLOAD or guest hang-up). Either
  // stop all use of it and return kClosed (waiting for the device's own threads is fine, and
  // they may call OfferSubchannels meanwhile), or return kPending and call
  // DeviceControl::CompleteClose(channel) once stopped.
  virtual CloseStatus Close(HostChannel& channel) = 0;

  // MODIFYCHANNEL moved host->guest interrupts of `channel` to `target_vp` (already stored in
  // the channel: HostChannel::SignalGuest() uses it from now on). Optional.
  virtual void RetargetVp(HostChannel& channel, uint32_t target_vp) {
    (void)channel;
    (void)target_vp;
  }

  // Device-specific state and counters for snapshots (`uvmbus ls --json`, `uvmbus stats`):
  // a JSON object, or null when the device has nothing to add. Called from any thread, possibly
  // while the server holds its state lock: it must only read atomics or take the device's own
  // leaf locks, and never call back into the server.
  virtual nlohmann::json InspectJson() const { return nullptr; }
};

// Builds the devices of one connecting guest (each guest gets its own instances).
using DeviceFactory =
    std::function<std::vector<std::unique_ptr<Device>>(const partition::PeerInfo& peer)>;

}  // namespace uvmbus::host

#endif  // UVMBUS_HOST_DEVICE_H_
