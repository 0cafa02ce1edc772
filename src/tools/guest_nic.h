// File: tools/guest_nic.h
//
// What: the guest side of `uvmbus guest`'s synthetic NIC, beyond the netvsc driver itself:
//   * DescribeBringUp(): the lines `uvmbus guest` prints once netvsc brought a NIC up (NVSP and
//     NDIS versions, receive/send buffers, RNDIS, one line per queue with its relid and the vCPU
//     its interrupts go to, link), read from the NetvscDevice after the fact - netvsc runs the
//     whole bring-up inside its probe (spec 5.7, 7.8);
//   * TapPump: the NIC as a kernel interface (net::TapFrontend) in a network namespace, one
//     thread per queue pumping frames both ways: what the kernel transmits goes out through
//     netvsc (queue chosen by the send table, NetDevice::kAutoQueue), what the host delivers on
//     queue q is written to the TAP's queue q. The interface outlives the NIC: Detach() (host
//     gone, NIC rescinded) turns its carrier off and keeps it; Attach() gives it the next NIC.
// Spec: vmbus-protocol.md 5.7 (bring-up order), 7.8 (sub-channels), 7.9 (queue selection).
// Linux: drivers/net/hyperv/netvsc_drv.c (what a guest's kernel does with the NIC).
// Thread-safety: DescribeBringUp is a pure read; TapPump owns its threads (Create/Start/Attach/
// Detach/Stop from one thread; counters() and carrier() from any).
#ifndef UVMBUS_TOOLS_GUEST_NIC_H_
#define UVMBUS_TOOLS_GUEST_NIC_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "devices/netvsc/netvsc_device.h"
#include "net/netns.h"
#include "net/tap.h"
#include "tools/nic_spec.h"

namespace uvmbus::tools {

// "netvsc: ..." lines describing a NIC that is up.
std::vector<std::string> DescribeBringUp(const netvsc::NetvscDevice& device);

// "6.1" for NVSP 0x60001, "5" for 0x50000, "2" for 0x30002 (Linux's names for the versions).
std::string NvspVersionName(uint32_t version);

struct TapPumpCounters {
  std::atomic<uint64_t> to_host{0};    // frames the kernel transmitted, sent through netvsc
  std::atomic<uint64_t> to_kernel{0};  // frames the host delivered, written to the TAP
  std::atomic<uint64_t> dropped{0};    // frames refused on either side (back-pressure)
  std::atomic<uint64_t> attaches{0};   // Attach() calls that started pumping
  std::atomic<uint64_t> detaches{0};   // Detach() calls that stopped pumping
  std::atomic<uint64_t> carrier_off{0};  // times the carrier was turned off (link down)
};

// The TAP interface outlives the NICs it is attached to: when the host goes away (or rescinds
// the NIC) `uvmbus guest` Detach()es the pump - carrier off (TUNSETCARRIER), threads stopped -
// and keeps the interface (same ifindex, MAC, addresses, namespace) for the NIC of the next
// session, which it Attach()es (docs/robustness.md section 4).
class TapPump {
 public:
  // Creates the TAP (in namespace spec.netns when given) with `mac`, `queues` queues, `mtu` and
  // spec.addr, carrier off, nothing pumped yet. Errors: those of NetNamespace::Open and
  // TapFrontend::Create (kPermissionDenied without CAP_NET_ADMIN, kUnavailable without
  // /dev/net/tun), kIo.
  static Expected<std::unique_ptr<TapPump>> Create(const TapSpec& spec, const net::MacAddress& mac,
                                                   uint32_t queues, uint32_t mtu);
  // Create() for `device` (its MAC, queue count and MTU), then Attach(device).
  static Expected<std::unique_ptr<TapPump>> Start(netvsc::NetDevice& device, const TapSpec& spec);
  ~TapPump();  // Detach()
  TapPump(const TapPump&) = delete;
  TapPump& operator=(const TapPump&) = delete;

  // Pumps frames between the TAP and `device`, which must stay alive until Detach(): n =
  // min(device queues, TAP queues) threads, thread i moving TAP queue i -> the device (queue by
  // the send table) and device queues i, i+n, ... -> TAP queue i. The carrier follows the
  // device's link from now on. Errors: kInvalidArgument (already attached, or a device without
  // queues), the TAP's SetQueueCount errors, kIo.
  Status Attach(netvsc::NetDevice& device);
  // Stops pumping: the device's link callback is removed, the threads joined, the carrier turned
  // off. The interface stays. Idempotent.
  void Detach();
  // Detach() (the one-NIC API of the first version).
  void Stop() { Detach(); }

  bool attached() const { return device_ != nullptr; }
  const std::string& ifname() const;
  // The TAP's carrier as last set.
  bool carrier() const;
  const TapPumpCounters& counters() const { return counters_; }

 private:
  TapPump(std::optional<net::NetNamespace> netns, std::unique_ptr<net::TapEndpoint> tap,
          UniqueFd stop);
  void Loop(uint32_t index, uint32_t workers);
  void SetCarrier(bool up);

  std::optional<net::NetNamespace> netns_;
  std::unique_ptr<net::TapEndpoint> tap_;
  UniqueFd stop_;
  std::atomic<bool> stopping_{false};
  netvsc::NetDevice* device_ = nullptr;  // while attached (Attach/Detach from one thread)
  std::vector<std::thread> threads_;
  TapPumpCounters counters_;
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_GUEST_NIC_H_
