// File: devices/netvsc/rndis_filter.cc
//
// The RNDIS layer of NetvscDevice (Linux drivers/net/hyperv/rndis_filter.c): control requests
// (INITIALIZE, QUERY, SET, HALT) sent as GPA-direct SEND_RNDIS_PKT with channel_type 1, their
// completions and the host's status indications arriving through the receive buffer, data
// PACKET_MSGs with their PPIs (and RSC fragments), offloads, RSS and the sub-channel handshake.
// See netvsc_device.h.
#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "devices/netvsc/netvsc_device.h"

namespace uvmbus::netvsc {
namespace {

constexpr std::string_view kLog = "netvsc";
constexpr uint32_t kNvspSuccess = static_cast<uint32_t>(wire::NvspStatus::kSuccess);
constexpr uint32_t kNvspFail = static_cast<uint32_t>(wire::NvspStatus::kFail);
// Bytes of a received message copied privately before its header and PPIs are parsed (every
// known host keeps header + PPIs within 256 bytes; wire::ParseRndisPacketHead).
constexpr size_t kHeadCopy = 256;

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// OID_GEN_FRIENDLY_NAME is UCS-2; keep ASCII, replace the rest, stop at NUL.
std::string Ucs2ToString(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t i = 0; i + 1 < bytes.size() && out.size() < wire::kNdisFriendlyNameMaxChars; i += 2) {
    const uint16_t c = static_cast<uint16_t>(bytes[i] | (bytes[i + 1] << 8));
    if (c == 0) break;
    out.push_back(c < 0x80 ? static_cast<char>(c) : '?');
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Requests

Expected<std::vector<uint8_t>> NetvscDevice::RndisRequest(std::span<const uint8_t> message,
                                                          uint32_t request_id) {
  std::lock_guard control(control_mu_);
  if (message.size() > 4096) {
    return MakeError(ErrorCode::kInvalidArgument, "RNDIS request of {} bytes", message.size());
  }
  auto slot = AcquireControlBuffer();
  if (!slot) return tl::unexpected(slot.error());
  uint8_t* page = control_run_.bytes().data() + size_t{*slot} * 4096;
  std::memcpy(page, message.data(), message.size());
  if (request_id != 0) {
    std::lock_guard lock(waiter_mu_);
    waiter_ = Waiter{};
    waiter_.kind = Waiter::Kind::kRndis;
    waiter_.request_id = request_id;
  }

  // RNDIS control messages always go by GPA-direct, never through a send section (spec 5.6,
  // 10.2 N-p): one range covering the message in its control page.
  Queue& q = *queues_[0];
  bool signal = false;
  Status sent = Ok();
  {
    std::lock_guard lock(q.out_mu);
    if (!q.open) {
      sent = MakeError(ErrorCode::kUnavailable, "netvsc: primary channel not open");
    } else {
      RequestCookie cookie;
      cookie.kind = RequestKind::kRndisControl;
      cookie.bounce = static_cast<uint16_t>(*slot);
      cookie.sequence = request_id;
      const uint64_t trans_id = q.requestor->Allocate(cookie);
      const uint64_t pfn = control_run_.gpn() + *slot;
      const std::array<wire::GpaDirectRangeRef, 1> ranges = {wire::GpaDirectRangeRef{
          static_cast<uint32_t>(message.size()), 0, std::span<const uint64_t>(&pfn, 1)}};
      wire::NvspSendRndisPacket m;
      m.channel_type = wire::kNvspRndisChannelControl;
      m.send_buf_section_index = wire::kNvspNoSendSection;
      m.send_buf_section_size = 0;
      std::array<uint8_t, wire::kNvspLinuxMessageSize> nvsp{};
      (void)wire::EncodeNvsp(std::span<uint8_t>(nvsp), m, nvsp.size());
      std::array<uint8_t, 128> header{};
      auto header_len = wire::EncodeGpaDirectHeader(header, ranges, nvsp.size(), trans_id);
      ring::OutgoingRing& out = q.channel->outbound();
      ring::WriteCursor cursor = out.BeginWrite();
      ring::WriteResult r;
      if (trans_id != 0 && header_len) {
        r = out.Write(cursor, std::span<const uint8_t>(header.data(), *header_len), nvsp);
      } else {
        r.status = ring::WriteStatus::kInvalid;
      }
      if (!r.ok()) {
        if (trans_id != 0) q.requestor->Cancel(trans_id);
        sent = MakeError(ErrorCode::kUnavailable, "netvsc: cannot send RNDIS request: {}",
                         trans_id == 0 ? "request table full" : ring::RingErrorName(r.error));
      } else {
        signal = out.CommitWrite(cursor).needs_signal;
      }
    }
  }
  if (!sent) {
    ReleaseControlBuffer(*slot);
    std::lock_guard lock(waiter_mu_);
    waiter_ = Waiter{};
    return tl::unexpected(sent.error());
  }
  if (signal) q.channel->SignalHost();
  if (request_id == 0) return std::vector<uint8_t>{};  // HALT: no reply

  std::unique_lock lock(waiter_mu_);
  const auto deadline = std::chrono::steady_clock::now() + config_.control_timeout;
  while (!waiter_.done) {
    if (Dead()) {
      waiter_ = Waiter{};
      return MakeError(ErrorCode::kUnavailable, "netvsc: device gone during RNDIS request {}",
                       request_id);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      waiter_ = Waiter{};
      return MakeError(ErrorCode::kTimeout, "netvsc: no answer to RNDIS request {}", request_id);
    }
    waiter_cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
  const bool overflow = waiter_.overflow;
  std::vector<uint8_t> response = std::move(waiter_.response);
  waiter_ = Waiter{};
  if (overflow) {
    // D19: Linux completes the request with RNDIS_STATUS_BUFFER_OVERFLOW.
    return MakeError(ErrorCode::kMalformed, "RNDIS request {}: completion too long (BUFFER_OVERFLOW)",
                     request_id);
  }
  return response;
}

Expected<std::vector<uint8_t>> NetvscDevice::RndisQuery(wire::NdisOid oid,
                                                        std::span<const uint8_t> input) {
  const uint32_t id = NextRequestId();
  std::vector<uint8_t> buf(wire::RndisQueryRequest::kWireSize + input.size());
  auto n = wire::EncodeRndisQuery(buf, id, oid, input);
  if (!n) return tl::unexpected(n.error());
  auto response = RndisRequest(std::span<const uint8_t>(buf.data(), *n), id);
  if (!response) return tl::unexpected(response.error());
  auto msg = wire::ParseRndisMessage(*response, wire::Direction::kHostToGuest);
  const auto* qc = msg ? std::get_if<wire::RndisQueryCompleteMessage>(&*msg) : nullptr;
  if (qc == nullptr) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kMalformed, "{}: answer is not a QUERY_CMPLT", wire::NdisOidName(oid));
  }
  if (qc->fixed.status != wire::RndisStatus::kSuccess) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kProtocol, "{}: query failed with {} ({:#x})", wire::NdisOidName(oid),
                     wire::RndisStatusName(qc->fixed.status),
                     static_cast<uint32_t>(qc->fixed.status));
  }
  return std::vector<uint8_t>(qc->info.begin(), qc->info.end());
}

