// `uvmbus ls` text output: lsvmbus's exact layout on canned admin documents (tools/ls_format.h).
#include "tools/ls_format.h"

#include <gtest/gtest.h>

namespace uvmbus::tools {
namespace {

using nlohmann::json;

constexpr const char* kHeartbeat = "{57164f39-9115-4e78-ab55-382f3bd5422d}";
constexpr const char* kNic = "{f8615163-df3e-46c5-913f-f2d2f965ed0e}";

// Two guests: g1 with a heartbeat device (relid 1) and a NIC with two channels (relids 12 and
// 3, listed out of order); g2 with a heartbeat only.
json CannedDocument() {
  return json::parse(R"({
    "host": {"pid": 100, "socket": "/tmp/u.sock"},
    "guests": [
      {"name": "g1", "pid": 4242, "state": "connected", "version": "5.3",
       "devices": {
         "b9f3a0a4-0000-4000-8000-000000000001": {
           "id": 12, "class_id": "{F8615163-DF3E-46C5-913F-F2D2F965ED0E}",
           "device_id": "{b9f3a0a4-0000-4000-8000-000000000001}",
           "channel_vp_mapping": ["12:1", "3:0"],
           "channels": {}
         },
         "0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11": {
           "id": 1, "class_id": "{57164f39-9115-4e78-ab55-382f3bd5422d}",
           "device_id": "{0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11}",
           "channel_vp_mapping": ["1:0"],
           "channels": {"1": {"cpu": 0, "events": 7}}
         }
       }},
      {"name": "g2", "pid": 4243, "state": "connected", "version": "5.3",
       "devices": {
         "6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5": {
           "id": 1, "class_id": "57164f39-9115-4e78-ab55-382f3bd5422d",
           "device_id": "6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5",
           "channel_vp_mapping": ["1:1"]
         }
       }}
    ]
  })");
}

TEST(LsFormatTest, ParsesTheDocumentSortedLikeLsvmbus) {
  auto guests = ParseLsDocument(CannedDocument());
  ASSERT_TRUE(guests) << guests.error();
  ASSERT_EQ(guests->size(), 2u);
  const LsGuest& g1 = (*guests)[0];
  EXPECT_EQ(g1.name, "g1");
  EXPECT_EQ(g1.pid, 4242);
  EXPECT_EQ(g1.version, "5.3");
  ASSERT_EQ(g1.devices.size(), 2u);
  EXPECT_EQ(g1.devices[0].id, 1u);
  EXPECT_EQ(g1.devices[0].description, "[Heartbeat]");
  EXPECT_EQ(g1.devices[1].id, 12u);
  // GUIDs are printed as sysfs does: lower case, in braces, whatever the input's form.
  EXPECT_EQ(g1.devices[1].class_id, kNic);
  EXPECT_EQ(g1.devices[1].description, "Synthetic network adapter");
  ASSERT_EQ(g1.devices[1].channels.size(), 2u);
  EXPECT_EQ(g1.devices[1].channels[0].relid, 3u);
  EXPECT_EQ(g1.devices[1].channels[1].relid, 12u);
  EXPECT_EQ((*guests)[1].devices[0].class_id, kHeartbeat);
}

TEST(LsFormatTest, DefaultLayout) {
  auto guests = ParseLsDocument(CannedDocument());
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLs(*guests, 0),
            "Guest g1 (pid 4242, VMBus 5.3, connected):\n"
            "VMBUS ID  1: [Heartbeat]\n"
            "VMBUS ID 12: Synthetic network adapter\n"
            "\n"
            "Guest g2 (pid 4243, VMBus 5.3, connected):\n"
            "VMBUS ID  1: [Heartbeat]\n");
}

TEST(LsFormatTest, VerboseLayoutAddsClassIdAndChannels) {
  auto guests = ParseLsDocument(CannedDocument());
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLs(*guests, 1),
            "Guest g1 (pid 4242, VMBus 5.3, connected):\n"
            "VMBUS ID  1: Class_ID = {57164f39-9115-4e78-ab55-382f3bd5422d} - [Heartbeat]\n"
            "\tRel_ID=1, target_cpu=0\n"
            "\n"
            "VMBUS ID 12: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network "
            "adapter\n"
            "\tRel_ID=3, target_cpu=0\n"
            "\tRel_ID=12, target_cpu=1\n"
            "\n"
            "Guest g2 (pid 4243, VMBus 5.3, connected):\n"
            "VMBUS ID  1: Class_ID = {57164f39-9115-4e78-ab55-382f3bd5422d} - [Heartbeat]\n"
            "\tRel_ID=1, target_cpu=1\n"
            "\n");
}

TEST(LsFormatTest, VeryVerboseLayoutAddsDeviceIdAndSysfsPath) {
  auto guests = ParseLsDocument(CannedDocument());
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLsvmbus((*guests)[1].devices, 2),
            "VMBUS ID  1: Class_ID = {57164f39-9115-4e78-ab55-382f3bd5422d} - [Heartbeat]\n"
            "\tDevice_ID = {6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5}\n"
            "\tSysfs path: /sys/bus/vmbus/devices/6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5\n"
            "\tRel_ID=1, target_cpu=1\n"
            "\n");
  // lsvmbus treats any verbosity above 2 like 2.
  EXPECT_EQ(FormatLsvmbus((*guests)[1].devices, 7), FormatLsvmbus((*guests)[1].devices, 2));
}

