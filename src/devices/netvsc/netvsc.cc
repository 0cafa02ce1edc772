// File: devices/netvsc/netvsc.cc
//
// The NVSP layer of NetvscDevice (Linux drivers/net/hyperv/netvsc.c): channel open, version
// negotiation, buffers, the transmit path, NAPI receive and completions. See netvsc_device.h.
#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "devices/netvsc/netvsc_device.h"
#include "wire/ring_format.h"

namespace uvmbus::netvsc {
namespace {

constexpr std::string_view kLog = "netvsc";
constexpr uint32_t kNoSection = SectionBitmap::kNone;
// A bounce slot starts with room for the RNDIS header and PPIs (one range, never crossing a page:
// slots are page-aligned); the frame follows in a second range (spec 10.1 V16: the header and its
// PPIs stay in one range).
constexpr uint32_t kBounceHeaderReserve = 256;
// Packets of any kind one poll handles at most before yielding (style 1.9 #11): completions and
// in-band messages count no NAPI work, so the budget alone would not bound them.
constexpr uint32_t kMaxPacketsPerPoll = 1024;
// Receive completions queued beyond which the poll flushes first (Linux NAPI_POLL_WEIGHT).
constexpr uint32_t kReceiveCompletionFlush = 64;
constexpr uint32_t kNvspSuccess = static_cast<uint32_t>(wire::NvspStatus::kSuccess);
constexpr uint32_t kNvspFail = static_cast<uint32_t>(wire::NvspStatus::kFail);

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
void StoreU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, sizeof(v)); }

// Every NVSP message netvsc sends is a full struct nvsp_message: 40 bytes, zero-filled (spec 5.1).
using NvspBytes = std::array<uint8_t, wire::kNvspLinuxMessageSize>;
template <typename T>
NvspBytes EncodeNvsp40(const T& msg) {
  NvspBytes out{};
  [[maybe_unused]] auto n = wire::EncodeNvsp(std::span<uint8_t>(out), msg, out.size());
  return out;
}

// Writes one GPA-direct packet (spec 4.5) carrying `payload`.
ring::WriteResult WriteGpaDirect(ring::OutgoingRing& out, ring::WriteCursor& cursor,
                                 std::span<const wire::GpaDirectRangeRef> ranges,
                                 std::span<const uint8_t> payload, uint64_t trans_id) {
  std::array<uint8_t, 256> header{};
  auto n = wire::EncodeGpaDirectHeader(header, ranges, static_cast<uint32_t>(payload.size()),
                                       trans_id);
  if (!n) {
    ring::WriteResult r;
    r.status = ring::WriteStatus::kInvalid;
    r.error = ring::RingError::kBadHeader;
    return r;
  }
  return out.Write(cursor, std::span<const uint8_t>(header.data(), *n), payload);
}

uint32_t FreePercent(const ring::OutgoingRing& out) {
  auto free = out.BytesFree();
  const uint32_t size = out.view().data_size();
  if (!free || size == 0) return 0;
  return static_cast<uint32_t>(uint64_t{*free} * 100 / size);
}

