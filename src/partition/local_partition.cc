// File: partition/local_partition.cc — see local_partition.h.
#include "partition/local_partition.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <mutex>
#include <thread>

namespace uvmbus::partition {

class LocalPartition::Guest final : public GuestPartition {
 public:
  Guest(GuestRam ram, std::vector<UniqueFd> interrupts, UniqueFd disconnect_fd)
      : GuestPartition(std::move(ram), std::move(interrupts), std::move(disconnect_fd)) {}

  void set_host(Host* host) { host_ = host; }

  wire::HvStatus PostMessage(uint32_t connection_id, uint32_t message_type,
                             std::span<const uint8_t> payload) override;
  void EndOfMessage(uint32_t vcpu) override;

  using GuestPartition::doorbells;
  using GuestPartition::MarkDisconnected;

 protected:
  wire::HvStatus SlowSignalEvent(uint32_t connection_id) override;

 private:
  Host* host_ = nullptr;
};

class LocalPartition::Host final : public HostPartition {
 public:
  Host(GuestRam ram, std::vector<SynicEmulator::VcpuPages> pages, std::vector<UniqueFd> interrupts,
       PeerInfo peer, size_t queue_depth, Guest* guest)
      : HostPartition(std::move(ram), std::move(pages), std::move(interrupts), std::move(peer),
                      queue_depth),
        guest_(guest) {
    SetDoorbellRemoveHook(
        [this](uint32_t connection_id) { (void)guest_->doorbells().Remove(connection_id); });
  }
  ~Host() override { DetachDoorbells(); }

  Status Start(Handler* handler) override {
    if (handler == nullptr) return MakeError(ErrorCode::kInvalidArgument, "null handler");
    std::lock_guard lock(handler_mu_);
    if (started_) return MakeError(ErrorCode::kAlreadyExists, "partition already started");
    started_ = true;
    handler_ = handler;
    return Ok();
  }

  // NO_THREAD_SAFETY_ANALYSIS: the early path runs with handler_mu_ held by this very thread.
  void Stop() override NO_THREAD_SAFETY_ANALYSIS {
    // From inside a handler callback this thread already holds handler_mu_ (std::mutex is not
    // recursive): clear the handler directly, the callback's caller drops it afterwards.
    if (callback_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
      stop_in_callback_ = true;
      return;
    }
    std::lock_guard lock(handler_mu_);
    handler_ = nullptr;
  }

  Expected<Doorbell> CreateDoorbell(uint32_t connection_id) override {
    auto created = RegisterDoorbell(connection_id);
    if (!created) return unexpected(created.error());
    if (auto added = guest_->doorbells().Add(connection_id, std::move(created->guest_fd)); !added) {
      return unexpected(added.error());  // ~Doorbell unregisters the host side again
    }
    return std::move(created->doorbell);
  }

  // Guest hypercalls, serialised so the handler is never entered concurrently (the same
  // guarantee the socket partition's single control thread gives).
  wire::HvStatus Post(uint32_t connection_id, uint32_t message_type,
                      std::span<const uint8_t> payload) {
    std::lock_guard lock(handler_mu_);
    CallbackScope scope(this);
    return DispatchPostMessage(handler_, connection_id, message_type, payload);
  }
  wire::HvStatus Signal(uint32_t connection_id) {
    std::lock_guard lock(handler_mu_);
    CallbackScope scope(this);
    return DispatchSignalEvent(handler_, connection_id, 0);
  }
  void Eom(uint32_t vcpu) { DispatchEndOfMessage(vcpu); }
  void Disconnect() {
    std::lock_guard lock(handler_mu_);
    {
      CallbackScope scope(this);
      DispatchDisconnect(handler_);
    }
    handler_ = nullptr;
  }

 private:
  // Marks the current thread as running a handler callback (under handler_mu_), and applies a
  // Stop() requested from inside it when the callback returns.
  class CallbackScope {
   public:
    explicit CallbackScope(Host* host) REQUIRES(host->handler_mu_) : host_(host) {
      host_->callback_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    }
    ~CallbackScope() NO_THREAD_SAFETY_ANALYSIS {
      host_->callback_thread_.store(std::thread::id(), std::memory_order_relaxed);
      if (host_->stop_in_callback_) {
        host_->stop_in_callback_ = false;
        host_->handler_ = nullptr;
      }
    }

   private:
    Host* host_;
  };

