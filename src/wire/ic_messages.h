// File: wire/ic_messages.h
//
// What: the Hyper-V integration-service ("IC", "util") message framing carried in the in-band
// packets of the heartbeat channel (class 57164f39-9115-4e78-ab55-382f3bd5422d) and the other
// util devices (shutdown, timesync, KVP, VSS, file copy): struct layouts, validating parsers,
// the host's request encoders, and the guest's pure answer logic (version negotiation exactly
// as Linux vmbus_prep_negotiate_resp(), heartbeat as Linux heartbeat_onchannelcallback()).
//
// Packet layout (the payload of one VMBus in-band packet, spec 4.3):
//   offset 0   vmbuspipe_hdr  8 bytes  {u32 flags = 1 (data); u32 msgsize = bytes after it}
//   offset 8   icmsg_hdr     20 bytes  {icverframe, icmsgtype, icvermsg, icmsgsize, status,
//                                       ictransaction_id, icflags, reserved[2]}
//   offset 28  body          icmsgsize bytes (negotiate: icmsg_negotiate + version array;
//                                       heartbeat: heartbeat_msg_data)
// Every request has icflags TRANSACTION|REQUEST (3); the guest answers IN PLACE: it sends back
// the same number of bytes it received, with the changes listed below and icflags
// TRANSACTION|RESPONSE (5). The pipe header and transaction id are echoed unchanged.
//
// The heartbeat exchange, byte-exact (what uvmbus's host sends and a Linux guest answers):
//
// 1. Host -> guest NEGOTIATE (52 bytes), offering framework 1.0, 3.0 and heartbeat 1.0, 3.0;
//    header versions are 0.0 as OpenVMM sends them:
//      01 00 00 00  2c 00 00 00                    pipe: flags 1, msgsize 44
//      00 00 00 00  00 00  00 00 00 00  18 00      icverframe 0.0, type 0, icvermsg 0.0, size 24
//      00 00 00 00  00  03  00 00                  status 0, txid 0, flags 3, reserved
//      02 00  02 00  00 00 00 00                   2 framework + 2 message versions, reserved
//      01 00 00 00  03 00 00 00                    framework 1.0, 3.0 ({u16 major, u16 minor})
//      01 00 00 00  03 00 00 00                    heartbeat 1.0, 3.0
// 2. Guest -> host response (52 bytes; Linux supports framework {3.0, 1.0}, heartbeat
//    {3.0, 1.0} and picks the first of ITS list the host offers): the same bytes except
//      offset 18: 10 00          icmsgsize 0x10 (always, as Linux)
//      offset 25: 05             flags TRANSACTION|RESPONSE
//      offset 28: 01 00 01 00    one framework, one message version
//      offset 36: 03 00 00 00    chosen framework 3.0
//      offset 40: 03 00 00 00    chosen heartbeat 3.0
//      (offsets 44..51 keep the request's bytes: Linux rewrites only the first two entries)
//    With no common version the counts are 0 and entries 0/1 hold what Linux leaves there
//    (see PrepareIcNegotiateResponse).
// 3. Host -> guest HEARTBEAT (68 bytes), sequence number N, negotiated versions in the header:
//      01 00 00 00  3c 00 00 00                    pipe: flags 1, msgsize 60
//      03 00 00 00  01 00  03 00 00 00  28 00      framework 3.0, type 1, heartbeat 3.0, size 40
//      00 00 00 00  00  03  00 00                  status 0, txid 0, flags 3, reserved
//      N (u64 LE)   00 x 32                        seq_num, reserved[8]
// 4. Guest -> host response (68 bytes): the same bytes with seq_num = N + 1 (offset 28) and
//    flags 05 (offset 25). A request of another type is answered with status HV_E_FAIL
//    (0x80004005) and flags 05, as Linux does.
//
// Spec: section 4.3 (in-band packets); the IC framing itself is not in the spec: facts are from
//       the sources below.
// Linux: include/linux/hyperv.h (struct vmbuspipe_hdr, ic_version, icmsg_hdr, icmsg_negotiate,
//        heartbeat_msg_data, ICMSGTYPE_*, ICMSGHDRFLAG_*), include/uapi/linux/hyperv.h
//        (UTIL_FW_VERSION, HV_E_FAIL), drivers/hv/channel_mgmt.c (vmbus_prep_negotiate_resp),
//        drivers/hv/hv_util.c (fw_versions, hb_versions, heartbeat_onchannelcallback).
// OpenVMM: vm/devices/hyperv_ic_protocol/src/lib.rs, vm/devices/hyperv_ic/src/common.rs (host
//          negotiation), vm/devices/vmbus/vmbus_async/src/pipe.rs (pipe header).
// Thread-safety: value types and pure functions.
#ifndef UVMBUS_WIRE_IC_MESSAGES_H_
#define UVMBUS_WIRE_IC_MESSAGES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"

