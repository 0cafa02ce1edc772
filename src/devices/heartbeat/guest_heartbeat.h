// File: devices/heartbeat/guest_heartbeat.h
//
// What: `HeartbeatDriver`, the guest driver of the Hyper-V heartbeat integration service (class
// 57164f39-9115-4e78-ab55-382f3bd5422d), behaving on the wire exactly like Linux's util driver
// (registered as "hv_utils"): probe opens the channel with the util ring sizes in the default
// batched callback mode; the callback reads every packet (copied out of the ring), answers
// NEGOTIATE requests with wire::PrepareIcNegotiateResponse (Linux vmbus_prep_negotiate_resp with
// the framework list {3.0, 1.0} and heartbeat list {3.0, 1.0}) and HEARTBEAT requests with
// sequence + 1 (wire::PrepareHeartbeatResponse), as in-band packets without completion request
// carrying the request's trans_id, and signals the host only when a commit says so
// (spec 3.4/3.5). Remove closes the channel.
//
// Hostile host (spec 9.1, 9.4): a packet that is not in-band, shorter than the IC header, whose
// icmsgsize runs past the packet, or a heartbeat without room for seq_num is counted in
// `bad_packets` and dropped unanswered (stricter than Linux, which ignores icmsgsize and the
// packet type). A request of another IC type is answered with status HV_E_FAIL, as Linux does,
// and counted in `unknown_requests`. A corrupt ring is counted (`ring_errors`) and the channel is
// left masked in direct mode so it cannot busy-loop the vCPU; the bus closes it on remove.
//
// Spec: vmbus-protocol.md 2.8 (open/close), 3.4-3.6 (signalling, masking), 4.3 (in-band
//       packets), 7.4/7.5 (batched callback mode), 9.1/9.4 (hostile input). The IC framing is
//       described byte for byte in wire/ic_messages.h.
// Linux: drivers/hv/hv_util.c (util_probe, util_remove, heartbeat_onchannelcallback, hb_versions,
//        HV_UTIL_RING_SEND_SIZE / HV_UTIL_RING_RECV_SIZE = VMBUS_RING_SIZE(3 * 4096),
//        heartbeat_init: max_pkt_size = 2 * 4096).
// Thread-safety: Probe/Remove run on the bus's device worker (guest/driver.h); the channel
// callback runs on the channel's vCPU thread. Stats()/WaitFor() may be called from any thread.
// The observer runs on vCPU threads: it must be quick and must not block or call the bus.
#ifndef UVMBUS_DEVICES_HEARTBEAT_GUEST_HEARTBEAT_H_
#define UVMBUS_DEVICES_HEARTBEAT_GUEST_HEARTBEAT_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "common/counter.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/heartbeat/change_notifier.h"
#include "guest/channel.h"
#include "guest/driver.h"
#include "wire/device_guids.h"

namespace uvmbus::devices {

// Each util ring: VMBUS_RING_SIZE(3 * 4096) = one 4 KiB header page + 3 data pages (Linux
// HV_UTIL_RING_SEND_SIZE / HV_UTIL_RING_RECV_SIZE on 4 KiB-page guests).
inline constexpr uint32_t kUtilRingBytes = 4 * 4096;
// Largest host->guest packet the heartbeat channel accepts (Linux heartbeat_init).
inline constexpr uint32_t kHeartbeatMaxPacketSize = 2 * 4096;
// Packets one callback run handles at most (style 1.9 #11); the batched tasklet calls again if
// more are waiting.
inline constexpr int kHeartbeatCallbackQuota = 64;

// What the driver reports to its observer.
struct HeartbeatEvent {
  enum class Kind : uint8_t {
    kNegotiated,  // a NEGOTIATE was answered with an agreement
    kHeartbeat,   // a HEARTBEAT was answered
  };
  Kind kind = Kind::kHeartbeat;
  uint32_t relid = 0;
  uint64_t sequence = 0;           // kHeartbeat: the host's seq_num (answered with + 1)
  uint32_t framework_version = 0;  // kNegotiated: chosen versions (wire::MakeIcVersion form)
  uint32_t heartbeat_version = 0;

