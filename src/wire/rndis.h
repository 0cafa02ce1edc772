// File: wire/rndis.h
//
// What: RNDIS as carried inside NVSP SEND_RNDIS_PKT (spec 6): the common header and every
// control message with its completion (6.1, 6.2), status codes (6.3), OIDs (6.4), PACKET_MSG
// (6.5), per-packet information (PPI, 6.6), NDIS offload objects (6.8), RSS objects (6.9),
// packet-filter bits (6.10), the config-parameter block that changes the MAC (6.11) and link
// status (6.12); validating parsers and encoders for all of them.
//
//   RNDIS message bytes --ParseRndisMessage(bytes, dir)--> RndisMessage (std::variant)
//                       --ParseRndisPacket(bytes, dir)---> RndisPacket (data path)
//   fields              --EncodeRndis*(out, ...)--------> bytes in `out`
//
// Parsing works on a private copy (spec 9.1 G1): a guest passes the receive-buffer range it
// copied out (or a span of a buffer nobody else writes), a host the bytes of the send-buffer
// section / GPA ranges it copied. The parsed structs are typed copies of the fixed fields;
// variable parts (information buffers, the Ethernet frame) are spans into the caller's bytes,
// valid as long as those bytes are. Parsing a PACKET_MSG allocates nothing on success.
//
// The two directions follow different rule sets (the `Direction` argument):
//   kHostToGuest - what a Linux guest accepts (spec 9.6 D1-D27, 10.2 N-h, N-i, N-j, N-m); PPI
//                  problems make the PPIs be ignored or the walk stop (the packet is still
//                  delivered) and are reported in RndisPacket::ppi_status, not as errors;
//   kGuestToHost - what an OpenVMM-style host accepts (spec 9.7 P11, P13, P17): everything
//                  outside the message, including malformed PPIs, fails the packet.
// Bounds are checked in overflow-safe form (spec 9.1 G3: `len > limit - offset`), every walk
// has a count cap (G4).
//
// Offsets inside RNDIS message bodies are measured from byte 8 (spec 6.1); the structs below
// are whole messages (header included), so a body offset `o` is message offset `8 + o`.
//
// Spec: vmbus-protocol.md 6.1-6.12, 9.6, 9.7 P11-P13, P17, 10.2 N-g, N-h, N-i, N-j, N-m, N-n, N-p.
// Linux: drivers/net/hyperv/hyperv_net.h (struct rndis_*, ndis_*), rndis_filter.c
//        (rndis_filter_receive*, rndis_get_ppi, rndis_filter_query_device), netvsc_drv.c
//        (init_ppi_data, netvsc_xmit).
// OpenVMM: vm/devices/net/netvsp/src/rndisprot.rs, src/lib.rs.
// DPDK: drivers/net/netvsc/rndis.h, ndis.h, hn_rndis.c, hn_rxtx.c.
// Thread-safety: value types and pure functions over caller-owned buffers; any thread.
#ifndef UVMBUS_WIRE_RNDIS_H_
#define UVMBUS_WIRE_RNDIS_H_

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>

#include "common/error.h"
#include "wire/channel_messages.h"  // Direction