Status NetvscDevice::RndisSet(wire::NdisOid oid, std::span<const uint8_t> info) {
  const uint32_t id = NextRequestId();
  std::vector<uint8_t> buf(wire::RndisSetRequest::kWireSize + info.size());
  auto n = wire::EncodeRndisSet(buf, id, oid, info);
  if (!n) return tl::unexpected(n.error());
  auto response = RndisRequest(std::span<const uint8_t>(buf.data(), *n), id);
  if (!response) return tl::unexpected(response.error());
  auto msg = wire::ParseRndisMessage(*response, wire::Direction::kHostToGuest);
  const auto* sc = msg ? std::get_if<wire::RndisSetComplete>(&*msg) : nullptr;
  if (sc == nullptr) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kMalformed, "{}: answer is not a SET_CMPLT", wire::NdisOidName(oid));
  }
  if (sc->status != wire::RndisStatus::kSuccess) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kProtocol, "{}: set failed with {} ({:#x})", wire::NdisOidName(oid),
                     wire::RndisStatusName(sc->status), static_cast<uint32_t>(sc->status));
  }
  return Ok();
}

Status NetvscDevice::RndisInitialize() {
  // rndis_filter_init_device. Incoming RNDIS messages are accepted from now on (Linux
  // RNDIS_DEV_INITIALIZING), so the INITIALIZE_CMPLT is not refused as D16.
  rndis_initialized_.store(true, std::memory_order_release);
  wire::RndisInitializeRequest req;
  req.request_id = NextRequestId();
  std::array<uint8_t, wire::RndisInitializeRequest::kWireSize> buf{};
  auto n = wire::EncodeRndis(std::span<uint8_t>(buf), req);
  if (!n) return tl::unexpected(n.error());
  auto response = RndisRequest(buf, req.request_id);
  if (!response) return tl::unexpected(response.error());
  auto msg = wire::ParseRndisMessage(*response, wire::Direction::kHostToGuest);
  const auto* init = msg ? std::get_if<wire::RndisInitializeComplete>(&*msg) : nullptr;
  if (init == nullptr) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kMalformed, "RNDIS INITIALIZE: answer is not an INITIALIZE_CMPLT");
  }
  if (init->status != wire::RndisStatus::kSuccess) {  // D26
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kProtocol, "RNDIS INITIALIZE refused: {} ({:#x})",
                     wire::RndisStatusName(init->status), static_cast<uint32_t>(init->status));
  }
  // D27: Linux uses these unchecked; clamp (alignment 1..4096, at least one packet).
  max_pkt_ = wire::RndisMaxPacketsPerMessage(init->max_packets_per_message);
  pkt_align_ = wire::RndisPacketAlignment(init->packet_alignment_factor);
  return Ok();
}

