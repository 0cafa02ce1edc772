// File: devices/heartbeat/host_heartbeat.h
//
// What: `HeartbeatDevice`, the host provider of the Hyper-V heartbeat integration service
// (class 57164f39-9115-4e78-ab55-382f3bd5422d, wire::kHeartbeatClassGuid): uvmbus's first real
// VMBus device. It offers one channel (a fresh instance GUID per guest) and, once the guest
// opened it, drives the IC exchange documented byte for byte in wire/ic_messages.h:
//
//   Open ──> NEGOTIATE request (in-band, completion requested, trans_id 1)
//            guest answers in place (in-band, same trans_id) ──> versions chosen ──> kRunning
//   kRunning: a HEARTBEAT request with sequence N every `interval` (the first one at once);
//            the guest answers N + 1 (Linux heartbeat_onchannelcallback) with the same trans_id.
//   Close ──> the worker stops; counters survive; a reopen negotiates again.
//
// One request is outstanding at a time: a tick that finds the last request unanswered waits,
// and after `response_timeout_intervals` ticks the request is abandoned (heartbeats_missed) and
// the next one is sent. An answer to an abandoned request is counted as late, not as bad.
//
// Everything read from the guest ring is hostile (spec 9.1, 9.4): every packet is copied out by
// ring::IncomingRing, then its VMBus type, IC framing, flags, status, transaction id, message
// type and sequence number are checked; a violation is counted in `bad_responses` and the
// packet dropped. A corrupt ring (spec 9.4 R1-R9) stops the channel (state kFailed,
// `ring_errors`); a guest that finds no common version fails the negotiation (kFailed,
// `negotiate_failures`). Nothing the guest does can crash, hang or block the device: writes that
// find the host->guest ring full skip the tick (`ring_full`).
//
// Data path: one small worker thread per open channel, poll()ing the channel's doorbell
// (guest->host signals), a timerfd (the interval) and a stop eventfd. Inbound reads mask the
// guest's signals while draining and re-check after unmasking (spec 3.6); the guest is signalled
// only when CommitWrite()/CommitRead() say so (spec 3.4, 3.5).
//
// Spec: vmbus-protocol.md 1.1 (offers), 2.7/2.8 (open/close), 3.4-3.6 (signalling, masking),
//       4.2/4.3 (in-band packets, completion requested), 4.7 (host transaction ids), 9.1/9.4
//       (hostile input). The IC framing itself is described in wire/ic_messages.h.
// Linux (the guest it must satisfy): drivers/hv/hv_util.c (util_probe, heartbeat_onchannelcallback,
//        HV_UTIL_RING_SEND_SIZE), drivers/hv/channel_mgmt.c (vmbus_prep_negotiate_resp).
// OpenVMM: vm/devices/hyperv_ic/src/common.rs (IcPipe::negotiate, read_message checks),
//          vm/devices/hyperv_ic/src/shutdown.rs (the same host-driven request/response shape).
// Thread-safety: the host::Device callbacks follow host/device.h (never concurrent). The worker
// thread owns the channel's rings. HeartbeatCounters may be read and waited on from any thread.
#ifndef UVMBUS_DEVICES_HEARTBEAT_HOST_HEARTBEAT_H_
#define UVMBUS_DEVICES_HEARTBEAT_HOST_HEARTBEAT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/counter.h"
#include "common/guid.h"
#include "devices/heartbeat/change_notifier.h"
#include "host/device.h"
#include "host/host_channel.h"

