// TAP endpoints in a private network namespace: the kernel's ping answered by the responder
// through a TapFrontend, multi-queue TAPs, adopted descriptors, carrier control. Needs root
// (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for TUNSETIFF) and /dev/net/tun: skipped with
// a reason otherwise.
#include "net/tap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#include <cstring>
#include <vector>

#include "net/responder.h"
#include "net_test_util.h"

namespace uvmbus::net {
namespace {

const MacAddress kGuestMac{{0x02, 0x15, 0x5d, 0x00, 0x00, 0x01}};
const MacAddress kPeerMac{{0x02, 0x15, 0x5d, 0x00, 0x00, 0x02}};
const Ipv4Address kGuestIp{{10, 9, 0, 1}};
const Ipv4Address kPeerIp{{10, 9, 0, 2}};

int64_t MonotonicMs() {
  struct timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

class TapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "/dev/net/tun is missing or not accessible (needs root)";
    }
    auto ns = NetNamespace::Create();
    if (!ns) GTEST_SKIP() << "cannot create a network namespace (needs root): " << ns.error();
    ns_ = std::move(*ns);
    // Probe CAP_NET_ADMIN once: creating a TAP is the real requirement.
    auto probe = TapEndpoint::Create({.ifname = "uvprobe", .bring_up = false, .netns = &ns_});
    if (!probe && (probe.error().code == ErrorCode::kPermissionDenied ||
                   probe.error().code == ErrorCode::kUnavailable)) {
      GTEST_SKIP() << "cannot create a TAP device: " << probe.error();
    }
    ASSERT_TRUE(probe) << probe.error();
  }

  // An AF_INET datagram socket in the test namespace (for interface ioctls).
  UniqueFd NsSocket(int type = SOCK_DGRAM, int protocol = 0) {
    auto fd = ns_.RunFor<UniqueFd>([&]() -> Expected<UniqueFd> {
      UniqueFd s(::socket(AF_INET, type | SOCK_CLOEXEC, protocol));
      if (!s) return tl::unexpected(Error::FromErrno("socket", errno));
      return s;
    });
    EXPECT_TRUE(fd) << fd.error();
    return fd ? std::move(*fd) : UniqueFd();
  }

  // The kernel's carrier state (ETHTOOL_GLINK is netif_carrier_ok(), read synchronously; the
  // IFF_RUNNING flag follows it only after the asynchronous linkwatch work).
  bool Carrier(const std::string& ifname) {
    UniqueFd s = NsSocket();
    struct ethtool_value link{};
    link.cmd = ETHTOOL_GLINK;
    struct ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = reinterpret_cast<char*>(&link);
    EXPECT_EQ(::ioctl(s.get(), SIOCETHTOOL, &ifr), 0) << std::strerror(errno);
    return link.data != 0;
  }

  short IfFlags(const std::string& ifname) {
    UniqueFd s = NsSocket();
    struct ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    EXPECT_EQ(::ioctl(s.get(), SIOCGIFFLAGS, &ifr), 0);
    return ifr.ifr_flags;
  }

  NetNamespace ns_;
};

