// File: common/log.h
//
// What: a small leveled logger on fmt, writing one line per call to stderr:
//   "uvmbus[<pid>] <level> <component>: <message>". When $JOURNAL_STREAM is set (systemd) no
// timestamp is added; otherwise a monotonic seconds stamp is. `UVMBUS_LOG_RATELIMITED` keeps a
// misbehaving peer from flooding the log (at most `burst` lines per second per call site, then
// a "suppressed N" line).
// Thread-safety: all functions are thread-safe; a line is written with a single write(2).
#ifndef UVMBUS_COMMON_LOG_H_
#define UVMBUS_COMMON_LOG_H_

#include <atomic>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace uvmbus::log {

enum class Level : uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void SetLevel(Level level);
Level GetLevel();
// Parses "debug|info|warn|error|off"; returns false on an unknown name.
bool ParseLevel(std::string_view text, Level* out);

void Write(Level level, std::string_view component, std::string_view message);

inline bool Enabled(Level level) { return level >= GetLevel(); }

template <typename... Args>
void Log(Level level, std::string_view component, fmt::format_string<Args...> format,
         Args&&... args) {
  if (!Enabled(level)) return;
  Write(level, component, fmt::format(format, std::forward<Args>(args)...));
}

// Per-call-site rate limiter (1-second windows).
class RateLimiter {
 public:
  explicit RateLimiter(uint32_t burst = 10) : burst_(burst) {}
  // Returns true if a line may be printed now; *suppressed receives the number of lines
  // dropped since the last allowed one.
  bool Allow(uint64_t* suppressed);

 private:
  uint32_t burst_;
  std::atomic<int64_t> window_start_ns_{0};
  std::atomic<uint32_t> in_window_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace uvmbus::log

#define UVMBUS_LOG_DEBUG(component, ...) \
  ::uvmbus::log::Log(::uvmbus::log::Level::kDebug, component, __VA_ARGS__)
#define UVMBUS_LOG_INFO(component, ...) \
  ::uvmbus::log::Log(::uvmbus::log::Level::kInfo, component, __VA_ARGS__)
#define UVMBUS_LOG_WARN(component, ...) \
  ::uvmbus::log::Log(::uvmbus::log::Level::kWarn, component, __VA_ARGS__)
#define UVMBUS_LOG_ERROR(component, ...) \
  ::uvmbus::log::Log(::uvmbus::log::Level::kError, component, __VA_ARGS__)

// Logs at `level` at most a burst of lines per second from this call site.
#define UVMBUS_LOG_RATELIMITED(level, component, ...)                                      \
  do {                                                                                     \
    static ::uvmbus::log::RateLimiter uvmbus_rl_;                                          \
    uint64_t uvmbus_sup_ = 0;                                                              \
    if (::uvmbus::log::Enabled(level) && uvmbus_rl_.Allow(&uvmbus_sup_)) {                 \
      if (uvmbus_sup_ != 0)                                                                \
        ::uvmbus::log::Log(level, component, "({} similar lines suppressed)", uvmbus_sup_); \
      ::uvmbus::log::Log(level, component, __VA_ARGS__);                                   \
    }                                                                                      \
  } while (0)

#endif  // UVMBUS_COMMON_LOG_H_
