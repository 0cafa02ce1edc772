// Tests for wire/gpa_range.h: the guest's GPADL split (spec 2.9 examples) and the host's
// assembly and validation (spec 9.3 H10-H15), each violation with its exact error.
#include "wire/gpa_range.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace uvmbus::wire {
namespace {

constexpr uint32_t kRelid = 9;
constexpr uint32_t kHandle = 0xE1E10;  // Linux's first GPADL handle

std::vector<uint64_t> Pfns(size_t n, uint64_t first = 0x10000) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

template <typename T>
T ParseAs(const MessageBuffer& buf) {
  auto parsed = ParseChannelMessage(buf.span(), Direction::kGuestToHost);
  EXPECT_TRUE(parsed.has_value()) << parsed.error();
  return std::get<T>(*parsed);
}

// Feeds the guest's messages through the parser into an assembler, as a host would.
Expected<std::vector<GpaRange>> AssembleOnHost(const std::vector<MessageBuffer>& msgs) {
  GpadlAssembler assembler(ParseAs<GpadlHeaderMessage>(msgs.at(0)));
  for (size_t i = 1; i < msgs.size(); ++i) {
    EXPECT_FALSE(assembler.IsComplete()) << "complete before body " << i;
    auto status = assembler.AddBody(ParseAs<GpadlBodyMessage>(msgs[i]));
    EXPECT_TRUE(status.has_value()) << status.error();
  }
  EXPECT_TRUE(assembler.IsComplete());
  return assembler.Finish();
}

// A GPADL_HEADER carrying `words` of range data, with an explicit range_buflen / rangecount.
GpadlHeaderMessage Header(uint16_t range_buflen, uint16_t rangecount, std::vector<uint64_t> words) {
  GpadlHeaderMessage h;
  h.fixed.child_relid = kRelid;
  h.fixed.gpadl = kHandle;
  h.fixed.range_buflen = range_buflen;
  h.fixed.rangecount = rangecount;
  EXPECT_LE(words.size(), h.range_words.size());
  std::copy(words.begin(), words.end(), h.range_words.begin());
  h.range_word_count = static_cast<uint8_t>(words.size());
  return h;
}

GpadlBodyMessage Body(std::vector<uint64_t> words, uint32_t gpadl = kHandle) {
  GpadlBodyMessage b;
  b.fixed.gpadl = gpadl;
  std::copy(words.begin(), words.end(), b.range_words.begin());
  b.range_word_count = static_cast<uint8_t>(words.size());
  return b;
}

constexpr uint64_t RangeWord(uint32_t byte_count, uint32_t byte_offset) {
  return uint64_t{byte_offset} << 32 | byte_count;
}

std::string FinishError(const GpadlAssembler& a) {
  auto r = a.Finish();
  if (r.has_value()) return "(no error)";
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  return r.error().message;
}

// --- guest side: splitting --------------------------------------------------------------------

TEST(GpadlSplitTest, SpecExamplesGiveTheDocumentedMessageCounts) {
  struct Case {
    size_t pages;
    size_t bodies;
    size_t last_body_pfns;
  };
  // Spec 2.9: ring GPADL 258 pages = 1 + 9 (8x28 + 8); 16 MiB = 1 + 146 (145x28 + 10);
  // 1 044 480-byte send buffer (255 pages) = 1 + 9 (8x28 + 5).
  for (const Case& c : {Case{258, 9, 8}, Case{4096, 146, 10}, Case{255, 9, 5}}) {
    SCOPED_TRACE(c.pages);
    auto msgs = BuildGpadlMessages(kRelid, kHandle, Pfns(c.pages));
    ASSERT_TRUE(msgs.has_value()) << msgs.error();
    ASSERT_EQ(msgs->size(), 1 + c.bodies);
    EXPECT_EQ(GpadlMessageCount(c.pages), 1 + c.bodies);
    const auto header = ParseAs<GpadlHeaderMessage>(msgs->front());
    EXPECT_EQ(header.fixed.child_relid, kRelid);
    EXPECT_EQ(header.fixed.gpadl, kHandle);
    EXPECT_EQ(header.fixed.rangecount, 1);
    EXPECT_EQ(header.fixed.range_buflen, 8 + 8 * c.pages);
    EXPECT_EQ(header.range_word_count, 27);  // range header + 26 PFNs
    EXPECT_EQ(header.range_words[0], RangeWord(static_cast<uint32_t>(c.pages * 4096), 0));
    EXPECT_EQ(msgs->front().size, 240);
    for (size_t i = 1; i < msgs->size(); ++i) {
      const auto body = ParseAs<GpadlBodyMessage>((*msgs)[i]);
      EXPECT_EQ(body.fixed.gpadl, kHandle);
      EXPECT_EQ(body.fixed.msgnumber, 0u);  // as Linux
      const size_t expected = i + 1 == msgs->size() ? c.last_body_pfns : 28;
      EXPECT_EQ(body.range_word_count, expected) << "body " << i;
    }
  }
}

TEST(GpadlSplitTest, UpToTwentySixPagesFitInTheHeaderAlone) {
  auto one = BuildGpadlMessages(kRelid, kHandle, Pfns(1));
  ASSERT_TRUE(one.has_value());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->front().size, 40);  // 20 + 8 + 8 = 36, rounded up
  auto full = BuildGpadlMessages(kRelid, kHandle, Pfns(26));
  ASSERT_TRUE(full.has_value());
  ASSERT_EQ(full->size(), 1u);
  EXPECT_EQ(full->front().size, 240);  // 20 + 8 + 208 = 236, rounded up
  auto spill = BuildGpadlMessages(kRelid, kHandle, Pfns(27));
  ASSERT_TRUE(spill.has_value());
  ASSERT_EQ(spill->size(), 2u);
  EXPECT_EQ(spill->back().size, 24);  // 16 + one PFN
}

