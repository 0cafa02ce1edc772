// The socket protocol against hostile peers: a raw "guest" sending malformed HELLOs and requests to
// a real SocketHost, and a fake "host" feeding bad replies and doorbells to a real guest. Every
// case must be refused with a clear error and no crash (spec 9.1).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "partition/socket_guest_partition.h"
#include "partition/socket_host.h"
#include "partition/socket_protocol.h"
#include "partition_test_util.h"

namespace uvmbus::partition {
namespace {

using sockproto::HelloResult;
using sockproto::MsgType;
using testing::PartitionQueue;
using testing::RecordingHandler;
using testing::WaitFd;
using wire::HvStatus;

std::string SocketPath() {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "uvmbus-hostile-" + std::to_string(::getpid()) + "-" +
         std::to_string(n.fetch_add(1)) + ".sock";
}

UniqueFd ConnectRaw(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  return fd;
}

UniqueFd NewEventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

template <typename T>
std::span<const uint8_t> AsBytes(const T& v) {
  return {reinterpret_cast<const uint8_t*>(&v), sizeof(T)};
}

// A hand-built HELLO that tests then corrupt one field at a time.
struct RawHello {
  sockproto::Hello hello{};
  std::vector<sockproto::HelloVcpu> vcpus;
  UniqueFd ram;
  std::vector<UniqueFd> irqs;
  std::vector<uint8_t> extra;  // appended after the vcpu entries

  static RawHello Valid(uint32_t vcpus = 1, uint64_t pages = 16) {
    RawHello h;
    h.hello.header.type = static_cast<uint16_t>(MsgType::kHello);
    h.hello.magic = sockproto::kMagic;
    h.hello.version_major = sockproto::kVersionMajor;
    h.hello.vcpu_count = vcpus;
    h.hello.ram_bytes = pages * kPageSize;
    std::strcpy(h.hello.name, "raw");
    for (uint32_t v = 0; v < vcpus; ++v) {
      h.vcpus.push_back({2 * v, 2 * v + 1});
      h.irqs.push_back(NewEventfd());
    }
    h.ram = std::move(*CreateMemfd("uvmbus-raw", pages * kPageSize, true));
    return h;
  }
  std::vector<uint8_t> Encode() const {
    std::vector<uint8_t> out(sizeof(hello));
    std::memcpy(out.data(), &hello, sizeof(hello));
    for (const auto& v : vcpus) {
      const auto b = AsBytes(v);
      out.insert(out.end(), b.begin(), b.end());
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }
  std::vector<int> Fds() const {
    std::vector<int> fds{ram.get()};
    for (const auto& f : irqs) fds.push_back(f.get());
    return fds;
  }
};

class SocketHostHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = SocketPath();
    SocketHostOptions options;
    options.hello_timeout_ms = 1000;
    auto host = SocketHost::Listen(
        path_, [this](std::unique_ptr<HostPartition> p) { queue_.Push(std::move(p)); }, options);
    ASSERT_TRUE(host) << host.error();
    host_ = std::move(*host);
  }

  // Sends `bytes` + `fds` as a HELLO and returns the host's reply.
  sockproto::HelloReply Exchange(std::span<const uint8_t> bytes, std::span<const int> fds,
                                 UniqueFd* keep = nullptr) {
    UniqueFd sock = ConnectRaw(path_);
    EXPECT_TRUE(sock);
    EXPECT_TRUE(sockproto::SendDatagram(sock.get(), bytes, fds, false));
    sockproto::HelloReply reply{};
    EXPECT_TRUE(WaitFd(sock.get()));
    auto d = sockproto::ReceiveDatagram(sock.get());
    EXPECT_TRUE(d) << d.error();
    if (d) {
      EXPECT_EQ(d->bytes.size(), sizeof(reply));
      reply = sockproto::Load<sockproto::HelloReply>(d->bytes);
    }
    if (keep != nullptr) *keep = std::move(sock);
    return reply;
  }
  sockproto::HelloReply Exchange(const RawHello& h) { return Exchange(h.Encode(), h.Fds()); }

  void ExpectRefused(const sockproto::HelloReply& r, HelloResult result, std::string_view reason) {
    EXPECT_EQ(r.header.type, static_cast<uint16_t>(MsgType::kHelloReply));
    EXPECT_EQ(r.result, static_cast<uint32_t>(result));
    const std::string text(r.reason, strnlen(r.reason, sizeof(r.reason)));
    EXPECT_NE(text.find(reason), std::string::npos) << "reason: " << text;
    EXPECT_EQ(host_->guests_accepted(), 0u);
  }

