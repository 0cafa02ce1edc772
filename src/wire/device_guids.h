// File: wire/device_guids.h
//
// What: the VMBus device-class ("interface type", OFFERCHANNEL.if_type) GUIDs uvmbus knows,
// as compile-time constants in wire byte order, and the lsvmbus description of each class.
// Descriptions are byte-identical to Linux tools/hv/lsvmbus (including the square brackets
// lsvmbus puts around integration services, e.g. "[Heartbeat]"), so `uvmbus ls` can match its
// output exactly; an unknown class is "Unknown", as in lsvmbus.
// Spec: section 0 (GUID wire layout), 1.1 (interface type GUID), 2.3 OFFERCHANNEL.
// Linux: include/linux/hyperv.h (HV_*_GUID), tools/hv/lsvmbus (vmbus_dev_dict).
// Thread-safety: constants and a pure function.
#ifndef UVMBUS_WIRE_DEVICE_GUIDS_H_
#define UVMBUS_WIRE_DEVICE_GUIDS_H_

#include <array>
#include <cstdint>
#include <string_view>

#include "common/guid.h"

namespace uvmbus::wire {

namespace internal {

// Reached only when GuidLiteral() is given a malformed literal; being non-constexpr, it turns
// the mistake into a compile error.
void MalformedGuidLiteral();

consteval uint8_t HexNibble(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
  MalformedGuidLiteral();
  return 0;
}

}  // namespace internal

// Compile-time GUID from its canonical text "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", producing
// the Microsoft mixed-endian wire layout (same result as Guid::Parse).
consteval Guid GuidLiteral(std::string_view text) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    internal::MalformedGuidLiteral();
  }
  std::array<uint8_t, 16> canonical{};
  size_t out = 0;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '-') {
      ++i;
      continue;
    }
    canonical[out++] =
        static_cast<uint8_t>(internal::HexNibble(text[i]) << 4 | internal::HexNibble(text[i + 1]));
    i += 2;
  }
  // Data1 (u32), Data2 (u16), Data3 (u16) little-endian; Data4 as written (spec 0).
  constexpr std::array<size_t, 16> kWireOrder = {3, 2, 1,  0,  5,  4,  7,  6,
                                                 8, 9, 10, 11, 12, 13, 14, 15};
  Guid g;
  for (size_t i = 0; i < 16; ++i) g.bytes[i] = canonical[kWireOrder[i]];
  return g;
}

// Synthetic network adapter (netvsc / netvsp). Linux HV_NIC_GUID.
inline constexpr Guid kNetworkClassGuid = GuidLiteral("f8615163-df3e-46c5-913f-f2d2f965ed0e");
// Heartbeat integration service. Linux HV_HEART_BEAT_GUID.
inline constexpr Guid kHeartbeatClassGuid = GuidLiteral("57164f39-9115-4e78-ab55-382f3bd5422d");
// Operating system shutdown integration service. Linux HV_SHUTDOWN_GUID.
inline constexpr Guid kShutdownClassGuid = GuidLiteral("0e0b6031-5213-4934-818b-38d90ced39db");
// Time synchronization integration service. Linux HV_TS_GUID.
inline constexpr Guid kTimeSyncClassGuid = GuidLiteral("9527e630-d0ae-497b-adce-e80ab0175caf");
// Data exchange (KVP) integration service. Linux HV_KVP_GUID.
inline constexpr Guid kKvpClassGuid = GuidLiteral("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6");
// Backup (volume checkpoint, VSS) integration service. Linux HV_VSS_GUID.
inline constexpr Guid kVssClassGuid = GuidLiteral("35fa2e29-ea23-4236-96ae-3a6ebacba440");
// Guest services (file copy). Linux HV_FCOPY_GUID.
inline constexpr Guid kFileCopyClassGuid = GuidLiteral("34d14be3-dee4-41c8-9ae7-6b174977c192");
// Dynamic memory. Linux HV_DM_GUID.
inline constexpr Guid kDynamicMemoryClassGuid = GuidLiteral("525074dc-8985-46e2-8057-a307dc18a502");
// Synthetic mouse. Linux HV_MOUSE_GUID.
inline constexpr Guid kMouseClassGuid = GuidLiteral("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a");
// Synthetic keyboard. Linux HV_KBD_GUID.
inline constexpr Guid kKeyboardClassGuid = GuidLiteral("f912ad6d-2b17-48ea-bd65-f927a61c7684");
// Synthetic framebuffer (video). Linux HV_SYNTHVID_GUID.
inline constexpr Guid kSyntheticVideoClassGuid =
    GuidLiteral("da0a7802-e377-4aac-8e77-0558eb1073f8");
