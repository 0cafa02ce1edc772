// File: wire/versions.h
//
// What: VMBus protocol constants shared by every layer that speaks the channel-management
// protocol: the protocol version words (spec 2.4), the well-known connection ids and the VMBus
// SINT (spec 1.1), the relid limit for event delivery (spec 1.4), and the VMBus 6.0 feature-flag
// bits (spec 2.4, "6.0 feature flags").
// (The connection ids, SINT and relid limit themselves live in wire/synic.h, included here.)
// Spec: sections 1.1, 1.4, 2.4, 2.5, 2.6.
// Linux: include/linux/hyperv.h (VERSION_*, VMBUS_MESSAGE_CONNECTION_ID*, VMBUS_MESSAGE_SINT),
//        drivers/hv/hyperv_vmbus.h (MAX_CHANNEL_RELIDS).
// OpenVMM: vm/devices/vmbus/vmbus_core/src/protocol.rs (Version, FeatureFlags, connection ids).
// Thread-safety: constants and pure functions only.
#ifndef UVMBUS_WIRE_VERSIONS_H_
#define UVMBUS_WIRE_VERSIONS_H_

#include <array>
#include <cstdint>
#include <string>

#include "wire/synic.h"

namespace uvmbus::wire {

// ---------------------------------------------------------------------------------------------
// Protocol versions (spec 0 "Version words", 2.4). A version word is (major << 16) | minor.
// ---------------------------------------------------------------------------------------------

// Builds a version word from its parts: MakeVersion(5, 3) == 0x00050003.
constexpr uint32_t MakeVersion(uint16_t major, uint16_t minor) {
  return (static_cast<uint32_t>(major) << 16) | minor;
}
// The major part of a version word (5 for 5.3).
constexpr uint16_t VersionMajor(uint32_t version) { return static_cast<uint16_t>(version >> 16); }
// The minor part of a version word (3 for 5.3; 13 for 0.13).
constexpr uint16_t VersionMinor(uint32_t version) {
  return static_cast<uint16_t>(version & 0xFFFF);
}

// Names follow Linux's VERSION_* (the Windows release that introduced each version).
inline constexpr uint32_t kVersionWs2008 = MakeVersion(0, 13);  // 0.13, base protocol
inline constexpr uint32_t kVersionWin7 = MakeVersion(1, 1);     // 1.1, per-channel connection ids
inline constexpr uint32_t kVersionWin8 = MakeVersion(2, 4);  // 2.4, SIEF bit = relid, sub-channels
inline constexpr uint32_t kVersionWin8_1 = MakeVersion(3, 0);     // 3.0, target_vcpu honoured
inline constexpr uint32_t kVersionWin10 = MakeVersion(4, 0);      // 4.0, reserved channels, hv_sock
inline constexpr uint32_t kVersionWin10V4_1 = MakeVersion(4, 1);  // 4.1, MODIFYCHANNEL
inline constexpr uint32_t kVersionWin10V5 = MakeVersion(5, 0);    // 5.0, multi-client (conn id 4)
inline constexpr uint32_t kVersionWin10V5_1 = MakeVersion(5, 1);  // 5.1, msg_vtl honoured
inline constexpr uint32_t kVersionWin10V5_2 = MakeVersion(5, 2);  // 5.2, TL connect with silo id
inline constexpr uint32_t kVersionWin10V5_3 = MakeVersion(5, 3);  // 5.3, MODIFYCHANNEL_RESPONSE
inline constexpr uint32_t kVersionCopper = MakeVersion(6, 0);     // 6.0, feature flags

// Every version this project knows, newest first (the order a guest tries them, spec 2.5; a
// host accepts exact matches only, as OpenVMM does).
inline constexpr std::array<uint32_t, 11> kAllVersions = {
    kVersionCopper,  kVersionWin10V5_3, kVersionWin10V5_2, kVersionWin10V5_1,
    kVersionWin10V5, kVersionWin10V4_1, kVersionWin10,     kVersionWin8_1,
    kVersionWin8,    kVersionWin7,      kVersionWs2008,
};

// True if `version` is exactly one of kAllVersions.
constexpr bool IsKnownVersion(uint32_t version) {
  for (uint32_t v : kAllVersions) {
    if (v == version) return true;
  }
  return false;
}

// "major.minor" in decimal, e.g. "5.3", "0.13", "6.0". Any word formats (unknown versions too).
inline std::string VersionString(uint32_t version) {
  return std::to_string(VersionMajor(version)) + "." + std::to_string(VersionMinor(version));
}

// ---------------------------------------------------------------------------------------------
// Connection ids, SINT and relid limit (spec 1.1, 1.4, 2.6, 2.7).
//
// wire/synic.h (the SynIC layer) already defines, in this namespace:
//   kVmbusMessageConnectionId  = 1  host's message port: every guest->host message for versions
//                                   < 5.0, and their INITIATE_CONTACT
//   kVmbusEventConnectionId    = 2  shared guest->host event connection of protocol 0.13
//   kVmbusMonitorConnectionId  = 3  reserved name of the monitor facility
//   kVmbusMessageConnectionId4 = 4  multi-client port: INITIATE_CONTACT for versions >= 5.0;
//                                   later messages go to VERSION_RESPONSE.msg_conn_id
//   kHvConnectionIdMask            only the low 24 bits of a connection id are the id
//   kVmbusSint                 = 2  SINT of VMBus messages and channel events
//   kMaxChannelRelids          = 2048  relids 1..2047 (one SIEF bit each, bit 0 reserved);
//                                   Linux rejects offers with child_relid >= this
// They are included from there (one definition per name) and pinned here.
// ---------------------------------------------------------------------------------------------
static_assert(kVmbusMessageConnectionId == 1 && kVmbusEventConnectionId == 2 &&
              kVmbusMonitorConnectionId == 3 && kVmbusMessageConnectionId4 == 4);
static_assert(kHvConnectionIdMask == 0x00FFFFFF);
static_assert(kMaxChannelRelids == 2048);

// Linux's VMBUS_MESSAGE_SINT: the SynIC interrupt source of VMBus messages and channel events.
inline constexpr uint8_t kVmbusMessageSint = 2;
static_assert(kVmbusMessageSint == kVmbusSint);

// ---------------------------------------------------------------------------------------------
// VMBus 6.0 feature flags (spec 2.4): INITIATE_CONTACT.feature_flags (offset 20) and
// VersionResponse2.supported_features (offset 16). The host answers with the intersection.
// ---------------------------------------------------------------------------------------------
// OpenChannel2 carries a guest-chosen connection_id / event_flag.
inline constexpr uint32_t kFeatureGuestSpecifiedSignalParameters = 0x01;
// OpenChannel2 flags bit 0 (redirect interrupt) is honoured.
inline constexpr uint32_t kFeatureChannelInterruptRedirection = 0x02;
// MODIFY_CONNECTION (25) / MODIFY_CONNECTION_RESPONSE (26) are allowed.
inline constexpr uint32_t kFeatureModifyConnection = 0x04;
// InitiateContact2 (56 bytes, with client_id) is used.
inline constexpr uint32_t kFeatureClientId = 0x08;
// Offer flags 0x2 / 0x4 mean confidential ring buffer / external memory.
inline constexpr uint32_t kFeatureConfidentialChannels = 0x10;
// PAUSE (27) / PAUSE_RESPONSE (28) / RESUME (29) are allowed.
inline constexpr uint32_t kFeaturePauseResume = 0x20;
// The host provides the monitor pages in VersionResponse3.
inline constexpr uint32_t kFeatureServerSpecifiedMonitorPages = 0x40;
// Offer flag 0x8 (REQUIRE_PINNED_EXTERNAL_MEMORY) is meaningful.
inline constexpr uint32_t kFeatureGpaPinning = 0x80;
// Every feature bit defined by spec 2.4.
inline constexpr uint32_t kAllFeatureFlags = 0xFF;

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_VERSIONS_H_
