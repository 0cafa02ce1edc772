// File: devices/heartbeat/guest_heartbeat.cc — see guest_heartbeat.h.
#include "devices/heartbeat/guest_heartbeat.h"

#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "common/log.h"
#include "wire/ic_messages.h"
#include "wire/ring_format.h"

namespace uvmbus::devices {
namespace {

constexpr std::string_view kLog = "hv_utils";

std::string VersionText(uint32_t word) { return fmt::format("{}.{}", word >> 16, word & 0xFFFF); }

}  // namespace

std::string HeartbeatEvent::ToString() const {
  switch (kind) {
    case Kind::kNegotiated:
      return fmt::format("heartbeat negotiated framework {} heartbeat {}",
                         VersionText(framework_version), VersionText(heartbeat_version));
    case Kind::kHeartbeat:
      return fmt::format("heartbeat seq={}", sequence);
  }
  return "heartbeat";
}

struct HeartbeatDriver::DeviceContext {
  uint32_t relid = 0;
  // Set once the ring was found corrupt: the callback does nothing any more. Only the channel's
  // callback (one vCPU at a time) touches it.
  bool broken = false;
};

HeartbeatDriver::HeartbeatDriver(HeartbeatObserver observer) : observer_(std::move(observer)) {}

HeartbeatDriver::~HeartbeatDriver() = default;

Status HeartbeatDriver::Probe(guest::VmbusDevice& device) {
  auto ctx = std::make_shared<DeviceContext>();
  guest::Channel& channel = device.channel();
  ctx->relid = channel.relid();
  guest::OpenParams params;
  params.send_ring_bytes = kUtilRingBytes;
  params.recv_ring_bytes = kUtilRingBytes;
  params.max_packet_size = kHeartbeatMaxPacketSize;
  // Linux util drivers keep the default HV_CALL_BATCHED mode: the ISR masks the ring and the
  // tasklet calls us until unmasking finds it empty (spec 7.4/7.5).
  params.mode = guest::CallbackMode::kBatched;
  // The callback owns a reference: the context lives as long as the channel may call it.
  params.callback = [this, ctx](guest::Channel& ch) { OnChannel(*ctx, ch); };
  if (auto opened = channel.Open(params); !opened) return opened;
  {
    std::lock_guard lock(mu_);
    devices_[&device] = ctx;
  }
  device.set_driver_data(ctx.get());
  probes_.Add();
  notifier_.Notify();
  UVMBUS_LOG_INFO(kLog, "heartbeat: relid {} opened", ctx->relid);
  return Ok();
}

void HeartbeatDriver::Remove(guest::VmbusDevice& device) {
  guest::Channel& channel = device.channel();
  if (channel.state() == guest::ChannelState::kOpen) {
    // Stops the callbacks (every vCPU past them) before it returns; errors are logged by the
    // channel and the bus closes whatever is left.
    if (auto closed = channel.Close(); !closed) {
      UVMBUS_LOG_WARN(kLog, "heartbeat: relid {}: close: {}", channel.relid(), closed.error());
    }
  }
  device.set_driver_data(nullptr);
  {
    std::lock_guard lock(mu_);
    devices_.erase(&device);
  }
  notifier_.Notify();
}

HeartbeatDriverStats HeartbeatDriver::Stats() const {
  HeartbeatDriverStats s;
  {
    std::lock_guard lock(mu_);
    s.devices = devices_.size();
  }
  s.probes = probes_.Get();
  s.negotiations = negotiations_.Get();
  s.negotiate_refusals = negotiate_refusals_.Get();
  s.heartbeats = heartbeats_.Get();
  s.unknown_requests = unknown_requests_.Get();
  s.bad_packets = bad_packets_.Get();
  s.send_failures = send_failures_.Get();
  s.ring_errors = ring_errors_.Get();
  s.has_sequence = has_sequence_.load(std::memory_order_relaxed);
  s.last_sequence = last_sequence_.load(std::memory_order_relaxed);
  return s;
}

bool HeartbeatDriver::WaitFor(const std::function<bool(const HeartbeatDriverStats&)>& predicate,
                              std::chrono::milliseconds timeout) const {
  return notifier_.WaitFor([&] { return predicate(Stats()); }, timeout);
}

void HeartbeatDriver::OnChannel(DeviceContext& ctx, guest::Channel& channel) {
  if (ctx.broken) return;
  ring::IncomingRing& in = channel.inbound();
  ring::OutgoingRing& out = channel.outbound();
  ring::ReadCursor read_cursor = in.BeginRead();
  ring::WriteCursor write_cursor = out.BeginWrite();
  bool ok = true;
  for (int n = 0; n < kHeartbeatCallbackQuota; ++n) {
    // Read() copies the packet out of shared memory and validates the copy (spec 9.1 G1); the
    // host can no longer change what we parse.
    ring::ReadResult r = in.Read(read_cursor);
    if (r.status == ring::ReadStatus::kEmpty) break;
    if (r.status == ring::ReadStatus::kCorrupt) {
      UVMBUS_LOG_ERROR(kLog, "heartbeat: relid {}: host->guest ring corrupt ({})", ctx.relid,
                       ring::RingErrorName(r.error));
      ok = false;
      break;
    }
    if (!HandlePacket(ctx, channel, r.packet, write_cursor)) {
      ok = false;
      break;
    }
  }
  // One signal decision per batch and direction (spec 3.4, 3.5); both go to the same
  // connection, so one signal serves both.
  bool signal = in.CommitRead(read_cursor).needs_signal;
  signal = out.CommitWrite(write_cursor).needs_signal || signal;
  if (signal) channel.SignalHost();
  if (!ok) {
    ring_errors_.Add();
    ctx.broken = true;
    // The batched tasklet would see the unconsumable bytes after unmasking and reschedule itself
    // forever. In direct mode it calls us once per interrupt and never unmasks; the ring stays
    // masked, so the host stops interrupting. The channel is closed when the device is removed.
    channel.SetCallbackMode(guest::CallbackMode::kDirect);
  }
  notifier_.Notify();
}

bool HeartbeatDriver::HandlePacket(DeviceContext& ctx, guest::Channel& channel,
                                   const ring::IncomingPacket& p, ring::WriteCursor& out_cursor) {
  // IC requests come as in-band packets (Hyper-V and uvmbus's host request a completion; Linux
  // answers with an in-band packet instead, see Answer()).
  if (p.type() != wire::PacketType::kDataInband) {
    Bad(ctx, fmt::format("VMBus packet type {}", p.desc.type));
    return true;
  }
  const uint64_t trans_id = p.desc.trans_id;
  // Linux echoes the whole payload, in-band padding included (its recvlen); so do we.
  const std::span<const uint8_t> request = p.payload;
  auto ic = wire::ParseIcPacket(request);
  if (!ic) {
    Bad(ctx, ic.error().message);
    return true;
  }
  bool written = false;
  switch (ic->header.icmsgtype) {
    case wire::kIcMsgTypeNegotiate: {
      auto reply = wire::PrepareIcNegotiateResponse(request, wire::kLinuxIcFrameworkVersions,
                                                    wire::kLinuxHeartbeatVersions);
      if (!reply) {
        Bad(ctx, reply.error().message);
        return true;
      }
      if (!Answer(channel, out_cursor, reply->packet, trans_id, &written)) return false;
      if (!written) return true;
      if (reply->outcome == wire::IcNegotiateOutcome::kAgreed) {
        negotiations_.Add();
        HeartbeatEvent e;
        e.kind = HeartbeatEvent::Kind::kNegotiated;
        e.relid = ctx.relid;
        e.framework_version = reply->framework_version;
        e.heartbeat_version = reply->service_version;
        Emit(e);
      } else {
        negotiate_refusals_.Add();
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog,
                               "heartbeat: relid {}: no common version with the host", ctx.relid);
      }
      return true;
    }
    case wire::kIcMsgTypeHeartbeat: {
      // seq_num must lie inside icmsgsize (Linux checks only the packet length).
      auto hb = wire::ParseHeartbeat(*ic);
      if (!hb) {
        Bad(ctx, hb.error().message);
        return true;
      }
      auto reply = wire::PrepareHeartbeatResponse(request);
      if (!reply) {
        Bad(ctx, reply.error().message);
        return true;
      }
      if (!Answer(channel, out_cursor, *reply, trans_id, &written)) return false;
      if (!written) return true;
      heartbeats_.Add();
      last_sequence_.store(hb->seq_num, std::memory_order_relaxed);
      has_sequence_.store(true, std::memory_order_relaxed);
      HeartbeatEvent e;
      e.kind = HeartbeatEvent::Kind::kHeartbeat;
      e.relid = ctx.relid;
      e.sequence = hb->seq_num;
      Emit(e);
      return true;
    }
    default: {
      // Linux answers any other type with HV_E_FAIL (and logs it): the host is not left waiting.
      auto reply = wire::PrepareHeartbeatResponse(request);
      if (!reply) {
        Bad(ctx, reply.error().message);
        return true;
      }
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog,
                             "heartbeat: relid {}: unknown IC message type {}", ctx.relid,
                             ic->header.icmsgtype);
      if (!Answer(channel, out_cursor, *reply, trans_id, &written)) return false;
      if (written) unknown_requests_.Add();
      return true;
    }
  }
}

