// File: tools/guest_command.cc
//
// `uvmbus guest`: one guest process (docs/cli.md). It boots the way a VM's VMBus driver does:
//   connect:    partition::SocketGuestPartition::Connect - guest RAM (sealed memfd) and one
//               interrupt eventfd per vCPU handed to the host (docs/socket-protocol.md)
//   connected:  INITIATE_CONTACT, newest version first, until a VERSION_RESPONSE accepts (2.5)
//   offer:      REQUESTOFFERS -> OFFERCHANNEL per device -> ALLOFFERS_DELIVERED (2.5, 2.7)
//   probe:      class GUID matched against the registered drivers (hv_utils: heartbeat,
//               hv_netvsc: synthetic NIC) (7.3)
//   open:       the driver opens the channel: ring GPADL, OPENCHANNEL/OPENCHANNEL_RESULT (2.8)
//   netvsc:     the NIC's bring-up as netvsc did it inside its probe (NVSP/NDIS versions,
//               buffers, RNDIS, each queue's channel and vCPU, link; spec 5.7, 7.8)
//   heartbeat:  the IC NEGOTIATE, then every HEARTBEAT answered with seq + 1
// then serves the first NIC: an ARP + ICMP echo responder on every queue (--addr), or, with
// --traffic, the test traffic of tools/traffic.h (one JSON line at the end), or, with --tap, a
// kernel TAP interface pumped both ways (tools/guest_nic.h). It prints one labelled line per step
// on stdout (each with a single write, see output.h), and runs until SIGINT/SIGTERM (clean
// UNLOAD, exit 0), until --count heartbeats were answered (exit 0), until the traffic run ended
// (exit 0 only if every frame arrived intact), or until the host hangs up (exit 3).
// Spec: vmbus-protocol.md 2.5, 2.7, 2.8, 2.10, 5.7, 7.1-7.3, 7.8.
// Thread-safety: the main thread waits on fds; bus and driver observers run on bus threads and
// only print and count.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "devices/heartbeat/guest_heartbeat.h"
#include "devices/netvsc/netvsc_drv.h"
#include "guest/vmbus_bus.h"
#include "partition/socket_guest_partition.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/guest_nic.h"
#include "tools/output.h"
#include "tools/signals.h"
#include "tools/traffic.h"

namespace uvmbus::tools {
namespace {

std::string IcVersion(uint32_t word) { return fmt::format("{}.{}", word >> 16, word & 0xFFFF); }

// Heartbeat lines wait until the "open:" lines are out, so that a newcomer reads the steps in
// protocol order even though the first heartbeat may race with the end of Connect().
class HeartbeatPrinter {
 public:
  void Print(std::string line) {
    std::lock_guard lock(mu_);
    if (held_) {
      pending_.push_back(std::move(line));
      return;
    }
    PrintLine(line);
  }
  void Release() {
    std::lock_guard lock(mu_);
    held_ = false;
    for (const std::string& line : pending_) PrintLine(line);
    pending_.clear();
  }

 private:
  std::mutex mu_;
  bool held_ = true;
  std::vector<std::string> pending_;
};

void Wake(int fd) {
  const uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);  // eventfd: fails only when saturated (already awake)
}

}  // namespace

