#include "wire/ic_messages.h"

#include <algorithm>
#include <cstring>

namespace uvmbus::wire {
namespace {

// Offsets inside a packet (pipe header + IC header + body).
constexpr size_t kIcMsgHeaderOffset = sizeof(VmbusPipeHeader);
constexpr size_t kIcFlagsOffset = kIcMsgHeaderOffset + offsetof(IcMsgHeader, icflags);
constexpr size_t kIcStatusOffset = kIcMsgHeaderOffset + offsetof(IcMsgHeader, status);
constexpr size_t kIcMsgSizeOffset = kIcMsgHeaderOffset + offsetof(IcMsgHeader, icmsgsize);
constexpr size_t kIcMsgTypeOffset = kIcMsgHeaderOffset + offsetof(IcMsgHeader, icmsgtype);
constexpr size_t kNegotiateOffset = kIcHeaderSize;
constexpr size_t kVersionsOffset = kNegotiateOffset + sizeof(IcMsgNegotiate);

constexpr uint8_t kResponseFlags = kIcFlagTransaction | kIcFlagResponse;

template <typename T>
void Store(std::vector<uint8_t>& buf, size_t offset, const T& value) {
  std::memcpy(buf.data() + offset, &value, sizeof(T));
}

template <typename T>
T Load(std::span<const uint8_t> buf, size_t offset) {
  T value{};
  std::memcpy(&value, buf.data() + offset, sizeof(T));
  return value;
}

// Writes version entry `index` of a negotiate packet if it lies inside the packet. Linux writes
// entries 0 and 1 into its (larger) receive buffer unconditionally but sends only the received
// length, so an entry beyond the packet is simply not part of the answer.
void StoreVersionEntry(std::vector<uint8_t>& packet, size_t index, IcVersion version) {
  const size_t offset = kVersionsOffset + index * sizeof(IcVersion);
  if (offset + sizeof(IcVersion) <= packet.size()) Store(packet, offset, version);
}

// Finds the first of `ours` (in our order) that appears in `theirs`.
bool PickFirstCommon(std::span<const uint32_t> ours, std::span<const uint32_t> theirs,
                     uint32_t* chosen) {
  for (uint32_t v : ours) {
    if (std::find(theirs.begin(), theirs.end(), v) != theirs.end()) {
      *chosen = v;
      return true;
    }
  }
  return false;
}

}  // namespace

Expected<IcPacket> ParseIcPacket(std::span<const uint8_t> packet) {
  if (packet.size() < kIcHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "IC packet {} < {}-byte header", packet.size(),
                     kIcHeaderSize);
  }
  IcPacket out;
  out.pipe = Load<VmbusPipeHeader>(packet, 0);
  out.header = Load<IcMsgHeader>(packet, kIcMsgHeaderOffset);
  const size_t present = packet.size() - kIcHeaderSize;
  if (out.header.icmsgsize > present) {
    return MakeError(ErrorCode::kMalformed, "IC message size {} > {} bytes present",
                     out.header.icmsgsize, present);
  }
  out.body = packet.subspan(kIcHeaderSize, out.header.icmsgsize);
  return out;
}

Expected<IcNegotiateMessage> ParseIcNegotiate(const IcPacket& packet) {
  if (packet.header.icmsgtype != kIcMsgTypeNegotiate) {
    return MakeError(ErrorCode::kMalformed, "IC message type {} is not NEGOTIATE",
                     packet.header.icmsgtype);
  }
  const auto body = packet.body;
  if (body.size() < sizeof(IcMsgNegotiate)) {
    return MakeError(ErrorCode::kMalformed, "IC negotiate body {} < {}", body.size(),
                     sizeof(IcMsgNegotiate));
  }
  const auto negotiate = Load<IcMsgNegotiate>(body, 0);
  if (negotiate.icframe_vercnt > kIcMaxVersionCount ||
      negotiate.icmsg_vercnt > kIcMaxVersionCount) {
    return MakeError(ErrorCode::kMalformed, "IC negotiate version counts {}/{} exceed {}",
                     negotiate.icframe_vercnt, negotiate.icmsg_vercnt, kIcMaxVersionCount);
  }
  const size_t listed = size_t{negotiate.icframe_vercnt} + negotiate.icmsg_vercnt;
  const size_t room = (body.size() - sizeof(IcMsgNegotiate)) / sizeof(IcVersion);
  if (listed > room) {
    return MakeError(ErrorCode::kMalformed, "IC negotiate lists {}+{} versions, body holds {}",
                     negotiate.icframe_vercnt, negotiate.icmsg_vercnt, room);
  }
  IcNegotiateMessage out;
  out.framework_count = negotiate.icframe_vercnt;
  out.message_count = negotiate.icmsg_vercnt;
  size_t offset = sizeof(IcMsgNegotiate);
  for (size_t i = 0; i < out.framework_count; ++i, offset += sizeof(IcVersion)) {
    out.framework_versions[i] = Load<IcVersion>(body, offset).ToWord();
  }
  for (size_t i = 0; i < out.message_count; ++i, offset += sizeof(IcVersion)) {
    out.message_versions[i] = Load<IcVersion>(body, offset).ToWord();
  }
  return out;
}

