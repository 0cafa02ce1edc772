// File: guest/channel.cc — see channel.h.
#include "guest/channel.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "guest/bus_core.h"
#include "ring/ring_view.h"
#include "wire/gpa_range.h"

namespace uvmbus::guest {

std::string_view CallbackModeName(CallbackMode mode) {
  switch (mode) {
    case CallbackMode::kBatched:
      return "batched";
    case CallbackMode::kDirect:
      return "direct";
    case CallbackMode::kIsr:
      return "isr";
  }
  return "unknown";
}

std::string_view ChannelStateName(ChannelState state) {
  switch (state) {
    case ChannelState::kOffered:
      return "offered";
    case ChannelState::kOpening:
      return "opening";
    case ChannelState::kOpen:
      return "open";
    case ChannelState::kClosing:
      return "closing";
    case ChannelState::kReleased:
      return "released";
  }
  return "unknown";
}

namespace {
constexpr uint32_t kPage = wire::kHvPageSize;
// Smallest ring: the 4 KiB control page plus one data page (spec 3.1: N >= 1).
constexpr uint32_t kMinRingBytes = 2 * kPage;
}  // namespace

Channel::Channel(BusCore& core, const wire::OfferChannel& offer, bool primary,
                 uint32_t target_vcpu)
    : core_(core),
      offer_(offer),
      primary_(primary),
      target_vcpu_(target_vcpu),
      tasklet_(&core.vcpu(target_vcpu)->softirq(), [this] { RunTasklet(); }) {}

Channel::~Channel() {
  // The bus destroys a channel only after unpublishing it and waiting for every vCPU; make sure
  // no tasklet run is left either.
  callbacks_enabled_.store(false, std::memory_order_seq_cst);
  tasklet_.Kill();
}

ChannelState Channel::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

SoftirqQueue& Channel::softirq() const { return core_.vcpu(target_vcpu())->softirq(); }

uint64_t Channel::guest_to_host_monitor_page_gpa() const { return core_.monitor_page2_gpa(); }

Status Channel::CheckControlContext() const {
  if (core_.OnVcpuThread()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "channel {}: blocking control operation called from a vCPU thread", relid());
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Interrupt path

void Channel::OnInterrupt() {
  // Callbacks are armed only while the rings exist (Open publishes them before this store with
  // release; Close clears it and waits for every vCPU before touching them).
  if (!callbacks_enabled_.load(std::memory_order_acquire)) return;
  stats_.interrupts.Add();
  switch (mode_.load(std::memory_order_acquire)) {
    case CallbackMode::kIsr:
      stats_.callbacks.Add();
      callback_(*this);
      break;
    case CallbackMode::kBatched:
      // hv_begin_read: the host stops signalling while the tasklet drains the ring.
      inbound_->BeginReadMask();
      tasklet_.Schedule();
      break;
    case CallbackMode::kDirect:
      tasklet_.Schedule();
      break;
  }
}

void Channel::RunTasklet() {
  // Spec 7.5 (vmbus_on_event): call the driver until unmasking finds the ring empty, but not
  // past the budget; then let the others run and come back.
  const int64_t deadline = core_.clock().NowNs() + core_.options().tasklet_budget_ns;
  for (;;) {
    if (!callbacks_enabled_.load(std::memory_order_acquire)) return;
    stats_.callbacks.Add();
    const uint32_t read_before = inbound_->read_index();
    callback_(*this);
    if (mode_.load(std::memory_order_acquire) != CallbackMode::kBatched) return;
    if (inbound_->read_index() == read_before) {
      // The driver consumed nothing. If the ring still holds bytes, they cannot be consumed (a
      // corrupt host ring: the reader refuses the packet without moving its index). Looping or
      // rescheduling would spin forever on hostile input, so stop here and leave the ring masked
      // (OpenVMM stops a channel whose ring is corrupt). An empty ring is the ordinary case.
      const auto pending = inbound_->BytesAvailable();
      if (!pending || *pending != 0) {
        stats_.tasklet_stalls.Add();
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest",
                               "relid {}: inbound ring holds data the driver cannot consume; "
                               "channel callbacks stopped",
                               relid());
        return;
      }
    }
    // hv_end_read: unmask, full barrier, re-check. Data that arrived while masked raised no
    // interrupt, so it must be handled here.
    const auto avail = inbound_->EndReadMask();
    if (!avail || *avail == 0) return;
    inbound_->BeginReadMask();
    if (core_.clock().NowNs() >= deadline) break;
  }
  stats_.tasklet_yields.Add();
  tasklet_.Schedule();
}

void Channel::StopCallbacks() {
  callbacks_enabled_.store(false, std::memory_order_seq_cst);
  // Every ISR that saw the callbacks armed has finished (and any tasklet run inside that pass).
  core_.SynchronizeVcpus();
  tasklet_.Kill();
}

// ---------------------------------------------------------------------------------------------
// GPADLs

Expected<uint32_t> Channel::DoEstablishGpadl(std::span<const uint64_t> pfns) {
  const uint32_t handle = core_.AllocateGpadlHandle();
  auto messages = wire::BuildGpadlMessages(relid(), handle, pfns);
  if (!messages) return unexpected(messages.error());
  auto response =
      core_.Request(RequestKind::kGpadlCreate, relid(), handle, *messages, &rescinded_);
  if (!response) {
    core_.stats().gpadl_failures.Add();
    return unexpected(response.error());
  }
  const auto* created = std::get_if<wire::GpadlCreated>(&*response);
  if (created == nullptr) {
    core_.stats().gpadl_failures.Add();
    return MakeError(ErrorCode::kInternal, "GPADL {:#x}: unexpected response type", handle);
  }
  if (created->creation_status != 0) {
    // M15: the host refused; it holds nothing, the pages are the caller's again.
    core_.stats().gpadl_failures.Add();
    return MakeError(ErrorCode::kUnavailable,
                     "host refused GPADL {:#x} on channel {}: creation_status {:#x}", handle,
                     relid(), created->creation_status);
  }
  core_.stats().gpadls_created.Add();
  return handle;
}

Status Channel::DoTeardown(uint32_t handle) {
  wire::GpadlTeardown msg;
  msg.child_relid = relid();
  msg.gpadl = handle;
  const wire::MessageBuffer buffer = wire::Encode(msg);
  // Not gated on the rescind flag: a host keeps answering GPADL_TEARDOWN for a rescinded channel
  // (spec 2.7). A rescind that arrives while we wait still wakes us (M12).
  auto response = core_.Request(RequestKind::kGpadlTeardown, relid(), handle,
                                std::span<const wire::MessageBuffer>(&buffer, 1), nullptr);
  if (!response) return unexpected(response.error());
  core_.stats().gpadls_torn_down.Add();
  return Ok();
}

Expected<uint32_t> Channel::EstablishGpadl(std::span<const uint64_t> pfns) {
  if (Status st = CheckControlContext(); !st) return unexpected(st.error());
  if (pfns.empty() || pfns.size() > wire::kMaxGpadlPages) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL of {} pages (1..{})", pfns.size(),
                     wire::kMaxGpadlPages);
  }
  const uint64_t ram_pages = core_.partition().ram().page_count();
  for (uint64_t pfn : pfns) {
    if (pfn >= ram_pages) {
      return MakeError(ErrorCode::kInvalidArgument, "GPADL page {:#x} outside guest RAM ({} pages)",
                       pfn, ram_pages);
    }
  }
  {
    std::lock_guard lock(mu_);
    if (state_ == ChannelState::kReleased || rescinded()) {
      return MakeError(ErrorCode::kUnavailable, "channel {} was rescinded", relid());
    }
  }
  auto handle = DoEstablishGpadl(pfns);
  if (!handle) return handle;
  std::lock_guard lock(mu_);
  gpadls_.push_back(*handle);
  return handle;
}