TEST(GpadlSplitTest, HeaderBytesAreExact) {
  auto msgs = BuildGpadlMessages(0x11, 0xE1E10, std::vector<uint64_t>{0xABCDE});
  ASSERT_TRUE(msgs.has_value());
  const std::vector<uint8_t> expected = {
      8,    0,    0,    0, 0, 0, 0, 0,  // GPADL_HEADER
      0x11, 0,    0,    0,              // child_relid
      0x10, 0x1E, 0x0E, 0,              // gpadl
      16,   0,    1,    0,              // range_buflen 16, rangecount 1
      0,    0x10, 0,    0, 0, 0, 0, 0,  // byte_count 4096, byte_offset 0
      0xDE, 0xBC, 0x0A, 0, 0, 0, 0, 0,  // pfn
      0,    0,    0,    0,              // zero fill to 40
  };
  EXPECT_EQ(std::vector<uint8_t>(msgs->front().bytes.begin(),
                                 msgs->front().bytes.begin() + msgs->front().size),
            expected);
}

TEST(GpadlSplitTest, RejectsEmptyAndOversizedPageLists) {
  auto empty = BuildGpadlMessages(kRelid, kHandle, {});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.error().message, "GPADL 0xe1e10 has no pages");

  auto too_big = BuildGpadlMessages(kRelid, kHandle, Pfns(kMaxGpadlPages + 1));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(too_big.error().message,
            "GPADL 0xe1e10 of 8191 pages exceeds 8190 (range_buflen is 16 bits)");

  auto largest = BuildGpadlMessages(kRelid, kHandle, Pfns(kMaxGpadlPages));
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(ParseAs<GpadlHeaderMessage>(largest->front()).fixed.range_buflen, 65528);
}

// --- round trip: guest split -> host assembly -------------------------------------------------

