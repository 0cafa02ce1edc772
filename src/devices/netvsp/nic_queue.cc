// File: devices/netvsp/nic_queue.cc — see nic_queue.h.
#include "devices/netvsp/nic_queue.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <variant>

#include "common/log.h"

namespace uvmbus::netvsp {
namespace {

constexpr std::string_view kComponent = "netvsp";
// Bytes of an RNDIS message copied before parsing it in place (header + PPIs; every known sender
// keeps them within 256 bytes, see wire::ParseRndisPacketHead).
constexpr size_t kRndisHeadCopy = 256;
// Transfer-page header + ranges of one packet.
constexpr size_t kXferHeaderMax = 24 + 8 * 128;

uint32_t Load32(std::span<const uint8_t> b, size_t off) {
  uint32_t v = 0;
  if (off <= b.size() && b.size() - off >= 4) std::memcpy(&v, b.data() + off, 4);
  return v;
}

constexpr size_t RoundUp8(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

Expected<std::shared_ptr<Session>> Session::Create(const NicConfig& config,
                                                   std::shared_ptr<NicCounters> counters,
                                                   std::shared_ptr<LinkState> link,
                                                   host::DeviceControl* control,
                                                   uint32_t max_frame, uint32_t channel_limit) {
  std::shared_ptr<Session> s(new Session(config, std::move(counters), std::move(link), control,
                                         max_frame, channel_limit));
  for (uint32_t q = 0; q < channel_limit; ++q) {
    auto mailbox = Mailbox::Create(config.mailbox_depth);
    if (!mailbox) return tl::unexpected(mailbox.error());
    s->mailboxes_.push_back(std::move(*mailbox));
  }
  // The receive configuration before the guest sets anything: filter 0 (nothing is delivered
  // until the guest enables reception, spec 6.10), the permanent MAC, RSS off.
  auto rx = std::make_shared<RxConfig>();
  rx->mac = config.mac;
  s->PublishRxConfig(std::move(rx));
  return s;
}

Session::Session(const NicConfig& config, std::shared_ptr<NicCounters> counters,
                 std::shared_ptr<LinkState> link, host::DeviceControl* control,
                 uint32_t max_frame, uint32_t channel_limit)
    : config_(config), counters_(std::move(counters)), link_(std::move(link)),
      control_(control), max_frame_(max_frame), channel_limit_(channel_limit) {}

void Session::PublishRecv(std::unique_ptr<RecvBuffer> buffer) {
  recv_storage_ = std::move(buffer);
  // Release: queues that load the pointer (acquire) see the whole buffer description.
  recv_.store(recv_storage_.get(), std::memory_order_release);
}

void Session::PublishSend(std::unique_ptr<SendBuffer> buffer) {
  send_storage_ = std::move(buffer);
  send_.store(send_storage_.get(), std::memory_order_release);
}

std::shared_ptr<const RxConfig> Session::rx_config() const {
  std::lock_guard lock(rx_mu_);
  return rx_config_;
}

void Session::PublishRxConfig(std::shared_ptr<const RxConfig> config) {
  std::lock_guard lock(rx_mu_);
  rx_config_ = std::move(config);
  rx_gen_.fetch_add(1, std::memory_order_acq_rel);
}

// ---------------------------------------------------------------------------------------------
// NicQueue: construction, service round
// ---------------------------------------------------------------------------------------------

Expected<std::unique_ptr<NicQueue>> NicQueue::Create(std::shared_ptr<Session> session,
                                                     host::HostChannel& channel, uint16_t index) {
  if (session == nullptr || index >= session->channel_limit()) {
    return MakeError(ErrorCode::kInvalidArgument, "netvsp: queue {} beyond the NIC's channels",
                     index);
  }
  return std::unique_ptr<NicQueue>(new NicQueue(std::move(session), channel, index));
}

NicQueue::NicQueue(std::shared_ptr<Session> session, host::HostChannel& channel, uint16_t index)
    : session_(std::move(session)), channel_(channel), index_(index), inflight_(1024) {
  net::Endpoint& backend = session_->backend();
  if (index_ < backend.max_queues()) backend_q_ = &backend.queue(index_);
  const NicConfig& cfg = session_->config();
  // A message gathered from GPA ranges (and a send section, Linux's cp_partial) is at most a
  // section plus a frame plus room for headers and PPIs.
  max_gather_ = RoundUp8(size_t{cfg.send_section_size} + session_->max_frame() + 4096);
  arena_size_ = std::max<size_t>(64 * 1024, 4 * (max_gather_ + 16));
  arena_ = std::make_unique<uint8_t[]>(arena_size_);
  scratch_ = std::make_unique<uint8_t[]>(session_->max_frame());
  ctl_.mac = cfg.mac;
}

NicQueue::~NicQueue() = default;

std::array<int, 3> NicQueue::wait_fds() const {
  return {channel_.doorbell_fd(), backend_q_ != nullptr ? backend_q_->wait_fd() : -1,
          session_->mailbox(index_).fd()};
}

void NicQueue::Fail(std::string_view why) {
  if (failed_) return;
  failed_ = true;
  // Other queues stop steering frames here; what they already posted is freed by Shutdown().
  session_->mailbox(index_).set_accepting(false);
  UVMBUS_LOG_WARN(kComponent, "{}: queue {} (relid {}) stopped: {}", session_->config().id,
                  index_, channel_.relid(), why);
}

void NicQueue::FailCorrupt(std::string_view why) {
  // A guest that hung up has its RAM revoked (zero pages) before the devices hear about it, so a
  // worker still running reads zeroed ring headers. That is the guest going away, not a hostile
  // ring: neither counted as corruption nor logged as a warning.
  if (!channel_.partition().connected()) {
    if (!failed_) {
      failed_ = true;
      session_->mailbox(index_).set_accepting(false);
      UVMBUS_LOG_DEBUG(kComponent, "{}: queue {} (relid {}) stopped: guest gone",
                       session_->config().id, index_, channel_.relid());
    }
    return;
  }
  stats().Add(Stat::kRingCorrupt);
  Fail(why);
}

bool NicQueue::Run() {
  stats().Add(Stat::kWakeups);
  // Clear the doorbell before looking at the rings: a signal during the round re-arms it.
  channel_.ConsumeDoorbell();
  if (failed_) {
    // The rings are unusable; keep the backend and the mailbox drained so they cannot wake us
    // forever, and give steered sub-allocations back.
    if (backend_q_ != nullptr) {
      while (DrainToScratch(Stat::kRxNotReady) == kRxBatch) {
      }
    }
    SteeredFrame item;
    const RecvBuffer* recv = session_->recv();
    while (session_->mailbox(index_).Pop(&item)) {
      if (recv != nullptr) recv->pool->Push(item.section);
      stats().Add(Stat::kRxNotReady);
    }
    return false;
  }
  ring::OutgoingRing& out = channel_.outbound();
  ring::IncomingRing& in = channel_.inbound();
  wc_ = out.BeginWrite();
  blocked_total_ = 0;
  bool more = false;
  if (index_ == 0) more |= ControlPhase();

  // Spec 3.6: mask the guest's signals while draining, unmask, full barrier, re-check. A round
  // that stopped at the quota, or is blocked on a completion, stays masked (the next round
  // continues; a blocked queue waits for the guest's "room freed" signal instead).
  if (!masked_) {
    in.BeginReadMask();
    masked_ = true;
  }
  for (int round = 0;; ++round) {
    const Drain d = DrainInbound();
    if (d == Drain::kFailed || d == Drain::kBlocked) break;
    if (d == Drain::kQuota) {
      more = true;
      break;
    }
    auto avail = in.EndReadMask();
    masked_ = false;
    if (!avail) {
      FailCorrupt("guest->host ring write_index corrupt");
      break;
    }
    if (*avail == 0) break;
    in.BeginReadMask();
    masked_ = true;
    if (round == 3) {
      more = true;  // busy: give the receive side its turn, then continue
      break;
    }
  }
  if (!failed_) more |= RxPhase();
  if (failed_) return false;
  // One signal decision for everything written this round (spec 3.4).
  if (out.CommitWrite(wc_).needs_signal) channel_.SignalGuest();
  if (blocked_total_ != 0) {
    // Spec 3.5 writer side: ask the guest to signal when it freed `blocked_total_` bytes. True
    // means there is room already: go again.
    auto room = out.SetPendingSendSize(blocked_total_);
    if (room && *room) more = true;
  }
  return more;
}

bool NicQueue::PrepareSleep() {
  bool sleep = true;
  if (backend_q_ != nullptr && !backend_q_->PrepareWait()) sleep = false;
  // Drains the mailbox eventfd first, so control requests flagged before a Kick() are seen by
  // the checks below.
  if (!session_->mailbox(index_).PrepareWait()) sleep = false;
  if (index_ == 0 && !failed_) {
    if (session_->send_table_pending.load(std::memory_order_acquire)) sleep = false;
    if (ctl_.rndis == RndisState::kInitialized &&
        session_->link().epoch.load(std::memory_order_acquire) != ctl_.link_epoch) {
      sleep = false;
    }
  }
  return sleep;
}

void NicQueue::Shutdown() {
  const RecvBuffer* recv = session_->recv();
  if (recv == nullptr) return;
  // The guest will never complete what is in flight on a closed channel.
  inflight_.DrainAll([&](const InflightTable::Entry& e) { FreeChain(e.first, e.last); });
  recv->pool->PushMany(stash_.data(), stash_count_);
  stash_count_ = 0;
  SteeredFrame item;
  while (session_->mailbox(index_).Pop(&item)) recv->pool->Push(item.section);
}

// ---------------------------------------------------------------------------------------------
// Guest -> host
// ---------------------------------------------------------------------------------------------

NicQueue::Drain NicQueue::DrainInbound() {
  ring::IncomingRing& in = channel_.inbound();
  ring::ReadCursor rc = in.BeginRead();
  Drain result = Drain::kDrained;
  if (has_pending_completion_ && !WritePendingCompletion()) result = Drain::kBlocked;
  uint32_t n = 0;
  while (result == Drain::kDrained && !failed_) {
    if (n == kInboundQuota) {
      result = Drain::kQuota;
      break;
    }
    ring::ReadResult r = in.Read(rc);
    if (r.status == ring::ReadStatus::kEmpty) break;
    if (r.status == ring::ReadStatus::kCorrupt) {
      FailCorrupt(ring::RingErrorName(r.error));
      break;
    }
    ++n;
    HandlePacket(r.packet);
    if (has_pending_completion_) result = Drain::kBlocked;
  }
  // Frames may point into the guest's send buffer: they go to the backend before the
  // completions that release those sections are published (CommitWrite at the end of Run).
  FlushTx();
  if (failed_) return Drain::kFailed;
  if (in.CommitRead(rc).needs_signal) channel_.SignalGuest();
  return result;
}

void NicQueue::HandlePacket(const ring::IncomingPacket& packet) {
  switch (packet.type()) {
    case wire::PacketType::kComp:
      HandleGuestCompletion(packet);
      return;
    case wire::PacketType::kDataInband:
      HandleNvsp(packet, packet.payload, nullptr);
      return;
    case wire::PacketType::kDataUsingGpaDirect: {
      auto gpa = wire::ParseGpaDirectPacket(packet.bytes);
      if (!gpa) {
        stats().Add(Stat::kNvspMalformed);
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: queue {}: GPA-direct packet: {}",
                               session_->config().id, index_, wire::PacketErrorName(gpa.error()));
        FailRequest(Load32(packet.payload, 0), packet.desc.trans_id,
                    packet.completion_requested());
        return;
      }
      HandleNvsp(packet, gpa->payload, &*gpa);
      return;
    }
    default:
      // Transfer-page packets flow host -> guest only (spec 4.2).
      stats().Add(Stat::kNvspMalformed);
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: queue {}: packet type {} from guest",
                             session_->config().id, index_,
                             wire::PacketTypeName(packet.desc.type));
      return;
  }
}

void NicQueue::HandleGuestCompletion(const ring::IncomingPacket& packet) {
  const uint32_t version = session_->nvsp_version.load(std::memory_order_acquire);
  auto parsed = wire::ParseNvspMessage(packet.payload, wire::Direction::kGuestToHost,
                                       wire::PacketType::kComp, version);
  const auto* done =
      parsed ? std::get_if<wire::NvspSendRndisPacketComplete>(&*parsed) : nullptr;
  if (done == nullptr) {
    // The host requests completions only for its transfer-page packets (NVSP 108); an empty
    // completion cannot name one (it never sends VF_ASSOCIATION).
    stats().Add(parsed && std::holds_alternative<wire::NvspEmptyCompletion>(*parsed)
                    ? Stat::kRxCompletionUnknown
                    : Stat::kNvspMalformed);
    return;
  }
  auto entry = inflight_.Complete(packet.desc.trans_id);
  if (!entry) {  // P15: unknown or already completed id
    stats().Add(Stat::kRxCompletionUnknown);
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent,
                           "{}: queue {}: receive completion for unknown trans_id {:#x}",
                           session_->config().id, index_, packet.desc.trans_id);
    return;
  }
  stats().Add(Stat::kRxCompletions);
  if (done->status != wire::NvspStatus::kSuccess) stats().Add(Stat::kRxCompletionFailed);
  FreeChain(entry->first, entry->last);
}

