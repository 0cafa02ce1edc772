// File: tools/sd_notify.h
//
// What: a hand-written sd_notify(3) for `uvmbus host` under systemd Type=notify: one datagram per
// state change ("READY=1", "STATUS=2 guests, 2 channels open", "STOPPING=1", "WATCHDOG=1") to the
// AF_UNIX datagram socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
// Without $NOTIFY_SOCKET every call is a no-op. systemd recommends this over linking libsystemd
// (OISF/suricata commit 34f53f8 did the same).
// Spec: none. Conventions: shared/conventions.md 2a (libsystemd skipped), 2b (daemon behaviour).
// Reference: systemd man page sd_notify(3), sd_watchdog_enabled(3) (WATCHDOG_USEC, WATCHDOG_PID).
// Thread-safety: Notify() is thread-safe (one sendto per call); construct once.
#ifndef UVMBUS_TOOLS_SD_NOTIFY_H_
#define UVMBUS_TOOLS_SD_NOTIFY_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::tools {

class SdNotifier {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. A missing or unusable $NOTIFY_SOCKET
  // gives a disabled notifier (an unusable one is reported through *warning when non-null).
  static SdNotifier FromEnvironment(std::string* warning = nullptr);
  // A notifier for an explicit socket path (tests); `watchdog` empty = no watchdog.
  static SdNotifier ForSocket(const std::string& notify_socket,
                              std::optional<std::chrono::microseconds> watchdog = std::nullopt);

  bool enabled() const { return fd_.valid(); }
  // Sends `state` (newline-separated assignments). No-op when disabled.
  // Errors: kIo (sendto failed), kInvalidArgument (empty state).
  Status Notify(std::string_view state) const;

  // How often to send WATCHDOG=1: half of $WATCHDOG_USEC, when the unit set WatchdogSec and the
  // variables are meant for this process ($WATCHDOG_PID absent or equal to getpid()).
  std::optional<std::chrono::milliseconds> watchdog_interval() const { return watchdog_interval_; }

 private:
  SdNotifier() = default;
  UniqueFd fd_;
  std::string address_;  // sun_path bytes (a leading NUL for the abstract namespace)
  std::optional<std::chrono::milliseconds> watchdog_interval_;
};

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_SD_NOTIFY_H_
