// File: tools/guest_session.cc - see guest_session.h.
#include "tools/guest_session.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "common/log.h"
#include "tools/output.h"

namespace uvmbus::tools {
namespace {

std::string IcVersion(uint32_t word) { return fmt::format("{}.{}", word >> 16, word & 0xFFFF); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// ReconnectBackoff

ReconnectBackoff::ReconnectBackoff(uint64_t seed, std::chrono::milliseconds initial,
                                   std::chrono::milliseconds max)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial_)),
      base_(initial_),
      rng_(seed) {}

std::chrono::milliseconds ReconnectBackoff::Next() {
  const int64_t base = base_.count();
  // Equal jitter: half the base is fixed (the back-off still grows), half is random (guests
  // restarted by the same event spread out instead of reconnecting in lock-step).
  std::uniform_int_distribution<int64_t> jitter(0, base - base / 2);
  const auto delay = std::chrono::milliseconds(base / 2 + jitter(rng_));
  base_ = std::min(base_ * 2, max_);
  ++step_;
  return delay;
}

void ReconnectBackoff::Reset() {
  base_ = initial_;
  step_ = 0;
}

nlohmann::json SupervisorCounters::ToJson() const {
  return {{"sessions", sessions},
          {"reconnects", reconnects},
          {"host_losses", host_losses},
          {"connect_attempts", connect_attempts},
          {"connect_failures", connect_failures},
          {"link_downs", link_downs},
          {"nic_attaches", nic_attaches}};
}

// ---------------------------------------------------------------------------------------------
// GuestPersistent

GuestPersistent::GuestPersistent(const GuestOptions& opts, std::string guest_name)
    : options(opts),
      name(std::move(guest_name)),
      done_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      nic_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void WakeFd(int fd) {
  const uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);  // eventfd: fails only when saturated (already awake)
}

void DrainFd(int fd) {
  uint64_t value = 0;
  (void)!::read(fd, &value, sizeof value);
}

// ---------------------------------------------------------------------------------------------
// GuestSession