namespace uvmbus::devices {

// Configuration of one heartbeat device.
struct HeartbeatConfig {
  // Time between two heartbeat requests (Hyper-V: about 1 s). Values <= 0 mean the default.
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
  // Ticks a request may stay unanswered before it is abandoned (heartbeats_missed) and the next
  // one is sent. 0 is treated as 1.
  uint32_t response_timeout_intervals = 3;
  // Sequence number of the first heartbeat after each (re)negotiation; later ones add 1 each.
  uint64_t first_sequence = 0;
  // The offer's instance GUID; unset = a fresh random GUID per device (one device per guest).
  std::optional<Guid> instance_id;
  // Name for logs and snapshots.
  std::string name = "heartbeat";
};

// Where a heartbeat channel is in its lifecycle.
enum class HeartbeatState : uint8_t {
  kClosed,       // not open (initially, and after Close)
  kNegotiating,  // NEGOTIATE sent, waiting for the guest's answer
  kRunning,      // versions agreed, heartbeats flowing
  kFailed,       // no common version, or the guest corrupted the ring: idle until closed
};
std::string_view HeartbeatStateName(HeartbeatState state);

// A consistent-enough snapshot of the device's counters (each value is read once, relaxed).
struct HeartbeatStats {
  HeartbeatState state = HeartbeatState::kClosed;
  uint32_t framework_version = 0;  // negotiated (wire::MakeIcVersion form), 0 before
  uint32_t heartbeat_version = 0;
  uint64_t opens = 0;                // channel opens (Device::Open calls accepted)
  uint64_t negotiations = 0;         // successful version negotiations
  uint64_t negotiate_failures = 0;   // guest found no common version / chose one not offered
  uint64_t heartbeats_sent = 0;      // HEARTBEAT requests written to the ring
  uint64_t heartbeats_answered = 0;  // valid answers (seq + 1, same trans_id, status OK)
  uint64_t heartbeats_missed = 0;    // requests abandoned unanswered
  uint64_t late_responses = 0;       // answers to abandoned requests
  uint64_t bad_responses = 0;        // packets from the guest that failed validation
  uint64_t ring_full = 0;            // sends skipped because the host->guest ring was full
  uint64_t ring_errors = 0;          // ring corruption (the channel stops being served)
  bool has_answer = false;           // last_sequence is meaningful
  uint64_t last_sequence = 0;        // sequence number of the last answered request
};

// Stats as JSON for `uvmbus ls --json` / `stats` (snake_case keys as above; state as its name,
// versions as "major.minor").
nlohmann::json HeartbeatStatsToJson(const HeartbeatStats& stats);

// The device's counters, shared between the device (owned by the VmbusServer) and whoever wants
// to observe it (tools, tests): keep the shared_ptr, hand the device to the server.
// Thread-safety: all methods are thread-safe. Writers are the device's control callbacks and its
// worker thread, never concurrently on the same counter.
class HeartbeatCounters {
 public:
  HeartbeatStats Snapshot() const;

  // Waits until `predicate(Snapshot())` holds or `timeout` passes; returns whether it held.
  // Woken on every counter change (no polling).
  bool WaitFor(const std::function<bool(const HeartbeatStats&)>& predicate,
               std::chrono::milliseconds timeout) const;

 private:
  friend class HeartbeatDevice;
  friend class HeartbeatSession;

  // Wakes WaitFor() callers; takes a lock only when someone waits.
  void Notify() const { notifier_.Notify(); }

  std::atomic<HeartbeatState> state_{HeartbeatState::kClosed};
  std::atomic<uint32_t> framework_version_{0};
  std::atomic<uint32_t> heartbeat_version_{0};
  Counter opens_;
  Counter negotiations_;
  Counter negotiate_failures_;
  SingleWriterCounter heartbeats_sent_;
  SingleWriterCounter heartbeats_answered_;
  SingleWriterCounter heartbeats_missed_;
  SingleWriterCounter late_responses_;
  SingleWriterCounter bad_responses_;
  SingleWriterCounter ring_full_;
  SingleWriterCounter ring_errors_;
  std::atomic<bool> has_answer_{false};
  std::atomic<uint64_t> last_sequence_{0};

  ChangeNotifier notifier_;
};

class HeartbeatSession;

// The heartbeat host provider (see the file comment). One instance per guest.
class HeartbeatDevice final : public host::Device {
 public:
  explicit HeartbeatDevice(HeartbeatConfig config = {});
  // Stops the worker if a channel is still open (the server normally closes it first).
  ~HeartbeatDevice() override;
  HeartbeatDevice(const HeartbeatDevice&) = delete;
  HeartbeatDevice& operator=(const HeartbeatDevice&) = delete;

  // The counters, valid for as long as the caller keeps the pointer.
  std::shared_ptr<const HeartbeatCounters> counters() const { return counters_; }
  HeartbeatStats Stats() const { return counters_->Snapshot(); }
  nlohmann::json InspectJson() const override { return HeartbeatStatsToJson(Stats()); }
  const HeartbeatConfig& config() const { return config_; }
  const Guid& instance_id() const { return instance_id_; }

  // ---- host::Device ----
  // Class kHeartbeatClassGuid, this device's instance GUID, no flags, name from the config;
  // inbound packets up to 4096 bytes (Linux answers in place, so they mirror our requests).
  host::OfferParams Offer() const override;
  // Starts the worker and the negotiation. Errors: kInvalidArgument (a sub-channel: the service
  // has none), kProtocol (already open), kIo (eventfd/timerfd/thread creation failed).
  Status Open(host::HostChannel& channel) override;
  // Stops and joins the worker; always kClosed.
  host::CloseStatus Close(host::HostChannel& channel) override;

 private:
  HeartbeatConfig config_;
  Guid instance_id_;
  std::shared_ptr<HeartbeatCounters> counters_;
  std::unique_ptr<HeartbeatSession> session_;  // while a channel is open
};

// Convenience for a DeviceFactory: one heartbeat device with `config`.
std::unique_ptr<host::Device> MakeHeartbeatDevice(HeartbeatConfig config = {});

}  // namespace uvmbus::devices

#endif  // UVMBUS_DEVICES_HEARTBEAT_HOST_HEARTBEAT_H_
