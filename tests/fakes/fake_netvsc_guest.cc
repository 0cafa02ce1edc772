// File: tests/fakes/fake_netvsc_guest.cc — see fake_netvsc_guest.h.
#include "fakes/fake_netvsc_guest.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "wire/device_guids.h"
#include "wire/gpa_range.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace uvmbus::testing {
namespace {

// Pump rounds in manual mode before a wait gives up (the host is idle long before).
constexpr int kPumpRounds = 200;
constexpr uint32_t kScratchPages = 64;

}  // namespace

FakeNetvscGuest::FakeNetvscGuest(partition::LocalPartition& partition, FakeVmbusGuest& vmbus,
                                 std::function<void()> pump, int wait_ms)
    : partition_(partition), vmbus_(vmbus), pump_(std::move(pump)), wait_ms_(wait_ms) {
  auto scratch = partition_.guest().allocator().AllocateRun(kScratchPages);
  if (scratch) scratch_pages_ = std::move(*scratch);
}

FakeNetvscGuest::~FakeNetvscGuest() = default;

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

bool FakeNetvscGuest::Connect() {
  auto offers = vmbus_.ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  if (!offers) return false;
  for (const auto& o : *offers) {
    if (o.if_type == wire::kNetworkClassGuid && o.sub_channel_index == 0) {
      primary_offer_ = o;
      return true;
    }
  }
  return false;
}

bool FakeNetvscGuest::OpenChannel(const wire::OfferChannel& offer, uint32_t ring_pages) {
  auto st = vmbus_.OpenChannel(offer.child_relid, offer.connection_id, next_gpadl_++, 0,
                               ring_pages, ring_pages);
  if (!st || st->result.status != 0) return false;
  auto ch = std::make_unique<Channel>();
  ch->index = offer.sub_channel_index;
  ch->state = std::move(*st);
  channels_.push_back(std::move(ch));
  return true;
}

bool FakeNetvscGuest::OpenSubchannels(uint32_t count) {
  std::vector<wire::OfferChannel> offers;
  const bool got = WaitUntil([&] {
    while (auto msg = vmbus_.Receive()) {
      if (const auto* o = std::get_if<wire::OfferChannel>(&*msg)) offers.push_back(*o);
    }
    return offers.size() >= count;
  });
  if (!got) return false;
  for (const auto& o : offers) {
    if (o.if_instance != primary_offer_.if_instance || o.sub_channel_index == 0) return false;
    if (!OpenChannel(o)) return false;
  }
  return true;
}

void FakeNetvscGuest::CloseChannel(uint16_t index) {
  for (auto it = channels_.begin(); it != channels_.end(); ++it) {
    if ((*it)->index != index) continue;
    wire::CloseChannel close;
    close.child_relid = (*it)->state.relid;
    vmbus_.Post(close);
    channels_.erase(it);
    return;
  }
}

bool FakeNetvscGuest::Remove() {
  bool ok = true;
  if (Find(0) != nullptr && version_ != 0) {
    wire::RndisHaltRequest halt;
    halt.request_id = NextRequestId();
    std::array<uint8_t, wire::RndisHaltRequest::kWireSize> buf{};
    ok &= wire::EncodeRndis(buf, halt).has_value();
    ok &= SendRndis(0, buf, SendMode::kGpaMultiPage, wire::kNvspRndisChannelControl) ==
          wire::NvspStatus::kSuccess;
    wire::NvspRevokeReceiveBuffer rr;
    rr.id = recv_id_;
    ok &= Post(0, rr);
    wire::NvspRevokeSendBuffer rs;
    rs.id = send_id_;
    ok &= Post(0, rs);
    (void)NothingPending(0, wire::PacketType::kComp);  // manual mode: let the host see them
  }
  std::vector<uint16_t> subs;
  for (const auto& c : channels_) {
    if (c->index != 0) subs.push_back(c->index);
  }
  std::sort(subs.rbegin(), subs.rend());
  for (uint16_t i : subs) CloseChannel(i);
  CloseChannel(0);
  for (uint32_t handle : {recv_gpadl_, send_gpadl_}) {
    if (handle == 0) continue;
    wire::GpadlTeardown td;
    td.child_relid = primary_offer_.child_relid;
    td.gpadl = handle;
    vmbus_.Post(td);
    bool torn = false;
    // Closing the primary made the host rescind the sub-channels: release their relids.
    while (auto msg = vmbus_.Receive()) {
      if (const auto* r = std::get_if<wire::RescindChannelOffer>(&*msg)) {
        wire::RelidReleased released;
        released.child_relid = r->child_relid;
        vmbus_.Post(released);
      } else if (const auto* t = std::get_if<wire::GpadlTorndown>(&*msg)) {
        torn |= t->gpadl == handle;
        if (torn) break;
      }
    }
    ok &= torn;
  }
  recv_gpadl_ = send_gpadl_ = 0;
  version_ = 0;
  for (auto& c : channels_) c->backlog.clear();
  return ok;
}

