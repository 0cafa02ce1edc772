// File: tests/fuzz/make_corpus.cc
//
// What: writes the seed corpora of the fuzzers in tests/fuzz/ (committed in tests/fuzz/corpus/):
// VALID messages produced by the project's own encoders (wire::Encode*, OutgoingRing), framed
// the way each fuzzer reads its input (selector bytes first, see each *_fuzzer.cc). Regenerate
// after changing a fuzzer's input format:
//   build/fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
// Output: <dir>/<fuzzer>/<seed>.bin, deterministic (same bytes on every run).
// Spec: the sections named by each fuzzer.
// Thread-safety: a single-threaded tool.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"
#include "wire/channel_messages.h"
#include "wire/device_guids.h"
#include "wire/gpa_range.h"
#include "wire/ic_messages.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"
#include "wire/rndis.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace {

namespace wire = uvmbus::wire;
namespace ring = uvmbus::ring;
using Bytes = std::vector<uint8_t>;

std::filesystem::path g_root;
int g_files = 0;

void Write(const std::string& fuzzer, const std::string& name, std::span<const uint8_t> bytes) {
  const auto dir = g_root / fuzzer;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / (name + ".bin"), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_corpus: cannot write %s/%s\n", fuzzer.c_str(), name.c_str());
    std::exit(1);
  }
  ++g_files;
}

template <typename T>
  requires std::is_trivially_copyable_v<T>
void Put(Bytes& b, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof(T));
}
void Put(Bytes& b, std::span<const uint8_t> s) { b.insert(b.end(), s.begin(), s.end()); }

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "make_corpus: %s\n", what);
  std::exit(1);
}

template <typename T>
T Must(uvmbus::Expected<T> v) {
  if (!v) {
    std::fprintf(stderr, "make_corpus: encoder failed: %s\n", v.error().message.c_str());
    std::exit(1);
  }
  return std::move(*v);
}
template <typename T>
T Must(wire::PacketResult<T> v) {
  if (!v) {
    std::fprintf(stderr, "make_corpus: packet encoder failed: %s\n",
                 std::string(wire::PacketErrorName(v.error())).c_str());
    std::exit(1);
  }
  return *v;
}

// ---------------------------------------------------------------------------------------------
// Channel messages (also the payloads of the SynIC and GPADL seeds)

std::vector<std::pair<std::string, wire::MessageBuffer>> ChannelMessages() {
  std::vector<std::pair<std::string, wire::MessageBuffer>> out;
  wire::OfferChannel offer;
  offer.if_type = wire::kNetworkClassGuid;
  offer.child_relid = 1;
  offer.connection_id = 0x2001;
  offer.is_dedicated_interrupt = 1;
  out.emplace_back("offer", wire::Encode(offer));
  wire::RescindChannelOffer rescind;
  rescind.child_relid = 1;
  out.emplace_back("rescind", wire::Encode(rescind));
  out.emplace_back("request_offers", wire::Encode(wire::RequestOffers{}));
  out.emplace_back("all_offers_delivered", wire::Encode(wire::AllOffersDelivered{}));
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0xE1E10;
  open.downstream_ringbuffer_pageoffset = 16;
  out.emplace_back("open", wire::Encode(open));
  wire::OpenChannel2 open2;
  open2.base = open;
  out.emplace_back("open2", wire::Encode(open2));
  wire::OpenChannelResult open_result;
  open_result.child_relid = 1;
  open_result.openid = 1;
  out.emplace_back("open_result", wire::Encode(open_result));
  wire::CloseChannel close;
  close.child_relid = 1;
  out.emplace_back("close", wire::Encode(close));
  wire::GpadlCreated created;
  created.child_relid = 1;
  created.gpadl = 0xE1E10;
  out.emplace_back("gpadl_created", wire::Encode(created));
  wire::GpadlTeardown teardown;
  teardown.child_relid = 1;
  teardown.gpadl = 0xE1E10;
  out.emplace_back("gpadl_teardown", wire::Encode(teardown));
  wire::GpadlTorndown torndown;
  torndown.gpadl = 0xE1E10;
  out.emplace_back("gpadl_torndown", wire::Encode(torndown));
  wire::RelidReleased released;
  released.child_relid = 1;
  out.emplace_back("relid_released", wire::Encode(released));
  wire::InitiateContact contact;
  contact.vmbus_version_requested = wire::kVersionWin10V5_3;
  contact.msg_sint = 2;
  out.emplace_back("initiate_contact", wire::Encode(contact));
  wire::InitiateContact2 contact2;
  contact2.base = contact;
  out.emplace_back("initiate_contact2", wire::Encode(contact2));
  wire::VersionResponse version;
  version.version_supported = 1;
  out.emplace_back("version_response", wire::Encode(version));
  wire::VersionResponse2 version2;
  version2.base = version;
  out.emplace_back("version_response2", wire::Encode(version2));
  out.emplace_back("version_response3", wire::Encode(wire::VersionResponse3{}));
  out.emplace_back("unload", wire::Encode(wire::Unload{}));
  out.emplace_back("unload_response", wire::Encode(wire::UnloadResponse{}));
  out.emplace_back("open_reserved", wire::Encode(wire::OpenReservedChannel{}));
  out.emplace_back("close_reserved", wire::Encode(wire::CloseReservedChannel{}));
  out.emplace_back("close_reserved_response", wire::Encode(wire::CloseReservedResponse{}));
  out.emplace_back("tl_connect", wire::Encode(wire::TlConnectRequest{}));
  out.emplace_back("tl_connect2", wire::Encode(wire::TlConnectRequest2{}));
  wire::ModifyChannel modify;
  modify.child_relid = 1;
  modify.target_vp = 1;
  out.emplace_back("modify_channel", wire::Encode(modify));
  out.emplace_back("tl_connect_result", wire::Encode(wire::TlConnectResult{}));
  out.emplace_back("modify_channel_response", wire::Encode(wire::ModifyChannelResponse{}));
  out.emplace_back("modify_connection", wire::Encode(wire::ModifyConnection{}));
  out.emplace_back("modify_connection_response",
                   wire::Encode(wire::ModifyConnectionResponse{}));
  out.emplace_back("pause", wire::Encode(wire::Pause{}));
  out.emplace_back("pause_response", wire::Encode(wire::PauseResponse{}));
  out.emplace_back("resume", wire::Encode(wire::Resume{}));
  return out;
}

