// File: net/frame.h
//
// What: the unit of the net/ layer. An Ethernet frame (destination MAC, source MAC, EtherType,
// payload; no preamble, no FCS) and the fixed-capacity batches that every endpoint moves frames
// in: `FrameBatch` (read-only frames to transmit) and `RxBatch` (writable buffers to receive
// into). A batch is an array of at most kMaxBatch (pointer, length, capacity, id) descriptors that
// lives on the caller's stack: no allocation per frame or per batch. The `id` is the caller's
// buffer id (OpenVMM net_backend RxId/TxId; e.g. a netvsp receive-buffer section index) and is
// carried through untouched, so a frame can be matched to the buffer it occupies.
//
// Frame sizes: a frame is valid on entry (Queue::Send) when 14 <= length <= the endpoint's
// max_frame_size() (= MTU + 14; MTU 68..9202, so at most kMaxFrameSize = 9216 bytes, the jumbo
// limit spec 5.2 / 9.7 P6 allow). Frames shorter than the Ethernet minimum of 60 bytes are
// accepted because Linux's tap and netvsc emit unpadded runts (a 42-byte ARP request); the
// backends that model a wire (switch, pipe, loopback, tap receive) zero-pad what they deliver to
// 60 bytes, so a receiver always sees 60..max_frame_size bytes.
//
// Also here: MacAddress and Ipv4Address value types (text forms "02:00:5e:00:00:01" and
// "10.0.0.1").
//
// Spec: vmbus-protocol.md 5.5 (SEND_NDIS_CONFIG mtu includes the 14-byte header), 9.7 P6
//       (MTU range 1514..9216 frame bytes), 6.5 (the frame inside an RNDIS PACKET_MSG).
// Linux/OpenVMM: OpenVMM vm/devices/net/net_backend/src/lib.rs (RxId, TxId, TxSegment,
//       RX_BATCH_SIZE); DPDK rte_eth_rx_burst/rte_eth_tx_burst (the burst shape).
// Thread-safety: value types; a batch is used by one thread at a time.
#ifndef UVMBUS_NET_FRAME_H_
#define UVMBUS_NET_FRAME_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace uvmbus::net {

// Ethernet header: destination MAC @0, source MAC @6, EtherType @12 (big endian).
inline constexpr uint32_t kEthHeaderSize = 14;
// The shortest frame on an Ethernet wire without FCS (64 - 4).
inline constexpr uint32_t kMinWireFrameSize = 60;
// Jumbo limit: the largest frame (header included) any endpoint accepts.
inline constexpr uint32_t kMaxFrameSize = 9216;
inline constexpr uint32_t kMinMtu = 68;                             // RFC 791 minimum
inline constexpr uint32_t kMaxMtu = kMaxFrameSize - kEthHeaderSize;  // 9202
inline constexpr uint32_t kDefaultMtu = 1500;

// Most frames one batch carries (the NAPI poll weight; OpenVMM polls in similar chunks).
inline constexpr uint32_t kMaxBatch = 64;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;

// Largest frame for `mtu` (payload bytes).
inline constexpr uint32_t MaxFrameSizeForMtu(uint32_t mtu) { return mtu + kEthHeaderSize; }
inline constexpr bool IsValidMtu(uint32_t mtu) { return mtu >= kMinMtu && mtu <= kMaxMtu; }

// A 48-bit IEEE MAC address in wire order.
struct MacAddress {
  std::array<uint8_t, 6> bytes{};

  static constexpr MacAddress Broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  // Reads 6 bytes (a frame's destination or source field).
  static MacAddress FromBytes(const uint8_t* p) {
    MacAddress m;
    std::memcpy(m.bytes.data(), p, 6);
    return m;
  }
  // Parses "02:00:5e:00:00:01" (also '-' separators); nullopt on anything else.
  static std::optional<MacAddress> Parse(std::string_view text);
  // Lower-case "xx:xx:xx:xx:xx:xx".
  std::string ToString() const;

