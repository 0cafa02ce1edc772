// File: tests/fakes/fake_vmbus_host.h
//
// What: a scripted VMBus host for guest tests. It implements partition::HostPartition::Handler,
// so it receives the guest's PostMessage / SignalEvent hypercalls, and answers them the way its
// Options say: which versions it accepts (and whether it has the >= 5.0 multi-client port 4),
// which offers it sends after REQUESTOFFERS, whether and how it answers GPADL, OPENCHANNEL,
// GPADL_TEARDOWN, MODIFYCHANNEL and UNLOAD, and how many posts it refuses with the transient
// INSUFFICIENT_BUFFERS first. Tests can also inject any channel message, write arbitrary
// (malformed) SynIC slot contents, and act as the host end of an opened channel's rings: write
// packets into the host->guest ring, signal the guest (one channel, or many at once with a single
// interrupt), and read what the guest sent.
//
// It records every message the guest posted (parsed), with the connection id it was posted to,
// so tests can assert exact sequences (CLOSECHANNEL, GPADL_TEARDOWN, RELID_RELEASED ...).
//
// Spec: vmbus-protocol.md 1.3 (slot, msg_pending), 1.4 (event bits), 2.5 (negotiation as a host
//       answers it), 2.7-2.10, 3 (rings, host side).
// Thread-safety: all methods are thread-safe (one mutex). Handler callbacks arrive on guest
//       threads (LocalPartition) and are serialised by the partition. WaitUntil() evaluates its
//       predicate without the lock held, so the predicate may call any method.
#ifndef UVMBUS_TESTS_FAKES_FAKE_VMBUS_HOST_H_
#define UVMBUS_TESTS_FAKES_FAKE_VMBUS_HOST_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/guid.h"
#include "partition/host_partition.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/channel_messages.h"
#include "wire/gpa_range.h"
#include "wire/synic.h"
#include "wire/versions.h"

namespace uvmbus::fakes {

class FakeVmbusHost final : public partition::HostPartition::Handler {
 public:
  struct Options {
    // Versions answered with version_supported = 1 (others: 0).
    std::set<uint32_t> accepted_versions = {
        wire::kVersionWin10V5_3, wire::kVersionWin10V5_2, wire::kVersionWin10V5_1,
        wire::kVersionWin10V5,   wire::kVersionWin10V4_1, wire::kVersionWin10,
        wire::kVersionWin8_1,    wire::kVersionWin8};
    // False: a pre-5.0 host without the multi-client port: INITIATE_CONTACT on connection 4 is
    // refused with INVALID_CONNECTION_ID (M18).
    bool has_port4 = true;
    // VERSION_RESPONSE.msg_conn_id for accepted versions >= 5.0.
    uint32_t msg_conn_id = wire::kVmbusMessageConnectionId;
    // Send ALLOFFERS_DELIVERED after the offers.
    bool send_all_offers_delivered = true;
    // Answer OPENCHANNEL (with open_status), GPADL (with gpadl_status), GPADL_TEARDOWN, UNLOAD.
    bool answer_open = true;
    uint32_t open_status = 0;
    bool answer_gpadl = true;
    uint32_t gpadl_status = 0;
    bool answer_teardown = true;
    bool answer_unload = true;
    // The first `transient_failures` PostMessage calls return INSUFFICIENT_BUFFERS.
    uint32_t transient_failures = 0;
    // Raises vCPU v's interrupt without touching the event page (for WriteSlot); tests with a
    // LocalPartition write the guest's interrupt eventfd.
    std::function<void(uint32_t vcpu)> raise_interrupt;
  };

  // The host partition must outlive this object. Call Start() to begin receiving.
  FakeVmbusHost(partition::HostPartition& host, Options options);
  ~FakeVmbusHost() override;
  FakeVmbusHost(const FakeVmbusHost&) = delete;
  FakeVmbusHost& operator=(const FakeVmbusHost&) = delete;

  Status Start();

  // ---- Script ----
  // An offer as OpenVMM builds one: no monitor, dedicated interrupt, connection id relid|0x2000.
  static wire::OfferChannel MakeOffer(const Guid& class_id, const Guid& instance_id,
                                      uint32_t relid, uint16_t sub_channel_index = 0);
  // Queued for the answer to REQUESTOFFERS.
  void AddOffer(const wire::OfferChannel& offer);
  void SetOpenStatus(uint32_t status);
  void SetAnswerOpen(bool answer);

