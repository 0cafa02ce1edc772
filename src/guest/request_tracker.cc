// File: guest/request_tracker.cc — see request_tracker.h.
#include "guest/request_tracker.h"

#include <type_traits>
#include <variant>

namespace uvmbus::guest {
namespace {

// What a response message matches: its kind, relid (if the message carries one) and key.
struct MatchKey {
  RequestKind kind;
  bool has_relid;
  uint32_t relid;
  bool has_key;
  uint32_t key;
};

std::optional<MatchKey> KeyOf(const wire::ChannelMessage& msg) {
  return std::visit(
      [](const auto& m) -> std::optional<MatchKey> {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, wire::VersionResponse> ||
                      std::is_same_v<T, wire::VersionResponse2> ||
                      std::is_same_v<T, wire::VersionResponse3>) {
          return MatchKey{RequestKind::kVersion, false, 0, false, 0};
        } else if constexpr (std::is_same_v<T, wire::OpenChannelResult>) {
          return MatchKey{RequestKind::kOpenChannel, true, m.child_relid, true, m.openid};
        } else if constexpr (std::is_same_v<T, wire::GpadlCreated>) {
          return MatchKey{RequestKind::kGpadlCreate, true, m.child_relid, true, m.gpadl};
        } else if constexpr (std::is_same_v<T, wire::GpadlTorndown>) {
          // Linux matches GPADL_TORNDOWN by handle only: the message has no relid.
          return MatchKey{RequestKind::kGpadlTeardown, false, 0, true, m.gpadl};
        } else if constexpr (std::is_same_v<T, wire::ModifyChannelResponse>) {
          return MatchKey{RequestKind::kModifyChannel, true, m.child_relid, false, 0};
        } else if constexpr (std::is_same_v<T, wire::UnloadResponse>) {
          return MatchKey{RequestKind::kUnload, false, 0, false, 0};
        } else {
          return std::nullopt;
        }
      },
      msg);
}

bool IsPerChannel(RequestKind kind) {
  return kind == RequestKind::kOpenChannel || kind == RequestKind::kGpadlCreate ||
         kind == RequestKind::kGpadlTeardown || kind == RequestKind::kModifyChannel;
}

}  // namespace

RequestTracker::Id RequestTracker::Register(RequestKind kind, uint32_t relid, uint32_t key) {
  std::lock_guard lock(mu_);
  const Id id = next_id_++;
  Request r;
  r.kind = kind;
  r.relid = relid;
  r.key = key;
  requests_.emplace(id, std::move(r));
  return id;
}

bool RequestTracker::Complete(const wire::ChannelMessage& msg) {
  const std::optional<MatchKey> k = KeyOf(msg);
  if (!k) return false;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, r] : requests_) {
      if (r.done || r.kind != k->kind) continue;
      if (k->has_relid && r.relid != k->relid) continue;
      if (k->has_key && r.key != k->key) continue;
      r.done = true;
      r.response = msg;
      cv_.notify_all();
      return true;
    }
  }
  return false;
}

size_t RequestTracker::FailChannel(uint32_t relid, const Error& error) {
  size_t woken = 0;
  std::lock_guard lock(mu_);
  for (auto& [id, r] : requests_) {
    if (r.done || !IsPerChannel(r.kind) || r.relid != relid) continue;
    r.done = true;
    r.error = error;
    ++woken;
  }
  if (woken != 0) cv_.notify_all();
  return woken;
}

size_t RequestTracker::FailAll(const Error& error) {
  size_t woken = 0;
  std::lock_guard lock(mu_);
  for (auto& [id, r] : requests_) {
    if (r.done) continue;
    r.done = true;
    r.error = error;
    ++woken;
  }
  if (woken != 0) cv_.notify_all();
  return woken;
}

Expected<wire::ChannelMessage> RequestTracker::Wait(Id id, std::chrono::nanoseconds timeout) {
  std::unique_lock lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    return MakeError(ErrorCode::kInternal, "request {} is not registered", id);
  }
  auto pred = [&] { return requests_.at(id).done; };
  bool done = true;
  // wait_for(now + "forever") would overflow the clock: treat very long timeouts as none.
  if (timeout >= std::chrono::hours(24 * 365)) {
    cv_.wait(lock, pred);
  } else {
    done = cv_.wait_for(lock, timeout, pred);
  }
  Request r = std::move(requests_.at(id));
  requests_.erase(id);
  if (!done) return MakeError(ErrorCode::kTimeout, "no answer from the host");
  if (r.error) return unexpected(*r.error);
  return std::move(*r.response);
}

void RequestTracker::Cancel(Id id) {
  std::lock_guard lock(mu_);
  requests_.erase(id);
}

size_t RequestTracker::pending() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

}  // namespace uvmbus::guest