void NicQueue::HandleNvsp(const ring::IncomingPacket& packet, std::span<const uint8_t> payload,
                          const wire::GpaDirectPacket* gpa) {
  const bool want = packet.completion_requested();
  const uint64_t trans = packet.desc.trans_id;
  const uint32_t raw_type = Load32(payload, 0);
  const uint32_t version =
      index_ == 0 ? ctl_.version : session_->nvsp_version.load(std::memory_order_acquire);
  auto parsed =
      wire::ParseNvspMessage(payload, wire::Direction::kGuestToHost, packet.type(), version);
  if (!parsed) {
    // P1 comes back as kProtocol; everything else is a malformed message.
    stats().Add(parsed.error().code == ErrorCode::kProtocol ? Stat::kNvspBadVersion
                                                            : Stat::kNvspMalformed);
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: queue {}: {}",
                           session_->config().id, index_, parsed.error().message);
    FailRequest(raw_type, trans, want);
    return;
  }
  const wire::NvspMessageType type = wire::TypeOf(*parsed);
  if (version == wire::kNvspVersionNone && type != wire::NvspMessageType::kInit) {  // P2
    stats().Add(Stat::kNvspBeforeInit);
    FailRequest(raw_type, trans, want);
    return;
  }
  if (const auto* rndis = std::get_if<wire::NvspSendRndisPacket>(&*parsed)) {
    HandleRndisPacket(*rndis, trans, want, gpa);
    return;
  }
  // Everything else is control, accepted on the primary channel only (sub-channels carry data).
  if (index_ != 0) {
    stats().Add(Stat::kNvspUnexpected);
    FailRequest(raw_type, trans, want);
    return;
  }
  if (const auto* m = std::get_if<wire::NvspInit>(&*parsed)) {
    HandleInit(*m, trans, want);
  } else if (const auto* v = std::get_if<wire::NvspSendNdisVersion>(&*parsed)) {
    if (ctl_.ndis_version_seen) {
      stats().Add(Stat::kNvspDuplicate);  // P3
    } else {
      ctl_.ndis_version_seen = true;
      // Any 6.x is fine (spec 10.2 N-f); the version only sizes the offload object.
      ctl_.ndis_version = (v->ndis_major_ver << 16) | (v->ndis_minor_ver & 0xFFFF);
      session_->ndis_version.store(ctl_.ndis_version, std::memory_order_relaxed);
    }
    if (want) CompleteEmpty(trans);  // OpenVMM answers UEFI's request with an empty COMP
  } else if (const auto* c = std::get_if<wire::NvspSendNdisConfig>(&*parsed)) {
    if (ctl_.ndis_config_seen) {
      stats().Add(Stat::kNvspDuplicate);  // P3
    } else {
      ctl_.ndis_config_seen = true;
      ctl_.ndis_mtu = wire::EffectiveNdisConfigMtu(c->mtu);  // P6
      const uint64_t caps = c->capability;
      ctl_.ndis_capabilities = caps;
      session_->ndis_mtu.store(ctl_.ndis_mtu, std::memory_order_relaxed);
    }
    if (want) CompleteEmpty(trans);
  } else if (const auto* r = std::get_if<wire::NvspSendReceiveBuffer>(&*parsed)) {
    HandleRecvBuffer(*r, trans, want);
  } else if (const auto* s = std::get_if<wire::NvspSendSendBuffer>(&*parsed)) {
    HandleSendBuffer(*s, trans, want);
  } else if (std::holds_alternative<wire::NvspRevokeReceiveBuffer>(*parsed)) {
    // P16: stop indicating into the buffer. The mapping stays pinned until the session ends, so
    // an in-flight write can never reach freed memory.
    stats().Add(Stat::kBufferRevoked);
    session_->recv_revoked.store(true, std::memory_order_release);
    if (want) CompleteEmpty(trans);
  } else if (std::holds_alternative<wire::NvspRevokeSendBuffer>(*parsed)) {
    stats().Add(Stat::kBufferRevoked);
    session_->send_revoked.store(true, std::memory_order_release);
    if (want) CompleteEmpty(trans);
  } else if (const auto* sc = std::get_if<wire::NvspSubchannelRequest>(&*parsed)) {
    HandleSubchannel(*sc, trans, want);
  } else if (std::holds_alternative<wire::NvspSwitchDataPath>(*parsed)) {
    // No VF is ever offered; the synthetic path stays active. Modern Linux waits for an empty
    // completion (spec 10.2 N-k).
    if (want) CompleteEmpty(trans);
  } else {
    // OID_QUERY_EX, PD_API, PD_POST_BATCH: defined but not served by this host.
    stats().Add(Stat::kNvspUnexpected);
    FailRequest(raw_type, trans, want);
  }
}

