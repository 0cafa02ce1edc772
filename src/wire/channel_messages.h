// File: wire/channel_messages.h
//
// What: every VMBus channel-management ("ChannelMsg") message as a checked POD struct, a
// validating parser for a received message and an encoder for each struct. A channel message
// is the payload of a SynIC message (at most 240 bytes, header included); this file never
// touches shared memory: the caller copies the SynIC slot out first (spec 9.1 G1) and hands the
// private copy to ParseChannelMessage().
//
//   received bytes --ParseChannelMessage(payload, direction)--> ChannelMessage (std::variant)
//   struct         --Encode(msg)--------------------------------> MessageBuffer (<= 240 bytes)
//
// Layouts are byte-exact with the spec (static_asserts on sizeof and on every field offset the
// spec gives). All fields are little-endian (spec 0); the project only targets little-endian
// hosts, which wire/channel_messages.cc asserts.
//
// Size-dependent forms: INITIATE_CONTACT (40 / 56 with client_id), VERSION_RESPONSE (16 / 20 /
// 40), OPENCHANNEL (148 / 156 OpenChannel2) and TL_CONNECT_REQUEST (40 / 56 with silo_id) parse
// to the *largest form the payload holds*. Each extended form embeds the base form as its first
// member, so a consumer that does not use the extension reads `.base`. The form is only a hint:
// a host must still check the negotiated version/feature flags (e.g. treat a 156-byte
// OPENCHANNEL as the 148-byte form unless guest_specified_signal_parameters or
// channel_interrupt_redirection was negotiated; some clients send maximum-length messages).
//
// Spec: sections 2.1 (header), 2.2 (type numbers, directions, minimum sizes), 2.3 (layouts),
//       9.2 M2-M5 and 9.3 H2 (validation), 10.1 V2 (payload rounded up to 8 bytes).
// Linux: include/linux/hyperv.h (struct vmbus_channel_*), drivers/hv/channel_mgmt.c
//        (channel_message_table, min_payload_len).
// OpenVMM: vm/devices/vmbus/vmbus_core/src/protocol.rs.
// Thread-safety: value types and pure functions; safe to use from any thread.
#ifndef UVMBUS_WIRE_CHANNEL_MESSAGES_H_
#define UVMBUS_WIRE_CHANNEL_MESSAGES_H_

#include <algorithm>
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
#include "common/guid.h"

namespace uvmbus::wire {

// ---------------------------------------------------------------------------------------------
// Limits and common pieces (spec 2, 2.1)
// ---------------------------------------------------------------------------------------------

// Largest channel message, header included (the SynIC message payload, spec 1.3).
inline constexpr size_t kMaxChannelMessageSize = 240;
// Every channel message begins with this many header bytes.
inline constexpr size_t kChannelMessageHeaderSize = 8;

// Message type numbers (spec 2.2). `msgtype` on the wire is a u32; values >= kCount are invalid.
enum class ChannelMessageType : uint32_t {
  kInvalid = 0,
  kOfferChannel = 1,
  kRescindChannelOffer = 2,
  kRequestOffers = 3,
  kAllOffersDelivered = 4,
  kOpenChannel = 5,
  kOpenChannelResult = 6,
  kCloseChannel = 7,
  kGpadlHeader = 8,
  kGpadlBody = 9,
  kGpadlCreated = 10,
  kGpadlTeardown = 11,
  kGpadlTorndown = 12,
  kRelidReleased = 13,
  kInitiateContact = 14,
  kVersionResponse = 15,
  kUnload = 16,
  kUnloadResponse = 17,
  kOpenReservedChannel = 18,
  kCloseReservedChannel = 19,
  kCloseReservedResponse = 20,
  kTlConnectRequest = 21,
  kModifyChannel = 22,
  kTlConnectResult = 23,
  kModifyChannelResponse = 24,
  kModifyConnection = 25,
  kModifyConnectionResponse = 26,
  kPause = 27,
  kPauseResponse = 28,
  kResume = 29,
  kCount = 30,  // first invalid value
};

// The way a message travels. Each type has exactly one legal direction (spec 2.2); type 0 none.
enum class Direction : uint8_t {
  kHostToGuest,
  kGuestToHost,
};

// Log name of a type as spelled by the spec/Linux ("OFFERCHANNEL", "GPADL_HEADER", ...);
// "UNKNOWN" for values >= kCount.
std::string_view ChannelMessageName(ChannelMessageType type);
// The legal direction of `type`. Precondition: 1 <= type < kCount (returns kHostToGuest else).
Direction ChannelMessageDirection(ChannelMessageType type);
// Smallest payload accepted for `type` (the size of its base form; GPADL messages: the fixed
// part). 0 for kInvalid and values >= kCount.
size_t ChannelMessageMinSize(ChannelMessageType type);

// 8-byte header of every message (spec 2.1). Linux: struct vmbus_channel_message_header.
struct ChannelMessageHeader {
  ChannelMessageType msgtype = ChannelMessageType::kInvalid;
  uint32_t padding = 0;  // zero on send, ignored on receive
  friend bool operator==(const ChannelMessageHeader&, const ChannelMessageHeader&) = default;
};
static_assert(sizeof(ChannelMessageHeader) == 8);
static_assert(offsetof(ChannelMessageHeader, msgtype) == 0);
static_assert(offsetof(ChannelMessageHeader, padding) == 4);

// An encoded message ready to post: `bytes[0, size)` is the payload. `size` is the message's
// wire size rounded up to a multiple of 8 and the tail is zero-filled (spec 10.1 V2: Linux drops
// a VERSION_RESPONSE shorter than 16; rounding every payload is safe for all receivers).
struct MessageBuffer {
  std::array<uint8_t, kMaxChannelMessageSize> bytes{};
  uint8_t size = 0;

