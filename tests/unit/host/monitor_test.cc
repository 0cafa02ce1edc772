// VmbusServer and monitored notification (spec 1.5): monitor ids in offers of devices that ask for
// them, a monitor bit in the guest's monitor_page2 ringing the open channel's doorbell like a
// SignalEvent, polling only while such a channel is open; and GPADLs over several guest RAM regions
// (partition::GuestRam::AddRegion).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <set>
#include <thread>

#include "host/gpadl_view.h"
#include "host_test_util.h"

namespace uvmbus::host::test {
namespace {

// A FakeDevice whose offers ask for monitors (what netvsp does).
class MonitoredDevice final : public Device {
 public:
  explicit MonitoredDevice(std::unique_ptr<FakeDevice> inner) : inner_(std::move(inner)) {}
  OfferParams Offer() const override {
    OfferParams p = inner_->Offer();
    p.monitored = true;
    return p;
  }
  uint16_t MaxSubchannels() const override { return inner_->MaxSubchannels(); }
  void Install(DeviceControl* control) override { inner_->Install(control); }
  Status Open(HostChannel& channel) override { return inner_->Open(channel); }
  CloseStatus Close(HostChannel& channel) override { return inner_->Close(channel); }

 private:
  std::unique_ptr<FakeDevice> inner_;
};

std::shared_ptr<FakeDeviceState> AddMonitored(HostEnv& env, uint8_t instance, uint16_t max_sub) {
  auto state = std::make_shared<FakeDeviceState>();
  env.server->AddDevice(std::make_unique<MonitoredDevice>(std::make_unique<FakeDevice>(
      state, wire::kNetworkClassGuid, TestInstance(instance), max_sub)));
  return state;
}

bool WaitReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 10000) == 1;  // guard only: the doorbell is normally ready at once
}

void SetMonitorBit(std::span<uint8_t> page, uint32_t id) {
  auto* word = reinterpret_cast<uint32_t*>(page.data() + offsetof(wire::HvMonitorPage, trigger_group) +
                                           (id / 32) * sizeof(wire::HvMonitorTriggerGroup));
  std::atomic_ref<uint32_t>(*word).fetch_or(1u << (id % 32), std::memory_order_seq_cst);
}

TEST(VmbusServerMonitorTest, MonitoredChannelsGetDistinctMonitorIdsOthersNone) {
  auto env = HostEnv::Create();
  auto plain = env->AddFake(1);
  auto nic = AddMonitored(*env, 2, 3);
  auto offers = env->guest->ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  ASSERT_TRUE(offers.has_value());
  ASSERT_EQ(offers->size(), 2u);
  EXPECT_EQ((*offers)[0].monitor_allocated, 0);
  EXPECT_EQ((*offers)[0].monitorid, wire::kNoMonitorId);
  EXPECT_EQ((*offers)[1].monitor_allocated, 1);
  EXPECT_EQ((*offers)[1].monitorid, 0);
  auto primary = env->guest->OpenChannel((*offers)[1].child_relid, (*offers)[1].connection_id,
                                         0xE1E10);
  ASSERT_TRUE(primary.has_value());
  ASSERT_EQ(primary->result.status, 0u);
  ASSERT_EQ(*nic->control->OfferSubchannels(3), 3u);
  std::set<uint8_t> ids{0};
  for (uint16_t i = 1; i <= 3; ++i) {
    auto offer = env->guest->ReceiveAs<wire::OfferChannel>();
    ASSERT_TRUE(offer.has_value());
    EXPECT_EQ(offer->sub_channel_index, i);
    EXPECT_EQ(offer->monitor_allocated, 1);
    EXPECT_LE(offer->monitorid, wire::kMaxMonitorId);
    ids.insert(offer->monitorid);
  }
  EXPECT_EQ(ids.size(), 4u);
  // The snapshot shows them (uvmbus ls).
  const ServerSnapshot snap = env->server->Snapshot();
  ASSERT_EQ(snap.devices.size(), 2u);
  EXPECT_EQ(snap.devices[1].channels[0].stats.monitor_id, 0u);
  EXPECT_EQ(snap.devices[0].channels[0].stats.monitor_id, wire::kNoMonitorId);
}

TEST(VmbusServerMonitorTest, MonitorBitIsTheChannelsDoorbellWhileItIsOpen) {
  auto env = HostEnv::Create();
  auto nic = AddMonitored(*env, 1, 0);
  auto offers = env->guest->ConnectAndRequestOffers(wire::kVersionWin10V5_3);
  ASSERT_TRUE(offers.has_value());
  ASSERT_EQ(offers->size(), 1u);
  const wire::OfferChannel offer = (*offers)[0];
  ASSERT_EQ(offer.monitor_allocated, 1);
  partition::HostPartition& hp = env->partition->host();
  EXPECT_FALSE(hp.monitor_polling());  // nothing open: no polling
  auto ch = env->guest->OpenChannel(offer.child_relid, offer.connection_id, 0xE1E10);
  ASSERT_TRUE(ch.has_value());
  ASSERT_EQ(ch->result.status, 0u);
  EXPECT_TRUE(hp.monitor_polling());
  HostChannel* hc = nic->Channel(0);
  ASSERT_NE(hc, nullptr);
  SetMonitorBit(env->guest->monitor_page2(), offer.monitorid);
  ASSERT_TRUE(WaitReadable(hc->doorbell_fd()));
  EXPECT_EQ(hc->ConsumeDoorbell(), 1u);
  // SignalEvent keeps working on the same channel (Linux-style guests).
  EXPECT_EQ(env->guest->Signal(offer.connection_id), wire::HvStatus::kSuccess);
  ASSERT_TRUE(WaitReadable(hc->doorbell_fd()));
  EXPECT_GE(hc->ConsumeDoorbell(), 1u);
  // The poller counts a hit right after ringing: wait for the count (guard-bounded).
  for (int i = 0; i < 1000000 && hp.stats().monitor_hits == 0; ++i) std::this_thread::yield();
  EXPECT_EQ(hp.stats().monitor_hits, 1u);
  // Closed: the monitor is disarmed and polling stops.
  wire::CloseChannel close;
  close.child_relid = offer.child_relid;
  env->guest->Post(close);
  EXPECT_EQ(nic->closes, 1);
  EXPECT_FALSE(hp.monitor_polling());
}

