#include "common/guid.h"

#include <sys/random.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace uvmbus {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<Guid> Guid::Parse(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') {
    text = text.substr(1, 36);
  }
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    return std::nullopt;
  }
  // Canonical text order of the 16 bytes (big-endian reading of each group).
  uint8_t canonical[16];
  size_t out = 0;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '-') {
      ++i;
      continue;
    }
    const int hi = HexValue(text[i]);
    const int lo = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
    if (hi < 0 || lo < 0 || out >= 16) return std::nullopt;
    canonical[out++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  if (out != 16) return std::nullopt;
  Guid g;
  // Data1, Data2, Data3 are little-endian on the wire; Data4 as written.
  g.bytes = {canonical[3], canonical[2], canonical[1], canonical[0], canonical[5], canonical[4],
             canonical[7], canonical[6], canonical[8], canonical[9], canonical[10], canonical[11],
             canonical[12], canonical[13], canonical[14], canonical[15]};
  return g;
}

Guid Guid::FromString(std::string_view text) {
  auto g = Parse(text);
  if (!g) {
    std::fprintf(stderr, "uvmbus: malformed GUID literal '%.*s'\n", static_cast<int>(text.size()),
                 text.data());
    std::abort();
  }
  return *g;
}

std::string Guid::ToString() const {
  const auto& b = bytes;
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}"
      "{:02x}",
      b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
      b[14], b[15]);
}

bool Guid::IsZero() const {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

Guid RandomGuid() {
  Guid g;
  size_t got = 0;
  while (got < g.bytes.size()) {
    const ssize_t n = getrandom(g.bytes.data() + got, g.bytes.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  g.bytes[7] = static_cast<uint8_t>((g.bytes[7] & 0x0F) | 0x40);  // version 4 (Data3 high nibble)
  g.bytes[8] = static_cast<uint8_t>((g.bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return g;
}

}  // namespace uvmbus
