// File: tools/host_command.cc
//
// `uvmbus host`: the host daemon (docs/cli.md). Foreground, logs on stderr, one
// host::HostService (a VmbusServer per guest, each guest offered its own heartbeat device and
// the synthetic NICs of the --nic flags that match its name, tools/nic_host.h) fed by a
// partition::SocketHost on --socket, plus the admin socket (--socket + ".ctl"), whose "ls"
// document carries every device's counters (the NICs' ethtool names: `uvmbus stats`).
//
//   start:    block SIGINT/SIGTERM (signalfd, before any thread), ignore SIGHUP/SIGPIPE,
//             SocketHost::Listen (removes a stale socket, refuses a live one), AdminServer,
//             sd_notify READY=1 + STATUS=
//   running:  main thread polls the signalfd; once a second STATUS= is refreshed when it
//             changed, and WATCHDOG=1 is sent at half of WatchdogSec when systemd asks for it
//   SIGTERM / SIGINT: STOPPING=1; stop accepting guests; HostService::Shutdown(drain) rescinds
//             every device (RESCIND_CHANNELOFFER, spec 2.7) and waits for the guests to release
//             them (RELID_RELEASED), bounded; admin socket closed; exit 0. A second signal during
//             the shutdown ends the process at once (status 128+N).
// Spec: vmbus-protocol.md 2.7 (rescind), 2.10; design.md section 3 (process model).
// Thread-safety: runs on the main thread; the admin handler runs on the admin thread and only
// reads thread-safe state (HostService::SnapshotJson, the heartbeat registry).
#include <grp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "common/guid.h"
#include "common/log.h"
#include "devices/heartbeat/host_heartbeat.h"
#include "host/host_service.h"
#include "partition/socket_host.h"
#include "tools/admin_protocol.h"
#include "tools/admin_server.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/ls_document.h"
#include "tools/nic_host.h"
#include "tools/output.h"
#include "tools/sd_notify.h"
#include "tools/signals.h"

namespace uvmbus::tools {
namespace {

constexpr std::string_view kLog = "uvmbus-host";
// How long SIGTERM waits for the guests to release their rescinded devices.
constexpr std::chrono::milliseconds kDrainTimeout{5000};
// How often the main loop refreshes sd_notify STATUS=.
constexpr int kStatusPeriodMs = 1000;

// The heartbeat devices of all guests, by instance GUID, so the admin "ls" can add their
// counters. The devices themselves belong to the guests' VmbusServers; a weak reference expires
// when a guest's server (and its device) is destroyed.
class HeartbeatRegistry {
 public:
  void Add(const Guid& instance, std::shared_ptr<const devices::HeartbeatCounters> counters) {
    std::lock_guard lock(mu_);
    // Forget devices that are gone, so the map does not grow with every guest ever served.
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = it->second.expired() ? entries_.erase(it) : std::next(it);
    }
    entries_[instance] = counters;
  }
  nlohmann::json Extras(const std::string& device_id) const {
    auto guid = Guid::Parse(device_id);
    if (!guid) return nullptr;
    std::shared_ptr<const devices::HeartbeatCounters> counters;
    {
      std::lock_guard lock(mu_);
      auto it = entries_.find(*guid);
      if (it == entries_.end()) return nullptr;
      counters = it->second.lock();
    }
    if (!counters) return nullptr;
    return {{"heartbeat", devices::HeartbeatStatsToJson(counters->Snapshot())}};
  }

