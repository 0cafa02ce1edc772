// pcapng writer and the capture decorator: exact block layout, and (when installed) that tcpdump
// or tshark reads the file.
#include "net/pcapng.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "net/capture.h"
#include "net/pipe.h"
#include "net_test_util.h"

namespace uvmbus::net {
namespace {

using testing::DrainQueue;
using testing::Mac;
using testing::MakeFrame;
using testing::SendOne;

// 2023-11-14 22:13:20.123456789 UTC.
constexpr int64_t kTimeNs = 1'700'000'000'123'456'789;
constexpr uint64_t kTimeUs = 1'700'000'000'123'456;

uint32_t U32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, &b[at], 4);
  return v;
}
uint16_t U16(const std::vector<uint8_t>& b, size_t at) {
  uint16_t v;
  std::memcpy(&v, &b[at], 2);
  return v;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string TempPath(const char* tag) {
  const char* dir = getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/uvmbus_net_" + tag + "_" +
         std::to_string(getpid()) + ".pcapng";
}

// A block as read back: offset, type, total length (checked against the trailing copy).
struct Block {
  size_t at;
  uint32_t type;
  uint32_t length;
};

std::vector<Block> SplitBlocks(const std::vector<uint8_t>& file) {
  std::vector<Block> blocks;
  size_t at = 0;
  while (at + 12 <= file.size()) {
    const uint32_t type = U32(file, at);
    const uint32_t len = U32(file, at + 4);
    EXPECT_EQ(len % 4, 0u);
    EXPECT_LE(at + len, file.size());
    if (len < 12 || at + len > file.size()) break;
    EXPECT_EQ(U32(file, at + len - 4), len) << "trailing length of block at " << at;
    blocks.push_back({at, type, len});
    at += len;
  }
  EXPECT_EQ(at, file.size());
  return blocks;
}

TEST(PcapngEncodeTest, SectionHeaderLayout) {
  std::vector<uint8_t> b;
  pcapng::AppendSectionHeader(b, "uvmbus");
  ASSERT_EQ(b.size(), 44u);
  EXPECT_EQ(U32(b, 0), 0x0A0D0D0Au);
  EXPECT_EQ(U32(b, 4), 44u);
  EXPECT_EQ(U32(b, 8), 0x1A2B3C4Du);
  EXPECT_EQ(U16(b, 12), 1);  // major
  EXPECT_EQ(U16(b, 14), 0);  // minor
  EXPECT_EQ(U32(b, 16), 0xffffffffu);  // section length -1
  EXPECT_EQ(U32(b, 20), 0xffffffffu);
  EXPECT_EQ(U16(b, 24), 4);  // shb_userappl
  EXPECT_EQ(U16(b, 26), 6);
  EXPECT_EQ(std::string(b.begin() + 28, b.begin() + 34), "uvmbus");
  EXPECT_EQ(b[34], 0);  // padding
  EXPECT_EQ(b[35], 0);
  EXPECT_EQ(U32(b, 36), 0u);  // opt_endofopt
  EXPECT_EQ(U32(b, 40), 44u);
}

TEST(PcapngEncodeTest, InterfaceDescriptionLayout) {
  std::vector<uint8_t> b;
  pcapng::AppendInterfaceDescription(b, "lo/q0", 0);
  ASSERT_EQ(b.size(), 44u);
  EXPECT_EQ(U32(b, 0), 1u);
  EXPECT_EQ(U32(b, 4), 44u);
  EXPECT_EQ(U16(b, 8), 1);   // LINKTYPE_ETHERNET
  EXPECT_EQ(U16(b, 10), 0);  // reserved
  EXPECT_EQ(U32(b, 12), 0u);  // snaplen
  EXPECT_EQ(U16(b, 16), 2);  // if_name
  EXPECT_EQ(U16(b, 18), 5);
  EXPECT_EQ(std::string(b.begin() + 20, b.begin() + 25), "lo/q0");
  EXPECT_EQ(U16(b, 28), 9);  // if_tsresol
  EXPECT_EQ(U16(b, 30), 1);
  EXPECT_EQ(b[32], 6);       // 10^-6 s
  EXPECT_EQ(U32(b, 36), 0u);
  EXPECT_EQ(U32(b, 40), 44u);
}

TEST(PcapngEncodeTest, EnhancedPacketLayoutWithDirectionAndPadding) {
  std::vector<uint8_t> b;
  const auto frame = MakeFrame(Mac(1), Mac(2), 61);
  pcapng::AppendEnhancedPacket(b, 3, kTimeUs, frame, 0, PcapDirection::kOutbound);
  ASSERT_EQ(b.size(), pcapng::EnhancedPacketSize(61));
  ASSERT_EQ(b.size(), 44u + 64u);
  EXPECT_EQ(U32(b, 0), 6u);
  EXPECT_EQ(U32(b, 4), 108u);
  EXPECT_EQ(U32(b, 8), 3u);  // interface id
  EXPECT_EQ(U32(b, 12), static_cast<uint32_t>(kTimeUs >> 32));
  EXPECT_EQ(U32(b, 16), static_cast<uint32_t>(kTimeUs));
  EXPECT_EQ(U32(b, 20), 61u);  // captured
  EXPECT_EQ(U32(b, 24), 61u);  // original
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), b.begin() + 28));
  EXPECT_EQ(b[89], 0);
  EXPECT_EQ(b[90], 0);
  EXPECT_EQ(b[91], 0);
  EXPECT_EQ(U16(b, 92), 2);  // epb_flags
  EXPECT_EQ(U16(b, 94), 4);
  EXPECT_EQ(U32(b, 96), 2u);  // outbound
  EXPECT_EQ(U32(b, 100), 0u);
  EXPECT_EQ(U32(b, 104), 108u);
}

