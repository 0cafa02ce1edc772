// File: wire/ring_format.h
//
// What: the byte layouts that live inside a VMBus ring buffer, as checked POD, plus validating
// parsers and encoders for the packet kinds a channel sends:
//
//   * `RingControlPage`  - the 4096-byte ring header (struct hv_ring_buffer), spec 3.1;
//   * the 8-byte packet trailer ("previous packet start"), spec 3.2;
//   * `PacketDescriptor` - the 16-byte header of every packet, spec 4.1, and `PacketType`, 4.2;
//   * in-band / completion packets (4.3), transfer-page packets (4.4), GPA-direct packets (4.5);
//   * request-id sentinels (4.7).
//
// Reading: ring/ copies a packet out of shared memory into a private buffer and validates the
// descriptor (spec 9.4 R1-R8). The Parse* functions here then decode the type-specific header of
// that *private copy* (R9-R11): nothing here ever reads live shared memory (spec 9.1 G1), and
// the structs below are never overlaid on shared memory: ring/ reads control fields with atomics
// and copies packet bytes with memcpy.
//
// Writing: Encode*Header() builds the descriptor + type-specific header (+ ranges) into a
// caller buffer for a payload of a given length; ring::OutgoingRing::Write() then copies header
// and payload into the ring and adds padding and trailer. EncodePacket() assembles a complete
// packet (header + payload + zero padding) into one buffer, e.g. for tests.
//
// All fields are little-endian (spec 0); uvmbus only targets little-endian hosts (asserted).
//
// Spec: vmbus-protocol.md 3.1, 3.2, 3.3, 3.9, 4.1-4.7, 9.4 R9-R11.
// Linux: include/linux/hyperv.h (hv_ring_buffer, vmpacket_descriptor, vmtransfer_page_packet_
//        header, vmtransfer_page_range, vmbus_packet_mpb_array, vmbus_channel_packet_page_buffer,
//        VMBUS_RQST_*), drivers/hv/ring_buffer.c.
// OpenVMM: vm/devices/vmbus/vmbus_ring/src/lib.rs (mod protocol), src/gparange.rs.
// Thread-safety: value types and pure functions over caller-owned buffers; any thread.
#ifndef UVMBUS_WIRE_RING_FORMAT_H_
#define UVMBUS_WIRE_RING_FORMAT_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include <tl/expected.hpp>