  std::span<const uint8_t> span() const { return {bytes.data(), size}; }
};

// ---------------------------------------------------------------------------------------------
// Constants used in message fields
// ---------------------------------------------------------------------------------------------

// OFFERCHANNEL.chn_flags (spec 2.3 "Offer flags"). 0x2/0x4/0x8 have 6.0 meanings only with the
// matching feature flag (spec 10.1 V5): a host leaves them clear otherwise.
inline constexpr uint16_t kOfferFlagEnumerateDeviceInterface = 0x0001;
// Old name: SERVER_SUPPORTS_TRANSFER_PAGES.
inline constexpr uint16_t kOfferFlagConfidentialRingBuffer = 0x0002;
// Old name: SERVER_SUPPORTS_GPADLS.
inline constexpr uint16_t kOfferFlagConfidentialExternalMemory = 0x0004;
inline constexpr uint16_t kOfferFlagRequirePinnedExternalMemory = 0x0008;
inline constexpr uint16_t kOfferFlagNamedPipeMode = 0x0010;
inline constexpr uint16_t kOfferFlagLoopbackOffer = 0x0100;
inline constexpr uint16_t kOfferFlagParentOffer = 0x0200;
inline constexpr uint16_t kOfferFlagRequestMonitoredNotification = 0x0400;
inline constexpr uint16_t kOfferFlagTlnpiProviderOffer = 0x2000;  // hv_sock offer

// OFFERCHANNEL.user_def pipe mode (u32 at user_def[0] when NAMED_PIPE_MODE is set).
inline constexpr uint32_t kPipeModeByte = 0;
inline constexpr uint32_t kPipeModeMessage = 4;

// monitorid a host sends when it allocates no monitor (spec 10.1 V7, OpenVMM).
inline constexpr uint8_t kNoMonitorId = 0xFF;
// OPENCHANNEL.target_vp meaning "interrupts disabled" (OpenVMM; spec 9.3 H21).
inline constexpr uint32_t kTargetVpNone = 0xFFFFFFFF;
// Status a host puts in GPADL_CREATED.creation_status on failure (OpenVMM STATUS_UNSUCCESSFUL).
inline constexpr uint32_t kStatusUnsuccessful = 0x8000FFFF;

// VERSION_RESPONSE.connection_state / MODIFY_CONNECTION_RESPONSE.connection_state.
inline constexpr uint8_t kConnectionStateSuccessful = 0;
inline constexpr uint8_t kConnectionStateFailedLowResources = 1;
inline constexpr uint8_t kConnectionStateFailedUnknownFailure = 2;

// OpenChannel2.flags bit 0.
inline constexpr uint16_t kOpenChannelFlagRedirectInterrupt = 0x0001;

// ---------------------------------------------------------------------------------------------
// Message structs (spec 2.3). Each has:
//   kType     - its type number;
//   kWireSize - its size on the wire (== sizeof except MODIFY_CONNECTION_RESPONSE);
//   header    - pre-set to kType, so `OpenChannel msg; msg.child_relid = 5;` is ready to encode.
// Reserved fields are zero on send and ignored on receive.
// ---------------------------------------------------------------------------------------------

// OFFERCHANNEL (1), 196 bytes, host->guest. Linux: struct vmbus_channel_offer_channel (the
// 176 bytes at 8..183 are struct vmbus_channel_offer).
struct OfferChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kOfferChannel;
  static constexpr size_t kWireSize = 196;
  static constexpr size_t kUserDefinedBytes = 120;

  ChannelMessageHeader header{kType, 0};
  Guid if_type{};                            // device class
  Guid if_instance{};                        // device instance
  uint8_t reserved1[8] = {};                 // DPDK: channel latency; zero in Linux/OpenVMM (V4)
  uint8_t reserved2[8] = {};                 // DPDK: revision, server-context size; zero (V4)
  uint16_t chn_flags = 0;                    // kOfferFlag*
  uint16_t mmio_megabytes = 0;               // MMIO space wanted (MiB)
  uint8_t user_def[kUserDefinedBytes] = {};  // device specific; pipe offers: u32 pipe_mode @60
  uint16_t sub_channel_index = 0;            // 0 = primary (meaningful from 2.4)
  uint16_t reserved3 = 0;                    // OpenVMM: mmio_megabytes_optional
  uint32_t child_relid = 0;
  uint8_t monitorid = kNoMonitorId;     // 0..127 when monitor_allocated
  uint8_t monitor_allocated = 0;        // bit 0 = monitor allocated; bits 1..7 reserved
  uint16_t is_dedicated_interrupt = 0;  // bit 0 = dedicated interrupt (from 1.1); bits 1..15 rsvd
  uint32_t connection_id = 0;           // guest->host event connection (from 1.1)

