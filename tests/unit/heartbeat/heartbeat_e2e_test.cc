// File: tests/unit/heartbeat/heartbeat_e2e_test.cc
//
// The heartbeat service end to end over a LocalPartition: the real host::VmbusServer with
// HeartbeatDevice on one side, the real guest bus (guest::VmbusBus) with HeartbeatDriver on the
// other - offers, probe, open, packets, close/reopen, rescind. Hostile-host cases use a scripted
// host device that hands the test the raw HostChannel, so the test writes the host->guest ring
// itself.
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "devices/heartbeat/guest_heartbeat.h"
#include "devices/heartbeat/host_heartbeat.h"
#include "guest/vmbus_bus.h"
#include "host/vmbus_server.h"
#include "partition/local_partition.h"
#include "wire/device_guids.h"
#include "wire/ic_messages.h"
#include "wire/ring_format.h"

namespace uvmbus::devices {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kWait{5000};

const Guid kInstance = wire::GuidLiteral("5a5a5a5a-1111-2222-3333-444444444444");

// What the guest driver's observer saw, in order.
class EventLog {
 public:
  void Add(const HeartbeatEvent& e) {
    std::lock_guard lock(mu_);
    events_.push_back(e);
  }
  std::vector<HeartbeatEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<HeartbeatEvent> events_;
};

// A host device offering the heartbeat class that does nothing by itself: the test drives the
// opened HostChannel (both rings) from its own thread.
class ScriptedHost final : public host::Device {
 public:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    host::HostChannel* channel = nullptr;
    int opens = 0;
    int closes = 0;
  };
  explicit ScriptedHost(std::shared_ptr<State> state) : state_(std::move(state)) {}
  host::OfferParams Offer() const override {
    host::OfferParams p;
    p.class_id = wire::kHeartbeatClassGuid;
    p.instance_id = kInstance;
    p.name = "scripted-heartbeat";
    return p;
  }
  Status Open(host::HostChannel& channel) override {
    std::lock_guard lock(state_->mu);
    state_->channel = &channel;
    ++state_->opens;
    state_->cv.notify_all();
    return Ok();
  }
  host::CloseStatus Close(host::HostChannel&) override {
    std::lock_guard lock(state_->mu);
    state_->channel = nullptr;
    ++state_->closes;
    state_->cv.notify_all();
    return host::CloseStatus::kClosed;
  }

 private:
  std::shared_ptr<State> state_;
};

// A packet the scripted host received.
struct HostPacket {
  wire::PacketDescriptor desc{};
  std::vector<uint8_t> payload;
};

// LocalPartition + VmbusServer + VmbusBus with a HeartbeatDriver.
class Env {
 public:
  explicit Env(std::unique_ptr<host::Device> device, uint32_t vcpus = 2) {
    auto p = partition::LocalPartition::Create(vcpus, 16u << 20, "heartbeat-e2e");
    EXPECT_TRUE(p.has_value());
    partition_ = std::move(*p);
    server_ = std::make_unique<host::VmbusServer>(&partition_->host());
    EXPECT_TRUE(partition_->host().Start(server_.get()).has_value());
    device_id_ = server_->AddDevice(std::move(device));
    driver_ = std::make_unique<HeartbeatDriver>([this](const HeartbeatEvent& e) { log_.Add(e); });
    auto bus = guest::VmbusBus::Create(partition_->guest());
    EXPECT_TRUE(bus.has_value());
    bus_ = std::move(*bus);
    EXPECT_TRUE(bus_->RegisterDriver(*driver_).has_value());
  }
  ~Env() {
    bus_.reset();  // removes the drivers' devices and UNLOADs while the host still runs
    partition_->host().Stop();
    server_.reset();
    partition_.reset();
    driver_.reset();
  }

  Status Connect() { return bus_->Connect(); }

  host::VmbusServer& server() { return *server_; }
  guest::VmbusBus& bus() { return *bus_; }
  HeartbeatDriver& driver() { return *driver_; }
  const EventLog& log() const { return log_; }
  host::DeviceId device_id() const { return device_id_; }

 private:
  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<host::VmbusServer> server_;
  std::unique_ptr<HeartbeatDriver> driver_;
  std::unique_ptr<guest::VmbusBus> bus_;
  EventLog log_;
  host::DeviceId device_id_ = 0;
};

