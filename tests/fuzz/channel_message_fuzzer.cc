// File: tests/fuzz/channel_message_fuzzer.cc
//
// What: fuzzes wire::ParseChannelMessage() in both directions (what a guest receives from the
// host and what the host receives from a guest). The input is the private copy of a SynIC
// message payload. Invariants on success: the parsed form fits in the input, Encode() of it
// reproduces the input's bytes of that form (header padding aside), and parsing the encoding
// gives the same encoding again (serialise(parse(x)) is a fixed point).
// Spec: vmbus-protocol.md 2.1-2.3, 9.2 M2-M5, 9.3 H2.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "fuzz_util.h"
#include "wire/channel_messages.h"

namespace {

using uvmbus::wire::ChannelMessage;
using uvmbus::wire::Direction;

// Bytes of the input that the parsed alternative stands for.
size_t FormSize(const ChannelMessage& msg) {
  return std::visit(
      [](const auto& m) -> size_t {
        using T = std::decay_t<decltype(m)>;
        if constexpr (requires { m.range_word_count; }) {
          return decltype(m.fixed)::kWireSize + size_t{m.range_word_count} * 8;
        } else {
          return T::kWireSize;
        }
      },
      msg);
}

void Check(std::span<const uint8_t> input, Direction dir) {
  auto parsed = uvmbus::wire::ParseChannelMessage(input, dir);
  if (!parsed) return;
  UVMBUS_FUZZ_CHECK(input.size() <= uvmbus::wire::kMaxChannelMessageSize);
  UVMBUS_FUZZ_CHECK(uvmbus::wire::ChannelMessageDirection(uvmbus::wire::TypeOf(*parsed)) == dir);
  const size_t form = FormSize(*parsed);
  UVMBUS_FUZZ_CHECK(form <= input.size());
  UVMBUS_FUZZ_CHECK(form >= uvmbus::wire::ChannelMessageMinSize(uvmbus::wire::TypeOf(*parsed)));

  const uvmbus::wire::MessageBuffer encoded = uvmbus::wire::Encode(*parsed);
  UVMBUS_FUZZ_CHECK(encoded.size >= form && encoded.size % 8 == 0);
  // msgtype is the same; the header's padding word is zeroed on encode.
  UVMBUS_FUZZ_CHECK(std::memcmp(encoded.bytes.data(), input.data(), 4) == 0);
  UVMBUS_FUZZ_CHECK(std::memcmp(encoded.bytes.data() + 8, input.data() + 8, form - 8) == 0);

  auto reparsed = uvmbus::wire::ParseChannelMessage(encoded.span(), dir);
  UVMBUS_FUZZ_CHECK(reparsed.has_value());
  UVMBUS_FUZZ_CHECK(reparsed->index() == parsed->index());
  const uvmbus::wire::MessageBuffer again = uvmbus::wire::Encode(*reparsed);
  UVMBUS_FUZZ_CHECK(again.size == encoded.size);
  UVMBUS_FUZZ_CHECK(std::memcmp(again.bytes.data(), encoded.bytes.data(), encoded.size) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  Check(input, Direction::kHostToGuest);
  Check(input, Direction::kGuestToHost);
  return 0;
}