int RunGuest(const GuestOptions& options) {
  log::Level level = log::Level::kWarn;
  if (!log::ParseLevel(options.log_level, &level)) return ToInt(ExitCode::kUsage);
  log::SetLevel(level);
  IgnoreHangupAndPipe();
  auto signals = TerminationSignals::Block();  // before the partition and bus start threads
  if (!signals) {
    PrintError("uvmbus guest: {}", signals.error());
    return ToInt(ExitCode::kFailure);
  }
  const std::string name =
      options.name.empty() ? fmt::format("guest-{}", ::getpid()) : options.name;
  UniqueFd done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!done) {
    PrintError("uvmbus guest: {}", Error::FromErrno("eventfd", errno));
    return ToInt(ExitCode::kFailure);
  }

  Print("connect: guest {} ({} vCPU{}, {} MiB RAM) to host {}", name, options.cpus,
        options.cpus == 1 ? "" : "s", options.ram_mib, options.socket);
  auto partition = partition::SocketGuestPartition::Connect(
      options.socket, name, options.cpus, uint64_t{options.ram_mib} << 20);
  if (!partition) {
    PrintError("uvmbus guest: cannot connect to the host at {}: {}", options.socket,
               partition.error());
    return ToInt(partition.error().code == ErrorCode::kUnavailable ? ExitCode::kHostUnavailable
                                                                    : ExitCode::kFailure);
  }

  // Declaration order = reverse destruction order: the bus goes first (it removes the driver
  // from its devices), then the driver, then the partition.
  std::atomic<uint64_t> answered{0};
  std::atomic<bool> count_reached{false};
  HeartbeatPrinter heartbeat_printer;
  devices::HeartbeatDriver driver([&](const devices::HeartbeatEvent& e) {
    if (e.kind == devices::HeartbeatEvent::Kind::kNegotiated) {
      heartbeat_printer.Print(fmt::format("heartbeat: negotiated framework {}, heartbeat {}",
                                          IcVersion(e.framework_version),
                                          IcVersion(e.heartbeat_version)));
      return;
    }
    heartbeat_printer.Print(fmt::format("heartbeat: seq={}", e.sequence));
    const uint64_t n = answered.fetch_add(1, std::memory_order_relaxed) + 1;
    if (options.count != 0 && n == options.count) {
      count_reached.store(true, std::memory_order_release);
      Wake(done.get());
    }
  });

  netvsc::NetvscDriver nic_driver(**partition);

  auto bus = guest::VmbusBus::Create(**partition);
  if (!bus) {
    PrintError("uvmbus guest: {}", bus.error());
    return ToInt(ExitCode::kFailure);
  }
  (*bus)->AddObserver([](const guest::BusEvent& e) {
    // kHostGone is reported by the main loop (stderr + exit code); everything else is a step.
    if (e.kind != guest::BusEventKind::kHostGone) PrintLine(e.ToString());
  });
  if (auto st = (*bus)->RegisterDriver(driver); !st) {
    PrintError("uvmbus guest: registering {}: {}", driver.name(), st.error());
    return ToInt(ExitCode::kFailure);
  }
  if (auto st = (*bus)->RegisterDriver(nic_driver); !st) {
    PrintError("uvmbus guest: registering {}: {}", nic_driver.name(), st.error());
    return ToInt(ExitCode::kFailure);
  }
  if (auto st = (*bus)->Connect(); !st) {
    PrintError("uvmbus guest: VMBus connect failed: {}", st.error());
    const bool host_gone = !(*partition)->connected() || st.error().code == ErrorCode::kUnavailable;
    return ToInt(host_gone ? ExitCode::kHostUnavailable : ExitCode::kFailure);
  }
  for (const guest::DeviceInfo& d : (*bus)->ListDevices()) {
    for (const guest::ChannelInfo& c : d.channels) {
      if (c.state != guest::ChannelState::kOpen) continue;
      Print("open: {} relid {}, target_cpu {}, driver {}, callback mode {}", d.description,
            c.relid, c.target_vcpu, d.driver.empty() ? "none" : d.driver,
            guest::CallbackModeName(c.mode));
    }
  }
  // netvsc brought every NIC up inside its probe, which Connect() waited for.
  const std::vector<std::shared_ptr<netvsc::NetvscDevice>> nics = nic_driver.devices();
  for (const auto& nic : nics) {
    for (const std::string& line : DescribeBringUp(*nic)) PrintLine(line);
  }
  heartbeat_printer.Release();

  // Serve the first NIC: TAP pump, or responder (+ traffic) on a thread of its own.
  std::unique_ptr<TapPump> tap;
  std::unique_ptr<GuestNicLoop> nic_loop;
  std::thread nic_thread;
  std::atomic<bool> traffic_done{false};
  std::atomic<bool> traffic_ok{false};
  int setup_failure = -1;
  if (nics.empty() && (options.tap || options.traffic)) {
    PrintError("uvmbus guest {}: the host offered no synthetic NIC", name);
    setup_failure = ToInt(ExitCode::kFailure);
  } else if (!nics.empty() && options.tap) {
    auto pump = TapPump::Start(*nics[0], *options.tap);
    if (!pump) {
      PrintError("uvmbus guest {}: TAP {}: {}", name, options.tap->ifname, pump.error());
      setup_failure = ToInt(ExitCode::kFailure);
    } else {
      tap = std::move(*pump);
      Print("tap: {} is interface {}{}{}, {} queue{}", nics[0]->name(), tap->ifname(),
            options.tap->netns.empty() ? std::string() : " in netns " + options.tap->netns,
            options.tap->addr ? fmt::format(" with {}/{}", options.tap->addr->address.ToString(),
                                            options.tap->addr->prefix_length)
                              : std::string(),
            nics[0]->queue_count(), nics[0]->queue_count() == 1 ? "" : "s");
    }
  } else if (!nics.empty()) {
    const net::Ipv4Interface address = options.addr.value_or(DefaultGuestAddress(name));
    Print("responder: {} answers ARP and ICMP echo for {}/{} on {} queue{}", nics[0]->name(),
          address.address.ToString(), address.prefix_length, nics[0]->queue_count(),
          nics[0]->queue_count() == 1 ? "" : "s");
    nic_loop = std::make_unique<GuestNicLoop>(*nics[0], address,
                                              [](const std::string& line) { PrintLine(line); });
    nic_thread = std::thread([&, loop = nic_loop.get()] {
      if (options.traffic) {
        const TrafficResult r = loop->RunTraffic(*options.traffic);
        Print("traffic: {}: sent {}, received {} of {}, bad {}, duplicates {} in {:.3f} s",
              r.ok ? "OK" : "FAILED " + r.error, r.sent, r.received, r.expected, r.bad,
              r.duplicates, r.seconds);
        PrintLine(nlohmann::json{{"traffic", r.ToJson()}}.dump());
        traffic_ok.store(r.ok, std::memory_order_release);
        traffic_done.store(true, std::memory_order_release);
        if (!options.traffic->stay) {
          Wake(done.get());
          return;
        }
      }
      loop->Serve();
    });
  }
  auto stop_nic = [&] {
    if (nic_loop) nic_loop->Stop();
    if (nic_thread.joinable()) nic_thread.join();
    if (tap) tap->Stop();
  };
  if (setup_failure >= 0) {
    stop_nic();
    (void)(*bus)->Disconnect();
    return setup_failure;
  }
  // With --traffic the exit status is the run's.
  auto traffic_status = [&] {
    if (!options.traffic) return ToInt(ExitCode::kOk);
    return traffic_done.load(std::memory_order_acquire) &&
                   traffic_ok.load(std::memory_order_acquire)
               ? ToInt(ExitCode::kOk)
               : ToInt(ExitCode::kFailure);
  };

  pollfd fds[3] = {{signals->fd(), POLLIN, 0},
                   {done.get(), POLLIN, 0},
                   {(*partition)->DisconnectFd(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      PrintError("uvmbus guest: {}", Error::FromErrno("poll", errno));
      return ToInt(ExitCode::kFailure);
    }
    if (auto signo = signals->Read()) {
      Print("interrupted: {}, unloading", ::strsignal(*signo));
      signals->Unblock();  // a second signal ends the process at once
      break;
    }
    if (!(*partition)->connected() || fds[2].revents != 0) {
      PrintError("uvmbus guest {}: the host hung up (answered {} heartbeats)", name,
                 answered.load(std::memory_order_relaxed));
      stop_nic();
      return ToInt(ExitCode::kHostUnavailable);
    }
    if (options.traffic && !options.traffic->stay &&
        traffic_done.load(std::memory_order_acquire)) {
      Print("done: traffic run ended, unloading");
      break;
    }
    if (count_reached.load(std::memory_order_acquire)) {
      Print("done: answered {} heartbeats, unloading", options.count);
      break;
    }
  }
  stop_nic();
  // Drivers removed (channels closed, GPADLs torn down), then UNLOAD / UNLOAD_RESPONSE.
  if (auto st = (*bus)->Disconnect(); !st) {
    PrintError("uvmbus guest: disconnect: {}", st.error());
    return ToInt((*partition)->connected() ? ExitCode::kFailure : ExitCode::kHostUnavailable);
  }
  return traffic_status();
}

}  // namespace uvmbus::tools