HeartbeatConfig FastConfig() {
  HeartbeatConfig c;
  c.interval = std::chrono::milliseconds(1);
  c.response_timeout_intervals = 1'000'000;  // never abandon: answers are checked one by one
  c.instance_id = kInstance;
  return c;
}

// Heartbeat sequence numbers the guest answered, in order.
std::vector<uint64_t> Sequences(const std::vector<HeartbeatEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) {
    if (e.kind == HeartbeatEvent::Kind::kHeartbeat) out.push_back(e.sequence);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The real pair
// ---------------------------------------------------------------------------------------------

TEST(HeartbeatEndToEndTest, GuestProbesNegotiatesAndAnswersHundredHeartbeats) {
  auto device = std::make_unique<HeartbeatDevice>(FastConfig());
  auto host = device->counters();
  Env env(std::move(device));
  ASSERT_TRUE(env.Connect().has_value());

  // Probe happened during Connect (wait_for_probes): the device is bound to hv_utils.
  auto dev = env.bus().FindDevice(kInstance);
  ASSERT_NE(dev, nullptr);
  ASSERT_NE(dev->driver(), nullptr);
  EXPECT_EQ(dev->driver()->name(), "hv_utils");
  EXPECT_EQ(dev->description(), "[Heartbeat]");
  EXPECT_EQ(dev->channel().state(), guest::ChannelState::kOpen);
  EXPECT_EQ(dev->channel().callback_mode(), guest::CallbackMode::kBatched);

  ASSERT_TRUE(
      host->WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered >= 100; }, kWait));
  const HeartbeatStats hs = host->Snapshot();
  EXPECT_EQ(hs.state, HeartbeatState::kRunning);
  EXPECT_EQ(hs.framework_version, wire::kIcFrameworkVersion3);
  EXPECT_EQ(hs.heartbeat_version, wire::kHeartbeatVersion3);
  EXPECT_EQ(hs.negotiations, 1u);
  EXPECT_EQ(hs.bad_responses, 0u);
  EXPECT_EQ(hs.heartbeats_missed, 0u);
  EXPECT_EQ(hs.ring_errors, 0u);
  EXPECT_GE(hs.last_sequence, 99u);

  ASSERT_TRUE(env.driver().WaitFor(
      [](const HeartbeatDriverStats& s) { return s.heartbeats >= 100; }, kWait));
  const HeartbeatDriverStats gs = env.driver().Stats();
  EXPECT_EQ(gs.devices, 1u);
  EXPECT_EQ(gs.probes, 1u);
  EXPECT_EQ(gs.negotiations, 1u);
  EXPECT_EQ(gs.bad_packets, 0u);
  EXPECT_EQ(gs.unknown_requests, 0u);
  EXPECT_EQ(gs.ring_errors, 0u);
  EXPECT_TRUE(gs.has_sequence);

  const auto events = env.log().events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().kind, HeartbeatEvent::Kind::kNegotiated);
  EXPECT_EQ(events.front().framework_version, wire::kIcFrameworkVersion3);
  EXPECT_EQ(events.front().heartbeat_version, wire::kHeartbeatVersion3);
  EXPECT_EQ(events.front().ToString(), "heartbeat negotiated framework 3.0 heartbeat 3.0");
  const auto seqs = Sequences(events);
  ASSERT_GE(seqs.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(seqs[i], i);
  EXPECT_EQ(events[1].ToString(), "heartbeat seq=0");
}

