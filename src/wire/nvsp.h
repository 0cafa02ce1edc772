// File: wire/nvsp.h
//
// What: NVSP, the network VSP protocol that netvsc (guest) and netvsp (host) speak inside VMBus
// packets on the synthetic NIC's channels: every message of spec 5.3/5.5 as a checked POD
// struct, the version words (5.2), status codes (5.4), message-size conventions (5.1), a
// validating parser for a received NVSP payload, one encoder for every struct and the small pure
// checks the two drivers apply to received values (9.5 N5-N11, N13-N17, N20; 9.7 P1, P6, P8,
// P9, P14).
//
//   private payload copy --ParseNvspMessage(payload, dir, carrier, version)--> NvspMessage
//   struct               --EncodeNvsp(out, msg, padded_size)----------------> bytes in `out`
//
// An NVSP message is the payload of an in-band (6), transfer-page (7), GPA-direct (9) or
// completion (11) packet (spec 5 intro). Which types may arrive depends on the direction and on
// the carrying packet type (e.g. INIT_COMPLETE only in a host->guest completion, SEND_RNDIS_PKT
// in a guest in-band or GPA-direct packet or in a host transfer-page packet), so the parser takes
// both and rejects everything else. Like wire/channel_messages.h, nothing here touches shared
// memory: ring/ hands over the private copy of a packet (spec 9.1 G1), wire/ring_format.h splits
// off the packet header, and the payload lands here.
//
// Lengths (spec 5.1, 10.2 N-a): receivers accept any payload at least as long as the type's
// layout; bytes beyond it are ignored. Senders pad: Linux and DPDK always send 40 bytes (8 for
// receive completions); Windows and OpenVMM hosts send 28 bytes below NVSP 6.1 and 40 from 6.1.
// EncodeNvsp() takes the padded size so each driver chooses its convention.
//
// All fields are little-endian (spec 0); uvmbus targets little-endian hosts (ring_format.h
// asserts it).
//
// Spec: vmbus-protocol.md 5.1-5.9, 9.5 (N1-N22, the parsing rules), 9.7 (P1, P6, P8, P9, P14),
//       10.2 N-a, N-b, N-c, N-e, N-k, N-l, N-o.
// Linux: drivers/net/hyperv/hyperv_net.h (struct nvsp_message and its unions, NVSP_* constants),
//        drivers/net/hyperv/netvsc.c (netvsc_receive, netvsc_send_table, netvsc_init_buf,
//        netvsc_connect_vsp), drivers/net/hyperv/rndis_filter.c (rndis_set_subchannel).
// OpenVMM: vm/devices/net/netvsp/src/protocol.rs, src/lib.rs.
// Thread-safety: value types and pure functions over caller-owned buffers; any thread.
#ifndef UVMBUS_WIRE_NVSP_H_
#define UVMBUS_WIRE_NVSP_H_

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>

#include "common/error.h"
#include "wire/channel_messages.h"  // Direction
#include "wire/ring_format.h"       // PacketType, TransferPagePacket
#include "wire/rndis.h"             // NdisObjectHeader

