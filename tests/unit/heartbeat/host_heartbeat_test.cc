// File: tests/unit/heartbeat/host_heartbeat_test.cc
//
// The heartbeat host provider against a scripted guest (tests/fakes/FakeVmbusGuest) over a
// LocalPartition and the real VmbusServer: the guest side of the IC exchange is written by hand
// here (with wire/ic_messages.h's Linux answer logic), so every byte the host sees is under the
// test's control, including hostile ones.
#include "devices/heartbeat/host_heartbeat.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "fakes/fake_vmbus_guest.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"
#include "wire/device_guids.h"
#include "wire/ic_messages.h"
#include "wire/ring_format.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace uvmbus::devices {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kWait{5000};

// Config for tests: short interval, never abandon a request unless a test wants it.
HeartbeatConfig FastConfig(std::chrono::nanoseconds interval = std::chrono::milliseconds(1)) {
  HeartbeatConfig c;
  c.interval = interval;
  c.response_timeout_intervals = 1'000'000;
  return c;
}

// A packet as the scripted guest received it.
struct GuestPacket {
  wire::PacketDescriptor desc{};
  std::vector<uint8_t> payload;
};

// LocalPartition + VmbusServer + FakeVmbusGuest with one HeartbeatDevice, connected, offered
// and (after Open()) opened.
class HeartbeatHostEnv {
 public:
  explicit HeartbeatHostEnv(HeartbeatConfig config = FastConfig()) {
    auto p = partition::LocalPartition::Create(1, 8u << 20, "heartbeat-host-test");
    EXPECT_TRUE(p.has_value());
    partition_ = std::move(*p);
    server_ = std::make_unique<host::VmbusServer>(&partition_->host());
    EXPECT_TRUE(partition_->host().Start(server_.get()).has_value());
    guest_ = std::make_unique<testing::FakeVmbusGuest>(partition_->guest());
    auto device = std::make_unique<HeartbeatDevice>(std::move(config));
    counters_ = device->counters();
    instance_ = device->instance_id();
    device_id_ = server_->AddDevice(std::move(device));
    auto offers = guest_->ConnectAndRequestOffers(wire::kVersionWin10V5_3);
    EXPECT_TRUE(offers.has_value());
    if (offers && offers->size() == 1) offer_ = offers->front();
  }
  ~HeartbeatHostEnv() {
    partition_->host().Stop();
    server_.reset();
    channel_.reset();
    guest_.reset();
    partition_.reset();
  }

  // Opens the heartbeat channel (each call a new ring GPADL).
  bool Open() {
    channel_ = guest_->OpenChannel(offer_.child_relid, offer_.connection_id, next_gpadl_++);
    return channel_.has_value() && channel_->result.status == 0;
  }
  // Closes it the way Linux does: CLOSECHANNEL, then the ring GPADL teardown.
  void Close() {
    wire::CloseChannel close;
    close.child_relid = offer_.child_relid;
    guest_->Post(close);
    wire::GpadlTeardown td;
    td.child_relid = offer_.child_relid;
    td.gpadl = channel_->gpadl;
    guest_->Post(td);
    (void)guest_->ReceiveAs<wire::GpadlTorndown>();
  }

