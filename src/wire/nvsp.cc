// File: wire/nvsp.cc
//
// NVSP parsing, checks and encoding (spec 5, 9.5, 9.7). Peer-controlled lengths and counts are
// compared in 64-bit or in `len > limit - offset` form (spec 9.1 G3); the only loops are bounded
// by constants.
#include "wire/nvsp.h"

#include <algorithm>
#include <bit>

namespace uvmbus::wire {
namespace {

static_assert(std::endian::native == std::endian::little,
              "NVSP structs are memcpy'd: a big-endian host needs byte swapping");

// Which packet types may carry a message (bit per carrier).
enum Carrier : uint8_t {
  kCarrierNone = 0,
  kCarrierInband = 1u << 0,
  kCarrierXfer = 1u << 1,
  kCarrierGpa = 1u << 2,
  kCarrierComp = 1u << 3,
};

struct TypeInfo {
  NvspMessageType type;
  std::string_view name;
  uint32_t min_version;
  uint8_t host_to_guest;  // Carrier bits accepted when the host sent it
  uint8_t guest_to_host;  // Carrier bits accepted when the guest sent it
  uint8_t min_size;       // smallest payload (the layout; PD: the fixed part)
};

constexpr uint8_t kInOrGpa = kCarrierInband | kCarrierGpa;
constexpr uint8_t kInOrComp = kCarrierInband | kCarrierComp;

// Spec 5.3 (types, versions, directions, carriers) and 5.5 / 9.5 N3 (sizes). Types 1-2 sit at
// index 0-2 and types 100-136 at index 3-39, so lookup is O(1) (see FindType). Obsolete types
// (TCP chimney, VMQ, deprecated) are named but accepted on no carrier.
constexpr std::array<TypeInfo, 40> kTypes = {{
    {NvspMessageType::kNone, "NONE", 0, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kInit, "INIT", 0, kCarrierNone, kCarrierInband, 12},
    {NvspMessageType::kInitComplete, "INIT_COMPLETE", 0, kCarrierComp, kCarrierNone, 16},
    {NvspMessageType::kSendNdisVersion, "MSG1_SEND_NDIS_VER", kNvspVersion1, kCarrierNone,
     kCarrierInband, 12},
    {NvspMessageType::kSendReceiveBuffer, "MSG1_SEND_RECV_BUF", kNvspVersion1, kCarrierNone,
     kCarrierInband, 12},
    {NvspMessageType::kSendReceiveBufferComplete, "MSG1_SEND_RECV_BUF_COMPLETE", kNvspVersion1,
     kCarrierComp, kCarrierNone, 28},
    {NvspMessageType::kRevokeReceiveBuffer, "MSG1_REVOKE_RECV_BUF", kNvspVersion1, kCarrierNone,
     kCarrierInband, 8},
    {NvspMessageType::kSendSendBuffer, "MSG1_SEND_SEND_BUF", kNvspVersion1, kCarrierNone,
     kCarrierInband, 12},
    {NvspMessageType::kSendSendBufferComplete, "MSG1_SEND_SEND_BUF_COMPLETE", kNvspVersion1,
     kCarrierComp, kCarrierNone, 12},
    {NvspMessageType::kRevokeSendBuffer, "MSG1_REVOKE_SEND_BUF", kNvspVersion1, kCarrierNone,
     kCarrierInband, 8},
    // Host data arrives in transfer-page packets; guest data in-band (send buffer) or GPA-direct.
    {NvspMessageType::kSendRndisPacket, "MSG1_SEND_RNDIS_PKT", kNvspVersion1, kCarrierXfer,
     kInOrGpa, 16},
    {NvspMessageType::kSendRndisPacketComplete, "MSG1_SEND_RNDIS_PKT_COMPLETE", kNvspVersion1,
     kCarrierComp, kCarrierComp, 8},
    {NvspMessageType::kSendChimneyDelegatedBuffer, "MSG2_SEND_CHIMNEY_DELEGATED_BUF", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kSendChimneyDelegatedBufferComplete, "MSG2_SEND_CHIMNEY_DELEGATED_BUF_COMP",
     kNvspVersion2, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kRevokeChimneyDelegatedBuffer, "MSG2_REVOKE_CHIMNEY_DELEGATED_BUF",
     kNvspVersion2, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kResumeChimneyRxIndication, "MSG2_RESUME_CHIMNEY_RX_INDICATION",
     kNvspVersion2, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kTerminateChimney, "MSG2_TERMINATE_CHIMNEY", kNvspVersion2, kCarrierNone,
     kCarrierNone, 0},
    {NvspMessageType::kTerminateChimneyComplete, "MSG2_TERMINATE_CHIMNEY_COMP", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kIndicateChimneyEvent, "MSG2_INDICATE_CHIMNEY_EVENT", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kSendChimneyPacket, "MSG2_SEND_CHIMNEY_PKT", kNvspVersion2, kCarrierNone,
     kCarrierNone, 0},
    {NvspMessageType::kSendChimneyPacketComplete, "MSG2_SEND_CHIMNEY_PKT_COMP", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kPostChimneyReceiveRequest, "MSG2_POST_CHIMNEY_RECV_REQ", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kPostChimneyReceiveRequestComplete, "MSG2_POST_CHIMNEY_RECV_REQ_COMP",
     kNvspVersion2, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kAllocReceiveBuffer, "MSG2_ALLOC_RXBUF", kNvspVersion2, kCarrierNone,
     kCarrierNone, 12},
    {NvspMessageType::kAllocReceiveBufferComplete, "MSG2_ALLOC_RXBUF_COMP", kNvspVersion2,
     kCarrierNone, kCarrierNone, 24},
    {NvspMessageType::kFreeReceiveBuffer, "MSG2_FREE_RXBUF", kNvspVersion2, kCarrierNone,
     kCarrierNone, 12},
    {NvspMessageType::kSendVmqRndisPacket, "MSG2_SEND_VMQ_RNDIS_PKT", kNvspVersion2, kCarrierNone,
     kCarrierNone, 0},
    {NvspMessageType::kSendVmqRndisPacketComplete, "MSG2_SEND_VMQ_RNDIS_PKT_COMP", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kSendNdisConfig, "MSG2_SEND_NDIS_CONFIG", kNvspVersion2, kCarrierNone,
     kCarrierInband, 20},
    {NvspMessageType::kAllocChimneyHandle, "MSG2_ALLOC_CHIMNEY_HANDLE", kNvspVersion2, kCarrierNone,
     kCarrierNone, 0},
    {NvspMessageType::kAllocChimneyHandleComplete, "MSG2_ALLOC_CHIMNEY_HANDLE_COMP", kNvspVersion2,
     kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kSendVfAssociation, "MSG4_SEND_VF_ASSOCIATION", kNvspVersion4, kCarrierInband,
     kCarrierNone, 12},
    // Guest request; OpenVMM also sends it to report a forced switch back (spec 5.9).
    {NvspMessageType::kSwitchDataPath, "MSG4_SWITCH_DATA_PATH", kNvspVersion4, kCarrierInband,
     kCarrierInband, 8},
    {NvspMessageType::kUplinkConnectStateDeprecated, "MSG4_UPLINK_CONNECT_STATE_DEPRECATED",
     kNvspVersion4, kCarrierNone, kCarrierNone, 0},
    {NvspMessageType::kOidQueryEx, "MSG5_OID_QUERY_EX", kNvspVersion5, kCarrierNone, kCarrierInband,
     12},
    {NvspMessageType::kOidQueryExComplete, "MSG5_OID_QUERY_EX_COMP", kNvspVersion5, kCarrierComp,
     kCarrierNone, 12},
    // Request in-band from the guest, completion (same number) from the host.
    {NvspMessageType::kSubchannel, "MSG5_SUBCHANNEL", kNvspVersion5, kCarrierComp, kCarrierInband,
     12},
    {NvspMessageType::kSendIndirectionTable, "MSG5_SEND_INDIRECTION_TABLE", kNvspVersion5,
     kCarrierInband, kCarrierNone, 12},
    // PD messages flow both ways; request in-band, completion as a COMP (min size per form).
    {NvspMessageType::kPdApi, "MSG6_PD_API", kNvspVersion6, kInOrComp, kInOrComp, 8},
    {NvspMessageType::kPdPostBatch, "MSG6_PD_POST_BATCH", kNvspVersion6, kCarrierInband,
     kCarrierInband, 8},
}};

const TypeInfo* FindType(uint32_t raw) {
  if (raw <= 2) return &kTypes[raw];
  if (raw >= 100 && raw <= 136) return &kTypes[raw - 97];
  return nullptr;
}

constexpr std::string_view DirectionName(Direction dir) {
  return dir == Direction::kHostToGuest ? "host-to-guest" : "guest-to-host";
}

uint8_t CarrierBit(PacketType carrier) {
  switch (carrier) {
    case PacketType::kDataInband:
      return kCarrierInband;
    case PacketType::kDataUsingXferPages:
      return kCarrierXfer;
    case PacketType::kDataUsingGpaDirect:
      return kCarrierGpa;
    case PacketType::kComp:
      return kCarrierComp;
    default:
      return kCarrierNone;
  }
}

std::string_view CarrierName(PacketType carrier) {
  switch (carrier) {
    case PacketType::kDataInband:
      return "in-band packet";
    case PacketType::kDataUsingXferPages:
      return "transfer-page packet";
    case PacketType::kDataUsingGpaDirect:
      return "GPA-direct packet";
    case PacketType::kComp:
      return "completion";
    default:
      return "packet";
  }
}

// Copies the leading bytes of `payload` into a value-initialised T; bytes past sizeof(T) are
// ignored, missing ones stay zero (callers checked the minimum size).
template <typename T>
T CopyOut(std::span<const uint8_t> payload) {
  T value{};
  std::memcpy(&value, payload.data(), std::min(payload.size(), sizeof(T)));
  return value;
}

// Spec 5.5 "Send indirection table placement", 9.5 N20, 10.2 N-b: what Linux netvsc_send_table
// does with a message that passed the 12-byte minimum.
Expected<NvspMessage> ParseSendIndirectionTable(std::span<const uint8_t> payload,
                                                uint32_t version) {
  NvspSendIndirectionTable msg;
  msg.fixed = CopyOut<NvspSendIndirectionTableHeader>(payload);
  if (msg.fixed.count != kNvspSendIndirectionTableSize) {
    return MakeError(ErrorCode::kMalformed, "NVSP send table count {} != {}", msg.fixed.count,
                     kNvspSendIndirectionTableSize);
  }
  constexpr size_t kTableBytes = kNvspSendIndirectionTableSize * sizeof(uint32_t);
  const size_t len = payload.size();
  size_t offset = 0;
  if (version <= kNvspVersion6 && len >= kNvspSendIndirectionTableOffset + kTableBytes) {
    // Hosts speaking <= 6.0 may report a wrong offset but always place the table after a full
    // 40-byte message; Linux ignores `offset` then.
    offset = kNvspSendIndirectionTableOffset;
  } else {
    if (len < kTableBytes || msg.fixed.offset > len - kTableBytes) {
      return MakeError(ErrorCode::kMalformed, "NVSP send table offset {} + {} > payload {}",
                       msg.fixed.offset, kTableBytes, len);
    }
    offset = msg.fixed.offset;
  }
  msg.table_offset = static_cast<uint32_t>(offset);
  std::memcpy(msg.table.data(), payload.data() + offset, kTableBytes);
  return msg;
}

Expected<NvspMessage> ParsePdPostBatch(std::span<const uint8_t> payload) {
  auto msg = CopyOut<NvspPdPostBatch>(payload);
  if (msg.count > kNvspPdPostBatchMaxEntries) {
    return MakeError(ErrorCode::kMalformed, "NVSP MSG6_PD_POST_BATCH count {} > {}", msg.count,
                     kNvspPdPostBatchMaxEntries);
  }
  const size_t needed = offsetof(NvspPdPostBatch, entries) + size_t{msg.count} * 8;
  if (payload.size() < needed) {
    return MakeError(ErrorCode::kMalformed,
                     "NVSP MSG6_PD_POST_BATCH count {} needs {} bytes, payload {}", msg.count,
                     needed, payload.size());
  }
  // Entries past `count` are padding, not data.
  for (size_t i = msg.count; i < kNvspPdPostBatchMaxEntries; ++i) msg.entries[i] = {};
  return msg;
}

// Returns the variant alternative for a type that passed every generic check.
Expected<NvspMessage> Decode(NvspMessageType type, std::span<const uint8_t> payload,
                             PacketType carrier, uint32_t version) {
  const bool completion = carrier == PacketType::kComp;
  switch (type) {
    case NvspMessageType::kInit:
      return CopyOut<NvspInit>(payload);
    case NvspMessageType::kInitComplete:
      return CopyOut<NvspInitComplete>(payload);
    case NvspMessageType::kSendNdisVersion:
      return CopyOut<NvspSendNdisVersion>(payload);
    case NvspMessageType::kSendReceiveBuffer:
      return CopyOut<NvspSendReceiveBuffer>(payload);
    case NvspMessageType::kSendReceiveBufferComplete:
      return CopyOut<NvspSendReceiveBufferComplete>(payload);
    case NvspMessageType::kRevokeReceiveBuffer:
      return CopyOut<NvspRevokeReceiveBuffer>(payload);
    case NvspMessageType::kSendSendBuffer:
      return CopyOut<NvspSendSendBuffer>(payload);
    case NvspMessageType::kSendSendBufferComplete:
      return CopyOut<NvspSendSendBufferComplete>(payload);
    case NvspMessageType::kRevokeSendBuffer:
      return CopyOut<NvspRevokeSendBuffer>(payload);
    case NvspMessageType::kSendRndisPacket:
      return CopyOut<NvspSendRndisPacket>(payload);
    case NvspMessageType::kSendRndisPacketComplete:
      return CopyOut<NvspSendRndisPacketComplete>(payload);
    case NvspMessageType::kSendNdisConfig:
      return CopyOut<NvspSendNdisConfig>(payload);
    case NvspMessageType::kSendVfAssociation:
      return CopyOut<NvspSendVfAssociation>(payload);
    case NvspMessageType::kSwitchDataPath:
      return CopyOut<NvspSwitchDataPath>(payload);
    case NvspMessageType::kOidQueryEx:
      return CopyOut<NvspOidQueryEx>(payload);
    case NvspMessageType::kOidQueryExComplete:
      return CopyOut<NvspOidQueryExComplete>(payload);
    case NvspMessageType::kSubchannel:
      if (completion) return CopyOut<NvspSubchannelComplete>(payload);
      return CopyOut<NvspSubchannelRequest>(payload);
    case NvspMessageType::kSendIndirectionTable:
      return ParseSendIndirectionTable(payload, version);
    case NvspMessageType::kPdApi:
      if (completion) {
        if (payload.size() < NvspPdApiComplete::kMinSize) {
          return MakeError(ErrorCode::kMalformed, "NVSP MSG6_PD_API completion payload {} < {}",
                           payload.size(), NvspPdApiComplete::kMinSize);
        }
        return CopyOut<NvspPdApiComplete>(payload);
      }
      return CopyOut<NvspPdApiRequest>(payload);
    case NvspMessageType::kPdPostBatch:
      return ParsePdPostBatch(payload);
    default:
      break;
  }
  // Unreachable: only types with a non-empty carrier set get here.
  return MakeError(ErrorCode::kInternal, "NVSP type {} has no decoder",
                   static_cast<uint32_t>(type));
}

}  // namespace

std::string_view NvspMessageName(NvspMessageType type) {
  const TypeInfo* info = FindType(static_cast<uint32_t>(type));
  return info != nullptr ? info->name : "UNKNOWN";
}

uint32_t NvspMessageMinVersion(NvspMessageType type) {
  const TypeInfo* info = FindType(static_cast<uint32_t>(type));
  return info != nullptr ? info->min_version : kNvspVersionInvalid;
}

std::string_view NvspStatusName(NvspStatus status) {
  switch (status) {
    case NvspStatus::kNone:
      return "NONE";
    case NvspStatus::kSuccess:
      return "SUCCESS";
    case NvspStatus::kFail:
      return "FAIL";
    case NvspStatus::kProtocolTooNew:
      return "PROTOCOL_TOO_NEW";
    case NvspStatus::kProtocolTooOld:
      return "PROTOCOL_TOO_OLD";
    case NvspStatus::kInvalidRndisPacket:
      return "INVALID_RNDIS_PKT";
    case NvspStatus::kBusy:
      return "BUSY";
    case NvspStatus::kProtocolUnsupported:
      return "PROTOCOL_UNSUPPORTED";
  }
  return "UNKNOWN";
}

Status CheckNvspMessageVersion(NvspMessageType type, uint32_t negotiated_version) {
  const TypeInfo* info = FindType(static_cast<uint32_t>(type));
  if (info == nullptr) {
    return MakeError(ErrorCode::kProtocol, "NVSP type {} unknown", static_cast<uint32_t>(type));
  }
  if (info->min_version > negotiated_version) {
    return MakeError(ErrorCode::kProtocol, "NVSP {} ({}) needs version {:#x}, negotiated {:#x}",
                     info->name, static_cast<uint32_t>(type), info->min_version,
                     negotiated_version);
  }
  return Ok();
}

Expected<NvspMessage> ParseNvspMessage(std::span<const uint8_t> payload, Direction dir,
                                       PacketType carrier, uint32_t negotiated_version) {
  const uint8_t carrier_bit = CarrierBit(carrier);
  if (carrier_bit == kCarrierNone) {
    return MakeError(ErrorCode::kMalformed, "NVSP carried in packet type {} ({})",
                     static_cast<uint16_t>(carrier),
                     PacketTypeName(static_cast<uint16_t>(carrier)));
  }
  // N1: an empty completion is legal for exactly one request kind; only the caller knows which
  // request its trans_id names.
  if (payload.empty() && carrier == PacketType::kComp) return NvspEmptyCompletion{};
  // N2, N13, N19: the type itself must be there.
  if (payload.size() < kNvspHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "NVSP payload {} < {}-byte header", payload.size(),
                     kNvspHeaderSize);
  }
  uint32_t raw_type = 0;
  std::memcpy(&raw_type, payload.data(), sizeof(raw_type));
  const TypeInfo* info = FindType(raw_type);
  if (info == nullptr || info->type == NvspMessageType::kNone) {
    return MakeError(ErrorCode::kMalformed, "NVSP type {} unknown", raw_type);  // N4
  }
  // N4, N13: each type travels one way on specific packet types; obsolete types on none.
  const uint8_t allowed =
      dir == Direction::kHostToGuest ? info->host_to_guest : info->guest_to_host;
  if ((allowed & carrier_bit) == 0) {
    return MakeError(ErrorCode::kMalformed, "NVSP {} ({}) not accepted in a {} {}", info->name,
                     raw_type, DirectionName(dir), CarrierName(carrier));
  }
  // P1: a host refuses messages newer than the negotiated version. Before INIT completes there
  // is no version yet; the host's state machine handles that (P2).
  if (dir == Direction::kGuestToHost && negotiated_version != kNvspVersionNone &&
      info->min_version > negotiated_version) {
    return MakeError(ErrorCode::kProtocol, "NVSP {} ({}) needs version {:#x}, negotiated {:#x}",
                     info->name, raw_type, info->min_version, negotiated_version);
  }
  // N3, N20, N21 and the host's "never use a partial structure".
  if (payload.size() < info->min_size) {
    return MakeError(ErrorCode::kMalformed, "NVSP {} payload {} < {}", info->name, payload.size(),
                     info->min_size);
  }
  return Decode(info->type, payload, carrier, negotiated_version);
}

