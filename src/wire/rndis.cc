// File: wire/rndis.cc
//
// RNDIS parsing and encoding (spec 6, 9.6, 9.7). Every offset/length from the peer is compared
// as `len > limit - offset` after checking `offset <= limit` (spec 9.1 G3), in 64-bit where a sum
// is unavoidable; every walk is bounded by a count cap and by the bytes present (G4).
#include "wire/rndis.h"

#include <algorithm>
#include <bit>

#include "wire/nvsp.h"  // NVSP versions for NdisOffloadQueryHeader

namespace uvmbus::wire {
namespace {

static_assert(std::endian::native == std::endian::little,
              "RNDIS structs are memcpy'd: a big-endian host needs byte swapping");

template <typename T>
T LoadAt(std::span<const uint8_t> bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

template <typename T>
void StoreAt(std::span<uint8_t> bytes, size_t offset, const T& v) {
  std::memcpy(bytes.data() + offset, &v, sizeof(T));
}

// Copies the leading bytes of `bytes` into a value-initialised T (missing bytes stay zero).
template <typename T>
T CopyOut(std::span<const uint8_t> bytes) {
  T value{};
  std::memcpy(&value, bytes.data(), std::min(bytes.size(), sizeof(T)));
  return value;
}

constexpr bool IsCompletion(RndisMessageType type) {
  return (static_cast<uint32_t>(type) & kRndisCompletionBit) != 0;
}

// Spec 6.1 / 9.6 D15: the only types a Linux guest accepts from the host.
constexpr bool AcceptedFromHost(RndisMessageType type) {
  switch (type) {
    case RndisMessageType::kPacket:
    case RndisMessageType::kInitializeComplete:
    case RndisMessageType::kQueryComplete:
    case RndisMessageType::kSetComplete:
    case RndisMessageType::kIndicateStatus:
      return true;
    default:
      return false;
  }
}

// Spec 6.1 "Sender" column: what a guest may send to the device (P13: SET_EX is parsed so the
// host can answer it with NOT_SUPPORTED).
constexpr bool AcceptedFromGuest(RndisMessageType type) {
  switch (type) {
    case RndisMessageType::kPacket:
    case RndisMessageType::kInitialize:
    case RndisMessageType::kHalt:
    case RndisMessageType::kQuery:
    case RndisMessageType::kSet:
    case RndisMessageType::kReset:
    case RndisMessageType::kKeepalive:
    case RndisMessageType::kKeepaliveComplete:
    case RndisMessageType::kSetEx:
      return true;
    default:
      return false;
  }
}

// Fixed size of each known type (the minimum msg_len).
uint32_t FixedSize(RndisMessageType type) {
  switch (type) {
    case RndisMessageType::kPacket:
      return RndisPacketMessage::kWireSize;
    case RndisMessageType::kInitialize:
      return RndisInitializeRequest::kWireSize;
    case RndisMessageType::kHalt:
      return RndisHaltRequest::kWireSize;
    case RndisMessageType::kQuery:
      return RndisQueryRequest::kWireSize;
    case RndisMessageType::kSet:
      return RndisSetRequest::kWireSize;
    case RndisMessageType::kReset:
      return RndisResetRequest::kWireSize;
    case RndisMessageType::kIndicateStatus:
      return RndisIndicateStatus::kWireSize;
    case RndisMessageType::kKeepalive:
      return RndisKeepaliveRequest::kWireSize;
    case RndisMessageType::kSetEx:
      return RndisSetExRequest::kWireSize;
    case RndisMessageType::kInitializeComplete:
      return RndisInitializeComplete::kWireSize;
    case RndisMessageType::kQueryComplete:
      return RndisQueryComplete::kWireSize;
    case RndisMessageType::kSetComplete:
      return RndisSetComplete::kWireSize;
    case RndisMessageType::kResetComplete:
      return RndisResetComplete::kWireSize;
    case RndisMessageType::kKeepaliveComplete:
      return RndisKeepaliveComplete::kWireSize;
    case RndisMessageType::kSetExComplete:
      return RndisSetExComplete::kWireSize;
  }
  return 0;
}

// D1, D2, P11: the header is present and msg_len fits what was received.
Expected<RndisMessageHeader> ParseHeader(std::span<const uint8_t> msg) {
  if (msg.size() < kRndisHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "RNDIS message {} < {}-byte header", msg.size(),
                     kRndisHeaderSize);
  }
  const auto h = LoadAt<RndisMessageHeader>(msg, 0);
  if (h.msg_len < kRndisHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "RNDIS msg_len {} < {}", h.msg_len, kRndisHeaderSize);
  }
  if (h.msg_len > msg.size()) {
    return MakeError(ErrorCode::kMalformed, "RNDIS msg_len {} > {} bytes available", h.msg_len,
                     msg.size());
  }
  return h;
}

// A variable part described by a body offset (from byte 8) and a length must lie inside a body
// of `body_len` bytes and not overlap the `min_offset` bytes of fixed fields. An empty part is
// not checked: nothing is read (hosts send offset 0 or 16 with no buffer).
Expected<std::span<const uint8_t>> BodyPart(std::span<const uint8_t> msg, uint64_t body_len,
                                            uint32_t offset, uint32_t length, uint32_t min_offset,
                                            std::string_view what, std::string_view offset_name,
                                            std::string_view length_name) {
  if (length == 0) return std::span<const uint8_t>{};
  if (offset < min_offset) {
    return MakeError(ErrorCode::kMalformed, "RNDIS {} {} {} < {}", what, offset_name, offset,
                     min_offset);
  }
  if (offset > body_len) {
    return MakeError(ErrorCode::kMalformed, "RNDIS {} {} {} beyond the {}-byte body", what,
                     offset_name, offset, body_len);
  }
  if (length > body_len - offset) {
    return MakeError(ErrorCode::kMalformed, "RNDIS {} {} {} > {} bytes after {}", what, length_name,
                     length, body_len - offset, offset_name);
  }
  return msg.subspan(kRndisHeaderSize + size_t{offset}, length);
}

// The RndisPpiSet slot for a PPI type word (internal bit included, so a wrong internal bit is
// not a match: D11); nullptr for types uvmbus does not use.
std::optional<uint32_t>* SlotFor(RndisPpiSet& ppis, uint32_t type) {
  switch (type) {
    case kPpiHashValue:
      return &ppis.hash_value;
    case kPpiHashInfo:
      return &ppis.hash_info;
    case kPpiIeee8021q:
      return &ppis.vlan;
    case kPpiLso:
      return &ppis.lso;
    case kPpiTcpIpChecksum:
      return &ppis.checksum;
    case kPpiPacketId:
      return &ppis.packet_id;
    default:
      return nullptr;
  }
}

// Walks the PPI area (D8-D10 / P11). Stops at the first malformed element; on the guest side
// that ends the walk with a status (the PPIs found so far are kept), on the host side it fails.
Status WalkPpis(std::span<const uint8_t> area, Direction dir, RndisPacket* out) {
  const bool strict = dir == Direction::kGuestToHost;
  size_t pos = 0;
  uint32_t index = 0;
  auto stop = [&](PpiStatus status, Error error) -> Status {
    if (strict) return tl::unexpected(std::move(error));
    out->ppi_status = status;
    return Ok();
  };
  while (pos < area.size()) {
    if (index == kRndisMaxPpiCount) {
      return stop(PpiStatus::kTooMany,
                  Error::Make(ErrorCode::kMalformed, "RNDIS more than {} PPIs", kRndisMaxPpiCount));
    }
    const size_t remaining = area.size() - pos;
    if (remaining < sizeof(RndisPpiHeader)) {
      return stop(PpiStatus::kElementOverrun,
                  Error::Make(ErrorCode::kMalformed,
                              "RNDIS PPI element {} needs {} header bytes, {} remaining", index,
                              sizeof(RndisPpiHeader), remaining));
    }
    const auto h = LoadAt<RndisPpiHeader>(area, pos);
    // D8: a zero size would never advance (the Linux weakness the spec warns about).
    if (h.size == 0 || h.size > remaining) {
      return stop(
          PpiStatus::kElementOverrun,
          Error::Make(ErrorCode::kMalformed, "RNDIS PPI element {} size {} > {} bytes remaining",
                      index, h.size, remaining));
    }
    // D9: the element must hold its own header and its data must start inside it.
    if (h.size < sizeof(RndisPpiHeader) || h.ppi_offset < sizeof(RndisPpiHeader) ||
        h.ppi_offset >= h.size) {
      return stop(
          PpiStatus::kElementBadHeader,
          Error::Make(ErrorCode::kMalformed, "RNDIS PPI element {} size {} ppi_offset {} invalid",
                      index, h.size, h.ppi_offset));
    }
    if (std::optional<uint32_t>* slot = SlotFor(out->ppis, h.type)) {
      const size_t data_len = h.size - h.ppi_offset;
      if (data_len < sizeof(uint32_t)) {  // D10
        return stop(PpiStatus::kElementDataShort,
                    Error::Make(ErrorCode::kMalformed,
                                "RNDIS PPI element {} type {:#x} has {} data bytes < 4", index,
                                h.type, data_len));
      }
      // The first element of a type wins (Linux rndis_get_ppi returns the first match).
      if (!slot->has_value()) *slot = LoadAt<uint32_t>(area, pos + h.ppi_offset);
    }
    pos += h.size;
    ++index;
    out->ppi_count = index;
  }
  return Ok();
}

// PACKET_MSG after the header checks. `head` holds the first bytes of the message (at least the
// 44-byte header; the whole message when called from ParseRndisPacket), `msg_len` (>= 44) is the
// validated message length. Lengths are checked against msg_len; the PPIs must also lie inside
// `head`, the only bytes read; `frame` is set when the frame lies inside `head`.
Expected<RndisPacket> ParsePacketBody(std::span<const uint8_t> head, uint32_t msg_len,
                                      Direction dir) {
  RndisPacket p;
  p.fixed = LoadAt<RndisPacketMessage>(head, 0);
  const uint64_t body = uint64_t{msg_len} - kRndisHeaderSize;
  // D4/D5 (P11): the frame lies inside the message. data_offset == body would be an empty frame
  // at the very end, which Linux rejects too.
  if (p.fixed.data_offset >= body) {
    return MakeError(ErrorCode::kMalformed, "RNDIS data_offset {} beyond msg_len {}",
                     p.fixed.data_offset, msg_len);
  }
  if (p.fixed.data_len > body - p.fixed.data_offset) {
    return MakeError(ErrorCode::kMalformed, "RNDIS data_len {} > {} bytes after data_offset",
                     p.fixed.data_len, body - p.fixed.data_offset);
  }
  const uint64_t frame_start = uint64_t{kRndisHeaderSize} + p.fixed.data_offset;
  if (frame_start + p.fixed.data_len <= head.size()) {
    p.frame = head.subspan(static_cast<size_t>(frame_start), p.fixed.data_len);
  }

  const uint32_t ppi_offset = p.fixed.per_pkt_info_offset;
  const uint32_t ppi_len = p.fixed.per_pkt_info_len;
  // Offset 0 or length 0: no PPIs (Linux always writes offset 36, with length 0 when it adds
  // none).
  if (ppi_offset == 0 || ppi_len == 0) return p;
  const bool strict = dir == Direction::kGuestToHost;
  if (ppi_offset < kRndisPacketBodySize || ppi_offset > body) {  // D6
    if (!strict) {
      p.ppi_status = PpiStatus::kBadOffset;
      return p;
    }
    if (ppi_offset < kRndisPacketBodySize) {
      return MakeError(ErrorCode::kMalformed,
                       "RNDIS per_pkt_info_offset {} inside the {}-byte packet header", ppi_offset,
                       kRndisPacketBodySize);
    }
    return MakeError(ErrorCode::kMalformed, "RNDIS per_pkt_info_offset {} beyond msg_len {}",
                     ppi_offset, msg_len);
  }
  if (ppi_len < sizeof(RndisPpiHeader) || ppi_len > body - ppi_offset) {  // D7
    if (!strict) {
      p.ppi_status = PpiStatus::kBadLength;
      return p;
    }
    if (ppi_len < sizeof(RndisPpiHeader)) {
      return MakeError(ErrorCode::kMalformed, "RNDIS per_pkt_info_len {} < {}-byte element",
                       ppi_len, sizeof(RndisPpiHeader));
    }
    return MakeError(ErrorCode::kMalformed,
                     "RNDIS per_pkt_info_len {} > {} bytes after per_pkt_info_offset", ppi_len,
                     body - ppi_offset);
  }
  // Only reachable with ParseRndisPacketHead(): the caller copied too few bytes. Both values are
  // inside msg_len here, so the sum cannot wrap.
  const uint64_t ppi_end = uint64_t{kRndisHeaderSize} + ppi_offset + ppi_len;
  if (ppi_end > head.size()) {
    return MakeError(ErrorCode::kMalformed, "RNDIS PPIs end at {}, beyond the {} bytes copied",
                     ppi_end, head.size());
  }
  auto walked = WalkPpis(head.subspan(kRndisHeaderSize + size_t{ppi_offset}, ppi_len), dir, &p);
  if (!walked) return tl::unexpected(std::move(walked.error()));
  return p;
}

template <RndisMessageType Type>
Expected<RndisMessage> ParseOidRequest(std::span<const uint8_t> m) {
  RndisOidRequestMessage<Type> out;
  out.fixed = LoadAt<RndisOidRequest<Type>>(m, 0);
  auto info =
      BodyPart(m, m.size() - kRndisHeaderSize, out.fixed.info_buf_offset, out.fixed.info_buflen,
               kRndisRequestInfoOffset, RndisMessageName(Type), "info_buf_offset", "info_buflen");
  if (!info) return tl::unexpected(std::move(info.error()));
  out.info = *info;
  return out;
}

template <RndisMessageType Type>
Expected<RndisMessage> ParseInfoComplete(std::span<const uint8_t> m) {
  RndisInfoCompleteMessage<Type> out;
  out.fixed = LoadAt<RndisInfoComplete<Type>>(m, 0);
  // D20: the buffer must not overlap the 16 bytes of fixed fields and must fit msg_len.
  auto info =
      BodyPart(m, m.size() - kRndisHeaderSize, out.fixed.info_buf_offset, out.fixed.info_buflen,
               kRndisCompleteInfoOffset, RndisMessageName(Type), "info_buf_offset", "info_buflen");
  if (!info) return tl::unexpected(std::move(info.error()));
  out.info = *info;
  return out;
}

// `range` is everything received (the transfer-page range); msg_len <= range.size().
Expected<RndisMessage> ParseIndicateStatus(std::span<const uint8_t> range) {
  RndisIndicateStatusMessage out;
  out.fixed = LoadAt<RndisIndicateStatus>(range, 0);
  if (out.fixed.status == RndisStatus::kLinkSpeedChange &&
      out.fixed.status_buflen < sizeof(uint32_t)) {  // D23
    return MakeError(ErrorCode::kMalformed, "RNDIS LINK_SPEED_CHANGE status_buflen {} < 4",
                     out.fixed.status_buflen);
  }
  // 10.2 N-m: pre-"Fe" Hyper-V leaves the status buffer out of msg_len, so it is bounded by the
  // range, as Linux does.
  auto buffer = BodyPart(range, range.size() - kRndisHeaderSize, out.fixed.status_buf_offset,
                         out.fixed.status_buflen, kRndisIndicateStatusBufferOffset,
                         "INDICATE_STATUS_MSG", "status_buf_offset", "status_buflen");
  if (!buffer) return tl::unexpected(std::move(buffer.error()));
  out.status_buffer = *buffer;
  return out;
}

std::string_view SenderName(Direction dir) {
  return dir == Direction::kHostToGuest ? "host" : "guest";
}

}  // namespace

