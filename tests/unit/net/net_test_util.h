// Helpers shared by the net/ tests: frame construction, draining queues, descriptor checks.
#ifndef UVMBUS_TESTS_UNIT_NET_NET_TEST_UTIL_H_
#define UVMBUS_TESTS_UNIT_NET_NET_TEST_UTIL_H_

#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "net/endpoint.h"
#include "net/frame.h"

namespace uvmbus::net::testing {

inline MacAddress Mac(uint8_t last) { return MacAddress{{0x02, 0x00, 0x00, 0x00, 0x00, last}}; }

// A frame of `length` bytes: dst, src, EtherType 0x88b5 (local experimental), then a payload
// whose first byte is `tag` and the rest a counting pattern.
inline std::vector<uint8_t> MakeFrame(const MacAddress& dst, const MacAddress& src,
                                      uint32_t length = 64, uint8_t tag = 0) {
  std::vector<uint8_t> f(std::max<uint32_t>(length, 14), 0);
  std::memcpy(f.data(), dst.bytes.data(), 6);
  std::memcpy(f.data() + 6, src.bytes.data(), 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (uint32_t i = 14; i < length; ++i) f[i] = static_cast<uint8_t>(i);
  if (length > 14) f[14] = tag;
  f.resize(length);  // shorter than a header: a runt
  return f;
}

// Sends one frame; returns the consumed count.
inline uint32_t SendOne(Queue& q, const std::vector<uint8_t>& frame) {
  FrameBatch b;
  b.Add(std::span<const uint8_t>(frame.data(), frame.size()));
  return q.Send(b);
}

// Polls everything pending (bounded) and returns copies of the frames.
inline std::vector<std::vector<uint8_t>> DrainQueue(Queue& q, uint32_t buffer_size = 9216) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<std::vector<uint8_t>> bufs(kMaxBatch, std::vector<uint8_t>(buffer_size));
  for (int round = 0; round < 1000; ++round) {
    RxBatch rx;
    for (auto& b : bufs) rx.Add(std::span<uint8_t>(b.data(), b.size()));
    const uint32_t n = q.Poll(rx);
    for (uint32_t i = 0; i < n; ++i) out.emplace_back(rx[i].data, rx[i].data + rx[i].length);
    if (n == 0) break;
  }
  return out;
}

inline bool FdReadable(int fd, int timeout_ms = 0) {
  struct pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace uvmbus::net::testing

#endif  // UVMBUS_TESTS_UNIT_NET_NET_TEST_UTIL_H_