namespace uvmbus::wire {

// ---------------------------------------------------------------------------------------------
// Versions (spec 5.2) and NDIS versions sent in SEND_NDIS_VER (5.7 step 3.1.3)
// ---------------------------------------------------------------------------------------------

// "Not negotiated yet": pass to ParseNvspMessage() before INIT has completed.
inline constexpr uint32_t kNvspVersionNone = 0;
inline constexpr uint32_t kNvspVersion1 = 0x00000002;   // "0.2"
inline constexpr uint32_t kNvspVersion2 = 0x00030002;   // "3.2": NDIS config, jumbo MTU
inline constexpr uint32_t kNvspVersion4 = 0x00040000;   // VF association, switch data path
inline constexpr uint32_t kNvspVersion5 = 0x00050000;   // OID query-ex, sub-channels, send table
inline constexpr uint32_t kNvspVersion6 = 0x00060000;   // PD messages defined
inline constexpr uint32_t kNvspVersion61 = 0x00060001;  // PD handled, 40-byte messages, RSC
inline constexpr uint32_t kNvspVersionInvalid = 0xFFFFFFFF;

// The versions in the order a guest tries them (Linux netvsc_connect_vsp, DPDK; spec 5.2). A
// host accepts exactly these values.
inline constexpr std::array<uint32_t, 6> kNvspVersionsNewestFirst = {
    kNvspVersion61, kNvspVersion6, kNvspVersion5, kNvspVersion4, kNvspVersion2, kNvspVersion1};

// True if `version` is one of the six NVSP versions (what an OpenVMM-style host accepts).
constexpr bool IsKnownNvspVersion(uint32_t version) {
  for (uint32_t v : kNvspVersionsNewestFirst) {
    if (v == version) return true;
  }
  return false;
}

// INIT_COMPLETE.negotiated_protocol_ver as OpenVMM fills it (deprecated; guests ignore it,
// spec 10.2 N-c): 2 for version 1, else 0xFFFFFFFF.
constexpr uint32_t NvspDeprecatedNegotiatedVersion(uint32_t version) {
  return version == kNvspVersion1 ? kNvspVersion1 : kNvspVersionInvalid;
}

// INIT_COMPLETE.max_mdl_chain_len a host reports (OpenVMM).
inline constexpr uint32_t kNvspMaxMdlChainLength = 34;

// NDIS versions a guest announces: 6.1 for NVSP <= 4, 6.30 from NVSP 5 (spec 5.7, 10.2 N-f).
inline constexpr uint32_t kNdisVersion6_1 = 0x00060001;
inline constexpr uint32_t kNdisVersion6_30 = 0x0006001E;
constexpr uint32_t NdisVersionForNvsp(uint32_t nvsp_version) {
  return nvsp_version >= kNvspVersion5 ? kNdisVersion6_30 : kNdisVersion6_1;
}

// ---------------------------------------------------------------------------------------------
// Message sizes (spec 5.1, 10.2 N-a, N-o)
// ---------------------------------------------------------------------------------------------

// Every NVSP message begins with a u32 msg_type.
inline constexpr size_t kNvspHeaderSize = 4;
// Linux/DPDK: sizeof(struct nvsp_message) = 4-byte header + 36-byte union; every message Linux
// sends is this long (zero-filled) whatever the version.
inline constexpr size_t kNvspLinuxMessageSize = 40;
// Windows/OpenVMM: message size below NVSP 6.1 (header + the v1 receive-buffer completion).
inline constexpr size_t kNvspLegacyMessageSize = 28;
// Windows/OpenVMM: message size from NVSP 6.1.
inline constexpr size_t kNvspMessageSize61 = 40;
// Receive completions (type 108) are exactly 8 bytes (Linux, DPDK; spec 10.2 N-o).
inline constexpr size_t kNvspReceiveCompletionSize = 8;

// Size a Windows-compatible host pads its messages to at `version` (28 below 6.1, 40 from
// 6.1). 40 is always safe towards Linux/DPDK guests (spec 10.2 N-a).
constexpr size_t NvspHostMessageSize(uint32_t version) {
  return version >= kNvspVersion61 ? kNvspMessageSize61 : kNvspLegacyMessageSize;
}

// ---------------------------------------------------------------------------------------------
// Message types (spec 5.3) and status codes (5.4)
// ---------------------------------------------------------------------------------------------

enum class NvspMessageType : uint32_t {
  kNone = 0,
  kInit = 1,
  kInitComplete = 2,
  kSendNdisVersion = 100,
  kSendReceiveBuffer = 101,
  kSendReceiveBufferComplete = 102,
  kRevokeReceiveBuffer = 103,
  kSendSendBuffer = 104,
  kSendSendBufferComplete = 105,
  kRevokeSendBuffer = 106,
  kSendRndisPacket = 107,
  kSendRndisPacketComplete = 108,
  kSendChimneyDelegatedBuffer = 109,  // 109-124, 126, 127, 130: obsolete (TCP chimney, VMQ)
  kSendChimneyDelegatedBufferComplete = 110,
  kRevokeChimneyDelegatedBuffer = 111,
  kResumeChimneyRxIndication = 112,
  kTerminateChimney = 113,
  kTerminateChimneyComplete = 114,
  kIndicateChimneyEvent = 115,
  kSendChimneyPacket = 116,
  kSendChimneyPacketComplete = 117,
  kPostChimneyReceiveRequest = 118,
  kPostChimneyReceiveRequestComplete = 119,
  kAllocReceiveBuffer = 120,
  kAllocReceiveBufferComplete = 121,
  kFreeReceiveBuffer = 122,
  kSendVmqRndisPacket = 123,
  kSendVmqRndisPacketComplete = 124,
  kSendNdisConfig = 125,
  kAllocChimneyHandle = 126,
  kAllocChimneyHandleComplete = 127,
  kSendVfAssociation = 128,
  kSwitchDataPath = 129,
  kUplinkConnectStateDeprecated = 130,
  kOidQueryEx = 131,
  kOidQueryExComplete = 132,
  kSubchannel = 133,  // request (guest, in-band) and completion (host, COMP) share the number
  kSendIndirectionTable = 134,
  kPdApi = 135,
  kPdPostBatch = 136,
};

// Linux name of a type ("INIT", "MSG1_SEND_RNDIS_PKT", ...) or "UNKNOWN".
std::string_view NvspMessageName(NvspMessageType type);
// Lowest NVSP version that defines `type` (spec 5.3 "Version" column): 0 for NONE/INIT/
// INIT_COMPLETE, kNvspVersion1 for 100-108, ... kNvspVersion6 for 135-136; kNvspVersionInvalid
// for numbers that are not NVSP types.
uint32_t NvspMessageMinVersion(NvspMessageType type);

// NVSP_STAT_* (spec 5.4). Fields hold the raw value: a peer may send anything.
enum class NvspStatus : uint32_t {
  kNone = 0,
  kSuccess = 1,
  kFail = 2,
  kProtocolTooNew = 3,
  kProtocolTooOld = 4,
  kInvalidRndisPacket = 5,
  kBusy = 6,
  kProtocolUnsupported = 7,
};
// "SUCCESS", "FAIL", ... or "UNKNOWN".
std::string_view NvspStatusName(NvspStatus status);

// ---------------------------------------------------------------------------------------------
// Field values (spec 5.5-5.9)
// ---------------------------------------------------------------------------------------------

// Receive buffer id Linux registers (NETVSC_RECEIVE_BUFFER_ID) and the xfer_pageset_id of every
// host transfer-page packet (spec 5.6, 9.5 N15).
inline constexpr uint16_t kNetvscReceiveBufferId = 0xCAFE;
// Send buffer id: Linux 0, DPDK 0xFACE; a host accepts any (spec 10.2 N-e).
inline constexpr uint16_t kNetvscSendBufferId = 0;
inline constexpr uint16_t kDpdkSendBufferId = 0xFACE;

// SEND_RNDIS_PKT.channel_type: RMC_DATA / RMC_CONTROL.
inline constexpr uint32_t kNvspRndisChannelData = 0;
inline constexpr uint32_t kNvspRndisChannelControl = 1;
// SEND_RNDIS_PKT.send_buf_section_index when the send buffer is not used.
inline constexpr uint32_t kNvspNoSendSection = 0xFFFFFFFF;

// SEND_NDIS_CONFIG.capability bits.
inline constexpr uint64_t kNdisConfigCapVmq = 1ull << 0;
inline constexpr uint64_t kNdisConfigCapChimney = 1ull << 1;
inline constexpr uint64_t kNdisConfigCapSriov = 1ull << 2;
inline constexpr uint64_t kNdisConfigCapIeee8021q = 1ull << 3;
inline constexpr uint64_t kNdisConfigCapCorrelationId = 1ull << 4;
inline constexpr uint64_t kNdisConfigCapTeaming = 1ull << 5;
inline constexpr uint64_t kNdisConfigCapVirtualSubnetId = 1ull << 6;
inline constexpr uint64_t kNdisConfigCapRsc = 1ull << 7;
// MTU range a host honours in SEND_NDIS_CONFIG (frame size incl. the 14-byte Ethernet header);
// anything else is replaced by the default (spec 5.7, 9.7 P6).
inline constexpr uint32_t kNdisConfigMtuMin = 1514;
inline constexpr uint32_t kNdisConfigMtuMax = 9216;
inline constexpr uint32_t kNdisConfigMtuDefault = 1514;
// The MTU a host uses for a guest's SEND_NDIS_CONFIG.mtu (P6).
constexpr uint32_t EffectiveNdisConfigMtu(uint32_t mtu) {
  return mtu < kNdisConfigMtuMin || mtu > kNdisConfigMtuMax ? kNdisConfigMtuDefault : mtu;
}

// SUBCHANNEL.op.
inline constexpr uint32_t kNvspSubchannelOpNone = 0;
inline constexpr uint32_t kNvspSubchannelOpAllocate = 1;

// SWITCH_DATA_PATH.active_datapath.
inline constexpr uint32_t kNvspDataPathSynthetic = 0;
inline constexpr uint32_t kNvspDataPathVf = 1;

// PD_API.op values (spec 5.5).
inline constexpr uint32_t kNvspPdOpConfig = 1;
inline constexpr uint32_t kNvspPdOpSwDatapath = 2;
inline constexpr uint32_t kNvspPdOpOpenProvider = 3;
inline constexpr uint32_t kNvspPdOpCloseProvider = 4;
inline constexpr uint32_t kNvspPdOpCreateQueue = 5;
inline constexpr uint32_t kNvspPdOpFlushQueue = 6;
inline constexpr uint32_t kNvspPdOpFreeQueue = 7;
inline constexpr uint32_t kNvspPdOpAllocComBuffer = 8;
inline constexpr uint32_t kNvspPdOpFreeComBuffer = 9;
// PD_POST_BATCH.flags bits.
inline constexpr uint16_t kNvspPdBatchGuestToHost = 0x1;
inline constexpr uint16_t kNvspPdBatchIsReceive = 0x2;

// ---------------------------------------------------------------------------------------------
// Limits (spec 5.6, 5.7, 5.8, 8.5)
// ---------------------------------------------------------------------------------------------

// Most ranges in one host transfer-page packet (NVSP_MAX_PACKETS_PER_RECEIVE), and with RSC
// over VMBus (NVSP_RSC_MAX); Linux refuses bigger packets.
inline constexpr uint32_t kNvspMaxPacketsPerReceive = 375;
inline constexpr uint32_t kNvspRscMaxPacketsPerReceive = 562;
// Entries in the send indirection table (VRSS_SEND_TAB_SIZE); Linux accepts no other count.
inline constexpr uint32_t kNvspSendIndirectionTableSize = 16;
// Where a new host places the send table: right after a full 40-byte NVSP message (spec 5.5,
// 10.2 N-b); the message is then 40 + 16 * 4 = 104 bytes.
inline constexpr uint32_t kNvspSendIndirectionTableOffset = 40;
inline constexpr size_t kNvspSendIndirectionTableMessageSize =
    kNvspSendIndirectionTableOffset + kNvspSendIndirectionTableSize * 4;
// Most channels per vNIC (VRSS_CHANNEL_MAX), Linux's default request (VRSS_CHANNEL_DEFAULT).
inline constexpr uint32_t kVrssChannelMax = 64;
inline constexpr uint32_t kVrssChannelDefault = 8;
// Smallest receive sub-allocation / send section Linux accepts (spec 9.5 N8, N9).
inline constexpr uint32_t kNetvscMinSectionSize = 68;
// Linux/Hyper-V defaults (spec 5.6).
inline constexpr uint32_t kNetvscSendSectionSize = 6144;
inline constexpr uint32_t kNetvscReceiveSectionSize = 1728;
// Entries a PD_POST_BATCH can carry inside a 40-byte message (the parser's bound).
inline constexpr uint32_t kNvspPdPostBatchMaxEntries = 4;

// ---------------------------------------------------------------------------------------------
// Message structs (spec 5.5). Each has:
//   kType     - its type number;
//   kWireSize - its size on the wire without padding (== sizeof);
//   msg_type  - pre-set to kType.
// Offsets are from the start of the NVSP message (msg_type at 0). Reserved fields are zero on
// send and ignored on receive. Each struct names its Linux (hyperv_net.h) counterpart.
// ---------------------------------------------------------------------------------------------

// NONE-payload completion: a COMP packet with an empty payload. Not a wire struct: the parser
// returns it for an empty completion, which only a SWITCH_DATA_PATH request (guest side, 9.5
// N1, 10.2 N-k) or a VF_ASSOCIATION notification (host side, 10.2 N-l) may legitimately get.
struct NvspEmptyCompletion {
  friend bool operator==(const NvspEmptyCompletion&, const NvspEmptyCompletion&) = default;
};

// INIT (1), guest->host. Linux: struct nvsp_message_init.
struct NvspInit {
  static constexpr NvspMessageType kType = NvspMessageType::kInit;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t min_protocol_ver = 0;  // Linux puts the same version in both fields; hosts read this
  uint32_t max_protocol_ver = 0;
  friend bool operator==(const NvspInit&, const NvspInit&) = default;
};
static_assert(sizeof(NvspInit) == NvspInit::kWireSize);
static_assert(offsetof(NvspInit, msg_type) == 0);
static_assert(offsetof(NvspInit, min_protocol_ver) == 4);
static_assert(offsetof(NvspInit, max_protocol_ver) == 8);

// INIT_COMPLETE (2), host->guest completion. Linux: struct nvsp_message_init_complete.
struct NvspInitComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kInitComplete;
  static constexpr size_t kWireSize = 16;
  NvspMessageType msg_type = kType;
  uint32_t negotiated_protocol_ver = 0;  // deprecated; guests ignore it (10.2 N-c)
  uint32_t max_mdl_chain_len = 0;
  NvspStatus status = NvspStatus::kNone;  // SUCCESS = this version accepted (N5)
  friend bool operator==(const NvspInitComplete&, const NvspInitComplete&) = default;
};
static_assert(sizeof(NvspInitComplete) == NvspInitComplete::kWireSize);
static_assert(offsetof(NvspInitComplete, negotiated_protocol_ver) == 4);
static_assert(offsetof(NvspInitComplete, max_mdl_chain_len) == 8);
static_assert(offsetof(NvspInitComplete, status) == 12);