  // Next packet from the host, waiting on the vCPU interrupt (no sleeps). Copies it out of the
  // ring, commits, signals the host if the commit says so.
  std::optional<GuestPacket> Receive(milliseconds timeout = kWait) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      ring::IncomingRing& in = *channel_->in;
      ring::ReadCursor cursor = in.BeginRead();
      ring::ReadResult r = in.Read(cursor);
      if (r.ok()) {
        GuestPacket p;
        p.desc = r.packet.desc;
        p.payload.assign(r.packet.payload.begin(), r.packet.payload.end());
        if (in.CommitRead(cursor)) guest_->Signal(channel_->connection_id);
        return p;
      }
      if (r.status == ring::ReadStatus::kCorrupt) return std::nullopt;
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd = {partition_->guest().InterruptFd(0), POLLIN, 0};
      (void)::poll(&fd, 1, static_cast<int>(left.count()));
      partition_->guest().AckInterrupt(0);
      ClearEventBit();
    }
  }

  // Sends `payload` in-band (flags 0, as Linux's vmbus_sendpacket) with `trans_id`.
  void Send(std::span<const uint8_t> payload, uint64_t trans_id) {
    ring::OutgoingRing& out = *channel_->out;
    ring::WriteCursor c = out.BeginWrite();
    ASSERT_TRUE(out.WriteInband(c, payload, trans_id, false).ok());
    if (out.CommitWrite(c)) guest_->Signal(channel_->connection_id);
  }

  // Answers `request` exactly as Linux would.
  void AnswerLikeLinux(const GuestPacket& request) {
    const auto type = Load16(request.payload, 12);
    if (type == wire::kIcMsgTypeNegotiate) {
      auto reply = wire::PrepareIcNegotiateResponse(
          request.payload, wire::kLinuxIcFrameworkVersions, wire::kLinuxHeartbeatVersions);
      ASSERT_TRUE(reply.has_value());
      Send(reply->packet, request.desc.trans_id);
    } else {
      auto reply = wire::PrepareHeartbeatResponse(request.payload);
      ASSERT_TRUE(reply.has_value());
      Send(*reply, request.desc.trans_id);
    }
  }

  // Receives the NEGOTIATE and answers it like Linux; waits until the host runs.
  bool Negotiate() {
    auto request = Receive();
    if (!request) return false;
    AnswerLikeLinux(*request);
    return counters_->WaitFor(
        [](const HeartbeatStats& s) { return s.state == HeartbeatState::kRunning; }, kWait);
  }

  static uint16_t Load16(const std::vector<uint8_t>& b, size_t off) {
    uint16_t v = 0;
    if (off + 2 <= b.size()) std::memcpy(&v, b.data() + off, 2);
    return v;
  }
  static uint64_t Seq(const std::vector<uint8_t>& b) {
    uint64_t v = 0;
    if (b.size() >= 36) std::memcpy(&v, b.data() + 28, 8);
    return v;
  }

  bool WaitFor(const std::function<bool(const HeartbeatStats&)>& pred) {
    return counters_->WaitFor(pred, kWait);
  }

  partition::LocalPartition& partition() { return *partition_; }
  host::VmbusServer& server() { return *server_; }
  testing::FakeVmbusGuest& guest() { return *guest_; }
  testing::FakeVmbusGuest::OpenChannelState& channel() { return *channel_; }
  const wire::OfferChannel& offer() const { return offer_; }
  const HeartbeatCounters& counters() const { return *counters_; }
  HeartbeatStats stats() const { return counters_->Snapshot(); }
  host::DeviceId device_id() const { return device_id_; }
  const Guid& instance() const { return instance_; }

 private:
  // The host sets bit `relid` in the SINT 2 event area; a guest clears it before reading the ring
  // (otherwise later signals are coalesced into the still-set bit and raise no interrupt).
  void ClearEventBit() {
    std::span<uint8_t> page = partition_->guest().EventPage(0);
    const uint32_t relid = offer_.child_relid;
    auto* word = reinterpret_cast<uint64_t*>(page.data() + wire::kVmbusEventAreaOffset) +
                 wire::EventFlagWordIndex(relid);
    std::atomic_ref<uint64_t>(*word).fetch_and(~wire::EventFlagWordMask(relid),
                                               std::memory_order_acq_rel);
  }

  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<host::VmbusServer> server_;
  std::unique_ptr<testing::FakeVmbusGuest> guest_;
  std::shared_ptr<const HeartbeatCounters> counters_;
  Guid instance_;
  host::DeviceId device_id_ = 0;
  wire::OfferChannel offer_{};
  std::optional<testing::FakeVmbusGuest::OpenChannelState> channel_;
  uint32_t next_gpadl_ = 0xE1E10;
};

// ---------------------------------------------------------------------------------------------
// Offer
// ---------------------------------------------------------------------------------------------