std::string_view RndisMessageName(RndisMessageType type) {
  switch (type) {
    case RndisMessageType::kPacket:
      return "PACKET_MSG";
    case RndisMessageType::kInitialize:
      return "INITIALIZE_MSG";
    case RndisMessageType::kHalt:
      return "HALT_MSG";
    case RndisMessageType::kQuery:
      return "QUERY_MSG";
    case RndisMessageType::kSet:
      return "SET_MSG";
    case RndisMessageType::kReset:
      return "RESET_MSG";
    case RndisMessageType::kIndicateStatus:
      return "INDICATE_STATUS_MSG";
    case RndisMessageType::kKeepalive:
      return "KEEPALIVE_MSG";
    case RndisMessageType::kSetEx:
      return "SET_EX_MSG";
    case RndisMessageType::kInitializeComplete:
      return "INITIALIZE_CMPLT";
    case RndisMessageType::kQueryComplete:
      return "QUERY_CMPLT";
    case RndisMessageType::kSetComplete:
      return "SET_CMPLT";
    case RndisMessageType::kResetComplete:
      return "RESET_CMPLT";
    case RndisMessageType::kKeepaliveComplete:
      return "KEEPALIVE_CMPLT";
    case RndisMessageType::kSetExComplete:
      return "SET_EX_CMPLT";
  }
  return "UNKNOWN";
}