void NicQueue::HandleInit(const wire::NvspInit& msg, uint64_t trans_id, bool want_completion) {
  wire::NvspInitComplete reply;
  reply.max_mdl_chain_len = wire::kNvspMaxMdlChainLength;
  if (ctl_.version != wire::kNvspVersionNone) {
    stats().Add(Stat::kNvspDuplicate);  // P3: the version is fixed for this opening
    reply.status = wire::NvspStatus::kFail;
    reply.negotiated_protocol_ver = wire::NvspDeprecatedNegotiatedVersion(ctl_.version);
    if (want_completion) Complete(trans_id, reply);
    return;
  }
  // The host looks at the first field only (OpenVMM; Linux puts the same value in both).
  const uint32_t v = msg.min_protocol_ver;
  const NicConfig& cfg = session_->config();
  if (!wire::IsKnownNvspVersion(v) || v < cfg.min_nvsp_version || v > cfg.max_nvsp_version) {
    stats().Add(Stat::kNvspVersionRefused);  // P2: status NONE, the guest tries the next one
    reply.status = wire::NvspStatus::kNone;
    reply.negotiated_protocol_ver = wire::kNvspVersionInvalid;
    if (want_completion) Complete(trans_id, reply);
    return;
  }
  ctl_.version = v;
  session_->nvsp_version.store(v, std::memory_order_release);
  reply.status = wire::NvspStatus::kSuccess;
  reply.negotiated_protocol_ver = wire::NvspDeprecatedNegotiatedVersion(v);
  if (want_completion) Complete(trans_id, reply);
}

void NicQueue::HandleRecvBuffer(const wire::NvspSendReceiveBuffer& msg, uint64_t trans_id,
                                bool want_completion) {
  auto fail = [&](Stat stat, std::string_view why) {
    stats().Add(stat);
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: receive buffer refused: {}",
                           session_->config().id, why);
    wire::NvspSendReceiveBufferComplete reply;
    reply.status = wire::NvspStatus::kFail;
    if (want_completion) Complete(trans_id, reply);
  };
  if (session_->recv() != nullptr) return fail(Stat::kNvspDuplicate, "already registered");  // P3
  if (ctl_.version >= wire::kNvspVersion2 && !ctl_.ndis_config_seen) {  // P4
    return fail(Stat::kRecvBufBeforeNdisConfig, "before SEND_NDIS_CONFIG");
  }
  auto view = channel_.Gpadl(msg.gpadl_handle);  // P7
  if (!view) return fail(Stat::kRecvBufBadGpadl, view.error().message);
  std::span<uint8_t> bytes = (*view)->data();
  auto layout = ComputeReceiveBufferLayout(bytes.size(), session_->max_frame());
  if (!layout) return fail(Stat::kRecvBufBadSize, layout.error().message);
  auto buffer = std::make_unique<RecvBuffer>();
  buffer->view = std::move(*view);
  buffer->bytes = bytes;
  buffer->layout = *layout;
  buffer->id = msg.id;
  buffer->pool = std::make_unique<SectionPool>(layout->num_sub_allocs);
  session_->PublishRecv(std::move(buffer));
  wire::NvspSendReceiveBufferComplete reply;
  reply.status = wire::NvspStatus::kSuccess;
  reply.num_sections = 1;  // one section at offset 0, the only shape guests accept (N7)
  reply.section.offset = 0;
  reply.section.sub_alloc_size = layout->sub_alloc_size;
  reply.section.num_sub_allocs = layout->num_sub_allocs;
  reply.section.end_offset = layout->end_offset();
  if (want_completion) Complete(trans_id, reply);
}

void NicQueue::HandleSendBuffer(const wire::NvspSendSendBuffer& msg, uint64_t trans_id,
                                bool want_completion) {
  auto fail = [&](Stat stat, std::string_view why) {
    stats().Add(stat);
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: send buffer refused: {}",
                           session_->config().id, why);
    wire::NvspSendSendBufferComplete reply;
    reply.status = wire::NvspStatus::kFail;
    if (want_completion) Complete(trans_id, reply);
  };
  if (session_->send() != nullptr) return fail(Stat::kNvspDuplicate, "already registered");  // P3
  auto view = channel_.Gpadl(msg.gpadl_handle);  // P7
  if (!view) return fail(Stat::kSendBufBadGpadl, view.error().message);
  std::span<uint8_t> bytes = (*view)->data();
  const uint32_t section_size = session_->config().send_section_size;
  if (bytes.size() > kMaxSendBufferBytes || bytes.size() < section_size) {
    return fail(Stat::kSendBufBadSize,
                fmt::format("{} bytes outside [{}, {}]", bytes.size(), section_size,
                            kMaxSendBufferBytes));
  }
  auto buffer = std::make_unique<SendBuffer>();
  buffer->view = std::move(*view);
  buffer->bytes = bytes;
  buffer->section_size = section_size;
  buffer->section_count = static_cast<uint32_t>(bytes.size() / section_size);
  buffer->id = msg.id;
  session_->PublishSend(std::move(buffer));
  wire::NvspSendSendBufferComplete reply;
  reply.status = wire::NvspStatus::kSuccess;
  reply.section_size = section_size;
  if (want_completion) Complete(trans_id, reply);
}

void NicQueue::HandleSubchannel(const wire::NvspSubchannelRequest& msg, uint64_t trans_id,
                                bool want_completion) {
  auto fail = [&](std::string_view why) {
    stats().Add(Stat::kSubchannelRefused);  // P14
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: sub-channel request refused: {}",
                           session_->config().id, why);
    wire::NvspSubchannelComplete reply;
    reply.status = wire::NvspStatus::kFail;
    reply.num_subchannels = 0;
    if (want_completion) Complete(trans_id, reply);
  };
  const uint32_t limit = session_->channel_limit();
  if (auto ok = wire::CheckSubchannelRequest(msg, limit); !ok) return fail(ok.error().message);
  if (msg.num_subchannels == 0) return fail("request for 0 sub-channels");
  const RecvBuffer* recv = session_->recv();
  if (recv == nullptr) return fail("no receive buffer yet");
  if (session_->control() == nullptr) return fail("device not installed");
  // OpenVMM grants only what the receive buffer can feed: every queue keeps a few
  // sub-allocations of its own.
  uint32_t grant = std::min(msg.num_subchannels, limit - 1);
  const uint32_t by_buffer = recv->layout.num_sub_allocs / 4;
  if (by_buffer < 2) return fail("receive buffer too small for sub-channels");
  grant = std::min(grant, by_buffer - 1);
  session_->channels_allocated.store(1 + grant, std::memory_order_release);
  net::Endpoint& backend = session_->backend();
  // Only this queue runs now (sub-channels are not open yet), so resizing the backend does not
  // race with another queue's data path (net/endpoint.h).
  if (auto r = backend.SetQueueCount(std::min(1 + grant, backend.max_queues())); !r) {
    UVMBUS_LOG_WARN(kComponent, "{}: backend queue count: {}", session_->config().id,
                    r.error().message);
  }
  wire::NvspSubchannelComplete reply;
  reply.status = wire::NvspStatus::kSuccess;
  reply.num_subchannels = grant;
  if (want_completion) {
    // The completion must reach the guest before the offers: Linux's netvsc_sc_open ignores
    // sub-channels whose index is not below the count the completion carries (spec 7.8). So the
    // frames staged so far go out and everything written is published now.
    FlushTx();
    Complete(trans_id, reply);
    if (channel_.outbound().CommitWrite(wc_).needs_signal) channel_.SignalGuest();
  }
  auto offered = session_->control()->OfferSubchannels(static_cast<uint16_t>(grant));
  if (!offered) {
    UVMBUS_LOG_ERROR(kComponent, "{}: offering {} sub-channels failed: {}",
                     session_->config().id, grant, offered.error().message);
  }
  // A repeated request for sub-channels that are all open already: the table goes out again.
  if (session_->subchannels_open.load(std::memory_order_acquire) >= grant) {
    session_->send_table_pending.store(true, std::memory_order_release);
  }
}

