// File: tests/fakes/fake_netvsp_host.cc
#include "fakes/fake_netvsp_host.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "wire/device_guids.h"
#include "wire/toeplitz.h"

namespace uvmbus::fakes {
namespace {

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
std::vector<uint8_t> Nvsp(const T& msg, size_t padded) {
  std::vector<uint8_t> out(std::max(padded, sizeof(T)));
  auto n = wire::EncodeNvsp(std::span<uint8_t>(out), msg, padded);
  out.resize(n ? *n : 0);
  return out;
}

std::vector<uint8_t> Ucs2(std::string_view s) {
  std::vector<uint8_t> out;
  for (char c : s) {
    out.push_back(static_cast<uint8_t>(c));
    out.push_back(0);
  }
  out.push_back(0);
  out.push_back(0);
  return out;
}

}  // namespace

wire::NdisOffload FakeNetvspHost::Options::DefaultOffload() {
  // What a Hyper-V-like host reports: TCP/UDP checksum both families, LSOv2, RSC.
  wire::NdisOffload o;
  o.header = {wire::kNdisObjectTypeOffload, 3, wire::kNdisOffloadSizeRev3};
  o.csum.ip4_txenc = wire::kNdisEncap802_3;
  o.csum.ip4_txcsum = wire::kNdisTxCsumIpOptions | wire::kNdisTxCsumTcpOptions |
                      wire::kNdisTxCsumTcp | wire::kNdisTxCsumUdp | wire::kNdisTxCsumIp;
  o.csum.ip4_rxenc = wire::kNdisEncap802_3;
  o.csum.ip4_rxcsum = o.csum.ip4_txcsum;
  o.csum.ip6_txenc = wire::kNdisEncap802_3;
  o.csum.ip6_txcsum = wire::kNdisTxCsumIpOptions | wire::kNdisTxCsumTcpOptions |
                      wire::kNdisTxCsumTcp | wire::kNdisTxCsumUdp;
  o.csum.ip6_rxenc = wire::kNdisEncap802_3;
  o.csum.ip6_rxcsum = o.csum.ip6_txcsum;
  o.lsov2.ip4_encap = wire::kNdisEncap802_3;
  o.lsov2.ip4_maxsz = 62780;
  o.lsov2.ip4_minsg = 2;
  o.lsov2.ip6_encap = wire::kNdisEncap802_3;
  o.lsov2.ip6_maxsz = 62780;
  o.lsov2.ip6_minsg = 2;
  o.lsov2.ip6_opts = wire::kNdisLsoV2Ip6ExtHeaders | wire::kNdisLsoV2Ip6TcpOptions;
  o.rsc.ip4 = 1;
  o.rsc.ip6 = 1;
  return o;
}

// ---------------------------------------------------------------------------------------------
// The host::Device

class FakeNetvspHost::Device final : public host::Device {
 public:
  explicit Device(FakeNetvspHost* host) : host_(host) {}
  host::OfferParams Offer() const override {
    host::OfferParams p;
    p.class_id = wire::kNetworkClassGuid;
    p.instance_id = host_->options_.instance_id;
    p.name = "fake-netvsp";
    p.max_inbound_packet_size = 4096;
    return p;
  }
  uint16_t MaxSubchannels() const override { return host_->options_.max_subchannels; }
  void Install(host::DeviceControl* control) override { host_->control_ = control; }
  Status Open(host::HostChannel& channel) override { return host_->OnOpen(channel); }
  host::CloseStatus Close(host::HostChannel& channel) override {
    host_->OnClose(channel);
    return host::CloseStatus::kClosed;
  }

