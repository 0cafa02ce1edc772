// File: bench/harness/builtin_contenders.h
//
// What: the contenders that need no NIC, and the default set the driver runs:
//   raw-ring-<size>     the physical limit: a batched shared-memory byte ring between two
//                       processes (8-byte record headers, payload rounded to 8, split copies at
//                       the wrap point, batch publish, cached peer index), like the peers'
//                       spsc.c; interrupt mode = the consumer sleeps on an eventfd when idle
//                       and the producer kicks only a sleeper.
//   vmbus-ring-<size>   uvmbus's own ring::OutgoingRing / IncomingRing (spec 3) carrying each
//                       frame as a DATA_INBAND packet, no NIC: the floor of what the NIC can
//                       do. Interrupt mode follows spec 3.4/3.6: the consumer keeps
//                       interrupt_mask set while polling, unmasks before sleeping, and the
//                       producer signals only when CommitWrite() says so.
//   unix-dgram          AF_UNIX SOCK_DGRAM socketpair with sendmmsg/recvmmsg batches
//                       (interrupt mode: blocking calls; poll mode: MSG_DONTWAIT spinning).
//   dpdk-memif          two dpdk-testpmd processes, txonly -> rxonly over net_memif (copy
//                       mode), --no-huge; "not installed" when dpdk-testpmd is not on PATH.
//                       Rates are testpmd's own once-per-second Rx-pps samples.
//   pingpong            latency: one frame copied across and back through shared memory;
//                       poll mode busy-polls a cache line, interrupt mode blocks on eventfds.
// Spec: vmbus-protocol.md 3.2-3.7 (the vmbus-ring contender uses the ring layer as is).
// Linux/OpenVMM: none; the peers' spsc.c, unixsock.c, pingpong.c and driver.py (read for
// method) describe the same setups.
// Thread-safety: see contender.h.
#ifndef UVMBUS_BENCH_HARNESS_BUILTIN_CONTENDERS_H_
#define UVMBUS_BENCH_HARNESS_BUILTIN_CONTENDERS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/harness/contender.h"

namespace uvmbus::bench {

// Interrupt mode: the consumer polls an empty ring this many times before it sleeps.
inline constexpr int kIdlePollsBeforeSleep = 64;

struct RawRingOptions {
  uint32_t footprint_bytes = 1u << 20;  // ring bytes per queue; a power of two >= 4096
  uint32_t batch = 32;                  // records per publish (and per consumer batch)
};
// "raw-ring-1MiB" (plus "-b<batch>" when batch != 32).
std::unique_ptr<Contender> MakeRawRingContender(const RawRingOptions& options);

struct VmbusRingOptions {
  uint32_t data_bytes = 1u << 20;  // data area per ring; a multiple of 4096
  uint32_t batch = 32;             // packets per CommitWrite / CommitRead
};
// "vmbus-ring-1MiB" (plus "-b<batch>").
std::unique_ptr<Contender> MakeVmbusRingContender(const VmbusRingOptions& options);

struct UnixSocketOptions {
  uint32_t batch = 32;             // messages per sendmmsg/recvmmsg (1..256)
  int buffer_bytes = 4 << 20;      // SO_SNDBUF / SO_RCVBUF
};
// "unix-dgram".
std::unique_ptr<Contender> MakeUnixDgramContender(const UnixSocketOptions& options);

struct MemifOptions {
  std::string testpmd = "dpdk-testpmd";  // a name looked up on PATH, or a path
  uint32_t memory_mb = 512;              // EAL -m with --no-huge
  double server_start_timeout_s = 20;    // until the rxonly side listens
  // Steady one-second rate samples to collect (at least; a run of s seconds asks for ceil(s)).
  uint32_t min_samples = 2;
  double traffic_timeout_s = 20;         // client start-up + samples must fit in this
  std::string runtime_dir = "/var/run/dpdk";  // where EAL leaves its --file-prefix directory
};
// "dpdk-memif".
std::unique_ptr<Contender> MakeMemifContender(const MemifOptions& options);

// "pingpong" (latency workload only).
std::unique_ptr<Contender> MakePingPongContender();

// What MakeBuiltinContenders() creates.
struct BuiltinOptions {
  std::vector<uint32_t> raw_ring_footprints = {1u << 20, 4u << 20};
  uint32_t raw_ring_batch = 32;
  std::vector<uint32_t> vmbus_ring_sizes = {1u << 20};
  uint32_t vmbus_ring_batch = 32;
  UnixSocketOptions unix_socket;
  MemifOptions memif;
  bool pingpong = true;
};
std::vector<std::unique_ptr<Contender>> MakeBuiltinContenders(const BuiltinOptions& options);

// "64KiB", "1MiB", "1536B" (used in contender names).
std::string FormatSize(uint64_t bytes);

// Looks `name` up like execvp does (a name containing '/' is taken as a path). Empty if not
// found or not executable.
std::string FindExecutable(const std::string& name);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_BUILTIN_CONTENDERS_H_