std::string_view RndisStatusName(RndisStatus status) {
  switch (status) {
    case RndisStatus::kSuccess:
      return "SUCCESS";
    case RndisStatus::kPending:
      return "PENDING";
    case RndisStatus::kNotRecognized:
      return "NOT_RECOGNIZED";
    case RndisStatus::kNotCopied:
      return "NOT_COPIED";
    case RndisStatus::kNotAccepted:
      return "NOT_ACCEPTED";
    case RndisStatus::kCallActive:
      return "CALL_ACTIVE";
    case RndisStatus::kOnline:
      return "ONLINE";
    case RndisStatus::kResetStart:
      return "RESET_START";
    case RndisStatus::kResetEnd:
      return "RESET_END";
    case RndisStatus::kRingStatus:
      return "RING_STATUS";
    case RndisStatus::kClosed:
      return "CLOSED";
    case RndisStatus::kWanLineUp:
      return "WAN_LINE_UP";
    case RndisStatus::kWanLineDown:
      return "WAN_LINE_DOWN";
    case RndisStatus::kWanFragment:
      return "WAN_FRAGMENT";
    case RndisStatus::kMediaConnect:
      return "MEDIA_CONNECT";
    case RndisStatus::kMediaDisconnect:
      return "MEDIA_DISCONNECT";
    case RndisStatus::kHardwareLineUp:
      return "HARDWARE_LINE_UP";
    case RndisStatus::kHardwareLineDown:
      return "HARDWARE_LINE_DOWN";
    case RndisStatus::kInterfaceUp:
      return "INTERFACE_UP";
    case RndisStatus::kInterfaceDown:
      return "INTERFACE_DOWN";
    case RndisStatus::kMediaBusy:
      return "MEDIA_BUSY";
    case RndisStatus::kMediaSpecificIndication:
      return "MEDIA_SPECIFIC_INDICATION";
    case RndisStatus::kLinkSpeedChange:
      return "LINK_SPEED_CHANGE";
    case RndisStatus::kNetworkChange:
      return "NETWORK_CHANGE";
    case RndisStatus::kTaskOffloadCurrentConfig:
      return "TASK_OFFLOAD_CURRENT_CONFIG";
    case RndisStatus::kBufferOverflow:
      return "BUFFER_OVERFLOW";
    case RndisStatus::kNotResettable:
      return "NOT_RESETTABLE";
    case RndisStatus::kSoftErrors:
      return "SOFT_ERRORS";
    case RndisStatus::kHardErrors:
      return "HARD_ERRORS";
    case RndisStatus::kFailure:
      return "FAILURE";
    case RndisStatus::kResources:
      return "RESOURCES";
    case RndisStatus::kNotSupported:
      return "NOT_SUPPORTED";
    case RndisStatus::kClosing:
      return "CLOSING";
    case RndisStatus::kBadVersion:
      return "BAD_VERSION";
    case RndisStatus::kBadCharacteristics:
      return "BAD_CHARACTERISTICS";
    case RndisStatus::kAdapterNotFound:
      return "ADAPTER_NOT_FOUND";
    case RndisStatus::kOpenFailed:
      return "OPEN_FAILED";
    case RndisStatus::kDeviceFailed:
      return "DEVICE_FAILED";
    case RndisStatus::kMulticastFull:
      return "MULTICAST_FULL";
    case RndisStatus::kMulticastExists:
      return "MULTICAST_EXISTS";
    case RndisStatus::kMulticastNotFound:
      return "MULTICAST_NOT_FOUND";
    case RndisStatus::kRequestAborted:
      return "REQUEST_ABORTED";
    case RndisStatus::kResetInProgress:
      return "RESET_IN_PROGRESS";
    case RndisStatus::kClosingIndicating:
      return "CLOSING_INDICATING";
    case RndisStatus::kInvalidPacket:
      return "INVALID_PACKET";
    case RndisStatus::kOpenListFull:
      return "OPEN_LIST_FULL";
    case RndisStatus::kAdapterNotReady:
      return "ADAPTER_NOT_READY";
    case RndisStatus::kAdapterNotOpen:
      return "ADAPTER_NOT_OPEN";
    case RndisStatus::kNotIndicating:
      return "NOT_INDICATING";
    case RndisStatus::kInvalidLength:
      return "INVALID_LENGTH";
    case RndisStatus::kInvalidData:
      return "INVALID_DATA";
    case RndisStatus::kBufferTooShort:
      return "BUFFER_TOO_SHORT";
    case RndisStatus::kInvalidOid:
      return "INVALID_OID";
    case RndisStatus::kAdapterRemoved:
      return "ADAPTER_REMOVED";
    case RndisStatus::kUnsupportedMedia:
      return "UNSUPPORTED_MEDIA";
    case RndisStatus::kGroupAddressInUse:
      return "GROUP_ADDRESS_IN_USE";
    case RndisStatus::kFileNotFound:
      return "FILE_NOT_FOUND";
    case RndisStatus::kErrorReadingFile:
      return "ERROR_READING_FILE";
    case RndisStatus::kAlreadyMapped:
      return "ALREADY_MAPPED";
    case RndisStatus::kResourceConflict:
      return "RESOURCE_CONFLICT";
    case RndisStatus::kNoCable:
      return "NO_CABLE";
  }
  return "UNKNOWN";
}