// SEND_NDIS_VER (100), guest->host, no completion. Linux: struct nvsp_1_message_send_ndis_version.
struct NvspSendNdisVersion {
  static constexpr NvspMessageType kType = NvspMessageType::kSendNdisVersion;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t ndis_major_ver = 0;
  uint32_t ndis_minor_ver = 0;
  friend bool operator==(const NvspSendNdisVersion&, const NvspSendNdisVersion&) = default;
};
static_assert(sizeof(NvspSendNdisVersion) == NvspSendNdisVersion::kWireSize);
static_assert(offsetof(NvspSendNdisVersion, ndis_major_ver) == 4);
static_assert(offsetof(NvspSendNdisVersion, ndis_minor_ver) == 8);

// SEND_RECV_BUF (101), guest->host, completion requested. Linux:
// struct nvsp_1_message_send_receive_buffer.
struct NvspSendReceiveBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kSendReceiveBuffer;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t gpadl_handle = 0;  // GPADL of the receive buffer, on the primary channel
  uint16_t id = kNetvscReceiveBufferId;
  uint16_t reserved = 0;
  friend bool operator==(const NvspSendReceiveBuffer&, const NvspSendReceiveBuffer&) = default;
};
static_assert(sizeof(NvspSendReceiveBuffer) == NvspSendReceiveBuffer::kWireSize);
static_assert(offsetof(NvspSendReceiveBuffer, gpadl_handle) == 4);
static_assert(offsetof(NvspSendReceiveBuffer, id) == 8);
static_assert(offsetof(NvspSendReceiveBuffer, reserved) == 10);

