#include "net/endpoint.h"

namespace uvmbus::net {

void Endpoint::SetLinkListener(LinkListener* listener) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  listener_ = listener;
}

void Endpoint::NotifyLinkChange(bool up) {
  // Called under the lock so that a listener being removed (SetLinkListener(nullptr) followed by
  // its destruction) is never called after SetLinkListener returned.
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (listener_ != nullptr) listener_->OnLinkChange(up);
}

NetStats Endpoint::stats() {
  NetStats total;
  for (uint32_t i = 0; i < max_queues(); ++i) total += queue(i).stats();
  return total;
}

}  // namespace uvmbus::net
