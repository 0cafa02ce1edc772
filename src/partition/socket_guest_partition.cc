// File: partition/socket_guest_partition.cc — see socket_guest_partition.h and
// docs/socket-protocol.md.
#include "partition/socket_guest_partition.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.h"
#include "partition/socket_protocol.h"

namespace uvmbus::partition {
namespace {

constexpr std::string_view kLog = "partition";

Expected<UniqueFd> MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return unexpected(Error::FromErrno("eventfd", errno));
  return fd;
}

template <typename T>
std::span<const uint8_t> AsBytes(const T& v) {
  return {reinterpret_cast<const uint8_t*>(&v), sizeof(T)};
}

ErrorCode RefusalCode(sockproto::HelloResult r) {
  switch (r) {
    case sockproto::HelloResult::kPermissionDenied:
      return ErrorCode::kPermissionDenied;
    case sockproto::HelloResult::kUnsupportedVersion:
      return ErrorCode::kUnsupported;
    case sockproto::HelloResult::kLimits:
      return ErrorCode::kResourceExhausted;
    default:
      return ErrorCode::kMalformed;
  }
}

}  // namespace

SocketGuestPartition::SocketGuestPartition(GuestRam ram, std::vector<UniqueFd> interrupts,
                                           UniqueFd disconnect_fd, UniqueFd sock, UniqueFd stop_fd)
    : GuestPartition(std::move(ram), std::move(interrupts), std::move(disconnect_fd)),
      sock_(std::move(sock)),
      stop_fd_(std::move(stop_fd)) {}

SocketGuestPartition::~SocketGuestPartition() {
  if (reader_.joinable()) {
    const uint64_t one = 1;
    (void)::write(stop_fd_.get(), &one, sizeof(one));
    reader_.join();
  }
  // sock_ closes after this: the host sees EOF, exactly as if the guest process had died.
}