Status NetvscDevice::SetHardwareCapabilities() {
  // rndis_netdev_set_hwcaps (spec 6.8): query what the host can offload, then enable what Linux
  // enables.
  const uint32_t version = nvsp_version();
  const wire::NdisObjectHeader query_header = wire::NdisOffloadQueryHeader(version);
  std::vector<uint8_t> input(query_header.size, 0);
  std::memcpy(input.data(), &query_header, sizeof(query_header));
  auto info = RndisQuery(wire::NdisOid::kTcpOffloadHardwareCapabilities, input);
  if (!info) return tl::unexpected(info.error());
  auto caps = wire::ParseNdisOffload(*info);  // D24
  if (!caps) {
    stats_.rndis_query_failed.Add();
    return tl::unexpected(caps.error());
  }
  hwcaps_ = *caps;

  wire::NdisOffloadParams p;
  p.header = {wire::kNdisObjectTypeDefault, 3,
              version >= wire::kNvspVersion5 ? wire::kNdisOffloadParamsSizeRev3
                                             : wire::kNdisOffloadParamsSizeRev2};
  p.ip_v4_csum = wire::kOffloadParamCsumTxRxDisabled;  // Linux computes IPv4 header checksums
  const uint32_t tcp_with_options = wire::kNdisTxCsumTcp | wire::kNdisTxCsumTcpOptions;
  if ((hwcaps_.csum.ip4_txcsum & tcp_with_options) == tcp_with_options) {
    p.tcp_ip_v4_csum = wire::kOffloadParamCsumTxRxEnabled;
    if ((hwcaps_.lsov2.ip4_encap & wire::kNdisEncap802_3) != 0) {
      p.lso_v2_ipv4 = wire::kOffloadParamLsoEnabled;
    }
    if ((hwcaps_.csum.ip4_txcsum & wire::kNdisTxCsumUdp) != 0) {
      p.udp_ip_v4_csum = wire::kOffloadParamCsumTxRxEnabled;
    }
  }
  const uint32_t tcp6 = tcp_with_options | wire::kNdisTxCsumIpOptions;
  if ((hwcaps_.csum.ip6_txcsum & tcp6) == tcp6) {
    p.tcp_ip_v6_csum = wire::kOffloadParamCsumTxRxEnabled;
    const uint32_t ip6_opts = wire::kNdisLsoV2Ip6ExtHeaders | wire::kNdisLsoV2Ip6TcpOptions;
    if ((hwcaps_.lsov2.ip6_encap & wire::kNdisEncap802_3) != 0 &&
        (hwcaps_.lsov2.ip6_opts & ip6_opts) == ip6_opts) {
      p.lso_v2_ipv6 = wire::kOffloadParamLsoEnabled;
    }
    if ((hwcaps_.csum.ip6_txcsum & wire::kNdisTxCsumUdp) != 0) {
      p.udp_ip_v6_csum = wire::kOffloadParamCsumTxRxEnabled;
    }
  }
  if (hwcaps_.rsc.ip4 != 0 && hwcaps_.rsc.ip6 != 0) {
    const uint8_t rsc = config_.lro ? wire::kOffloadParamRscEnabled : wire::kOffloadParamRscDisabled;
    p.rsc_ip_v4 = rsc;
    p.rsc_ip_v6 = rsc;
  }
  if (version <= wire::kNvspVersion4) {
    // Linux never asks older hosts for UDP checksum offload.
    p.udp_ip_v4_csum = 0;
    p.udp_ip_v6_csum = 0;
  }
  offload_params_ = p;
  std::array<uint8_t, sizeof(wire::NdisOffloadParams)> buf{};
  auto n = wire::EncodeNdisObject(std::span<uint8_t>(buf), p);
  if (!n) return tl::unexpected(n.error());
  return RndisSet(wire::NdisOid::kTcpOffloadParameters, std::span<const uint8_t>(buf.data(), *n));
}

