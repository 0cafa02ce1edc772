// File: tools/traffic.h
//
// What: what `uvmbus guest` does with its synthetic NIC when no TAP is asked for: a single
// thread (`GuestNicLoop`) that polls every queue of a netvsc::NetDevice through the burst API
// and
//   * answers ARP requests and ICMP echo requests for the guest's address (net::Responder),
//   * optionally (`--traffic`, TrafficSpec) resolves the peer by ARP, pings it three times, then
//     sends test frames of mixed sizes over many flows and checks every frame it receives:
//     N frames (frames=N), or continuously for S seconds / until SIGTERM (duration=S, the soak's
//     mode: scripts/soak.sh, docs/robustness.md section 6).
//
// Test frames (IPv4/UDP, RFC 2544 benchmark addresses 198.18.0.0/15, valid IPv4 checksum):
//   Ethernet(dst peer, src own, 0x0800) | IPv4 198.18.<own mac[5]>.<flow> -> 198.19.<peer mac[5]>.
//   <flow >> 8> | UDP 10000+flow -> 20000+flow | payload:
//     @42 u16 magic 0x5554 ("UT")  @44 u8 kind (1 data, 2 ack)  @45 u8 flags (bit0 done (ack),
//     bit1 stream)  @46 u32 seq (data) / frames received so far (ack)  @50 u16 frame length
//     @52 u16 RFC 1071 checksum of bytes [42, 52) and [54, length)
//   plain frames (flags bit1 clear; BuildData/BuildAck):
//     @54.. pattern: byte i = f(seq, i)
//   stream frames (flags bit1 set; what GuestNicLoop sends), with the incarnation fields:
//     data: @54 u32 sender nonce  @58 u32 session (the receiver's nonce)  @62.. pattern
//     ack (70 bytes): @54 u32 from (the acker's nonce)  @58 u32 acked sender (whose frames @46
//           counts; 0 = none yet)  @62 u32 sent (frames `from` sent in its session)
//           @66 u32 that session (the nonce it sends to; 0 = none)
// Addresses and ports vary with the flow, so the Toeplitz hash spreads the flows over all queues
// whether the host hashes 2-tuples or 4-tuples; the sender puts each frame on the queue netvsc
// would pick for its flow (NetDevice::SelectQueue), so every queue carries its share.
// A receiver checks magic, lengths, the IPv4 header checksum, the pattern and the checksum;
// any mismatch counts as `bad`, a sequence number seen twice as `duplicates`.
//
// Incarnations and sessions (so that a peer may be SIGKILLed and restarted under the same name
// and MAC while traffic flows, and every frame is still accounted for exactly): every run draws
// a random non-zero 32-bit nonce (its incarnation, printed first: `traffic: incarnation
// 1a2b3c4d`). A sender sends nothing until it has heard an ack (sent every 20 ms, also as a
// hello) from a peer incarnation; it then opens a *session* to that nonce whose sequence numbers
// start at 0, and every data frame carries (sender nonce, session). A new peer nonce in an ack
// closes the current session (with its final sent/acked counts) and opens the next; a closed
// session is never reopened (late acks of a dead incarnation are ignored). A receiver keeps one
// record per sender nonce (received, highest seq + 1, duplicates, out-of-window) and a sliding
// 65536-bit window of seen sequence numbers for the newest four; data frames for another session
// (a previous incarnation of ours) count as `stale`, test frames for another MAC (flooded by the
// switch while their destination was gone) as `foreign`. Hence, per session:
//   sender alive at the end:  sent = acked + (sent - acked), the unacked part being in flight
//                             when the receiver incarnation died (if it did);
//   receiver alive:           received frames of each sender nonce; high - received = holes
//                             (frames the sender had sent but a dead sender's path lost).
// scripts/soak.sh sums these (docs/robustness.md section 6).
//
// Flow control, so that no bounded queue on the way (switch port rings, netvsp mailboxes,
// netvsc receive rings: all drop rather than block) ever overflows: the sender keeps at most
// `window` frames sent but not acknowledged in its session; the receiver acknowledges with an
// ack frame carrying its count every window/4 frames, when idle, and every 20 ms (a lost ack is
// repaired by the next). A frames=N run ends when N frames were sent and acknowledged and N
// received in the current sessions, then lingers 200 ms to repeat its final ack; it fails on
// timeout. A duration=S run ends at S seconds or at Stop() (SIGTERM) by *draining*: it stops
// sending, sets the done flag in its acks (its `sent` is then final) and keeps receiving and
// acknowledging until its own frames are all acknowledged and the peer's announced final count
// has arrived (then lingers 200 ms), or 3 s passed (`drained` false). It is ok if nothing was
// bad or duplicated and the drain completed.
//
// Spec: none (test traffic); vmbus-protocol.md 7.9 / 8.5 (queue selection), 8.1 (Toeplitz).
// Linux/OpenVMM: DPDK testpmd txonly/rxonly (burst shape), RFC 2544 (address range).
// Thread-safety: the builders are pure; a GuestNicLoop runs on one thread (Stop() from any).
#ifndef UVMBUS_TOOLS_TRAFFIC_H_
#define UVMBUS_TOOLS_TRAFFIC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "devices/netvsc/net_device.h"
#include "net/frame.h"
#include "net/responder.h"
#include "net/tap.h"
#include "tools/nic_spec.h"

