#include "net/frame.h"

#include <fmt/format.h>

namespace uvmbus::net {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<MacAddress> MacAddress::Parse(std::string_view text) {
  // Exactly "hh:hh:hh:hh:hh:hh" (or with '-'): 17 characters, one separator kind.
  if (text.size() != 17) return std::nullopt;
  const char sep = text[2];
  if (sep != ':' && sep != '-') return std::nullopt;
  MacAddress mac;
  for (size_t i = 0; i < 6; ++i) {
    const size_t at = i * 3;
    if (i > 0 && text[at - 1] != sep) return std::nullopt;
    const int hi = HexValue(text[at]);
    const int lo = HexValue(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    mac.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return mac;
}

std::string MacAddress::ToString() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                     bytes[3], bytes[4], bytes[5]);
}

std::optional<Ipv4Address> Ipv4Address::Parse(std::string_view text) {
  Ipv4Address addr;
  size_t pos = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i > 0) {
      if (pos >= text.size() || text[pos] != '.') return std::nullopt;
      ++pos;
    }
    uint32_t value = 0;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      // No leading zeros beyond a lone "0" (inet_pton's rule: "010" is ambiguous).
      if (digits == 1 && value == 0) return std::nullopt;
      value = value * 10 + static_cast<uint32_t>(text[pos] - '0');
      if (++digits > 3 || value > 255) return std::nullopt;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    addr.bytes[i] = static_cast<uint8_t>(value);
  }
  if (pos != text.size()) return std::nullopt;
  return addr;
}

std::string Ipv4Address::ToString() const {
  return fmt::format("{}.{}.{}.{}", bytes[0], bytes[1], bytes[2], bytes[3]);
}

}  // namespace uvmbus::net
