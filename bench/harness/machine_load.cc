#include "bench/harness/machine_load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <chrono>
#include <string>
#include <thread>

#include "bench/harness/process_pair.h"

namespace uvmbus::bench {
namespace {

double Seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}

}  // namespace

Expected<CpuTimes> ParseProcStat(std::string_view text) {
  const size_t eol = text.find('\n');
  std::string_view line = text.substr(0, eol);
  if (line.substr(0, 4) != "cpu " && line.substr(0, 4) != "cpu\t") {
    return MakeError(ErrorCode::kMalformed, "/proc/stat does not start with the cpu line");
  }
  line.remove_prefix(3);
  // user nice system idle iowait irq softirq steal [guest guest_nice]
  std::array<uint64_t, 8> v{};
  size_t n = 0;
  while (n < v.size()) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), v[n]);
    if (ec != std::errc()) {
      return MakeError(ErrorCode::kMalformed, "/proc/stat cpu field {} is not a number", n);
    }
    line.remove_prefix(static_cast<size_t>(ptr - line.data()));
    ++n;
  }
  // Kernels since 2.6.11 have all eight; fewer means this is not a /proc/stat we understand.
  if (n < v.size()) {
    return MakeError(ErrorCode::kMalformed, "/proc/stat cpu line has {} fields, need 8", n);
  }
  CpuTimes t;
  const uint64_t idle = v[3] + v[4];
  t.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  t.total = t.busy + idle;
  return t;
}

Expected<CpuTimes> ReadProcStat() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!in || !std::getline(in, line)) {
    return MakeError(ErrorCode::kIo, "cannot read /proc/stat");
  }
  return ParseProcStat(line);
}

std::optional<double> BusyFraction(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total || after.busy < before.busy) return std::nullopt;
  const double busy = static_cast<double>(after.busy - before.busy);
  return std::clamp(busy / static_cast<double>(after.total - before.total), 0.0, 1.0);
}

std::optional<double> ForeignCpus(uint64_t busy_ticks, long ticks_per_second,
                                  double own_cpu_seconds, double wall_seconds) {
  if (!(wall_seconds > 0) || ticks_per_second <= 0) return std::nullopt;
  const double busy_s = static_cast<double>(busy_ticks) / static_cast<double>(ticks_per_second);
  return std::max(0.0, (busy_s - own_cpu_seconds) / wall_seconds);
}

double OwnCpuSeconds() {
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  return Seconds(self.ru_utime) + Seconds(self.ru_stime) + Seconds(children.ru_utime) +
         Seconds(children.ru_stime);
}

bool WaitForIdle(const IdleOptions& options) {
  const int64_t deadline = NowNs() + static_cast<int64_t>(options.limit_seconds * 1e9);
  const auto sample = std::chrono::duration<double>(options.sample_seconds);
  do {
    auto a = ReadProcStat();
    std::this_thread::sleep_for(sample);
    auto b = ReadProcStat();
    if (!a || !b) return false;  // cannot tell: do not wait for nothing
    const auto busy = BusyFraction(*a, *b);
    if (busy && *busy < options.busy_below) return true;
  } while (NowNs() < deadline);
  return false;
}

void ForeignCpuMeter::Start() {
  auto t = ReadProcStat();
  start_ = t ? std::optional<CpuTimes>(*t) : std::nullopt;
  own_cpu_start_ = OwnCpuSeconds();
  start_ns_ = NowNs();
}

std::optional<double> ForeignCpuMeter::Stop() const {
  if (!start_) return std::nullopt;
  auto now = ReadProcStat();
  if (!now || now->busy < start_->busy) return std::nullopt;
  const double wall = static_cast<double>(NowNs() - start_ns_) * 1e-9;
  return ForeignCpus(now->busy - start_->busy, ::sysconf(_SC_CLK_TCK),
                     OwnCpuSeconds() - own_cpu_start_, wall);
}

}  // namespace uvmbus::bench