std::string_view NdisOidName(NdisOid oid) {
  switch (oid) {
    case NdisOid::kGenMaximumFrameSize:
      return "OID_GEN_MAXIMUM_FRAME_SIZE";
    case NdisOid::kGenLinkSpeed:
      return "OID_GEN_LINK_SPEED";
    case NdisOid::kGenCurrentPacketFilter:
      return "OID_GEN_CURRENT_PACKET_FILTER";
    case NdisOid::kGenMediaConnectStatus:
      return "OID_GEN_MEDIA_CONNECT_STATUS";
    case NdisOid::kGenReceiveScaleCapabilities:
      return "OID_GEN_RECEIVE_SCALE_CAPABILITIES";
    case NdisOid::kGenReceiveScaleParameters:
      return "OID_GEN_RECEIVE_SCALE_PARAMETERS";
    case NdisOid::kGenRndisConfigParameter:
      return "OID_GEN_RNDIS_CONFIG_PARAMETER";
    case NdisOid::kGenFriendlyName:
      return "OID_GEN_FRIENDLY_NAME";
    case NdisOid::k802_3PermanentAddress:
      return "OID_802_3_PERMANENT_ADDRESS";
    case NdisOid::kTcpOffloadParameters:
      return "OID_TCP_OFFLOAD_PARAMETERS";
    case NdisOid::kTcpOffloadHardwareCapabilities:
      return "OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES";
    case NdisOid::kGenSupportedList:
      return "OID_GEN_SUPPORTED_LIST";
    case NdisOid::kGenHardwareStatus:
      return "OID_GEN_HARDWARE_STATUS";
    case NdisOid::kGenMediaSupported:
      return "OID_GEN_MEDIA_SUPPORTED";
    case NdisOid::kGenMediaInUse:
      return "OID_GEN_MEDIA_IN_USE";
    case NdisOid::kGenMaximumLookahead:
      return "OID_GEN_MAXIMUM_LOOKAHEAD";
    case NdisOid::kGenTransmitBufferSpace:
      return "OID_GEN_TRANSMIT_BUFFER_SPACE";
    case NdisOid::kGenReceiveBufferSpace:
      return "OID_GEN_RECEIVE_BUFFER_SPACE";
    case NdisOid::kGenTransmitBlockSize:
      return "OID_GEN_TRANSMIT_BLOCK_SIZE";
    case NdisOid::kGenReceiveBlockSize:
      return "OID_GEN_RECEIVE_BLOCK_SIZE";
    case NdisOid::kGenVendorId:
      return "OID_GEN_VENDOR_ID";
    case NdisOid::kGenVendorDescription:
      return "OID_GEN_VENDOR_DESCRIPTION";
    case NdisOid::kGenCurrentLookahead:
      return "OID_GEN_CURRENT_LOOKAHEAD";
    case NdisOid::kGenDriverVersion:
      return "OID_GEN_DRIVER_VERSION";
    case NdisOid::kGenMaximumTotalSize:
      return "OID_GEN_MAXIMUM_TOTAL_SIZE";
    case NdisOid::kGenProtocolOptions:
      return "OID_GEN_PROTOCOL_OPTIONS";
    case NdisOid::kGenMacOptions:
      return "OID_GEN_MAC_OPTIONS";
    case NdisOid::kGenMaximumSendPackets:
      return "OID_GEN_MAXIMUM_SEND_PACKETS";
    case NdisOid::kGenVendorDriverVersion:
      return "OID_GEN_VENDOR_DRIVER_VERSION";
    case NdisOid::kGenSupportedGuids:
      return "OID_GEN_SUPPORTED_GUIDS";
    case NdisOid::kGenNetworkLayerAddresses:
      return "OID_GEN_NETWORK_LAYER_ADDRESSES";
    case NdisOid::kGenTransportHeaderOffset:
      return "OID_GEN_TRANSPORT_HEADER_OFFSET";
    case NdisOid::kGenMaxLinkSpeed:
      return "OID_GEN_MAX_LINK_SPEED";
    case NdisOid::kGenLinkState:
      return "OID_GEN_LINK_STATE";
    case NdisOid::kGenLinkParameters:
      return "OID_GEN_LINK_PARAMETERS";
    case NdisOid::kGenInterruptModeration:
      return "OID_GEN_INTERRUPT_MODERATION";
    case NdisOid::kGenMachineName:
      return "OID_GEN_MACHINE_NAME";
    case NdisOid::kGenVlanId:
      return "OID_GEN_VLAN_ID";
    case NdisOid::kGenXmitOk:
      return "OID_GEN_XMIT_OK";
    case NdisOid::kGenRcvOk:
      return "OID_GEN_RCV_OK";
    case NdisOid::kGenBytesRcv:
      return "OID_GEN_BYTES_RCV";
    case NdisOid::kGenBytesXmit:
      return "OID_GEN_BYTES_XMIT";
    case NdisOid::kGenRcvDiscards:
      return "OID_GEN_RCV_DISCARDS";
    case NdisOid::kGenXmitDiscards:
      return "OID_GEN_XMIT_DISCARDS";
    case NdisOid::kTcpRscStatistics:
      return "OID_TCP_RSC_STATISTICS";
    case NdisOid::k802_3CurrentAddress:
      return "OID_802_3_CURRENT_ADDRESS";
    case NdisOid::k802_3MulticastList:
      return "OID_802_3_MULTICAST_LIST";
    case NdisOid::k802_3MaximumListSize:
      return "OID_802_3_MAXIMUM_LIST_SIZE";
    case NdisOid::k802_3MacOptions:
      return "OID_802_3_MAC_OPTIONS";
    case NdisOid::kOffloadEncapsulation:
      return "OID_OFFLOAD_ENCAPSULATION";
    case NdisOid::k802_3AddMulticastAddress:
      return "OID_802_3_ADD_MULTICAST_ADDRESS";
    case NdisOid::k802_3DeleteMulticastAddress:
      return "OID_802_3_DELETE_MULTICAST_ADDRESS";
    case NdisOid::kTcpOffloadCurrentConfig:
      return "OID_TCP_OFFLOAD_CURRENT_CONFIG";
    case NdisOid::kTcpConnectionOffloadCurrentConfig:
      return "OID_TCP_CONNECTION_OFFLOAD_CURRENT_CONFIG";
    case NdisOid::kTcpConnectionOffloadHardwareCapabilities:
      return "OID_TCP_CONNECTION_OFFLOAD_HARDWARE_CAPABILITIES";
  }
  return "UNKNOWN";
}