// The guest NIC as a kernel interface: the kernel pings the peer address; the responder answers
// its ARP request and its echo request through the same TAP.
TEST_F(TapTest, KernelPingIsAnsweredByTheResponderThroughATapFrontend) {
  auto tap = TapFrontend::Create({.ifname = "uvguest0",
                                  .mac = kGuestMac,
                                  .ipv4 = Ipv4Interface{kGuestIp, 24},
                                  .netns = &ns_});
  ASSERT_TRUE(tap) << tap.error();
  TapEndpoint& ep = **tap;
  EXPECT_EQ(ep.ifname(), "uvguest0");
  EXPECT_EQ(ep.max_frame_size(), 1514u);
  const short flags = IfFlags("uvguest0");
  EXPECT_NE(flags & IFF_UP, 0);

  UniqueFd icmp = NsSocket(SOCK_RAW, IPPROTO_ICMP);
  ASSERT_TRUE(icmp);
  std::vector<uint8_t> echo(8 + 24);
  echo[0] = 8;  // echo request
  echo[4] = 0x12, echo[5] = 0x34;  // identifier
  echo[6] = 0x00, echo[7] = 0x01;  // sequence
  for (size_t i = 8; i < echo.size(); ++i) echo[i] = static_cast<uint8_t>(i);
  const uint16_t sum = InternetChecksum(echo);
  echo[2] = static_cast<uint8_t>(sum >> 8);
  echo[3] = static_cast<uint8_t>(sum);
  struct sockaddr_in to{};
  to.sin_family = AF_INET;
  std::memcpy(&to.sin_addr, kPeerIp.bytes.data(), 4);
  ASSERT_EQ(::sendto(icmp.get(), echo.data(), echo.size(), 0,
                     reinterpret_cast<const sockaddr*>(&to), sizeof(to)),
            static_cast<ssize_t>(echo.size()));

  Responder responder(kPeerMac, kPeerIp);
  std::vector<std::vector<uint8_t>> in_bufs(kMaxBatch, std::vector<uint8_t>(2048));
  std::vector<std::vector<uint8_t>> out_bufs(kMaxBatch, std::vector<uint8_t>(2048));
  bool got_reply = false;
  const int64_t deadline = MonotonicMs() + 5000;  // an upper bound, not a synchronisation
  while (!got_reply && MonotonicMs() < deadline) {
    struct pollfd fds[2] = {{ep.queue(0).wait_fd(), POLLIN, 0}, {icmp.get(), POLLIN, 0}};
    ASSERT_GE(::poll(fds, 2, 100), 0);
    RxBatch rx;
    for (auto& b : in_bufs) rx.Add(std::span<uint8_t>(b));
    const uint32_t n = ep.queue(0).Poll(rx);
    if (n != 0) {
      RxBatch replies;
      for (auto& b : out_bufs) replies.Add(std::span<uint8_t>(b));
      const uint32_t r = responder.Process(rx, n, replies);
      EXPECT_EQ(ep.queue(0).Send(AsFrameBatch(replies, r)), r);
    }
    if ((fds[1].revents & POLLIN) != 0) {
      uint8_t pkt[1500];
      const ssize_t len = ::recv(icmp.get(), pkt, sizeof pkt, 0);
      ASSERT_GT(len, 20);
      const size_t ihl = (pkt[0] & 0x0fu) * 4u;
      if (static_cast<size_t>(len) >= ihl + 8 && pkt[ihl] == 0 && pkt[ihl + 4] == 0x12 &&
          pkt[ihl + 5] == 0x34 && pkt[ihl + 7] == 1) {
        EXPECT_EQ(std::memcmp(pkt + 12, kPeerIp.bytes.data(), 4), 0);  // from the peer
        EXPECT_EQ(static_cast<size_t>(len) - ihl, echo.size());
        EXPECT_EQ(std::memcmp(pkt + ihl + 8, echo.data() + 8, echo.size() - 8), 0);
        got_reply = true;
      }
    }
  }
  ASSERT_TRUE(got_reply) << "no echo reply within 5 s; responder answered "
                         << responder.stats().arp_replies << " ARP, "
                         << responder.stats().echo_replies << " echo";
  EXPECT_GE(responder.stats().arp_replies, 1u);
  EXPECT_EQ(responder.stats().echo_replies, 1u);
  const NetStats s = ep.stats();
  EXPECT_GE(s.rx_packets, 2u);  // the ARP request and the echo request (plus IPv6 chatter)
  EXPECT_GE(s.tx_packets, 2u);
  EXPECT_EQ(s.tx_errors, 0u);
}

