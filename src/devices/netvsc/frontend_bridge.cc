// File: devices/netvsc/frontend_bridge.cc
#include "devices/netvsc/frontend_bridge.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "common/log.h"

namespace uvmbus::netvsc {

Expected<std::unique_ptr<FrontendBridge>> FrontendBridge::Create(NetDevice& nic,
                                                                 net::Endpoint& frontend) {
  const uint32_t nic_queues = nic.queue_count();
  if (nic_queues == 0) return MakeError(ErrorCode::kInvalidArgument, "bridge: NIC has no queues");
  const uint32_t n = std::min(nic_queues, frontend.max_queues());
  if (Status st = frontend.SetQueueCount(n); !st) return tl::unexpected(st.error());
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error::FromErrno("eventfd", errno));
  std::unique_ptr<FrontendBridge> bridge(new FrontendBridge(nic, frontend, UniqueFd(fd)));
  // Carrier follows the NIC (the callback runs on a netvsc thread and only flips the frontend's
  // link state).
  (void)frontend.SetLinkUp(nic.link_up());
  nic.SetLinkCallback([&frontend](bool up) { (void)frontend.SetLinkUp(up); });
  for (uint32_t i = 0; i < n; ++i) {
    bridge->threads_.emplace_back([b = bridge.get(), i, n] { b->Worker(i, n); });
  }
  return bridge;
}

FrontendBridge::FrontendBridge(NetDevice& nic, net::Endpoint& frontend, UniqueFd stop_fd)
    : nic_(nic), frontend_(frontend), stop_fd_(std::move(stop_fd)) {}

FrontendBridge::~FrontendBridge() {
  nic_.SetLinkCallback({});
  stop_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
  for (auto& t : threads_) t.join();
}

FrontendBridgeStats FrontendBridge::Stats() const {
  return {tx_frames_.Get(), tx_dropped_.Get(), rx_frames_.Get(), rx_refused_.Get()};
}

void FrontendBridge::Worker(uint32_t index, uint32_t workers) {
  net::Queue& fq = frontend_.queue(index);
  const uint32_t nic_queues = nic_.queue_count();
  std::vector<uint32_t> mine;  // NIC queues whose receive side this worker drains
  for (uint32_t q = index; q < nic_queues; q += workers) mine.push_back(q);
  const uint32_t tx_queue = index;  // index < nic_queues (workers <= NIC queues)

  const uint32_t frame_cap = nic_.max_frame_size() + 4;  // room for an inline 802.1Q tag
  std::vector<uint8_t> tx_store(size_t{net::kMaxBatch} * frame_cap);
  std::vector<uint8_t> rx_store(size_t{net::kMaxBatch} * frame_cap);
  net::RxBatch tx;          // frames polled from the frontend, waiting for the NIC
  uint32_t tx_filled = 0;   // frames in `tx`
  uint32_t tx_sent = 0;     // of which the NIC consumed
  std::vector<pollfd> fds;

  while (!stop_.load(std::memory_order_relaxed)) {
    bool progress = false;
    // Frontend -> NIC.
    if (tx_sent == tx_filled) {
      tx.Clear();
      for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
        tx.Add(std::span<uint8_t>(tx_store.data() + size_t{i} * frame_cap, frame_cap));
      }
      tx_filled = fq.Poll(tx);
      tx_sent = 0;
    }
    if (tx_sent < tx_filled) {
      net::FrameBatch batch;
      for (uint32_t i = tx_sent; i < tx_filled; ++i) {
        batch.Add(std::span<const uint8_t>(tx[i].data, tx[i].length));
      }
      const uint32_t sent = nic_.Send(tx_queue, batch);
      tx_sent += sent;
      tx_frames_.Add(sent);
      progress |= sent > 0;
    }
    // NIC -> frontend.
    for (uint32_t q : mine) {
      net::RxBatch rx;
      for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
        rx.Add(std::span<uint8_t>(rx_store.data() + size_t{i} * frame_cap, frame_cap));
      }
      const uint32_t n = nic_.Receive(q, rx);
      if (n == 0) continue;
      progress = true;
      const uint32_t taken = fq.Send(net::AsFrameBatch(rx, n));
      rx_frames_.Add(taken);
      rx_refused_.Add(n - taken);
    }
    if (progress) continue;

    // Nothing moved: arm every source, re-check, then sleep (a source that reports work pending
    // keeps us awake).
    fds.clear();
    bool ready = false;
    const bool want_frontend = tx_sent == tx_filled;
    if (want_frontend) {
      if (!fq.PrepareWait()) ready = true;
      fds.push_back({fq.wait_fd(), POLLIN, 0});
    }
    for (uint32_t q : mine) {
      if (!nic_.PrepareWait(q)) ready = true;
      fds.push_back({nic_.wait_fd(q), POLLIN, 0});
    }
    int timeout_ms = 200;  // bounded: a NIC that goes away without waking us is noticed
    if (!want_frontend) {
      if (!nic_.link_up()) {
        // Interface closed or NIC removed: what the stack sent cannot go anywhere (a real NIC
        // without carrier drops it too).
        tx_dropped_.Add(tx_filled - tx_sent);
        tx_sent = tx_filled;
        continue;
      }
      // Waiting for NIC room: a stopped queue's fd fires when it is woken; a queue short of
      // bounce slots or request ids (not stopped) is retried shortly.
      if (!nic_.PrepareWait(tx_queue)) ready = true;
      if (!nic_.tx_stopped(tx_queue)) timeout_ms = 1;
      fds.push_back({nic_.wait_fd(tx_queue), POLLIN, 0});
    }
    if (ready) continue;
    fds.push_back({stop_fd_.get(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), timeout_ms);
  }
}

}  // namespace uvmbus::netvsc