Expected<std::unique_ptr<SocketGuestPartition>> SocketGuestPartition::Connect(
    const std::string& path, const std::string& name, uint32_t vcpus, uint64_t ram_bytes,
    int timeout_ms) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument, "socket path '{}' empty or too long", path);
  }
  if (name.empty() || name.size() >= sockproto::kNameSize ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x21 && c <= 0x7e; })) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "guest name '{}' must be 1..63 printable ASCII characters", name);
  }
  if (vcpus == 0 || vcpus > kMaxVcpus) {
    return MakeError(ErrorCode::kInvalidArgument, "{} vcpus (1..{})", vcpus, kMaxVcpus);
  }
  if (ram_bytes == 0 || ram_bytes % kPageSize != 0 || ram_bytes > kMaxGuestRamBytes ||
      ram_bytes / kPageSize <= uint64_t{2} * vcpus) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "guest RAM of {} bytes (multiple of {}, more than {} pages, at most {})",
                     ram_bytes, kPageSize, 2 * vcpus, kMaxGuestRamBytes);
  }
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock) return unexpected(Error::FromErrno("socket", errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return MakeError(ErrorCode::kUnavailable, "no uvmbus host listening on '{}'", path);
    }
    return unexpected(Error::FromErrno("connect " + path, err));
  }

  auto ram = GuestRam::Create(ram_bytes / kPageSize, "uvmbus-guest-" + name);
  if (!ram) return unexpected(ram.error());
  std::vector<UniqueFd> interrupts;
  std::vector<int> fds{ram->fd()};
  for (uint32_t v = 0; v < vcpus; ++v) {
    auto irq = MakeEventfd();
    if (!irq) return unexpected(irq.error());
    fds.push_back(irq->get());
    interrupts.push_back(std::move(*irq));
  }

  std::vector<uint8_t> hello_bytes(sizeof(sockproto::Hello) + vcpus * sizeof(sockproto::HelloVcpu));
  sockproto::Hello hello{};
  hello.header.type = static_cast<uint16_t>(sockproto::MsgType::kHello);
  hello.magic = sockproto::kMagic;
  hello.version_major = sockproto::kVersionMajor;
  hello.version_minor = sockproto::kVersionMinor;
  hello.vcpu_count = vcpus;
  hello.ram_bytes = ram_bytes;
  std::memcpy(hello.name, name.data(), name.size());
  std::memcpy(hello_bytes.data(), &hello, sizeof(hello));
  for (uint32_t v = 0; v < vcpus; ++v) {
    const sockproto::HelloVcpu vc{MessagePageGpn(v), EventPageGpn(v)};
    std::memcpy(hello_bytes.data() + sizeof(hello) + v * sizeof(vc), &vc, sizeof(vc));
  }
  if (auto sent = sockproto::SendDatagram(sock.get(), hello_bytes, fds, /*dont_wait=*/false);
      !sent) {
    return unexpected(sent.error());
  }

  if (!sockproto::WaitReadable(sock.get(), -1, timeout_ms)) {
    return MakeError(ErrorCode::kTimeout, "no HELLO reply from '{}' within {} ms", path,
                     timeout_ms);
  }
  auto dgram = sockproto::ReceiveDatagram(sock.get());
  if (!dgram) {
    if (dgram.error().code == ErrorCode::kUnavailable) {
      return MakeError(ErrorCode::kUnavailable, "host hung up during the handshake");
    }
    return unexpected(dgram.error());
  }
  const std::span<const uint8_t> bytes(dgram->bytes);
  const auto reply = sockproto::Load<sockproto::HelloReply>(bytes);
  if (dgram->truncated || !dgram->fds.empty() || bytes.size() != sizeof(reply) ||
      reply.header.type != static_cast<uint16_t>(sockproto::MsgType::kHelloReply)) {
    return MakeError(ErrorCode::kMalformed, "malformed HELLO reply ({} bytes, {} fds)",
                     bytes.size(), dgram->fds.size());
  }
  const auto result = static_cast<sockproto::HelloResult>(reply.result);
  if (result != sockproto::HelloResult::kAccepted) {
    const char* end = static_cast<const char*>(std::memchr(reply.reason, 0, sizeof(reply.reason)));
    const std::string reason(reply.reason,
                             end == nullptr ? sizeof(reply.reason) : size_t(end - reply.reason));
    return MakeError(RefusalCode(result), "host refused the guest: {}", reason);
  }
  auto disconnect = MakeEventfd();
  if (!disconnect) return unexpected(disconnect.error());
  auto stop = MakeEventfd();
  if (!stop) return unexpected(stop.error());
  std::unique_ptr<SocketGuestPartition> p(
      new SocketGuestPartition(std::move(*ram), std::move(interrupts), std::move(*disconnect),
                               std::move(sock), std::move(*stop)));
  p->reader_ = std::thread([raw = p.get()] { raw->ReaderLoop(); });
  UVMBUS_LOG_INFO(kLog, "guest '{}' connected to {} ({} vcpus, {} MiB)", name, path, vcpus,
                  ram_bytes >> 20);
  return p;
}

void SocketGuestPartition::ReaderLoop() {
  for (;;) {
    if (!sockproto::WaitReadable(sock_.get(), stop_fd_.get(), -1)) break;  // destructor
    auto dgram = sockproto::ReceiveDatagram(sock_.get());
    if (!dgram) {
      if (dgram.error().code == ErrorCode::kTimeout) continue;
      break;  // EOF / reset / error: the host is gone
    }
    if (!HandleHostMessage(dgram->bytes.data(), dgram->bytes.size(), std::move(dgram->fds))) {
      break;
    }
    if (dgram->truncated) mutable_stats().bad_host_messages.Add();
  }
  OnHangup();
}