Expected<uint32_t> Channel::EstablishGpadl(const partition::PageRun& run) {
  if (!run.valid() || run.count() == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL over an empty page run");
  }
  if (run.count() > wire::kMaxGpadlPages) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL of {} pages (1..{})", run.count(),
                     wire::kMaxGpadlPages);
  }
  std::vector<uint64_t> pfns(run.count());
  for (uint64_t i = 0; i < run.count(); ++i) pfns[i] = run.gpn() + i;
  return EstablishGpadl(pfns);
}

Expected<uint32_t> Channel::EstablishGpadl(std::span<const uint8_t> buffer) {
  const std::span<uint8_t> ram = core_.partition().ram().all();
  const auto base = reinterpret_cast<uintptr_t>(ram.data());
  const auto start = reinterpret_cast<uintptr_t>(buffer.data());
  if (buffer.empty() || start < base || start - base > ram.size() ||
      buffer.size() > ram.size() - (start - base)) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL buffer is not inside guest RAM");
  }
  const uint64_t offset = start - base;
  if (offset % kPage != 0 || buffer.size() % kPage != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "GPADL buffer must be page-aligned and a whole number of pages");
  }
  const uint64_t pages = buffer.size() / kPage;
  if (pages > wire::kMaxGpadlPages) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL of {} pages (1..{})", pages,
                     wire::kMaxGpadlPages);
  }
  std::vector<uint64_t> pfns(pages);
  for (uint64_t i = 0; i < pages; ++i) pfns[i] = offset / kPage + i;
  return EstablishGpadl(pfns);
}

