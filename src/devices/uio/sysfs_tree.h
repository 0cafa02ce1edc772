// File: devices/uio/sysfs_tree.h
//
// What: `SysfsTree`, the private directory that stands in for /sys/bus/vmbus and /dev/uioN for a
// user-space VMBus driver (DPDK's netvsc PMD) running under the uio LD_PRELOAD shim. It holds
// exactly the files DPDK 22.11 reads (docs/interop.md, shared/dpdk-interop.md section 1):
//
//   <dir>/sys/bus/vmbus/devices/<instance uuid>/
//       class_id, device_id            "{uuid}\n"
//       id, monitor_id                 primary relid / monitor id, decimal + "\n"
//       numa_node                      "0\n"
//       uio/uio0/maps/map0..map4/{name,size}
//                                      names txrx_rings, int_page, monitor_page, recv:<gpadl>,
//                                      send:<gpadl> (uio_hv_generic's); size "0x%x\n"
//       channels/<relid>/{subchannel_id,monitor_id,ring}
//                                      one per open channel; `ring` is a sparse placeholder
//                                      whose size is the ring pair's, created LAST (rename), as
//                                      DPDK takes its presence to mean "channel open"
//   <dir>/dev/uio0                     placeholder the shim opens instead of /dev/uio0
//   <dir>/uio-table                    the map table (map_table.h), replaced atomically
//
// Spec: vmbus-protocol.md 2.7 (relids, monitor ids, sub_channel_index); the sysfs ABI is Linux's
//       Documentation/ABI/stable/sysfs-bus-vmbus and drivers/uio/uio_hv_generic.c.
// Linux: drivers/hv/vmbus_drv.c (device attributes, channels/<relid>/), drivers/uio/uio.c
//        (maps/mapN/{name,size}), drivers/uio/uio_hv_generic.c (map names, "ring" attribute).
// Thread-safety: all methods are thread-safe (one internal mutex).
#ifndef UVMBUS_DEVICES_UIO_SYSFS_TREE_H_
#define UVMBUS_DEVICES_UIO_SYSFS_TREE_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "common/thread_annotations.h"
#include "devices/uio/map_table.h"

namespace uvmbus::devices::uio {

// A range of guest RAM.
struct GuestRange {
  uint64_t gpa = 0;
  uint64_t size = 0;
};

// What the primary's files describe.
struct DeviceLayout {
  Guid class_id{};
  Guid device_id{};
  uint32_t relid = 0;
  uint8_t monitor_id = 0;
  GuestRange rings;         // map0: [guest->host ring | host->guest ring]
  GuestRange int_page;      // map1
  GuestRange monitor_page;  // map2: the guest->host monitor page
  GuestRange recv_buffer;   // map3
  GuestRange send_buffer;   // map4
  uint32_t recv_gpadl = 0;
  uint32_t send_gpadl = 0;
};

// What one channel's directory describes.
struct ChannelLayout {
  uint32_t relid = 0;
  uint16_t subchannel_id = 0;  // 0 = primary
  uint8_t monitor_id = 0;
  GuestRange ring;  // the channel's ring pair
};

class SysfsTree {
 public:
  // `dir` must exist (e.g. from mkdtemp); the tree is created below it.
  explicit SysfsTree(std::string dir);
  SysfsTree(const SysfsTree&) = delete;
  SysfsTree& operator=(const SysfsTree&) = delete;

  const std::string& dir() const { return dir_; }
  // <dir>/sys/bus/vmbus (what the shim substitutes for /sys/bus/vmbus).
  std::string VmbusRoot() const { return dir_ + "/sys/bus/vmbus"; }
  // <dir>/sys/bus/vmbus/devices/<uuid>.
  std::string DevicePath(const Guid& device_id) const;
  std::string TablePath() const { return dir_ + "/uio-table"; }
  std::string UioPlaceholderPath() const { return dir_ + "/dev/uio0"; }

  // Writes the device directory, the five maps, the primary's channels/<relid>/ directory (its
  // `ring` file switches DPDK's multi-queue support on), /dev/uio0's placeholder and the table.
  // Errors: kInvalidArgument (a zero-sized resource), kProtocol (a device was written already),
  // kIo.
  Status WriteDevice(const DeviceLayout& layout) EXCLUDES(mu_);
  // Publishes an open sub-channel: table line first, then subchannel_id and monitor_id, then the
  // `ring` file (rename), so DPDK never maps a ring whose channel is not open yet.
  // Errors: kProtocol (no device yet, or relid already published), kInvalidArgument, kIo.
  Status PublishChannel(const ChannelLayout& channel) EXCLUDES(mu_);
  // Removes a channel's directory and its table line (rescinded sub-channel); `ring` goes first.
  // Errors: kNotFound, kIo.
  Status RemoveChannel(uint32_t relid) EXCLUDES(mu_);

  // The table as last written.
  std::vector<MapEntry> entries() const EXCLUDES(mu_);

 private:
  Status WriteTable() REQUIRES(mu_);
  Status WriteChannel(const ChannelLayout& channel) REQUIRES(mu_);

  const std::string dir_;
  mutable std::mutex mu_;
  std::string device_path_ GUARDED_BY(mu_);
  std::vector<MapEntry> entries_ GUARDED_BY(mu_);
};

// Writes `content` to `path` through a temporary file and rename(2). Errors: kIo.
Status WriteFileAtomically(const std::string& path, const std::string& content);

}  // namespace uvmbus::devices::uio

#endif  // UVMBUS_DEVICES_UIO_SYSFS_TREE_H_