  std::string path_;
  PartitionQueue queue_;
  std::unique_ptr<SocketHost> host_;
};

TEST_F(SocketHostHostileTest, ValidRawHelloIsAccepted) {
  RawHello h = RawHello::Valid(2);
  const auto r = Exchange(h);
  EXPECT_EQ(r.result, static_cast<uint32_t>(HelloResult::kAccepted));
  EXPECT_EQ(r.version_major, sockproto::kVersionMajor);
  EXPECT_NE(queue_.Pop(), nullptr);
}

TEST_F(SocketHostHostileTest, TruncatedHelloIsMalformed) {
  RawHello h = RawHello::Valid();
  auto bytes = h.Encode();
  bytes.resize(10);
  ExpectRefused(Exchange(bytes, h.Fds()), HelloResult::kMalformed, "truncated");
  EXPECT_EQ(host_->hellos_rejected(), 1u);
}

TEST_F(SocketHostHostileTest, WrongMagicOrTypeIsMalformed) {
  RawHello h = RawHello::Valid();
  h.hello.magic = 0xdeadbeef;
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "not a HELLO");
  RawHello t = RawHello::Valid();
  t.hello.header.type = static_cast<uint16_t>(MsgType::kPostMessage);
  ExpectRefused(Exchange(t), HelloResult::kMalformed, "not a HELLO");
}

TEST_F(SocketHostHostileTest, NewerMajorVersionIsUnsupported) {
  RawHello h = RawHello::Valid();
  h.hello.version_major = sockproto::kVersionMajor + 1;
  ExpectRefused(Exchange(h), HelloResult::kUnsupportedVersion, "not supported");
}

TEST_F(SocketHostHostileTest, VcpuCountOutOfRangeIsRefused) {
  RawHello zero = RawHello::Valid();
  zero.hello.vcpu_count = 0;
  ExpectRefused(Exchange(zero), HelloResult::kMalformed, "0 vcpus");
  RawHello many = RawHello::Valid();
  many.hello.vcpu_count = 0xFFFFFFFF;  // a huge count must not size anything
  ExpectRefused(Exchange(many), HelloResult::kLimits, "vcpus");
}

TEST_F(SocketHostHostileTest, SizeNotMatchingTheVcpuCountIsMalformed) {
  RawHello h = RawHello::Valid(2);
  h.vcpus.pop_back();
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "need exactly");
  RawHello e = RawHello::Valid(1);
  e.extra = {1, 2, 3};
  ExpectRefused(Exchange(e), HelloResult::kMalformed, "need exactly");
}

TEST_F(SocketHostHostileTest, MissingFdsAreMalformed) {
  RawHello h = RawHello::Valid(2);
  ExpectRefused(Exchange(h.Encode(), {}), HelloResult::kMalformed, "carries 0 fds, expected 3");
  auto fds = h.Fds();
  fds.pop_back();
  ExpectRefused(Exchange(h.Encode(), fds), HelloResult::kMalformed, "carries 2 fds");
}

TEST_F(SocketHostHostileTest, InterruptFdThatIsNotAnEventfdIsMalformed) {
  RawHello h = RawHello::Valid();
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  h.irqs[0] = UniqueFd(p[1]);
  ::close(p[0]);
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "not an eventfd");
}

TEST_F(SocketHostHostileTest, UnsealedOrMissizedRamIsMalformed) {
  RawHello h = RawHello::Valid();
  h.ram = std::move(*CreateMemfd("unsealed", 16 * kPageSize, false));
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "not sealed");
  RawHello s = RawHello::Valid();
  s.hello.ram_bytes = 32 * kPageSize;
  ExpectRefused(Exchange(s), HelloResult::kMalformed, "holds");
  RawHello u = RawHello::Valid();
  u.hello.ram_bytes = 16 * kPageSize + 1;
  ExpectRefused(Exchange(u), HelloResult::kMalformed, "multiple");
}

TEST_F(SocketHostHostileTest, RamAboveTheHostLimitIsRefusedBeforeMapping) {
  RawHello h = RawHello::Valid();
  h.hello.ram_bytes = ~uint64_t{0};
  ExpectRefused(Exchange(h), HelloResult::kLimits, "limit");
}