namespace uvmbus::wire {

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

// vmbuspipe_hdr.flags of a data packet (OpenVMM PIPE_PACKET_TYPE_DATA). Linux ignores the field.
inline constexpr uint32_t kIcPipeFlagData = 1;

// icmsg_hdr.icmsgtype (Linux ICMSGTYPE_*; 6 and 8 from OpenVMM).
inline constexpr uint16_t kIcMsgTypeNegotiate = 0;
inline constexpr uint16_t kIcMsgTypeHeartbeat = 1;
inline constexpr uint16_t kIcMsgTypeKvpExchange = 2;
inline constexpr uint16_t kIcMsgTypeShutdown = 3;
inline constexpr uint16_t kIcMsgTypeTimeSync = 4;
inline constexpr uint16_t kIcMsgTypeVss = 5;
inline constexpr uint16_t kIcMsgTypeRdv = 6;
inline constexpr uint16_t kIcMsgTypeFileCopy = 7;  // OpenVMM: GUEST_INTERFACE
inline constexpr uint16_t kIcMsgTypeVmSession = 8;

// icmsg_hdr.icflags bits (Linux ICMSGHDRFLAG_*).
inline constexpr uint8_t kIcFlagTransaction = 0x1;  // a response is expected / this answers one
inline constexpr uint8_t kIcFlagRequest = 0x2;
inline constexpr uint8_t kIcFlagResponse = 0x4;

// icmsg_hdr.status values (HRESULTs, Linux include/uapi/linux/hyperv.h).
inline constexpr uint32_t kIcStatusOk = 0x00000000;    // HV_S_OK
inline constexpr uint32_t kIcStatusFail = 0x80004005;  // HV_E_FAIL

// Version words, (major << 16) | minor, as Linux's tables hold them.
constexpr uint32_t MakeIcVersion(uint16_t major, uint16_t minor) {
  return (static_cast<uint32_t>(major) << 16) | minor;
}
inline constexpr uint32_t kIcFrameworkVersion1 = MakeIcVersion(1, 0);  // UTIL_WS2K8_FW_VERSION
inline constexpr uint32_t kIcFrameworkVersion3 = MakeIcVersion(3, 0);  // UTIL_FW_VERSION
inline constexpr uint32_t kHeartbeatVersion1 = MakeIcVersion(1, 0);    // HB_VERSION_1
inline constexpr uint32_t kHeartbeatVersion3 = MakeIcVersion(3, 0);    // HB_VERSION

// What a Linux guest supports, in its preference order (hv_util.c fw_versions, hb_versions,
// sd_versions, ts_versions).
inline constexpr std::array<uint32_t, 2> kLinuxIcFrameworkVersions = {kIcFrameworkVersion3,
                                                                      kIcFrameworkVersion1};
inline constexpr std::array<uint32_t, 2> kLinuxHeartbeatVersions = {kHeartbeatVersion3,
                                                                    kHeartbeatVersion1};
inline constexpr std::array<uint32_t, 4> kLinuxShutdownVersions = {
    MakeIcVersion(3, 2), MakeIcVersion(3, 1), MakeIcVersion(3, 0), MakeIcVersion(1, 0)};
inline constexpr std::array<uint32_t, 3> kLinuxTimeSyncVersions = {
    MakeIcVersion(4, 0), MakeIcVersion(3, 0), MakeIcVersion(1, 0)};

// What uvmbus's host offers for the heartbeat service (OpenVMM's framework list, ascending).
inline constexpr std::array<uint32_t, 2> kHostIcFrameworkVersions = {kIcFrameworkVersion1,
                                                                     kIcFrameworkVersion3};
inline constexpr std::array<uint32_t, 2> kHostHeartbeatVersions = {kHeartbeatVersion1,
                                                                   kHeartbeatVersion3};

// Most versions of each kind a negotiate message may list (Linux
// IC_VERSION_NEGOTIATION_MAX_VER_COUNT); more is malformed.
inline constexpr size_t kIcMaxVersionCount = 100;
// icmsgsize Linux writes into every negotiate response: icmsg_negotiate + 2 versions.
inline constexpr uint16_t kIcNegotiateResponseMsgSize = 0x10;

// ---------------------------------------------------------------------------------------------
// Wire structs (all naturally aligned, no padding; copied in and out with memcpy)
// ---------------------------------------------------------------------------------------------

// Linux struct vmbuspipe_hdr.
struct VmbusPipeHeader {
  uint32_t flags = kIcPipeFlagData;
  uint32_t msgsize = 0;  // bytes following this header
  friend bool operator==(const VmbusPipeHeader&, const VmbusPipeHeader&) = default;
};
static_assert(sizeof(VmbusPipeHeader) == 8);
static_assert(offsetof(VmbusPipeHeader, flags) == 0 && offsetof(VmbusPipeHeader, msgsize) == 4);

// Linux struct ic_version: major first on the wire.
struct IcVersion {
  uint16_t major = 0;
  uint16_t minor = 0;