bool NicQueue::GatherGpa(const wire::GpaDirectPacket& gpa, uint8_t* dst) {
  // NicConfig::guest_memory (tests) or, by default, the channel's own guest: an embedder whose
  // DeviceFactory cannot know the partition (uvmbus host) still gets GPA-direct sends.
  partition::HostPartition* memory = session_->config().guest_memory;
  if (memory == nullptr) memory = &channel_.partition();
  wire::GpaDirectRangeReader reader(gpa);
  wire::GpaDirectRange range;
  while (reader.Next(&range)) {
    uint32_t offset = range.byte_offset;
    uint32_t left = range.byte_count;
    const uint32_t pages = range.page_count();
    for (uint32_t p = 0; p < pages && left > 0;) {
      // One lookup per run of consecutive frames (the common multi-page range).
      uint32_t run = 1;
      while (p + run < pages && range.pfn(p + run) == range.pfn(p) + run) ++run;
      auto span = memory->GuestPages(range.pfn(p), run);  // P10: bounds-checked
      if (!span) return false;
      const uint64_t avail = uint64_t{run} * wire::kGpaPageSize - offset;
      const auto n = static_cast<uint32_t>(std::min<uint64_t>(left, avail));
      std::memcpy(dst, span->data() + offset, n);
      dst += n;
      left -= n;
      offset = 0;
      p += run;
    }
  }
  return true;
}

void NicQueue::HandleRndisPacket(const wire::NvspSendRndisPacket& msg, uint64_t trans_id,
                                 bool want_completion, const wire::GpaDirectPacket* gpa) {
  auto finish = [&](wire::NvspStatus status) {
    if (!want_completion) return;
    wire::NvspSendRndisPacketComplete reply;
    reply.status = status;
    Complete(trans_id, reply);
  };
  auto fail = [&](Stat stat) {
    stats().Add(stat);
    finish(wire::NvspStatus::kFail);
  };
  // Where the bytes are: a send-buffer section, GPA ranges, or both (spec 5.6 (a)-(c)).
  const SendBuffer* send = nullptr;
  wire::NvspSendSection section;
  if (msg.send_buf_section_index != wire::kNvspNoSendSection) {
    send = session_->send();
    if (send == nullptr || session_->send_revoked.load(std::memory_order_acquire)) {
      return fail(Stat::kTxNoSendBuffer);  // P8
    }
    auto s = wire::ResolveSendSection(msg, send->section_size, send->bytes.size());
    // P9, plus: the index names a whole section and the bytes stay inside it.
    if (!s || msg.send_buf_section_index >= send->section_count ||
        msg.send_buf_section_size > send->section_size) {
      return fail(Stat::kTxBadSection);
    }
    section = *s;
  }
  uint64_t gpa_bytes = 0;
  if (gpa != nullptr) {
    wire::GpaDirectRangeReader reader(*gpa);
    wire::GpaDirectRange range;
    while (reader.Next(&range)) gpa_bytes += range.byte_count;
  }
  const uint64_t total = uint64_t{section.length} + gpa_bytes;
  if (total == 0) return fail(Stat::kTxNoData);

  const NicConfig& cfg = session_->config();
  const uint32_t max_messages = wire::RndisMaxPacketsPerMessage(cfg.max_packets_per_message);
  // Room for this message before it is looked at: its frames in the batch, its gathered bytes
  // and tagged copies of its frames in the arena. Flushing later would pull the arena from under
  // the message being parsed.
  const size_t arena_need = 2 * static_cast<size_t>(std::min<uint64_t>(total, max_gather_)) +
                            16 * size_t{max_messages} + 64;
  if (staged_count_ + max_messages > net::kMaxBatch || arena_size_ - arena_used_ < arena_need) {
    FlushTx();
  }

  std::span<const uint8_t> bytes;
  bool in_arena = false;
  const size_t arena_before = arena_used_;
  if (gpa == nullptr) {
    // Section only: parse in place from private copies of each header; frames are handed to
    // the backend straight from the section (it copies them; their completions are published
    // only after the backend took them, see DrainInbound).
    bytes = send->bytes.subspan(section.offset, section.length);
  } else {
    if (total > max_gather_) return fail(Stat::kTxTooBig);
    // 8 spare bytes before the message keep every message 8-aligned in the arena.
    uint8_t* base = arena_.get() + arena_used_ + 8;
    if (section.used) std::memcpy(base, send->bytes.data() + section.offset, section.length);
    if (!GatherGpa(*gpa, base + section.length)) return fail(Stat::kTxBadGpa);  // P10
    bytes = std::span<const uint8_t>(base, static_cast<size_t>(total));
    arena_used_ += RoundUp8(static_cast<size_t>(total) + 8);
    in_arena = true;
  }
  if (bytes.size() < wire::kRndisHeaderSize) {
    arena_used_ = arena_before;
    return fail(Stat::kTxBadRndis);
  }

  // The first message decides: control messages travel alone (spec 5.6: never batched).
  std::array<uint8_t, kRndisHeadCopy> head{};
  const size_t first = std::min(bytes.size(), head.size());
  std::memcpy(head.data(), bytes.data(), first);
  const uint32_t first_type = Load32(std::span<const uint8_t>(head.data(), first), 0);
  if (first_type != static_cast<uint32_t>(wire::RndisMessageType::kPacket)) {
    if (index_ != 0) {
      arena_used_ = arena_before;
      return fail(Stat::kNvspUnexpected);
    }
    // Control messages are small: a private copy of the whole message (Windows guests may put
    // them in a section, spec 10.2 N-p).
    std::vector<uint8_t> copy;
    std::span<const uint8_t> msg_bytes = bytes;
    if (!in_arena) {
      copy.assign(bytes.begin(), bytes.end());
      msg_bytes = copy;
    }
    auto parsed = wire::ParseRndisMessage(msg_bytes, wire::Direction::kGuestToHost);
    arena_used_ = arena_before;
    if (!parsed) {
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: RNDIS control: {}", cfg.id,
                             parsed.error().message);
      // P13: SET_EX and types a device never receives get their own counter.
      const bool unsupported =
          first_type == static_cast<uint32_t>(wire::RndisMessageType::kSetEx) ||
          (first_type & wire::kRndisCompletionBit) != 0;
      return fail(unsupported ? Stat::kRndisUnsupported : Stat::kRndisMalformed);
    }
    finish(HandleRndisControl(*parsed));
    return;
  }

  // Data: one or more PACKET_MSGs back to back (Linux batches up to max_packets_per_message,
  // each padded to the alignment it was granted).
  if (!session_->rndis_ready.load(std::memory_order_acquire)) {
    arena_used_ = arena_before;
    return fail(Stat::kTxNotReady);  // P5
  }
  const uint32_t staged_before = staged_count_;
  size_t pos = 0;
  uint32_t count = 0;
  bool ok = true;
  while (pos < bytes.size()) {
    const size_t remaining = bytes.size() - pos;
    if (++count > max_messages || remaining < wire::kRndisHeaderSize) {
      stats().Add(Stat::kTxBadRndis);
      ok = false;
      break;
    }
    const uint8_t* src = bytes.data() + pos;
    const size_t copy = std::min(remaining, head.size());
    // Spec 9.1 G1: the header is parsed from a private copy (the arena is private already; the
    // copy keeps one parsing path for both).
    std::memcpy(head.data(), src, copy);
    auto p = wire::ParseRndisPacketHead(std::span<const uint8_t>(head.data(), copy), remaining,
                                        wire::Direction::kGuestToHost);
    if (!p) {
      stats().Add(Stat::kTxBadRndis);  // P11
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: queue {}: {}", cfg.id, index_,
                             p.error().message);
      ok = false;
      break;
    }
    // The frame, located from the validated header in the source bytes (not in the copy).
    if (!StageDataMessage(*p, src)) {
      ok = false;
      break;
    }
    pos += p->fixed.header.msg_len;
  }
  if (!ok) {
    staged_count_ = staged_before;
    arena_used_ = arena_before;
    finish(wire::NvspStatus::kFail);
    return;
  }
  finish(wire::NvspStatus::kSuccess);
  if (staged_count_ + max_messages > net::kMaxBatch) FlushTx();
}