TEST(PcapngEncodeTest, SnaplenTruncatesButKeepsTheOriginalLength) {
  std::vector<uint8_t> b;
  pcapng::AppendEnhancedPacket(b, 0, 0, MakeFrame(Mac(1), Mac(2), 100), 32,
                               PcapDirection::kInbound);
  EXPECT_EQ(b.size(), 44u + 32u);
  EXPECT_EQ(U32(b, 20), 32u);
  EXPECT_EQ(U32(b, 24), 100u);
  EXPECT_EQ(U32(b, 28 + 32 + 4), 1u);  // inbound
}

// Writes a capture of a two-queue loopback: per queue, one frame out and the same frame back in.
class CaptureFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath("capture");
    clock_.SetNs(kTimeNs);
    auto writer = PcapngWriter::Open(path_, {.application = "uvmbus-test", .clock = &clock_});
    ASSERT_TRUE(writer) << writer.error();
    writer_ = *writer;
    auto lo = CreateLoopback({.name = "lo", .queues = 2});
    ASSERT_TRUE(lo);
    auto ep = CaptureEndpoint::Create(std::move(*lo), writer_);
    ASSERT_TRUE(ep) << ep.error();
    ep_ = std::move(*ep);
    frame0_ = MakeFrame(Mac(0x10), Mac(0x20), 60, 0xa0);
    frame1_ = MakeFrame(MacAddress::Broadcast(), Mac(0x20), 99, 0xa1);
    ASSERT_EQ(SendOne(ep_->queue(0), frame0_), 1u);
    clock_.AdvanceNs(1000);
    ASSERT_EQ(DrainQueue(ep_->queue(0)).size(), 1u);
    ASSERT_EQ(SendOne(ep_->queue(1), frame1_), 1u);
    ASSERT_EQ(DrainQueue(ep_->queue(1)).size(), 1u);
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  std::string path_;
  ManualClock clock_;
  std::shared_ptr<PcapngWriter> writer_;
  std::unique_ptr<CaptureEndpoint> ep_;
  std::vector<uint8_t> frame0_, frame1_;
};

TEST_F(CaptureFileTest, FileHoldsOneInterfacePerQueueAndDirectionalPackets) {
  EXPECT_EQ(writer_->packets_written(), 4u);
  EXPECT_EQ(writer_->write_errors(), 0u);
  const auto file = ReadFile(path_);
  const auto blocks = SplitBlocks(file);
  ASSERT_EQ(blocks.size(), 7u);  // SHB, 2 IDB, 4 EPB
  EXPECT_EQ(blocks[0].type, pcapng::kSectionHeaderBlock);
  EXPECT_EQ(U32(file, 8), pcapng::kByteOrderMagic);
  EXPECT_EQ(std::string(file.begin() + 28, file.begin() + 39), "uvmbus-test");
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(blocks[i].type, pcapng::kInterfaceDescriptionBlock);
    EXPECT_EQ(U16(file, blocks[i].at + 8), pcapng::kLinkTypeEthernet);
    const std::string name(file.begin() + static_cast<long>(blocks[i].at) + 20,
                           file.begin() + static_cast<long>(blocks[i].at) + 25);
    EXPECT_EQ(name, i == 1 ? "lo/q0" : "lo/q1");
  }
  struct Expect {
    uint32_t iface;
    uint32_t dir;
    uint64_t ts;
    const std::vector<uint8_t>* frame;
  };
  const Expect expect[4] = {{0, 2, kTimeUs, &frame0_},
                            {0, 1, kTimeUs + 1, &frame0_},
                            {1, 2, kTimeUs + 1, &frame1_},
                            {1, 1, kTimeUs + 1, &frame1_}};
  for (int i = 0; i < 4; ++i) {
    const Block& b = blocks[static_cast<size_t>(i) + 3];
    const Expect& e = expect[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(b.type, pcapng::kEnhancedPacketBlock);
    EXPECT_EQ(U32(file, b.at + 8), e.iface);
    const uint64_t ts = (uint64_t{U32(file, b.at + 12)} << 32) | U32(file, b.at + 16);
    EXPECT_EQ(ts, e.ts);
    const uint32_t caplen = U32(file, b.at + 20);
    ASSERT_EQ(caplen, e.frame->size());
    EXPECT_EQ(U32(file, b.at + 24), caplen);
    EXPECT_TRUE(std::equal(e.frame->begin(), e.frame->end(), file.begin() + static_cast<long>(b.at) + 28));
    const size_t opt = b.at + 28 + ((caplen + 3) & ~3u);
    EXPECT_EQ(U16(file, opt), pcapng::kOptEpbFlags);
    EXPECT_EQ(U32(file, opt + 4), e.dir);
  }
}