namespace uvmbus::wire {

static_assert(std::endian::native == std::endian::little,
              "VMBus structures are little-endian; uvmbus targets little-endian hosts only");

// ---------------------------------------------------------------------------------------------
// Ring geometry (spec 3.1, 3.3, 3.9)
// ---------------------------------------------------------------------------------------------

// Size of the control page that precedes every ring's data area.
inline constexpr uint32_t kRingHeaderSize = 4096;
// The data area is a whole number of 4 KiB protocol pages ("hyper pages", spec 0), at least one.
inline constexpr uint32_t kRingPageSize = 4096;
inline constexpr uint32_t kRingMinDataSize = kRingPageSize;
// Every packet, index and length in the data area is a multiple of this.
inline constexpr uint32_t kRingAlignment = 8;
// `feature_bits` bit 0 (feat_pending_send_sz): the ring's writer sets pending_send_sz when blocked
// and honours the peer's pending_send_sz in the opposite ring (spec 3.1).
inline constexpr uint32_t kRingFeaturePendingSendSz = 1u;

// Linux VMBUS_RING_SIZE(payload): one header page plus the payload, rounded up to whole pages
// (spec 3.9). Returns the total ring size (header included).
constexpr uint64_t VmbusRingSize(uint64_t payload_bytes) {
  return (uint64_t{kRingHeaderSize} + payload_bytes + kRingPageSize - 1) / kRingPageSize *
         kRingPageSize;
}

// The ring control page (Linux struct hv_ring_buffer; OpenVMM protocol::Control, which exposes it
// as 32 u32 words). Layout reference only: ring/ accesses these fields in shared memory with
// 32-bit atomics (spec 3.7), never through this struct.
struct RingControlPage {
  uint32_t write_index;      // written by the producer: next byte offset it will write (< D)
  uint32_t read_index;       // written by the consumer: next byte offset it will read (< D)
  uint32_t interrupt_mask;   // written by the consumer: 1 = "do not signal me for new data"
  uint32_t pending_send_sz;  // written by the producer: free bytes it waits for; 0 = not blocked
  uint32_t reserved1[12];
  uint32_t feature_bits;     // written by the producer: bit 0 = kRingFeaturePendingSendSz
  uint8_t reserved2[4028];   // pads the header to one page; the data area starts at 4096
};
static_assert(std::is_standard_layout_v<RingControlPage>);
static_assert(std::is_trivially_copyable_v<RingControlPage>);
static_assert(sizeof(RingControlPage) == kRingHeaderSize);
static_assert(offsetof(RingControlPage, write_index) == 0);
static_assert(offsetof(RingControlPage, read_index) == 4);
static_assert(offsetof(RingControlPage, interrupt_mask) == 8);
static_assert(offsetof(RingControlPage, pending_send_sz) == 12);
static_assert(offsetof(RingControlPage, reserved1) == 16);
static_assert(offsetof(RingControlPage, feature_bits) == 64);
static_assert(offsetof(RingControlPage, reserved2) == 68);

// ---------------------------------------------------------------------------------------------
// Packet trailer (spec 3.2)
// ---------------------------------------------------------------------------------------------

// The u64 that follows every packet in the ring: low 32 bits 0, high 32 bits the write index at
// which the packet began (OpenVMM protocol::Footer {reserved, offset}). Readers skip it.
struct PacketTrailer {
  uint32_t reserved;     // 0
  uint32_t start_index;  // ring offset of the packet's descriptor
};
static_assert(std::is_trivially_copyable_v<PacketTrailer>);
static_assert(sizeof(PacketTrailer) == 8);
static_assert(offsetof(PacketTrailer, reserved) == 0);
static_assert(offsetof(PacketTrailer, start_index) == 4);
inline constexpr uint32_t kPacketTrailerSize = sizeof(PacketTrailer);

// The trailer value for a packet that starts at ring offset `start_index`.
constexpr uint64_t MakePacketTrailer(uint32_t start_index) {
  return uint64_t{start_index} << 32;
}

// ---------------------------------------------------------------------------------------------
// Packet descriptor and types (spec 4.1, 4.2)
// ---------------------------------------------------------------------------------------------

// VMBus packet types (Linux enum vmbus_packet_type). Only kDataInband, kDataUsingXferPages,
// kDataUsingGpaDirect and kComp occur in practice; ring readers reject the others (spec 9.4 R8).
enum class PacketType : uint16_t {
  kInvalid = 0x0,
  kSynch = 0x1,
  kAddXferPageset = 0x2,
  kRmXferPageset = 0x3,
  kEstablishGpadl = 0x4,
  kTeardownGpadl = 0x5,
  kDataInband = 0x6,
  kDataUsingXferPages = 0x7,
  kDataUsingGpadl = 0x8,
  kDataUsingGpaDirect = 0x9,
  kCancelRequest = 0xA,
  kComp = 0xB,
  kDataUsingAdditionalPacket = 0xC,
  kAdditionalData = 0xD,
};

// Returns a short name for logs ("inband", "xfer_pages", ...), or "unknown".
std::string_view PacketTypeName(uint16_t type);

// True for the four packet types a ring reader accepts (6, 7, 9, 11; spec 4.2, 9.4 R8).
constexpr bool IsAcceptedPacketType(uint16_t type) {
  return type == static_cast<uint16_t>(PacketType::kDataInband) ||
         type == static_cast<uint16_t>(PacketType::kDataUsingXferPages) ||
         type == static_cast<uint16_t>(PacketType::kDataUsingGpaDirect) ||
         type == static_cast<uint16_t>(PacketType::kComp);
}

// VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED: the only defined descriptor flag (spec 4.1).
inline constexpr uint16_t kPacketFlagCompletionRequested = 0x1;

// The descriptor at the start of every packet (Linux struct vmpacket_descriptor; OpenVMM
// protocol::PacketDescriptor {packet_type, data_offset8, length8, flags, transaction_id}).
struct PacketDescriptor {
  uint16_t type;      // PacketType value (raw: the peer may send anything)
  uint16_t offset8;   // payload offset from the packet start, in 8-byte units (>= 2)
  uint16_t len8;      // packet length without the trailer, in 8-byte units
  uint16_t flags;     // bit 0 = completion requested
  uint64_t trans_id;  // transaction id, echoed in the completion (spec 4.7)
};
static_assert(std::is_standard_layout_v<PacketDescriptor>);
static_assert(std::is_trivially_copyable_v<PacketDescriptor>);
static_assert(sizeof(PacketDescriptor) == 16);
static_assert(offsetof(PacketDescriptor, type) == 0);
static_assert(offsetof(PacketDescriptor, offset8) == 2);
static_assert(offsetof(PacketDescriptor, len8) == 4);
static_assert(offsetof(PacketDescriptor, flags) == 6);
static_assert(offsetof(PacketDescriptor, trans_id) == 8);
inline constexpr uint32_t kPacketDescriptorSize = sizeof(PacketDescriptor);
inline constexpr uint16_t kPacketDescriptorSize8 = kPacketDescriptorSize / 8;
// Largest packet a descriptor can describe (len8 = 0xFFFF), trailer excluded.
inline constexpr uint32_t kMaxPacketLength = 0xFFFFu * 8;

// Linux VMBUS_DEFAULT_MAX_PKT_SIZE: the largest packet a Linux channel accepts unless the driver
// raises it (netvsc: 4624; spec 3.9).
inline constexpr uint32_t kVmbusDefaultMaxPacketSize = 4096;

// Ring bytes a packet with `header_bytes` of descriptor/header and `payload_bytes` of payload
// occupies: the packet padded to 8 plus the trailer (the `total` of spec 3.3). 64-bit so that
// caller-provided sizes cannot overflow.
constexpr uint64_t PacketRingSize(uint64_t header_bytes, uint64_t payload_bytes) {
  return (header_bytes + payload_bytes + 7) / 8 * 8 + kPacketTrailerSize;
}

// ---------------------------------------------------------------------------------------------
// Transfer-page packets (spec 4.4)
// ---------------------------------------------------------------------------------------------

// Linux struct vmtransfer_page_packet_header (24 bytes) without the flexible range array;
// OpenVMM protocol::TransferPageHeader follows the descriptor.
struct TransferPageHeader {
  PacketDescriptor desc;     // type 7, flags normally 1
  uint16_t xfer_pageset_id;  // id of a buffer registered by the packet's receiver (netvsc 0xCAFE)
  uint8_t sender_owns_set;   // 0 (OpenVMM: bytes 18-19 are one reserved u16, may be garbage)
  uint8_t reserved;
  uint32_t range_cnt;        // number of TransferPageRange entries that follow at offset 24
};
static_assert(std::is_trivially_copyable_v<TransferPageHeader>);
static_assert(sizeof(TransferPageHeader) == 24);
static_assert(offsetof(TransferPageHeader, desc) == 0);
static_assert(offsetof(TransferPageHeader, xfer_pageset_id) == 16);
static_assert(offsetof(TransferPageHeader, sender_owns_set) == 18);
static_assert(offsetof(TransferPageHeader, reserved) == 19);
static_assert(offsetof(TransferPageHeader, range_cnt) == 20);

// One range of a transfer-page packet (Linux struct vmtransfer_page_range; OpenVMM
// TransferPageRange): bytes inside the transfer page set (the receive buffer).
struct TransferPageRange {
  uint32_t byte_count;
  uint32_t byte_offset;
};
static_assert(std::is_trivially_copyable_v<TransferPageRange>);
static_assert(sizeof(TransferPageRange) == 8);
static_assert(offsetof(TransferPageRange, byte_count) == 0);
static_assert(offsetof(TransferPageRange, byte_offset) == 4);

// Header bytes (descriptor included) of a transfer-page packet with `range_cnt` ranges; the
// payload follows at this offset (offset8 = 3 + range_cnt).
constexpr uint64_t TransferPageHeaderSize(uint64_t range_cnt) {
  return sizeof(TransferPageHeader) + range_cnt * sizeof(TransferPageRange);
}

// ---------------------------------------------------------------------------------------------
// GPA-direct packets (spec 4.5)
// ---------------------------------------------------------------------------------------------

// The fixed part of a GPA-direct packet (Linux struct vmbus_packet_mpb_array /
// vmbus_channel_packet_page_buffer up to the range array; OpenVMM GpaDirectHeader).
struct GpaDirectHeader {
  PacketDescriptor desc;  // type 9, flags 1 (Linux always requests a completion)
  uint32_t reserved;      // OpenVMM: "may be garbage"; send 0, ignore on receive
  uint32_t range_cnt;     // >= 1 (spec 9.4 R10)
};
static_assert(std::is_trivially_copyable_v<GpaDirectHeader>);
static_assert(sizeof(GpaDirectHeader) == 24);
static_assert(offsetof(GpaDirectHeader, desc) == 0);
static_assert(offsetof(GpaDirectHeader, reserved) == 16);
static_assert(offsetof(GpaDirectHeader, range_cnt) == 20);

// The head of one GPA range (Linux struct gpa_range without pfn_array; OpenVMM GpaRange
// {len, offset}); it is followed by `GpaRangePageCount()` u64 page frame numbers.
struct GpaDirectRangeHeader {
  uint32_t byte_count;   // > 0
  uint32_t byte_offset;  // offset into the first page, < 4096
};
static_assert(std::is_trivially_copyable_v<GpaDirectRangeHeader>);
static_assert(sizeof(GpaDirectRangeHeader) == 8);
static_assert(offsetof(GpaDirectRangeHeader, byte_count) == 0);
static_assert(offsetof(GpaDirectRangeHeader, byte_offset) == 4);

// Page frames a range {byte_count, byte_offset} spans: ceil((byte_offset + byte_count) / 4096).
constexpr uint64_t GpaRangePageCount(uint32_t byte_count, uint32_t byte_offset) {
  return (uint64_t{byte_offset} + byte_count + kRingPageSize - 1) / kRingPageSize;
}

// ---------------------------------------------------------------------------------------------
// Transaction / request ids (spec 4.7)
// ---------------------------------------------------------------------------------------------

// trans_id of packets sent without completion request (netvsc), and storvsc's init request.
inline constexpr uint64_t kVmbusRqstIdNoResponse = 0xFFFFFFFFFFFFFFFDull;
inline constexpr uint64_t kVmbusRqstInit = 0xFFFFFFFFFFFFFFFDull;
// storvsc reset request.
inline constexpr uint64_t kVmbusRqstReset = 0xFFFFFFFFFFFFFFFCull;
// Linux-internal markers: "error" and "no requestor".
inline constexpr uint64_t kVmbusRqstError = 0xFFFFFFFFFFFFFFFEull;
inline constexpr uint64_t kVmbusNoRqstor = 0xFFFFFFFFFFFFFFFFull;
// OpenVMM netvsp host transaction ids for VF association and switch-data-path notifications.
inline constexpr uint64_t kNetvspVfAssociationTransId = 0x8000000000000000ull;
inline constexpr uint64_t kNetvspSwitchDataPathTransId = 0x8000000000000001ull;

// ---------------------------------------------------------------------------------------------
// Parsing a private packet copy (spec 9.1 G1, 9.4 R3, R6, R9-R11)
// ---------------------------------------------------------------------------------------------

// Why a packet (or an encode request) was rejected.
enum class PacketError : uint8_t {
  kTooShort,             // buffer shorter than the descriptor, len8*8, or the type's header
  kWrongType,            // a type-specific parser was given a packet of another type
  kBadLength,            // len8*8 < 16 (R3)
  kBadOffset,            // offset8 < the type's header size (R6, R9) or offset8 > len8 (R6)
  kBadRangeCount,        // GPA-direct range_cnt == 0 (R10); encoder: pfns.size() != page count
  kRangePastHeader,      // ranges (or their count) extend past offset8*8 (R11)
  kEmptyRange,           // GPA range with byte_count == 0
  kRangeOffsetTooLarge,  // GPA range with byte_offset > 0xFFF
  kRangeOverflow,        // GPA range byte_offset + byte_count + 4095 overflows 32 bits
  kBufferTooSmall,       // encoder: the output buffer cannot hold the result
  kTooLarge,             // encoder: the packet would exceed len8 = 0xFFFF
};

// Stable snake_case name for logs and counters ("bad_offset", ...).
std::string_view PacketErrorName(PacketError error);

template <typename T>
using PacketResult = tl::expected<T, PacketError>;

// Copies the descriptor out of `packet` (a private copy) and checks the generic rules: at least
// 16 bytes, len8*8 >= 16 (R3), 2 <= offset8 <= len8 (R6), len8*8 <= packet.size(). Does not
// check type or flags (the ring reader does, R7/R8).
PacketResult<PacketDescriptor> ParseDescriptor(std::span<const uint8_t> packet);

// A decoded transfer-page packet. Spans point into the caller's packet copy.
struct TransferPagePacket {
  PacketDescriptor desc{};
  uint16_t xfer_pageset_id = 0;
  uint32_t range_cnt = 0;
  std::span<const uint8_t> range_bytes;  // range_cnt * 8 bytes, starting at packet offset 24
  std::span<const uint8_t> payload;      // [offset8*8, len8*8)