// One receive-buffer section as the host reports it. Linux: struct nvsp_1_receive_buffer_section.
struct NvspReceiveBufferSection {
  uint32_t offset = 0;          // must be 0 (N7)
  uint32_t sub_alloc_size = 0;  // bytes per sub-allocation (host-chosen; >= 68, N8)
  uint32_t num_sub_allocs = 0;
  uint32_t end_offset = 0;  // sub_alloc_size * num_sub_allocs (OpenVMM)
  friend bool operator==(const NvspReceiveBufferSection&,
                         const NvspReceiveBufferSection&) = default;
};
static_assert(sizeof(NvspReceiveBufferSection) == 16);
static_assert(offsetof(NvspReceiveBufferSection, offset) == 0);
static_assert(offsetof(NvspReceiveBufferSection, sub_alloc_size) == 4);
static_assert(offsetof(NvspReceiveBufferSection, num_sub_allocs) == 8);
static_assert(offsetof(NvspReceiveBufferSection, end_offset) == 12);

// SEND_RECV_BUF_COMPLETE (102), host->guest completion. Linux:
// struct nvsp_1_message_send_receive_buffer_complete. The wire format has room for
// `num_sections` sections but no host has sent more than one; the parser copies section[0] and
// leaves num_sections raw (a guest rejects num_sections != 1, N7), which bounds the count.
struct NvspSendReceiveBufferComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kSendReceiveBufferComplete;
  static constexpr size_t kWireSize = 28;
  NvspMessageType msg_type = kType;
  NvspStatus status = NvspStatus::kNone;
  uint32_t num_sections = 0;
  NvspReceiveBufferSection section{};
  friend bool operator==(const NvspSendReceiveBufferComplete&,
                         const NvspSendReceiveBufferComplete&) = default;
};
static_assert(sizeof(NvspSendReceiveBufferComplete) == NvspSendReceiveBufferComplete::kWireSize);
static_assert(offsetof(NvspSendReceiveBufferComplete, status) == 4);
static_assert(offsetof(NvspSendReceiveBufferComplete, num_sections) == 8);
static_assert(offsetof(NvspSendReceiveBufferComplete, section) == 12);
static_assert(offsetof(NvspSendReceiveBufferComplete, section) +
                  offsetof(NvspReceiveBufferSection, sub_alloc_size) ==
              16);
static_assert(offsetof(NvspSendReceiveBufferComplete, section) +
                  offsetof(NvspReceiveBufferSection, num_sub_allocs) ==
              20);
static_assert(offsetof(NvspSendReceiveBufferComplete, section) +
                  offsetof(NvspReceiveBufferSection, end_offset) ==
              24);

// REVOKE_RECV_BUF (103), guest->host, no completion. Linux: struct
// nvsp_1_message_revoke_receive_buffer.
struct NvspRevokeReceiveBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kRevokeReceiveBuffer;
  static constexpr size_t kWireSize = 8;
  NvspMessageType msg_type = kType;
  uint16_t id = kNetvscReceiveBufferId;
  uint16_t reserved = 0;
  friend bool operator==(const NvspRevokeReceiveBuffer&, const NvspRevokeReceiveBuffer&) = default;
};
static_assert(sizeof(NvspRevokeReceiveBuffer) == NvspRevokeReceiveBuffer::kWireSize);
static_assert(offsetof(NvspRevokeReceiveBuffer, id) == 4);

// SEND_SEND_BUF (104), guest->host, completion requested. Linux:
// struct nvsp_1_message_send_send_buffer.
struct NvspSendSendBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kSendSendBuffer;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t gpadl_handle = 0;
  uint16_t id = kNetvscSendBufferId;
  uint16_t reserved = 0;
  friend bool operator==(const NvspSendSendBuffer&, const NvspSendSendBuffer&) = default;
};
static_assert(sizeof(NvspSendSendBuffer) == NvspSendSendBuffer::kWireSize);
static_assert(offsetof(NvspSendSendBuffer, gpadl_handle) == 4);
static_assert(offsetof(NvspSendSendBuffer, id) == 8);
static_assert(offsetof(NvspSendSendBuffer, reserved) == 10);

// SEND_SEND_BUF_COMPLETE (105), host->guest completion. Linux:
// struct nvsp_1_message_send_send_buffer_complete.
struct NvspSendSendBufferComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kSendSendBufferComplete;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  NvspStatus status = NvspStatus::kNone;
  uint32_t section_size = 0;  // host-chosen (6144); >= 68 (N9)
  friend bool operator==(const NvspSendSendBufferComplete&,
                         const NvspSendSendBufferComplete&) = default;
};
static_assert(sizeof(NvspSendSendBufferComplete) == NvspSendSendBufferComplete::kWireSize);
static_assert(offsetof(NvspSendSendBufferComplete, status) == 4);
static_assert(offsetof(NvspSendSendBufferComplete, section_size) == 8);

// REVOKE_SEND_BUF (106), guest->host, no completion. Linux: nvsp_1_message_revoke_send_buffer.
struct NvspRevokeSendBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kRevokeSendBuffer;
  static constexpr size_t kWireSize = 8;
  NvspMessageType msg_type = kType;
  uint16_t id = kNetvscSendBufferId;
  uint16_t reserved = 0;
  friend bool operator==(const NvspRevokeSendBuffer&, const NvspRevokeSendBuffer&) = default;
};
static_assert(sizeof(NvspRevokeSendBuffer) == NvspRevokeSendBuffer::kWireSize);
static_assert(offsetof(NvspRevokeSendBuffer, id) == 4);