std::vector<uint64_t> Pfns(size_t n, uint64_t first) {
  std::vector<uint64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

void ChannelMessageCorpus() {
  for (const auto& [name, m] : ChannelMessages()) Write("channel_message", name, m.span());
  auto gpadl = Must(wire::BuildGpadlMessages(1, 0xE1E10, Pfns(30, 0x100)));
  Write("channel_message", "gpadl_header", gpadl[0].span());
  Write("channel_message", "gpadl_body", gpadl[1].span());
}

// ---------------------------------------------------------------------------------------------
// SynIC: a 256-byte slot, then an emulator script (see synic_fuzzer.cc).

void SynicCorpus() {
  for (const auto& [name, m] : ChannelMessages()) {
    if (wire::ChannelMessageDirection(static_cast<wire::ChannelMessageType>(m.bytes[0])) !=
        wire::Direction::kHostToGuest) {
      continue;
    }
    wire::HvMessage slot{};
    slot.message_type = wire::kHvMsgVmbus;
    slot.payload_size = m.size;
    std::memcpy(slot.payload, m.bytes.data(), m.size);
    Bytes b;
    Put(b, slot);
    // Script: post it to vCPU 0 twice (the second queues), the guest consumes (EOM follows),
    // post to vCPU 1, signal relid 1 on vCPU 0, guest consumes on both.
    for (int i = 0; i < 2; ++i) {
      b.push_back(0x00);
      b.push_back(1);
      b.push_back(m.size);
      Put(b, m.span());
    }
    b.push_back(0x06);
    b.push_back(0x10);
    b.push_back(1);
    b.push_back(m.size);
    Put(b, m.span());
    b.push_back(0x03);
    Put(b, uint16_t{1});
    b.push_back(0x06);
    b.push_back(0x16);
    b.push_back(0x02);
    Write("synic", name, b);
  }
}

// ---------------------------------------------------------------------------------------------
// Packets (packet fuzzer) and rings of packets (ring fuzzer)

struct Packet {
  std::string name;
  Bytes header;
  Bytes payload;
};

std::vector<Packet> Packets() {
  std::vector<Packet> out;
  Bytes payload(40);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i);
  {
    Bytes h(16);
    Must(wire::EncodeInbandHeader(h, static_cast<uint32_t>(payload.size()), 7, true));
    out.push_back({"inband", h, payload});
  }
  {
    Bytes h(16);
    Must(wire::EncodeCompletionHeader(h, 8, 7));
    out.push_back({"completion", h, Bytes(8)});
  }
  {
    const std::array<wire::TransferPageRange, 2> ranges = {{{1514, 0}, {60, 6144}}};
    Bytes h(wire::TransferPageHeaderSize(ranges.size()));
    Must(wire::EncodeTransferPageHeader(h, wire::kNetvscReceiveBufferId, ranges, 40, 9));
    wire::NvspSendRndisPacket rndis;
    rndis.channel_type = wire::kNvspRndisChannelData;
    Bytes p(40);
    Must(wire::EncodeNvsp(p, rndis, wire::kNvspLinuxMessageSize));
    out.push_back({"transfer_page", h, p});
  }
  {
    const auto pfns1 = Pfns(1, 0x200);
    const auto pfns2 = Pfns(2, 0x300);
    const std::array<wire::GpaDirectRangeRef, 2> ranges = {
        {{100, 0x10, pfns1}, {5000, 0x800, pfns2}}};
    Bytes h(wire::GpaDirectHeaderSize(ranges));
    Must(wire::EncodeGpaDirectHeader(h, ranges, 16, 11));
    wire::NvspSendRndisPacket rndis;
    Bytes p(16);
    Must(wire::EncodeNvsp(p, rndis, 0));
    out.push_back({"gpa_direct", h, p});
  }
  return out;
}

