#include "net/tap.h"

#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

// After <net/if.h>: if_tun.h only needs the IFF_* flag values and ioctl numbers.
#include <linux/if_tun.h>

#include <cerrno>
#include <cstring>

namespace uvmbus::net {
namespace {

// Large enough for any frame a TAP can produce (64 KiB IP packet + Ethernet header).
constexpr size_t kOverflowSize = 65536 + 64;
// Reads per Poll() at most, whatever is dropped, so one call stays bounded (style.md 1.9 #11).
constexpr uint32_t kMaxReadsPerPoll = 4 * kMaxBatch;

Error ErrnoError(std::string_view what, int err) {
  Error e = Error::FromErrno(what, err);
  if (err == EPERM || err == EACCES) e.code = ErrorCode::kPermissionDenied;
  return e;
}

void CopyName(struct ifreq* ifr, const std::string& name) {
  std::memset(ifr->ifr_name, 0, sizeof(ifr->ifr_name));
  std::memcpy(ifr->ifr_name, name.data(), std::min(name.size(), sizeof(ifr->ifr_name) - 1));
}

Status IfIoctl(int sock, unsigned long request, struct ifreq* ifr, std::string_view what) {
  if (::ioctl(sock, request, ifr) != 0) {
    return tl::unexpected(ErrnoError(fmt::format("{} {}", what, ifr->ifr_name), errno));
  }
  return Ok();
}

void SetSockaddrIn(struct sockaddr* sa, const Ipv4Address& addr) {
  struct sockaddr_in sin{};
  sin.sin_family = AF_INET;
  std::memcpy(&sin.sin_addr, addr.bytes.data(), 4);
  std::memcpy(sa, &sin, sizeof(sin));
}

Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return tl::unexpected(Error::FromErrno("fcntl O_NONBLOCK", errno));
  }
  return Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TapQueue

class TapEndpoint::TapQueue final : public Queue {
 public:
  TapQueue(TapEndpoint* owner, UniqueFd fd)
      : owner_(owner), fd_(std::move(fd)), overflow_(new uint8_t[kOverflowSize]) {}

  uint32_t Send(const FrameBatch& batch) override {
    BatchTally tx;
    uint32_t consumed = 0;
    const bool up = owner_->link_up_.load(std::memory_order_relaxed);
    for (; consumed < batch.size(); ++consumed) {
      const auto& f = batch[consumed];
      if (CheckFrameLength(f.length, owner_->max_frame_) != FrameCheck::kOk) {
        ++tx.errors;
        continue;
      }
      if (!up) {
        ++tx.carrier;
        continue;
      }
      // One frame per write(2): a TAP has no multi-frame write. The kernel copies the frame
      // before parsing it, so a frame in peer shared memory needs no copy-out here.
      ssize_t n;
      do {
        n = ::write(fd_.get(), f.data, f.length);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // back-pressure
      if (n != static_cast<ssize_t>(f.length)) {
        ++tx.errors;  // EIO/EBADFD (device gone) or a short write: the frame is lost
        continue;
      }
      ++tx.packets;
      tx.bytes += f.length;
    }
    tx.PublishTx(counters_);
    return consumed;
  }

  uint32_t Poll(RxBatch& batch) override {
    BatchTally rx;
    uint32_t filled = 0;
    for (uint32_t reads = 0; filled < batch.size() && reads < kMaxReadsPerPoll; ++reads) {
      auto& slot = batch[filled];
      // Without the overflow iovec a frame larger than the buffer makes the kernel fail the read
      // with EFAULT and drop the frame anyway, indistinguishable from a real fault.
      struct iovec iov[2] = {{slot.data, slot.capacity}, {overflow_.get(), kOverflowSize}};
      const ssize_t n = ::readv(fd_.get(), iov, 2);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) ++rx.errors;  // EBADFD: device gone
        break;
      }
      if (n == 0) break;
      auto len = static_cast<uint32_t>(n);
      if (len > slot.capacity) {
        ++rx.dropped;  // did not fit the buffer offered; the buffer stays free
        continue;
      }
      if (len < kEthHeaderSize) {
        ++rx.errors;
        continue;
      }
      if (len < kMinWireFrameSize && slot.capacity >= kMinWireFrameSize) {
        std::memset(slot.data + len, 0, kMinWireFrameSize - len);
        len = kMinWireFrameSize;
      }
      slot.length = len;
      ++rx.packets;
      rx.bytes += len;
      if ((slot.data[0] & 1) != 0) ++rx.multicast;
      ++filled;
    }
    rx.PublishRx(counters_);
    return filled;
  }

