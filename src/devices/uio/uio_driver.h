// File: devices/uio/uio_driver.h
//
// What: `UioNetDriver`, the guest-runtime half of "Linux kernel + uio_hv_generic" for a synthetic
// NIC that a user-space driver (DPDK's netvsc PMD) runs. Bound to the netvsc class GUID instead
// of hv_netvsc, it does at probe what uio_hv_generic's probe + first open do:
//   1. the primary channel's ring pair (one contiguous run of guest pages: guest->host ring, then
//      host->guest ring, each a 4 KiB header + data) and OPENCHANNEL in raw mode (inbound
//      interrupt_mask = 1, feature_bits = 1 on both headers, the runtime never touches the rings
//      again: the user-space driver owns them);
//   2. the receive and send buffers in guest RAM, each described by its own GPADL on the primary
//      channel (uio_hv_generic: "recv:%u" / "send:%u" maps carry the handles);
//   3. one interrupt page (uio map1, unused by DPDK) and the bus's guest->host monitor page (map2,
//      INITIATE_CONTACT monitor_page2) through which the user-space driver signals the host;
//   4. the private sysfs tree (sysfs_tree.h) describing all of it.
// Sub-channels (offered by the host after the user-space driver sent NVS SUBCH_REQ over the
// primary ring): ring pair allocated, GPADL, OPENCHANNEL raw, then published in the tree with
// `ring` last. Rescinded sub-channels are unpublished. One NIC per driver instance (the tree has
// one uio0); further NIC offers fail their probe.
// Spec: vmbus-protocol.md 2.5 (monitor pages), 2.7 (offers, sub-channels), 2.8 (open), 2.9
//       (GPADLs), 3.1 (ring headers), 5.7 (netvsc buffers); design.md section 4 (devices).
// Linux: drivers/uio/uio_hv_generic.c (hv_uio_probe, hv_uio_open, hv_uio_new_channel,
//        hv_uio_ring_mmap, hv_uio_remove).
// Thread-safety: Probe/Remove run on the bus's device worker and sub-channel callbacks on its
//       sub-channel worker (guest/driver.h); the accessors are thread-safe.
#ifndef UVMBUS_DEVICES_UIO_UIO_DRIVER_H_
#define UVMBUS_DEVICES_UIO_UIO_DRIVER_H_

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/counter.h"
#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/uio/sysfs_tree.h"
#include "guest/channel.h"
#include "guest/driver.h"
#include "partition/guest_page_allocator.h"
#include "wire/device_guids.h"

namespace uvmbus::devices::uio {

// Sizes of what the driver allocates. Linux uio_hv_generic: 2 MiB rings (+ header), 31 MiB
// receive buffer, 16 MiB send buffer; DPDK adapts to any of them (rings > 1 page each).
struct UioConfig {
  // Each ring of the primary's pair, header page included (multiple of 4096, >= 8192).
  uint32_t ring_bytes = 1u << 20;
  // Each ring of a sub-channel's pair, header page included.
  uint32_t subchannel_ring_bytes = 1u << 20;
  // Receive and send buffers (page multiples, at most one GPADL: 8190 pages).
  uint64_t recv_buffer_bytes = uint64_t{16} << 20;
  uint64_t send_buffer_bytes = uint64_t{16} << 20;
};

// Counters (relaxed).
struct UioStats {
  Counter probes;
  Counter subchannels_opened;
  Counter subchannel_failures;
  Counter subchannels_rescinded;
};

class UioNetDriver final : public guest::Driver {
 public:
  // `tree` receives the device's files and must outlive the driver.
  explicit UioNetDriver(SysfsTree& tree, UioConfig config = {});
  ~UioNetDriver() override;
  UioNetDriver(const UioNetDriver&) = delete;
  UioNetDriver& operator=(const UioNetDriver&) = delete;

  // ---- guest::Driver ----
  std::string_view name() const override { return "uio_hv_generic"; }
  std::span<const Guid> id_table() const override { return kIdTable; }
  // Steps 1-4 of the file comment; everything is released again on failure.
  // Errors: kUnsupported (a NIC is bound already); kUnavailable (the bus passed no monitor page);
  // those of Channel::Open / EstablishGpadl, page allocation, SysfsTree::WriteDevice.
  Status Probe(guest::VmbusDevice& device) override;
  // Closes every channel, tears the buffer GPADLs down, frees the pages.
  void Remove(guest::VmbusDevice& device) override;

  // Lines describing what happened ("uio: ..."), for the command's output. Called on bus
  // threads; must not block.
  void SetObserver(std::function<void(const std::string&)> observer) EXCLUDES(mu_);

  // The bound device's layout (nullopt when none is bound).
  std::optional<DeviceLayout> layout() const EXCLUDES(mu_);
  // Number of open sub-channels published in the tree.
  size_t open_subchannels() const EXCLUDES(mu_);
  // Waits until `count` sub-channels are published. False on timeout.
  bool WaitForSubchannels(size_t count, std::chrono::milliseconds timeout) const EXCLUDES(mu_);
  const UioStats& stats() const { return stats_; }

 private:
  static constexpr std::array<Guid, 1> kIdTable = {wire::kNetworkClassGuid};

  struct Bound {
    guest::VmbusDevice* device = nullptr;
    DeviceLayout layout;
    partition::PageRun int_page;
    partition::PageRun recv;
    partition::PageRun send;
    std::vector<std::shared_ptr<guest::Channel>> subchannels;  // opened and published
  };

  void OnSubchannel(guest::Channel& channel);
  void OnSubchannelRescind(guest::Channel& channel);
  void Notify(const std::string& line) EXCLUDES(mu_);
  // Tears down whatever `bound` holds (the primary's GPADLs, its channel if open).
  void Release(Bound& bound);

  SysfsTree& tree_;
  const UioConfig config_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::unique_ptr<Bound> bound_ GUARDED_BY(mu_);
  std::function<void(const std::string&)> observer_ GUARDED_BY(mu_);
  // Pages whose GPADL the host never confirmed torn down: never reused.
  std::vector<partition::PageRun> leaked_ GUARDED_BY(mu_);
  UioStats stats_;
};

}  // namespace uvmbus::devices::uio

#endif  // UVMBUS_DEVICES_UIO_UIO_DRIVER_H_