Expected<IcNegotiatedVersions> ParseIcNegotiateResponse(const IcPacket& packet) {
  if ((packet.header.icflags & kResponseFlags) != kResponseFlags) {
    return MakeError(ErrorCode::kMalformed,
                     "IC negotiate response flags 0x{:x} lack TRANSACTION|RESPONSE",
                     packet.header.icflags);
  }
  auto negotiate = ParseIcNegotiate(packet);
  if (!negotiate) return tl::unexpected(std::move(negotiate.error()));
  if (negotiate->framework_count != 1 || negotiate->message_count != 1) {
    return MakeError(ErrorCode::kUnsupported,
                     "IC negotiate: guest found no common version (counts {}/{})",
                     negotiate->framework_count, negotiate->message_count);
  }
  return IcNegotiatedVersions{negotiate->framework_versions[0], negotiate->message_versions[0]};
}

Expected<HeartbeatMsgData> ParseHeartbeat(const IcPacket& packet) {
  if (packet.header.icmsgtype != kIcMsgTypeHeartbeat) {
    return MakeError(ErrorCode::kMalformed, "IC message type {} is not HEARTBEAT",
                     packet.header.icmsgtype);
  }
  if (packet.body.size() < kHeartbeatMinBodySize) {
    return MakeError(ErrorCode::kMalformed, "IC heartbeat body {} < {}", packet.body.size(),
                     kHeartbeatMinBodySize);
  }
  HeartbeatMsgData data;
  std::memcpy(&data, packet.body.data(), std::min(packet.body.size(), sizeof(data)));
  return data;
}

Expected<std::vector<uint8_t>> EncodeIcNegotiateRequest(
    std::span<const uint32_t> framework_versions, std::span<const uint32_t> message_versions) {
  if (framework_versions.empty() || framework_versions.size() > kIcMaxVersionCount ||
      message_versions.empty() || message_versions.size() > kIcMaxVersionCount) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "IC negotiate needs 1..{} versions of each kind, got {}/{}",
                     kIcMaxVersionCount, framework_versions.size(), message_versions.size());
  }
  const size_t count = framework_versions.size() + message_versions.size();
  const size_t body_size = sizeof(IcMsgNegotiate) + count * sizeof(IcVersion);  // <= 808
  std::vector<uint8_t> packet(kIcHeaderSize + body_size);

  Store(packet, 0,
        VmbusPipeHeader{kIcPipeFlagData, static_cast<uint32_t>(sizeof(IcMsgHeader) + body_size)});
  IcMsgHeader header;
  header.icmsgtype = kIcMsgTypeNegotiate;  // header versions stay 0.0 (OpenVMM)
  header.icmsgsize = static_cast<uint16_t>(body_size);
  header.icflags = kIcFlagTransaction | kIcFlagRequest;
  Store(packet, kIcMsgHeaderOffset, header);
  Store(packet, kNegotiateOffset,
        IcMsgNegotiate{static_cast<uint16_t>(framework_versions.size()),
                       static_cast<uint16_t>(message_versions.size()), 0});
  size_t offset = kVersionsOffset;
  for (uint32_t v : framework_versions) {
    Store(packet, offset, IcVersion::FromWord(v));
    offset += sizeof(IcVersion);
  }
  for (uint32_t v : message_versions) {
    Store(packet, offset, IcVersion::FromWord(v));
    offset += sizeof(IcVersion);
  }
  return packet;
}

std::vector<uint8_t> EncodeHeartbeatRequest(uint32_t framework_version, uint32_t heartbeat_version,
                                            uint64_t seq_num) {
  std::vector<uint8_t> packet(kIcHeaderSize + sizeof(HeartbeatMsgData));
  Store(packet, 0,
        VmbusPipeHeader{kIcPipeFlagData,
                        static_cast<uint32_t>(sizeof(IcMsgHeader) + sizeof(HeartbeatMsgData))});
  IcMsgHeader header;
  header.icverframe = IcVersion::FromWord(framework_version);
  header.icmsgtype = kIcMsgTypeHeartbeat;
  header.icvermsg = IcVersion::FromWord(heartbeat_version);
  header.icmsgsize = sizeof(HeartbeatMsgData);
  header.icflags = kIcFlagTransaction | kIcFlagRequest;
  Store(packet, kIcMsgHeaderOffset, header);
  HeartbeatMsgData data;
  data.seq_num = seq_num;
  Store(packet, kIcHeaderSize, data);
  return packet;
}

