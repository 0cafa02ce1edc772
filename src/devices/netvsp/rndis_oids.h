// File: devices/netvsp/rndis_oids.h
//
// What: the RNDIS device's answers to QUERY_MSG (spec 6.4): for every OID Linux netvsc queries
// during bring-up (spec 5.7 steps 3.3-3.10: maximum frame size, permanent address, friendly
// name, offload hardware capabilities, media connect status, link speed, RSS capabilities) and
// the common NDIS OIDs other guests ask for, the information buffer a host returns, built from a
// `NicInfo` snapshot. Unknown OIDs are answered NOT_SUPPORTED (a guest waits for a reply, so
// nothing is ignored). Pure functions: the device decides which state to report and sends the
// QUERY_CMPLT.
//
// Offloads: the host does not compute checksums or segment, so the offload capabilities it
// reports are all zero (the guest then does both in software, spec 6.8) with the object
// revision/size the guest asked for (Linux requires type 0xA7, revision >= 1, size >= 112).
//
// Spec: vmbus-protocol.md 6.4 (OIDs), 6.8 (ndis_offload), 6.9 (RSS capabilities), 6.12 (media
//       state), 5.7 (what Linux queries, in order).
// Linux/OpenVMM: Linux rndis_filter.c (rndis_filter_query_device callers, what each expects);
//       OpenVMM vm/devices/net/netvsp/src/lib.rs (handle_oid_query), rndisprot.rs.
// Thread-safety: pure functions; any thread.
#ifndef UVMBUS_DEVICES_NETVSP_RNDIS_OIDS_H_
#define UVMBUS_DEVICES_NETVSP_RNDIS_OIDS_H_

#include <cstdint>
#include <span>
#include <string>

#include "net/frame.h"
#include "wire/rndis.h"

namespace uvmbus::netvsp {

// What QUERY answers report.
struct NicInfo {
  net::MacAddress permanent_mac{};
  net::MacAddress current_mac{};
  uint32_t max_frame_size = 1514;        // frame bytes incl. the 14-byte header
  uint32_t link_speed_100bps = 100'000'000;  // OID_GEN_LINK_SPEED units (10 Gbit/s)
  bool link_up = true;
  uint32_t receive_queues = 1;           // RSS capabilities num_recv_que (channel count)
  uint32_t ndis_version = 0;             // from SEND_NDIS_VER ((major << 16) | minor); 0 unknown
  std::string friendly_name = "Network Adapter";
  uint64_t frames_sent = 0;              // OID_GEN_XMIT_OK (guest's transmits)
  uint64_t frames_received = 0;          // OID_GEN_RCV_OK
  uint64_t receive_discards = 0;         // OID_GEN_RCV_DISCARDS
  uint32_t max_packets_per_message = 8;  // OID_GEN_MAXIMUM_SEND_PACKETS
  uint32_t packet_filter = 0;            // OID_GEN_CURRENT_PACKET_FILTER
};

// Enough for every answer (the friendly name is the longest: 256 UCS-2 characters).
inline constexpr size_t kMaxOidAnswerSize = 512;

struct OidAnswer {
  wire::RndisStatus status = wire::RndisStatus::kNotSupported;
  uint32_t length = 0;  // bytes written to `out`
};

// Answers QUERY `oid` with input buffer `input` (Linux passes an NDIS object header for the
// offload and RSS capability queries). `out` must hold kMaxOidAnswerSize bytes.
OidAnswer AnswerQuery(wire::NdisOid oid, std::span<const uint8_t> input, const NicInfo& info,
                      std::span<uint8_t> out);

// The OIDs AnswerQuery() supports (OID_GEN_SUPPORTED_LIST).
std::span<const wire::NdisOid> SupportedOids();

// The offload capabilities object reported: header revision/size chosen from the guest's input
// header when it is a valid offload header (type 0xA7, revision 1..3), otherwise from the NDIS
// version (6.30: revision 3 / 156 bytes, 6.1: 2 / 144, else 1 / 112); every capability zero.
wire::NdisOffload OffloadCapabilities(std::span<const uint8_t> input, uint32_t ndis_version);

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_RNDIS_OIDS_H_
