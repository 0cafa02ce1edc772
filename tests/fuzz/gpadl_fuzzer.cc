// File: tests/fuzz/gpadl_fuzzer.cc
//
// What: fuzzes the host's GPADL assembly from guest messages: a sequence of channel messages
// (input: [u8 length][payload] repeated) is parsed with ParseChannelMessage(kGuestToHost); a
// GPADL_HEADER starts a wire::GpadlAssembler, GPADL_BODY messages are routed to it by handle as
// the host does, and a complete GPADL is validated with Finish(). Invariants: the assembler
// never collects more words than range_buflen / 8, a successful Finish() yields ranges whose
// PFN counts match their byte ranges (H11-H14) and that use exactly the collected words, and a
// GPADL describable by the guest's own BuildGpadlMessages() survives a round trip through it.
// Spec: vmbus-protocol.md 2.9, 9.3 H9-H15, 9.1 G4.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "wire/channel_messages.h"
#include "wire/gpa_range.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::ErrorCode;
using uvmbus::fuzz::FuzzReader;

constexpr int kMaxMessages = 400;  // > 1 + 8190 / 28 bodies would not finish: enough to explore

std::optional<wire::ChannelMessage> NextMessage(FuzzReader& in) {
  const uint8_t len = in.Read<uint8_t>();
  auto parsed = wire::ParseChannelMessage(in.Bytes(len), wire::Direction::kGuestToHost);
  if (!parsed) return std::nullopt;
  return *parsed;
}

// Rebuilds a single page-aligned range with the guest-side builder and reassembles it.
void CheckRoundTrip(uint32_t relid, uint32_t gpadl, const wire::GpaRange& range) {
  auto messages = wire::BuildGpadlMessages(relid, gpadl, range.pfns);
  UVMBUS_FUZZ_CHECK(messages.has_value());
  UVMBUS_FUZZ_CHECK(messages->size() == wire::GpadlMessageCount(range.pfns.size()));
  std::optional<wire::GpadlAssembler> assembler;
  for (const wire::MessageBuffer& m : *messages) {
    auto parsed = wire::ParseChannelMessage(m.span(), wire::Direction::kGuestToHost);
    UVMBUS_FUZZ_CHECK(parsed.has_value());
    if (const auto* h = std::get_if<wire::GpadlHeaderMessage>(&*parsed)) {
      UVMBUS_FUZZ_CHECK(!assembler.has_value());
      assembler.emplace(*h);
    } else {
      const auto* b = std::get_if<wire::GpadlBodyMessage>(&*parsed);
      UVMBUS_FUZZ_CHECK(b != nullptr && assembler.has_value());
      UVMBUS_FUZZ_CHECK(assembler->AddBody(*b).has_value());
    }
  }
  UVMBUS_FUZZ_CHECK(assembler.has_value() && assembler->IsComplete());
  auto ranges = assembler->Finish();
  UVMBUS_FUZZ_CHECK(ranges.has_value() && ranges->size() == 1);
  UVMBUS_FUZZ_CHECK((*ranges)[0] == range);
}

void CheckFinished(const wire::GpadlAssembler& a) {
  auto ranges = a.Finish();
  if (!ranges) {
    UVMBUS_FUZZ_CHECK(ranges.error().code == ErrorCode::kMalformed);
    return;
  }
  UVMBUS_FUZZ_CHECK(ranges->size() == a.rangecount());
  size_t words = 0;
  for (const wire::GpaRange& r : *ranges) {
    UVMBUS_FUZZ_CHECK(r.byte_count > 0 && r.byte_offset <= wire::kMaxGpaRangeByteOffset);
    UVMBUS_FUZZ_CHECK(r.pfns.size() ==
                      (uint64_t{r.byte_offset} + r.byte_count + wire::kGpaPageSize - 1) /
                          wire::kGpaPageSize);
    words += 1 + r.pfns.size();
  }
  UVMBUS_FUZZ_CHECK(words == a.words_expected());
  const wire::GpaRange& first = (*ranges)[0];
  if (ranges->size() == 1 && first.byte_offset == 0 &&
      first.byte_count == first.pfns.size() * wire::kGpaPageSize &&
      first.pfns.size() <= wire::kMaxGpadlPages) {
    CheckRoundTrip(a.child_relid(), a.gpadl(), first);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzReader in(data, size);
  std::optional<wire::GpadlAssembler> assembler;
  for (int n = 0; n < kMaxMessages && !in.empty(); ++n) {
    const auto msg = NextMessage(in);
    if (!msg) continue;
    if (const auto* h = std::get_if<wire::GpadlHeaderMessage>(&*msg)) {
      assembler.emplace(*h);
      UVMBUS_FUZZ_CHECK(assembler->words_expected() <= wire::kMaxGpadlRangeWords);
      UVMBUS_FUZZ_CHECK(assembler->words_received() <= assembler->words_expected());
    } else if (const auto* b = std::get_if<wire::GpadlBodyMessage>(&*msg)) {
      if (!assembler) continue;
      const bool was_complete = assembler->IsComplete();
      auto status = assembler->AddBody(*b);
      if (b->fixed.gpadl != assembler->gpadl()) {
        UVMBUS_FUZZ_CHECK(!status && status.error().code == ErrorCode::kInvalidArgument);
      } else if (was_complete) {
        UVMBUS_FUZZ_CHECK(!status && status.error().code == ErrorCode::kProtocol);
      } else {
        UVMBUS_FUZZ_CHECK(status.has_value());
      }
      UVMBUS_FUZZ_CHECK(assembler->words_received() <= assembler->words_expected());
    } else {
      continue;
    }
    if (assembler->IsComplete()) {
      CheckFinished(*assembler);
    } else {
      auto early = assembler->Finish();
      UVMBUS_FUZZ_CHECK(!early && early.error().code == ErrorCode::kProtocol);
    }
  }
  return 0;
}
