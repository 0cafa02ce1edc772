// DPDK memif PMD contender: two dpdk-testpmd processes, txonly (client, producer core) ->
// rxonly (server, consumer core) over net_memif in copy mode, --no-huge, as in the peers'
// README (section D / "How to reproduce"). The harness never installs DPDK: without
// dpdk-testpmd on PATH the contender reports "not installed".
//
// Rates come from the server's once-per-second "Rx-pps: N  Rx-bps: N" lines (testpmd
// --stats-period 1): the zero samples and the first non-zero one (a partial second) are
// dropped, and the median of the rest is the run's rate. The run lasts until enough samples
// are logged (read live through stdbuf -oL), so testpmd's variable start-up does not count.
// testpmd's forwarding cores spin at 100 %, so each side's CPU per packet is 1 s / rate
// (marked as an estimate); rxonly does not look at the frames, so the content is not checked.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "bench/harness/builtin_contenders.h"
#include "bench/harness/process_pair.h"
#include "bench/harness/testpmd_stats.h"

extern char** environ;

namespace uvmbus::bench {
namespace {

namespace fs = std::filesystem;

// Smallest frame testpmd's txonly builds (Ethernet + IPv4 + UDP headers fit), largest that
// fits one default 2048-byte memif buffer without chaining.
constexpr uint32_t kMinTestpmdFrame = 64;
constexpr uint32_t kMaxTestpmdFrame = 1518;

std::atomic<uint32_t> g_run_counter{0};

// A spawned testpmd. Killed and reaped on destruction if still running, so no error path
// leaves a process behind.
class Spawned {
 public:
  Spawned() = default;
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() { Kill(); }

  Status Start(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return unexpected(Error::FromErrno("posix_spawn " + argv[0], rc));
    }
    return Ok();
  }

  // True once the process has exited (reaps it).
  bool Exited() {
    if (pid_ <= 0) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) pid_ = -1;
    return pid_ <= 0;
  }

  // SIGINT: testpmd's orderly shutdown, which also flushes its log.
  // Sent once: a second SIGINT could cut testpmd's shutdown (and its log) short.
  void Interrupt() {
    if (!interrupted_ && !Exited()) ::kill(pid_, SIGINT);
    interrupted_ = true;
  }

