// File: devices/netvsc/frontend_bridge.h
//
// What: `FrontendBridge`, which connects a NIC that netvsc brought up (NetDevice) to a guest
// frontend that speaks the net/ endpoint contract - a TAP interface (net::TapFrontend) or an
// application's end of a pipe (net::CreatePipe) - the way Linux's stack sits on top of hv_netvsc:
//
//   frontend queue i --Poll()--> NetDevice::Send(i)        frames the guest's stack transmits
//   NetDevice::Receive(q) --> frontend queue q % n Send()  frames the host delivered
//   NetDevice link callback --> frontend SetLinkUp()       carrier
//
// One worker thread per active frontend queue (n = min(frontend.max_queues(), NIC queues); the
// frontend is set to n queues); worker i transmits from frontend queue i on NIC queue i and
// delivers every NIC queue q with q % n == i into frontend queue i, so each frontend queue and
// each NIC queue's receive side is driven by exactly one thread (net/endpoint.h, net_device.h).
// A worker sleeps in poll() on its frontend queue's fd and its NIC queues' fds (arm, re-check,
// sleep on both sides); frames the NIC refuses for now (queue stopped) are kept and retried after
// the NIC queue's fd fires, and nothing new is polled from the frontend meanwhile.
//
// Spec: vmbus-protocol.md 5.8 (queue = channel), 6.12 (link), 7.6 (delivery).
// Linux: the role of the network stack above netvsc_drv.c (ndo_start_xmit, napi_gro_receive,
//        netif_carrier_on/off).
// Thread-safety: Create() and the destructor from one control thread. The bridge installs the
// NIC's link callback (replacing any other) and removes it when destroyed. The NIC and the
// frontend must outlive the bridge.
#ifndef UVMBUS_DEVICES_NETVSC_FRONTEND_BRIDGE_H_
#define UVMBUS_DEVICES_NETVSC_FRONTEND_BRIDGE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "devices/netvsc/net_device.h"
#include "net/endpoint.h"

namespace uvmbus::netvsc {

struct FrontendBridgeStats {
  uint64_t tx_frames = 0;   // frontend -> NIC, consumed by the NIC
  uint64_t tx_dropped = 0;  // frontend frames dropped because the NIC had no carrier
  uint64_t rx_frames = 0;   // NIC -> frontend, consumed by the frontend
  uint64_t rx_refused = 0;  // NIC frames the frontend did not take (its back-pressure): dropped
};

class FrontendBridge {
 public:
  // Starts the workers. Errors: kInvalidArgument (no NIC queues), the frontend's SetQueueCount
  // errors, kIo (eventfd / thread creation).
  static Expected<std::unique_ptr<FrontendBridge>> Create(NetDevice& nic, net::Endpoint& frontend);
  // Stops and joins the workers and removes the link callback.
  ~FrontendBridge();
  FrontendBridge(const FrontendBridge&) = delete;
  FrontendBridge& operator=(const FrontendBridge&) = delete;

  uint32_t workers() const { return static_cast<uint32_t>(threads_.size()); }
  FrontendBridgeStats Stats() const;

 private:
  FrontendBridge(NetDevice& nic, net::Endpoint& frontend, UniqueFd stop_fd);
  void Worker(uint32_t index, uint32_t workers);

  NetDevice& nic_;
  net::Endpoint& frontend_;
  UniqueFd stop_fd_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  Counter tx_frames_;
  Counter tx_dropped_;
  Counter rx_frames_;
  Counter rx_refused_;
};

}  // namespace uvmbus::netvsc

#endif  // UVMBUS_DEVICES_NETVSC_FRONTEND_BRIDGE_H_