// SEND_RNDIS_PKT (107), both ways: guest in-band / GPA-direct, host transfer pages; completion
// requested. Linux: struct nvsp_1_message_send_rndis_packet.
struct NvspSendRndisPacket {
  static constexpr NvspMessageType kType = NvspMessageType::kSendRndisPacket;
  static constexpr size_t kWireSize = 16;
  NvspMessageType msg_type = kType;
  uint32_t channel_type = kNvspRndisChannelData;         // 0 data, 1 control
  uint32_t send_buf_section_index = kNvspNoSendSection;  // 0xFFFFFFFF = no section
  uint32_t send_buf_section_size = 0;                    // bytes used in the section
  friend bool operator==(const NvspSendRndisPacket&, const NvspSendRndisPacket&) = default;
};
static_assert(sizeof(NvspSendRndisPacket) == NvspSendRndisPacket::kWireSize);
static_assert(offsetof(NvspSendRndisPacket, channel_type) == 4);
static_assert(offsetof(NvspSendRndisPacket, send_buf_section_index) == 8);
static_assert(offsetof(NvspSendRndisPacket, send_buf_section_size) == 12);

// SEND_RNDIS_PKT_COMPLETE (108), both ways as a completion. Linux:
// struct nvsp_1_message_send_rndis_packet_complete. Receive completions are exactly these 8
// bytes (kNvspReceiveCompletionSize).
struct NvspSendRndisPacketComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kSendRndisPacketComplete;
  static constexpr size_t kWireSize = 8;
  NvspMessageType msg_type = kType;
  NvspStatus status = NvspStatus::kNone;
  friend bool operator==(const NvspSendRndisPacketComplete&,
                         const NvspSendRndisPacketComplete&) = default;
};
static_assert(sizeof(NvspSendRndisPacketComplete) == NvspSendRndisPacketComplete::kWireSize);
static_assert(offsetof(NvspSendRndisPacketComplete, status) == 4);

// Obsolete v2 messages (spec 5.5 "Legacy v2 message layouts"): defined for completeness and
// never accepted by the parser. Linux: struct nvsp_2_alloc_rxbuf / _comp / nvsp_2_free_rxbuf.
struct NvspAllocReceiveBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kAllocReceiveBuffer;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t alloc_id = 0;
  uint32_t len = 0;
  friend bool operator==(const NvspAllocReceiveBuffer&, const NvspAllocReceiveBuffer&) = default;
};
static_assert(sizeof(NvspAllocReceiveBuffer) == NvspAllocReceiveBuffer::kWireSize);
static_assert(offsetof(NvspAllocReceiveBuffer, alloc_id) == 4);
static_assert(offsetof(NvspAllocReceiveBuffer, len) == 8);

struct NvspAllocReceiveBufferComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kAllocReceiveBufferComplete;
  static constexpr size_t kWireSize = 24;
  NvspMessageType msg_type = kType;
  NvspStatus status = NvspStatus::kNone;
  uint32_t alloc_id = 0;
  uint32_t gpadl_handle = 0;
  uint64_t recv_buf_id = 0;
  friend bool operator==(const NvspAllocReceiveBufferComplete&,
                         const NvspAllocReceiveBufferComplete&) = default;
};
static_assert(sizeof(NvspAllocReceiveBufferComplete) == NvspAllocReceiveBufferComplete::kWireSize);
static_assert(offsetof(NvspAllocReceiveBufferComplete, status) == 4);
static_assert(offsetof(NvspAllocReceiveBufferComplete, alloc_id) == 8);
static_assert(offsetof(NvspAllocReceiveBufferComplete, gpadl_handle) == 12);
static_assert(offsetof(NvspAllocReceiveBufferComplete, recv_buf_id) == 16);

// The u64 sits at offset 4 (Linux's union is packed), hence pack(1).
#pragma pack(push, 1)
struct NvspFreeReceiveBuffer {
  static constexpr NvspMessageType kType = NvspMessageType::kFreeReceiveBuffer;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint64_t recv_buf_id = 0;
  friend bool operator==(const NvspFreeReceiveBuffer&, const NvspFreeReceiveBuffer&) = default;
};
#pragma pack(pop)
static_assert(sizeof(NvspFreeReceiveBuffer) == NvspFreeReceiveBuffer::kWireSize);
static_assert(offsetof(NvspFreeReceiveBuffer, recv_buf_id) == 4);

// SEND_NDIS_CONFIG (125), guest->host (NVSP >= 2), no completion. Linux:
// struct nvsp_2_send_ndis_config. `capability` is a u64 at offset 12 (packed union), hence
// pack(1); copy the field out before taking its address.
#pragma pack(push, 1)
struct NvspSendNdisConfig {
  static constexpr NvspMessageType kType = NvspMessageType::kSendNdisConfig;
  static constexpr size_t kWireSize = 20;
  NvspMessageType msg_type = kType;
  uint32_t mtu = 0;  // frame size incl. the 14-byte Ethernet header (1514)
  uint32_t reserved = 0;
  uint64_t capability = 0;  // kNdisConfigCap*
  friend bool operator==(const NvspSendNdisConfig&, const NvspSendNdisConfig&) = default;
};
#pragma pack(pop)
static_assert(sizeof(NvspSendNdisConfig) == NvspSendNdisConfig::kWireSize);
static_assert(offsetof(NvspSendNdisConfig, mtu) == 4);
static_assert(offsetof(NvspSendNdisConfig, reserved) == 8);
static_assert(offsetof(NvspSendNdisConfig, capability) == 12);

// SEND_VF_ASSOCIATION (128), host->guest in-band (NVSP >= 4). Linux:
// struct nvsp_4_send_vf_association.
struct NvspSendVfAssociation {
  static constexpr NvspMessageType kType = NvspMessageType::kSendVfAssociation;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t allocated = 0;  // 1 = a VF is available and `serial` is valid
  uint32_t serial = 0;     // VF serial = PCI slot name of the pass-through NIC
  friend bool operator==(const NvspSendVfAssociation&, const NvspSendVfAssociation&) = default;
};
static_assert(sizeof(NvspSendVfAssociation) == NvspSendVfAssociation::kWireSize);
static_assert(offsetof(NvspSendVfAssociation, allocated) == 4);
static_assert(offsetof(NvspSendVfAssociation, serial) == 8);