TEST(GpadlAssemblyTest, GuestSplitReassemblesToTheOriginalPageList) {
  for (size_t pages : {1u, 26u, 27u, 54u, 55u, 255u, 258u, 4096u, 8190u}) {
    SCOPED_TRACE(pages);
    const auto pfns = Pfns(pages, 0x7000000);
    auto msgs = BuildGpadlMessages(kRelid, kHandle, pfns);
    ASSERT_TRUE(msgs.has_value()) << msgs.error();
    auto ranges = AssembleOnHost(*msgs);
    ASSERT_TRUE(ranges.has_value()) << ranges.error();
    ASSERT_EQ(ranges->size(), 1u);
    EXPECT_EQ((*ranges)[0].byte_count, pages * 4096);
    EXPECT_EQ((*ranges)[0].byte_offset, 0u);
    EXPECT_EQ((*ranges)[0].pfns, pfns);
  }
}

TEST(GpadlAssemblyTest, ReportsIdentityAndProgress) {
  auto msgs = BuildGpadlMessages(kRelid, kHandle, Pfns(60));
  ASSERT_TRUE(msgs.has_value());
  ASSERT_EQ(msgs->size(), 3u);  // 26 + 28 + 6
  GpadlAssembler a(ParseAs<GpadlHeaderMessage>((*msgs)[0]));
  EXPECT_EQ(a.child_relid(), kRelid);
  EXPECT_EQ(a.gpadl(), kHandle);
  EXPECT_EQ(a.rangecount(), 1);
  EXPECT_EQ(a.words_expected(), 61u);
  EXPECT_EQ(a.words_received(), 27u);
  EXPECT_FALSE(a.IsComplete());
  auto early = a.Finish();
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(early.error().message, "GPADL 0xe1e10 incomplete: 27 of 61 words");
  ASSERT_TRUE(a.AddBody(ParseAs<GpadlBodyMessage>((*msgs)[1])).has_value());
  EXPECT_EQ(a.words_received(), 55u);
  ASSERT_TRUE(a.AddBody(ParseAs<GpadlBodyMessage>((*msgs)[2])).has_value());
  EXPECT_TRUE(a.IsComplete());
}

TEST(GpadlAssemblyTest, AcceptsSeveralRangesWithOffsets) {
  // Range 0: 100 bytes at 0xFC0 spans 2 pages; range 1: 8192 bytes at 0 spans 2 pages.
  GpadlAssembler a(
      Header(8 * 6, 2, {RangeWord(100, 0xFC0), 0xA, 0xB, RangeWord(8192, 0), 0xC, 0xD}));
  ASSERT_TRUE(a.IsComplete());
  auto ranges = a.Finish();
  ASSERT_TRUE(ranges.has_value()) << ranges.error();
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ((*ranges)[0], (GpaRange{100, 0xFC0, {0xA, 0xB}}));
  EXPECT_EQ((*ranges)[1], (GpaRange{8192, 0, {0xC, 0xD}}));
}

// --- H15: excess data ignored -----------------------------------------------------------------

TEST(GpadlAssemblyTest, RangeDataBeyondRangeBuflenIsIgnored) {
  // A full-size header (27 words) whose range_buflen covers only one range of one page.
  std::vector<uint64_t> words(27, 0xEEEEEEEE);
  words[0] = RangeWord(4096, 0);
  words[1] = 0x1234;
  GpadlAssembler a(Header(16, 1, words));
  EXPECT_EQ(a.words_received(), 2u);
  ASSERT_TRUE(a.IsComplete());
  auto ranges = a.Finish();
  ASSERT_TRUE(ranges.has_value()) << ranges.error();
  EXPECT_EQ((*ranges)[0].pfns, std::vector<uint64_t>{0x1234});
}

