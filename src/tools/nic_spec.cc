// File: tools/nic_spec.cc
#include "tools/nic_spec.h"

#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>

namespace uvmbus::tools {
namespace {

uint64_t Fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ull;
    }
  };
  mix(a);
  mix(std::string_view("/", 1));
  mix(b);
  return h;
}

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos
                                                                  : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return out;
}

// key=value pairs; errors on a missing '=', an empty key and duplicates.
Expected<std::map<std::string, std::string>> SplitPairs(std::string_view text,
                                                        std::string_view what) {
  std::map<std::string, std::string> pairs;
  if (text.empty()) return pairs;
  for (std::string_view item : Split(text, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is not key=value", what, item);
    }
    std::string key(item.substr(0, eq));
    if (!pairs.emplace(key, std::string(item.substr(eq + 1))).second) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' given twice", what, key);
    }
  }
  return pairs;
}

Expected<bool> ParseOnOff(std::string_view key, std::string_view value) {
  if (value == "on" || value == "true" || value == "1") return true;
  if (value == "off" || value == "false" || value == "0") return false;
  return MakeError(ErrorCode::kInvalidArgument, "{}={}: expected on or off", key, value);
}

bool ValidName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e || c == ',' || c == '/') return false;
  }
  return true;
}

}  // namespace

std::string NicSpec::BackendText() const {
  switch (backend) {
    case NicBackendKind::kSwitch:
      return "switch:" + backend_name;
    case NicBackendKind::kTap:
      return "tap:" + backend_name;
    case NicBackendKind::kTapFd: {
      std::string s = "tap-fd";
      for (int fd : tap_fds) s += fmt::format(":{}", fd);
      return s;
    }
    case NicBackendKind::kLoopback:
      return "loopback";
  }
  return "?";
}

Expected<NicSpec> ParseNicSpec(std::string_view text) {
  auto pairs = SplitPairs(text, "--nic");
  if (!pairs) return unexpected(pairs.error());
  NicSpec spec;
  for (const auto& [key, value] : *pairs) {
    if (key == "guest") {
      if (!ValidName(value, 63)) {
        return MakeError(ErrorCode::kInvalidArgument, "--nic guest={}: not a guest name", value);
      }
      spec.guest = value;
    } else if (key == "id") {
      if (!ValidName(value, 15)) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "--nic id={}: 1..15 printable characters without ',' or '/'", value);
      }
      spec.id = value;
    } else if (key == "backend") {
      std::string_view v = value;
      if (v == "loopback") {
        spec.backend = NicBackendKind::kLoopback;
        spec.backend_name = "loopback";
      } else if (v.starts_with("switch:") && ValidName(v.substr(7), 31)) {
        spec.backend = NicBackendKind::kSwitch;
        spec.backend_name = std::string(v.substr(7));
      } else if (v.starts_with("tap:") && ValidName(v.substr(4), 15)) {
        spec.backend = NicBackendKind::kTap;
        spec.backend_name = std::string(v.substr(4));
      } else if (v.starts_with("tap-fd:")) {
        spec.backend = NicBackendKind::kTapFd;
        spec.backend_name.clear();
        for (std::string_view n : Split(v.substr(7), ':')) {
          int fd = -1;
          if (!ParseNumber(n, &fd) || fd < 0) {
            return MakeError(ErrorCode::kInvalidArgument,
                             "--nic backend={}: tap-fd:N[:N...] needs descriptor numbers", v);
          }
          spec.tap_fds.push_back(fd);
        }
      } else {
        return MakeError(ErrorCode::kInvalidArgument,
                         "--nic backend={}: expected switch:NAME, tap:IFNAME, tap-fd:N or "
                         "loopback",
                         v);
      }
    } else if (key == "mac") {
      auto mac = net::MacAddress::Parse(value);
      if (!mac || mac->IsMulticast() || mac->IsZero()) {
        return MakeError(ErrorCode::kInvalidArgument, "--nic mac={}: not a unicast MAC address",
                         value);
      }
      spec.mac = *mac;
    } else if (key == "queues") {
      if (!ParseNumber(value, &spec.queues) || spec.queues < 1 || spec.queues > kMaxNicQueues) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "--nic queues={}: expected 1..{} (channels: primary + sub-channels)",
                         value, kMaxNicQueues);
      }
    } else if (key == "mtu") {
      if (!ParseNumber(value, &spec.mtu) || !net::IsValidMtu(spec.mtu)) {
        return MakeError(ErrorCode::kInvalidArgument, "--nic mtu={}: expected {}..{}", value,
                         net::kMinMtu, net::kMaxMtu);
      }
    } else if (key == "pcap") {
      if (value.empty()) {
        return MakeError(ErrorCode::kInvalidArgument, "--nic pcap=: needs a file name");
      }
      spec.pcap = value;
    } else if (key == "spoof") {
      auto on = ParseOnOff(key, value);
      if (!on) return unexpected(on.error());
      spec.spoof = *on;
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--nic: unknown key '{}' (known: guest, id, backend, mac, queues, mtu, "
                       "pcap, spoof)",
                       key);
    }
  }
  if (spec.mac && spec.guest.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--nic mac=: needs guest= (every guest would get the same MAC)");
  }
  if (spec.backend == NicBackendKind::kTapFd && spec.guest.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--nic backend=tap-fd: needs guest= (descriptors serve one NIC)");
  }
  if (spec.backend == NicBackendKind::kTapFd && spec.tap_fds.size() > 1 &&
      spec.tap_fds.size() < spec.queues) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--nic: tap-fd gives {} descriptors for queues={}", spec.tap_fds.size(),
                     spec.queues);
  }
  return spec;
}

