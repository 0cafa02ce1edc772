// File: devices/heartbeat/host_heartbeat.cc — see host_heartbeat.h.
#include "devices/heartbeat/host_heartbeat.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "wire/device_guids.h"
#include "wire/ic_messages.h"
#include "wire/ring_format.h"

namespace uvmbus::devices {
namespace {

constexpr std::string_view kLog = "heartbeat";

// Transaction id of the NEGOTIATE request; heartbeats use 2, 3, ... (spec 4.7: host-chosen,
// opaque to the guest, never 0).
constexpr uint64_t kNegotiateTransId = 1;

// Bound on the work of one wake-up (style 1.9 #11): packets per read batch and batches per
// wake-up. A guest that keeps the ring busy is served again on the next loop turn.
constexpr int kReadQuota = 64;
constexpr int kReadRounds = 4;

// Offset of seq_num inside a heartbeat packet (after pipe + IC headers).
constexpr size_t kSeqOffset = wire::kIcHeaderSize + offsetof(wire::HeartbeatMsgData, seq_num);

constexpr uint8_t kResponseFlags = wire::kIcFlagTransaction | wire::kIcFlagResponse;

std::string VersionText(uint32_t word) { return fmt::format("{}.{}", word >> 16, word & 0xFFFF); }

bool Contains(std::span<const uint32_t> list, uint32_t v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

std::string_view HeartbeatStateName(HeartbeatState state) {
  switch (state) {
    case HeartbeatState::kClosed:
      return "closed";
    case HeartbeatState::kNegotiating:
      return "negotiating";
    case HeartbeatState::kRunning:
      return "running";
    case HeartbeatState::kFailed:
      return "failed";
  }
  return "unknown";
}

nlohmann::json HeartbeatStatsToJson(const HeartbeatStats& s) {
  nlohmann::json j;
  j["state"] = std::string(HeartbeatStateName(s.state));
  j["framework_version"] = s.framework_version != 0 ? VersionText(s.framework_version) : "";
  j["heartbeat_version"] = s.heartbeat_version != 0 ? VersionText(s.heartbeat_version) : "";
  j["opens"] = s.opens;
  j["negotiations"] = s.negotiations;
  j["negotiate_failures"] = s.negotiate_failures;
  j["heartbeats_sent"] = s.heartbeats_sent;
  j["heartbeats_answered"] = s.heartbeats_answered;
  j["heartbeats_missed"] = s.heartbeats_missed;
  j["late_responses"] = s.late_responses;
  j["bad_responses"] = s.bad_responses;
  j["ring_full"] = s.ring_full;
  j["ring_errors"] = s.ring_errors;
  if (s.has_answer) {
    j["last_sequence"] = s.last_sequence;
  } else {
    j["last_sequence"] = nullptr;
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// HeartbeatCounters
// ---------------------------------------------------------------------------------------------

HeartbeatStats HeartbeatCounters::Snapshot() const {
  HeartbeatStats s;
  s.state = state_.load(std::memory_order_relaxed);
  s.framework_version = framework_version_.load(std::memory_order_relaxed);
  s.heartbeat_version = heartbeat_version_.load(std::memory_order_relaxed);
  s.opens = opens_.Get();
  s.negotiations = negotiations_.Get();
  s.negotiate_failures = negotiate_failures_.Get();
  s.heartbeats_sent = heartbeats_sent_.Get();
  s.heartbeats_answered = heartbeats_answered_.Get();
  s.heartbeats_missed = heartbeats_missed_.Get();
  s.late_responses = late_responses_.Get();
  s.bad_responses = bad_responses_.Get();
  s.ring_full = ring_full_.Get();
  s.ring_errors = ring_errors_.Get();
  s.has_answer = has_answer_.load(std::memory_order_relaxed);
  s.last_sequence = last_sequence_.load(std::memory_order_relaxed);
  return s;
}

bool HeartbeatCounters::WaitFor(const std::function<bool(const HeartbeatStats&)>& predicate,
                                std::chrono::milliseconds timeout) const {
  return notifier_.WaitFor([&] { return predicate(Snapshot()); }, timeout);
}

// ---------------------------------------------------------------------------------------------
// HeartbeatSession: one open channel, served by one worker thread.
// ---------------------------------------------------------------------------------------------

class HeartbeatSession {
 public:
  static Expected<std::unique_ptr<HeartbeatSession>> Start(host::HostChannel& channel,
                                                           const HeartbeatConfig& config,
                                                           HeartbeatCounters& counters);
  ~HeartbeatSession() { Stop(); }
  HeartbeatSession(const HeartbeatSession&) = delete;
  HeartbeatSession& operator=(const HeartbeatSession&) = delete;

  host::HostChannel& channel() const { return channel_; }

  // Asks the worker to stop and joins it. Idempotent.
  void Stop();

 private:
  // What the worker waits for.
  struct Outstanding {
    uint64_t trans_id = 0;
    uint64_t seq = 0;
    uint32_t ticks = 0;  // timer ticks seen while waiting
  };

  HeartbeatSession(host::HostChannel& channel, HeartbeatCounters& counters, UniqueFd stop_fd,
                   UniqueFd timer_fd)
      : channel_(channel),
        counters_(counters),
        stop_fd_(std::move(stop_fd)),
        timer_fd_(std::move(timer_fd)) {}

  void Run();
  // Drains the inbound ring with the guest's signals masked (spec 3.6). Returns true if the
  // quota ran out with data left (the loop must come back without waiting).
  bool DrainInbound();
  void HandlePacket(const ring::IncomingPacket& packet);
  void HandleNegotiateResponse(uint64_t trans_id, const wire::IcPacket& ic);
  void HandleHeartbeatResponse(uint64_t trans_id, const wire::IcPacket& ic);
  void OnTick();
  void SendNegotiate();
  void SendHeartbeat();
  // Writes one in-band packet with completion requested and signals the guest only when the
  // commit says so (spec 3.4). False if it could not be written (full: counted; corrupt: failed).
  bool SendRequest(std::span<const uint8_t> payload, uint64_t trans_id);
  // The ring is unusable or the negotiation failed: stop serving the channel.
  void Fail();
  void SetState(HeartbeatState state) {
    state_ = state;
    counters_.state_.store(state, std::memory_order_relaxed);
  }
  void Bad(std::string_view why, uint64_t trans_id) {
    counters_.bad_responses_.Add();
    counters_.Notify();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "relid {}: bad response (trans_id {}): {}",
                           channel_.relid(), trans_id, why);
  }

  host::HostChannel& channel_;
  HeartbeatCounters& counters_;
  UniqueFd stop_fd_;
  UniqueFd timer_fd_;
  std::thread thread_;

  // Worker-thread state.
  HeartbeatState state_ = HeartbeatState::kNegotiating;
  uint32_t framework_version_ = 0;
  uint32_t heartbeat_version_ = 0;
  std::vector<uint8_t> request_;  // the HEARTBEAT request, built once; seq patched in place
  uint64_t next_trans_id_ = kNegotiateTransId + 1;
  uint64_t first_heartbeat_trans_id_ = kNegotiateTransId + 1;
  uint64_t last_abandoned_trans_id_ = 0;  // 0: none abandoned yet
  uint64_t next_seq_ = 0;
  uint32_t response_timeout_intervals_ = 1;
  bool negotiate_sent_ = false;
  std::optional<Outstanding> outstanding_;
};

Expected<std::unique_ptr<HeartbeatSession>> HeartbeatSession::Start(host::HostChannel& channel,
                                                                    const HeartbeatConfig& config,
                                                                    HeartbeatCounters& counters) {
  UniqueFd stop_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!stop_fd) return unexpected(Error::FromErrno("heartbeat: eventfd", errno));
  UniqueFd timer_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_fd) return unexpected(Error::FromErrno("heartbeat: timerfd_create", errno));
  const int64_t ns = config.interval.count();
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_interval.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer_fd.get(), 0, &spec, nullptr) != 0) {
    return unexpected(Error::FromErrno("heartbeat: timerfd_settime", errno));
  }
  std::unique_ptr<HeartbeatSession> session(
      new HeartbeatSession(channel, counters, std::move(stop_fd), std::move(timer_fd)));
  session->next_seq_ = config.first_sequence;
  session->response_timeout_intervals_ = std::max<uint32_t>(1, config.response_timeout_intervals);
  session->SetState(HeartbeatState::kNegotiating);
  session->counters_.Notify();
  try {
    session->thread_ = std::thread([s = session.get()] { s->Run(); });
  } catch (const std::system_error& e) {  // the only way std::thread reports failure
    return MakeError(ErrorCode::kIo, "heartbeat: cannot start the worker: {}", e.what());
  }
  return session;
}