namespace uvmbus::wire {

// ---------------------------------------------------------------------------------------------
// Message types (spec 6.1) and sizes (6.7)
// ---------------------------------------------------------------------------------------------

enum class RndisMessageType : uint32_t {
  kPacket = 0x00000001,
  kInitialize = 0x00000002,
  kHalt = 0x00000003,
  kQuery = 0x00000004,
  kSet = 0x00000005,
  kReset = 0x00000006,
  kIndicateStatus = 0x00000007,
  kKeepalive = 0x00000008,
  kSetEx = 0x00000009,
  kInitializeComplete = 0x80000002,
  kQueryComplete = 0x80000004,
  kSetComplete = 0x80000005,
  kResetComplete = 0x80000006,
  kKeepaliveComplete = 0x80000008,
  kSetExComplete = 0x80000009,
};
// Completion type = request type | this bit.
inline constexpr uint32_t kRndisCompletionBit = 0x80000000;

// Name as spelled by the spec ("PACKET_MSG", "QUERY_CMPLT", ...) or "UNKNOWN".
std::string_view RndisMessageName(RndisMessageType type);

// RNDIS_HEADER_SIZE: msg_type + msg_len.
inline constexpr uint32_t kRndisHeaderSize = 8;
// PACKET_MSG header (header + struct rndis_packet).
inline constexpr uint32_t kRndisPacketHeaderSize = 44;
// One PPI carrying 4 bytes of data (12-byte element header + data), as Linux and uvmbus send it.
inline constexpr uint32_t kRndisPpiElementSize = 16;
// sizeof(struct rndis_message) in Linux (the largest fixed message, INITIALIZE_CMPLT).
inline constexpr uint32_t kRndisLinuxMessageSize = 52;
// Linux's headroom for header + the four PPIs it may add (RNDIS_AND_PPI_SIZE).
inline constexpr uint32_t kRndisAndPpiSize = kRndisLinuxMessageSize + 4 * kRndisPpiElementSize;
// Longest control completion a Linux guest accepts: 52 + RNDIS_EXT_LEN (spec 6.7, 9.6 D19).
inline constexpr uint32_t kRndisMaxControlCompletionSize = kRndisLinuxMessageSize + 4096;
// RNDIS version a guest announces in INITIALIZE (1.0) and Linux's max_transfer_size.
inline constexpr uint32_t kRndisMajorVersion = 1;
inline constexpr uint32_t kRndisMinorVersion = 0;
inline constexpr uint32_t kRndisLinuxMaxTransferSize = 0x4000;

// INITIALIZE_CMPLT.device_flags and .medium.
inline constexpr uint32_t kRndisDeviceFlagConnectionless = 0x1;
inline constexpr uint32_t kRndisDeviceFlagConnectionOriented = 0x2;
inline constexpr uint32_t kRndisDeviceFlagRawData = 0x4;
inline constexpr uint32_t kRndisMedium802_3 = 0;

// ---------------------------------------------------------------------------------------------
// Status codes (spec 6.3). Fields hold raw values: a peer may send anything.
// ---------------------------------------------------------------------------------------------

enum class RndisStatus : uint32_t {
  kSuccess = 0x00000000,
  kPending = 0x00000103,
  kNotRecognized = 0x00010001,
  kNotCopied = 0x00010002,
  kNotAccepted = 0x00010003,
  kCallActive = 0x00010007,
  kOnline = 0x40010003,
  kResetStart = 0x40010004,
  kResetEnd = 0x40010005,
  kRingStatus = 0x40010006,
  kClosed = 0x40010007,
  kWanLineUp = 0x40010008,
  kWanLineDown = 0x40010009,
  kWanFragment = 0x4001000A,
  kMediaConnect = 0x4001000B,
  kMediaDisconnect = 0x4001000C,
  kHardwareLineUp = 0x4001000D,
  kHardwareLineDown = 0x4001000E,
  kInterfaceUp = 0x4001000F,
  kInterfaceDown = 0x40010010,
  kMediaBusy = 0x40010011,
  kMediaSpecificIndication = 0x40010012,
  kLinkSpeedChange = 0x40010013,
  kNetworkChange = 0x40010018,
  kTaskOffloadCurrentConfig = 0x40020006,
  kBufferOverflow = 0x80000005,
  kNotResettable = 0x80010001,
  kSoftErrors = 0x80010003,
  kHardErrors = 0x80010004,
  kFailure = 0xC0000001,
  kResources = 0xC000009A,
  kNotSupported = 0xC00000BB,
  kClosing = 0xC0010002,
  kBadVersion = 0xC0010004,
  kBadCharacteristics = 0xC0010005,
  kAdapterNotFound = 0xC0010006,
  kOpenFailed = 0xC0010007,
  kDeviceFailed = 0xC0010008,
  kMulticastFull = 0xC0010009,
  kMulticastExists = 0xC001000A,
  kMulticastNotFound = 0xC001000B,
  kRequestAborted = 0xC001000C,
  kResetInProgress = 0xC001000D,
  kClosingIndicating = 0xC001000E,
  kInvalidPacket = 0xC001000F,
  kOpenListFull = 0xC0010010,
  kAdapterNotReady = 0xC0010011,
  kAdapterNotOpen = 0xC0010012,
  kNotIndicating = 0xC0010013,
  kInvalidLength = 0xC0010014,
  kInvalidData = 0xC0010015,
  kBufferTooShort = 0xC0010016,
  kInvalidOid = 0xC0010017,
  kAdapterRemoved = 0xC0010018,
  kUnsupportedMedia = 0xC0010019,
  kGroupAddressInUse = 0xC001001A,
  kFileNotFound = 0xC001001B,
  kErrorReadingFile = 0xC001001C,
  kAlreadyMapped = 0xC001001D,
  kResourceConflict = 0xC001001E,
  kNoCable = 0xC001001F,
};
// "SUCCESS", "MEDIA_CONNECT", ... or "UNKNOWN".
std::string_view RndisStatusName(RndisStatus status);

// ---------------------------------------------------------------------------------------------
// OIDs (spec 6.4)
// ---------------------------------------------------------------------------------------------

// The OIDs Linux netvsc uses (a compatible host implements these) and the others a host may see
// from Windows/DPDK/FreeBSD guests. Unknown values are legal on the wire (answer NOT_SUPPORTED).
enum class NdisOid : uint32_t {
  // Used by Linux netvsc.
  kGenMaximumFrameSize = 0x00010106,
  kGenLinkSpeed = 0x00010107,
  kGenCurrentPacketFilter = 0x0001010E,
  kGenMediaConnectStatus = 0x00010114,
  kGenReceiveScaleCapabilities = 0x00010203,
  kGenReceiveScaleParameters = 0x00010204,
  kGenRndisConfigParameter = 0x0001021B,
  kGenFriendlyName = 0x00020216,
  k802_3PermanentAddress = 0x01010101,
  kTcpOffloadParameters = 0xFC01020C,
  kTcpOffloadHardwareCapabilities = 0xFC01020D,
  // Seen from other guests.
  kGenSupportedList = 0x00010101,
  kGenHardwareStatus = 0x00010102,
  kGenMediaSupported = 0x00010103,
  kGenMediaInUse = 0x00010104,
  kGenMaximumLookahead = 0x00010105,
  kGenTransmitBufferSpace = 0x00010108,
  kGenReceiveBufferSpace = 0x00010109,
  kGenTransmitBlockSize = 0x0001010A,
  kGenReceiveBlockSize = 0x0001010B,
  kGenVendorId = 0x0001010C,
  kGenVendorDescription = 0x0001010D,
  kGenCurrentLookahead = 0x0001010F,
  kGenDriverVersion = 0x00010110,
  kGenMaximumTotalSize = 0x00010111,
  kGenProtocolOptions = 0x00010112,
  kGenMacOptions = 0x00010113,
  kGenMaximumSendPackets = 0x00010115,
  kGenVendorDriverVersion = 0x00010116,
  kGenSupportedGuids = 0x00010117,
  kGenNetworkLayerAddresses = 0x00010118,
  kGenTransportHeaderOffset = 0x00010119,
  kGenMaxLinkSpeed = 0x00010206,
  kGenLinkState = 0x00010207,
  kGenLinkParameters = 0x00010208,
  kGenInterruptModeration = 0x00010209,
  kGenMachineName = 0x0001021A,
  kGenVlanId = 0x0001021C,
  kGenXmitOk = 0x00020101,
  kGenRcvOk = 0x00020102,
  kGenBytesRcv = 0x00020219,
  kGenBytesXmit = 0x0002021A,
  kGenRcvDiscards = 0x0002021B,
  kGenXmitDiscards = 0x0002021C,
  kTcpRscStatistics = 0x0002021D,
  k802_3CurrentAddress = 0x01010102,
  k802_3MulticastList = 0x01010103,
  k802_3MaximumListSize = 0x01010104,
  k802_3MacOptions = 0x01010105,
  kOffloadEncapsulation = 0x0101010A,
  k802_3AddMulticastAddress = 0x01010208,
  k802_3DeleteMulticastAddress = 0x01010209,
  kTcpOffloadCurrentConfig = 0xFC01020B,
  kTcpConnectionOffloadCurrentConfig = 0xFC01020E,
  kTcpConnectionOffloadHardwareCapabilities = 0xFC01020F,
};
// "OID_GEN_LINK_SPEED", ... or "UNKNOWN".
std::string_view NdisOidName(NdisOid oid);

// OID_GEN_MEDIA_CONNECT_STATUS values (spec 6.12).
inline constexpr uint32_t kNdisMediaStateConnected = 0;
inline constexpr uint32_t kNdisMediaStateDisconnected = 1;
// OID_GEN_FRIENDLY_NAME: at most 255 UCS-2 characters + NUL.
inline constexpr uint32_t kNdisFriendlyNameMaxChars = 255;

// ---------------------------------------------------------------------------------------------
// Packet filter (spec 6.10, 10.2 N-g)
// ---------------------------------------------------------------------------------------------

inline constexpr uint32_t kNdisPacketFilterDirected = 0x00000001;
inline constexpr uint32_t kNdisPacketFilterMulticast = 0x00000002;
inline constexpr uint32_t kNdisPacketFilterAllMulticast = 0x00000004;
inline constexpr uint32_t kNdisPacketFilterBroadcast = 0x00000008;
inline constexpr uint32_t kNdisPacketFilterSourceRouting = 0x00000010;
inline constexpr uint32_t kNdisPacketFilterPromiscuous = 0x00000020;
inline constexpr uint32_t kNdisPacketFilterSmt = 0x00000040;
inline constexpr uint32_t kNdisPacketFilterAllLocal = 0x00000080;
inline constexpr uint32_t kNdisPacketFilterGroup = 0x00001000;
inline constexpr uint32_t kNdisPacketFilterAllFunctional = 0x00002000;
inline constexpr uint32_t kNdisPacketFilterFunctional = 0x00004000;
inline constexpr uint32_t kNdisPacketFilterMacFrame = 0x00008000;
// Linux's header lists GROUP..MAC_FRAME as 0x100..0x800 but never sends them; NDIS and DPDK use
// 0x1000..0x8000. Those four low bits are reserved and ignored (N-g).
inline constexpr uint32_t kNdisPacketFilterReservedLinuxBits = 0x00000F00;
// What Linux sets when the interface comes up: DIRECTED | ALL_MULTICAST | BROADCAST.
inline constexpr uint32_t kNdisPacketFilterLinuxDefault = 0x0000000D;
// The filter a host applies for a guest's SET value: the value with the reserved bits cleared.
constexpr uint32_t EffectivePacketFilter(uint32_t filter) {
  return filter & ~kNdisPacketFilterReservedLinuxBits;
}

// ---------------------------------------------------------------------------------------------
// Common header and control messages (spec 6.1, 6.2). Each struct is a whole message:
//   kType     - its RNDIS type;
//   kWireSize - its fixed size (== sizeof); variable parts follow it;
//   header    - pre-set to {kType, kWireSize}; encoders overwrite msg_len with the real length.
// ---------------------------------------------------------------------------------------------

// Linux: struct rndis_message's first two fields.
struct RndisMessageHeader {
  RndisMessageType msg_type = RndisMessageType::kPacket;
  uint32_t msg_len = 0;  // whole message incl. this header
  friend bool operator==(const RndisMessageHeader&, const RndisMessageHeader&) = default;
};
static_assert(sizeof(RndisMessageHeader) == kRndisHeaderSize);
static_assert(offsetof(RndisMessageHeader, msg_type) == 0);
static_assert(offsetof(RndisMessageHeader, msg_len) == 4);

// INITIALIZE_MSG (24), guest. Linux: struct rndis_initialize_request.
struct RndisInitializeRequest {
  static constexpr RndisMessageType kType = RndisMessageType::kInitialize;
  static constexpr uint32_t kWireSize = 24;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  uint32_t major_version = kRndisMajorVersion;
  uint32_t minor_version = kRndisMinorVersion;
  uint32_t max_transfer_size = kRndisLinuxMaxTransferSize;
  friend bool operator==(const RndisInitializeRequest&, const RndisInitializeRequest&) = default;
};
static_assert(sizeof(RndisInitializeRequest) == RndisInitializeRequest::kWireSize);
static_assert(offsetof(RndisInitializeRequest, request_id) == 8);
static_assert(offsetof(RndisInitializeRequest, major_version) == 12);
static_assert(offsetof(RndisInitializeRequest, minor_version) == 16);
static_assert(offsetof(RndisInitializeRequest, max_transfer_size) == 20);

// INITIALIZE_CMPLT (52), device. Linux: struct rndis_initialize_complete. Defaults are
// OpenVMM's values.
struct RndisInitializeComplete {
  static constexpr RndisMessageType kType = RndisMessageType::kInitializeComplete;
  static constexpr uint32_t kWireSize = 52;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  RndisStatus status = RndisStatus::kSuccess;
  uint32_t major_version = kRndisMajorVersion;
  uint32_t minor_version = kRndisMinorVersion;
  uint32_t device_flags = kRndisDeviceFlagConnectionless;
  uint32_t medium = kRndisMedium802_3;
  uint32_t max_packets_per_message = 8;
  uint32_t max_transfer_size = 0xEFFFFFFF;
  uint32_t packet_alignment_factor = 3;  // alignment = 1 << factor (clamp: RndisPacketAlignment)
  uint32_t af_list_offset = 0;
  uint32_t af_list_size = 0;
  friend bool operator==(const RndisInitializeComplete&, const RndisInitializeComplete&) = default;
};
static_assert(sizeof(RndisInitializeComplete) == RndisInitializeComplete::kWireSize);
static_assert(offsetof(RndisInitializeComplete, request_id) == 8);
static_assert(offsetof(RndisInitializeComplete, status) == 12);
static_assert(offsetof(RndisInitializeComplete, major_version) == 16);
static_assert(offsetof(RndisInitializeComplete, minor_version) == 20);
static_assert(offsetof(RndisInitializeComplete, device_flags) == 24);
static_assert(offsetof(RndisInitializeComplete, medium) == 28);
static_assert(offsetof(RndisInitializeComplete, max_packets_per_message) == 32);
static_assert(offsetof(RndisInitializeComplete, max_transfer_size) == 36);
static_assert(offsetof(RndisInitializeComplete, packet_alignment_factor) == 40);
static_assert(offsetof(RndisInitializeComplete, af_list_offset) == 44);
static_assert(offsetof(RndisInitializeComplete, af_list_size) == 48);

// D27: INITIALIZE_CMPLT values Linux uses unchecked, clamped. Alignment = 1 << factor limited to
// 1..4096; packets per message at least 1.
constexpr uint32_t RndisPacketAlignment(uint32_t packet_alignment_factor) {
  return packet_alignment_factor > 12 ? 4096u : (1u << packet_alignment_factor);
}
constexpr uint32_t RndisMaxPacketsPerMessage(uint32_t max_packets_per_message) {
  return max_packets_per_message == 0 ? 1u : max_packets_per_message;
}

// HALT_MSG (12), guest, no reply. Linux: struct rndis_halt_request.
struct RndisHaltRequest {
  static constexpr RndisMessageType kType = RndisMessageType::kHalt;
  static constexpr uint32_t kWireSize = 12;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  friend bool operator==(const RndisHaltRequest&, const RndisHaltRequest&) = default;
};
static_assert(sizeof(RndisHaltRequest) == RndisHaltRequest::kWireSize);
static_assert(offsetof(RndisHaltRequest, request_id) == 8);

// QUERY_MSG / SET_MSG / SET_EX_MSG fixed part (28), guest; the information buffer follows at
// body offset info_buf_offset (Linux: 20, i.e. message byte 28). Linux: struct
// rndis_query_request / rndis_set_request.
template <RndisMessageType Type>
struct RndisOidRequest {
  static constexpr RndisMessageType kType = Type;
  static constexpr uint32_t kWireSize = 28;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  NdisOid oid{};
  uint32_t info_buflen = 0;
  uint32_t info_buf_offset = 20;  // from byte 8
  uint32_t dev_vc_handle = 0;
  friend bool operator==(const RndisOidRequest&, const RndisOidRequest&) = default;
};
using RndisQueryRequest = RndisOidRequest<RndisMessageType::kQuery>;
using RndisSetRequest = RndisOidRequest<RndisMessageType::kSet>;
using RndisSetExRequest = RndisOidRequest<RndisMessageType::kSetEx>;
static_assert(sizeof(RndisQueryRequest) == RndisQueryRequest::kWireSize);
static_assert(offsetof(RndisQueryRequest, request_id) == 8);
static_assert(offsetof(RndisQueryRequest, oid) == 12);
static_assert(offsetof(RndisQueryRequest, info_buflen) == 16);
static_assert(offsetof(RndisQueryRequest, info_buf_offset) == 20);
static_assert(offsetof(RndisQueryRequest, dev_vc_handle) == 24);
static_assert(sizeof(RndisSetRequest) == 28 && sizeof(RndisSetExRequest) == 28);
// Body offset of an information buffer right after a QUERY/SET fixed part.
inline constexpr uint32_t kRndisRequestInfoOffset = 20;

// QUERY_CMPLT fixed part (24), device; the buffer follows at body offset 16 (message byte 24).
// SET_EX_CMPLT has the same layout (OpenVMM). Linux: struct rndis_query_complete.
template <RndisMessageType Type>
struct RndisInfoComplete {
  static constexpr RndisMessageType kType = Type;
  static constexpr uint32_t kWireSize = 24;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  RndisStatus status = RndisStatus::kSuccess;
  uint32_t info_buflen = 0;
  uint32_t info_buf_offset = 16;  // from byte 8; Linux requires >= 16 (D20)
  friend bool operator==(const RndisInfoComplete&, const RndisInfoComplete&) = default;
};
using RndisQueryComplete = RndisInfoComplete<RndisMessageType::kQueryComplete>;
using RndisSetExComplete = RndisInfoComplete<RndisMessageType::kSetExComplete>;
static_assert(sizeof(RndisQueryComplete) == RndisQueryComplete::kWireSize);
static_assert(offsetof(RndisQueryComplete, request_id) == 8);
static_assert(offsetof(RndisQueryComplete, status) == 12);
static_assert(offsetof(RndisQueryComplete, info_buflen) == 16);
static_assert(offsetof(RndisQueryComplete, info_buf_offset) == 20);
static_assert(sizeof(RndisSetExComplete) == 24);
// Body offset of a completion's information buffer right after its fixed part.
inline constexpr uint32_t kRndisCompleteInfoOffset = 16;

// SET_CMPLT (16), device. Linux: struct rndis_set_complete.
struct RndisSetComplete {
  static constexpr RndisMessageType kType = RndisMessageType::kSetComplete;
  static constexpr uint32_t kWireSize = 16;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  RndisStatus status = RndisStatus::kSuccess;
  friend bool operator==(const RndisSetComplete&, const RndisSetComplete&) = default;
};
static_assert(sizeof(RndisSetComplete) == RndisSetComplete::kWireSize);
static_assert(offsetof(RndisSetComplete, request_id) == 8);
static_assert(offsetof(RndisSetComplete, status) == 12);

// RESET_MSG (12), guest. Linux: struct rndis_reset_request.
struct RndisResetRequest {
  static constexpr RndisMessageType kType = RndisMessageType::kReset;
  static constexpr uint32_t kWireSize = 12;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t reserved = 0;
  friend bool operator==(const RndisResetRequest&, const RndisResetRequest&) = default;
};
static_assert(sizeof(RndisResetRequest) == RndisResetRequest::kWireSize);
static_assert(offsetof(RndisResetRequest, reserved) == 8);

// RESET_CMPLT (16), device; no request id. Linux: struct rndis_reset_complete.
struct RndisResetComplete {
  static constexpr RndisMessageType kType = RndisMessageType::kResetComplete;
  static constexpr uint32_t kWireSize = 16;
  RndisMessageHeader header{kType, kWireSize};
  RndisStatus status = RndisStatus::kSuccess;
  uint32_t addressing_reset = 0;
  friend bool operator==(const RndisResetComplete&, const RndisResetComplete&) = default;
};
static_assert(sizeof(RndisResetComplete) == RndisResetComplete::kWireSize);
static_assert(offsetof(RndisResetComplete, status) == 8);
static_assert(offsetof(RndisResetComplete, addressing_reset) == 12);

// INDICATE_STATUS_MSG fixed part (20), device; status buffer at body offset status_buf_offset
// (12 when present, i.e. message byte 20). Linux: struct rndis_indicate_status.
struct RndisIndicateStatus {
  static constexpr RndisMessageType kType = RndisMessageType::kIndicateStatus;
  static constexpr uint32_t kWireSize = 20;
  RndisMessageHeader header{kType, kWireSize};
  RndisStatus status = RndisStatus::kSuccess;  // the event (MEDIA_CONNECT, ...)
  uint32_t status_buflen = 0;
  uint32_t status_buf_offset = 0;  // from byte 8; 0 when there is no buffer
  friend bool operator==(const RndisIndicateStatus&, const RndisIndicateStatus&) = default;
};
static_assert(sizeof(RndisIndicateStatus) == RndisIndicateStatus::kWireSize);
static_assert(offsetof(RndisIndicateStatus, status) == 8);
static_assert(offsetof(RndisIndicateStatus, status_buflen) == 12);
static_assert(offsetof(RndisIndicateStatus, status_buf_offset) == 16);
// Body offset of a status buffer right after the fixed part.
inline constexpr uint32_t kRndisIndicateStatusBufferOffset = 12;

// Optional diagnostic block after an error indication. Linux: struct rndis_diagnostic_info.
struct RndisDiagnosticInfo {
  RndisStatus diag_status = RndisStatus::kSuccess;
  uint32_t error_offset = 0;
};
static_assert(sizeof(RndisDiagnosticInfo) == 8);
static_assert(offsetof(RndisDiagnosticInfo, error_offset) == 4);

// KEEPALIVE_MSG (12), either side. Linux: struct rndis_keepalive_request.
struct RndisKeepaliveRequest {
  static constexpr RndisMessageType kType = RndisMessageType::kKeepalive;
  static constexpr uint32_t kWireSize = 12;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  friend bool operator==(const RndisKeepaliveRequest&, const RndisKeepaliveRequest&) = default;
};
static_assert(sizeof(RndisKeepaliveRequest) == RndisKeepaliveRequest::kWireSize);
static_assert(offsetof(RndisKeepaliveRequest, request_id) == 8);

// KEEPALIVE_CMPLT (16). Linux: struct rndis_keepalive_complete.
struct RndisKeepaliveComplete {
  static constexpr RndisMessageType kType = RndisMessageType::kKeepaliveComplete;
  static constexpr uint32_t kWireSize = 16;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t request_id = 0;
  RndisStatus status = RndisStatus::kSuccess;
  friend bool operator==(const RndisKeepaliveComplete&, const RndisKeepaliveComplete&) = default;
};
static_assert(sizeof(RndisKeepaliveComplete) == RndisKeepaliveComplete::kWireSize);
static_assert(offsetof(RndisKeepaliveComplete, request_id) == 8);
static_assert(offsetof(RndisKeepaliveComplete, status) == 12);

// ---------------------------------------------------------------------------------------------
// PACKET_MSG (spec 6.5) and PPIs (6.6)
// ---------------------------------------------------------------------------------------------

// PACKET_MSG fixed part (44). All offsets are from byte 8. Linux: struct rndis_packet.
struct RndisPacketMessage {
  static constexpr RndisMessageType kType = RndisMessageType::kPacket;
  static constexpr uint32_t kWireSize = kRndisPacketHeaderSize;
  RndisMessageHeader header{kType, kWireSize};
  uint32_t data_offset = 0;  // to the Ethernet frame
  uint32_t data_len = 0;     // frame length (no FCS)
  uint32_t oob_data_offset = 0;
  uint32_t oob_data_len = 0;
  uint32_t num_oob_data_elements = 0;
  uint32_t per_pkt_info_offset = 0;  // to the first PPI; 0 = none (Linux: 36)
  uint32_t per_pkt_info_len = 0;     // total PPI bytes
  uint32_t vc_handle = 0;
  uint32_t reserved = 0;
  friend bool operator==(const RndisPacketMessage&, const RndisPacketMessage&) = default;
};
static_assert(sizeof(RndisPacketMessage) == RndisPacketMessage::kWireSize);
static_assert(offsetof(RndisPacketMessage, data_offset) == 8);
static_assert(offsetof(RndisPacketMessage, data_len) == 12);
static_assert(offsetof(RndisPacketMessage, oob_data_offset) == 16);
static_assert(offsetof(RndisPacketMessage, oob_data_len) == 20);
static_assert(offsetof(RndisPacketMessage, num_oob_data_elements) == 24);
static_assert(offsetof(RndisPacketMessage, per_pkt_info_offset) == 28);
static_assert(offsetof(RndisPacketMessage, per_pkt_info_len) == 32);
static_assert(offsetof(RndisPacketMessage, vc_handle) == 36);
static_assert(offsetof(RndisPacketMessage, reserved) == 40);
// Body size of PACKET_MSG: the lowest legal per_pkt_info_offset (D6).
inline constexpr uint32_t kRndisPacketBodySize = kRndisPacketHeaderSize - kRndisHeaderSize;

// PPI element header (12). Linux: struct rndis_per_packet_info.
struct RndisPpiHeader {
  uint32_t size = kRndisPpiElementSize;          // whole element incl. this header
  uint32_t type = 0;                             // bits 0-30 type, bit 31 internal
  uint32_t ppi_offset = sizeof(RndisPpiHeader);  // element start -> data (senders: 12, N-i)
  friend bool operator==(const RndisPpiHeader&, const RndisPpiHeader&) = default;
};
static_assert(sizeof(RndisPpiHeader) == 12);
static_assert(offsetof(RndisPpiHeader, size) == 0);
static_assert(offsetof(RndisPpiHeader, type) == 4);
static_assert(offsetof(RndisPpiHeader, ppi_offset) == 8);

// PPI type words (spec 6.6; NDIS_PER_PACKET_INFO, internal bit clear unless noted).
inline constexpr uint32_t kRndisPpiInternalBit = 0x80000000;
inline constexpr uint32_t kPpiTcpIpChecksum = 0;
inline constexpr uint32_t kPpiIpsec = 1;
inline constexpr uint32_t kPpiLso = 2;
inline constexpr uint32_t kPpiClassificationHandle = 3;
inline constexpr uint32_t kPpiSgList = 5;
inline constexpr uint32_t kPpiIeee8021q = 6;
inline constexpr uint32_t kPpiOriginal = 7;
inline constexpr uint32_t kPpiHashValue = 8;  // NDIS PACKET_CANCEL_ID; Linux NBL_HASH_VALUE
inline constexpr uint32_t kPpiHashInfo = 9;   // NDIS ORIGINAL_NET_BUFLIST; DPDK hash info (N-h)
inline constexpr uint32_t kPpiCachedNetBufferList = 10;
inline constexpr uint32_t kPpiShortPacketPadInfo = 11;
// RNDIS_PKTINFO_ID: type 1 with the internal bit (RSC over VMBus fragments).
inline constexpr uint32_t kPpiPacketId = kRndisPpiInternalBit | 1;

// Cap on PPI elements walked in one packet (G4). Real senders use at most 5.
inline constexpr uint32_t kRndisMaxPpiCount = 32;

// Checksum info, transmit request (u32, spec 6.6).
inline constexpr uint32_t kTxChecksumIsIpv4 = 1u << 0;
inline constexpr uint32_t kTxChecksumIsIpv6 = 1u << 1;
inline constexpr uint32_t kTxChecksumTcp = 1u << 2;
inline constexpr uint32_t kTxChecksumUdp = 1u << 3;
inline constexpr uint32_t kTxChecksumIpHeader = 1u << 4;
// Builds a transmit checksum request: flag bits | (L4 header offset << 16), offset 10 bits.
constexpr uint32_t MakeTxChecksumInfo(uint32_t flags, uint32_t tcp_header_offset) {
  return (flags & 0x1F) | ((tcp_header_offset & 0x3FF) << 16);
}
constexpr uint32_t TxChecksumHeaderOffset(uint32_t info) { return (info >> 16) & 0x3FF; }

// Checksum info, receive result (u32, spec 6.6).
inline constexpr uint32_t kRxChecksumTcpFailed = 1u << 0;
inline constexpr uint32_t kRxChecksumUdpFailed = 1u << 1;
inline constexpr uint32_t kRxChecksumIpFailed = 1u << 2;
inline constexpr uint32_t kRxChecksumTcpSucceeded = 1u << 3;
inline constexpr uint32_t kRxChecksumUdpSucceeded = 1u << 4;
inline constexpr uint32_t kRxChecksumIpSucceeded = 1u << 5;
inline constexpr uint32_t kRxChecksumLoopback = 1u << 6;
inline constexpr uint32_t kRxChecksumTcpValueInvalid = 1u << 7;
inline constexpr uint32_t kRxChecksumIpValueInvalid = 1u << 8;

// LSO (large send) info, transmit (u32, spec 6.6).
struct LsoInfo {
  uint32_t mss = 0;                // 20 bits
  uint32_t tcp_header_offset = 0;  // 10 bits
  bool v2 = true;                  // bit 30: 1 = LSO v2
  bool ipv6 = false;               // bit 31 (v2 only)
  friend bool operator==(const LsoInfo&, const LsoInfo&) = default;
};
constexpr uint32_t PackLsoInfo(const LsoInfo& info) {
  return (info.mss & 0xFFFFF) | ((info.tcp_header_offset & 0x3FF) << 20) |
         (info.v2 ? 1u << 30 : 0u) | (info.ipv6 ? 1u << 31 : 0u);
}
constexpr LsoInfo UnpackLsoInfo(uint32_t raw) {
  return LsoInfo{raw & 0xFFFFF, (raw >> 20) & 0x3FF, ((raw >> 30) & 1) != 0,
                 ((raw >> 31) & 1) != 0};
}

// VLAN info, IEEE 802.1Q (u32, spec 6.6).
struct VlanInfo {
  uint8_t priority = 0;  // PCP, 3 bits
  bool dei = false;      // CFI / DEI
  uint16_t vlan_id = 0;  // 12 bits
  friend bool operator==(const VlanInfo&, const VlanInfo&) = default;
};
constexpr uint32_t PackVlanInfo(const VlanInfo& v) {
  return (uint32_t{v.priority} & 0x7) | (v.dei ? 1u << 3 : 0u) |
         ((uint32_t{v.vlan_id} & 0xFFF) << 4);
}
constexpr VlanInfo UnpackVlanInfo(uint32_t raw) {
  return VlanInfo{static_cast<uint8_t>(raw & 0x7), ((raw >> 3) & 1) != 0,
                  static_cast<uint16_t>((raw >> 4) & 0xFFF)};
}

// RNDIS_PKTINFO_ID data (4 bytes): RSC fragment marking (spec 6.6).
inline constexpr uint8_t kPacketIdVersion1 = 1;
inline constexpr uint8_t kPacketIdFlagSubAlloc = 1u << 0;  // part of a multi-range packet
inline constexpr uint8_t kPacketIdFlagFirstFrag = 1u << 1;
inline constexpr uint8_t kPacketIdFlagLastFrag = 1u << 2;
struct PacketIdInfo {
  uint8_t version = kPacketIdVersion1;
  uint8_t flags = 0;
  uint16_t pkt_id = 0;
  friend bool operator==(const PacketIdInfo&, const PacketIdInfo&) = default;
};
constexpr uint32_t PackPacketIdInfo(const PacketIdInfo& p) {
  return uint32_t{p.version} | (uint32_t{p.flags} << 8) | (uint32_t{p.pkt_id} << 16);
}
constexpr PacketIdInfo UnpackPacketIdInfo(uint32_t raw) {
  return PacketIdInfo{static_cast<uint8_t>(raw & 0xFF), static_cast<uint8_t>((raw >> 8) & 0xFF),
                      static_cast<uint16_t>(raw >> 16)};
}

// The PPIs uvmbus reads and writes: each a u32 (spec 6.6). Absent = std::nullopt. Unknown PPI
// types are skipped when parsing; the first element of each type wins (Linux rndis_get_ppi).
struct RndisPpiSet {
  std::optional<uint32_t> hash_value;  // type 8: Toeplitz hash (RX) / flow hash (TX)
  std::optional<uint32_t> hash_info;   // type 9: hash type/function bits (RX, optional)
  std::optional<uint32_t> vlan;        // type 6: PackVlanInfo()
  std::optional<uint32_t> lso;         // type 2: PackLsoInfo() (TX)
  std::optional<uint32_t> checksum;    // type 0: TX request or RX result bits
  std::optional<uint32_t> packet_id;   // internal type 1: PackPacketIdInfo() (RSC)