Status Channel::TeardownGpadl(uint32_t handle) {
  if (Status st = CheckControlContext(); !st) return st;
  {
    std::lock_guard lock(mu_);
    auto it = std::find(gpadls_.begin(), gpadls_.end(), handle);
    if (it == gpadls_.end()) {
      return MakeError(ErrorCode::kNotFound, "GPADL {:#x} is not a GPADL of channel {}", handle,
                       relid());
    }
    gpadls_.erase(it);
  }
  if (!core_.connected()) return Ok();  // the host is gone and holds nothing any more
  return DoTeardown(handle);
}

std::vector<uint32_t> Channel::gpadls() const {
  std::lock_guard lock(mu_);
  return gpadls_;
}

// ---------------------------------------------------------------------------------------------
// Open / close

Status Channel::Open(const OpenParams& params) {
  if (Status st = CheckControlContext(); !st) return st;
  if (params.send_ring_bytes % kPage != 0 || params.recv_ring_bytes % kPage != 0 ||
      params.send_ring_bytes < kMinRingBytes || params.recv_ring_bytes < kMinRingBytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "ring sizes {} / {}: each a multiple of {} and at least {}",
                     params.send_ring_bytes, params.recv_ring_bytes, kPage, kMinRingBytes);
  }
  const uint64_t total_pages =
      (uint64_t{params.send_ring_bytes} + params.recv_ring_bytes) / kPage;
  if (total_pages > wire::kMaxGpadlPages) {
    return MakeError(ErrorCode::kInvalidArgument, "rings of {} pages exceed one GPADL ({})",
                     total_pages, wire::kMaxGpadlPages);
  }
  if (params.userdata.size() > wire::OpenChannel::kUserDataBytes) {
    return MakeError(ErrorCode::kInvalidArgument, "userdata of {} bytes (at most {})",
                     params.userdata.size(), wire::OpenChannel::kUserDataBytes);
  }
  if (!params.callback && !params.raw) {
    return MakeError(ErrorCode::kInvalidArgument, "no channel callback");
  }
  if (params.max_packet_size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "max_packet_size 0");
  }

  std::lock_guard control(control_mu_);
  {
    std::lock_guard lock(mu_);
    if (rescinded() || state_ == ChannelState::kReleased) {
      return MakeError(ErrorCode::kUnavailable, "channel {} was rescinded", relid());
    }
    if (state_ != ChannelState::kOffered) {
      return MakeError(ErrorCode::kProtocol, "channel {} is {}, not offered", relid(),
                       ChannelStateName(state_));
    }
    if (!core_.connected()) return MakeError(ErrorCode::kUnavailable, "VMBus is not connected");
    state_ = ChannelState::kOpening;
  }
  auto back_to_offered = [&](Error error) -> Status {
    std::lock_guard lock(mu_);
    state_ = ChannelState::kOffered;
    return unexpected(std::move(error));
  };

  // 1. Ring pages: guest->host ring first, host->guest ring at the downstream offset (spec 2.8).
  auto run = core_.partition().allocator().AllocateRun(total_pages);
  if (!run) return back_to_offered(run.error());
  const std::span<uint8_t> all = run->bytes();
  // 2. Ring headers as Linux hv_ringbuffer_init: zeroed, feature_bits = 1 (spec 3.1).
  auto out_view = ring::InitRingControl(all.subspan(0, params.send_ring_bytes));
  // Raw mode (uio_hv_generic's hv_uio_open): the inbound ring is masked from the start, the
  // user-space owner polls it.
  ring::RingInitOptions in_init;
  if (params.raw) in_init.interrupt_mask = 1;
  auto in_view = ring::InitRingControl(
      all.subspan(params.send_ring_bytes, params.recv_ring_bytes), in_init);
  if (!out_view || !in_view) {
    return back_to_offered(Error::Make(ErrorCode::kInternal, "ring memory rejected: {}",
                                       ring::RingErrorName(!out_view ? out_view.error()
                                                                     : in_view.error())));
  }
  auto out = ring::OutgoingRing::Create(*out_view);
  ring::IncomingRing::Options in_options;
  in_options.max_packet_size = params.max_packet_size;
  auto in = ring::IncomingRing::Create(*in_view, in_options);
  if (!out || !in) {
    return back_to_offered(Error::Make(ErrorCode::kInternal, "ring setup failed: {}",
                                       ring::RingErrorName(!out ? out.error() : in.error())));
  }

  // 3. One GPADL over both rings.
  std::vector<uint64_t> pfns(total_pages);
  for (uint64_t i = 0; i < total_pages; ++i) pfns[i] = run->gpn() + i;
  auto gpadl = DoEstablishGpadl(pfns);
  if (!gpadl) {
    if (gpadl.error().code == ErrorCode::kTimeout) {
      // The host may have created it and may use the pages: keep them (counted).
      std::lock_guard lock(mu_);
      core_.stats().pages_leaked.Add(run->count());
      leaked_.push_back(std::move(*run));
    }
    return back_to_offered(gpadl.error());
  }

  // 4. Arm callbacks before OPENCHANNEL: the host may signal as soon as it opened the channel.
  ring_pages_ = std::move(*run);
  ring_gpadl_ = *gpadl;
  outbound_.emplace(std::move(*out));
  inbound_.emplace(std::move(*in));
  // Raw mode: the ISR only counts (kIsr with a callback that does nothing) - no tasklet, no
  // masking, the rings are never touched.
  callback_ = params.raw ? ChannelCallback([](Channel&) {}) : params.callback;
  mode_.store(params.raw ? CallbackMode::kIsr : params.mode, std::memory_order_release);
  ring_gpn_.store(ring_pages_.gpn(), std::memory_order_release);
  ring_page_count_.store(ring_pages_.count(), std::memory_order_release);
  tasklet_.Enable();
  callbacks_enabled_.store(true, std::memory_order_release);

  // 5. OPENCHANNEL, wait for OPENCHANNEL_RESULT (matched by relid + openid).
  wire::OpenChannel msg;
  msg.child_relid = relid();
  msg.openid = relid();
  msg.ringbuffer_gpadlhandle = ring_gpadl_;
  msg.target_vp = target_vcpu();
  msg.downstream_ringbuffer_pageoffset = params.send_ring_bytes / kPage;
  if (!params.userdata.empty()) {  // memcpy from an empty span's null data() is undefined
    std::memcpy(msg.userdata, params.userdata.data(), params.userdata.size());
  }
  const wire::MessageBuffer buffer = wire::Encode(msg);
  auto response = core_.Request(RequestKind::kOpenChannel, relid(), relid(),
                                std::span<const wire::MessageBuffer>(&buffer, 1), &rescinded_);
  Error failure;
  bool failed = false;
  if (!response) {
    failed = true;
    failure = response.error();
  } else if (const auto* result = std::get_if<wire::OpenChannelResult>(&*response);
             result == nullptr || result->status != 0) {
    // M14: Linux maps a refusal to -EAGAIN; the ring and its GPADL are released below.
    failed = true;
    failure = Error::Make(ErrorCode::kUnavailable,
                          "host refused OPENCHANNEL for channel {}: status {:#x}", relid(),
                          result != nullptr ? result->status : 0xFFFFFFFFu);
  }
  if (failed) {
    // The channel never opened: no CLOSECHANNEL, but the ring GPADL exists on the host.
    {
      std::lock_guard lock(mu_);
      state_ = ChannelState::kClosing;
    }
    CloseLocked(/*talk_to_host=*/core_.connected(), /*send_close=*/false);
    return unexpected(std::move(failure));
  }
  std::lock_guard lock(mu_);
  state_ = ChannelState::kOpen;
  return Ok();
}