namespace uvmbus::tools {
namespace traffic {

inline constexpr uint16_t kMagic = 0x5554;
inline constexpr uint8_t kKindData = 1;
inline constexpr uint8_t kKindAck = 2;
inline constexpr uint8_t kFlagDone = 1;
inline constexpr uint8_t kFlagStream = 2;
// Ethernet + IPv4 + UDP + the 12-byte test header: the shortest test frame.
inline constexpr uint32_t kHeaderBytes = 54;
// A stream data frame's header (the above + sender nonce + session): its shortest length.
inline constexpr uint32_t kStreamHeaderBytes = 62;
// A stream ack's length.
inline constexpr uint32_t kStreamAckBytes = 70;

// Who talks to whom.
struct Link {
  net::MacAddress src_mac{};
  net::MacAddress dst_mac{};
};

// Writes a data frame of `length` bytes (kHeaderBytes..out.size()) for `flow` and `seq`.
// Returns `length`, or 0 if it does not fit.
uint32_t BuildData(std::span<uint8_t> out, const Link& link, uint32_t flow, uint32_t seq,
                   uint32_t length);
// Writes a 60-byte ack frame carrying `received` and the done flag.
uint32_t BuildAck(std::span<uint8_t> out, const Link& link, uint32_t received, bool done);

// The incarnation fields of a stream data frame.
struct StreamId {
  uint32_t sender = 0;   // the sending incarnation's nonce
  uint32_t session = 0;  // the receiving incarnation's nonce the sender addresses
};
// Writes a stream data frame of `length` bytes (kStreamHeaderBytes..out.size()). Returns
// `length`, or 0 if it does not fit.
uint32_t BuildStreamData(std::span<uint8_t> out, const Link& link, uint32_t flow, StreamId id,
                         uint32_t seq, uint32_t length);

// What a stream ack says (see the file comment).
struct StreamAck {
  uint32_t from = 0;          // the acknowledging incarnation's nonce
  uint32_t acked_sender = 0;  // whose frames `received` counts (0: none yet, a hello)
  uint32_t received = 0;      // distinct intact frames of acked_sender's session
  uint32_t sent = 0;          // frames `from` sent in its session to `sent_session`
  uint32_t sent_session = 0;  // the nonce `from` sends to (0: none yet)
  bool done = false;          // `from` stopped sending: `sent` is final
};
// Writes a kStreamAckBytes-byte stream ack. Returns its length, or 0 if it does not fit.
uint32_t BuildStreamAck(std::span<uint8_t> out, const Link& link, const StreamAck& ack);

enum class Verdict : uint8_t { kData, kAck, kNotTest, kBad };
struct Parsed {
  Verdict verdict = Verdict::kNotTest;
  uint32_t value = 0;   // data: seq; ack: received count
  bool done = false;    // ack flag
  bool stream = false;  // a stream frame: `id` (data) or `ack` (ack) is filled
  StreamId id;
  StreamAck ack;        // ack.received == value, ack.done == done
};
// Classifies and verifies a received frame (see the file comment). Frames that are not UDP test
// frames are kNotTest; test frames that fail any check are kBad.
Parsed Parse(std::span<const uint8_t> frame);

// Frame length of the frame with sequence number `seq` in [min, max]: spread over the range.
uint32_t FrameLength(uint32_t seq, uint32_t min, uint32_t max);

}  // namespace traffic

// One session this incarnation sent (to one peer incarnation).
struct TrafficTxSession {
  uint32_t peer = 0;   // the receiver incarnation's nonce
  uint64_t sent = 0;   // frames netvsc took
  uint64_t acked = 0;  // of those, acknowledged by the peer incarnation
};
// What this incarnation received from one sender incarnation.
struct TrafficRxSession {
  uint32_t peer = 0;            // the sender incarnation's nonce
  uint64_t received = 0;        // distinct intact frames
  uint64_t high = 0;            // highest sequence number seen + 1
  uint64_t duplicates = 0;
  uint64_t out_of_window = 0;   // older than the 65536-frame window: neither counted nor dup
  bool peer_done = false;       // the sender announced its final count
  uint64_t peer_sent = 0;       // the count it announced last (final if peer_done)
};

// The outcome of a traffic run (also the JSON line `uvmbus guest --traffic` prints).
struct TrafficResult {
  bool ok = false;
  std::string error;  // why not ok
  uint32_t nonce = 0;         // this incarnation
  uint32_t duration_s = 0;    // 0: a frames=N run
  uint64_t expected = 0;      // frames=N (per session); 0 with duration=S
  uint64_t sent = 0;          // sums over the sessions
  uint64_t acked = 0;
  uint64_t received = 0;
  uint64_t bad = 0;
  uint64_t duplicates = 0;
  uint64_t out_of_window = 0;
  uint64_t stale = 0;    // data frames of another session (for a previous incarnation of ours)
  uint64_t foreign = 0;  // test frames addressed to another MAC (flooded by the switch)
  uint64_t other = 0;    // non-test frames (ARP, ICMP, ...)
  bool drained = false;  // duration=S: the final drain completed (see the file comment)
  std::vector<TrafficTxSession> tx_sessions;
  std::vector<TrafficRxSession> rx_sessions;
  // Every frame the NIC took in Send() / handed out in Receive() since the guest started
  // (test frames, acks, ARP, ICMP): what the host's counters must match.
  uint64_t frames_out = 0;
  uint64_t frames_in = 0;
  uint64_t tx_bytes = 0;
  uint64_t rx_bytes = 0;
  std::vector<uint64_t> tx_queue;  // data frames sent per queue
  std::vector<uint64_t> rx_queue;  // data frames received per queue
  double seconds = 0;
  nlohmann::json ToJson() const;
};

// The guest's NIC service loop (see the file comment).
class GuestNicLoop {
 public:
  using Printer = std::function<void(const std::string& line)>;
  GuestNicLoop(netvsc::NetDevice& device, net::Ipv4Interface address, Printer print);

