#include "net/pcapng.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace uvmbus::net {
namespace pcapng {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& out, T value) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &value, sizeof(T));  // host byte order (see the BOM)
}

void PutPadded(std::vector<uint8_t>& out, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + len);
  out.resize(out.size() + ((4 - len % 4) % 4), 0);
}

void PutOption(std::vector<uint8_t>& out, uint16_t code, const void* value, size_t len) {
  Put<uint16_t>(out, code);
  Put<uint16_t>(out, static_cast<uint16_t>(len));
  PutPadded(out, value, len);
}

// Starts a block (type + placeholder length) and returns its offset.
size_t BeginBlock(std::vector<uint8_t>& out, uint32_t type) {
  const size_t start = out.size();
  Put<uint32_t>(out, type);
  Put<uint32_t>(out, 0);
  return start;
}

// Ends options and the block: opt_endofopt, trailing length, and the length at the head.
void EndBlock(std::vector<uint8_t>& out, size_t start, bool with_options) {
  if (with_options) {
    Put<uint16_t>(out, kOptEndOfOpt);
    Put<uint16_t>(out, 0);
  }
  const auto total = static_cast<uint32_t>(out.size() - start + 4);
  Put<uint32_t>(out, total);
  std::memcpy(out.data() + start + 4, &total, 4);
}

}  // namespace

void AppendSectionHeader(std::vector<uint8_t>& out, std::string_view application) {
  const size_t start = BeginBlock(out, kSectionHeaderBlock);
  Put<uint32_t>(out, kByteOrderMagic);
  Put<uint16_t>(out, 1);  // major version
  Put<uint16_t>(out, 0);  // minor version
  // Section length -1: unknown, so readers walk the blocks (we append while capturing).
  Put<uint64_t>(out, ~uint64_t{0});
  const bool has_app = !application.empty() && application.size() <= 0xfff0;
  if (has_app) PutOption(out, kOptShbUserAppl, application.data(), application.size());
  EndBlock(out, start, has_app);
}

void AppendInterfaceDescription(std::vector<uint8_t>& out, std::string_view if_name,
                                uint32_t snaplen) {
  const size_t start = BeginBlock(out, kInterfaceDescriptionBlock);
  Put<uint16_t>(out, kLinkTypeEthernet);
  Put<uint16_t>(out, 0);  // reserved
  Put<uint32_t>(out, snaplen);
  if (!if_name.empty() && if_name.size() <= 0xfff0) {
    PutOption(out, kOptIfName, if_name.data(), if_name.size());
  }
  const uint8_t tsresol = kTsresolMicroseconds;
  PutOption(out, kOptIfTsresol, &tsresol, 1);
  EndBlock(out, start, true);
}

void AppendEnhancedPacket(std::vector<uint8_t>& out, uint32_t interface_id,
                          uint64_t timestamp_us, std::span<const uint8_t> frame,
                          uint32_t snaplen, PcapDirection direction) {
  const auto original = static_cast<uint32_t>(frame.size());
  const uint32_t captured = snaplen != 0 && snaplen < original ? snaplen : original;
  const size_t start = BeginBlock(out, kEnhancedPacketBlock);
  Put<uint32_t>(out, interface_id);
  Put<uint32_t>(out, static_cast<uint32_t>(timestamp_us >> 32));
  Put<uint32_t>(out, static_cast<uint32_t>(timestamp_us));
  Put<uint32_t>(out, captured);
  Put<uint32_t>(out, original);
  PutPadded(out, frame.data(), captured);
  const uint32_t flags = static_cast<uint32_t>(direction);
  PutOption(out, kOptEpbFlags, &flags, 4);
  EndBlock(out, start, true);
}

}  // namespace pcapng

Expected<std::shared_ptr<PcapngWriter>> PcapngWriter::Open(const std::string& path,
                                                           const Options& options) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    Error e = Error::FromErrno("open " + path, errno);
    if (errno == EACCES || errno == EPERM) e.code = ErrorCode::kPermissionDenied;
    return tl::unexpected(std::move(e));
  }
  return FromFd(std::move(fd), options);
}

Expected<std::shared_ptr<PcapngWriter>> PcapngWriter::FromFd(UniqueFd fd, const Options& options) {
  if (!fd) return MakeError(ErrorCode::kInvalidArgument, "pcapng: invalid descriptor");
  std::shared_ptr<PcapngWriter> w(new PcapngWriter(std::move(fd), options));
  std::vector<uint8_t> shb;
  pcapng::AppendSectionHeader(shb, options.application);
  std::lock_guard<std::mutex> lock(w->mu_);
  if (auto s = w->WriteAll(shb); !s) return tl::unexpected(s.error());
  return w;
}

PcapngWriter::PcapngWriter(UniqueFd fd, const Options& options)
    : options_(options), fd_(std::move(fd)) {}

PcapngWriter::~PcapngWriter() = default;

uint64_t PcapngWriter::NowUs() const {
  if (options_.clock != nullptr) return static_cast<uint64_t>(options_.clock->NowNs()) / 1000;
  struct timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

Status PcapngWriter::WriteAll(std::span<const uint8_t> bytes) {
  if (failed_.load(std::memory_order_relaxed)) {
    return MakeError(ErrorCode::kUnavailable, "pcapng: capture abandoned after a write error");
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      write_errors_.Add();
      failed_.store(true, std::memory_order_relaxed);
      return tl::unexpected(Error::FromErrno("pcapng write", err));
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Expected<uint32_t> PcapngWriter::AddInterface(std::string_view name) {
  std::vector<uint8_t> idb;
  pcapng::AppendInterfaceDescription(idb, name, options_.snaplen);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = WriteAll(idb); !s) return tl::unexpected(s.error());
  return interfaces_++;
}

// One write per batch under the lock keeps blocks from different queues from interleaving; a
// short write is retried, an error abandons the file (a torn block would make it unreadable).
void PcapngWriter::Append(std::span<const uint8_t> bytes, uint32_t frames) {
  std::lock_guard<std::mutex> lock(mu_);
  if (WriteAll(bytes)) packets_.Add(frames);
}

}  // namespace uvmbus::net