void Channel::CloseLocked(bool talk_to_host, bool send_close) {
  StopCallbacks();
  Status teardown = Ok();
  if (talk_to_host) {
    if (send_close) {
      wire::CloseChannel msg;
      msg.child_relid = relid();
      // No reply exists for CLOSECHANNEL (spec 2.3).
      if (Status st = core_.Post(wire::Encode(msg)); !st) {
        UVMBUS_LOG_WARN("guest", "channel {}: {}", relid(), st.error().message);
      }
    }
    teardown = DoTeardown(ring_gpadl_);
    if (!teardown) {
      UVMBUS_LOG_WARN("guest", "channel {}: ring GPADL {:#x} teardown: {}", relid(), ring_gpadl_,
                      teardown.error().message);
    }
  }
  std::lock_guard lock(mu_);
  SaveRingCounters();
  outbound_.reset();
  inbound_.reset();
  callback_ = nullptr;
  ring_gpadl_ = 0;
  ring_gpn_.store(0, std::memory_order_release);
  ring_page_count_.store(0, std::memory_order_release);
  if (!teardown && teardown.error().code == ErrorCode::kTimeout) {
    // The host never confirmed: it may still write into these pages. Keep them out of the
    // allocator rather than hand them to someone else.
    core_.stats().pages_leaked.Add(ring_pages_.count());
    leaked_.push_back(std::move(ring_pages_));
  } else {
    ring_pages_.Reset();
  }
  state_ = ChannelState::kOffered;
}

