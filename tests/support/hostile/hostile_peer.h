// File: tests/support/hostile/hostile_peer.h
//
// What: the hostile peer tool for tests (library uvmbus::hostile_peer, issue 5 item 4).
//   * HostBench: a real host (host::HostService, one VmbusServer per guest, one NetvspDevice per
//     guest whose backend is a net pipe the test holds) serving in-process LocalPartition guests,
//     plus HostBench::ExerciseGoodGuest(): a full well-behaved bring-up and one frame each way,
//     the "is the other guest unaffected" check.
//   * HostileGuest: a scripted guest on one HostBench guest that follows the protocol up to a
//     chosen Step (after HELLO, INITIATE_CONTACT, offers, GPADL, OPEN, NVSP INIT, RNDIS
//     INITIALIZE, traffic) and then sends one Attack: garbage, truncated, replayed or
//     out-of-order channel messages (steps before OPEN) or ring packets (OPEN and later), or a
//     corrupted ring index.
//   * GuestBench + HostileHost: a real guest (guest::VmbusBus + NetvscDriver) served by the real
//     VmbusServer carrying a scripted NIC host (fakes::FakeNetvspHost); HostileHost lets the
//     bring-up run to a Step and then posts garbage, truncated, replayed or out-of-order channel
//     messages into the guest's SynIC slot, and garbage packets / a corrupted index into its
//     rings, or garbles the NVSP/RNDIS replies during bring-up.
// Every attack is deterministic for a given seed. The victims' rejection counters are summed by
// Rejections() so a scenario can check "counted"; the log lines are checked by the tests.
// Spec: vmbus-protocol.md 9 (hostile-input checklist), 2.5-2.9 (the steps), 5.7 (NVSP/RNDIS
//       bring-up); docs/robustness.md lists the scenarios.
// Linux/OpenVMM: none (a test tool); the attacks follow spec 9.2-9.7.
// Thread-safety: none; one test thread drives a bench and its peers (the host's device workers
//       run in manual mode, pumped from the test thread, so every scenario is deterministic).
#ifndef UVMBUS_TESTS_SUPPORT_HOSTILE_HOSTILE_PEER_H_
#define UVMBUS_TESTS_SUPPORT_HOSTILE_HOSTILE_PEER_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "devices/netvsc/netvsc_drv.h"
#include "devices/netvsp/netvsp_device.h"
#include "fakes/fake_netvsc_guest.h"
#include "fakes/fake_netvsp_host.h"
#include "fakes/fake_vmbus_guest.h"
#include "guest/vmbus_bus.h"
#include "host/host_service.h"
#include "host/vmbus_server.h"
#include "net/endpoint.h"
#include "partition/local_partition.h"