  int wait_fd() const override { return fd_.get(); }
  bool PrepareWait() override { return true; }  // the TAP descriptor is level-triggered
  NetStats stats() const override { return counters_.Snapshot(); }

  int fd() const { return fd_.get(); }
  bool attached = true;  // guarded by the owner's mu_

 private:
  TapEndpoint* const owner_;
  UniqueFd fd_;
  std::unique_ptr<uint8_t[]> overflow_;
  QueueCounters counters_;
};

// ---------------------------------------------------------------------------------------------
// TapEndpoint

TapEndpoint::TapEndpoint(std::string ifname, bool multi_queue, uint32_t max_frame,
                         std::vector<UniqueFd> fds, std::optional<NetNamespace> netns)
    : ifname_(std::move(ifname)),
      multi_queue_(multi_queue),
      max_frame_(max_frame),
      netns_(std::move(netns)),
      active_(static_cast<uint32_t>(fds.size())) {
  for (auto& fd : fds) queues_.push_back(std::make_unique<TapQueue>(this, std::move(fd)));
}

TapEndpoint::~TapEndpoint() = default;

Expected<std::unique_ptr<TapEndpoint>> TapEndpoint::Create(const TapOptions& o) {
  if (o.queues == 0 || o.queues > kMaxQueues) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: {} queues outside 1..{}", o.queues,
                     kMaxQueues);
  }
  if (o.ifname.size() >= IFNAMSIZ) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: interface name '{}' longer than {}",
                     o.ifname, IFNAMSIZ - 1);
  }
  if (o.mtu != 0 && !IsValidMtu(o.mtu)) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: MTU {} outside {}..{}", o.mtu, kMinMtu,
                     kMaxMtu);
  }
  if (o.mac && (o.mac->IsMulticast() || o.mac->IsZero())) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: MAC {} is not a unicast address",
                     o.mac->ToString());
  }
  if (o.ipv4 && o.ipv4->prefix_length > 32) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: prefix length {} above 32",
                     o.ipv4->prefix_length);
  }

  const bool mq = o.queues > 1;
  std::vector<UniqueFd> fds;
  std::string name = o.ifname.empty() ? "uvtap%d" : o.ifname;
  uint32_t mtu = o.mtu;

  // Everything below runs in the target namespace: the device is created there and the
  // configuration socket belongs to it.
  Status s = RunInNamespace(o.netns, [&]() -> Status {
    for (uint32_t q = 0; q < o.queues; ++q) {
      UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
      if (!fd) {
        const int err = errno;
        Error e = ErrnoError("open /dev/net/tun", err);
        if (err == ENOENT || err == ENODEV || err == ENXIO) e.code = ErrorCode::kUnavailable;
        return tl::unexpected(std::move(e));
      }
      struct ifreq ifr{};
      CopyName(&ifr, name);
      // The same name and flags for every queue: the first TUNSETIFF creates the device, the
      // others attach further queues to it (multi-queue only).
      ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0));
      if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
        const int err = errno;
        Error e = ErrnoError(fmt::format("TUNSETIFF {}", name), err);
        // EBUSY: a single-queue TAP of that name is open; EINVAL: the name belongs to another
        // kind of device or a TAP with other flags (e.g. multi-queue vs not).
        if (err == EBUSY || err == EINVAL || err == EEXIST) e.code = ErrorCode::kAlreadyExists;
        return tl::unexpected(std::move(e));
      }
      name = std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
      fds.push_back(std::move(fd));
    }

    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return tl::unexpected(Error::FromErrno("socket(AF_INET)", errno));
    struct ifreq ifr{};
    CopyName(&ifr, name);
    // The MAC is set before the device goes up so that the kernel's first frames (IPv6 DAD,
    // router solicitations) already carry it.
    if (o.mac) {
      ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
      std::memcpy(ifr.ifr_hwaddr.sa_data, o.mac->bytes.data(), 6);
      if (auto r = IfIoctl(sock.get(), SIOCSIFHWADDR, &ifr, "SIOCSIFHWADDR"); !r) return r;
    }
    if (mtu != 0) {
      ifr.ifr_mtu = static_cast<int>(mtu);
      if (auto r = IfIoctl(sock.get(), SIOCSIFMTU, &ifr, "SIOCSIFMTU"); !r) return r;
    } else {
      if (auto r = IfIoctl(sock.get(), SIOCGIFMTU, &ifr, "SIOCGIFMTU"); !r) return r;
      mtu = static_cast<uint32_t>(ifr.ifr_mtu);
    }
    if (o.ipv4) {
      SetSockaddrIn(&ifr.ifr_addr, o.ipv4->address);
      if (auto r = IfIoctl(sock.get(), SIOCSIFADDR, &ifr, "SIOCSIFADDR"); !r) return r;
      const uint32_t mask =
          o.ipv4->prefix_length == 0 ? 0 : ~uint32_t{0} << (32 - o.ipv4->prefix_length);
      Ipv4Address m{{static_cast<uint8_t>(mask >> 24), static_cast<uint8_t>(mask >> 16),
                     static_cast<uint8_t>(mask >> 8), static_cast<uint8_t>(mask)}};
      SetSockaddrIn(&ifr.ifr_netmask, m);
      if (auto r = IfIoctl(sock.get(), SIOCSIFNETMASK, &ifr, "SIOCSIFNETMASK"); !r) return r;
    }
    if (o.bring_up) {
      if (auto r = IfIoctl(sock.get(), SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS"); !r) return r;
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (auto r = IfIoctl(sock.get(), SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS"); !r) return r;
    }
    return Ok();
  });
  if (!s) return tl::unexpected(s.error());

  std::optional<NetNamespace> ns;
  if (o.netns != nullptr && o.netns->valid()) {
    auto clone = o.netns->Clone();
    if (!clone) return tl::unexpected(clone.error());
    ns = std::move(*clone);
  }
  // A kernel MTU above our jumbo limit (e.g. 0 = "keep" on a 64 KiB device) is capped: larger
  // frames are refused on Send and dropped on Poll by the buffer-size check.
  const uint32_t max_frame = std::min(MaxFrameSizeForMtu(mtu), kMaxFrameSize);
  return std::unique_ptr<TapEndpoint>(
      new TapEndpoint(std::move(name), mq, max_frame, std::move(fds), std::move(ns)));
}

Expected<std::unique_ptr<TapEndpoint>> TapEndpoint::FromFds(std::vector<UniqueFd> fds,
                                                            uint32_t mtu) {
  if (fds.empty() || fds.size() > kMaxQueues) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: {} descriptors outside 1..{}",
                     fds.size(), kMaxQueues);
  }
  if (!IsValidMtu(mtu)) {
    return MakeError(ErrorCode::kInvalidArgument, "tap: MTU {} outside {}..{}", mtu, kMinMtu,
                     kMaxMtu);
  }
  std::string name;
  bool mq = false;
  for (size_t i = 0; i < fds.size(); ++i) {
    struct ifreq ifr{};
    if (!fds[i] || ::ioctl(fds[i].get(), TUNGETIFF, &ifr) != 0) {
      return MakeError(ErrorCode::kInvalidArgument, "tap: descriptor {} is not an attached TUN/TAP "
                       "queue", i);
    }
    const std::string this_name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    const auto flags = static_cast<unsigned>(static_cast<unsigned short>(ifr.ifr_flags));
    if ((flags & IFF_TAP) == 0) {
      return MakeError(ErrorCode::kInvalidArgument, "tap: {} is a TUN (layer 3) device",
                       this_name);
    }
    if ((flags & IFF_NO_PI) == 0) {
      // With packet information every frame would carry a 4-byte prefix.
      return MakeError(ErrorCode::kInvalidArgument, "tap: {} was opened without IFF_NO_PI",
                       this_name);
    }
    if (i == 0) {
      name = this_name;
      mq = (flags & IFF_MULTI_QUEUE) != 0;
    } else if (this_name != name) {
      return MakeError(ErrorCode::kInvalidArgument, "tap: descriptors name {} and {}", name,
                       this_name);
    }
    if (auto r = SetNonBlocking(fds[i].get()); !r) return tl::unexpected(r.error());
  }
  if (fds.size() > 1 && !mq) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "tap: {} descriptors given but {} is not a multi_queue TAP", fds.size(),
                     name);
  }
  return std::unique_ptr<TapEndpoint>(new TapEndpoint(std::move(name), mq,
                                                      MaxFrameSizeForMtu(mtu), std::move(fds),
                                                      std::nullopt));
}