  bool MonitorAllocated() const { return (monitor_allocated & 1) != 0; }
  bool DedicatedInterrupt() const { return (is_dedicated_interrupt & 1) != 0; }
  friend bool operator==(const OfferChannel&, const OfferChannel&) = default;
};
static_assert(sizeof(OfferChannel) == OfferChannel::kWireSize);
static_assert(offsetof(OfferChannel, header) == 0);
static_assert(offsetof(OfferChannel, if_type) == 8);
static_assert(offsetof(OfferChannel, if_instance) == 24);
static_assert(offsetof(OfferChannel, reserved1) == 40);
static_assert(offsetof(OfferChannel, reserved2) == 48);
static_assert(offsetof(OfferChannel, chn_flags) == 56);
static_assert(offsetof(OfferChannel, mmio_megabytes) == 58);
static_assert(offsetof(OfferChannel, user_def) == 60);
static_assert(offsetof(OfferChannel, sub_channel_index) == 180);
static_assert(offsetof(OfferChannel, reserved3) == 182);
static_assert(offsetof(OfferChannel, child_relid) == 184);
static_assert(offsetof(OfferChannel, monitorid) == 188);
static_assert(offsetof(OfferChannel, monitor_allocated) == 189);
static_assert(offsetof(OfferChannel, is_dedicated_interrupt) == 190);
static_assert(offsetof(OfferChannel, connection_id) == 192);

// RESCIND_CHANNELOFFER (2), 12 bytes, host->guest.
struct RescindChannelOffer {
  static constexpr ChannelMessageType kType = ChannelMessageType::kRescindChannelOffer;
  static constexpr size_t kWireSize = 12;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  friend bool operator==(const RescindChannelOffer&, const RescindChannelOffer&) = default;
};
static_assert(sizeof(RescindChannelOffer) == RescindChannelOffer::kWireSize);
static_assert(offsetof(RescindChannelOffer, child_relid) == 8);

// Messages that are only a header (8 bytes): REQUESTOFFERS (3), ALLOFFERS_DELIVERED (4),
// UNLOAD (16), UNLOAD_RESPONSE (17), PAUSE (27), PAUSE_RESPONSE (28), RESUME (29).
template <ChannelMessageType kT>
struct HeaderOnlyMessage {
  static constexpr ChannelMessageType kType = kT;
  static constexpr size_t kWireSize = 8;
  ChannelMessageHeader header{kType, 0};
  friend bool operator==(const HeaderOnlyMessage&, const HeaderOnlyMessage&) = default;
};
using RequestOffers = HeaderOnlyMessage<ChannelMessageType::kRequestOffers>;
using AllOffersDelivered = HeaderOnlyMessage<ChannelMessageType::kAllOffersDelivered>;
using Unload = HeaderOnlyMessage<ChannelMessageType::kUnload>;
using UnloadResponse = HeaderOnlyMessage<ChannelMessageType::kUnloadResponse>;
using Pause = HeaderOnlyMessage<ChannelMessageType::kPause>;
using PauseResponse = HeaderOnlyMessage<ChannelMessageType::kPauseResponse>;
using Resume = HeaderOnlyMessage<ChannelMessageType::kResume>;
static_assert(sizeof(RequestOffers) == 8 && sizeof(AllOffersDelivered) == 8 &&
              sizeof(Unload) == 8 && sizeof(UnloadResponse) == 8 && sizeof(Pause) == 8 &&
              sizeof(PauseResponse) == 8 && sizeof(Resume) == 8);

// OPENCHANNEL (5), 148 bytes, guest->host. Linux: struct vmbus_channel_open_channel.
struct OpenChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kOpenChannel;
  static constexpr size_t kWireSize = 148;
  static constexpr size_t kUserDataBytes = 120;

  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t openid = 0;                            // echoed in OPENCHANNEL_RESULT (Linux: relid)
  uint32_t ringbuffer_gpadlhandle = 0;            // GPADL covering both rings
  uint32_t target_vp = 0;                         // VP for host->guest interrupts (from 2.4)
  uint32_t downstream_ringbuffer_pageoffset = 0;  // host->guest ring start, in 4 KiB pages
  uint8_t userdata[kUserDataBytes] = {};          // device specific; netvsc sends zeros
  friend bool operator==(const OpenChannel&, const OpenChannel&) = default;
};
static_assert(sizeof(OpenChannel) == OpenChannel::kWireSize);
static_assert(offsetof(OpenChannel, child_relid) == 8);
static_assert(offsetof(OpenChannel, openid) == 12);
static_assert(offsetof(OpenChannel, ringbuffer_gpadlhandle) == 16);
static_assert(offsetof(OpenChannel, target_vp) == 20);
static_assert(offsetof(OpenChannel, downstream_ringbuffer_pageoffset) == 24);
static_assert(offsetof(OpenChannel, userdata) == 28);