// Heartbeat lines wait until the "open:" lines are out, so that a newcomer reads the steps in
// protocol order even though the first heartbeat may race with the end of Connect().
class GuestSession::HeartbeatPrinter {
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

GuestSession::GuestSession(GuestPersistent& persistent, uint32_t number)
    : persistent_(persistent), number_(number) {}

GuestSession::~GuestSession() { (void)Close(/*unload=*/false); }

Expected<std::unique_ptr<GuestSession>> GuestSession::Open(GuestPersistent& persistent,
                                                           uint32_t number) {
  const GuestOptions& options = persistent.options;
  std::unique_ptr<GuestSession> s(new GuestSession(persistent, number));
  auto partition = partition::SocketGuestPartition::Connect(
      options.socket, persistent.name, options.cpus, uint64_t{options.ram_mib} << 20,
      static_cast<int>(options.host_timeout_ms));
  if (!partition) return unexpected(partition.error());
  s->partition_ = std::move(*partition);

  s->heartbeat_printer_ = std::make_unique<HeartbeatPrinter>();
  HeartbeatPrinter* printer = s->heartbeat_printer_.get();
  GuestPersistent* p = &persistent;
  s->heartbeat_ = std::make_unique<devices::HeartbeatDriver>(
      [printer, p](const devices::HeartbeatEvent& e) {
        if (e.kind == devices::HeartbeatEvent::Kind::kNegotiated) {
          printer->Print(fmt::format("heartbeat: negotiated framework {}, heartbeat {}",
                                     IcVersion(e.framework_version),
                                     IcVersion(e.heartbeat_version)));
          return;
        }
        printer->Print(fmt::format("heartbeat: seq={}", e.sequence));
        const uint64_t n = p->answered.fetch_add(1, std::memory_order_relaxed) + 1;
        if (p->options.count != 0 && n == p->options.count) {
          p->count_reached.store(true, std::memory_order_release);
          WakeFd(p->done_fd.get());
        }
      });
  s->netvsc_ = std::make_unique<netvsc::NetvscDriver>(*s->partition_);
  // A NIC came up or went away (hot add, rescind, host gone): the main loop reconciles.
  s->netvsc_->SetObserver([p](const std::shared_ptr<netvsc::NetvscDevice>&, bool) {
    WakeFd(p->nic_fd.get());
  });

  guest::BusOptions bus_options;
  bus_options.response_timeout = std::chrono::milliseconds(options.host_timeout_ms);
  bus_options.offers_timeout = std::chrono::milliseconds(options.host_timeout_ms);
  auto bus = guest::VmbusBus::Create(*s->partition_, bus_options);
  if (!bus) return unexpected(bus.error());
  s->bus_ = std::move(*bus);
  s->bus_->AddObserver([](const guest::BusEvent& e) {
    // kHostGone is reported by the supervisor (stderr); everything else is a step.
    if (e.kind != guest::BusEventKind::kHostGone) PrintLine(e.ToString());
  });
  if (Status st = s->bus_->RegisterDriver(*s->heartbeat_); !st) return unexpected(st.error());
  if (Status st = s->bus_->RegisterDriver(*s->netvsc_); !st) return unexpected(st.error());
  if (Status st = s->bus_->Connect(); !st) {
    Error e = st.error();
    if (!s->partition_->connected()) e.code = ErrorCode::kUnavailable;
    return unexpected(std::move(e));
  }
  for (const guest::DeviceInfo& d : s->bus_->ListDevices()) {
    for (const guest::ChannelInfo& c : d.channels) {
      if (c.state != guest::ChannelState::kOpen) continue;
      Print("open: {} relid {}, target_cpu {}, driver {}, callback mode {}", d.description,
            c.relid, c.target_vcpu, d.driver.empty() ? "none" : d.driver,
            guest::CallbackModeName(c.mode));
    }
  }
  // netvsc brought every NIC up inside its probe, which Connect() waited for.
  const std::vector<std::shared_ptr<netvsc::NetvscDevice>> nics = s->netvsc_->devices();
  for (const auto& nic : nics) {
    for (const std::string& line : DescribeBringUp(*nic)) PrintLine(line);
  }
  printer->Release();
  if (!nics.empty()) {
    // The first session's TAP failure is a setup failure of the command (exit 1).
    if (Status st = s->Attach(nics[0]); !st && persistent.tap == nullptr) s->setup_failed_ = true;
  }
  return s;
}

bool GuestSession::missing_nic() const {
  const GuestOptions& o = persistent_.options;
  return (o.tap || o.traffic) && nic_ == nullptr;
}

Status GuestSession::Attach(const std::shared_ptr<netvsc::NetvscDevice>& nic) {
  const GuestOptions& o = persistent_.options;
  if (o.tap) {
    if (persistent_.tap == nullptr) {
      auto pump = TapPump::Create(*o.tap, nic->mac(), nic->queue_count(), nic->mtu());
      if (!pump) {
        PrintError("uvmbus guest {}: TAP {}: {}", persistent_.name, o.tap->ifname, pump.error());
        return unexpected(pump.error());
      }
      persistent_.tap = std::move(*pump);
      Print("tap: {} is interface {}{}{}, {} queue{}", nic->name(), persistent_.tap->ifname(),
            o.tap->netns.empty() ? std::string() : " in netns " + o.tap->netns,
            o.tap->addr ? fmt::format(" with {}/{}", o.tap->addr->address.ToString(),
                                      o.tap->addr->prefix_length)
                        : std::string(),
            nic->queue_count(), nic->queue_count() == 1 ? "" : "s");
    } else {
      // Same interface, new NIC behind it. The MAC is the host's (stable per guest name and
      // NIC id); a different one is only reported: the interface keeps its address.
      Print("tap: {} reattached to interface {} ({} queue{})", nic->name(),
            persistent_.tap->ifname(), nic->queue_count(), nic->queue_count() == 1 ? "" : "s");
    }
    if (Status st = persistent_.tap->Attach(*nic); !st) {
      PrintError("uvmbus guest {}: TAP {}: {}", persistent_.name, persistent_.tap->ifname(),
                 st.error());
      return st;
    }
    nic_ = nic;
    ++persistent_.counters.nic_attaches;
    Print("link: {} up on TAP {}, carrier {}", nic->name(), persistent_.tap->ifname(),
          persistent_.tap->carrier() ? "on" : "off");
    return Ok();
  }

  const net::Ipv4Interface address = o.addr.value_or(DefaultGuestAddress(persistent_.name));
  Print("responder: {} answers ARP and ICMP echo for {}/{} on {} queue{}", nic->name(),
        address.address.ToString(), address.prefix_length, nic->queue_count(),
        nic->queue_count() == 1 ? "" : "s");
  nic_ = nic;
  ++persistent_.counters.nic_attaches;
  detaching_.store(false, std::memory_order_release);
  loop_ = std::make_unique<GuestNicLoop>(*nic, address,
                                         [](const std::string& line) { PrintLine(line); });
  loop_thread_ = std::thread([this, loop = loop_.get(), &o] {
    GuestPersistent& p = persistent_;
    // Every NIC served runs the traffic once; with stay=on each new NIC (after a reconnect or a
    // re-add) runs it again, so a test sees traffic carried again.
    if (o.traffic && (o.traffic->stay || !p.traffic_done.load(std::memory_order_acquire))) {
      const TrafficResult r = loop->RunTraffic(*o.traffic);
      if (detaching_.load(std::memory_order_acquire) && !r.ok) {
        // Not a verdict: the NIC went away under the run (host gone, rescind).
        Print("traffic: run interrupted, the NIC went away (sent {}, received {} of {}); it "
              "runs again on the next NIC",
              r.sent, r.received, r.expected);
        return;
      }
      Print("traffic: {}: sent {}, received {} of {}, bad {}, duplicates {} in {:.3f} s",
            r.ok ? "OK" : "FAILED " + r.error, r.sent, r.received, r.expected, r.bad,
            r.duplicates, r.seconds);
      PrintLine(nlohmann::json{{"traffic", r.ToJson()}}.dump());
      p.traffic_ok.store(r.ok, std::memory_order_release);
      p.traffic_done.store(true, std::memory_order_release);
      if (!o.traffic->stay) {
        WakeFd(p.done_fd.get());
        return;
      }
    }
    loop->Serve();
  });
  return Ok();
}

void GuestSession::Detach(std::string_view why) {
  if (nic_ == nullptr) return;
  const bool removing = why != "unloading";
  detaching_.store(removing, std::memory_order_release);
  if (loop_) loop_->Stop();
  if (loop_thread_.joinable()) loop_thread_.join();
  loop_.reset();
  const bool tap = persistent_.tap != nullptr && persistent_.tap->attached();
  if (tap) persistent_.tap->Detach();
  ++persistent_.counters.link_downs;
  if (tap) {
    Print("link: {} down ({}), TAP {} kept, carrier {}", nic_->name(), why,
          persistent_.tap->ifname(), persistent_.tap->carrier() ? "on" : "off");
  } else {
    Print("link: {} down ({})", nic_->name(), why);
  }
  nic_.reset();
  detaching_.store(false, std::memory_order_release);
}

void GuestSession::ReconcileNic(std::string_view why) {
  if (closed_ || netvsc_ == nullptr) return;
  const std::vector<std::shared_ptr<netvsc::NetvscDevice>> nics = netvsc_->devices();
  if (nic_ != nullptr && std::find(nics.begin(), nics.end(), nic_) == nics.end()) {
    Detach(partition_->connected() ? why : "the host hung up");
  }
  if (nic_ == nullptr && !nics.empty() && partition_->connected()) {
    // A NIC offered after the connection (hot add, or re-added after a rescind): netvsc
    // probed it on its own; its bring-up lines were not printed yet.
    for (const std::string& line : DescribeBringUp(*nics[0])) PrintLine(line);
    (void)Attach(nics[0]);
  }
}

Status GuestSession::Close(bool unload) {
  if (closed_) return Ok();
  closed_ = true;
  const bool host_alive = partition_ != nullptr && partition_->connected();
  Detach(unload && host_alive ? "unloading" : "the host hung up");
  Status result = Ok();
  if (bus_ != nullptr && unload && host_alive) {
    // Drivers removed (channels closed, GPADLs torn down), then UNLOAD / UNLOAD_RESPONSE.
    result = bus_->Disconnect();
  }
  // The bus first: its destructor lets the drivers' Remove() run (after a hang-up the bus queued
  // it; nothing is sent to a vanished host) and joins its threads; then the drivers; then the partition (guest RAM unmapped,
  // socket closed - a live host sees the hang-up).
  bus_.reset();
  netvsc_.reset();
  heartbeat_.reset();
  if (heartbeat_printer_) heartbeat_printer_->Release();
  partition_.reset();
  return result;
}

}  // namespace uvmbus::tools
