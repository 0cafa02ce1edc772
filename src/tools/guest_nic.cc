// File: tools/guest_nic.cc
#include "tools/guest_nic.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

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

Expected<std::unique_ptr<TapPump>> TapPump::Start(netvsc::NetDevice& device,
                                                  const TapSpec& spec) {
  std::optional<net::NetNamespace> netns;
  if (!spec.netns.empty()) {
    auto ns = net::NetNamespace::Open(spec.netns);
    if (!ns) return unexpected(ns.error());
    netns = std::move(*ns);
  }
  net::TapFrontendOptions options;
  options.ifname = spec.ifname;
  options.mac = device.mac();
  options.queues = device.queue_count();
  options.mtu = device.mtu();
  options.ipv4 = spec.addr;
  options.netns = netns ? &*netns : nullptr;
  auto tap = net::TapFrontend::Create(options);
  if (!tap) return unexpected(tap.error());
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return unexpected(Error::FromErrno("eventfd", errno));
  std::unique_ptr<TapPump> pump(
      new TapPump(device, std::move(netns), std::move(*tap), std::move(stop)));
  for (uint32_t q = 0; q < device.queue_count(); ++q) {
    pump->threads_.emplace_back([p = pump.get(), q] { p->Loop(q); });
  }
  return pump;
}

TapPump::TapPump(netvsc::NetDevice& device, std::optional<net::NetNamespace> netns,
                 std::unique_ptr<net::TapEndpoint> tap, UniqueFd stop)
    : device_(device), netns_(std::move(netns)), tap_(std::move(tap)), stop_(std::move(stop)) {}

TapPump::~TapPump() { Stop(); }

void TapPump::Stop() {
  const uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

const std::string& TapPump::ifname() const { return tap_->ifname(); }

void TapPump::Loop(uint32_t queue) {
  net::Queue& tq = tap_->queue(queue);
  const uint32_t frame = net::kMaxFrameSize;
  std::vector<uint8_t> buffers(size_t{net::kMaxBatch} * frame);
  auto fresh = [&](net::RxBatch& b) {
    b.Clear();
    for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
      b.Add({buffers.data() + size_t{i} * frame, frame});
    }
  };
  for (;;) {
    bool busy = false;
    net::RxBatch rx;
    fresh(rx);
    if (const uint32_t n = tq.Poll(rx); n != 0) {
      const uint32_t sent = device_.Send(netvsc::kAutoQueue, net::AsFrameBatch(rx, n));
      counters_.to_host.fetch_add(sent, std::memory_order_relaxed);
      counters_.dropped.fetch_add(n - sent, std::memory_order_relaxed);
      busy = true;
    }
    fresh(rx);
    if (const uint32_t n = device_.Receive(queue, rx); n != 0) {
      const uint32_t sent = tq.Send(net::AsFrameBatch(rx, n));
      counters_.to_kernel.fetch_add(sent, std::memory_order_relaxed);
      counters_.dropped.fetch_add(n - sent, std::memory_order_relaxed);
      busy = true;
    }
    if (busy) continue;
    if (!tq.PrepareWait() || !device_.PrepareWait(queue)) continue;
    pollfd fds[3] = {{tq.wait_fd(), POLLIN, 0},
                     {device_.wait_fd(queue), POLLIN, 0},
                     {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 3, 100) < 0 && errno != EINTR) return;
    if (fds[2].revents != 0) return;
  }
}

}  // namespace uvmbus::tools