namespace uvmbus::hostile {

// How far the peer follows the protocol before it misbehaves (spec 2.5-2.8, 5.7).
enum class Step : uint8_t {
  kHello,      // partition connected (socket HELLO done), no channel message yet
  kContact,    // INITIATE_CONTACT answered (version 5.3)
  kOffers,     // REQUESTOFFERS answered (offers + ALLOFFERS_DELIVERED)
  kGpadl,      // a GPADL created on the NIC's primary channel
  kOpen,       // the NIC's primary channel opened (rings live)
  kNvspInit,   // NVSP INIT done, nothing else (mid NVSP bring-up)
  kRndisInit,  // NVSP + buffers + RNDIS INITIALIZE and queries done (mid RNDIS bring-up)
  kTraffic,    // packet filter set and a frame sent each way
};
inline constexpr std::array<Step, 8> kAllSteps = {Step::kHello,  Step::kContact,  Step::kOffers,
                                                  Step::kGpadl,  Step::kOpen,     Step::kNvspInit,
                                                  Step::kRndisInit, Step::kTraffic};

// What the peer sends once it reached its step.
enum class Attack : uint8_t {
  kGarbage,      // random bytes (random length, half of them with a plausible type number)
  kTruncated,    // every message type of the layer, cut below its minimum size
  kReplay,       // the well-formed messages of the earlier steps, sent again
  kOutOfOrder,   // messages valid in another state (teardown before create, data before init...)
  kRingCorrupt,  // the peer's ring write index set to garbage (steps kOpen and later only)
};
inline constexpr std::array<Attack, 5> kAllAttacks = {Attack::kGarbage, Attack::kTruncated,
                                                      Attack::kReplay, Attack::kOutOfOrder,
                                                      Attack::kRingCorrupt};

std::string_view StepName(Step step);
std::string_view AttackName(Attack attack);

// splitmix64: deterministic bytes from a seed.
class Prng {
 public:
  explicit Prng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n) (n > 0).
  uint64_t Below(uint64_t n) { return Next() % n; }
  std::vector<uint8_t> Bytes(size_t n);

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// Hostile guests against a real host
// ---------------------------------------------------------------------------------------------

class HostBench {
 public:
  // One guest of the host and the test's handles on it.
  struct Guest {
    std::string name;
    std::unique_ptr<partition::LocalPartition> partition;
    std::unique_ptr<testing::FakeVmbusGuest> vmbus;
    std::unique_ptr<testing::FakeNetvscGuest> netvsc;
    netvsp::NetvspDevice* device = nullptr;  // owned by the guest's VmbusServer
    std::shared_ptr<const netvsp::NicCounters> counters;
    std::unique_ptr<net::Endpoint> app;  // the test's end of the NIC backend pipe
    std::array<uint8_t, 6> mac{};
  };

  HostBench();
  ~HostBench();
  HostBench(const HostBench&) = delete;
  HostBench& operator=(const HostBench&) = delete;

  // A new guest `name` (1 vCPU, 16 MiB) with one NIC; nullptr if the host refused it.
  Guest* AddGuest(const std::string& name);
  host::HostService& service() { return *service_; }
  // The guest's server snapshot (nullopt once it is gone).
  std::optional<host::ServerSnapshot> Snapshot(const Guest& guest) const;
  // Every rejection the host counted for this guest: VmbusServer rejections (spec 9.3) plus the
  // NIC's rule counters (spec 9.4, 9.7; traffic and informational counters excluded).
  uint64_t Rejections(const Guest& guest) const;
  // Runs the guest's NIC queues once (manual mode).
  static void Pump(Guest& guest);
  // A well-behaved guest: VMBus connect, NIC open, Linux's bring-up, packet filter, one frame
  // guest->backend and one backend->guest. Returns "" on success, else the step that failed.
  std::string ExerciseGoodGuest(Guest& guest);

 private:
  std::unique_ptr<host::HostService> service_;
  std::map<std::string, std::unique_ptr<Guest>> guests_;
  Guest* pending_ = nullptr;  // the guest whose devices the factory is creating
};

class HostileGuest {
 public:
  explicit HostileGuest(HostBench::Guest& guest) : g_(guest) {}

  // Follows the protocol from the start up to `step` (call once, on a fresh guest). Returns
  // false if the host refused a well-formed step; why() says which.
  bool AdvanceTo(Step step);
  Step step() const { return step_; }
  // Sends `attack` as suits the current step and pumps the host. Returns how many hostile
  // messages/packets were sent (0: the attack does not apply to this step).
  size_t Send(Attack attack, uint64_t seed);
  const std::string& why() const { return why_; }

 private:
  bool Fail(std::string what) {
    why_ = std::move(what);
    return false;
  }
  bool RingLevel() const { return step_ >= Step::kOpen; }
  size_t PostChannel(std::span<const uint8_t> bytes);
  size_t ChannelGarbage(Prng& prng);
  size_t ChannelTruncated();
  size_t ChannelReplay();
  size_t ChannelOutOfOrder();
  size_t RingGarbage(Prng& prng);
  size_t RingTruncated();
  size_t RingReplay();
  size_t RingOutOfOrder();
  size_t RingCorrupt();
  void Settle();