  // Interrupt(), then waits up to `timeout_s`; SIGKILL after that. True if it exited on its
  // own.
  bool Stop(double timeout_s) {
    if (Exited()) return true;
    Interrupt();
    const int64_t deadline = NowNs() + static_cast<int64_t>(timeout_s * 1e9);
    while (NowNs() < deadline) {
      if (Exited()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Kill();
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool interrupted_ = false;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The last `lines` lines of `text` (for error messages), on one line.
std::string Tail(const std::string& text, int lines) {
  size_t pos = text.size();
  for (int i = 0; i < lines && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  std::string t = text.substr(pos);
  std::replace(t.begin(), t.end(), '\n', ' ');
  return t;
}

bool IsSocket(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

class MemifContender final : public Contender {
 public:
  explicit MemifContender(const MemifOptions& options) : options_(options) {}

  std::string name() const override { return "dpdk-memif"; }
  std::string description() const override {
    return fmt::format(
        "DPDK memif PMD (copy mode): dpdk-testpmd txonly -> rxonly, --no-huge -m {}, "
        "rates from testpmd's Rx-pps samples",
        options_.memory_mb);
  }
  Status CheckAvailable() const override {
    if (FindExecutable(options_.testpmd).empty()) {
      return MakeError(ErrorCode::kUnavailable, "not installed: {} not found on PATH",
                       options_.testpmd);
    }
    return Ok();
  }
  bool Supports(const RunConfig& config) const override {
    // The PMD polls by design: no interrupt mode.
    return config.workload == Workload::kThroughput && config.mode == Mode::kPoll &&
           config.queues == 1 && config.frame_bytes >= kMinTestpmdFrame &&
           config.frame_bytes <= kMaxTestpmdFrame && ValidateCommon(config).has_value();
  }
  Expected<RunResult> Run(const RunConfig& config) override;

 private:
  MemifOptions options_;
};

Expected<RunResult> MemifContender::Run(const RunConfig& config) {
  if (!Supports(config)) {
    return MakeError(ErrorCode::kInvalidArgument, "{} cannot run {}", name(), config.Key());
  }
  const std::string testpmd = FindExecutable(options_.testpmd);
  if (testpmd.empty()) {
    return MakeError(ErrorCode::kUnavailable, "not installed: {} not found on PATH",
                     options_.testpmd);
  }
  // A private directory for the socket and logs, and EAL file prefixes no one else uses.
  std::string tmpl = (fs::temp_directory_path() / "uvmbus-bench-memif-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return unexpected(Error::FromErrno("mkdtemp", errno));
  }
  const fs::path dir = tmpl;
  const std::string prefix = fmt::format("uvmbus-bench-{}-{}", ::getpid(),
                                         g_run_counter.fetch_add(1, std::memory_order_relaxed));
  const std::string server_prefix = prefix + "-rx";
  const std::string client_prefix = prefix + "-tx";
  // Runs on every exit path: our temp dir and the runtime dirs EAL made for our prefixes.
  struct Cleanup {
    fs::path dir;
    std::vector<fs::path> runtime;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
      for (const auto& r : runtime) fs::remove_all(r, ec);
    }
  } cleanup{dir,
            {fs::path(options_.runtime_dir) / server_prefix,
             fs::path(options_.runtime_dir) / client_prefix}};

  const fs::path sock = dir / "memif.sock";
  const fs::path server_log = dir / "rx.log";
  const fs::path client_log = dir / "tx.log";
  const int p = config.producer_cpu;
  const int c = config.consumer_cpu;
  const std::string lcores = fmt::format("{},{}", p, c);
  const std::string mem = std::to_string(options_.memory_mb);
  auto common = [&](const std::string& file_prefix, int main_lcore, const std::string& vdev) {
    return std::vector<std::string>{testpmd, "-l", lcores, "--main-lcore",
                                    std::to_string(main_lcore), "--no-huge", "-m", mem,
                                    "--no-pci", "--no-shconf", "--file-prefix", file_prefix,
                                    "--vdev=" + vdev, "--"};
  };
  // Server: main lcore on the producer CPU, so its single forwarding lcore is the consumer
  // CPU; the client the other way round.
  auto server_argv = common(server_prefix, p,
                            fmt::format("net_memif0,role=server,socket={},socket-abstract=no,id=0",
                                        sock.string()));
  for (const char* a : {"--forward-mode=rxonly", "--stats-period=1", "--nb-cores=1",
                        "--total-num-mbufs=32768", "--no-mlockall"}) {
    server_argv.emplace_back(a);
  }
  auto client_argv = common(client_prefix, c,
                            fmt::format("net_memif0,role=client,socket={},socket-abstract=no,id=0",
                                        sock.string()));
  for (const char* a : {"--forward-mode=txonly", "--stats-period=1", "--nb-cores=1",
                        "--total-num-mbufs=32768", "--no-mlockall"}) {
    client_argv.emplace_back(a);
  }
  client_argv.push_back(fmt::format("--txpkts={}", config.frame_bytes));

  // stdbuf -oL makes testpmd's stdout line-buffered, so its rate lines can be read live.
  const std::string stdbuf = FindExecutable("stdbuf");
  const bool live = !stdbuf.empty();
  if (live) server_argv.insert(server_argv.begin(), {stdbuf, "-oL"});

  Spawned server, client;
  if (Status st = server.Start(server_argv, server_log.string()); !st) {
    return unexpected(st.error());
  }
  // Ready when the server's listening socket exists (its log is block-buffered and says
  // nothing until it exits).
  const int64_t ready_deadline =
      NowNs() + static_cast<int64_t>(options_.server_start_timeout_s * 1e9);
  while (!IsSocket(sock)) {
    if (server.Exited()) {
      return MakeError(ErrorCode::kUnavailable, "testpmd (rxonly) exited during start: {}",
                       Tail(ReadFile(server_log), 4));
    }
    if (NowNs() > ready_deadline) {
      server.Stop(5);
      return MakeError(ErrorCode::kTimeout, "testpmd (rxonly) did not open {} in {} s: {}",
                       sock.string(), options_.server_start_timeout_s,
                       Tail(ReadFile(server_log), 4));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (Status st = client.Start(client_argv, client_log.string()); !st) {
    server.Stop(5);
    return unexpected(st.error());
  }
  // Traffic until the server has logged the samples we need: the first non-zero one (a
  // partial second) plus `wanted` whole ones. Its log is line-buffered under stdbuf, so we
  // watch it; without stdbuf we can only wait long enough and read the log at exit.
  const auto wanted = static_cast<size_t>(
      std::max<double>(options_.min_samples, std::ceil(config.seconds)));
  const double budget_s = live ? options_.traffic_timeout_s + static_cast<double>(wanted)
                               : static_cast<double>(wanted) + 3.0;
  const int64_t traffic_end = NowNs() + static_cast<int64_t>(budget_s * 1e9);
  bool died = false;
  while (NowNs() < traffic_end) {
    if (client.Exited() || server.Exited()) {
      died = true;
      break;
    }
    if (live) {
      const auto samples = ParseTestpmdRates(ReadFile(server_log));
      const auto steady = SteadyRxRate(samples);
      if (steady && steady->samples >= wanted) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Both at once: each takes about half a second to shut down.
  client.Interrupt();
  server.Interrupt();
  client.Stop(10);
  server.Stop(10);

  const std::string rx_text = ReadFile(server_log);
  const auto samples = ParseTestpmdRates(rx_text);
  const auto steady = SteadyRxRate(samples);
  if (!steady) {
    const std::string tx_text = ReadFile(client_log);
    return MakeError(ErrorCode::kUnavailable, "testpmd reported no traffic{}: rx: {} | tx: {}",
                     died ? " (a testpmd exited early)" : "", Tail(rx_text, 3),
                     Tail(tx_text, 3));
  }
  RunResult r;
  // One sample is one second: n samples at the median rate.
  r.seconds = static_cast<double>(steady->samples);
  r.packets = static_cast<uint64_t>(std::llround(steady->rx_pps * r.seconds));
  r.bytes = static_cast<uint64_t>(std::llround(steady->rx_bps / 8 * r.seconds));
  r.producer_cpu_seconds = r.seconds;  // one fully busy forwarding core per side
  r.consumer_cpu_seconds = r.seconds;
  r.cpu_estimated = true;
  r.content_checked = false;
  return r;
}

}  // namespace

std::unique_ptr<Contender> MakeMemifContender(const MemifOptions& options) {
  return std::make_unique<MemifContender>(options);
}

}  // namespace uvmbus::bench