TEST(HeartbeatDeviceTest, OffersTheHeartbeatClassWithAFreshInstancePerDevice) {
  HeartbeatDevice a;
  HeartbeatDevice b;
  EXPECT_EQ(a.Offer().class_id, wire::kHeartbeatClassGuid);
  EXPECT_EQ(a.Offer().instance_id, a.instance_id());
  EXPECT_NE(a.instance_id(), b.instance_id());
  EXPECT_FALSE(a.instance_id().IsZero());
  EXPECT_EQ(a.Offer().name, "heartbeat");
  EXPECT_EQ(a.MaxSubchannels(), 0);
  EXPECT_EQ(wire::DeviceDescription(a.Offer().class_id), "[Heartbeat]");
}

TEST(HeartbeatDeviceTest, ConfiguredInstanceIdIsOffered) {
  HeartbeatConfig c;
  c.instance_id = wire::GuidLiteral("11111111-2222-3333-4444-555555555555");
  HeartbeatDevice d(c);
  EXPECT_EQ(d.Offer().instance_id, *c.instance_id);
}

TEST(HeartbeatDeviceTest, GuestSeesTheOfferOverTheServer) {
  HeartbeatHostEnv env;
  EXPECT_EQ(env.offer().if_type, wire::kHeartbeatClassGuid);
  EXPECT_EQ(env.offer().if_instance, env.instance());
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
  EXPECT_EQ(env.stats().opens, 0u);
}

// ---------------------------------------------------------------------------------------------
// The exchange
// ---------------------------------------------------------------------------------------------

TEST(HeartbeatHostTest, SendsTheDocumentedNegotiateRequestOnOpen) {
  HeartbeatHostEnv env;
  ASSERT_TRUE(env.Open());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->desc.type, static_cast<uint16_t>(wire::PacketType::kDataInband));
  EXPECT_EQ(request->desc.flags, wire::kPacketFlagCompletionRequested);
  EXPECT_EQ(request->desc.trans_id, 1u);
  // wire/ic_messages.h banner, step 1 (52 bytes, padded to 56 in the ring).
  const std::vector<uint8_t> expected = {
      0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,  // pipe
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,  // status, txid, flags
      0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,              // counts
      0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // framework 1.0, 3.0
      0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,              // heartbeat 1.0, 3.0
  };
  ASSERT_EQ(request->payload.size(), 56u);
  EXPECT_EQ(std::vector<uint8_t>(request->payload.begin(), request->payload.begin() + 52),
            expected);
  EXPECT_EQ(env.stats().state, HeartbeatState::kNegotiating);
  EXPECT_EQ(env.stats().opens, 1u);
}

TEST(HeartbeatHostTest, NegotiatesWithALinuxGuestAndCountsAnsweredHeartbeats) {
  HeartbeatHostEnv env;
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  HeartbeatStats s = env.stats();
  EXPECT_EQ(s.framework_version, wire::kIcFrameworkVersion3);
  EXPECT_EQ(s.heartbeat_version, wire::kHeartbeatVersion3);
  EXPECT_EQ(s.negotiations, 1u);

  uint64_t last_trans = 1;
  for (uint64_t i = 0; i < 20; ++i) {
    auto request = env.Receive();
    ASSERT_TRUE(request.has_value()) << i;
    // Banner step 3: framework 3.0, type 1, heartbeat 3.0, size 40, flags 3, seq i.
    ASSERT_EQ(request->payload.size(), 72u);
    EXPECT_EQ(HeartbeatHostEnv::Load16(request->payload, 8), 3);
    EXPECT_EQ(HeartbeatHostEnv::Load16(request->payload, 12), wire::kIcMsgTypeHeartbeat);
    EXPECT_EQ(HeartbeatHostEnv::Load16(request->payload, 14), 3);
    EXPECT_EQ(HeartbeatHostEnv::Load16(request->payload, 18), 40);
    EXPECT_EQ(request->payload[25], 3);
    EXPECT_EQ(HeartbeatHostEnv::Seq(request->payload), i);
    EXPECT_EQ(request->desc.flags, wire::kPacketFlagCompletionRequested);
    EXPECT_GT(request->desc.trans_id, last_trans);
    last_trans = request->desc.trans_id;
    env.AnswerLikeLinux(*request);
  }
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& st) { return st.heartbeats_answered == 20; }));
  s = env.stats();
  EXPECT_EQ(s.last_sequence, 19u);
  EXPECT_TRUE(s.has_answer);
  EXPECT_EQ(s.bad_responses, 0u);
  EXPECT_EQ(s.heartbeats_missed, 0u);
  EXPECT_EQ(s.ring_errors, 0u);
  EXPECT_GE(s.heartbeats_sent, 20u);
}