// OPENCHANNEL 6.0 "OpenChannel2" form, 156 bytes (only with guest_specified_signal_parameters
// or channel_interrupt_redirection negotiated).
struct OpenChannel2 {
  static constexpr ChannelMessageType kType = ChannelMessageType::kOpenChannel;
  static constexpr size_t kWireSize = 156;
  OpenChannel base{};
  uint32_t connection_id = 0;  // guest-chosen event connection
  uint16_t event_flag = 0;
  uint16_t flags = 0;  // kOpenChannelFlagRedirectInterrupt
  friend bool operator==(const OpenChannel2&, const OpenChannel2&) = default;
};
static_assert(sizeof(OpenChannel2) == OpenChannel2::kWireSize);
static_assert(offsetof(OpenChannel2, base) == 0);
static_assert(offsetof(OpenChannel2, connection_id) == 148);
static_assert(offsetof(OpenChannel2, event_flag) == 152);
static_assert(offsetof(OpenChannel2, flags) == 154);

// OPENCHANNEL_RESULT (6), 20 bytes, host->guest. Matched by (child_relid, openid).
struct OpenChannelResult {
  static constexpr ChannelMessageType kType = ChannelMessageType::kOpenChannelResult;
  static constexpr size_t kWireSize = 20;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t openid = 0;
  uint32_t status = 0;  // 0 = success
  friend bool operator==(const OpenChannelResult&, const OpenChannelResult&) = default;
};
static_assert(sizeof(OpenChannelResult) == OpenChannelResult::kWireSize);
static_assert(offsetof(OpenChannelResult, child_relid) == 8);
static_assert(offsetof(OpenChannelResult, openid) == 12);
static_assert(offsetof(OpenChannelResult, status) == 16);

// CLOSECHANNEL (7), 12 bytes, guest->host. No reply exists.
struct CloseChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kCloseChannel;
  static constexpr size_t kWireSize = 12;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  friend bool operator==(const CloseChannel&, const CloseChannel&) = default;
};
static_assert(sizeof(CloseChannel) == CloseChannel::kWireSize);
static_assert(offsetof(CloseChannel, child_relid) == 8);

// GPADL_HEADER (8) fixed part, 20 bytes, guest->host; range data follows (spec 2.9).
// Linux: struct vmbus_channel_gpadl_header.
struct GpadlHeader {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlHeader;
  static constexpr size_t kWireSize = 20;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t gpadl = 0;         // guest-chosen handle
  uint16_t range_buflen = 0;  // bytes of range data in this and all following body messages
  uint16_t rangecount = 0;    // number of GPA ranges
  friend bool operator==(const GpadlHeader&, const GpadlHeader&) = default;
};
static_assert(sizeof(GpadlHeader) == GpadlHeader::kWireSize);
static_assert(offsetof(GpadlHeader, child_relid) == 8);
static_assert(offsetof(GpadlHeader, gpadl) == 12);
static_assert(offsetof(GpadlHeader, range_buflen) == 16);
static_assert(offsetof(GpadlHeader, rangecount) == 18);

// GPADL_BODY (9) fixed part, 16 bytes, guest->host; PFNs follow. Linux: struct
// vmbus_channel_gpadl_body.
struct GpadlBody {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlBody;
  static constexpr size_t kWireSize = 16;
  ChannelMessageHeader header{kType, 0};
  uint32_t msgnumber = 0;  // Linux sends 0; ignored by hosts (V17)
  uint32_t gpadl = 0;
  friend bool operator==(const GpadlBody&, const GpadlBody&) = default;
};
static_assert(sizeof(GpadlBody) == GpadlBody::kWireSize);
static_assert(offsetof(GpadlBody, msgnumber) == 8);
static_assert(offsetof(GpadlBody, gpadl) == 12);

// Range data words (u64, little-endian) that fit in one message: after the 20-byte header 27
// (the first is the first range's {byte_count, byte_offset} word), after the 16-byte body 28.
inline constexpr size_t kGpadlHeaderMaxRangeWords =
    (kMaxChannelMessageSize - GpadlHeader::kWireSize) / 8;  // 27
inline constexpr size_t kGpadlBodyMaxRangeWords =
    (kMaxChannelMessageSize - GpadlBody::kWireSize) / 8;  // 28
static_assert(kGpadlHeaderMaxRangeWords == 27 && kGpadlBodyMaxRangeWords == 28);

// A parsed GPADL_HEADER: the fixed part plus the range data it carried (whole u64 words only;
// a trailing partial word is dropped). No heap allocation.
struct GpadlHeaderMessage {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlHeader;
  GpadlHeader fixed{};
  std::array<uint64_t, kGpadlHeaderMaxRangeWords> range_words{};
  uint8_t range_word_count = 0;  // <= kGpadlHeaderMaxRangeWords

  std::span<const uint64_t> words() const {
    return {range_words.data(), std::min<size_t>(range_word_count, range_words.size())};
  }
  friend bool operator==(const GpadlHeaderMessage&, const GpadlHeaderMessage&) = default;
};

// A parsed GPADL_BODY: the fixed part plus the PFN words it carried.
struct GpadlBodyMessage {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlBody;
  GpadlBody fixed{};
  std::array<uint64_t, kGpadlBodyMaxRangeWords> range_words{};
  uint8_t range_word_count = 0;  // <= kGpadlBodyMaxRangeWords

  std::span<const uint64_t> words() const {
    return {range_words.data(), std::min<size_t>(range_word_count, range_words.size())};
  }
  friend bool operator==(const GpadlBodyMessage&, const GpadlBodyMessage&) = default;
};

