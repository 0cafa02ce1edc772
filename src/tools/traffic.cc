// File: tools/traffic.cc
#include "tools/traffic.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "common/clock.h"

namespace uvmbus::tools {
namespace traffic {
namespace {

constexpr uint32_t kIpOffset = net::kEthHeaderSize;  // 14
constexpr uint32_t kUdpOffset = kIpOffset + 20;      // 34
constexpr uint32_t kTestOffset = kUdpOffset + 8;     // 42
constexpr uint8_t kProtoUdp = 17;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Get32(const uint8_t* p) { return (uint32_t{Get16(p)} << 16) | Get16(p + 2); }

// RFC 1071 sum over the test header before the check field ([42, 52): magic, kind, flags,
// value, length) and the pattern ([54, length)): one flipped bit anywhere in them changes it.
uint16_t TestChecksum(const uint8_t* f, uint32_t length) {
  uint32_t sum = 0;
  auto add = [&sum](const uint8_t* p, uint32_t n) {
    for (uint32_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>((p[i] << 8) | p[i + 1]);
    if ((n & 1) != 0) sum += static_cast<uint32_t>(p[n - 1] << 8);
    while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
  };
  add(f + kTestOffset, 10);
  add(f + kHeaderBytes, length - kHeaderBytes);
  return static_cast<uint16_t>(~sum);
}

uint8_t PatternByte(uint32_t seq, uint32_t i) {
  return static_cast<uint8_t>((seq * 131u + i * 7u) ^ (seq >> 8));
}

// Ethernet + IPv4 + UDP headers and the fixed part of the test header.
void WriteHeaders(uint8_t* f, const Link& link, uint32_t flow, uint32_t length, uint8_t kind,
                  uint8_t flags, uint32_t value) {
  std::memcpy(f, link.dst_mac.bytes.data(), 6);
  std::memcpy(f + 6, link.src_mac.bytes.data(), 6);
  Put16(f + 12, net::kEtherTypeIpv4);
  uint8_t* ip = f + kIpOffset;
  ip[0] = 0x45;
  ip[1] = 0;
  Put16(ip + 2, static_cast<uint16_t>(length - kIpOffset));
  Put16(ip + 4, static_cast<uint16_t>(value));  // identification
  Put16(ip + 6, 0x4000);                        // DF, not a fragment
  ip[8] = 64;
  ip[9] = kProtoUdp;
  Put16(ip + 10, 0);
  ip[12] = 198;
  ip[13] = 18;
  ip[14] = link.src_mac.bytes[5];
  ip[15] = static_cast<uint8_t>(flow);
  ip[16] = 198;
  ip[17] = 19;
  ip[18] = link.dst_mac.bytes[5];
  ip[19] = static_cast<uint8_t>(flow >> 8);
  Put16(ip + 10, net::InternetChecksum({ip, 20}));
  uint8_t* udp = f + kUdpOffset;
  Put16(udp, static_cast<uint16_t>(10000 + (flow & 0x3FFF)));
  Put16(udp + 2, static_cast<uint16_t>(20000 + (flow & 0x3FFF)));
  Put16(udp + 4, static_cast<uint16_t>(length - kUdpOffset));
  Put16(udp + 6, 0);  // no UDP checksum (allowed for IPv4); the test header has its own
  uint8_t* t = f + kTestOffset;
  Put16(t, kMagic);
  t[2] = kind;
  t[3] = flags;
  Put32(t + 4, value);
  Put16(t + 8, static_cast<uint16_t>(length));
}

}  // namespace

uint32_t FrameLength(uint32_t seq, uint32_t min, uint32_t max) {
  if (max <= min) return min;
  // A stride co-prime with most spans mixes small and large frames evenly.
  return min + static_cast<uint32_t>((uint64_t{seq} * 7919u) % (max - min + 1));
}

uint32_t BuildData(std::span<uint8_t> out, const Link& link, uint32_t flow, uint32_t seq,
                   uint32_t length) {
  if (length < kHeaderBytes || length > out.size() || length > 0xFFFF) return 0;
  uint8_t* f = out.data();
  WriteHeaders(f, link, flow, length, kKindData, 0, seq);
  for (uint32_t i = kHeaderBytes; i < length; ++i) f[i] = PatternByte(seq, i);
  Put16(f + kTestOffset + 10, TestChecksum(f, length));
  return length;
}

uint32_t BuildAck(std::span<uint8_t> out, const Link& link, uint32_t received, bool done) {
  const uint32_t length = net::kMinWireFrameSize;
  if (out.size() < length) return 0;
  uint8_t* f = out.data();
  WriteHeaders(f, link, 0xFFFF, length, kKindAck, done ? kFlagDone : 0, received);
  std::memset(f + kHeaderBytes, 0, length - kHeaderBytes);
  Put16(f + kTestOffset + 10, TestChecksum(f, length));
  return length;
}

uint32_t BuildStreamData(std::span<uint8_t> out, const Link& link, uint32_t flow, StreamId id,
                         uint32_t seq, uint32_t length) {
  if (length < kStreamHeaderBytes || length > out.size() || length > 0xFFFF) return 0;
  uint8_t* f = out.data();
  WriteHeaders(f, link, flow, length, kKindData, kFlagStream, seq);
  Put32(f + kHeaderBytes, id.sender);
  Put32(f + kHeaderBytes + 4, id.session);
  for (uint32_t i = kStreamHeaderBytes; i < length; ++i) f[i] = PatternByte(seq, i);
  Put16(f + kTestOffset + 10, TestChecksum(f, length));
  return length;
}

uint32_t BuildStreamAck(std::span<uint8_t> out, const Link& link, const StreamAck& ack) {
  const uint32_t length = kStreamAckBytes;
  if (out.size() < length) return 0;
  uint8_t* f = out.data();
  WriteHeaders(f, link, 0xFFFF, length,
               kKindAck, static_cast<uint8_t>(kFlagStream | (ack.done ? kFlagDone : 0)),
               ack.received);
  Put32(f + kHeaderBytes, ack.from);
  Put32(f + kHeaderBytes + 4, ack.acked_sender);
  Put32(f + kHeaderBytes + 8, ack.sent);
  Put32(f + kHeaderBytes + 12, ack.sent_session);
  Put16(f + kTestOffset + 10, TestChecksum(f, length));
  return length;
}

Parsed Parse(std::span<const uint8_t> frame) {
  Parsed p;
  if (frame.size() < kHeaderBytes) return p;
  const uint8_t* f = frame.data();
  if (Get16(f + 12) != net::kEtherTypeIpv4 || f[kIpOffset] != 0x45 ||
      f[kIpOffset + 9] != kProtoUdp || Get16(f + kTestOffset) != kMagic) {
    return p;
  }
  p.verdict = Verdict::kBad;
  const uint8_t kind = f[kTestOffset + 2];
  const uint32_t length = Get16(f + kTestOffset + 8);
  // Wire-like backends pad short frames to 60 bytes: the frame may be longer, never shorter.
  if (length < kHeaderBytes || length > frame.size()) return p;
  if (Get16(f + kIpOffset + 2) != length - kIpOffset) return p;
  if (Get16(f + kUdpOffset + 4) != length - kUdpOffset) return p;
  if (net::InternetChecksum({f + kIpOffset, 20}) != 0) return p;
  // Ports follow from the flow carried in the addresses; no UDP checksum is used.
  const uint32_t flow = f[kIpOffset + 15] | (uint32_t{f[kIpOffset + 19]} << 8);
  if (Get16(f + kUdpOffset) != 10000 + (flow & 0x3FFF) ||
      Get16(f + kUdpOffset + 2) != 20000 + (flow & 0x3FFF) || Get16(f + kUdpOffset + 6) != 0) {
    return p;
  }
  const uint32_t value = Get32(f + kTestOffset + 4);
  const uint16_t check = Get16(f + kTestOffset + 10);
  if (TestChecksum(f, length) != check) return p;
  const uint8_t flags = f[kTestOffset + 3];
  const bool stream = (flags & kFlagStream) != 0;
  if (kind == kKindData) {
    if ((flags & ~kFlagStream) != 0) return p;
    uint32_t pattern_from = kHeaderBytes;
    if (stream) {
      if (length < kStreamHeaderBytes) return p;
      p.id = StreamId{Get32(f + kHeaderBytes), Get32(f + kHeaderBytes + 4)};
      pattern_from = kStreamHeaderBytes;
    }
    for (uint32_t i = pattern_from; i < length; ++i) {
      if (f[i] != PatternByte(value, i)) return p;
    }
    p.verdict = Verdict::kData;
  } else if (kind == kKindAck) {
    if ((flags & ~(kFlagDone | kFlagStream)) != 0) return p;
    p.done = (flags & kFlagDone) != 0;
    if (stream) {
      if (length < kStreamAckBytes) return p;
      p.ack = StreamAck{Get32(f + kHeaderBytes),     Get32(f + kHeaderBytes + 4), value,
                        Get32(f + kHeaderBytes + 8), Get32(f + kHeaderBytes + 12), p.done};
    }
    p.verdict = Verdict::kAck;
  } else {
    return p;
  }
  p.stream = stream;
  p.value = value;
  return p;
}

}  // namespace traffic

nlohmann::json TrafficResult::ToJson() const {
  const double s = seconds > 0 ? seconds : 1e-9;
  nlohmann::json tx = nlohmann::json::array();
  for (const TrafficTxSession& t : tx_sessions) {
    tx.push_back({{"peer", t.peer}, {"sent", t.sent}, {"acked", t.acked}});
  }
  nlohmann::json rx = nlohmann::json::array();
  for (const TrafficRxSession& r : rx_sessions) {
    rx.push_back({{"peer", r.peer},
                  {"received", r.received},
                  {"high", r.high},
                  {"duplicates", r.duplicates},
                  {"out_of_window", r.out_of_window},
                  {"peer_done", r.peer_done},
                  {"peer_sent", r.peer_sent}});
  }
  return {{"ok", ok},
          {"error", error},
          {"nonce", nonce},
          {"duration", duration_s},
          {"drained", drained},
          {"out_of_window", out_of_window},
          {"stale", stale},
          {"foreign", foreign},
          {"tx_sessions", std::move(tx)},
          {"rx_sessions", std::move(rx)},
          {"expected", expected},
          {"sent", sent},
          {"acked", acked},
          {"received", received},
          {"bad", bad},
          {"duplicates", duplicates},
          {"other", other},
          {"frames_out", frames_out},
          {"frames_in", frames_in},
          {"tx_bytes", tx_bytes},
          {"rx_bytes", rx_bytes},
          {"tx_queue", tx_queue},
          {"rx_queue", rx_queue},
          {"seconds", seconds},
          {"tx_pps", static_cast<uint64_t>(static_cast<double>(sent) / s)},
          {"tx_bps", static_cast<uint64_t>(static_cast<double>(tx_bytes) * 8 / s)},
          {"rx_pps", static_cast<uint64_t>(static_cast<double>(received) / s)},
          {"rx_bps", static_cast<uint64_t>(static_cast<double>(rx_bytes) * 8 / s)}};
}

namespace {

int64_t NowNs() { return SteadyClock::Instance().NowNs(); }
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kAckPeriodNs = 20 * kMs;
constexpr int64_t kLingerNs = 200 * kMs;
constexpr int64_t kDrainNs = 3000 * kMs;
// Receive window of each sender record, in sequence numbers (8 KiB of bits).
constexpr uint64_t kWindowBits = 65536;
// Sender records that keep a window (older ones only count stragglers as stale).
constexpr size_t kWindowedRecords = 4;

uint32_t DrawNonce() {
  std::random_device rd;
  uint32_t n = 0;
  while (n == 0) n = rd() ^ static_cast<uint32_t>(NowNs());
  return n;
}

}  // namespace

// A receive record plus its window of seen sequence numbers (empty once evicted).
struct GuestNicLoop::RxTrack {
  TrafficRxSession s;
  uint64_t base = 0;             // every seq below base is out of the window
  std::vector<uint64_t> bits;    // kWindowBits bits, indexed by seq % kWindowBits
};

// Traffic state of one RunTraffic().
struct GuestNicLoop::Run {
  traffic::Link link;
  uint32_t nonce = 0;
  uint32_t window = 0;
  bool draining = false;      // stopped sending (duration=S end or Stop())
  std::vector<TrafficTxSession> tx;  // back() = the current session
  std::vector<RxTrack> rx;           // in the order of their first frame
  size_t rx_latest = SIZE_MAX;       // the record we acknowledge (the newest sender)
  size_t rx_hint = SIZE_MAX;         // last record a data frame hit (lookup cache)
  TrafficResult result;
};

GuestNicLoop::GuestNicLoop(netvsc::NetDevice& device, net::Ipv4Interface address, Printer print)
    : device_(device),
      address_(address),
      print_(std::move(print)),
      queues_(std::max<uint32_t>(1, device.queue_count())),
      max_frame_(device.max_frame_size()),
      rx_buffers_(queues_),
      reply_(net::kMaxFrameSize),
      responder_(device.mac(), address.address) {
  for (auto& b : rx_buffers_) b.resize(size_t{net::kMaxBatch} * max_frame_);
}

uint32_t GuestNicLoop::Send(uint32_t queue, const net::FrameBatch& batch) {
  const uint32_t n = device_.Send(queue, batch);
  frames_out_ += n;
  return n;
}

void GuestNicLoop::SendOne(uint32_t queue, std::span<const uint8_t> frame) {
  net::FrameBatch batch;
  batch.Add(frame);
  // A full queue drops the reply (like a NIC's full TX ring); the test traffic has its own
  // retransmission-free flow control and never relies on these.
  (void)Send(queue, batch);
}

GuestNicLoop::RxTrack* GuestNicLoop::FindRx(uint32_t sender, bool create) {
  Run& run = *run_;
  if (run.rx_hint < run.rx.size() && run.rx[run.rx_hint].s.peer == sender) {
    return &run.rx[run.rx_hint];
  }
  // Newest first: the live peer is at the back.
  for (size_t i = run.rx.size(); i-- > 0;) {
    if (run.rx[i].s.peer == sender) {
      run.rx_hint = i;
      return &run.rx[i];
    }
  }
  if (!create) return nullptr;
  RxTrack& t = run.rx.emplace_back();
  t.s.peer = sender;
  t.bits.assign(kWindowBits / 64, 0);
  // Only the newest records keep a window: a long soak sees hundreds of incarnations.
  if (run.rx.size() > kWindowedRecords) {
    std::vector<uint64_t>().swap(run.rx[run.rx.size() - 1 - kWindowedRecords].bits);
  }
  run.rx_latest = run.rx.size() - 1;
  run.rx_hint = run.rx_latest;
  return &t;
}

void GuestNicLoop::OnData(uint32_t queue, const traffic::Parsed& p, size_t bytes) {
  Run& run = *run_;
  // A frame for a previous incarnation of ours (its sender has not seen our hello yet, or it
  // was queued before we were restarted), or a plain frame: not part of any session of ours.
  if (!p.stream || p.id.session != run.nonce || p.id.sender == 0) {
    ++run.result.stale;
    return;
  }
  RxTrack* t = FindRx(p.id.sender, /*create=*/true);
  if (t->bits.empty()) {  // an evicted (long dead) sender's straggler
    ++run.result.stale;
    return;
  }
  const uint64_t seq = p.value;
  if (seq < t->base) {
    ++t->s.out_of_window;
    return;
  }
  if (seq >= t->base + kWindowBits) {
    // Slide: forget the oldest part (a sender is at most `window` frames ahead of what we
    // acknowledged, so only frames lost for good fall out).
    const uint64_t next = seq - kWindowBits + 1;
    if (next - t->base >= kWindowBits) {
      std::fill(t->bits.begin(), t->bits.end(), 0);
    } else {
      for (uint64_t q = t->base; q < next; ++q) {
        t->bits[(q % kWindowBits) / 64] &= ~(uint64_t{1} << (q % 64));
      }
    }
    t->base = next;
  }
  uint64_t& word = t->bits[(seq % kWindowBits) / 64];
  const uint64_t bit = uint64_t{1} << (seq % 64);
  if ((word & bit) != 0) {
    ++t->s.duplicates;
    return;
  }
  word |= bit;
  ++t->s.received;
  t->s.high = std::max(t->s.high, seq + 1);
  ++run.result.rx_queue[queue];
  run.result.rx_bytes += bytes;
}

void GuestNicLoop::OnAck(const traffic::StreamAck& ack) {
  Run& run = *run_;
  if (ack.from == 0 || ack.from == run.nonce) return;
  // Transmit side: which peer incarnation we send to, and how much of it arrived.
  const bool current = !run.tx.empty() && run.tx.back().peer == ack.from;
  if (!current) {
    const bool seen = std::any_of(run.tx.begin(), run.tx.end(),
                                  [&](const TrafficTxSession& t) { return t.peer == ack.from; });
    if (seen) return;  // a late ack of a dead incarnation: its session stays closed
    if (!run.draining) {
      run.tx.push_back(TrafficTxSession{ack.from, 0, 0});
      print_(fmt::format("traffic: session {} to peer incarnation {:08x}", run.tx.size(),
                         ack.from));
    }
  }
  if (!run.tx.empty() && run.tx.back().peer == ack.from && ack.acked_sender == run.nonce) {
    TrafficTxSession& t = run.tx.back();
    t.acked = std::max(t.acked, std::min<uint64_t>(ack.received, t.sent));
  }
  // Receive side: what the peer says it sent us (final once done).
  if (ack.sent_session == run.nonce) {
    RxTrack* t = FindRx(ack.from, /*create=*/true);
    t->s.peer_sent = std::max<uint64_t>(t->s.peer_sent, ack.sent);
    t->s.peer_done = t->s.peer_done || ack.done;
  }
}

bool GuestNicLoop::SendAck() {
  Run& run = *run_;
  traffic::StreamAck a;
  a.from = run.nonce;
  if (run.rx_latest < run.rx.size()) {
    a.acked_sender = run.rx[run.rx_latest].s.peer;
    a.received = static_cast<uint32_t>(run.rx[run.rx_latest].s.received);
  }
  if (!run.tx.empty()) {
    a.sent = static_cast<uint32_t>(run.tx.back().sent);
    a.sent_session = run.tx.back().peer;
  }
  a.done = run.draining;
  std::array<uint8_t, traffic::kStreamAckBytes> frame{};
  const uint32_t n = traffic::BuildStreamAck(frame, run.link, a);
  net::FrameBatch batch;
  batch.Add({frame.data(), n});
  return Send(0, batch) == 1;
}

void GuestNicLoop::Handle(uint32_t queue, std::span<const uint8_t> frame) {
  if (run_ != nullptr) {
    const traffic::Parsed p = traffic::Parse(frame);
    if (p.verdict != traffic::Verdict::kNotTest &&
        std::memcmp(frame.data(), run_->link.src_mac.bytes.data(), 6) != 0) {
      // A test frame for another NIC: the switch floods unicast for a MAC it no longer knows
      // (a killed guest's port is gone). It was counted by its sender's session.
      ++run_->result.foreign;
      return;
    }
    switch (p.verdict) {
      case traffic::Verdict::kData:
        OnData(queue, p, frame.size());
        return;
      case traffic::Verdict::kAck:
        if (p.stream) OnAck(p.ack);
        return;
      case traffic::Verdict::kBad:
        ++run_->result.bad;
        return;
      case traffic::Verdict::kNotTest:
        ++run_->result.other;
        break;
    }
  }
  // ARP replies and ICMP echo replies we are waiting for.
  if (want_arp_) {
    if (auto arp = net::ParseArp(frame); arp && arp->operation == 2 &&
                                         arp->sender_ip == *want_arp_) {
      arp_answer_ = arp->sender_mac;
    }
  }
  if (ping_id_ != 0) {
    auto echo = net::ParseIcmpEcho(frame);
    if (echo.echo && echo.echo->type == 0 && echo.echo->identifier == ping_id_ &&
        echo.echo->sequence == last_ping_seq_) {
      const double ms = static_cast<double>(NowNs() - ping_sent_ns_) / 1e6;
      print_(fmt::format("ping: {} bytes from {}: icmp_seq={} ttl={} time={:.3f} ms",
                         echo.echo->payload.size() + net::kIcmpEchoHeaderSize,
                         echo.echo->src_ip.ToString(), echo.echo->sequence, echo.echo->ttl, ms));
      ++ping_replies_;
      last_ping_seq_ = -1;
    }
  }
  const uint32_t n = responder_.Respond(frame, reply_);
  if (n != 0) SendOne(queue, {reply_.data(), n});
}

uint32_t GuestNicLoop::PollOnce() {
  uint32_t total = 0;
  for (uint32_t q = 0; q < queues_; ++q) {
    net::RxBatch batch;
    uint8_t* base = rx_buffers_[q].data();
    for (uint32_t i = 0; i < net::kMaxBatch; ++i) {
      batch.Add({base + size_t{i} * max_frame_, max_frame_});
    }
    const uint32_t n = device_.Receive(q, batch);
    frames_in_ += n;
    for (uint32_t i = 0; i < n; ++i) Handle(q, {batch[i].data, batch[i].length});
    total += n;
  }
  return total;
}

void GuestNicLoop::Wait(int max_ms) {
  std::array<pollfd, net::kMaxQueues> fds{};
  nfds_t count = 0;
  for (uint32_t q = 0; q < queues_; ++q) {
    if (!device_.PrepareWait(q)) return;  // frames already waiting
    const int fd = device_.wait_fd(q);
    if (fd >= 0) fds[count++] = pollfd{fd, POLLIN, 0};
  }
  (void)::poll(fds.data(), count, max_ms);
}

void GuestNicLoop::Serve() {
  while (!stopped()) {
    if (PollOnce() == 0) Wait(100);
  }
}

bool GuestNicLoop::Resolve(const net::Ipv4Address& ip, int64_t deadline_ns,
                           net::MacAddress* mac) {
  want_arp_ = ip;
  arp_answer_.reset();
  std::array<uint8_t, net::kMinWireFrameSize> frame{};
  int64_t next_send = NowNs();
  int64_t last_send = next_send;
  while (!stopped() && NowNs() < deadline_ns) {
    if (NowNs() >= next_send) {
      const uint32_t n = net::BuildArpRequest(frame, device_.mac(), address_.address, ip);
      print_(fmt::format("arp: who-has {} tell {}", ip.ToString(), address_.address.ToString()));
      SendOne(0, {frame.data(), n});
      last_send = NowNs();
      next_send = last_send + 200 * kMs;
    }
    if (PollOnce() == 0) Wait(5);
    if (arp_answer_) {
      *mac = *arp_answer_;
      print_(fmt::format("arp: {} is-at {} ({:.3f} ms)", ip.ToString(), mac->ToString(),
                         static_cast<double>(NowNs() - last_send) / 1e6));
      want_arp_.reset();
      return true;
    }
  }
  want_arp_.reset();
  return false;
}

void GuestNicLoop::Ping(const net::Ipv4Address& ip, const net::MacAddress& mac, int count,
                        int64_t deadline_ns) {
  ping_id_ = static_cast<uint16_t>(0x5500 | (address_.address.bytes[3]));
  std::array<uint8_t, 56> payload{};
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> frame(128);
  for (int seq = 1; seq <= count && !stopped() && NowNs() < deadline_ns; ++seq) {
    net::IcmpEcho echo;
    echo.src_mac = device_.mac();
    echo.dst_mac = mac;
    echo.src_ip = address_.address;
    echo.dst_ip = ip;
    echo.identifier = ping_id_;
    echo.sequence = static_cast<uint16_t>(seq);
    echo.payload = payload;
    const uint32_t n = net::BuildIcmpEcho(frame, echo);
    last_ping_seq_ = seq;
    const int before = ping_replies_;
    ping_sent_ns_ = NowNs();
    SendOne(0, {frame.data(), n});
    const int64_t give_up = std::min(deadline_ns, NowNs() + 1000 * kMs);
    while (ping_replies_ == before && !stopped() && NowNs() < give_up) {
      if (PollOnce() == 0) Wait(5);
    }
    if (ping_replies_ == before) print_(fmt::format("ping: no reply to icmp_seq={}", seq));
  }
  ping_id_ = 0;
}

TrafficResult GuestNicLoop::RunTraffic(const TrafficSpec& spec) {
  Run run;
  run.nonce = DrawNonce();
  run.window = spec.window;
  run.link.src_mac = device_.mac();
  const bool continuous = spec.duration_s != 0;
  run.result.nonce = run.nonce;
  run.result.duration_s = spec.duration_s;
  run.result.expected = continuous ? 0 : spec.frames;
  run.result.tx_queue.assign(queues_, 0);
  run.result.rx_queue.assign(queues_, 0);
  const int64_t begin = NowNs();
  const int64_t deadline =
      begin + int64_t{continuous ? spec.duration_s : spec.timeout_s} * 1'000'000'000;
  auto finish = [&](std::string why) {
    TrafficResult& r = run.result;
    r.error = std::move(why);
    r.tx_sessions = run.tx;
    r.rx_sessions.clear();
    for (const RxTrack& t : run.rx) r.rx_sessions.push_back(t.s);
    r.sent = r.acked = r.received = r.duplicates = r.out_of_window = 0;
    for (const TrafficTxSession& t : run.tx) {
      r.sent += t.sent;
      r.acked += t.acked;
    }
    for (const TrafficRxSession& t : r.rx_sessions) {
      r.received += t.received;
      r.duplicates += t.duplicates;
      r.out_of_window += t.out_of_window;
    }
    r.frames_out = frames_out_;
    r.frames_in = frames_in_;
    if (r.error.empty() && (r.bad != 0 || r.duplicates != 0)) {
      r.error = fmt::format("{} bad and {} duplicate frames", r.bad, r.duplicates);
    }
    r.ok = r.error.empty();
    return r;
  };
  if (!continuous && spec.frames > UINT32_MAX) return finish("too many frames");
  // Printed first, so that the incarnation of a guest killed mid-run is still on record.
  print_(fmt::format("traffic: incarnation {:08x}", run.nonce));
  // Receiving starts now: the peer may finish resolving and start sending while we still wait
  // for our own ARP or ping replies.
  run_ = &run;
  struct Detach {
    GuestNicLoop* self;
    ~Detach() { self->run_ = nullptr; }
  } detach{this};

  // 1. The peer's MAC: given, or asked for by ARP; then three pings (ICMP echo).
  net::MacAddress peer{};
  if (spec.peer_mac) {
    peer = *spec.peer_mac;
  } else if (!Resolve(*spec.peer_ip, deadline, &peer)) {
    run.result.seconds = static_cast<double>(NowNs() - begin) / 1e9;
    return finish(fmt::format("no ARP reply from {}", spec.peer_ip->ToString()));
  }
  if (spec.peer_ip) Ping(*spec.peer_ip, peer, 3, deadline);

  // 2. Flows per queue: each queue sends the flows netvsc would put on it.
  const uint32_t max_size = std::min(spec.max_size == 0 ? max_frame_ : spec.max_size, max_frame_);
  const uint32_t min_size =
      std::clamp<uint32_t>(spec.min_size, traffic::kStreamHeaderBytes, max_size);
  run.link = traffic::Link{device_.mac(), peer};
  std::vector<std::vector<uint32_t>> flows(queues_);
  {
    std::vector<uint8_t> probe(traffic::kStreamHeaderBytes + 8);
    for (uint32_t f = 0; f < spec.flows; ++f) {
      const uint32_t n = traffic::BuildStreamData(probe, run.link, f, {}, 0,
                                                  static_cast<uint32_t>(probe.size()));
      const uint32_t q = device_.SelectQueue({probe.data(), n});
      flows[q < queues_ ? q : 0].push_back(f);
    }
  }
  std::vector<uint32_t> active;
  for (uint32_t q = 0; q < queues_; ++q) {
    if (!flows[q].empty()) active.push_back(q);
  }
  print_(fmt::format("traffic: {} of {}..{} bytes to {} over {} flows on {} queue{} "
                     "(window {}{})",
                     continuous ? fmt::format("{} s", spec.duration_s)
                                : fmt::format("{} frames", spec.frames),
                     min_size, max_size, peer.ToString(), spec.flows, active.size(),
                     active.size() == 1 ? "" : "s", spec.window,
                     spec.rate_pps != 0 ? fmt::format(", {} frames/s", spec.rate_pps) : ""));

  // Per session: N frames (frames=N); with duration=S as many as the run lasts (a session's
  // sequence numbers are 32 bits: it stops one window short of wrapping).
  const uint64_t per_session = continuous ? uint64_t{UINT32_MAX} - spec.window : spec.frames;
  std::vector<uint8_t> tx(size_t{net::kMaxBatch} * max_frame_);
  uint64_t last_ack_value = UINT64_MAX;
  int64_t last_ack_ns = 0;
  uint64_t total_sent = 0;
  size_t rr = 0;
  const int64_t start = NowNs();
  int64_t finished_ns = 0;
  int64_t linger_until = 0;
  int64_t drain_until = 0;
  bool timed_out = false;
  auto latest_received = [&]() -> uint64_t {
    return run.rx_latest < run.rx.size() ? run.rx[run.rx_latest].s.received : 0;
  };
  for (;;) {
    const int64_t now = NowNs();
    if (continuous) {
      if (!run.draining && (stopped() || now >= deadline)) {
        run.draining = true;  // from now on every ack carries done + the final count
        drain_until = now + kDrainNs;
        last_ack_ns = 0;      // announce it at once
      }
      if (run.draining && now >= drain_until) break;
    } else {
      if (stopped()) break;
      if (now >= deadline) {
        timed_out = true;
        break;
      }
    }
    const uint32_t got = PollOnce();

    // Transmit while the session's window (and the rate) allow.
    bool blocked = false;
    uint32_t budget = 4 * net::kMaxBatch;  // bounded work per loop: keep acking and receiving
    while (!run.draining && !run.tx.empty() && budget > 0 && !active.empty()) {
      TrafficTxSession& session = run.tx.back();
      if (session.sent >= per_session) break;
      const uint64_t in_flight = session.sent - std::min(session.acked, session.sent);
      uint64_t room = in_flight >= spec.window ? 0 : spec.window - in_flight;
      if (spec.rate_pps != 0) {
        const double allowed = static_cast<double>(NowNs() - start) / 1e9 *
                               static_cast<double>(spec.rate_pps);
        const double left = allowed - static_cast<double>(total_sent);
        room = std::min<uint64_t>(room, left <= 0 ? 0 : static_cast<uint64_t>(left) + 1);
      }
      room = std::min<uint64_t>({room, per_session - session.sent, net::kMaxBatch / 2, budget});
      if (room == 0) break;
      const uint32_t q = active[rr++ % active.size()];
      const traffic::StreamId id{run.nonce, session.peer};
      net::FrameBatch batch;
      for (uint32_t i = 0; i < room; ++i) {
        const uint32_t seq = static_cast<uint32_t>(session.sent + i);
        const uint32_t flow = flows[q][seq % flows[q].size()];
        const uint32_t len = traffic::FrameLength(seq, min_size, max_size);
        uint8_t* slot = tx.data() + size_t{i} * max_frame_;
        traffic::BuildStreamData({slot, max_frame_}, run.link, flow, id, seq, len);
        batch.Add({slot, len});
      }
      const uint32_t consumed = Send(q, batch);
      uint64_t bytes = 0;
      for (uint32_t i = 0; i < consumed; ++i) bytes += batch[i].length;
      session.sent += consumed;
      total_sent += consumed;
      run.result.tx_queue[q] += consumed;
      run.result.tx_bytes += bytes;
      budget -= static_cast<uint32_t>(std::min<uint64_t>(budget, room));
      if (consumed < room) {
        blocked = true;  // back-pressure: the ring is full; retry after a wait
        break;
      }
    }

    // Acknowledge what arrived; every 20 ms at least, which doubles as the hello a new peer
    // incarnation needs before it may send (and repairs lost acks).
    const uint64_t received = latest_received();
    const bool all_in = !continuous && received == spec.frames;
    const bool changed = received != last_ack_value;
    const bool ack_due =
        changed && (received - (last_ack_value == UINT64_MAX ? 0 : last_ack_value) >=
                        std::max<uint32_t>(1, spec.window / 4) ||
                    got == 0 || all_in);
    if (ack_due || NowNs() - last_ack_ns >= kAckPeriodNs) {
      if (SendAck()) {
        last_ack_value = received;
        last_ack_ns = NowNs();
      }
    }

    bool done = false;
    if (continuous) {
      if (run.draining) {
        // Our frames all acknowledged, and the peer's announced final count all here.
        const bool tx_drained =
            run.tx.empty() || run.tx.back().acked == run.tx.back().sent;
        bool rx_drained = true;
        if (!run.tx.empty()) {
          const RxTrack* t = FindRx(run.tx.back().peer, /*create=*/false);
          rx_drained = t == nullptr || (t->s.peer_done && t->s.received >= t->s.peer_sent);
        }
        done = tx_drained && rx_drained && last_ack_value == received;
      }
    } else {
      done = !run.tx.empty() && run.tx.back().sent == spec.frames &&
             run.tx.back().acked == spec.frames && all_in && last_ack_value == spec.frames;
    }
    if (done && finished_ns == 0) {
      finished_ns = NowNs();
      linger_until = finished_ns + kLingerNs;
    }
    if (finished_ns != 0 && NowNs() >= linger_until) break;
    if (got == 0) {
      const bool can_send = !run.draining && !run.tx.empty() &&
                            run.tx.back().sent < per_session && !blocked &&
                            run.tx.back().sent - std::min(run.tx.back().acked,
                                                          run.tx.back().sent) < spec.window &&
                            spec.rate_pps == 0;
      if (!can_send) Wait(blocked || spec.rate_pps != 0 ? 1 : 5);
    }
  }
  run.result.seconds =
      static_cast<double>((finished_ns != 0 ? finished_ns : NowNs()) - start) / 1e9;
  run.result.drained = continuous && finished_ns != 0;
  std::string error;
  if (continuous) {
    if (finished_ns == 0) {
      const TrafficTxSession* t = run.tx.empty() ? nullptr : &run.tx.back();
      error = fmt::format("drain incomplete after {} s: sent {}, acknowledged {} in the last "
                          "session",
                          kDrainNs / 1'000'000'000, t != nullptr ? t->sent : 0,
                          t != nullptr ? t->acked : 0);
    }
  } else if (timed_out) {
    const TrafficTxSession* t = run.tx.empty() ? nullptr : &run.tx.back();
    error = fmt::format("timeout after {} s: sent {}, acknowledged {}, received {} of {}",
                        spec.timeout_s, t != nullptr ? t->sent : 0, t != nullptr ? t->acked : 0,
                        latest_received(), spec.frames);
  } else if (finished_ns == 0) {
    error = "interrupted";
  }
  return finish(std::move(error));
}

}  // namespace uvmbus::tools