  Guest* guest_;
  std::mutex handler_mu_;
  Handler* handler_ GUARDED_BY(handler_mu_) = nullptr;
  bool started_ GUARDED_BY(handler_mu_) = false;
  // The thread inside a handler callback (default id when none). Only compared against the
  // caller's own id, so relaxed is enough: a thread always sees its own store.
  std::atomic<std::thread::id> callback_thread_{};
  bool stop_in_callback_ GUARDED_BY(handler_mu_) = false;
};

wire::HvStatus LocalPartition::Guest::PostMessage(uint32_t connection_id, uint32_t message_type,
                                                  std::span<const uint8_t> payload) {
  // The hypervisor's own input checks happen before anything reaches the host.
  const wire::HvStatus check =
      wire::CheckPostMessageInput(connection_id, message_type, payload.size());
  if (check != wire::HvStatus::kSuccess) return check;
  if (!connected()) return wire::HvStatus::kInvalidPortId;
  mutable_stats().messages_posted.Add();
  const wire::HvStatus status = host_->Post(connection_id, message_type, payload);
  if (status != wire::HvStatus::kSuccess) mutable_stats().post_failures.Add();
  return status;
}

void LocalPartition::Guest::EndOfMessage(uint32_t vcpu) {
  mutable_stats().eoms.Add();
  if (!connected() || vcpu >= vcpu_count()) return;
  host_->Eom(vcpu);
}

wire::HvStatus LocalPartition::Guest::SlowSignalEvent(uint32_t connection_id) {
  return host_->Signal(connection_id);
}

namespace {
Expected<UniqueFd> MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return unexpected(Error::FromErrno("eventfd", errno));
  return fd;
}
Expected<UniqueFd> Dup(int fd) {
  UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return unexpected(Error::FromErrno("dup", errno));
  return dup;
}
}  // namespace

Expected<std::unique_ptr<LocalPartition>> LocalPartition::Create(uint32_t vcpus, uint64_t ram_bytes,
                                                                 const std::string& name,
                                                                 size_t queue_depth) {
  if (vcpus == 0 || vcpus > kMaxVcpus) {
    return MakeError(ErrorCode::kInvalidArgument, "{} vcpus (1..{})", vcpus, kMaxVcpus);
  }
  if (ram_bytes == 0 || ram_bytes % kPageSize != 0 || ram_bytes > kMaxGuestRamBytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "guest RAM of {} bytes (non-zero multiple of {}, at most {})", ram_bytes,
                     kPageSize, kMaxGuestRamBytes);
  }
  const uint64_t pages = ram_bytes / kPageSize;
  if (pages <= uint64_t{2} * vcpus) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "guest RAM of {} pages leaves nothing after the {} SynIC pages", pages,
                     2 * vcpus);
  }
  auto guest_ram = GuestRam::Create(pages, "uvmbus-" + name);
  if (!guest_ram) return unexpected(guest_ram.error());
  // The host maps the same memfd a second time, as a VMM maps a VM's memory.
  auto ram_fd = Dup(guest_ram->fd());
  if (!ram_fd) return unexpected(ram_fd.error());
  auto host_ram = GuestRam::FromFd(std::move(*ram_fd), ram_bytes);
  if (!host_ram) return unexpected(host_ram.error());

  std::vector<UniqueFd> guest_irqs;
  std::vector<UniqueFd> host_irqs;
  std::vector<SynicEmulator::VcpuPages> host_pages;
  for (uint32_t v = 0; v < vcpus; ++v) {
    auto irq = MakeEventfd();
    if (!irq) return unexpected(irq.error());
    auto dup = Dup(irq->get());
    if (!dup) return unexpected(dup.error());
    guest_irqs.push_back(std::move(*irq));
    host_irqs.push_back(std::move(*dup));
    auto simp = host_ram->Pages(GuestPartition::MessagePageGpn(v), 1);
    auto siefp = host_ram->Pages(GuestPartition::EventPageGpn(v), 1);
    if (!simp || !siefp) return MakeError(ErrorCode::kInternal, "SynIC pages out of range");
    host_pages.push_back({*simp, *siefp});
  }
  auto disconnect = MakeEventfd();
  if (!disconnect) return unexpected(disconnect.error());

  std::unique_ptr<LocalPartition> p(new LocalPartition());
  p->guest_ =
      std::make_unique<Guest>(std::move(*guest_ram), std::move(guest_irqs), std::move(*disconnect));
  PeerInfo peer;
  peer.name = name;
  peer.pid = ::getpid();
  peer.uid = ::getuid();
  peer.gid = ::getgid();
  peer.transport = "local";
  p->host_ =
      std::make_unique<Host>(std::move(*host_ram), std::move(host_pages), std::move(host_irqs),
                             std::move(peer), queue_depth, p->guest_.get());
  p->guest_->set_host(p->host_.get());
  return p;
}

LocalPartition::~LocalPartition() {
  // Host first: its doorbell hook points at the guest.
  host_.reset();
  guest_.reset();
}

GuestPartition& LocalPartition::guest() { return *guest_; }
HostPartition& LocalPartition::host() { return *host_; }

void LocalPartition::Disconnect() {
  guest_->MarkDisconnected();
  host_->Disconnect();
}

}  // namespace uvmbus::partition