 private:
  mutable std::mutex mu_;
  std::map<Guid, std::weak_ptr<const devices::HeartbeatCounters>> entries_;
};

std::string StatusLine(const host::HostSnapshot& s) {
  size_t open = 0;
  for (const auto& g : s.guests) {
    for (const auto& d : g.devices) {
      for (const auto& c : d.channels) open += c.open ? 1 : 0;
    }
  }
  return fmt::format("{} guest{}, {} channel{} open", s.guests.size(),
                     s.guests.size() == 1 ? "" : "s", open, open == 1 ? "" : "s");
}

// The admin "nic-remove" / "nic-add" requests (docs/cli.md): {"guest": G, "id": ID}.
// nic-remove rescinds the guest's live NIC ID (spec 2.7: RESCIND_CHANNELOFFER; the device is
// destroyed once the guest released its relids); nic-add builds it again from its --nic flag and
// offers it to the connected guest (hot add). Runs on the admin thread.
Expected<nlohmann::json> NicCommand(const AdminRequest& request, host::HostService& service,
                                    NicHost& nics) {
  const nlohmann::json& args = request.args;
  if (!args.contains("guest") || !args["guest"].is_string() || !args.contains("id") ||
      !args["id"].is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "{} needs args {{\"guest\": G, \"id\": ID}}",
                     request.command);
  }
  const std::string guest = args["guest"].get<std::string>();
  const std::string id = args["id"].get<std::string>();
  // The guest's live, not rescinded NIC with this id (device ids as the ls document has them).
  std::optional<Guid> live;
  std::optional<partition::PeerInfo> peer;
  for (const host::ServerSnapshot& g : service.Snapshot().guests) {
    if (g.peer.name != guest || g.state == "gone") continue;
    peer = g.peer;
    for (const host::DeviceInfo& d : g.devices) {
      if (d.rescinded) continue;
      const nlohmann::json extras = nics.Extras("{" + d.instance_id.ToString() + "}");
      if (extras.is_object() && extras["nic"].value("id", "") == id) live = d.instance_id;
    }
  }
  if (!peer) return MakeError(ErrorCode::kNotFound, "no connected guest named '{}'", guest);
  if (request.command == kAdminCommandNicRemove) {
    if (!live) return MakeError(ErrorCode::kNotFound, "guest {} has no NIC {}", guest, id);
    if (Status st = service.RescindDevice(guest, *live); !st) return unexpected(st.error());
    UVMBUS_LOG_INFO(kLog, "guest {}: NIC {} {{{}}} rescinded (admin nic-remove)", guest, id,
                    live->ToString());
    return nlohmann::json{{"guest", guest}, {"id", id}, {"device_id", live->ToString()}};
  }
  if (live) return MakeError(ErrorCode::kAlreadyExists, "guest {} already has NIC {}", guest, id);
  auto device = nics.BuildOne(*peer, id);
  if (!device) return unexpected(device.error());
  const Guid instance = (*device)->Offer().instance_id;
  if (Status st = service.AddDevice(guest, std::move(*device)); !st) {
    return unexpected(st.error());
  }
  UVMBUS_LOG_INFO(kLog, "guest {}: NIC {} {{{}}} offered (admin nic-add)", guest, id,
                  instance.ToString());
  return nlohmann::json{{"guest", guest}, {"id", id}, {"device_id", instance.ToString()}};
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int RunHost(const HostOptions& options) {
  log::Level level = log::Level::kInfo;
  if (!log::ParseLevel(options.log_level, &level)) {
    PrintErrorLine("uvmbus host: invalid --log-level");  // the parser already checks
    return ToInt(ExitCode::kUsage);
  }
  log::SetLevel(level);
  IgnoreHangupAndPipe();
  // Before any thread exists: every thread created below inherits the blocked mask.
  auto signals = TerminationSignals::Block();
  if (!signals) {
    UVMBUS_LOG_ERROR(kLog, "{}", signals.error());
    return ToInt(ExitCode::kFailure);
  }
  std::string notify_warning;
  const SdNotifier notifier = SdNotifier::FromEnvironment(&notify_warning);
  if (!notify_warning.empty()) UVMBUS_LOG_WARN(kLog, "{}", notify_warning);
  const int64_t started_ms = NowMs();

  auto registry = std::make_shared<HeartbeatRegistry>();
  auto nics = std::make_shared<NicHost>(options.nics);
  const auto interval = std::chrono::milliseconds(options.heartbeat_interval_ms);
  host::DeviceFactory factory = [registry, nics, interval](const partition::PeerInfo& peer) {
    devices::HeartbeatConfig config;
    config.interval = interval;
    auto device = std::make_unique<devices::HeartbeatDevice>(config);
    registry->Add(device->instance_id(), device->counters());
    UVMBUS_LOG_INFO(kLog, "guest {} (pid {}): offering [Heartbeat] {{{}}}", peer.name, peer.pid,
                    device->instance_id().ToString());
    std::vector<std::unique_ptr<host::Device>> devices;
    devices.push_back(std::move(device));
    for (auto& nic : nics->Build(peer)) devices.push_back(std::move(nic));
    return devices;
  };
  // Destruction order matters: the SocketHost (declared later) is destroyed before the service
  // it feeds, and the admin server (whose handler reads the service) before the service too.
  host::HostService service(std::move(factory));

  partition::SocketHostOptions socket_options;
  if (!options.group.empty()) {
    // --group: resolve the name before anything listens (an unknown group is a usage error).
    const group* gr = ::getgrnam(options.group.c_str());
    if (gr == nullptr) {
      UVMBUS_LOG_ERROR(kLog, "--group {}: no such group", options.group);
      return ToInt(ExitCode::kUsage);
    }
    socket_options.group = gr->gr_gid;
  }
  auto socket_host =
      partition::SocketHost::Listen(options.socket, service.GuestCallback(), socket_options);
  if (!socket_host) {
    UVMBUS_LOG_ERROR(kLog, "cannot listen on {}: {}", options.socket, socket_host.error());
    return ToInt(ExitCode::kFailure);
  }

  HostIdentity identity;
  identity.pid = ::getpid();
  identity.socket = options.socket;
  identity.admin_socket = AdminSocketPath(options.socket);
  identity.program_version = kProgramVersion;
  identity.heartbeat_interval_ms = options.heartbeat_interval_ms;
  AdminServer::Handler handler = [&service, registry, nics, identity,
                                  started_ms](const AdminRequest& request)
      -> Expected<nlohmann::json> {
    if (request.command == kAdminCommandLs) {
      HostIdentity id = identity;
      id.uptime_ms = NowMs() - started_ms;
      return BuildLsDocument(service.SnapshotJson(), id, [&](const std::string& device_id) {
        nlohmann::json extras = registry->Extras(device_id);
        return extras.is_null() ? nics->Extras(device_id) : extras;
      });
    }
    if (request.command == kAdminCommandVersion) {
      return nlohmann::json{{"program", "uvmbus"},
                            {"version", kProgramVersion},
                            {"admin_protocol", kAdminProtocolVersion},
                            {"pid", identity.pid}};
    }
    if (request.command == kAdminCommandNicRemove || request.command == kAdminCommandNicAdd) {
      return NicCommand(request, service, *nics);
    }
    return MakeError(ErrorCode::kUnsupported,
                     "unknown command '{}' (known: ls, version, nic-remove, nic-add)",
                     request.command);
  };
  auto admin = AdminServer::Listen(identity.admin_socket, std::move(handler));
  if (!admin) {
    UVMBUS_LOG_ERROR(kLog, "cannot serve the admin socket {}: {}", identity.admin_socket,
                     admin.error());
    return ToInt(ExitCode::kFailure);
  }
  UVMBUS_LOG_INFO(kLog, "listening on {} (admin socket {}), heartbeat every {} ms, {} NIC flag{}",
                  options.socket, identity.admin_socket, options.heartbeat_interval_ms,
                  options.nics.size(), options.nics.size() == 1 ? "" : "s");

  std::string status = StatusLine(service.Snapshot());
  if (auto st = notifier.Notify("READY=1\nSTATUS=" + status); !st) {
    UVMBUS_LOG_WARN(kLog, "sd_notify: {}", st.error());
  }
  const auto watchdog = notifier.watchdog_interval();
  int64_t next_watchdog_ms = watchdog ? NowMs() + watchdog->count() : 0;
  if (watchdog) (void)notifier.Notify("WATCHDOG=1");

  int signo = 0;
  while (signo == 0) {
    int timeout = kStatusPeriodMs;
    if (watchdog) {
      timeout = static_cast<int>(std::clamp<int64_t>(next_watchdog_ms - NowMs(), 0, timeout));
    }
    pollfd p{signals->fd(), POLLIN, 0};
    if (::poll(&p, 1, timeout) < 0 && errno != EINTR) {
      UVMBUS_LOG_ERROR(kLog, "poll: {}", Error::FromErrno("poll", errno));
      break;
    }
    if (auto s = signals->Read()) {
      signo = *s;
      break;
    }
    if (watchdog && NowMs() >= next_watchdog_ms) {
      (void)notifier.Notify("WATCHDOG=1");
      next_watchdog_ms = NowMs() + watchdog->count();
    }
    if (notifier.enabled()) {
      std::string now = StatusLine(service.Snapshot());
      if (now != status) {
        status = std::move(now);
        (void)notifier.Notify("STATUS=" + status);
      }
    }
  }

  UVMBUS_LOG_INFO(kLog, "{}: rescinding every device and draining (up to {} ms)",
                  signo == 0 ? std::string("poll failure") : std::string(::strsignal(signo)),
                  kDrainTimeout.count());
  (void)notifier.Notify("STOPPING=1\nSTATUS=stopping: rescinding devices");
  // From now on a second SIGINT/SIGTERM takes the default action: the escape from a stuck drain.
  signals->Unblock();
  (*socket_host)->Stop();
  service.Shutdown(kDrainTimeout);
  (*admin)->Stop();
  UVMBUS_LOG_INFO(kLog, "stopped");
  return signo == 0 ? ToInt(ExitCode::kFailure) : ToInt(ExitCode::kOk);
}

}  // namespace uvmbus::tools
