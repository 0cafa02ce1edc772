// File: guest/vmbus_bus.h
//
// What: `VmbusBus`, the guest side of VMBus (Linux vmbus_connection + vmbus_drv + channel_mgmt):
// on top of a partition::GuestPartition it
//   * runs one thread per vCPU that takes the vCPU's single interrupt and runs the ISR - channel
//     events first (SIEF area 2 scanned by relid, callbacks dispatched by mode), then the SynIC
//     message slot (copied out, validated, handed on, freed, EOM) - followed by the vCPU's
//     softirq pass (channel tasklets, NAPI polls), spec 7.2-7.6;
//   * connects: INITIATE_CONTACT newest version first (5.3 ... 2.4; >= 5.0 on connection 4 with
//     msg_sint 2, then the returned msg_conn_id; < 5.0 on connection 1), REQUESTOFFERS, wait for
//     ALLOFFERS_DELIVERED; disconnects with UNLOAD / UNLOAD_RESPONSE (spec 2.5, 2.10);
//   * manages channels: responses complete waiters inline on the vCPU thread; offers go to an
//     ordered offer worker, rescinds to their own worker (so a rescind can wake an Open blocked
//     in a probe, M11/M12); primary devices are probed on a device worker and sub-channel offers
//     handed to the primary's sc_creation_callback on a sub-channel worker (spec 7.3);
//   * validates every host message (spec 9.2 M1-M19) and counts each rejection (BusStats).
//
// Typical use:
//   auto bus = VmbusBus::Create(partition.guest());      // starts the vCPU threads and workers
//   bus->RegisterDriver(my_driver);                       // before or after Connect
//   bus->AddObserver([](const BusEvent& e) { fmt::print("{}\n", e.ToString()); });
//   bus->Connect();                                       // negotiation, offers, initial probes
//   ...
//   bus->Disconnect();                                    // drivers removed, UNLOAD
//
// Spec: vmbus-protocol.md 1.3, 1.4, 2.5-2.10, 7.1-7.7, 9.2; design.md sections 2-4.
// Linux: drivers/hv/connection.c, vmbus_drv.c, channel_mgmt.c, channel.c.
// Thread-safety: all public methods are thread-safe, but Connect(), Disconnect(),
//       RegisterDriver() and UnregisterDriver() block (waiting for the host or for driver
//       callbacks): never call them from a driver callback, a vCPU thread or a bus worker.
//       Observers are called on bus threads (vCPU or workers) one at a time; they must not block
//       or call back into the bus's blocking methods. The partition must outlive the bus.
#ifndef UVMBUS_GUEST_VMBUS_BUS_H_
#define UVMBUS_GUEST_VMBUS_BUS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "guest/bus_core.h"
#include "guest/channel.h"
#include "guest/driver.h"
#include "guest/softirq.h"
#include "guest/vcpu_thread.h"
#include "partition/guest_partition.h"

namespace uvmbus::guest {

namespace internal {
class BusImpl;
}  // namespace internal

// Something that happened on the bus, for tools and logs.
enum class BusEventKind : uint8_t {
  kConnected,       // version negotiated (detail: "5.3, message connection 4")
  kOffer,           // OFFERCHANNEL accepted (primary or sub-channel)
  kProbe,           // a driver bound to a device
  kProbeFailed,     // a driver's Probe() failed (detail: the error)
  kNoDriver,        // a device without a matching driver
  kSubchannel,      // a sub-channel was handed to its primary's callback
  kRescind,         // RESCIND_CHANNELOFFER processed
  kRemove,          // a driver's Remove() ran
  kRelidReleased,   // RELID_RELEASED sent
  kDisconnected,    // Disconnect() finished
  kHostGone,        // the host hung up
};
std::string_view BusEventKindName(BusEventKind kind);

struct BusEvent {
  BusEventKind kind = BusEventKind::kOffer;
  uint32_t relid = 0;
  uint16_t sub_channel_index = 0;
  Guid class_id{};
  Guid instance_id{};
  std::string driver;  // driver name for probe/remove events
  std::string detail;  // error text, version, ...