TEST_F(SocketHostHostileTest, SynicPagesOutsideRamOrOverlappingAreMalformed) {
  RawHello h = RawHello::Valid();
  h.vcpus[0].simp_gpn = 16;
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "outside RAM");
  RawHello o = RawHello::Valid();
  o.vcpus[0].siefp_gpn = ~uint64_t{0};
  ExpectRefused(Exchange(o), HelloResult::kMalformed, "outside RAM");
  RawHello d = RawHello::Valid(2);
  d.vcpus[1].simp_gpn = 0;
  ExpectRefused(Exchange(d), HelloResult::kMalformed, "overlap");
}

TEST_F(SocketHostHostileTest, BadNamesAreMalformed) {
  RawHello h = RawHello::Valid();
  std::memset(h.hello.name, 'a', sizeof(h.hello.name));  // no terminator
  ExpectRefused(Exchange(h), HelloResult::kMalformed, "name");
  RawHello e = RawHello::Valid();
  e.hello.name[0] = 0;
  ExpectRefused(Exchange(e), HelloResult::kMalformed, "name");
  RawHello c = RawHello::Valid();
  c.hello.name[1] = '\n';
  ExpectRefused(Exchange(c), HelloResult::kMalformed, "name");
}

TEST_F(SocketHostHostileTest, OversizedHelloIsMalformed) {
  std::vector<uint8_t> big(sockproto::kMaxDatagram + 100, 0);
  ExpectRefused(Exchange(big, {}), HelloResult::kMalformed, "larger");
}

TEST_F(SocketHostHostileTest, SilentClientIsDroppedAfterTheTimeoutAndOthersStillConnect) {
  UniqueFd silent = ConnectRaw(path_);
  ASSERT_TRUE(silent);
  ASSERT_TRUE(WaitFd(silent.get()));  // the host closes it: EOF
  auto d = sockproto::ReceiveDatagram(silent.get());
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(host_->hellos_rejected(), 1u);
  RawHello h = RawHello::Valid();
  EXPECT_EQ(Exchange(h).result, static_cast<uint32_t>(HelloResult::kAccepted));
}

// After a valid handshake: malformed requests are answered/counted and the connection survives.
class SocketRequestHostileTest : public SocketHostHostileTest {
 protected:
  void SetUp() override {
    SocketHostHostileTest::SetUp();
    hello_ = RawHello::Valid();
    const auto r = Exchange(hello_.Encode(), hello_.Fds(), &sock_);
    ASSERT_EQ(r.result, static_cast<uint32_t>(HelloResult::kAccepted));
    hp_ = queue_.Pop();
    ASSERT_NE(hp_, nullptr);
    ASSERT_TRUE(hp_->Start(&handler_));
  }
  void Send(std::span<const uint8_t> bytes, std::span<const int> fds = {}) {
    ASSERT_TRUE(sockproto::SendDatagram(sock_.get(), bytes, fds, false));
  }
  // Next datagram from the host, which must be a STATUS_REPLY.
  sockproto::StatusReply NextReply() {
    sockproto::StatusReply r{};
    EXPECT_TRUE(WaitFd(sock_.get()));
    auto d = sockproto::ReceiveDatagram(sock_.get());
    EXPECT_TRUE(d);
    if (d) {
      EXPECT_EQ(d->bytes.size(), sizeof(r));
      r = sockproto::Load<sockproto::StatusReply>(d->bytes);
      EXPECT_EQ(r.header.type, static_cast<uint16_t>(MsgType::kStatusReply));
    }
    return r;
  }
  std::vector<uint8_t> Post(uint32_t seq, std::vector<uint8_t> payload, int32_t size_delta = 0) {
    sockproto::PostMessage m{};
    m.header.type = static_cast<uint16_t>(MsgType::kPostMessage);
    m.header.seq = seq;
    m.connection_id = 4;
    m.message_type = 1;
    m.payload_size = static_cast<uint32_t>(static_cast<int32_t>(payload.size()) + size_delta);
    std::vector<uint8_t> out(sizeof(m));
    std::memcpy(out.data(), &m, sizeof(m));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  }
  // A valid request round trip: every earlier datagram has been processed when it returns.
  void Sync(uint32_t seq) {
    Send(Post(seq, {7}));
    const auto r = NextReply();
    EXPECT_EQ(r.header.seq, seq);
    EXPECT_EQ(r.status, static_cast<uint16_t>(HvStatus::kSuccess));
  }

  RawHello hello_;
  UniqueFd sock_;
  RecordingHandler handler_;
  std::unique_ptr<HostPartition> hp_;
};