bool NicQueue::StageDataMessage(const wire::RndisPacket& packet, const uint8_t* msg_begin) {
  const uint32_t len = packet.fixed.data_len;
  const uint8_t* frame = msg_begin + wire::kRndisHeaderSize + packet.fixed.data_offset;
  if (len < net::kEthHeaderSize) {
    stats().Add(Stat::kTxBadRndis);
    return false;
  }
  if (packet.ppis.lso && !wire::CheckTxLsoInfo(*packet.ppis.lso, len)) {  // P17
    stats().Add(Stat::kTxBadOffload);
    return false;
  }
  if (packet.ppis.checksum && !wire::CheckTxChecksumInfo(*packet.ppis.checksum, len)) {
    stats().Add(Stat::kTxBadOffload);
    return false;
  }
  if (len > session_->max_frame()) {
    stats().Add(Stat::kTxTooBig);
    return false;
  }
  if (staged_count_ == net::kMaxBatch) {
    stats().Add(Stat::kTxBadRndis);  // cannot happen: HandleRndisPacket made room first
    return false;
  }
  if (!packet.ppis.vlan) {
    staged_[staged_count_++] = StagedFrame{frame, len};
    return true;
  }
  // 802.1Q PPI (spec 6.6): the guest left the tag out of the frame; put it back in a private
  // copy: destination + source MAC, TPID 0x8100, TCI, then the rest of the frame.
  const wire::VlanInfo vlan = wire::UnpackVlanInfo(*packet.ppis.vlan);
  const uint16_t tci = static_cast<uint16_t>((uint32_t{vlan.priority} << 13) |
                                             (vlan.dei ? 1u << 12 : 0u) | vlan.vlan_id);
  const size_t need = RoundUp8(size_t{len} + 4);
  if (arena_size_ - arena_used_ < need) {
    stats().Add(Stat::kTxTooBig);  // cannot happen with the arena sizing; never overflow
    return false;
  }
  uint8_t* dst = arena_.get() + arena_used_;
  arena_used_ += need;
  std::memcpy(dst, frame, 12);
  dst[12] = 0x81;
  dst[13] = 0x00;
  dst[14] = static_cast<uint8_t>(tci >> 8);
  dst[15] = static_cast<uint8_t>(tci);
  std::memcpy(dst + 16, frame + 12, len - 12);
  staged_[staged_count_++] = StagedFrame{dst, len + 4};
  stats().Add(Stat::kTxVlanTagged);
  return true;
}

void NicQueue::FlushTx() {
  if (staged_count_ > 0 && backend_q_ != nullptr) {
    net::FrameBatch batch;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < staged_count_; ++i) {
      batch.Add(std::span<const uint8_t>(staged_[i].data, staged_[i].length));
      bytes += staged_[i].length;
    }
    const uint32_t sent = backend_q_->Send(batch);
    uint64_t sent_bytes = bytes;
    if (sent < staged_count_) {
      // Back-pressure: what the backend did not take is dropped (the guest's sections are
      // released by the completions anyway; nothing waits).
      stats().Add(Stat::kTxBackendBusy, staged_count_ - sent);
      sent_bytes = 0;
      for (uint32_t i = 0; i < sent; ++i) sent_bytes += staged_[i].length;
    }
    stats().Add(Stat::kTxPackets, sent);
    stats().Add(Stat::kTxBytes, sent_bytes);
  } else if (staged_count_ > 0) {
    stats().Add(Stat::kTxBackendBusy, staged_count_);
  }
  staged_count_ = 0;
  arena_used_ = 0;
}

// ---------------------------------------------------------------------------------------------
// RNDIS control (primary channel)
// ---------------------------------------------------------------------------------------------

wire::NvspStatus NicQueue::HandleRndisControl(const wire::RndisMessage& msg) {
  const RecvBuffer* recv = session_->recv();
  if (recv == nullptr || session_->recv_revoked.load(std::memory_order_acquire)) {
    // P5: replies travel through the receive buffer; without it there is no way to answer.
    stats().Add(Stat::kRndisBeforeInit);
    return wire::NvspStatus::kFail;
  }
  const NicConfig& cfg = session_->config();
  std::vector<uint8_t> reply;
  switch (wire::TypeOf(msg)) {
    case wire::RndisMessageType::kInitialize: {
      const auto& req = std::get<wire::RndisInitializeRequest>(msg);
      wire::RndisInitializeComplete c;
      c.request_id = req.request_id;
      if (ctl_.rndis == RndisState::kInitialized) {
        stats().Add(Stat::kRndisBadState);  // P12
        c.status = wire::RndisStatus::kFailure;
      } else {
        c.status = wire::RndisStatus::kSuccess;
        c.max_packets_per_message = cfg.max_packets_per_message;
        c.packet_alignment_factor = cfg.packet_alignment_factor;
        ctl_.rndis = RndisState::kInitialized;
        // The guest learns the initial link state by query (spec 6.12); indications report
        // changes from here on.
        ctl_.link_epoch = session_->link().epoch.load(std::memory_order_acquire);
        ctl_.link_indicated_up = session_->link().up.load(std::memory_order_acquire);
        session_->rndis_state.store(static_cast<uint8_t>(ctl_.rndis), std::memory_order_relaxed);
        session_->rndis_ready.store(true, std::memory_order_release);
        PublishRx();
      }
      reply.resize(sizeof(c));
      (void)wire::EncodeRndis(reply, c);
      break;
    }
    case wire::RndisMessageType::kQuery: {
      const auto& q = std::get<wire::RndisQueryMessage>(msg);
      std::array<uint8_t, kMaxOidAnswerSize> info{};
      OidAnswer answer{wire::RndisStatus::kAdapterNotReady, 0};
      if (ctl_.rndis != RndisState::kInitialized) {
        stats().Add(Stat::kRndisBadState);  // P12
      } else {
        answer = AnswerQuery(q.fixed.oid, q.info, BuildNicInfo(), info);
        if (answer.status == wire::RndisStatus::kNotSupported) stats().Add(Stat::kOidUnsupported);
      }
      reply.resize(wire::RndisQueryComplete::kWireSize + answer.length);
      (void)wire::EncodeRndisQueryComplete(
          reply, q.fixed.request_id, answer.status,
          std::span<const uint8_t>(info.data(), answer.length));
      break;
    }
    case wire::RndisMessageType::kSet: {
      const auto& s = std::get<wire::RndisSetMessage>(msg);
      wire::RndisSetComplete c;
      c.request_id = s.fixed.request_id;
      if (ctl_.rndis != RndisState::kInitialized) {
        stats().Add(Stat::kRndisBadState);
        c.status = wire::RndisStatus::kAdapterNotReady;
      } else {
        c.status = HandleOidSet(s.fixed.oid, s.info);
      }
      reply.resize(sizeof(c));
      (void)wire::EncodeRndis(reply, c);
      break;
    }
    case wire::RndisMessageType::kSetEx: {
      const auto& s = std::get<wire::RndisSetExMessage>(msg);
      stats().Add(Stat::kRndisUnsupported);  // P13
      reply.resize(wire::RndisSetExComplete::kWireSize);
      (void)wire::EncodeRndisSetExComplete(reply, s.fixed.request_id,
                                           wire::RndisStatus::kNotSupported, {});
      break;
    }
    case wire::RndisMessageType::kReset: {
      wire::RndisResetComplete c;
      c.status = wire::RndisStatus::kSuccess;
      reply.resize(sizeof(c));
      (void)wire::EncodeRndis(reply, c);
      break;
    }
    case wire::RndisMessageType::kKeepalive: {
      wire::RndisKeepaliveComplete c;
      c.request_id = std::get<wire::RndisKeepaliveRequest>(msg).request_id;
      c.status = wire::RndisStatus::kSuccess;
      reply.resize(sizeof(c));
      (void)wire::EncodeRndis(reply, c);
      break;
    }
    case wire::RndisMessageType::kKeepaliveComplete:
      return wire::NvspStatus::kSuccess;  // the host never sends keepalives; nothing to do
    case wire::RndisMessageType::kHalt:
      // No reply (spec 6.1). Reception stops until a new INITIALIZE.
      ctl_.rndis = RndisState::kHalted;
      ctl_.filter = 0;
      session_->rndis_state.store(static_cast<uint8_t>(ctl_.rndis), std::memory_order_relaxed);
      session_->rndis_ready.store(false, std::memory_order_release);
      PublishRx();
      return wire::NvspStatus::kSuccess;
    default:
      stats().Add(Stat::kRndisUnsupported);
      return wire::NvspStatus::kFail;
  }
  QueueControlMessage(std::move(reply));
  return wire::NvspStatus::kSuccess;
}