// SWITCH_DATA_PATH (129), guest->host in-band (also host->guest in OpenVMM for a forced switch
// back; NVSP >= 4). Linux: struct nvsp_4_sw_datapath.
struct NvspSwitchDataPath {
  static constexpr NvspMessageType kType = NvspMessageType::kSwitchDataPath;
  static constexpr size_t kWireSize = 8;
  NvspMessageType msg_type = kType;
  uint32_t active_datapath = kNvspDataPathSynthetic;  // 0 synthetic, 1 VF
  friend bool operator==(const NvspSwitchDataPath&, const NvspSwitchDataPath&) = default;
};
static_assert(sizeof(NvspSwitchDataPath) == NvspSwitchDataPath::kWireSize);
static_assert(offsetof(NvspSwitchDataPath, active_datapath) == 4);

// OID_QUERY_EX (131), guest->host (NVSP >= 5). Linux: struct nvsp_5_oid_query_ex.
struct NvspOidQueryEx {
  static constexpr NvspMessageType kType = NvspMessageType::kOidQueryEx;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  NdisObjectHeader header{};
  uint32_t oid = 0;
  friend bool operator==(const NvspOidQueryEx&, const NvspOidQueryEx&) = default;
};
static_assert(sizeof(NvspOidQueryEx) == NvspOidQueryEx::kWireSize);
static_assert(offsetof(NvspOidQueryEx, header) == 4);
static_assert(offsetof(NvspOidQueryEx, oid) == 8);

// OID_QUERY_EX_COMP (132), host->guest completion. Linux: struct nvsp_5_oid_query_ex_comp.
struct NvspOidQueryExComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kOidQueryExComplete;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t status = 0;
  uint32_t bytes = 0;
  friend bool operator==(const NvspOidQueryExComplete&, const NvspOidQueryExComplete&) = default;
};
static_assert(sizeof(NvspOidQueryExComplete) == NvspOidQueryExComplete::kWireSize);
static_assert(offsetof(NvspOidQueryExComplete, status) == 4);
static_assert(offsetof(NvspOidQueryExComplete, bytes) == 8);

// SUBCHANNEL (133) request, guest->host in-band, completion requested (NVSP >= 5). Linux:
// struct nvsp_5_subchannel_request.
struct NvspSubchannelRequest {
  static constexpr NvspMessageType kType = NvspMessageType::kSubchannel;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t op = kNvspSubchannelOpAllocate;
  uint32_t num_subchannels = 0;  // requested
  friend bool operator==(const NvspSubchannelRequest&, const NvspSubchannelRequest&) = default;
};
static_assert(sizeof(NvspSubchannelRequest) == NvspSubchannelRequest::kWireSize);
static_assert(offsetof(NvspSubchannelRequest, op) == 4);
static_assert(offsetof(NvspSubchannelRequest, num_subchannels) == 8);

// SUBCHANNEL (133) completion, host->guest COMP. Linux: struct nvsp_5_subchannel_complete.
struct NvspSubchannelComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kSubchannel;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  NvspStatus status = NvspStatus::kNone;
  uint32_t num_subchannels = 0;  // granted (<= requested, N11)
  friend bool operator==(const NvspSubchannelComplete&, const NvspSubchannelComplete&) = default;
};
static_assert(sizeof(NvspSubchannelComplete) == NvspSubchannelComplete::kWireSize);
static_assert(offsetof(NvspSubchannelComplete, status) == 4);
static_assert(offsetof(NvspSubchannelComplete, num_subchannels) == 8);

// SEND_INDIRECTION_TABLE (134) fixed part, host->guest in-band (NVSP >= 5). Linux:
// struct nvsp_5_send_indirect_table. The table of `count` u32 channel indexes sits at `offset`
// bytes from the start of the NVSP message (spec 5.5 "Send indirection table placement").
struct NvspSendIndirectionTableHeader {
  static constexpr NvspMessageType kType = NvspMessageType::kSendIndirectionTable;
  static constexpr size_t kWireSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t count = kNvspSendIndirectionTableSize;
  uint32_t offset = kNvspSendIndirectionTableOffset;
  friend bool operator==(const NvspSendIndirectionTableHeader&,
                         const NvspSendIndirectionTableHeader&) = default;
};
static_assert(sizeof(NvspSendIndirectionTableHeader) == NvspSendIndirectionTableHeader::kWireSize);
static_assert(offsetof(NvspSendIndirectionTableHeader, count) == 4);
static_assert(offsetof(NvspSendIndirectionTableHeader, offset) == 8);

// A parsed SEND_INDIRECTION_TABLE: the fixed part as received and the 16 entries read from
// where Linux reads them (see ParseNvspMessage). Not a wire struct; encode with
// EncodeNvspSendIndirectionTable().
struct NvspSendIndirectionTable {
  static constexpr NvspMessageType kType = NvspMessageType::kSendIndirectionTable;
  NvspSendIndirectionTableHeader fixed{};
  uint32_t table_offset = 0;  // where the entries were actually read (40 for old hosts, N-b)
  std::array<uint32_t, kNvspSendIndirectionTableSize> table{};  // channel index per entry
  friend bool operator==(const NvspSendIndirectionTable&,
                         const NvspSendIndirectionTable&) = default;
};

// PD_API (135) request, either direction in-band (NVSP >= 6). The op-specific union is kept
// raw: neither Linux nor OpenVMM handles PD messages. Linux: struct nvsp_6_pd_api_req.
struct NvspPdApiRequest {
  static constexpr NvspMessageType kType = NvspMessageType::kPdApi;
  static constexpr size_t kWireSize = 40;
  static constexpr size_t kMinSize = 8;
  NvspMessageType msg_type = kType;
  uint32_t op = 0;
  uint8_t data[32] = {};  // op-specific packed union (zero past the received bytes)
  friend bool operator==(const NvspPdApiRequest&, const NvspPdApiRequest&) = default;
};
static_assert(sizeof(NvspPdApiRequest) == NvspPdApiRequest::kWireSize);
static_assert(offsetof(NvspPdApiRequest, op) == 4);
static_assert(offsetof(NvspPdApiRequest, data) == 8);