uint32_t FakeNetvscGuest::open_channels() const { return static_cast<uint32_t>(channels_.size()); }

bool FakeNetvscGuest::has_channel(uint16_t index) const { return Find(index) != nullptr; }

uint32_t FakeNetvscGuest::relid(uint16_t index) const {
  const Channel* c = Find(index);
  return c != nullptr ? c->state.relid : 0;
}

FakeVmbusGuest::OpenChannelState& FakeNetvscGuest::channel_state(uint16_t index) {
  return Find(index)->state;
}

FakeNetvscGuest::Channel* FakeNetvscGuest::Find(uint16_t index) {
  for (auto& c : channels_) {
    if (c->index == index) return c.get();
  }
  return nullptr;
}

const FakeNetvscGuest::Channel* FakeNetvscGuest::Find(uint16_t index) const {
  for (const auto& c : channels_) {
    if (c->index == index) return c.get();
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

bool FakeNetvscGuest::Write(uint16_t ch, std::span<const uint8_t> header,
                            std::span<const uint8_t> payload) {
  Channel* c = Find(ch);
  if (c == nullptr) return false;
  ring::OutgoingRing& out = *c->state.out;
  ring::WriteCursor cursor = out.BeginWrite();
  if (!out.Write(cursor, header, payload).ok()) return false;
  if (out.CommitWrite(cursor)) vmbus_.Signal(c->state.connection_id);
  return true;
}

bool FakeNetvscGuest::SendInband(uint16_t ch, std::span<const uint8_t> payload, uint64_t trans_id,
                                 bool completion_requested) {
  std::array<uint8_t, 16> header{};
  auto n = wire::EncodeInbandHeader(header, static_cast<uint32_t>(payload.size()), trans_id,
                                    completion_requested);
  return n && Write(ch, std::span<const uint8_t>(header.data(), *n), payload);
}

bool FakeNetvscGuest::SendCompletion(uint16_t ch, uint64_t trans_id,
                                     std::span<const uint8_t> payload) {
  std::array<uint8_t, 16> header{};
  auto n = wire::EncodeCompletionHeader(header, static_cast<uint32_t>(payload.size()), trans_id);
  return n && Write(ch, std::span<const uint8_t>(header.data(), *n), payload);
}

bool FakeNetvscGuest::SendGpaDirect(uint16_t ch, std::span<const wire::GpaDirectRangeRef> ranges,
                                    std::span<const uint8_t> payload, uint64_t trans_id) {
  const uint64_t size = wire::GpaDirectHeaderSize(ranges);
  if (size == 0) return false;
  std::vector<uint8_t> header(static_cast<size_t>(size));
  auto n = wire::EncodeGpaDirectHeader(header, ranges, static_cast<uint32_t>(payload.size()),
                                       trans_id);
  return n && Write(ch, std::span<const uint8_t>(header.data(), *n), payload);
}

void FakeNetvscGuest::ClearEventBit(uint32_t relid) {
  // The host sets bit `relid` in the SINT 2 event area; a guest clears it before reading the ring
  // (otherwise later signals are coalesced into the still-set bit and raise no interrupt).
  std::span<uint8_t> page = partition_.guest().EventPage(0);
  auto* word = reinterpret_cast<uint64_t*>(page.data() + wire::kVmbusEventAreaOffset) +
               wire::EventFlagWordIndex(relid);
  std::atomic_ref<uint64_t>(*word).fetch_and(~wire::EventFlagWordMask(relid),
                                             std::memory_order_acq_rel);
}

size_t FakeNetvscGuest::DrainRings() {
  size_t total = 0;
  for (auto& c : channels_) {
    ClearEventBit(c->state.relid);
    ring::IncomingRing& in = *c->state.in;
    ring::ReadCursor cursor = in.BeginRead();
    for (;;) {
      ring::ReadResult r = in.Read(cursor);
      if (!r.ok()) break;
      HostPacket p;
      p.desc = r.packet.desc;
      p.bytes.assign(r.packet.bytes.begin(), r.packet.bytes.end());
      c->backlog.push_back(std::move(p));
      ++total;
    }
    if (in.CommitRead(cursor)) vmbus_.Signal(c->state.connection_id);
  }
  return total;
}

bool FakeNetvscGuest::WaitUntil(const std::function<bool()>& ready) {
  DrainRings();
  if (ready()) return true;
  if (pump_) {
    for (int i = 0; i < kPumpRounds; ++i) {
      pump_();
      DrainRings();
      if (ready()) return true;
    }
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms_);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd fd{partition_.guest().InterruptFd(0), POLLIN, 0};
    (void)::poll(&fd, 1, static_cast<int>(left.count()));
    partition_.guest().AckInterrupt(0);
    DrainRings();
    if (ready()) return true;
  }
}

std::optional<HostPacket> FakeNetvscGuest::WaitPacket(uint16_t ch, wire::PacketType type) {
  Channel* c = Find(ch);
  if (c == nullptr) return std::nullopt;
  std::optional<HostPacket> found;
  WaitUntil([&] {
    for (auto it = c->backlog.begin(); it != c->backlog.end(); ++it) {
      if (it->type() == type) {
        found = std::move(*it);
        c->backlog.erase(it);
        return true;
      }
    }
    return false;
  });
  return found;
}

std::optional<HostPacket> FakeNetvscGuest::WaitCompletion(uint16_t ch, uint64_t trans_id) {
  Channel* c = Find(ch);
  if (c == nullptr) return std::nullopt;
  std::optional<HostPacket> found;
  WaitUntil([&] {
    for (auto it = c->backlog.begin(); it != c->backlog.end(); ++it) {
      if (it->type() == wire::PacketType::kComp && it->desc.trans_id == trans_id) {
        found = std::move(*it);
        c->backlog.erase(it);
        return true;
      }
    }
    return false;
  });
  return found;
}

bool FakeNetvscGuest::NothingPending(uint16_t ch, wire::PacketType type) {
  if (pump_) {
    for (int i = 0; i < 8; ++i) pump_();
  }
  DrainRings();
  const Channel* c = Find(ch);
  if (c == nullptr) return true;
  return std::none_of(c->backlog.begin(), c->backlog.end(),
                      [&](const HostPacket& p) { return p.type() == type; });
}

size_t FakeNetvscGuest::backlog(uint16_t ch) const {
  const Channel* c = Find(ch);
  return c != nullptr ? c->backlog.size() : 0;
}

// ---------------------------------------------------------------------------------------------
// NVSP
// ---------------------------------------------------------------------------------------------

std::optional<wire::NvspMessage> FakeNetvscGuest::Request(uint16_t ch,
                                                         std::span<const uint8_t> payload) {
  const uint64_t trans = NextTransId();
  if (!SendInband(ch, payload, trans, true)) return std::nullopt;
  auto comp = WaitCompletion(ch, trans);
  if (!comp) return std::nullopt;
  auto parsed = wire::ParseNvspMessage(comp->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kComp, version_);
  if (!parsed) return std::nullopt;
  return *parsed;
}

bool FakeNetvscGuest::CreateGpadl(uint32_t pages, uint32_t handle) {
  auto run = partition_.guest().allocator().AllocateRun(pages);
  if (!run) return false;
  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < run->count(); ++i) pfns.push_back(run->gpn() + i);
  auto created = vmbus_.CreateGpadl(primary_offer_.child_relid, handle, pfns);
  extra_pages_.push_back(std::move(*run));
  return created && created->creation_status == 0;
}