Status Channel::Close() {
  if (Status st = CheckControlContext(); !st) return st;
  std::lock_guard control(control_mu_);
  {
    std::lock_guard lock(mu_);
    if (state_ != ChannelState::kOpen) {
      return MakeError(ErrorCode::kProtocol, "channel {} is {}, not open", relid(),
                       ChannelStateName(state_));
    }
    state_ = ChannelState::kClosing;
  }
  CloseLocked(/*talk_to_host=*/core_.connected(), /*send_close=*/true);
  return Ok();
}

void Channel::Shutdown(bool talk_to_host) {
  std::lock_guard control(control_mu_);
  bool open = false;
  std::vector<uint32_t> gpadls;
  {
    std::lock_guard lock(mu_);
    open = state_ == ChannelState::kOpen;
    if (open) state_ = ChannelState::kClosing;
    gpadls.swap(gpadls_);
  }
  if (open) CloseLocked(talk_to_host && core_.connected(), /*send_close=*/true);
  // Device GPADLs the driver left behind (spec 2.7: "tears down device GPADLs").
  for (uint32_t handle : gpadls) {
    if (!talk_to_host || !core_.connected()) break;
    if (Status st = DoTeardown(handle); !st) {
      UVMBUS_LOG_WARN("guest", "channel {}: GPADL {:#x} teardown: {}", relid(), handle,
                      st.error().message);
    }
  }
}

void Channel::Detach() {
  callbacks_enabled_.store(false, std::memory_order_seq_cst);
  tasklet_.Kill();
  tasklet_.Bind(nullptr);
}

void Channel::MarkReleased() {
  std::lock_guard lock(mu_);
  state_ = ChannelState::kReleased;
}

void Channel::SaveRingCounters() {
  if (outbound_) {
    const auto& s = outbound_->stats();
    saved_.intr_out_empty += s.intr_out_empty.Get();
    saved_.out_full_first += s.out_full_first.Get();
    saved_.out_full_total += s.out_full_total.Get();
  }
  if (inbound_) saved_.intr_in_full += inbound_->stats().intr_in_full.Get();
}

