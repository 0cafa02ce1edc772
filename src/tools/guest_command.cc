// File: tools/guest_command.cc
//
// `uvmbus guest`: one guest process (docs/cli.md). It boots the way a VM's VMBus driver does:
//   connect:    partition::SocketGuestPartition::Connect - guest RAM (sealed memfd) and one
//               interrupt eventfd per vCPU handed to the host (docs/socket-protocol.md)
//   connected:  INITIATE_CONTACT, newest version first, until a VERSION_RESPONSE accepts (2.5)
//   offer:      REQUESTOFFERS -> OFFERCHANNEL per device -> ALLOFFERS_DELIVERED (2.5, 2.7)
//   probe:      class GUID matched against the registered drivers (hv_utils: heartbeat) (7.3)
//   open:       the driver opens the channel: ring GPADL, OPENCHANNEL/OPENCHANNEL_RESULT (2.8)
//   heartbeat:  the IC NEGOTIATE, then every HEARTBEAT answered with seq + 1
// printing one labelled line per step on stdout (each with a single write, see output.h), and
// runs until SIGINT/SIGTERM (clean UNLOAD, exit 0), until --count heartbeats were answered (exit
// 0), or until the host hangs up (exit 3, ExitCode::kHostUnavailable).
// Spec: vmbus-protocol.md 2.5, 2.7, 2.8, 2.10, 7.1-7.3.
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
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "devices/heartbeat/guest_heartbeat.h"
#include "guest/vmbus_bus.h"
#include "partition/socket_guest_partition.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/output.h"
#include "tools/signals.h"

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
  heartbeat_printer.Release();

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
      return ToInt(ExitCode::kHostUnavailable);
    }
    if (count_reached.load(std::memory_order_acquire)) {
      Print("done: answered {} heartbeats, unloading", options.count);
      break;
    }
  }
  // Drivers removed (channels closed, GPADLs torn down), then UNLOAD / UNLOAD_RESPONSE.
  if (auto st = (*bus)->Disconnect(); !st) {
    PrintError("uvmbus guest: disconnect: {}", st.error());
    return ToInt((*partition)->connected() ? ExitCode::kFailure : ExitCode::kHostUnavailable);
  }
  return ToInt(ExitCode::kOk);
}

}  // namespace uvmbus::tools