NvspMessageType TypeOf(const NvspMessage& msg) {
  return std::visit(
      [](const auto& m) -> NvspMessageType {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, NvspEmptyCompletion>) {
          return NvspMessageType::kNone;
        } else {
          return T::kType;
        }
      },
      msg);
}

Expected<NvspReceivePacket> ParseNvspReceivePacket(std::span<const uint8_t> packet, bool rsc) {
  // N14 (offset8 * 8 < 24) and N16 (ranges past the header) are ring_format's checks.
  auto parsed = ParseTransferPagePacket(packet);
  if (!parsed) {
    return MakeError(ErrorCode::kMalformed, "transfer-page packet: {}",
                     PacketErrorName(parsed.error()));
  }
  if (parsed->xfer_pageset_id != kNetvscReceiveBufferId) {  // N15
    return MakeError(ErrorCode::kMalformed, "transfer-page packet xfer_pageset_id {:#x} != {:#x}",
                     parsed->xfer_pageset_id, kNetvscReceiveBufferId);
  }
  const uint32_t max_ranges = rsc ? kNvspRscMaxPacketsPerReceive : kNvspMaxPacketsPerReceive;
  if (parsed->range_cnt > max_ranges) {
    return MakeError(ErrorCode::kMalformed, "transfer-page packet with {} ranges > {}",
                     parsed->range_cnt, max_ranges);
  }
  // N13: the payload must be a SEND_RNDIS_PKT (the only type accepted on this carrier).
  auto nvsp = ParseNvspMessage(parsed->payload, Direction::kHostToGuest,
                               PacketType::kDataUsingXferPages, kNvspVersionNone);
  if (!nvsp) return tl::unexpected(std::move(nvsp.error()));
  // get_if, not get: no exception path even if the carrier table ever changes.
  const auto* rndis = std::get_if<NvspSendRndisPacket>(&*nvsp);
  if (rndis == nullptr) {
    return MakeError(ErrorCode::kMalformed, "transfer-page packet carries NVSP {}",
                     NvspMessageName(TypeOf(*nvsp)));
  }
  return NvspReceivePacket{*parsed, *rndis};
}

