// File: tools/nic_host.cc
#include "tools/nic_host.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"
#include "net/capture.h"
#include "net/pipe.h"
#include "net/tap.h"

namespace uvmbus::tools {
namespace {

constexpr std::string_view kLog = "uvmbus-host";
// Frames per switch port queue: well above the traffic tool's default window (256), so a
// windowed sender never overflows a port even when all its flows land on one queue.
constexpr uint32_t kSwitchRingDepth = 1024;

}  // namespace

NicHost::NicHost(std::vector<NicSpec> specs) : specs_(std::move(specs)) {}

Expected<std::shared_ptr<net::Endpoint>> NicHost::MakeBackend(const NicSpec& spec,
                                                              const std::string& guest,
                                                              const net::MacAddress& mac) {
  std::unique_ptr<net::Endpoint> inner;
  switch (spec.backend) {
    case NicBackendKind::kSwitch: {
      std::shared_ptr<net::Switch> sw;
      {
        std::lock_guard lock(mu_);
        auto it = switches_.find(spec.backend_name);
        if (it != switches_.end()) {
          sw = it->second;
        } else {
          // Sized for the largest MTU any flag puts on this switch.
          uint32_t mtu = net::kDefaultMtu;
          for (const NicSpec& s : specs_) {
            if (s.backend == NicBackendKind::kSwitch && s.backend_name == spec.backend_name) {
              mtu = std::max(mtu, s.mtu);
            }
          }
          net::SwitchOptions options;
          options.name = spec.backend_name;
          options.ring_depth = kSwitchRingDepth;
          options.max_frame_size = net::MaxFrameSizeForMtu(mtu);
          auto created = net::Switch::Create(options);
          if (!created) return unexpected(created.error());
          sw = *created;
          switches_.emplace(spec.backend_name, sw);
        }
      }
      net::SwitchPortOptions port;
      port.name = guest + "/" + spec.id;
      port.mac = mac;
      port.allow_spoof = spec.spoof;
      port.queues = spec.queues;
      port.mtu = spec.mtu;
      auto p = sw->AddPort(port);
      if (!p) return unexpected(p.error());
      inner = std::move(*p);
      break;
    }
    case NicBackendKind::kTap: {
      net::TapOptions options;
      options.ifname = spec.backend_name;
      options.queues = spec.queues;
      options.mtu = spec.mtu;
      auto tap = net::TapEndpoint::Create(options);
      if (!tap) return unexpected(tap.error());
      inner = std::move(*tap);
      break;
    }
    case NicBackendKind::kTapFd: {
      std::vector<UniqueFd> fds;
      for (int fd : spec.tap_fds) {
        const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup < 0) return unexpected(Error::FromErrno("tap-fd dup", errno));
        fds.emplace_back(dup);
      }
      auto tap = net::TapEndpoint::FromFds(std::move(fds), spec.mtu);
      if (!tap) return unexpected(tap.error());
      inner = std::move(*tap);
      break;
    }
    case NicBackendKind::kLoopback: {
      net::RingEndpointOptions options;
      options.name = guest + "/" + spec.id + "/loopback";
      options.queues = spec.queues;
      options.mtu = spec.mtu;
      options.ring_depth = kSwitchRingDepth;
      auto lo = net::CreateLoopback(options);
      if (!lo) return unexpected(lo.error());
      inner = std::move(*lo);
      break;
    }
  }
  if (spec.pcap.empty()) return std::shared_ptr<net::Endpoint>(std::move(inner));

  std::shared_ptr<net::PcapngWriter> writer;
  {
    std::lock_guard lock(mu_);
    auto it = writers_.find(spec.pcap);
    if (it != writers_.end()) {
      writer = it->second;
    } else {
      auto opened = net::PcapngWriter::Open(spec.pcap, net::PcapngWriter::Options{});
      if (!opened) return unexpected(opened.error());
      writer = *opened;
      writers_.emplace(spec.pcap, writer);
    }
  }
  auto captured = net::CaptureEndpoint::Create(std::move(inner), writer, guest + "/" + spec.id);
  if (!captured) return unexpected(captured.error());
  return std::shared_ptr<net::Endpoint>(std::move(*captured));
}