  // Number of PPIs present.
  uint32_t count() const {
    return static_cast<uint32_t>(hash_value.has_value()) + hash_info.has_value() +
           vlan.has_value() + lso.has_value() + checksum.has_value() + packet_id.has_value();
  }
  friend bool operator==(const RndisPpiSet&, const RndisPpiSet&) = default;
};

// Outcome of the guest-side PPI walk (spec 9.6 D6-D10): problems do not fail the packet, they
// make the PPIs be ignored (D6, D7) or stop the walk, keeping what was found before (D8-D10).
enum class PpiStatus : uint8_t {
  kOk,
  kBadOffset,         // D6: per_pkt_info_offset != 0 but < 36 or beyond the message -> ignored
  kBadLength,         // D7: per_pkt_info_len (non-zero) < 12 or beyond the message -> ignored
  kElementOverrun,    // D8: element size > bytes remaining (incl. size 0) -> stop
  kElementBadHeader,  // D9: size < 12, ppi_offset < 12 or ppi_offset >= size -> stop
  kElementDataShort,  // D10: a known type with fewer than 4 data bytes -> stop
  kTooMany,           // more than kRndisMaxPpiCount elements -> stop
};
// "ok", "bad_offset", ... for logs and counters.
std::string_view PpiStatusName(PpiStatus status);

// A parsed PACKET_MSG.
struct RndisPacket {
  static constexpr RndisMessageType kType = RndisMessageType::kPacket;
  RndisPacketMessage fixed{};      // the header as received
  std::span<const uint8_t> frame;  // data_len bytes at body offset data_offset
  RndisPpiSet ppis;
  uint32_t ppi_count = 0;                 // elements walked (known and unknown)
  PpiStatus ppi_status = PpiStatus::kOk;  // always kOk for kGuestToHost (problems are errors)
};

// Validates a PACKET_MSG and extracts frame and PPIs without allocating (on success). `msg` is
// the message (a receive range for a guest; the message's bytes for a host) and may be longer
// than msg_len (the rest is ignored). Errors (kMalformed, both directions):
//   size < 8                                   (D1)  "RNDIS message 6 < 8-byte header"
//   msg_len < 44 / > size                      (D2, D3, P11) "RNDIS PACKET_MSG msg_len 40 < 44"
//                                                    / "RNDIS msg_len 100 > 64 bytes available"
//   type != PACKET_MSG                               "RNDIS QUERY_MSG (0x4) is not a PACKET_MSG"
//   data_offset >= msg_len - 8                 (D4, P11) "RNDIS data_offset 200 beyond msg_len 100"
//   data_len > msg_len - 8 - data_offset       (D5, P11) "RNDIS data_len 90 > 56 bytes after
//                                                    data_offset"
// Data bounds use msg_len, which is never more than the range (stricter than Linux, which uses
// the range length; both reject D4/D5 inputs).
// PPIs (per_pkt_info_offset or per_pkt_info_len 0 means none): kHostToGuest reports D6-D10 in
// ppi_status; kGuestToHost fails with kMalformed naming the violation (P11), e.g. "RNDIS PPI
// element 1 size 40 > 16 bytes remaining".
Expected<RndisPacket> ParseRndisPacket(std::span<const uint8_t> msg, Direction dir);

// The same validation for a message that stays in shared memory (no copy of the frame before
// parsing): `head` is a private copy of the message's first bytes and `available` the length of
// the whole range / section part the message sits in. Lengths are checked against `available`
// exactly as ParseRndisPacket() checks them against msg.size(); only `head` is read, so the
// header and PPIs must be in it (copy min(available, 256): every known sender keeps header + PPIs
// within 256 bytes; otherwise kMalformed "RNDIS PPIs end at 300, beyond the 256 bytes copied").
// `frame` is set only if the frame lies inside `head`; else the caller copies the frame once
// from shared memory at message offset 8 + fixed.data_offset, fixed.data_len bytes (validated).
// kInvalidArgument if `head` is longer than `available` or shorter than min(available, 44).
Expected<RndisPacket> ParseRndisPacketHead(std::span<const uint8_t> head, uint64_t available,
                                           Direction dir);

// P17: a transmit LSO request is usable for a frame of `frame_len` bytes: MSS > 0 and the TCP
// header offset inside the frame. kMalformed "LSO with MSS 0" / "LSO TCP header offset 80 >=
// frame length 60".
Status CheckTxLsoInfo(uint32_t lso_info, uint32_t frame_len);
// P17: a transmit checksum request that asks for a TCP or UDP checksum has its header offset
// inside the frame. kMalformed "checksum TCP header offset 70 >= frame length 60".
Status CheckTxChecksumInfo(uint32_t checksum_info, uint32_t frame_len);

// ---------------------------------------------------------------------------------------------
// Parsed control messages (typed copy of the fixed part + span of the variable part)
// ---------------------------------------------------------------------------------------------

// QUERY_MSG / SET_MSG / SET_EX_MSG with their information buffer.
template <RndisMessageType Type>
struct RndisOidRequestMessage {
  static constexpr RndisMessageType kType = Type;
  RndisOidRequest<Type> fixed{};
  std::span<const uint8_t> info;  // info_buflen bytes
};
using RndisQueryMessage = RndisOidRequestMessage<RndisMessageType::kQuery>;
using RndisSetMessage = RndisOidRequestMessage<RndisMessageType::kSet>;
using RndisSetExMessage = RndisOidRequestMessage<RndisMessageType::kSetEx>;

// QUERY_CMPLT / SET_EX_CMPLT with their information buffer.
template <RndisMessageType Type>
struct RndisInfoCompleteMessage {
  static constexpr RndisMessageType kType = Type;
  RndisInfoComplete<Type> fixed{};
  std::span<const uint8_t> info;  // info_buflen bytes
};
using RndisQueryCompleteMessage = RndisInfoCompleteMessage<RndisMessageType::kQueryComplete>;
using RndisSetExCompleteMessage = RndisInfoCompleteMessage<RndisMessageType::kSetExComplete>;

// INDICATE_STATUS_MSG with its status buffer.
struct RndisIndicateStatusMessage {
  static constexpr RndisMessageType kType = RndisMessageType::kIndicateStatus;
  RndisIndicateStatus fixed{};
  std::span<const uint8_t> status_buffer;  // status_buflen bytes
};

// One received RNDIS message.
using RndisMessage =
    std::variant<RndisPacket, RndisInitializeRequest, RndisInitializeComplete, RndisHaltRequest,
                 RndisQueryMessage, RndisQueryCompleteMessage, RndisSetMessage, RndisSetComplete,
                 RndisResetRequest, RndisResetComplete, RndisIndicateStatusMessage,
                 RndisKeepaliveRequest, RndisKeepaliveComplete, RndisSetExMessage,
                 RndisSetExCompleteMessage>;

// The RNDIS type of a parsed message.
RndisMessageType TypeOf(const RndisMessage& msg);

// Validates and decodes one RNDIS message that travelled in `dir`. `msg` may be longer than
// msg_len (a receive range; a section holding several messages: see RndisMessageSplitter).
// Checks, in order (all kMalformed):
//   size < 8                           (D1)  "RNDIS message 6 < 8-byte header"
//   msg_len < 8 / > size               (D2, P11)
//   type accepted in `dir`             kHostToGuest: PACKET, INITIALIZE_CMPLT, QUERY_CMPLT,
//                                      SET_CMPLT, INDICATE_STATUS only (D15: "RNDIS KEEPALIVE_MSG
//                                      not accepted from the host"); kGuestToHost: PACKET,
//                                      INITIALIZE, HALT, QUERY, SET, RESET, KEEPALIVE,
//                                      KEEPALIVE_CMPLT, SET_EX (P13: answer SET_EX with
//                                      NOT_SUPPORTED; others "RNDIS QUERY_CMPLT not accepted
//                                      from the guest"); unknown "RNDIS message type 0x42 unknown"
//   host completion msg_len > 4148     (D19) "RNDIS QUERY_CMPLT msg_len 5000 > 4148" (use
//                                      RndisCompletionRequestId() to fail the request)
//   msg_len < the fixed part           (D3, D17, D20, D22, P11) "RNDIS QUERY_CMPLT msg_len 20 < 24"
//   QUERY/SET/SET_EX buffer (non-empty): info_buf_offset < 20, > msg_len - 8, or
//       info_buflen > msg_len - 8 - info_buf_offset                         (P11)
//   QUERY_CMPLT/SET_EX_CMPLT buffer (non-empty): info_buf_offset < 16, > msg_len - 8, or
//       info_buflen > msg_len - 8 - info_buf_offset                         (D20)
//   INDICATE_STATUS buffer (non-empty): status_buf_offset < 12, > size - 8, or
//       status_buflen > size - 8 - status_buf_offset, bounded by the RANGE `msg.size()` rather
//       than msg_len (pre-"Fe" Hyper-V, 10.2 N-m); LINK_SPEED_CHANGE with status_buflen < 4 (D23)
//   PACKET_MSG: as ParseRndisPacket().
// An empty buffer's offset is not checked (nothing is read; hosts send 0 or 16).
Expected<RndisMessage> ParseRndisMessage(std::span<const uint8_t> msg, Direction dir);

// Decodes any known RNDIS message whoever sent it (tools, captures, tests): skips the
// per-direction type filter (D15 / P13) and checks everything else with the rules of the side
// that normally receives the type: completions and INDICATE_STATUS as a guest reads them,
// requests and PACKET_MSG as a host reads them.
Expected<RndisMessage> DecodeRndisMessage(std::span<const uint8_t> msg);

// D17/D19 helper: the request id of a completion (INITIALIZE/QUERY/SET/KEEPALIVE/SET_EX_CMPLT)
// whose header is sane (size >= 12, 12 <= msg_len <= size), even when the rest fails to parse,
// so a guest can complete that request with an error (BUFFER_OVERFLOW for D19). nullopt
// otherwise (RESET_CMPLT carries no request id).
std::optional<uint32_t> RndisCompletionRequestId(std::span<const uint8_t> msg);

// Link speed (u32, units of 100 bit/s) carried by a LINK_SPEED_CHANGE indication whose buffer
// ParseRndisMessage() validated; nullopt for other statuses.
std::optional<uint32_t> LinkSpeedFromIndication(const RndisIndicateStatusMessage& msg);

// Splits bytes holding back-to-back RNDIS messages (one send-buffer section with Linux's batch
// of PACKET_MSGs, each msg_len padded to pkt_align) into single messages. Every message is at
// least 8 bytes, so the walk ends; `max_messages` caps it further (the host's
// max_packets_per_message).
class RndisMessageSplitter {
 public:
  RndisMessageSplitter(std::span<const uint8_t> bytes, uint32_t max_messages)
      : rest_(bytes), max_messages_(max_messages) {}

