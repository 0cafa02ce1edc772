// File: tests/fuzz/rndis_fuzzer.cc
//
// What: fuzzes the RNDIS message layer (control messages and PACKET_MSG with per-packet info).
//  Input byte 0: bit 0 = direction (set: guest->host, as netvsp receives; clear: host->guest, as
//  netvsc receives), bits 1-2 = mode:
//   0: ParseRndisMessage(rest) + DecodeRndisMessage + RndisCompletionRequestId, with a round
//      trip through the matching encoder for every accepted message;
//   1: ParseRndisPacket(rest) vs ParseRndisPacketHead(first <= 256 bytes, rest.size()): the
//      shared-memory variant may refuse more (PPIs beyond the copied head) but never accepts
//      what the full parser refuses, and agrees on what both accept;
//   2: RndisMessageSplitter over the rest (a send-buffer section with a batch), every piece
//      parsed as a message;
//   3: ParseRndisPacket(rest) and the transmit checks on its PPIs (CheckTxLsoInfo,
//      CheckTxChecksumInfo).
// Invariants: frames and buffers lie inside the message and inside msg_len; PACKET_MSG
// re-encoded with EncodeRndisPacket parses to the same frame and PPIs.
// Spec: vmbus-protocol.md 6.x, 9.6 D1-D25, 9.7 P11-P17, 10.2 N-i, N-m.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <variant>
#include <vector>

#include "fuzz_util.h"
#include "wire/rndis.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::FuzzReader;
using uvmbus::fuzz::Within;

bool SameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

uint32_t MsgLen(std::span<const uint8_t> msg) {
  uint32_t len = 0;
  std::memcpy(&len, msg.data() + 4, sizeof(len));
  return len;
}

void CheckPacket(const wire::RndisPacket& p, std::span<const uint8_t> msg, wire::Direction dir) {
  const uint32_t msg_len = MsgLen(msg);
  UVMBUS_FUZZ_CHECK(msg_len <= msg.size());
  UVMBUS_FUZZ_CHECK(Within(p.frame, msg.first(msg_len)));
  UVMBUS_FUZZ_CHECK(p.frame.size() == p.fixed.data_len);
  UVMBUS_FUZZ_CHECK(p.ppis.count() <= p.ppi_count);
  if (dir == wire::Direction::kGuestToHost) UVMBUS_FUZZ_CHECK(p.ppi_status == wire::PpiStatus::kOk);
  uvmbus::fuzz::TouchAll(p.frame);

  // Round trip through the encoder the senders use. An empty frame is skipped: the encoder
  // puts it at data_offset == msg_len - 8, which D4 (rightly) refuses, and no sender makes one.
  if (p.frame.empty()) return;
  std::vector<uint8_t> out(wire::RndisPacketHeaderSize(p.ppis) + p.frame.size());
  auto len = wire::EncodeRndisPacket(out, p.ppis, p.frame);
  UVMBUS_FUZZ_CHECK(len.has_value() && *len == out.size());
  auto again = wire::ParseRndisPacket(out, dir);
  UVMBUS_FUZZ_CHECK(again.has_value());
  UVMBUS_FUZZ_CHECK(again->ppis == p.ppis);
  UVMBUS_FUZZ_CHECK(SameBytes(again->frame, p.frame));
}

// Re-encodes an accepted control message and checks it parses to the same content.
void RoundTrip(const wire::RndisMessage& msg, wire::Direction dir) {
  std::vector<uint8_t> out(8192);
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::RndisPacket>) {
          return;  // checked by CheckPacket
        } else if constexpr (requires { m.info; }) {
          uvmbus::Expected<size_t> n;
          if constexpr (T::kType == wire::RndisMessageType::kQuery) {
            n = wire::EncodeRndisQuery(out, m.fixed.request_id, m.fixed.oid, m.info);
          } else if constexpr (T::kType == wire::RndisMessageType::kSet) {
            n = wire::EncodeRndisSet(out, m.fixed.request_id, m.fixed.oid, m.info);
          } else if constexpr (T::kType == wire::RndisMessageType::kSetEx) {
            n = wire::EncodeRndisSetEx(out, m.fixed.request_id, m.fixed.oid, m.info);
          } else if constexpr (T::kType == wire::RndisMessageType::kQueryComplete) {
            n = wire::EncodeRndisQueryComplete(out, m.fixed.request_id, m.fixed.status, m.info);
          } else {
            n = wire::EncodeRndisSetExComplete(out, m.fixed.request_id, m.fixed.status, m.info);
          }
          UVMBUS_FUZZ_CHECK(n.has_value());
          auto again = wire::DecodeRndisMessage(std::span<const uint8_t>(out.data(), *n));
          UVMBUS_FUZZ_CHECK(again.has_value());
          const T* a = std::get_if<T>(&*again);
          UVMBUS_FUZZ_CHECK(a != nullptr && a->fixed.request_id == m.fixed.request_id);
          UVMBUS_FUZZ_CHECK(SameBytes(a->info, m.info));
        } else if constexpr (std::is_same_v<T, wire::RndisIndicateStatusMessage>) {
          auto n = wire::EncodeRndisIndicateStatus(out, m.fixed.status, m.status_buffer);
          UVMBUS_FUZZ_CHECK(n.has_value());
          auto again = wire::ParseRndisMessage(std::span<const uint8_t>(out.data(), *n), dir);
          UVMBUS_FUZZ_CHECK(again.has_value());
          const T* a = std::get_if<T>(&*again);
          UVMBUS_FUZZ_CHECK(a != nullptr && a->fixed.status == m.fixed.status);
          UVMBUS_FUZZ_CHECK(SameBytes(a->status_buffer, m.status_buffer));
        } else {
          auto n = wire::EncodeRndis(out, m);
          UVMBUS_FUZZ_CHECK(n.has_value() && *n == T::kWireSize);
          auto again = wire::ParseRndisMessage(std::span<const uint8_t>(out.data(), *n), dir);
          UVMBUS_FUZZ_CHECK(again.has_value());
          const T* a = std::get_if<T>(&*again);
          UVMBUS_FUZZ_CHECK(a != nullptr);
          T expected = m;
          expected.header.msg_len = T::kWireSize;  // the encoder writes the fixed size
          UVMBUS_FUZZ_CHECK(*a == expected);
        }
      },
      msg);
}