TEST(GpadlAssemblyTest, BodyDataBeyondRangeBuflenIsIgnored) {
  // range_buflen 8 + 8*27: the header brings 26 PFNs, the (full-size) body only needs one.
  std::vector<uint64_t> header_words = {RangeWord(27 * 4096, 0)};
  for (uint64_t i = 0; i < 26; ++i) header_words.push_back(i);
  GpadlAssembler a(Header(8 + 8 * 27, 1, header_words));
  ASSERT_FALSE(a.IsComplete());
  ASSERT_TRUE(a.AddBody(Body(std::vector<uint64_t>(28, 26))).has_value());
  ASSERT_TRUE(a.IsComplete());
  EXPECT_EQ(a.words_received(), 28u);
  auto ranges = a.Finish();
  ASSERT_TRUE(ranges.has_value()) << ranges.error();
  EXPECT_EQ((*ranges)[0].pfns.size(), 27u);
  EXPECT_EQ((*ranges)[0].pfns.back(), 26u);
}

TEST(GpadlAssemblyTest, RangeBuflenTailShorterThanAWordIsIgnored) {
  GpadlAssembler a(Header(16 + 7, 1, {RangeWord(4096, 0), 0x99}));
  EXPECT_EQ(a.words_expected(), 2u);
  ASSERT_TRUE(a.IsComplete());
  EXPECT_TRUE(a.Finish().has_value());
}

// --- H10: bodies for the wrong or a completed GPADL -------------------------------------------

TEST(GpadlAssemblyTest, RejectsBodiesForOtherHandlesAndAfterCompletion) {
  GpadlAssembler a(Header(24, 1, {RangeWord(8192, 0), 1}));
  auto wrong = a.AddBody(Body({2}, kHandle + 1));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(wrong.error().message, "GPADL_BODY for 0xe1e11 given to GPADL 0xe1e10");
  EXPECT_EQ(a.words_received(), 2u);

  ASSERT_TRUE(a.AddBody(Body({2})).has_value());
  ASSERT_TRUE(a.IsComplete());
  auto late = a.AddBody(Body({3}));
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(late.error().message, "GPADL_BODY for complete GPADL 0xe1e10");
}

// --- H11-H14 and structural violations --------------------------------------------------------

