// Tests for wire/synic.h: SynIC message/event/monitor layouts and hypercall input checks
// (spec 1.3, 1.4, 1.5, 1.7).
#include "wire/synic.h"

#include <gtest/gtest.h>

#include <cstring>

namespace uvmbus::wire {
namespace {

TEST(SynicLayoutTest, VmbusSlotAndEventAreaAreAtByte512) {
  EXPECT_EQ(kVmbusMessageSlotOffset, 512u);
  EXPECT_EQ(kVmbusEventAreaOffset, 512u);
  EXPECT_EQ(kSynicEventFlagsPerArea, 2048u);
  EXPECT_EQ(kMaxChannelRelids, 2048u);
}

TEST(SynicLayoutTest, HvMessageFieldsSitWhereLinuxExpectsThem) {
  HvMessage m{};
  m.message_type = 0x01020304;
  m.payload_size = 0x55;
  m.message_flags = kHvMessageFlagPending;
  m.sender = 0x1122334455667788ull;
  m.payload[0] = 0xAA;
  m.payload[239] = 0xBB;
  uint8_t raw[256];
  std::memcpy(raw, &m, sizeof(raw));
  EXPECT_EQ(raw[0], 0x04);  // little-endian message_type
  EXPECT_EQ(raw[3], 0x01);
  EXPECT_EQ(raw[4], 0x55);
  EXPECT_EQ(raw[5], 0x01);
  EXPECT_EQ(raw[8], 0x88);
  EXPECT_EQ(raw[15], 0x11);
  EXPECT_EQ(raw[16], 0xAA);
  EXPECT_EQ(raw[255], 0xBB);
}

TEST(SynicLayoutTest, EventFlagBitNumberingIsLittleEndianOverWords) {
  EXPECT_EQ(EventFlagWordIndex(0), 0u);
  EXPECT_EQ(EventFlagWordIndex(63), 0u);
  EXPECT_EQ(EventFlagWordIndex(64), 1u);
  EXPECT_EQ(EventFlagWordIndex(2047), 31u);
  EXPECT_EQ(EventFlagWordMask(65), uint64_t{2});
  // Bit k is byte k / 8, bit k % 8 (spec 1.4).
  HvSynicEventFlags area{};
  area.flags[EventFlagWordIndex(77)] |= EventFlagWordMask(77);
  uint8_t raw[256];
  std::memcpy(raw, &area, sizeof(raw));
  EXPECT_EQ(raw[77 / 8], 1u << (77 % 8));
}

TEST(SynicLayoutTest, MonitorPageParameterSlotsAre8Bytes) {
  EXPECT_EQ(offsetof(HvMonitorPage, parameter) + sizeof(HvMonitorParameter) * 32 * 4, 0x840u);
  EXPECT_EQ(kMaxMonitorId, 127u);
}

TEST(PostMessageInputTest, AcceptsVmbusMessagesOf1To240Bytes) {
  EXPECT_EQ(CheckPostMessageInput(4, kHvMsgVmbus, 1), HvStatus::kSuccess);
  EXPECT_EQ(CheckPostMessageInput(0x00FFFFFF, kHvMsgVmbus, 240), HvStatus::kSuccess);
}

TEST(PostMessageInputTest, RejectsEmptyOrOversizedPayload) {
  EXPECT_EQ(CheckPostMessageInput(1, kHvMsgVmbus, 0), HvStatus::kInvalidParameter);
  EXPECT_EQ(CheckPostMessageInput(1, kHvMsgVmbus, 241), HvStatus::kInvalidParameter);
  EXPECT_EQ(CheckPostMessageInput(1, kHvMsgVmbus, uint64_t{1} << 40), HvStatus::kInvalidParameter);
}

TEST(PostMessageInputTest, RejectsTypeZeroAndHypervisorTypes) {
  EXPECT_EQ(CheckPostMessageInput(1, kHvMsgNone, 8), HvStatus::kInvalidParameter);
  EXPECT_EQ(CheckPostMessageInput(1, 0x80000010u, 8), HvStatus::kInvalidParameter);
}

TEST(PostMessageInputTest, RejectsReservedConnectionIdBits) {
  EXPECT_EQ(CheckPostMessageInput(0x01000001, kHvMsgVmbus, 8), HvStatus::kInvalidConnectionId);
}

TEST(HvStatusTest, NamesMatchTlfs) {
  EXPECT_EQ(HvStatusName(HvStatus::kSuccess), "HV_STATUS_SUCCESS");
  EXPECT_EQ(HvStatusName(HvStatus::kInvalidConnectionId), "HV_STATUS_INVALID_CONNECTION_ID");
  EXPECT_EQ(static_cast<uint16_t>(HvStatus::kInsufficientMemory), 0xB);
  EXPECT_EQ(static_cast<uint16_t>(HvStatus::kNotAcknowledged), 0x14);
  EXPECT_EQ(HvStatusName(static_cast<HvStatus>(0x99)), "HV_STATUS_UNKNOWN");
}

}  // namespace
}  // namespace uvmbus::wire