std::optional<wire::NvspSendReceiveBufferComplete> FakeNetvscGuest::SetupReceiveBuffer(
    uint32_t pages, uint32_t gpadl, uint16_t id) {
  auto run = partition_.guest().allocator().AllocateRun(pages);
  if (!run) return std::nullopt;
  recv_pages_ = std::move(*run);
  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < recv_pages_.count(); ++i) pfns.push_back(recv_pages_.gpn() + i);
  auto created = vmbus_.CreateGpadl(primary_offer_.child_relid, gpadl, pfns);
  if (!created || created->creation_status != 0) return std::nullopt;
  recv_gpadl_ = gpadl;
  recv_id_ = id;
  wire::NvspSendReceiveBuffer msg;
  msg.gpadl_handle = gpadl;
  msg.id = id;
  auto reply = Request(0, msg);
  if (!reply) return std::nullopt;
  const auto* done = std::get_if<wire::NvspSendReceiveBufferComplete>(&*reply);
  if (done == nullptr) return std::nullopt;
  if (auto layout = wire::ValidateReceiveBufferComplete(*done, recv_pages_.bytes().size())) {
    recv_layout_ = *layout;
  }
  return *done;
}

std::optional<wire::NvspSendSendBufferComplete> FakeNetvscGuest::SetupSendBuffer(uint32_t pages,
                                                                                uint32_t gpadl,
                                                                                uint16_t id) {
  auto run = partition_.guest().allocator().AllocateRun(pages);
  if (!run) return std::nullopt;
  send_pages_ = std::move(*run);
  std::vector<uint64_t> pfns;
  for (uint64_t i = 0; i < send_pages_.count(); ++i) pfns.push_back(send_pages_.gpn() + i);
  auto created = vmbus_.CreateGpadl(primary_offer_.child_relid, gpadl, pfns);
  if (!created || created->creation_status != 0) return std::nullopt;
  send_gpadl_ = gpadl;
  send_id_ = id;
  wire::NvspSendSendBuffer msg;
  msg.gpadl_handle = gpadl;
  msg.id = id;
  auto reply = Request(0, msg);
  if (!reply) return std::nullopt;
  const auto* done = std::get_if<wire::NvspSendSendBufferComplete>(&*reply);
  if (done == nullptr) return std::nullopt;
  if (auto count = wire::ValidateSendBufferComplete(*done, send_pages_.bytes().size())) {
    send_section_size_ = done->section_size;
    send_section_count_ = *count;
  }
  return *done;
}

