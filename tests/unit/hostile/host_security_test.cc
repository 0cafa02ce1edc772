// Security of the host (issue 5 item 6; docs/robustness.md "Host security"): the control socket's
// mode and group, SO_PEERCRED logged on accept, a guest cannot name memory outside its own RAM
// (GPADL PFNs, GPA-direct ranges), and one guest cannot reach another's channels, GPADLs or NIC
// (relids and GPADL handles are per connection).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/log.h"
#include "hostile/hostile_peer.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"
#include "wire/nvsp.h"

namespace uvmbus::hostile {
namespace {

using ::testing::HasSubstr;

uint64_t RejectionCount(const host::ServerSnapshot& s, std::string_view name) {
  for (const auto& [n, v] : s.rejections) {
    if (n == name) return v;
  }
  return 0;
}

std::string SocketPath() {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "uvmbus-security-" + std::to_string(::getpid()) + "-" +
         std::to_string(n.fetch_add(1)) + ".sock";
}

// Keeps every partition the SocketHost hands over (the test does not serve them).
struct Accepted {
  std::mutex mu;
  std::vector<std::unique_ptr<partition::HostPartition>> partitions;
  partition::SocketHost::GuestCallback Callback() {
    return [this](std::unique_ptr<partition::HostPartition> p) {
      std::lock_guard lock(mu);
      partitions.push_back(std::move(p));
    };
  }
};

TEST(HostSecurityTest, ControlSocketIsOwnerOnlyByDefault) {
  Accepted accepted;
  const std::string path = SocketPath();
  auto host = partition::SocketHost::Listen(path, accepted.Callback());
  ASSERT_TRUE(host.has_value()) << host.error();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
}

TEST(HostSecurityTest, GroupOptionMakesTheSocketGroupAccessible) {
  Accepted accepted;
  const std::string path = SocketPath();
  partition::SocketHostOptions options;
  options.group = ::getegid();  // a group we belong to: chgrp needs no privilege
  auto host = partition::SocketHost::Listen(path, accepted.Callback(), options);
  ASSERT_TRUE(host.has_value()) << host.error();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, ::getegid());
  // A guest still connects.
  auto guest = partition::SocketGuestPartition::Connect(path, "grouped", 1, 1u << 20);
  ASSERT_TRUE(guest.has_value()) << guest.error();
}

TEST(HostSecurityTest, PeerCredentialsAreLoggedOnEveryAccept) {
  log::SetLevel(log::Level::kInfo);
  Accepted accepted;
  const std::string path = SocketPath();
  auto host = partition::SocketHost::Listen(path, accepted.Callback());
  ASSERT_TRUE(host.has_value()) << host.error();
  ::testing::internal::CaptureStderr();
  auto guest = partition::SocketGuestPartition::Connect(path, "creds", 1, 1u << 20);
  ASSERT_TRUE(guest.has_value()) << guest.error();
  (*host)->Stop();  // joins the accept thread: its log line is written
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("guest 'creds' connected: pid " + std::to_string(::getpid()) +
                             " uid " + std::to_string(::geteuid())));
  std::lock_guard lock(accepted.mu);
  ASSERT_EQ(accepted.partitions.size(), 1u);
  EXPECT_EQ(accepted.partitions[0]->peer().pid, ::getpid());
  EXPECT_EQ(accepted.partitions[0]->peer().uid, ::geteuid());
}

// GPADL naming a page one past the guest's RAM (the host maps only this guest's memfd: a PFN
// beyond it could only be someone else's memory) fails, counted as gpadl_bad_pages.
TEST(HostSecurityTest, GpadlNamingPagesOutsideTheGuestsRamIsRefused) {
  HostBench bench;
  HostBench::Guest* a = bench.AddGuest("a");
  ASSERT_NE(a, nullptr);
  HostileGuest peer(*a);
  ASSERT_TRUE(peer.AdvanceTo(Step::kOffers)) << peer.why();
  const uint64_t ram_pages = (16ull << 20) / 4096;
  const auto offers = bench.Snapshot(*a)->devices;
  ASSERT_FALSE(offers.empty());
  const uint32_t relid = offers.front().primary_relid;
  for (uint64_t pfn : {ram_pages, ram_pages + 1000, uint64_t{1} << 40}) {
    const std::array<uint64_t, 2> pfns = {1, pfn};
    auto created = a->vmbus->CreateGpadl(relid, static_cast<uint32_t>(0x200 + (pfn & 0xff)), pfns);
    ASSERT_TRUE(created.has_value());
    EXPECT_NE(created->creation_status, 0u) << "pfn " << pfn;
  }
  EXPECT_EQ(RejectionCount(*bench.Snapshot(*a), "gpadl_bad_pages"), 3u);
  EXPECT_EQ(bench.Snapshot(*a)->gpadls, 0u);
}