TEST(GpadlAssemblyTest, H11RangeWithZeroByteCountIsInvalid) {
  GpadlAssembler a(Header(16, 1, {RangeWord(0, 0), 1}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 range 0 byte_count 0");
}

TEST(GpadlAssemblyTest, H12RangeWithByteOffsetBeyondAPageIsInvalid) {
  GpadlAssembler ok(Header(24, 1, {RangeWord(4096, 0xFFF), 1, 2}));
  EXPECT_TRUE(ok.Finish().has_value());
  GpadlAssembler a(Header(24, 1, {RangeWord(4096, 0x1000), 1, 2}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 range 0 byte_offset 0x1000 > 0xfff");
  GpadlAssembler b(Header(24, 1, {RangeWord(1, 0xFFFFFFFF), 1, 2}));
  EXPECT_EQ(FinishError(b), "GPADL 0xe1e10 range 0 byte_offset 0xffffffff > 0xfff");
}

TEST(GpadlAssemblyTest, H13RangeNeedingMorePfnsThanSuppliedIsInvalid) {
  GpadlAssembler a(Header(24, 1, {RangeWord(3 * 4096, 0), 1, 2}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 range 0 needs 3 pfns, 2 present");
  // An offset pushes a one-page byte_count onto a second page.
  GpadlAssembler b(Header(16, 1, {RangeWord(4096, 1), 1}));
  EXPECT_EQ(FinishError(b), "GPADL 0xe1e10 range 0 needs 2 pfns, 1 present");
  // The largest representable range is checked against the words, not allocated.
  GpadlAssembler c(Header(16, 1, {RangeWord(0xFFFFF000, 0), 1}));
  EXPECT_EQ(FinishError(c), "GPADL 0xe1e10 range 0 needs 1048575 pfns, 1 present");
}

TEST(GpadlAssemblyTest, H14RangeWhoseEndOverflowsThirtyTwoBitsIsInvalid) {
  GpadlAssembler a(Header(16, 1, {RangeWord(0xFFFFF000, 1), 1}));
  EXPECT_EQ(FinishError(a),
            "GPADL 0xe1e10 range 0 byte_offset 0x1 + byte_count 0xfffff000 overflows");
  GpadlAssembler b(Header(16, 1, {RangeWord(0xFFFFFFFF, 0), 1}));
  EXPECT_EQ(FinishError(b),
            "GPADL 0xe1e10 range 0 byte_offset 0x0 + byte_count 0xffffffff overflows");
}

TEST(GpadlAssemblyTest, ViolationInALaterRangeNamesThatRange) {
  GpadlAssembler a(Header(32, 2, {RangeWord(4096, 0), 1, RangeWord(0, 0), 2}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 range 1 byte_count 0");
}

TEST(GpadlAssemblyTest, WordsBeyondTheLastRangeAreInvalid) {
  GpadlAssembler a(Header(24, 1, {RangeWord(4096, 0), 1, 2}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 has 1 words beyond its 1 ranges");
}

TEST(GpadlAssemblyTest, MissingRangeHeaderIsInvalid) {
  GpadlAssembler a(Header(16, 2, {RangeWord(4096, 0), 1}));
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 range 1 of 2 has no header word");
  // A hostile rangecount with almost no data fails on the data, not on rangecount.
  GpadlAssembler b(Header(16, 0xFFFF, {RangeWord(4096, 0), 1}));
  EXPECT_EQ(FinishError(b), "GPADL 0xe1e10 range 1 of 65535 has no header word");
  GpadlAssembler c(Header(0, 1, {}));
  ASSERT_TRUE(c.IsComplete());
  EXPECT_EQ(FinishError(c), "GPADL 0xe1e10 range 0 of 1 has no header word");
}

TEST(GpadlAssemblyTest, ZeroRangesIsInvalid) {
  GpadlAssembler a(Header(0, 0, {}));
  ASSERT_TRUE(a.IsComplete());
  EXPECT_EQ(FinishError(a), "GPADL 0xe1e10 has rangecount 0");
}

TEST(GpadlAssemblyTest, CapacityIsBoundedByTheSixteenBitRangeBuflen) {
  GpadlAssembler a(Header(0xFFFF, 1, {RangeWord(4096, 0)}));
  EXPECT_EQ(a.words_expected(), kMaxGpadlRangeWords);
  EXPECT_EQ(kMaxGpadlRangeWords, 8191u);
}

TEST(GpadlAssemblyTest, ArbitraryRangeDataNeverCrashes) {
  // Deterministic random headers/bodies (small page counts so some validate); ASan/UBSan watch.
  std::mt19937_64 rng(777);
  size_t valid = 0;
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint64_t> words(rng() % 28);
    for (auto& w : words) w = rng();
    if (!words.empty() && i % 2 == 0) {
      words[0] = RangeWord(static_cast<uint32_t>(rng() % (5 * 4096)),
                           static_cast<uint32_t>(rng() % 0x1100));
    }
    const auto buflen = static_cast<uint16_t>(i % 3 == 0 ? rng() : 8 * (rng() % 40));
    GpadlAssembler a(Header(buflen, static_cast<uint16_t>(rng() % 4), words));
    for (int body = 0; body < 3 && !a.IsComplete(); ++body) {
      std::vector<uint64_t> more(rng() % 29);
      for (auto& w : more) w = rng() % 64;
      ASSERT_TRUE(a.AddBody(Body(more)).has_value());
    }
    auto ranges = a.Finish();
    if (ranges.has_value()) {
      ++valid;
      for (const auto& r : *ranges) {
        EXPECT_GT(r.byte_count, 0u);
        EXPECT_LE(r.byte_offset, 0xFFFu);
        EXPECT_EQ(r.pfns.size(), (uint64_t{r.byte_offset} + r.byte_count + 4095) / 4096);
      }
    }
  }
  EXPECT_GT(valid, 0u);
}

}  // namespace
}  // namespace uvmbus::wire
