// File: tests/fakes/fake_vmbus_guest.h
//
// What: `FakeVmbusGuest`, a scripted guest for host-side tests: it posts raw channel messages
// through a partition::GuestPartition (HvCallPostMessage) and reads the host's replies out of
// the SIMP slot of SINT 2 exactly as a guest must (copy out, free the slot with a
// compare-exchange, full fence, EOM when msg_pending was set: spec 1.3). On top of the raw
// primitives it has the few sequences every test needs (connect, request offers, create a GPADL
// split into header + bodies, open a channel with guest-initialised rings).
// With partition::LocalPartition the host answers synchronously inside PostMessage(), so a
// test posts, then Receive()s, with no threads and no sleeps.
// Spec: vmbus-protocol.md 1.3 (slot/EOM), 2.3, 2.5, 2.8, 2.9, 3.1.
// Thread-safety: none; one test thread drives it.
#ifndef UVMBUS_TESTS_FAKES_FAKE_VMBUS_GUEST_H_
#define UVMBUS_TESTS_FAKES_FAKE_VMBUS_GUEST_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/error.h"
#include "partition/guest_page_allocator.h"
#include "partition/guest_partition.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "wire/channel_messages.h"
#include "wire/synic.h"

namespace uvmbus::testing {

class FakeVmbusGuest {
 public:
  explicit FakeVmbusGuest(partition::GuestPartition& guest) : guest_(guest) {}

  partition::GuestPartition& partition() { return guest_; }

  // ---- raw primitives ----
  // Posts `payload` as a SynIC message of `message_type` to `connection_id`.
  wire::HvStatus PostRaw(std::span<const uint8_t> payload, uint32_t connection_id = 1,
                         uint32_t message_type = wire::kHvMsgVmbus);
  wire::HvStatus Post(const wire::MessageBuffer& msg, uint32_t connection_id = 1) {
    return PostRaw(msg.span(), connection_id);
  }
  template <wire::FixedChannelMessage T>
  wire::HvStatus Post(const T& msg, uint32_t connection_id = 1) {
    return Post(wire::Encode(msg), connection_id);
  }

  // Takes the next message out of `vcpu`'s SINT 2 slot (nullopt when the slot is empty) and
  // parses it as host->guest. An unparsable message is returned as nullopt too and counted in
  // bad_messages().
  std::optional<wire::ChannelMessage> Receive(uint32_t vcpu = 0);
  // Everything currently deliverable on `vcpu`.
  std::vector<wire::ChannelMessage> ReceiveAll(uint32_t vcpu = 0);
  // The next message if it is a T (consumed either way).
  template <typename T>
  std::optional<T> ReceiveAs(uint32_t vcpu = 0) {
    auto msg = Receive(vcpu);
    if (!msg) return std::nullopt;
    if (const T* t = std::get_if<T>(&*msg)) return *t;
    return std::nullopt;
  }
  // With a transport whose EOM is asynchronous (socket), Receive() waits up to `ms` on the
  // vCPU's interrupt fd for the next message (an event wait, not a sleep). 0 = never wait.
  void set_receive_timeout_ms(int ms) { receive_timeout_ms_ = ms; }

  // True if no message waits on `vcpu` (slot empty).
  bool SlotEmpty(uint32_t vcpu = 0) const;
  uint64_t bad_messages() const { return bad_messages_; }

  // ---- sequences ----
  // INITIATE_CONTACT for `version` on the port Linux uses (4 for >= 5.0, 1 below; override
  // with `connection_id`), then reads the VERSION_RESPONSE on `reply_vcpu`.
  std::optional<wire::VersionResponse> InitiateContact(uint32_t version, uint32_t target_vcpu = 0,
                                                       std::optional<uint32_t> connection_id = {},
                                                       uint32_t reply_vcpu = 0);
  // Connects at `version` and sends REQUESTOFFERS; returns the offers received before
  // ALLOFFERS_DELIVERED (nullopt if the connection or the ALLOFFERS_DELIVERED was missing).
  std::optional<std::vector<wire::OfferChannel>> ConnectAndRequestOffers(uint32_t version);

  // Posts the GPADL_HEADER/GPADL_BODY messages for `pfns` (one page-aligned range, as Linux)
  // and returns the GPADL_CREATED answer (nullopt if none came).
  std::optional<wire::GpadlCreated> CreateGpadl(uint32_t relid, uint32_t handle,
                                                std::span<const uint64_t> pfns);

  // A channel opened by the guest: its ring pages and the guest's ends of the rings.
  struct OpenChannelState {
    uint32_t relid = 0;
    uint32_t gpadl = 0;
    uint32_t connection_id = 0;
    partition::PageRun out_pages;  // guest->host ring (ring A)
    partition::PageRun in_pages;   // host->guest ring (ring B)
    std::optional<ring::OutgoingRing> out;
    std::optional<ring::IncomingRing> in;
    wire::OpenChannelResult result;
  };
  // Allocates `out_ring_pages` + `in_ring_pages` pages (each incl. its control page),
  // initialises both ring headers like Linux, creates the ring GPADL (handle `gpadl`) and sends
  // OPENCHANNEL. With `scatter`, ring B is allocated below ring A so the GPADL's PFNs are two
  // separate runs (the host must alias them). Returns nullopt if a step failed.
  std::optional<OpenChannelState> OpenChannel(uint32_t relid, uint32_t connection_id,
                                              uint32_t gpadl, uint32_t target_vp = 0,
                                              uint32_t out_ring_pages = 4,
                                              uint32_t in_ring_pages = 4, bool scatter = false);

  // monitor_page2 of the last INITIATE_CONTACT (the guest->host monitor page, spec 1.5); empty
  // before the first contact.
  std::span<uint8_t> monitor_page2() {
    return monitor_pages_.valid() ? monitor_pages_.bytes().subspan(wire::kHvPageSize) : std::span<uint8_t>();
  }

  // SignalEvent on `connection_id` (what a guest does after writing into an empty ring).
  wire::HvStatus Signal(uint32_t connection_id) { return guest_.SignalEvent(connection_id, 0); }

 private:
  partition::GuestPartition& guest_;
  uint64_t bad_messages_ = 0;
  int receive_timeout_ms_ = 0;
  partition::PageRun monitor_pages_;  // monitor_page1, monitor_page2 of INITIATE_CONTACT
};

}  // namespace uvmbus::testing

#endif  // UVMBUS_TESTS_FAKES_FAKE_VMBUS_GUEST_H_