Bytes Assemble(const Packet& p) {
  Bytes out(p.header.size() + p.payload.size() + 8);
  const size_t n = Must(wire::EncodePacket(out, p.header, p.payload));
  out.resize(n);
  return out;
}

void PacketCorpus() {
  for (const Packet& p : Packets()) Write("packet", p.name, Assemble(p));
}

void RingCorpus() {
  // Inbound: a one-page ring holding every packet kind written by the production writer.
  constexpr uint32_t kData = wire::kRingPageSize;
  std::vector<uint8_t> mem(wire::kRingHeaderSize + kData + 4096);
  auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mem.data()) + 4095) &
                                          ~uintptr_t{4095});
  std::span<uint8_t> span(base, wire::kRingHeaderSize + kData);
  auto view = ring::InitRingControl(span, ring::RingInitOptions{});
  if (!view) Die("ring init failed");
  auto created = ring::OutgoingRing::Create(*view);
  if (!created) Die("ring writer attach failed");
  ring::OutgoingRing& out = *created;
  ring::WriteCursor c = out.BeginWrite();
  for (int round = 0; round < 2; ++round) {
    for (const Packet& p : Packets()) {
      if (!out.Write(c, p.header, p.payload).ok()) Die("ring write failed");
    }
  }
  out.CommitWrite(c);
  uint32_t fields[5];
  std::memcpy(&fields[0], base + 0, 16);
  std::memcpy(&fields[4], base + 64, 4);
  for (const uint8_t max_packet_sel : {uint8_t{0}, uint8_t{2}}) {
    Bytes b;
    b.push_back(max_packet_sel);  // flags: one data page, max packet 4096 / 256
    for (uint32_t f : fields) Put(b, f);
    const auto used = static_cast<uint16_t>(fields[0]);
    Put(b, used);
    Put(b, std::span<const uint8_t>(base + wire::kRingHeaderSize, used));
    // Script: read 3 into the own buffer, commit, read 2 into a caller buffer, commit, mask.
    for (int i = 0; i < 3; ++i) b.push_back(0x00);
    b.push_back(0x02);
    for (int i = 0; i < 2; ++i) {
      b.push_back(0x01);
      Put(b, uint16_t{4096});
    }
    b.push_back(0x02);
    b.push_back(0x05);
    Write("ring", max_packet_sel == 0 ? "incoming_mixed" : "incoming_small_max", b);
  }
  {
    // Outbound: writer with a well-behaved reader that catches up.
    Bytes b;
    b.push_back(0x80);
    Put(b, uint32_t{0});  // read_index
    Put(b, uint32_t{0});  // interrupt_mask
    b.push_back(0x00);
    Put(b, uint16_t{100});
    Put(b, uint64_t{1});
    b.push_back(0x01);
    Put(b, uint16_t{8});
    Put(b, uint64_t{1});
    b.push_back(0x02);
    b.push_back(0x03);
    Put(b, uint32_t{152});  // the reader consumed both packets (136 + 40 would be 176: partial)
    b.push_back(0x06);
    b.push_back(0x05);
    Put(b, uint32_t{4000});
    Write("ring", "outgoing", b);
  }
}

// ---------------------------------------------------------------------------------------------
// GPADL sequences: [u8 len][payload] per message.