void HeartbeatSession::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  // An eventfd write of 1 cannot fail short of overflow; the worker only reads readiness.
  [[maybe_unused]] ssize_t n = ::write(stop_fd_.get(), &one, sizeof(one));
  thread_.join();
}

void HeartbeatSession::Run() {
  SendNegotiate();
  bool more = false;
  for (;;) {
    const bool serving = state_ != HeartbeatState::kFailed;
    pollfd fds[3] = {
        {stop_fd_.get(), POLLIN, 0},
        {serving ? channel_.doorbell_fd() : -1, POLLIN, 0},
        {serving ? timer_fd_.get() : -1, POLLIN, 0},
    };
    // Data left over from a bounded drain: look again without sleeping.
    const int timeout = (more && serving) ? 0 : -1;
    const int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Cannot happen with valid fds; stop serving the channel (the loop then only waits for
      // the stop request).
      UVMBUS_LOG_ERROR(kLog, "relid {}: poll failed: {}", channel_.relid(), std::strerror(errno));
      Fail();
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) return;
    if (state_ == HeartbeatState::kFailed) continue;
    if ((fds[1].revents & POLLIN) != 0 || more) {
      // Consume first, then read: a signal arriving after this point re-arms the fd.
      channel_.ConsumeDoorbell();
      more = DrainInbound();
    }
    if (state_ != HeartbeatState::kFailed && (fds[2].revents & POLLIN) != 0) {
      uint64_t expirations = 0;
      if (::read(timer_fd_.get(), &expirations, sizeof(expirations)) > 0) OnTick();
    }
  }
}