Status CheckReceiveBufferRange(const TransferPageRange& range, uint64_t receive_buffer_size) {
  if (range.byte_offset > receive_buffer_size ||
      range.byte_count > receive_buffer_size - range.byte_offset) {
    return MakeError(ErrorCode::kMalformed, "receive range offset {} + count {} > buffer {}",
                     range.byte_offset, range.byte_count, receive_buffer_size);
  }
  return Ok();
}

Expected<NvspReceiveBufferLayout> ValidateReceiveBufferComplete(
    const NvspSendReceiveBufferComplete& msg, uint64_t buffer_size) {
  if (msg.status != NvspStatus::kSuccess) {  // N6
    return MakeError(ErrorCode::kProtocol, "receive buffer refused: status {} ({})",
                     NvspStatusName(msg.status), static_cast<uint32_t>(msg.status));
  }
  if (msg.num_sections != 1) {  // N7
    return MakeError(ErrorCode::kMalformed, "receive buffer completion with {} sections != 1",
                     msg.num_sections);
  }
  if (msg.section.offset != 0) {  // N7
    return MakeError(ErrorCode::kMalformed, "receive buffer section offset {} != 0",
                     msg.section.offset);
  }
  if (msg.section.sub_alloc_size < kNetvscMinSectionSize) {  // N8
    return MakeError(ErrorCode::kMalformed, "receive buffer sub_alloc_size {} < {}",
                     msg.section.sub_alloc_size, kNetvscMinSectionSize);
  }
  if (msg.section.num_sub_allocs == 0) {
    // Not a Linux check: a host that grants nothing can never deliver a frame.
    return MakeError(ErrorCode::kMalformed, "receive buffer with 0 sub-allocations");
  }
  // N8: 64-bit product, so a huge count cannot wrap below the buffer size.
  const uint64_t used = uint64_t{msg.section.sub_alloc_size} * msg.section.num_sub_allocs;
  if (used > buffer_size) {
    return MakeError(ErrorCode::kMalformed, "receive buffer {} x {} = {} > buffer size {}",
                     msg.section.sub_alloc_size, msg.section.num_sub_allocs, used, buffer_size);
  }
  return NvspReceiveBufferLayout{msg.section.sub_alloc_size, msg.section.num_sub_allocs};
}