void GpadlCorpus() {
  for (size_t pages : {size_t{1}, size_t{26}, size_t{27}, size_t{100}}) {
    Bytes b;
    for (const wire::MessageBuffer& m : Must(wire::BuildGpadlMessages(3, static_cast<uint32_t>(0x1000 + pages),
                                                                       Pfns(pages, 0x400)))) {
      b.push_back(m.size);
      Put(b, m.span());
    }
    Write("gpadl", "pages_" + std::to_string(pages), b);
  }
  // Two ranges (as a host-side client may describe them): {100 bytes at 0x10: 1 pfn},
  // {8192 bytes at 0: 2 pfns}.
  wire::GpadlHeaderMessage h;
  h.fixed.child_relid = 3;
  h.fixed.gpadl = 0x2000;
  h.fixed.rangecount = 2;
  const std::array<uint64_t, 5> words = {(uint64_t{0x10} << 32) | 100, 0x500,
                                         (uint64_t{0} << 32) | 8192, 0x600, 0x601};
  std::memcpy(h.range_words.data(), words.data(), sizeof(words));
  h.range_word_count = words.size();
  h.fixed.range_buflen = static_cast<uint16_t>(words.size() * 8);
  const wire::MessageBuffer m = wire::Encode(h);
  Bytes b;
  b.push_back(m.size);
  Put(b, m.span());
  Write("gpadl", "two_ranges", b);
}

// ---------------------------------------------------------------------------------------------
// NVSP: [selector][u32 buffer_size][u16 section_size][u8 max_queues][payload] or
//       [0x80 | rsc][u32 buffer_size][transfer-page packet].

uint8_t NvspSelector(bool guest_to_host, int carrier, int version_index) {
  return static_cast<uint8_t>((guest_to_host ? 1 : 0) | (carrier << 1) | (version_index << 3));
}
constexpr int kInband = 0, kComp = 3;
constexpr int kVNone = 0, kV1 = 1, kV2 = 2, kV4 = 3, kV5 = 4, kV61 = 6;

template <typename T>
void NvspSeed(const std::string& name, uint8_t selector, const T& msg, size_t pad) {
  Bytes b;
  b.push_back(selector);
  Put(b, uint32_t{16u << 20});
  Put(b, uint16_t{6144});
  b.push_back(8);
  Bytes p(64);
  p.resize(Must(wire::EncodeNvsp(p, msg, pad)));
  Put(b, p);
  Write("nvsp", name, b);
}