bool IsKnownCompletionType(uint32_t type) {
  switch (static_cast<wire::NvspMessageType>(type)) {
    case wire::NvspMessageType::kInitComplete:
    case wire::NvspMessageType::kSendReceiveBufferComplete:
    case wire::NvspMessageType::kSendSendBufferComplete:
    case wire::NvspMessageType::kSendRndisPacketComplete:
    case wire::NvspMessageType::kOidQueryExComplete:
    case wire::NvspMessageType::kSubchannel:
    case wire::NvspMessageType::kPdApi:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Queues and channels

Expected<std::unique_ptr<NetvscDevice::Queue>> NetvscDevice::CreateQueue(uint16_t index) {
  auto q = std::make_unique<Queue>(index);
  q->requestor = std::make_unique<Requestor>(Requestor::LinuxSize(config_.ring_bytes));
  // A slot holds the largest frame plus an 802.1Q tag the host may leave in the frame.
  const uint32_t slot = mtu_.load() + net::kEthHeaderSize + 4;
  auto ring = RxRing::Create(config_.rx_ring_depth, slot);
  if (!ring) return tl::unexpected(ring.error());
  q->rx_ring = std::move(*ring);
  q->scratch = std::make_unique<uint8_t[]>(wire::kRndisMaxControlCompletionSize);
  q->rsc_buf = std::make_unique<uint8_t[]>(slot);

  const uint32_t slots = std::max<uint32_t>(config_.tx_bounce_slots, 1);
  q->bounce_slot_pages = (kBounceHeaderReserve + config_.mtu + net::kEthHeaderSize + 4095) / 4096;
  auto run = partition_.allocator().AllocateRun(uint64_t{slots} * q->bounce_slot_pages);
  if (!run) return tl::unexpected(run.error());
  q->bounce_run = std::move(*run);
  q->bounce_pfns.resize(q->bounce_run.count());
  for (uint64_t i = 0; i < q->bounce_run.count(); ++i) q->bounce_pfns[i] = q->bounce_run.gpn() + i;
  {
    std::lock_guard lock(q->out_mu);
    for (uint32_t s = slots; s > 0; --s) q->bounce_free.push_back(static_cast<uint16_t>(s - 1));
  }
  if (recv_ready_.load(std::memory_order_acquire)) q->rcomp.resize(recv_completion_cnt_);
  return q;
}

Status NetvscDevice::OpenQueue(Queue& q, guest::Channel& channel) {
  q.channel = &channel;
  // NAPI runs where the channel's interrupts arrive: its target vCPU (spec 7.6, 7.7).
  q.napi = std::make_unique<guest::Napi>(
      &channel.softirq(), [this, &q](guest::Napi& napi, int budget) { return Poll(q, napi, budget); });
  guest::OpenParams params;
  params.send_ring_bytes = config_.ring_bytes;
  params.recv_ring_bytes = config_.ring_bytes;
  params.callback = [this, &q](guest::Channel&) { OnChannelInterrupt(q); };
  params.mode = guest::CallbackMode::kIsr;  // HV_CALL_ISR (spec 5.7, 7.4)
  params.max_packet_size = kNetvscMaxPacketSize;
  if (Status st = channel.Open(params); !st) {
    q.napi->Disable();
    return st;
  }
  {
    std::lock_guard lock(q.out_mu);
    q.open = true;
  }
  q.usable.store(true, std::memory_order_release);
  return Ok();
}

void NetvscDevice::OnChannelInterrupt(Queue& q) {
  // netvsc_channel_cb (spec 7.6): in the ISR, mask the host's interrupts for this channel and
  // hand the ring to NAPI. A broken ring stays masked and is never polled again.
  if (q.broken.load(std::memory_order_relaxed)) {
    q.channel->inbound().BeginReadMask();
    return;
  }
  if (!q.napi->scheduled()) {
    q.channel->inbound().BeginReadMask();
    q.napi->Schedule();
  }
}

// ---------------------------------------------------------------------------------------------
// NAPI poll (spec 7.6)

int NetvscDevice::Poll(Queue& q, guest::Napi& napi, int budget) {
  if (q.broken.load(std::memory_order_relaxed)) {
    napi.Complete();
    return 0;
  }
  ring::IncomingRing& in = q.channel->inbound();
  ring::ReadCursor cursor = in.BeginRead();
  int work = 0;
  uint32_t packets = 0;
  bool corrupt = false;
  bool capped = false;
  while (work < budget) {
    if (packets == kMaxPacketsPerPoll) {
      capped = true;
      break;
    }
    const ring::ReadResult r = in.Read(cursor);
    if (r.status == ring::ReadStatus::kEmpty) break;
    if (r.status == ring::ReadStatus::kCorrupt) {
      corrupt = true;
      break;
    }
    ++packets;
    switch (r.packet.type()) {
      case wire::PacketType::kComp:
        HandleCompletion(q, r.packet);
        break;
      case wire::PacketType::kDataUsingXferPages:
        work += HandleReceive(q, r.packet);
        break;
      case wire::PacketType::kDataInband:
        HandleInband(q, r.packet);
        break;
      default:
        // A GPA-direct packet from the host: netvsc never receives one (Linux logs and skips).
        stats_.rx_bad_packet_type.Add();
        break;
    }
  }
  FlushSendCompletions(q);
  // Hand the space back (reader-side signalling of spec 3.5) before answering.
  if (in.CommitRead(cursor).needs_signal) q.channel->SignalHost();
  const bool completions_sent = SendReceiveCompletions(q);
  // One wake-up per poll for whatever was delivered (none when nothing was).
  if (q.rx_delivered != 0) {
    q.rx_delivered = 0;
    q.rx_ring->WakeIfArmed();
  }

  if (corrupt) {
    // R1-R9: the host corrupted the ring. Stop this queue: keep the host's interrupts masked
    // and never poll again (the other queues go on).
    stats_.rx_ring_corrupt.Add();
    q.broken.store(true, std::memory_order_relaxed);
    UVMBUS_LOG_RATELIMITED(log::Level::kError, kLog, "queue {}: inbound ring corrupt, stopped",
                           q.index);
    napi.Complete();
    return std::min(work, budget);
  }
  if (capped || work >= budget) return budget;  // polled again without unmasking
  if (napi.Complete()) {
    // hv_end_read: unmask, then re-check; anything that raced in (or completions still owed to a
    // full ring) means polling again right away (spec 3.6, 7.6 step 3).
    auto avail = in.EndReadMask();
    if (!avail) {
      stats_.rx_ring_corrupt.Add();
      q.broken.store(true, std::memory_order_relaxed);
      in.BeginReadMask();
    } else if (*avail > 0 || !completions_sent) {
      in.BeginReadMask();
      napi.Schedule();
    }
  }
  return work;
}

void NetvscDevice::HandleCompletion(Queue& q, const ring::IncomingPacket& packet) {
  const std::span<const uint8_t> payload = packet.payload;
  const uint64_t trans_id = packet.desc.trans_id;
  if (payload.empty()) {
    // N1: only a SWITCH_DATA_PATH request completes without payload, and netvsc sends none.
    stats_.comp_empty.Add();
    return;
  }
  auto msg = wire::ParseNvspMessage(payload, wire::Direction::kHostToGuest, wire::PacketType::kComp,
                                    nvsp_version());
  if (!msg) {
    // N2/N3 (too short for its type) versus N4 (a type that never completes a guest request).
    if (payload.size() >= 4 && !IsKnownCompletionType(LoadU32(payload.data()))) {
      stats_.comp_unknown_type.Add();
    } else {
      stats_.comp_malformed.Add();
    }
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "queue {}: dropped completion: {}", q.index,
                           msg.error().message);
    return;
  }
  const wire::NvspMessageType type = wire::TypeOf(*msg);
  switch (type) {
    case wire::NvspMessageType::kSendRndisPacketComplete: {
      const auto& c = std::get<wire::NvspSendRndisPacketComplete>(*msg);
      q.pending[q.pending_count++] = {trans_id, static_cast<uint32_t>(c.status)};
      if (q.pending_count == kPendingCompletions) FlushSendCompletions(q);
      return;
    }
    case wire::NvspMessageType::kInitComplete:
    case wire::NvspMessageType::kSendReceiveBufferComplete:
    case wire::NvspMessageType::kSendSendBufferComplete:
    case wire::NvspMessageType::kSubchannel:
      HandleControlCompletion(q, trans_id, type, payload);
      return;
    default:
      // N4: a completion type netvsc never asks for (OID_QUERY_EX, PD_API).
      stats_.comp_unknown_type.Add();
      return;
  }
}

void NetvscDevice::HandleControlCompletion(Queue& q, uint64_t trans_id,
                                           wire::NvspMessageType type,
                                           std::span<const uint8_t> payload) {
  RequestCookie cookie;
  {
    std::lock_guard lock(q.out_mu);
    auto peek = q.requestor->Peek(trans_id);
    if (!peek) {  // R16 / N22
      stats_.comp_bad_trans_id.Add();
      return;
    }
    // R17: the slot must be an NVSP control request expecting exactly this reply type (kept in
    // the cookie's `bytes`). A mismatch leaves the slot for the genuine answer.
    if (peek->kind != RequestKind::kNvspControl || peek->bytes != static_cast<uint32_t>(type)) {
      stats_.comp_wrong_kind.Add();
      return;
    }
    cookie = *q.requestor->Complete(trans_id, Requestor::Bit(RequestKind::kNvspControl));
  }
  std::lock_guard lock(waiter_mu_);
  if (waiter_.kind != Waiter::Kind::kNvsp || waiter_.sequence != cookie.sequence || waiter_.done) {
    stats_.comp_unexpected.Add();  // a reply after its waiter gave up
    return;
  }
  waiter_.response.assign(payload.begin(),
                          payload.begin() + std::min<size_t>(payload.size(),
                                                             wire::kNvspLinuxMessageSize));
  waiter_.done = true;
  waiter_cv_.notify_all();
}

void NetvscDevice::FlushSendCompletions(Queue& q) {
  if (q.pending_count == 0) return;
  uint32_t control_slots = 0;
  {
    std::lock_guard lock(q.out_mu);
    for (uint32_t i = 0; i < q.pending_count; ++i) {
      const PendingSendCompletion& p = q.pending[i];
      auto c = q.requestor->Complete(p.trans_id, Requestor::Bit(RequestKind::kData) |
                                                     Requestor::Bit(RequestKind::kRndisControl));
      if (!c) {
        if (c.error() == CompleteError::kWrongKind) {
          stats_.comp_wrong_kind.Add();  // R17
        } else {
          stats_.comp_bad_trans_id.Add();  // R16 / N22
        }
        continue;
      }
      // N12: a failed send is logged and released all the same.
      if (p.status != kNvspSuccess) stats_.send_status_fail.Add();
      if (c->kind == RequestKind::kData) {
        if (c->section != kNoSection) sections_->Free(c->section);
        if (c->bounce != 0) q.bounce_free.push_back(static_cast<uint16_t>(c->bounce - 1));
        q.stats.tx_packets.Add(c->packets);
        q.stats.tx_bytes.Add(c->bytes);
        q.queue_sends.fetch_sub(1, std::memory_order_relaxed);
      } else {
        control_slots |= 1u << c->bounce;
      }
    }
    MaybeWakeLocked(q);
  }
  q.pending_count = 0;
  for (uint32_t slot = 0; control_slots != 0; ++slot, control_slots >>= 1) {
    if ((control_slots & 1) != 0) ReleaseControlBuffer(slot);
  }
}

void NetvscDevice::MaybeWakeLocked(Queue& q) {
  // netvsc_send_tx_complete: wake a stopped queue once the ring is above 20 % free or nothing of
  // the queue is outstanding. Under out_mu, so it cannot interleave with the transmit path's
  // stop decision (which is taken under the same lock).
  if (!q.tx_stopped.load(std::memory_order_relaxed) || !q.open) return;
  if (FreePercent(q.channel->outbound()) > kRingAvailPercentHiwater ||
      q.queue_sends.load(std::memory_order_relaxed) == 0) {
    q.tx_stopped.store(false, std::memory_order_release);
    stats_.wake_queue.Add();
    q.rx_ring->Wake();
  }
}

int NetvscDevice::HandleReceive(Queue& q, const ring::IncomingPacket& packet) {
  if (!recv_ready_.load(std::memory_order_acquire)) {
    // A transfer-page packet before the receive buffer exists names nothing we could read.
    stats_.xfer_malformed.Add();
    return 0;
  }
  const bool rsc = nvsp_version() >= wire::kNvspVersion61;
  auto parsed = wire::ParseNvspReceivePacket(packet.bytes, rsc);
  if (!parsed) {
    // Linux drops these without a completion (N13-N16): classify for the counters.
    auto tp = wire::ParseTransferPagePacket(packet.bytes);
    if (tp && tp->xfer_pageset_id != wire::kNetvscReceiveBufferId) {
      stats_.xfer_bad_pageset.Add();  // N15
    } else if (tp && tp->range_cnt > (rsc ? wire::kNvspRscMaxPacketsPerReceive
                                          : wire::kNvspMaxPacketsPerReceive)) {
      stats_.xfer_too_many_ranges.Add();
    } else {
      stats_.xfer_malformed.Add();  // N13, N14, N16
    }
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "queue {}: dropped receive packet: {}",
                           q.index, parsed.error().message);
    return 0;
  }
  const wire::TransferPagePacket& tp = parsed->packet;
  uint32_t status = kNvspSuccess;
  for (uint32_t i = 0; i < tp.range_cnt; ++i) {
    const wire::TransferPageRange range = tp.range(i);
    if (!wire::CheckReceiveBufferRange(range, recv_buf_.size())) {
      // N17: skip the range, fail the packet, forget any partial RSC frame.
      stats_.xfer_bad_range.Add();
      q.rsc_cnt = 0;
      q.rsc_len = 0;
      status = kNvspFail;
      continue;
    }
    const uint32_t ret = RndisReceive(q, recv_buf_.subspan(range.byte_offset, range.byte_count),
                                      i + 1 == tp.range_cnt);
    if (ret != kNvspSuccess) {
      q.rsc_cnt = 0;
      q.rsc_len = 0;
      status = kNvspFail;
    }
  }
  EnqueueReceiveCompletion(q, tp.desc.trans_id, status);
  return static_cast<int>(tp.range_cnt);  // <= 562 (checked by the parser)
}

