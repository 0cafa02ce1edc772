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
//     queue q is written to the TAP's queue q.
// Spec: vmbus-protocol.md 5.7 (bring-up order), 7.8 (sub-channels), 7.9 (queue selection).
// Linux: drivers/net/hyperv/netvsc_drv.c (what a guest's kernel does with the NIC).
// Thread-safety: DescribeBringUp is a pure read; TapPump owns its threads (Start/Stop from one
// thread).
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
};

class TapPump {
 public:
  // Creates the TAP (in namespace spec.netns when given) with the NIC's MAC, queue count, MTU
  // and spec.addr, and starts one pump thread per queue. Errors: those of NetNamespace::Open and
  // TapFrontend::Create (kPermissionDenied without CAP_NET_ADMIN, kUnavailable without
  // /dev/net/tun), kIo.
  static Expected<std::unique_ptr<TapPump>> Start(netvsc::NetDevice& device, const TapSpec& spec);
  ~TapPump();  // Stop()
  TapPump(const TapPump&) = delete;
  TapPump& operator=(const TapPump&) = delete;

  void Stop();
  const std::string& ifname() const;
  const TapPumpCounters& counters() const { return counters_; }

 private:
  TapPump(netvsc::NetDevice& device, std::optional<net::NetNamespace> netns,
          std::unique_ptr<net::TapEndpoint> tap, UniqueFd stop);
  void Loop(uint32_t queue);

  netvsc::NetDevice& device_;
  std::optional<net::NetNamespace> netns_;
  std::unique_ptr<net::TapEndpoint> tap_;
  UniqueFd stop_;
  std::vector<std::thread> threads_;
  TapPumpCounters counters_;
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_GUEST_NIC_H_