TEST(HeartbeatHostTest, FirstSequenceIsConfigurable) {
  HeartbeatConfig c = FastConfig();
  c.first_sequence = 0xFFFFFFFFFFFFFFFFull;  // the guest's answer wraps to 0
  HeartbeatHostEnv env(c);
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  auto first = env.Receive();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(HeartbeatHostEnv::Seq(first->payload), 0xFFFFFFFFFFFFFFFFull);
  env.AnswerLikeLinux(*first);
  auto second = env.Receive();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(HeartbeatHostEnv::Seq(second->payload), 0u);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered == 1; }));
  EXPECT_EQ(env.stats().last_sequence, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(env.stats().bad_responses, 0u);
}

// ---------------------------------------------------------------------------------------------
// Hostile and failing guests
// ---------------------------------------------------------------------------------------------

// A long interval: only the heartbeat sent right after the negotiation is in flight.
HeartbeatConfig OneShotConfig() { return FastConfig(std::chrono::hours(1)); }

TEST(HeartbeatHostTest, MalformedAnswersAreCountedAndTheExchangeContinues) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  const uint64_t trans = request->desc.trans_id;
  auto good = wire::PrepareHeartbeatResponse(request->payload);
  ASSERT_TRUE(good.has_value());

  int bad = 0;
  // Truncated: shorter than the 28-byte IC header.
  env.Send(std::span<const uint8_t>(good->data(), 20), trans), ++bad;
  // icmsgsize larger than the packet.
  {
    auto p = *good;
    const uint16_t size = 200;
    std::memcpy(p.data() + 18, &size, 2);
    env.Send(p, trans), ++bad;
  }
  // Heartbeat body shorter than seq_num.
  {
    auto p = *good;
    const uint16_t size = 4;
    std::memcpy(p.data() + 18, &size, 2);
    env.Send(p, trans), ++bad;
  }
  // Wrong IC message type (shutdown).
  {
    auto p = *good;
    const uint16_t type = wire::kIcMsgTypeShutdown;
    std::memcpy(p.data() + 12, &type, 2);
    env.Send(p, trans), ++bad;
  }
  // Not flagged as a response.
  {
    auto p = *good;
    p[25] = wire::kIcFlagTransaction | wire::kIcFlagRequest;
    env.Send(p, trans), ++bad;
  }
  // Failure status.
  {
    auto p = *good;
    const uint32_t status = wire::kIcStatusFail;
    std::memcpy(p.data() + 20, &status, 4);
    env.Send(p, trans), ++bad;
  }
  // Unknown transaction id.
  env.Send(*good, trans + 1000), ++bad;
  // Wrong sequence number answers (and consumes) the request.
  ASSERT_TRUE(env.WaitFor([&](const HeartbeatStats& s) { return s.bad_responses == 7u; }));
  EXPECT_EQ(env.stats().heartbeats_answered, 0u);
  {
    auto p = *good;
    const uint64_t seq = 12345;
    std::memcpy(p.data() + 28, &seq, 8);
    env.Send(p, trans), ++bad;
  }
  // ... so the correct answer that follows answers nothing any more.
  env.Send(*good, trans), ++bad;
  ASSERT_TRUE(env.WaitFor(
      [&](const HeartbeatStats& s) { return s.bad_responses == static_cast<uint64_t>(bad); }));
  EXPECT_EQ(env.stats().heartbeats_answered, 0u);
  EXPECT_EQ(env.stats().state, HeartbeatState::kRunning);
  EXPECT_EQ(env.stats().ring_errors, 0u);
}

TEST(HeartbeatHostTest, GuestWithoutCommonVersionFailsTheNegotiation) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  const std::array<uint32_t, 1> frameworks = {wire::MakeIcVersion(9, 9)};
  auto reply =
      wire::PrepareIcNegotiateResponse(request->payload, frameworks, wire::kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->outcome, wire::IcNegotiateOutcome::kNoCommonFramework);
  env.Send(reply->packet, request->desc.trans_id);
  ASSERT_TRUE(
      env.WaitFor([](const HeartbeatStats& s) { return s.state == HeartbeatState::kFailed; }));
  EXPECT_EQ(env.stats().negotiate_failures, 1u);
  EXPECT_EQ(env.stats().negotiations, 0u);
  EXPECT_EQ(env.stats().heartbeats_sent, 0u);
  // A failed channel still closes cleanly.
  env.Close();
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
}

