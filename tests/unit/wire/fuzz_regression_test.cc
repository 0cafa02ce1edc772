// Regression tests for wire-layer findings of the fuzzers in tests/fuzz/ (docs/fuzzing.md): each
// test feeds the minimised crashing input (as bytes, exactly as the fuzzer read it) to the same
// production function and checks the fixed behaviour.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "wire/nvsp.h"

namespace uvmbus::wire {
namespace {

// nvsp_fuzzer crash-b9bbea07: a guest's SUBCHANNEL request for 0 sub-channels passed
// CheckSubchannelRequest(), whose contract (and 9.7 P14's "0 < count < max queues" in OpenVMM)
// is to refuse it. Input: selector 0x21 (guest->host, in-band, NVSP 5), limits, then the NVSP
// payload {133, op ALLOCATE, count 0}.
TEST(WireFuzzRegressionTest, SubchannelRequestForZeroSubchannelsIsRefused) {
  const std::vector<uint8_t> payload = {0x85, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  auto msg = ParseNvspMessage(payload, Direction::kGuestToHost, PacketType::kDataInband,
                              kNvspVersion5);
  ASSERT_TRUE(msg.has_value()) << msg.error();
  const auto* request = std::get_if<NvspSubchannelRequest>(&*msg);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(request->num_subchannels, 0u);

  auto status = CheckSubchannelRequest(*request, 8);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(status.error().message, "SUBCHANNEL request for 0 sub-channels");
  // One sub-channel is still fine.
  EXPECT_TRUE(CheckSubchannelRequest({.op = kNvspSubchannelOpAllocate, .num_subchannels = 1}, 8));
}

}  // namespace
}  // namespace uvmbus::wire
