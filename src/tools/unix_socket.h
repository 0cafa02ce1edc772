// File: tools/unix_socket.h
//
// What: small helpers for the admin socket and the demo: a listening AF_UNIX SOCK_STREAM socket
// with the daemon conventions (stale file removed, mode 0600 set before listen()), a connecting
// one, and a bounded "write all" with a deadline.
// Spec: none. Conventions: shared/conventions.md 2b (daemon behaviour, iceoryx issue #113).
// Thread-safety: free functions, no shared state.
#ifndef UVMBUS_TOOLS_UNIX_SOCKET_H_
#define UVMBUS_TOOLS_UNIX_SOCKET_H_

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace uvmbus::tools {

// Removes `path` if it is a socket file nobody listens on (connect() is refused). Nothing to do
// if it does not exist. Errors: kAlreadyExists (a live listener answers, or the path exists and
// is not a socket), kInvalidArgument (path too long), kIo.
Status RemoveStaleSocket(const std::string& path);

// RemoveStaleSocket, then socket/bind/chmod 0600/listen. The fd is close-on-exec and
// non-blocking. Errors: as RemoveStaleSocket, plus kIo.
Expected<UniqueFd> ListenUnixStream(const std::string& path, int backlog = 16);

// Connects to `path` (blocking connect; the fd is close-on-exec and blocking).
// Errors: kUnavailable (no such file, nobody listening: ENOENT/ECONNREFUSED), kPermissionDenied,
// kInvalidArgument (path too long), kIo.
Expected<UniqueFd> ConnectUnixStream(const std::string& path);

// Writes all of `data` to a stream socket, waiting at most `timeout_ms` in total for room.
// Never raises SIGPIPE. Errors: kTimeout, kUnavailable (peer closed), kIo.
Status WriteAll(int fd, std::string_view data, int timeout_ms);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_UNIX_SOCKET_H_