bool HeartbeatSession::DrainInbound() {
  ring::IncomingRing& in = channel_.inbound();
  // Mask the guest's signals while we are reading anyway (spec 3.6, OpenVMM keeps the mask set
  // while polling); unmasking is followed by a re-check because the guest does not signal a
  // write into a ring that is masked.
  in.BeginReadMask();
  for (int round = 0; round < kReadRounds; ++round) {
    ring::ReadCursor cursor = in.BeginRead();
    for (int i = 0; i < kReadQuota; ++i) {
      ring::ReadResult r = in.Read(cursor);
      if (r.status == ring::ReadStatus::kEmpty) break;
      if (r.status == ring::ReadStatus::kCorrupt) {
        counters_.ring_errors_.Add();
        UVMBUS_LOG_ERROR(kLog, "relid {}: guest->host ring corrupt ({}): channel stopped",
                         channel_.relid(), ring::RingErrorName(r.error));
        Fail();
        return false;
      }
      HandlePacket(r.packet);
      if (state_ == HeartbeatState::kFailed) break;
    }
    // Reader-side signalling (spec 3.5): only if our reads freed the space the guest waits for.
    if (in.CommitRead(cursor)) channel_.SignalGuest();
    if (state_ == HeartbeatState::kFailed) return false;
    auto raced = in.EndReadMask();
    if (!raced) {
      counters_.ring_errors_.Add();
      UVMBUS_LOG_ERROR(kLog, "relid {}: guest->host ring corrupt ({}): channel stopped",
                       channel_.relid(), ring::RingErrorName(raced.error()));
      Fail();
      return false;
    }
    if (*raced == 0) return false;
    in.BeginReadMask();
  }
  // Quota used up with data left: unmask (the loop re-reads without waiting for a signal).
  auto left = in.EndReadMask();
  return left.has_value() && *left != 0;
}

