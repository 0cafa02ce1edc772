// Encoding and validation of admin-protocol lines (tools/admin_protocol.h).
#include "tools/admin_protocol.h"

#include <gtest/gtest.h>

namespace uvmbus::tools {
namespace {

using nlohmann::json;

TEST(AdminProtocolTest, AdminSocketIsNextToTheGuestSocket) {
  EXPECT_EQ(AdminSocketPath("/run/uvmbus.sock"), "/run/uvmbus.sock.ctl");
}

TEST(AdminProtocolTest, RequestIsOneJsonLine) {
  EXPECT_EQ(EncodeAdminRequest("ls"), "{\"command\":\"ls\"}\n");
}

TEST(AdminProtocolTest, ParsesARequest) {
  auto r = ParseAdminRequest(R"({"command":"ls"})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->command, "ls");
  EXPECT_TRUE(r->args.is_object());
  EXPECT_TRUE(r->args.empty());
}

TEST(AdminProtocolTest, ParsesRequestArgs) {
  auto r = ParseAdminRequest(R"({"command":"stats","args":{"guest":"g1"}})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->args["guest"], "g1");
}

TEST(AdminProtocolTest, RejectsMalformedRequests) {
  for (const char* line : {"", "not json", "[1,2]", "{}", R"({"command":1})",
                           R"({"command":"ls","args":[]})", R"({"command":"ls")"}) {
    auto r = ParseAdminRequest(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << line;
  }
}

TEST(AdminProtocolTest, SuccessResponseRoundTrips) {
  json doc = {{"guests", json::array()}};
  const std::string line = EncodeAdminResponse(doc);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";
  auto parsed = ParseAdminResponse(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(*parsed, doc);
}

TEST(AdminProtocolTest, ErrorResponseCarriesCodeAndMessage) {
  const std::string line = EncodeAdminResponse(MakeError(ErrorCode::kNotFound, "no guest g9"));
  EXPECT_EQ(line,
            "{\"error\":{\"code\":\"not_found\",\"message\":\"no guest g9\"},\"ok\":false}\n");
  auto parsed = ParseAdminResponse(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(parsed.error().message, "no guest g9");
}

TEST(AdminProtocolTest, UnknownErrorCodeFromANewerServerIsInternal) {
  auto parsed = ParseAdminResponse(R"({"ok":false,"error":{"code":"quantum","message":"m"}})");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kInternal);
}

TEST(AdminProtocolTest, RejectsMalformedResponses) {
  for (const char* line :
       {"", "{", "[]", "{}", R"({"ok":"yes"})", R"({"ok":true})", R"({"ok":false})",
        R"({"ok":false,"error":"x"})", R"({"ok":false,"error":{"code":"io"}})"}) {
    auto r = ParseAdminResponse(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << line;
  }
}

TEST(AdminProtocolTest, EveryErrorCodeHasAWireNameThatRoundTrips) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    const auto code = static_cast<ErrorCode>(c);
    auto back = ErrorCodeFromWireName(ErrorCodeWireName(code));
    ASSERT_TRUE(back.has_value()) << c;
    EXPECT_EQ(*back, code);
  }
  EXPECT_FALSE(ErrorCodeFromWireName("nope").has_value());
}

}  // namespace
}  // namespace uvmbus::tools