// The Send path alone: an ARP request written into the TAP is answered by the kernel.
TEST_F(TapTest, KernelAnswersAnArpRequestSentIntoTheTap) {
  auto tap = TapEndpoint::Create({.ifname = "uvarp0",
                                  .mac = kGuestMac,
                                  .ipv4 = Ipv4Interface{kGuestIp, 24},
                                  .netns = &ns_});
  ASSERT_TRUE(tap) << tap.error();
  Queue& q = (*tap)->queue(0);
  std::vector<uint8_t> req(60);
  ASSERT_EQ(BuildArpRequest(req, kPeerMac, kPeerIp, kGuestIp), 60u);
  ASSERT_EQ(testing::SendOne(q, req), 1u);
  std::optional<ParsedArp> reply;
  const int64_t deadline = MonotonicMs() + 5000;
  while (!reply && MonotonicMs() < deadline) {
    testing::FdReadable(q.wait_fd(), 100);
    for (const auto& f : testing::DrainQueue(q, 2048)) {
      auto arp = ParseArp(f);
      if (arp && arp->operation == 2) reply = arp;
      EXPECT_GE(f.size(), 60u);  // runts from the kernel are padded
    }
  }
  ASSERT_TRUE(reply) << "the kernel did not answer within 5 s";
  EXPECT_EQ(reply->sender_mac, kGuestMac);
  EXPECT_EQ(reply->sender_ip, kGuestIp);
  EXPECT_EQ(reply->target_mac, kPeerMac);
  EXPECT_EQ((*tap)->queue(0).stats().tx_packets, 1u);
}