// GPADL_CREATED (10), 20 bytes, host->guest. Matched by (child_relid, gpadl).
struct GpadlCreated {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlCreated;
  static constexpr size_t kWireSize = 20;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t gpadl = 0;
  uint32_t creation_status = 0;  // 0 = success; OpenVMM failure: kStatusUnsuccessful
  friend bool operator==(const GpadlCreated&, const GpadlCreated&) = default;
};
static_assert(sizeof(GpadlCreated) == GpadlCreated::kWireSize);
static_assert(offsetof(GpadlCreated, child_relid) == 8);
static_assert(offsetof(GpadlCreated, gpadl) == 12);
static_assert(offsetof(GpadlCreated, creation_status) == 16);

// GPADL_TEARDOWN (11), 16 bytes, guest->host.
struct GpadlTeardown {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlTeardown;
  static constexpr size_t kWireSize = 16;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t gpadl = 0;
  friend bool operator==(const GpadlTeardown&, const GpadlTeardown&) = default;
};
static_assert(sizeof(GpadlTeardown) == GpadlTeardown::kWireSize);
static_assert(offsetof(GpadlTeardown, child_relid) == 8);
static_assert(offsetof(GpadlTeardown, gpadl) == 12);

// GPADL_TORNDOWN (12), 12 bytes, host->guest (Linux matches by handle only).
struct GpadlTorndown {
  static constexpr ChannelMessageType kType = ChannelMessageType::kGpadlTorndown;
  static constexpr size_t kWireSize = 12;
  ChannelMessageHeader header{kType, 0};
  uint32_t gpadl = 0;
  friend bool operator==(const GpadlTorndown&, const GpadlTorndown&) = default;
};
static_assert(sizeof(GpadlTorndown) == GpadlTorndown::kWireSize);
static_assert(offsetof(GpadlTorndown, gpadl) == 8);

// RELID_RELEASED (13), 12 bytes, guest->host.
struct RelidReleased {
  static constexpr ChannelMessageType kType = ChannelMessageType::kRelidReleased;
  static constexpr size_t kWireSize = 12;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  friend bool operator==(const RelidReleased&, const RelidReleased&) = default;
};
static_assert(sizeof(RelidReleased) == RelidReleased::kWireSize);
static_assert(offsetof(RelidReleased, child_relid) == 8);

// INITIATE_CONTACT (14), 40 bytes, guest->host. Linux: struct vmbus_channel_initiate_contact.
// Bytes 16..23 are `interrupt_page` (a GPA) for versions < 5.0 and {msg_sint, msg_vtl,
// reserved, feature_flags} for >= 5.0. The fields below are the >= 5.0 view; interrupt_page()
// and set_interrupt_page() give the < 5.0 view of the same 8 bytes.
struct InitiateContact {
  static constexpr ChannelMessageType kType = ChannelMessageType::kInitiateContact;
  static constexpr size_t kWireSize = 40;
  ChannelMessageHeader header{kType, 0};
  uint32_t vmbus_version_requested = 0;
  uint32_t target_vcpu = 0;  // VP for channel messages (honoured from 3.0)
  uint8_t msg_sint = 0;      // >= 5.0 (Linux: 2)
  uint8_t msg_vtl = 0;       // >= 5.0
  uint16_t reserved = 0;
  uint32_t feature_flags = 0;  // 6.0 only (kFeature*), else 0
  uint64_t monitor_page1 = 0;  // parent->child monitor page GPA
  uint64_t monitor_page2 = 0;  // child->parent monitor page GPA

  // The < 5.0 interpretation of bytes 16..23 (little-endian u64).
  uint64_t interrupt_page() const {
    return static_cast<uint64_t>(msg_sint) | static_cast<uint64_t>(msg_vtl) << 8 |
           static_cast<uint64_t>(reserved) << 16 | static_cast<uint64_t>(feature_flags) << 32;
  }
  void set_interrupt_page(uint64_t gpa) {
    msg_sint = static_cast<uint8_t>(gpa);
    msg_vtl = static_cast<uint8_t>(gpa >> 8);
    reserved = static_cast<uint16_t>(gpa >> 16);
    feature_flags = static_cast<uint32_t>(gpa >> 32);
  }
  friend bool operator==(const InitiateContact&, const InitiateContact&) = default;
};
static_assert(sizeof(InitiateContact) == InitiateContact::kWireSize);
static_assert(offsetof(InitiateContact, vmbus_version_requested) == 8);
static_assert(offsetof(InitiateContact, target_vcpu) == 12);
static_assert(offsetof(InitiateContact, msg_sint) == 16);  // == interrupt_page for < 5.0
static_assert(offsetof(InitiateContact, msg_vtl) == 17);
static_assert(offsetof(InitiateContact, reserved) == 18);
static_assert(offsetof(InitiateContact, feature_flags) == 20);
static_assert(offsetof(InitiateContact, monitor_page1) == 24);
static_assert(offsetof(InitiateContact, monitor_page2) == 32);

