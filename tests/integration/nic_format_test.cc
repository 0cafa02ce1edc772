// Unit tests of the synthetic NIC's tool formats and flag parsers, on canned input: `uvmbus
// stats` (ethtool -S layout), `uvmbus channels` (ethtool -l layout), --nic / --tap / --traffic
// parsing, the generated MACs and the traffic frames' builder/checker.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

#include "tools/nic_spec.h"
#include "tools/stats_format.h"
#include "tools/traffic.h"

namespace uvmbus::tools {
namespace {

using nlohmann::json;

// An "ls" document as the daemon answers it: one guest with a heartbeat device and a NIC.
json CannedLs() {
  return json::parse(R"({
    "guests": [{
      "name": "alpha", "pid": 42, "state": "connected", "version": "5.3",
      "devices": {
        "57164f39-9115-4e78-ab55-382f3bd5422d": {
          "id": 1, "class_id": "{57164f39-9115-4e78-ab55-382f3bd5422d}",
          "device_id": "{11111111-2222-3333-4444-555555555555}"},
        "aaaaaaaa-2222-3333-4444-555555555555": {
          "id": 2, "class_id": "{f8615163-df3e-46c5-913f-f2d2f965ed0e}",
          "device_id": "{aaaaaaaa-2222-3333-4444-555555555555}",
          "channel_vp_mapping": ["2:0", "3:1"],
          "nic": {"id": "net0", "max_channels": 4, "mac": "00:15:5d:00:00:01"},
          "stats": {"id": "net0", "mac": "00:15:5d:00:00:01", "channels_open": 2,
                    "stats": {"rx_queue_1_bytes": 40, "tx_queue_10_packets": 7,
                              "rx_no_buffer": 0, "tx_queue_0_bytes": 300,
                              "rx_queue_0_packets": 2, "tx_queue_0_packets": 3,
                              "rx_queue_1_packets": 1, "rx_queue_0_bytes": 120,
                              "tx_queue_10_bytes": 70, "ring_corrupt": 5}}}
      }
    }, {"name": "beta", "pid": 43, "devices": {}}]
  })");
}

TEST(NicFormatTest, StatsPrintsEthtoolLayoutInNetvscOrder) {
  auto nics = ParseNics(CannedLs(), "");
  ASSERT_TRUE(nics) << nics.error();
  ASSERT_EQ(nics->size(), 1u);
  EXPECT_EQ(FormatStats(*nics),
            "NIC alpha/net0 (00:15:5d:00:00:01):\n"
            "NIC statistics:\n"
            "     tx_queue_0_packets: 3\n"
            "     tx_queue_0_bytes: 300\n"
            "     tx_queue_10_packets: 7\n"
            "     tx_queue_10_bytes: 70\n"
            "     rx_queue_0_packets: 2\n"
            "     rx_queue_0_bytes: 120\n"
            "     rx_queue_1_packets: 1\n"
            "     rx_queue_1_bytes: 40\n"
            "     ring_corrupt: 5\n"
            "     rx_no_buffer: 0\n");
}

TEST(NicFormatTest, StatsJsonIsAFlatMapPerGuestAndNic) {
  auto nics = ParseNics(CannedLs(), "alpha");
  ASSERT_TRUE(nics);
  const json j = StatsToJson(*nics);
  EXPECT_EQ(j["alpha"]["net0"]["tx_queue_10_packets"], 7);
  EXPECT_EQ(j["alpha"]["net0"]["ring_corrupt"], 5);
  EXPECT_EQ(j["alpha"]["net0"].size(), 10u);
  EXPECT_FALSE(j.contains("beta"));
}

TEST(NicFormatTest, GuestFilterSelectsOnlyThatGuest) {
  auto nics = ParseNics(CannedLs(), "beta");
  ASSERT_TRUE(nics);
  EXPECT_TRUE(nics->empty());
}

TEST(NicFormatTest, ChannelsPrintsEthtoolDashLLayout) {
  auto nics = ParseNics(CannedLs(), "");
  ASSERT_TRUE(nics);
  EXPECT_EQ(FormatChannels(*nics),
            "Channel parameters for alpha/net0:\n"
            "Pre-set maximums:\n"
            "RX:\t\tn/a\n"
            "TX:\t\tn/a\n"
            "Other:\t\tn/a\n"
            "Combined:\t4\n"
            "Current hardware settings:\n"
            "RX:\t\tn/a\n"
            "TX:\t\tn/a\n"
            "Other:\t\tn/a\n"
            "Combined:\t2\n");
  EXPECT_EQ(ChannelsToJson(*nics),
            json::parse(R"({"alpha": {"net0": {"combined-max": 4, "combined-count": 2}}})"));
}

TEST(NicFormatTest, ChannelMaximumFallsBackToTheOfferedChannels) {
  json doc = CannedLs();
  doc["guests"][0]["devices"]["aaaaaaaa-2222-3333-4444-555555555555"].erase("nic");
  auto nics = ParseNics(doc, "");
  ASSERT_TRUE(nics);
  ASSERT_EQ(nics->size(), 1u);
  EXPECT_EQ((*nics)[0].max_channels, 2u);
  EXPECT_EQ((*nics)[0].id, "net0");  // from the device's own stats
}

TEST(NicFormatTest, NotAnLsDocumentIsMalformed) {
  auto nics = ParseNics(json::parse(R"({"guests": 3})"), "");
  ASSERT_FALSE(nics);
  EXPECT_EQ(nics.error().code, ErrorCode::kMalformed);
}

TEST(NicSpecTest, EveryKeyParses) {
  auto spec = ParseNicSpec(
      "guest=g1,id=net1,backend=tap:tap7,mac=00:15:5d:01:02:03,queues=4,mtu=9000,"
      "pcap=/tmp/x.pcapng,spoof=on");
  ASSERT_TRUE(spec) << spec.error();
  EXPECT_EQ(spec->guest, "g1");
  EXPECT_EQ(spec->id, "net1");
  EXPECT_EQ(spec->backend, NicBackendKind::kTap);
  EXPECT_EQ(spec->backend_name, "tap7");
  EXPECT_EQ(spec->mac->ToString(), "00:15:5d:01:02:03");
  EXPECT_EQ(spec->queues, 4u);
  EXPECT_EQ(spec->mtu, 9000u);
  EXPECT_EQ(spec->pcap, "/tmp/x.pcapng");
  EXPECT_TRUE(spec->spoof);
}

TEST(NicSpecTest, DefaultsAreOneQueueOnSwitchSw0) {
  auto spec = ParseNicSpec("");
  ASSERT_TRUE(spec);
  EXPECT_TRUE(spec->guest.empty());
  EXPECT_EQ(spec->id, "net0");
  EXPECT_EQ(spec->BackendText(), "switch:sw0");
  EXPECT_EQ(spec->queues, 1u);
  EXPECT_EQ(spec->mtu, 1500u);
  EXPECT_FALSE(spec->mac);
}

TEST(NicSpecTest, OtherBackends) {
  EXPECT_EQ(ParseNicSpec("backend=loopback")->BackendText(), "loopback");
  EXPECT_EQ(ParseNicSpec("guest=a,backend=tap-fd:3:4,queues=2")->BackendText(), "tap-fd:3:4");
  EXPECT_EQ(ParseNicSpec("backend=switch:lab")->BackendText(), "switch:lab");
}

TEST(NicSpecTest, BadFlagsAreRejectedWithTheKey) {
  for (const char* bad :
       {"queues=0", "queues=65", "mtu=67", "mtu=9203", "backend=vde:x", "mac=01:00:5e:00:00:01",
        "guest=a,mac=00:00:00:00:00:00", "mac=00:15:5d:01:02:03", "color=red", "id=a,id=b",
        "spoof=maybe", "queues", "backend=tap-fd:x", "backend=tap-fd:3"}) {
    auto spec = ParseNicSpec(bad);
    ASSERT_FALSE(spec) << bad;
    EXPECT_EQ(spec.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(NicSpecTest, GeneratedMacsAreStableHyperVUnicastAndDifferPerGuest) {
  const net::MacAddress a = GenerateMac("alpha", "net0");
  EXPECT_EQ(a, GenerateMac("alpha", "net0"));
  EXPECT_NE(a, GenerateMac("beta", "net0"));
  EXPECT_NE(a, GenerateMac("alpha", "net1"));
  EXPECT_EQ(a.bytes[0], 0x00);
  EXPECT_EQ(a.bytes[1], 0x15);
  EXPECT_EQ(a.bytes[2], 0x5d);
}

TEST(NicSpecTest, TapAndTrafficFlags) {
  auto tap = ParseTapSpec("uvtap1,netns=ns1,addr=10.1.2.3/16");
  ASSERT_TRUE(tap) << tap.error();
  EXPECT_EQ(tap->ifname, "uvtap1");
  EXPECT_EQ(tap->netns, "ns1");
  EXPECT_EQ(tap->addr->address.ToString(), "10.1.2.3");
  EXPECT_EQ(tap->addr->prefix_length, 16);
  EXPECT_FALSE(ParseTapSpec("this-name-is-too-long"));

  auto t = ParseTrafficSpec("peer=10.0.0.2,frames=500,sizes=60-MTU,flows=8,rate=1000,stay=on");
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->peer_ip->ToString(), "10.0.0.2");
  EXPECT_EQ(t->frames, 500u);
  EXPECT_EQ(t->min_size, 60u);
  EXPECT_EQ(t->max_size, 0u);  // the NIC's largest frame
  EXPECT_EQ(t->flows, 8u);
  EXPECT_EQ(t->rate_pps, 1000u);
  EXPECT_TRUE(t->stay);
  EXPECT_TRUE(ParseTrafficSpec("peer=00:15:5d:00:00:02,sizes=100-200")->peer_mac);
  EXPECT_FALSE(ParseTrafficSpec("frames=5"));             // no peer
  EXPECT_FALSE(ParseTrafficSpec("peer=1.2.3.4,sizes=59-100"));
  EXPECT_FALSE(ParseTrafficSpec("peer=1.2.3.4,sizes=200-100"));
}

TEST(TrafficFrameTest, DataFramesOfEverySizeVerify) {
  const traffic::Link link{*net::MacAddress::Parse("00:15:5d:00:00:01"),
                           *net::MacAddress::Parse("00:15:5d:00:00:02")};
  std::vector<uint8_t> buf(1514);
  for (uint32_t len : {54u, 60u, 61u, 1000u, 1514u}) {
    ASSERT_EQ(traffic::BuildData(buf, link, 7, 1234, len), len);
    const traffic::Parsed p = traffic::Parse({buf.data(), len});
    EXPECT_EQ(p.verdict, traffic::Verdict::kData) << len;
    EXPECT_EQ(p.value, 1234u);
  }
}

TEST(TrafficFrameTest, AnyCorruptedByteOrPaddingMismatchIsBad) {
  const traffic::Link link{*net::MacAddress::Parse("00:15:5d:00:00:01"),
                           *net::MacAddress::Parse("00:15:5d:00:00:02")};
  std::vector<uint8_t> buf(300);
  const uint32_t len = traffic::BuildData(buf, link, 3, 99, 300);
  for (uint32_t i = 14; i < len; ++i) {
    std::vector<uint8_t> copy(buf.begin(), buf.begin() + len);
    copy[i] ^= 0x40;
    const traffic::Parsed p = traffic::Parse(copy);
    // Flipping a bit of the magic or the protocol makes it "not a test frame"; anything else bad.
    EXPECT_NE(p.verdict, traffic::Verdict::kData) << "byte " << i;
  }
  // Truncated: the header's length no longer fits.
  EXPECT_EQ(traffic::Parse({buf.data(), 200}).verdict, traffic::Verdict::kBad);
  // Padded (as wire-like backends do to short frames): still fine.
  std::vector<uint8_t> padded(buf.begin(), buf.begin() + len);
  padded.resize(len + 10, 0);
  EXPECT_EQ(traffic::Parse(padded).verdict, traffic::Verdict::kData);
}

TEST(TrafficFrameTest, AcksCarryTheCountAndTheDoneFlag) {
  const traffic::Link link{*net::MacAddress::Parse("00:15:5d:00:00:01"),
                           *net::MacAddress::Parse("00:15:5d:00:00:02")};
  std::vector<uint8_t> buf(60);
  ASSERT_EQ(traffic::BuildAck(buf, link, 77777, true), 60u);
  const traffic::Parsed p = traffic::Parse(buf);
  EXPECT_EQ(p.verdict, traffic::Verdict::kAck);
  EXPECT_EQ(p.value, 77777u);
  EXPECT_TRUE(p.done);
}

TEST(TrafficFrameTest, FrameLengthsCoverTheWholeRange) {
  uint32_t lo = 100000;
  uint32_t hi = 0;
  for (uint32_t seq = 0; seq < 10000; ++seq) {
    const uint32_t len = traffic::FrameLength(seq, 60, 1514);
    ASSERT_GE(len, 60u);
    ASSERT_LE(len, 1514u);
    lo = std::min(lo, len);
    hi = std::max(hi, len);
  }
  EXPECT_LT(lo, 70u);
  EXPECT_GT(hi, 1500u);
}

}  // namespace
}  // namespace uvmbus::tools