TEST(HeartbeatHostTest, GuestChoosingAVersionNotOfferedFailsTheNegotiation) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  auto reply = wire::PrepareIcNegotiateResponse(request->payload, wire::kLinuxIcFrameworkVersions,
                                                wire::kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  const wire::IcVersion bogus{7, 0};
  std::memcpy(reply->packet.data() + 40, &bogus, sizeof(bogus));  // chosen heartbeat version
  env.Send(reply->packet, request->desc.trans_id);
  ASSERT_TRUE(
      env.WaitFor([](const HeartbeatStats& s) { return s.state == HeartbeatState::kFailed; }));
  EXPECT_EQ(env.stats().negotiate_failures, 1u);
  EXPECT_EQ(env.stats().bad_responses, 1u);
}

TEST(HeartbeatHostTest, NegotiateAnswerWithWrongTransactionIdIsIgnored) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  auto reply = wire::PrepareIcNegotiateResponse(request->payload, wire::kLinuxIcFrameworkVersions,
                                                wire::kLinuxHeartbeatVersions);
  ASSERT_TRUE(reply.has_value());
  env.Send(reply->packet, 77);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.bad_responses == 1; }));
  EXPECT_EQ(env.stats().state, HeartbeatState::kNegotiating);
  env.Send(reply->packet, request->desc.trans_id);
  ASSERT_TRUE(
      env.WaitFor([](const HeartbeatStats& s) { return s.state == HeartbeatState::kRunning; }));
}

TEST(HeartbeatHostTest, UnansweredHeartbeatsAreAbandonedAndLateAnswersCounted) {
  HeartbeatConfig c = FastConfig();
  c.response_timeout_intervals = 2;
  HeartbeatHostEnv env(c);
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_missed >= 2; }));
  auto first = env.Receive();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(HeartbeatHostEnv::Seq(first->payload), 0u);
  env.AnswerLikeLinux(*first);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.late_responses == 1; }));
  EXPECT_EQ(env.stats().bad_responses, 0u);
}

TEST(HeartbeatHostTest, FullRingSkipsHeartbeatsWithoutBlocking) {
  HeartbeatConfig c = FastConfig();
  c.response_timeout_intervals = 1;
  HeartbeatHostEnv env(c);
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  // The guest stops reading: 3 data pages hold ~128 requests, then every tick finds it full.
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.ring_full >= 2; }));
  EXPECT_EQ(env.stats().ring_errors, 0u);
  EXPECT_EQ(env.stats().state, HeartbeatState::kRunning);
  env.Close();
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
}

TEST(HeartbeatHostTest, CorruptGuestRingStopsTheChannelButCloseStillWorks) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  // write_index (offset 0 of ring A's control page) beyond the data area (spec 9.4 R1).
  auto* write_index = reinterpret_cast<uint32_t*>(env.channel().out_pages.bytes().data());
  std::atomic_ref<uint32_t>(*write_index).store(0x7FFFFFF8, std::memory_order_release);
  env.guest().Signal(env.channel().connection_id);
  ASSERT_TRUE(
      env.WaitFor([](const HeartbeatStats& s) { return s.state == HeartbeatState::kFailed; }));
  EXPECT_EQ(env.stats().ring_errors, 1u);
  // Further signals are ignored (no crash, no busy loop).
  env.guest().Signal(env.channel().connection_id);
  env.Close();
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
}