void NetvscDevice::HandleInband(Queue& q, const ring::IncomingPacket& packet) {
  const std::span<const uint8_t> payload = packet.payload;
  if (payload.size() < wire::kNvspHeaderSize) {  // N19
    stats_.inband_malformed.Add();
    return;
  }
  const uint32_t version = nvsp_version();
  auto msg = wire::ParseNvspMessage(payload, wire::Direction::kHostToGuest,
                                    wire::PacketType::kDataInband, version);
  if (!msg) {
    switch (static_cast<wire::NvspMessageType>(LoadU32(payload.data()))) {
      case wire::NvspMessageType::kSendIndirectionTable:
        stats_.send_table_invalid.Add();  // N20
        break;
      case wire::NvspMessageType::kSendVfAssociation:
        stats_.vf_association_invalid.Add();  // N21
        break;
      default:
        stats_.inband_malformed.Add();
        break;
    }
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "queue {}: dropped in-band message: {}",
                           q.index, msg.error().message);
    return;
  }
  if (const auto* table = std::get_if<wire::NvspSendIndirectionTable>(&*msg)) {
    // netvsc_send_table. Entries name channels; one that does not exist would send frames to a
    // queue we do not have, so the whole table is refused (Linux wraps such indexes silently).
    const uint32_t channels = channel_limit_.load(std::memory_order_acquire);
    for (uint32_t entry : table->table) {
      if (entry >= channels) {
        stats_.send_table_invalid.Add();
        UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog,
                               "refused send table: entry {} >= {} channels", entry, channels);
        return;
      }
    }
    for (size_t i = 0; i < kSendTableSize; ++i) {
      tx_table_[i].store(table->table[i], std::memory_order_relaxed);
    }
    return;
  }
  if (const auto* vf = std::get_if<wire::NvspSendVfAssociation>(&*msg)) {
    // Spec 5.9: recorded; no completion (Linux never sends one, 10.2 N-l).
    vf_allocated_.store(vf->allocated != 0, std::memory_order_relaxed);
    vf_serial_.store(vf->serial, std::memory_order_relaxed);
    return;
  }
  if (std::holds_alternative<wire::NvspSwitchDataPath>(*msg)) {
    // OpenVMM reports a forced switch back to the synthetic path; we only ever use it. Answer
    // with an empty completion if asked (10.2 N-k).
    if (packet.completion_requested()) {
      std::lock_guard lock(q.out_mu);
      if (q.open) {
        ring::OutgoingRing& out = q.channel->outbound();
        ring::WriteCursor cursor = out.BeginWrite();
        if (out.WriteCompletion(cursor, {}, packet.desc.trans_id).ok() &&
            out.CommitWrite(cursor).needs_signal) {
          q.channel->SignalHost();
        }
      }
    }
    return;
  }
  stats_.inband_malformed.Add();  // PD messages: neither Linux nor we handle them
}

