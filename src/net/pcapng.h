// File: net/pcapng.h
//
// What: a hand-written pcapng writer (no libpcap: libpcap 1.10 writes only classic pcap, which
// has no per-packet direction). A file is one section:
//
//   SHB  Section Header Block  (type 0x0A0D0D0A, byte-order magic 0x1A2B3C4D, version 1.0,
//                               section length -1 = unknown, option shb_userappl)
//   IDB  Interface Description (type 1) per NIC queue: LINKTYPE_ETHERNET (1), snaplen,
//                               options if_name ("sw0/vm1/q0") and if_tsresol = 6 (microseconds)
//   EPB  Enhanced Packet Block (type 6) per frame: interface id, 64-bit timestamp in
//                               microseconds since the Unix epoch (high word, low word), captured
//                               and original length, the frame padded to 4 bytes, and option
//                               epb_flags whose bits 0-1 give the direction (01 inbound = the
//                               endpoint delivered it to the NIC, 10 outbound = the NIC sent it).
//
// Every block is written in host byte order (the byte-order magic tells readers) and ends with a
// copy of its total length; options are (code u16, length u16, value padded to 4) ended by
// opt_endofopt. tcpdump 4.99 and tshark read the result.
//
// Blocks are appended with one write(2) per call: AddInterface() writes an IDB at once (an IDB may
// appear anywhere before the first EPB that uses it, so NICs can be added while capturing);
// WriteBatch() encodes a whole batch into the caller's scratch buffer (no allocation once it has
// grown) and writes it under the writer's mutex (one lock per batch, not per frame). Capture is
// best effort: a failed write is counted, the file is abandoned (no further writes, so it
// reads back up to the last complete block) and the data path never sees an error.
//
// Spec: none in vmbus-protocol.md; the format is IETF draft-ietf-opsawg-pcapng (sections 4.1 SHB,
//       4.2 IDB, 4.3 EPB and its epb_flags option).
// Linux/OpenVMM: OpenVMM vm/devices/net/net_packet_capture (pcapng capture as a wrapping endpoint).
// Thread-safety: PcapngWriter is thread-safe; the pcapng:: encoders are pure functions.
#ifndef UVMBUS_NET_PCAPNG_H_
#define UVMBUS_NET_PCAPNG_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/counter.h"
#include "common/error.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "net/frame.h"

namespace uvmbus::net {

// epb_flags bits 0-1.
enum class PcapDirection : uint8_t { kInbound = 1, kOutbound = 2 };

namespace pcapng {

inline constexpr uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
inline constexpr uint32_t kInterfaceDescriptionBlock = 1;
inline constexpr uint32_t kEnhancedPacketBlock = 6;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr uint16_t kLinkTypeEthernet = 1;
inline constexpr uint16_t kOptEndOfOpt = 0;
inline constexpr uint16_t kOptShbUserAppl = 4;
inline constexpr uint16_t kOptIfName = 2;
inline constexpr uint16_t kOptIfTsresol = 9;
inline constexpr uint16_t kOptEpbFlags = 2;
inline constexpr uint8_t kTsresolMicroseconds = 6;

// Appends a Section Header Block naming `application`.
void AppendSectionHeader(std::vector<uint8_t>& out, std::string_view application);
// Appends an Interface Description Block (Ethernet; snaplen 0 = no limit).
void AppendInterfaceDescription(std::vector<uint8_t>& out, std::string_view if_name,
                                uint32_t snaplen);
// Appends an Enhanced Packet Block; the frame is truncated to snaplen if snaplen != 0.
void AppendEnhancedPacket(std::vector<uint8_t>& out, uint32_t interface_id,
                          uint64_t timestamp_us, std::span<const uint8_t> frame,
                          uint32_t snaplen, PcapDirection direction);
// Total length of an EPB carrying `captured` bytes (44 + captured rounded up to 4).
inline constexpr uint32_t EnhancedPacketSize(uint32_t captured) {
  return 44 + ((captured + 3u) & ~3u);
}

}  // namespace pcapng

class PcapngWriter {
 public:
  struct Options {
    std::string application = "uvmbus";
    uint32_t snaplen = 0;              // 0: whole frames
    const Clock* clock = nullptr;      // timestamps (ns since the Unix epoch); nullptr:
                                       // CLOCK_REALTIME. Must outlive the writer.
  };

  // Creates (truncates) `path` and writes the SHB. Errors: kIo, kPermissionDenied.
  static Expected<std::shared_ptr<PcapngWriter>> Open(const std::string& path,
                                                      const Options& options);
  // Writes to an open descriptor (a pipe to `tcpdump -r -`, a socket) and writes the SHB. For a
  // pipe or socket the process should ignore SIGPIPE (daemons do), or a reader that goes away
  // kills it instead of failing the write.
  static Expected<std::shared_ptr<PcapngWriter>> FromFd(UniqueFd fd, const Options& options);

  ~PcapngWriter();
  PcapngWriter(const PcapngWriter&) = delete;
  PcapngWriter& operator=(const PcapngWriter&) = delete;

  // Writes an IDB and returns its interface id (0, 1, ... in order). Errors: kIo (the file is
  // abandoned), kUnavailable (already abandoned).
  Expected<uint32_t> AddInterface(std::string_view name) EXCLUDES(mu_);

  // Appends EPBs for frames [0, count) of `batch` on `interface_id`, all stamped with the same
  // time. `scratch` is the calling queue's reusable encoding buffer.
  template <typename Byte>
  void WriteBatch(uint32_t interface_id, PcapDirection direction,
                  const BasicFrameBatch<Byte>& batch, uint32_t count,
                  std::vector<uint8_t>& scratch) {
    if (count > batch.size()) count = batch.size();
    if (count == 0 || failed()) return;
    scratch.clear();
    const uint64_t ts = NowUs();
    for (uint32_t i = 0; i < count; ++i) {
      pcapng::AppendEnhancedPacket(scratch, interface_id, ts,
                                   {batch[i].data, batch[i].length}, options_.snaplen,
                                   direction);
    }
    Append(scratch, count);
  }

  // Frames written, and writes that failed.
  uint64_t packets_written() const { return packets_.Get(); }
  uint64_t write_errors() const { return write_errors_.Get(); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  PcapngWriter(UniqueFd fd, const Options& options);
  uint64_t NowUs() const;
  Status WriteAll(std::span<const uint8_t> bytes) REQUIRES(mu_);
  void Append(std::span<const uint8_t> bytes, uint32_t frames) EXCLUDES(mu_);

  const Options options_;
  std::mutex mu_;
  UniqueFd fd_ GUARDED_BY(mu_);
  uint32_t interfaces_ GUARDED_BY(mu_) = 0;
  std::atomic<bool> failed_{false};
  Counter packets_;
  Counter write_errors_;
};

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_PCAPNG_H_
