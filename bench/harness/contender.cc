#include "bench/harness/contender.h"

#include <cmath>

#include "bench/harness/frames.h"

namespace uvmbus::bench {

std::string_view WorkloadName(Workload workload) {
  switch (workload) {
    case Workload::kThroughput:
      return "throughput";
    case Workload::kLatency:
      return "latency";
  }
  return "?";
}

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPoll:
      return "poll";
    case Mode::kInterrupt:
      return "interrupt";
  }
  return "?";
}

bool ParseWorkload(std::string_view text, Workload* out) {
  if (text == "throughput") {
    *out = Workload::kThroughput;
  } else if (text == "latency") {
    *out = Workload::kLatency;
  } else {
    return false;
  }
  return true;
}

bool ParseMode(std::string_view text, Mode* out) {
  if (text == "poll") {
    *out = Mode::kPoll;
  } else if (text == "interrupt") {
    *out = Mode::kInterrupt;
  } else {
    return false;
  }
  return true;
}

std::string RunConfig::Key() const {
  return fmt::format("{} {}B q{} {}", WorkloadName(workload), frame_bytes, queues,
                     ModeName(mode));
}

double RunResult::packets_per_second() const {
  return seconds > 0 ? static_cast<double>(packets) / seconds : 0;
}

double RunResult::bits_per_second() const {
  return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds : 0;
}

std::optional<double> RunResult::producer_cpu_ns_per_packet() const {
  if (packets == 0) return std::nullopt;
  return producer_cpu_seconds * 1e9 / static_cast<double>(packets);
}

std::optional<double> RunResult::consumer_cpu_ns_per_packet() const {
  if (packets == 0) return std::nullopt;
  return consumer_cpu_seconds * 1e9 / static_cast<double>(packets);
}

Status ValidateCommon(const RunConfig& config) {
  if (config.frame_bytes < kMinFrameBytes || config.frame_bytes > kMaxFrameBytes) {
    return MakeError(ErrorCode::kInvalidArgument, "frame size {} outside [{}, {}]",
                     config.frame_bytes, kMinFrameBytes, kMaxFrameBytes);
  }
  if (config.queues < 1 || config.queues > 16) {
    return MakeError(ErrorCode::kInvalidArgument, "queues {} outside [1, 16]", config.queues);
  }
  if (!(config.seconds > 0) || !std::isfinite(config.seconds)) {
    return MakeError(ErrorCode::kInvalidArgument, "duration must be positive");
  }
  if (config.producer_cpu == config.consumer_cpu) {
    return MakeError(ErrorCode::kInvalidArgument, "producer and consumer share CPU {}",
                     config.producer_cpu);
  }
  return Ok();
}

}  // namespace uvmbus::bench