  // "heartbeat seq=N" / "heartbeat negotiated framework 3.0 heartbeat 3.0".
  std::string ToString() const;
};
using HeartbeatObserver = std::function<void(const HeartbeatEvent&)>;

// Snapshot of the driver's counters (summed over its devices).
struct HeartbeatDriverStats {
  uint64_t devices = 0;             // devices currently bound
  uint64_t probes = 0;              // successful probes
  uint64_t negotiations = 0;        // NEGOTIATE answered with an agreement
  uint64_t negotiate_refusals = 0;  // NEGOTIATE answered with "no common version"
  uint64_t heartbeats = 0;          // HEARTBEAT answered
  uint64_t unknown_requests = 0;    // other IC types answered with HV_E_FAIL (as Linux)
  uint64_t bad_packets = 0;         // dropped unanswered (see the file comment)
  uint64_t send_failures = 0;       // answers lost because the guest->host ring was full
  uint64_t ring_errors = 0;         // ring corruption seen (channel stopped)
  bool has_sequence = false;        // last_sequence is meaningful
  uint64_t last_sequence = 0;       // seq_num of the last answered HEARTBEAT
};

class HeartbeatDriver final : public guest::Driver {
 public:
  // `observer` (optional) is told about every agreement and answered heartbeat.
  explicit HeartbeatDriver(HeartbeatObserver observer = {});
  ~HeartbeatDriver() override;
  HeartbeatDriver(const HeartbeatDriver&) = delete;
  HeartbeatDriver& operator=(const HeartbeatDriver&) = delete;

  // ---- guest::Driver ----
  // "hv_utils", as Linux's util driver registers.
  std::string_view name() const override { return "hv_utils"; }
  // {kHeartbeatClassGuid}.
  std::span<const Guid> id_table() const override { return kIdTable; }
  // Opens the device's primary channel (rings of kUtilRingBytes, batched mode, max packet
  // kHeartbeatMaxPacketSize). Errors: those of guest::Channel::Open.
  Status Probe(guest::VmbusDevice& device) override;
  // Closes the channel (if still open) and forgets the device.
  void Remove(guest::VmbusDevice& device) override;

  HeartbeatDriverStats Stats() const;
  // Waits until `predicate(Stats())` holds or `timeout` passes (no polling).
  bool WaitFor(const std::function<bool(const HeartbeatDriverStats&)>& predicate,
               std::chrono::milliseconds timeout) const;

 private:
  // Per-device state shared with the channel callback (which owns a reference, so it stays
  // valid for as long as the channel can call it).
  struct DeviceContext;

  static constexpr std::array<Guid, 1> kIdTable = {wire::kHeartbeatClassGuid};

  void OnChannel(DeviceContext& ctx, guest::Channel& channel);
  // Handles one copied-out packet; appends the answer to the write batch `out_cursor`.
  // Returns false if the ring turned out corrupt.
  bool HandlePacket(DeviceContext& ctx, guest::Channel& channel, const ring::IncomingPacket& p,
                    ring::WriteCursor& out_cursor);
  // Writes one answer (in-band, no completion requested, trans_id echoed). False: corrupt ring.
  bool Answer(guest::Channel& channel, ring::WriteCursor& cursor, std::span<const uint8_t> bytes,
              uint64_t trans_id, bool* written);
  void Bad(const DeviceContext& ctx, std::string_view why);
  void Emit(const HeartbeatEvent& event) const {
    if (observer_) observer_(event);
  }

  const HeartbeatObserver observer_;

  mutable std::mutex mu_;
  std::map<guest::VmbusDevice*, std::shared_ptr<DeviceContext>> devices_ GUARDED_BY(mu_);

  // Counters: callbacks of different devices may run on different vCPUs (atomic adds).
  Counter probes_;
  Counter negotiations_;
  Counter negotiate_refusals_;
  Counter heartbeats_;
  Counter unknown_requests_;
  Counter bad_packets_;
  Counter send_failures_;
  Counter ring_errors_;
  std::atomic<bool> has_sequence_{false};
  std::atomic<uint64_t> last_sequence_{0};
  ChangeNotifier notifier_;
};

}  // namespace uvmbus::devices

#endif  // UVMBUS_DEVICES_HEARTBEAT_GUEST_HEARTBEAT_H_
