// Guest RAM made of several regions: GuestRam::AddRegion's rules, lookups that must stay inside
// one region, revocation; RAM_REGION_ADD over the socket (SocketGuestPartition::AddRamRegion) and
// its hostile forms.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "common/mapped_region.h"
#include "partition/guest_ram.h"
#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"
#include "partition/socket_protocol.h"
#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::PartitionQueue;
using testing::RecordingHandler;
using wire::HvStatus;

constexpr uint64_t kRamPages = 16;
constexpr uint64_t kBase = uint64_t{1} << 32;  // like DPDK's no-huge heap, just above 4 GiB

// A memfd of `bytes` with the given seals (what a guest runtime registers).
UniqueFd SealedMemfd(uint64_t bytes, int seals = F_SEAL_SHRINK | F_SEAL_GROW) {
  UniqueFd fd(::memfd_create("region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd);
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

UniqueFd Dup(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

class GuestRamRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto guest = GuestRam::Create(kRamPages);
    ASSERT_TRUE(guest) << guest.error();
    guest_ = std::move(*guest);
    auto host = GuestRam::FromFd(Dup(guest_.fd()), guest_.size());
    ASSERT_TRUE(host) << host.error();
    ram_ = std::move(*host);
  }
  GuestRam guest_;
  GuestRam ram_;
};

TEST_F(GuestRamRegionTest, PagesResolveInsideAnExtraRegionAndShareItsBytes) {
  UniqueFd fd = SealedMemfd(4 * kPageSize);
  auto mine = MappedRegion::MapShared(fd.get(), 4 * kPageSize);
  ASSERT_TRUE(mine);
  ASSERT_TRUE(ram_.AddRegion(Dup(fd.get()), kBase, 4 * kPageSize));
  EXPECT_EQ(ram_.region_count(), 1u);
  mine->data()[kPageSize + 5] = 0x5A;
  auto pages = ram_.Pages((kBase >> kPageShift) + 1, 3);
  ASSERT_TRUE(pages) << pages.error();
  EXPECT_EQ(pages->size(), 3 * kPageSize);
  EXPECT_EQ((*pages)[5], 0x5A);
  auto range = ram_.Range(kBase + kPageSize + 5, 1);
  ASSERT_TRUE(range);
  EXPECT_EQ((*range)[0], 0x5A);
  (*range)[0] = 0x33;  // host writes reach the guest's mapping
  EXPECT_EQ(mine->data()[kPageSize + 5], 0x33);
  // Region 0 still works as before.
  EXPECT_TRUE(ram_.Pages(0, kRamPages));
}

TEST_F(GuestRamRegionTest, LookupsCrossingARegionOrTouchingAGapFailAndAreCounted) {
  ASSERT_TRUE(ram_.AddRegion(SealedMemfd(2 * kPageSize), kBase, 2 * kPageSize));
  // Adjacent second region: contiguous GPAs, but two regions.
  ASSERT_TRUE(ram_.AddRegion(SealedMemfd(2 * kPageSize), kBase + 2 * kPageSize, 2 * kPageSize));
  const uint64_t gpn = kBase >> kPageShift;
  EXPECT_TRUE(ram_.Pages(gpn, 2));
  EXPECT_TRUE(ram_.Pages(gpn + 2, 2));
  EXPECT_EQ(ram_.Pages(gpn + 1, 2).error().code, ErrorCode::kMalformed);  // crosses
  EXPECT_EQ(ram_.Pages(gpn + 4, 1).error().code, ErrorCode::kMalformed);  // past the end
  EXPECT_EQ(ram_.Pages(kRamPages, 1).error().code, ErrorCode::kMalformed);  // gap after RAM
  EXPECT_EQ(ram_.Pages(kRamPages - 1, 2).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram_.Range(kBase + 2 * kPageSize - 1, 2).error().code, ErrorCode::kMalformed);
  // Overflow-safe: nothing wraps into a region.
  EXPECT_EQ(ram_.Pages(UINT64_MAX, 2).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram_.Range(UINT64_MAX - 10, 100).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram_.Pages(gpn, UINT64_MAX).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(ram_.rejected_accesses(), 8u);
}

TEST_F(GuestRamRegionTest, RegionRulesAreEnforcedAndRefusalsCounted) {
  const uint64_t sz = 2 * kPageSize;
  auto expect = [&](UniqueFd fd, uint64_t base, uint64_t size, ErrorCode code) {
    auto r = ram_.AddRegion(std::move(fd), base, size);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, code) << r.error();
  };
  expect(UniqueFd(), kBase, sz, ErrorCode::kInvalidArgument);                    // no fd
  expect(SealedMemfd(sz), kBase + 1, sz, ErrorCode::kInvalidArgument);            // unaligned base
  expect(SealedMemfd(sz), kBase, sz + 1, ErrorCode::kInvalidArgument);            // unaligned size
  expect(SealedMemfd(sz), kBase, 0, ErrorCode::kInvalidArgument);                 // empty
  expect(SealedMemfd(sz), (uint64_t{1} << 52) - kPageSize, sz, ErrorCode::kInvalidArgument);
  expect(SealedMemfd(sz), UINT64_MAX & ~uint64_t{kPageSize - 1}, sz, ErrorCode::kInvalidArgument);
  expect(SealedMemfd(sz), kPageSize * (kRamPages - 1), sz, ErrorCode::kInvalidArgument);  // RAM
  expect(SealedMemfd(sz, F_SEAL_GROW), kBase, sz, ErrorCode::kInvalidArgument);   // may shrink
  expect(SealedMemfd(sz, F_SEAL_SHRINK), kBase, sz, ErrorCode::kInvalidArgument);  // may grow
  expect(SealedMemfd(sz, 0), kBase, sz, ErrorCode::kInvalidArgument);
  expect(SealedMemfd(3 * kPageSize), kBase, sz, ErrorCode::kInvalidArgument);     // size differs
  UniqueFd pipe_fds[2];
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  pipe_fds[0] = UniqueFd(p[0]);
  pipe_fds[1] = UniqueFd(p[1]);
  expect(std::move(pipe_fds[0]), kBase, sz, ErrorCode::kInvalidArgument);         // not a memfd
  ASSERT_TRUE(ram_.AddRegion(SealedMemfd(sz), kBase, sz));
  expect(SealedMemfd(sz), kBase + kPageSize, sz, ErrorCode::kInvalidArgument);    // overlap
  expect(SealedMemfd(sz), kBase - kPageSize, sz, ErrorCode::kInvalidArgument);    // overlap
  EXPECT_EQ(ram_.regions_rejected(), 14u);
  EXPECT_EQ(ram_.region_count(), 1u);
}

TEST_F(GuestRamRegionTest, AtMostSixteenExtraRegions) {
  for (uint64_t i = 0; i < kMaxRamRegions; ++i) {
    ASSERT_TRUE(ram_.AddRegion(SealedMemfd(kPageSize), kBase + 2 * i * kPageSize, kPageSize));
  }
  auto r = ram_.AddRegion(SealedMemfd(kPageSize), kBase + 64 * kPageSize, kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(ram_.region_count(), kMaxRamRegions);
  EXPECT_TRUE(ram_.Pages((kBase >> kPageShift) + 30, 1));
}

TEST_F(GuestRamRegionTest, RevokeReleasesEveryRegionAndKeepsSpansReadable) {
  UniqueFd fd = SealedMemfd(kPageSize);
  auto mine = MappedRegion::MapShared(fd.get(), kPageSize);
  ASSERT_TRUE(mine);
  mine->data()[0] = 7;
  ASSERT_TRUE(ram_.AddRegion(Dup(fd.get()), kBase, kPageSize));
  auto held = ram_.Pages(kBase >> kPageShift, 1);
  ASSERT_TRUE(held);
  EXPECT_EQ((*held)[0], 7);
  ram_.Revoke();
  EXPECT_EQ((*held)[0], 0);  // private zero page now, not the guest's memory
  (*held)[0] = 9;             // writes go nowhere
  EXPECT_EQ(mine->data()[0], 7);
  EXPECT_EQ(ram_.Pages(kBase >> kPageShift, 1).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(ram_.AddRegion(SealedMemfd(kPageSize), kBase + kPageSize, kPageSize).error().code,
            ErrorCode::kUnavailable);
}

TEST_F(GuestRamRegionTest, ConcurrentLookupsWhileRegionsAreAdded) {
  std::atomic<bool> done{false};
  std::atomic<uint64_t> found{0};
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) {
      for (uint64_t i = 0; i < 8; ++i) {
        if (auto p = ram_.Pages((kBase >> kPageShift) + 2 * i, 1); p) {
          found.fetch_add((*p)[0] == static_cast<uint8_t>(i + 1) ? 1 : 0);
        }
      }
    }
  });
  for (uint64_t i = 0; i < 8; ++i) {
    UniqueFd fd = SealedMemfd(kPageSize);
    auto mine = MappedRegion::MapShared(fd.get(), kPageSize);
    ASSERT_TRUE(mine);
    mine->data()[0] = static_cast<uint8_t>(i + 1);
    ASSERT_TRUE(ram_.AddRegion(std::move(fd), kBase + 2 * i * kPageSize, kPageSize));
  }
  done.store(true, std::memory_order_release);
  reader.join();
  for (uint64_t i = 0; i < 8; ++i) {
    auto p = ram_.Pages((kBase >> kPageShift) + 2 * i, 1);
    ASSERT_TRUE(p);
    EXPECT_EQ((*p)[0], i + 1);
  }
}

// ---- over the socket ----

std::string SocketPath() {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "uvmbus-region-" + std::to_string(::getpid()) + "-" +
         std::to_string(n.fetch_add(1)) + ".sock";
}

class SocketRamRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = SocketHost::Listen(
        SocketPath(), [this](std::unique_ptr<HostPartition> p) { queue_.Push(std::move(p)); });
    ASSERT_TRUE(host) << host.error();
    host_ = std::move(*host);
    auto g = SocketGuestPartition::Connect(host_->path(), "regions", 1, 64 * kPageSize);
    ASSERT_TRUE(g) << g.error();
    guest_ = std::move(*g);
    hp_ = queue_.Pop();
    ASSERT_NE(hp_, nullptr);
    ASSERT_TRUE(hp_->Start(&handler_));
  }
  PartitionQueue queue_;
  RecordingHandler handler_;
  std::unique_ptr<SocketHost> host_;
  std::unique_ptr<SocketGuestPartition> guest_;
  std::unique_ptr<HostPartition> hp_;
};