  // True when every byte has been consumed.
  bool Done() const { return rest_.empty(); }
  // The next message ([0, msg_len) of the rest). kMalformed if fewer than 8 bytes remain
  // ("RNDIS batch: 4 trailing bytes"), msg_len < 8 or > what remains, or more than
  // `max_messages` messages ("RNDIS batch: more than 8 messages"). Precondition: !Done().
  Expected<std::span<const uint8_t>> Next();

 private:
  std::span<const uint8_t> rest_;
  uint32_t max_messages_;
  uint32_t count_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Encoding. Every encoder writes a complete message into `out`, sets msg_type/msg_len and
// returns the bytes written; kInvalidArgument if `out` is too small or an argument is
// impossible.
// ---------------------------------------------------------------------------------------------

// A fixed-size RNDIS message struct (the control messages above).
template <typename T>
concept RndisFixedMessage = requires {
  { T::kType } -> std::convertible_to<RndisMessageType>;
  { T::kWireSize } -> std::convertible_to<uint32_t>;
}
&&std::is_trivially_copyable_v<T> &&
    (T::kWireSize == sizeof(T)) && std::same_as<decltype(T::header), RndisMessageHeader>;

namespace rndis_internal {
// Writes `fixed_size` bytes from `fixed`, then `tail`; sets msg_type = `type` and msg_len = the
// total.
Expected<size_t> EncodeWithTail(std::span<uint8_t> out, RndisMessageType type, const void* fixed,
                                uint32_t fixed_size, std::span<const uint8_t> tail);
}  // namespace rndis_internal

// A fixed message ({type, kWireSize} forced into the header; e.g. INITIALIZE, HALT,
// INITIALIZE_CMPLT, SET_CMPLT, RESET, RESET_CMPLT, KEEPALIVE, KEEPALIVE_CMPLT, or a QUERY/SET
// fixed part with its info fields left as given).
template <RndisFixedMessage T>
Expected<size_t> EncodeRndis(std::span<uint8_t> out, const T& msg) {
  return rndis_internal::EncodeWithTail(out, T::kType, &msg, T::kWireSize, {});
}

// QUERY_MSG / SET_MSG / SET_EX_MSG with `info` right after the fixed part (info_buf_offset 20,
// Linux layout): 28 + info.size() bytes.
Expected<size_t> EncodeRndisQuery(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                  std::span<const uint8_t> info);
Expected<size_t> EncodeRndisSet(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                std::span<const uint8_t> info);
Expected<size_t> EncodeRndisSetEx(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                  std::span<const uint8_t> info);
// QUERY_CMPLT / SET_EX_CMPLT: info_buf_offset is always 16 (Linux rejects anything smaller even
// for an empty buffer, D20): 24 + info.size() bytes.
Expected<size_t> EncodeRndisQueryComplete(std::span<uint8_t> out, uint32_t request_id,
                                          RndisStatus status, std::span<const uint8_t> info);
Expected<size_t> EncodeRndisSetExComplete(std::span<uint8_t> out, uint32_t request_id,
                                          RndisStatus status, std::span<const uint8_t> info);
// INDICATE_STATUS_MSG: status_buf_offset 12 with a buffer, 0 without (OpenVMM); the buffer is
// counted in msg_len (10.2 N-m). 20 + buffer.size() bytes.
Expected<size_t> EncodeRndisIndicateStatus(std::span<uint8_t> out, RndisStatus status,
                                           std::span<const uint8_t> buffer);
// LINK_SPEED_CHANGE indication carrying `speed_100bps` (spec 6.12).
Expected<size_t> EncodeRndisLinkSpeedChange(std::span<uint8_t> out, uint32_t speed_100bps);

// Bytes of PACKET_MSG header + PPIs for `ppis`: 44 + 16 per PPI present.
uint32_t RndisPacketHeaderSize(const RndisPpiSet& ppis);

// Writes a PACKET_MSG header and its PPIs (order: hash value, hash info, VLAN, LSO, checksum,
// packet id; each 16 bytes with ppi_offset 12, N-i) for a frame of `frame_len` bytes that will
// sit at message offset `frame_offset` (0 = right after the PPIs; otherwise >= the header size,
// e.g. 256 for an OpenVMM-style receive layout; the bytes in between are zeroed). msg_len =
// frame_offset + frame_len. The caller copies the frame (or describes it by GPA ranges). `out`
// needs only the header bytes. Returns the frame's message offset.
Expected<uint32_t> EncodeRndisPacketHeader(std::span<uint8_t> out, const RndisPpiSet& ppis,
                                           uint32_t frame_len, uint32_t frame_offset = 0);

// A whole PACKET_MSG: header, PPIs, then `frame`; msg_len rounded up to a multiple of `pad_to`
// (a power of two: 1 = no padding; pkt_align when another message follows in the same send
// section), padding zeroed. Returns msg_len.
Expected<uint32_t> EncodeRndisPacket(std::span<uint8_t> out, const RndisPpiSet& ppis,
                                     std::span<const uint8_t> frame, uint32_t pad_to = 1);

// ---------------------------------------------------------------------------------------------
// NDIS objects: offload (spec 6.8), RSS (6.9), config parameter (6.11)
// ---------------------------------------------------------------------------------------------

// NDIS object header (4): {u8 type; u8 revision; u16 size incl. header}. Linux:
// struct ndis_obj_header.
struct NdisObjectHeader {
  uint8_t type = 0;
  uint8_t revision = 0;
  uint16_t size = 0;
  friend bool operator==(const NdisObjectHeader&, const NdisObjectHeader&) = default;
};
static_assert(sizeof(NdisObjectHeader) == 4);
static_assert(offsetof(NdisObjectHeader, type) == 0);
static_assert(offsetof(NdisObjectHeader, revision) == 1);
static_assert(offsetof(NdisObjectHeader, size) == 2);

inline constexpr uint8_t kNdisObjectTypeDefault = 0x80;
inline constexpr uint8_t kNdisObjectTypeRssCapabilities = 0x88;
inline constexpr uint8_t kNdisObjectTypeRssParameters = 0x89;
inline constexpr uint8_t kNdisObjectTypeOffload = 0xA7;

// Checksum offload capability bits (csum.ip4_* / ip6_*), encapsulation bits (spec 6.8).
inline constexpr uint32_t kNdisEncapNull = 0x1;
inline constexpr uint32_t kNdisEncap802_3 = 0x2;
inline constexpr uint32_t kNdisEncap802_3Pq = 0x4;
inline constexpr uint32_t kNdisEncap802_3PqOob = 0x8;
inline constexpr uint32_t kNdisEncapRfc1483 = 0x10;
inline constexpr uint32_t kNdisTxCsumIpOptions = 0x001;  // IPv6: extension headers
inline constexpr uint32_t kNdisTxCsumTcpOptions = 0x004;
inline constexpr uint32_t kNdisTxCsumTcp = 0x010;
inline constexpr uint32_t kNdisTxCsumUdp = 0x040;
inline constexpr uint32_t kNdisTxCsumIp = 0x100;
// lsov2.ip6_opts bits.
inline constexpr uint32_t kNdisLsoV2Ip6ExtHeaders = 0x001;
inline constexpr uint32_t kNdisLsoV2Ip6TcpOptions = 0x004;

// Linux: struct ndis_csum_offload.
struct NdisChecksumOffload {
  uint32_t ip4_txenc = 0;
  uint32_t ip4_txcsum = 0;
  uint32_t ip4_rxenc = 0;
  uint32_t ip4_rxcsum = 0;
  uint32_t ip6_txenc = 0;
  uint32_t ip6_txcsum = 0;
  uint32_t ip6_rxenc = 0;
  uint32_t ip6_rxcsum = 0;
  friend bool operator==(const NdisChecksumOffload&, const NdisChecksumOffload&) = default;
};
static_assert(sizeof(NdisChecksumOffload) == 32);

// Linux: struct ndis_lsov1_offload.
struct NdisLsoV1Offload {
  uint32_t encap = 0;
  uint32_t maxsize = 0;
  uint32_t minsegs = 0;
  uint32_t opts = 0;
  friend bool operator==(const NdisLsoV1Offload&, const NdisLsoV1Offload&) = default;
};
static_assert(sizeof(NdisLsoV1Offload) == 16);

// Linux: struct ndis_ipsecv1_offload.
struct NdisIpsecV1Offload {
  uint32_t encap = 0;
  uint32_t ah_esp = 0;
  uint32_t xport_tun = 0;
  uint32_t ip4_opts = 0;
  uint32_t flags = 0;
  uint32_t ip4_ah = 0;
  uint32_t ip4_esp = 0;
  friend bool operator==(const NdisIpsecV1Offload&, const NdisIpsecV1Offload&) = default;
};
static_assert(sizeof(NdisIpsecV1Offload) == 28);

// Linux: struct ndis_lsov2_offload.
struct NdisLsoV2Offload {
  uint32_t ip4_encap = 0;
  uint32_t ip4_maxsz = 0;
  uint32_t ip4_minsg = 0;
  uint32_t ip6_encap = 0;
  uint32_t ip6_maxsz = 0;
  uint32_t ip6_minsg = 0;
  uint32_t ip6_opts = 0;
  friend bool operator==(const NdisLsoV2Offload&, const NdisLsoV2Offload&) = default;
};
static_assert(sizeof(NdisLsoV2Offload) == 28);

// Linux: struct ndis_ipsecv2_offload.
struct NdisIpsecV2Offload {
  uint32_t encap = 0;
  uint8_t ip6 = 0;
  uint8_t ip4opt = 0;
  uint8_t ip6ext = 0;
  uint8_t ah = 0;
  uint8_t esp = 0;
  uint8_t ah_esp = 0;
  uint8_t xport = 0;
  uint8_t tun = 0;
  uint8_t xport_tun = 0;
  uint8_t lso = 0;
  uint8_t extseq = 0;
  uint8_t pad = 0;
  uint32_t udp_esp = 0;
  uint32_t auth = 0;
  uint32_t crypto = 0;
  uint32_t sa_caps = 0;
  friend bool operator==(const NdisIpsecV2Offload&, const NdisIpsecV2Offload&) = default;
};
static_assert(sizeof(NdisIpsecV2Offload) == 32);
static_assert(offsetof(NdisIpsecV2Offload, ip6) == 4);
static_assert(offsetof(NdisIpsecV2Offload, pad) == 15);
static_assert(offsetof(NdisIpsecV2Offload, udp_esp) == 16);
static_assert(offsetof(NdisIpsecV2Offload, sa_caps) == 28);

// Linux: struct ndis_rsc_offload.
struct NdisRscOffload {
  uint8_t ip4 = 0;
  uint8_t ip6 = 0;
  uint8_t pad[2] = {};
  friend bool operator==(const NdisRscOffload&, const NdisRscOffload&) = default;
};
static_assert(sizeof(NdisRscOffload) == 4);

// Linux: struct ndis_encap_offload.
struct NdisEncapOffload {
  uint32_t flags = 0;
  uint32_t maxhdr = 0;
  friend bool operator==(const NdisEncapOffload&, const NdisEncapOffload&) = default;
};
static_assert(sizeof(NdisEncapOffload) == 8);

// Hardware offload capabilities, the answer to OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES
// (spec 6.8). Linux: struct ndis_offload. Revision 1 = 112 bytes, 2 = 144, 3 = 156.
struct NdisOffload {
  NdisObjectHeader header{kNdisObjectTypeOffload, 3, 156};
  NdisChecksumOffload csum{};
  NdisLsoV1Offload lsov1{};
  NdisIpsecV1Offload ipsecv1{};
  NdisLsoV2Offload lsov2{};
  uint32_t flags = 0;
  NdisIpsecV2Offload ipsecv2{};  // NDIS >= 6.1
  NdisRscOffload rsc{};          // NDIS >= 6.30
  NdisEncapOffload encap_gre{};
  friend bool operator==(const NdisOffload&, const NdisOffload&) = default;
};
static_assert(sizeof(NdisOffload) == 156);
static_assert(offsetof(NdisOffload, csum) == 4);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip4_txcsum) == 8);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip4_rxenc) == 12);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip4_rxcsum) == 16);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip6_txenc) == 20);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip6_txcsum) == 24);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip6_rxenc) == 28);
static_assert(offsetof(NdisOffload, csum) + offsetof(NdisChecksumOffload, ip6_rxcsum) == 32);
static_assert(offsetof(NdisOffload, lsov1) == 36);
static_assert(offsetof(NdisOffload, ipsecv1) == 52);
static_assert(offsetof(NdisOffload, lsov2) == 80);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip4_maxsz) == 84);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip4_minsg) == 88);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip6_encap) == 92);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip6_maxsz) == 96);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip6_minsg) == 100);
static_assert(offsetof(NdisOffload, lsov2) + offsetof(NdisLsoV2Offload, ip6_opts) == 104);
static_assert(offsetof(NdisOffload, flags) == 108);
static_assert(offsetof(NdisOffload, ipsecv2) == 112);
static_assert(offsetof(NdisOffload, rsc) == 144);
static_assert(offsetof(NdisOffload, rsc) + offsetof(NdisRscOffload, ip6) == 145);
static_assert(offsetof(NdisOffload, encap_gre) == 148);
inline constexpr uint16_t kNdisOffloadSizeRev1 = 112;
inline constexpr uint16_t kNdisOffloadSizeRev2 = 144;
inline constexpr uint16_t kNdisOffloadSizeRev3 = 156;
// The input header Linux sends with the capabilities query, by NVSP version (spec 6.8).
NdisObjectHeader NdisOffloadQueryHeader(uint32_t nvsp_version);