wire::RndisStatus NicQueue::HandleOidSet(wire::NdisOid oid, std::span<const uint8_t> info) {
  using wire::NdisOid;
  using wire::RndisStatus;
  switch (oid) {
    case NdisOid::kGenCurrentPacketFilter: {
      if (info.size() < 4) {
        stats().Add(Stat::kOidBadLength);
        return RndisStatus::kInvalidLength;
      }
      // 0 is "stop Rx" (Linux before an MTU change or interface down; spec 2c item 2):
      // nothing more is indicated, in-flight packets still complete normally.
      ctl_.filter = wire::EffectivePacketFilter(Load32(info, 0));
      PublishRx();
      return RndisStatus::kSuccess;
    }
    case NdisOid::kTcpOffloadParameters: {
      auto params = wire::ParseNdisOffloadParams(info);
      if (!params) {
        stats().Add(Stat::kRndisMalformed);
        return RndisStatus::kInvalidData;
      }
      // Nothing is offloaded (every capability was reported zero): a request to enable an
      // offload is refused, disabling or "no change" is accepted (spec 6.8).
      auto enables_csum = [](uint8_t v) { return v >= wire::kOffloadParamCsumTxEnabledRxDisabled; };
      const bool enables = enables_csum(params->tcp_ip_v4_csum) ||
                           enables_csum(params->udp_ip_v4_csum) ||
                           enables_csum(params->tcp_ip_v6_csum) ||
                           enables_csum(params->udp_ip_v6_csum) ||
                           enables_csum(params->ip_v4_csum) ||
                           params->lso_v1 == wire::kOffloadParamLsoEnabled ||
                           params->lso_v2_ipv4 == wire::kOffloadParamLsoEnabled ||
                           params->lso_v2_ipv6 == wire::kOffloadParamLsoEnabled ||
                           params->rsc_ip_v4 == wire::kOffloadParamRscEnabled ||
                           params->rsc_ip_v6 == wire::kOffloadParamRscEnabled;
      if (enables) {
        stats().Add(Stat::kOidUnsupported);
        return RndisStatus::kNotSupported;
      }
      ctl_.offload = *params;
      return RndisStatus::kSuccess;
    }
    case NdisOid::kGenReceiveScaleParameters:
      return SetRssParameters(info);
    case NdisOid::kGenRndisConfigParameter: {
      auto param = wire::ParseRndisConfigParameter(info);
      if (!param) {
        stats().Add(Stat::kRndisMalformed);
        return RndisStatus::kInvalidData;
      }
      if (wire::RndisConfigNameEquals(param->name, "NetworkAddress")) {  // spec 6.11
        auto mac = wire::ParseNetworkAddressValue(param->value);
        if (!mac) {
          stats().Add(Stat::kRndisMalformed);
          return RndisStatus::kInvalidData;
        }
        net::MacAddress m;
        m.bytes = *mac;
        if (m.IsMulticast() || m.IsZero()) {
          stats().Add(Stat::kRndisMalformed);
          return RndisStatus::kInvalidData;
        }
        ctl_.mac = m;
        PublishRx();
      }
      // Other keywords (Windows guests set several) are accepted and ignored.
      return RndisStatus::kSuccess;
    }
    case NdisOid::k802_3MulticastList:
      if (info.size() % 6 != 0) {
        stats().Add(Stat::kOidBadLength);
        return RndisStatus::kInvalidLength;
      }
      return RndisStatus::kSuccess;  // the filter admits every group (see PacketFilterAccepts)
    case NdisOid::kGenCurrentLookahead:
    case NdisOid::kGenNetworkLayerAddresses:
    case NdisOid::kGenTransportHeaderOffset:
      return RndisStatus::kSuccess;  // informational for a virtual NIC
    default:
      stats().Add(Stat::kOidUnsupported);
      return RndisStatus::kNotSupported;
  }
}

wire::RndisStatus NicQueue::SetRssParameters(std::span<const uint8_t> info) {
  auto params = wire::ParseRssParameters(info);
  if (!params) {
    stats().Add(Stat::kRssBadParams);
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent, "{}: RSS parameters: {}",
                           session_->config().id, params.error().message);
    return wire::RndisStatus::kInvalidData;
  }
  if (params->disabled()) {
    ctl_.rss_enabled = false;
    PublishRx();
    return wire::RndisStatus::kSuccess;
  }
  const uint16_t flag = params->fixed.flag;
  uint32_t hashinfo = ctl_.rss_hashinfo;
  if ((flag & wire::kNdisRssParamFlagHashInfoUnchanged) == 0) hashinfo = params->fixed.hashinfo;
  const uint32_t function = hashinfo & wire::kNdisHashFunctionMask;
  if (function != 0 && function != wire::kNdisHashFunctionToeplitz) {
    stats().Add(Stat::kRssBadParams);
    return wire::RndisStatus::kInvalidData;
  }
  const uint32_t channels = session_->channels_allocated.load(std::memory_order_acquire);
  std::vector<uint32_t> table;
  if (params->table_entries > 0) {
    table.assign(params->table.begin(), params->table.begin() + params->table_entries);
    for (uint32_t q : table) {
      if (q >= channels) {  // a queue the NIC does not have (OpenVMM PR #960/#3183)
        stats().Add(Stat::kRssBadQueue);
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kComponent,
                               "{}: RSS table names queue {} of {}", session_->config().id, q,
                               channels);
        return wire::RndisStatus::kInvalidData;
      }
    }
  } else if (!ctl_.rss_table.empty()) {
    table = ctl_.rss_table;  // ITABLE_UNCHANGED
  } else {
    table.resize(wire::kRssIndirectionTableMaxEntries);
    wire::FillDefaultIndirectionTable(table, channels);
  }
  wire::ToeplitzKey key = ctl_.rss_key;
  if (params->key_size > 0) {
    // Toeplitz needs 40 bytes; a shorter key is zero-padded (its windows past the end are 0).
    key.fill(0);
    std::copy_n(params->key.begin(), params->key_size, key.begin());
  }
  ctl_.rss_enabled = true;
  ctl_.rss_hashinfo = hashinfo;
  ctl_.rss_key = key;
  ctl_.rss_table = std::move(table);
  PublishRx();
  return wire::RndisStatus::kSuccess;
}

void NicQueue::PublishRx() {
  auto rx = std::make_shared<RxConfig>();
  rx->filter = ctl_.rndis == RndisState::kInitialized ? ctl_.filter : 0;
  rx->mac = ctl_.mac;
  if (ctl_.rss_enabled) {
    // Built here, on the control path (36 KiB of tables), never per packet.
    auto rss = std::make_shared<RssConfig>(
        RssConfig{ctl_.rss_hashinfo, wire::ToeplitzHasher(ctl_.rss_key), ctl_.rss_table});
    rx->rss = std::move(rss);
  }
  session_->rss_enabled.store(ctl_.rss_enabled, std::memory_order_relaxed);
  session_->PublishRxConfig(std::move(rx));
}

NicInfo NicQueue::BuildNicInfo() const {
  const NicConfig& cfg = session_->config();
  NicCounters& c = session_->counters();
  NicInfo info;
  info.permanent_mac = cfg.mac;
  info.current_mac = ctl_.mac;
  info.max_frame_size = session_->max_frame();
  info.link_speed_100bps = cfg.link_speed_100bps;
  info.link_up = session_->link().up.load(std::memory_order_acquire);
  // vRSS needs sub-channels, i.e. NVSP >= 5 (spec 5.7 step 3.8).
  info.receive_queues = ctl_.version >= wire::kNvspVersion5 ? session_->channel_limit() : 1;
  info.ndis_version = ctl_.ndis_version;
  info.friendly_name = cfg.friendly_name;
  info.frames_sent = c.Total(Stat::kTxPackets);
  info.frames_received = c.Total(Stat::kRxPackets);
  info.receive_discards = c.Total(Stat::kRxNoBuffer) + c.Total(Stat::kRxRingFull);
  info.max_packets_per_message = cfg.max_packets_per_message;
  info.packet_filter = ctl_.filter;
  return info;
}

void NicQueue::QueueControlMessage(std::vector<uint8_t> msg) {
  if (ctl_.out.size() >= kMaxControlQueue) {
    // P18: a guest that never returns receive sub-allocations does not make the host queue
    // without bound.
    stats().Add(Stat::kControlDropped);
    return;
  }
  ctl_.out.push_back(std::move(msg));
}

// ---------------------------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------------------------

size_t NicQueue::MessageSize() const {
  const uint32_t v =
      index_ == 0 ? ctl_.version : session_->nvsp_version.load(std::memory_order_acquire);
  // 28 bytes below 6.1, 40 from 6.1 (Windows/OpenVMM; Linux accepts both, spec 10.2 N-a).
  return wire::NvspHostMessageSize(v);
}

template <typename T>
void NicQueue::Complete(uint64_t trans_id, const T& msg) {
  std::array<uint8_t, wire::kNvspLinuxMessageSize> buf{};
  auto n = wire::EncodeNvsp(buf, msg, MessageSize());
  if (!n) return;  // cannot happen: every completion fits 40 bytes
  CompleteRaw(trans_id, std::span<const uint8_t>(buf.data(), *n));
}

void NicQueue::CompleteEmpty(uint64_t trans_id) { CompleteRaw(trans_id, {}); }

