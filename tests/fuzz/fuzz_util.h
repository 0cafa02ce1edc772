// File: tests/fuzz/fuzz_util.h
//
// What: helpers shared by the libFuzzer fuzzers of tests/fuzz/: a front-to-back input reader
// (so that a seed file reads as "a few selector bytes, then a message"), an invariant check that
// aborts (libFuzzer reports an abort as a crash), and the span helpers the invariants use.
// Spec: vmbus-protocol.md 9.1 G1-G3 (every fuzzer feeds peer-controlled bytes to the validating
//       parsers and checks that what they accept lies inside the input).
// Linux/OpenVMM: none (OpenVMM fuzzes its parsers with cargo-fuzz, Guide/src/dev_guide/tests/
//       fuzzing/*.md).
// Thread-safety: a FuzzReader is a plain value used by one thread.
#ifndef UVMBUS_TESTS_FUZZ_FUZZ_UTIL_H_
#define UVMBUS_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <type_traits>

namespace uvmbus::fuzz {

// Aborts with a message when an invariant does not hold. Not assert(): it must also fire in a
// build with NDEBUG.
#define UVMBUS_FUZZ_CHECK(cond)                                                             \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// Reads fixed-size values from the front of the fuzzer input; past the end every read yields
// zero bytes, so any input is usable.
class FuzzReader {
 public:
  FuzzReader(const uint8_t* data, size_t size) : rest_(data, size) {}

  // A little-endian integer (or any trivially copyable T), zero-filled past the end.
  template <typename T>
  T Read() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    const size_t n = rest_.size() < sizeof(T) ? rest_.size() : sizeof(T);
    if (n > 0) std::memcpy(&value, rest_.data(), n);
    rest_ = rest_.subspan(n);
    return value;
  }

  // Up to `n` bytes (fewer at the end of the input).
  std::span<const uint8_t> Bytes(size_t n) {
    const size_t take = rest_.size() < n ? rest_.size() : n;
    const auto out = rest_.first(take);
    rest_ = rest_.subspan(take);
    return out;
  }

  // Everything not yet read.
  std::span<const uint8_t> Rest() {
    const auto out = rest_;
    rest_ = {};
    return out;
  }

  bool empty() const { return rest_.empty(); }
  size_t remaining() const { return rest_.size(); }

 private:
  std::span<const uint8_t> rest_;
};

// True if `inner` is empty or lies entirely inside `outer` (pointer arithmetic on one object).
inline bool Within(std::span<const uint8_t> inner, std::span<const uint8_t> outer) {
  if (inner.empty()) return true;
  const auto base = reinterpret_cast<uintptr_t>(outer.data());
  const auto p = reinterpret_cast<uintptr_t>(inner.data());
  return p >= base && inner.size() <= outer.size() && p - base <= outer.size() - inner.size();
}

// Sink for TouchAll(): a volatile store the optimiser cannot drop.
inline volatile uint8_t g_touch_sink = 0;

// Reads every byte of `s` so ASan checks the whole span is addressable.
inline void TouchAll(std::span<const uint8_t> s) {
  uint8_t x = 0;
  for (uint8_t b : s) x = static_cast<uint8_t>(x ^ b);
  g_touch_sink = x;
}

}  // namespace uvmbus::fuzz

#endif  // UVMBUS_TESTS_FUZZ_FUZZ_UTIL_H_
