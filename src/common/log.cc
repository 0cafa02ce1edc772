#include "common/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>

namespace uvmbus::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    case Level::kOff: return "off";
  }
  return "?";
}

}  // namespace

void SetLevel(Level level) { g_level.store(level, std::memory_order_relaxed); }
Level GetLevel() { return g_level.load(std::memory_order_relaxed); }

bool ParseLevel(std::string_view text, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError, Level::kOff}) {
    if (text == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void Write(Level level, std::string_view component, std::string_view message) {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  static const int64_t start = NowNs();
  fmt::memory_buffer line;
  if (!journald) {
    const double secs = static_cast<double>(NowNs() - start) / 1e9;
    fmt::format_to(std::back_inserter(line), "[{:10.6f}] ", secs);
  }
  fmt::format_to(std::back_inserter(line), "uvmbus[{}] {} {}: {}\n", getpid(), LevelName(level),
                 component, message);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool RateLimiter::Allow(uint64_t* suppressed) {
  const int64_t now = NowNs();
  int64_t start = window_start_ns_.load(std::memory_order_relaxed);
  if (now - start >= 1'000'000'000 &&
      window_start_ns_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
    in_window_.store(0, std::memory_order_relaxed);
  }
  if (in_window_.fetch_add(1, std::memory_order_relaxed) < burst_) {
    *suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace uvmbus::log
