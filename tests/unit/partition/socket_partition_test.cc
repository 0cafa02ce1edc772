// Socket partition end to end: SocketHost (accept thread + per-guest control thread) and
// SocketGuestPartition (reader thread) over a real Unix socket, in one process and with a forked
// guest process.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"
#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using testing::Bytes;
using testing::FdReadable;
using testing::PartitionQueue;
using testing::RecordingHandler;
using testing::TakeMessageAndEom;
using testing::TestAndClearEvent;
using testing::WaitFd;
using wire::HvStatus;

constexpr uint64_t kRam = 64 * kPageSize;

std::string SocketPath() {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "uvmbus-part-" + std::to_string(::getpid()) + "-" +
         std::to_string(n.fetch_add(1)) + ".sock";
}

std::string ReadMaps() {
  std::ifstream f("/proc/self/maps");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class SocketPartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = SocketPath();
    auto host = SocketHost::Listen(
        path_, [this](std::unique_ptr<HostPartition> p) { queue_.Push(std::move(p)); });
    ASSERT_TRUE(host) << host.error();
    host_ = std::move(*host);
  }

  // Connects a guest and starts its host partition with handler_.
  void ConnectGuest(uint32_t vcpus = 2, const std::string& name = "g1") {
    auto g = SocketGuestPartition::Connect(path_, name, vcpus, kRam);
    ASSERT_TRUE(g) << g.error();
    guest_ = std::move(*g);
    hp_ = queue_.Pop();
    ASSERT_NE(hp_, nullptr);
    ASSERT_TRUE(hp_->Start(&handler_));
  }

  std::string path_;
  PartitionQueue queue_;
  RecordingHandler handler_;
  std::unique_ptr<SocketHost> host_;
  std::unique_ptr<SocketGuestPartition> guest_;
  std::unique_ptr<HostPartition> hp_;
};

TEST_F(SocketPartitionTest, ListeningSocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SocketPartitionTest, SecondHostOnALivePathIsRefused) {
  auto second = SocketHost::Listen(path_, [](std::unique_ptr<HostPartition>) {});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(SocketPartitionTest, StopRemovesTheSocketFile) {
  host_->Stop();
  struct stat st {};
  EXPECT_NE(::lstat(path_.c_str(), &st), 0);
  auto g = SocketGuestPartition::Connect(path_, "late", 1, kRam);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kUnavailable);
}

TEST(SocketHostListenTest, StaleSocketFileIsReplaced) {
  const std::string path = SocketPath();
  {
    // A socket file nobody listens on, as a crashed host leaves behind.
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  auto host = SocketHost::Listen(path, [](std::unique_ptr<HostPartition>) {});
  ASSERT_TRUE(host) << host.error();
}

TEST(SocketHostListenTest, NonSocketFileIsNotTouched) {
  const std::string path = SocketPath();
  { std::ofstream(path) << "precious"; }
  auto host = SocketHost::Listen(path, [](std::unique_ptr<HostPartition>) {});
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, ErrorCode::kAlreadyExists);
  std::ifstream f(path);
  std::string content;
  f >> content;
  EXPECT_EQ(content, "precious");
  ::unlink(path.c_str());
}

TEST(SocketHostListenTest, RejectsBadArguments) {
  EXPECT_EQ(SocketHost::Listen("", [](std::unique_ptr<HostPartition>) {}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      SocketHost::Listen(std::string(200, 'x'), [](std::unique_ptr<HostPartition>) {}).error().code,
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketHost::Listen(SocketPath(), nullptr).error().code, ErrorCode::kInvalidArgument);
}

TEST(SocketGuestConnectTest, NoHostIsUnavailable) {
  auto g = SocketGuestPartition::Connect(SocketPath(), "g", 1, kRam);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kUnavailable);
}