// D24: validates the capabilities a host returned: type 0xA7, revision >= 1, 112 <= size <=
// info.size(). Copies `size` bytes (at most 156) into a zeroed NdisOffload. kMalformed naming
// the violation ("offload capabilities type 0x80 != 0xA7").
Expected<NdisOffload> ParseNdisOffload(std::span<const uint8_t> info);

// Offload parameter values (ndis_offload_params fields, spec 6.8).
inline constexpr uint8_t kOffloadParamNoChange = 0;
inline constexpr uint8_t kOffloadParamCsumTxRxDisabled = 1;
inline constexpr uint8_t kOffloadParamCsumTxEnabledRxDisabled = 2;
inline constexpr uint8_t kOffloadParamCsumRxEnabledTxDisabled = 3;
inline constexpr uint8_t kOffloadParamCsumTxRxEnabled = 4;
inline constexpr uint8_t kOffloadParamLsoDisabled = 1;
inline constexpr uint8_t kOffloadParamLsoEnabled = 2;
inline constexpr uint8_t kOffloadParamRscDisabled = 1;
inline constexpr uint8_t kOffloadParamRscEnabled = 2;

// The offload configuration a guest SETs with OID_TCP_OFFLOAD_PARAMETERS. Linux:
// struct ndis_offload_params. Linux sends revision 3 with size 28 (NVSP >= 5) or 22 (<= 4).
struct NdisOffloadParams {
  NdisObjectHeader header{kNdisObjectTypeDefault, 3, 28};
  uint8_t ip_v4_csum = 0;
  uint8_t tcp_ip_v4_csum = 0;
  uint8_t udp_ip_v4_csum = 0;
  uint8_t tcp_ip_v6_csum = 0;
  uint8_t udp_ip_v6_csum = 0;
  uint8_t lso_v1 = 0;
  uint8_t ip_sec_v1 = 0;
  uint8_t lso_v2_ipv4 = 0;
  uint8_t lso_v2_ipv6 = 0;
  uint8_t tcp_connection_ip_v4 = 0;
  uint8_t tcp_connection_ip_v6 = 0;
  uint8_t padding1 = 0;
  uint32_t flags = 0;
  uint8_t ip_sec_v2 = 0;
  uint8_t ip_sec_v2_ip_v4 = 0;
  uint8_t rsc_ip_v4 = 0;
  uint8_t rsc_ip_v6 = 0;
  uint8_t encapsulated_packet_task_offload = 0;
  uint8_t encapsulation_types = 0;
  uint8_t padding2[2] = {};
  friend bool operator==(const NdisOffloadParams&, const NdisOffloadParams&) = default;
};
static_assert(sizeof(NdisOffloadParams) == 28);
static_assert(offsetof(NdisOffloadParams, ip_v4_csum) == 4);
static_assert(offsetof(NdisOffloadParams, tcp_ip_v4_csum) == 5);
static_assert(offsetof(NdisOffloadParams, udp_ip_v4_csum) == 6);
static_assert(offsetof(NdisOffloadParams, tcp_ip_v6_csum) == 7);
static_assert(offsetof(NdisOffloadParams, udp_ip_v6_csum) == 8);
static_assert(offsetof(NdisOffloadParams, lso_v1) == 9);
static_assert(offsetof(NdisOffloadParams, ip_sec_v1) == 10);
static_assert(offsetof(NdisOffloadParams, lso_v2_ipv4) == 11);
static_assert(offsetof(NdisOffloadParams, lso_v2_ipv6) == 12);
static_assert(offsetof(NdisOffloadParams, tcp_connection_ip_v4) == 13);
static_assert(offsetof(NdisOffloadParams, tcp_connection_ip_v6) == 14);
static_assert(offsetof(NdisOffloadParams, flags) == 16);
static_assert(offsetof(NdisOffloadParams, ip_sec_v2) == 20);
static_assert(offsetof(NdisOffloadParams, ip_sec_v2_ip_v4) == 21);
static_assert(offsetof(NdisOffloadParams, rsc_ip_v4) == 22);
static_assert(offsetof(NdisOffloadParams, rsc_ip_v6) == 23);
static_assert(offsetof(NdisOffloadParams, encapsulated_packet_task_offload) == 24);
static_assert(offsetof(NdisOffloadParams, encapsulation_types) == 25);
inline constexpr uint16_t kNdisOffloadParamsSizeRev1 = 20;  // up to `flags`
inline constexpr uint16_t kNdisOffloadParamsSizeRev2 = 22;  // + IPsec v2 (Linux NVSP <= 4)
inline constexpr uint16_t kNdisOffloadParamsSizeRev3 = 28;  // + RSC, encapsulation