// INITIATE_CONTACT 6.0 "InitiateContact2" form, 56 bytes (feature client_id requested).
struct InitiateContact2 {
  static constexpr ChannelMessageType kType = ChannelMessageType::kInitiateContact;
  static constexpr size_t kWireSize = 56;
  InitiateContact base{};
  Guid client_id{};
  friend bool operator==(const InitiateContact2&, const InitiateContact2&) = default;
};
static_assert(sizeof(InitiateContact2) == InitiateContact2::kWireSize);
static_assert(offsetof(InitiateContact2, base) == 0);
static_assert(offsetof(InitiateContact2, client_id) == 40);

// VERSION_RESPONSE (15), 16 bytes, host->guest. Linux: struct vmbus_channel_version_response.
struct VersionResponse {
  static constexpr ChannelMessageType kType = ChannelMessageType::kVersionResponse;
  static constexpr size_t kWireSize = 16;
  ChannelMessageHeader header{kType, 0};
  uint8_t version_supported = 0;  // non-zero = accepted
  uint8_t connection_state = kConnectionStateSuccessful;
  uint16_t padding = 0;
  uint32_t msg_conn_id = 0;  // >= 5.0: message connection id to use from now on (V1)
  friend bool operator==(const VersionResponse&, const VersionResponse&) = default;
};
static_assert(sizeof(VersionResponse) == VersionResponse::kWireSize);
static_assert(offsetof(VersionResponse, version_supported) == 8);
static_assert(offsetof(VersionResponse, connection_state) == 9);
static_assert(offsetof(VersionResponse, padding) == 10);
static_assert(offsetof(VersionResponse, msg_conn_id) == 12);

// VERSION_RESPONSE 6.0 "VersionResponse2" form, 20 bytes (requested >= 6.0 and supported).
struct VersionResponse2 {
  static constexpr ChannelMessageType kType = ChannelMessageType::kVersionResponse;
  static constexpr size_t kWireSize = 20;
  VersionResponse base{};
  uint32_t supported_features = 0;  // kFeature*: intersection of requested and supported
  friend bool operator==(const VersionResponse2&, const VersionResponse2&) = default;
};
static_assert(sizeof(VersionResponse2) == VersionResponse2::kWireSize);
static_assert(offsetof(VersionResponse2, supported_features) == 16);

// VERSION_RESPONSE 6.0 "VersionResponse3" form, 40 bytes (server_specified_monitor_pages).
struct VersionResponse3 {
  static constexpr ChannelMessageType kType = ChannelMessageType::kVersionResponse;
  static constexpr size_t kWireSize = 40;
  VersionResponse2 base{};
  uint32_t padding = 0;
  uint64_t parent_to_child_monitor_page_gpa = 0;
  uint64_t child_to_parent_monitor_page_gpa = 0;
  friend bool operator==(const VersionResponse3&, const VersionResponse3&) = default;
};
static_assert(sizeof(VersionResponse3) == VersionResponse3::kWireSize);
static_assert(offsetof(VersionResponse3, base) == 0);
static_assert(offsetof(VersionResponse3, padding) == 20);
static_assert(offsetof(VersionResponse3, parent_to_child_monitor_page_gpa) == 24);
static_assert(offsetof(VersionResponse3, child_to_parent_monitor_page_gpa) == 32);

// OPEN_RESERVED_CHANNEL (18), 28 bytes, guest->host (Windows debugger transports only).
struct OpenReservedChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kOpenReservedChannel;
  static constexpr size_t kWireSize = 28;
  ChannelMessageHeader header{kType, 0};
  uint32_t channel_id = 0;
  uint32_t target_vp = 0;
  uint32_t target_sint = 0;
  uint32_t ring_buffer_gpadl = 0;
  uint32_t downstream_page_offset = 0;
  friend bool operator==(const OpenReservedChannel&, const OpenReservedChannel&) = default;
};
static_assert(sizeof(OpenReservedChannel) == OpenReservedChannel::kWireSize);
static_assert(offsetof(OpenReservedChannel, channel_id) == 8);
static_assert(offsetof(OpenReservedChannel, target_vp) == 12);
static_assert(offsetof(OpenReservedChannel, target_sint) == 16);
static_assert(offsetof(OpenReservedChannel, ring_buffer_gpadl) == 20);
static_assert(offsetof(OpenReservedChannel, downstream_page_offset) == 24);

// CLOSE_RESERVED_CHANNEL (19), 20 bytes, guest->host.
struct CloseReservedChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kCloseReservedChannel;
  static constexpr size_t kWireSize = 20;
  ChannelMessageHeader header{kType, 0};
  uint32_t channel_id = 0;
  uint32_t target_vp = 0;
  uint32_t target_sint = 0;
  friend bool operator==(const CloseReservedChannel&, const CloseReservedChannel&) = default;
};
static_assert(sizeof(CloseReservedChannel) == CloseReservedChannel::kWireSize);
static_assert(offsetof(CloseReservedChannel, channel_id) == 8);
static_assert(offsetof(CloseReservedChannel, target_vp) == 12);
static_assert(offsetof(CloseReservedChannel, target_sint) == 16);

// CLOSE_RESERVED_RESPONSE (20), 12 bytes, host->guest.
struct CloseReservedResponse {
  static constexpr ChannelMessageType kType = ChannelMessageType::kCloseReservedResponse;
  static constexpr size_t kWireSize = 12;
  ChannelMessageHeader header{kType, 0};
  uint32_t channel_id = 0;
  friend bool operator==(const CloseReservedResponse&, const CloseReservedResponse&) = default;
};
static_assert(sizeof(CloseReservedResponse) == CloseReservedResponse::kWireSize);
static_assert(offsetof(CloseReservedResponse, channel_id) == 8);