TEST(HeartbeatEndToEndTest, UnbindAndRebindClosesAndReopensTheChannel) {
  auto device = std::make_unique<HeartbeatDevice>(FastConfig());
  auto host = device->counters();
  Env env(std::move(device));
  ASSERT_TRUE(env.Connect().has_value());
  ASSERT_TRUE(
      host->WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered >= 5; }, kWait));

  ASSERT_TRUE(env.bus().UnregisterDriver(env.driver()).has_value());
  EXPECT_EQ(host->Snapshot().state, HeartbeatState::kClosed);
  EXPECT_EQ(env.driver().Stats().devices, 0u);
  auto dev = env.bus().FindDevice(kInstance);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->channel().state(), guest::ChannelState::kOffered);
  const uint64_t answered = host->Snapshot().heartbeats_answered;

  ASSERT_TRUE(env.bus().RegisterDriver(env.driver()).has_value());
  ASSERT_TRUE(host->WaitFor(
      [&](const HeartbeatStats& s) { return s.heartbeats_answered >= answered + 5; }, kWait));
  const HeartbeatStats hs = host->Snapshot();
  EXPECT_EQ(hs.opens, 2u);
  EXPECT_EQ(hs.negotiations, 2u);
  EXPECT_EQ(hs.bad_responses, 0u);
  EXPECT_EQ(env.driver().Stats().probes, 2u);
  EXPECT_EQ(env.driver().Stats().negotiations, 2u);

  // The second negotiation restarts the sequence at 0.
  const auto events = env.log().events();
  size_t negotiated = 0;
  size_t second = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].kind == HeartbeatEvent::Kind::kNegotiated && ++negotiated == 2) second = i;
  }
  ASSERT_EQ(negotiated, 2u);
  ASSERT_LT(second + 1, events.size());
  EXPECT_EQ(events[second + 1].kind, HeartbeatEvent::Kind::kHeartbeat);
  EXPECT_EQ(events[second + 1].sequence, 0u);
}

TEST(HeartbeatEndToEndTest, RescindRemovesTheGuestDevice) {
  auto device = std::make_unique<HeartbeatDevice>(FastConfig());
  auto host = device->counters();
  Env env(std::move(device));
  ASSERT_TRUE(env.Connect().has_value());
  ASSERT_TRUE(
      host->WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered >= 1; }, kWait));

  ASSERT_TRUE(env.server().RescindDevice(env.device_id()).has_value());
  EXPECT_EQ(host->Snapshot().state, HeartbeatState::kClosed);
  // The RESCIND travels through the guest's message slot to its rescind worker: the driver's
  // Remove() runs there; then let the worker finish (channel closed, RELID_RELEASED sent).
  ASSERT_TRUE(
      env.driver().WaitFor([](const HeartbeatDriverStats& s) { return s.devices == 0; }, kWait));
  ASSERT_TRUE(env.bus().Flush());
  EXPECT_EQ(env.bus().FindDevice(kInstance), nullptr);
  // The guest released the relid: the server destroyed the device.
  EXPECT_EQ(env.server().device_count(), 0u);
  EXPECT_TRUE(env.server().Drained());
}

TEST(HeartbeatEndToEndTest, DisconnectWithABoundDeviceIsClean) {
  auto device = std::make_unique<HeartbeatDevice>(FastConfig());
  auto host = device->counters();
  Env env(std::move(device));
  ASSERT_TRUE(env.Connect().has_value());
  ASSERT_TRUE(
      host->WaitFor([](const HeartbeatStats& s) { return s.heartbeats_answered >= 1; }, kWait));
  ASSERT_TRUE(env.bus().Disconnect().has_value());
  EXPECT_EQ(host->Snapshot().state, HeartbeatState::kClosed);
  EXPECT_EQ(env.driver().Stats().devices, 0u);
}

// ---------------------------------------------------------------------------------------------
// A scripted (hostile) host against the real guest driver
// ---------------------------------------------------------------------------------------------

class ScriptedEnv {
 public:
  ScriptedEnv() : state_(std::make_shared<ScriptedHost::State>()) {
    env_ = std::make_unique<Env>(std::make_unique<ScriptedHost>(state_));
  }

  bool ConnectAndOpen() {
    if (!env_->Connect()) return false;
    std::unique_lock lock(state_->mu);
    if (!state_->cv.wait_for(lock, kWait, [&] { return state_->channel != nullptr; })) {
      return false;
    }
    channel_ = state_->channel;
    return true;
  }

