// File: tests/fuzz/ring_fuzzer.cc
//
// What: fuzzes the ring layer against a hostile peer.
//  - An inbound ring image built from the input (control-page fields, including random
//    write/read indices, pending_send_sz and feature bits, then the data area) is attached with
//    ring::IncomingRing and read with the production cursor protocol, while a script from the
//    rest of the input plays the hostile writer: it moves write_index, rewrites data bytes
//    between reads, sets pending_send_sz / feature bits, toggles the interrupt mask.
//  - An outbound ring (OutgoingRing) is written while the script plays the hostile reader
//    (random read_index, interrupt_mask).
// Invariants: every packet Read() accepts has 16 <= len <= the buffer, 2 <= offset8 <= len8, a
// type of 6/7/9/11 and flags <= 1; its spans lie inside the buffer; indices the ring stores stay
// < D and 8-aligned; loops end (bounded by the script).
// Spec: vmbus-protocol.md 3.2-3.7, 9.1 G1-G3, 9.4 R1-R14.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"
#include "wire/ring_format.h"

namespace {

namespace wire = uvmbus::wire;
namespace ring = uvmbus::ring;
using uvmbus::fuzz::FuzzReader;

constexpr int kMaxOps = 512;
constexpr uint32_t kMaxPacketSizes[4] = {wire::kVmbusDefaultMaxPacketSize, 4624, 256, 1u << 20};

// A page-aligned ring allocation: 4 KiB control page + data pages.
struct RingMemory {
  explicit RingMemory(uint32_t data_pages)
      : size((1 + data_pages) * size_t{wire::kRingPageSize}),
        bytes(static_cast<uint8_t*>(::operator new(size, std::align_val_t{4096}))) {
    std::memset(bytes, 0, size);
  }
  ~RingMemory() { ::operator delete(bytes, std::align_val_t{4096}); }
  RingMemory(const RingMemory&) = delete;
  RingMemory& operator=(const RingMemory&) = delete;

  std::span<uint8_t> span() const { return {bytes, size}; }
  uint8_t* data() const { return bytes + wire::kRingHeaderSize; }
  uint32_t data_size() const { return static_cast<uint32_t>(size - wire::kRingHeaderSize); }
  void SetField(size_t offset, uint32_t value) const { std::memcpy(bytes + offset, &value, 4); }

  size_t size;
  uint8_t* bytes;
};

void CheckPacket(const ring::ReadResult& r, std::span<const uint8_t> buffer, uint32_t max_packet) {
  const ring::IncomingPacket& p = r.packet;
  UVMBUS_FUZZ_CHECK(p.bytes.size() == size_t{p.desc.len8} * 8);
  UVMBUS_FUZZ_CHECK(p.bytes.size() >= wire::kPacketDescriptorSize);
  UVMBUS_FUZZ_CHECK(p.bytes.size() <= max_packet);
  UVMBUS_FUZZ_CHECK(uvmbus::fuzz::Within(p.bytes, buffer));
  UVMBUS_FUZZ_CHECK(uvmbus::fuzz::Within(p.payload, p.bytes));
  UVMBUS_FUZZ_CHECK(p.desc.offset8 >= 2 && p.desc.offset8 <= p.desc.len8);
  UVMBUS_FUZZ_CHECK(p.payload.size() == (size_t{p.desc.len8} - p.desc.offset8) * 8);
  UVMBUS_FUZZ_CHECK(wire::IsAcceptedPacketType(p.desc.type));
  UVMBUS_FUZZ_CHECK((p.desc.flags & ~wire::kPacketFlagCompletionRequested) == 0);
  // The descriptor copy is the one at the start of the private bytes.
  wire::PacketDescriptor copy;
  std::memcpy(&copy, p.bytes.data(), sizeof(copy));
  UVMBUS_FUZZ_CHECK(copy.len8 == p.desc.len8 && copy.offset8 == p.desc.offset8);
  // The accepted packet is also accepted by the descriptor parser the devices use.
  UVMBUS_FUZZ_CHECK(wire::ParseDescriptor(p.bytes).has_value());
  uvmbus::fuzz::TouchAll(p.bytes);
}

void CheckIndex(uint32_t index, uint32_t data_size) {
  UVMBUS_FUZZ_CHECK(index < data_size && index % 8 == 0);
}

void FuzzIncoming(FuzzReader& in, uint8_t flags) {
  RingMemory mem(1 + (flags & 1));
  const uint32_t max_packet = kMaxPacketSizes[(flags >> 1) & 3];
  // Control page as the (hostile) peer left it.
  mem.SetField(0, in.Read<uint32_t>());   // write_index
  mem.SetField(4, in.Read<uint32_t>());   // read_index
  mem.SetField(8, in.Read<uint32_t>());   // interrupt_mask
  mem.SetField(12, in.Read<uint32_t>());  // pending_send_sz
  mem.SetField(64, in.Read<uint32_t>());  // feature_bits
  const uint16_t data_len = in.Read<uint16_t>();
  const auto data = in.Bytes(data_len < mem.data_size() ? data_len : mem.data_size());
  if (!data.empty()) std::memcpy(mem.data(), data.data(), data.size());

  auto view = ring::RingView::Create(mem.span());
  UVMBUS_FUZZ_CHECK(view.has_value());
  auto created = ring::IncomingRing::Create(*view, ring::IncomingRing::Options{max_packet});
  if (!created) return;  // kBadReadIndex: the ring is refused at attach time
  ring::IncomingRing incoming = std::move(*created);
  const uint32_t own_max = incoming.max_packet_size();
  UVMBUS_FUZZ_CHECK(own_max <= mem.data_size());
  std::vector<uint8_t> caller_buffer(mem.data_size());

  ring::ReadCursor cursor = incoming.BeginRead();
  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    const uint8_t code = in.Read<uint8_t>();
    switch (code & 0x7) {
      case 0: {  // read into the ring's own buffer
        const ring::ReadResult r = incoming.Read(cursor);
        if (r.ok()) {
          // The own buffer is not exposed; the packet must at least fit its size.
          UVMBUS_FUZZ_CHECK(r.packet.bytes.size() <= own_max);
          CheckPacket(r, r.packet.bytes, own_max);
          CheckIndex(cursor.next_index(), mem.data_size());
        }
        break;
      }
      case 1: {  // read into a caller buffer of fuzzed size
        const size_t n = in.Read<uint16_t>() % (caller_buffer.size() + 1);
        const std::span<uint8_t> buf(caller_buffer.data(), n);
        const ring::ReadResult r = incoming.Read(cursor, buf);
        if (r.ok()) {
          CheckPacket(r, buf, static_cast<uint32_t>(n));
          CheckIndex(cursor.next_index(), mem.data_size());
        }
        break;
      }
      case 2: {
        const ring::ReadCommit c = incoming.CommitRead(cursor);
        CheckIndex(incoming.read_index(), mem.data_size());
        if (c.committed) {
          uint32_t stored = 0;
          std::memcpy(&stored, mem.bytes + 4, 4);
          UVMBUS_FUZZ_CHECK(stored == incoming.read_index());
        }
        break;
      }
      case 3:  // hostile writer moves write_index (anywhere, aligned or not)
        mem.SetField(0, in.Read<uint32_t>());
        break;
      case 4: {  // hostile writer rewrites ring data (possibly under a packet being read)
        const uint32_t offset = in.Read<uint16_t>() % mem.data_size();
        mem.data()[offset] = in.Read<uint8_t>();
        break;
      }
      case 5: {
        incoming.BeginReadMask();
        auto avail = incoming.EndReadMask();
        if (avail) UVMBUS_FUZZ_CHECK(*avail < mem.data_size());
        break;
      }
      case 6: {
        auto avail = incoming.BytesAvailable();
        if (avail) UVMBUS_FUZZ_CHECK(*avail < mem.data_size());
        (void)incoming.PeerSupportsPendingSendSize();
        break;
      }
      default:  // hostile writer sets pending_send_sz and the feature bits
        mem.SetField(12, in.Read<uint32_t>());
        mem.SetField(64, in.Read<uint32_t>());
        break;
    }
  }
  // Drain what is left the way a channel worker does (bounded batch), then commit.
  for (int n = 0; n < 64; ++n) {
    const ring::ReadResult r = incoming.Read(cursor);
    if (!r.ok()) break;
    CheckPacket(r, r.packet.bytes, own_max);
  }
  (void)incoming.CommitRead(cursor);
  CheckIndex(incoming.read_index(), mem.data_size());
  (void)view->Snapshot().read_bytes_avail();
}

