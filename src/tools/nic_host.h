// File: tools/nic_host.h
//
// What: `NicHost`, the host daemon's synthetic NICs: from the --nic flags (nic_spec.h) it builds,
// for each connecting guest, one netvsp::NetvspDevice per matching flag, each attached to its
// backend: a port of the named net::Switch (one switch per name for the daemon's lifetime,
// shared by every NIC on it across guests, sized for the largest MTU on it), a TAP device
// (multi-queue when queues > 1), adopted TAP descriptors, or a loopback - wrapped in a
// net::CaptureEndpoint when pcap=FILE (one pcapng writer per file, shared). It also remembers
// every NIC by instance GUID so that the admin "ls" document can carry what only the daemon
// knows (`nic`: id, guest, backend, max_channels, mtu) next to the device's counters.
// GPA-direct sends reach guest RAM through HostChannel::partition() (NicConfig::guest_memory is
// left null).
// Spec: vmbus-protocol.md 5 (NVSP), 7.8 (sub-channels), 8 (RSS); design.md section 2 (net/).
// Linux/OpenVMM: OpenVMM openvmm_entry (--net backends), vm/devices/net/netvsp.
// Thread-safety: Build() may run on any thread (SocketHost's accept thread); Extras() on the
// admin thread. Both are thread-safe.
#ifndef UVMBUS_TOOLS_NIC_HOST_H_
#define UVMBUS_TOOLS_NIC_HOST_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/netvsp/netvsp_device.h"
#include "host/device.h"
#include "net/pcapng.h"
#include "net/switch.h"
#include "partition/host_partition.h"
#include "tools/nic_spec.h"

namespace uvmbus::tools {

class NicHost {
 public:
  explicit NicHost(std::vector<NicSpec> specs);

  // The NICs of guest `peer.name` (flags with its name or without guest=). A NIC whose backend
  // cannot be built is logged and left out (the guest still gets the others).
  std::vector<std::unique_ptr<host::Device>> Build(const partition::PeerInfo& peer);

  // Builds guest `peer`'s NIC `id` again from its --nic flag (the admin "nic-add" request, a hot
  // add after a "nic-remove"). Errors: kNotFound (no --nic flag with that id applies to the
  // guest), the backend's and NetvspDevice::Create's errors.
  Expected<std::unique_ptr<host::Device>> BuildOne(const partition::PeerInfo& peer,
                                                   const std::string& id);
  // The instance GUID of a live NIC `id` this host built for guest `guest` (it may be rescinded
  // and not yet released).
  std::optional<Guid> FindNic(const std::string& guest, const std::string& id) const;

  // {"nic": {...}} for a device id ("{guid}") this host built, else null.
  nlohmann::json Extras(const std::string& device_id) const;

  const std::vector<NicSpec>& specs() const { return specs_; }

 private:
  struct Entry {
    std::string guest;
    NicSpec spec;
    net::MacAddress mac;
    uint32_t max_channels = 0;
    std::weak_ptr<const netvsp::NicCounters> alive;
  };
  Expected<std::unique_ptr<host::Device>> BuildSpec(const partition::PeerInfo& peer,
                                                    const NicSpec& spec);
  Expected<std::shared_ptr<net::Endpoint>> MakeBackend(const NicSpec& spec,
                                                       const std::string& guest,
                                                       const net::MacAddress& mac);

  const std::vector<NicSpec> specs_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<net::Switch>> switches_ GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<net::PcapngWriter>> writers_ GUARDED_BY(mu_);
  std::map<Guid, Entry> nics_ GUARDED_BY(mu_);
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_NIC_HOST_H_
