// File: tools/guest_nic.cc
#include "tools/guest_nic.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "common/log.h"
#include "guest/channel.h"
#include "wire/nvsp.h"

namespace uvmbus::tools {

std::string NvspVersionName(uint32_t version) {
  switch (version) {
    case wire::kNvspVersion1:
      return "1";
    case wire::kNvspVersion2:
      return "2";
    case wire::kNvspVersion4:
      return "4";
    case wire::kNvspVersion5:
      return "5";
    case wire::kNvspVersion6:
      return "6";
    case wire::kNvspVersion61:
      return "6.1";
    default:
      return fmt::format("{:#x}", version);
  }
}

std::vector<std::string> DescribeBringUp(const netvsc::NetvscDevice& d) {
  std::vector<std::string> out;
  const std::string name = d.name();
  out.push_back(fmt::format("netvsc: {} NVSP {} ({:#x}), NDIS {}.{}", name,
                            NvspVersionName(d.nvsp_version()), d.nvsp_version(),
                            d.ndis_version() >> 16, d.ndis_version() & 0xFFFF));
  out.push_back(fmt::format("netvsc: {} receive buffer {} sections x {} bytes, send buffer {} "
                            "sections x {} bytes",
                            name, d.recv_section_count(), d.recv_section_size(),
                            d.send_section_count(), d.send_section_size()));
  out.push_back(fmt::format("netvsc: {} RNDIS initialized: mac {}, mtu {}, up to {} packets per "
                            "message, alignment {}",
                            name, d.mac().ToString(), d.mtu(), d.rndis_max_packets(),
                            d.rndis_packet_alignment()));
  for (uint32_t q = 0; q < d.queue_count(); ++q) {
    const guest::Channel* ch = d.channel(q);
    if (ch == nullptr) continue;
    out.push_back(fmt::format("netvsc: {} queue {} on {} relid {}, target_cpu {}", name, q,
                              q == 0 ? "primary channel" : "sub-channel", ch->relid(),
                              ch->target_vcpu()));
  }
  out.push_back(fmt::format("netvsc: {} link {}, {} Mbit/s, {} queue{}", name,
                            d.link_up() ? "up" : "down", d.link_speed_mbps(), d.queue_count(),
                            d.queue_count() == 1 ? "" : "s"));
  return out;
}

Expected<std::unique_ptr<TapPump>> TapPump::Create(const TapSpec& spec,
                                                   const net::MacAddress& mac, uint32_t queues,
                                                   uint32_t mtu) {
  std::optional<net::NetNamespace> netns;
  if (!spec.netns.empty()) {
    auto ns = net::NetNamespace::Open(spec.netns);
    if (!ns) return unexpected(ns.error());
    netns = std::move(*ns);
  }
  net::TapFrontendOptions options;
  options.ifname = spec.ifname;
  options.mac = mac;
  options.queues = queues;
  options.mtu = mtu;
  options.ipv4 = spec.addr;
  options.netns = netns ? &*netns : nullptr;
  auto tap = net::TapFrontend::Create(options);
  if (!tap) return unexpected(tap.error());
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return unexpected(Error::FromErrno("eventfd", errno));
  std::unique_ptr<TapPump> pump(new TapPump(std::move(netns), std::move(*tap), std::move(stop)));
  // No NIC behind it yet: the kernel must not believe frames can leave (a failed carrier change
  // on a kernel < 5.0 only loses the carrier indication, not the interface).
  pump->SetCarrier(false);
  return pump;
}

Expected<std::unique_ptr<TapPump>> TapPump::Start(netvsc::NetDevice& device,
                                                  const TapSpec& spec) {
  auto pump = Create(spec, device.mac(), device.queue_count(), device.mtu());
  if (!pump) return unexpected(pump.error());
  if (Status st = (*pump)->Attach(device); !st) return unexpected(st.error());
  return pump;
}

TapPump::TapPump(std::optional<net::NetNamespace> netns, std::unique_ptr<net::TapEndpoint> tap,
                 UniqueFd stop)
    : netns_(std::move(netns)), tap_(std::move(tap)), stop_(std::move(stop)) {}

TapPump::~TapPump() { Detach(); }

Status TapPump::Attach(netvsc::NetDevice& device) {
  if (device_ != nullptr) return MakeError(ErrorCode::kInvalidArgument, "TAP already attached");
  const uint32_t nic_queues = device.queue_count();
  if (nic_queues == 0) return MakeError(ErrorCode::kInvalidArgument, "NIC without queues");
  const uint32_t n = std::min(nic_queues, tap_->max_queues());
  if (Status st = tap_->SetQueueCount(n); !st) return st;
  // A stale wake-up of the previous Detach() must not stop the new threads at once.
  uint64_t drained = 0;
  (void)!::read(stop_.get(), &drained, sizeof drained);
  stopping_.store(false, std::memory_order_release);
  device_ = &device;
  // Carrier follows the NIC; the callback runs on a netvsc thread and only flips the carrier.
  device.SetLinkCallback([this](bool up) { SetCarrier(up); });
  SetCarrier(device.link_up());
  for (uint32_t i = 0; i < n; ++i) {
    threads_.emplace_back([this, i, n] { Loop(i, n); });
  }
  counters_.attaches.fetch_add(1, std::memory_order_relaxed);
  return Ok();
}

void TapPump::Detach() {
  if (device_ == nullptr) return;
  device_->SetLinkCallback({});
  stopping_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  device_ = nullptr;
  SetCarrier(false);
  counters_.detaches.fetch_add(1, std::memory_order_relaxed);
}

void TapPump::SetCarrier(bool up) {
  const bool was = tap_->link_up();
  if (Status st = tap_->SetLinkUp(up); !st) {
    UVMBUS_LOG_WARN("guest", "TAP {}: carrier {}: {}", tap_->ifname(), up ? "on" : "off",
                    st.error());
    return;
  }
  if (was && !up) counters_.carrier_off.fetch_add(1, std::memory_order_relaxed);
}

bool TapPump::carrier() const { return tap_->link_up(); }

const std::string& TapPump::ifname() const { return tap_->ifname(); }

void TapPump::Loop(uint32_t index, uint32_t workers) {
  netvsc::NetDevice& device = *device_;
  net::Queue& tq = tap_->queue(index);
  std::vector<uint32_t> mine;  // device queues whose receive side this thread drains
  for (uint32_t q = index; q < device.queue_count(); q += workers) mine.push_back(q);
  const uint32_t frame = net::kMaxFrameSize;
  std::vector<uint8_t> buffers(size_t{net::kMaxBatch} * frame);
  auto fresh = [&](net::RxBatch& b) {
    b.Clear();
    for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
      b.Add({buffers.data() + size_t{i} * frame, frame});
    }
  };
  std::vector<pollfd> fds;
  while (!stopping_.load(std::memory_order_acquire)) {
    bool busy = false;
    net::RxBatch rx;
    fresh(rx);
    if (const uint32_t n = tq.Poll(rx); n != 0) {
      const uint32_t sent = device.Send(netvsc::kAutoQueue, net::AsFrameBatch(rx, n));
      counters_.to_host.fetch_add(sent, std::memory_order_relaxed);
      counters_.dropped.fetch_add(n - sent, std::memory_order_relaxed);
      busy = true;
    }
    for (uint32_t q : mine) {
      fresh(rx);
      if (const uint32_t n = device.Receive(q, rx); n != 0) {
        const uint32_t sent = tq.Send(net::AsFrameBatch(rx, n));
        counters_.to_kernel.fetch_add(sent, std::memory_order_relaxed);
        counters_.dropped.fetch_add(n - sent, std::memory_order_relaxed);
        busy = true;
      }
    }
    if (busy) continue;
    bool ready = !tq.PrepareWait();
    fds.clear();
    fds.push_back({tq.wait_fd(), POLLIN, 0});
    for (uint32_t q : mine) {
      if (!device.PrepareWait(q)) ready = true;
      fds.push_back({device.wait_fd(q), POLLIN, 0});
    }
    if (ready) continue;
    fds.push_back({stop_.get(), POLLIN, 0});
    // Bounded: a NIC that goes away without waking us is noticed.
    if (::poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) return;
  }
}

}  // namespace uvmbus::tools