void NvspCorpus() {
  wire::NvspInit init;
  init.min_protocol_ver = init.max_protocol_ver = wire::kNvspVersion61;
  NvspSeed("init", NvspSelector(true, kInband, kVNone), init, 40);
  wire::NvspInitComplete init_done;
  init_done.negotiated_protocol_ver = wire::kNvspVersion61;
  init_done.status = wire::NvspStatus::kSuccess;
  NvspSeed("init_complete", NvspSelector(false, kComp, kVNone), init_done, 28);
  wire::NvspSendNdisVersion ndis;
  ndis.ndis_major_ver = 6;
  ndis.ndis_minor_ver = 30;
  NvspSeed("ndis_version", NvspSelector(true, kInband, kV61), ndis, 40);
  wire::NvspSendNdisConfig config;
  config.mtu = 1514;
  NvspSeed("ndis_config", NvspSelector(true, kInband, kV2), config, 40);
  wire::NvspSendReceiveBuffer recv;
  recv.gpadl_handle = 0xE1E11;
  recv.id = wire::kNetvscReceiveBufferId;
  NvspSeed("receive_buffer", NvspSelector(true, kInband, kV61), recv, 40);
  wire::NvspSendReceiveBufferComplete recv_done;
  recv_done.status = wire::NvspStatus::kSuccess;
  recv_done.num_sections = 1;
  recv_done.section.offset = 0;
  recv_done.section.sub_alloc_size = 1728;
  recv_done.section.num_sub_allocs = 9709;
  recv_done.section.end_offset = 1728 * 9709;
  NvspSeed("receive_buffer_complete", NvspSelector(false, kComp, kV61), recv_done, 40);
  wire::NvspSendSendBuffer send;
  send.gpadl_handle = 0xE1E12;
  send.id = 0;
  NvspSeed("send_buffer", NvspSelector(true, kInband, kV61), send, 40);
  wire::NvspSendSendBufferComplete send_done;
  send_done.status = wire::NvspStatus::kSuccess;
  send_done.section_size = 6144;
  NvspSeed("send_buffer_complete", NvspSelector(false, kComp, kV61), send_done, 40);
  wire::NvspSendRndisPacket pkt;
  pkt.send_buf_section_index = 3;
  pkt.send_buf_section_size = 1500;
  NvspSeed("rndis_packet_guest", NvspSelector(true, kInband, kV61), pkt, 40);
  wire::NvspSendRndisPacketComplete pkt_done;
  pkt_done.status = wire::NvspStatus::kSuccess;
  NvspSeed("rndis_packet_complete", NvspSelector(false, kComp, kV61), pkt_done, 8);
  NvspSeed("rndis_packet_complete_host", NvspSelector(true, kComp, kV61), pkt_done, 8);
  wire::NvspSubchannelRequest sub;
  sub.num_subchannels = 3;
  NvspSeed("subchannel_request", NvspSelector(true, kInband, kV5), sub, 40);
  wire::NvspSubchannelComplete sub_done;
  sub_done.status = wire::NvspStatus::kSuccess;
  sub_done.num_subchannels = 3;
  NvspSeed("subchannel_complete", NvspSelector(false, kComp, kV5), sub_done, 40);
  wire::NvspSwitchDataPath path;
  NvspSeed("switch_data_path", NvspSelector(true, kInband, kV4), path, 40);
  wire::NvspSendVfAssociation vf;
  NvspSeed("vf_association", NvspSelector(false, kInband, kV4), vf, 40);
  wire::NvspRevokeReceiveBuffer revoke;
  revoke.id = wire::kNetvscReceiveBufferId;
  NvspSeed("revoke_receive_buffer", NvspSelector(true, kInband, kV1), revoke, 28);
  wire::NvspOidQueryEx oid;
  NvspSeed("oid_query_ex", NvspSelector(true, kInband, kV5), oid, 40);
  {
    std::array<uint32_t, wire::kNvspSendIndirectionTableSize> table{};
    for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<uint32_t>(i % 4);
    Bytes b;
    b.push_back(NvspSelector(false, kInband, kV61));
    Put(b, uint32_t{16u << 20});
    Put(b, uint16_t{6144});
    b.push_back(8);
    Bytes p(128);
    p.resize(Must(wire::EncodeNvspSendIndirectionTable(p, table)));
    Put(b, p);
    Write("nvsp", "send_indirection_table", b);
  }
  {
    // Receive path: the transfer-page packet of PacketCorpus with one and with two ranges.
    for (const Packet& p : Packets()) {
      if (p.name != "transfer_page") continue;
      Bytes b;
      b.push_back(0x80);
      Put(b, uint32_t{16u << 20});
      Put(b, Assemble(p));
      Write("nvsp", "receive_packet", b);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RNDIS: [selector][message] (selector bit 0: guest->host; bits 1-2: mode).

void RndisSeed(const std::string& name, uint8_t selector, std::span<const uint8_t> msg) {
  Bytes b;
  b.push_back(selector);
  Put(b, msg);
  Write("rndis", name, b);
}

Bytes RndisPacket(const wire::RndisPpiSet& ppis, size_t frame_len) {
  Bytes frame(frame_len);
  for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>(i * 7);
  Bytes out(wire::RndisPacketHeaderSize(ppis) + frame_len + 64);
  out.resize(Must(wire::EncodeRndisPacket(out, ppis, frame)));
  return out;
}

void RndisCorpus() {
  constexpr uint8_t kG2H = 1, kH2G = 0;
  Bytes buf(512);
  auto seed = [&](const std::string& name, uint8_t sel, uvmbus::Expected<size_t> n) {
    RndisSeed(name, sel, std::span<const uint8_t>(buf.data(), Must(std::move(n))));
  };
  wire::RndisInitializeRequest init;
  init.request_id = 1;
  init.max_transfer_size = 0x4000;
  seed("initialize", kG2H, wire::EncodeRndis(buf, init));
  wire::RndisInitializeComplete init_done;
  init_done.request_id = 1;
  init_done.max_packets_per_message = 8;
  init_done.max_transfer_size = 0x4000;
  init_done.packet_alignment_factor = 3;
  seed("initialize_complete", kH2G, wire::EncodeRndis(buf, init_done));
  const uint32_t filter = 0x0B;
  const auto filter_bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&filter), 4);
  seed("set_packet_filter", kG2H,
       wire::EncodeRndisSet(buf, 2, wire::NdisOid::kGenCurrentPacketFilter, filter_bytes));
  seed("query_mac", kG2H, wire::EncodeRndisQuery(buf, 3, wire::NdisOid::k802_3PermanentAddress, {}));
  seed("set_ex", kG2H, wire::EncodeRndisSetEx(buf, 4, wire::NdisOid::kGenLinkSpeed, filter_bytes));
  const std::array<uint8_t, 6> mac = {0x00, 0x15, 0x5d, 0x01, 0x02, 0x03};
  seed("query_mac_complete", kH2G,
       wire::EncodeRndisQueryComplete(buf, 3, wire::RndisStatus::kSuccess, mac));
  wire::RndisSetComplete set_done;
  set_done.request_id = 2;
  seed("set_complete", kH2G, wire::EncodeRndis(buf, set_done));
  seed("indicate_connect", kH2G,
       wire::EncodeRndisIndicateStatus(buf, wire::RndisStatus::kMediaConnect, {}));
  seed("indicate_link_speed", kH2G, wire::EncodeRndisLinkSpeedChange(buf, 100000000));
  wire::RndisKeepaliveRequest keepalive;
  keepalive.request_id = 5;
  seed("keepalive", kG2H, wire::EncodeRndis(buf, keepalive));
  seed("reset", kG2H, wire::EncodeRndis(buf, wire::RndisResetRequest{}));
  seed("halt", kG2H, wire::EncodeRndis(buf, wire::RndisHaltRequest{}));

  wire::RndisPpiSet tx;
  tx.checksum = wire::MakeTxChecksumInfo(wire::kTxChecksumIsIpv4 | wire::kTxChecksumTcp, 34);
  tx.lso = wire::PackLsoInfo({1460, 34, true, false});
  tx.vlan = wire::PackVlanInfo({0, false, 42});
  wire::RndisPpiSet rx;
  rx.hash_value = 0x12345678;
  rx.hash_info = wire::kNdisHashInfoLinux;
  rx.checksum = wire::kRxChecksumTcpSucceeded | wire::kRxChecksumIpSucceeded;
  rx.vlan = wire::PackVlanInfo({3, false, 7});
  rx.packet_id = wire::PackPacketIdInfo({});
  const Bytes tx_pkt = RndisPacket(tx, 1514);
  const Bytes rx_pkt = RndisPacket(rx, 60);
  const Bytes plain = RndisPacket({}, 42);
  RndisSeed("packet_tx", kG2H, tx_pkt);
  RndisSeed("packet_rx", kH2G, rx_pkt);
  RndisSeed("packet_plain", kG2H, plain);
  RndisSeed("head_tx", kG2H | (1 << 1), tx_pkt);
  RndisSeed("head_rx", kH2G | (1 << 1), rx_pkt);
  RndisSeed("txcheck_tx", kG2H | (3 << 1), tx_pkt);
  {
    // A send-buffer section with a batch of two packets (pkt_align 8) and a max of 8 messages.
    Bytes frame(60, 0xEE);
    Bytes section(512);
    const size_t a = Must(wire::EncodeRndisPacket(section, tx, frame, 8));
    const size_t b = Must(wire::EncodeRndisPacket(std::span<uint8_t>(section).subspan(a), {},
                                                  frame, 8));
    section.resize(a + b);
    Bytes s;
    s.push_back(kG2H | (2 << 1));
    s.push_back(8);
    Put(s, section);
    Write("rndis", "batch", s);
  }
}

// ---------------------------------------------------------------------------------------------
// NDIS objects: [selector][info buffer].

void NdisSeed(const std::string& name, uint8_t selector, std::span<const uint8_t> info) {
  Bytes b;
  b.push_back(selector);
  Put(b, info);
  Write("ndis", name, b);
}

void NdisCorpus() {
  Bytes buf(1024);
  wire::NdisOffload offload;
  offload.csum.ip4_txcsum = wire::kNdisTxCsumTcp | wire::kNdisTxCsumUdp | wire::kNdisTxCsumIp;
  offload.lsov2.ip4_maxsz = 62780;
  NdisSeed("offload", 0, std::span<const uint8_t>(buf.data(), Must(wire::EncodeNdisObject(buf, offload))));
  wire::NdisOffloadParams params;
  params.tcp_ip_v4_csum = wire::kOffloadParamCsumTxRxEnabled;
  params.lso_v2_ipv4 = wire::kOffloadParamLsoEnabled;
  NdisSeed("offload_params", 1,
           std::span<const uint8_t>(buf.data(), Must(wire::EncodeNdisObject(buf, params))));
  wire::NdisReceiveScaleCapabilities caps;
  caps.num_recv_que = 8;
  caps.num_indirect_tabent = 128;
  NdisSeed("rss_capabilities", 2,
           std::span<const uint8_t>(buf.data(), Must(wire::EncodeNdisObject(buf, caps))));
  std::array<uint32_t, 128> table{};
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<uint32_t>(i % 4);
  std::array<uint8_t, 40> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0x6d + i);
  NdisSeed("rss_parameters", 3,
           std::span<const uint8_t>(
               buf.data(), Must(wire::EncodeRssParameters(buf, 0, wire::kNdisHashInfoLinux,
                                                          table, key))));
  NdisSeed("rss_disable", 3,
           std::span<const uint8_t>(
               buf.data(), Must(wire::EncodeRssParameters(buf, wire::kNdisRssParamFlagDisableRss,
                                                          0, {}, {}))));
  const std::array<uint8_t, 6> mac = {0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc};
  const size_t n = Must(wire::EncodeNetworkAddressParameter(buf, mac));
  NdisSeed("network_address", 4, std::span<const uint8_t>(buf.data(), n));
  // The value alone (12 UTF-16LE hex digits at 48, see EncodeNetworkAddressParameter).
  NdisSeed("network_address_value", 5, std::span<const uint8_t>(buf.data() + 48, 24));
}

