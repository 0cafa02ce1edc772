#include "net/capture.h"

#include <fmt/format.h>

namespace uvmbus::net {

class CaptureEndpoint::CaptureQueue final : public Queue {
 public:
  CaptureQueue(Queue& inner, PcapngWriter& writer, uint32_t interface_id)
      : inner_(inner), writer_(writer), interface_id_(interface_id) {
    // Room for a full batch of standard frames, so steady-state capture does not allocate.
    scratch_.reserve(kMaxBatch * pcapng::EnhancedPacketSize(MaxFrameSizeForMtu(kDefaultMtu)));
  }

  uint32_t Send(const FrameBatch& batch) override {
    const uint32_t sent = inner_.Send(batch);
    // The caller keeps the buffers until Send returns, so the frames are still readable here.
    writer_.WriteBatch(interface_id_, PcapDirection::kOutbound, batch, sent, scratch_);
    return sent;
  }
  uint32_t Poll(RxBatch& batch) override {
    const uint32_t n = inner_.Poll(batch);
    writer_.WriteBatch(interface_id_, PcapDirection::kInbound, batch, n, scratch_);
    return n;
  }
  int wait_fd() const override { return inner_.wait_fd(); }
  bool PrepareWait() override { return inner_.PrepareWait(); }
  NetStats stats() const override { return inner_.stats(); }

 private:
  Queue& inner_;
  PcapngWriter& writer_;
  const uint32_t interface_id_;
  // Send and Poll of one queue run on the same worker thread (endpoint.h), so one buffer serves
  // both.
  std::vector<uint8_t> scratch_;
};

Expected<std::unique_ptr<CaptureEndpoint>> CaptureEndpoint::Create(
    std::unique_ptr<Endpoint> inner, std::shared_ptr<PcapngWriter> writer, std::string name) {
  if (!inner || !writer) {
    return MakeError(ErrorCode::kInvalidArgument, "capture: null endpoint or writer");
  }
  if (name.empty()) name = std::string(inner->name());
  std::vector<uint32_t> ids;
  for (uint32_t q = 0; q < inner->max_queues(); ++q) {
    auto id = writer->AddInterface(fmt::format("{}/q{}", name, q));
    if (!id) return tl::unexpected(id.error());
    ids.push_back(*id);
  }
  std::unique_ptr<CaptureEndpoint> ep(new CaptureEndpoint(std::move(inner), std::move(writer)));
  for (uint32_t q = 0; q < ep->inner_->max_queues(); ++q) {
    ep->queues_.push_back(
        std::make_unique<CaptureQueue>(ep->inner_->queue(q), *ep->writer_, ids[q]));
  }
  ep->inner_->SetLinkListener(ep.get());
  return ep;
}

CaptureEndpoint::CaptureEndpoint(std::unique_ptr<Endpoint> inner,
                                 std::shared_ptr<PcapngWriter> writer)
    : inner_(std::move(inner)), writer_(std::move(writer)) {}

CaptureEndpoint::~CaptureEndpoint() { inner_->SetLinkListener(nullptr); }

Queue& CaptureEndpoint::queue(uint32_t index) { return *queues_[index]; }

}  // namespace uvmbus::net