net::MacAddress GenerateMac(std::string_view guest, std::string_view id) {
  const uint64_t h = Fnv1a(guest, id);
  return net::MacAddress{{0x00, 0x15, 0x5d, static_cast<uint8_t>(h >> 16),
                          static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)}};
}

net::Ipv4Interface DefaultGuestAddress(std::string_view guest) {
  const uint64_t h = Fnv1a(guest, "addr");
  net::Ipv4Interface out;
  out.address = net::Ipv4Address{{10, 0, 0, static_cast<uint8_t>(2 + h % 253)}};
  out.prefix_length = 24;
  return out;
}

std::optional<net::Ipv4Interface> ParseCidr(std::string_view text) {
  net::Ipv4Interface out;
  const size_t slash = text.find('/');
  auto ip = net::Ipv4Address::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  out.address = *ip;
  if (slash != std::string_view::npos) {
    unsigned prefix = 0;
    if (!ParseNumber(text.substr(slash + 1), &prefix) || prefix > 32) return std::nullopt;
    out.prefix_length = static_cast<uint8_t>(prefix);
  }
  return out;
}

Expected<TapSpec> ParseTapSpec(std::string_view text) {
  TapSpec spec;
  const size_t comma = text.find(',');
  spec.ifname = std::string(text.substr(0, comma));
  if (!ValidName(spec.ifname, 15)) {
    return MakeError(ErrorCode::kInvalidArgument, "--tap {}: interface name of 1..15 characters",
                     spec.ifname);
  }
  if (comma == std::string_view::npos) return spec;
  auto pairs = SplitPairs(text.substr(comma + 1), "--tap");
  if (!pairs) return unexpected(pairs.error());
  for (const auto& [key, value] : *pairs) {
    if (key == "netns") {
      if (value.empty()) return MakeError(ErrorCode::kInvalidArgument, "--tap netns=: empty");
      spec.netns = value;
    } else if (key == "addr") {
      auto cidr = ParseCidr(value);
      if (!cidr) {
        return MakeError(ErrorCode::kInvalidArgument, "--tap addr={}: expected A.B.C.D/N", value);
      }
      spec.addr = *cidr;
    } else {
      return MakeError(ErrorCode::kInvalidArgument, "--tap: unknown key '{}' (known: netns, addr)",
                       key);
    }
  }
  return spec;
}

Expected<TrafficSpec> ParseTrafficSpec(std::string_view text) {
  auto pairs = SplitPairs(text, "--traffic");
  if (!pairs) return unexpected(pairs.error());
  TrafficSpec spec;
  auto bad = [](std::string_view key, std::string_view value, std::string_view want) {
    return MakeError(ErrorCode::kInvalidArgument, "--traffic {}={}: {}", key, value, want);
  };
  for (const auto& [key, value] : *pairs) {
    if (key == "peer") {
      if (auto mac = net::MacAddress::Parse(value); mac && !mac->IsMulticast() && !mac->IsZero()) {
        spec.peer_mac = *mac;
      } else if (auto ip = net::Ipv4Address::Parse(value)) {
        spec.peer_ip = *ip;
      } else {
        return bad(key, value, "expected a unicast MAC or an IPv4 address");
      }
    } else if (key == "frames") {
      if (!ParseNumber(value, &spec.frames) || spec.frames == 0 || spec.frames > (1ull << 32)) {
        return bad(key, value, "expected 1..4294967296");
      }
    } else if (key == "sizes") {
      const size_t dash = value.find('-');
      std::string_view lo = std::string_view(value).substr(0, dash);
      std::string_view hi =
          dash == std::string::npos ? lo : std::string_view(value).substr(dash + 1);
      if (!ParseNumber(lo, &spec.min_size)) return bad(key, value, "expected MIN-MAX or MIN-MTU");
      if (hi == "MTU" || hi == "mtu") {
        spec.max_size = 0;
      } else if (!ParseNumber(hi, &spec.max_size) || spec.max_size < spec.min_size) {
        return bad(key, value, "expected MIN-MAX with MIN <= MAX");
      }
      if (spec.min_size < net::kMinWireFrameSize || spec.max_size > net::kMaxFrameSize) {
        return bad(key, value, "frame sizes are 60..9216 bytes");
      }
    } else if (key == "flows") {
      if (!ParseNumber(value, &spec.flows) || spec.flows == 0 || spec.flows > 65535) {
        return bad(key, value, "expected 1..65535");
      }
    } else if (key == "rate") {
      if (!ParseNumber(value, &spec.rate_pps)) return bad(key, value, "expected frames/second");
    } else if (key == "timeout") {
      if (!ParseNumber(value, &spec.timeout_s) || spec.timeout_s == 0) {
        return bad(key, value, "expected seconds > 0");
      }
    } else if (key == "stay") {
      auto on = ParseOnOff(key, value);
      if (!on) return unexpected(on.error());
      spec.stay = *on;
    } else if (key == "duration") {
      if (!ParseNumber(value, &spec.duration_s) || spec.duration_s == 0) {
        return bad(key, value, "expected seconds > 0");
      }
    } else if (key == "window") {
      if (!ParseNumber(value, &spec.window) || spec.window == 0 || spec.window > 4096) {
        return bad(key, value, "expected 1..4096");
      }
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--traffic: unknown key '{}' (known: peer, frames, sizes, flows, rate, "
                       "timeout, window, stay, duration)",
                       key);
    }
  }
  if (!spec.peer_mac && !spec.peer_ip) {
    return MakeError(ErrorCode::kInvalidArgument, "--traffic: peer= is required");
  }
  return spec;
}

}  // namespace uvmbus::tools