void NetvscDevice::EnqueueReceiveCompletion(Queue& q, uint64_t trans_id, uint32_t status) {
  // enq_receive_complete: a ring of recv_completion_cnt slots (one is kept empty).
  const uint32_t count = static_cast<uint32_t>(q.rcomp.size());
  if (count < 2) {
    stats_.recv_comp_ring_full.Add();
    return;
  }
  auto filled = [&] {
    return q.rc_next >= q.rc_first ? q.rc_next - q.rc_first : count - q.rc_first + q.rc_next;
  };
  if (filled() > kReceiveCompletionFlush) SendReceiveCompletions(q);
  if (count - filled() - 1 == 0) {
    // N18: the host's sub-allocations of this packet leak; a host must survive that.
    stats_.recv_comp_ring_full.Add();
    return;
  }
  q.rcomp[q.rc_next] = {trans_id, status};
  if (++q.rc_next == count) q.rc_next = 0;
  q.rcomp_pending.fetch_add(1, std::memory_order_relaxed);
}

bool NetvscDevice::SendReceiveCompletions(Queue& q) {
  if (q.rc_first == q.rc_next) return true;
  const uint32_t count = static_cast<uint32_t>(q.rcomp.size());
  bool all_sent = true;
  bool signal = false;
  {
    std::lock_guard lock(q.out_mu);
    if (!q.open) {
      q.rc_first = q.rc_next;  // the channel is closing: nobody will read them
      q.rcomp_pending.store(0, std::memory_order_relaxed);
      return true;
    }
    ring::OutgoingRing& out = q.channel->outbound();
    ring::WriteCursor cursor = out.BeginWrite();
    while (q.rc_first != q.rc_next) {
      const ReceiveCompletion& rc = q.rcomp[q.rc_first];
      // NVSP SEND_RNDIS_PKT_COMPLETE, exactly 8 bytes (spec 5.6, 10.2 N-o).
      std::array<uint8_t, wire::kNvspReceiveCompletionSize> msg{};
      StoreU32(msg.data(), static_cast<uint32_t>(wire::NvspMessageType::kSendRndisPacketComplete));
      StoreU32(msg.data() + 4, rc.status);
      const ring::WriteResult r = out.WriteCompletion(cursor, msg, rc.trans_id);
      if (!r.ok()) {
        if (r.status == ring::WriteStatus::kFull) stats_.rx_comp_busy.Add();
        all_sent = false;
        break;
      }
      if (++q.rc_first == count) q.rc_first = 0;
      q.rcomp_pending.fetch_sub(1, std::memory_order_relaxed);
    }
    signal = out.CommitWrite(cursor).needs_signal;
  }
  if (signal) q.channel->SignalHost();
  return all_sent;
}