  // One line, e.g. "probe: Heartbeat {57164f39-9115-4e78-ab55-382f3bd5422d} relid 1 -> driver
  // hv_utils".
  std::string ToString() const;
};
using BusObserver = std::function<void(const BusEvent&)>;

// A snapshot of one channel (for `uvmbus guest` listings).
struct ChannelInfo {
  uint32_t relid = 0;
  uint16_t sub_channel_index = 0;
  uint32_t target_vcpu = 0;
  ChannelState state = ChannelState::kOffered;
  CallbackMode mode = CallbackMode::kBatched;
  uint32_t connection_id = 0;
  bool monitor_allocated = false;
  uint8_t monitor_id = 0;
  bool rescinded = false;
  ChannelCounters counters;
};

// A snapshot of one device and its channels (primary first).
struct DeviceInfo {
  Guid class_id{};
  Guid device_id{};
  std::string description;  // lsvmbus text
  std::string driver;       // bound driver name, empty if none
  std::vector<ChannelInfo> channels;
};

class VmbusBus {
 public:
  // Creates the bus on `partition` and starts its vCPU threads and workers (nothing is sent to
  // the host yet). Errors: kIo / kInternal when a thread or eventfd cannot be created.
  static Expected<std::unique_ptr<VmbusBus>> Create(partition::GuestPartition& partition,
                                                    const BusOptions& options = {});
  // Disconnects if connected, then stops every thread.
  ~VmbusBus();
  VmbusBus(const VmbusBus&) = delete;
  VmbusBus& operator=(const VmbusBus&) = delete;

  // Negotiates the version (spec 2.5), requests the offers and waits for ALLOFFERS_DELIVERED (and,
  // with BusOptions::wait_for_probes, for the initial probes). Errors: kProtocol (already
  // connected, or an unusable msg_conn_id, M17); kUnsupported (the host accepted no version);
  // kUnavailable (a post failed for good, host gone); kTimeout (no VERSION_RESPONSE, or no
  // ALLOFFERS_DELIVERED within offers_timeout - the bus stays connected in that case).
  Status Connect();
  // Removes every device (drivers' Remove, channels closed, GPADLs torn down), then UNLOAD and
  // waits for UNLOAD_RESPONSE (>= 3.0, bounded). Idempotent. Errors: kTimeout (no
  // UNLOAD_RESPONSE; the bus is disconnected anyway).
  Status Disconnect();

  bool connected() const;
  // Negotiated version word (0 when not connected).
  uint32_t version() const;
  // Connection id channel messages are posted to (1, or the host's msg_conn_id for >= 5.0).
  uint32_t message_connection_id() const;

  // Registers a driver and probes every unbound device it matches (waits for those probes).
  // Errors as DriverRegistry::Register.
  Status RegisterDriver(Driver& driver);
  // Removes the driver from every device it is bound to (waits), then unregisters it.
  // Errors: kNotFound.
  Status UnregisterDriver(Driver& driver);

  // Adds an observer of bus events.
  void AddObserver(BusObserver observer);

  // Devices and their channels, in relid order of the primaries.
  std::vector<DeviceInfo> ListDevices() const;
  // The live device with this instance GUID, or null.
  std::shared_ptr<VmbusDevice> FindDevice(const Guid& instance_id) const;
  // The live channel with this relid, or null.
  std::shared_ptr<Channel> FindChannel(uint32_t relid) const;

  uint32_t vcpu_count() const;
  // vCPU `vcpu`'s softirq queue (bind tasklets / NAPI to it). Precondition: vcpu < vcpu_count().
  SoftirqQueue& softirq(uint32_t vcpu);
  const VcpuStats& vcpu_stats(uint32_t vcpu) const;
  const BusStats& stats() const;

  // Waits until at least `count` SynIC messages were taken and handled (freed + EOM) since the
  // bus was created. For tests and tools; false on timeout.
  bool WaitForMessages(uint64_t count, std::chrono::milliseconds timeout) const;
  // Waits until the offer, rescind, device and sub-channel workers ran everything posted so far
  // (in that order). False on timeout.
  bool Flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

 private:
  explicit VmbusBus(std::unique_ptr<internal::BusImpl> impl);
  std::unique_ptr<internal::BusImpl> impl_;
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_VMBUS_BUS_H_
