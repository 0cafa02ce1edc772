// File: net/capture.h
//
// What: `CaptureEndpoint`, a decorator that wraps any Endpoint and records every frame crossing it
// into a pcapng file (net/pcapng.h): frames the NIC sends (Queue::Send, after the inner endpoint
// consumed them) as outbound, frames delivered to the NIC (Queue::Poll) as inbound. Each queue of
// the wrapped endpoint gets its own interface (IDB) named "<name>/q<i>", so a capture of a
// multi-queue NIC shows which queue carried each frame; several NICs may share one writer (one
// file). Everything else (queues, link, stats) is forwarded unchanged.
//
// Cost when capturing: one encoding pass and one write(2) under the writer's lock per batch.
//
// Spec: none (observability; conventions.md 2c item 10 "per-NIC packet capture").
// Linux/OpenVMM: OpenVMM vm/devices/net/net_packet_capture (PacketCaptureEndpoint wraps an
//       Endpoint).
// Thread-safety: as net/endpoint.h; the shared PcapngWriter serialises the file.
#ifndef UVMBUS_NET_CAPTURE_H_
#define UVMBUS_NET_CAPTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/endpoint.h"
#include "net/pcapng.h"

namespace uvmbus::net {

class CaptureEndpoint final : public Endpoint, private LinkListener {
 public:
  // Wraps `inner` and writes one IDB per queue (max_queues()) to `writer`. `name` defaults to
  // inner->name(). Errors: kInvalidArgument (null inner/writer), the writer's errors.
  static Expected<std::unique_ptr<CaptureEndpoint>> Create(std::unique_ptr<Endpoint> inner,
                                                           std::shared_ptr<PcapngWriter> writer,
                                                           std::string name = {});
  ~CaptureEndpoint() override;

  std::string_view name() const override { return inner_->name(); }
  uint32_t max_frame_size() const override { return inner_->max_frame_size(); }
  uint32_t max_queues() const override { return inner_->max_queues(); }
  uint32_t queue_count() const override { return inner_->queue_count(); }
  Status SetQueueCount(uint32_t count) override { return inner_->SetQueueCount(count); }
  Queue& queue(uint32_t index) override;
  bool link_up() const override { return inner_->link_up(); }
  Status SetLinkUp(bool up) override { return inner_->SetLinkUp(up); }

  Endpoint& inner() { return *inner_; }
  PcapngWriter& writer() { return *writer_; }

 private:
  class CaptureQueue;
  CaptureEndpoint(std::unique_ptr<Endpoint> inner, std::shared_ptr<PcapngWriter> writer);
  void OnLinkChange(bool up) override { NotifyLinkChange(up); }

  std::unique_ptr<Endpoint> inner_;
  std::shared_ptr<PcapngWriter> writer_;
  std::vector<std::unique_ptr<CaptureQueue>> queues_;
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_CAPTURE_H_