uint32_t TapEndpoint::queue_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

Status TapEndpoint::SetQueueCount(uint32_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (count == 0 || count > queues_.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: queue count {} outside 1..{}", ifname_,
                     count, queues_.size());
  }
  if (multi_queue_) {
    // Attach the wanted queues before detaching the others, so at least one stays attached.
    for (uint32_t pass = 0; pass < 2; ++pass) {
      for (uint32_t i = 0; i < queues_.size(); ++i) {
        TapQueue& q = *queues_[i];
        const bool want = i < count;
        if (want == q.attached || (pass == 0) != want) continue;
        struct ifreq ifr{};
        ifr.ifr_flags = static_cast<short>(want ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
        if (::ioctl(q.fd(), TUNSETQUEUE, &ifr) != 0) {
          return tl::unexpected(Error::FromErrno(
              fmt::format("{}: TUNSETQUEUE {} queue {}", ifname_, want ? "attach" : "detach", i),
              errno));
        }
        q.attached = want;
      }
    }
  }
  active_ = count;
  return Ok();
}

Queue& TapEndpoint::queue(uint32_t index) { return *queues_[index]; }

int TapEndpoint::queue_fd(uint32_t index) const { return queues_[index]->fd(); }

bool TapEndpoint::link_up() const { return link_up_.load(std::memory_order_relaxed); }