Status NetvscDevice::SetRssParameters(uint16_t flag) {
  // rndis_set_rss_param_msg: 40-byte object, 128-entry table at 40, 40-byte key at 552.
  std::array<uint8_t, 40 + kRssTableSize * 4 + wire::kToeplitzKeySize> info{};
  auto n = wire::EncodeRssParameters(info, flag, wire::kNdisHashInfoLinux, rx_table_,
                                     config_.rss_key);
  if (!n) return tl::unexpected(n.error());
  return RndisSet(wire::NdisOid::kGenReceiveScaleParameters,
                  std::span<const uint8_t>(info.data(), *n));
}

// ---------------------------------------------------------------------------------------------
// Bring-up after NVSP (rndis_filter_device_add, spec 5.7 steps 3.2-3.11)

Status NetvscDevice::RndisDeviceAdd() {
  if (Status st = RndisInitialize(); !st) return st;

  // Step 3: the host's largest frame may lower the MTU.
  if (auto v = RndisQuery(wire::NdisOid::kGenMaximumFrameSize, {}); v && v->size() >= 4) {
    const uint32_t host_mtu = LoadU32(v->data());
    if (host_mtu >= net::kMinMtu && host_mtu < mtu_.load()) mtu_.store(host_mtu);
  }
  // Step 4: the MAC is mandatory.
  auto mac = RndisQuery(wire::NdisOid::k802_3PermanentAddress, {});
  if (!mac) return tl::unexpected(mac.error());
  if (mac->size() < 6) {
    stats_.rndis_query_failed.Add();
    return MakeError(ErrorCode::kMalformed, "permanent address of {} bytes", mac->size());
  }
  mac_ = net::MacAddress::FromBytes(mac->data());
  // Step 5: friendly name becomes the alias unless it is the generic one; failures ignored.
  if (auto v = RndisQuery(wire::NdisOid::kGenFriendlyName, {}); v) {
    std::string alias = Ucs2ToString(*v);
    if (!alias.empty() && alias != "Network Adapter") {
      std::lock_guard lock(name_mu_);
      name_ = std::move(alias);
    }
  }
  // Step 6: offloads.
  if (Status st = SetHardwareCapabilities(); !st) return st;
  // Step 7: link state (D21: a bad answer leaves it unchanged).
  if (auto v = RndisQuery(wire::NdisOid::kGenMediaConnectStatus, {}); v && v->size() >= 4) {
    media_connected_.store(LoadU32(v->data()) == wire::kNdisMediaStateConnected);
  } else if (v) {
    stats_.rndis_query_failed.Add();
  }
  // Steps 8-11: sub-channels need NVSP 5.
  if (nvsp_version() < wire::kNvspVersion5) return Ok();
  return SetupSubchannels();
}