TEST(LsFormatTest, UnknownClassPrintsUnknown) {
  LsDevice d;
  auto doc = json::parse(R"({"guests":[{"name":"g","pid":1,"devices":{"x":{
      "id": 5, "class_id": "{01234567-89ab-cdef-0123-456789abcdef}",
      "device_id": "{01234567-89ab-cdef-0123-456789abcdef}"}}}]})");
  auto guests = ParseLsDocument(doc);
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLsvmbus((*guests)[0].devices, 0), "VMBUS ID  5: Unknown\n");
  // No channel_vp_mapping: the verbose block has no channel lines but still ends in a blank line.
  EXPECT_EQ(FormatLsvmbus((*guests)[0].devices, 1),
            "VMBUS ID  5: Class_ID = {01234567-89ab-cdef-0123-456789abcdef} - Unknown\n\n");
}

TEST(LsFormatTest, AcceptsDevicesAsAnArray) {
  auto guests = ParseLsDocument(json::parse(R"({"guests":[{"name":"g","pid":1,"devices":[
      {"id": 3, "class_id": "{57164f39-9115-4e78-ab55-382f3bd5422d}",
       "device_id": "{57164f39-9115-4e78-ab55-382f3bd5422d}"}]}]})"));
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLsvmbus((*guests)[0].devices, 0), "VMBUS ID  3: [Heartbeat]\n");
}

TEST(LsFormatTest, WideIdsAreNotTruncated) {
  LsDevice d;
  d.id = 2047;
  d.description = "[Heartbeat]";
  EXPECT_EQ(FormatLsvmbus({d}, 0), "VMBUS ID 2047: [Heartbeat]\n");
}

TEST(LsFormatTest, HeadingOfAGuestThatHasNotNegotiated) {
  LsGuest g;
  g.name = "early";
  g.pid = 7;
  g.state = "disconnected";
  EXPECT_EQ(FormatGuestHeading(g), "Guest early (pid 7, VMBus not negotiated, disconnected):\n");
}

TEST(LsFormatTest, GuestWithoutDevicesInVerboseModeIsSeparatedByABlankLine) {
  LsGuest a;
  a.name = "a";
  a.pid = 1;
  a.state = "connected";
  a.version = "5.3";
  LsGuest b = a;
  b.name = "b";
  EXPECT_EQ(FormatLs({a, b}, 1),
            "Guest a (pid 1, VMBus 5.3, connected):\n"
            "\n"
            "Guest b (pid 1, VMBus 5.3, connected):\n");
}

TEST(LsFormatTest, NoGuestsPrintsNothing) {
  auto guests = ParseLsDocument(json::parse(R"({"guests": []})"));
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLs(*guests, 2), "");
}

TEST(LsFormatTest, SysfsPathStripsBraces) {
  EXPECT_EQ(SysfsPath("{abc}"), "/sys/bus/vmbus/devices/abc");
  EXPECT_EQ(SysfsPath("abc"), "/sys/bus/vmbus/devices/abc");
}

struct BadDocument {
  const char* name;
  const char* json;
  const char* message_part;
};

class LsFormatBadDocumentTest : public ::testing::TestWithParam<BadDocument> {};

TEST_P(LsFormatBadDocumentTest, IsRejectedAsMalformed) {
  auto doc = json::parse(GetParam().json);
  auto guests = ParseLsDocument(doc);
  ASSERT_FALSE(guests);
  EXPECT_EQ(guests.error().code, ErrorCode::kMalformed);
  EXPECT_NE(guests.error().message.find(GetParam().message_part), std::string::npos)
      << guests.error().message;
}

#define DEV(body) R"({"guests":[{"name":"g","pid":1,"devices":{"d":{)" body R"(}}}]})"
#define GOOD_IDS \
  R"("class_id":"{57164f39-9115-4e78-ab55-382f3bd5422d}",)" \
  R"("device_id":"{57164f39-9115-4e78-ab55-382f3bd5422d}")"

INSTANTIATE_TEST_SUITE_P(
    Cases, LsFormatBadDocumentTest,
    ::testing::Values(
        BadDocument{"NotObject", "[]", "not an object"},
        BadDocument{"NoGuests", "{}", "\"guests\""},
        BadDocument{"GuestNotObject", R"({"guests":[1]})", "guests[0]"},
        BadDocument{"NoName", R"({"guests":[{"pid":1,"devices":{}}]})", "\"name\""},
        BadDocument{"NegativePid", R"({"guests":[{"name":"g","pid":-1,"devices":{}}]})", "\"pid\""},
        BadDocument{"DevicesString", R"({"guests":[{"name":"g","pid":1,"devices":"x"}]})",
                    "\"devices\""},
        BadDocument{"NoId", DEV(GOOD_IDS), "\"id\""},
        BadDocument{"IdTooBig", DEV(R"("id":4294967296,)" GOOD_IDS), "\"id\""},
        BadDocument{"BadClass",
                    DEV(R"("id":1,"class_id":"zz",)"
                        R"("device_id":"{57164f39-9115-4e78-ab55-382f3bd5422d}")"),
                    "class_id"},
        BadDocument{"BadMapping", DEV(R"("id":1,)" GOOD_IDS R"(,"channel_vp_mapping":["1-0"])"),
                    "relid:cpu"},
        BadDocument{"MappingNotArray", DEV(R"("id":1,)" GOOD_IDS R"(,"channel_vp_mapping":"1:0")"),
                    "channel_vp_mapping"},
        BadDocument{"MappingOverflow",
                    DEV(R"("id":1,)" GOOD_IDS R"(,"channel_vp_mapping":["1:99999999999"])"),
                    "relid:cpu"}),
    [](const ::testing::TestParamInfo<BadDocument>& p) { return p.param.name; });

}  // namespace
}  // namespace uvmbus::tools