TEST(SocketGuestConnectTest, RejectsBadParametersLocally) {
  const std::string p = SocketPath();
  EXPECT_EQ(SocketGuestPartition::Connect(p, "", 1, kRam).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketGuestPartition::Connect(p, "has space", 1, kRam).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketGuestPartition::Connect(p, std::string(64, 'a'), 1, kRam).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketGuestPartition::Connect(p, "g", 0, kRam).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketGuestPartition::Connect(p, "g", 1, kRam + 1).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SocketGuestPartition::Connect(p, "g", 4, 8 * kPageSize).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(SocketPartitionTest, HandshakeCarriesShapeAndPeerCredentials) {
  ConnectGuest(2, "guest-a");
  EXPECT_EQ(hp_->vcpu_count(), 2u);
  EXPECT_EQ(hp_->guest_page_count(), kRam / kPageSize);
  EXPECT_EQ(hp_->peer().name, "guest-a");
  EXPECT_EQ(hp_->peer().pid, ::getpid());
  EXPECT_EQ(hp_->peer().uid, ::getuid());
  EXPECT_EQ(hp_->peer().transport, "socket");
  EXPECT_EQ(host_->guests_accepted(), 1u);
  // Both sides see the same memory.
  guest_->ram().all()[5 * kPageSize + 3] = 0x77;
  EXPECT_EQ((*hp_->GuestPages(5, 1))[3], 0x77);
}

TEST_F(SocketPartitionTest, PostMessageIsARequestReplyToTheHandler) {
  ConnectGuest();
  const auto payload = Bytes({14, 0, 0, 0, 0, 0, 0, 0, 9});
  EXPECT_EQ(guest_->PostMessage(4, wire::kHvMsgVmbus, payload), HvStatus::kSuccess);
  handler_.post_status = HvStatus::kInvalidConnectionId;
  EXPECT_EQ(guest_->PostMessage(4, wire::kHvMsgVmbus, payload), HvStatus::kInvalidConnectionId);
  std::vector<uint8_t> big(241, 0);
  EXPECT_EQ(guest_->PostMessage(4, 1, big), HvStatus::kInvalidParameter);  // never sent
  ASSERT_EQ(handler_.post_count(), 2u);
  EXPECT_EQ(handler_.posts[0].payload, payload);
  EXPECT_EQ(handler_.posts[0].connection_id, 4u);
  EXPECT_EQ(hp_->stats().messages_posted, 2u);
}

TEST_F(SocketPartitionTest, ConcurrentPostsFromSeveralGuestThreadsAllGetReplies) {
  ConnectGuest();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (guest_->PostMessage(4, 1, Bytes({static_cast<uint8_t>(t)})) == HvStatus::kSuccess) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(handler_.post_count(), 200u);
}

TEST_F(SocketPartitionTest, HostMessagesUseTheSlotAndEomTravelsOverTheSocket) {
  ConnectGuest();
  ASSERT_TRUE(hp_->PostToGuest(1, Bytes({1, 2, 3})));
  ASSERT_TRUE(hp_->PostToGuest(1, Bytes({4, 5, 6})));
  ASSERT_TRUE(WaitFd(guest_->InterruptFd(1)));
  EXPECT_EQ(guest_->AckInterrupt(1), 1u);
  auto m1 = TakeMessageAndEom(*guest_, 1);  // pending: EOM goes to the host asynchronously
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->payload, Bytes({1, 2, 3}));
  EXPECT_TRUE(m1->pending);
  ASSERT_TRUE(WaitFd(guest_->InterruptFd(1)));  // the host delivered after the EOM
  guest_->AckInterrupt(1);
  auto m2 = TakeMessageAndEom(*guest_, 1);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->payload, Bytes({4, 5, 6}));
  EXPECT_EQ(hp_->stats().eoms, 1u);
}

TEST_F(SocketPartitionTest, SignalGuestSetsTheEventBitInSharedMemory) {
  ConnectGuest();
  ASSERT_TRUE(hp_->SignalGuest(0, 300));
  ASSERT_TRUE(WaitFd(guest_->InterruptFd(0)));
  EXPECT_TRUE(TestAndClearEvent(guest_->EventPage(0), 300));
}