  // Range `i` (< range_cnt), copied out of range_bytes (no alignment assumptions).
  TransferPageRange range(uint32_t i) const {
    TransferPageRange r;
    std::memcpy(&r, range_bytes.data() + size_t{i} * sizeof(r), sizeof(r));
    return r;
  }
};

// Parses a type-7 packet: ParseDescriptor() rules, type 7, offset8 >= 3 (R9), and the ranges
// fit before the payload: 24 + 8*range_cnt <= offset8*8 (so the count is bounded by offset8).
// range_cnt 0 is accepted here (the device protocol decides).
PacketResult<TransferPagePacket> ParseTransferPagePacket(std::span<const uint8_t> packet);

// One validated range of a GPA-direct packet.
struct GpaDirectRange {
  uint32_t byte_count = 0;
  uint32_t byte_offset = 0;
  std::span<const uint8_t> pfn_bytes;  // page_count() * 8 bytes of little-endian u64 PFNs

  uint32_t page_count() const { return static_cast<uint32_t>(pfn_bytes.size() / 8); }
  // Page frame number `i` (< page_count()).
  uint64_t pfn(uint32_t i) const {
    uint64_t v;
    std::memcpy(&v, pfn_bytes.data() + size_t{i} * 8, sizeof(v));
    return v;
  }
};

// A decoded GPA-direct packet; every range was validated by ParseGpaDirectPacket(), so walking
// them with GpaDirectRangeReader cannot fail.
struct GpaDirectPacket {
  PacketDescriptor desc{};
  uint32_t range_cnt = 0;
  std::span<const uint8_t> range_bytes;  // the ranges actually used (from offset 24)
  std::span<const uint8_t> payload;      // [offset8*8, len8*8)
};

// Parses a type-9 packet: ParseDescriptor() rules, type 9, offset8 >= 3 (R9), range_cnt >= 1
// (R10), every range well-formed (byte_count > 0, byte_offset <= 0xFFF, no 32-bit overflow) and
// all ranges with their PFNs within [24, offset8*8) (R11). Bytes between the last range and the
// payload are ignored. The loop is bounded by offset8 (each range takes >= 16 bytes).
PacketResult<GpaDirectPacket> ParseGpaDirectPacket(std::span<const uint8_t> packet);

// Walks the ranges of a parsed GPA-direct packet in order.
class GpaDirectRangeReader {
 public:
  explicit GpaDirectRangeReader(const GpaDirectPacket& packet)
      : rest_(packet.range_bytes), remaining_(packet.range_cnt) {}
  // Stores the next range in *out and returns true, or returns false after the last one.
  bool Next(GpaDirectRange* out);