// TL_CONNECT_REQUEST (21), 40 bytes, guest->host (hv_sock). Linux: struct
// vmbus_channel_tl_connect_request.
struct TlConnectRequest {
  static constexpr ChannelMessageType kType = ChannelMessageType::kTlConnectRequest;
  static constexpr size_t kWireSize = 40;
  ChannelMessageHeader header{kType, 0};
  Guid guest_endpoint_id{};
  Guid host_service_id{};
  friend bool operator==(const TlConnectRequest&, const TlConnectRequest&) = default;
};
static_assert(sizeof(TlConnectRequest) == TlConnectRequest::kWireSize);
static_assert(offsetof(TlConnectRequest, guest_endpoint_id) == 8);
static_assert(offsetof(TlConnectRequest, host_service_id) == 24);

// TL_CONNECT_REQUEST form with silo id (>= 5.2), 56 bytes.
struct TlConnectRequest2 {
  static constexpr ChannelMessageType kType = ChannelMessageType::kTlConnectRequest;
  static constexpr size_t kWireSize = 56;
  TlConnectRequest base{};
  Guid silo_id{};
  friend bool operator==(const TlConnectRequest2&, const TlConnectRequest2&) = default;
};
static_assert(sizeof(TlConnectRequest2) == TlConnectRequest2::kWireSize);
static_assert(offsetof(TlConnectRequest2, silo_id) == 40);

// MODIFYCHANNEL (22), 16 bytes, guest->host (>= 4.1).
struct ModifyChannel {
  static constexpr ChannelMessageType kType = ChannelMessageType::kModifyChannel;
  static constexpr size_t kWireSize = 16;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t target_vp = 0;  // new VP for host->guest interrupts
  friend bool operator==(const ModifyChannel&, const ModifyChannel&) = default;
};
static_assert(sizeof(ModifyChannel) == ModifyChannel::kWireSize);
static_assert(offsetof(ModifyChannel, child_relid) == 8);
static_assert(offsetof(ModifyChannel, target_vp) == 12);

// TL_CONNECT_RESULT (23), 44 bytes, host->guest (>= 4.1).
struct TlConnectResult {
  static constexpr ChannelMessageType kType = ChannelMessageType::kTlConnectResult;
  static constexpr size_t kWireSize = 44;
  ChannelMessageHeader header{kType, 0};
  Guid endpoint_id{};
  Guid service_id{};
  int32_t status = 0;
  friend bool operator==(const TlConnectResult&, const TlConnectResult&) = default;
};
static_assert(sizeof(TlConnectResult) == TlConnectResult::kWireSize);
static_assert(offsetof(TlConnectResult, endpoint_id) == 8);
static_assert(offsetof(TlConnectResult, service_id) == 24);
static_assert(offsetof(TlConnectResult, status) == 40);

// MODIFYCHANNEL_RESPONSE (24), 16 bytes, host->guest (>= 5.3 only, spec 10.1 V8).
struct ModifyChannelResponse {
  static constexpr ChannelMessageType kType = ChannelMessageType::kModifyChannelResponse;
  static constexpr size_t kWireSize = 16;
  ChannelMessageHeader header{kType, 0};
  uint32_t child_relid = 0;
  uint32_t status = 0;  // 0 = ok
  friend bool operator==(const ModifyChannelResponse&, const ModifyChannelResponse&) = default;
};
static_assert(sizeof(ModifyChannelResponse) == ModifyChannelResponse::kWireSize);
static_assert(offsetof(ModifyChannelResponse, child_relid) == 8);
static_assert(offsetof(ModifyChannelResponse, status) == 12);

// MODIFY_CONNECTION (25), 24 bytes, guest->host (6.0 + modify_connection).
struct ModifyConnection {
  static constexpr ChannelMessageType kType = ChannelMessageType::kModifyConnection;
  static constexpr size_t kWireSize = 24;
  ChannelMessageHeader header{kType, 0};
  uint64_t parent_to_child_monitor_page_gpa = 0;
  uint64_t child_to_parent_monitor_page_gpa = 0;
  friend bool operator==(const ModifyConnection&, const ModifyConnection&) = default;
};
static_assert(sizeof(ModifyConnection) == ModifyConnection::kWireSize);
static_assert(offsetof(ModifyConnection, parent_to_child_monitor_page_gpa) == 8);
static_assert(offsetof(ModifyConnection, child_to_parent_monitor_page_gpa) == 16);

// MODIFY_CONNECTION_RESPONSE (26), 9 bytes on the wire, host->guest. The struct carries 3
// explicit tail bytes so it has no implicit padding; only kWireSize bytes are meaningful (and
// the encoder rounds the payload to 16 anyway).
struct ModifyConnectionResponse {
  static constexpr ChannelMessageType kType = ChannelMessageType::kModifyConnectionResponse;
  static constexpr size_t kWireSize = 9;
  ChannelMessageHeader header{kType, 0};
  uint8_t connection_state = kConnectionStateSuccessful;
  uint8_t tail[3] = {};  // not part of the message; zero
  friend bool operator==(const ModifyConnectionResponse&,
                         const ModifyConnectionResponse&) = default;
};
static_assert(sizeof(ModifyConnectionResponse) == 12);
static_assert(offsetof(ModifyConnectionResponse, connection_state) == 8);