std::string_view PpiStatusName(PpiStatus status) {
  switch (status) {
    case PpiStatus::kOk:
      return "ok";
    case PpiStatus::kBadOffset:
      return "bad_offset";
    case PpiStatus::kBadLength:
      return "bad_length";
    case PpiStatus::kElementOverrun:
      return "element_overrun";
    case PpiStatus::kElementBadHeader:
      return "element_bad_header";
    case PpiStatus::kElementDataShort:
      return "element_data_short";
    case PpiStatus::kTooMany:
      return "too_many";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

Expected<RndisPacket> ParseRndisPacketHead(std::span<const uint8_t> head, uint64_t available,
                                           Direction dir) {
  if (head.size() > available) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS head copy {} > {} bytes available",
                     head.size(), available);
  }
  if (available < kRndisHeaderSize) {  // D1
    return MakeError(ErrorCode::kMalformed, "RNDIS message {} < {}-byte header", available,
                     kRndisHeaderSize);
  }
  // Everything up to the end of the fixed header must have been copied when the message has it.
  const size_t needed = static_cast<size_t>(std::min<uint64_t>(available, kRndisPacketHeaderSize));
  if (head.size() < needed) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS head copy {} < {} bytes", head.size(),
                     needed);
  }
  const auto h = LoadAt<RndisMessageHeader>(head, 0);
  if (h.msg_len < kRndisHeaderSize) {  // D2
    return MakeError(ErrorCode::kMalformed, "RNDIS msg_len {} < {}", h.msg_len, kRndisHeaderSize);
  }
  if (h.msg_len > available) {  // D2, P11
    return MakeError(ErrorCode::kMalformed, "RNDIS msg_len {} > {} bytes available", h.msg_len,
                     available);
  }
  if (h.msg_type != RndisMessageType::kPacket) {
    return MakeError(ErrorCode::kMalformed, "RNDIS {} ({:#x}) is not a PACKET_MSG",
                     RndisMessageName(h.msg_type), static_cast<uint32_t>(h.msg_type));
  }
  if (h.msg_len < kRndisPacketHeaderSize) {  // D3
    return MakeError(ErrorCode::kMalformed, "RNDIS PACKET_MSG msg_len {} < {}", h.msg_len,
                     kRndisPacketHeaderSize);
  }
  return ParsePacketBody(head.first(std::min<size_t>(head.size(), h.msg_len)), h.msg_len, dir);
}

Expected<RndisPacket> ParseRndisPacket(std::span<const uint8_t> msg, Direction dir) {
  return ParseRndisPacketHead(msg, msg.size(), dir);
}

namespace {

// ParseRndisMessage() and DecodeRndisMessage(): `dir` == nullopt decodes any known type with the
// rules of its usual receiver.
Expected<RndisMessage> ParseMessage(std::span<const uint8_t> msg, std::optional<Direction> which) {
  auto h = ParseHeader(msg);
  if (!h) return tl::unexpected(std::move(h.error()));
  const RndisMessageType type = h->msg_type;
  const uint32_t fixed = FixedSize(type);
  if (fixed == 0) {
    return MakeError(ErrorCode::kMalformed, "RNDIS message type {:#x} unknown",
                     static_cast<uint32_t>(type));
  }
  Direction dir;
  if (which) {
    dir = *which;
    const bool accepted =
        dir == Direction::kHostToGuest ? AcceptedFromHost(type) : AcceptedFromGuest(type);
    if (!accepted) {  // D15, P13
      return MakeError(ErrorCode::kMalformed, "RNDIS {} not accepted from the {}",
                       RndisMessageName(type), SenderName(dir));
    }
  } else {
    dir = IsCompletion(type) || type == RndisMessageType::kIndicateStatus ? Direction::kHostToGuest
                                                                          : Direction::kGuestToHost;
  }
  if (dir == Direction::kHostToGuest && IsCompletion(type) &&
      h->msg_len > kRndisMaxControlCompletionSize) {  // D19
    return MakeError(ErrorCode::kMalformed, "RNDIS {} msg_len {} > {}", RndisMessageName(type),
                     h->msg_len, kRndisMaxControlCompletionSize);
  }
  if (h->msg_len < fixed) {  // D3, D17, D20, D22, P11
    return MakeError(ErrorCode::kMalformed, "RNDIS {} msg_len {} < {}", RndisMessageName(type),
                     h->msg_len, fixed);
  }
  const std::span<const uint8_t> m = msg.first(h->msg_len);
  switch (type) {
    case RndisMessageType::kPacket: {
      auto p = ParsePacketBody(m, h->msg_len, dir);
      if (!p) return tl::unexpected(std::move(p.error()));
      return *p;
    }
    case RndisMessageType::kInitialize:
      return LoadAt<RndisInitializeRequest>(m, 0);
    case RndisMessageType::kHalt:
      return LoadAt<RndisHaltRequest>(m, 0);
    case RndisMessageType::kQuery:
      return ParseOidRequest<RndisMessageType::kQuery>(m);
    case RndisMessageType::kSet:
      return ParseOidRequest<RndisMessageType::kSet>(m);
    case RndisMessageType::kSetEx:
      return ParseOidRequest<RndisMessageType::kSetEx>(m);
    case RndisMessageType::kReset:
      return LoadAt<RndisResetRequest>(m, 0);
    case RndisMessageType::kKeepalive:
      return LoadAt<RndisKeepaliveRequest>(m, 0);
    case RndisMessageType::kInitializeComplete:
      return LoadAt<RndisInitializeComplete>(m, 0);
    case RndisMessageType::kQueryComplete:
      return ParseInfoComplete<RndisMessageType::kQueryComplete>(m);
    case RndisMessageType::kSetExComplete:
      return ParseInfoComplete<RndisMessageType::kSetExComplete>(m);
    case RndisMessageType::kSetComplete:
      return LoadAt<RndisSetComplete>(m, 0);
    case RndisMessageType::kResetComplete:
      return LoadAt<RndisResetComplete>(m, 0);
    case RndisMessageType::kKeepaliveComplete:
      return LoadAt<RndisKeepaliveComplete>(m, 0);
    case RndisMessageType::kIndicateStatus:
      return ParseIndicateStatus(msg);
  }
  return MakeError(ErrorCode::kInternal, "RNDIS type {:#x} has no decoder",
                   static_cast<uint32_t>(type));
}

}  // namespace

Expected<RndisMessage> ParseRndisMessage(std::span<const uint8_t> msg, Direction dir) {
  return ParseMessage(msg, dir);
}

Expected<RndisMessage> DecodeRndisMessage(std::span<const uint8_t> msg) {
  return ParseMessage(msg, std::nullopt);
}

RndisMessageType TypeOf(const RndisMessage& msg) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, msg);
}

std::optional<uint32_t> RndisCompletionRequestId(std::span<const uint8_t> msg) {
  constexpr size_t kWithId = kRndisHeaderSize + sizeof(uint32_t);
  if (msg.size() < kWithId) return std::nullopt;
  const auto h = LoadAt<RndisMessageHeader>(msg, 0);
  switch (h.msg_type) {
    case RndisMessageType::kInitializeComplete:
    case RndisMessageType::kQueryComplete:
    case RndisMessageType::kSetComplete:
    case RndisMessageType::kKeepaliveComplete:
    case RndisMessageType::kSetExComplete:
      break;
    default:
      return std::nullopt;
  }
  if (h.msg_len < kWithId || h.msg_len > msg.size()) return std::nullopt;  // D17
  return LoadAt<uint32_t>(msg, kRndisHeaderSize);
}

