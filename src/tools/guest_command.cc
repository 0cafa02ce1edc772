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
// (exit 0 only if every frame arrived intact), or - with --reconnect=off - until the host hangs
// up (exit 3).
//
// Supervisor (docs/robustness.md section 4): everything tied to one connection lives in a
// GuestSession (tools/guest_session.h). When the host hangs up (killed, restarted) the session
// is closed - the NIC's link goes down, the TAP's carrier off (the interface stays), the bus,
// drivers and partition are torn down - and, with --reconnect=on (the default), a new session
// is opened after a jittered exponential back-off (ReconnectBackoff: 100 ms doubling to 5 s), one
// "reconnect:" line per attempt: a fresh partition, version negotiation, fresh offers, probes,
// and the NIC reattached to the same TAP / responder / traffic. Only a first connection that
// fails ends the command (exit 3 or 1, as before): a guest started without a host is a mistake.
// Spec: vmbus-protocol.md 2.5, 2.7, 2.8, 2.10, 5.7, 7.1-7.3, 7.8.
// Thread-safety: the main thread waits on fds and owns the session; bus and driver observers run
// on bus threads and only print, count and write eventfds.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "common/log.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/guest_session.h"
#include "tools/output.h"
#include "tools/signals.h"

namespace uvmbus::tools {
namespace {

// Exit status once the guest stops on its own terms (signal, --count, traffic run): with
// --traffic it is the last completed run's.
int TrafficStatus(const GuestPersistent& p) {
  if (!p.options.traffic) return ToInt(ExitCode::kOk);
  return p.traffic_done.load(std::memory_order_acquire) &&
                 p.traffic_ok.load(std::memory_order_acquire)
             ? ToInt(ExitCode::kOk)
             : ToInt(ExitCode::kFailure);
}

void PrintCounters(const GuestPersistent& p) {
  PrintLine(nlohmann::json{{"guest", p.counters.ToJson()}}.dump());
}

void PrintConnect(const GuestPersistent& p, uint32_t session) {
  const GuestOptions& o = p.options;
  Print("connect: guest {} ({} vCPU{}, {} MiB RAM) to host {}{}", p.name, o.cpus,
        o.cpus == 1 ? "" : "s", o.ram_mib, o.socket,
        session == 1 ? std::string() : fmt::format(" (session {})", session));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
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
  GuestPersistent p(options,
                    options.name.empty() ? fmt::format("guest-{}", ::getpid()) : options.name);
  if (!p.done_fd || !p.nic_fd) {
    PrintError("uvmbus guest: {}", Error::FromErrno("eventfd", errno));
    return ToInt(ExitCode::kFailure);
  }

  // The first connection: a failure ends the command, as it always did.
  uint32_t number = 1;
  PrintConnect(p, number);
  std::unique_ptr<GuestSession> session;
  {
    auto first = GuestSession::Open(p, number);
    if (!first) {
      const Error& e = first.error();
      PrintError("uvmbus guest: cannot connect to the host at {}: {}", options.socket, e);
      return ToInt(e.code == ErrorCode::kUnavailable ? ExitCode::kHostUnavailable
                                                      : ExitCode::kFailure);
    }
    session = std::move(*first);
  }
  ++p.counters.sessions;
  if (session->setup_failed()) {  // the TAP could not be created (printed already)
    (void)session->Close(/*unload=*/true);
    return ToInt(ExitCode::kFailure);
  }
  if (session->missing_nic()) {
    PrintError("uvmbus guest {}: the host offered no synthetic NIC", p.name);
    (void)session->Close(/*unload=*/true);
    return ToInt(ExitCode::kFailure);
  }

  // Seeded per process: guests restarted together draw different delays.
  ReconnectBackoff backoff(static_cast<uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ull ^
                           static_cast<uint64_t>(NowMs()));
  for (;;) {
    pollfd fds[4] = {{signals->fd(), POLLIN, 0},
                     {p.done_fd.get(), POLLIN, 0},
                     {p.nic_fd.get(), POLLIN, 0},
                     {session->disconnect_fd(), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      PrintError("uvmbus guest: {}", Error::FromErrno("poll", errno));
      return ToInt(ExitCode::kFailure);
    }
    if (auto signo = signals->Read()) {
      Print("interrupted: {}, unloading", ::strsignal(*signo));
      signals->Unblock();  // a second signal ends the process at once
      break;
    }
    if (fds[2].revents != 0) {
      DrainFd(p.nic_fd.get());
      session->ReconcileNic("removed by the host");
    }
    if (!session->host_connected() || fds[3].revents != 0) {
      PrintError("uvmbus guest {}: the host hung up (answered {} heartbeats)", p.name,
                 p.answered.load(std::memory_order_relaxed));
      ++p.counters.host_losses;
      (void)session->Close(/*unload=*/false);
      session.reset();
      if (!options.reconnect) {
        PrintCounters(p);
        return ToInt(ExitCode::kHostUnavailable);
      }
      // Reconnect: a fresh session after each back-off step, until one connects or a signal.
      backoff.Reset();
      auto delay = backoff.Next();
      Print("reconnect: session {} lost; first attempt in {} ms", number, delay.count());
      for (;;) {
        pollfd sig{signals->fd(), POLLIN, 0};
        const int ready = ::poll(&sig, 1, static_cast<int>(delay.count()));
        if (ready < 0 && errno != EINTR) {
          PrintError("uvmbus guest: {}", Error::FromErrno("poll", errno));
          return ToInt(ExitCode::kFailure);
        }
        if (auto signo = signals->Read()) {
          Print("interrupted: {}, not connected", ::strsignal(*signo));
          PrintCounters(p);
          return TrafficStatus(p);
        }
        if (ready != 0) continue;  // EINTR: wait again (a shorter wait is harmless too)
        ++number;
        ++p.counters.connect_attempts;
        PrintConnect(p, number);
        auto next = GuestSession::Open(p, number);
        if (next) {
          session = std::move(*next);
          ++p.counters.sessions;
          ++p.counters.reconnects;
          Print("reconnected: session {} after {} attempt{} (reconnects {})", number,
                backoff.step(), backoff.step() == 1 ? "" : "s", p.counters.reconnects);
          break;
        }
        ++p.counters.connect_failures;
        delay = backoff.Next();
        Print("reconnect: attempt {} failed: {}; next attempt in {} ms", backoff.step() - 1,
              next.error(), delay.count());
      }
      continue;
    }
    if (options.traffic && !options.traffic->stay &&
        p.traffic_done.load(std::memory_order_acquire)) {
      Print("done: traffic run ended, unloading");
      break;
    }
    if (p.count_reached.load(std::memory_order_acquire)) {
      Print("done: answered {} heartbeats, unloading", options.count);
      break;
    }
  }
  // Drivers removed (channels closed, GPADLs torn down), then UNLOAD / UNLOAD_RESPONSE.
  const bool host_alive = session->host_connected();
  if (auto st = session->Close(/*unload=*/true); !st) {
    PrintError("uvmbus guest: disconnect: {}", st.error());
    PrintCounters(p);
    return ToInt(host_alive ? ExitCode::kFailure : ExitCode::kHostUnavailable);
  }
  PrintCounters(p);
  return TrafficStatus(p);
}

}  // namespace uvmbus::tools