// Runs `cmd` and returns its stdout, or nullopt if it could not run / failed.
std::optional<std::string> RunCommand(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  if (status != 0) return std::nullopt;
  return out;
}

bool HaveTool(const char* tool) {
  return RunCommand(std::string("command -v ") + tool + " >/dev/null 2>&1").has_value();
}

size_t CountLines(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

TEST_F(CaptureFileTest, TcpdumpOrTsharkListsEveryFrame) {
  const bool tcpdump = HaveTool("tcpdump");
  const bool tshark = HaveTool("tshark");
  if (!tcpdump && !tshark) GTEST_SKIP() << "neither tcpdump nor tshark is installed";
  if (tcpdump) {
    auto out = RunCommand("tcpdump -nn -e -tt -r " + path_ + " 2>/dev/null");
    ASSERT_TRUE(out) << "tcpdump could not read the capture";
    // One summary line per frame (unknown EtherTypes are followed by a hex dump).
    EXPECT_EQ(CountLines(*out, "ethertype"), 4u) << *out;
    EXPECT_EQ(CountLines(*out, "1700000000.123456 02:00:00:00:00:20 > 02:00:00:00:00:10"), 1u)
        << *out;
    EXPECT_EQ(CountLines(*out, "1700000000.123457 02:00:00:00:00:20 > 02:00:00:00:00:10"), 1u)
        << *out;
    EXPECT_EQ(CountLines(*out, "02:00:00:00:00:20 > ff:ff:ff:ff:ff:ff"), 2u) << *out;
    EXPECT_EQ(CountLines(*out, "length 99"), 2u) << *out;
  }
  if (tshark) {
    auto out = RunCommand("tshark -r " + path_ +
                          " -T fields -e frame.interface_name -e frame.len 2>/dev/null");
    ASSERT_TRUE(out) << "tshark could not read the capture";
    EXPECT_EQ(CountLines(*out, "lo/q0\t60"), 2u) << *out;
    EXPECT_EQ(CountLines(*out, "lo/q1\t99"), 2u) << *out;
  }
}

TEST(PcapngWriterTest, FailedWriteIsCountedAndCaptureStopsQuietly) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]);
  auto w = PcapngWriter::FromFd(UniqueFd(fds[1]), {});
  ASSERT_TRUE(w);
  read_end.Reset();  // writes now fail with EPIPE
  signal(SIGPIPE, SIG_IGN);
  auto id = (*w)->AddInterface("x");
  EXPECT_FALSE(id);
  EXPECT_TRUE((*w)->failed());
  EXPECT_EQ((*w)->write_errors(), 1u);
  std::vector<uint8_t> scratch;
  FrameBatch b;
  auto f = MakeFrame(Mac(1), Mac(2));
  b.Add(f);
  (*w)->WriteBatch(0, PcapDirection::kOutbound, b, 1, scratch);  // no crash, nothing counted
  EXPECT_EQ((*w)->packets_written(), 0u);
  EXPECT_EQ((*w)->AddInterface("y").error().code, ErrorCode::kUnavailable);
}

TEST(PcapngWriterTest, OpenReportsUnwritablePaths) {
  auto w = PcapngWriter::Open("/nonexistent-dir/x.pcapng", {});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kIo);
}

TEST(CaptureEndpointTest, ForwardsLinkChangesAndControlCalls) {
  struct Recorder : LinkListener {
    std::vector<bool> seen;
    void OnLinkChange(bool up) override { seen.push_back(up); }
  } rec;
  const std::string path = TempPath("link");
  auto w = PcapngWriter::Open(path, {});
  ASSERT_TRUE(w);
  auto lo = CreateLoopback({.name = "l2", .queues = 3});
  ASSERT_TRUE(lo);
  auto ep = CaptureEndpoint::Create(std::move(*lo), *w, "nic7");
  ASSERT_TRUE(ep);
  (*ep)->SetLinkListener(&rec);
  ASSERT_TRUE((*ep)->SetLinkUp(false));
  EXPECT_FALSE((*ep)->link_up());
  ASSERT_TRUE((*ep)->SetQueueCount(2));
  EXPECT_EQ((*ep)->queue_count(), 2u);
  EXPECT_EQ((*ep)->max_queues(), 3u);
  EXPECT_EQ(rec.seen, std::vector<bool>{false});
  (*ep)->SetLinkListener(nullptr);
  EXPECT_EQ(CaptureEndpoint::Create(nullptr, *w).error().code, ErrorCode::kInvalidArgument);
  ep->reset();
  const auto file = ReadFile(path);
  EXPECT_EQ(SplitBlocks(file).size(), 4u);  // SHB + 3 IDBs named nic7/q0..2
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace uvmbus::net