// ---------------------------------------------------------------------------------------------
// Transmit (spec 5.6 "Guest -> host"; Linux netvsc_send / netvsc_send_pkt)

uint32_t NetvscDevice::SendRun(Queue& q, const net::FrameBatch& batch, uint32_t begin,
                               uint32_t end, const uint32_t* hashes) {
  const bool add_hash = queue_count() > 1;
  const uint32_t max_frame = max_frame_size();
  // Where this queue starts looking for a section: its own slice of the shared send buffer.
  const uint32_t hint =
      static_cast<uint32_t>(uint64_t{sections_->count()} * q.index / std::max(queue_count(), 1u));

  uint32_t i = begin;
  bool full = false;
  bool corrupt = false;
  bool signal = false;
  {
    std::lock_guard lock(q.out_mu);
    if (!q.open || q.tx_stopped.load(std::memory_order_relaxed)) return 0;
    ring::OutgoingRing& out = q.channel->outbound();
    ring::WriteCursor cursor = out.BeginWrite();

    // The send section being filled (Linux "multi-send data"): several RNDIS messages packed
    // back to back, each but the last padded to pkt_align (spec 5.6 "Batching into one section").
    struct Section {
      uint32_t index = kNoSection;
      uint32_t bytes = 0;        // RNDIS bytes written into the section
      uint32_t last_msg = 0;     // offset of the last message (its msg_len may grow by padding)
      uint32_t count = 0;        // frames in it
      uint32_t frame_bytes = 0;  // their frame bytes
      uint32_t first = 0;        // batch index of its first frame
    } sec;

    // Sends the filled section as one in-band SEND_RNDIS_PKT. False if the ring or the request
    // table is full: the section's frames are then not consumed.
    auto flush = [&]() -> bool {
      if (sec.count == 0) return true;
      RequestCookie cookie;
      cookie.kind = RequestKind::kData;
      cookie.packets = static_cast<uint8_t>(sec.count);
      cookie.section = sec.index;
      cookie.bytes = sec.frame_bytes;
      const uint64_t trans_id = q.requestor->Allocate(cookie);
      ring::WriteResult r;
      if (trans_id != 0) {
        wire::NvspSendRndisPacket m;
        m.channel_type = wire::kNvspRndisChannelData;
        m.send_buf_section_index = sec.index;
        m.send_buf_section_size = sec.bytes;
        r = out.WriteInband(cursor, EncodeNvsp40(m), trans_id, true);
        if (r.ok()) {
          q.queue_sends.fetch_add(1, std::memory_order_relaxed);
          sec = Section{};
          return true;
        }
        q.requestor->Cancel(trans_id);
        if (r.status == ring::WriteStatus::kCorrupt) corrupt = true;
      }
      // Not sent: the frames go back to the caller, the section back to the pool.
      full = trans_id == 0 || r.status == ring::WriteStatus::kFull;
      sections_->Free(sec.index);
      i = sec.first;
      sec = Section{};
      return false;
    };

    for (; i < end; ++i) {
      const net::FrameBatch::Frame& frame = batch[i];
      if (frame.length < net::kEthHeaderSize || frame.length > max_frame) {
        stats_.tx_too_big.Add();  // consumed and dropped (Linux: tx_too_big / tx_dropped)
        continue;
      }
      const std::span<const uint8_t> bytes(frame.data, frame.length);
      wire::RndisPpiSet ppis;
      if (add_hash) {
        // Linux adds NBL_HASH_VALUE when the skb has a hash and more than one queue is active.
        const uint32_t hash = hashes != nullptr ? hashes[i] : flow_hasher_.Hash(bytes);
        if (hash != 0) ppis.hash_value = hash;
      }
      const uint32_t header_len = wire::RndisPacketHeaderSize(ppis);
      const uint32_t msg_len = header_len + frame.length;

      // 1. Append to the section being filled if it has room (Linux try_batch).
      if (sec.count > 0 && sec.count < max_pkt_) {
        const uint32_t padded = (sec.bytes + pkt_align_ - 1) / pkt_align_ * pkt_align_;
        if (uint64_t{padded} + msg_len + pkt_align_ < send_section_size_) {
          uint8_t* base = send_buf_.data() + size_t{sec.index} * send_section_size_;
          if (padded != sec.bytes) {
            std::memset(base + sec.bytes, 0, padded - sec.bytes);
            uint8_t* prev_len = base + sec.last_msg + 4;
            StoreU32(prev_len, LoadU32(prev_len) + (padded - sec.bytes));
          }
          // Cannot fail: the span is exactly RndisPacketHeaderSize(ppis) bytes.
          (void)wire::EncodeRndisPacketHeader(std::span<uint8_t>(base + padded, header_len), ppis,
                                              frame.length);
          std::memcpy(base + padded + header_len, frame.data, frame.length);
          sec.last_msg = padded;
          sec.bytes = padded + msg_len;
          sec.frame_bytes += frame.length;
          ++sec.count;
          continue;
        }
      }
      // 2. The open section cannot take it: send that first.
      if (!flush()) break;
      // 3. A fresh section if the message fits one (msg_len + pkt_align < section size).
      if (uint64_t{msg_len} + pkt_align_ < send_section_size_) {
        const uint32_t index = sections_->Allocate(hint);
        if (index != kNoSection) {
          uint8_t* base = send_buf_.data() + size_t{index} * send_section_size_;
          (void)wire::EncodeRndisPacketHeader(std::span<uint8_t>(base, header_len), ppis,
                                              frame.length);
          std::memcpy(base + header_len, frame.data, frame.length);
          sec = Section{index, msg_len, 0, 1, frame.length, i};
          continue;
        }
        stats_.tx_send_full.Add();
      }
      // 4. GPA-direct from a bounce slot: header + PPIs in one range, the frame in a second.
      if (q.bounce_free.empty()) {
        stats_.tx_no_memory.Add();
        break;
      }
      const uint16_t slot = q.bounce_free.back();
      RequestCookie cookie;
      cookie.kind = RequestKind::kData;
      cookie.packets = 1;
      cookie.bounce = static_cast<uint16_t>(slot + 1);
      cookie.section = kNoSection;
      cookie.bytes = frame.length;
      const uint64_t trans_id = q.requestor->Allocate(cookie);
      if (trans_id == 0) {
        full = true;
        break;
      }
      uint8_t* base = q.bounce_run.bytes().data() + size_t{slot} * q.bounce_slot_pages * 4096;
      (void)wire::EncodeRndisPacketHeader(std::span<uint8_t>(base, header_len), ppis,
                                          frame.length, 0);
      std::memcpy(base + kBounceHeaderReserve, frame.data, frame.length);
      const std::span<const uint64_t> pfns(q.bounce_pfns.data() + size_t{slot} * q.bounce_slot_pages,
                                           q.bounce_slot_pages);
      // The header's msg_len covers header + frame, which here sit in two ranges.
      const std::array<wire::GpaDirectRangeRef, 2> ranges = {
          wire::GpaDirectRangeRef{header_len, 0, pfns.first(1)},
          wire::GpaDirectRangeRef{
              frame.length, kBounceHeaderReserve,
              pfns.first(static_cast<size_t>(
                  wire::GpaRangePageCount(frame.length, kBounceHeaderReserve)))}};
      wire::NvspSendRndisPacket m;
      m.channel_type = wire::kNvspRndisChannelData;
      m.send_buf_section_index = wire::kNvspNoSendSection;
      m.send_buf_section_size = 0;
      const ring::WriteResult r = WriteGpaDirect(out, cursor, ranges, EncodeNvsp40(m), trans_id);
      if (!r.ok()) {
        q.requestor->Cancel(trans_id);
        if (r.status == ring::WriteStatus::kInvalid) {
          stats_.tx_too_big.Add();  // larger than the ring can ever hold: consumed and dropped
          continue;
        }
        if (r.status == ring::WriteStatus::kCorrupt) corrupt = true;
        full = r.status == ring::WriteStatus::kFull;
        break;
      }
      q.bounce_free.pop_back();
      q.queue_sends.fetch_add(1, std::memory_order_relaxed);
      stats_.tx_scattered.Add();
    }
    if (i == end) flush();  // the last section (a failure rewinds i)
    signal = out.CommitWrite(cursor).needs_signal;
    if (corrupt) {
      // R1: the host corrupted the read index of our outbound ring; this queue is unusable.
      stats_.rx_ring_corrupt.Add();
      q.open = false;
      q.usable.store(false, std::memory_order_relaxed);
      return i - begin;
    }

    // Stop / wake (netvsc_send_pkt): below 10 % free the queue stops; if it could not write at
    // all it stops too (tx_busy), and if nothing of it is outstanding no completion will ever
    // wake it, so it is woken at once and the frame is dropped (tx_no_space).
    const bool low = FreePercent(out) < kRingAvailPercentLowater;
    if (full) stats_.tx_busy.Add();
    if ((full || low) && !q.tx_stopped.load(std::memory_order_relaxed)) {
      q.tx_stopped.store(true, std::memory_order_relaxed);
      stats_.stop_queue.Add();
    }
    if (q.tx_stopped.load(std::memory_order_relaxed) &&
        q.queue_sends.load(std::memory_order_relaxed) == 0) {
      q.tx_stopped.store(false, std::memory_order_release);
      stats_.wake_queue.Add();
      if (full && i < end) {
        stats_.tx_no_space.Add();
        ++i;
      }
    }
  }
  if (signal) q.channel->SignalHost();
  return i - begin;
}

