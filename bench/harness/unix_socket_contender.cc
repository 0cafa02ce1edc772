// AF_UNIX datagram contender: the kernel's copy in (sendmmsg) and copy out (recvmmsg), written
// from the method of the peers' unixsock.c (their README section B.3).
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/frames.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/streaming_pair.h"
#include "common/unique_fd.h"

namespace uvmbus::bench {
namespace {

constexpr size_t kSendCalls = 0;  // producer counter slot: sendmmsg calls that moved data
constexpr size_t kRecvCalls = 0;  // consumer counter slot: recvmmsg calls that moved data

class UnixDgramContender final : public Contender {
 public:
  explicit UnixDgramContender(const UnixSocketOptions& options) : options_(options) {}

  std::string name() const override { return "unix-dgram"; }
  std::string description() const override {
    return fmt::format("AF_UNIX SOCK_DGRAM socketpair, sendmmsg/recvmmsg x {}, buffers {}",
                       options_.batch, FormatSize(static_cast<uint64_t>(options_.buffer_bytes)));
  }
  bool Supports(const RunConfig& config) const override {
    // One socket pair; several queues would need poll() across sockets in interrupt mode.
    return config.workload == Workload::kThroughput && config.queues == 1 &&
           options_.batch >= 1 && options_.batch <= 256 && ValidateCommon(config).has_value();
  }
  Expected<RunResult> Run(const RunConfig& config) override;

 private:
  UnixSocketOptions options_;
};

// Bounded blocking: a blocked call returns every 50 ms so the loops can see stop/abort.
Status SetTimeouts(int fd) {
  const timeval tv{0, 50'000};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    return unexpected(Error::FromErrno("setsockopt(SO_*TIMEO)", errno));
  }
  return Ok();
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

Expected<RunResult> UnixDgramContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  const uint32_t frame_bytes = config.frame_bytes;
  const uint32_t batch = options_.batch;
  const bool interrupt = config.mode == Mode::kInterrupt;
  const int flags = interrupt ? 0 : MSG_DONTWAIT;
  const FrameCheck level =
      config.check_every_byte ? FrameCheck::kEveryByte : FrameCheck::kSeqAndTail;

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return unexpected(Error::FromErrno("socketpair", errno));
  }
  UniqueFd tx(sv[0]), rx(sv[1]);
  const int buf = options_.buffer_bytes;
  // Best effort (capped by net.core.[rw]mem_max unless root uses SO_*BUFFORCE).
  ::setsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  ::setsockopt(rx.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (Status st = SetTimeouts(tx.get()); !st) return unexpected(st.error());
  if (Status st = SetTimeouts(rx.get()); !st) return unexpected(st.error());
  const int tx_fd = tx.get();
  const int rx_fd = rx.get();

  auto producer = [&](PairContext& ctx) -> int {
    ::close(rx_fd);
    FrameSource source(frame_bytes);
    std::vector<mmsghdr> msgs(batch);
    std::vector<iovec> iov(batch);
    uint64_t seq = 0, calls = 0;
    while (!ctx.StopRequested()) {
      for (uint32_t i = 0; i < batch; ++i) {
        const auto frame = source.Stamp(seq + i);
        iov[i] = {const_cast<uint8_t*>(frame.data()), frame.size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int r = ::sendmmsg(tx_fd, msgs.data(), batch, flags);
      if (r > 0) {
        seq += static_cast<uint64_t>(r);  // unsent frames are re-stamped in the next batch
        ++calls;
      } else if (r < 0 && !WouldBlock(errno)) {
        return ctx.Fail(Error::FromErrno("sendmmsg", errno).message);
      } else if (!interrupt) {
        CpuRelax();
      }
    }
    SideReport& rep = ctx.report();
    rep.packets = seq;
    rep.bytes = seq * frame_bytes;
    rep.counters[kSendCalls] = calls;
    ctx.SetProducerDone();
    return 0;
  };

  auto consumer = [&](PairContext& ctx) -> int {
    ::close(tx_fd);
    FrameSink sink(frame_bytes);
    std::vector<mmsghdr> msgs(batch);
    std::vector<iovec> iov(batch);
    uint64_t got = 0, bad = 0, calls = 0;
    int64_t first_ns = 0, last_ns = 0;
    bool final_pass = false;
    const int rflags = interrupt ? MSG_WAITFORONE : MSG_DONTWAIT;
    for (;;) {
      for (uint32_t i = 0; i < batch; ++i) {
        const auto slot = sink.Slot(got + i);
        iov[i] = {slot.data(), slot.size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int r = ::recvmmsg(rx_fd, msgs.data(), batch, rflags, nullptr);
      if (r > 0) {
        // The window ends at the last datagram, not after the final receive timeout.
        last_ns = NowNs();
        if (first_ns == 0) first_ns = last_ns;
        ++calls;
        for (int i = 0; i < r; ++i) {
          const auto& m = msgs[static_cast<size_t>(i)];
          const bool whole = (m.msg_hdr.msg_flags & MSG_TRUNC) == 0;
          const std::span<const uint8_t> frame(static_cast<const uint8_t*>(iov[i].iov_base),
                                               m.msg_len);
          if (!whole || !CheckFrame(frame, frame_bytes, got, level)) ++bad;
          ++got;
        }
        continue;
      }
      if (r < 0 && !WouldBlock(errno)) {
        return ctx.Fail(Error::FromErrno("recvmmsg", errno).message);
      }
      // Empty (or timed out). Datagrams are queued by the time sendmmsg returns, so once the
      // producer is done one more empty read means everything has been received.
      if (final_pass) break;
      if (ctx.ProducerDone()) {
        final_pass = true;
        continue;
      }
      if (!interrupt) CpuRelax();
    }
    SideReport& rep = ctx.report();
    rep.packets = got;
    rep.bytes = got * frame_bytes;
    rep.bad = bad;
    rep.first_ns = first_ns;
    rep.last_ns = last_ns;
    rep.counters[kRecvCalls] = calls;
    return 0;
  };


  const PerPacketCounter call_counters[] = {{"send_calls_per_packet", true, kSendCalls},
                                            {"recv_calls_per_packet", false, kRecvCalls}};
  return RunStreamingPair(config, producer, consumer, call_counters);
}

}  // namespace

std::unique_ptr<Contender> MakeUnixDgramContender(const UnixSocketOptions& options) {
  return std::make_unique<UnixDgramContender>(options);
}

}  // namespace uvmbus::bench