std::optional<uint32_t> LinkSpeedFromIndication(const RndisIndicateStatusMessage& msg) {
  if (msg.fixed.status != RndisStatus::kLinkSpeedChange ||
      msg.status_buffer.size() < sizeof(uint32_t)) {
    return std::nullopt;
  }
  return LoadAt<uint32_t>(msg.status_buffer, 0);
}

Expected<std::span<const uint8_t>> RndisMessageSplitter::Next() {
  // Any error poisons the splitter so a `while (!Done())` loop ends.
  auto fail = [&](Error e) -> Expected<std::span<const uint8_t>> {
    rest_ = {};
    return tl::unexpected(std::move(e));
  };
  if (rest_.size() < kRndisHeaderSize) {
    return fail(Error::Make(ErrorCode::kMalformed, "RNDIS batch: {} trailing bytes", rest_.size()));
  }
  if (count_ >= max_messages_) {
    return fail(
        Error::Make(ErrorCode::kMalformed, "RNDIS batch: more than {} messages", max_messages_));
  }
  const auto msg_len = LoadAt<uint32_t>(rest_, 4);
  if (msg_len < kRndisHeaderSize) {
    return fail(Error::Make(ErrorCode::kMalformed, "RNDIS batch: msg_len {} < {}", msg_len,
                            kRndisHeaderSize));
  }
  if (msg_len > rest_.size()) {
    return fail(Error::Make(ErrorCode::kMalformed, "RNDIS batch: msg_len {} > {} bytes remaining",
                            msg_len, rest_.size()));
  }
  const auto out = rest_.first(msg_len);
  rest_ = rest_.subspan(msg_len);
  ++count_;
  return out;
}

Status CheckTxLsoInfo(uint32_t lso_info, uint32_t frame_len) {
  const LsoInfo info = UnpackLsoInfo(lso_info);
  if (info.mss == 0) return MakeError(ErrorCode::kMalformed, "LSO with MSS 0");
  if (info.tcp_header_offset >= frame_len) {
    return MakeError(ErrorCode::kMalformed, "LSO TCP header offset {} >= frame length {}",
                     info.tcp_header_offset, frame_len);
  }
  return Ok();
}

Status CheckTxChecksumInfo(uint32_t checksum_info, uint32_t frame_len) {
  if ((checksum_info & (kTxChecksumTcp | kTxChecksumUdp)) == 0) return Ok();
  const uint32_t offset = TxChecksumHeaderOffset(checksum_info);
  if (offset >= frame_len) {
    return MakeError(ErrorCode::kMalformed, "checksum TCP header offset {} >= frame length {}",
                     offset, frame_len);
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

namespace rndis_internal {

Expected<size_t> EncodeWithTail(std::span<uint8_t> out, RndisMessageType type, const void* fixed,
                                uint32_t fixed_size, std::span<const uint8_t> tail) {
  const uint64_t total = uint64_t{fixed_size} + tail.size();
  if (total > UINT32_MAX) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS message of {} bytes too large", total);
  }
  if (out.size() < total) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS {} needs {} bytes, buffer has {}",
                     RndisMessageName(type), total, out.size());
  }
  std::memcpy(out.data(), fixed, fixed_size);
  if (!tail.empty()) std::memcpy(out.data() + fixed_size, tail.data(), tail.size());
  StoreAt(out, 0, RndisMessageHeader{type, static_cast<uint32_t>(total)});
  return static_cast<size_t>(total);
}

}  // namespace rndis_internal

namespace {

template <RndisMessageType Type>
Expected<size_t> EncodeOidRequest(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                  std::span<const uint8_t> info) {
  if (info.size() > UINT32_MAX - RndisOidRequest<Type>::kWireSize) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS information buffer too large");
  }
  RndisOidRequest<Type> fixed;
  fixed.request_id = request_id;
  fixed.oid = oid;
  fixed.info_buflen = static_cast<uint32_t>(info.size());
  fixed.info_buf_offset = kRndisRequestInfoOffset;
  return rndis_internal::EncodeWithTail(out, Type, &fixed, sizeof(fixed), info);
}

template <RndisMessageType Type>
Expected<size_t> EncodeInfoComplete(std::span<uint8_t> out, uint32_t request_id, RndisStatus status,
                                    std::span<const uint8_t> info) {
  if (info.size() > UINT32_MAX - RndisInfoComplete<Type>::kWireSize) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS information buffer too large");
  }
  RndisInfoComplete<Type> fixed;
  fixed.request_id = request_id;
  fixed.status = status;
  fixed.info_buflen = static_cast<uint32_t>(info.size());
  fixed.info_buf_offset = kRndisCompleteInfoOffset;
  return rndis_internal::EncodeWithTail(out, Type, &fixed, sizeof(fixed), info);
}

}  // namespace

Expected<size_t> EncodeRndisQuery(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                  std::span<const uint8_t> info) {
  return EncodeOidRequest<RndisMessageType::kQuery>(out, request_id, oid, info);
}

Expected<size_t> EncodeRndisSet(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                std::span<const uint8_t> info) {
  return EncodeOidRequest<RndisMessageType::kSet>(out, request_id, oid, info);
}

Expected<size_t> EncodeRndisSetEx(std::span<uint8_t> out, uint32_t request_id, NdisOid oid,
                                  std::span<const uint8_t> info) {
  return EncodeOidRequest<RndisMessageType::kSetEx>(out, request_id, oid, info);
}

Expected<size_t> EncodeRndisQueryComplete(std::span<uint8_t> out, uint32_t request_id,
                                          RndisStatus status, std::span<const uint8_t> info) {
  return EncodeInfoComplete<RndisMessageType::kQueryComplete>(out, request_id, status, info);
}

Expected<size_t> EncodeRndisSetExComplete(std::span<uint8_t> out, uint32_t request_id,
                                          RndisStatus status, std::span<const uint8_t> info) {
  return EncodeInfoComplete<RndisMessageType::kSetExComplete>(out, request_id, status, info);
}

Expected<size_t> EncodeRndisIndicateStatus(std::span<uint8_t> out, RndisStatus status,
                                           std::span<const uint8_t> buffer) {
  if (buffer.size() > UINT32_MAX - RndisIndicateStatus::kWireSize) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS status buffer too large");
  }
  RndisIndicateStatus fixed;
  fixed.status = status;
  fixed.status_buflen = static_cast<uint32_t>(buffer.size());
  fixed.status_buf_offset = buffer.empty() ? 0 : kRndisIndicateStatusBufferOffset;
  return rndis_internal::EncodeWithTail(out, RndisMessageType::kIndicateStatus, &fixed,
                                        sizeof(fixed), buffer);
}

Expected<size_t> EncodeRndisLinkSpeedChange(std::span<uint8_t> out, uint32_t speed_100bps) {
  std::array<uint8_t, sizeof(uint32_t)> buffer;
  std::memcpy(buffer.data(), &speed_100bps, sizeof(speed_100bps));
  return EncodeRndisIndicateStatus(out, RndisStatus::kLinkSpeedChange, buffer);
}

uint32_t RndisPacketHeaderSize(const RndisPpiSet& ppis) {
  return kRndisPacketHeaderSize + kRndisPpiElementSize * ppis.count();
}