void HeartbeatSession::HandlePacket(const ring::IncomingPacket& packet) {
  const uint64_t trans_id = packet.desc.trans_id;
  // Linux answers with an in-band packet (vmbus_sendpacket(..., VM_PKT_DATA_INBAND, 0)); a
  // completion packet carrying the same IC answer is accepted too. Transfer-page and GPA-direct
  // packets have no meaning on this channel.
  if (packet.type() != wire::PacketType::kDataInband && packet.type() != wire::PacketType::kComp) {
    Bad(fmt::format("VMBus packet type {}", packet.desc.type), trans_id);
    return;
  }
  // The payload includes the in-band padding (spec 4.3); the IC header carries the real size.
  auto ic = wire::ParseIcPacket(packet.payload);
  if (!ic) {
    Bad(ic.error().message, trans_id);
    return;
  }
  if ((ic->header.icflags & kResponseFlags) != kResponseFlags) {
    Bad(fmt::format("icflags 0x{:x} lack TRANSACTION|RESPONSE", ic->header.icflags), trans_id);
    return;
  }
  switch (state_) {
    case HeartbeatState::kNegotiating:
      HandleNegotiateResponse(trans_id, *ic);
      return;
    case HeartbeatState::kRunning:
      HandleHeartbeatResponse(trans_id, *ic);
      return;
    case HeartbeatState::kClosed:
    case HeartbeatState::kFailed:
      Bad("packet after the channel stopped", trans_id);
      return;
  }
}

void HeartbeatSession::HandleNegotiateResponse(uint64_t trans_id, const wire::IcPacket& ic) {
  if (ic.header.icmsgtype != wire::kIcMsgTypeNegotiate) {
    // OpenVMM drops other messages while negotiating (answers to requests of an earlier open).
    Bad(fmt::format("IC message type {} while negotiating", ic.header.icmsgtype), trans_id);
    return;
  }
  if (trans_id != kNegotiateTransId) {
    Bad("NEGOTIATE answer with a transaction id we never used", trans_id);
    return;
  }
  auto versions = wire::ParseIcNegotiateResponse(ic);
  if (!versions) {
    if (versions.error().code != ErrorCode::kUnsupported) {
      Bad(versions.error().message, trans_id);
      return;
    }
    // The guest's way of saying "no common version" (counts 0/0): nothing more to talk about.
    counters_.negotiate_failures_.Add();
    UVMBUS_LOG_WARN(kLog, "relid {}: {}", channel_.relid(), versions.error().message);
    Fail();
    return;
  }
  // A guest must pick from what we offered; anything else would make us speak a version we do
  // not implement.
  if (!Contains(wire::kHostIcFrameworkVersions, versions->framework_version) ||
      !Contains(wire::kHostHeartbeatVersions, versions->message_version)) {
    Bad(fmt::format("guest chose versions {}/{} that were not offered",
                    VersionText(versions->framework_version),
                    VersionText(versions->message_version)),
        trans_id);
    counters_.negotiate_failures_.Add();
    Fail();
    return;
  }
  framework_version_ = versions->framework_version;
  heartbeat_version_ = versions->message_version;
  // Built once per negotiation; each heartbeat only patches its sequence number (no allocation
  // per request).
  request_ = wire::EncodeHeartbeatRequest(framework_version_, heartbeat_version_, 0);
  counters_.framework_version_.store(framework_version_, std::memory_order_relaxed);
  counters_.heartbeat_version_.store(heartbeat_version_, std::memory_order_relaxed);
  counters_.negotiations_.Add();
  SetState(HeartbeatState::kRunning);
  UVMBUS_LOG_INFO(kLog, "relid {}: negotiated framework {}, heartbeat {}", channel_.relid(),
                  VersionText(framework_version_), VersionText(heartbeat_version_));
  counters_.Notify();
  SendHeartbeat();
}