void NicQueue::CompleteRaw(uint64_t trans_id, std::span<const uint8_t> payload) {
  if (has_pending_completion_) return;  // reading stops when one is pending; never reached
  ring::WriteResult r = channel_.outbound().WriteCompletion(wc_, payload, trans_id);
  if (r.ok()) return;
  if (r.status == ring::WriteStatus::kFull) {
    has_pending_completion_ = true;
    pending_trans_id_ = trans_id;
    pending_len_ = static_cast<uint32_t>(payload.size());
    std::copy(payload.begin(), payload.end(), pending_payload_.begin());
    blocked_total_ = std::max(blocked_total_, r.total);
    stats().Add(Stat::kTxCompletionsDeferred);
    return;
  }
  FailCorrupt(fmt::format("host->guest ring: {}", ring::RingErrorName(r.error)));
}

bool NicQueue::WritePendingCompletion() {
  ring::WriteResult r = channel_.outbound().WriteCompletion(
      wc_, std::span<const uint8_t>(pending_payload_.data(), pending_len_), pending_trans_id_);
  if (r.ok()) {
    has_pending_completion_ = false;
    return true;
  }
  if (r.status == ring::WriteStatus::kFull) {
    blocked_total_ = std::max(blocked_total_, r.total);
    return false;
  }
  FailCorrupt(fmt::format("host->guest ring: {}", ring::RingErrorName(r.error)));
  return false;
}