  HostBench::Guest& g_;
  Step step_ = Step::kHello;
  std::string why_;
  std::vector<wire::MessageBuffer> sent_;       // well-formed channel messages posted so far
  std::vector<std::vector<uint8_t>> nvsp_sent_;  // well-formed NVSP messages (replay)
  uint32_t relid_ = 0;
  uint32_t connection_id_ = 0;
  std::optional<partition::PageRun> gpadl_pages_;
};

// ---------------------------------------------------------------------------------------------
// A hostile host against a real guest
// ---------------------------------------------------------------------------------------------

// The real guest (VmbusBus + NetvscDriver) on a LocalPartition served by the real VmbusServer
// with a scripted NIC host (FakeNetvspHost) as its device.
class GuestBench {
 public:
  GuestBench();
  ~GuestBench();
  GuestBench(const GuestBench&) = delete;
  GuestBench& operator=(const GuestBench&) = delete;

  partition::LocalPartition& partition() { return *partition_; }
  fakes::FakeNetvspHost& nic_host() { return *nic_host_; }
  host::VmbusServer& server() { return *server_; }
  guest::VmbusBus& bus() { return *bus_; }
  netvsc::NetvscDriver& driver() { return *driver_; }
  // The guest's NIC (null before it probed / after it failed).
  std::shared_ptr<netvsc::NetvscDevice> nic() const;
  // Every rejection the guest counted: the bus's rule counters (spec 9.2) plus its NICs' rule
  // counters (spec 9.4-9.6) and failed probes.
  uint64_t Rejections() const;
  // One frame host->guest and one guest->host through the NIC. "" on success.
  std::string ExerciseNic();
  // Ring packets are handled by the NIC's own tasklets: waits (bounded) until Rejections()
  // exceeds `above`. False on timeout.
  bool WaitForRejections(uint64_t above,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const;

 private:
  std::unique_ptr<partition::LocalPartition> partition_;
  std::unique_ptr<fakes::FakeNetvspHost> nic_host_;
  std::unique_ptr<host::VmbusServer> server_;
  std::unique_ptr<netvsc::NetvscDriver> driver_;
  std::unique_ptr<guest::VmbusBus> bus_;
  uint64_t last_nic_rejections_ = 0;  // counters of NICs already removed (kept in the sum)
};

class HostileHost {
 public:
  explicit HostileHost(GuestBench& bench) : b_(bench) {}

  // Lets the real guest run to `step`: kContact/kOffers: bus connected without the NIC driver;
  // kOpen and later: the NIC driver registered and probed. kNvspInit / kRndisInit install the
  // garbling hook *before* the probe so the attack happens mid bring-up (Send() then only
  // reports what was garbled). kHello and kGpadl are not host-side steps (false).
  bool AdvanceTo(Step step, Attack attack = Attack::kGarbage, uint64_t seed = 1);
  Step step() const { return step_; }
  // Sends `attack` as suits the current step (channel messages into the SynIC slot before kOpen,
  // also ring packets from kOpen on). Returns how many hostile items were sent.
  size_t Send(Attack attack, uint64_t seed);
  const std::string& why() const { return why_; }
  // Items garbled by the bring-up hooks so far.
  size_t garbled() const { return *garbled_; }

 private:
  bool Fail(std::string what) {
    why_ = std::move(what);
    return false;
  }
  size_t PostChannel(std::span<const uint8_t> bytes);
  size_t ChannelGarbage(Prng& prng);
  size_t ChannelTruncated();
  size_t ChannelReplay();
  size_t ChannelOutOfOrder();
  size_t RingGarbage(Prng& prng);
  size_t RingTruncated();
  size_t RingReplay();
  size_t RingOutOfOrder();
  size_t RingCorrupt();
  void InstallBringUpHook(Attack attack, uint64_t seed);

  GuestBench& b_;
  Step step_ = Step::kHello;
  std::string why_;
  std::shared_ptr<size_t> garbled_ = std::make_shared<size_t>(0);
};

}  // namespace uvmbus::hostile

#endif  // UVMBUS_TESTS_SUPPORT_HOSTILE_HOSTILE_PEER_H_
