// File: guest/request_tracker.h
//
// What: the guest's list of channel-management requests waiting for the host's answer (Linux
// vmbus_connection.chn_msg_list). A requester registers *before* posting its message, posts, then
// waits; the message path completes the oldest request that matches a response by the fields the
// spec names; a rescind fails every request of that channel and a hang-up fails all of them, so
// no waiter waits forever on a host that will not answer.
//
//   response                  matched by                       (spec 7.3 step 4, 2.3)
//   VERSION_RESPONSE          any pending INITIATE_CONTACT
//   OPENCHANNEL_RESULT        child_relid + openid
//   GPADL_CREATED             child_relid + gpadl
//   GPADL_TORNDOWN            gpadl (no relid in the message)
//   MODIFYCHANNEL_RESPONSE    child_relid
//   UNLOAD_RESPONSE           the pending UNLOAD
//
// A response that matches nothing is ignored (spec 9.2 M13): Complete() returns false and the
// caller counts it.
// Spec: vmbus-protocol.md 7.3, 9.2 M12 (rescind wakes waiters with an error), M13.
// Linux: drivers/hv/channel_mgmt.c (vmbus_onopen_result, vmbus_ongpadl_created,
//        vmbus_ongpadl_torndown, vmbus_onversion_response, vmbus_onoffer_rescind waking
//        waiting_channel), drivers/hv/connection.c (vmbus_negotiate_version).
// Thread-safety: all methods are thread-safe (one mutex; control path only).
#ifndef UVMBUS_GUEST_REQUEST_TRACKER_H_
#define UVMBUS_GUEST_REQUEST_TRACKER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "common/error.h"
#include "common/thread_annotations.h"
#include "wire/channel_messages.h"

namespace uvmbus::guest {

enum class RequestKind : uint8_t {
  kVersion,        // INITIATE_CONTACT -> VERSION_RESPONSE
  kOpenChannel,    // OPENCHANNEL -> OPENCHANNEL_RESULT
  kGpadlCreate,    // GPADL_HEADER/BODY -> GPADL_CREATED
  kGpadlTeardown,  // GPADL_TEARDOWN -> GPADL_TORNDOWN
  kModifyChannel,  // MODIFYCHANNEL -> MODIFYCHANNEL_RESPONSE (>= 5.3)
  kUnload,         // UNLOAD -> UNLOAD_RESPONSE
};

class RequestTracker {
 public:
  using Id = uint64_t;

  RequestTracker() = default;
  RequestTracker(const RequestTracker&) = delete;
  RequestTracker& operator=(const RequestTracker&) = delete;

  // Registers a request; `relid` is the channel it belongs to (0 for none) and `key` the openid
  // or GPADL handle (unused for the other kinds). Call before posting the message.
  Id Register(RequestKind kind, uint32_t relid, uint32_t key) EXCLUDES(mu_);

  // Offers a received response to the oldest matching request. Returns false if no request
  // matches (M13) or `msg` is not a response type.
  bool Complete(const wire::ChannelMessage& msg) EXCLUDES(mu_);

  // Fails every pending per-channel request of `relid` with `error` (rescind, M12). Returns the
  // number of requests woken.
  size_t FailChannel(uint32_t relid, const Error& error) EXCLUDES(mu_);
  // Fails every pending request (host gone, bus shutting down).
  size_t FailAll(const Error& error) EXCLUDES(mu_);

  // Waits until the request is completed or failed, or `timeout` passes (kTimeout), then forgets
  // it. Returns the response message.
  Expected<wire::ChannelMessage> Wait(Id id, std::chrono::nanoseconds timeout) EXCLUDES(mu_);

  // Forgets a request without waiting (posting it failed).
  void Cancel(Id id) EXCLUDES(mu_);

  // Requests currently registered.
  size_t pending() const EXCLUDES(mu_);

 private:
  struct Request {
    RequestKind kind = RequestKind::kVersion;
    uint32_t relid = 0;
    uint32_t key = 0;
    bool done = false;
    std::optional<wire::ChannelMessage> response;
    std::optional<Error> error;
  };

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Id next_id_ GUARDED_BY(mu_) = 1;
  std::map<Id, Request> requests_ GUARDED_BY(mu_);  // ordered: oldest first
};

}  // namespace uvmbus::guest

#endif  // UVMBUS_GUEST_REQUEST_TRACKER_H_