  // Group bit (I/G): multicast, broadcast included.
  bool IsMulticast() const { return (bytes[0] & 1) != 0; }
  bool IsBroadcast() const { return *this == Broadcast(); }
  bool IsZero() const { return *this == MacAddress{}; }
  // The address packed into the low 48 bits (for hashing and tables).
  uint64_t ToU64() const {
    uint64_t v = 0;
    for (uint8_t b : bytes) v = (v << 8) | b;
    return v;
  }
  static MacAddress FromU64(uint64_t v) {
    MacAddress m;
    for (int i = 5; i >= 0; --i) {
      m.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
      v >>= 8;
    }
    return m;
  }

  friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

// An IPv4 address in wire (network) order.
struct Ipv4Address {
  std::array<uint8_t, 4> bytes{};

  static Ipv4Address FromBytes(const uint8_t* p) {
    Ipv4Address a;
    std::memcpy(a.bytes.data(), p, 4);
    return a;
  }
  // Parses dotted-quad "10.0.0.1"; nullopt on anything else.
  static std::optional<Ipv4Address> Parse(std::string_view text);
  std::string ToString() const;
  uint32_t ToHostOrder() const {
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
           bytes[3];
  }

  friend bool operator==(const Ipv4Address&, const Ipv4Address&) = default;
};

// One frame descriptor of a batch. `Byte` is `const uint8_t` for frames to transmit and
// `uint8_t` for receive buffers.
template <typename Byte>
struct BasicFrame {
  Byte* data = nullptr;
  // Frame bytes. Transmit: set by the caller. Receive: set by the endpoint for filled slots.
  uint32_t length = 0;
  // Bytes available at `data` (receive buffers); equals the length for transmit frames.
  uint32_t capacity = 0;
  // The caller's buffer id, never interpreted by net/.
  uint32_t id = 0;

  std::span<Byte> bytes() const { return {data, length}; }
};

// Up to kMaxBatch frames. Filled with Add(); endpoints read or fill slots [0, size()).
template <typename Byte>
class BasicFrameBatch {
 public:
  using Frame = BasicFrame<Byte>;

  // Appends a frame (transmit) or an empty receive buffer of buffer.size() bytes. Returns false
  // when the batch is full or the buffer is larger than 4 GiB (nothing is added).
  bool Add(std::span<Byte> buffer, uint32_t id = 0) {
    if (size_ == kMaxBatch || buffer.size() > UINT32_MAX) return false;
    const auto n = static_cast<uint32_t>(buffer.size());
    frames_[size_++] = Frame{buffer.data(), n, n, id};
    return true;
  }
  void Clear() { size_ = 0; }

  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == kMaxBatch; }

  Frame& operator[](uint32_t i) { return frames_[i]; }
  const Frame& operator[](uint32_t i) const { return frames_[i]; }
  Frame* begin() { return frames_.data(); }
  Frame* end() { return frames_.data() + size_; }
  const Frame* begin() const { return frames_.data(); }
  const Frame* end() const { return frames_.data() + size_; }

 private:
  std::array<Frame, kMaxBatch> frames_{};
  uint32_t size_ = 0;
};

// Frames to transmit (read-only views; they may point into a peer's shared memory, so endpoints
// copy before they interpret: spec 9.1 G1).
using FrameBatch = BasicFrameBatch<const uint8_t>;
// Buffers to receive into. After Queue::Poll() returned n, slots [0, n) hold frames (length set)
// and slots [n, size()) are untouched.
using RxBatch = BasicFrameBatch<uint8_t>;

// Views frames [0, count) of a receive batch as frames to transmit (forwarding what Poll()
// returned, sending replies built in receive buffers). Lengths and ids are kept.
inline FrameBatch AsFrameBatch(const RxBatch& rx, uint32_t count) {
  FrameBatch out;
  for (uint32_t i = 0; i < count && i < rx.size(); ++i) {
    out.Add(std::span<const uint8_t>(rx[i].data, rx[i].length), rx[i].id);
  }
  return out;
}

// Why a frame offered to Send() was refused.
enum class FrameCheck : uint8_t { kOk, kRunt, kTooBig };

// Validates a frame length against an endpoint's maximum frame size.
inline FrameCheck CheckFrameLength(uint32_t length, uint32_t max_frame_size) {
  if (length < kEthHeaderSize) return FrameCheck::kRunt;
  if (length > max_frame_size) return FrameCheck::kTooBig;
  return FrameCheck::kOk;
}

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_FRAME_H_
