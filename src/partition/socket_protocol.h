// File: partition/socket_protocol.h
//
// What: the byte layouts of the socket partition's protocol between a guest process and the host
// daemon (docs/socket-protocol.md is the prose version), plus the datagram send/receive helpers
// with SCM_RIGHTS fd passing. Internal to partition/: only socket_host.cc and
// socket_guest_partition.cc (and tests forging hostile input) use it.
// Transport: AF_UNIX SOCK_SEQPACKET; one protocol message per datagram, fds attached to the
// datagram they belong to. Little-endian, packed, every size and offset static_asserted.
// Spec: carries vmbus-protocol.md 1.3 (EOM), 1.7 (HvCallPostMessage / HvCallSignalEvent).
// Thread-safety: POD and stateless functions.
#ifndef UVMBUS_PARTITION_SOCKET_PROTOCOL_H_
#define UVMBUS_PARTITION_SOCKET_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "partition/guest_ram.h"
#include "wire/synic.h"

namespace uvmbus::partition::sockproto {

inline constexpr uint32_t kMagic = 0x424d5655;  // "UVMB" in little-endian byte order
inline constexpr uint16_t kVersionMajor = 1;    // incompatible changes bump the major
inline constexpr uint16_t kVersionMinor = 1;    // compatible additions bump the minor (1: RAM_REGION_ADD)
inline constexpr size_t kNameSize = 64;         // NUL-padded, 1..63 printable ASCII characters
inline constexpr size_t kReasonSize = 128;      // NUL-padded text
// Largest datagram either side sends (HELLO with kMaxVcpus vCPUs) and most fds in one message.
inline constexpr size_t kMaxDatagram = 2048;
inline constexpr size_t kMaxFds = 1 + kMaxVcpus;

enum class MsgType : uint16_t {
  kHello = 1,           // guest -> host, fds: RAM memfd, then one interrupt eventfd per vCPU
  kHelloReply = 2,      // host -> guest
  kPostMessage = 3,     // guest -> host request: HvCallPostMessage
  kSignalEvent = 4,     // guest -> host request: slow HvCallSignalEvent
  kStatusReply = 5,     // host -> guest: status of the request with the same seq
  kEndOfMessage = 6,    // guest -> host, one-way: EOM register write
  kDoorbellAdd = 7,     // host -> guest, one-way, fd: doorbell eventfd
  kDoorbellRemove = 8,  // host -> guest, one-way
  kRamRegionAdd = 9,    // guest -> host request (1.1+), fd: a sealed memfd; STATUS_REPLY
};

// Starts every message.
struct MsgHeader {
  uint16_t type;   // MsgType
  uint16_t flags;  // 0
  uint32_t seq;    // requests: non-zero, chosen by the guest; replies echo it; one-way: 0
};
static_assert(sizeof(MsgHeader) == 8);
static_assert(offsetof(MsgHeader, type) == 0);
static_assert(offsetof(MsgHeader, flags) == 2);
static_assert(offsetof(MsgHeader, seq) == 4);

struct HelloVcpu {
  uint64_t simp_gpn;   // the vCPU's SynIC message page (SIMP), a page of the RAM memfd
  uint64_t siefp_gpn;  // the vCPU's SynIC event flags page (SIEFP)
};
static_assert(sizeof(HelloVcpu) == 16);
static_assert(offsetof(HelloVcpu, siefp_gpn) == 8);

// HELLO: followed by exactly vcpu_count HelloVcpu entries; the datagram size is exact.
struct Hello {
  MsgHeader header;        // type kHello, seq 0
  uint32_t magic;          // kMagic
  uint16_t version_major;  // kVersionMajor
  uint16_t version_minor;
  uint32_t vcpu_count;  // 1..kMaxVcpus; also the number of interrupt fds
  uint32_t reserved;    // 0
  uint64_t ram_bytes;   // size of the RAM memfd, a non-zero multiple of 4096
  char name[kNameSize];
};
static_assert(sizeof(Hello) == 96);
static_assert(offsetof(Hello, magic) == 8);
static_assert(offsetof(Hello, version_major) == 12);
static_assert(offsetof(Hello, version_minor) == 14);
static_assert(offsetof(Hello, vcpu_count) == 16);
static_assert(offsetof(Hello, reserved) == 20);
static_assert(offsetof(Hello, ram_bytes) == 24);
static_assert(offsetof(Hello, name) == 32);

enum class HelloResult : uint32_t {
  kAccepted = 0,
  kMalformed = 1,  // a field or the fds failed validation
  kUnsupportedVersion = 2,
  kPermissionDenied = 3,  // SO_PEERCRED uid not allowed
  kLimits = 4,            // vcpus / RAM above the host's limits
};

struct HelloReply {
  MsgHeader header;        // type kHelloReply, seq 0
  uint32_t result;         // HelloResult
  uint16_t version_major;  // the host's version
  uint16_t version_minor;
  uint32_t max_vcpus;  // the host's limit (informational)
  uint32_t reserved;
  char reason[kReasonSize];  // why a HELLO was refused ("" when accepted)
};
static_assert(sizeof(HelloReply) == 152);
static_assert(offsetof(HelloReply, result) == 8);
static_assert(offsetof(HelloReply, version_major) == 12);
static_assert(offsetof(HelloReply, max_vcpus) == 16);
static_assert(offsetof(HelloReply, reason) == 24);

// POST_MESSAGE: followed by exactly payload_size payload bytes (1..240).
struct PostMessage {
  MsgHeader header;  // type kPostMessage, seq != 0
  uint32_t connection_id;
  uint32_t message_type;
  uint32_t payload_size;
  uint32_t reserved;
};
static_assert(sizeof(PostMessage) == 24);
static_assert(offsetof(PostMessage, connection_id) == 8);
static_assert(offsetof(PostMessage, message_type) == 12);
static_assert(offsetof(PostMessage, payload_size) == 16);

struct SignalEvent {
  MsgHeader header;  // type kSignalEvent, seq != 0
  uint32_t connection_id;
  uint16_t flag_number;
  uint16_t reserved;
};
static_assert(sizeof(SignalEvent) == 16);
static_assert(offsetof(SignalEvent, connection_id) == 8);
static_assert(offsetof(SignalEvent, flag_number) == 12);

struct StatusReply {
  MsgHeader header;  // type kStatusReply, seq of the request
  uint16_t status;   // wire::HvStatus
  uint16_t reserved;
  uint32_t reserved2;
};
static_assert(sizeof(StatusReply) == 16);
static_assert(offsetof(StatusReply, status) == 8);

struct EndOfMessage {
  MsgHeader header;  // type kEndOfMessage, seq 0
  uint32_t vcpu;
  uint32_t reserved;
};
static_assert(sizeof(EndOfMessage) == 16);
static_assert(offsetof(EndOfMessage, vcpu) == 8);

// DOORBELL_ADD (one fd) / DOORBELL_REMOVE (no fd).
struct DoorbellMsg {
  MsgHeader header;
  uint32_t connection_id;
  uint32_t reserved;
};
static_assert(sizeof(DoorbellMsg) == 16);
static_assert(offsetof(DoorbellMsg, connection_id) == 8);

// RAM_REGION_ADD (one fd: the region's memfd). Version 1.1.
struct RamRegionAdd {
  MsgHeader header;   // type kRamRegionAdd, seq != 0
  uint64_t gpa_base;  // guest physical address of the region's first byte (page-aligned)
  uint64_t size;      // bytes; the memfd's exact size (page multiple)
};
static_assert(sizeof(RamRegionAdd) == 24);
static_assert(offsetof(RamRegionAdd, gpa_base) == 8);
static_assert(offsetof(RamRegionAdd, size) == 16);

// One received datagram.
struct Datagram {
  std::vector<uint8_t> bytes;  // exactly the datagram's bytes (never more than kMaxDatagram)
  std::vector<UniqueFd> fds;   // every fd that came with it (closed if unused)
  bool truncated = false;      // datagram or fd list did not fit: must be rejected
};

// Sends one datagram with `fds` attached (borrowed, not closed). MSG_NOSIGNAL; `dont_wait` adds
// MSG_DONTWAIT. Errors: kUnavailable (EPIPE/ECONNRESET), kResourceExhausted (EAGAIN), kIo.
Status SendDatagram(int sock, std::span<const uint8_t> bytes, std::span<const int> fds,
                    bool dont_wait);

// Receives one datagram without blocking (MSG_DONTWAIT | MSG_CMSG_CLOEXEC).
// Errors: kUnavailable on EOF or reset (peer gone), kTimeout when nothing is queued (EAGAIN),
// kIo otherwise. A datagram larger than kMaxDatagram or with more than kMaxFds fds is returned
// with `truncated` set.
Expected<Datagram> ReceiveDatagram(int sock);

// Waits until `sock` is readable (or hung up) or `stop_fd` (may be -1) is readable, up to
// `timeout_ms` (-1 forever). Returns true if `sock` is ready, false on timeout / stop.
bool WaitReadable(int sock, int stop_fd, int timeout_ms);

// True if `fd` is an eventfd (checked through /proc/self/fd, the only reliable way).
bool IsEventfd(int fd);
// Sets O_NONBLOCK on `fd` (shared with the peer's file description; both sides use it that way).
Status SetNonBlocking(int fd);

// Copies a trivially-copyable message out of a datagram (callers check the size first).
template <typename T>
T Load(std::span<const uint8_t> bytes, size_t offset = 0);

}  // namespace uvmbus::partition::sockproto

#include <cstring>
#include <type_traits>

namespace uvmbus::partition::sockproto {
template <typename T>
T Load(std::span<const uint8_t> bytes, size_t offset) {
  static_assert(std::is_trivially_copyable_v<T>);
  T out{};
  if (offset <= bytes.size() && sizeof(T) <= bytes.size() - offset) {
    std::memcpy(&out, bytes.data() + offset, sizeof(T));
  }
  return out;
}
}  // namespace uvmbus::partition::sockproto

#endif  // UVMBUS_PARTITION_SOCKET_PROTOCOL_H_
