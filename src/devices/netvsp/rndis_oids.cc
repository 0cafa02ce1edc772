// File: devices/netvsp/rndis_oids.cc — see rndis_oids.h.
#include "devices/netvsp/rndis_oids.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "wire/nvsp.h"
#include "wire/toeplitz.h"

namespace uvmbus::netvsp {
namespace {

using wire::NdisOid;

constexpr std::array<NdisOid, 27> kSupported = {
    NdisOid::kGenSupportedList,        NdisOid::kGenHardwareStatus,
    NdisOid::kGenMediaSupported,       NdisOid::kGenMediaInUse,
    NdisOid::kGenMaximumLookahead,     NdisOid::kGenMaximumFrameSize,
    NdisOid::kGenLinkSpeed,            NdisOid::kGenTransmitBlockSize,
    NdisOid::kGenReceiveBlockSize,     NdisOid::kGenVendorId,
    NdisOid::kGenVendorDescription,    NdisOid::kGenCurrentLookahead,
    NdisOid::kGenMaximumTotalSize,     NdisOid::kGenMediaConnectStatus,
    NdisOid::kGenMaximumSendPackets,   NdisOid::kGenReceiveScaleCapabilities,
    NdisOid::kGenFriendlyName,         NdisOid::kGenXmitOk,
    NdisOid::kGenRcvOk,                NdisOid::kGenRcvDiscards,
    NdisOid::k802_3PermanentAddress,   NdisOid::k802_3CurrentAddress,
    NdisOid::k802_3MaximumListSize,    NdisOid::kTcpOffloadHardwareCapabilities,
    NdisOid::kGenCurrentPacketFilter,  NdisOid::kGenReceiveScaleParameters,
    NdisOid::kTcpOffloadParameters,
};

constexpr std::string_view kVendorDescription = "uvmbus synthetic network adapter";
// Multicast addresses a guest may program (accepted and ignored: the filter admits all groups).
constexpr uint32_t kMulticastListSize = 32;

OidAnswer U32(std::span<uint8_t> out, uint32_t v) {
  std::memcpy(out.data(), &v, 4);
  return {wire::RndisStatus::kSuccess, 4};
}

OidAnswer U64(std::span<uint8_t> out, uint64_t v) {
  std::memcpy(out.data(), &v, 8);
  return {wire::RndisStatus::kSuccess, 8};
}

OidAnswer Mac(std::span<uint8_t> out, const net::MacAddress& mac) {
  std::memcpy(out.data(), mac.bytes.data(), 6);
  return {wire::RndisStatus::kSuccess, 6};
}

// UCS-2 (UTF-16LE) with the terminating NUL, as NDIS returns strings for FRIENDLY_NAME.
OidAnswer Ucs2(std::span<uint8_t> out, std::string_view text) {
  const size_t chars = std::min<size_t>(text.size(), wire::kNdisFriendlyNameMaxChars);
  size_t n = 0;
  for (size_t i = 0; i < chars; ++i) {
    out[n++] = static_cast<uint8_t>(text[i]);
    out[n++] = 0;
  }
  out[n++] = 0;
  out[n++] = 0;
  return {wire::RndisStatus::kSuccess, static_cast<uint32_t>(n)};
}

}  // namespace

std::span<const NdisOid> SupportedOids() { return kSupported; }

wire::NdisOffload OffloadCapabilities(std::span<const uint8_t> input, uint32_t ndis_version) {
  wire::NdisOffload caps;  // every capability zero: no checksum / LSO / RSC in the host
  uint8_t revision = 1;
  uint16_t size = wire::kNdisOffloadSizeRev1;
  if (ndis_version >= wire::kNdisVersion6_30) {
    revision = 3;
    size = wire::kNdisOffloadSizeRev3;
  } else if (ndis_version >= wire::kNdisVersion6_1) {
    revision = 2;
    size = wire::kNdisOffloadSizeRev2;
  }
  if (input.size() >= sizeof(wire::NdisObjectHeader)) {
    wire::NdisObjectHeader in;
    std::memcpy(&in, input.data(), sizeof(in));
    if (in.type == wire::kNdisObjectTypeOffload && in.revision >= 1 && in.revision <= 3) {
      revision = in.revision;
      size = revision == 3   ? wire::kNdisOffloadSizeRev3
             : revision == 2 ? wire::kNdisOffloadSizeRev2
                             : wire::kNdisOffloadSizeRev1;
    }
  }
  caps.header = wire::NdisObjectHeader{wire::kNdisObjectTypeOffload, revision, size};
  return caps;
}

OidAnswer AnswerQuery(NdisOid oid, std::span<const uint8_t> input, const NicInfo& info,
                      std::span<uint8_t> out) {
  if (out.size() < kMaxOidAnswerSize) return {wire::RndisStatus::kResources, 0};
  const uint32_t mtu = info.max_frame_size - net::kEthHeaderSize;
  switch (oid) {
    case NdisOid::kGenSupportedList: {
      uint32_t n = 0;
      for (NdisOid o : kSupported) {
        const auto v = static_cast<uint32_t>(o);
        std::memcpy(out.data() + n, &v, 4);
        n += 4;
      }
      return {wire::RndisStatus::kSuccess, n};
    }
    case NdisOid::kGenHardwareStatus:
      return U32(out, 0);  // NdisHardwareStatusReady
    case NdisOid::kGenMediaSupported:
    case NdisOid::kGenMediaInUse:
      return U32(out, wire::kRndisMedium802_3);
    case NdisOid::kGenMaximumLookahead:
    case NdisOid::kGenCurrentLookahead:
    case NdisOid::kGenMaximumFrameSize:
      // "Maximum frame size" is the payload MTU in NDIS (Linux lowers its MTU to it).
      return U32(out, mtu);
    case NdisOid::kGenLinkSpeed:
      return U32(out, info.link_speed_100bps);
    case NdisOid::kGenTransmitBlockSize:
    case NdisOid::kGenReceiveBlockSize:
    case NdisOid::kGenMaximumTotalSize:
      return U32(out, info.max_frame_size);
    case NdisOid::kGenVendorId:
      return U32(out, 0x00FFFFFF);  // no IEEE OUI: "vendor unknown"
    case NdisOid::kGenVendorDescription: {
      std::memcpy(out.data(), kVendorDescription.data(), kVendorDescription.size());
      out[kVendorDescription.size()] = 0;
      return {wire::RndisStatus::kSuccess, static_cast<uint32_t>(kVendorDescription.size() + 1)};
    }
    case NdisOid::kGenMediaConnectStatus:
      return U32(out, info.link_up ? wire::kNdisMediaStateConnected
                                   : wire::kNdisMediaStateDisconnected);
    case NdisOid::kGenCurrentPacketFilter:
      return U32(out, info.packet_filter);
    case NdisOid::kGenMaximumSendPackets:
      return U32(out, info.max_packets_per_message);
    case NdisOid::kGenFriendlyName:
      return Ucs2(out, info.friendly_name);
    case NdisOid::kGenXmitOk:
      return U64(out, info.frames_sent);
    case NdisOid::kGenRcvOk:
      return U64(out, info.frames_received);
    case NdisOid::kGenRcvDiscards:
      return U64(out, info.receive_discards);
    case NdisOid::k802_3PermanentAddress:
      return Mac(out, info.permanent_mac);
    case NdisOid::k802_3CurrentAddress:
      return Mac(out, info.current_mac);
    case NdisOid::k802_3MaximumListSize:
      return U32(out, kMulticastListSize);
    case NdisOid::kTcpOffloadHardwareCapabilities: {
      const wire::NdisOffload caps = OffloadCapabilities(input, info.ndis_version);
      auto n = wire::EncodeNdisObject(out, caps);
      if (!n) return {wire::RndisStatus::kFailure, 0};
      return {wire::RndisStatus::kSuccess, static_cast<uint32_t>(*n)};
    }
    case NdisOid::kGenReceiveScaleCapabilities: {
      wire::NdisReceiveScaleCapabilities caps;
      caps.cap_flag = wire::kNdisHashFunctionToeplitz | wire::kNdisRssCapsHashTypeTcpIpv4 |
                      wire::kNdisRssCapsHashTypeTcpIpv6 | wire::kNdisRssCapsClassificationAtDpc;
      caps.num_int_msg = info.receive_queues;
      caps.num_recv_que = info.receive_queues;
      caps.num_indirect_tabent =
          static_cast<uint16_t>(wire::kRssIndirectionTableMaxEntries);
      // A revision 1 request gets the 16-byte revision 1 object (no table-entry count).
      if (input.size() >= sizeof(wire::NdisObjectHeader)) {
        wire::NdisObjectHeader in;
        std::memcpy(&in, input.data(), sizeof(in));
        if (in.type == wire::kNdisObjectTypeRssCapabilities && in.revision == 1) {
          caps.header = {wire::kNdisObjectTypeRssCapabilities, 1, wire::kNdisRssCapsSizeRev1};
        }
      }
      auto n = wire::EncodeNdisObject(out, caps);
      if (!n) return {wire::RndisStatus::kFailure, 0};
      return {wire::RndisStatus::kSuccess, static_cast<uint32_t>(*n)};
    }
    default:
      return {wire::RndisStatus::kNotSupported, 0};
  }
}

}  // namespace uvmbus::netvsp