TEST_F(SocketRequestHostileTest, PayloadSizeDisagreeingWithTheDatagramIsInvalidInput) {
  Send(Post(10, {1, 2, 3}, +1));
  auto r = NextReply();
  EXPECT_EQ(r.header.seq, 10u);
  EXPECT_EQ(r.status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  Send(Post(11, {1, 2, 3}, -1));
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  Send(Post(12, std::vector<uint8_t>(241, 0)));
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  Sync(13);
  EXPECT_EQ(handler_.post_count(), 1u);
  EXPECT_EQ(hp_->stats().bad_requests, 3u);
}

TEST_F(SocketRequestHostileTest, HypervisorChecksApplyToWellFormedRequests) {
  Send(Post(20, {}));  // payload_size 0: well-formed datagram, invalid hypercall
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidParameter));
  EXPECT_EQ(handler_.post_count(), 0u);
}

TEST_F(SocketRequestHostileTest, TruncatedHeaderAndUnknownTypesAreCountedNotAnswered) {
  const uint8_t tiny[3] = {3, 0, 0};
  Send(tiny);
  sockproto::MsgHeader unknown{99, 0, 0};
  Send(AsBytes(unknown));
  sockproto::PostMessage no_seq{};
  no_seq.header.type = static_cast<uint16_t>(MsgType::kPostMessage);
  Send(AsBytes(no_seq));  // seq 0 cannot be answered
  Sync(30);               // the first reply we get is Sync's
  EXPECT_EQ(hp_->stats().bad_requests, 3u);
}

TEST_F(SocketRequestHostileTest, UnknownRequestWithASeqIsAnsweredInvalidCode) {
  sockproto::MsgHeader unknown{99, 0, 5};
  Send(AsBytes(unknown));
  const auto r = NextReply();
  EXPECT_EQ(r.header.seq, 5u);
  EXPECT_EQ(r.status, static_cast<uint16_t>(HvStatus::kInvalidHypercallCode));
  sockproto::PostMessage flagged{};
  flagged.header.type = static_cast<uint16_t>(MsgType::kPostMessage);
  flagged.header.flags = 1;
  flagged.header.seq = 6;
  Send(AsBytes(flagged));
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  EXPECT_EQ(hp_->stats().bad_requests, 2u);
}

TEST_F(SocketRequestHostileTest, RequestCarryingFdsIsRefusedAndTheFdsClosed) {
  UniqueFd extra = NewEventfd();
  const int fd = extra.get();
  Send(Post(40, {1}), std::span<const int>(&fd, 1));
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  EXPECT_EQ(handler_.post_count(), 0u);
}

TEST_F(SocketRequestHostileTest, MalformedSignalAndEomAreRejected) {
  sockproto::SignalEvent s{};
  s.header.type = static_cast<uint16_t>(MsgType::kSignalEvent);
  s.header.seq = 50;
  std::vector<uint8_t> longer(sizeof(s) + 4, 0);
  std::memcpy(longer.data(), &s, sizeof(s));
  Send(longer);
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kInvalidHypercallInput));
  sockproto::EndOfMessage eom{};
  eom.header.type = static_cast<uint16_t>(MsgType::kEndOfMessage);
  eom.vcpu = 99;
  Send(AsBytes(eom));
  const uint8_t short_eom[9] = {6};
  Send(short_eom);
  Sync(51);
  EXPECT_EQ(hp_->stats().bad_requests, 3u);
}

TEST_F(SocketRequestHostileTest, SlowSignalForAConnectionWithADoorbellRingsTheDoorbell) {
  auto bell = hp_->CreateDoorbell(0x2009);
  ASSERT_TRUE(bell);
  // The raw guest ignores DOORBELL_ADD and signals through the socket anyway (as a real guest may
  // before it processed the registration).
  ASSERT_TRUE(WaitFd(sock_.get()));
  auto add = sockproto::ReceiveDatagram(sock_.get());
  ASSERT_TRUE(add);
  EXPECT_EQ(add->fds.size(), 1u);
  sockproto::SignalEvent s{};
  s.header.type = static_cast<uint16_t>(MsgType::kSignalEvent);
  s.header.seq = 60;
  s.connection_id = 0x2009;
  Send(AsBytes(s));
  EXPECT_EQ(NextReply().status, static_cast<uint16_t>(HvStatus::kSuccess));
  EXPECT_TRUE(WaitFd(bell->fd()));
  EXPECT_EQ(handler_.signal_count(), 0u);
}

