#include "bench/harness/bench_command.h"

#include <sys/resource.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/runner.h"

namespace uvmbus::bench {
namespace {

std::string Progress(const RunRecord& r) {
  std::string what;
  if (!r.ok) {
    what = "FAILED: " + r.error;
  } else if (r.config.workload == Workload::kLatency) {
    what = fmt::format("RTT p50 {:.0f} ns p99 {:.0f} ns", r.result.rtt_p50_ns.value_or(0),
                       r.result.rtt_p99_ns.value_or(0));
  } else {
    what = fmt::format("{:.3f} Mpps {:.2f} Gbit/s", r.result.packets_per_second() / 1e6,
                       r.result.bits_per_second() / 1e9);
    if (r.result.bad > 0) what += fmt::format(" ({} BAD frames)", r.result.bad);
  }
  const auto ns = [](const std::optional<double>& v) {
    return v ? fmt::format("{:.0f}", *v) : std::string("?");
  };
  return fmt::format("r{} {:<18} {:<30} {}  [{} {}/{} ns, foreign {}]", r.round, r.contender,
                     r.config.Key(), what, PlacementTagName(r.tag), ns(r.probe_before_ns),
                     ns(r.probe_after_ns),
                     r.foreign_cpus ? fmt::format("{:.2f}", *r.foreign_cpus) : "?");
}

// Parses ring sizes; prints the first bad one to `err`.
bool ParseSizes(const std::vector<std::string>& in, std::vector<uint32_t>* out, std::FILE* err) {
  out->clear();
  for (const auto& s : in) {
    const auto v = ParseSize(s);
    if (!v || *v == 0 || *v > (uint64_t{1} << 31)) {
      std::fprintf(err, "bad ring size '%s'\n", s.c_str());
      return false;
    }
    out->push_back(static_cast<uint32_t>(*v));
  }
  return true;
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string_view text) {
  uint64_t mult = 1;
  for (auto [suffix, m] : {std::pair<std::string_view, uint64_t>{"KiB", uint64_t{1} << 10},
                           {"MiB", uint64_t{1} << 20},
                           {"GiB", uint64_t{1} << 30},
                           {"K", uint64_t{1} << 10},
                           {"M", uint64_t{1} << 20},
                           {"G", uint64_t{1} << 30}}) {
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      text.remove_suffix(suffix.size());
      mult = m;
      break;
    }
  }
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

int RunBenchCommand(const BenchCommand& command, std::vector<std::unique_ptr<Contender>> extra,
                    std::FILE* out, std::FILE* err) {
  const bool quick = command.quick;
  const int rounds = command.rounds > 0 ? command.rounds : (quick ? 1 : 3);
  const double seconds = command.seconds > 0 ? command.seconds : (quick ? 0.25 : 0.5);
  const double idle_limit =
      command.idle_limit_seconds >= 0 ? command.idle_limit_seconds : (quick ? 1.0 : 60.0);
  if (command.cpus.size() != 2 || command.cpus[0] == command.cpus[1]) {
    std::fprintf(err, "--cpus needs two different CPUs (producer,consumer)\n");
    return 2;
  }

  BuiltinOptions builtin;
  if (!ParseSizes(command.raw_ring_sizes, &builtin.raw_ring_footprints, err) ||
      !ParseSizes(command.vmbus_ring_sizes, &builtin.vmbus_ring_sizes, err)) {
    return 2;
  }
  builtin.raw_ring_batch = command.batch;
  builtin.vmbus_ring_batch = command.batch;
  builtin.memif.testpmd = command.testpmd;
  if (quick) builtin.memif.min_samples = 1;
  auto owned = MakeBuiltinContenders(builtin);
  for (auto& c : extra) owned.push_back(std::move(c));

  std::vector<Contender*> contenders;
  std::set<std::string> wanted(command.contenders.begin(), command.contenders.end());
  for (auto& c : owned) {
    if (wanted.empty() || wanted.erase(c->name()) > 0) contenders.push_back(c.get());
  }
  if (!wanted.empty()) {
    std::fprintf(err, "unknown contender '%s' (see --list)\n", wanted.begin()->c_str());
    return 2;
  }
  if (command.list) {
    for (const auto& c : owned) {
      const Status st = c->CheckAvailable();
      std::fprintf(out, "%-20s %s%s\n", c->name().c_str(), c->description().c_str(),
                   st ? "" : fmt::format(" [{}]", st.error().message).c_str());
    }
    return 0;
  }

  RunConfig base;
  base.seconds = seconds;
  base.producer_cpu = command.cpus[0];
  base.consumer_cpu = command.cpus[1];
  base.check_every_byte = command.check_every_byte;
  std::vector<Mode> modes;
  for (const auto& m : command.modes) {
    Mode x;
    if (!ParseMode(m, &x)) {
      std::fprintf(err, "unknown mode '%s' (poll, interrupt)\n", m.c_str());
      return 2;
    }
    modes.push_back(x);
  }
  RunnerOptions runner;
  runner.rounds = rounds;
  runner.thresholds = command.summary.thresholds;
  for (const auto& w : command.workloads) {
    Workload x;
    if (!ParseWorkload(w, &x)) {
      std::fprintf(err, "unknown workload '%s' (throughput, latency)\n", w.c_str());
      return 2;
    }
    const Workload one[] = {x};
    const auto& sizes = x == Workload::kLatency ? command.latency_frames : command.frames;
    auto part = ConfigMatrix(base, one, sizes, command.queues, modes);
    runner.configs.insert(runner.configs.end(), part.begin(), part.end());
  }
  for (const RunConfig& c : runner.configs) {
    if (Status st = ValidateCommon(c); !st) {
      std::fprintf(err, "%s: %s\n", c.Key().c_str(), st.error().message.c_str());
      return 2;
    }
  }
  runner.on_record = [err](const RunRecord& r) {
    std::fprintf(err, "%s\n", Progress(r).c_str());
    std::fflush(err);
  };

  if (command.nice && ::setpriority(PRIO_PROCESS, 0, *command.nice) != 0) {
    std::fprintf(err, "note: cannot set nice %d (%s); running at the current priority\n",
                 *command.nice, std::strerror(errno));
  }
  SystemEnvironmentOptions env_options;
  env_options.wait_for_idle = command.wait_for_idle;
  env_options.idle.limit_seconds = idle_limit;
  if (quick) {
    env_options.idle.sample_seconds = 0.2;
    env_options.probe.window_seconds = 0.01;
  }
  env_options.probe_placement = command.probe_placement;
  SystemEnvironment environment(env_options);

  RunLog log = RunRounds(runner, contenders, environment);
  const Report report = BuildReport(std::move(log), command.summary);
  const bool json_stdout = command.json_path == "-";
  std::fputs(FormatTable(report).c_str(), json_stdout ? err : out);
  if (!command.json_path.empty()) {
    // Error strings may carry bytes from other programs' logs: replace invalid UTF-8 rather
    // than throw.
    const std::string text =
        ReportToJson(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (json_stdout) {
      std::fwrite(text.data(), 1, text.size(), out);
    } else {
      std::ofstream file(command.json_path);
      file << text;
      if (!file) {
        std::fprintf(err, "cannot write %s\n", command.json_path.c_str());
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace uvmbus::bench
