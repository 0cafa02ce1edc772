// File: devices/uio/sysfs_tree.cc
//
// The private sysfs tree of sysfs_tree.h. Files are written whole through a temporary name and
// rename(2): DPDK polls the channels/ directory every 10 ms and must never read a half-written
// file or see a `ring` before the channel is open.
#include "devices/uio/sysfs_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/unique_fd.h"

namespace uvmbus::devices::uio {
namespace {

Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return MakeError(ErrorCode::kIo, "mkdir {}: {}", path, ec.message());
  return Ok();
}

// A sparse file of `size` bytes created as `<path>.tmp` and renamed to `path`.
Status CreateSizedFile(const std::string& path, uint64_t size) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) return unexpected(Error::FromErrno("open " + tmp, errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return unexpected(Error::FromErrno("ftruncate " + tmp, errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return unexpected(Error::FromErrno("rename " + tmp, errno));
  }
  return Ok();
}

// The kernel's sysfs GUID attribute format (vmbus_drv.c: "{%pUl}\n").
std::string GuidLine(const Guid& g) { return fmt::format("{{{}}}\n", g.ToString()); }

}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd) return unexpected(Error::FromErrno("open " + tmp, errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(Error::FromErrno("write " + tmp, errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return unexpected(Error::FromErrno("rename " + tmp, errno));
  }
  return Ok();
}

SysfsTree::SysfsTree(std::string dir) : dir_(std::move(dir)) {}

std::string SysfsTree::DevicePath(const Guid& device_id) const {
  return VmbusRoot() + "/devices/" + device_id.ToString();
}

std::vector<MapEntry> SysfsTree::entries() const {
  std::lock_guard lock(mu_);
  return entries_;
}

Status SysfsTree::WriteTable() {
  std::string text = std::string(kMapTableHeader) + "\n";
  for (const MapEntry& e : entries_) {
    text += fmt::format("{} {} {:#x} {:#x}\n", e.kind == MapEntryKind::kMap ? "map" : "ring", e.id,
                        e.gpa, e.size);
  }
  return WriteFileAtomically(TablePath(), text);
}

Status SysfsTree::WriteChannel(const ChannelLayout& channel) {
  const std::string path = fmt::format("{}/channels/{}", device_path_, channel.relid);
  if (Status st = MakeDirs(path); !st) return st;
  // Table first: the shim must know the ring's GPA before DPDK can see the `ring` file.
  entries_.push_back({MapEntryKind::kRing, channel.relid, channel.ring.gpa, channel.ring.size});
  if (Status st = WriteTable(); !st) return st;
  if (Status st = WriteFileAtomically(path + "/subchannel_id",
                                      fmt::format("{}\n", channel.subchannel_id));
      !st) {
    return st;
  }
  if (Status st =
          WriteFileAtomically(path + "/monitor_id", fmt::format("{}\n", channel.monitor_id));
      !st) {
    return st;
  }
  return CreateSizedFile(path + "/ring", channel.ring.size);
}

Status SysfsTree::WriteDevice(const DeviceLayout& layout) {
  const GuestRange maps[kUioMapCount] = {layout.rings, layout.int_page, layout.monitor_page,
                                         layout.recv_buffer, layout.send_buffer};
  for (const GuestRange& r : maps) {
    if (r.size == 0) return MakeError(ErrorCode::kInvalidArgument, "uio map of size 0");
  }
  // DPDK splits map0 in two equal rings, each at least a header page and a data page.
  if (layout.rings.size % 8192 != 0 || layout.rings.size < 16384) {
    return MakeError(ErrorCode::kInvalidArgument, "ring pair of {} bytes", layout.rings.size);
  }
  std::lock_guard lock(mu_);
  if (!device_path_.empty()) {
    return MakeError(ErrorCode::kProtocol, "the tree already holds device {}", device_path_);
  }
  const std::string dev = DevicePath(layout.device_id);
  if (Status st = MakeDirs(dev + "/uio/uio0/maps"); !st) return st;
  if (Status st = MakeDirs(dir_ + "/dev"); !st) return st;
  device_path_ = dev;
  entries_.clear();
  const std::string names[kUioMapCount] = {"txrx_rings", "int_page", "monitor_page",
                                           fmt::format("recv:{}", layout.recv_gpadl),
                                           fmt::format("send:{}", layout.send_gpadl)};
  for (int i = 0; i < kUioMapCount; ++i) {
    const std::string map = fmt::format("{}/uio/uio0/maps/map{}", dev, i);
    if (Status st = MakeDirs(map); !st) return st;
    if (Status st = WriteFileAtomically(map + "/name", names[i] + "\n"); !st) return st;
    // uio.c map_size_show: "0x%lx\n".
    if (Status st = WriteFileAtomically(map + "/size", fmt::format("{:#x}\n", maps[i].size)); !st) {
      return st;
    }
    entries_.push_back({MapEntryKind::kMap, static_cast<uint32_t>(i), maps[i].gpa, maps[i].size});
  }
  if (Status st = CreateSizedFile(UioPlaceholderPath(), 0); !st) return st;
  if (Status st = WriteFileAtomically(dev + "/class_id", GuidLine(layout.class_id)); !st) return st;
  if (Status st = WriteFileAtomically(dev + "/device_id", GuidLine(layout.device_id)); !st) {
    return st;
  }
  if (Status st = WriteFileAtomically(dev + "/id", fmt::format("{}\n", layout.relid)); !st) {
    return st;
  }
  if (Status st = WriteFileAtomically(dev + "/monitor_id", fmt::format("{}\n", layout.monitor_id));
      !st) {
    return st;
  }
  if (Status st = WriteFileAtomically(dev + "/numa_node", "0\n"); !st) return st;
  return WriteChannel({layout.relid, 0, layout.monitor_id, layout.rings});
}

Status SysfsTree::PublishChannel(const ChannelLayout& channel) {
  if (channel.ring.size == 0 || channel.ring.size % 8192 != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "ring pair of {} bytes", channel.ring.size);
  }
  std::lock_guard lock(mu_);
  if (device_path_.empty()) return MakeError(ErrorCode::kProtocol, "no device written yet");
  for (const MapEntry& e : entries_) {
    if (e.kind == MapEntryKind::kRing && e.id == channel.relid) {
      return MakeError(ErrorCode::kProtocol, "channel {} is published already", channel.relid);
    }
  }
  return WriteChannel(channel);
}

Status SysfsTree::RemoveChannel(uint32_t relid) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const MapEntry& e) {
    return e.kind == MapEntryKind::kRing && e.id == relid;
  });
  if (it == entries_.end() || device_path_.empty()) {
    return MakeError(ErrorCode::kNotFound, "channel {} is not published", relid);
  }
  const std::string path = fmt::format("{}/channels/{}", device_path_, relid);
  // `ring` first: DPDK must not pick the channel up while it goes away.
  ::unlink((path + "/ring").c_str());
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return MakeError(ErrorCode::kIo, "remove {}: {}", path, ec.message());
  entries_.erase(it);
  return WriteTable();
}

}  // namespace uvmbus::devices::uio
