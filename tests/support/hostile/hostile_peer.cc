// File: tests/support/hostile/hostile_peer.cc
//
// The hostile peers (see hostile_peer.h). Each attack is a fixed list of items or a seeded random
// sequence; nothing here waits on time except the benches' bounded WaitUntil loops.
#include "hostile/hostile_peer.h"

#include <poll.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "net/frame.h"
#include "net/pipe.h"
#include "wire/device_guids.h"
#include "wire/gpa_range.h"
#include "wire/nvsp.h"
#include "wire/rndis.h"
#include "wire/versions.h"

namespace uvmbus::hostile {
namespace {

constexpr uint64_t kGuestRam = 16ull << 20;
constexpr uint32_t kBadHandle = 0xBADBAD;
constexpr std::chrono::milliseconds kWait{5000};

// A 60-byte IPv4 frame from `src` to `dst` whose payload bytes follow `seed`.
std::vector<uint8_t> TestFrame(const std::array<uint8_t, 6>& dst, const std::array<uint8_t, 6>& src,
                               uint8_t seed) {
  std::vector<uint8_t> f(60, 0);
  std::memcpy(f.data(), dst.data(), 6);
  std::memcpy(f.data() + 6, src.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (size_t i = 14; i < f.size(); ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

template <typename T>
std::vector<uint8_t> NvspBytes(const T& msg) {
  std::vector<uint8_t> out(wire::kNvspLinuxMessageSize);
  auto n = wire::EncodeNvsp(std::span<uint8_t>(out), msg, wire::kNvspLinuxMessageSize);
  out.resize(n ? *n : 0);
  return out;
}

void PutU32(std::vector<uint8_t>& v, size_t off, uint32_t x) {
  if (v.size() < off + 4) v.resize(off + 4);
  std::memcpy(v.data() + off, &x, 4);
}

// The NVSP types a guest sends (spec 5.3) with the fixed size of each.
struct NvspSample {
  uint32_t type;
  size_t size;
};
constexpr std::array<NvspSample, 8> kGuestNvsp = {{{1, 12},
                                                    {100, 12},
                                                    {101, 12},
                                                    {104, 12},
                                                    {107, 16},
                                                    {108, 8},
                                                    {125, 20},
                                                    {133, 12}}};

// Channel-message types a host sends (spec 2.2) with their minimum sizes (spec 9.2 M5).
constexpr std::array<NvspSample, 8> kHostChannel = {{{1, 196},
                                                      {2, 12},
                                                      {6, 20},
                                                      {10, 20},
                                                      {12, 12},
                                                      {15, 16},
                                                      {24, 16},
                                                      {4, 8}}};

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

std::string_view StepName(Step step) {
  switch (step) {
    case Step::kHello: return "after_hello";
    case Step::kContact: return "after_initiate_contact";
    case Step::kOffers: return "after_offers";
    case Step::kGpadl: return "after_gpadl";
    case Step::kOpen: return "after_open";
    case Step::kNvspInit: return "mid_nvsp_bringup";
    case Step::kRndisInit: return "mid_rndis_bringup";
    case Step::kTraffic: return "during_traffic";
  }
  return "unknown";
}

std::string_view AttackName(Attack attack) {
  switch (attack) {
    case Attack::kGarbage: return "garbage";
    case Attack::kTruncated: return "truncated";
    case Attack::kReplay: return "replayed";
    case Attack::kOutOfOrder: return "out_of_order";
    case Attack::kRingCorrupt: return "ring_corrupt";
  }
  return "unknown";
}

uint64_t Prng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<uint8_t> Prng::Bytes(size_t n) {
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(Next());
  return out;
}

// ---------------------------------------------------------------------------------------------
// HostBench
// ---------------------------------------------------------------------------------------------

HostBench::HostBench() {
  host::HostServiceOptions options;
  options.reaper_thread = false;
  service_ = std::make_unique<host::HostService>(
      [this](const partition::PeerInfo& peer) {
        std::vector<std::unique_ptr<host::Device>> devices;
        Guest* g = pending_;
        if (g == nullptr || peer.name != g->name) return devices;
        net::RingEndpointOptions po;
        po.name = "pipe-" + g->name;
        po.queues = 1;
        auto pipe = net::CreatePipe(po);
        if (!pipe) return devices;
        g->app = std::move(pipe->app);
        netvsp::NicConfig config;
        config.id = "net0";
        config.mac.bytes = g->mac;
        config.queues = 1;
        config.backend = std::shared_ptr<net::Endpoint>(std::move(pipe->nic));
        config.worker_threads = false;  // pumped by the test thread: deterministic
        auto device = netvsp::NetvspDevice::Create(std::move(config));
        if (!device) return devices;
        g->device = device->get();
        g->counters = g->device->counters();
        devices.push_back(std::move(*device));
        return devices;
      },
      options);
}

HostBench::~HostBench() {
  for (auto& [name, g] : guests_) {
    g->netvsc.reset();
    g->vmbus.reset();
  }
  service_.reset();  // closes the channels in the devices and destroys them
  guests_.clear();
}

HostBench::Guest* HostBench::AddGuest(const std::string& name) {
  auto g = std::make_unique<Guest>();
  g->name = name;
  g->mac = {0x00, 0x15, 0x5d, 0x00, 0x00, static_cast<uint8_t>(guests_.size() + 1)};
  auto p = partition::LocalPartition::Create(1, kGuestRam, name);
  if (!p) return nullptr;
  g->partition = std::move(*p);
  pending_ = g.get();
  const auto added = service_->AddGuest(&g->partition->host());
  pending_ = nullptr;
  if (!added || g->device == nullptr) return nullptr;
  g->vmbus = std::make_unique<testing::FakeVmbusGuest>(g->partition->guest());
  Guest* raw = g.get();
  g->netvsc = std::make_unique<testing::FakeNetvscGuest>(*g->partition, *g->vmbus,
                                                         [raw] { Pump(*raw); });
  guests_[name] = std::move(g);
  return raw;
}

std::optional<host::ServerSnapshot> HostBench::Snapshot(const Guest& guest) const {
  for (auto& s : service_->Snapshot().guests) {
    if (s.peer.name == guest.name) return s;
  }
  return std::nullopt;
}

uint64_t HostBench::Rejections(const Guest& guest) const {
  uint64_t n = 0;
  if (auto s = Snapshot(guest)) {
    for (const auto& [name, value] : s->rejections) n += value;
  }
  if (guest.counters) {
    using S = netvsp::Stat;
    for (S stat : {S::kTxNoSendBuffer, S::kTxBadSection, S::kTxBadGpa, S::kTxBadRndis,
                   S::kTxBadOffload, S::kTxTooBig, S::kTxNoData, S::kTxNotReady,
                   S::kRxCompletionUnknown, S::kRingCorrupt, S::kNvspMalformed,
                   S::kNvspUnexpected, S::kNvspBadVersion, S::kNvspVersionRefused,
                   S::kNvspBeforeInit, S::kNvspDuplicate, S::kRecvBufBeforeNdisConfig,
                   S::kRecvBufBadGpadl, S::kRecvBufBadSize, S::kSendBufBadGpadl,
                   S::kSendBufBadSize, S::kRndisBeforeInit, S::kRndisBadState,
                   S::kRndisUnsupported, S::kRndisMalformed,
                   S::kOidBadLength, S::kRssBadParams, S::kRssBadQueue, S::kSubchannelRefused}) {
      n += guest.counters->Total(stat);
    }
  }
  return n;
}

void HostBench::Pump(Guest& guest) {
  if (guest.device != nullptr) guest.device->Poll();
}

std::string HostBench::ExerciseGoodGuest(Guest& g) {
  auto& n = *g.netvsc;
  if (!n.Connect()) return "vmbus connect";
  if (!n.OpenPrimary()) return "open primary channel";
  if (!n.BringUp()) return "nvsp/rndis bring-up";
  std::array<uint8_t, 4> filter{};
  const uint32_t f = wire::kNdisPacketFilterLinuxDefault;
  std::memcpy(filter.data(), &f, 4);
  auto st = n.Set(wire::NdisOid::kGenCurrentPacketFilter, filter);
  if (!st || *st != wire::RndisStatus::kSuccess) return "packet filter";
  const auto out = TestFrame(net::MacAddress::Broadcast().bytes, g.mac, 1);
  auto sent = n.SendFrames(0, {out}, testing::SendMode::kSection);
  if (!sent || *sent != wire::NvspStatus::kSuccess) return "guest transmit completion";
  Pump(g);
  std::vector<uint8_t> storage(9216);
  net::RxBatch batch;
  batch.Add(std::span<uint8_t>(storage));
  if (g.app->queue(0).Poll(batch) != 1) return "frame did not reach the backend";
  if (std::vector<uint8_t>(batch[0].data, batch[0].data + batch[0].length) != out) {
    return "frame corrupted on the way to the backend";
  }
  const auto in = TestFrame(g.mac, {0x02, 0, 0, 0, 0, 0x99}, 2);
  net::FrameBatch inject;
  inject.Add(std::span<const uint8_t>(in));
  if (g.app->queue(0).Send(inject) != 1) return "backend refused the frame";
  const auto got = n.ReceiveFrames(0);
  if (got.size() != 1 || got[0].frame != in) return "frame did not reach the guest";
  return "";
}

// ---------------------------------------------------------------------------------------------
// HostileGuest
// ---------------------------------------------------------------------------------------------

bool HostileGuest::AdvanceTo(Step step) {
  step_ = Step::kHello;
  if (step == Step::kHello) return true;
  auto& vm = *g_.vmbus;
  if (step <= Step::kGpadl) {
    wire::InitiateContact ic;
    ic.vmbus_version_requested = wire::kVersionWin10V5_3;
    ic.msg_sint = wire::kVmbusMessageSint;
    ic.monitor_page1 = 0x10000;
    ic.monitor_page2 = 0x11000;
    auto vr = vm.InitiateContact(wire::kVersionWin10V5_3);
    if (!vr || vr->version_supported == 0) return Fail("INITIATE_CONTACT refused");
    sent_.push_back(wire::Encode(ic));
    step_ = Step::kContact;
    if (step == Step::kContact) return true;
    if (vm.Post(wire::RequestOffers{}) != wire::HvStatus::kSuccess) return Fail("REQUESTOFFERS");
    sent_.push_back(wire::Encode(wire::RequestOffers{}));
    bool all = false;
    while (auto msg = vm.Receive()) {
      if (const auto* o = std::get_if<wire::OfferChannel>(&*msg)) {
        if (o->if_type == wire::kNetworkClassGuid && relid_ == 0) {
          relid_ = o->child_relid;
          connection_id_ = o->connection_id;
        }
      } else if (std::holds_alternative<wire::AllOffersDelivered>(*msg)) {
        all = true;
      }
    }
    if (!all || relid_ == 0) return Fail("no NIC offer / ALLOFFERS_DELIVERED");
    step_ = Step::kOffers;
    if (step == Step::kOffers) return true;
    auto pages = g_.partition->guest().allocator().AllocateRun(4);
    if (!pages) return Fail("allocate GPADL pages");
    std::vector<uint64_t> pfns;
    for (uint64_t i = 0; i < pages->count(); ++i) pfns.push_back(pages->gpn() + i);
    gpadl_pages_.emplace(std::move(*pages));
    auto created = vm.CreateGpadl(relid_, 0x100, pfns);
    if (!created || created->creation_status != 0) return Fail("GPADL refused");
    auto msgs = wire::BuildGpadlMessages(relid_, 0x100, pfns);
    if (msgs) sent_.insert(sent_.end(), msgs->begin(), msgs->end());
    step_ = Step::kGpadl;
    return true;
  }
  auto& n = *g_.netvsc;
  if (!n.Connect()) return Fail("vmbus connect");
  relid_ = n.primary_offer().child_relid;
  connection_id_ = n.primary_offer().connection_id;
  if (!n.OpenPrimary()) return Fail("open primary channel");
  step_ = Step::kOpen;
  if (step == Step::kOpen) return true;
  if (step == Step::kNvspInit) {
    wire::NvspInit init;
    init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
    auto reply = n.Request(0, init);
    const auto* done = reply ? std::get_if<wire::NvspInitComplete>(&*reply) : nullptr;
    if (done == nullptr || done->status != wire::NvspStatus::kSuccess) return Fail("NVSP INIT");
    step_ = Step::kNvspInit;
    return true;
  }
  if (!n.BringUp()) return Fail("nvsp/rndis bring-up");
  step_ = Step::kRndisInit;
  if (step == Step::kRndisInit) return true;
  std::array<uint8_t, 4> filter{};
  const uint32_t f = wire::kNdisPacketFilterLinuxDefault;
  std::memcpy(filter.data(), &f, 4);
  auto st = n.Set(wire::NdisOid::kGenCurrentPacketFilter, filter);
  if (!st || *st != wire::RndisStatus::kSuccess) return Fail("packet filter");
  auto sent = n.SendFrames(0, {TestFrame(net::MacAddress::Broadcast().bytes, g_.mac, 7)},
                           testing::SendMode::kSection);
  if (!sent || *sent != wire::NvspStatus::kSuccess) return Fail("transmit");
  step_ = Step::kTraffic;
  return true;
}

size_t HostileGuest::Send(Attack attack, uint64_t seed) {
  Prng prng(seed);
  size_t n = 0;
  if (!RingLevel()) {
    switch (attack) {
      case Attack::kGarbage: n = ChannelGarbage(prng); break;
      case Attack::kTruncated: n = ChannelTruncated(); break;
      case Attack::kReplay: n = ChannelReplay(); break;
      case Attack::kOutOfOrder: n = ChannelOutOfOrder(); break;
      case Attack::kRingCorrupt: n = 0; break;
    }
  } else {
    switch (attack) {
      case Attack::kGarbage: n = RingGarbage(prng); break;
      case Attack::kTruncated: n = RingTruncated(); break;
      case Attack::kReplay: n = RingReplay(); break;
      case Attack::kOutOfOrder: n = RingOutOfOrder(); break;
      case Attack::kRingCorrupt: n = RingCorrupt(); break;
    }
  }
  Settle();
  return n;
}

void HostileGuest::Settle() {
  for (int i = 0; i < 4; ++i) HostBench::Pump(g_);
  g_.vmbus->ReceiveAll();
}

size_t HostileGuest::PostChannel(std::span<const uint8_t> bytes) {
  (void)g_.vmbus->PostRaw(bytes);
  g_.vmbus->ReceiveAll();  // answers must not pile up in the slot queue
  return 1;
}

size_t HostileGuest::ChannelGarbage(Prng& prng) {
  size_t n = 0;
  for (int i = 0; i < 64; ++i) {
    auto bytes = prng.Bytes(1 + prng.Below(wire::kMaxChannelMessageSize));
    // Half of them carry a plausible type so the parser gets past the header check.
    if (bytes.size() >= 4 && (prng.Next() & 1) != 0) {
      uint32_t type = static_cast<uint32_t>(1 + prng.Below(29));
      // UNLOAD is a valid request at any time; garbage should not turn into one.
      if (type == static_cast<uint32_t>(wire::ChannelMessageType::kUnload)) type = 30;
      std::memcpy(bytes.data(), &type, 4);
    }
    n += PostChannel(bytes);
  }
  return n;
}

size_t HostileGuest::ChannelTruncated() {
  size_t n = 0;
  const std::array<uint8_t, 4> stub = {static_cast<uint8_t>(wire::ChannelMessageType::kRequestOffers)};
  n += PostChannel(stub);  // shorter than the 8-byte header
  for (uint32_t t = 1; t < static_cast<uint32_t>(wire::ChannelMessageType::kCount); ++t) {
    const auto type = static_cast<wire::ChannelMessageType>(t);
    if (wire::ChannelMessageDirection(type) != wire::Direction::kGuestToHost) continue;
    const size_t min = wire::ChannelMessageMinSize(type);
    if (min <= 8) continue;
    std::vector<uint8_t> bytes(min - 1, 0);
    std::memcpy(bytes.data(), &t, 4);
    n += PostChannel(bytes);
  }
  return n;
}

size_t HostileGuest::ChannelReplay() {
  size_t n = 0;
  for (const auto& m : sent_) {
    const bool contact = m.bytes[0] == static_cast<uint8_t>(wire::ChannelMessageType::kInitiateContact);
    (void)g_.vmbus->PostRaw(m.span(), contact ? wire::kVmbusMessageConnectionId4
                                              : wire::kVmbusMessageConnectionId);
    g_.vmbus->ReceiveAll();
    ++n;
  }
  return n;
}

size_t HostileGuest::ChannelOutOfOrder() {
  const uint32_t relid = relid_ != 0 ? relid_ : 1;
  size_t n = 0;
  if (step_ == Step::kHello) n += PostChannel(wire::Encode(wire::RequestOffers{}).span());
  wire::OpenChannel open;
  open.child_relid = relid;
  open.openid = relid;
  open.ringbuffer_gpadlhandle = kBadHandle;
  open.downstream_ringbuffer_pageoffset = 2;
  n += PostChannel(wire::Encode(open).span());
  wire::GpadlBodyMessage body;
  body.fixed.gpadl = kBadHandle;
  body.range_word_count = 1;
  n += PostChannel(wire::Encode(body).span());
  wire::GpadlTeardown teardown;
  teardown.child_relid = relid;
  teardown.gpadl = kBadHandle;
  n += PostChannel(wire::Encode(teardown).span());
  wire::CloseChannel close;
  close.child_relid = relid;
  n += PostChannel(wire::Encode(close).span());
  wire::RelidReleased released;
  released.child_relid = relid;
  n += PostChannel(wire::Encode(released).span());
  wire::ModifyChannel modify;
  modify.child_relid = relid;
  n += PostChannel(wire::Encode(modify).span());
  return n;
}

size_t HostileGuest::RingGarbage(Prng& prng) {
  auto& n = *g_.netvsc;
  size_t count = 0;
  for (int i = 0; i < 32; ++i) {
    auto bytes = prng.Bytes(prng.Below(80));
    if (bytes.size() >= 4 && (prng.Next() & 1) != 0) {
      uint32_t type = kGuestNvsp[prng.Below(kGuestNvsp.size())].type;
      std::memcpy(bytes.data(), &type, 4);
    }
    if (prng.Below(4) == 0) {
      (void)n.SendCompletion(0, prng.Next(), bytes);
    } else {
      (void)n.SendInband(0, bytes, prng.Next() | 1, (prng.Next() & 1) != 0);
    }
    ++count;
    HostBench::Pump(g_);
  }
  return count;
}

size_t HostileGuest::RingTruncated() {
  auto& n = *g_.netvsc;
  size_t count = 0;
  (void)n.SendInband(0, {}, n.NextTransId(), true);  // no NVSP type at all
  ++count;
  for (const auto& s : kGuestNvsp) {
    if (s.size <= 8) continue;  // a ring packet pads to 8: cannot be cut below its minimum
    std::vector<uint8_t> bytes(4);
    std::memcpy(bytes.data(), &s.type, 4);
    (void)n.SendInband(0, bytes, n.NextTransId(), true);
    ++count;
  }
  if (step_ >= Step::kRndisInit) {
    // RNDIS PACKET_MSG whose msg_len claims more than was sent, and one whose data lies outside.
    std::vector<uint8_t> short_len;
    PutU32(short_len, 0, 1);
    PutU32(short_len, 4, 4096);
    PutU32(short_len, 8, 36);
    PutU32(short_len, 12, 60);
    short_len.resize(44);
    (void)n.SendRndis(0, short_len, testing::SendMode::kGpaMultiPage, 0);
    std::vector<uint8_t> outside;
    PutU32(outside, 0, 1);
    PutU32(outside, 4, 44);
    PutU32(outside, 8, 0xFFFFFF00u);
    PutU32(outside, 12, 60);
    outside.resize(44);
    (void)n.SendRndis(0, outside, testing::SendMode::kGpaMultiPage, 0);
    count += 2;
  }
  return count;
}

size_t HostileGuest::RingReplay() {
  auto& n = *g_.netvsc;
  size_t count = 0;
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  (void)n.SendInband(0, NvspBytes(init), n.NextTransId(), true);
  ++count;
  if (step_ >= Step::kRndisInit) {
    wire::NvspSendNdisConfig config;
    config.mtu = 1514;
    (void)n.SendInband(0, NvspBytes(config), n.NextTransId(), false);
    wire::NvspSendReceiveBuffer recv;
    recv.gpadl_handle = 0xCA000;
    (void)n.SendInband(0, NvspBytes(recv), n.NextTransId(), true);
    wire::NvspSendSendBuffer send;
    send.gpadl_handle = 0x5E000;
    (void)n.SendInband(0, NvspBytes(send), n.NextTransId(), true);
    // RNDIS INITIALIZE again (P12).
    std::vector<uint8_t> rinit;
    PutU32(rinit, 0, 2);
    PutU32(rinit, 4, 24);
    PutU32(rinit, 8, n.NextRequestId());
    PutU32(rinit, 12, 1);
    PutU32(rinit, 16, 0);
    PutU32(rinit, 20, 0x4000);
    (void)n.SendRndis(0, rinit, testing::SendMode::kGpaMultiPage, 1);
    count += 4;
  }
  return count;
}

size_t HostileGuest::RingOutOfOrder() {
  auto& n = *g_.netvsc;
  size_t count = 0;
  // Data in send section 0 (before the send buffer: P8; before RNDIS INITIALIZE: P5).
  if (step_ < Step::kRndisInit) {
    wire::NvspSendRndisPacket pkt;
    pkt.send_buf_section_index = 0;
    pkt.send_buf_section_size = 64;
    (void)n.SendInband(0, NvspBytes(pkt), n.NextTransId(), true);
    ++count;
    // SEND_RECV_BUF before NDIS config (P4) / before INIT (P2).
    wire::NvspSendReceiveBuffer recv;
    recv.gpadl_handle = kBadHandle;
    (void)n.SendInband(0, NvspBytes(recv), n.NextTransId(), true);
    ++count;
  }
  // A receive completion nobody is waiting for (P15).
  wire::NvspSendRndisPacketComplete comp;
  comp.status = wire::NvspStatus::kSuccess;
  std::vector<uint8_t> c(wire::kNvspReceiveCompletionSize);
  (void)wire::EncodeNvsp(std::span<uint8_t>(c), comp, wire::kNvspReceiveCompletionSize);
  (void)n.SendCompletion(0, 0xDEAD0000DEADull, c);
  ++count;
  // Sub-channels beyond the NIC's queues (P14).
  wire::NvspSubchannelRequest sub;
  sub.num_subchannels = 64;
  (void)n.SendInband(0, NvspBytes(sub), n.NextTransId(), true);
  ++count;
  return count;
}

size_t HostileGuest::RingCorrupt() {
  auto& st = g_.netvsc->channel_state(0);
  const uint32_t bad = 0xFFFFFFF9u;  // beyond the data area and not a multiple of 8 (R1)
  std::memcpy(st.out_pages.bytes().data(), &bad, sizeof(bad));
  (void)g_.vmbus->Signal(st.connection_id);
  return 1;
}

// ---------------------------------------------------------------------------------------------
// GuestBench
// ---------------------------------------------------------------------------------------------

namespace {
netvsc::NetvscConfig SmallGuestConfig() {
  netvsc::NetvscConfig c;
  c.ring_bytes = 16 * 4096;
  c.recv_buffer_bytes = 1u << 20;
  c.send_buffer_bytes = 64 * 6144;
  c.rx_ring_depth = 256;
  c.tx_bounce_slots = 8;
  // Short: a sabotaged bring-up waits this long for the answer it will never get.
  c.control_timeout = std::chrono::milliseconds(250);
  c.subchannel_timeout = std::chrono::milliseconds(2000);
  c.drain_timeout = std::chrono::milliseconds(200);  // a corrupt ring never drains
  return c;
}
}  // namespace

GuestBench::GuestBench() {
  auto p = partition::LocalPartition::Create(2, 48ull << 20, "hostile-host-victim");
  if (!p) return;
  partition_ = std::move(*p);
  nic_host_ = std::make_unique<fakes::FakeNetvspHost>(partition_->host());
  server_ = std::make_unique<host::VmbusServer>(&partition_->host());
  (void)partition_->host().Start(server_.get());
  server_->AddDevice(nic_host_->MakeDevice());
  driver_ = std::make_unique<netvsc::NetvscDriver>(partition_->guest(), SmallGuestConfig());
  auto bus = guest::VmbusBus::Create(partition_->guest());
  if (bus) bus_ = std::move(*bus);
}

GuestBench::~GuestBench() {
  if (bus_ && bus_->connected()) {
    (void)bus_->UnregisterDriver(*driver_);
    // Let the bus finish the host's rescinds of sub-channels before it disconnects.
    (void)WaitFor([&] {
      return bus_->stats().relids_released.Get() >= bus_->stats().subchannel_offers.Get();
    });
    bus_->Flush();
  }
  bus_.reset();
  if (partition_) partition_->host().Stop();
  server_.reset();
  nic_host_.reset();
  driver_.reset();
  partition_.reset();
}

std::shared_ptr<netvsc::NetvscDevice> GuestBench::nic() const {
  auto devs = driver_->devices();
  return devs.empty() ? nullptr : devs.front();
}

uint64_t GuestBench::Rejections() const {
  const auto& s = bus_->stats();
  uint64_t n = s.msg_not_vmbus.Get() + s.msg_bad_payload_size.Get() + s.msg_too_short.Get() +
               s.msg_bad_type.Get() + s.msg_wrong_direction.Get() + s.msg_malformed.Get() +
               s.msg_unhandled.Get() + s.msg_unexpected.Get() + s.responses_unmatched.Get() +
               s.offer_bad_relid.Get() + s.offer_relid_in_use.Get() + s.offer_duplicate.Get() +
               s.offer_confidential.Get() + s.rescind_unknown.Get() + s.rescind_duplicate.Get() +
               s.probe_failures.Get();
  for (const auto& dev : driver_->devices()) {
    bool rules = false;
    dev->counters().ForEach([&](std::string_view name, uint64_t value) {
      if (name == "rx_ring_corrupt") rules = true;  // every counter from here on names a rule
      if (rules) n += value;
    });
  }
  return n;
}

std::string GuestBench::ExerciseNic() {
  auto dev = nic();
  if (!dev) return "no NIC";
  const std::array<uint8_t, 6> host_mac = {0x02, 0, 0, 0, 0, 0x42};
  const auto in = TestFrame(dev->mac().bytes, host_mac, 3);
  if (!nic_host_->SendFrames(0, {in})) return "host could not send";
  std::vector<uint8_t> storage(16384);
  bool received = false;
  const bool ok = WaitFor([&] {
    net::RxBatch batch;
    batch.Add(std::span<uint8_t>(storage));
    if (dev->Receive(0, batch) == 1) {
      received = std::vector<uint8_t>(batch[0].data, batch[0].data + batch[0].length) == in;
      return true;
    }
    if (dev->PrepareWait(0)) {
      pollfd pfd{dev->wait_fd(0), POLLIN, 0};
      (void)::poll(&pfd, 1, 100);
    }
    return false;
  });
  if (!ok || !received) return "frame did not reach the guest intact";
  const size_t before = nic_host_->frame_count();
  const auto out = TestFrame(host_mac, dev->mac().bytes, 4);
  net::FrameBatch batch;
  batch.Add(std::span<const uint8_t>(out));
  if (dev->Send(0, batch) != 1) return "guest could not send";
  if (!nic_host_->WaitUntil([&] { return nic_host_->frame_count() > before; })) {
    return "frame did not reach the host";
  }
  if (nic_host_->frames().back().bytes != out) return "frame corrupted on the way to the host";
  return "";
}

// ---------------------------------------------------------------------------------------------
// HostileHost
// ---------------------------------------------------------------------------------------------

void HostileHost::InstallBringUpHook(Attack attack, uint64_t seed) {
  auto garbled = garbled_;
  auto prng = std::make_shared<Prng>(seed);
  if (step_ == Step::kNvspInit) {
    // Garble the first NVSP completion (INIT_COMPLETE).
    auto done = std::make_shared<bool>(false);
    b_.nic_host().SetNvspHook([=](uint32_t, std::vector<uint8_t>& reply, bool& send) {
      if (*done) return;
      *done = true;
      ++*garbled;
      switch (attack) {
        case Attack::kGarbage: reply = prng->Bytes(reply.size()); break;
        case Attack::kTruncated: reply.resize(4); break;
        case Attack::kReplay:
        case Attack::kOutOfOrder:
          // A completion of another type (SEND_RECV_BUF_COMPLETE) in place of INIT_COMPLETE.
          PutU32(reply, 0, 102);
          break;
        case Attack::kRingCorrupt: send = false; break;  // never answered: the probe times out
      }
    });
  } else {
    // Garble the answer to RNDIS INITIALIZE.
    auto done = std::make_shared<bool>(false);
    b_.nic_host().SetRndisHook(
        [=](uint32_t request_type, uint32_t, std::vector<uint8_t>& response, bool& send) {
          if (*done || request_type != 2) return;
          *done = true;
          ++*garbled;
          switch (attack) {
            case Attack::kGarbage: {
              auto junk = prng->Bytes(response.size());
              std::memcpy(junk.data(), response.data(), 4);  // keep the type: reach the parser
              response = std::move(junk);
              break;
            }
            case Attack::kTruncated: response.resize(12); PutU32(response, 4, 12); break;
            case Attack::kReplay:
            case Attack::kOutOfOrder: PutU32(response, 8, 0x7777); break;  // no such request
            case Attack::kRingCorrupt: send = false; break;
          }
        });
  }
}

bool HostileHost::AdvanceTo(Step step, Attack attack, uint64_t seed) {
  if (step == Step::kHello || step == Step::kGpadl) return Fail("not a host-side step");
  step_ = step;
  if (step == Step::kNvspInit || step == Step::kRndisInit) InstallBringUpHook(attack, seed);
  if (step >= Step::kOpen) {
    if (!b_.bus().RegisterDriver(b_.driver())) return Fail("register driver");
  }
  if (!b_.bus().Connect()) return Fail("bus connect");
  if (step == Step::kOpen || step == Step::kTraffic) {
    if (!b_.nic()) return Fail("NIC did not probe");
  }
  if (step == Step::kTraffic) {
    const std::string r = b_.ExerciseNic();
    if (!r.empty()) return Fail(r);
  }
  return true;
}

size_t HostileHost::Send(Attack attack, uint64_t seed) {
  if (step_ == Step::kNvspInit || step_ == Step::kRndisInit) return garbled();
  Prng prng(seed);
  size_t n = 0;
  switch (attack) {
    case Attack::kGarbage: n = ChannelGarbage(prng) + (step_ >= Step::kOpen ? RingGarbage(prng) : 0); break;
    case Attack::kTruncated: n = ChannelTruncated() + (step_ >= Step::kOpen ? RingTruncated() : 0); break;
    case Attack::kReplay: n = ChannelReplay() + (step_ >= Step::kOpen ? RingReplay() : 0); break;
    case Attack::kOutOfOrder: n = ChannelOutOfOrder() + (step_ >= Step::kOpen ? RingOutOfOrder() : 0); break;
    case Attack::kRingCorrupt: n = step_ >= Step::kOpen ? RingCorrupt() : 0; break;
  }
  b_.bus().Flush();  // the bus's message work is done before the test looks at counters
  return n;
}

bool GuestBench::WaitForRejections(uint64_t above, std::chrono::milliseconds timeout) const {
  return WaitFor([&] { return Rejections() > above; }, timeout);
}

size_t HostileHost::PostChannel(std::span<const uint8_t> bytes) {
  // One at a time: wait until the guest took it out of its slot, so the per-vCPU queue never
  // overflows and the counters are final when Send() returns.
  const uint64_t taken = b_.bus().stats().messages_received.Get();
  if (!b_.partition().host().PostToGuest(0, bytes)) return 0;
  (void)b_.bus().WaitForMessages(taken + 1, kWait);
  return 1;
}

size_t HostileHost::ChannelGarbage(Prng& prng) {
  size_t n = 0;
  for (int i = 0; i < 64; ++i) {
    auto bytes = prng.Bytes(1 + prng.Below(wire::kMaxChannelMessageSize));
    if (bytes.size() >= 4 && (prng.Next() & 1) != 0) {
      const uint32_t type = kHostChannel[prng.Below(kHostChannel.size())].type;
      std::memcpy(bytes.data(), &type, 4);
      // A garbage RESCIND of the live NIC is legitimate host behaviour; keep its relid unknown.
      if (type == 2 && bytes.size() >= 12) PutU32(bytes, 8, 0x7F0);
      if (bytes.size() >= 12 && type == 1) bytes.resize(100);  // a short OFFER (M5)
    }
    n += PostChannel(bytes);
  }
  return n;
}

size_t HostileHost::ChannelTruncated() {
  size_t n = 0;
  for (const auto& s : kHostChannel) {
    if (s.size <= 8) continue;
    std::vector<uint8_t> bytes(s.size - 1, 0);
    std::memcpy(bytes.data(), &s.type, 4);
    n += PostChannel(bytes);
  }
  const std::array<uint8_t, 4> stub = {1, 0, 0, 0};
  n += PostChannel(stub);
  return n;
}

size_t HostileHost::ChannelReplay() {
  size_t n = 0;
  // A VERSION_RESPONSE nobody asked for (M13) and ALLOFFERS_DELIVERED again.
  wire::VersionResponse vr;
  vr.version_supported = 1;
  n += PostChannel(wire::Encode(vr).span());
  n += PostChannel(wire::Encode(wire::AllOffersDelivered{}).span());
  // The NIC's offer again: a relid in use / a duplicate primary (M6, M7).
  for (const auto& d : b_.server().Snapshot().devices) {
    if (d.primary_relid == 0) continue;
    wire::OfferChannel offer;
    offer.if_type = d.class_id;
    offer.if_instance = d.instance_id;
    offer.child_relid = d.primary_relid;
    offer.connection_id = host::kOfferConnectionIdBase + d.primary_relid;
    offer.monitorid = 0xFF;
    n += PostChannel(wire::Encode(offer).span());
  }
  return n;
}

size_t HostileHost::ChannelOutOfOrder() {
  size_t n = 0;
  wire::OpenChannelResult open;
  open.child_relid = 0x7F1;
  open.openid = 0x7F1;
  n += PostChannel(wire::Encode(open).span());
  wire::GpadlCreated created;
  created.child_relid = 0x7F1;
  created.gpadl = kBadHandle;
  n += PostChannel(wire::Encode(created).span());
  wire::GpadlTorndown torndown;
  torndown.gpadl = kBadHandle;
  n += PostChannel(wire::Encode(torndown).span());
  wire::RescindChannelOffer rescind;
  rescind.child_relid = 0x7F2;
  n += PostChannel(wire::Encode(rescind).span());
  wire::ModifyChannelResponse modify;
  modify.child_relid = 0x7F1;
  n += PostChannel(wire::Encode(modify).span());
  return n;
}

size_t HostileHost::RingGarbage(Prng& prng) {
  size_t n = 0;
  for (int i = 0; i < 16; ++i) {
    auto bytes = prng.Bytes(prng.Below(64));
    if (prng.Below(2) == 0) {
      (void)b_.nic_host().SendCompletion(0, prng.Next(), bytes);
    } else {
      (void)b_.nic_host().SendInband(0, bytes, prng.Next(), false);
    }
    ++n;
  }
  return n;
}

size_t HostileHost::RingTruncated() {
  size_t n = 0;
  // NVSP completion shorter than its type (N3) and an RNDIS indication cut short (D22).
  std::vector<uint8_t> comp(4);
  PutU32(comp, 0, 2);
  (void)b_.nic_host().SendCompletion(0, 1, comp);
  ++n;
  std::vector<uint8_t> status;
  PutU32(status, 0, 7);  // INDICATE_STATUS
  PutU32(status, 4, 12);
  PutU32(status, 8, 0x4001000B);
  if (b_.nic_host().SendRndisMessages(0, {status})) ++n;
  return n;
}

size_t HostileHost::RingReplay() {
  // The same transfer-page trans_id twice: the second completion the guest sends is for a
  // packet already completed; the guest must not deliver the frame twice as corrupt data.
  size_t n = 0;
  std::vector<uint8_t> nvsp(8);
  PutU32(nvsp, 0, 107);
  const std::array<wire::TransferPageRange, 1> range = {wire::TransferPageRange{64, 0x7FFFFFF0u}};
  (void)b_.nic_host().SendTransferPages(0, range, nvsp, 0x55);  // range outside (N17)
  (void)b_.nic_host().SendTransferPages(0, range, nvsp, 0x55);
  n += 2;
  return n;
}

size_t HostileHost::RingOutOfOrder() {
  size_t n = 0;
  // Completions for requests never sent (R16/N22) and an RNDIS completion for no request (D18).
  std::vector<uint8_t> comp(16);
  PutU32(comp, 0, 2);
  PutU32(comp, 12, 1);
  (void)b_.nic_host().SendCompletion(0, 0x0BAD0000u, comp);
  ++n;
  std::vector<uint8_t> query;
  PutU32(query, 0, 0x80000004u);  // QUERY_CMPLT
  PutU32(query, 4, 24);
  PutU32(query, 8, 0x7777);
  PutU32(query, 12, 0);
  PutU32(query, 16, 0);
  PutU32(query, 20, 16);
  if (b_.nic_host().SendRndisMessages(0, {query})) ++n;
  return n;
}

size_t HostileHost::RingCorrupt() {
  (void)b_.nic_host().CorruptGuestRing(0, 0xFFFFFFF1u);
  return 1;
}

}  // namespace uvmbus::hostile