void HeartbeatSession::HandleHeartbeatResponse(uint64_t trans_id, const wire::IcPacket& ic) {
  if (ic.header.icmsgtype != wire::kIcMsgTypeHeartbeat) {
    Bad(fmt::format("IC message type {} on a heartbeat answer", ic.header.icmsgtype), trans_id);
    return;
  }
  if (ic.header.status != wire::kIcStatusOk) {
    Bad(fmt::format("status 0x{:08x}", ic.header.status), trans_id);
    return;
  }
  auto hb = wire::ParseHeartbeat(ic);
  if (!hb) {
    Bad(hb.error().message, trans_id);
    return;
  }
  if (outstanding_ && trans_id == outstanding_->trans_id) {
    const uint64_t expected = outstanding_->seq + 1;  // u64 wrap, as the guest's
    const uint64_t seq = outstanding_->seq;
    // The request is answered either way: a guest answers once.
    outstanding_.reset();
    if (hb->seq_num != expected) {
      Bad(fmt::format("seq_num {} answers {} (expected {})", hb->seq_num, seq, expected), trans_id);
      return;
    }
    counters_.last_sequence_.store(seq, std::memory_order_relaxed);
    counters_.has_answer_.store(true, std::memory_order_relaxed);
    counters_.heartbeats_answered_.Add();
    counters_.Notify();
    return;
  }
  // An answer to a request we gave up on (a slow guest) is late, not hostile.
  if (last_abandoned_trans_id_ != 0 && trans_id >= first_heartbeat_trans_id_ &&
      trans_id <= last_abandoned_trans_id_) {
    counters_.late_responses_.Add();
    counters_.Notify();
    return;
  }
  Bad("answer to no outstanding request", trans_id);
}

void HeartbeatSession::OnTick() {
  if (state_ == HeartbeatState::kNegotiating) {
    // Only if the NEGOTIATE itself could not be written (ring full); otherwise the guest answers
    // when it is ready (Linux answers as soon as its driver is bound).
    if (!negotiate_sent_) SendNegotiate();
    return;
  }
  if (state_ != HeartbeatState::kRunning) return;
  if (outstanding_) {
    if (++outstanding_->ticks < response_timeout_intervals_) return;
    last_abandoned_trans_id_ = outstanding_->trans_id;
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "relid {}: heartbeat {} unanswered",
                           channel_.relid(), outstanding_->seq);
    outstanding_.reset();
    counters_.heartbeats_missed_.Add();
    counters_.Notify();
  }
  SendHeartbeat();
}

void HeartbeatSession::SendNegotiate() {
  auto request =
      wire::EncodeIcNegotiateRequest(wire::kHostIcFrameworkVersions, wire::kHostHeartbeatVersions);
  if (!request) {  // constant, non-empty lists: cannot happen
    UVMBUS_LOG_ERROR(kLog, "relid {}: {}", channel_.relid(), request.error().message);
    Fail();
    return;
  }
  negotiate_sent_ = SendRequest(*request, kNegotiateTransId);
}

void HeartbeatSession::SendHeartbeat() {
  std::memcpy(request_.data() + kSeqOffset, &next_seq_, sizeof(next_seq_));
  const uint64_t trans_id = next_trans_id_;
  if (!SendRequest(request_, trans_id)) return;  // full: the next tick retries this sequence
  outstanding_ = Outstanding{trans_id, next_seq_, 0};
  ++next_trans_id_;
  ++next_seq_;
  counters_.heartbeats_sent_.Add();
  counters_.Notify();
}