Expected<uint32_t> ValidateSendBufferComplete(const NvspSendSendBufferComplete& msg,
                                              uint64_t buffer_size) {
  if (msg.status != NvspStatus::kSuccess) {  // N9
    return MakeError(ErrorCode::kProtocol, "send buffer refused: status {} ({})",
                     NvspStatusName(msg.status), static_cast<uint32_t>(msg.status));
  }
  if (msg.section_size < kNetvscMinSectionSize) {  // N9
    return MakeError(ErrorCode::kMalformed, "send buffer section_size {} < {}", msg.section_size,
                     kNetvscMinSectionSize);
  }
  const uint64_t count = buffer_size / msg.section_size;
  return static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
}

Expected<uint32_t> ValidateSubchannelComplete(const NvspSubchannelComplete& msg,
                                              uint32_t requested) {
  if (msg.status != NvspStatus::kSuccess) {  // N10
    return MakeError(ErrorCode::kProtocol, "sub-channel request refused: status {} ({})",
                     NvspStatusName(msg.status), static_cast<uint32_t>(msg.status));
  }
  if (msg.num_subchannels > requested) {  // N11
    return MakeError(ErrorCode::kMalformed, "host granted {} sub-channels > {} requested",
                     msg.num_subchannels, requested);
  }
  return msg.num_subchannels;
}

