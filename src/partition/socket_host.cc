// File: partition/socket_host.cc — see socket_host.h and docs/socket-protocol.md.
#include "partition/socket_host.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "common/log.h"
#include "partition/socket_protocol.h"

namespace uvmbus::partition {
namespace {

constexpr std::string_view kLog = "partition";

// The host's end of one guest connection.
class SocketHostPartition final : public HostPartition {
 public:
  SocketHostPartition(GuestRam ram, std::vector<SynicEmulator::VcpuPages> pages,
                      std::vector<UniqueFd> interrupts, PeerInfo peer, size_t queue_depth,
                      UniqueFd sock, UniqueFd stop_fd)
      : HostPartition(std::move(ram), std::move(pages), std::move(interrupts), std::move(peer),
                      queue_depth),
        sock_(std::move(sock)),
        stop_fd_(std::move(stop_fd)) {
    SetDoorbellRemoveHook([this](uint32_t connection_id) {
      sockproto::DoorbellMsg m{};
      m.header.type = static_cast<uint16_t>(sockproto::MsgType::kDoorbellRemove);
      m.connection_id = connection_id;
      (void)Send(&m, sizeof(m), {});
    });
  }

  ~SocketHostPartition() override {
    DetachDoorbells();
    Stop();
  }

  Status Start(Handler* handler) override {
    if (handler == nullptr) return MakeError(ErrorCode::kInvalidArgument, "null handler");
    std::lock_guard lock(start_mu_);
    if (started_) return MakeError(ErrorCode::kAlreadyExists, "partition already started");
    started_ = true;
    handler_ = handler;
    thread_ = std::thread([this] { ControlLoop(); });
    return Ok();
  }

  void Stop() override {
    std::lock_guard lock(start_mu_);
    if (!thread_.joinable()) return;
    const uint64_t one = 1;
    (void)::write(stop_fd_.get(), &one, sizeof(one));
    // From inside a handler callback the loop ends after this callback; joining ourselves would
    // throw, so the destructor (on another thread) joins.
    if (thread_.get_id() == std::this_thread::get_id()) return;
    thread_.join();
  }

  Expected<Doorbell> CreateDoorbell(uint32_t connection_id) override {
    auto created = RegisterDoorbell(connection_id);
    if (!created) return unexpected(created.error());
    sockproto::DoorbellMsg m{};
    m.header.type = static_cast<uint16_t>(sockproto::MsgType::kDoorbellAdd);
    m.connection_id = connection_id;
    const int fd = created->guest_fd.get();
    if (auto sent = Send(&m, sizeof(m), std::span<const int>(&fd, 1)); !sent) {
      return unexpected(sent.error());  // ~Doorbell unregisters again
    }
    return std::move(created->doorbell);
  }

 private:
  // Sends one message to the guest without ever blocking: a guest that does not read its socket
  // (replies pile up) is misbehaving and is disconnected rather than stalling the host.
  Status Send(const void* data, size_t size, std::span<const int> fds) {
    std::lock_guard lock(send_mu_);
    auto sent = sockproto::SendDatagram(
        sock_.get(), std::span<const uint8_t>(static_cast<const uint8_t*>(data), size), fds,
        /*dont_wait=*/true);
    if (!sent && sent.error().code == ErrorCode::kResourceExhausted) {
      UVMBUS_LOG_WARN(kLog, "guest {}: not reading its socket, disconnecting", peer().name);
      ::shutdown(sock_.get(), SHUT_RDWR);  // the control loop sees EOF and tears down
    }
    return sent;
  }

  void Reply(uint32_t seq, wire::HvStatus status) {
    sockproto::StatusReply r{};
    r.header.type = static_cast<uint16_t>(sockproto::MsgType::kStatusReply);
    r.header.seq = seq;
    r.status = static_cast<uint16_t>(status);
    (void)Send(&r, sizeof(r), {});
  }

  void BadRequest(std::string_view what, size_t size) {
    bad_requests().Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "guest {}: bad request: {} ({} bytes)",
                           peer().name, what, size);
  }

  void ControlLoop() {
    for (;;) {
      if (!sockproto::WaitReadable(sock_.get(), stop_fd_.get(), -1)) return;  // Stop()
      auto dgram = sockproto::ReceiveDatagram(sock_.get());
      if (!dgram) {
        if (dgram.error().code == ErrorCode::kTimeout) continue;  // spurious wake-up
        // EOF, reset or a socket error: the guest is gone (process death closes the socket).
        DispatchDisconnect(handler_);
        return;
      }
      HandleRequest(*dgram);
    }
  }

