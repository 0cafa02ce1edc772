// File: bench/harness/contender.h
//
// What: the contender interface of the end-to-end benchmark. A contender is one way of moving
// frames from a producer process on one core to a consumer process on another - the raw
// shared-memory ring (the physical limit), our VMBus ring without a NIC, AF_UNIX sockets, DPDK's
// memif PMD, and later uvmbus's synthetic NIC. It runs one configuration (workload, frame size,
// queues, mode) for a duration, with copy in + copy out + a content check, and reports what
// arrived, the CPU time of each side, and optional per-packet counters (doorbells/packet,
// interrupts/packet, ...). The runner (runner.h) interleaves contenders and configurations and
// tags every run with the placement probe's verdict.
//
// To add a contender (e.g. the NIC): implement Contender, return kUnavailable from
// CheckAvailable() when something it needs is missing, reject configurations it cannot run in
// Supports(), and use process_pair.h / frames.h for the processes and the content check.
//
// Spec: none (benchmark infrastructure; design.md section 6).
// Linux/OpenVMM: none.
// Thread-safety: a Contender is used by one thread (the runner) at a time.
#ifndef UVMBUS_BENCH_HARNESS_CONTENDER_H_
#define UVMBUS_BENCH_HARNESS_CONTENDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace uvmbus::bench {

enum class Workload : uint8_t {
  kThroughput,  // one-way frames, as fast as possible: packets/s and bit/s
  kLatency,     // one frame in flight, echoed back: round-trip time p50/p99
};

enum class Mode : uint8_t {
  kPoll,       // both sides busy-poll (DPDK style)
  kInterrupt,  // the consumer sleeps when idle and is woken by the producer (eventfd, socket)
};

std::string_view WorkloadName(Workload workload);  // "throughput" | "latency"
std::string_view ModeName(Mode mode);              // "poll" | "interrupt"
bool ParseWorkload(std::string_view text, Workload* out);
bool ParseMode(std::string_view text, Mode* out);

// One configuration. Contenders with their own knobs (ring footprint, batch) are separate
// contender instances, so that configurations compare like with like across contenders.
struct RunConfig {
  Workload workload = Workload::kThroughput;
  uint32_t frame_bytes = 64;
  uint32_t queues = 1;
  Mode mode = Mode::kPoll;
  double seconds = 1.0;  // traffic time (a contender may add its own warm-up)
  int producer_cpu = 0;
  int consumer_cpu = 1;
  // Check every byte of every frame instead of length + sequence + tail (tests).
  bool check_every_byte = false;

  // "throughput 64B q1 poll": the identity used to group runs (excludes seconds and CPUs).
  std::string Key() const;
};

// A named per-packet counter, e.g. {"doorbells_per_packet", 0.001}.
struct ExtraCounter {
  std::string name;  // snake_case, ends in its unit ("_per_packet", "_per_round_trip")
  double value = 0;
};

// What one run measured.
struct RunResult {
  // Throughput: frames received intact in the measurement window and their frame bytes; for
  // latency: completed round trips (and their frame bytes one way).
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t sent = 0;      // frames the producer handed over (>= packets; testpmd: its Tx count)
  uint64_t bad = 0;       // frames that arrived but failed the content check
  double seconds = 0;     // measurement window of the receiving side
  // CPU time of each side's process over the whole run.
  double producer_cpu_seconds = 0;
  double consumer_cpu_seconds = 0;
  // True when the CPU figures are not measured but implied (a PMD core is 100 % busy).
  bool cpu_estimated = false;
  // False when the contender cannot check content (testpmd's rxonly does not).
  bool content_checked = true;
  // Latency workload: round-trip time percentiles in ns.
  std::optional<double> rtt_p50_ns;
  std::optional<double> rtt_p99_ns;
  std::vector<ExtraCounter> extras;

  double packets_per_second() const;
  double bits_per_second() const;  // frame bytes * 8 per second (no Ethernet overhead)
  // CPU ns per packet (per round trip for latency) of each side; nullopt without packets.
  std::optional<double> producer_cpu_ns_per_packet() const;
  std::optional<double> consumer_cpu_ns_per_packet() const;
};

class Contender {
 public:
  virtual ~Contender() = default;

  // Stable identifier used on the command line, in tables and JSON: "raw-ring-1MiB".
  virtual std::string name() const = 0;
  // One line saying what it is and how it is set up.
  virtual std::string description() const = 0;
  // kUnavailable with the reason ("not installed: ...") when it cannot run on this machine.
  // Must be cheap and must not install or change anything.
  virtual Status CheckAvailable() const { return Ok(); }
  // Whether it can run `config` at all (unsupported combinations are skipped, not failed).
  virtual bool Supports(const RunConfig& config) const = 0;
  // Runs one configuration. Errors: the run failed (the message says why).
  virtual Expected<RunResult> Run(const RunConfig& config) = 0;
};

// Shared validation for the built-in contenders: frame size within [kMinFrameBytes,
// kMaxFrameBytes], 1..16 queues, positive duration, distinct CPUs.
Status ValidateCommon(const RunConfig& config);

}  // namespace uvmbus::bench

#endif  // UVMBUS_BENCH_HARNESS_CONTENDER_H_
