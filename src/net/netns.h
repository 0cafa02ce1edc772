// File: net/netns.h
//
// What: `NetNamespace`, a handle (an open nsfs descriptor) on a Linux network namespace, and
// `Run()`, which executes a function on a short-lived helper thread that has setns()ed into it.
// Only that helper thread changes namespace, so the caller's threads are unaffected and no
// `ip netns exec` is needed. What the function creates there stays there: a TAP device created by
// TUNSETIFF lives in the namespace of the creating thread, and a socket belongs to the namespace
// it was created in (so ioctls on it configure that namespace's interfaces).
//
// Create() makes a fresh anonymous namespace (unshare(CLONE_NEWNET) on a helper thread) that
// lives as long as any handle (or a TAP device's dup of it) is open; Open() names one made by
// `ip netns add` (/run/netns/<name>) or any nsfs path.
//
// Spec: none (host plumbing for TapEndpoint/TapFrontend).
// Linux: setns(2), unshare(2), network_namespaces(7).
// Thread-safety: a NetNamespace is an immutable value (move-only); Run() may be called from any
//       thread concurrently.
#ifndef UVMBUS_NET_NETNS_H_
#define UVMBUS_NET_NETNS_H_

#include <functional>
#include <string_view>
#include <utility>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::net {

class NetNamespace {
 public:
  NetNamespace() = default;
  explicit NetNamespace(UniqueFd fd) : fd_(std::move(fd)) {}

  // A new, empty network namespace (only a down `lo`). Needs CAP_SYS_ADMIN.
  // Errors: kPermissionDenied (EPERM), kIo.
  static Expected<NetNamespace> Create();
  // "name" opens /run/netns/<name>; a value containing '/' is used as a path.
  // Errors: kNotFound, kPermissionDenied, kIo.
  static Expected<NetNamespace> Open(std::string_view name_or_path);

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  // A second handle on the same namespace (dup).
  Expected<NetNamespace> Clone() const;

  // Runs `fn` on a helper thread inside this namespace and returns its status. Errors from
  // entering the namespace: kPermissionDenied, kIo.
  Status Run(const std::function<Status()>& fn) const;

  // Like Run() for a function producing a value.
  template <typename T>
  Expected<T> RunFor(const std::function<Expected<T>()>& fn) const {
    Expected<T> result = tl::unexpected(Error{ErrorCode::kInternal, "not run"});
    Status s = Run([&]() -> Status {
      result = fn();
      return Ok();
    });
    if (!s) return tl::unexpected(s.error());
    return result;
  }

 private:
  UniqueFd fd_;
};

// Runs `fn` inside `ns` if it is non-null and valid, else directly on the calling thread.
Status RunInNamespace(const NetNamespace* ns, const std::function<Status()>& fn);

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_NETNS_H_