TEST(VmbusServerMonitorTest, MonitorPageOutsideGuestRamMeansNoMonitors) {
  auto env = HostEnv::Create();
  AddMonitored(*env, 1, 0);
  wire::InitiateContact msg;
  msg.vmbus_version_requested = wire::kVersionWin10V5_3;
  msg.msg_sint = wire::kVmbusMessageSint;
  msg.monitor_page1 = 0x10000;
  msg.monitor_page2 = uint64_t{1} << 40;  // far outside the 8 MiB of RAM
  ASSERT_EQ(env->guest->Post(msg, wire::kVmbusMessageConnectionId4), wire::HvStatus::kSuccess);
  auto response = env->guest->ReceiveAs<wire::VersionResponse>();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->version_supported, 1);
  ASSERT_EQ(env->guest->Post(wire::RequestOffers{}), wire::HvStatus::kSuccess);
  auto offer = env->guest->ReceiveAs<wire::OfferChannel>();
  ASSERT_TRUE(offer.has_value());
  EXPECT_EQ(offer->monitor_allocated, 0);
  EXPECT_EQ(offer->monitorid, wire::kNoMonitorId);
}

// ---- GPADLs over several RAM regions ----

UniqueFd SealedMemfd(uint64_t bytes) {
  UniqueFd fd(::memfd_create("region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  return fd;
}

TEST(GpadlViewRegionTest, PagesScatteredOverRegionsFormOneView) {
  auto lp = partition::LocalPartition::Create(1, 64 * partition::kPageSize);
  ASSERT_TRUE(lp);
  partition::HostPartition& hp = (*lp)->host();
  constexpr uint64_t kBase = uint64_t{1} << 32;
  constexpr uint64_t kGpn = kBase >> 12;
  constexpr uint64_t kPage = partition::kPageSize;
  // Two adjacent regions [kBase, +2 pages) and [kBase + 2 pages, +2 pages): their PFNs are one
  // consecutive run for the guest but two mappings for the host.
  UniqueFd a = SealedMemfd(2 * kPage);
  UniqueFd b = SealedMemfd(2 * kPage);
  auto a_map = MappedRegion::MapShared(a.get(), 2 * kPage);
  auto b_map = MappedRegion::MapShared(b.get(), 2 * kPage);
  ASSERT_TRUE(a_map && b_map);
  ASSERT_TRUE(hp.AddRamRegion(UniqueFd(::fcntl(a.get(), F_DUPFD_CLOEXEC, 0)), kBase, 2 * kPage));
  ASSERT_TRUE(
      hp.AddRamRegion(UniqueFd(::fcntl(b.get(), F_DUPFD_CLOEXEC, 0)), kBase + 2 * kPage, 2 * kPage));
  a_map->data()[0] = 1;
  a_map->data()[kPage] = 2;
  b_map->data()[0] = 3;
  b_map->data()[kPage] = 4;
  auto resolve = [&hp](uint64_t gpn, uint64_t count) { return hp.GuestPages(gpn, count); };
  // Within one region: zero-copy (the region's own span).
  wire::GpaRange one;
  one.byte_offset = 0;
  one.byte_count = static_cast<uint32_t>(2 * kPage);
  one.pfns = {kGpn, kGpn + 1};
  auto direct = GpadlView::Create(resolve, 1, 1, {one});
  ASSERT_TRUE(direct) << direct.error();
  EXPECT_TRUE((*direct)->direct());
  EXPECT_EQ((*direct)->pages()[kPage], 2);
  // Across the boundary, plus a page of region 0: aliased in order.
  wire::GpaRange across;
  across.byte_offset = 0;
  across.byte_count = static_cast<uint32_t>(5 * kPage);
  across.pfns = {kGpn, kGpn + 1, kGpn + 2, kGpn + 3, 10};
  auto view = GpadlView::Create(resolve, 2, 1, {across});
  ASSERT_TRUE(view) << view.error();
  EXPECT_FALSE((*view)->direct());
  EXPECT_EQ((*view)->run_count(), 3u);
  const auto pages = (*view)->pages();
  EXPECT_EQ(pages[0], 1);
  EXPECT_EQ(pages[kPage], 2);
  EXPECT_EQ(pages[2 * kPage], 3);
  EXPECT_EQ(pages[3 * kPage], 4);
  pages[3 * kPage + 1] = 0x77;  // the alias is the guest's memory
  EXPECT_EQ(b_map->data()[kPage + 1], 0x77);
  // A page in the gap after the regions fails the whole GPADL.
  wire::GpaRange gap = across;
  gap.pfns = {kGpn + 3, kGpn + 4};
  gap.byte_count = static_cast<uint32_t>(2 * kPage);
  auto bad = GpadlView::Create(resolve, 3, 1, {gap});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace uvmbus::host::test