  // Answers ARP / ICMP echo until Stop().
  void Serve();
  // Resolve + ping + traffic, then returns (the responder keeps answering meanwhile). With
  // duration=S, Stop() ends the run by draining (up to 3 s) rather than at once.
  TrafficResult RunTraffic(const TrafficSpec& spec);
  void Stop() { stop_.store(true, std::memory_order_release); }

 private:
  // One pass over every queue: receive, classify, answer. Returns frames received.
  uint32_t PollOnce();
  void Handle(uint32_t queue, std::span<const uint8_t> frame);
  void SendOne(uint32_t queue, std::span<const uint8_t> frame);
  // NetDevice::Send, counted.
  uint32_t Send(uint32_t queue, const net::FrameBatch& batch);
  // Sleeps until a queue may have work (or `max_ms`).
  void Wait(int max_ms);
  bool stopped() const { return stop_.load(std::memory_order_acquire); }
  bool Resolve(const net::Ipv4Address& ip, int64_t deadline_ns, net::MacAddress* mac);
  void Ping(const net::Ipv4Address& ip, const net::MacAddress& mac, int count,
            int64_t deadline_ns);

  netvsc::NetDevice& device_;
  const net::Ipv4Interface address_;
  const Printer print_;
  std::atomic<bool> stop_{false};
  uint64_t frames_out_ = 0;
  uint64_t frames_in_ = 0;
  uint32_t queues_;
  uint32_t max_frame_;
  std::vector<std::vector<uint8_t>> rx_buffers_;  // per queue: kMaxBatch * max_frame_
  std::vector<uint8_t> reply_;
  net::Responder responder_;

  // Traffic state (valid during RunTraffic).
  struct Run;
  struct RxTrack;
  void OnData(uint32_t queue, const traffic::Parsed& p, size_t bytes);
  void OnAck(const traffic::StreamAck& ack);
  RxTrack* FindRx(uint32_t sender, bool create);
  // Sends one stream ack on queue 0; true if netvsc took it.
  bool SendAck();
  Run* run_ = nullptr;
  // Resolution / ping state.
  std::optional<net::Ipv4Address> want_arp_;
  std::optional<net::MacAddress> arp_answer_;
  uint16_t ping_id_ = 0;
  int64_t ping_sent_ns_ = 0;
  int ping_replies_ = 0;
  int last_ping_seq_ = -1;
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_TRAFFIC_H_