Status NetvscDevice::SetupSubchannels() {
  if (auto v = RndisQuery(wire::NdisOid::kGenLinkSpeed, {}); v && v->size() >= 4) {
    speed_mbps_.store(LoadU32(v->data()) / 10000);  // 100 bit/s units -> Mbit/s
  }
  // Step 10: RSS capabilities (D25: failure or fewer than 2 receive queues = one queue).
  uint32_t num_recv_que = 0;
  wire::NdisReceiveScaleCapabilities in;
  std::array<uint8_t, sizeof(in)> input{};
  (void)wire::EncodeNdisObject(std::span<uint8_t>(input), in);
  if (auto v = RndisQuery(wire::NdisOid::kGenReceiveScaleCapabilities, input); v) {
    if (auto caps = wire::ParseRssCapabilities(*v); caps) {
      num_recv_que = caps->num_recv_que;
    } else {
      stats_.rndis_query_failed.Add();
    }
  }
  // Step 11: max_chn = min(64, vCPUs, host queues); num_chn = min(max_chn, requested).
  const uint32_t max_chn =
      std::min({wire::kVrssChannelMax, partition_.vcpu_count(), std::max(num_recv_que, 1u)});
  uint32_t num_chn = std::min(max_chn, std::max(config_.num_queues, 1u));
  if (num_recv_que < 2) num_chn = 1;
  wire::FillDefaultIndirectionTable(rx_table_, num_chn);
  if (num_chn <= 1) {
    wire::FillDefaultIndirectionTable(rx_table_, 1);
    return Ok();
  }

  // Queues 1..num_chn-1 exist before the host can offer their channels.
  for (uint32_t i = 1; i < num_chn; ++i) {
    auto q = CreateQueue(static_cast<uint16_t>(i));
    if (!q) return tl::unexpected(q.error());
    std::lock_guard lock(sc_mu_);
    queues_[i] = std::move(*q);
  }
  // Until the host answers, a send table may name any requested channel: the table can arrive
  // before this thread has read the answer (it follows the last sub-channel open).
  channel_limit_.store(num_chn, std::memory_order_release);
  {
    std::lock_guard lock(sc_mu_);
    accepting_subchannels_ = true;
    grant_known_ = false;
    sc_limit_ = num_chn;
    subchannels_expected_ = 0;
    subchannels_done_ = 0;
  }
  vdev_.SetSubchannelCallback([gate = gate_](guest::Channel& c) {
    std::lock_guard lock(gate->mu);
    if (gate->device != nullptr) gate->device->OnSubchannel(c);
  });
  vdev_.SetSubchannelRescindCallback([gate = gate_](guest::Channel& c) {
    std::lock_guard lock(gate->mu);
    if (gate->device != nullptr) gate->device->OnSubchannelRescind(c);
  });

  // rndis_set_subchannel step 1 (spec 7.8): ask for num_chn - 1 sub-channels.
  wire::NvspSubchannelRequest req;
  req.op = wire::kNvspSubchannelOpAllocate;
  req.num_subchannels = num_chn - 1;
  std::array<uint8_t, wire::kNvspLinuxMessageSize> buf{};
  (void)wire::EncodeNvsp(std::span<uint8_t>(buf), req, buf.size());
  auto reply = NvspRequest(buf, wire::NvspMessageType::kSubchannel);
  uint32_t granted = 0;
  if (reply) {
    auto msg = wire::ParseNvspMessage(*reply, wire::Direction::kHostToGuest,
                                      wire::PacketType::kComp, nvsp_version());
    const auto* c = msg ? std::get_if<wire::NvspSubchannelComplete>(&*msg) : nullptr;
    auto g = c != nullptr ? wire::ValidateSubchannelComplete(*c, num_chn - 1)  // N10, N11
                          : Expected<uint32_t>(tl::unexpected(Error::Make(
                                ErrorCode::kMalformed, "bad sub-channel completion")));
    if (g) {
      granted = *g;
    } else {
      UVMBUS_LOG_WARN(kLog, "sub-channels refused, using one queue: {}", g.error().message);
    }
  } else {
    UVMBUS_LOG_WARN(kLog, "sub-channel request failed, using one queue: {}",
                    reply.error().message);
  }
  num_chn = 1 + granted;
  channel_limit_.store(num_chn, std::memory_order_release);
  // Default send table now; a SEND_INDIRECTION_TABLE the host sends once the sub-channels are
  // open replaces it (Linux fills it after the wait and can so overwrite an early host table).
  for (uint32_t i = 0; i < kSendTableSize; ++i) tx_table_[i].store(i % num_chn);

  {
    std::unique_lock lock(sc_mu_);
    sc_limit_ = num_chn;
    grant_known_ = true;
    sc_cv_.notify_all();
    subchannels_expected_ = granted;
    // Wait until every granted sub-channel was opened (or failed to), bounded (Linux waits for
    // open_chn == num_chn without a limit).
    const auto deadline = std::chrono::steady_clock::now() + config_.subchannel_timeout;
    // Bounded slices: a rescind or hang-up ends the wait without a wake-up of its own.
    while (subchannels_done_ < subchannels_expected_ && !Dead() &&
           std::chrono::steady_clock::now() < deadline) {
      sc_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (subchannels_done_ < subchannels_expected_) {
      UVMBUS_LOG_WARN(kLog, "only {} of {} sub-channels opened in time", subchannels_done_,
                      granted);
    }
    // Late offers are ignored from here on (M8).
    accepting_subchannels_ = false;
    sc_cv_.wait(lock, [&] { return sc_callbacks_running_ == 0; });
  }
  wire::FillDefaultIndirectionTable(rx_table_, num_chn);
  queue_count_.store(num_chn, std::memory_order_release);
  if (num_chn > 1) {
    // Step 5: RSS off, then on with the table and key; failures are ignored (Linux).
    if (Status st = SetRssParameters(wire::kNdisRssParamFlagDisableRss); !st) {
      UVMBUS_LOG_WARN(kLog, "RSS disable: {}", st.error().message);
    }
    if (Status st = SetRssParameters(0); !st) {
      UVMBUS_LOG_WARN(kLog, "RSS parameters: {}", st.error().message);
    }
  }
  return Ok();
}

void NetvscDevice::OnSubchannel(guest::Channel& channel) {
  // netvsc_sc_open, on the bus's sub-channel worker.
  const uint16_t index = channel.sub_channel_index();
  Queue* q = nullptr;
  {
    std::unique_lock lock(sc_mu_);
    // An offer can overtake the bring-up thread's reading of the SUBCHANNEL answer: wait for it
    // (bounded), so the index is judged against what the host granted (Linux: index >= num_chn).
    const auto deadline = std::chrono::steady_clock::now() + config_.control_timeout;
    while (accepting_subchannels_ && !grant_known_ && std::chrono::steady_clock::now() < deadline) {
      sc_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (!accepting_subchannels_ || index == 0 || index >= sc_limit_ || queues_[index] == nullptr ||
        queues_[index]->channel != nullptr) {
      stats_.subchannel_offer_ignored.Add();  // M8
      return;
    }
    q = queues_[index].get();
    q->channel = &channel;  // claimed (a duplicate index is ignored above)
    ++sc_callbacks_running_;
  }
  if (Status st = OpenQueue(*q, channel); !st) {
    UVMBUS_LOG_WARN(kLog, "sub-channel {} (relid {}) failed to open: {}", index, channel.relid(),
                    st.error().message);
  }
  std::lock_guard lock(sc_mu_);
  --sc_callbacks_running_;
  ++subchannels_done_;  // counted on failure too, so the waiter cannot hang (Linux)
  sc_cv_.notify_all();
}

void NetvscDevice::OnSubchannelRescind(guest::Channel& channel) {
  // The bus closes the channel after this returns; stop using it first.
  std::lock_guard sc(sc_mu_);
  for (auto& slot : queues_) {
    Queue* q = slot.get();
    if (q == nullptr || q->channel != &channel) continue;
    {
      std::lock_guard lock(q->out_mu);
      q->open = false;
    }
    q->usable.store(false, std::memory_order_release);
    if (q->napi) q->napi->Disable();
    q->gone.store(true, std::memory_order_release);
  }
}

// ---------------------------------------------------------------------------------------------
// Receive (rndis_filter_receive, spec 6.5-6.12, 9.6)

uint32_t NetvscDevice::RndisReceive(Queue& q, std::span<const uint8_t> range, bool last_range) {
  if (range.size() < wire::kRndisHeaderSize) {  // D1
    stats_.rndis_bad_length.Add();
    return kNvspFail;
  }
  // G1: header and PPIs are parsed from a private copy; the frame is copied once, later.
  std::array<uint8_t, kHeadCopy> head;
  const size_t head_len = std::min(range.size(), head.size());
  std::memcpy(head.data(), range.data(), head_len);
  const uint32_t type = LoadU32(head.data());
  const uint32_t msg_len = LoadU32(head.data() + 4);
  if (msg_len < wire::kRndisHeaderSize || msg_len > range.size()) {  // D2
    stats_.rndis_bad_length.Add();
    return kNvspFail;
  }
  if (!rndis_initialized_.load(std::memory_order_acquire)) {  // D16
    stats_.rndis_uninitialized.Add();
    return kNvspFail;
  }
  switch (static_cast<wire::RndisMessageType>(type)) {
    case wire::RndisMessageType::kPacket:
      return RndisReceiveData(q, range, std::span<const uint8_t>(head.data(), head_len),
                              last_range);
    case wire::RndisMessageType::kInitializeComplete:
    case wire::RndisMessageType::kQueryComplete:
    case wire::RndisMessageType::kSetComplete:
    case wire::RndisMessageType::kIndicateStatus:
      return RndisReceiveControl(q, range, type, msg_len);
    default:
      stats_.rndis_bad_type.Add();  // D15 (KEEPALIVE, RESET_CMPLT, requests, unknown)
      UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "dropped RNDIS message type {:#x}", type);
      return kNvspFail;
  }
}

uint32_t NetvscDevice::RndisReceiveData(Queue& q, std::span<const uint8_t> range,
                                        std::span<const uint8_t> head, bool last_range) {
  auto pkt = wire::ParseRndisPacketHead(head, range.size(), wire::Direction::kHostToGuest);
  if (!pkt) {  // D3-D5
    stats_.rndis_bad_packet.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "queue {}: dropped frame: {}", q.index,
                           pkt.error().message);
    return kNvspFail;
  }
  if (pkt->ppi_status != wire::PpiStatus::kOk) stats_.rndis_bad_ppi.Add();  // D6-D10
  // The frame: inside the private head copy, or (validated) in shared memory, copied once below.
  const std::span<const uint8_t> frame =
      !pkt->frame.empty() || pkt->fixed.data_len == 0
          ? pkt->frame
          : range.subspan(size_t{wire::kRndisHeaderSize} + pkt->fixed.data_offset,
                          pkt->fixed.data_len);

  // RSC over VMBus (spec 6.6 RNDIS_PKTINFO_ID; Linux rndis_filter_receive_data).
  const auto& id = pkt->ppis.packet_id;
  const wire::PacketIdInfo info = id ? wire::UnpackPacketIdInfo(*id) : wire::PacketIdInfo{};
  if (!id || (info.flags & wire::kPacketIdFlagSubAlloc) == 0) {
    q.rsc_cnt = 0;
    q.rsc_len = 0;
    return Deliver(q, frame, pkt->ppis) ? kNvspSuccess : kNvspFail;
  }
  if ((info.flags & wire::kPacketIdFlagFirstFrag) != 0) {
    q.rsc_cnt = 0;
    q.rsc_len = 0;
    q.rsc_ppis = pkt->ppis;
  } else if (q.rsc_cnt == 0) {  // D12: a middle fragment without its start
    stats_.rndis_rsc_dropped.Add();
    return kNvspFail;
  }
  if (q.rsc_cnt >= wire::kNvspRscMaxPacketsPerReceive ||  // D14
      frame.size() > q.rx_ring->slot_size() - q.rsc_len) {
    stats_.rndis_rsc_dropped.Add();
    q.rsc_cnt = 0;
    q.rsc_len = 0;
    return kNvspFail;
  }
  std::memcpy(q.rsc_buf.get() + q.rsc_len, frame.data(), frame.size());
  q.rsc_len += static_cast<uint32_t>(frame.size());
  ++q.rsc_cnt;
  if ((info.flags & wire::kPacketIdFlagLastFrag) == 0) {
    if (last_range) {  // D13: fragments must not span transfer-page packets
      stats_.rndis_rsc_dropped.Add();
      q.rsc_cnt = 0;
      q.rsc_len = 0;
      return kNvspFail;
    }
    return kNvspSuccess;  // wait for the rest
  }
  const bool ok = Deliver(q, std::span<const uint8_t>(q.rsc_buf.get(), q.rsc_len), q.rsc_ppis);
  q.rsc_cnt = 0;
  q.rsc_len = 0;
  return ok ? kNvspSuccess : kNvspFail;
}