 private:
  FakeNetvspHost* host_;
};

FakeNetvspHost::FakeNetvspHost(partition::HostPartition& partition)
    : FakeNetvspHost(partition, Options{}) {}

FakeNetvspHost::FakeNetvspHost(partition::HostPartition& partition, Options options)
    : partition_(partition), options_(std::move(options)) {}

FakeNetvspHost::~FakeNetvspHost() {
  std::map<uint16_t, std::unique_ptr<Chan>> chans;
  {
    std::lock_guard lock(mu_);
    chans.swap(chans_);
  }
  for (auto& [q, c] : chans) {
    c->stop = true;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(c->stop_fd.get(), &one, sizeof(one));
    if (c->worker.joinable()) c->worker.join();
  }
}

std::unique_ptr<host::Device> FakeNetvspHost::MakeDevice() { return std::make_unique<Device>(this); }

void FakeNetvspHost::Record(std::function<void()> fn) const {
  std::lock_guard lock(mu_);
  fn();
  cv_.notify_all();
}

bool FakeNetvspHost::WaitUntil(const std::function<bool()>& pred,
                               std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (true) {
    lock.unlock();
    const bool ok = pred();
    lock.lock();
    if (ok) return true;
    // Re-evaluated on every host event and at least every 2 ms: predicates may also look at
    // guest state, which does not notify this host.
    if (std::chrono::steady_clock::now() >= deadline) {
      lock.unlock();
      return pred();
    }
    cv_.wait_for(lock, std::chrono::milliseconds(2));
  }
}

Status FakeNetvspHost::OnOpen(host::HostChannel& channel) {
  auto chan = std::make_unique<Chan>();
  chan->channel = &channel;
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return MakeError(ErrorCode::kIo, "eventfd");
  chan->stop_fd = UniqueFd(fd);
  Chan* raw = chan.get();
  bool send_table = false;
  {
    std::lock_guard lock(mu_);
    chans_[channel.sub_channel_index()] = std::move(chan);
    if (channel.sub_channel_index() != 0 && options_.send_indirection_table && !table_sent_ &&
        granted_ > 0 && chans_.size() == size_t{granted_} + 1) {
      table_sent_ = true;
      send_table = true;
    }
    cv_.notify_all();
  }
  raw->worker = std::thread([this, raw] { Worker(raw); });
  if (send_table) SendIndirectionTable();
  return Ok();
}

void FakeNetvspHost::OnClose(host::HostChannel& channel) {
  std::unique_ptr<Chan> chan;
  {
    std::lock_guard lock(mu_);
    auto it = chans_.find(channel.sub_channel_index());
    if (it == chans_.end() || it->second->channel != &channel) return;
    chan = std::move(it->second);
    chans_.erase(it);
    if (channel.sub_channel_index() == 0) {
      // The guest's buffers go away with the primary.
      recv_buf_ = {};
      send_buf_ = {};
      free_sub_allocs_.clear();
      inflight_.clear();
    }
    cv_.notify_all();
  }
  chan->stop = true;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(chan->stop_fd.get(), &one, sizeof(one));
  if (chan->worker.joinable()) chan->worker.join();
}

FakeNetvspHost::Chan* FakeNetvspHost::FindChan(uint16_t queue) const {
  std::lock_guard lock(mu_);
  auto it = chans_.find(queue);
  return it == chans_.end() ? nullptr : it->second.get();
}

void FakeNetvspHost::Worker(Chan* chan) {
  host::HostChannel& ch = *chan->channel;
  ring::IncomingRing& in = ch.inbound();
  while (!chan->stop.load()) {
    if (!chan->paused.load()) {
      // Mask while draining, unmask and re-check before sleeping (spec 3.6, host side).
      in.BeginReadMask();
      for (;;) {
        ring::ReadCursor cursor = in.BeginRead();
        int n = 0;
        for (; n < 64; ++n) {
          const ring::ReadResult r = in.Read(cursor);
          if (r.status == ring::ReadStatus::kEmpty) break;
          if (r.status == ring::ReadStatus::kCorrupt) {
            Record([&] { bad_.push_back("guest ring corrupt"); });
            chan->stop = true;
            break;
          }
          HandlePacket(*chan, r.packet);
        }
        if (in.CommitRead(cursor).needs_signal) ch.SignalGuest();
        if (n == 0 || chan->stop.load() || chan->paused.load()) break;
      }
      auto avail = in.EndReadMask();
      if (avail && *avail > 0 && !chan->paused.load()) continue;
    }
    pollfd fds[2] = {{ch.doorbell_fd(), POLLIN, 0}, {chan->stop_fd.get(), POLLIN, 0}};
    ::poll(fds, 2, chan->paused.load() ? 10 : 200);
    ch.ConsumeDoorbell();
  }
}

// ---------------------------------------------------------------------------------------------
// Guest packets

void FakeNetvspHost::HandlePacket(Chan& chan, const ring::IncomingPacket& packet) {
  GuestPacket rec;
  rec.queue = chan.channel->sub_channel_index();
  rec.desc = packet.desc;
  rec.payload.assign(packet.payload.begin(), packet.payload.end());
  if (packet.payload.size() >= 4) rec.nvsp_type = LoadU32(packet.payload.data());
  const wire::PacketType type = packet.type();
  uint32_t version;
  {
    std::lock_guard lock(mu_);
    version = version_;
  }
  auto msg = wire::ParseNvspMessage(packet.payload, wire::Direction::kGuestToHost, type, version);
  if (!msg) {
    Record([&] {
      bad_.push_back(msg.error().message);
      packets_.push_back(std::move(rec));
    });
    return;
  }
  if (type == wire::PacketType::kComp) {
    // A receive completion (NVSP 108, exactly 8 bytes from Linux).
    if (const auto* c = std::get_if<wire::NvspSendRndisPacketComplete>(&*msg)) {
      Record([&] {
        recv_completions_[packet.desc.trans_id] = static_cast<uint32_t>(c->status);
        auto it = inflight_.find(packet.desc.trans_id);
        if (it != inflight_.end()) {
          for (uint32_t s : it->second) free_sub_allocs_.push_back(s);
          inflight_.erase(it);
        } else {
          bad_.push_back(fmt::format("receive completion for unknown trans_id {:#x}",
                                     packet.desc.trans_id));
        }
        if (packet.payload.size() != wire::kNvspReceiveCompletionSize) {
          bad_.push_back(fmt::format("receive completion of {} bytes", packet.payload.size()));
        }
        packets_.push_back(std::move(rec));
      });
      std::vector<std::vector<uint8_t>> pending;
      {
        std::lock_guard lock(mu_);
        pending.swap(pending_rndis_);
      }
      for (auto& resp : pending) {
        if (auto r = SendRndisMessages(0, {resp}, wire::kNvspRndisChannelControl); !r) {
          Record([&] { pending_rndis_.push_back(std::move(resp)); });
        }
      }
    } else {
      Record([&] { bad_.push_back("unexpected completion from the guest"); });
    }
    return;
  }
  if (const auto* rndis = std::get_if<wire::NvspSendRndisPacket>(&*msg)) {
    HandleRndisPacket(chan, packet, *rndis, rec);
    return;
  }
  Record([&] { packets_.push_back(rec); });
  HandleNvspControl(chan, packet, *msg);
}

void FakeNetvspHost::HandleNvspControl(Chan& chan, const ring::IncomingPacket& packet,
                                       const wire::NvspMessage& msg) {
  uint32_t version;
  {
    std::lock_guard lock(mu_);
    version = version_;
  }
  const size_t size = wire::NvspHostMessageSize(version == 0 ? wire::kNvspVersion61 : version);
  const uint32_t request_type = static_cast<uint32_t>(wire::TypeOf(msg));
  std::vector<uint8_t> reply;
  std::function<void()> after;
  if (const auto* init = std::get_if<wire::NvspInit>(&msg)) {
    wire::NvspInitComplete c;
    const bool ok = options_.accepted_versions.count(init->min_protocol_ver) != 0;
    c.negotiated_protocol_ver = wire::NvspDeprecatedNegotiatedVersion(init->min_protocol_ver);
    c.max_mdl_chain_len = wire::kNvspMaxMdlChainLength;
    c.status = ok ? wire::NvspStatus::kSuccess : wire::NvspStatus::kNone;
    if (ok) Record([&] { version_ = init->min_protocol_ver; });
    reply = Nvsp(c, wire::NvspHostMessageSize(init->min_protocol_ver));
  } else if (const auto* cfg = std::get_if<wire::NvspSendNdisConfig>(&msg)) {
    Record([&] { ndis_config_ = *cfg; });
  } else if (const auto* rb = std::get_if<wire::NvspSendReceiveBuffer>(&msg)) {
    wire::NvspSendReceiveBufferComplete c;
    c.status = static_cast<wire::NvspStatus>(options_.recv_status);
    c.num_sections = options_.recv_num_sections;
    auto span = chan.channel->GpadlSpan(rb->gpadl_handle);
    if (!span) {
      c.status = wire::NvspStatus::kFail;
      Record([&] { bad_.push_back("receive buffer GPADL unknown"); });
    } else {
      const uint32_t sub = options_.recv_sub_alloc_size;
      const uint32_t count = options_.recv_num_sub_allocs != 0
                                 ? options_.recv_num_sub_allocs
                                 : static_cast<uint32_t>(span->size() / std::max(sub, 1u));
      c.section = {options_.recv_section_offset, sub, count, sub * count};
      Record([&] {
        recv_buf_ = *span;
        sub_alloc_size_ = sub;
        sub_allocs_ = std::min<uint32_t>(count, static_cast<uint32_t>(span->size() / std::max(sub, 1u)));
        free_sub_allocs_.clear();
        for (uint32_t i = sub_allocs_; i > 0; --i) free_sub_allocs_.push_back(i - 1);
      });
    }
    reply = Nvsp(c, size);
  } else if (const auto* sb = std::get_if<wire::NvspSendSendBuffer>(&msg)) {
    wire::NvspSendSendBufferComplete c;
    c.status = static_cast<wire::NvspStatus>(options_.send_status);
    c.section_size = options_.send_section_size;
    auto span = chan.channel->GpadlSpan(sb->gpadl_handle);
    if (!span) {
      c.status = wire::NvspStatus::kFail;
      Record([&] { bad_.push_back("send buffer GPADL unknown"); });
    } else {
      Record([&] { send_buf_ = *span; });
    }
    reply = Nvsp(c, size);
  } else if (const auto* sc = std::get_if<wire::NvspSubchannelRequest>(&msg)) {
    wire::NvspSubchannelComplete c;
    c.status = static_cast<wire::NvspStatus>(options_.subchannel_status);
    const uint32_t grant =
        options_.subchannel_grant >= 0
            ? static_cast<uint32_t>(options_.subchannel_grant)
            : std::min<uint32_t>(sc->num_subchannels, options_.max_subchannels);
    c.num_subchannels = grant;
    reply = Nvsp(c, size);
    if (options_.subchannel_status == 1 && grant > 0 && grant <= options_.max_subchannels) {
      Record([&] { granted_ = grant; });
      after = [this, grant] {
        if (auto r = control_->OfferSubchannels(static_cast<uint16_t>(grant)); !r) {
          Record([&] { bad_.push_back("OfferSubchannels: " + r.error().message); });
        }
      };
    }
  } else if (std::holds_alternative<wire::NvspSendNdisVersion>(msg) ||
             std::holds_alternative<wire::NvspRevokeReceiveBuffer>(msg) ||
             std::holds_alternative<wire::NvspRevokeSendBuffer>(msg)) {
    // Recorded only; no completion (Linux requests none).
  } else {
    Record([&] { bad_.push_back(fmt::format("unhandled NVSP type {}", request_type)); });
  }
  if (packet.completion_requested()) {
    if (reply.empty()) {
      Record([&] { bad_.push_back(fmt::format("completion requested for NVSP {}", request_type)); });
    } else {
      bool send = true;
      NvspHook hook;
      {
        std::lock_guard lock(mu_);
        hook = nvsp_hook_;
      }
      if (hook) hook(request_type, reply, send);
      if (send) ReplyCompletion(chan, packet.desc.trans_id, reply);
    }
  } else if (!reply.empty()) {
    Record([&] { bad_.push_back(fmt::format("NVSP {} without completion request", request_type)); });
  }
  if (after) after();
}

std::vector<uint8_t> FakeNetvspHost::GatherGpaDirect(std::span<const uint8_t> packet,
                                                     uint32_t* range_count, uint32_t* first_range) {
  std::vector<uint8_t> out;
  auto gpa = wire::ParseGpaDirectPacket(packet);
  if (!gpa) {
    Record([&] { bad_.push_back("bad GPA-direct packet"); });
    return out;
  }
  *range_count = gpa->range_cnt;
  wire::GpaDirectRangeReader reader(*gpa);
  wire::GpaDirectRange range;
  bool first = true;
  while (reader.Next(&range)) {
    if (first) *first_range = range.byte_count;
    first = false;
    uint64_t offset = range.byte_offset;
    uint64_t left = range.byte_count;
    for (uint32_t p = 0; p < range.page_count() && left > 0; ++p) {
      auto page = partition_.GuestPages(range.pfn(p), 1);
      if (!page) {
        Record([&] { bad_.push_back("GPA-direct page outside guest RAM"); });
        return {};
      }
      const uint64_t n = std::min<uint64_t>(left, 4096 - offset);
      out.insert(out.end(), page->begin() + static_cast<ptrdiff_t>(offset),
                 page->begin() + static_cast<ptrdiff_t>(offset + n));
      left -= n;
      offset = 0;
    }
  }
  return out;
}

void FakeNetvspHost::HandleRndisPacket(Chan& chan, const ring::IncomingPacket& packet,
                                       const wire::NvspSendRndisPacket& msg, GuestPacket& rec) {
  std::vector<uint8_t> bytes;
  if (packet.type() == wire::PacketType::kDataUsingGpaDirect) {
    bytes = GatherGpaDirect(packet.bytes, &rec.range_count, &rec.first_range_bytes);
    if (msg.send_buf_section_index != wire::kNvspNoSendSection) {
      Record([&] { bad_.push_back("GPA-direct send names a section"); });
    }
  } else {
    std::span<uint8_t> send_buf;
    {
      std::lock_guard lock(mu_);
      send_buf = send_buf_;
    }
    auto section =
        wire::ResolveSendSection(msg, options_.send_section_size, send_buf.size());  // P8, P9
    if (!section || !section->used) {
      Record([&] { bad_.push_back("bad send section"); });
    } else {
      bytes.assign(send_buf.begin() + static_cast<ptrdiff_t>(section->offset),
                   send_buf.begin() + static_cast<ptrdiff_t>(section->offset + section->length));
    }
  }
  rec.rndis = bytes;
  if (bytes.size() >= 4) rec.rndis_type = LoadU32(bytes.data());
  if (bytes.size() >= 16 &&
      (rec.rndis_type == static_cast<uint32_t>(wire::RndisMessageType::kQuery) ||
       rec.rndis_type == static_cast<uint32_t>(wire::RndisMessageType::kSet))) {
    rec.oid = LoadU32(bytes.data() + 12);
  }
  const uint16_t queue = chan.channel->sub_channel_index();
  const uint64_t trans_id = packet.desc.trans_id;
  if (!packet.completion_requested()) {
    Record([&] { bad_.push_back("SEND_RNDIS_PKT without completion request"); });
  }
  if (msg.channel_type == wire::kNvspRndisChannelControl) {
    Record([&] { packets_.push_back(rec); });
    HandleRndisControl(bytes);
    std::vector<uint8_t> c = Nvsp(wire::NvspSendRndisPacketComplete{
                                      wire::NvspSendRndisPacketComplete::kType,
                                      wire::NvspStatus::kSuccess},
                                  wire::kNvspReceiveCompletionSize);
    ReplyCompletion(chan, trans_id, c);
    return;
  }
  // Data: one or several PACKET_MSGs (a batched section).
  std::vector<TxFrame> got;
  wire::RndisMessageSplitter split(bytes, options_.max_packets_per_message);
  while (!split.Done()) {
    auto one = split.Next();
    if (!one) {
      Record([&] { bad_.push_back("RNDIS batch: " + one.error().message); });
      break;
    }
    auto pkt = wire::ParseRndisPacket(*one, wire::Direction::kGuestToHost);
    if (!pkt) {
      Record([&] { bad_.push_back("RNDIS packet: " + pkt.error().message); });
      continue;
    }
    TxFrame f;
    f.queue = queue;
    f.bytes.assign(pkt->frame.begin(), pkt->frame.end());
    f.ppis = pkt->ppis;
    f.gpa_direct = packet.type() == wire::PacketType::kDataUsingGpaDirect;
    got.push_back(std::move(f));
  }
  bool complete;
  uint32_t status;
  {
    std::lock_guard lock(mu_);
    complete = options_.complete_tx;
    status = options_.tx_completion_status;
    if (!complete) held_.emplace_back(queue, trans_id);
  }
  Record([&] {
    packets_.push_back(rec);
    for (auto& f : got) frames_.push_back(std::move(f));
  });
  if (complete) {
    std::vector<uint8_t> c = Nvsp(
        wire::NvspSendRndisPacketComplete{wire::NvspSendRndisPacketComplete::kType,
                                          static_cast<wire::NvspStatus>(status)},
        wire::kNvspReceiveCompletionSize);
    ReplyCompletion(chan, trans_id, c);
  }
}

void FakeNetvspHost::HandleRndisControl(std::span<const uint8_t> bytes) {
  auto msg = wire::ParseRndisMessage(bytes, wire::Direction::kGuestToHost);
  if (!msg) {
    Record([&] { bad_.push_back("RNDIS control: " + msg.error().message); });
    return;
  }
  std::vector<uint8_t> resp(8192);
  size_t n = 0;
  uint32_t request_type = static_cast<uint32_t>(wire::TypeOf(*msg));
  uint32_t oid = 0;
  if (const auto* init = std::get_if<wire::RndisInitializeRequest>(&*msg)) {
    wire::RndisInitializeComplete c;
    c.request_id = init->request_id;
    c.status = options_.init_status;
    c.max_packets_per_message = options_.max_packets_per_message;
    c.packet_alignment_factor = options_.packet_alignment_factor;
    n = *wire::EncodeRndis(std::span<uint8_t>(resp), c);
  } else if (const auto* q = std::get_if<wire::RndisQueryMessage>(&*msg)) {
    oid = static_cast<uint32_t>(q->fixed.oid);
    std::vector<uint8_t> info;
    wire::RndisStatus status = wire::RndisStatus::kSuccess;
    auto u32 = [&](uint32_t v) {
      info.resize(4);
      std::memcpy(info.data(), &v, 4);
    };
    switch (q->fixed.oid) {
      case wire::NdisOid::kGenMaximumFrameSize:
        u32(options_.max_frame_size);
        break;
      case wire::NdisOid::k802_3PermanentAddress:
        info.assign(options_.mac.bytes.begin(), options_.mac.bytes.end());
        break;
      case wire::NdisOid::kGenFriendlyName:
        info = Ucs2(options_.friendly_name);
        break;
      case wire::NdisOid::kGenMediaConnectStatus:
        u32(options_.media_connected ? wire::kNdisMediaStateConnected
                                     : wire::kNdisMediaStateDisconnected);
        break;
      case wire::NdisOid::kGenLinkSpeed:
        u32(options_.link_speed);
        break;
      case wire::NdisOid::kTcpOffloadHardwareCapabilities: {
        // Answer with the revision the guest asked for (its input header), as Windows does.
        wire::NdisOffload o = options_.offload;
        if (q->info.size() >= 4) {
          wire::NdisObjectHeader h;
          std::memcpy(&h, q->info.data(), sizeof(h));
          if (h.size >= wire::kNdisOffloadSizeRev1 && h.size <= sizeof(o)) o.header = h;
        }
        info.resize(o.header.size);
        std::memcpy(info.data(), &o, o.header.size);
        break;
      }
      case wire::NdisOid::kGenReceiveScaleCapabilities:
        if (options_.rss_queues == 0) {
          status = wire::RndisStatus::kNotSupported;
        } else {
          wire::NdisReceiveScaleCapabilities c;
          c.cap_flag = wire::kNdisHashFunctionToeplitz | wire::kNdisRssCapsHashTypeTcpIpv4 |
                       wire::kNdisRssCapsHashTypeTcpIpv6;
          c.num_int_msg = 1;
          c.num_recv_que = options_.rss_queues;
          c.num_indirect_tabent = 128;
          info.resize(sizeof(c));
          std::memcpy(info.data(), &c, sizeof(c));
        }
        break;
      default:
        status = wire::RndisStatus::kNotSupported;
        break;
    }
    n = *wire::EncodeRndisQueryComplete(std::span<uint8_t>(resp), q->fixed.request_id, status,
                                        info);
  } else if (const auto* s = std::get_if<wire::RndisSetMessage>(&*msg)) {
    oid = static_cast<uint32_t>(s->fixed.oid);
    wire::RndisSetComplete c;
    c.request_id = s->fixed.request_id;
    c.status = wire::RndisStatus::kSuccess;
    switch (s->fixed.oid) {
      case wire::NdisOid::kGenCurrentPacketFilter:
        if (s->info.size() >= 4) {
          Record([&] { filter_ = LoadU32(s->info.data()); });
        } else {
          c.status = wire::RndisStatus::kInvalidLength;
        }
        break;
      case wire::NdisOid::kTcpOffloadParameters: {
        auto p = wire::ParseNdisOffloadParams(s->info);
        if (p) {
          Record([&] { offload_params_ = *p; });
        } else {
          Record([&] { bad_.push_back("offload params: " + p.error().message); });
          c.status = wire::RndisStatus::kInvalidData;
        }
        break;
      }
      case wire::NdisOid::kGenReceiveScaleParameters: {
        auto p = wire::ParseRssParameters(s->info);
        if (p) {
          Record([&] { rss_.push_back(*p); });
        } else {
          Record([&] { bad_.push_back("RSS params: " + p.error().message); });
          c.status = wire::RndisStatus::kInvalidData;
        }
        break;
      }
      default:
        c.status = wire::RndisStatus::kNotSupported;
        break;
    }
    n = *wire::EncodeRndis(std::span<uint8_t>(resp), c);
  } else if (std::holds_alternative<wire::RndisHaltRequest>(*msg)) {
    Record([&] { halted_ = true; });
    return;  // no reply
  } else {
    Record([&] { bad_.push_back(fmt::format("unexpected RNDIS request {:#x}", request_type)); });
    return;
  }
  resp.resize(n);
  bool send = true;
  RndisHook hook;
  {
    std::lock_guard lock(mu_);
    hook = rndis_hook_;
  }
  if (hook) hook(request_type, oid, resp, send);
  if (!send) return;
  if (auto r = SendRndisMessages(0, {resp}, wire::kNvspRndisChannelControl); !r) {
    if (r.error().code == ErrorCode::kResourceExhausted) {
      // Every sub-allocation is still with the guest: answer once it completes one.
      Record([&] { pending_rndis_.push_back(std::move(resp)); });
    } else {
      Record([&] { bad_.push_back("cannot answer RNDIS: " + r.error().message); });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing to the guest

Status FakeNetvspHost::WriteToGuest(Chan& chan, std::span<const uint8_t> header,
                                    std::span<const uint8_t> payload) {
  std::lock_guard lock(chan.out_mu);
  if (chan.corrupted) {
    return MakeError(ErrorCode::kUnavailable, "host->guest ring corrupted on purpose");
  }
  ring::OutgoingRing& out = chan.channel->outbound();
  // The guest drains continuously; a full ring is retried briefly (replies are rare).
  for (int attempt = 0; attempt < 2000; ++attempt) {
    ring::WriteCursor cursor = out.BeginWrite();
    const ring::WriteResult r = out.Write(cursor, header, payload);
    if (r.ok()) {
      if (out.CommitWrite(cursor).needs_signal) chan.channel->SignalGuest();
      return Ok();
    }
    if (r.status != ring::WriteStatus::kFull || chan.stop.load()) {
      return MakeError(ErrorCode::kInternal, "host->guest write: {}", ring::RingErrorName(r.error));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return MakeError(ErrorCode::kInternal, "host->guest ring stays full");
}

Status FakeNetvspHost::ReplyCompletion(Chan& chan, uint64_t trans_id,
                                       std::span<const uint8_t> payload) {
  std::array<uint8_t, 16> header{};
  auto n = wire::EncodeCompletionHeader(header, static_cast<uint32_t>(payload.size()), trans_id);
  if (!n) return MakeError(ErrorCode::kInternal, "completion header");
  return WriteToGuest(chan, std::span<const uint8_t>(header.data(), *n), payload);
}

void FakeNetvspHost::SendIndirectionTable() {
  uint32_t granted;
  {
    std::lock_guard lock(mu_);
    granted = granted_;
  }
  std::array<uint32_t, wire::kNvspSendIndirectionTableSize> table{};
  wire::FillDefaultIndirectionTable(table, granted + 1);
  std::array<uint8_t, wire::kNvspSendIndirectionTableMessageSize> msg{};
  (void)wire::EncodeNvspSendIndirectionTable(msg, table);
  if (Status st = SendInband(0, msg); !st) {
    Record([&] { bad_.push_back("send table: " + st.error().message); });
  }
}

std::optional<uint32_t> FakeNetvspHost::TakeSubAlloc() {
  if (free_sub_allocs_.empty()) return std::nullopt;
  const uint32_t s = free_sub_allocs_.back();
  free_sub_allocs_.pop_back();
  return s;
}

Expected<uint64_t> FakeNetvspHost::SendRndisMessages(uint16_t queue,
                                                     const std::vector<std::vector<uint8_t>>& messages,
                                                     uint32_t channel_type,
                                                     std::vector<uint32_t> range_bytes) {
  Chan* chan = FindChan(queue);
  if (chan == nullptr) return MakeError(ErrorCode::kUnavailable, "queue {} not open", queue);
  std::vector<wire::TransferPageRange> ranges;
  std::vector<uint32_t> subs;
  const uint64_t trans_id = NextTransId();
  uint32_t version;
  {
    std::lock_guard lock(mu_);
    version = version_;
    if (recv_buf_.empty()) return MakeError(ErrorCode::kUnavailable, "no receive buffer");
    for (size_t i = 0; i < messages.size(); ++i) {
      auto s = TakeSubAlloc();
      if (!s || messages[i].size() > sub_alloc_size_) {
        if (s) subs.push_back(*s);
        for (uint32_t x : subs) free_sub_allocs_.push_back(x);
        return MakeError(ErrorCode::kResourceExhausted, "no sub-allocation for message {}", i);
      }
      subs.push_back(*s);
      const uint64_t off = uint64_t{*s} * sub_alloc_size_;
      std::memcpy(recv_buf_.data() + off, messages[i].data(), messages[i].size());
      const uint32_t len = i < range_bytes.size() ? range_bytes[i]
                                                  : static_cast<uint32_t>(messages[i].size());
      ranges.push_back({len, static_cast<uint32_t>(off)});
    }
    inflight_[trans_id] = subs;
  }
  wire::NvspSendRndisPacket m;
  m.channel_type = channel_type;
  m.send_buf_section_index = wire::kNvspNoSendSection;
  m.send_buf_section_size = 0;
  const std::vector<uint8_t> nvsp = Nvsp(m, wire::NvspHostMessageSize(version));
  if (Status st = SendTransferPages(queue, ranges, nvsp, trans_id); !st) {
    return tl::unexpected(st.error());
  }
  return trans_id;
}

Expected<uint64_t> FakeNetvspHost::SendFrames(uint16_t queue,
                                              const std::vector<std::vector<uint8_t>>& frames,
                                              const wire::RndisPpiSet& ppis) {
  std::vector<std::vector<uint8_t>> messages;
  for (const auto& f : frames) {
    std::vector<uint8_t> m(wire::RndisPacketHeaderSize(ppis) + f.size());
    auto n = wire::EncodeRndisPacket(m, ppis, f);
    if (!n) return tl::unexpected(n.error());
    m.resize(*n);
    messages.push_back(std::move(m));
  }
  return SendRndisMessages(queue, messages, wire::kNvspRndisChannelData);
}

Expected<uint64_t> FakeNetvspHost::IndicateStatus(wire::RndisStatus status,
                                                  std::span<const uint8_t> buffer) {
  std::vector<uint8_t> m(64 + buffer.size());
  auto n = wire::EncodeRndisIndicateStatus(m, status, buffer);
  if (!n) return tl::unexpected(n.error());
  m.resize(*n);
  return SendRndisMessages(0, {m}, wire::kNvspRndisChannelControl);
}

Status FakeNetvspHost::WriteReceiveBuffer(uint64_t offset, std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  if (offset > recv_buf_.size() || bytes.size() > recv_buf_.size() - offset) {
    return MakeError(ErrorCode::kInvalidArgument, "outside the receive buffer");
  }
  std::memcpy(recv_buf_.data() + offset, bytes.data(), bytes.size());
  return Ok();
}

uint64_t FakeNetvspHost::receive_buffer_size() const {
  std::lock_guard lock(mu_);
  return recv_buf_.size();
}

uint32_t FakeNetvspHost::sub_alloc_size() const {
  std::lock_guard lock(mu_);
  return sub_alloc_size_;
}

Status FakeNetvspHost::InjectPacket(uint16_t queue, std::span<const uint8_t> header,
                                    std::span<const uint8_t> payload) {
  Chan* chan = FindChan(queue);
  if (chan == nullptr) return MakeError(ErrorCode::kUnavailable, "queue {} not open", queue);
  return WriteToGuest(*chan, header, payload);
}

Status FakeNetvspHost::InjectBatch(
    uint16_t queue,
    const std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>>& packets) {
  Chan* chan = FindChan(queue);
  if (chan == nullptr) return MakeError(ErrorCode::kUnavailable, "queue {} not open", queue);
  std::lock_guard lock(chan->out_mu);
  if (chan->corrupted) {
    return MakeError(ErrorCode::kUnavailable, "host->guest ring corrupted on purpose");
  }
  ring::OutgoingRing& out = chan->channel->outbound();
  ring::WriteCursor cursor = out.BeginWrite();
  for (const auto& [header, payload] : packets) {
    const ring::WriteResult r = out.Write(cursor, header, payload);
    if (!r.ok()) {
      return MakeError(ErrorCode::kInternal, "batch write: {}", ring::RingErrorName(r.error));
    }
  }
  if (out.CommitWrite(cursor).needs_signal) chan->channel->SignalGuest();
  return Ok();
}

Status FakeNetvspHost::SendInband(uint16_t queue, std::span<const uint8_t> payload,
                                  uint64_t trans_id, bool completion_requested) {
  std::array<uint8_t, 16> header{};
  auto n = wire::EncodeInbandHeader(header, static_cast<uint32_t>(payload.size()), trans_id,
                                    completion_requested);
  if (!n) return MakeError(ErrorCode::kInternal, "in-band header");
  return InjectPacket(queue, std::span<const uint8_t>(header.data(), *n), payload);
}

Status FakeNetvspHost::SendCompletion(uint16_t queue, uint64_t trans_id,
                                      std::span<const uint8_t> payload) {
  Chan* chan = FindChan(queue);
  if (chan == nullptr) return MakeError(ErrorCode::kUnavailable, "queue {} not open", queue);
  return ReplyCompletion(*chan, trans_id, payload);
}

Status FakeNetvspHost::SendTransferPages(uint16_t queue,
                                         std::span<const wire::TransferPageRange> ranges,
                                         std::span<const uint8_t> nvsp, uint64_t trans_id,
                                         uint16_t pageset_id) {
  std::vector<uint8_t> header(wire::TransferPageHeaderSize(ranges.size()));
  auto n = wire::EncodeTransferPageHeader(header, pageset_id, ranges,
                                          static_cast<uint32_t>(nvsp.size()), trans_id, true);
  if (!n) return MakeError(ErrorCode::kInternal, "transfer-page header");
  return InjectPacket(queue, std::span<const uint8_t>(header.data(), *n), nvsp);
}

Status FakeNetvspHost::CorruptGuestRing(uint16_t queue, uint32_t write_index) {
  Chan* chan = FindChan(queue);
  if (chan == nullptr) return MakeError(ErrorCode::kUnavailable, "queue {} not open", queue);
  {
    std::lock_guard lock(chan->out_mu);
    chan->corrupted = true;
    chan->channel->outbound().view().write_index().store(write_index, std::memory_order_release);
  }
  chan->channel->SignalGuest();
  return Ok();
}

void FakeNetvspHost::Signal(uint16_t queue) {
  if (Chan* chan = FindChan(queue)) chan->channel->SignalGuest();
}

// ---------------------------------------------------------------------------------------------
// Script and records

void FakeNetvspHost::SetCompleteTx(bool complete) {
  std::lock_guard lock(mu_);
  options_.complete_tx = complete;
}

void FakeNetvspHost::CompleteHeldTx(uint32_t status) {
  std::vector<std::pair<uint16_t, uint64_t>> held;
  {
    std::lock_guard lock(mu_);
    held.swap(held_);
  }
  for (const auto& [queue, trans_id] : held) {
    Chan* chan = FindChan(queue);
    if (chan == nullptr) continue;
    std::vector<uint8_t> c = Nvsp(wire::NvspSendRndisPacketComplete{
                                      wire::NvspSendRndisPacketComplete::kType,
                                      static_cast<wire::NvspStatus>(status)},
                                  wire::kNvspReceiveCompletionSize);
    (void)ReplyCompletion(*chan, trans_id, c);
  }
}

void FakeNetvspHost::PauseReading(uint16_t queue, bool paused) {
  if (Chan* chan = FindChan(queue)) {
    chan->paused = paused;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(chan->stop_fd.get(), &one, sizeof(one));
    if (!paused) {
      uint64_t v;
      [[maybe_unused]] ssize_t m = ::read(chan->stop_fd.get(), &v, sizeof(v));
      chan->channel->SignalGuest();
    }
  }
}

void FakeNetvspHost::SetRndisHook(RndisHook hook) {
  std::lock_guard lock(mu_);
  rndis_hook_ = std::move(hook);
}

void FakeNetvspHost::SetNvspHook(NvspHook hook) {
  std::lock_guard lock(mu_);
  nvsp_hook_ = std::move(hook);
}

std::vector<FakeNetvspHost::GuestPacket> FakeNetvspHost::packets() const {
  std::lock_guard lock(mu_);
  return packets_;
}

std::vector<FakeNetvspHost::TxFrame> FakeNetvspHost::frames() const {
  std::lock_guard lock(mu_);
  return frames_;
}

size_t FakeNetvspHost::frame_count() const {
  std::lock_guard lock(mu_);
  return frames_.size();
}

std::vector<std::string> FakeNetvspHost::bad_guest_messages() const {
  std::lock_guard lock(mu_);
  return bad_;
}

std::vector<uint32_t> FakeNetvspHost::nvsp_types() const {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> out;
  for (const auto& p : packets_) out.push_back(p.nvsp_type);
  return out;
}

std::optional<uint32_t> FakeNetvspHost::packet_filter() const {
  std::lock_guard lock(mu_);
  return filter_;
}

std::vector<wire::RssParameters> FakeNetvspHost::rss_sets() const {
  std::lock_guard lock(mu_);
  return rss_;
}

std::optional<wire::NdisOffloadParams> FakeNetvspHost::offload_params() const {
  std::lock_guard lock(mu_);
  return offload_params_;
}

std::optional<wire::NvspSendNdisConfig> FakeNetvspHost::ndis_config() const {
  std::lock_guard lock(mu_);
  return ndis_config_;
}

uint32_t FakeNetvspHost::negotiated_version() const {
  std::lock_guard lock(mu_);
  return version_;
}

uint32_t FakeNetvspHost::subchannels_granted() const {
  std::lock_guard lock(mu_);
  return granted_;
}

uint32_t FakeNetvspHost::open_channels() const {
  std::lock_guard lock(mu_);
  return static_cast<uint32_t>(chans_.size());
}

bool FakeNetvspHost::halted() const {
  std::lock_guard lock(mu_);
  return halted_;
}

std::map<uint64_t, uint32_t> FakeNetvspHost::receive_completions() const {
  std::lock_guard lock(mu_);
  return recv_completions_;
}

size_t FakeNetvspHost::inflight_receives() const {
  std::lock_guard lock(mu_);
  return inflight_.size();
}

size_t FakeNetvspHost::held_tx() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

}  // namespace uvmbus::fakes