Expected<uint32_t> EncodeRndisPacketHeader(std::span<uint8_t> out, const RndisPpiSet& ppis,
                                           uint32_t frame_len, uint32_t frame_offset) {
  const uint32_t header_size = RndisPacketHeaderSize(ppis);
  if (frame_offset == 0) frame_offset = header_size;
  if (frame_offset < header_size) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS frame offset {} < header size {}",
                     frame_offset, header_size);
  }
  const uint64_t msg_len = uint64_t{frame_offset} + frame_len;
  if (msg_len > UINT32_MAX) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG of {} bytes too large",
                     msg_len);
  }
  if (out.size() < frame_offset) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "RNDIS PACKET_MSG header needs {} bytes, buffer has {}", frame_offset,
                     out.size());
  }
  std::fill(out.begin(), out.begin() + frame_offset, uint8_t{0});
  RndisPacketMessage fixed;
  fixed.header = {RndisMessageType::kPacket, static_cast<uint32_t>(msg_len)};
  fixed.data_offset = frame_offset - kRndisHeaderSize;
  fixed.data_len = frame_len;
  // Linux layout: PPIs right after the 36-byte body, offset 36 even when there are none.
  fixed.per_pkt_info_offset = kRndisPacketBodySize;
  fixed.per_pkt_info_len = header_size - kRndisPacketHeaderSize;
  StoreAt(out, 0, fixed);
  size_t pos = kRndisPacketHeaderSize;
  auto put = [&](uint32_t type, const std::optional<uint32_t>& value) {
    if (!value) return;
    StoreAt(out, pos, RndisPpiHeader{kRndisPpiElementSize, type, sizeof(RndisPpiHeader)});
    StoreAt(out, pos + sizeof(RndisPpiHeader), *value);
    pos += kRndisPpiElementSize;
  };
  put(kPpiHashValue, ppis.hash_value);
  put(kPpiHashInfo, ppis.hash_info);
  put(kPpiIeee8021q, ppis.vlan);
  put(kPpiLso, ppis.lso);
  put(kPpiTcpIpChecksum, ppis.checksum);
  put(kPpiPacketId, ppis.packet_id);
  return frame_offset;
}

Expected<uint32_t> EncodeRndisPacket(std::span<uint8_t> out, const RndisPpiSet& ppis,
                                     std::span<const uint8_t> frame, uint32_t pad_to) {
  if (pad_to == 0 || !std::has_single_bit(pad_to)) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS padding {} is not a power of two", pad_to);
  }
  if (frame.size() > UINT32_MAX) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS frame too large");
  }
  const auto frame_len = static_cast<uint32_t>(frame.size());
  const uint64_t unpadded = uint64_t{RndisPacketHeaderSize(ppis)} + frame_len;
  const uint64_t padded = (unpadded + pad_to - 1) / pad_to * pad_to;
  if (padded > UINT32_MAX) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG of {} bytes too large", padded);
  }
  if (out.size() < padded) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS PACKET_MSG needs {} bytes, buffer has {}",
                     padded, out.size());
  }
  auto frame_offset = EncodeRndisPacketHeader(out, ppis, frame_len);
  if (!frame_offset) return frame_offset;
  if (!frame.empty()) std::memcpy(out.data() + *frame_offset, frame.data(), frame.size());
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(unpadded),
            out.begin() + static_cast<std::ptrdiff_t>(padded), uint8_t{0});
  StoreAt(out, 4, static_cast<uint32_t>(padded));  // msg_len includes the padding
  return static_cast<uint32_t>(padded);
}

// ---------------------------------------------------------------------------------------------
// NDIS objects
// ---------------------------------------------------------------------------------------------

