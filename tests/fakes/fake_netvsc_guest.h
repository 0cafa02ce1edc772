// File: tests/fakes/fake_netvsc_guest.h
//
// What: `FakeNetvscGuest`, a scripted netvsc guest for tests of the host's synthetic NIC
// (devices/netvsp). It speaks raw NVSP and RNDIS over the in-memory rings of a LocalPartition,
// on top of FakeVmbusGuest (channel messages): it opens the primary channel and the
// sub-channels, registers receive and send buffers (guest pages + GPADLs), sends NVSP messages
// in-band or GPA-direct, puts RNDIS messages into send-buffer sections or guest pages, reads the
// host's completions, transfer-page packets (copying each range out of its receive buffer and
// completing it) and in-band messages, and keeps every packet it has not been asked for yet in a
// per-channel backlog. Every step is a separate call so tests can send any byte sequence,
// including hostile ones, and check every reply against the spec's layouts.
//
// Waiting: with a `pump` (the device's manual Poll()) the guest pumps the host until the packet
// it waits for arrives or nothing moves any more; without one it waits on the vCPU's interrupt
// eventfd (an event wait, never a sleep) up to a deadline.
//
// Spec: vmbus-protocol.md 4.3-4.5 (packets), 5.5-5.8 (NVSP), 6.1-6.12 (RNDIS), 7.8 (sub-channel
//       handshake), 5.7 (Linux's bring-up order, which BringUp() follows).
// Linux/OpenVMM: the role of OpenVMM's TestNicDevice/TestNicChannel (netvsp/src/test.rs); the
//       byte layouts are Linux netvsc's (netvsc.c, rndis_filter.c).
// Thread-safety: none; one test thread drives it.
#ifndef UVMBUS_TESTS_FAKES_FAKE_NETVSC_GUEST_H_
#define UVMBUS_TESTS_FAKES_FAKE_NETVSC_GUEST_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "fakes/fake_vmbus_guest.h"
#include "partition/guest_page_allocator.h"
#include "partition/local_partition.h"
#include "wire/channel_messages.h"
#include "wire/nvsp.h"
#include "wire/ring_format.h"
#include "wire/rndis.h"

namespace uvmbus::testing {

// One packet the host wrote into a host->guest ring (a private copy).
struct HostPacket {
  wire::PacketDescriptor desc{};
  std::vector<uint8_t> bytes;  // the whole packet, len8 * 8 bytes
  wire::PacketType type() const { return static_cast<wire::PacketType>(desc.type); }
  std::span<const uint8_t> payload() const {
    const size_t off = size_t{desc.offset8} * 8;
    return off <= bytes.size() ? std::span<const uint8_t>(bytes).subspan(off)
                               : std::span<const uint8_t>();
  }
};

// One RNDIS message the host indicated through the receive buffer.
struct ReceivedMessage {
  uint32_t byte_offset = 0;       // the range
  uint32_t byte_count = 0;
  std::vector<uint8_t> bytes;     // copy of the range
};

// A transfer-page packet with its ranges copied out.
struct ReceivedIndication {
  HostPacket packet;
  uint16_t xfer_pageset_id = 0;
  uint32_t channel_type = 0;      // NVSP 107 channel_type (0 data, 1 control)
  uint32_t nvsp_size = 0;         // bytes of NVSP payload (28 or 40)
  std::vector<ReceivedMessage> messages;
};

// A frame the host delivered, with its PPIs.
struct ReceivedFrame {
  std::vector<uint8_t> frame;
  wire::RndisPpiSet ppis;
  uint16_t channel = 0;
};

// How the guest hands a data or control message to the host (spec 5.6 (a)-(c)).
enum class SendMode : uint8_t {
  kSection,         // copied into a send-buffer section, in-band packet
  kGpaPageBuffer,   // GPA-direct, one range per 4 KiB page (Linux until 2025)
  kGpaMultiPage,    // GPA-direct, one multi-page range per contiguous buffer (Linux 2025)
  kMixed,           // RNDIS header + PPIs in a section, the frame by GPA range (cp_partial)
};

class FakeNetvscGuest {
 public:
  // `pump` runs the host (NetvspDevice::Poll) in manual mode; empty = the host has threads.
  FakeNetvscGuest(partition::LocalPartition& partition, FakeVmbusGuest& vmbus,
                  std::function<void()> pump, int wait_ms = 5000);
  ~FakeNetvscGuest();
  FakeNetvscGuest(const FakeNetvscGuest&) = delete;
  FakeNetvscGuest& operator=(const FakeNetvscGuest&) = delete;