  void HandleRequest(const sockproto::Datagram& d) {
    const std::span<const uint8_t> bytes(d.bytes);
    if (d.truncated || bytes.size() < sizeof(sockproto::MsgHeader)) {
      BadRequest(d.truncated ? "oversized datagram" : "truncated header", bytes.size());
      return;
    }
    const auto h = sockproto::Load<sockproto::MsgHeader>(bytes);
    const bool is_request = h.type == static_cast<uint16_t>(sockproto::MsgType::kPostMessage) ||
                            h.type == static_cast<uint16_t>(sockproto::MsgType::kSignalEvent) ||
                            h.type == static_cast<uint16_t>(sockproto::MsgType::kRamRegionAdd);
    if (h.type == static_cast<uint16_t>(sockproto::MsgType::kRamRegionAdd)) {
      HandleRamRegionAdd(d);
      return;
    }
    // No other request carries fds: any attached fd is closed (by Datagram), the request refused.
    if (!d.fds.empty() || h.flags != 0) {
      BadRequest(!d.fds.empty() ? "unexpected fds" : "non-zero flags", bytes.size());
      if (is_request && h.seq != 0) Reply(h.seq, wire::HvStatus::kInvalidHypercallInput);
      return;
    }
    switch (static_cast<sockproto::MsgType>(h.type)) {
      case sockproto::MsgType::kPostMessage: {
        const auto m = sockproto::Load<sockproto::PostMessage>(bytes);
        // Overflow-safe: the payload size must account for the rest of the datagram exactly.
        if (bytes.size() < sizeof(m) || m.payload_size > wire::kHvMessagePayloadMax ||
            bytes.size() - sizeof(m) != m.payload_size || h.seq == 0 || m.reserved != 0) {
          BadRequest("malformed POST_MESSAGE", bytes.size());
          if (h.seq != 0) Reply(h.seq, wire::HvStatus::kInvalidHypercallInput);
          return;
        }
        // Private copy: the handler parses this, never the socket buffer (spec 9.1 G1 spirit).
        uint8_t payload[wire::kHvMessagePayloadMax];
        std::memcpy(payload, bytes.data() + sizeof(m), m.payload_size);
        const wire::HvStatus status =
            DispatchPostMessage(handler_, m.connection_id, m.message_type,
                                std::span<const uint8_t>(payload, m.payload_size));
        Reply(h.seq, status);
        return;
      }
      case sockproto::MsgType::kSignalEvent: {
        const auto m = sockproto::Load<sockproto::SignalEvent>(bytes);
        if (bytes.size() != sizeof(m) || h.seq == 0 || m.reserved != 0) {
          BadRequest("malformed SIGNAL_EVENT", bytes.size());
          if (h.seq != 0) Reply(h.seq, wire::HvStatus::kInvalidHypercallInput);
          return;
        }
        Reply(h.seq, DispatchSignalEvent(handler_, m.connection_id, m.flag_number));
        return;
      }
      case sockproto::MsgType::kEndOfMessage: {
        const auto m = sockproto::Load<sockproto::EndOfMessage>(bytes);
        if (bytes.size() != sizeof(m)) {
          BadRequest("malformed EOM", bytes.size());
          return;
        }
        DispatchEndOfMessage(m.vcpu);
        return;
      }
      default:
        // Unknown types with a seq are requests we cannot serve: answer, so the guest does not
        // wait forever. Unknown one-way messages (seq 0) are dropped (docs/socket-protocol.md 9).
        BadRequest("unexpected message type", bytes.size());
        if (h.seq != 0) Reply(h.seq, wire::HvStatus::kInvalidHypercallCode);
        return;
    }
  }