std::span<uint8_t> FakeNetvscGuest::receive_buffer() const { return recv_pages_.bytes(); }
std::span<uint8_t> FakeNetvscGuest::send_buffer() const { return send_pages_.bytes(); }

bool FakeNetvscGuest::BringUp(uint32_t version, uint32_t recv_pages, uint32_t send_pages) {
  // 3.1.1 INIT with min = max = version.
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = version;
  auto init_reply = Request(0, init);
  const auto* init_done =
      init_reply ? std::get_if<wire::NvspInitComplete>(&*init_reply) : nullptr;
  if (init_done == nullptr || init_done->status != wire::NvspStatus::kSuccess) return false;
  version_ = version;
  // 3.1.2 NDIS config (>= 2), 3.1.3 NDIS version.
  if (version >= wire::kNvspVersion2) {
    wire::NvspSendNdisConfig config;
    config.mtu = 1514;
    config.capability = wire::kNdisConfigCapIeee8021q;
    if (version >= wire::kNvspVersion5) {
      config.capability |= wire::kNdisConfigCapSriov | wire::kNdisConfigCapTeaming;
    }
    if (!Post(0, config)) return false;
  }
  wire::NvspSendNdisVersion ndis;
  ndis.ndis_major_ver = 6;
  ndis.ndis_minor_ver = version >= wire::kNvspVersion5 ? 30 : 1;
  if (!Post(0, ndis)) return false;
  // 3.1.4 receive and send buffers.
  auto recv = SetupReceiveBuffer(recv_pages);
  if (!recv || recv->status != wire::NvspStatus::kSuccess || recv_layout_.sub_alloc_size == 0) {
    return false;
  }
  auto send = SetupSendBuffer(send_pages);
  if (!send || send->status != wire::NvspStatus::kSuccess || send_section_count_ == 0) {
    return false;
  }
  // 3.2 RNDIS INITIALIZE.
  wire::RndisInitializeRequest req;
  req.request_id = NextRequestId();
  std::array<uint8_t, wire::RndisInitializeRequest::kWireSize> buf{};
  if (!wire::EncodeRndis(buf, req)) return false;
  auto reply = RndisRequest(buf);
  if (!reply) return false;
  auto parsed = wire::ParseRndisMessage(*reply, wire::Direction::kHostToGuest);
  if (!parsed) return false;
  const auto* c = std::get_if<wire::RndisInitializeComplete>(&*parsed);
  if (c == nullptr || c->status != wire::RndisStatus::kSuccess ||
      c->request_id != req.request_id) {
    return false;
  }
  pkt_align_ = wire::RndisPacketAlignment(c->packet_alignment_factor);
  max_pkt_ = wire::RndisMaxPacketsPerMessage(c->max_packets_per_message);
  // 3.3-3.10: the queries Linux makes, and its offload SET.
  if (!Query(wire::NdisOid::kGenMaximumFrameSize)) return false;
  if (!Query(wire::NdisOid::k802_3PermanentAddress)) return false;
  if (!Query(wire::NdisOid::kGenFriendlyName)) return false;
  const wire::NdisObjectHeader offload_hdr = wire::NdisOffloadQueryHeader(version);
  std::array<uint8_t, 4> hdr{};
  std::memcpy(hdr.data(), &offload_hdr, 4);
  if (!Query(wire::NdisOid::kTcpOffloadHardwareCapabilities, hdr)) return false;
  wire::NdisOffloadParams params;
  params.header.size = version >= wire::kNvspVersion5 ? 28 : 22;
  params.ip_v4_csum = wire::kOffloadParamCsumTxRxDisabled;
  std::array<uint8_t, sizeof(wire::NdisOffloadParams)> pbuf{};
  std::memcpy(pbuf.data(), &params, sizeof(params));
  auto set = Set(wire::NdisOid::kTcpOffloadParameters,
                 std::span<const uint8_t>(pbuf.data(), params.header.size));
  if (!set || *set != wire::RndisStatus::kSuccess) return false;
  if (!Query(wire::NdisOid::kGenMediaConnectStatus)) return false;
  if (version >= wire::kNvspVersion5) {
    if (!Query(wire::NdisOid::kGenLinkSpeed)) return false;
    wire::NdisReceiveScaleCapabilities caps_in;
    std::array<uint8_t, sizeof(caps_in)> cbuf{};
    std::memcpy(cbuf.data(), &caps_in, sizeof(caps_in));
    if (!Query(wire::NdisOid::kGenReceiveScaleCapabilities, cbuf)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// RNDIS
// ---------------------------------------------------------------------------------------------

uint32_t FakeNetvscGuest::NextSection() {
  if (send_section_count_ == 0) return 0;
  return next_section_++ % send_section_count_;
}

std::vector<wire::GpaDirectRangeRef> FakeNetvscGuest::StageInPages(
    std::span<const uint8_t> bytes, uint32_t offset, SendMode mode,
    std::vector<uint64_t>* pfn_storage) {
  std::vector<wire::GpaDirectRangeRef> ranges;
  std::span<uint8_t> scratch = scratch_pages_.bytes();
  if (bytes.empty() || offset + bytes.size() > scratch.size()) return ranges;
  std::memcpy(scratch.data() + offset, bytes.data(), bytes.size());
  const uint64_t first_page = offset / wire::kGpaPageSize;
  const uint64_t last_page = (offset + bytes.size() - 1) / wire::kGpaPageSize;
  pfn_storage->clear();
  pfn_storage->reserve(static_cast<size_t>(last_page - first_page + 1));
  for (uint64_t p = first_page; p <= last_page; ++p) {
    pfn_storage->push_back(scratch_pages_.gpn() + p);
  }
  if (mode == SendMode::kGpaPageBuffer) {
    // One range per page, each {len, offset, pfn} (vmbus_sendpacket_pagebuffer).
    uint32_t left = static_cast<uint32_t>(bytes.size());
    uint32_t off = offset % wire::kGpaPageSize;
    for (size_t i = 0; i < pfn_storage->size(); ++i) {
      const uint32_t n = std::min(left, wire::kGpaPageSize - off);
      ranges.push_back({n, off, std::span<const uint64_t>(pfn_storage->data() + i, 1)});
      left -= n;
      off = 0;
    }
  } else {
    ranges.push_back({static_cast<uint32_t>(bytes.size()), offset % wire::kGpaPageSize,
                      std::span<const uint64_t>(*pfn_storage)});
  }
  return ranges;
}

std::optional<wire::NvspStatus> FakeNetvscGuest::SendRndis(uint16_t ch,
                                                           std::span<const uint8_t> rndis,
                                                           SendMode mode, uint32_t channel_type) {
  const uint64_t trans = NextTransId();
  wire::NvspSendRndisPacket nvsp;
  nvsp.channel_type = channel_type;
  std::array<uint8_t, wire::kNvspLinuxMessageSize> payload{};
  std::vector<uint64_t> pfns;
  bool sent = false;
  if (mode == SendMode::kSection) {
    const uint32_t index = NextSection();
    if (rndis.size() > send_section_size_) return std::nullopt;
    std::memcpy(send_buffer().data() + size_t{index} * send_section_size_, rndis.data(),
                rndis.size());
    nvsp.send_buf_section_index = index;
    nvsp.send_buf_section_size = static_cast<uint32_t>(rndis.size());
    auto n = wire::EncodeNvsp(payload, nvsp, wire::kNvspLinuxMessageSize);
    sent = n && SendInband(ch, std::span<const uint8_t>(payload.data(), *n), trans, true);
  } else if (mode == SendMode::kMixed) {
    // Header (and PPIs) in the section, the rest (the frame) through a GPA range.
    uint32_t split = static_cast<uint32_t>(rndis.size() / 2);
    if (rndis.size() >= wire::kRndisPacketHeaderSize) {
      uint32_t data_offset = 0;
      std::memcpy(&data_offset, rndis.data() + 8, 4);
      if (8 + data_offset < rndis.size()) split = 8 + data_offset;
    }
    const uint32_t index = NextSection();
    std::memcpy(send_buffer().data() + size_t{index} * send_section_size_, rndis.data(), split);
    nvsp.send_buf_section_index = index;
    nvsp.send_buf_section_size = split;
    auto ranges = StageInPages(rndis.subspan(split), 128, SendMode::kGpaMultiPage, &pfns);
    auto n = wire::EncodeNvsp(payload, nvsp, wire::kNvspLinuxMessageSize);
    sent = n && !ranges.empty() &&
           SendGpaDirect(ch, ranges, std::span<const uint8_t>(payload.data(), *n), trans);
  } else {
    // Start near the end of a page so that ranges cross page boundaries.
    auto ranges = StageInPages(rndis, wire::kGpaPageSize - 40, mode, &pfns);
    auto n = wire::EncodeNvsp(payload, nvsp, wire::kNvspLinuxMessageSize);
    sent = n && !ranges.empty() &&
           SendGpaDirect(ch, ranges, std::span<const uint8_t>(payload.data(), *n), trans);
  }
  if (!sent) return std::nullopt;
  auto comp = WaitCompletion(ch, trans);
  if (!comp) return std::nullopt;
  auto parsed = wire::ParseNvspMessage(comp->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kComp, version_);
  if (!parsed) return std::nullopt;
  const auto* done = std::get_if<wire::NvspSendRndisPacketComplete>(&*parsed);
  if (done == nullptr) return std::nullopt;
  return done->status;
}

std::optional<std::vector<uint8_t>> FakeNetvscGuest::RndisRequest(std::span<const uint8_t> rndis,
                                                                  SendMode mode) {
  auto status = SendRndis(0, rndis, mode, wire::kNvspRndisChannelControl);
  if (!status || *status != wire::NvspStatus::kSuccess) return std::nullopt;
  auto ind = WaitIndication(0);
  if (!ind || ind->messages.size() != 1 || ind->channel_type != wire::kNvspRndisChannelControl) {
    return std::nullopt;
  }
  return ind->messages[0].bytes;
}

std::optional<wire::RndisQueryCompleteMessage> FakeNetvscGuest::Query(
    wire::NdisOid oid, std::span<const uint8_t> info) {
  const uint32_t id = NextRequestId();
  std::vector<uint8_t> buf(wire::RndisQueryRequest::kWireSize + info.size());
  if (!wire::EncodeRndisQuery(buf, id, oid, info)) return std::nullopt;
  auto reply = RndisRequest(buf);
  if (!reply) return std::nullopt;
  last_reply_ = std::move(*reply);
  auto parsed = wire::ParseRndisMessage(last_reply_, wire::Direction::kHostToGuest);
  if (!parsed) return std::nullopt;
  const auto* q = std::get_if<wire::RndisQueryCompleteMessage>(&*parsed);
  if (q == nullptr || q->fixed.request_id != id) return std::nullopt;
  return *q;
}

std::optional<wire::RndisStatus> FakeNetvscGuest::Set(wire::NdisOid oid,
                                                      std::span<const uint8_t> info) {
  const uint32_t id = NextRequestId();
  std::vector<uint8_t> buf(wire::RndisSetRequest::kWireSize + info.size());
  if (!wire::EncodeRndisSet(buf, id, oid, info)) return std::nullopt;
  auto reply = RndisRequest(buf);
  if (!reply) return std::nullopt;
  last_reply_ = std::move(*reply);
  auto parsed = wire::ParseRndisMessage(last_reply_, wire::Direction::kHostToGuest);
  if (!parsed) return std::nullopt;
  const auto* s = std::get_if<wire::RndisSetComplete>(&*parsed);
  if (s == nullptr || s->request_id != id) return std::nullopt;
  return s->status;
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

std::optional<wire::NvspStatus> FakeNetvscGuest::SendFrames(
    uint16_t ch, const std::vector<std::vector<uint8_t>>& frames, SendMode mode,
    const wire::RndisPpiSet& ppis) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < frames.size(); ++i) {
    const bool more = i + 1 < frames.size();
    std::vector<uint8_t> msg(wire::RndisPacketHeaderSize(ppis) + frames[i].size() + pkt_align_);
    auto n = wire::EncodeRndisPacket(msg, ppis, frames[i], more ? pkt_align_ : 1);
    if (!n) return std::nullopt;
    bytes.insert(bytes.end(), msg.begin(), msg.begin() + *n);
  }
  return SendRndis(ch, bytes, mode, wire::kNvspRndisChannelData);
}

std::optional<ReceivedIndication> FakeNetvscGuest::WaitIndication(uint16_t ch, bool complete,
                                                                  wire::NvspStatus status) {
  auto pkt = WaitPacket(ch, wire::PacketType::kDataUsingXferPages);
  if (!pkt) return std::nullopt;
  auto parsed = wire::ParseNvspReceivePacket(pkt->bytes, false);
  if (!parsed) return std::nullopt;
  ReceivedIndication ind;
  ind.xfer_pageset_id = parsed->packet.xfer_pageset_id;
  ind.channel_type = parsed->rndis.channel_type;
  ind.nvsp_size = static_cast<uint32_t>(parsed->packet.payload.size());
  const std::span<uint8_t> buffer = receive_buffer();
  for (uint32_t i = 0; i < parsed->packet.range_cnt; ++i) {
    const wire::TransferPageRange r = parsed->packet.range(i);
    ReceivedMessage m;
    m.byte_offset = r.byte_offset;
    m.byte_count = r.byte_count;
    if (wire::CheckReceiveBufferRange(r, buffer.size())) {
      m.bytes.assign(buffer.begin() + r.byte_offset, buffer.begin() + r.byte_offset + r.byte_count);
    }
    ind.messages.push_back(std::move(m));
  }
  ind.packet = std::move(*pkt);
  if (complete) CompleteIndication(ch, ind.packet.desc.trans_id, status);
  return ind;
}

bool FakeNetvscGuest::CompleteIndication(uint16_t ch, uint64_t trans_id, wire::NvspStatus status) {
  wire::NvspSendRndisPacketComplete done;
  done.status = status;
  std::array<uint8_t, 8> buf{};
  auto n = wire::EncodeNvsp(buf, done, wire::kNvspReceiveCompletionSize);
  return n && SendCompletion(ch, trans_id, std::span<const uint8_t>(buf.data(), *n));
}

std::vector<ReceivedFrame> FakeNetvscGuest::ReceiveFrames(uint16_t ch) {
  std::vector<ReceivedFrame> out;
  auto ind = WaitIndication(ch);
  if (!ind) return out;
  for (const auto& m : ind->messages) {
    auto p = wire::ParseRndisPacket(m.bytes, wire::Direction::kHostToGuest);
    if (!p) continue;
    ReceivedFrame f;
    f.frame.assign(p->frame.begin(), p->frame.end());
    f.ppis = p->ppis;
    f.channel = ch;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<ReceivedFrame> FakeNetvscGuest::ReceiveFramesAnyChannel() {
  std::optional<uint16_t> ready;
  WaitUntil([&] {
    for (const auto& c : channels_) {
      for (const auto& p : c->backlog) {
        if (p.type() == wire::PacketType::kDataUsingXferPages) {
          ready = c->index;
          return true;
        }
      }
    }
    return false;
  });
  if (!ready) return {};
  return ReceiveFrames(*ready);
}

// ---------------------------------------------------------------------------------------------
// Frame builders
// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> MakeFrame(const std::array<uint8_t, 6>& dst, const std::array<uint8_t, 6>& src,
                               uint32_t size, uint8_t seed) {
  std::vector<uint8_t> f(std::max<uint32_t>(size, 14));
  std::memcpy(f.data(), dst.data(), 6);
  std::memcpy(f.data() + 6, src.data(), 6);
  f[12] = 0x88;  // local experimental EtherType 0x88B5
  f[13] = 0xB5;
  for (size_t i = 14; i < f.size(); ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

std::vector<uint8_t> MakeTcp4Frame(const std::array<uint8_t, 6>& dst,
                                   const std::array<uint8_t, 6>& src,
                                   const std::array<uint8_t, 4>& src_ip,
                                   const std::array<uint8_t, 4>& dst_ip, uint16_t src_port,
                                   uint16_t dst_port, uint32_t payload) {
  std::vector<uint8_t> f(14 + 20 + 20 + payload);
  std::memcpy(f.data(), dst.data(), 6);
  std::memcpy(f.data() + 6, src.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t total = static_cast<uint16_t>(20 + 20 + payload);
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[6] = 0x40;  // don't fragment
  ip[8] = 64;
  ip[9] = 6;  // TCP
  std::memcpy(ip + 12, src_ip.data(), 4);
  std::memcpy(ip + 16, dst_ip.data(), 4);
  uint8_t* tcp = ip + 20;
  tcp[0] = static_cast<uint8_t>(src_port >> 8);
  tcp[1] = static_cast<uint8_t>(src_port);
  tcp[2] = static_cast<uint8_t>(dst_port >> 8);
  tcp[3] = static_cast<uint8_t>(dst_port);
  tcp[12] = 0x50;
  for (uint32_t i = 0; i < payload; ++i) tcp[20 + i] = static_cast<uint8_t>(i);
  return f;
}

}  // namespace uvmbus::testing
