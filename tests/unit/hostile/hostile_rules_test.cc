// Spec 9 rules that had no test of their own (docs/robustness.md): each feeds the violating input
// to the real host or guest and checks the exact error and counter.
#include <gtest/gtest.h>

#include <cstring>

#include "hostile/hostile_peer.h"
#include "wire/channel_messages.h"
#include "wire/rndis.h"

namespace uvmbus::hostile {
namespace {

uint64_t RejectionCount(const host::ServerSnapshot& s, std::string_view name) {
  for (const auto& [n, v] : s.rejections) {
    if (n == name) return v;
  }
  return 0;
}

// G4: a guest cannot make the host hold an unbounded number of half-built GPADLs (each
// GPADL_HEADER promising bodies that never come allocates an assembler). The 65th in-progress
// GPADL is refused with GPADL_CREATED(failure), counted as gpadl_limit; nothing else breaks.
TEST(HostRulesTest, G4GpadlsInProgressAreBounded) {
  HostBench bench;
  HostBench::Guest* g = bench.AddGuest("g4");
  ASSERT_NE(g, nullptr);
  HostileGuest peer(*g);
  ASSERT_TRUE(peer.AdvanceTo(Step::kOffers)) << peer.why();
  const uint32_t relid = bench.Snapshot(*g)->devices.front().primary_relid;
  size_t failed = 0;
  for (uint32_t i = 0; i <= host::kMaxGpadlsInProgress; ++i) {
    wire::GpadlHeaderMessage h;
    h.fixed.child_relid = relid;
    h.fixed.gpadl = 0x1000 + i;
    h.fixed.rangecount = 1;
    h.fixed.range_buflen = 8 + 8 * 100;  // one range of 100 pages: bodies must follow
    h.range_words[0] = uint64_t{100 * 4096};  // byte_count, byte_offset 0
    h.range_words[1] = 1;
    h.range_word_count = 2;
    ASSERT_EQ(g->vmbus->Post(wire::Encode(h)), wire::HvStatus::kSuccess);
    if (auto created = g->vmbus->ReceiveAs<wire::GpadlCreated>()) {
      EXPECT_EQ(created->gpadl, 0x1000 + i);
      EXPECT_NE(created->creation_status, 0u);
      ++failed;
    }
  }
  EXPECT_EQ(failed, 1u);
  const auto snap = *bench.Snapshot(*g);
  EXPECT_EQ(RejectionCount(snap, "gpadl_limit"), 1u);
  EXPECT_EQ(snap.gpadls_in_progress, host::kMaxGpadlsInProgress);
}

// D21: a media-status QUERY_CMPLT with info_buflen < 4 leaves the link state unchanged (up, the
// default) and is counted as rndis_query_failed; the NIC still comes up.
TEST(GuestRulesTest, D21MalformedMediaStatusLeavesTheLinkUnchanged) {
  GuestBench bench;
  bench.nic_host().SetRndisHook(
      [](uint32_t request_type, uint32_t oid, std::vector<uint8_t>& response, bool&) {
        if (request_type != 4 /* QUERY */ ||
            oid != static_cast<uint32_t>(wire::NdisOid::kGenMediaConnectStatus)) {
          return;
        }
        const uint32_t disconnected_but_short = 2;  // info_buflen @16
        std::memcpy(response.data() + 16, &disconnected_but_short, 4);
        const uint32_t value = 1;  // "disconnected" in the (ignored) buffer
        std::memcpy(response.data() + 24, &value, 4);
      });
  ASSERT_TRUE(bench.bus().RegisterDriver(bench.driver()).has_value());
  ASSERT_TRUE(bench.bus().Connect().has_value());
  auto nic = bench.nic();
  ASSERT_NE(nic, nullptr);
  EXPECT_TRUE(nic->link_up());
  EXPECT_EQ(nic->counters().rndis_query_failed.Get(), 1u);
}

// H6: the 6.0 client_id form can only matter once 6.0 is negotiated. This host's newest version
// is 5.3 (spec 10.1 V3), so an INITIATE_CONTACT for 6.0 - in the 40-byte form with the client_id
// feature flag, or any other - is refused with version_supported = 0 (H3), counted as
// version_refused, and the guest is not connected.
TEST(HostRulesTest, H6SixPointZeroContactIsRefusedWhateverItsForm) {
  HostBench bench;
  HostBench::Guest* g = bench.AddGuest("h6");
  ASSERT_NE(g, nullptr);
  wire::InitiateContact ic;
  ic.vmbus_version_requested = wire::MakeVersion(6, 0);
  ic.msg_sint = wire::kVmbusMessageSint;
  ic.feature_flags = 0xFFFFFFFFu;  // every 6.0 feature, client_id included, 40-byte form
  ic.monitor_page1 = 0x10000;
  ic.monitor_page2 = 0x11000;
  ASSERT_EQ(g->vmbus->Post(ic, wire::kVmbusMessageConnectionId4), wire::HvStatus::kSuccess);
  auto vr = g->vmbus->ReceiveAs<wire::VersionResponse>();
  ASSERT_TRUE(vr.has_value());
  EXPECT_EQ(vr->version_supported, 0);
  const auto snap = *bench.Snapshot(*g);
  EXPECT_EQ(RejectionCount(snap, "version_refused"), 1u);
  EXPECT_EQ(snap.state, "disconnected");
}

}  // namespace
}  // namespace uvmbus::hostile