Status CheckSubchannelRequest(const NvspSubchannelRequest& msg, uint32_t max_queues) {
  if (msg.op != kNvspSubchannelOpAllocate) {
    return MakeError(ErrorCode::kProtocol, "SUBCHANNEL op {} != ALLOCATE", msg.op);
  }
  // The header promises 0 < count: a request for no sub-channels is refused here too, so a
  // caller that only checks this function cannot grant "0 more" and report success.
  if (msg.num_subchannels == 0) {
    return MakeError(ErrorCode::kProtocol, "SUBCHANNEL request for 0 sub-channels");
  }
  if (msg.num_subchannels >= max_queues) {
    return MakeError(ErrorCode::kProtocol, "SUBCHANNEL request for {} sub-channels >= {} queues",
                     msg.num_subchannels, max_queues);
  }
  return Ok();
}

Expected<NvspSendSection> ResolveSendSection(const NvspSendRndisPacket& msg, uint32_t section_size,
                                             uint64_t send_buffer_size) {
  if (msg.send_buf_section_index == kNvspNoSendSection) return NvspSendSection{};
  if (send_buffer_size == 0) {  // P8
    return MakeError(ErrorCode::kMalformed, "send section {} used without a send buffer",
                     msg.send_buf_section_index);
  }
  if (section_size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "send section size 0 with a send buffer");
  }
  const uint64_t offset = uint64_t{msg.send_buf_section_index} * section_size;
  if (offset > send_buffer_size || msg.send_buf_section_size > send_buffer_size - offset) {  // P9
    return MakeError(ErrorCode::kMalformed,
                     "send section {} (offset {}, {} bytes) outside the {}-byte send buffer",
                     msg.send_buf_section_index, offset, msg.send_buf_section_size,
                     send_buffer_size);
  }
  return NvspSendSection{true, offset, msg.send_buf_section_size};
}