namespace {

// The common checks of a received NDIS object: header present, type, revision >= 1, and
// min_size <= size <= info.size().
Expected<NdisObjectHeader> CheckObject(std::span<const uint8_t> info, std::string_view what,
                                       uint8_t type, uint16_t min_size) {
  if (info.size() < sizeof(NdisObjectHeader)) {
    return MakeError(ErrorCode::kMalformed, "{} {} bytes < 4-byte header", what, info.size());
  }
  const auto h = LoadAt<NdisObjectHeader>(info, 0);
  if (h.type != type) {
    return MakeError(ErrorCode::kMalformed, "{} type {:#x} != {:#x}", what, h.type, type);
  }
  if (h.revision < 1) {
    return MakeError(ErrorCode::kMalformed, "{} revision {} < 1", what, h.revision);
  }
  if (h.size < min_size) {
    return MakeError(ErrorCode::kMalformed, "{} size {} < {}", what, h.size, min_size);
  }
  if (h.size > info.size()) {
    return MakeError(ErrorCode::kMalformed, "{} size {} > {} bytes present", what, h.size,
                     info.size());
  }
  return h;
}

// `length` bytes at `offset` inside `size` bytes (G3).
bool Inside(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

}  // namespace

NdisObjectHeader NdisOffloadQueryHeader(uint32_t nvsp_version) {
  if (nvsp_version >= kNvspVersion5) return {kNdisObjectTypeOffload, 3, kNdisOffloadSizeRev3};
  if (nvsp_version >= kNvspVersion4) return {kNdisObjectTypeOffload, 2, kNdisOffloadSizeRev2};
  return {kNdisObjectTypeOffload, 1, kNdisOffloadSizeRev1};
}

Expected<NdisOffload> ParseNdisOffload(std::span<const uint8_t> info) {
  auto h = CheckObject(info, "offload capabilities", kNdisObjectTypeOffload,
                       kNdisOffloadSizeRev1);  // D24
  if (!h) return tl::unexpected(std::move(h.error()));
  return CopyOut<NdisOffload>(info.first(h->size));
}

Expected<NdisOffloadParams> ParseNdisOffloadParams(std::span<const uint8_t> info) {
  auto h = CheckObject(info, "offload parameters", kNdisObjectTypeDefault,
                       kNdisOffloadParamsSizeRev1);  // N-n: 22 and 28 both pass
  if (!h) return tl::unexpected(std::move(h.error()));
  return CopyOut<NdisOffloadParams>(info.first(h->size));
}

Expected<NdisReceiveScaleCapabilities> ParseRssCapabilities(std::span<const uint8_t> info) {
  auto h =
      CheckObject(info, "RSS capabilities", kNdisObjectTypeRssCapabilities, kNdisRssCapsSizeRev1);
  if (!h) return tl::unexpected(std::move(h.error()));
  return CopyOut<NdisReceiveScaleCapabilities>(info.first(h->size));
}

Expected<RssParameters> ParseRssParameters(std::span<const uint8_t> info) {
  auto h =
      CheckObject(info, "RSS parameters", kNdisObjectTypeRssParameters, kNdisRssParamsSizeRev1);
  if (!h) return tl::unexpected(std::move(h.error()));
  RssParameters out;
  out.fixed = CopyOut<NdisReceiveScaleParameters>(info.first(h->size));
  // Disabling needs nothing else (Linux sends table and key anyway; they are not used).
  if (out.disabled()) return out;
  const NdisReceiveScaleParameters& f = out.fixed;
  if ((f.flag & kNdisRssParamFlagItableUnchanged) == 0) {
    if (f.indirect_tabsize % sizeof(uint32_t) != 0) {
      return MakeError(ErrorCode::kMalformed, "RSS indirection table size {} not a multiple of 4",
                       f.indirect_tabsize);
    }
    const uint32_t entries = f.indirect_tabsize / sizeof(uint32_t);
    if (entries == 0 || entries > kRssIndirectionTableMaxEntries) {
      return MakeError(ErrorCode::kMalformed, "RSS indirection table {} entries outside 1..{}",
                       entries, kRssIndirectionTableMaxEntries);
    }
    if (!std::has_single_bit(entries)) {
      return MakeError(ErrorCode::kMalformed,
                       "RSS indirection table {} entries is not a power of two", entries);
    }
    if (!Inside(f.indirect_taboffset, f.indirect_tabsize, info.size())) {
      return MakeError(ErrorCode::kMalformed, "RSS indirection table offset {} + {} > {}",
                       f.indirect_taboffset, f.indirect_tabsize, info.size());
    }
    out.table_entries = entries;
    std::memcpy(out.table.data(), info.data() + f.indirect_taboffset, f.indirect_tabsize);
  }
  if ((f.flag & kNdisRssParamFlagHashKeyUnchanged) == 0) {
    if (f.hashkey_size == 0 || f.hashkey_size > kRssHashKeyMaxSize) {
      return MakeError(ErrorCode::kMalformed, "RSS hash key size {} outside 1..{}", f.hashkey_size,
                       kRssHashKeyMaxSize);
    }
    if (!Inside(f.hashkey_offset, f.hashkey_size, info.size())) {
      return MakeError(ErrorCode::kMalformed, "RSS hash key offset {} + {} > {}", f.hashkey_offset,
                       f.hashkey_size, info.size());
    }
    out.key_size = f.hashkey_size;
    std::memcpy(out.key.data(), info.data() + f.hashkey_offset, f.hashkey_size);
  }
  return out;
}

Expected<size_t> EncodeRssParameters(std::span<uint8_t> out, uint16_t flag, uint32_t hashinfo,
                                     std::span<const uint32_t> table,
                                     std::span<const uint8_t> key) {
  if (table.size() > kRssIndirectionTableMaxEntries) {
    return MakeError(ErrorCode::kInvalidArgument, "RSS indirection table {} entries > {}",
                     table.size(), kRssIndirectionTableMaxEntries);
  }
  if (key.size() > kRssHashKeyMaxSize) {
    return MakeError(ErrorCode::kInvalidArgument, "RSS hash key {} bytes > {}", key.size(),
                     kRssHashKeyMaxSize);
  }
  const size_t total = sizeof(NdisReceiveScaleParameters) + table.size_bytes() + key.size();
  if (out.size() < total) {
    return MakeError(ErrorCode::kInvalidArgument, "RSS parameters need {} bytes, buffer has {}",
                     total, out.size());
  }
  NdisReceiveScaleParameters fixed;
  fixed.flag = flag;
  fixed.hashinfo = hashinfo;
  fixed.indirect_tabsize = static_cast<uint16_t>(table.size_bytes());
  fixed.indirect_taboffset = sizeof(NdisReceiveScaleParameters);
  fixed.hashkey_size = static_cast<uint16_t>(key.size());
  fixed.hashkey_offset = static_cast<uint32_t>(sizeof(fixed) + table.size_bytes());
  StoreAt(out, 0, fixed);
  if (!table.empty()) std::memcpy(out.data() + sizeof(fixed), table.data(), table.size_bytes());
  if (!key.empty()) std::memcpy(out.data() + fixed.hashkey_offset, key.data(), key.size());
  return total;
}

Expected<RndisConfigParameter> ParseRndisConfigParameter(std::span<const uint8_t> info) {
  if (info.size() < sizeof(RndisConfigParameterInfo)) {
    return MakeError(ErrorCode::kMalformed, "config parameter {} bytes < {}", info.size(),
                     sizeof(RndisConfigParameterInfo));
  }
  RndisConfigParameter out;
  out.fixed = LoadAt<RndisConfigParameterInfo>(info, 0);
  const auto& f = out.fixed;
  if (!Inside(f.parameter_name_offset, f.parameter_name_length, info.size())) {
    return MakeError(ErrorCode::kMalformed, "config parameter name offset {} + {} > {}",
                     f.parameter_name_offset, f.parameter_name_length, info.size());
  }
  if (f.parameter_name_length % 2 != 0) {
    return MakeError(ErrorCode::kMalformed, "config parameter name length {} is odd",
                     f.parameter_name_length);
  }
  if (!Inside(f.parameter_value_offset, f.parameter_value_length, info.size())) {
    return MakeError(ErrorCode::kMalformed, "config parameter value offset {} + {} > {}",
                     f.parameter_value_offset, f.parameter_value_length, info.size());
  }
  out.name = info.subspan(f.parameter_name_offset, f.parameter_name_length);
  out.value = info.subspan(f.parameter_value_offset, f.parameter_value_length);
  return out;
}

namespace {

constexpr char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

}  // namespace

bool RndisConfigNameEquals(std::span<const uint8_t> name, std::string_view ascii) {
  if (name.size() != 2 * ascii.size()) return false;
  for (size_t i = 0; i < ascii.size(); ++i) {
    if (name[2 * i + 1] != 0) return false;
    if (AsciiLower(static_cast<char>(name[2 * i])) != AsciiLower(ascii[i])) return false;
  }
  return true;
}

std::optional<std::array<uint8_t, 6>> ParseNetworkAddressValue(std::span<const uint8_t> value) {
  if (value.size() % 2 != 0) return std::nullopt;
  std::array<uint8_t, 6> mac{};
  size_t nibbles = 0;
  for (size_t i = 0; i + 1 < value.size(); i += 2) {
    if (value[i + 1] != 0) return std::nullopt;
    const char c = static_cast<char>(value[i]);
    if (c == '\0') break;  // a NUL-terminated value
    if (c == '-' || c == ':') continue;
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0 || nibbles == 12) return std::nullopt;
    mac[nibbles / 2] = static_cast<uint8_t>((mac[nibbles / 2] << 4) | digit);
    ++nibbles;
  }
  if (nibbles != 12) return std::nullopt;
  return mac;
}

Expected<size_t> EncodeNetworkAddressParameter(std::span<uint8_t> out,
                                               const std::array<uint8_t, 6>& mac) {
  constexpr std::string_view kName = "NetworkAddress";
  constexpr uint32_t kNameOffset = sizeof(RndisConfigParameterInfo);
  constexpr uint32_t kNameLength = 2 * kName.size();
  constexpr uint32_t kValueOffset = kNameOffset + kNameLength;
  constexpr uint32_t kValueLength = 2 * 12;
  constexpr size_t kTotal = kValueOffset + kValueLength;
  static_assert(kTotal == 72 && kValueOffset == 48);
  if (out.size() < kTotal) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "NetworkAddress parameter needs {} bytes, buffer has {}", kTotal, out.size());
  }
  StoreAt(out, 0,
          RndisConfigParameterInfo{kNameOffset, kNameLength, kRndisConfigParamTypeString,
                                   kValueOffset, kValueLength});
  for (size_t i = 0; i < kName.size(); ++i) {
    out[kNameOffset + 2 * i] = static_cast<uint8_t>(kName[i]);
    out[kNameOffset + 2 * i + 1] = 0;
  }
  constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < 12; ++i) {
    const uint8_t nibble = (i % 2 == 0) ? (mac[i / 2] >> 4) : (mac[i / 2] & 0xF);
    out[kValueOffset + 2 * i] = static_cast<uint8_t>(kHex[nibble]);
    out[kValueOffset + 2 * i + 1] = 0;
  }
  return kTotal;
}

}  // namespace uvmbus::wire