// No struct has implicit padding, so Encode()'s memcpy never leaks indeterminate bytes and a
// struct compares equal exactly when its wire bytes do.
template <typename... T>
inline constexpr bool kAllPaddingFree = (std::has_unique_object_representations_v<T> && ...);
static_assert(
    kAllPaddingFree<ChannelMessageHeader, OfferChannel, RescindChannelOffer, RequestOffers,
                    AllOffersDelivered, OpenChannel, OpenChannel2, OpenChannelResult, CloseChannel,
                    GpadlHeader, GpadlBody, GpadlCreated, GpadlTeardown, GpadlTorndown,
                    RelidReleased, InitiateContact, InitiateContact2, VersionResponse,
                    VersionResponse2, VersionResponse3, Unload, UnloadResponse, OpenReservedChannel,
                    CloseReservedChannel, CloseReservedResponse, TlConnectRequest,
                    TlConnectRequest2, ModifyChannel, TlConnectResult, ModifyChannelResponse,
                    ModifyConnection, ModifyConnectionResponse, Pause, PauseResponse, Resume>);

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

// One received channel message: a copy of the typed struct. Alternatives are listed in type
// order; a type with several size forms has one alternative per form.
using ChannelMessage =
    std::variant<OfferChannel, RescindChannelOffer, RequestOffers, AllOffersDelivered, OpenChannel,
                 OpenChannel2, OpenChannelResult, CloseChannel, GpadlHeaderMessage,
                 GpadlBodyMessage, GpadlCreated, GpadlTeardown, GpadlTorndown, RelidReleased,
                 InitiateContact, InitiateContact2, VersionResponse, VersionResponse2,
                 VersionResponse3, Unload, UnloadResponse, OpenReservedChannel,
                 CloseReservedChannel, CloseReservedResponse, TlConnectRequest, TlConnectRequest2,
                 ModifyChannel, TlConnectResult, ModifyChannelResponse, ModifyConnection,
                 ModifyConnectionResponse, Pause, PauseResponse, Resume>;

// Validates and decodes one channel message. `payload` is the private copy of the SynIC message
// payload (its `payload_size` bytes); `dir` is the way it travelled (a guest passes
// kHostToGuest for what it receives, a host kGuestToHost). Checks, in order:
//   payload > 240                         (M3)  "channel message payload 241 > 240"
//   payload < 8                           (M5)  "channel message payload 5 < 8-byte header"
//   type 0 or >= 30                       (M2)  "channel message type 30 out of range"
//   type not legal in `dir`               (M4)  "OPENCHANNEL is guest-to-host, received
//                                                  host-to-guest"
//   payload < the type's minimum          (M5, H2) "OFFERCHANNEL payload 100 < 196"
// and picks the largest size form the payload holds. Bytes past the chosen form are ignored
// (senders round up to 8, some send full 240-byte messages). Every error is kMalformed; the
// caller drops the message (guest) or treats it as a protocol error (host) and counts it.
Expected<ChannelMessage> ParseChannelMessage(std::span<const uint8_t> payload, Direction dir);

// The type number of a parsed message.
ChannelMessageType TypeOf(const ChannelMessage& msg);

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// A fixed-size message struct (everything above except the parsed GPADL forms).
template <typename T>
concept FixedChannelMessage = requires {
  { T::kType } -> std::convertible_to<ChannelMessageType>;
  { T::kWireSize } -> std::convertible_to<size_t>;
}
&&std::is_trivially_copyable_v<T> && (T::kWireSize <= sizeof(T)) &&
    (sizeof(T) <= kMaxChannelMessageSize);

// Rounds a wire size up to the posted payload size (multiple of 8, spec 10.1 V2).
constexpr uint8_t RoundUpPayloadSize(size_t size) {
  return static_cast<uint8_t>((size + 7) & ~size_t{7});
}

// Encodes a fixed-size message: its kWireSize bytes, msgtype forced to T::kType and the header
// padding to 0 (whatever `msg.header` holds), zero-filled up to a multiple of 8.
template <FixedChannelMessage T>
MessageBuffer Encode(const T& msg) {
  MessageBuffer out;
  std::memcpy(out.bytes.data(), &msg, T::kWireSize);
  const ChannelMessageHeader header{T::kType, 0};
  std::memcpy(out.bytes.data(), &header, sizeof(header));
  out.size = RoundUpPayloadSize(T::kWireSize);
  return out;
}

// Encodes a GPADL_HEADER with its range data: 20 + 8 * range_word_count bytes (count clamped to
// kGpadlHeaderMaxRangeWords, which the array cannot exceed anyway).
MessageBuffer Encode(const GpadlHeaderMessage& msg);
// Encodes a GPADL_BODY with its PFN words: 16 + 8 * range_word_count bytes.
MessageBuffer Encode(const GpadlBodyMessage& msg);
// Encodes whichever message `msg` holds.
MessageBuffer Encode(const ChannelMessage& msg);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_CHANNEL_MESSAGES_H_