TEST_F(SocketRamRegionTest, GuestRegionBecomesVisibleToTheHostSynchronously) {
  UniqueFd fd = SealedMemfd(8 * kPageSize);
  auto mine = MappedRegion::MapShared(fd.get(), 8 * kPageSize);
  ASSERT_TRUE(mine);
  std::memcpy(mine->data() + 3 * kPageSize, "nohuge", 6);
  ASSERT_TRUE(guest_->AddRamRegion(fd.get(), kBase, 8 * kPageSize));
  // The caller keeps its fd.
  EXPECT_GE(::fcntl(fd.get(), F_GETFD), 0);
  auto page = hp_->GuestPages((kBase >> kPageShift) + 3, 1);
  ASSERT_TRUE(page) << page.error();
  EXPECT_EQ(std::memcmp(page->data(), "nohuge", 6), 0);
  EXPECT_EQ(hp_->stats().ram_regions, 1u);
}

TEST_F(SocketRamRegionTest, HostRefusalsReachTheGuestWithTheirMeaning) {
  UniqueFd unsealed = SealedMemfd(kPageSize, 0);
  auto r = guest_->AddRamRegion(unsealed.get(), kBase, kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  UniqueFd ok = SealedMemfd(kPageSize);
  r = guest_->AddRamRegion(ok.get(), 0, kPageSize);  // overlaps the HELLO RAM
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  for (uint64_t i = 0; i < kMaxRamRegions; ++i) {
    UniqueFd fd = SealedMemfd(kPageSize);
    ASSERT_TRUE(guest_->AddRamRegion(fd.get(), kBase + 2 * i * kPageSize, kPageSize));
  }
  r = guest_->AddRamRegion(ok.get(), kBase + 100 * kPageSize, kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  // Local checks never reach the host.
  EXPECT_EQ(guest_->AddRamRegion(-1, kBase, kPageSize).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(guest_->AddRamRegion(ok.get(), kBase + 1, kPageSize).error().code,
            ErrorCode::kInvalidArgument);
  const HostPartitionStats s = hp_->stats();
  EXPECT_EQ(s.ram_regions, kMaxRamRegions);
  EXPECT_EQ(s.ram_regions_rejected, 3u);
}

// A raw client (no guest library): RAM_REGION_ADD without its fd, with two fds, short, or with
// flags is refused with INVALID_HYPERCALL_INPUT and counted; the connection stays usable.
TEST(SocketRamRegionHostileTest, MalformedRegionRequestsAreAnsweredAndCounted) {
  PartitionQueue queue;
  auto host = SocketHost::Listen(
      SocketPath(), [&](std::unique_ptr<HostPartition> p) { queue.Push(std::move(p)); });
  ASSERT_TRUE(host) << host.error();
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, (*host)->path().data(), (*host)->path().size());
  ASSERT_EQ(::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // A valid HELLO: 1 vCPU, 16 pages.
  sockproto::Hello hello{};
  hello.header.type = static_cast<uint16_t>(sockproto::MsgType::kHello);
  hello.magic = sockproto::kMagic;
  hello.version_major = sockproto::kVersionMajor;
  hello.version_minor = sockproto::kVersionMinor;
  hello.vcpu_count = 1;
  hello.ram_bytes = 16 * kPageSize;
  std::strcpy(hello.name, "raw");
  sockproto::HelloVcpu vcpu{0, 1};
  std::vector<uint8_t> bytes(sizeof(hello) + sizeof(vcpu));
  std::memcpy(bytes.data(), &hello, sizeof(hello));
  std::memcpy(bytes.data() + sizeof(hello), &vcpu, sizeof(vcpu));
  auto ram = CreateMemfd("raw", 16 * kPageSize, true);
  ASSERT_TRUE(ram);
  UniqueFd irq(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int hello_fds[] = {ram->get(), irq.get()};
  ASSERT_TRUE(sockproto::SendDatagram(sock.get(), bytes, hello_fds, false));
  ASSERT_TRUE(testing::WaitFd(sock.get()));
  auto reply = sockproto::ReceiveDatagram(sock.get());
  ASSERT_TRUE(reply);
  ASSERT_EQ(sockproto::Load<sockproto::HelloReply>(reply->bytes).result, 0u);
  auto hp = queue.Pop();
  ASSERT_NE(hp, nullptr);
  RecordingHandler handler;
  ASSERT_TRUE(hp->Start(&handler));

  auto request = [&](sockproto::RamRegionAdd m, size_t size, std::vector<int> fds) {
    m.header.type = static_cast<uint16_t>(sockproto::MsgType::kRamRegionAdd);
    std::vector<uint8_t> b(sizeof(m));
    std::memcpy(b.data(), &m, sizeof(m));
    b.resize(size);
    EXPECT_TRUE(sockproto::SendDatagram(sock.get(), b, fds, false));
    EXPECT_TRUE(testing::WaitFd(sock.get()));
    auto d = sockproto::ReceiveDatagram(sock.get());
    EXPECT_TRUE(d);
    const auto r = sockproto::Load<sockproto::StatusReply>(d->bytes);
    EXPECT_EQ(r.header.seq, m.header.seq);
    return static_cast<HvStatus>(r.status);
  };
  UniqueFd region = SealedMemfd(kPageSize);
  sockproto::RamRegionAdd m{};
  m.header.seq = 7;
  m.gpa_base = kBase;
  m.size = kPageSize;
  EXPECT_EQ(request(m, sizeof(m), {}), HvStatus::kInvalidHypercallInput);  // no fd
  EXPECT_EQ(request(m, sizeof(m), {region.get(), region.get()}),
            HvStatus::kInvalidHypercallInput);                               // two fds
  EXPECT_EQ(request(m, sizeof(m) - 8, {region.get()}), HvStatus::kInvalidHypercallInput);
  sockproto::RamRegionAdd flagged = m;
  flagged.header.flags = 1;
  EXPECT_EQ(request(flagged, sizeof(m), {region.get()}), HvStatus::kInvalidHypercallInput);
  m.size = 2 * kPageSize;  // the memfd holds one page
  EXPECT_EQ(request(m, sizeof(m), {region.get()}), HvStatus::kInvalidParameter);
  m.size = kPageSize;
  EXPECT_EQ(request(m, sizeof(m), {region.get()}), HvStatus::kSuccess);
  const HostPartitionStats s = hp->stats();
  EXPECT_EQ(s.bad_requests, 4u);
  EXPECT_EQ(s.ram_regions, 1u);
  EXPECT_EQ(s.ram_regions_rejected, 1u);
}

}  // namespace
}  // namespace uvmbus::partition