std::vector<std::unique_ptr<host::Device>> NicHost::Build(const partition::PeerInfo& peer) {
  std::vector<std::unique_ptr<host::Device>> out;
  for (const NicSpec& spec : specs_) {
    if (!spec.guest.empty() && spec.guest != peer.name) continue;
    auto device = BuildSpec(peer, spec);
    if (!device) {
      UVMBUS_LOG_ERROR(kLog, "guest {}: NIC {} ({}) not offered: {}", peer.name, spec.id,
                       spec.BackendText(), device.error());
      continue;
    }
    out.push_back(std::move(*device));
  }
  return out;
}

Expected<std::unique_ptr<host::Device>> NicHost::BuildOne(const partition::PeerInfo& peer,
                                                          const std::string& id) {
  for (const NicSpec& spec : specs_) {
    if ((!spec.guest.empty() && spec.guest != peer.name) || spec.id != id) continue;
    return BuildSpec(peer, spec);
  }
  return MakeError(ErrorCode::kNotFound, "no --nic flag with id={} applies to guest {}", id,
                   peer.name);
}

std::optional<Guid> NicHost::FindNic(const std::string& guest, const std::string& id) const {
  std::lock_guard lock(mu_);
  for (const auto& [instance, e] : nics_) {
    if (e.guest == guest && e.spec.id == id && !e.alive.expired()) return instance;
  }
  return std::nullopt;
}

Expected<std::unique_ptr<host::Device>> NicHost::BuildSpec(const partition::PeerInfo& peer,
                                                           const NicSpec& spec) {
  const net::MacAddress mac = spec.mac.value_or(GenerateMac(peer.name, spec.id));
  // A guest that reconnects at once (a restarted `uvmbus guest`/`uvmbus dpdk`, the reconnect
  // supervisor) can be here before its previous incarnation's NIC is released: that one's
  // connection thread is still tearing down its channels and switch port, so the same MAC would
  // be refused (kAlreadyExists) and the new incarnation offered no NIC. Wait, bounded, for the
  // release; a different guest holding the MAC is a configuration error and fails at once.
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  bool waited = false;
  while (FindNic(peer.name, spec.id).has_value() && Clock::now() < deadline) {
    waited = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto backend = MakeBackend(spec, peer.name, mac);
  while (waited && !backend && backend.error().code == ErrorCode::kAlreadyExists &&
         Clock::now() < deadline) {
    // The device is gone but its switch port is detached a moment later.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    backend = MakeBackend(spec, peer.name, mac);
  }
  if (waited) {
    UVMBUS_LOG_INFO(kLog, "guest {}: NIC {} waited for its previous incarnation's release",
                    peer.name, spec.id);
  }
  if (!backend) return unexpected(backend.error());
  netvsp::NicConfig config;
  config.id = spec.id;
  config.mac = mac;
  config.queues = spec.queues;
  config.mtu = spec.mtu;
  config.backend = *backend;
  auto device = netvsp::NetvspDevice::Create(std::move(config));
  if (!device) return unexpected(device.error());
  UVMBUS_LOG_INFO(kLog,
                  "guest {} (pid {}): offering [Synthetic network adapter] {{{}}} {} mac {} "
                  "{} queue{} mtu {} backend {}{}",
                  peer.name, peer.pid, (*device)->instance_id().ToString(), spec.id,
                  mac.ToString(), (*device)->channel_limit(),
                  (*device)->channel_limit() == 1 ? "" : "s", spec.mtu, spec.BackendText(),
                  spec.pcap.empty() ? std::string() : " pcap " + spec.pcap);
  {
    std::lock_guard lock(mu_);
    for (auto it = nics_.begin(); it != nics_.end();) {
      it = it->second.alive.expired() ? nics_.erase(it) : std::next(it);
    }
    nics_[(*device)->instance_id()] =
        Entry{peer.name, spec, mac, (*device)->channel_limit(), (*device)->counters()};
  }
  return std::unique_ptr<host::Device>(std::move(*device));
}

nlohmann::json NicHost::Extras(const std::string& device_id) const {
  auto guid = Guid::Parse(device_id);
  if (!guid) return nullptr;
  std::lock_guard lock(mu_);
  auto it = nics_.find(*guid);
  if (it == nics_.end() || it->second.alive.expired()) return nullptr;
  const Entry& e = it->second;
  return {{"nic",
           {{"id", e.spec.id},
            {"guest", e.guest},
            {"mac", e.mac.ToString()},
            {"backend", e.spec.BackendText()},
            {"max_channels", e.max_channels},
            {"mtu", e.spec.mtu},
            {"pcap", e.spec.pcap},
            {"spoof", e.spec.spoof}}}};
}

}  // namespace uvmbus::tools