  static constexpr IcVersion FromWord(uint32_t word) {
    return {static_cast<uint16_t>(word >> 16), static_cast<uint16_t>(word & 0xFFFF)};
  }
  constexpr uint32_t ToWord() const { return MakeIcVersion(major, minor); }
  friend bool operator==(const IcVersion&, const IcVersion&) = default;
};
static_assert(sizeof(IcVersion) == 4);
static_assert(offsetof(IcVersion, major) == 0 && offsetof(IcVersion, minor) == 2);

// Linux struct icmsg_hdr.
struct IcMsgHeader {
  IcVersion icverframe{};  // framework version (0.0 in a negotiate request)
  uint16_t icmsgtype = 0;  // kIcMsgType*
  IcVersion icvermsg{};    // service message version
  uint16_t icmsgsize = 0;  // bytes of body after this header
  uint32_t status = kIcStatusOk;
  uint8_t ictransaction_id = 0;
  uint8_t icflags = 0;  // kIcFlag*
  uint8_t reserved[2] = {};
  friend bool operator==(const IcMsgHeader&, const IcMsgHeader&) = default;
};
static_assert(sizeof(IcMsgHeader) == 20);
static_assert(offsetof(IcMsgHeader, icverframe) == 0);
static_assert(offsetof(IcMsgHeader, icmsgtype) == 4);
static_assert(offsetof(IcMsgHeader, icvermsg) == 6);
static_assert(offsetof(IcMsgHeader, icmsgsize) == 10);
static_assert(offsetof(IcMsgHeader, status) == 12);
static_assert(offsetof(IcMsgHeader, ictransaction_id) == 16);
static_assert(offsetof(IcMsgHeader, icflags) == 17);
static_assert(offsetof(IcMsgHeader, reserved) == 18);

// Bytes before an IC body: pipe header + IC header (Linux ICMSG_HDR).
inline constexpr size_t kIcHeaderSize = sizeof(VmbusPipeHeader) + sizeof(IcMsgHeader);
static_assert(kIcHeaderSize == 28);

// Linux struct icmsg_negotiate (fixed part); icframe_vercnt framework versions then
// icmsg_vercnt message versions (IcVersion each) follow.
struct IcMsgNegotiate {
  uint16_t icframe_vercnt = 0;
  uint16_t icmsg_vercnt = 0;
  uint32_t reserved = 0;
  friend bool operator==(const IcMsgNegotiate&, const IcMsgNegotiate&) = default;
};
static_assert(sizeof(IcMsgNegotiate) == 8);
static_assert(offsetof(IcMsgNegotiate, icframe_vercnt) == 0);
static_assert(offsetof(IcMsgNegotiate, icmsg_vercnt) == 2);
static_assert(offsetof(IcMsgNegotiate, reserved) == 4);

// Linux struct heartbeat_msg_data (40 bytes). Linux reads only seq_num (the host may not fill
// the reserved area).
struct HeartbeatMsgData {
  uint64_t seq_num = 0;
  uint32_t reserved[8] = {};
  friend bool operator==(const HeartbeatMsgData&, const HeartbeatMsgData&) = default;
};
static_assert(sizeof(HeartbeatMsgData) == 40);
static_assert(offsetof(HeartbeatMsgData, seq_num) == 0);
static_assert(offsetof(HeartbeatMsgData, reserved) == 8);
// The part of a heartbeat body a receiver requires.
inline constexpr size_t kHeartbeatMinBodySize = sizeof(uint64_t);

// ---------------------------------------------------------------------------------------------
// Parsing (received packet payloads, already copied out of the ring)
// ---------------------------------------------------------------------------------------------

// A framed IC message. `body` views the caller's buffer: exactly icmsgsize bytes after the
// 28-byte header.
struct IcPacket {
  VmbusPipeHeader pipe;
  IcMsgHeader header;
  std::span<const uint8_t> body;
};

// Splits a packet payload into pipe header, IC header and body. Errors (kMalformed):
//   "IC packet 20 < 28-byte header"
//   "IC message size 40 > 12 bytes present"
// The pipe header is reported, not validated (Linux ignores it).
Expected<IcPacket> ParseIcPacket(std::span<const uint8_t> packet);

// A parsed negotiate body (no heap): the peer's version lists as version words.
struct IcNegotiateMessage {
  std::array<uint32_t, kIcMaxVersionCount> framework_versions{};
  uint16_t framework_count = 0;
  std::array<uint32_t, kIcMaxVersionCount> message_versions{};
  uint16_t message_count = 0;

