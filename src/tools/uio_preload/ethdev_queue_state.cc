// File: tools/uio_preload/ethdev_queue_state.cc
//
// What: part of libuvmbus_uio.so: works around a DPDK 22.11 netvsc PMD bug that stops testpmd
// from polling any queue. DPDK's netvsc PMD before 23.11 never sets the ethdev queue state
// (rte_eth_dev_data.rx_queue_state[] / tx_queue_state[]) to STARTED in hn_dev_start (upstream
// fix: DPDK commit 0727d5d0e644 "net/netvsc: set queue state after start/stop", v23.11, not in
// 22.11.x). Since DPDK 22.11, testpmd disables every forwarding stream whose queue reports
// STOPPED (app/test-pmd: "do not poll stopped queues"; the state comes from
// rte_eth_rx_queue_info_get, which netvsc implements), so an unmodified 22.11 testpmd never calls
// rx_burst or tx_burst on a netvsc port: nothing is received, nothing is sent, and the primary
// channel's host-to-guest ring stops being drained after dev_start (only RNDIS control polling
// still reads it). The host is not involved; the same happens on Hyper-V.
//
// The shim interposes rte_eth_dev_start / rte_eth_dev_stop (testpmd imports them from
// librte_ethdev.so.23) and, for a port driven by "net_netvsc" only, does after the real call what
// the upstream fix does inside the PMD: every configured queue STARTED after a successful start,
// STOPPED after stop. Nothing else is touched; other PMDs and other DPDK ABIs are left alone.
// The struct offsets are those of DPDK 22.11 (ABI 23, ethdev_driver.h, x86-64), checked at run
// time (the real function must come from librte_ethdev.so.23, data->port_id must match, queue
// counts must be in range) so a different DPDK build is never written to.
// Spec: none (DPDK ethdev ABI 23). Linux/OpenVMM: none.
// Thread-safety: called by the application's control thread, like the functions it wraps.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <atomic>

namespace {

// DPDK 22.11 (ABI 23) x86-64 layout, ethdev_driver.h / dev_driver.h.
constexpr size_t kEthDevSize = 16512;        // sizeof(struct rte_eth_dev) (cache aligned)
constexpr size_t kEthDevData = 48;           // rte_eth_dev.data
constexpr size_t kEthDevDevice = 72;         // rte_eth_dev.device
constexpr size_t kDeviceDriver = 32;         // rte_device.driver
constexpr size_t kDriverName = 16;           // rte_driver.name
constexpr size_t kDataNbRxQueues = 80;       // rte_eth_dev_data.nb_rx_queues (u16)
constexpr size_t kDataNbTxQueues = 82;       // rte_eth_dev_data.nb_tx_queues (u16)
constexpr size_t kDataPortId = 3440;         // rte_eth_dev_data.port_id (u16)
constexpr size_t kDataRxQueueState = 3443;   // rte_eth_dev_data.rx_queue_state[1024]
constexpr size_t kDataTxQueueState = 4467;   // rte_eth_dev_data.tx_queue_state[1024]
constexpr uint16_t kMaxQueuesPerPort = 1024;  // RTE_MAX_QUEUES_PER_PORT
constexpr uint16_t kMaxPorts = 32;           // RTE_MAX_ETHPORTS (Debian build)
constexpr uint8_t kQueueStopped = 0;         // RTE_ETH_QUEUE_STATE_STOPPED
constexpr uint8_t kQueueStarted = 1;         // RTE_ETH_QUEUE_STATE_STARTED

using PortFn = int (*)(uint16_t);

template <typename T>
T Load(const uint8_t* p) {
  T v;
  memcpy(&v, p, sizeof(v));
  return v;
}

// The next definition of a wrapped function (lazily resolved; no function-local statics: the
// shim has no C++ runtime). `ethdev23`: it lives in DPDK 22.11's librte_ethdev.so.23, whose
// layout the constants above describe. Resolution races are benign (same answer every time).
struct Wrapped {
  std::atomic<PortFn> fn{nullptr};
  std::atomic<bool> ethdev23{false};
};
Wrapped g_start;
Wrapped g_stop;

PortFn Resolve(Wrapped& w, const char* name) {
  PortFn fn = w.fn.load(std::memory_order_acquire);
  if (fn != nullptr) return fn;
  fn = reinterpret_cast<PortFn>(dlsym(RTLD_NEXT, name));
  if (fn == nullptr) return nullptr;
  Dl_info info{};
  const bool ethdev23 = dladdr(reinterpret_cast<void*>(fn), &info) != 0 &&
                        info.dli_fname != nullptr &&
                        strstr(info.dli_fname, "librte_ethdev.so.23") != nullptr;
  w.ethdev23.store(ethdev23, std::memory_order_relaxed);
  w.fn.store(fn, std::memory_order_release);
  return fn;
}

// Sets every configured queue of `port_id` to `state` if the port is a netvsc port of a
// DPDK 22.11 ethdev whose layout checks out.
void SetNetvscQueueState(uint16_t port_id, uint8_t state) {
  if (port_id >= kMaxPorts) return;
  auto* devices = static_cast<uint8_t*>(dlsym(RTLD_DEFAULT, "rte_eth_devices"));
  if (devices == nullptr) return;
  const uint8_t* dev = devices + size_t{port_id} * kEthDevSize;
  auto* data = Load<uint8_t*>(dev + kEthDevData);
  const auto* device = Load<const uint8_t*>(dev + kEthDevDevice);
  if (data == nullptr || device == nullptr) return;
  const auto* driver = Load<const uint8_t*>(device + kDeviceDriver);
  if (driver == nullptr) return;
  const auto* name = Load<const char*>(driver + kDriverName);
  if (name == nullptr || strcmp(name, "net_netvsc") != 0) return;
  if (Load<uint16_t>(data + kDataPortId) != port_id) return;
  const uint16_t nb_rx = Load<uint16_t>(data + kDataNbRxQueues);
  const uint16_t nb_tx = Load<uint16_t>(data + kDataNbTxQueues);
  if (nb_rx > kMaxQueuesPerPort || nb_tx > kMaxQueuesPerPort) return;
  memset(data + kDataRxQueueState, state, nb_rx);
  memset(data + kDataTxQueueState, state, nb_tx);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int rte_eth_dev_start(uint16_t port_id) {
  const PortFn real = Resolve(g_start, "rte_eth_dev_start");
  if (real == nullptr) return -ENOSYS;  // no ethdev loaded (cannot happen in a DPDK program)
  const int rc = real(port_id);
  if (rc == 0 && g_start.ethdev23) SetNetvscQueueState(port_id, kQueueStarted);
  return rc;
}

__attribute__((visibility("default"))) int rte_eth_dev_stop(uint16_t port_id) {
  const PortFn real = Resolve(g_stop, "rte_eth_dev_stop");
  if (real == nullptr) return -ENOSYS;
  const int rc = real(port_id);
  if (g_stop.ethdev23) SetNetvscQueueState(port_id, kQueueStopped);
  return rc;
}

}  // extern "C"