  // ---- channels ----
  // Connects VMBus (5.3) and returns the offers; remembers the first network offer.
  bool Connect();
  const wire::OfferChannel& primary_offer() const { return primary_offer_; }
  // Opens channel index `offer.offer.sub_channel_index` (primary or sub-channel).
  bool OpenChannel(const wire::OfferChannel& offer, uint32_t ring_pages = 16);
  bool OpenPrimary(uint32_t ring_pages = 16) { return OpenChannel(primary_offer_, ring_pages); }
  // Receives `count` sub-channel OFFERCHANNELs (waiting for them) and opens each.
  bool OpenSubchannels(uint32_t count);
  // CLOSECHANNEL for channel `index` (sub-channels first is Linux's order).
  void CloseChannel(uint16_t index);
  // Linux's removal (spec 5.7 step 7): RNDIS HALT, REVOKE_RECV_BUF, REVOKE_SEND_BUF, close the
  // sub-channels then the primary, tear the buffer GPADLs down (answering the host's rescinds of
  // the sub-channels with RELID_RELEASED). The guest can then OpenPrimary() + BringUp() again.
  bool Remove();
  uint32_t open_channels() const;
  bool has_channel(uint16_t index) const;
  uint32_t relid(uint16_t index) const;
  // The guest's rings of a channel (tests that corrupt them).
  FakeVmbusGuest::OpenChannelState& channel_state(uint16_t index);

  // ---- packets ----
  // Writes one packet (header from wire::Encode*Header + payload) and signals if the ring says.
  bool Write(uint16_t ch, std::span<const uint8_t> header, std::span<const uint8_t> payload);
  bool SendInband(uint16_t ch, std::span<const uint8_t> payload, uint64_t trans_id,
                  bool completion_requested = true);
  bool SendCompletion(uint16_t ch, uint64_t trans_id, std::span<const uint8_t> payload);
  // GPA-direct packet with ranges over guest pages.
  bool SendGpaDirect(uint16_t ch, std::span<const wire::GpaDirectRangeRef> ranges,
                     std::span<const uint8_t> payload, uint64_t trans_id);
  // Next packet of `type` on `ch` (others stay in the backlog); nullopt on timeout.
  std::optional<HostPacket> WaitPacket(uint16_t ch, wire::PacketType type);
  // The COMP answering `trans_id` on `ch`.
  std::optional<HostPacket> WaitCompletion(uint16_t ch, uint64_t trans_id);
  // True if nothing of `type` is waiting on `ch` after pumping the host.
  bool NothingPending(uint16_t ch, wire::PacketType type);
  size_t backlog(uint16_t ch) const;

  // ---- NVSP ----
  // Sends `payload` in-band with completion requested and returns the parsed completion.
  std::optional<wire::NvspMessage> Request(uint16_t ch, std::span<const uint8_t> payload);
  template <wire::NvspFixedMessage T>
  std::optional<wire::NvspMessage> Request(uint16_t ch, const T& msg) {
    std::array<uint8_t, 64> buf{};
    auto n = wire::EncodeNvsp(buf, msg, wire::kNvspLinuxMessageSize);
    if (!n) return std::nullopt;
    return Request(ch, std::span<const uint8_t>(buf.data(), *n));
  }
  // Sends without completion request (SEND_NDIS_VER, SEND_NDIS_CONFIG, REVOKE_*).
  template <wire::NvspFixedMessage T>
  bool Post(uint16_t ch, const T& msg) {
    std::array<uint8_t, 64> buf{};
    auto n = wire::EncodeNvsp(buf, msg, wire::kNvspLinuxMessageSize);
    return n && SendInband(ch, std::span<const uint8_t>(buf.data(), *n), NextTransId(), false);
  }

  // Buffers: allocates `pages` guest pages, GPADLs them on the primary channel (handle `gpadl`)
  // and sends SEND_RECV_BUF / SEND_SEND_BUF; returns the completion.
  std::optional<wire::NvspSendReceiveBufferComplete> SetupReceiveBuffer(
      uint32_t pages, uint32_t gpadl = 0xCA000, uint16_t id = wire::kNetvscReceiveBufferId);
  std::optional<wire::NvspSendSendBufferComplete> SetupSendBuffer(uint32_t pages,
                                                                  uint32_t gpadl = 0x5E000,
                                                                  uint16_t id = 0);
  // Creates a GPADL on the primary channel over fresh pages (for hostile buffer tests).
  bool CreateGpadl(uint32_t pages, uint32_t handle);

  // Linux's whole bring-up up to (not including) sub-channels (spec 5.7 steps 3.1-3.10):
  // INIT at `version`, NDIS config + version, receive and send buffers, RNDIS INITIALIZE and the
  // queries. Returns false at the first step that fails (the test's EXPECTs say which).
  bool BringUp(uint32_t version = wire::kNvspVersion61, uint32_t recv_pages = 64,
               uint32_t send_pages = 16);
  uint32_t nvsp_version() const { return version_; }
  uint32_t sub_alloc_size() const { return recv_layout_.sub_alloc_size; }
  uint32_t num_sub_allocs() const { return recv_layout_.num_sub_allocs; }
  uint32_t send_section_size() const { return send_section_size_; }
  uint32_t send_section_count() const { return send_section_count_; }
  std::span<uint8_t> receive_buffer() const;
  std::span<uint8_t> send_buffer() const;