// ---------------------------------------------------------------------------------------------
// Control requests (NVSP) and bring-up

Status NetvscDevice::NvspSend(std::span<const uint8_t> message) {
  Queue& q = *queues_[0];
  bool signal = false;
  {
    std::lock_guard lock(q.out_mu);
    if (!q.open) return MakeError(ErrorCode::kUnavailable, "netvsc: primary channel not open");
    ring::OutgoingRing& out = q.channel->outbound();
    ring::WriteCursor cursor = out.BeginWrite();
    const ring::WriteResult r =
        out.WriteInband(cursor, message, wire::kVmbusRqstIdNoResponse, false);
    if (!r.ok()) {
      return MakeError(ErrorCode::kUnavailable, "netvsc: cannot send NVSP message: {}",
                       ring::RingErrorName(r.error));
    }
    signal = out.CommitWrite(cursor).needs_signal;
  }
  if (signal) q.channel->SignalHost();
  return Ok();
}

Expected<std::vector<uint8_t>> NetvscDevice::NvspRequest(std::span<const uint8_t> message,
                                                         wire::NvspMessageType reply) {
  std::lock_guard control(control_mu_);
  Queue& q = *queues_[0];
  const uint32_t sequence = ++control_sequence_;
  {
    std::lock_guard lock(waiter_mu_);
    waiter_ = Waiter{};
    waiter_.kind = Waiter::Kind::kNvsp;
    waiter_.sequence = sequence;
  }
  bool signal = false;
  {
    std::lock_guard lock(q.out_mu);
    if (!q.open) return MakeError(ErrorCode::kUnavailable, "netvsc: primary channel not open");
    RequestCookie cookie;
    cookie.kind = RequestKind::kNvspControl;
    cookie.bytes = static_cast<uint32_t>(reply);
    cookie.sequence = sequence;
    const uint64_t trans_id = q.requestor->Allocate(cookie);
    if (trans_id == 0) {
      return MakeError(ErrorCode::kResourceExhausted, "netvsc: request table full");
    }
    ring::OutgoingRing& out = q.channel->outbound();
    ring::WriteCursor cursor = out.BeginWrite();
    const ring::WriteResult r = out.WriteInband(cursor, message, trans_id, true);
    if (!r.ok()) {
      q.requestor->Cancel(trans_id);
      return MakeError(ErrorCode::kUnavailable, "netvsc: cannot send NVSP request: {}",
                       ring::RingErrorName(r.error));
    }
    signal = out.CommitWrite(cursor).needs_signal;
  }
  if (signal) q.channel->SignalHost();

  std::unique_lock lock(waiter_mu_);
  const auto deadline = std::chrono::steady_clock::now() + config_.control_timeout;
  while (!waiter_.done) {
    if (Dead()) {
      waiter_ = Waiter{};
      return MakeError(ErrorCode::kUnavailable, "netvsc: device gone while waiting for {}",
                       wire::NvspMessageName(reply));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      waiter_ = Waiter{};
      return MakeError(ErrorCode::kTimeout, "netvsc: no {} from the host",
                       wire::NvspMessageName(reply));
    }
    // Bounded slices so a rescind or hang-up is noticed without its own wake-up.
    waiter_cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
  std::vector<uint8_t> response = std::move(waiter_.response);
  waiter_ = Waiter{};
  return response;
}

Status NetvscDevice::NegotiateVersion() {
  // netvsc_connect_vsp: newest first, each offered alone (min = max); status SUCCESS accepts.
  for (uint32_t version : wire::kNvspVersionsNewestFirst) {
    if (version > config_.max_nvsp_version) continue;
    wire::NvspInit init;
    init.min_protocol_ver = version;
    init.max_protocol_ver = version;
    auto reply = NvspRequest(EncodeNvsp40(init), wire::NvspMessageType::kInitComplete);
    if (!reply) return tl::unexpected(reply.error());
    auto msg = wire::ParseNvspMessage(*reply, wire::Direction::kHostToGuest,
                                      wire::PacketType::kComp, wire::kNvspVersionNone);
    const auto* complete = msg ? std::get_if<wire::NvspInitComplete>(&*msg) : nullptr;
    if (complete != nullptr && complete->status == wire::NvspStatus::kSuccess) {
      nvsp_version_.store(version, std::memory_order_release);
      UVMBUS_LOG_INFO(kLog, "NVSP version {:#x} negotiated", version);
      return Ok();
    }
    // N5: try the next older version.
  }
  return MakeError(ErrorCode::kProtocol, "netvsc: the host accepted no NVSP version");
}

Status NetvscDevice::ConnectVsp() {
  if (Status st = NegotiateVersion(); !st) return st;
  const uint32_t version = nvsp_version();
  if (version >= wire::kNvspVersion2) {
    wire::NvspSendNdisConfig config;
    config.mtu = config_.mtu + net::kEthHeaderSize;
    uint64_t caps = wire::kNdisConfigCapIeee8021q;
    if (version >= wire::kNvspVersion5) caps |= wire::kNdisConfigCapSriov | wire::kNdisConfigCapTeaming;
    if (version >= wire::kNvspVersion61) caps |= wire::kNdisConfigCapRsc;
    config.capability = caps;
    if (Status st = NvspSend(EncodeNvsp40(config)); !st) return st;
  }
  ndis_version_ = wire::NdisVersionForNvsp(version);
  wire::NvspSendNdisVersion ndis;
  ndis.ndis_major_ver = ndis_version_ >> 16;
  ndis.ndis_minor_ver = ndis_version_ & 0xFFFF;
  if (Status st = NvspSend(EncodeNvsp40(ndis)); !st) return st;
  return InitBuffers();
}

Status NetvscDevice::InitBuffers() {
  guest::Channel& primary = vdev_.channel();
  const uint32_t version = nvsp_version();

  // Receive buffer (netvsc_init_buf).
  uint64_t recv_bytes = (config_.recv_buffer_bytes + 4095) / 4096 * 4096;
  if (version <= wire::kNvspVersion2) recv_bytes = std::min(recv_bytes, kNetvscReceiveBufferLegacyMax);
  auto recv_run = partition_.allocator().AllocateRun(recv_bytes / 4096);
  if (!recv_run) return tl::unexpected(recv_run.error());
  recv_run_ = std::move(*recv_run);
  auto recv_gpadl = primary.EstablishGpadl(recv_run_);
  if (!recv_gpadl) return tl::unexpected(recv_gpadl.error());
  recv_gpadl_ = *recv_gpadl;
  wire::NvspSendReceiveBuffer rb;
  rb.gpadl_handle = recv_gpadl_;
  rb.id = wire::kNetvscReceiveBufferId;
  auto reply = NvspRequest(EncodeNvsp40(rb), wire::NvspMessageType::kSendReceiveBufferComplete);
  if (!reply) return tl::unexpected(reply.error());
  auto msg = wire::ParseNvspMessage(*reply, wire::Direction::kHostToGuest, wire::PacketType::kComp,
                                    version);
  const auto* rbc = msg ? std::get_if<wire::NvspSendReceiveBufferComplete>(&*msg) : nullptr;
  if (rbc == nullptr) return MakeError(ErrorCode::kMalformed, "netvsc: bad receive buffer reply");
  auto layout = wire::ValidateReceiveBufferComplete(*rbc, recv_bytes);  // N6-N8
  if (!layout) return tl::unexpected(layout.error());
  recv_sub_alloc_size_ = layout->sub_alloc_size;
  recv_sections_ = layout->num_sub_allocs;
  recv_completion_cnt_ = recv_sections_ + 1;
  queues_[0]->rcomp.resize(recv_completion_cnt_);
  recv_buf_ = std::span<const uint8_t>(recv_run_.bytes().data(), recv_bytes);
  recv_ready_.store(true, std::memory_order_release);

  // Send buffer.
  const uint64_t send_bytes = (config_.send_buffer_bytes + 4095) / 4096 * 4096;
  auto send_run = partition_.allocator().AllocateRun(send_bytes / 4096);
  if (!send_run) return tl::unexpected(send_run.error());
  send_run_ = std::move(*send_run);
  auto send_gpadl = primary.EstablishGpadl(send_run_);
  if (!send_gpadl) return tl::unexpected(send_gpadl.error());
  send_gpadl_ = *send_gpadl;
  wire::NvspSendSendBuffer sb;
  sb.gpadl_handle = send_gpadl_;
  sb.id = wire::kNetvscSendBufferId;
  reply = NvspRequest(EncodeNvsp40(sb), wire::NvspMessageType::kSendSendBufferComplete);
  if (!reply) return tl::unexpected(reply.error());
  msg = wire::ParseNvspMessage(*reply, wire::Direction::kHostToGuest, wire::PacketType::kComp,
                               version);
  const auto* sbc = msg ? std::get_if<wire::NvspSendSendBufferComplete>(&*msg) : nullptr;
  if (sbc == nullptr) return MakeError(ErrorCode::kMalformed, "netvsc: bad send buffer reply");
  auto sections = wire::ValidateSendBufferComplete(*sbc, send_bytes);  // N9
  if (!sections) return tl::unexpected(sections.error());
  send_section_size_ = sbc->section_size;
  send_buf_ = send_run_.bytes().first(send_bytes);
  sections_ = std::make_unique<SectionBitmap>(*sections);
  UVMBUS_LOG_INFO(kLog, "receive buffer {} x {} B, send buffer {} x {} B", recv_sections_,
                  recv_sub_alloc_size_, *sections, send_section_size_);
  return Ok();
}

void NetvscDevice::RevokeBuffers() {
  // netvsc_revoke_recv_buf / netvsc_revoke_send_buf: in-band, no completion (spec 5.7 step 7).
  if (recv_gpadl_ != 0) {
    wire::NvspRevokeReceiveBuffer m;
    m.id = wire::kNetvscReceiveBufferId;
    if (Status st = NvspSend(EncodeNvsp40(m)); !st) {
      UVMBUS_LOG_WARN(kLog, "revoke receive buffer: {}", st.error().message);
    }
  }
  if (send_gpadl_ != 0) {
    wire::NvspRevokeSendBuffer m;
    m.id = wire::kNetvscSendBufferId;
    if (Status st = NvspSend(EncodeNvsp40(m)); !st) {
      UVMBUS_LOG_WARN(kLog, "revoke send buffer: {}", st.error().message);
    }
  }
}

}  // namespace uvmbus::netvsc