 private:
  std::span<const uint8_t> rest_;
  uint32_t remaining_;
};

// ---------------------------------------------------------------------------------------------
// Encoding (spec 4.3-4.6)
// ---------------------------------------------------------------------------------------------

// Encoders write the descriptor (with len8 computed for `payload_len` payload bytes) and any
// type-specific header into `out` and return the header size in bytes (= offset8 * 8). They
// fail with kBufferTooSmall or kTooLarge (len8 would exceed 0xFFFF).

// DATA_INBAND (type 6), offset8 = 2; flags = 1 iff `completion_requested` (spec 4.3).
PacketResult<size_t> EncodeInbandHeader(std::span<uint8_t> out, uint32_t payload_len,
                                        uint64_t trans_id, bool completion_requested);

// COMP (type 11), offset8 = 2, flags = 0, trans_id = the request's (spec 4.3).
PacketResult<size_t> EncodeCompletionHeader(std::span<uint8_t> out, uint32_t payload_len,
                                            uint64_t trans_id);

// DATA_USING_XFER_PAGES (type 7): 24-byte header + ranges, offset8 = 3 + ranges.size(),
// sender_owns_set = 0 (spec 4.4, 10.1 V15).
PacketResult<size_t> EncodeTransferPageHeader(std::span<uint8_t> out, uint16_t xfer_pageset_id,
                                              std::span<const TransferPageRange> ranges,
                                              uint32_t payload_len, uint64_t trans_id,
                                              bool completion_requested = true);

// One range to encode into a GPA-direct packet: `pfns.size()` must equal
// GpaRangePageCount(byte_count, byte_offset), byte_count > 0, byte_offset < 4096.
struct GpaDirectRangeRef {
  uint32_t byte_count = 0;
  uint32_t byte_offset = 0;
  std::span<const uint64_t> pfns;
};

// Header bytes of a GPA-direct packet with these ranges (0 if a range is inconsistent).
uint64_t GpaDirectHeaderSize(std::span<const GpaDirectRangeRef> ranges);

// DATA_USING_GPA_DIRECT (type 9), flags = 1 (Linux always requests a completion, spec 4.5).
// Fails with kBadRangeCount if `ranges` is empty or a range's pfns.size() is not its page
// count, kEmptyRange / kRangeOffsetTooLarge / kRangeOverflow for a bad range.
PacketResult<size_t> EncodeGpaDirectHeader(std::span<uint8_t> out,
                                           std::span<const GpaDirectRangeRef> ranges,
                                           uint32_t payload_len, uint64_t trans_id);

// Assembles a whole packet into `out`: `header` (an Encode*Header result whose len8 matches
// header.size() + payload.size()), then `payload`, then zero padding to a multiple of 8.
// Returns len8 * 8 (the trailer is the ring's business). kBadLength if `header` is not a
// descriptor-led header (size < 16 or not a multiple of 8), kBadOffset if offset8*8 !=
// header.size(), kBadLength if len8 does not match; kBufferTooSmall if `out` is too small.
PacketResult<size_t> EncodePacket(std::span<uint8_t> out, std::span<const uint8_t> header,
                                  std::span<const uint8_t> payload);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_RING_FORMAT_H_
