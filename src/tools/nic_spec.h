// File: tools/nic_spec.h
//
// What: the `--nic` flag of `uvmbus host` (docs/cli.md "Synthetic NICs"): cloud-hypervisor's
// comma-separated key=value form with `queues` meaning the channel count (primary +
// sub-channels, conventions.md 2b "NIC flags in VMMs"):
//
//   guest=G,id=net0,backend=switch:sw0,mac=00:15:5d:01:02:03,queues=4,mtu=1500,pcap=F,spoof=on
//
// every key optional: guest omitted = every connecting guest gets the NIC; id "net0"; backend
// `switch:sw0`; mac generated from (guest name, id) in Hyper-V's OUI 00:15:5d, stable across
// runs; queues 1; mtu 1500; no capture; spoof off. Backends: `switch:NAME` (one learning switch
// per name, shared by every NIC on it across guests), `tap:IFNAME` (multi-queue when queues > 1),
// `tap-fd:N[:N...]` (pre-opened TAP queue descriptors), `loopback`.
// Also the guest's `--traffic` flag (TrafficSpec) and the shared MAC/address generators.
// Spec: none (tool); vmbus-protocol.md 5.8 (queue = channel).
// Linux/OpenVMM: cloud-hypervisor vmm/src/config.rs NetConfig::SYNTAX (syntax);
//       openvmm_entry/src/cli_args.rs (backend names).
// Thread-safety: pure functions and value types.
#ifndef UVMBUS_TOOLS_NIC_SPEC_H_
#define UVMBUS_TOOLS_NIC_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "net/frame.h"
#include "net/tap.h"

namespace uvmbus::tools {

enum class NicBackendKind : uint8_t { kSwitch, kTap, kTapFd, kLoopback };

// Most channels one NIC may ask for (primary + 63 sub-channels).
inline constexpr uint32_t kMaxNicQueues = 64;

// One --nic flag.
struct NicSpec {
  std::string guest;  // empty: every guest
  std::string id = "net0";
  NicBackendKind backend = NicBackendKind::kSwitch;
  std::string backend_name = "sw0";  // switch name / TAP interface name
  std::vector<int> tap_fds;          // tap-fd: one descriptor per queue
  std::optional<net::MacAddress> mac;
  uint32_t queues = 1;
  uint32_t mtu = net::kDefaultMtu;
  std::string pcap;  // capture file (pcapng), empty: none
  bool spoof = false;

  // "switch:sw0", "tap:tap0", "tap-fd:3:4", "loopback".
  std::string BackendText() const;
};

// Parses one --nic value. Errors: kInvalidArgument naming the offending key (unknown key,
// duplicate key, bad value, mac= without guest=, a multicast/zero MAC).
Expected<NicSpec> ParseNicSpec(std::string_view text);

// The MAC a NIC without mac= gets: 00:15:5d (Hyper-V's OUI) + 3 bytes of a hash of guest and id.
net::MacAddress GenerateMac(std::string_view guest, std::string_view id);

// The IPv4 interface a guest without --addr uses: 10.0.0.X/24, X = 2..254 from a hash of its name.
net::Ipv4Interface DefaultGuestAddress(std::string_view guest);

// Parses "10.0.0.1/24" (prefix optional: /24). nullopt on anything else.
std::optional<net::Ipv4Interface> ParseCidr(std::string_view text);

// `uvmbus guest --tap NAME[,netns=NS,addr=CIDR]`.
struct TapSpec {
  std::string ifname;
  std::string netns;  // empty: the guest process's own namespace
  std::optional<net::Ipv4Interface> addr;
};
Expected<TapSpec> ParseTapSpec(std::string_view text);

// `uvmbus guest --traffic peer=MAC|IPV4,frames=N,sizes=MIN-MAX,flows=F[,rate=PPS][,timeout=S]
// [,window=W][,stay=on][,duration=S]`. stay=on: keep serving after the run until SIGTERM (so a caller can
// read the host's counters first), then exit with the run's status. MAX may be the word MTU (the NIC's largest frame, MTU + 14); sizes are frame
// bytes, Ethernet header included.
struct TrafficSpec {
  std::optional<net::MacAddress> peer_mac;
  std::optional<net::Ipv4Address> peer_ip;  // resolved by ARP first
  uint64_t frames = 10'000;
  uint32_t min_size = net::kMinWireFrameSize;
  uint32_t max_size = 0;  // 0: the NIC's largest frame
  uint32_t flows = 64;
  uint64_t rate_pps = 0;   // 0: as fast as the window allows
  uint32_t timeout_s = 60;
  uint32_t window = 256;   // frames in flight (sent, not yet acknowledged by the peer)
  bool stay = false;
  // duration=S: send continuously for S seconds (or until SIGTERM), then drain and report;
  // `frames` and `timeout` are ignored. 0: the frames=N mode. (tools/traffic.h)
  uint32_t duration_s = 0;
};
Expected<TrafficSpec> ParseTrafficSpec(std::string_view text);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_NIC_SPEC_H_
