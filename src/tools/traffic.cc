// File: tools/traffic.cc
#include "tools/traffic.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cstring>

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
  if (kind == kKindData) {
    if (flags != 0) return p;
    for (uint32_t i = kHeaderBytes; i < length; ++i) {
      if (f[i] != PatternByte(value, i)) return p;
    }
    p.verdict = Verdict::kData;
  } else if (kind == kKindAck) {
    if ((flags & ~kFlagDone) != 0) return p;
    p.verdict = Verdict::kAck;
    p.done = (flags & kFlagDone) != 0;
  } else {
    return p;
  }
  p.value = value;
  return p;
}

}  // namespace traffic

nlohmann::json TrafficResult::ToJson() const {
  const double s = seconds > 0 ? seconds : 1e-9;
  return {{"ok", ok},
          {"error", error},
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

}  // namespace

// Traffic state of one RunTraffic().
struct GuestNicLoop::Run {
  traffic::Link link;
  uint32_t expected = 0;
  std::vector<uint8_t> seen;  // one byte per sequence number (bitmap-like, simple)
  uint32_t received = 0;
  uint32_t peer_acked = 0;
  bool peer_done = false;
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

void GuestNicLoop::Handle(uint32_t queue, std::span<const uint8_t> frame) {
  if (run_ != nullptr) {
    const traffic::Parsed p = traffic::Parse(frame);
    switch (p.verdict) {
      case traffic::Verdict::kData:
        if (p.value >= run_->expected || run_->seen[p.value] != 0) {
          ++run_->result.duplicates;
        } else {
          run_->seen[p.value] = 1;
          ++run_->received;
          ++run_->result.rx_queue[queue];
          run_->result.rx_bytes += frame.size();
        }
        return;
      case traffic::Verdict::kAck:
        run_->peer_acked = std::max(run_->peer_acked, std::min(p.value, run_->expected));
        run_->peer_done = run_->peer_done || p.done;
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
  run.result.expected = spec.frames;
  run.result.tx_queue.assign(queues_, 0);
  run.result.rx_queue.assign(queues_, 0);
  const int64_t deadline = NowNs() + int64_t{spec.timeout_s} * 1'000'000'000;
  auto fail = [&](std::string why) {
    run.result.error = std::move(why);
    run.result.ok = false;
    return run.result;
  };
  if (spec.frames > UINT32_MAX) return fail("too many frames");
  // Receiving starts now: the peer may finish resolving and start sending while we still wait
  // for our own ARP or ping replies.
  run.expected = static_cast<uint32_t>(spec.frames);
  run.seen.assign(run.expected, 0);
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
    return fail(fmt::format("no ARP reply from {}", spec.peer_ip->ToString()));
  }
  if (spec.peer_ip) Ping(*spec.peer_ip, peer, 3, deadline);

  // 2. Flows per queue: each queue sends the flows netvsc would put on it.
  const uint32_t max_size = std::min(spec.max_size == 0 ? max_frame_ : spec.max_size, max_frame_);
  const uint32_t min_size = std::clamp<uint32_t>(spec.min_size, traffic::kHeaderBytes, max_size);
  run.link = traffic::Link{device_.mac(), peer};
  std::vector<std::vector<uint32_t>> flows(queues_);
  {
    std::vector<uint8_t> probe(traffic::kHeaderBytes + 8);
    for (uint32_t f = 0; f < spec.flows; ++f) {
      const uint32_t n = traffic::BuildData(probe, run.link, f, 0, static_cast<uint32_t>(probe.size()));
      const uint32_t q = device_.SelectQueue({probe.data(), n});
      flows[q < queues_ ? q : 0].push_back(f);
    }
  }
  std::vector<uint32_t> active;
  for (uint32_t q = 0; q < queues_; ++q) {
    if (!flows[q].empty()) active.push_back(q);
  }
  print_(fmt::format("traffic: {} frames of {}..{} bytes to {} over {} flows on {} queue{} "
                     "(window {}{})",
                     spec.frames, min_size, max_size, peer.ToString(), spec.flows, active.size(),
                     active.size() == 1 ? "" : "s", spec.window,
                     spec.rate_pps != 0 ? fmt::format(", {} frames/s", spec.rate_pps) : ""));

  std::vector<uint8_t> tx(size_t{net::kMaxBatch} * max_frame_);
  std::array<uint8_t, net::kMinWireFrameSize> ack{};
  uint32_t sent = 0;
  uint32_t last_ack_value = UINT32_MAX;
  int64_t last_ack_ns = 0;
  size_t rr = 0;
  const int64_t start = NowNs();
  int64_t finished_ns = 0;
  int64_t linger_until = 0;
  bool timed_out = false;
  while (!stopped()) {
    const int64_t now = NowNs();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    const uint32_t got = PollOnce();

    // Transmit while the window (and the rate) allow.
    bool blocked = false;
    uint32_t budget = 4 * net::kMaxBatch;  // bounded work per loop: keep acking and receiving
    while (sent < run.expected && budget > 0 && !active.empty()) {
      const uint32_t in_flight = sent - std::min(run.peer_acked, sent);
      uint32_t room = in_flight >= spec.window ? 0 : spec.window - in_flight;
      if (spec.rate_pps != 0) {
        const double allowed = static_cast<double>(NowNs() - start) / 1e9 *
                               static_cast<double>(spec.rate_pps);
        const double left = allowed - static_cast<double>(sent);
        room = std::min<uint32_t>(room, left <= 0 ? 0 : static_cast<uint32_t>(left) + 1);
      }
      room = std::min({room, run.expected - sent, net::kMaxBatch / 2, budget});
      if (room == 0) break;
      const uint32_t q = active[rr++ % active.size()];
      net::FrameBatch batch;
      uint64_t bytes = 0;
      for (uint32_t i = 0; i < room; ++i) {
        const uint32_t seq = sent + i;
        const uint32_t flow = flows[q][seq % flows[q].size()];
        const uint32_t len = traffic::FrameLength(seq, min_size, max_size);
        uint8_t* slot = tx.data() + size_t{i} * max_frame_;
        traffic::BuildData({slot, max_frame_}, run.link, flow, seq, len);
        batch.Add({slot, len});
      }
      const uint32_t consumed = Send(q, batch);
      for (uint32_t i = 0; i < consumed; ++i) bytes += batch[i].length;
      sent += consumed;
      run.result.tx_queue[q] += consumed;
      run.result.tx_bytes += bytes;
      budget -= std::min(budget, room);
      if (consumed < room) {
        blocked = true;  // back-pressure: the ring is full; retry after a wait
        break;
      }
    }

    // Acknowledge what arrived.
    const bool all_in = run.received == run.expected;
    const bool ack_due = run.received != last_ack_value &&
                         (run.received - (last_ack_value == UINT32_MAX ? 0 : last_ack_value) >=
                              std::max<uint32_t>(1, spec.window / 4) ||
                          got == 0 || all_in);
    if (ack_due || (run.received > 0 && NowNs() - last_ack_ns >= kAckPeriodNs)) {
      const uint32_t n = traffic::BuildAck(ack, run.link, run.received, all_in);
      net::FrameBatch batch;
      batch.Add({ack.data(), n});
      if (Send(0, batch) == 1) {
        last_ack_value = run.received;
        last_ack_ns = NowNs();
      }
    }

    const bool done = sent == run.expected && run.peer_acked == run.expected && all_in &&
                      last_ack_value == run.expected;
    if (done && finished_ns == 0) {
      finished_ns = NowNs();
      linger_until = finished_ns + kLingerNs;
    }
    if (finished_ns != 0 && NowNs() >= linger_until) break;
    if (got == 0) {
      const bool can_send = sent < run.expected && !blocked &&
                            sent - std::min(run.peer_acked, sent) < spec.window &&
                            spec.rate_pps == 0;
      if (!can_send) Wait(blocked || spec.rate_pps != 0 ? 1 : 5);
    }
  }
  TrafficResult& r = run.result;
  r.sent = sent;
  r.acked = run.peer_acked;
  r.received = run.received;
  r.frames_out = frames_out_;
  r.frames_in = frames_in_;
  r.seconds = static_cast<double>((finished_ns != 0 ? finished_ns : NowNs()) - start) / 1e9;
  if (timed_out) {
    r.error = fmt::format("timeout after {} s: sent {}, acknowledged {}, received {} of {}",
                          spec.timeout_s, sent, run.peer_acked, run.received, run.expected);
  } else if (stopped() && finished_ns == 0) {
    r.error = "interrupted";
  } else if (r.bad != 0 || r.duplicates != 0) {
    r.error = fmt::format("{} bad and {} duplicate frames", r.bad, r.duplicates);
  }
  r.ok = r.error.empty() && finished_ns != 0;
  return r;
}

}  // namespace uvmbus::tools