// ---------------------------------------------------------------------------------------------
// IC messages: the packet payload.

void IcCorpus() {
  const Bytes request = Must(wire::EncodeIcNegotiateRequest(wire::kHostIcFrameworkVersions,
                                                            wire::kHostHeartbeatVersions));
  Write("ic", "negotiate_request", request);
  auto reply = Must(wire::PrepareIcNegotiateResponse(request, wire::kLinuxIcFrameworkVersions,
                                                     wire::kLinuxHeartbeatVersions));
  Write("ic", "negotiate_response", reply.packet);
  const Bytes hb = wire::EncodeHeartbeatRequest(wire::kIcFrameworkVersion3,
                                                wire::kHeartbeatVersion3, 41);
  Write("ic", "heartbeat_request", hb);
  Write("ic", "heartbeat_response", Must(wire::PrepareHeartbeatResponse(hb)));
}

// ---------------------------------------------------------------------------------------------
// VmbusServer scripts: [op][...] (see vmbus_server_fuzzer.cc). Op 0x10: post on connection 4
// then drain; op 0x00: post on connection 1; 0x05: SignalEvent; 0x06/0x16: rescind device 0/1;
// 0x37: the NIC offers 2 sub-channels; 0x87: the guest hangs up; | 0x40: no drain.

void Post(Bytes& b, uint8_t op, const wire::MessageBuffer& m) {
  b.push_back(op);
  b.push_back(m.size);
  Put(b, m.span());
}