// A GPA-direct send whose range lies beyond the guest's RAM completes with FAIL (P10).
TEST(HostSecurityTest, GpaDirectRangesOutsideTheGuestsRamAreFailed) {
  HostBench bench;
  HostBench::Guest* a = bench.AddGuest("a");
  ASSERT_NE(a, nullptr);
  HostileGuest peer(*a);
  ASSERT_TRUE(peer.AdvanceTo(Step::kTraffic)) << peer.why();
  wire::NvspSendRndisPacket m;
  std::array<uint8_t, 40> payload{};
  ASSERT_TRUE(wire::EncodeNvsp(payload, m, 40));
  const std::array<uint64_t, 1> beyond = {(16ull << 20) / 4096};
  const wire::GpaDirectRangeRef range{100, 0, beyond};
  const uint64_t id = a->netvsc->NextTransId();
  ASSERT_TRUE(a->netvsc->SendGpaDirect(0, std::span(&range, 1), payload, id));
  auto comp = a->netvsc->WaitCompletion(0, id);
  ASSERT_TRUE(comp.has_value());
  auto parsed = wire::ParseNvspMessage(comp->payload(), wire::Direction::kHostToGuest,
                                       wire::PacketType::kComp, wire::kNvspVersion61);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(std::get<wire::NvspSendRndisPacketComplete>(*parsed).status, wire::NvspStatus::kFail);
  EXPECT_EQ(a->counters->Total(netvsp::Stat::kTxBadGpa), 1u);
}

// Two guests on one host: B has its NIC open (relid R, ring GPADL H, buffers). A names the same
// relid and handles on its own connection: every message hits A's own (absent) objects and is
// refused; B's channel, GPADLs and traffic are untouched.
TEST(HostSecurityTest, OneGuestCannotReachAnothersChannelsGpadlsOrNic) {
  HostBench bench;
  HostBench::Guest* a = bench.AddGuest("a");
  HostBench::Guest* b = bench.AddGuest("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  HostileGuest victim(*b);
  ASSERT_TRUE(victim.AdvanceTo(Step::kRndisInit)) << victim.why();
  const auto b_before = *bench.Snapshot(*b);
  ASSERT_FALSE(b_before.devices.empty());
  ASSERT_FALSE(b_before.devices.front().channels.empty());
  const uint32_t relid = b_before.devices.front().primary_relid;
  const auto& bstate = b->netvsc->channel_state(0);
  const uint32_t ring_gpadl = bstate.gpadl;
  ASSERT_GE(b_before.gpadls, 3u);  // ring + receive buffer + send buffer

  HostileGuest attacker(*a);
  ASSERT_TRUE(attacker.AdvanceTo(Step::kOffers)) << attacker.why();
  auto& vm = *a->vmbus;
  wire::OpenChannel open;
  open.child_relid = relid;
  open.openid = relid;
  open.ringbuffer_gpadlhandle = ring_gpadl;  // B's handle: unknown on A's connection
  open.downstream_ringbuffer_pageoffset = 16;
  vm.Post(open);
  wire::GpadlTeardown teardown;
  teardown.child_relid = relid;
  for (uint32_t h : {ring_gpadl, 0xCA000u, 0x5E000u}) {  // B's ring, receive and send buffers
    teardown.gpadl = h;
    vm.Post(teardown);
  }
  wire::CloseChannel close;
  close.child_relid = relid;
  vm.Post(close);
  wire::ModifyChannel modify;
  modify.child_relid = relid;
  vm.Post(modify);
  vm.ReceiveAll();

  const auto a_snap = *bench.Snapshot(*a);
  EXPECT_EQ(RejectionCount(a_snap, "open_bad_ring_gpadl"), 1u);
  EXPECT_EQ(RejectionCount(a_snap, "gpadl_teardown_invalid"), 3u);
  EXPECT_EQ(RejectionCount(a_snap, "close_not_open"), 1u);
  EXPECT_EQ(RejectionCount(a_snap, "modify_not_open"), 1u);
  // B: same GPADLs, its channel still open, nothing rejected, and its NIC carries traffic.
  const auto b_after = *bench.Snapshot(*b);
  EXPECT_EQ(b_after.gpadls, b_before.gpadls);
  EXPECT_TRUE(b_after.rejections.empty());
  std::array<uint8_t, 4> filter{};
  const uint32_t f = wire::kNdisPacketFilterLinuxDefault;
  std::memcpy(filter.data(), &f, 4);
  auto st = b->netvsc->Set(wire::NdisOid::kGenCurrentPacketFilter, filter);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, wire::RndisStatus::kSuccess);
}

}  // namespace
}  // namespace uvmbus::hostile