void NicQueue::FailRequest(uint32_t raw_type, uint64_t trans_id, bool want_completion) {
  if (!want_completion) return;
  using wire::NvspMessageType;
  switch (static_cast<NvspMessageType>(raw_type)) {
    case NvspMessageType::kInit: {
      wire::NvspInitComplete m;
      m.status = wire::NvspStatus::kNone;
      m.negotiated_protocol_ver = wire::kNvspVersionInvalid;
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kSendReceiveBuffer: {
      wire::NvspSendReceiveBufferComplete m;
      m.status = wire::NvspStatus::kFail;
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kSendSendBuffer: {
      wire::NvspSendSendBufferComplete m;
      m.status = wire::NvspStatus::kFail;
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kSendRndisPacket: {
      wire::NvspSendRndisPacketComplete m;
      m.status = wire::NvspStatus::kFail;
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kSubchannel: {
      wire::NvspSubchannelComplete m;
      m.status = wire::NvspStatus::kFail;
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kOidQueryEx: {
      wire::NvspOidQueryExComplete m;
      m.status = static_cast<uint32_t>(wire::RndisStatus::kNotSupported);
      Complete(trans_id, m);
      return;
    }
    case NvspMessageType::kPdApi: {
      wire::NvspPdApiComplete m;
      m.status = static_cast<uint32_t>(wire::RndisStatus::kNotSupported);
      Complete(trans_id, m);
      return;
    }
    default:
      // A guest waiting for a completion of any other kind gets an empty one rather than none.
      CompleteEmpty(trans_id);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Host -> guest
// ---------------------------------------------------------------------------------------------

bool NicQueue::ControlPhase() {
  // Link changes (spec 6.12), once RNDIS is up: every transition is reported, a quick
  // down+up as both edges.
  if (ctl_.rndis == RndisState::kInitialized) {
    LinkState& link = session_->link();
    const uint64_t epoch = link.epoch.load(std::memory_order_acquire);
    if (epoch != ctl_.link_epoch) {
      const bool up = link.up.load(std::memory_order_acquire);
      auto indicate = [&](bool connected) {
        std::vector<uint8_t> msg(wire::RndisIndicateStatus::kWireSize);
        (void)wire::EncodeRndisIndicateStatus(msg, connected ? wire::RndisStatus::kMediaConnect
                                                             : wire::RndisStatus::kMediaDisconnect,
                                              {});
        stats().Add(Stat::kLinkIndications);
        QueueControlMessage(std::move(msg));
      };
      if (up != ctl_.link_indicated_up) {
        indicate(up);
      } else if (epoch - ctl_.link_epoch >= 2) {
        indicate(!up);
        indicate(up);
      }
      ctl_.link_epoch = epoch;
      ctl_.link_indicated_up = up;
    }
  }
  // The send indirection table (spec 5.5, 7.8), once every sub-channel is open.
  const bool table_now = session_->send_table_pending.exchange(false, std::memory_order_acq_rel);
  if (ctl_.version >= wire::kNvspVersion5 && (table_deferred_ || table_now)) {
    table_deferred_ = false;
    const uint32_t open = 1 + session_->subchannels_open.load(std::memory_order_acquire);
    std::array<uint32_t, wire::kNvspSendIndirectionTableSize> table{};
    wire::FillDefaultIndirectionTable(table, open);
    std::array<uint8_t, wire::kNvspSendIndirectionTableMessageSize> msg{};
    if (wire::EncodeNvspSendIndirectionTable(msg, table)) {
      // Unsolicited, no completion requested: trans_id 0 (spec 4.7).
      ring::WriteResult r = channel_.outbound().WriteInband(wc_, msg, 0, false);
      if (r.ok()) {
        stats().Add(Stat::kSendTablesSent);
      } else if (r.status == ring::WriteStatus::kFull) {
        table_deferred_ = true;  // the guest's "room freed" signal brings us back
        blocked_total_ = std::max(blocked_total_, r.total);
        return false;
      } else {
        FailCorrupt("host->guest ring corrupt");
      }
    }
  }
  return false;
}

void NicQueue::RefreshRxConfig() {
  const uint64_t gen = session_->rx_generation();
  if (gen == rx_config_gen_) return;
  rx_config_ = session_->rx_config();
  rx_config_gen_ = gen;
}

uint32_t NicQueue::TakeSection() {
  if (stash_count_ > 0) return stash_[--stash_count_];
  const RecvBuffer* recv = session_->recv();
  return recv != nullptr ? recv->pool->Pop() : SectionPool::kNone;
}

void NicQueue::ReturnSection(uint32_t section) {
  if (stash_count_ < stash_.size()) {
    stash_[stash_count_++] = section;
    return;
  }
  session_->recv()->pool->Push(section);
}

bool NicQueue::RefillStash() {
  const RecvBuffer* recv = session_->recv();
  if (stash_target_ == 0) {
    // Each queue keeps a small private stock so a batch needs no shared-pool traffic, but never
    // so much that the queues together starve each other: a quarter of the pool at most.
    const uint32_t per_queue = recv->layout.num_sub_allocs / (4 * session_->channel_limit());
    stash_target_ = std::clamp<uint32_t>(per_queue, 1, kRxBatch);
  }
  while (stash_count_ < stash_target_) {
    const uint32_t s = recv->pool->Pop();
    if (s == SectionPool::kNone) break;
    stash_[stash_count_++] = s;
  }
  return stash_count_ > 0;
}

uint32_t NicQueue::DrainToScratch(Stat reason) {
  if (backend_q_ == nullptr) return 0;
  net::RxBatch batch;
  for (uint32_t i = 0; i < kRxBatch; ++i) {
    batch.Add(std::span<uint8_t>(scratch_.get(), session_->max_frame()));
  }
  const uint32_t n = backend_q_->Poll(batch);
  if (n != 0) stats().Add(reason, n);
  return n;
}

void NicQueue::FreeChain(uint32_t first, uint32_t last) {
  const RecvBuffer* recv = session_->recv();
  if (recv != nullptr && first != SectionPool::kNone) recv->pool->PushChain(first, last);
}

bool NicQueue::SendControlMessages() {
  const RecvBuffer* recv = session_->recv();
  while (!ctl_.out.empty()) {
    const std::vector<uint8_t>& msg = ctl_.out.front();
    if (msg.size() > recv->layout.sub_alloc_size) {
      stats().Add(Stat::kControlDropped);
      ctl_.out.pop_front();
      continue;
    }
    const uint32_t s = TakeSection();
    if (s == SectionPool::kNone) return false;  // a guest completion frees one and wakes us
    std::memcpy(recv->section(s), msg.data(), msg.size());
    recv->pool->SetNext(s, SectionPool::kNone);
    const uint64_t trans = inflight_.Begin({s, s, 1});
    if (trans == InflightTable::kFull) {
      ReturnSection(s);
      return false;
    }
    const wire::TransferPageRange range{static_cast<uint32_t>(msg.size()),
                                        s * recv->layout.sub_alloc_size};
    std::array<uint8_t, kXferHeaderMax> header{};
    std::array<uint8_t, wire::kNvspLinuxMessageSize> payload{};
    wire::NvspSendRndisPacket nvsp;
    nvsp.channel_type = wire::kNvspRndisChannelControl;  // responses and indications
    auto plen = wire::EncodeNvsp(payload, nvsp, MessageSize());
    auto hlen = wire::EncodeTransferPageHeader(header, recv->id, std::span(&range, 1),
                                               static_cast<uint32_t>(*plen), trans, true);
    ring::WriteResult r =
        hlen ? channel_.outbound().Write(wc_, std::span<const uint8_t>(header.data(), *hlen),
                                         std::span<const uint8_t>(payload.data(), *plen))
             : ring::WriteResult{ring::WriteStatus::kInvalid};
    if (!r.ok()) {
      (void)inflight_.Complete(trans);
      ReturnSection(s);
      if (r.status == ring::WriteStatus::kFull) {
        // Control messages are never dropped for a full ring: wait for the guest's signal.
        blocked_total_ = std::max(blocked_total_, r.total);
      } else {
        FailCorrupt("host->guest ring corrupt");
      }
      return false;
    }
    ctl_.out.pop_front();
  }
  return false;
}

void NicQueue::AddRange(uint32_t section, uint32_t msg_len, uint32_t frame_len) {
  if (range_count_ == kMaxRanges) SendXfer(wire::kNvspRndisChannelData);
  const RecvBuffer* recv = session_->recv();
  ranges_[range_count_++] =
      wire::TransferPageRange{msg_len, section * recv->layout.sub_alloc_size};
  recv->pool->SetNext(section, SectionPool::kNone);
  if (chain_first_ == SectionPool::kNone) {
    chain_first_ = section;
  } else {
    recv->pool->SetNext(chain_last_, section);
  }
  chain_last_ = section;
  xfer_bytes_ += frame_len;
}

void NicQueue::SendXfer(uint32_t channel_type) {
  if (range_count_ == 0) return;
  const uint32_t n = range_count_;
  const uint32_t first = chain_first_;
  const uint32_t last = chain_last_;
  const uint64_t bytes = xfer_bytes_;
  range_count_ = 0;
  chain_first_ = chain_last_ = SectionPool::kNone;
  xfer_bytes_ = 0;
  if (rx_blocked_) {
    // A completion waits for room: indications give way (dropped, counted).
    FreeChain(first, last);
    stats().Add(Stat::kRxRingFull, n);
    return;
  }
  const uint64_t trans = inflight_.Begin({first, last, n});
  if (trans == InflightTable::kFull) {
    FreeChain(first, last);
    stats().Add(Stat::kRxNoBuffer, n);
    return;
  }
  const RecvBuffer* recv = session_->recv();
  std::array<uint8_t, kXferHeaderMax> header{};
  std::array<uint8_t, wire::kNvspLinuxMessageSize> payload{};
  wire::NvspSendRndisPacket nvsp;
  nvsp.channel_type = channel_type;
  auto plen = wire::EncodeNvsp(payload, nvsp, MessageSize());
  auto hlen = wire::EncodeTransferPageHeader(header, recv->id,
                                             std::span<const wire::TransferPageRange>(
                                                 ranges_.data(), n),
                                             static_cast<uint32_t>(*plen), trans, true);
  ring::WriteResult r =
      hlen ? channel_.outbound().Write(wc_, std::span<const uint8_t>(header.data(), *hlen),
                                       std::span<const uint8_t>(payload.data(), *plen))
           : ring::WriteResult{ring::WriteStatus::kInvalid};
  if (!r.ok()) {
    (void)inflight_.Complete(trans);
    FreeChain(first, last);
    if (r.status == ring::WriteStatus::kFull) {
      stats().Add(Stat::kRxRingFull, n);  // never block the backend: drop and count
    } else {
      FailCorrupt("host->guest ring corrupt");
    }
    return;
  }
  stats().Add(Stat::kRxPackets, n);
  stats().Add(Stat::kRxBytes, bytes);
}

void NicQueue::ProcessFrame(uint32_t section, uint32_t frame_len, uint64_t* wake) {
  const RecvBuffer* recv = session_->recv();
  uint8_t* base = recv->section(section);
  const uint8_t* frame = base + kRxHeaderReserve;
  // The frame sits in guest memory: classify a private copy of its head (spec 9.1 G1).
  std::array<uint8_t, kClassifyBytes> head{};
  const size_t n = std::min<size_t>(frame_len, head.size());
  std::memcpy(head.data(), frame, n);
  if (frame_len < net::kEthHeaderSize ||
      !PacketFilterAccepts(rx_config_->filter, rx_config_->mac, head.data())) {
    stats().Add(Stat::kRxFiltered);
    ReturnSection(section);
    return;
  }
  uint32_t target = 0;  // RSS off: everything on the primary channel (spec 8.5)
  wire::RndisPpiSet ppis;
  if (rx_config_->rss != nullptr) {
    const RssConfig::Result r = rx_config_->rss->Classify(std::span<const uint8_t>(head.data(), n));
    target = r.queue;
    ppis.hash_value = r.hash;
  }
  auto encoded = wire::EncodeRndisPacketHeader(std::span<uint8_t>(base, kRxHeaderReserve), ppis,
                                               frame_len, kRxHeaderReserve);
  if (!encoded) {  // cannot happen: the reserve holds the header and every PPI
    stats().Add(Stat::kRxNoBuffer);
    ReturnSection(section);
    return;
  }
  const uint32_t msg_len = kRxHeaderReserve + frame_len;
  if (target != index_ && target < session_->channel_limit() &&
      session_->mailbox(target).accepting()) {
    if (session_->mailbox(target).Push(SteeredFrame{section, msg_len, frame_len})) {
      stats().Add(Stat::kRxSteered);
      *wake |= uint64_t{1} << target;
    } else {
      stats().Add(Stat::kRxSteerFull);
      ReturnSection(section);
    }
    return;
  }
  AddRange(section, msg_len, frame_len);
}

bool NicQueue::RxPhase() {
  bool more = false;
  RefreshRxConfig();
  const RecvBuffer* recv = session_->recv();
  const bool have_buffer =
      recv != nullptr && !session_->recv_revoked.load(std::memory_order_acquire) &&
      !session_->closed.load(std::memory_order_acquire);
  // Completions first: while one waits for room, indications are dropped.
  rx_blocked_ = has_pending_completion_;
  if (index_ == 0 && have_buffer && !rx_blocked_) SendControlMessages();
  const bool ready = have_buffer && session_->rndis_ready.load(std::memory_order_acquire);

  range_count_ = 0;
  xfer_bytes_ = 0;
  chain_first_ = chain_last_ = SectionPool::kNone;
  uint64_t wake = 0;

  // Frames other queues steered here (their RNDIS headers are written already).
  Mailbox& mailbox = session_->mailbox(index_);
  SteeredFrame item;
  uint32_t popped = 0;
  while (popped < kInboundQuota && mailbox.Pop(&item)) {
    ++popped;
    if (!ready) {
      if (recv != nullptr) recv->pool->Push(item.section);
      stats().Add(Stat::kRxNotReady);
      continue;
    }
    AddRange(item.section, item.msg_len, item.frame_len);
  }
  if (popped == kInboundQuota) more = true;

  if (backend_q_ != nullptr) {
    for (uint32_t poll = 0; poll < kRxPollsPerRound; ++poll) {
      uint32_t n = 0;
      if (!ready) {
        n = DrainToScratch(Stat::kRxNotReady);
      } else if (rx_config_->filter == 0) {
        n = DrainToScratch(Stat::kRxFiltered);  // "stop Rx": nothing is indicated
      } else if (!RefillStash()) {
        n = DrainToScratch(Stat::kRxNoBuffer);  // never block the backend: drop and count
      } else {
        net::RxBatch batch;
        const uint32_t max_frame = session_->max_frame();
        // Frames land directly in receive-buffer sub-allocations, after the header reserve.
        for (uint32_t i = 0; i < stash_count_; ++i) {
          const uint32_t s = stash_[stash_count_ - 1 - i];
          batch.Add(std::span<uint8_t>(recv->section(s) + kRxHeaderReserve, max_frame), s);
        }
        n = backend_q_->Poll(batch);
        // Slots [0, n) were filled: they are the top n stash entries.
        stash_count_ -= n;
        for (uint32_t i = 0; i < n; ++i) ProcessFrame(batch[i].id, batch[i].length, &wake);
        if (n < batch.size()) break;
        if (poll + 1 == kRxPollsPerRound) more = true;
        continue;
      }
      if (n < kRxBatch) break;
      if (poll + 1 == kRxPollsPerRound) more = true;
    }
  }
  SendXfer(wire::kNvspRndisChannelData);
  // One wake-up per target queue per round.
  for (uint32_t q = 0; wake != 0; ++q, wake >>= 1) {
    if ((wake & 1) != 0) session_->mailbox(q).WakeIfArmed();
  }
  return more;
}

}  // namespace uvmbus::netvsp