bool HeartbeatDriver::Answer(guest::Channel& channel, ring::WriteCursor& cursor,
                             std::span<const uint8_t> bytes, uint64_t trans_id, bool* written) {
  *written = false;
  // Linux: vmbus_sendpacket(channel, buf, recvlen, requestid, VM_PKT_DATA_INBAND, 0) - an
  // in-band packet, no completion requested, the request's trans_id.
  const ring::WriteResult r = channel.outbound().WriteInband(cursor, bytes, trans_id, false);
  switch (r.status) {
    case ring::WriteStatus::kOk:
      *written = true;
      return true;
    case ring::WriteStatus::kFull:
    case ring::WriteStatus::kInvalid:
      // Linux loses the answer too (-EAGAIN); the host's next request gets a fresh chance.
      send_failures_.Add();
      return true;
    case ring::WriteStatus::kCorrupt:
      UVMBUS_LOG_ERROR(kLog, "heartbeat: relid {}: guest->host ring corrupt ({})", channel.relid(),
                       ring::RingErrorName(r.error));
      return false;
  }
  return true;
}

void HeartbeatDriver::Bad(const DeviceContext& ctx, std::string_view why) {
  bad_packets_.Add();
  UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "heartbeat: relid {}: dropped packet: {}",
                         ctx.relid, why);
}

}  // namespace uvmbus::devices