bool NetvscDevice::Deliver(Queue& q, std::span<const uint8_t> frame, const wire::RndisPpiSet& ppis) {
  if (frame.size() < net::kEthHeaderSize || frame.size() > q.rx_ring->slot_size()) {
    stats_.rndis_bad_packet.Add();  // not an Ethernet frame this NIC can carry
    return false;
  }
  RxFrameInfo info;
  if (ppis.hash_value) {
    info.hash = *ppis.hash_value;
    info.flags |= RxFrameInfo::kHasHash;
  }
  if (ppis.vlan) {
    const wire::VlanInfo v = wire::UnpackVlanInfo(*ppis.vlan);
    info.vlan_tci = static_cast<uint16_t>((uint32_t{v.priority} << 13) | (v.dei ? 1u << 12 : 0u) |
                                          v.vlan_id);
    info.flags |= RxFrameInfo::kHasVlan;
  }
  if (ppis.checksum) {
    info.checksum = *ppis.checksum;
    info.flags |= RxFrameInfo::kHasChecksum;
    if ((*ppis.checksum & (wire::kRxChecksumTcpSucceeded | wire::kRxChecksumUdpSucceeded)) != 0) {
      info.flags |= RxFrameInfo::kChecksumOk;
    }
  }
  if (!q.rx_ring->Push(frame, info)) {
    // The frontend is not draining this queue: drop, and tell the host (Linux returns
    // NVSP_STAT_FAIL when it cannot allocate the skb).
    stats_.rx_no_memory.Add();
    return false;
  }
  q.stats.rx_packets.Add();
  q.stats.rx_bytes.Add(frame.size());
  ++q.rx_delivered;
  return true;
}

