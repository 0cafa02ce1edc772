// File: tools/output.cc
#include "tools/output.h"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace uvmbus::tools {
namespace {

void WriteFully(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // reader gone (EPIPE) or stdout closed: nothing useful to do
    text.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void PrintLine(std::string_view text) {
  std::string line;
  line.reserve(text.size() + 1);
  line.append(text);
  line.push_back('\n');
  WriteFully(STDOUT_FILENO, line);
}

void PrintErrorLine(std::string_view text) {
  std::string line;
  line.reserve(text.size() + 1);
  line.append(text);
  line.push_back('\n');
  WriteFully(STDERR_FILENO, line);
}

void PrintRaw(std::string_view text) { WriteFully(STDOUT_FILENO, text); }

}  // namespace uvmbus::tools