TEST_F(SocketPartitionTest, DoorbellBecomesTheFastPathAfterARoundTrip) {
  ConnectGuest();
  auto bell = hp_->CreateDoorbell(0x2003);
  ASSERT_TRUE(bell) << bell.error();
  // Replies are ordered after every earlier host message (one SEQPACKET stream, one reader), so
  // after this round trip the guest knows the doorbell.
  ASSERT_EQ(guest_->PostMessage(4, 1, Bytes({0})), HvStatus::kSuccess);
  EXPECT_EQ(guest_->SignalEvent(0x2003, 0), HvStatus::kSuccess);
  EXPECT_EQ(guest_->stats().events_fast.Get(), 1u);
  ASSERT_TRUE(WaitFd(bell->fd()));
  EXPECT_EQ(bell->Consume(), 1u);
  EXPECT_EQ(handler_.signal_count(), 0u);
  // Unregistering travels as DOORBELL_REMOVE; afterwards signals take the slow path.
  bell->Reset();
  ASSERT_EQ(guest_->PostMessage(4, 1, Bytes({0})), HvStatus::kSuccess);
  EXPECT_EQ(guest_->SignalEvent(0x2003, 0), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(guest_->stats().events_slow.Get(), 1u);
  EXPECT_EQ(handler_.signal_count(), 1u);
  EXPECT_EQ(hp_->stats().guest_signals_slow, 1u);
}

TEST_F(SocketPartitionTest, GuestHangupReachesTheHandlerAndReleasesTheMapping) {
  ConnectGuest(1, "hangup-guest");
  guest_->Disconnect();
  ASSERT_TRUE(handler_.WaitDisconnect());
  EXPECT_FALSE(hp_->connected());
  EXPECT_EQ(hp_->GuestPages(4, 1).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(handler_.disconnects, 1);
  EXPECT_TRUE(WaitFd(guest_->DisconnectFd()));
  EXPECT_EQ(guest_->PostMessage(4, 1, Bytes({0})), HvStatus::kInvalidPortId);
}

TEST_F(SocketPartitionTest, HostHangupIsSeenByTheGuest) {
  ConnectGuest();
  hp_.reset();  // the host drops the guest (e.g. daemon shutdown)
  ASSERT_TRUE(WaitFd(guest_->DisconnectFd()));
  EXPECT_FALSE(guest_->connected());
  EXPECT_EQ(guest_->PostMessage(4, 1, Bytes({0})), HvStatus::kInvalidPortId);
  EXPECT_EQ(guest_->SignalEvent(9, 0), HvStatus::kInvalidPortId);
}

TEST_F(SocketPartitionTest, StopEndsCallbacksWithoutDisconnect) {
  ConnectGuest();
  hp_->Stop();
  hp_->Stop();
  EXPECT_EQ(handler_.disconnects, 0);
  EXPECT_TRUE(hp_->connected());
}

class StoppingHandler : public RecordingHandler {
 public:
  HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                         std::span<const uint8_t> payload) override {
    partition->Stop();
    return RecordingHandler::OnPostMessage(connection_id, message_type, payload);
  }
  HostPartition* partition = nullptr;
};

TEST_F(SocketPartitionTest, StopFromInsideACallbackEndsTheLoopAfterIt) {
  auto g = SocketGuestPartition::Connect(path_, "stopper", 1, kRam);
  ASSERT_TRUE(g);
  auto hp = queue_.Pop();
  ASSERT_NE(hp, nullptr);
  StoppingHandler h;
  h.partition = hp.get();
  ASSERT_TRUE(hp->Start(&h));
  EXPECT_EQ((*g)->PostMessage(4, 1, Bytes({1})), HvStatus::kSuccess);
  hp.reset();  // joins the (finished) control thread; the guest sees the hang-up
  EXPECT_TRUE(WaitFd((*g)->DisconnectFd()));
  EXPECT_EQ(h.post_count(), 1u);
  EXPECT_EQ(h.disconnect_count(), 0);
}

TEST(SocketHostLimitsTest, GuestLearnsWhyTheHostRefusedIt) {
  PartitionQueue queue;
  SocketHostOptions options;
  options.max_vcpus = 1;
  const std::string path = SocketPath();
  auto host = SocketHost::Listen(
      path, [&](std::unique_ptr<HostPartition> p) { queue.Push(std::move(p)); }, options);
  ASSERT_TRUE(host);
  auto g = SocketGuestPartition::Connect(path, "big", 2, kRam);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(g.error().message.find("2 vcpus"), std::string::npos) << g.error();
  EXPECT_EQ((*host)->hellos_rejected(), 1u);
  EXPECT_EQ((*host)->guests_accepted(), 0u);
}

// A real guest process: SIGKILL it and the host must see the hang-up, call OnDisconnect and free
// the guest's memory mapping.
TEST(SocketForkTest, KilledGuestProcessIsDisconnectedAndItsMemoryReleased) {
  const std::string path = SocketPath();
  int go[2];
  int ready[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(ready), 0);
  // Fork before any thread of this test exists: the child starts its own threads.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(go[1]);
    ::close(ready[0]);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    auto g = SocketGuestPartition::Connect(path, "forked-guest", 1, kRam);
    if (!g) ::_exit(3);
    if (::write(ready[1], "r", 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  struct ChildGuard {
    pid_t pid;
    ~ChildGuard() {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } guard{child};
  ::close(go[0]);
  ::close(ready[1]);
  PartitionQueue queue;
  auto host =
      SocketHost::Listen(path, [&](std::unique_ptr<HostPartition> p) { queue.Push(std::move(p)); });
  ASSERT_TRUE(host) << host.error();
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  auto hp = queue.Pop();
  ASSERT_NE(hp, nullptr);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(hp->peer().pid, child);
  EXPECT_EQ(hp->peer().name, "forked-guest");
  RecordingHandler handler;
  ASSERT_TRUE(hp->Start(&handler));
  EXPECT_NE(ReadMaps().find("uvmbus-guest-forked-guest"), std::string::npos);

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  guard.pid = -1;
  EXPECT_TRUE(WIFSIGNALED(status));

  ASSERT_TRUE(handler.WaitDisconnect());
  EXPECT_FALSE(hp->connected());
  EXPECT_EQ(hp->GuestPages(4, 1).error().code, ErrorCode::kUnavailable);
  // The shared mapping of the guest's memfd is gone from the host.
  EXPECT_EQ(ReadMaps().find("uvmbus-guest-forked-guest"), std::string::npos);
  ::close(go[1]);
  ::close(ready[0]);
}

}  // namespace
}  // namespace uvmbus::partition