TEST(HeartbeatHostTest, UnexpectedPacketTypeIsCounted) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  auto request = env.Receive();
  ASSERT_TRUE(request.has_value());
  auto good = wire::PrepareHeartbeatResponse(request->payload);
  ASSERT_TRUE(good.has_value());
  // A GPA-direct packet (type 9) with one single-page range in front of the answer.
  std::vector<uint8_t> header(40, 0);
  wire::PacketDescriptor d{};
  d.type = static_cast<uint16_t>(wire::PacketType::kDataUsingGpaDirect);
  d.offset8 = 5;
  d.len8 = static_cast<uint16_t>((40 + good->size() + 7) / 8);
  d.flags = 0;
  d.trans_id = request->desc.trans_id;
  std::memcpy(header.data(), &d, sizeof(d));
  const uint32_t range_count = 1;
  std::memcpy(header.data() + 20, &range_count, 4);
  const uint32_t byte_count = 8;
  std::memcpy(header.data() + 24, &byte_count, 4);
  ring::OutgoingRing& out = *env.channel().out;
  ring::WriteCursor c = out.BeginWrite();
  ASSERT_TRUE(out.Write(c, header, *good).ok());
  if (out.CommitWrite(c)) env.guest().Signal(env.channel().connection_id);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.bad_responses == 1; }));
  // A completion packet carrying the answer is accepted.
  c = out.BeginWrite();
  ASSERT_TRUE(out.WriteCompletion(c, *good, request->desc.trans_id).ok());
  if (out.CommitWrite(c)) env.guest().Signal(env.channel().connection_id);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered == 1; }));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

TEST(HeartbeatHostTest, CloseStopsAndReopenNegotiatesAgain) {
  HeartbeatHostEnv env;
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  auto hb = env.Receive();
  ASSERT_TRUE(hb.has_value());
  env.AnswerLikeLinux(*hb);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered == 1; }));
  env.Close();
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);

  ASSERT_TRUE(env.Open());
  auto negotiate = env.Receive();
  ASSERT_TRUE(negotiate.has_value());
  EXPECT_EQ(negotiate->desc.trans_id, 1u);
  EXPECT_EQ(HeartbeatHostEnv::Load16(negotiate->payload, 12), wire::kIcMsgTypeNegotiate);
  env.AnswerLikeLinux(*negotiate);
  ASSERT_TRUE(
      env.WaitFor([](const HeartbeatStats& s) { return s.state == HeartbeatState::kRunning; }));
  auto again = env.Receive();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(HeartbeatHostEnv::Seq(again->payload), 0u);  // sequences restart per negotiation
  env.AnswerLikeLinux(*again);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered == 2; }));
  EXPECT_EQ(env.stats().opens, 2u);
  EXPECT_EQ(env.stats().negotiations, 2u);
}

TEST(HeartbeatHostTest, RescindClosesTheOpenChannel) {
  HeartbeatHostEnv env;
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  ASSERT_TRUE(env.server().RescindDevice(env.device_id()).has_value());
  auto rescind = env.guest().ReceiveAs<wire::RescindChannelOffer>();
  ASSERT_TRUE(rescind.has_value());
  EXPECT_EQ(rescind->child_relid, env.offer().child_relid);
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
}

TEST(HeartbeatHostTest, GuestHangUpWhileOpenIsClean) {
  HeartbeatHostEnv env;
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  env.partition().Disconnect();
  EXPECT_EQ(env.stats().state, HeartbeatState::kClosed);
}

TEST(HeartbeatHostTest, StatsSerialiseToJson) {
  HeartbeatHostEnv env(OneShotConfig());
  ASSERT_TRUE(env.Open());
  ASSERT_TRUE(env.Negotiate());
  auto hb = env.Receive();
  ASSERT_TRUE(hb.has_value());
  env.AnswerLikeLinux(*hb);
  ASSERT_TRUE(env.WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered == 1; }));
  const nlohmann::json j = HeartbeatStatsToJson(env.stats());
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["framework_version"], "3.0");
  EXPECT_EQ(j["heartbeat_version"], "3.0");
  EXPECT_EQ(j["heartbeats_sent"], 1);
  EXPECT_EQ(j["heartbeats_answered"], 1);
  EXPECT_EQ(j["last_sequence"], 0);
  EXPECT_EQ(j["bad_responses"], 0);
  const nlohmann::json fresh = HeartbeatStatsToJson(HeartbeatStats{});
  EXPECT_EQ(fresh["state"], "closed");
  EXPECT_TRUE(fresh["last_sequence"].is_null());
}

}  // namespace
}  // namespace uvmbus::devices