  // ---- Injection (host -> guest) ----
  // Posts a channel message into the guest's SINT2 slot of `vcpu` (queued while the slot is busy).
  Status SendRaw(std::span<const uint8_t> payload, uint32_t vcpu = 0);
  template <wire::FixedChannelMessage T>
  Status Send(const T& msg, uint32_t vcpu = 0) {
    return SendRaw(wire::Encode(msg).span(), vcpu);
  }
  Status SendOffer(const wire::OfferChannel& offer) { return Send(offer); }
  Status SendRescind(uint32_t relid);
  // Answers a pending OPENCHANNEL (answer_open = false).
  Status ReplyOpen(uint32_t relid, uint32_t status);
  // Writes raw SynIC slot contents into vCPU `vcpu`'s slot 2 (any type, size byte and flags) and
  // raises the interrupt through Options::raise_interrupt. kUnavailable if the slot is occupied.
  Status WriteSlot(uint32_t vcpu, uint32_t message_type, uint8_t payload_size, uint8_t flags,
                   std::span<const uint8_t> payload);
  // Raises vCPU `vcpu`'s interrupt with nothing to do (M1).
  void RaiseInterrupt(uint32_t vcpu);

  // ---- What the guest sent ----
  struct Received {
    uint32_t connection_id = 0;
    wire::ChannelMessage message;
  };
  std::vector<Received> received() const;
  std::vector<wire::ChannelMessageType> received_types() const;
  size_t Count(wire::ChannelMessageType type) const;
  // Every INITIATE_CONTACT, with the connection id it came on (also those refused for a missing
  // port 4, which never reach received()).
  std::vector<std::pair<uint32_t, wire::InitiateContact>> contacts() const;
  // Guest->host signals per connection id.
  uint64_t signals(uint32_t connection_id) const;
  // Pages of an established GPADL (nullopt if unknown).
  std::optional<std::vector<uint64_t>> gpadl_pages(uint32_t handle) const;
  size_t gpadl_count() const;
  // Waits until pred() holds (re-evaluated after every guest hypercall). False on timeout.
  bool WaitUntil(const std::function<bool()>& pred,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  bool WaitForCount(wire::ChannelMessageType type, size_t n,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  bool disconnected() const;

  // ---- Host end of open channels ----
  bool IsOpen(uint32_t relid) const;
  // The target_vp of the channel (OPENCHANNEL or later MODIFYCHANNEL).
  std::optional<uint32_t> target_vp(uint32_t relid) const;
  // Writes one in-band packet into the host->guest ring. With `signal`, signals the guest when
  // the commit says so. Returns whether a signal was needed (the ring was empty and unmasked).
  Expected<bool> WriteToGuest(uint32_t relid, std::span<const uint8_t> payload,
                              bool signal = true);
  // Sets the channel's event bit on its target vCPU and raises the interrupt if the bit was clear.
  Status SignalGuest(uint32_t relid);
  // "Fired together": sets the event bits of every relid on `vcpu` directly, then raises the
  // vCPU's interrupt once.
  Status SignalTogether(uint32_t vcpu, std::span<const uint32_t> relids);
  // Reads every packet the guest wrote to the host; returns their payloads (offset8 onwards).
  Expected<std::vector<std::vector<uint8_t>>> ReadFromGuest(uint32_t relid);
  // The host->guest ring's interrupt_mask as the host sees it.
  std::optional<uint32_t> GuestInterruptMask(uint32_t relid) const;

  // ---- HostPartition::Handler ----
  wire::HvStatus OnPostMessage(uint32_t connection_id, uint32_t message_type,
                               std::span<const uint8_t> payload) override;
  wire::HvStatus OnSignalEvent(uint32_t connection_id) override;
  void OnDisconnect() override;

 private:
  struct HostChannel {
    uint32_t relid = 0;
    uint32_t gpadl = 0;
    uint32_t target_vp = 0;
    std::optional<ring::OutgoingRing> to_guest;
    std::optional<ring::IncomingRing> from_guest;
  };
  struct Gpadl {
    uint32_t relid = 0;
    std::vector<uint64_t> pages;
  };

  void PostLocked(std::span<const uint8_t> payload);
  template <wire::FixedChannelMessage T>
  void PostLocked(const T& msg) {
    PostLocked(wire::Encode(msg).span());
  }
  void FinishGpadlLocked(uint32_t handle);
  void OpenLocked(const wire::OpenChannel& msg, uint32_t status);
  void NotifyLocked();

  partition::HostPartition& host_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t events_ = 0;
  uint32_t version_ = 0;
  uint32_t transient_left_ = 0;
  std::vector<wire::OfferChannel> offers_;
  std::vector<Received> received_;
  std::vector<std::pair<uint32_t, wire::InitiateContact>> contacts_;
  std::map<uint32_t, uint64_t> signals_;
  std::map<uint32_t, wire::GpadlAssembler> assembling_;
  std::map<uint32_t, Gpadl> gpadls_;
  std::map<uint32_t, wire::OpenChannel> pending_opens_;
  std::map<uint32_t, std::unique_ptr<HostChannel>> channels_;
  bool disconnected_ = false;
};

}  // namespace uvmbus::fakes

#endif  // UVMBUS_TESTS_FAKES_FAKE_VMBUS_HOST_H_