  std::span<const uint32_t> frameworks() const {
    return {framework_versions.data(), framework_count};
  }
  std::span<const uint32_t> messages() const { return {message_versions.data(), message_count}; }
};

// Decodes a NEGOTIATE body. Errors (kMalformed):
//   "IC message type 1 is not NEGOTIATE"
//   "IC negotiate body 4 < 8"
//   "IC negotiate version counts 101/2 exceed 100"
//   "IC negotiate lists 2+2 versions, body holds 1"
Expected<IcNegotiateMessage> ParseIcNegotiate(const IcPacket& packet);

// Versions a guest chose.
struct IcNegotiatedVersions {
  uint32_t framework_version = 0;
  uint32_t message_version = 0;
  friend bool operator==(const IcNegotiatedVersions&, const IcNegotiatedVersions&) = default;
};

// Host side: decodes the guest's answer to a NEGOTIATE request (OpenVMM's checks). Errors:
//   kMalformed  "IC negotiate response flags 0x3 lack TRANSACTION|RESPONSE", and those of
//               ParseIcNegotiate;
//   kUnsupported "IC negotiate: guest found no common version (counts 0/0)" when the counts
//               are not 1/1 (the guest's way of saying no).
Expected<IcNegotiatedVersions> ParseIcNegotiateResponse(const IcPacket& packet);

// Decodes a HEARTBEAT body: seq_num is required, the reserved words are read if present (zero
// otherwise). Errors (kMalformed): "IC message type 0 is not HEARTBEAT",
// "IC heartbeat body 4 < 8".
Expected<HeartbeatMsgData> ParseHeartbeat(const IcPacket& packet);

// ---------------------------------------------------------------------------------------------
// Host side: requests
// ---------------------------------------------------------------------------------------------

// A NEGOTIATE request offering `framework_versions` then `message_versions` (version words),
// header versions 0.0, status 0, transaction id 0, flags TRANSACTION|REQUEST. Error
// (kInvalidArgument): a list is empty or longer than kIcMaxVersionCount.
Expected<std::vector<uint8_t>> EncodeIcNegotiateRequest(
    std::span<const uint32_t> framework_versions, std::span<const uint32_t> message_versions);

// A HEARTBEAT request (68 bytes) with the negotiated versions and `seq_num`; the guest answers
// with seq_num + 1.
std::vector<uint8_t> EncodeHeartbeatRequest(uint32_t framework_version, uint32_t heartbeat_version,
                                            uint64_t seq_num);

// ---------------------------------------------------------------------------------------------
// Guest side: answers (Linux behaviour, byte for byte)
// ---------------------------------------------------------------------------------------------

enum class IcNegotiateOutcome : uint8_t {
  kAgreed,             // counts 1/1, entries 0/1 = chosen framework/service version
  kNoCommonFramework,  // counts 0/0; entries 0/1 = {fw count, 0}, {msg count, 0}
  kNoCommonService,    // counts 0/0; entries 0/1 = chosen framework, {msg count, 0}
  kInvalidRequest,     // counts > 100 or version list beyond the packet; as kNoCommonFramework
  kTruncated,          // packet too short to hold the counts: echoed with only icflags changed
};

// The answer to one NEGOTIATE request.
struct IcNegotiateReply {
  std::vector<uint8_t> packet;  // bytes to send back (same length as the request)
  IcNegotiateOutcome outcome = IcNegotiateOutcome::kTruncated;
  uint32_t framework_version = 0;  // chosen, when outcome == kAgreed
  uint32_t service_version = 0;    // chosen, when outcome == kAgreed
};

// Guest side of version negotiation, as Linux vmbus_prep_negotiate_resp() + the util driver's
// callback: walks the guest's `framework_versions` in order (its preference, highest first in
// Linux) and takes the first one the host lists among its framework versions; then the same for
// `service_versions` against the host's message versions. The reply is the request rewritten in
// place: icmsgsize 0x10, counts 1/1 (or 0/0), version entries 0 and 1 (only where they lie inside
// the packet), icflags TRANSACTION|RESPONSE; everything else echoed. Linux decides from the
// packet length alone, ignoring icmsgsize; so does this function.
// Errors: kMalformed "IC packet 20 < 28-byte header" (Linux drops such packets unanswered);
// kInvalidArgument "IC message type 1 is not NEGOTIATE" (dispatch on the type first).
Expected<IcNegotiateReply> PrepareIcNegotiateResponse(std::span<const uint8_t> request,
                                                      std::span<const uint32_t> framework_versions,
                                                      std::span<const uint32_t> service_versions);

// Guest side of one non-negotiate heartbeat-channel request, as Linux: a HEARTBEAT request gets
// seq_num + 1; any other type gets status HV_E_FAIL; both get icflags TRANSACTION|RESPONSE and
// are otherwise echoed. Errors (kMalformed; Linux drops these unanswered):
// "IC packet 20 < 28-byte header", "IC heartbeat packet 30 < 36"; kInvalidArgument for a
// NEGOTIATE request (use PrepareIcNegotiateResponse).
Expected<std::vector<uint8_t>> PrepareHeartbeatResponse(std::span<const uint8_t> request);

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_IC_MESSAGES_H_
