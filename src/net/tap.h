// File: net/tap.h
//
// What: Linux TAP devices as endpoints.
//   * `TapEndpoint` (host backend): a NIC's frames go to and come from a TAP interface, one
//     non-blocking queue descriptor per NIC queue. Created with TUNSETIFF(IFF_TAP | IFF_NO_PI,
//     plus IFF_MULTI_QUEUE when queues > 1; the kernel then steers received traffic over the
//     attached queue descriptors), optionally inside a network namespace (NetNamespace::Run), or
//     adopted from pre-opened descriptors (fd passing, cloud-hypervisor `fd=[...]`).
//   * `TapFrontend` (guest side): the guest's synthetic NIC becomes a TAP interface in a chosen
//     namespace with the NIC's MAC and an IPv4 address, so the kernel stack (ping, iperf3) runs
//     over it. It is a TapEndpoint seen from the other side: netvsc Send()s the frames the NIC
//     received from the host (the kernel receives them) and Poll()s the frames the kernel
//     transmits (the NIC sends them to the host).
//
// Data path: Send() writes each frame with one write(2) (a TAP carries one frame per call; no
// multi-frame syscall exists short of io_uring/vhost); EAGAIN stops the batch (back-pressure: the
// unsent remainder is not consumed). Poll() readv(2)s each frame straight into the caller's
// buffer, with a private 64 KiB overflow iovec behind it: a frame that does not fit the buffer
// lands partly in the overflow, is detected by its length and dropped (rx_dropped) instead of
// failing with EFAULT and being lost silently. Frames shorter than 60 bytes are zero-padded. The
// queue's descriptor is its wait_fd (level-triggered: PrepareWait() always returns true).
//
// Configuration uses ioctls on an AF_INET socket created in the device's namespace (SIOCSIFMTU,
// SIOCSIFHWADDR, SIOCSIFADDR/SIOCSIFNETMASK, SIOCSIFFLAGS IFF_UP); no `ip` command and no
// netlink. SetLinkUp() sets the TAP's carrier (TUNSETCARRIER, Linux >= 5.0). SetQueueCount()
// detaches the unused queue descriptors (TUNSETQUEUE IFF_DETACH_QUEUE) so the kernel stops
// steering frames to queues nobody polls. The device disappears when the endpoint closes its
// descriptors (it is not persistent).
//
// Needs CAP_NET_ADMIN and /dev/net/tun.
//
// Spec: none (host/guest plumbing); design.md section 2 (net/ backends and frontends).
// Linux/OpenVMM: Linux drivers/net/tun.c and Documentation/networking/tuntap.rst; OpenVMM
//       vm/devices/net/net_tap; Firecracker devices/virtio/net/tap.rs and cloud-hypervisor
//       net_util/src/tap.rs (the same ioctls).
// Thread-safety: as net/endpoint.h (one thread per queue; control calls serialised internally).
#ifndef UVMBUS_NET_TAP_H_
#define UVMBUS_NET_TAP_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "net/endpoint.h"
#include "net/netns.h"

namespace uvmbus::net {

// An IPv4 address with its prefix length (10.0.0.1/24).
struct Ipv4Interface {
  Ipv4Address address{};
  uint8_t prefix_length = 24;  // 0..32
};

struct TapOptions {
  // Interface name or a kernel template ("uvtap%d", the default when empty); at most 15 bytes.
  std::string ifname{};
  uint32_t queues = 1;               // 1..kMaxQueues; > 1 creates a multi-queue TAP
  uint32_t mtu = kDefaultMtu;        // set on the device; 0 keeps the device's MTU
  bool bring_up = true;              // set IFF_UP
  std::optional<MacAddress> mac{};   // set the interface's MAC
  std::optional<Ipv4Interface> ipv4{};  // assign an address
  const NetNamespace* netns = nullptr;  // create the device in this namespace (kept alive)
};

class TapEndpoint final : public Endpoint {
 public:
  // Errors: kInvalidArgument (options), kUnavailable (/dev/net/tun missing), kPermissionDenied
  // (no CAP_NET_ADMIN), kAlreadyExists (the name is taken by a non-TAP or incompatible device),
  // kIo.
  static Expected<std::unique_ptr<TapEndpoint>> Create(const TapOptions& options);

  // Adopts pre-opened queue descriptors of one TAP device (all must name the same interface),
  // opened with IFF_NO_PI. Nothing about the device is changed; frames above `mtu` + 14 are
  // refused. The IFF_NO_PI check relies on TUNGETIFF, which Linux 6.18 was seen to answer with
  // IFF_NO_PI even for a TAP that does prefix packet information: the caller stays responsible.
  // Errors: kInvalidArgument (no fds, not a TAP, IFF_NO_PI not set, several fds without
  // IFF_MULTI_QUEUE, different devices), kIo.
  static Expected<std::unique_ptr<TapEndpoint>> FromFds(std::vector<UniqueFd> fds,
                                                        uint32_t mtu = kDefaultMtu);

  ~TapEndpoint() override;

  std::string_view name() const override { return ifname_; }
  uint32_t max_frame_size() const override { return max_frame_; }
  uint32_t max_queues() const override { return static_cast<uint32_t>(queues_.size()); }
  uint32_t queue_count() const override;
  Status SetQueueCount(uint32_t count) override;
  Queue& queue(uint32_t index) override;
  bool link_up() const override;
  Status SetLinkUp(bool up) override;

  // The interface name the kernel assigned.
  const std::string& ifname() const { return ifname_; }
  bool multi_queue() const { return multi_queue_; }
  // The queue's TAP descriptor (also its wait_fd()).
  int queue_fd(uint32_t index) const;

 private:
  class TapQueue;
  TapEndpoint(std::string ifname, bool multi_queue, uint32_t max_frame,
              std::vector<UniqueFd> fds, std::optional<NetNamespace> netns);

  std::string ifname_;
  bool multi_queue_;
  uint32_t max_frame_;
  std::vector<std::unique_ptr<TapQueue>> queues_;
  std::optional<NetNamespace> netns_;  // keeps the device's namespace alive
  mutable std::mutex mu_;
  uint32_t active_ GUARDED_BY(mu_);
  std::atomic<bool> link_up_{true};
};

struct TapFrontendOptions {
  std::string ifname{};                 // as TapOptions::ifname
  MacAddress mac{};                     // the guest NIC's MAC (required, unicast)
  uint32_t queues = 1;
  uint32_t mtu = kDefaultMtu;
  std::optional<Ipv4Interface> ipv4{};  // address of the guest interface
  const NetNamespace* netns = nullptr;  // the "guest" namespace
};

// The guest NIC as a kernel interface (see the file comment for the direction of Send/Poll).
class TapFrontend {
 public:
  // Errors: as TapEndpoint::Create; kInvalidArgument for a multicast or zero MAC.
  static Expected<std::unique_ptr<TapEndpoint>> Create(const TapFrontendOptions& options);
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_TAP_H_