TEST_F(SocketRequestHostileTest, GuestNotReadingItsRepliesIsDisconnected) {
  // Flood requests without reading a single reply: once the host's non-blocking send fails, it
  // drops the guest instead of blocking its control thread.
  const auto req = Post(1, {1});
  const int sndbuf = 1 << 20;
  ::setsockopt(sock_.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  for (int i = 0; i < 100000 && handler_.disconnect_count() == 0; ++i) {
    if (!sockproto::SendDatagram(sock_.get(), req, {}, /*dont_wait=*/true)) {
      // Our own buffer is full: the host is behind; wait for it to catch up or hang up.
      pollfd p{sock_.get(), POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
  }
  EXPECT_TRUE(handler_.WaitDisconnect());
}

// ---- A fake host against the real guest. ----

class FakeHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = SocketPath();
    listen_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    ASSERT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listen_.get(), 4), 0);
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  // Starts a guest Connect in the background and accepts it; returns the HELLO datagram.
  sockproto::Datagram AcceptHello() {
    connect_ = std::async(std::launch::async, [this] {
      return SocketGuestPartition::Connect(path_, "victim", 1, 32 * kPageSize, 5000);
    });
    conn_ = UniqueFd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(conn_);
    EXPECT_TRUE(WaitFd(conn_.get()));
    auto d = sockproto::ReceiveDatagram(conn_.get());
    EXPECT_TRUE(d);
    return d ? std::move(*d) : sockproto::Datagram{};
  }
  void SendReply(HelloResult result, const char* reason,
                 size_t size = sizeof(sockproto::HelloReply)) {
    sockproto::HelloReply r{};
    r.header.type = static_cast<uint16_t>(MsgType::kHelloReply);
    r.result = static_cast<uint32_t>(result);
    r.version_major = sockproto::kVersionMajor;
    std::strncpy(r.reason, reason, sizeof(r.reason) - 1);
    ASSERT_TRUE(sockproto::SendDatagram(
        conn_.get(), std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&r), size), {},
        false));
  }
  void SendToGuest(std::span<const uint8_t> bytes, std::span<const int> fds = {}) {
    ASSERT_TRUE(sockproto::SendDatagram(conn_.get(), bytes, fds, false));
  }
  // Answers the guest's next request with `status` (echoing its seq + `seq_delta`).
  void AnswerNextRequest(HvStatus status, uint32_t seq_delta = 0) {
    ASSERT_TRUE(WaitFd(conn_.get()));
    auto d = sockproto::ReceiveDatagram(conn_.get());
    ASSERT_TRUE(d);
    const auto h = sockproto::Load<sockproto::MsgHeader>(d->bytes);
    sockproto::StatusReply r{};
    r.header.type = static_cast<uint16_t>(MsgType::kStatusReply);
    r.header.seq = h.seq + seq_delta;
    r.status = static_cast<uint16_t>(status);
    SendToGuest(AsBytes(r));
  }

  std::string path_;
  UniqueFd listen_;
  UniqueFd conn_;
  std::future<Expected<std::unique_ptr<SocketGuestPartition>>> connect_;
};

TEST_F(FakeHostTest, HelloDescribesTheGuestExactly) {
  auto d = AcceptHello();
  ASSERT_EQ(d.bytes.size(), sizeof(sockproto::Hello) + sizeof(sockproto::HelloVcpu));
  const auto h = sockproto::Load<sockproto::Hello>(d.bytes);
  EXPECT_EQ(h.magic, sockproto::kMagic);
  EXPECT_EQ(h.vcpu_count, 1u);
  EXPECT_EQ(h.ram_bytes, 32u * kPageSize);
  EXPECT_STREQ(h.name, "victim");
  const auto v = sockproto::Load<sockproto::HelloVcpu>(d.bytes, sizeof(sockproto::Hello));
  EXPECT_EQ(v.simp_gpn, 0u);
  EXPECT_EQ(v.siefp_gpn, 1u);
  ASSERT_EQ(d.fds.size(), 2u);
  EXPECT_TRUE(sockproto::IsEventfd(d.fds[1].get()));
  SendReply(HelloResult::kAccepted, "");
  ASSERT_TRUE(connect_.get());
}

TEST_F(FakeHostTest, RefusalReasonReachesTheCaller) {
  AcceptHello();
  SendReply(HelloResult::kPermissionDenied, "go away");
  auto g = connect_.get();
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(g.error().message.find("go away"), std::string::npos);
}