bool SocketGuestPartition::HandleHostMessage(const uint8_t* data, size_t size,
                                             std::vector<UniqueFd> fds) {
  const std::span<const uint8_t> bytes(data, size);
  auto bad = [&](std::string_view what) {
    mutable_stats().bad_host_messages.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "bad message from host: {} ({} bytes)", what,
                           size);
    return true;  // dropped; the connection stays up
  };
  if (size < sizeof(sockproto::MsgHeader)) return bad("truncated header");
  const auto h = sockproto::Load<sockproto::MsgHeader>(bytes);
  switch (static_cast<sockproto::MsgType>(h.type)) {
    case sockproto::MsgType::kStatusReply: {
      if (size != sizeof(sockproto::StatusReply) || !fds.empty()) return bad("malformed reply");
      const auto r = sockproto::Load<sockproto::StatusReply>(bytes);
      std::lock_guard lock(reply_mu_);
      if (h.seq == 0 || h.seq != waiting_seq_ || reply_.has_value()) {
        return bad("reply matches no outstanding request");
      }
      reply_ = static_cast<wire::HvStatus>(r.status);
      reply_cv_.notify_all();
      return true;
    }
    case sockproto::MsgType::kDoorbellAdd: {
      if (size != sizeof(sockproto::DoorbellMsg) || fds.size() != 1) {
        return bad("malformed DOORBELL_ADD");
      }
      const auto m = sockproto::Load<sockproto::DoorbellMsg>(bytes);
      // Our SignalEvent writes this fd on the data path: it must be an eventfd that cannot block.
      if (!sockproto::IsEventfd(fds[0].get()) || !sockproto::SetNonBlocking(fds[0].get())) {
        return bad("doorbell fd is not an eventfd");
      }
      if (auto added = doorbells().Add(m.connection_id, std::move(fds[0])); !added) {
        return bad(added.error().message);
      }
      return true;
    }
    case sockproto::MsgType::kDoorbellRemove: {
      if (size != sizeof(sockproto::DoorbellMsg) || !fds.empty()) {
        return bad("malformed DOORBELL_REMOVE");
      }
      const auto m = sockproto::Load<sockproto::DoorbellMsg>(bytes);
      if (auto removed = doorbells().Remove(m.connection_id); !removed) {
        return bad(removed.error().message);
      }
      return true;
    }
    default:
      return bad("unexpected message type");
  }
}

void SocketGuestPartition::OnHangup() {
  if (connected()) UVMBUS_LOG_INFO(kLog, "host hung up");
  MarkDisconnected();
  std::lock_guard lock(reply_mu_);
  hung_up_ = true;
  reply_cv_.notify_all();
}

wire::HvStatus SocketGuestPartition::Request(const uint8_t* data, size_t size, uint32_t seq,
                                             std::span<const int> fds) {
  {
    std::lock_guard lock(reply_mu_);
    if (hung_up_) return wire::HvStatus::kInvalidPortId;
    waiting_seq_ = seq;
    reply_.reset();
  }
  auto sent = sockproto::SendDatagram(sock_.get(), std::span<const uint8_t>(data, size), fds,
                                      /*dont_wait=*/false);
  std::unique_lock lock(reply_mu_);
  if (sent && !reply_cv_.wait_for(lock, std::chrono::milliseconds(kRequestTimeoutMs),
                                  [&] { return reply_.has_value() || hung_up_; })) {
    // A host that does not answer a hypercall is broken or hostile: never hang on it. Dropping
    // the connection makes the state consistent for every other caller (connected() == false).
    UVMBUS_LOG_ERROR(kLog, "host did not answer request {} within {} ms: disconnecting", seq,
                     kRequestTimeoutMs);
    ::shutdown(sock_.get(), SHUT_RDWR);
  }
  waiting_seq_ = 0;
  if (!sent || !reply_.has_value()) return wire::HvStatus::kInvalidPortId;  // host gone
  const wire::HvStatus status = *reply_;
  reply_.reset();
  return status;
}

