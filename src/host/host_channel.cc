// File: host/host_channel.cc — see host_channel.h.
#include "host/host_channel.h"

#include <utility>

#include "ring/ring_view.h"

namespace uvmbus::host {

Expected<std::unique_ptr<HostChannel>> HostChannel::Create(Params params) {
  if (params.partition == nullptr || params.ring_gpadl == nullptr || !params.lookup) {
    return MakeError(ErrorCode::kInvalidArgument, "channel {}: missing parameters", params.relid);
  }
  std::span<uint8_t> pages = params.ring_gpadl->pages();
  const uint64_t split = uint64_t{params.downstream_page_offset} * wire::kGpaPageSize;
  if (split == 0 || split >= pages.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "channel {}: downstream offset {} of {} pages",
                     params.relid, params.downstream_page_offset, params.ring_gpadl->page_count());
  }
  // Ring A (guest->host) starts at GPADL offset 0, ring B (host->guest) at the downstream offset
  // (spec 3.1). Both were initialised by the guest; attaching validates their indices (R1).
  auto in_view = ring::RingView::Create(pages.subspan(0, split));
  if (!in_view) return unexpected(ring::ToError(in_view.error()));
  auto out_view = ring::RingView::Create(pages.subspan(split));
  if (!out_view) return unexpected(ring::ToError(out_view.error()));
  ring::IncomingRing::Options in_options;
  in_options.max_packet_size = params.max_inbound_packet_size;
  auto inbound = ring::IncomingRing::Create(*in_view, in_options);
  if (!inbound) return unexpected(ring::ToError(inbound.error()));
  auto outbound = ring::OutgoingRing::Create(*out_view);
  if (!outbound) return unexpected(ring::ToError(outbound.error()));
  return std::unique_ptr<HostChannel>(
      new HostChannel(std::move(params), std::move(*inbound), std::move(*outbound)));
}

HostChannel::HostChannel(Params params, ring::IncomingRing inbound, ring::OutgoingRing outbound)
    : relid_(params.relid),
      sub_channel_index_(params.sub_channel_index),
      connection_id_(params.connection_id),
      class_id_(params.class_id),
      instance_id_(params.instance_id),
      userdata_(params.userdata),
      target_vp_(params.target_vp),
      partition_(params.partition),
      ring_gpadl_(std::move(params.ring_gpadl)),
      inbound_(std::move(inbound)),
      outbound_(std::move(outbound)),
      doorbell_(std::move(params.doorbell)),
      lookup_(std::move(params.lookup)) {}

HostChannel::~HostChannel() = default;

void HostChannel::SignalGuest() {
  const uint32_t vp = target_vp_.load(std::memory_order_relaxed);
  // target_vp 0xFFFFFFFF: the guest opened the channel with interrupts disabled (H21).
  if (vp == wire::kTargetVpNone) return;
  // The VP was range-checked at OPENCHANNEL/MODIFYCHANNEL; SignalGuest re-checks and fails
  // without side effects otherwise (nothing to do with the error on the data path).
  if (partition_->SignalGuest(vp, relid_)) interrupts_.Add();
}

uint64_t HostChannel::ConsumeDoorbell() {
  const uint64_t n = doorbell_.Consume();
  if (n != 0) events_.Add(n);
  return n;
}

Expected<std::shared_ptr<GpadlView>> HostChannel::Gpadl(uint32_t handle) {
  auto view = lookup_(handle);
  if (!view) return view;
  std::lock_guard lock(pins_mu_);
  pins_.push_back(*view);
  return view;
}

Expected<std::span<uint8_t>> HostChannel::GpadlSpan(uint32_t handle) {
  auto view = Gpadl(handle);
  if (!view) return unexpected(view.error());
  return (*view)->data();
}

ChannelStats HostChannel::Stats() const {
  ChannelStats s;
  s.relid = relid_;
  s.subchannel_id = sub_channel_index_;
  s.cpu = target_vp();
  const ring::RingSnapshot in = inbound_.view().Snapshot();
  const ring::RingSnapshot out = outbound_.view().Snapshot();
  s.in_mask = in.interrupt_mask;
  s.out_mask = out.interrupt_mask;
  s.read_avail = in.read_bytes_avail();
  s.write_avail = out.write_bytes_avail();
  s.pending = in.pending_send_sz;
  s.events = events_.Get();
  s.interrupts = interrupts_.Get();
  s.intr_in_full = inbound_.stats().intr_in_full.Get();
  s.intr_out_empty = outbound_.stats().intr_out_empty.Get();
  s.out_full_first = outbound_.stats().out_full_first.Get();
  s.out_full_total = outbound_.stats().out_full_total.Get();
  s.in_packets = inbound_.stats().packets.Get();
  s.out_packets = outbound_.stats().packets.Get();
  s.ring_errors = inbound_.stats().errors.Total() + outbound_.stats().errors.Total();
  return s;
}

}  // namespace uvmbus::host