TEST_F(FakeHostTest, MalformedHelloReplyFailsTheConnect) {
  AcceptHello();
  SendReply(HelloResult::kAccepted, "", sizeof(sockproto::HelloReply) - 1);
  auto g = connect_.get();
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kMalformed);
}

TEST_F(FakeHostTest, HostClosingDuringHandshakeIsUnavailable) {
  AcceptHello();
  conn_.Reset();
  auto g = connect_.get();
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, ErrorCode::kUnavailable);
}

TEST_F(FakeHostTest, HostileHostMessagesAreDroppedAndTheConnectionSurvives) {
  AcceptHello();
  SendReply(HelloResult::kAccepted, "");
  auto g = connect_.get();
  ASSERT_TRUE(g) << g.error();
  SocketGuestPartition& guest = **g;

  sockproto::DoorbellMsg add{};
  add.header.type = static_cast<uint16_t>(MsgType::kDoorbellAdd);
  add.connection_id = 0x2001;
  SendToGuest(AsBytes(add));  // 1: no fd
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  const int pipe_fd = pw.get();
  SendToGuest(AsBytes(add), std::span<const int>(&pipe_fd, 1));  // 2: not an eventfd
  sockproto::StatusReply stray{};
  stray.header.type = static_cast<uint16_t>(MsgType::kStatusReply);
  stray.header.seq = 777;
  SendToGuest(AsBytes(stray));  // 3: answers nothing
  sockproto::MsgHeader unknown{42, 0, 0};
  SendToGuest(AsBytes(unknown));  // 4: unknown type
  const uint8_t tiny[2] = {5, 0};
  SendToGuest(tiny);  // 5: truncated
  sockproto::DoorbellMsg remove{};
  remove.header.type = static_cast<uint16_t>(MsgType::kDoorbellRemove);
  remove.connection_id = 0x7777;
  SendToGuest(AsBytes(remove));  // 6: unknown doorbell

  // A wrong-seq reply is ignored (7), the right one is taken.
  auto post =
      std::async(std::launch::async, [&] { return guest.PostMessage(4, 1, testing::Bytes({1})); });
  AnswerNextRequest(HvStatus::kInsufficientBuffers, /*seq_delta=*/1000);
  // AnswerNextRequest consumed the request; answer it properly now.
  sockproto::StatusReply good{};
  good.header.type = static_cast<uint16_t>(MsgType::kStatusReply);
  good.header.seq = 1;  // the guest's first request
  good.status = static_cast<uint16_t>(HvStatus::kSuccess);
  SendToGuest(AsBytes(good));
  EXPECT_EQ(post.get(), HvStatus::kSuccess);
  EXPECT_EQ(guest.stats().bad_host_messages.Get(), 7u);
  EXPECT_TRUE(guest.connected());
  // None of the bad DOORBELL_ADDs registered anything: SignalEvent takes the slow path.
  auto sig = std::async(std::launch::async, [&] { return guest.SignalEvent(0x2001, 0); });
  AnswerNextRequest(HvStatus::kInvalidConnectionId);
  EXPECT_EQ(sig.get(), HvStatus::kInvalidConnectionId);
  EXPECT_EQ(guest.stats().events_slow.Get(), 1u);
}

TEST_F(FakeHostTest, ValidDoorbellFromTheHostIsUsedForSignalEvent) {
  AcceptHello();
  SendReply(HelloResult::kAccepted, "");
  auto g = connect_.get();
  ASSERT_TRUE(g);
  UniqueFd bell = NewEventfd();
  sockproto::DoorbellMsg add{};
  add.header.type = static_cast<uint16_t>(MsgType::kDoorbellAdd);
  add.connection_id = 0x2001;
  const int fd = bell.get();
  SendToGuest(AsBytes(add), std::span<const int>(&fd, 1));
  auto post =
      std::async(std::launch::async, [&] { return (*g)->PostMessage(4, 1, testing::Bytes({1})); });
  AnswerNextRequest(HvStatus::kSuccess);
  ASSERT_EQ(post.get(), HvStatus::kSuccess);
  EXPECT_EQ((*g)->SignalEvent(0x2001, 0), HvStatus::kSuccess);
  EXPECT_TRUE(WaitFd(bell.get()));
  EXPECT_EQ((*g)->stats().events_fast.Get(), 1u);
}

}  // namespace
}  // namespace uvmbus::partition