// Host side (10.2 N-n): accepts type 0x80 with 20 <= size <= info.size(); copies `size` bytes
// (at most 28) into a zeroed struct, so missing fields read as 0 = "no change". kMalformed
// naming the violation.
Expected<NdisOffloadParams> ParseNdisOffloadParams(std::span<const uint8_t> info);

// RSS capability flags (spec 6.9, cap_flag).
inline constexpr uint32_t kNdisRssCapsMessageSignaledInterrupts = 0x01000000;
inline constexpr uint32_t kNdisRssCapsClassificationAtIsr = 0x02000000;
inline constexpr uint32_t kNdisRssCapsClassificationAtDpc = 0x04000000;
inline constexpr uint32_t kNdisRssCapsUsingMsiX = 0x08000000;
inline constexpr uint32_t kNdisRssCapsRssAvailableOnPorts = 0x10000000;
inline constexpr uint32_t kNdisRssCapsSupportsMsiX = 0x20000000;
inline constexpr uint32_t kNdisRssCapsHashTypeTcpIpv4 = 0x00000100;
inline constexpr uint32_t kNdisRssCapsHashTypeTcpIpv6 = 0x00000200;
inline constexpr uint32_t kNdisRssCapsHashTypeTcpIpv6Ex = 0x00000400;