Bytes GpadlScript(uint8_t op, uint32_t relid, uint32_t gpadl, uint64_t first_pfn, size_t pages) {
  Bytes b;
  for (const wire::MessageBuffer& m :
       Must(wire::BuildGpadlMessages(relid, gpadl, Pfns(pages, first_pfn)))) {
    Post(b, op, m);
  }
  return b;
}

void VmbusServerCorpus() {
  constexpr uint8_t kConn4 = 0x10;
  wire::InitiateContact contact;
  contact.vmbus_version_requested = wire::kVersionWin10V5_3;
  contact.msg_sint = static_cast<uint8_t>(wire::kVmbusSint);
  wire::OpenChannel open;
  open.child_relid = 1;
  open.openid = 1;
  open.ringbuffer_gpadlhandle = 0x100;
  open.downstream_ringbuffer_pageoffset = 8;
  wire::ModifyChannel modify;
  modify.child_relid = 1;
  modify.target_vp = 1;
  wire::CloseChannel close;
  close.child_relid = 1;
  wire::GpadlTeardown teardown;
  teardown.child_relid = 1;
  teardown.gpadl = 0x100;
  wire::RelidReleased released;
  released.child_relid = 2;

  // Linux-like life cycle of the NIC's primary channel, then unload.
  Bytes b;
  Post(b, kConn4, wire::Encode(contact));
  Post(b, kConn4, wire::Encode(wire::RequestOffers{}));
  Put(b, GpadlScript(kConn4, 1, 0x100, 16, 16));
  Post(b, kConn4, wire::Encode(open));
  Post(b, kConn4, wire::Encode(modify));
  b.push_back(0x37);  // the NIC offers 2 sub-channels (relids 3 and 4)
  b.push_back(0x05);
  Put(b, uint32_t{0x2001});
  Put(b, GpadlScript(kConn4, 3, 0x101, 64, 40));  // a sub-channel's ring: header + body
  wire::OpenChannel open_sub = open;
  open_sub.child_relid = 3;
  open_sub.openid = 3;
  open_sub.ringbuffer_gpadlhandle = 0x101;
  open_sub.downstream_ringbuffer_pageoffset = 20;
  Post(b, kConn4, wire::Encode(open_sub));
  Post(b, kConn4, wire::Encode(close));
  Post(b, kConn4, wire::Encode(teardown));
  b.push_back(0x16);  // host rescinds the single-channel device (relid 2)
  Post(b, kConn4, wire::Encode(released));
  Post(b, kConn4, wire::Encode(wire::Unload{}));
  Write("vmbus_server", "lifecycle_v5_3", b);

  // Version 4.0 on connection 1, offers, open, then the guest hangs up with the channel open.
  Bytes c;
  wire::InitiateContact old = contact;
  old.vmbus_version_requested = wire::kVersionWin10;
  old.msg_sint = 0;
  Post(c, 0x00, wire::Encode(old));
  Post(c, 0x00, wire::Encode(wire::RequestOffers{}));
  Put(c, GpadlScript(0x00, 1, 0x100, 16, 16));
  Post(c, 0x00, wire::Encode(open));
  c.push_back(0x06);  // host rescinds the NIC while it is open
  c.push_back(0x87);  // guest hangs up
  Post(c, 0x00, wire::Encode(wire::RequestOffers{}));
  Write("vmbus_server", "rescind_open_then_hangup_v4_0", c);

  // A guest that does not consume its messages while offers go out.
  Bytes d;
  Post(d, kConn4 | 0x40, wire::Encode(contact));
  Post(d, kConn4 | 0x40, wire::Encode(wire::RequestOffers{}));
  Put(d, GpadlScript(kConn4 | 0x40, 1, 0x100, 16, 16));
  d.push_back(0x04);
  Write("vmbus_server", "slow_guest", d);
}