void FuzzOutgoing(FuzzReader& in, uint8_t flags) {
  RingMemory mem(1 + ((flags >> 3) & 1));
  mem.SetField(4, in.Read<uint32_t>());  // the hostile reader's read_index
  mem.SetField(8, in.Read<uint32_t>());  // and interrupt_mask
  auto view = ring::RingView::Create(mem.span());
  UVMBUS_FUZZ_CHECK(view.has_value());
  auto created = ring::OutgoingRing::Create(*view);
  if (!created) return;
  ring::OutgoingRing out = std::move(*created);
  std::vector<uint8_t> payload(mem.data_size(), 0xA5);

  ring::WriteCursor cursor = out.BeginWrite();
  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    const uint8_t code = in.Read<uint8_t>();
    switch (code & 0x7) {
      case 0:
      case 1: {
        const size_t n = in.Read<uint16_t>() % (payload.size() + 1);
        const std::span<const uint8_t> p(payload.data(), n);
        const ring::WriteResult r = (code & 1) != 0
                                        ? out.WriteCompletion(cursor, p, in.Read<uint64_t>())
                                        : out.WriteInband(cursor, p, in.Read<uint64_t>(), true);
        if (r.ok()) CheckIndex(cursor.next_index(), mem.data_size());
        break;
      }
      case 2:
        (void)out.CommitWrite(cursor);
        CheckIndex(out.write_index(), mem.data_size());
        break;
      case 3:  // hostile reader moves read_index
        mem.SetField(4, in.Read<uint32_t>());
        break;
      case 4:
        mem.SetField(8, in.Read<uint32_t>());
        break;
      case 5:
        (void)out.SetPendingSendSize(in.Read<uint32_t>());
        break;
      case 6: {
        auto free = out.BytesFree();
        if (free) UVMBUS_FUZZ_CHECK(*free <= mem.data_size());
        break;
      }
      default:
        mem.SetField(12, in.Read<uint32_t>());  // a peer scribbling over our pending_send_sz
        mem.SetField(64, in.Read<uint32_t>());
        break;
    }
  }
  (void)out.CommitWrite(cursor);
  CheckIndex(out.write_index(), mem.data_size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in(data, size);
  const uint8_t flags = in.Read<uint8_t>();
  if ((flags & 0x80) == 0) {
    FuzzIncoming(in, flags);
  } else {
    FuzzOutgoing(in, flags);
  }
  return 0;
}
