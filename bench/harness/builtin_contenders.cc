#include "bench/harness/builtin_contenders.h"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace uvmbus::bench {

std::string FormatSize(uint64_t bytes) {
  if (bytes >= (1u << 30) && bytes % (1u << 30) == 0) return fmt::format("{}GiB", bytes >> 30);
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format("{}MiB", bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return fmt::format("{}KiB", bytes >> 10);
  return fmt::format("{}B", bytes);
}

std::string FindExecutable(const std::string& name) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    // An empty PATH entry means the current directory.
    std::string candidate = dir.empty() ? std::string(".") : std::string(dir);
    candidate += '/';
    candidate += name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return {};
}

std::vector<std::unique_ptr<Contender>> MakeBuiltinContenders(const BuiltinOptions& options) {
  std::vector<std::unique_ptr<Contender>> out;
  for (uint32_t f : options.raw_ring_footprints) {
    out.push_back(MakeRawRingContender({.footprint_bytes = f, .batch = options.raw_ring_batch}));
  }
  for (uint32_t d : options.vmbus_ring_sizes) {
    out.push_back(MakeVmbusRingContender({.data_bytes = d, .batch = options.vmbus_ring_batch}));
  }
  out.push_back(MakeUnixDgramContender(options.unix_socket));
  out.push_back(MakeMemifContender(options.memif));
  if (options.pingpong) out.push_back(MakePingPongContender());
  return out;
}

}  // namespace uvmbus::bench
