// The admin socket end to end: AdminServer + AdminCall over a real Unix socket
// (tools/admin_server.h, admin_client.h, unix_socket.h).
#include "tools/admin_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "tools/admin_client.h"
#include "tools/unix_socket.h"
#include "tools_test_util.h"

namespace uvmbus::tools {
namespace {

using nlohmann::json;

Expected<json> EchoHandler(const AdminRequest& request) {
  if (request.command == "ls") return json{{"guests", json::array()}};
  if (request.command == "fail") return MakeError(ErrorCode::kUnavailable, "host is stopping");
  return MakeError(ErrorCode::kUnsupported, "unknown command '{}'", request.command);
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("u.sock.ctl");
    auto server = AdminServer::Listen(path_, EchoHandler);
    ASSERT_TRUE(server) << server.error();
    server_ = std::move(*server);
  }

  // Sends raw bytes on a fresh connection and returns everything the server writes back until
  // it closes the connection or `lines` lines arrived.
  std::string Raw(const std::string& bytes, size_t lines = 1) {
    auto fd = ConnectUnixStream(path_);
    EXPECT_TRUE(fd) << fd.error();
    if (!fd) return {};
    EXPECT_TRUE(WriteAll(fd->get(), bytes, 1000));
    std::string out;
    char buf[1024];
    while (static_cast<size_t>(std::count(out.begin(), out.end(), '\n')) < lines) {
      const ssize_t n = ::recv(fd->get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  testing::ScratchDir dir_;
  std::string path_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, AnswersARequest) {
  auto doc = AdminCall(path_, "ls");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(*doc, (json{{"guests", json::array()}}));
  EXPECT_EQ(server_->requests(), 1u);
}

TEST_F(AdminServerTest, PropagatesTheHandlersError) {
  auto doc = AdminCall(path_, "fail");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(doc.error().message, "host is stopping");
  auto unknown = AdminCall(path_, "frob");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kUnsupported);
}

TEST_F(AdminServerTest, SocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AdminServerTest, AnswersSeveralRequestsOnOneConnectionInOrder) {
  const std::string out = Raw("{\"command\":\"ls\"}\n\n{\"command\":\"fail\"}\r\n", 2);
  EXPECT_EQ(out,
            "{\"ok\":true,\"result\":{\"guests\":[]}}\n"
            "{\"error\":{\"code\":\"unavailable\",\"message\":\"host is stopping\"},"
            "\"ok\":false}\n");
}

TEST_F(AdminServerTest, AnswersAMalformedLineAndKeepsServing) {
  const std::string out = Raw("this is not json\n");
  EXPECT_NE(out.find("\"code\":\"malformed\""), std::string::npos) << out;
  EXPECT_TRUE(AdminCall(path_, "ls"));
}

TEST_F(AdminServerTest, DropsAClientWhoseRequestIsTooLong) {
  const std::string out = Raw(std::string(kMaxAdminRequestBytes + 10, 'x'));
  EXPECT_NE(out.find("request too long"), std::string::npos) << out;
  // The next request is served by the same thread after the drop was counted.
  EXPECT_TRUE(AdminCall(path_, "ls"));
  EXPECT_EQ(server_->clients_dropped(), 1u);
}

TEST_F(AdminServerTest, ASecondServerOnTheSamePathIsRefused) {
  auto second = AdminServer::Listen(path_, EchoHandler);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(AdminCall(path_, "ls")) << "the first server is unaffected";
}

TEST_F(AdminServerTest, StopRemovesTheSocketFile) {
  server_->Stop();
  struct stat st {};
  EXPECT_NE(::lstat(path_.c_str(), &st), 0);
  auto doc = AdminCall(path_, "ls");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, ErrorCode::kUnavailable);
}

TEST(AdminServerStaleTest, RemovesAStaleSocketFileAtStart) {
  testing::ScratchDir dir;
  const std::string path = dir.File("stale.ctl");
  {
    // A socket file whose owner is gone (what a SIGKILLed daemon leaves behind).
    auto fd = ListenUnixStream(path);
    ASSERT_TRUE(fd) << fd.error();
  }
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0) << "the file outlives its socket";
  auto server = AdminServer::Listen(path, EchoHandler);
  ASSERT_TRUE(server) << server.error();
  EXPECT_TRUE(AdminCall(path, "ls"));
}

TEST(AdminServerStaleTest, RefusesToReplaceAFileThatIsNotASocket) {
  testing::ScratchDir dir;
  const std::string path = dir.File("file.ctl");
  std::ofstream(path) << "precious";
  auto server = AdminServer::Listen(path, EchoHandler);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, ErrorCode::kAlreadyExists);
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST(AdminServerStaleTest, RejectsATooLongPath) {
  auto server = AdminServer::Listen("/tmp/" + std::string(200, 'p'), EchoHandler);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, ErrorCode::kInvalidArgument);
}

TEST(AdminClientTest, NobodyListeningIsUnavailable) {
  testing::ScratchDir dir;
  auto doc = AdminCall(dir.File("none.ctl"), "ls");
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, ErrorCode::kUnavailable);
}

TEST(AdminClientTest, TimesOutOnAServerThatNeverAnswers) {
  testing::ScratchDir dir;
  const std::string path = dir.File("mute.ctl");
  auto listener = ListenUnixStream(path);  // listens, never accepts or answers
  ASSERT_TRUE(listener) << listener.error();
  auto doc = AdminCall(path, "ls", /*timeout_ms=*/50);
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error().code, ErrorCode::kTimeout);
}

}  // namespace
}  // namespace uvmbus::tools
