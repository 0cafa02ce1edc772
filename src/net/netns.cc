#include "net/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

namespace uvmbus::net {
namespace {

Error NsError(std::string_view what, int err) {
  Error e = Error::FromErrno(what, err);
  if (err == EPERM || err == EACCES) e.code = ErrorCode::kPermissionDenied;
  if (err == ENOENT) e.code = ErrorCode::kNotFound;
  return e;
}

}  // namespace

Expected<NetNamespace> NetNamespace::Create() {
  // unshare() on a throw-away thread: only that thread moves to the new namespace, and the
  // descriptor it opens on /proc/thread-self/ns/net keeps the namespace alive after it exits.
  Expected<NetNamespace> result = tl::unexpected(Error{ErrorCode::kInternal, "not run"});
  std::thread helper([&result] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = tl::unexpected(NsError("unshare(CLONE_NEWNET)", errno));
      return;
    }
    UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!fd) {
      result = tl::unexpected(NsError("open /proc/thread-self/ns/net", errno));
      return;
    }
    result = NetNamespace(std::move(fd));
  });
  helper.join();
  return result;
}

Expected<NetNamespace> NetNamespace::Open(std::string_view name_or_path) {
  if (name_or_path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "empty network namespace name");
  }
  std::string path = name_or_path.find('/') != std::string_view::npos
                         ? std::string(name_or_path)
                         : "/run/netns/" + std::string(name_or_path);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return tl::unexpected(NsError("open " + path, errno));
  return NetNamespace(std::move(fd));
}

Expected<NetNamespace> NetNamespace::Clone() const {
  if (!fd_) return MakeError(ErrorCode::kInvalidArgument, "invalid network namespace handle");
  UniqueFd fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return tl::unexpected(Error::FromErrno("dup netns fd", errno));
  return NetNamespace(std::move(fd));
}

// A fresh thread per call: setns() changes only the calling thread, and a thread that has left
// the process's namespace must never run anything else (a pool thread would leak it).
Status NetNamespace::Run(const std::function<Status()>& fn) const {
  if (!fd_) return MakeError(ErrorCode::kInvalidArgument, "invalid network namespace handle");
  Status result = Ok();
  std::thread helper([&] {
    if (::setns(fd_.get(), CLONE_NEWNET) != 0) {
      result = tl::unexpected(NsError("setns(CLONE_NEWNET)", errno));
      return;
    }
    result = fn();
  });
  helper.join();
  return result;
}

Status RunInNamespace(const NetNamespace* ns, const std::function<Status()>& fn) {
  if (ns != nullptr && ns->valid()) return ns->Run(fn);
  return fn();
}

}  // namespace uvmbus::net