// ---------------------------------------------------------------------------------------------
// netvsp scripts (after the fuzzer's own bring-up): [op % 6][...] (see netvsp_fuzzer.cc).

void NetvspCorpus() {
  Bytes buf(2048);
  auto rndis_op = [&](Bytes& b, uint8_t mode, uint8_t channel_type, size_t n) {
    b.push_back(static_cast<uint8_t>(1 | (mode << 3) | (channel_type << 5)));
    Put(b, static_cast<uint16_t>(n));
    Put(b, std::span<const uint8_t>(buf.data(), n));
  };
  {
    // Control: KEEPALIVE through a section, a QUERY by GPA pages, a SET of the packet filter.
    Bytes b;
    wire::RndisKeepaliveRequest keepalive;
    keepalive.request_id = 77;
    rndis_op(b, 0, 1, Must(wire::EncodeRndis(buf, keepalive)));
    rndis_op(b, 2, 1, Must(wire::EncodeRndisQuery(buf, 78, wire::NdisOid::kGenLinkSpeed, {})));
    const uint32_t filter = 0x0B;
    rndis_op(b, 1, 1,
             Must(wire::EncodeRndisSet(buf, 79, wire::NdisOid::kGenCurrentPacketFilter,
                                       std::span<const uint8_t>(
                                           reinterpret_cast<const uint8_t*>(&filter), 4))));
    Write("netvsp", "control", b);
  }
  {
    // Data: one frame with TX PPIs in every send mode, then a received frame.
    Bytes b;
    wire::RndisPpiSet tx;
    tx.checksum = wire::MakeTxChecksumInfo(wire::kTxChecksumIsIpv4 | wire::kTxChecksumTcp, 34);
    tx.vlan = wire::PackVlanInfo({0, false, 42});
    const Bytes pkt = RndisPacket(tx, 120);
    std::memcpy(buf.data(), pkt.data(), pkt.size());
    for (uint8_t mode = 0; mode < 4; ++mode) rndis_op(b, mode, 0, pkt.size());
    b.push_back(5);
    Put(b, uint16_t{46});  // 60-byte frame
    Bytes frame(60, 0);
    for (size_t i = 0; i < 6; ++i) frame[i] = 0xFF;  // broadcast
    frame[12] = 0x08;
    Put(b, frame);
    Write("netvsp", "data", b);
  }
  {
    // NVSP odds and ends: a SEND_RNDIS_PKT naming section 3, a completion for trans_id 1, a
    // GPA-direct packet over one page, an in-band REVOKE_SEND_BUF.
    Bytes b;
    b.push_back(2);
    Put(b, uint32_t{3});
    Put(b, uint32_t{64});
    b.push_back(4);
    b.push_back(1);
    b.push_back(8);
    Bytes comp(8);
    wire::NvspSendRndisPacketComplete done;
    done.status = wire::NvspStatus::kSuccess;
    Must(wire::EncodeNvsp(comp, done, 8));
    Put(b, comp);
    b.push_back(3);
    b.push_back(0);          // one range
    Put(b, uint16_t{99});    // 100 bytes
    Put(b, uint16_t{0});     // at offset 0
    Put(b, uint32_t{600});   // pfn
    b.push_back(0);
    Bytes revoke(64);
    revoke.resize(Must(wire::EncodeNvsp(revoke, wire::NvspRevokeSendBuffer{}, 40)));
    b.push_back(static_cast<uint8_t>(revoke.size()));
    Put(b, revoke);
    Write("netvsp", "nvsp_misc", b);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <corpus dir>\n");
    return 2;
  }
  g_root = argv[1];
  ChannelMessageCorpus();
  SynicCorpus();
  PacketCorpus();
  RingCorpus();
  GpadlCorpus();
  NvspCorpus();
  RndisCorpus();
  NdisCorpus();
  IcCorpus();
  VmbusServerCorpus();
  NetvspCorpus();
  std::printf("make_corpus: wrote %d seeds under %s\n", g_files, argv[1]);
  return 0;
}
