// The admin "ls" document built from HostService's snapshot JSON (tools/ls_document.h).
#include "tools/ls_document.h"

#include <gtest/gtest.h>

#include "tools/ls_format.h"

namespace uvmbus::tools {
namespace {

using nlohmann::json;

// HostService's form (host/host_service.h ToJson): devices as an array.
json Snapshot() {
  return json::parse(R"({
    "guests_accepted": 3, "guests_removed": 1,
    "guests": [
      {"name": "g1", "pid": 10, "state": "connected", "version": "5.3",
       "gpadls": 3, "gpadls_in_progress": 1,
       "devices": [
         {"id": 1, "class_id": "{57164f39-9115-4e78-ab55-382f3bd5422d}",
          "device_id": "{0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11}",
          "channel_vp_mapping": ["1:0"],
          "channels": {"1": {"state": "open", "cpu": 0}}},
         {"id": 2, "class_id": "{f8615163-df3e-46c5-913f-f2d2f965ed0e}",
          "device_id": "{b9f3a0a4-0000-4000-8000-000000000001}",
          "channel_vp_mapping": [],
          "channels": {"2": {"state": "offered"}, "3": {"state": "open", "cpu": 1}}}
       ]},
      {"name": "g2", "pid": 11, "state": "connected", "version": "5.3", "gpadls": 1,
       "devices": []}
    ]
  })");
}

HostIdentity Identity() {
  HostIdentity id;
  id.pid = 99;
  id.socket = "/tmp/u.sock";
  id.admin_socket = "/tmp/u.sock.ctl";
  id.program_version = "0.1.0";
  id.heartbeat_interval_ms = 250;
  id.uptime_ms = 1234;
  return id;
}

TEST(LsDocumentTest, KeysDevicesByDeviceIdLikeSysfs) {
  json doc = BuildLsDocument(Snapshot(), Identity(), nullptr);
  const json& devices = doc["guests"][0]["devices"];
  ASSERT_TRUE(devices.is_object());
  ASSERT_TRUE(devices.contains("0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11"));
  ASSERT_TRUE(devices.contains("b9f3a0a4-0000-4000-8000-000000000001"));
  EXPECT_EQ(devices["0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11"]["id"], 1);
  EXPECT_TRUE(doc["guests"][1]["devices"].is_object());
  EXPECT_TRUE(doc["guests"][1]["devices"].empty());
}

TEST(LsDocumentTest, AddsHostIdentityAndKeepsServiceCounters) {
  json doc = BuildLsDocument(Snapshot(), Identity(), nullptr);
  EXPECT_EQ(doc["host"], json::parse(R"({"pid": 99, "socket": "/tmp/u.sock",
      "admin_socket": "/tmp/u.sock.ctl", "program_version": "0.1.0",
      "heartbeat_interval_ms": 250, "uptime_ms": 1234})"));
  EXPECT_EQ(doc["guests_accepted"], 3);
  EXPECT_EQ(doc["guests_removed"], 1);
}

TEST(LsDocumentTest, TotalsSumAllGuests) {
  json doc = BuildLsDocument(Snapshot(), Identity(), nullptr);
  EXPECT_EQ(doc["totals"], json::parse(R"({"guests": 2, "devices": 2, "channels": 3,
      "open_channels": 2, "gpadls": 4, "gpadls_in_progress": 1})"));
}

TEST(LsDocumentTest, MergesDeviceExtras) {
  json doc = BuildLsDocument(Snapshot(), Identity(), [](const std::string& device_id) -> json {
    if (device_id == "{0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11}") {
      return {{"heartbeat", {{"heartbeats_answered", 7}}}};
    }
    return nullptr;
  });
  const json& devices = doc["guests"][0]["devices"];
  EXPECT_EQ(devices["0b8a5a4e-5c21-4e8e-a0f7-6c0e0e3b2d11"]["heartbeat"]["heartbeats_answered"], 7);
  EXPECT_FALSE(devices["b9f3a0a4-0000-4000-8000-000000000001"].contains("heartbeat"));
}

TEST(LsDocumentTest, AcceptsDevicesAlreadyKeyedAndAnEmptySnapshot) {
  json keyed = BuildLsDocument(Snapshot(), Identity(), nullptr);
  json again = BuildLsDocument(keyed, Identity(), nullptr);
  EXPECT_EQ(again["guests"], keyed["guests"]);
  EXPECT_EQ(again["totals"], keyed["totals"]);

  json empty = BuildLsDocument(json(), Identity(), nullptr);
  EXPECT_EQ(empty["guests"], json::array());
  EXPECT_EQ(empty["totals"]["guests"], 0);
}

TEST(LsDocumentTest, TheTextFormatterReadsTheDocument) {
  json doc = BuildLsDocument(Snapshot(), Identity(), nullptr);
  auto guests = ParseLsDocument(doc);
  ASSERT_TRUE(guests) << guests.error();
  EXPECT_EQ(FormatLs(*guests, 0),
            "Guest g1 (pid 10, VMBus 5.3, connected):\n"
            "VMBUS ID  1: [Heartbeat]\n"
            "VMBUS ID  2: Synthetic network adapter\n"
            "\n"
            "Guest g2 (pid 11, VMBus 5.3, connected):\n");
}

}  // namespace
}  // namespace uvmbus::tools