// Hash function and hash types (hashinfo, spec 6.9 / 8.3).
inline constexpr uint32_t kNdisHashFunctionMask = 0x000000FF;
inline constexpr uint32_t kNdisHashFunctionToeplitz = 0x00000001;
inline constexpr uint32_t kNdisHashTypeMask = 0x00FFFF00;
inline constexpr uint32_t kNdisHashIpv4 = 0x00000100;
inline constexpr uint32_t kNdisHashTcpIpv4 = 0x00000200;
inline constexpr uint32_t kNdisHashIpv6 = 0x00000400;
inline constexpr uint32_t kNdisHashIpv6Ex = 0x00000800;
inline constexpr uint32_t kNdisHashTcpIpv6 = 0x00001000;
inline constexpr uint32_t kNdisHashTcpIpv6Ex = 0x00002000;
inline constexpr uint32_t kNdisHashUdpIpv4 = 0x00004000;
inline constexpr uint32_t kNdisHashUdpIpv6 = 0x00008000;
inline constexpr uint32_t kNdisHashUdpIpv6Ex = 0x00010000;
// What Linux asks for: Toeplitz + IPv4 + TCP/IPv4 + IPv6 + TCP/IPv6 = 0x1701.
inline constexpr uint32_t kNdisHashInfoLinux =
    kNdisHashFunctionToeplitz | kNdisHashIpv4 | kNdisHashTcpIpv4 | kNdisHashIpv6 | kNdisHashTcpIpv6;