  // ---- RNDIS ----
  uint32_t NextRequestId() { return ++request_id_; }
  uint64_t NextTransId() { return ++trans_id_; }
  // Sends an RNDIS message as SEND_RNDIS_PKT (channel_type `channel_type`) by `mode`, returns the
  // NVSP 108 completion status (nullopt: no completion).
  std::optional<wire::NvspStatus> SendRndis(uint16_t ch, std::span<const uint8_t> rndis,
                                            SendMode mode, uint32_t channel_type);
  // Sends an RNDIS control message (Linux: GPA-direct, channel_type 1) and returns the RNDIS
  // message the host indicated in reply (the receive range is completed).
  std::optional<std::vector<uint8_t>> RndisRequest(std::span<const uint8_t> rndis,
                                                   SendMode mode = SendMode::kGpaMultiPage);
  // QUERY / SET helpers returning the parsed completion.
  std::optional<wire::RndisQueryCompleteMessage> Query(wire::NdisOid oid,
                                                       std::span<const uint8_t> info = {});
  std::optional<wire::RndisStatus> Set(wire::NdisOid oid, std::span<const uint8_t> info);
  // Keeps the bytes of the last reply alive (Query()'s spans point into it).
  const std::vector<uint8_t>& last_reply() const { return last_reply_; }

  // ---- data ----
  // Sends `frames` on channel `ch` as one NVSP message by `mode` (several PACKET_MSGs in one
  // section for kSection when more than one frame is given, padded to the host's alignment).
  std::optional<wire::NvspStatus> SendFrames(uint16_t ch,
                                             const std::vector<std::vector<uint8_t>>& frames,
                                             SendMode mode, const wire::RndisPpiSet& ppis = {});
  // Next transfer-page packet on `ch` (completed with `status` unless complete is false).
  std::optional<ReceivedIndication> WaitIndication(uint16_t ch, bool complete = true,
                                                   wire::NvspStatus status =
                                                       wire::NvspStatus::kSuccess);
  // Frames from the next transfer-page packet on `ch` (empty on timeout).
  std::vector<ReceivedFrame> ReceiveFrames(uint16_t ch);
  // Frames from the next transfer-page packet on whichever channel has one first (each frame's
  // `channel` says where it arrived; empty on timeout).
  std::vector<ReceivedFrame> ReceiveFramesAnyChannel();
  // Completes a transfer-page packet by hand (trans_id of its descriptor).
  bool CompleteIndication(uint16_t ch, uint64_t trans_id,
                          wire::NvspStatus status = wire::NvspStatus::kSuccess);

 private:
  struct Channel {
    uint16_t index = 0;
    FakeVmbusGuest::OpenChannelState state;
    std::deque<HostPacket> backlog;
  };

  Channel* Find(uint16_t index);
  const Channel* Find(uint16_t index) const;
  // Moves every packet waiting in the host->guest rings into the backlogs. Returns how many.
  size_t DrainRings();
  // Waits until `ready` holds: pumps the host or waits on the interrupt.
  bool WaitUntil(const std::function<bool()>& ready);
  void ClearEventBit(uint32_t relid);
  // Stages `bytes` in guest scratch pages at `offset` and returns the PFN ranges for `mode`.
  std::vector<wire::GpaDirectRangeRef> StageInPages(std::span<const uint8_t> bytes,
                                                    uint32_t offset, SendMode mode,
                                                    std::vector<uint64_t>* pfn_storage);
  uint32_t NextSection();

  partition::LocalPartition& partition_;
  FakeVmbusGuest& vmbus_;
  std::function<void()> pump_;
  int wait_ms_;
  wire::OfferChannel primary_offer_{};
  std::vector<std::unique_ptr<Channel>> channels_;
  uint32_t next_gpadl_ = 0xE1E10;
  uint32_t version_ = 0;
  uint32_t recv_gpadl_ = 0;
  uint32_t send_gpadl_ = 0;
  uint16_t recv_id_ = 0;
  uint16_t send_id_ = 0;
  partition::PageRun recv_pages_;
  partition::PageRun send_pages_;
  partition::PageRun scratch_pages_;
  std::vector<partition::PageRun> extra_pages_;
  wire::NvspReceiveBufferLayout recv_layout_{};
  uint32_t send_section_size_ = 0;
  uint32_t send_section_count_ = 0;
  uint32_t next_section_ = 0;
  uint32_t pkt_align_ = 8;
  uint32_t max_pkt_ = 8;
  uint32_t request_id_ = 0;
  uint64_t trans_id_ = 0;
  std::vector<uint8_t> last_reply_;
};

// Frame builders for tests: an Ethernet frame of `size` bytes (>= 14) with a recognisable
// payload; a TCP/IPv4 frame of a flow (for RSS tests; checksums are not computed).
std::vector<uint8_t> MakeFrame(const std::array<uint8_t, 6>& dst, const std::array<uint8_t, 6>& src,
                               uint32_t size, uint8_t seed);
std::vector<uint8_t> MakeTcp4Frame(const std::array<uint8_t, 6>& dst,
                                   const std::array<uint8_t, 6>& src,
                                   const std::array<uint8_t, 4>& src_ip,
                                   const std::array<uint8_t, 4>& dst_ip, uint16_t src_port,
                                   uint16_t dst_port, uint32_t payload = 32);

}  // namespace uvmbus::testing

#endif  // UVMBUS_TESTS_FAKES_FAKE_NETVSC_GUEST_H_
