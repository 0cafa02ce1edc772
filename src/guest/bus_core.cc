// File: guest/bus_core.cc — see bus_core.h.
#include "guest/bus_core.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "common/log.h"

namespace uvmbus::guest {

void BusStats::ForEach(const std::function<void(std::string_view, uint64_t)>& fn) const {
  const std::pair<std::string_view, const Counter*> all[] = {
      {"messages_received", &messages_received},
      {"msg_not_vmbus", &msg_not_vmbus},
      {"msg_bad_payload_size", &msg_bad_payload_size},
      {"msg_too_short", &msg_too_short},
      {"msg_bad_type", &msg_bad_type},
      {"msg_wrong_direction", &msg_wrong_direction},
      {"msg_malformed", &msg_malformed},
      {"msg_unhandled", &msg_unhandled},
      {"msg_unexpected", &msg_unexpected},
      {"eoms", &eoms},
      {"responses_unmatched", &responses_unmatched},
      {"offers", &offers},
      {"subchannel_offers", &subchannel_offers},
      {"offer_bad_relid", &offer_bad_relid},
      {"offer_relid_in_use", &offer_relid_in_use},
      {"offer_duplicate", &offer_duplicate},
      {"offer_confidential", &offer_confidential},
      {"rescinds", &rescinds},
      {"rescind_unknown", &rescind_unknown},
      {"rescind_duplicate", &rescind_duplicate},
      {"relids_released", &relids_released},
      {"probes", &probes},
      {"probe_failures", &probe_failures},
      {"no_driver", &no_driver},
      {"removes", &removes},
      {"posts", &posts},
      {"post_retries", &post_retries},
      {"post_failures", &post_failures},
      {"version_refused", &version_refused},
      {"version_no_port", &version_no_port},
      {"gpadls_created", &gpadls_created},
      {"gpadl_failures", &gpadl_failures},
      {"gpadls_torn_down", &gpadls_torn_down},
      {"pages_leaked", &pages_leaked},
  };
  for (const auto& [name, counter] : all) fn(name, counter->Get());
}

bool RelidTable::Publish(uint32_t relid, Channel* channel) {
  if (relid >= wire::kMaxChannelRelids || channel == nullptr) return false;
  Channel* expected = nullptr;
  // Release: the ISR's acquire load sees a fully constructed channel.
  return slots_[relid].compare_exchange_strong(expected, channel, std::memory_order_acq_rel,
                                               std::memory_order_acquire);
}

void RelidTable::Unpublish(uint32_t relid, Channel* channel) {
  if (relid >= wire::kMaxChannelRelids) return;
  Channel* expected = channel;
  slots_[relid].compare_exchange_strong(expected, nullptr, std::memory_order_seq_cst);
}

BusCore::BusCore(partition::GuestPartition& partition, const BusOptions& options)
    : partition_(partition),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : &SteadyClock::Instance()) {}

BusCore::~BusCore() = default;

void BusCore::CreateVcpus(VcpuThread::Handler* handler) {
  const uint32_t n = partition_.vcpu_count();
  vcpus_.reserve(n);
  for (uint32_t v = 0; v < n; ++v) {
    vcpus_.push_back(std::make_unique<VcpuThread>(partition_, v, handler));
  }
}

bool BusCore::OnVcpuThread() const {
  VcpuThread* current = VcpuThread::Current();
  if (current == nullptr) return false;
  return std::any_of(vcpus_.begin(), vcpus_.end(),
                     [&](const auto& v) { return v.get() == current; });
}

void BusCore::SynchronizeVcpus() {
  for (auto& v : vcpus_) v->WaitQuiescent();
}

namespace {
bool IsTransient(wire::HvStatus status) {
  return status == wire::HvStatus::kInsufficientMemory ||
         status == wire::HvStatus::kInsufficientBuffers;
}
}  // namespace

wire::HvStatus BusCore::PostRaw(std::span<const uint8_t> message, uint32_t connection_id,
                                bool initiate_contact) {
  auto delay = options_.post_initial_delay;
  const uint32_t attempts = std::max<uint32_t>(options_.post_max_attempts, 1);
  wire::HvStatus status = wire::HvStatus::kSuccess;
  for (uint32_t attempt = 1;; ++attempt) {
    status = partition_.PostMessage(connection_id, wire::kHvMsgVmbus, message);
    if (status == wire::HvStatus::kSuccess) {
      stats_.posts.Add();
      return status;
    }
    bool retry = false;
    if (status == wire::HvStatus::kInvalidConnectionId) {
      // On INITIATE_CONTACT this means "no such port": an old host asked on connection 4 (M18).
      // Otherwise Linux treats it as transient (-EAGAIN).
      retry = !initiate_contact;
    } else if (IsTransient(status)) {
      retry = true;
    }
    if (!retry || attempt >= attempts || !partition_.connected()) break;
    stats_.post_retries.Add();
    std::this_thread::sleep_for(delay);
    // Linux doubles the delay for the first 21 retries.
    if (attempt < 22) delay = std::min(delay * 2, options_.post_max_delay);
  }
  stats_.post_failures.Add();
  return status;
}

Status BusCore::Post(const wire::MessageBuffer& message) {
  const wire::HvStatus status =
      PostRaw(message.span(), msg_conn_id_.load(std::memory_order_acquire), false);
  if (status == wire::HvStatus::kSuccess) return Ok();
  wire::ChannelMessageHeader header;
  std::memcpy(&header, message.bytes.data(), sizeof(header));
  return MakeError(ErrorCode::kUnavailable, "PostMessage({}) failed: {}",
                   wire::ChannelMessageName(header.msgtype), wire::HvStatusName(status));
}

Expected<wire::ChannelMessage> BusCore::Request(RequestKind kind, uint32_t relid, uint32_t key,
                                                std::span<const wire::MessageBuffer> messages,
                                                const std::atomic<bool>* rescinded,
                                                std::optional<std::chrono::nanoseconds> timeout) {
  const RequestTracker::Id id = requests_.Register(kind, relid, key);
  // After registering: a rescind that set the flag before this load is seen here; one that sets
  // it later finds the registered request and fails it (M12).
  if (rescinded != nullptr && rescinded->load(std::memory_order_seq_cst)) {
    requests_.Cancel(id);
    return MakeError(ErrorCode::kUnavailable, "channel {} was rescinded", relid);
  }
  if (!connected()) {
    requests_.Cancel(id);
    return MakeError(ErrorCode::kUnavailable, "VMBus is not connected");
  }
  for (const auto& m : messages) {
    if (Status st = Post(m); !st) {
      requests_.Cancel(id);
      return unexpected(st.error());
    }
  }
  return requests_.Wait(id, timeout.value_or(options_.response_timeout));
}

}  // namespace uvmbus::guest
