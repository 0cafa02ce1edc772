#include "bench/harness/runner.h"

#include <sys/utsname.h>

#include "bench/harness/process_pair.h"

namespace uvmbus::bench {

bool SystemEnvironment::WaitForIdle() {
  if (!options_.wait_for_idle) return false;
  return bench::WaitForIdle(options_.idle);
}

Expected<double> SystemEnvironment::ProbePlacement(int cpu_a, int cpu_b) {
  if (!options_.probe_placement) {
    return MakeError(ErrorCode::kUnavailable, "placement probe switched off");
  }
  ProbeOptions probe = options_.probe;
  probe.cpu_a = cpu_a;
  probe.cpu_b = cpu_b;
  return ProbeCacheLineRtt(probe);
}

MachineInfo DescribeMachine() {
  MachineInfo m;
  m.usable_cpus = UsableCpuCount();
  utsname u{};
  if (::uname(&u) == 0) m.kernel = u.release;
  return m;
}

std::vector<RunConfig> ConfigMatrix(const RunConfig& base, std::span<const Workload> workloads,
                                    std::span<const uint32_t> frame_sizes,
                                    std::span<const uint32_t> queues,
                                    std::span<const Mode> modes) {
  std::vector<RunConfig> out;
  for (Workload w : workloads) {
    for (uint32_t f : frame_sizes) {
      for (uint32_t q : queues) {
        for (Mode m : modes) {
          RunConfig c = base;
          c.workload = w;
          c.frame_bytes = f;
          c.queues = q;
          c.mode = m;
          out.push_back(c);
        }
      }
    }
  }
  return out;
}

RunLog RunRounds(const RunnerOptions& options, std::span<Contender* const> contenders,
                 BenchEnvironment& environment) {
  RunLog log;
  log.rounds = options.rounds;
  log.machine = DescribeMachine();
  log.configs = options.configs;
  std::vector<Contender*> usable;
  for (Contender* c : contenders) {
    ContenderInfo info{c->name(), c->description(), true, {}};
    if (Status st = c->CheckAvailable(); !st) {
      info.available = false;
      info.reason = st.error().message;
    } else {
      usable.push_back(c);
    }
    log.contenders.push_back(std::move(info));
  }
  for (int round = 0; round < options.rounds; ++round) {
    for (const RunConfig& config : options.configs) {
      const size_t n = usable.size();
      for (size_t i = 0; i < n; ++i) {
        Contender* c = usable[(i + static_cast<size_t>(round)) % n];
        if (!c->Supports(config)) continue;
        RunRecord rec;
        rec.round = round;
        rec.contender = c->name();
        rec.config = config;
        rec.idle_before = environment.WaitForIdle();
        auto before = environment.ProbePlacement(config.producer_cpu, config.consumer_cpu);
        environment.BeginRun();
        const int64_t t0 = NowNs();
        Expected<RunResult> result = c->Run(config);
        rec.wall_seconds = static_cast<double>(NowNs() - t0) * 1e-9;
        rec.foreign_cpus = environment.EndRun();
        auto after = environment.ProbePlacement(config.producer_cpu, config.consumer_cpu);
        for (const auto* probe : {&before, &after}) {
          if (!*probe) rec.probe_error = probe->error().ToString();
        }
        if (before) rec.probe_before_ns = *before;
        if (after) rec.probe_after_ns = *after;
        rec.tag = ClassifyPlacement(rec.probe_before_ns, rec.probe_after_ns, options.thresholds);
        if (result) {
          rec.ok = true;
          rec.result = std::move(*result);
        } else {
          rec.error = result.error().ToString();
        }
        if (options.on_record) options.on_record(rec);
        log.records.push_back(std::move(rec));
      }
    }
  }
  return log;
}

}  // namespace uvmbus::bench