  // RAM_REGION_ADD: exactly one fd, exact size, flags 0, seq != 0; the region rules are
  // GuestRam::AddRegion's. Answers SUCCESS, INVALID_PARAMETER (a rule), INSUFFICIENT_MEMORY (region
  // limit) or INVALID_HYPERCALL_INPUT (malformed datagram). Takes the Datagram's fd.
  void HandleRamRegionAdd(const sockproto::Datagram& d) {
    const std::span<const uint8_t> bytes(d.bytes);
    const auto h = sockproto::Load<sockproto::MsgHeader>(bytes);
    const auto m = sockproto::Load<sockproto::RamRegionAdd>(bytes);
    if (bytes.size() != sizeof(m) || h.flags != 0 || h.seq == 0 || d.fds.size() != 1) {
      BadRequest("malformed RAM_REGION_ADD", bytes.size());
      if (h.seq != 0) Reply(h.seq, wire::HvStatus::kInvalidHypercallInput);
      return;
    }
    // The Datagram is const (owned by the loop): take our own reference to the fd.
    UniqueFd fd(::fcntl(d.fds[0].get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) {
      Reply(h.seq, wire::HvStatus::kInsufficientMemory);
      return;
    }
    auto added = AddRamRegion(std::move(fd), m.gpa_base, m.size);
    wire::HvStatus status = wire::HvStatus::kSuccess;
    if (!added) {
      switch (added.error().code) {
        case ErrorCode::kResourceExhausted:
          status = wire::HvStatus::kInsufficientMemory;
          break;
        case ErrorCode::kUnavailable:
          status = wire::HvStatus::kInvalidPortId;
          break;
        default:
          status = wire::HvStatus::kInvalidParameter;
          break;
      }
    }
    Reply(h.seq, status);
  }

  UniqueFd sock_;
  UniqueFd stop_fd_;
  std::mutex send_mu_;
  std::mutex start_mu_;
  bool started_ = false;  // guarded by start_mu_
  // Written once by Start() before the control thread exists; read only by that thread.
  Handler* handler_ = nullptr;
  std::thread thread_;
};

std::string_view HelloResultText(sockproto::HelloResult r) {
  switch (r) {
    case sockproto::HelloResult::kAccepted:
      return "accepted";
    case sockproto::HelloResult::kMalformed:
      return "malformed";
    case sockproto::HelloResult::kUnsupportedVersion:
      return "unsupported version";
    case sockproto::HelloResult::kPermissionDenied:
      return "permission denied";
    case sockproto::HelloResult::kLimits:
      return "over limits";
  }
  return "?";
}

void SendHelloReply(int sock, sockproto::HelloResult result, uint32_t max_vcpus,
                    std::string_view reason) {
  sockproto::HelloReply r{};
  r.header.type = static_cast<uint16_t>(sockproto::MsgType::kHelloReply);
  r.result = static_cast<uint32_t>(result);
  r.version_major = sockproto::kVersionMajor;
  r.version_minor = sockproto::kVersionMinor;
  r.max_vcpus = max_vcpus;
  const size_t n = std::min(reason.size(), sockproto::kReasonSize - 1);
  std::memcpy(r.reason, reason.data(), n);
  (void)sockproto::SendDatagram(
      sock, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&r), sizeof(r)), {},
      /*dont_wait=*/true);
}

// A refused HELLO: result plus the human-readable reason sent back and logged.
struct Refusal {
  sockproto::HelloResult result;
  std::string reason;
};

}  // namespace

SocketHost::SocketHost(std::string path, UniqueFd listen_fd, UniqueFd stop_fd,
                       GuestCallback on_guest, SocketHostOptions options)
    : path_(std::move(path)),
      listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)),
      on_guest_(std::move(on_guest)),
      options_(options) {}

Expected<std::unique_ptr<SocketHost>> SocketHost::Listen(const std::string& path,
                                                         GuestCallback on_guest,
                                                         SocketHostOptions options) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument, "socket path '{}' empty or too long", path);
  }
  if (!on_guest) return MakeError(ErrorCode::kInvalidArgument, "null guest callback");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);

  // A socket file left by a dead host is removed; one with a live listener is not ours to take.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return MakeError(ErrorCode::kAlreadyExists, "'{}' exists and is not a socket", path);
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!probe) return unexpected(Error::FromErrno("socket", errno));
    if (::connect(probe.get(), sa, sizeof(addr)) == 0) {
      return MakeError(ErrorCode::kAlreadyExists, "a host is already listening on '{}'", path);
    }
    if (errno != ECONNREFUSED) return unexpected(Error::FromErrno("probe " + path, errno));
    UVMBUS_LOG_INFO(kLog, "removing stale socket {}", path);
    if (::unlink(path.c_str()) != 0) return unexpected(Error::FromErrno("unlink " + path, errno));
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::FromErrno("socket", errno));
  if (::bind(fd.get(), sa, sizeof(addr)) != 0) {
    return unexpected(Error::FromErrno("bind " + path, errno));
  }
  // 0600 before listen(): until listen() nobody can connect, so there is no window in which
  // another user could reach the host.
  if (::chmod(path.c_str(), options.group ? 0660 : 0600) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return unexpected(Error::FromErrno("chmod " + path, err));
  }
  if (options.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *options.group) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return unexpected(Error::FromErrno("chgrp " + path, err));
  }
  if (::listen(fd.get(), 16) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return unexpected(Error::FromErrno("listen " + path, err));
  }
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) {
    const int err = errno;
    ::unlink(path.c_str());
    return unexpected(Error::FromErrno("eventfd", err));
  }
  std::unique_ptr<SocketHost> host(
      new SocketHost(path, std::move(fd), std::move(stop), std::move(on_guest), options));
  host->accept_thread_ = std::thread([h = host.get()] { h->AcceptLoop(); });
  UVMBUS_LOG_INFO(kLog, "listening on {}", path);
  return host;
}