TEST_F(TapTest, MultiQueueTapHasADescriptorPerQueueAndDetachesUnusedOnes) {
  auto tap = TapEndpoint::Create({.ifname = "uvmq0", .queues = 4, .netns = &ns_});
  ASSERT_TRUE(tap) << tap.error();
  TapEndpoint& ep = **tap;
  EXPECT_TRUE(ep.multi_queue());
  EXPECT_EQ(ep.max_queues(), 4u);
  EXPECT_EQ(ep.queue_count(), 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    struct ifreq ifr{};
    ASSERT_EQ(::ioctl(ep.queue_fd(i), TUNGETIFF, &ifr), 0);
    EXPECT_STREQ(ifr.ifr_name, "uvmq0");
    EXPECT_NE(ifr.ifr_flags & IFF_MULTI_QUEUE, 0);
    EXPECT_EQ(ep.queue(i).wait_fd(), ep.queue_fd(i));
  }
  ASSERT_TRUE(ep.SetQueueCount(1));
  EXPECT_EQ(ep.queue_count(), 1u);
  // A detached queue cannot be detached again (the kernel reports EINVAL); re-attach works.
  struct ifreq detach{};
  detach.ifr_flags = IFF_DETACH_QUEUE;
  EXPECT_NE(::ioctl(ep.queue_fd(3), TUNSETQUEUE, &detach), 0);
  ASSERT_TRUE(ep.SetQueueCount(3));
  EXPECT_EQ(::ioctl(ep.queue_fd(2), TUNSETQUEUE, &detach), 0);  // was attached
  EXPECT_EQ(ep.SetQueueCount(5).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ep.SetQueueCount(0).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TapTest, PreOpenedDescriptorsAreAdoptedAndWrongKindsRefused) {
  auto open_tun = [&](const char* name, int flags) {
    auto fd = ns_.RunFor<UniqueFd>([&]() -> Expected<UniqueFd> {
      UniqueFd f(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      struct ifreq ifr{};
      std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
      ifr.ifr_flags = static_cast<short>(flags);
      if (!f || ::ioctl(f.get(), TUNSETIFF, &ifr) != 0) {
        return tl::unexpected(Error::FromErrno("TUNSETIFF", errno));
      }
      return f;
    });
    EXPECT_TRUE(fd) << fd.error();
    return fd ? std::move(*fd) : UniqueFd();
  };
  std::vector<UniqueFd> fds;
  fds.push_back(open_tun("uvfd0", IFF_TAP | IFF_NO_PI));
  auto ep = TapEndpoint::FromFds(std::move(fds), 9000);
  ASSERT_TRUE(ep) << ep.error();
  EXPECT_EQ((*ep)->ifname(), "uvfd0");
  EXPECT_EQ((*ep)->max_frame_size(), 9014u);
  EXPECT_FALSE((*ep)->multi_queue());
  EXPECT_NE(::fcntl((*ep)->queue_fd(0), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ((*ep)->queue(0).Poll(*std::make_unique<RxBatch>()), 0u);

  std::vector<UniqueFd> tun;
  tun.push_back(open_tun("uvtun0", IFF_TUN | IFF_NO_PI));
  EXPECT_EQ(TapEndpoint::FromFds(std::move(tun)).error().code, ErrorCode::kInvalidArgument);
  // A TAP with packet information is refused when the kernel reports it (Linux 6.18 was seen to
  // report IFF_NO_PI in TUNGETIFF for such a TAP; then the check cannot see it).
  std::vector<UniqueFd> pi;
  pi.push_back(open_tun("uvpi0", IFF_TAP));
  struct ifreq pi_ifr{};
  ASSERT_EQ(::ioctl(pi[0].get(), TUNGETIFF, &pi_ifr), 0);
  if ((pi_ifr.ifr_flags & IFF_NO_PI) == 0) {
    EXPECT_EQ(TapEndpoint::FromFds(std::move(pi)).error().code, ErrorCode::kInvalidArgument);
  }
  std::vector<UniqueFd> two_single;
  two_single.push_back(open_tun("uvs0", IFF_TAP | IFF_NO_PI));
  two_single.push_back(open_tun("uvs1", IFF_TAP | IFF_NO_PI));
  EXPECT_EQ(TapEndpoint::FromFds(std::move(two_single)).error().code,
            ErrorCode::kInvalidArgument);
  std::vector<UniqueFd> not_tun;
  not_tun.push_back(UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)));
  EXPECT_EQ(TapEndpoint::FromFds(std::move(not_tun)).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(TapEndpoint::FromFds({}).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TapTest, CarrierFollowsSetLinkUp) {
  auto tap = TapEndpoint::Create({.ifname = "uvlink0", .netns = &ns_});
  ASSERT_TRUE(tap) << tap.error();
  EXPECT_TRUE(Carrier("uvlink0"));
  struct Recorder : LinkListener {
    std::vector<bool> seen;
    void OnLinkChange(bool up) override { seen.push_back(up); }
  } rec;
  (*tap)->SetLinkListener(&rec);
  ASSERT_TRUE((*tap)->SetLinkUp(false)) << "TUNSETCARRIER";
  EXPECT_FALSE(Carrier("uvlink0"));
  EXPECT_EQ(testing::SendOne((*tap)->queue(0), testing::MakeFrame(kPeerMac, kPeerMac)), 1u);
  EXPECT_EQ((*tap)->queue(0).stats().tx_carrier_errors, 1u);
  ASSERT_TRUE((*tap)->SetLinkUp(true));
  EXPECT_TRUE(Carrier("uvlink0"));
  (*tap)->SetLinkListener(nullptr);
  EXPECT_EQ(rec.seen, (std::vector<bool>{false, true}));
}

TEST_F(TapTest, CreateRejectsBadOptionsAndTakenNames) {
  EXPECT_EQ(TapEndpoint::Create({.ifname = "a-name-that-is-too-long", .netns = &ns_})
                .error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(TapEndpoint::Create({.queues = 0, .netns = &ns_}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(TapEndpoint::Create({.mtu = 10000, .netns = &ns_}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(TapFrontend::Create({.mac = MacAddress::Broadcast(), .netns = &ns_}).error().code,
            ErrorCode::kInvalidArgument);
  auto first = TapEndpoint::Create({.ifname = "uvdup0", .netns = &ns_});
  ASSERT_TRUE(first) << first.error();
  auto second = TapEndpoint::Create({.ifname = "uvdup0", .netns = &ns_});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists) << second.error();
  // A kernel-chosen name from the default template.
  auto templated = TapEndpoint::Create({.bring_up = false, .netns = &ns_});
  ASSERT_TRUE(templated) << templated.error();
  EXPECT_EQ((*templated)->ifname().rfind("uvtap", 0), 0u);
}

TEST_F(TapTest, JumboMtuIsAppliedToTheDevice) {
  auto tap = TapEndpoint::Create({.ifname = "uvjumbo0", .mtu = 9000, .netns = &ns_});
  ASSERT_TRUE(tap) << tap.error();
  EXPECT_EQ((*tap)->max_frame_size(), 9014u);
  UniqueFd s = NsSocket();
  struct ifreq ifr{};
  std::strncpy(ifr.ifr_name, "uvjumbo0", IFNAMSIZ - 1);
  ASSERT_EQ(::ioctl(s.get(), SIOCGIFMTU, &ifr), 0);
  EXPECT_EQ(ifr.ifr_mtu, 9000);
}

}  // namespace
}  // namespace uvmbus::net
