#include "bench/harness/streaming_pair.h"

namespace uvmbus::bench {

Expected<RunResult> RunStreamingPair(const RunConfig& config, const SideFn& producer,
                                     const SideFn& consumer,
                                     std::span<const PerPacketCounter> per_packet) {
  PairSpec spec;
  spec.producer_cpu = config.producer_cpu;
  spec.consumer_cpu = config.consumer_cpu;
  spec.run_seconds = config.seconds;
  auto outcome = RunPair(spec, producer, consumer);
  if (!outcome) return unexpected(outcome.error());

  const SideReport& prod = outcome->producer.report;
  const SideReport& cons = outcome->consumer.report;
  RunResult r;
  r.packets = cons.packets;
  r.bytes = cons.bytes;
  r.sent = prod.packets;
  r.bad = cons.bad;
  r.seconds = cons.first_ns > 0 ? static_cast<double>(cons.last_ns - cons.first_ns) * 1e-9 : 0;
  r.producer_cpu_seconds = outcome->producer.cpu_seconds;
  r.consumer_cpu_seconds = outcome->consumer.cpu_seconds;
  if (r.packets > 0) {
    for (const PerPacketCounter& c : per_packet) {
      const SideReport& side = c.producer_side ? prod : cons;
      r.extras.push_back({c.name, static_cast<double>(side.counters[c.slot]) /
                                      static_cast<double>(r.packets)});
    }
  }
  return r;
}

}  // namespace uvmbus::bench