Expected<IcNegotiateReply> PrepareIcNegotiateResponse(std::span<const uint8_t> request,
                                                      std::span<const uint32_t> framework_versions,
                                                      std::span<const uint32_t> service_versions) {
  if (request.size() < kIcHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "IC packet {} < {}-byte header", request.size(),
                     kIcHeaderSize);
  }
  const auto type = Load<uint16_t>(request, kIcMsgTypeOffset);
  if (type != kIcMsgTypeNegotiate) {
    return MakeError(ErrorCode::kInvalidArgument, "IC message type {} is not NEGOTIATE", type);
  }
  IcNegotiateReply reply;
  reply.packet.assign(request.begin(), request.end());
  std::vector<uint8_t>& packet = reply.packet;
  // Linux sets the response flags for every answered packet, whatever the outcome.
  packet[kIcFlagsOffset] = kResponseFlags;

  // Linux needs the two counts before it touches anything else.
  if (request.size() < kNegotiateOffset + offsetof(IcMsgNegotiate, reserved)) {
    reply.outcome = IcNegotiateOutcome::kTruncated;
    return reply;
  }
  Store(packet, kIcMsgSizeOffset, kIcNegotiateResponseMsgSize);
  const auto negotiate = Load<uint32_t>(request, kNegotiateOffset);  // both u16 counts
  const auto frame_count = static_cast<uint16_t>(negotiate & 0xFFFF);
  const auto msg_count = static_cast<uint16_t>(negotiate >> 16);

  // Linux's fallback entries: it starts from "major = count, minor = 0" and overwrites them
  // only when it finds a match, so a refusal carries the counts back in entries 0 and 1.
  IcVersion frame_entry{frame_count, 0};
  IcVersion msg_entry{msg_count, 0};
  IcNegotiateOutcome outcome = IcNegotiateOutcome::kInvalidRequest;

  const size_t needed = kVersionsOffset + (size_t{frame_count} + msg_count) * sizeof(IcVersion);
  if (frame_count <= kIcMaxVersionCount && msg_count <= kIcMaxVersionCount &&
      needed <= request.size()) {
    std::array<uint32_t, kIcMaxVersionCount> host_frames{};
    std::array<uint32_t, kIcMaxVersionCount> host_msgs{};
    for (size_t i = 0; i < frame_count; ++i) {
      host_frames[i] = Load<IcVersion>(request, kVersionsOffset + i * 4).ToWord();
    }
    for (size_t i = 0; i < msg_count; ++i) {
      host_msgs[i] = Load<IcVersion>(request, kVersionsOffset + (frame_count + i) * 4).ToWord();
    }
    uint32_t chosen_frame = 0;
    uint32_t chosen_msg = 0;
    if (!PickFirstCommon(framework_versions, {host_frames.data(), frame_count}, &chosen_frame)) {
      outcome = IcNegotiateOutcome::kNoCommonFramework;
    } else {
      frame_entry = IcVersion::FromWord(chosen_frame);
      if (!PickFirstCommon(service_versions, {host_msgs.data(), msg_count}, &chosen_msg)) {
        outcome = IcNegotiateOutcome::kNoCommonService;
      } else {
        msg_entry = IcVersion::FromWord(chosen_msg);
        outcome = IcNegotiateOutcome::kAgreed;
        reply.framework_version = chosen_frame;
        reply.service_version = chosen_msg;
      }
    }
  }

  const uint16_t answer_count = outcome == IcNegotiateOutcome::kAgreed ? 1 : 0;
  Store(packet, kNegotiateOffset + offsetof(IcMsgNegotiate, icframe_vercnt), answer_count);
  Store(packet, kNegotiateOffset + offsetof(IcMsgNegotiate, icmsg_vercnt), answer_count);
  StoreVersionEntry(packet, 0, frame_entry);
  StoreVersionEntry(packet, 1, msg_entry);
  reply.outcome = outcome;
  return reply;
}

Expected<std::vector<uint8_t>> PrepareHeartbeatResponse(std::span<const uint8_t> request) {
  if (request.size() < kIcHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "IC packet {} < {}-byte header", request.size(),
                     kIcHeaderSize);
  }
  const auto type = Load<uint16_t>(request, kIcMsgTypeOffset);
  if (type == kIcMsgTypeNegotiate) {
    return MakeError(ErrorCode::kInvalidArgument, "IC NEGOTIATE needs PrepareIcNegotiateResponse");
  }
  std::vector<uint8_t> packet(request.begin(), request.end());
  if (type == kIcMsgTypeHeartbeat) {
    // Linux checks only that seq_num is present, not the reserved words (the host may not fill
    // them), and bases the check on the packet length rather than icmsgsize.
    if (request.size() < kIcHeaderSize + kHeartbeatMinBodySize) {
      return MakeError(ErrorCode::kMalformed, "IC heartbeat packet {} < {}", request.size(),
                       kIcHeaderSize + kHeartbeatMinBodySize);
    }
    const auto seq = Load<uint64_t>(request, kIcHeaderSize);
    Store(packet, kIcHeaderSize, static_cast<uint64_t>(seq + 1));  // wraps like Linux's u64
  } else {
    Store(packet, kIcStatusOffset, kIcStatusFail);
  }
  packet[kIcFlagsOffset] = kResponseFlags;
  return packet;
}

}  // namespace uvmbus::wire