bool HeartbeatSession::SendRequest(std::span<const uint8_t> payload, uint64_t trans_id) {
  ring::OutgoingRing& out = channel_.outbound();
  ring::WriteCursor cursor = out.BeginWrite();
  // Completion requested, as Hyper-V sends IC requests; Linux answers with an in-band packet
  // carrying the same trans_id.
  const ring::WriteResult r = out.WriteInband(cursor, payload, trans_id, true);
  switch (r.status) {
    case ring::WriteStatus::kOk:
      break;
    case ring::WriteStatus::kFull:
      // The guest is not reading: skip (flow control, not an error). A heartbeat that cannot be
      // sent is simply not sent; no pending_send_sz wait is worth a thread here.
      counters_.ring_full_.Add();
      counters_.Notify();
      return false;
    case ring::WriteStatus::kInvalid:
    case ring::WriteStatus::kCorrupt:
      counters_.ring_errors_.Add();
      UVMBUS_LOG_ERROR(kLog, "relid {}: host->guest ring unusable ({}): channel stopped",
                       channel_.relid(), ring::RingErrorName(r.error));
      Fail();
      return false;
  }
  // Signal only on the empty -> non-empty transition while the guest is not masked (spec 3.4).
  if (out.CommitWrite(cursor)) channel_.SignalGuest();
  return true;
}

void HeartbeatSession::Fail() {
  outstanding_.reset();
  SetState(HeartbeatState::kFailed);
  counters_.Notify();
}

// ---------------------------------------------------------------------------------------------
// HeartbeatDevice
// ---------------------------------------------------------------------------------------------

HeartbeatDevice::HeartbeatDevice(HeartbeatConfig config)
    : config_(std::move(config)), counters_(std::make_shared<HeartbeatCounters>()) {
  if (config_.interval.count() <= 0) config_.interval = std::chrono::seconds(1);
  if (config_.response_timeout_intervals == 0) config_.response_timeout_intervals = 1;
  instance_id_ = config_.instance_id.value_or(RandomGuid());
}

HeartbeatDevice::~HeartbeatDevice() { session_.reset(); }

host::OfferParams HeartbeatDevice::Offer() const {
  host::OfferParams p;
  p.class_id = wire::kHeartbeatClassGuid;
  p.instance_id = instance_id_;
  p.name = config_.name;
  // The guest answers in place, so its packets are as large as our requests (at most 76 bytes).
  p.max_inbound_packet_size = wire::kVmbusDefaultMaxPacketSize;
  return p;
}

Status HeartbeatDevice::Open(host::HostChannel& channel) {
  if (channel.sub_channel_index() != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "heartbeat: no sub-channels (index {})",
                     channel.sub_channel_index());
  }
  if (session_) {
    return MakeError(ErrorCode::kProtocol, "heartbeat: relid {} already open", channel.relid());
  }
  auto session = HeartbeatSession::Start(channel, config_, *counters_);
  if (!session) return unexpected(std::move(session.error()));
  session_ = std::move(*session);
  counters_->opens_.Add();
  counters_->Notify();
  return Ok();
}

host::CloseStatus HeartbeatDevice::Close(host::HostChannel& channel) {
  if (session_ && &session_->channel() == &channel) {
    session_.reset();  // stops and joins the worker: it no longer touches the rings
    counters_->state_.store(HeartbeatState::kClosed, std::memory_order_relaxed);
    counters_->Notify();
  }
  return host::CloseStatus::kClosed;
}

std::unique_ptr<host::Device> MakeHeartbeatDevice(HeartbeatConfig config) {
  return std::make_unique<HeartbeatDevice>(std::move(config));
}

}  // namespace uvmbus::devices