  // Writes one packet (header + payload framing by the ring) and signals if needed.
  void SendInband(std::span<const uint8_t> payload, uint64_t trans_id) {
    ring::OutgoingRing& out = channel_->outbound();
    ring::WriteCursor c = out.BeginWrite();
    ASSERT_TRUE(out.WriteInband(c, payload, trans_id, true).ok());
    if (out.CommitWrite(c)) channel_->SignalGuest();
  }
  void SendCompletion(std::span<const uint8_t> payload, uint64_t trans_id) {
    ring::OutgoingRing& out = channel_->outbound();
    ring::WriteCursor c = out.BeginWrite();
    ASSERT_TRUE(out.WriteCompletion(c, payload, trans_id).ok());
    if (out.CommitWrite(c)) channel_->SignalGuest();
  }

  // The guest's next packet, waiting on the channel's doorbell.
  std::optional<HostPacket> Receive() {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      ring::IncomingRing& in = channel_->inbound();
      ring::ReadCursor c = in.BeginRead();
      ring::ReadResult r = in.Read(c);
      if (r.ok()) {
        HostPacket p;
        p.desc = r.packet.desc;
        p.payload.assign(r.packet.payload.begin(), r.packet.payload.end());
        if (in.CommitRead(c)) channel_->SignalGuest();
        return p;
      }
      if (r.status == ring::ReadStatus::kCorrupt) return std::nullopt;
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fd = {channel_->doorbell_fd(), POLLIN, 0};
      (void)::poll(&fd, 1, static_cast<int>(left.count()));
      channel_->ConsumeDoorbell();
    }
  }

  // NEGOTIATE as uvmbus's host sends it; returns the guest's answer.
  std::optional<HostPacket> Negotiate() {
    auto request = wire::EncodeIcNegotiateRequest(wire::kHostIcFrameworkVersions,
                                                  wire::kHostHeartbeatVersions);
    EXPECT_TRUE(request.has_value());
    SendInband(*request, 1);
    return Receive();
  }

  Env& env() { return *env_; }
  host::HostChannel& channel() { return *channel_; }

 private:
  std::shared_ptr<ScriptedHost::State> state_;
  std::unique_ptr<Env> env_;
  host::HostChannel* channel_ = nullptr;
};

uint64_t SeqOf(const std::vector<uint8_t>& p) {
  uint64_t v = 0;
  if (p.size() >= 36) std::memcpy(&v, p.data() + 28, 8);
  return v;
}

TEST(HeartbeatGuestTest, AnswersNegotiateInPlaceWithInbandPacketAndSameTransId) {
  ScriptedEnv s;
  ASSERT_TRUE(s.ConnectAndOpen());
  auto answer = s.Negotiate();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->desc.type, static_cast<uint16_t>(wire::PacketType::kDataInband));
  EXPECT_EQ(answer->desc.flags, 0);
  EXPECT_EQ(answer->desc.trans_id, 1u);
  ASSERT_EQ(answer->payload.size(), 56u);  // the request's payload, padding included
  auto ic = wire::ParseIcPacket(answer->payload);
  ASSERT_TRUE(ic.has_value());
  auto versions = wire::ParseIcNegotiateResponse(*ic);
  ASSERT_TRUE(versions.has_value());
  EXPECT_EQ(versions->framework_version, wire::kIcFrameworkVersion3);
  EXPECT_EQ(versions->message_version, wire::kHeartbeatVersion3);
  EXPECT_TRUE(s.env().driver().WaitFor(
      [](const HeartbeatDriverStats& st) { return st.negotiations == 1; }, kWait));
}