// PD_API (135) completion (COMP payload), either direction. Linux: struct nvsp_6_pd_api_comp
// (the largest union member, which makes struct nvsp_message 40 bytes).
struct NvspPdApiComplete {
  static constexpr NvspMessageType kType = NvspMessageType::kPdApi;
  static constexpr size_t kWireSize = 40;
  static constexpr size_t kMinSize = 12;
  NvspMessageType msg_type = kType;
  uint32_t op = 0;
  uint32_t status = 0;  // NTSTATUS
  uint8_t data[28] = {};
  friend bool operator==(const NvspPdApiComplete&, const NvspPdApiComplete&) = default;
};
static_assert(sizeof(NvspPdApiComplete) == NvspPdApiComplete::kWireSize);
static_assert(offsetof(NvspPdApiComplete, op) == 4);
static_assert(offsetof(NvspPdApiComplete, status) == 8);
static_assert(offsetof(NvspPdApiComplete, data) == 12);

// One PD_POST_BATCH entry: {u32 region_offset; u16 region_id; u16 is_partial:1}.
struct NvspPdBuffer {
  uint32_t region_offset = 0;
  uint16_t region_id = 0;
  uint16_t flags = 0;  // bit 0 is_partial
  friend bool operator==(const NvspPdBuffer&, const NvspPdBuffer&) = default;
};
static_assert(sizeof(NvspPdBuffer) == 8);
static_assert(offsetof(NvspPdBuffer, region_id) == 4);
static_assert(offsetof(NvspPdBuffer, flags) == 6);

// PD_POST_BATCH (136), either direction in-band (NVSP >= 6), with at most
// kNvspPdPostBatchMaxEntries entries (what a 40-byte message holds; the parser's bound).
struct NvspPdPostBatch {
  static constexpr NvspMessageType kType = NvspMessageType::kPdPostBatch;
  static constexpr size_t kWireSize = 40;
  static constexpr size_t kMinSize = 8;
  NvspMessageType msg_type = kType;
  uint16_t count = 0;
  uint16_t flags = 0;  // kNvspPdBatch*
  NvspPdBuffer entries[kNvspPdPostBatchMaxEntries] = {};
  friend bool operator==(const NvspPdPostBatch&, const NvspPdPostBatch&) = default;
};
static_assert(sizeof(NvspPdPostBatch) == NvspPdPostBatch::kWireSize);
static_assert(offsetof(NvspPdPostBatch, count) == 4);
static_assert(offsetof(NvspPdPostBatch, flags) == 6);
static_assert(offsetof(NvspPdPostBatch, entries) == 8);

// No wire struct has implicit padding: encoding by memcpy never leaks indeterminate bytes.
template <typename... T>
inline constexpr bool kNvspPaddingFree = (std::has_unique_object_representations_v<T> && ...);
static_assert(
    kNvspPaddingFree<
        NvspInit, NvspInitComplete, NvspSendNdisVersion, NvspSendReceiveBuffer,
        NvspSendReceiveBufferComplete, NvspRevokeReceiveBuffer, NvspSendSendBuffer,
        NvspSendSendBufferComplete, NvspRevokeSendBuffer, NvspSendRndisPacket,
        NvspSendRndisPacketComplete, NvspAllocReceiveBuffer, NvspAllocReceiveBufferComplete,
        NvspFreeReceiveBuffer, NvspSendNdisConfig, NvspSendVfAssociation, NvspSwitchDataPath,
        NvspOidQueryEx, NvspOidQueryExComplete, NvspSubchannelRequest, NvspSubchannelComplete,
        NvspSendIndirectionTableHeader, NvspPdApiRequest, NvspPdApiComplete, NvspPdPostBatch>);

// ---------------------------------------------------------------------------------------------
// Parsing (spec 9.5, 9.7, 10.2)
// ---------------------------------------------------------------------------------------------

// One received NVSP message: a typed copy. SUBCHANNEL and PD_API have a request and a completion
// form, told apart by the carrying packet type.
using NvspMessage =
    std::variant<NvspEmptyCompletion, NvspInit, NvspInitComplete, NvspSendNdisVersion,
                 NvspSendReceiveBuffer, NvspSendReceiveBufferComplete, NvspRevokeReceiveBuffer,
                 NvspSendSendBuffer, NvspSendSendBufferComplete, NvspRevokeSendBuffer,
                 NvspSendRndisPacket, NvspSendRndisPacketComplete, NvspSendNdisConfig,
                 NvspSendVfAssociation, NvspSwitchDataPath, NvspOidQueryEx, NvspOidQueryExComplete,
                 NvspSubchannelRequest, NvspSubchannelComplete, NvspSendIndirectionTable,
                 NvspPdApiRequest, NvspPdApiComplete, NvspPdPostBatch>;

// Validates and decodes one NVSP payload. `payload` is the packet payload from the private
// packet copy ([offset8*8, len8*8), padding included); `dir` is the way it travelled (a guest
// passes kHostToGuest); `carrier` is the VMBus packet type that carried it (kDataInband,
// kDataUsingXferPages, kDataUsingGpaDirect or kComp); `negotiated_version` is the NVSP version
// in force (kNvspVersionNone before INIT has completed).
//
// Checks, in order (every error is kMalformed unless noted; the message names the violation):
//   carrier not 6/7/9/11                 "NVSP carried in packet type 2 (add_xfer_pageset)"
//   empty COMP                           -> NvspEmptyCompletion (N1: the caller checks that the
//                                           trans_id names a request that completes this way)
//   payload < 4                          (N2, N13, N19) "NVSP payload 3 < 4-byte header"
//   type unknown                         (N4) "NVSP type 99 unknown"
//   type not carried this way            (N4, N13) "NVSP INIT (1) not accepted in a host-to-guest
//                                           completion"  (also obsolete types 109-127, 130)
//   guest->host, version negotiated and the type is newer   (P1; kProtocol)
//                                        "NVSP MSG5_SUBCHANNEL (133) needs version 0x50000,
//                                           negotiated 0x40000"
//   payload < the type's layout          (N3, N20, N21, 9.7 H2-style) "NVSP INIT_COMPLETE
//                                           payload 12 < 16"
//   SEND_INDIRECTION_TABLE (N20, 10.2 N-b): count != 16 "NVSP send table count 8 != 16";
//       for version <= 6.0 and payload >= 104 the table is read at 40 whatever `offset` says,
//       else `offset` must satisfy offset <= payload - 64 ("NVSP send table offset 60 + 64 >
//       payload 76").
//   PD_POST_BATCH: count > 4 or more entries than the payload holds.
// Bytes beyond a type's layout are ignored (senders pad to 28/40, spec 10.2 N-a).
Expected<NvspMessage> ParseNvspMessage(std::span<const uint8_t> payload, Direction dir,
                                       PacketType carrier, uint32_t negotiated_version);