Status TapEndpoint::SetLinkUp(bool up) {
  std::lock_guard<std::mutex> lock(mu_);
  if (link_up_.load(std::memory_order_relaxed) == up) return Ok();
  int carrier = up ? 1 : 0;
  if (::ioctl(queues_[0]->fd(), TUNSETCARRIER, &carrier) != 0) {
    Error e = Error::FromErrno(fmt::format("{}: TUNSETCARRIER", ifname_), errno);
    if (errno == EINVAL || errno == ENOTTY) e.code = ErrorCode::kUnsupported;  // kernel < 5.0
    return tl::unexpected(std::move(e));
  }
  link_up_.store(up, std::memory_order_relaxed);
  NotifyLinkChange(up);
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// TapFrontend

Expected<std::unique_ptr<TapEndpoint>> TapFrontend::Create(const TapFrontendOptions& options) {
  if (options.mac.IsMulticast() || options.mac.IsZero()) {
    return MakeError(ErrorCode::kInvalidArgument, "tap frontend: MAC {} is not a unicast address",
                     options.mac.ToString());
  }
  TapOptions t;
  t.ifname = options.ifname;
  t.queues = options.queues;
  t.mtu = options.mtu;
  t.bring_up = true;
  t.mac = options.mac;
  t.ipv4 = options.ipv4;
  t.netns = options.netns;
  return TapEndpoint::Create(t);
}

}  // namespace uvmbus::net