TEST(HeartbeatGuestTest, MalformedRequestsAreCountedAndNotAnsweredAndTheExchangeContinues) {
  ScriptedEnv s;
  ASSERT_TRUE(s.ConnectAndOpen());
  ASSERT_TRUE(s.Negotiate().has_value());
  const auto hb =
      wire::EncodeHeartbeatRequest(wire::kIcFrameworkVersion3, wire::kHeartbeatVersion3, 41);

  // 10: truncated, shorter than the 28-byte IC header.
  s.SendInband(std::span<const uint8_t>(hb.data(), 20), 10);
  // 11: icmsgsize beyond the packet.
  {
    auto p = hb;
    const uint16_t size = 200;
    std::memcpy(p.data() + 18, &size, 2);
    s.SendInband(p, 11);
  }
  // 12: heartbeat body without room for seq_num.
  {
    auto p = hb;
    const uint16_t size = 4;
    std::memcpy(p.data() + 18, &size, 2);
    s.SendInband(p, 12);
  }
  // 13: wrong VMBus packet type (a completion, not a request).
  s.SendCompletion(hb, 13);
  // 14: unknown IC message type: Linux answers it with HV_E_FAIL.
  {
    auto p = hb;
    const uint16_t type = wire::kIcMsgTypeShutdown;
    std::memcpy(p.data() + 12, &type, 2);
    s.SendInband(p, 14);
  }
  // 15: a good heartbeat.
  s.SendInband(hb, 15);

  // Answers come in request order: the first one is for 14, so 10..13 were not answered.
  auto failed = s.Receive();
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->desc.trans_id, 14u);
  auto failed_ic = wire::ParseIcPacket(failed->payload);
  ASSERT_TRUE(failed_ic.has_value());
  EXPECT_EQ(failed_ic->header.status, wire::kIcStatusFail);
  EXPECT_EQ(failed_ic->header.icflags, wire::kIcFlagTransaction | wire::kIcFlagResponse);

  auto answer = s.Receive();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->desc.trans_id, 15u);
  EXPECT_EQ(SeqOf(answer->payload), 42u);
  EXPECT_EQ(answer->payload[25], wire::kIcFlagTransaction | wire::kIcFlagResponse);

  ASSERT_TRUE(s.env().driver().WaitFor(
      [](const HeartbeatDriverStats& st) { return st.heartbeats == 1; }, kWait));
  HeartbeatDriverStats st = s.env().driver().Stats();
  EXPECT_EQ(st.bad_packets, 4u);
  EXPECT_EQ(st.unknown_requests, 1u);
  EXPECT_EQ(st.last_sequence, 41u);
  EXPECT_EQ(st.ring_errors, 0u);

  // And the exchange goes on.
  const auto next =
      wire::EncodeHeartbeatRequest(wire::kIcFrameworkVersion3, wire::kHeartbeatVersion3, 42);
  s.SendInband(next, 16);
  auto again = s.Receive();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->desc.trans_id, 16u);
  EXPECT_EQ(SeqOf(again->payload), 43u);
}

TEST(HeartbeatGuestTest, NegotiateWithoutCommonVersionIsAnsweredWithZeroCounts) {
  ScriptedEnv s;
  ASSERT_TRUE(s.ConnectAndOpen());
  const std::array<uint32_t, 1> frameworks = {wire::MakeIcVersion(9, 0)};
  auto request = wire::EncodeIcNegotiateRequest(frameworks, wire::kHostHeartbeatVersions);
  ASSERT_TRUE(request.has_value());
  s.SendInband(*request, 1);
  auto answer = s.Receive();
  ASSERT_TRUE(answer.has_value());
  auto ic = wire::ParseIcPacket(answer->payload);
  ASSERT_TRUE(ic.has_value());
  EXPECT_EQ(wire::ParseIcNegotiateResponse(*ic).error().code, ErrorCode::kUnsupported);
  ASSERT_TRUE(s.env().driver().WaitFor(
      [](const HeartbeatDriverStats& st) { return st.negotiate_refusals == 1; }, kWait));
  EXPECT_EQ(s.env().driver().Stats().negotiations, 0u);
}

TEST(HeartbeatGuestTest, CorruptHostRingIsCountedAndTheDeviceStillGoesAway) {
  ScriptedEnv s;
  ASSERT_TRUE(s.ConnectAndOpen());
  ASSERT_TRUE(s.Negotiate().has_value());
  // write_index beyond the data area (spec 9.4 R1).
  s.channel().outbound().view().write_index().store(0x7FFFFFF8, std::memory_order_release);
  s.channel().SignalGuest();
  ASSERT_TRUE(s.env().driver().WaitFor(
      [](const HeartbeatDriverStats& st) { return st.ring_errors == 1; }, kWait));
  // More interrupts find the channel stopped (no busy loop, no second count).
  s.channel().SignalGuest();
  ASSERT_TRUE(s.env().bus().Disconnect().has_value());
  EXPECT_EQ(s.env().driver().Stats().devices, 0u);
  EXPECT_EQ(s.env().driver().Stats().ring_errors, 1u);
}

}  // namespace
}  // namespace uvmbus::devices
