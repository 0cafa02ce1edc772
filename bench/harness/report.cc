#include "bench/harness/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <tuple>

namespace uvmbus::bench {
namespace {

constexpr std::array<PlacementTag, 4> kTagOrder = {PlacementTag::kFast, PlacementTag::kSlow,
                                                    PlacementTag::kMixed, PlacementTag::kUnknown};

bool Usable(const RunRecord& r) { return r.ok && r.result.bad == 0 && r.result.packets > 0; }

bool Clean(const RunRecord& r, double limit) {
  // Unknown foreign CPU (no /proc/stat) cannot be held against a run.
  return !r.foreign_cpus || *r.foreign_cpus < limit;
}

Summary SummarizeOf(const std::vector<const RunRecord*>& runs,
                    const std::function<std::optional<double>(const RunRecord&)>& get) {
  std::vector<double> v;
  for (const RunRecord* r : runs) {
    if (auto x = get(*r)) v.push_back(*x);
  }
  return Summarize(v);
}

SummaryRow SummarizeGroup(const std::vector<const RunRecord*>& group,
                          const SummaryOptions& options) {
  SummaryRow row;
  row.config = group.front()->config;
  row.contender = group.front()->contender;
  row.tag = group.front()->tag;
  row.runs = group.size();
  std::vector<const RunRecord*> usable, clean;
  for (const RunRecord* r : group) {
    if (!Usable(*r)) {
      ++row.failed;
      row.last_error = !r->ok ? r->error
                       : r->result.bad > 0
                           ? fmt::format("{} frames failed the content check", r->result.bad)
                           : std::string("no frame arrived");
      continue;
    }
    usable.push_back(r);
    if (Clean(*r, options.foreign_cpu_limit)) clean.push_back(r);
  }
  const bool use_clean = clean.size() >= options.min_clean_runs || clean.size() == usable.size();
  const std::vector<const RunRecord*>& used = use_clean ? clean : usable;
  row.contaminated = !use_clean;
  if (used.empty()) return row;

  const bool latency = row.config.workload == Workload::kLatency;
  if (latency) {
    row.primary = SummarizeOf(used, [](const RunRecord& r) { return r.result.rtt_p50_ns; });
    row.rtt_p99_ns = SummarizeOf(used, [](const RunRecord& r) { return r.result.rtt_p99_ns; });
  } else {
    row.primary = SummarizeOf(used, [](const RunRecord& r) -> std::optional<double> {
      return r.result.packets_per_second();
    });
    row.bits_per_second = SummarizeOf(used, [](const RunRecord& r) -> std::optional<double> {
      return r.result.bits_per_second();
    });
  }
  row.producer_cpu_ns = SummarizeOf(
      used, [](const RunRecord& r) { return r.result.producer_cpu_ns_per_packet(); });
  row.consumer_cpu_ns = SummarizeOf(
      used, [](const RunRecord& r) { return r.result.consumer_cpu_ns_per_packet(); });
  for (const RunRecord* r : used) {
    row.cpu_estimated = row.cpu_estimated || r->result.cpu_estimated;
    row.content_checked = row.content_checked && r->result.content_checked;
  }
  // Extras, in the order they first appear.
  std::vector<std::string> names;
  for (const RunRecord* r : used) {
    for (const auto& e : r->result.extras) {
      if (std::find(names.begin(), names.end(), e.name) == names.end()) names.push_back(e.name);
    }
  }
  for (const auto& name : names) {
    row.extras.push_back({name, SummarizeOf(used, [&](const RunRecord& r) {
                            std::optional<double> v;
                            for (const auto& e : r.result.extras) {
                              if (e.name == name) v = e.value;
                            }
                            return v;
                          })});
  }
  return row;
}

std::string FormatCount(double v) {
  if (!std::isfinite(v)) return "-";
  return fmt::format("{:.0f}", v);
}

std::string FormatNs(const Summary& s) {
  if (s.n == 0) return "-";
  return s.median >= 1000 ? fmt::format("{:.0f}", s.median) : fmt::format("{:.1f}", s.median);
}

std::string ShortExtraName(std::string name) {
  for (auto [from, to] : {std::pair<std::string_view, std::string_view>{"_per_packet", "/pkt"},
                          {"_per_round_trip", "/rt"}}) {
    if (name.size() > from.size() && name.ends_with(from)) {
      name.replace(name.size() - from.size(), from.size(), to);
    }
  }
  return name;
}

std::string Notes(const SummaryRow& row) {
  std::vector<std::string> notes;
  if (row.contaminated) notes.push_back("contaminated");
  if (row.failed > 0) notes.push_back(fmt::format("{} failed", row.failed));
  if (row.cpu_estimated) notes.push_back("cpu estimated");
  if (!row.content_checked) notes.push_back("content not checked");
  std::string s;
  for (const auto& n : notes) s += (s.empty() ? "" : ", ") + n;
  return s;
}

nlohmann::json SummaryJson(const Summary& s) {
  if (s.n == 0) return nullptr;
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

nlohmann::json OptionalJson(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json ConfigJson(const RunConfig& c) {
  return {{"key", c.Key()},
          {"workload", WorkloadName(c.workload)},
          {"frame_bytes", c.frame_bytes},
          {"queues", c.queues},
          {"mode", ModeName(c.mode)},
          {"seconds", c.seconds},
          {"producer_cpu", c.producer_cpu},
          {"consumer_cpu", c.consumer_cpu}};
}

}  // namespace

Report BuildReport(RunLog log, const SummaryOptions& options) {
  Report report;
  report.options = options;
  report.log = std::move(log);
  const RunLog& lg = report.log;

  // Orders: configurations as given (then any only seen in records), contenders as listed.
  std::vector<std::string> config_keys;
  for (const auto& c : lg.configs) config_keys.push_back(c.Key());
  std::vector<std::string> contender_names;
  for (const auto& c : lg.contenders) contender_names.push_back(c.name);
  for (const auto& r : lg.records) {
    if (std::find(config_keys.begin(), config_keys.end(), r.config.Key()) == config_keys.end()) {
      config_keys.push_back(r.config.Key());
    }
    if (std::find(contender_names.begin(), contender_names.end(), r.contender) ==
        contender_names.end()) {
      contender_names.push_back(r.contender);
    }
  }
  std::map<std::tuple<std::string, std::string, PlacementTag>, std::vector<const RunRecord*>>
      groups;
  for (const auto& r : lg.records) groups[{r.config.Key(), r.contender, r.tag}].push_back(&r);

  for (const auto& key : config_keys) {
    for (const auto& name : contender_names) {
      for (PlacementTag tag : kTagOrder) {
        auto it = groups.find({key, name, tag});
        if (it != groups.end()) report.rows.push_back(SummarizeGroup(it->second, options));
      }
    }
  }
  // Ratios against the baseline row of the same configuration and tag.
  for (SummaryRow& row : report.rows) {
    const std::string& base = row.config.workload == Workload::kLatency
                                  ? options.latency_baseline
                                  : options.throughput_baseline;
    if (base.empty()) continue;
    for (const SummaryRow& b : report.rows) {
      if (b.contender == base && b.tag == row.tag && b.config.Key() == row.config.Key()) {
        row.baseline = base;
        if (row.primary.n > 0 && b.primary.n > 0) {
          row.ratio = Ratio(row.primary.median, b.primary.median);
        }
      }
    }
    if (row.config.workload == Workload::kLatency || row.primary.n == 0) continue;
    for (const std::string& other : options.also_compare) {
      if (other == row.contender || other == base) continue;
      for (const SummaryRow& b : report.rows) {
        if (b.contender == other && b.tag == row.tag && b.config.Key() == row.config.Key() &&
            b.primary.n > 0) {
          if (auto r = Ratio(row.primary.median, b.primary.median)) {
            row.other_ratios.emplace_back(other, *r);
          }
        }
      }
    }
  }
  return report;
}

std::string FormatTable(const Report& report) {
  const RunLog& lg = report.log;
  std::string out;
  out += fmt::format(
      "uvmbus-bench: {} round(s), {} run(s); placement: fast = both probes < {:.0f} ns, slow = "
      "both > {:.0f} ns; medians [min..max] over clean runs (foreign CPU < {:.2f})\n",
      lg.rounds, lg.records.size(), report.options.thresholds.fast_below_ns,
      report.options.thresholds.slow_above_ns, report.options.foreign_cpu_limit);
  for (const auto& c : lg.contenders) {
    if (!c.available) out += fmt::format("not run: {} ({})\n", c.name, c.reason);
  }
  std::string current;
  size_t ratio_width = 10;
  auto close_block = [&] {
    if (!current.empty()) out += fmt::format("  {:#<100}\n", "");
  };
  for (const SummaryRow& row : report.rows) {
    const bool latency = row.config.workload == Workload::kLatency;
    const std::string key = row.config.Key();
    if (key != current) {
      close_block();
      current = key;
      const std::string title = fmt::format(" {} ", key);
      const size_t left = (100 - std::min<size_t>(title.size(), 90)) / 2;
      out += fmt::format("\n  {}{}{}\n", std::string(left, '#'), title,
                         std::string(100 - left - title.size(), '#'));
      const std::string& base = latency ? report.options.latency_baseline
                                        : report.options.throughput_baseline;
      const std::string vs = base.empty() ? "" : "vs " + base;
      ratio_width = std::max<size_t>(10, vs.size());
      if (latency) {
        out += fmt::format("  {:<20} {:<7} {:>3}  {:>10} {:<25} {:>10}  {:>17}  {:>{}}  {}\n",
                           "contender", "tag", "n", "RTT-p50-ns", "[min..max]", "RTT-p99-ns",
                           "CPU-ns/rt tx|rx", vs, ratio_width, "notes / counters");
      } else {
        out += fmt::format("  {:<20} {:<7} {:>3}  {:>12} {:<27} {:>14}  {:>17}  {:>{}}  {}\n",
                           "contender", "tag", "n", "Rx-pps", "[min..max]", "Rx-bps",
                           "CPU-ns/pkt tx|rx", vs, ratio_width, "notes / counters");
      }
    }
    std::string tail = Notes(row);
    for (const auto& [other, r] : row.other_ratios) {
      tail += fmt::format("{}vs {} {:.3f}", tail.empty() ? "" : ", ", other, r);
    }
    for (const auto& e : row.extras) {
      tail += fmt::format("{}{} {:.4g}", tail.empty() ? "" : ", ", ShortExtraName(e.name),
                          e.summary.median);
    }
    if (row.primary.n == 0) {
      out += fmt::format("  {:<20} {:<7} {:>3}  no usable run: {}\n", row.contender,
                         PlacementTagName(row.tag), 0, row.last_error);
      continue;
    }
    const std::string cpu =
        fmt::format("{}|{}", FormatNs(row.producer_cpu_ns), FormatNs(row.consumer_cpu_ns));
    const std::string ratio = row.ratio ? fmt::format("{:.3f}", *row.ratio) : "";
    if (latency) {
      const std::string range =
          fmt::format("[{:.0f}..{:.0f}]", row.primary.min, row.primary.max);
      out += fmt::format("  {:<20} {:<7} {:>3}  {:>10.0f} {:<25} {:>10.0f}  {:>17}  {:>{}}  {}\n",
                         row.contender, PlacementTagName(row.tag), row.primary.n,
                         row.primary.median, range, row.rtt_p99_ns.median, cpu, ratio,
                         ratio_width, tail);
    } else {
      const std::string range = fmt::format("[{}..{}]", FormatCount(row.primary.min),
                                            FormatCount(row.primary.max));
      out += fmt::format("  {:<20} {:<7} {:>3}  {:>12} {:<27} {:>14}  {:>17}  {:>{}}  {}\n",
                         row.contender, PlacementTagName(row.tag), row.primary.n,
                         FormatCount(row.primary.median), range,
                         FormatCount(row.bits_per_second.median), cpu, ratio, ratio_width,
                         tail);
    }
  }
  close_block();
  return out;
}

nlohmann::json RunRecordToJson(const RunRecord& r) {
  nlohmann::json j = {{"round", r.round},
                      {"contender", r.contender},
                      {"config", ConfigJson(r.config)},
                      {"placement",
                       {{"tag", PlacementTagName(r.tag)},
                        {"probe_before_ns", OptionalJson(r.probe_before_ns)},
                        {"probe_after_ns", OptionalJson(r.probe_after_ns)}}},
                      {"foreign_cpus", OptionalJson(r.foreign_cpus)},
                      {"idle_before", r.idle_before},
                      {"wall_seconds", r.wall_seconds},
                      {"ok", r.ok}};
  if (!r.probe_error.empty()) j["placement"]["probe_error"] = r.probe_error;
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  const RunResult& x = r.result;
  nlohmann::json res = {{"packets", x.packets},
                        {"bytes", x.bytes},
                        {"sent_packets", x.sent},
                        {"bad_packets", x.bad},
                        {"seconds", x.seconds},
                        {"producer_cpu_seconds", x.producer_cpu_seconds},
                        {"consumer_cpu_seconds", x.consumer_cpu_seconds},
                        {"producer_cpu_ns_per_packet",
                         OptionalJson(x.producer_cpu_ns_per_packet())},
                        {"consumer_cpu_ns_per_packet",
                         OptionalJson(x.consumer_cpu_ns_per_packet())},
                        {"cpu_estimated", x.cpu_estimated},
                        {"content_checked", x.content_checked}};
  if (r.config.workload == Workload::kLatency) {
    res["rtt_p50_ns"] = OptionalJson(x.rtt_p50_ns);
    res["rtt_p99_ns"] = OptionalJson(x.rtt_p99_ns);
  } else {
    res["rx_pps"] = x.packets_per_second();
    res["rx_bits_per_s"] = x.bits_per_second();
  }
  nlohmann::json extras = nlohmann::json::object();
  for (const auto& e : x.extras) extras[e.name] = e.value;
  res["extras"] = extras;
  j["result"] = res;
  return j;
}

nlohmann::json ReportToJson(const Report& report) {
  const RunLog& lg = report.log;
  const SummaryOptions& o = report.options;
  nlohmann::json j;
  j["schema"] = "uvmbus-bench/1";
  j["units"] = {
      {"rx_pps", "packets per second received intact (median for summary rows)"},
      {"rx_bits_per_s", "frame bits per second received (frame bytes * 8, no Ethernet overhead)"},
      {"rtt_p50_ns", "round-trip time, 50th percentile, nanoseconds"},
      {"rtt_p99_ns", "round-trip time, 99th percentile, nanoseconds"},
      {"producer_cpu_ns_per_packet", "CPU nanoseconds of the producer process per packet received "
                                     "(per round trip for latency)"},
      {"consumer_cpu_ns_per_packet", "CPU nanoseconds of the consumer process per packet received "
                                     "(per round trip for latency)"},
      {"*_per_packet", "events per packet received (extras)"},
      {"foreign_cpus", "CPU-seconds per second used by other processes during the run"},
      {"probe_before_ns", "cache-line ping-pong round trip p50 before the run, nanoseconds"},
      {"probe_after_ns", "cache-line ping-pong round trip p50 after the run, nanoseconds"},
      {"seconds", "seconds"},
      {"frame_bytes", "bytes per frame"},
      {"ratio", "contender / baseline of the primary figure (rx_pps or rtt_p50_ns), same "
                "configuration and placement tag"}};
  j["settings"] = {{"rounds", lg.rounds},
                   {"throughput_baseline", o.throughput_baseline},
                   {"latency_baseline", o.latency_baseline},
                   {"foreign_cpu_limit_cpus", o.foreign_cpu_limit},
                   {"min_clean_runs", o.min_clean_runs},
                   {"placement_fast_below_ns", o.thresholds.fast_below_ns},
                   {"placement_slow_above_ns", o.thresholds.slow_above_ns}};
  j["machine"] = {{"usable_cpus", lg.machine.usable_cpus}, {"kernel", lg.machine.kernel}};
  nlohmann::json contenders = nlohmann::json::array();
  for (const auto& c : lg.contenders) {
    nlohmann::json cj = {{"name", c.name}, {"description", c.description},
                         {"available", c.available}};
    if (!c.available) cj["reason"] = c.reason;
    contenders.push_back(cj);
  }
  j["contenders"] = contenders;
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : lg.records) runs.push_back(RunRecordToJson(r));
  j["runs"] = runs;
  nlohmann::json summary = nlohmann::json::array();
  for (const SummaryRow& row : report.rows) {
    const bool latency = row.config.workload == Workload::kLatency;
    nlohmann::json s = {{"config", ConfigJson(row.config)},
                        {"contender", row.contender},
                        {"tag", PlacementTagName(row.tag)},
                        {"runs", row.runs},
                        {"failed", row.failed},
                        {"contaminated", row.contaminated},
                        {"producer_cpu_ns_per_packet", SummaryJson(row.producer_cpu_ns)},
                        {"consumer_cpu_ns_per_packet", SummaryJson(row.consumer_cpu_ns)},
                        {"cpu_estimated", row.cpu_estimated},
                        {"content_checked", row.content_checked},
                        {"baseline", row.baseline.empty() ? nlohmann::json(nullptr)
                                                          : nlohmann::json(row.baseline)},
                        {"ratio", OptionalJson(row.ratio)}};
    nlohmann::json ratios = nlohmann::json::object();
    if (row.ratio) ratios[row.baseline] = *row.ratio;
    for (const auto& [other, r] : row.other_ratios) ratios[other] = r;
    s["ratios"] = ratios;
    if (latency) {
      s["rtt_p50_ns"] = SummaryJson(row.primary);
      s["rtt_p99_ns"] = SummaryJson(row.rtt_p99_ns);
    } else {
      s["rx_pps"] = SummaryJson(row.primary);
      s["rx_bits_per_s"] = SummaryJson(row.bits_per_second);
    }
    nlohmann::json extras = nlohmann::json::object();
    for (const auto& e : row.extras) extras[e.name] = SummaryJson(e.summary);
    s["extras"] = extras;
    if (!row.last_error.empty()) s["last_error"] = row.last_error;
    summary.push_back(s);
  }
  j["summary"] = summary;
  return j;
}

}  // namespace uvmbus::bench