ChannelCounters Channel::counters() const {
  std::lock_guard lock(mu_);
  ChannelCounters c = saved_;
  c.interrupts = stats_.interrupts.Get();
  c.events = stats_.events.Get();
  c.callbacks = stats_.callbacks.Get();
  c.tasklet_yields = stats_.tasklet_yields.Get();
  c.tasklet_stalls = stats_.tasklet_stalls.Get();
  if (outbound_) {
    const auto& s = outbound_->stats();
    c.intr_out_empty += s.intr_out_empty.Get();
    c.out_full_first += s.out_full_first.Get();
    c.out_full_total += s.out_full_total.Get();
  }
  if (inbound_) c.intr_in_full += inbound_->stats().intr_in_full.Get();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Target vCPU

Status Channel::SetTargetVcpu(uint32_t vcpu) {
  if (vcpu >= core_.vcpu_count()) {
    return MakeError(ErrorCode::kInvalidArgument, "vcpu {} out of range ({} vcpus)", vcpu,
                     core_.vcpu_count());
  }
  if (Status st = CheckControlContext(); !st) return st;
  std::lock_guard control(control_mu_);
  bool open = false;
  {
    std::lock_guard lock(mu_);
    if (state_ == ChannelState::kReleased || rescinded()) {
      return MakeError(ErrorCode::kUnavailable, "channel {} was rescinded", relid());
    }
    open = state_ == ChannelState::kOpen;
  }
  if (open && vcpu != target_vcpu()) {
    if (core_.version() < wire::kVersionWin10V4_1) {
      return MakeError(ErrorCode::kUnsupported, "MODIFYCHANNEL needs VMBus 4.1 (negotiated {})",
                       wire::VersionString(core_.version()));
    }
    wire::ModifyChannel msg;
    msg.child_relid = relid();
    msg.target_vp = vcpu;
    const wire::MessageBuffer buffer = wire::Encode(msg);
    if (core_.version() >= wire::kVersionWin10V5_3) {
      // Only 5.3 hosts acknowledge (spec 10.1 V8).
      auto response = core_.Request(RequestKind::kModifyChannel, relid(), 0,
                                    std::span<const wire::MessageBuffer>(&buffer, 1), &rescinded_);
      if (!response) return unexpected(response.error());
      const auto* r = std::get_if<wire::ModifyChannelResponse>(&*response);
      if (r == nullptr || r->status != 0) {
        return MakeError(ErrorCode::kUnavailable, "host refused MODIFYCHANNEL for channel {}: {:#x}",
                         relid(), r != nullptr ? r->status : 0xFFFFFFFFu);
      }
    } else if (Status st = core_.Post(buffer); !st) {
      return st;
    }
  }
  // Move the tasklet. A schedule made by an interrupt still in flight to the old vCPU may be
  // dropped while it moves; one extra run on the new vCPU makes up for it.
  tasklet_.Kill();
  tasklet_.Bind(&core_.vcpu(vcpu)->softirq());
  target_vcpu_.store(vcpu, std::memory_order_release);
  tasklet_.Enable();
  if (open && callbacks_enabled_.load(std::memory_order_acquire)) tasklet_.Schedule();
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Data path

void Channel::SignalHost() {
  stats_.events.Add();
  const wire::HvStatus status = core_.partition().SignalEvent(connection_id(), 0);
  if (status != wire::HvStatus::kSuccess) {
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, "guest", "channel {}: SignalEvent({:#x}): {}",
                           relid(), connection_id(), wire::HvStatusName(status));
  }
}

SendStatus Channel::SendInband(std::span<const uint8_t> payload, uint64_t trans_id,
                               bool request_completion) {
  if (!outbound_) return SendStatus::kNotOpen;
  ring::WriteCursor cursor = outbound_->BeginWrite();
  const ring::WriteResult r =
      outbound_->WriteInband(cursor, payload, trans_id, request_completion);
  switch (r.status) {
    case ring::WriteStatus::kOk:
      break;
    case ring::WriteStatus::kFull:
      return SendStatus::kFull;
    case ring::WriteStatus::kInvalid:
      return SendStatus::kInvalid;
    case ring::WriteStatus::kCorrupt:
      return SendStatus::kCorrupt;
  }
  // Signal only on empty -> non-empty with the host not polling (spec 3.4).
  if (outbound_->CommitWrite(cursor).needs_signal) SignalHost();
  return SendStatus::kOk;
}

}  // namespace uvmbus::guest