// Synthetic IDE controller. Linux HV_IDE_GUID.
inline constexpr Guid kIdeClassGuid = GuidLiteral("32412632-86cb-44a2-9b5c-50d1417354f5");
// Synthetic SCSI controller. Linux HV_SCSI_GUID.
inline constexpr Guid kScsiClassGuid = GuidLiteral("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
// Synthetic fibre channel adapter. Linux HV_SYNTHFC_GUID.
inline constexpr Guid kFibreChannelClassGuid = GuidLiteral("2f9bcc4a-0069-4af3-b76b-6fd0be528cda");
// Synthetic RDMA adapter (NetworkDirect). Linux HV_ND_GUID.
inline constexpr Guid kNetworkDirectClassGuid = GuidLiteral("8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501");
// PCI Express pass-through. Linux HV_PCIE_GUID.
inline constexpr Guid kPcieClassGuid = GuidLiteral("44c4f61d-4444-4400-9d52-802e27ede19f");
// Reserved system devices Linux does not drive: Remote Desktop Virtualization (HV_RDV_GUID)
// and the two Automatic Virtual Machine Activation services (HV_AVMA1_GUID, HV_AVMA2_GUID).
inline constexpr Guid kRdvClassGuid = GuidLiteral("276aacf4-ac15-426c-98dd-7521ad3f01fe");
inline constexpr Guid kAvma1ClassGuid = GuidLiteral("f8e65716-3cb3-4a06-9a60-1889c5cccab5");
inline constexpr Guid kAvma2ClassGuid = GuidLiteral("3375baf4-9e15-4b30-b765-67acb10d607b");

// One known device class.
struct DeviceClass {
  Guid class_guid;
  std::string_view description;  // lsvmbus text
};

// Every class above with its lsvmbus description, in lsvmbus's table order.
inline constexpr std::array<DeviceClass, 19> kKnownDeviceClasses = {{
    {kShutdownClassGuid, "[Operating system shutdown]"},
    {kTimeSyncClassGuid, "[Time Synchronization]"},
    {kHeartbeatClassGuid, "[Heartbeat]"},
    {kKvpClassGuid, "[Data Exchange]"},
    {kVssClassGuid, "[Backup (volume checkpoint)]"},
    {kFileCopyClassGuid, "[Guest services]"},
    {kDynamicMemoryClassGuid, "[Dynamic Memory]"},
    {kMouseClassGuid, "Synthetic mouse"},
    {kKeyboardClassGuid, "Synthetic keyboard"},
    {kSyntheticVideoClassGuid, "Synthetic framebuffer adapter"},
    {kNetworkClassGuid, "Synthetic network adapter"},
    {kIdeClassGuid, "Synthetic IDE Controller"},
    {kScsiClassGuid, "Synthetic SCSI Controller"},
    {kFibreChannelClassGuid, "Synthetic fiber channel adapter"},
    {kNetworkDirectClassGuid, "Synthetic RDMA adapter"},
    {kPcieClassGuid, "PCI Express pass-through"},
    {kRdvClassGuid, "[Reserved system device]"},
    {kAvma1ClassGuid, "[Reserved system device]"},
    {kAvma2ClassGuid, "[Reserved system device]"},
}};

// lsvmbus description of a device class ("Synthetic network adapter", "[Heartbeat]", ...);
// "Unknown" for any other GUID.
constexpr std::string_view DeviceDescription(const Guid& class_guid) {
  for (const DeviceClass& c : kKnownDeviceClasses) {
    if (c.class_guid == class_guid) return c.description;
  }
  return "Unknown";
}

}  // namespace uvmbus::wire

#endif  // UVMBUS_WIRE_DEVICE_GUIDS_H_