SocketHost::~SocketHost() { Stop(); }

void SocketHost::Stop() {
  if (stopped_.exchange(true)) return;
  const uint64_t one = 1;
  (void)::write(stop_fd_.get(), &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  ::unlink(path_.c_str());
}

void SocketHost::AcceptLoop() {
  for (;;) {
    if (!sockproto::WaitReadable(listen_fd_.get(), stop_fd_.get(), -1)) return;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "accept: {}", std::strerror(errno));
      }
      continue;
    }
    Handshake(std::move(conn));
  }
}

void SocketHost::Handshake(UniqueFd conn) {
  ucred cred{};
  socklen_t cred_len = sizeof(cred);
  if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
    hellos_rejected_.Add();
    UVMBUS_LOG_WARN(kLog, "SO_PEERCRED: {}", std::strerror(errno));
    return;
  }
  auto refuse = [&](const Refusal& r) {
    hellos_rejected_.Add();
    UVMBUS_LOG_WARN(kLog, "refused guest pid {} uid {}: {}: {}", cred.pid, cred.uid,
                    HelloResultText(r.result), r.reason);
    SendHelloReply(conn.get(), r.result, options_.max_vcpus, r.reason);
  };
  if (options_.require_same_uid && !options_.group && cred.uid != 0 && cred.uid != ::geteuid()) {
    refuse({sockproto::HelloResult::kPermissionDenied,
            fmt::format("uid {} may not connect (host runs as uid {})", cred.uid, ::geteuid())});
    return;
  }
  if (!sockproto::WaitReadable(conn.get(), stop_fd_.get(), options_.hello_timeout_ms)) {
    hellos_rejected_.Add();
    UVMBUS_LOG_WARN(kLog, "guest pid {}: no HELLO within {} ms", cred.pid,
                    options_.hello_timeout_ms);
    return;
  }
  auto dgram = sockproto::ReceiveDatagram(conn.get());
  if (!dgram) {
    hellos_rejected_.Add();
    UVMBUS_LOG_WARN(kLog, "guest pid {}: no HELLO: {}", cred.pid, dgram.error());
    return;
  }
  const std::span<const uint8_t> bytes(dgram->bytes);
  using sockproto::HelloResult;
  if (dgram->truncated) {
    refuse({HelloResult::kMalformed, "HELLO larger than the protocol allows"});
    return;
  }
  if (bytes.size() < sizeof(sockproto::Hello)) {
    refuse({HelloResult::kMalformed, fmt::format("HELLO truncated: {} bytes, at least {} needed",
                                                 bytes.size(), sizeof(sockproto::Hello))});
    return;
  }
  const auto hello = sockproto::Load<sockproto::Hello>(bytes);
  if (hello.header.type != static_cast<uint16_t>(sockproto::MsgType::kHello) ||
      hello.magic != sockproto::kMagic) {
    refuse({HelloResult::kMalformed,
            fmt::format("not a HELLO (type {}, magic {:#x})", hello.header.type, hello.magic)});
    return;
  }
  if (hello.version_major != sockproto::kVersionMajor) {
    refuse({HelloResult::kUnsupportedVersion,
            fmt::format("protocol version {}.{} not supported (host speaks {}.{})",
                        hello.version_major, hello.version_minor, sockproto::kVersionMajor,
                        sockproto::kVersionMinor)});
    return;
  }
  if (hello.vcpu_count == 0 || hello.vcpu_count > kMaxVcpus ||
      hello.vcpu_count > options_.max_vcpus) {
    refuse({hello.vcpu_count == 0 ? HelloResult::kMalformed : HelloResult::kLimits,
            fmt::format("{} vcpus (1..{})", hello.vcpu_count,
                        std::min(kMaxVcpus, options_.max_vcpus))});
    return;
  }
  const size_t expected_size =
      sizeof(sockproto::Hello) + size_t{hello.vcpu_count} * sizeof(sockproto::HelloVcpu);
  if (bytes.size() != expected_size) {
    refuse({HelloResult::kMalformed, fmt::format("HELLO of {} bytes, {} vcpus need exactly {}",
                                                 bytes.size(), hello.vcpu_count, expected_size)});
    return;
  }
  if (hello.ram_bytes > options_.max_ram_bytes) {
    refuse({HelloResult::kLimits, fmt::format("{} bytes of RAM exceed the host's limit of {}",
                                              hello.ram_bytes, options_.max_ram_bytes)});
    return;
  }
  // The name must be NUL-terminated inside its field and printable: it ends up in logs.
  const char* end = static_cast<const char*>(std::memchr(hello.name, 0, sizeof(hello.name)));
  const size_t name_len =
      end == nullptr ? sizeof(hello.name) : static_cast<size_t>(end - hello.name);
  const std::string_view name(hello.name, name_len);
  if (end == nullptr || name.empty() ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x21 && c <= 0x7e; })) {
    refuse({HelloResult::kMalformed, "guest name must be 1..63 printable ASCII characters"});
    return;
  }
  if (dgram->fds.size() != 1 + size_t{hello.vcpu_count}) {
    refuse({HelloResult::kMalformed,
            fmt::format("HELLO carries {} fds, expected {} (RAM + {} "
                        "interrupt eventfds)",
                        dgram->fds.size(), 1 + hello.vcpu_count, hello.vcpu_count)});
    return;
  }
  // Interrupt fds must be eventfds: the SynIC emulation writes them, and a pipe or socket there
  // could block or fail in ways an eventfd cannot.
  std::vector<UniqueFd> interrupts;
  for (uint32_t v = 0; v < hello.vcpu_count; ++v) {
    UniqueFd& fd = dgram->fds[1 + v];
    if (!sockproto::IsEventfd(fd.get()) || !sockproto::SetNonBlocking(fd.get())) {
      refuse(
          {HelloResult::kMalformed, fmt::format("interrupt fd of vcpu {} is not an eventfd", v)});
      return;
    }
    interrupts.push_back(std::move(fd));
  }
  auto ram = GuestRam::FromFd(std::move(dgram->fds[0]), hello.ram_bytes);
  if (!ram) {
    refuse({HelloResult::kMalformed, ram.error().message});
    return;
  }
  std::vector<SynicEmulator::VcpuPages> pages;
  std::set<uint64_t> seen;
  for (uint32_t v = 0; v < hello.vcpu_count; ++v) {
    const auto vc = sockproto::Load<sockproto::HelloVcpu>(
        bytes, sizeof(sockproto::Hello) + size_t{v} * sizeof(sockproto::HelloVcpu));
    auto simp = ram->Pages(vc.simp_gpn, 1);
    auto siefp = ram->Pages(vc.siefp_gpn, 1);
    if (!simp || !siefp) {
      refuse({HelloResult::kMalformed,
              fmt::format("vcpu {} SynIC pages {:#x}/{:#x} outside RAM of {} pages", v, vc.simp_gpn,
                          vc.siefp_gpn, ram->page_count())});
      return;
    }
    if (!seen.insert(vc.simp_gpn).second || !seen.insert(vc.siefp_gpn).second) {
      refuse({HelloResult::kMalformed, fmt::format("vcpu {} SynIC pages overlap others", v)});
      return;
    }
    pages.push_back({*simp, *siefp});
  }
  if (auto nb = sockproto::SetNonBlocking(conn.get()); !nb) {
    refuse({HelloResult::kMalformed, nb.error().message});
    return;
  }
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) {
    hellos_rejected_.Add();
    UVMBUS_LOG_ERROR(kLog, "eventfd: {}", std::strerror(errno));
    return;
  }
  PeerInfo peer;
  peer.name = std::string(name);
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.transport = "socket";
  SendHelloReply(conn.get(), HelloResult::kAccepted, options_.max_vcpus, "");
  UVMBUS_LOG_INFO(kLog, "guest '{}' connected: pid {} uid {} gid {}, {} vcpus, {} MiB RAM", name,
                  cred.pid, cred.uid, cred.gid, hello.vcpu_count, hello.ram_bytes >> 20);
  auto partition = std::make_unique<SocketHostPartition>(
      std::move(*ram), std::move(pages), std::move(interrupts), std::move(peer),
      options_.message_queue_depth, std::move(conn), std::move(stop));
  guests_accepted_.Add();
  on_guest_(std::move(partition));
}

}  // namespace uvmbus::partition