// RSS capabilities (answer to OID_GEN_RECEIVE_SCALE_CAPABILITIES; also Linux's query input).
// Packed 18 bytes (revision 2; revision 1 is 16). Linux: struct ndis_recv_scale_cap.
#pragma pack(push, 1)
struct NdisReceiveScaleCapabilities {
  NdisObjectHeader header{kNdisObjectTypeRssCapabilities, 2, 18};
  uint32_t cap_flag = 0;
  uint32_t num_int_msg = 0;
  uint32_t num_recv_que = 0;  // Linux uses only this (< 2 => single queue, D25)
  uint16_t num_indirect_tabent = 0;
  friend bool operator==(const NdisReceiveScaleCapabilities&,
                         const NdisReceiveScaleCapabilities&) = default;
};
#pragma pack(pop)
static_assert(sizeof(NdisReceiveScaleCapabilities) == 18);
static_assert(offsetof(NdisReceiveScaleCapabilities, cap_flag) == 4);
static_assert(offsetof(NdisReceiveScaleCapabilities, num_int_msg) == 8);
static_assert(offsetof(NdisReceiveScaleCapabilities, num_recv_que) == 12);
static_assert(offsetof(NdisReceiveScaleCapabilities, num_indirect_tabent) == 16);
inline constexpr uint16_t kNdisRssCapsSizeRev1 = 16;
inline constexpr uint16_t kNdisRssCapsSizeRev2 = 18;

// Validates RSS capabilities: type 0x88, revision >= 1, 16 <= size <= info.size(); copies `size`
// bytes (at most 18) into a zeroed struct. kMalformed naming the violation.
Expected<NdisReceiveScaleCapabilities> ParseRssCapabilities(std::span<const uint8_t> info);

// RSS parameter flags (spec 6.9).
inline constexpr uint16_t kNdisRssParamFlagBaseCpuUnchanged = 0x0001;
inline constexpr uint16_t kNdisRssParamFlagHashInfoUnchanged = 0x0002;
inline constexpr uint16_t kNdisRssParamFlagItableUnchanged = 0x0004;
inline constexpr uint16_t kNdisRssParamFlagHashKeyUnchanged = 0x0008;
inline constexpr uint16_t kNdisRssParamFlagDisableRss = 0x0010;

// RSS parameters fixed part (SET OID_GEN_RECEIVE_SCALE_PARAMETERS), revision 2: 40 bytes
// (revision 1: 28, without the processor-mask fields). Offsets are from the start of this
// object. Linux: struct ndis_recv_scale_param.
struct NdisReceiveScaleParameters {
  NdisObjectHeader header{kNdisObjectTypeRssParameters, 2, 40};
  uint16_t flag = 0;  // kNdisRssParamFlag*
  uint16_t base_cpu_number = 0;
  uint32_t hashinfo = 0;          // hash function | hash types
  uint16_t indirect_tabsize = 0;  // bytes (Linux: 128 * 4 = 512)
  uint16_t pad0 = 0;
  uint32_t indirect_taboffset = 0;  // Linux: 40
  uint16_t hashkey_size = 0;        // bytes (40)
  uint16_t pad1 = 0;
  uint32_t hashkey_offset = 0;  // Linux: 552
  uint32_t processor_masks_offset = 0;
  uint32_t num_processor_masks = 0;
  uint32_t processor_masks_entry_size = 0;
  friend bool operator==(const NdisReceiveScaleParameters&,
                         const NdisReceiveScaleParameters&) = default;
};
static_assert(sizeof(NdisReceiveScaleParameters) == 40);
static_assert(offsetof(NdisReceiveScaleParameters, flag) == 4);
static_assert(offsetof(NdisReceiveScaleParameters, base_cpu_number) == 6);
static_assert(offsetof(NdisReceiveScaleParameters, hashinfo) == 8);
static_assert(offsetof(NdisReceiveScaleParameters, indirect_tabsize) == 12);
static_assert(offsetof(NdisReceiveScaleParameters, indirect_taboffset) == 16);
static_assert(offsetof(NdisReceiveScaleParameters, hashkey_size) == 20);
static_assert(offsetof(NdisReceiveScaleParameters, hashkey_offset) == 24);
static_assert(offsetof(NdisReceiveScaleParameters, processor_masks_offset) == 28);
static_assert(offsetof(NdisReceiveScaleParameters, num_processor_masks) == 32);
static_assert(offsetof(NdisReceiveScaleParameters, processor_masks_entry_size) == 36);
inline constexpr uint16_t kNdisRssParamsSizeRev1 = 28;
inline constexpr uint16_t kNdisRssParamsSizeRev2 = 40;
// Receive indirection table entries: Linux sends 128 (ITAB_NUM), the NDIS maximum; 16 is the
// smallest a VMQ may use (spec 8.5).
inline constexpr uint32_t kRssIndirectionTableMaxEntries = 128;
inline constexpr uint32_t kRssHashKeyMaxSize = 40;

// Parsed RSS parameters: the fixed part plus copies of the table and key (no spans: a host keeps
// these). `table_entries` / `key_size` are 0 when the object carries none (DISABLE_RSS or the
// matching *_UNCHANGED flag).
struct RssParameters {
  NdisReceiveScaleParameters fixed{};  // revision 1 objects: processor-mask fields zero
  uint32_t table_entries = 0;
  std::array<uint32_t, kRssIndirectionTableMaxEntries> table{};  // queue (channel) indexes
  uint32_t key_size = 0;
  std::array<uint8_t, kRssHashKeyMaxSize> key{};
  bool disabled() const { return (fixed.flag & kNdisRssParamFlagDisableRss) != 0; }
  friend bool operator==(const RssParameters&, const RssParameters&) = default;
};

// Host side: validates OID_GEN_RECEIVE_SCALE_PARAMETERS. Header type 0x89, revision >= 1,
// 28 <= size <= info.size(). Unless DISABLE_RSS is set: a table (unless ITABLE_UNCHANGED) of
// indirect_tabsize bytes, a multiple of 4, 1..128 entries, a power of two, inside `info`
// (overflow-safe); a key (unless HASH_KEY_UNCHANGED) of 1..40 bytes inside `info`. kMalformed
// naming the violation ("RSS indirection table 48 entries is not a power of two").
Expected<RssParameters> ParseRssParameters(std::span<const uint8_t> info);

// Encodes RSS parameters in Linux's layout (revision 2: 40-byte object, table at 40, key right
// after): 40 + 4 * table.size() + key.size() bytes. `table` may be empty (DISABLE_RSS); at most
// 128 entries; key at most 40 bytes.
Expected<size_t> EncodeRssParameters(std::span<uint8_t> out, uint16_t flag, uint32_t hashinfo,
                                     std::span<const uint32_t> table, std::span<const uint8_t> key);

// Writes an NDIS object (offload capabilities/parameters, RSS capabilities): the first
// obj.header.size bytes of `obj` (kInvalidArgument if the size is below 4 or beyond sizeof).
template <typename T>
requires std::is_trivially_copyable_v<T> && std::same_as<decltype(T::header), NdisObjectHeader>
    Expected<size_t> EncodeNdisObject(std::span<uint8_t> out, const T& obj) {
  const size_t size = obj.header.size;
  if (size < sizeof(NdisObjectHeader) || size > sizeof(T)) {
    return MakeError(ErrorCode::kInvalidArgument, "NDIS object size {} outside 4..{}", size,
                     sizeof(T));
  }
  if (out.size() < size) {
    return MakeError(ErrorCode::kInvalidArgument, "NDIS object needs {} bytes, buffer has {}", size,
                     out.size());
  }
  std::memcpy(out.data(), &obj, size);
  return size;
}

// OID_GEN_RNDIS_CONFIG_PARAMETER information block (spec 6.11); offsets from its start.
// Linux: struct rndis_config_parameter_info.
struct RndisConfigParameterInfo {
  uint32_t parameter_name_offset = 0;
  uint32_t parameter_name_length = 0;  // bytes (UTF-16LE, no NUL)
  uint32_t parameter_type = 0;         // kRndisConfigParamType*
  uint32_t parameter_value_offset = 0;
  uint32_t parameter_value_length = 0;  // bytes
  friend bool operator==(const RndisConfigParameterInfo&,
                         const RndisConfigParameterInfo&) = default;
};
static_assert(sizeof(RndisConfigParameterInfo) == 20);
static_assert(offsetof(RndisConfigParameterInfo, parameter_name_length) == 4);
static_assert(offsetof(RndisConfigParameterInfo, parameter_type) == 8);
static_assert(offsetof(RndisConfigParameterInfo, parameter_value_offset) == 12);
static_assert(offsetof(RndisConfigParameterInfo, parameter_value_length) == 16);
inline constexpr uint32_t kRndisConfigParamTypeInteger = 0;
inline constexpr uint32_t kRndisConfigParamTypeString = 2;

// A parsed config parameter: the fixed block and spans of the UTF-16LE name and the value.
struct RndisConfigParameter {
  RndisConfigParameterInfo fixed{};
  std::span<const uint8_t> name;   // UTF-16LE
  std::span<const uint8_t> value;  // UTF-16LE string or integer bytes
};

// Validates the block: >= 20 bytes, name and value inside `info` (overflow-safe), name length
// even. kMalformed naming the violation.
Expected<RndisConfigParameter> ParseRndisConfigParameter(std::span<const uint8_t> info);
// True if a UTF-16LE `name` equals ASCII `ascii`, ignoring ASCII case (NDIS keyword names are
// case-insensitive).
bool RndisConfigNameEquals(std::span<const uint8_t> name, std::string_view ascii);
// The MAC of a "NetworkAddress" string value: 12 hex digits (either case), UTF-16LE, optional
// separators '-' or ':' ignored. nullopt if it is not a MAC.
std::optional<std::array<uint8_t, 6>> ParseNetworkAddressValue(std::span<const uint8_t> value);
// Encodes the "NetworkAddress" block exactly as Linux does (spec 6.11): 72 bytes, name at 20,
// value (12 lowercase hex digits) at 48. Returns 72.
Expected<size_t> EncodeNetworkAddressParameter(std::span<uint8_t> out,
                                               const std::array<uint8_t, 6>& mac);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_RNDIS_H_