// The type number of a parsed message (kNone for NvspEmptyCompletion).
NvspMessageType TypeOf(const NvspMessage& msg);

// 9.7 P1 as a separate check: kProtocol error if `type` is newer than `negotiated_version`
// (INIT and INIT_COMPLETE are always allowed).
Status CheckNvspMessageVersion(NvspMessageType type, uint32_t negotiated_version);

// A guest's view of one host transfer-page packet (the receive path, spec 5.6).
struct NvspReceivePacket {
  TransferPagePacket packet;    // descriptor, ranges, payload (spans into the caller's copy)
  NvspSendRndisPacket rndis{};  // the NVSP 107 carried by it
};

// Validates a host->guest transfer-page packet (the whole private packet copy) as netvsc does:
// wire::ParseTransferPagePacket() (N14 offset8*8 < 24, N16 ranges past the header: error text
// "transfer-page packet: bad_offset" / "...: range_past_header"), xfer_pageset_id == 0xCAFE
// (N15), more ranges than 375 (562 when `rsc`) ("transfer-page packet with 400 ranges > 375"),
// and an NVSP payload that is a SEND_RNDIS_PKT of at least 16 bytes (N13). Range *contents*
// are checked per range with CheckReceiveBufferRange() (N17: skip that range, complete FAIL).
Expected<NvspReceivePacket> ParseNvspReceivePacket(std::span<const uint8_t> packet, bool rsc);

// N17: the range {byte_offset, byte_count} must lie inside a receive buffer of
// `receive_buffer_size` bytes. kMalformed "receive range offset 5000 + count 100 > buffer 4096".
Status CheckReceiveBufferRange(const TransferPageRange& range, uint64_t receive_buffer_size);

// ---------------------------------------------------------------------------------------------
// Checks of received values (guest: 9.5 N6-N11; host: 9.7 P8, P9, P14)
// ---------------------------------------------------------------------------------------------

// What a guest keeps from a valid SEND_RECV_BUF_COMPLETE.
struct NvspReceiveBufferLayout {
  uint32_t sub_alloc_size = 0;
  uint32_t num_sub_allocs = 0;
};

// N6-N8: status SUCCESS (else kProtocol "receive buffer refused: status FAIL"), exactly one
// section at offset 0, sub_alloc_size >= 68 and sub_alloc_size * num_sub_allocs (64-bit) <=
// `buffer_size` (kMalformed naming the violation).
Expected<NvspReceiveBufferLayout> ValidateReceiveBufferComplete(
    const NvspSendReceiveBufferComplete& msg, uint64_t buffer_size);

// N9: status SUCCESS (kProtocol) and section_size >= 68 (kMalformed). Returns the number of
// sections, buffer_size / section_size (Linux send_section_cnt).
Expected<uint32_t> ValidateSendBufferComplete(const NvspSendSendBufferComplete& msg,
                                              uint64_t buffer_size);

// N10-N11: status SUCCESS (kProtocol) and num_subchannels <= `requested` (kMalformed). Returns
// the number granted.
Expected<uint32_t> ValidateSubchannelComplete(const NvspSubchannelComplete& msg,
                                              uint32_t requested);

// P14 (OpenVMM): op == ALLOCATE and 0 < num_subchannels < `max_queues`; otherwise the host
// answers FAIL with 0 sub-channels. kProtocol error naming the violation.
Status CheckSubchannelRequest(const NvspSubchannelRequest& msg, uint32_t max_queues);

// Where a SEND_RNDIS_PKT's data sits in the send buffer.
struct NvspSendSection {
  bool used = false;    // false: send_buf_section_index == 0xFFFFFFFF (data via GPA ranges)
  uint64_t offset = 0;  // byte offset in the send buffer (index * section_size)
  uint32_t length = 0;  // send_buf_section_size
  friend bool operator==(const NvspSendSection&, const NvspSendSection&) = default;
};

// P8-P9: resolves the section a guest used. `send_buffer_size` is 0 when no send buffer was
// registered. Errors (kMalformed): a section index without a send buffer (P8); index *
// section_size + send_buf_section_size beyond the send buffer (P9). `section_size` must be > 0
// when a send buffer exists (kInvalidArgument otherwise).
Expected<NvspSendSection> ResolveSendSection(const NvspSendRndisPacket& msg, uint32_t section_size,
                                             uint64_t send_buffer_size);

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// A fixed-size NVSP wire struct (everything above except NvspEmptyCompletion and the parsed
// NvspSendIndirectionTable).
template <typename T>
concept NvspFixedMessage = requires {
  { T::kType } -> std::convertible_to<NvspMessageType>;
  { T::kWireSize } -> std::convertible_to<size_t>;
}
&&std::is_trivially_copyable_v<T> && (T::kWireSize == sizeof(T));

namespace nvsp_internal {
// Writes `wire_size` bytes of `bytes`, then zeros up to max(wire_size, padded_size).
Expected<size_t> EncodePadded(std::span<uint8_t> out, const void* bytes, size_t wire_size,
                              size_t padded_size);
}  // namespace nvsp_internal

// Encodes `msg` into `out`: its kWireSize bytes with msg_type forced to T::kType, zero-filled up
// to `padded_size` (kNvspLinuxMessageSize, NvspHostMessageSize(version), or
// kNvspReceiveCompletionSize; a smaller value means "no padding"). Returns the bytes written.
// kInvalidArgument if `out` is too small.
template <NvspFixedMessage T>
Expected<size_t> EncodeNvsp(std::span<uint8_t> out, const T& msg, size_t padded_size) {
  T copy = msg;
  copy.msg_type = T::kType;
  return nvsp_internal::EncodePadded(out, &copy, T::kWireSize, padded_size);
}

// Encodes SEND_INDIRECTION_TABLE the way every guest reads correctly (spec 10.2 N-b): fixed part
// {134, count 16, offset 40}, zeros up to 40, the 16 entries at 40: 104 bytes. Returns 104.
Expected<size_t> EncodeNvspSendIndirectionTable(
    std::span<uint8_t> out, std::span<const uint32_t, kNvspSendIndirectionTableSize> table);

// Encodes any parsed message back to bytes (NvspEmptyCompletion -> 0 bytes; the send table ->
// the 104-byte form). Used by tests and tools.
Expected<size_t> EncodeNvsp(std::span<uint8_t> out, const NvspMessage& msg, size_t padded_size);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_NVSP_H_