wire::HvStatus SocketGuestPartition::PostMessage(uint32_t connection_id, uint32_t message_type,
                                                 std::span<const uint8_t> payload) {
  // The hypervisor's own checks come first and never reach the host.
  const wire::HvStatus check =
      wire::CheckPostMessageInput(connection_id, message_type, payload.size());
  if (check != wire::HvStatus::kSuccess) return check;
  if (!connected()) return wire::HvStatus::kInvalidPortId;
  uint8_t buf[sizeof(sockproto::PostMessage) + wire::kHvMessagePayloadMax];
  std::lock_guard lock(request_mu_);
  sockproto::PostMessage m{};
  m.header.type = static_cast<uint16_t>(sockproto::MsgType::kPostMessage);
  m.header.seq = next_seq_++;
  if (next_seq_ == 0) next_seq_ = 1;  // 0 means "no request"
  m.connection_id = connection_id;
  m.message_type = message_type;
  m.payload_size = static_cast<uint32_t>(payload.size());
  std::memcpy(buf, &m, sizeof(m));
  std::memcpy(buf + sizeof(m), payload.data(), payload.size());
  mutable_stats().messages_posted.Add();
  const wire::HvStatus status = Request(buf, sizeof(m) + payload.size(), m.header.seq);
  if (status != wire::HvStatus::kSuccess) mutable_stats().post_failures.Add();
  return status;
}

wire::HvStatus SocketGuestPartition::SlowSignalEvent(uint32_t connection_id) {
  std::lock_guard lock(request_mu_);
  sockproto::SignalEvent m{};
  m.header.type = static_cast<uint16_t>(sockproto::MsgType::kSignalEvent);
  m.header.seq = next_seq_++;
  if (next_seq_ == 0) next_seq_ = 1;
  m.connection_id = connection_id;
  const auto bytes = AsBytes(m);
  return Request(bytes.data(), bytes.size(), m.header.seq);
}

Status SocketGuestPartition::AddRamRegion(int memfd, uint64_t gpa_base, uint64_t size) {
  // Local checks a correct host would refuse anyway; everything else is the host's to judge.
  if (memfd < 0 || size == 0 || size % kPageSize != 0 || gpa_base % kPageSize != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "RAM region fd {} [{:#x}, +{:#x}): needs an fd and page-aligned base/size",
                     memfd, gpa_base, size);
  }
  if (!connected()) return MakeError(ErrorCode::kUnavailable, "host is gone");
  std::lock_guard lock(request_mu_);
  sockproto::RamRegionAdd m{};
  m.header.type = static_cast<uint16_t>(sockproto::MsgType::kRamRegionAdd);
  m.header.seq = next_seq_++;
  if (next_seq_ == 0) next_seq_ = 1;
  m.gpa_base = gpa_base;
  m.size = size;
  const auto bytes = AsBytes(m);
  // SCM_RIGHTS hands the host its own reference; the caller keeps `memfd`.
  const wire::HvStatus status =
      Request(bytes.data(), bytes.size(), m.header.seq, std::span<const int>(&memfd, 1));
  switch (status) {
    case wire::HvStatus::kSuccess:
      return Ok();
    case wire::HvStatus::kInvalidParameter:
      return MakeError(ErrorCode::kInvalidArgument,
                       "host refused RAM region [{:#x}, +{:#x}) (seals, size, overlap or range)",
                       gpa_base, size);
    case wire::HvStatus::kInsufficientMemory:
      return MakeError(ErrorCode::kResourceExhausted, "host refused RAM region: region limit");
    case wire::HvStatus::kInvalidPortId:
      return MakeError(ErrorCode::kUnavailable, "host is gone");
    case wire::HvStatus::kInvalidHypercallCode:
      return MakeError(ErrorCode::kUnsupported, "host does not support RAM_REGION_ADD (< 1.1)");
    default:
      return MakeError(ErrorCode::kProtocol, "RAM_REGION_ADD answered {}",
                       wire::HvStatusName(status));
  }
}

void SocketGuestPartition::EndOfMessage(uint32_t vcpu) {
  mutable_stats().eoms.Add();
  if (!connected() || vcpu >= vcpu_count()) return;
  sockproto::EndOfMessage m{};
  m.header.type = static_cast<uint16_t>(sockproto::MsgType::kEndOfMessage);
  m.vcpu = vcpu;
  (void)sockproto::SendDatagram(sock_.get(), AsBytes(m), {}, /*dont_wait=*/false);
}

void SocketGuestPartition::Disconnect() {
  // shutdown, not close: the reader thread still polls the fd; it sees EOF and runs OnHangup.
  ::shutdown(sock_.get(), SHUT_RDWR);
}

}  // namespace uvmbus::partition
