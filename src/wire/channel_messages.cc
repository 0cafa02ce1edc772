#include "wire/channel_messages.h"

#include <bit>

namespace uvmbus::wire {
namespace {

// Structs are copied to/from the wire with memcpy; the wire is little-endian (spec 0).
static_assert(std::endian::native == std::endian::little,
              "wire structs are memcpy'd: a big-endian host needs byte swapping");

struct TypeInfo {
  std::string_view name;
  Direction direction;
  size_t min_size;
};

// Spec 2.2: one row per type number. min_size is the base form (GPADL: the fixed part).
constexpr std::array<TypeInfo, static_cast<size_t>(ChannelMessageType::kCount)> kTypeInfo = {{
    {"INVALID", Direction::kHostToGuest, 0},
    {"OFFERCHANNEL", Direction::kHostToGuest, OfferChannel::kWireSize},
    {"RESCIND_CHANNELOFFER", Direction::kHostToGuest, RescindChannelOffer::kWireSize},
    {"REQUESTOFFERS", Direction::kGuestToHost, RequestOffers::kWireSize},
    {"ALLOFFERS_DELIVERED", Direction::kHostToGuest, AllOffersDelivered::kWireSize},
    {"OPENCHANNEL", Direction::kGuestToHost, OpenChannel::kWireSize},
    {"OPENCHANNEL_RESULT", Direction::kHostToGuest, OpenChannelResult::kWireSize},
    {"CLOSECHANNEL", Direction::kGuestToHost, CloseChannel::kWireSize},
    {"GPADL_HEADER", Direction::kGuestToHost, GpadlHeader::kWireSize},
    {"GPADL_BODY", Direction::kGuestToHost, GpadlBody::kWireSize},
    {"GPADL_CREATED", Direction::kHostToGuest, GpadlCreated::kWireSize},
    {"GPADL_TEARDOWN", Direction::kGuestToHost, GpadlTeardown::kWireSize},
    {"GPADL_TORNDOWN", Direction::kHostToGuest, GpadlTorndown::kWireSize},
    {"RELID_RELEASED", Direction::kGuestToHost, RelidReleased::kWireSize},
    {"INITIATE_CONTACT", Direction::kGuestToHost, InitiateContact::kWireSize},
    {"VERSION_RESPONSE", Direction::kHostToGuest, VersionResponse::kWireSize},
    {"UNLOAD", Direction::kGuestToHost, Unload::kWireSize},
    {"UNLOAD_RESPONSE", Direction::kHostToGuest, UnloadResponse::kWireSize},
    {"OPEN_RESERVED_CHANNEL", Direction::kGuestToHost, OpenReservedChannel::kWireSize},
    {"CLOSE_RESERVED_CHANNEL", Direction::kGuestToHost, CloseReservedChannel::kWireSize},
    {"CLOSE_RESERVED_RESPONSE", Direction::kHostToGuest, CloseReservedResponse::kWireSize},
    {"TL_CONNECT_REQUEST", Direction::kGuestToHost, TlConnectRequest::kWireSize},
    {"MODIFYCHANNEL", Direction::kGuestToHost, ModifyChannel::kWireSize},
    {"TL_CONNECT_RESULT", Direction::kHostToGuest, TlConnectResult::kWireSize},
    {"MODIFYCHANNEL_RESPONSE", Direction::kHostToGuest, ModifyChannelResponse::kWireSize},
    {"MODIFY_CONNECTION", Direction::kGuestToHost, ModifyConnection::kWireSize},
    {"MODIFY_CONNECTION_RESPONSE", Direction::kHostToGuest, ModifyConnectionResponse::kWireSize},
    {"PAUSE", Direction::kGuestToHost, Pause::kWireSize},
    {"PAUSE_RESPONSE", Direction::kHostToGuest, PauseResponse::kWireSize},
    {"RESUME", Direction::kGuestToHost, Resume::kWireSize},
}};

constexpr std::string_view DirectionName(Direction dir) {
  return dir == Direction::kHostToGuest ? "host-to-guest" : "guest-to-host";
}

// Copies the leading bytes of `payload` into a value-initialised T. The caller has checked
// payload.size() >= T::kWireSize; bytes beyond sizeof(T) are ignored.
template <typename T>
T CopyOut(std::span<const uint8_t> payload) {
  T value{};
  std::memcpy(&value, payload.data(), std::min(payload.size(), sizeof(T)));
  return value;
}

// Copies the whole u64 words of range data that follow a GPADL message's fixed part. A
// trailing partial word is not data (range data is u64-granular), so it is dropped.
template <typename Msg>
Msg ParseGpadl(std::span<const uint8_t> payload) {
  Msg msg;
  msg.fixed = CopyOut<decltype(msg.fixed)>(payload);
  constexpr size_t kFixed = decltype(msg.fixed)::kWireSize;
  const size_t words = std::min((payload.size() - kFixed) / 8, msg.range_words.size());
  std::memcpy(msg.range_words.data(), payload.data() + kFixed, words * 8);
  msg.range_word_count = static_cast<uint8_t>(words);
  return msg;
}

template <typename Msg>
MessageBuffer EncodeGpadl(const Msg& msg) {
  MessageBuffer out;
  constexpr size_t kFixed = decltype(msg.fixed)::kWireSize;
  std::memcpy(out.bytes.data(), &msg.fixed, kFixed);
  const ChannelMessageHeader header{Msg::kType, 0};
  std::memcpy(out.bytes.data(), &header, sizeof(header));
  const auto words = msg.words();
  std::memcpy(out.bytes.data() + kFixed, words.data(), words.size_bytes());
  out.size = RoundUpPayloadSize(kFixed + words.size_bytes());
  return out;
}

}  // namespace

std::string_view ChannelMessageName(ChannelMessageType type) {
  const auto index = static_cast<uint32_t>(type);
  if (index >= kTypeInfo.size()) return "UNKNOWN";
  return kTypeInfo[index].name;
}

Direction ChannelMessageDirection(ChannelMessageType type) {
  const auto index = static_cast<uint32_t>(type);
  if (index >= kTypeInfo.size()) return Direction::kHostToGuest;
  return kTypeInfo[index].direction;
}

size_t ChannelMessageMinSize(ChannelMessageType type) {
  const auto index = static_cast<uint32_t>(type);
  if (index >= kTypeInfo.size()) return 0;
  return kTypeInfo[index].min_size;
}

Expected<ChannelMessage> ParseChannelMessage(std::span<const uint8_t> payload, Direction dir) {
  // Size first (M3): a SynIC slot carries at most 240 payload bytes; anything larger means the
  // caller's copy (or the peer's payload_size) is corrupt.
  if (payload.size() > kMaxChannelMessageSize) {
    return MakeError(ErrorCode::kMalformed, "channel message payload {} > {}", payload.size(),
                     kMaxChannelMessageSize);
  }
  if (payload.size() < kChannelMessageHeaderSize) {
    return MakeError(ErrorCode::kMalformed, "channel message payload {} < {}-byte header",
                     payload.size(), kChannelMessageHeaderSize);
  }
  uint32_t raw_type = 0;
  std::memcpy(&raw_type, payload.data(), sizeof(raw_type));
  // M2: the type indexes a table, so it is range-checked before anything else uses it.
  if (raw_type == 0) {
    return MakeError(ErrorCode::kMalformed, "channel message type 0 (INVALID)");
  }
  if (raw_type >= static_cast<uint32_t>(ChannelMessageType::kCount)) {
    return MakeError(ErrorCode::kMalformed, "channel message type {} out of range", raw_type);
  }
  const auto type = static_cast<ChannelMessageType>(raw_type);
  const TypeInfo& info = kTypeInfo[raw_type];
  // M4: a message that only the other side may send has no handler here.
  if (info.direction != dir) {
    return MakeError(ErrorCode::kMalformed, "{} is {}, received {}", info.name,
                     DirectionName(info.direction), DirectionName(dir));
  }
  // M5 / H2: never use a partial structure.
  if (payload.size() < info.min_size) {
    return MakeError(ErrorCode::kMalformed, "{} payload {} < {}", info.name, payload.size(),
                     info.min_size);
  }

  const size_t size = payload.size();
  switch (type) {
    case ChannelMessageType::kOfferChannel:
      return CopyOut<OfferChannel>(payload);
    case ChannelMessageType::kRescindChannelOffer:
      return CopyOut<RescindChannelOffer>(payload);
    case ChannelMessageType::kRequestOffers:
      return CopyOut<RequestOffers>(payload);
    case ChannelMessageType::kAllOffersDelivered:
      return CopyOut<AllOffersDelivered>(payload);
    case ChannelMessageType::kOpenChannel:
      if (size >= OpenChannel2::kWireSize) return CopyOut<OpenChannel2>(payload);
      return CopyOut<OpenChannel>(payload);
    case ChannelMessageType::kOpenChannelResult:
      return CopyOut<OpenChannelResult>(payload);
    case ChannelMessageType::kCloseChannel:
      return CopyOut<CloseChannel>(payload);
    case ChannelMessageType::kGpadlHeader:
      return ParseGpadl<GpadlHeaderMessage>(payload);
    case ChannelMessageType::kGpadlBody:
      return ParseGpadl<GpadlBodyMessage>(payload);
    case ChannelMessageType::kGpadlCreated:
      return CopyOut<GpadlCreated>(payload);
    case ChannelMessageType::kGpadlTeardown:
      return CopyOut<GpadlTeardown>(payload);
    case ChannelMessageType::kGpadlTorndown:
      return CopyOut<GpadlTorndown>(payload);
    case ChannelMessageType::kRelidReleased:
      return CopyOut<RelidReleased>(payload);
    case ChannelMessageType::kInitiateContact:
      // The host tells the forms apart by size (spec 2.3); whether client_id was required is
      // the host's check (H6).
      if (size >= InitiateContact2::kWireSize) return CopyOut<InitiateContact2>(payload);
      return CopyOut<InitiateContact>(payload);
    case ChannelMessageType::kVersionResponse:
      if (size >= VersionResponse3::kWireSize) return CopyOut<VersionResponse3>(payload);
      if (size >= VersionResponse2::kWireSize) return CopyOut<VersionResponse2>(payload);
      return CopyOut<VersionResponse>(payload);
    case ChannelMessageType::kUnload:
      return CopyOut<Unload>(payload);
    case ChannelMessageType::kUnloadResponse:
      return CopyOut<UnloadResponse>(payload);
    case ChannelMessageType::kOpenReservedChannel:
      return CopyOut<OpenReservedChannel>(payload);
    case ChannelMessageType::kCloseReservedChannel:
      return CopyOut<CloseReservedChannel>(payload);
    case ChannelMessageType::kCloseReservedResponse:
      return CopyOut<CloseReservedResponse>(payload);
    case ChannelMessageType::kTlConnectRequest:
      // Some clients keep sending the 40-byte form after 5.2 (spec 2.3).
      if (size >= TlConnectRequest2::kWireSize) return CopyOut<TlConnectRequest2>(payload);
      return CopyOut<TlConnectRequest>(payload);
    case ChannelMessageType::kModifyChannel:
      return CopyOut<ModifyChannel>(payload);
    case ChannelMessageType::kTlConnectResult:
      return CopyOut<TlConnectResult>(payload);
    case ChannelMessageType::kModifyChannelResponse:
      return CopyOut<ModifyChannelResponse>(payload);
    case ChannelMessageType::kModifyConnection:
      return CopyOut<ModifyConnection>(payload);
    case ChannelMessageType::kModifyConnectionResponse:
      return CopyOut<ModifyConnectionResponse>(payload);
    case ChannelMessageType::kPause:
      return CopyOut<Pause>(payload);
    case ChannelMessageType::kPauseResponse:
      return CopyOut<PauseResponse>(payload);
    case ChannelMessageType::kResume:
      return CopyOut<Resume>(payload);
    case ChannelMessageType::kInvalid:
    case ChannelMessageType::kCount:
      break;
  }
  // Unreachable: the type was range-checked above.
  return MakeError(ErrorCode::kInternal, "unhandled channel message type {}", raw_type);
}

ChannelMessageType TypeOf(const ChannelMessage& msg) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, msg);
}

MessageBuffer Encode(const GpadlHeaderMessage& msg) { return EncodeGpadl(msg); }

MessageBuffer Encode(const GpadlBodyMessage& msg) { return EncodeGpadl(msg); }

MessageBuffer Encode(const ChannelMessage& msg) {
  return std::visit([](const auto& m) { return Encode(m); }, msg);
}

}  // namespace uvmbus::wire