namespace nvsp_internal {

Expected<size_t> EncodePadded(std::span<uint8_t> out, const void* bytes, size_t wire_size,
                              size_t padded_size) {
  const size_t total = std::max(wire_size, padded_size);
  if (out.size() < total) {
    return MakeError(ErrorCode::kInvalidArgument, "NVSP message needs {} bytes, buffer has {}",
                     total, out.size());
  }
  std::memcpy(out.data(), bytes, wire_size);
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(wire_size),
            out.begin() + static_cast<std::ptrdiff_t>(total), uint8_t{0});
  return total;
}

}  // namespace nvsp_internal

Expected<size_t> EncodeNvspSendIndirectionTable(
    std::span<uint8_t> out, std::span<const uint32_t, kNvspSendIndirectionTableSize> table) {
  const NvspSendIndirectionTableHeader fixed{};  // {134, 16, 40}
  auto written =
      nvsp_internal::EncodePadded(out, &fixed, sizeof(fixed), kNvspSendIndirectionTableMessageSize);
  if (!written) return written;
  std::memcpy(out.data() + kNvspSendIndirectionTableOffset, table.data(), table.size_bytes());
  return kNvspSendIndirectionTableMessageSize;
}

Expected<size_t> EncodeNvsp(std::span<uint8_t> out, const NvspMessage& msg, size_t padded_size) {
  return std::visit(
      [&](const auto& m) -> Expected<size_t> {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, NvspEmptyCompletion>) {
          return size_t{0};
        } else if constexpr (std::is_same_v<T, NvspSendIndirectionTable>) {
          return EncodeNvspSendIndirectionTable(out, m.table);
        } else {
          return EncodeNvsp(out, m, padded_size);
        }
      },
      msg);
}

}  // namespace uvmbus::wire