uint32_t NetvscDevice::RndisReceiveControl(Queue& q, std::span<const uint8_t> range, uint32_t type,
                                           uint32_t msg_len) {
  const bool indication = type == static_cast<uint32_t>(wire::RndisMessageType::kIndicateStatus);
  if (!indication && msg_len > wire::kRndisMaxControlCompletionSize) {
    // D19: too long for Linux's response buffer; the matching request fails with overflow.
    stats_.rndis_control_overflow.Add();
    // INITIALIZE/QUERY/SET_CMPLT all carry the request id at byte 8 (msg_len > 4148 >= 12, and
    // the range holds msg_len bytes: checked by the caller).
    std::array<uint8_t, 12> head{};
    std::memcpy(head.data(), range.data(), head.size());
    const uint32_t id = LoadU32(head.data() + 8);
    std::lock_guard lock(waiter_mu_);
    if (waiter_.kind == Waiter::Kind::kRndis && waiter_.request_id == id && !waiter_.done) {
      waiter_.overflow = true;
      waiter_.done = true;
      waiter_cv_.notify_all();
    }
    return kNvspSuccess;
  }
  // An indication's buffer is bounded by the range, not msg_len (pre-"Fe" hosts, 10.2 N-m).
  const size_t len = std::min<size_t>(indication ? range.size() : msg_len,
                                      wire::kRndisMaxControlCompletionSize);
  std::memcpy(q.scratch.get(), range.data(), len);
  const std::span<const uint8_t> copy(q.scratch.get(), len);
  auto msg = wire::ParseRndisMessage(copy, wire::Direction::kHostToGuest);
  if (!msg) {  // D17, D20, D22, D23
    stats_.rndis_bad_control.Add();
    UVMBUS_LOG_RATELIMITED(log::Level::kWarn, kLog, "dropped RNDIS control message: {}",
                           msg.error().message);
    return kNvspFail;
  }
  if (const auto* status = std::get_if<wire::RndisIndicateStatusMessage>(&*msg)) {
    HandleIndicateStatus(*status);
    return kNvspSuccess;
  }
  uint32_t request_id = 0;
  if (const auto* m = std::get_if<wire::RndisInitializeComplete>(&*msg)) request_id = m->request_id;
  if (const auto* m = std::get_if<wire::RndisQueryCompleteMessage>(&*msg)) {
    request_id = m->fixed.request_id;
  }
  if (const auto* m = std::get_if<wire::RndisSetComplete>(&*msg)) request_id = m->request_id;
  std::lock_guard lock(waiter_mu_);
  if (waiter_.kind != Waiter::Kind::kRndis || waiter_.request_id != request_id || waiter_.done) {
    stats_.rndis_control_unmatched.Add();  // D18
    return kNvspSuccess;
  }
  waiter_.response.assign(copy.begin(), copy.begin() + msg_len);
  waiter_.done = true;
  waiter_cv_.notify_all();
  return kNvspSuccess;
}

void NetvscDevice::HandleIndicateStatus(const wire::RndisIndicateStatusMessage& msg) {
  // netvsc_linkstatus_callback (spec 6.12).
  switch (msg.fixed.status) {
    case wire::RndisStatus::kMediaConnect:
      SetMediaConnected(true);
      break;
    case wire::RndisStatus::kMediaDisconnect:
      SetMediaConnected(false);
      break;
    case wire::RndisStatus::kNetworkChange:
      // The VM moved to another network: Linux drops the carrier briefly so DHCP renews. The
      // frontend sees down then up (without Linux's 2 s pause).
      if (media_connected_.load()) {
        SetMediaConnected(false);
        SetMediaConnected(true);
      }
      break;
    case wire::RndisStatus::kLinkSpeedChange:
      if (auto speed = wire::LinkSpeedFromIndication(msg)) speed_mbps_.store(*speed / 10000);
      break;
    default:
      break;
  }
}

}  // namespace uvmbus::netvsc