void FuzzMessage(std::span<const uint8_t> msg, wire::Direction dir) {
  (void)wire::DecodeRndisMessage(msg);
  (void)wire::RndisCompletionRequestId(msg);
  auto parsed = wire::ParseRndisMessage(msg, dir);
  if (!parsed) return;
  UVMBUS_FUZZ_CHECK(msg.size() >= 8 && MsgLen(msg) <= msg.size());
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::RndisPacket>) {
          CheckPacket(m, msg, dir);
        } else if constexpr (requires { m.info; }) {
          UVMBUS_FUZZ_CHECK(Within(m.info, msg.first(MsgLen(msg))));
          UVMBUS_FUZZ_CHECK(m.info.size() == m.fixed.info_buflen);
        } else if constexpr (std::is_same_v<T, wire::RndisIndicateStatusMessage>) {
          // Bounded by the range, not msg_len (pre-"Fe" Hyper-V, 10.2 N-m).
          UVMBUS_FUZZ_CHECK(Within(m.status_buffer, msg));
          (void)wire::LinkSpeedFromIndication(m);
        }
      },
      *parsed);
  RoundTrip(*parsed, dir);
}

void FuzzHead(std::span<const uint8_t> msg, wire::Direction dir) {
  const auto head = msg.first(msg.size() < 256 ? msg.size() : 256);
  auto full = wire::ParseRndisPacket(msg, dir);
  auto partial = wire::ParseRndisPacketHead(head, msg.size(), dir);
  if (full) CheckPacket(*full, msg, dir);
  if (!partial) return;
  UVMBUS_FUZZ_CHECK(full.has_value());
  UVMBUS_FUZZ_CHECK(std::memcmp(&partial->fixed, &full->fixed, sizeof(full->fixed)) == 0);
  UVMBUS_FUZZ_CHECK(partial->ppis == full->ppis);
  UVMBUS_FUZZ_CHECK(partial->ppi_status == full->ppi_status);
  if (!partial->frame.empty()) {
    UVMBUS_FUZZ_CHECK(Within(partial->frame, head));
    UVMBUS_FUZZ_CHECK(SameBytes(partial->frame, full->frame));
  }
}

void FuzzBatch(FuzzReader& in, wire::Direction dir) {
  const uint32_t max_messages = in.Read<uint8_t>();
  const auto bytes = in.Rest();
  wire::RndisMessageSplitter splitter(bytes, max_messages);
  uint32_t count = 0;
  while (!splitter.Done()) {
    auto piece = splitter.Next();
    if (!piece) break;
    UVMBUS_FUZZ_CHECK(++count <= max_messages);
    UVMBUS_FUZZ_CHECK(piece->size() >= 8 && Within(*piece, bytes));
    UVMBUS_FUZZ_CHECK(MsgLen(*piece) == piece->size());
    FuzzMessage(*piece, dir);
  }
}

void FuzzTxChecks(std::span<const uint8_t> msg, wire::Direction dir) {
  auto p = wire::ParseRndisPacket(msg, dir);
  if (!p) return;
  CheckPacket(*p, msg, dir);
  const auto frame_len = static_cast<uint32_t>(p->frame.size());
  if (p->ppis.lso) {
    if (wire::CheckTxLsoInfo(*p->ppis.lso, frame_len)) {
      UVMBUS_FUZZ_CHECK(wire::UnpackLsoInfo(*p->ppis.lso).mss > 0);
    }
  }
  if (p->ppis.checksum) (void)wire::CheckTxChecksumInfo(*p->ppis.checksum, frame_len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in(data, size);
  const uint8_t selector = in.Read<uint8_t>();
  const auto dir = (selector & 1) != 0 ? wire::Direction::kGuestToHost
                                       : wire::Direction::kHostToGuest;
  switch ((selector >> 1) & 3) {
    case 0:
      FuzzMessage(in.Rest(), dir);
      break;
    case 1:
      FuzzHead(in.Rest(), dir);
      break;
    case 2:
      FuzzBatch(in, dir);
      break;
    default:
      FuzzTxChecks(in.Rest(), dir);
      break;
  }
  return 0;
}
