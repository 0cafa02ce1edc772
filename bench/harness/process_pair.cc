#include "bench/harness/process_pair.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

namespace uvmbus::bench {
namespace {

double CpuSeconds(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// A forked side that has not been reaped yet.
struct Child {
  pid_t pid = -1;
  bool reaped = false;
  int status = 0;
  rusage usage{};
};

// Reaps `child` if it has exited (non-blocking). True once reaped.
bool TryReap(Child& child) {
  if (child.reaped) return true;
  const pid_t r = ::wait4(child.pid, &child.status, WNOHANG, &child.usage);
  if (r == child.pid) child.reaped = true;
  if (r < 0 && errno == ECHILD) child.reaped = true;  // cannot happen for our own child
  return child.reaped;
}

void KillAndReap(Child& child) {
  if (child.pid <= 0 || child.reaped) return;
  ::kill(child.pid, SIGKILL);
  while (::wait4(child.pid, &child.status, 0, &child.usage) < 0 && errno == EINTR) {
  }
  child.reaped = true;
}

void SleepNs(int64_t ns) {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

pid_t ForkSide(PairControl* control, Side side, int cpu, const SideFn& fn) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child: never return into the caller's stack (gtest, the runner); always _exit so no atexit
  // handler or static destructor of the parent runs twice.
  PairContext ctx(control, side);
  if (Status st = PinToCpu(cpu); !st) {
    ctx.Fail(st.error().message);
    control->abort.store(1, std::memory_order_relaxed);
    ::_exit(3);
  }
  if (!ctx.WaitForStart()) ::_exit(4);
  int code = 5;
  // An exception (e.g. std::bad_alloc) must not unwind into the parent's copied stack frames,
  // which would then run twice.
  try {
    code = fn(ctx);
  } catch (const std::exception& e) {
    ctx.Fail(e.what());
  } catch (...) {
    ctx.Fail("unknown exception");
  }
  ::_exit(code & 0xff);
}

std::string DescribeExit(const Child& child, const SideReport& report, std::string_view name) {
  std::string what;
  if (WIFSIGNALED(child.status)) {
    what = fmt::format("{} killed by signal {}", name, WTERMSIG(child.status));
  } else if (WIFEXITED(child.status)) {
    what = fmt::format("{} exited with {}", name, WEXITSTATUS(child.status));
  } else {
    what = fmt::format("{} ended abnormally", name);
  }
  // The report lives in shared memory the child could have left unterminated: bound it.
  const auto& e = report.error;
  const size_t len = ::strnlen(e.data(), e.size());
  if (len > 0) what += fmt::format(": {}", std::string_view(e.data(), len));
  return what;
}

bool ExitedCleanly(const Child& child) {
  return WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0;
}

}  // namespace

Status PinToCpu(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    return MakeError(ErrorCode::kInvalidArgument, "cpu {} out of range", cpu);
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) {
    return unexpected(Error::FromErrno(fmt::format("sched_setaffinity(cpu {})", cpu), errno));
  }
  return Ok();
}

int UsableCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

Expected<MappedRegion> MapSharedAnonymous(size_t bytes) {
  if (bytes == 0) return MakeError(ErrorCode::kInvalidArgument, "cannot map 0 bytes");
  // MAP_POPULATE: fault every page in now, so no run pays page faults inside its window.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return unexpected(Error::FromErrno("mmap(MAP_SHARED)", errno));
  return MappedRegion(p, bytes);  // anonymous memory is zero-filled
}

int PairContext::Fail(std::string_view message) {
  auto& e = report().error;
  const size_t n = std::min(message.size(), e.size() - 1);
  std::memcpy(e.data(), message.data(), n);
  e[n] = '\0';
  return 1;
}

bool PairContext::WaitForStart() {
  control_->ready.fetch_add(1, std::memory_order_acq_rel);
  // Acquire: everything the parent wrote before "go" (nothing today, but cheap) is visible.
  while (control_->go.load(std::memory_order_acquire) == 0) {
    if (control_->abort.load(std::memory_order_relaxed) != 0) return false;
    CpuRelax();
  }
  return true;
}

Expected<PairOutcome> RunPair(const PairSpec& spec, const SideFn& producer,
                              const SideFn& consumer) {
  if (spec.producer_cpu == spec.consumer_cpu) {
    return MakeError(ErrorCode::kInvalidArgument, "producer and consumer need different CPUs");
  }
  auto region = MapSharedAnonymous(sizeof(PairControl));
  if (!region) return unexpected(region.error());
  PairControl* control = ConstructIn<PairControl>(*region);

  Child cons, prod;
  cons.pid = ForkSide(control, Side::kConsumer, spec.consumer_cpu, consumer);
  if (cons.pid < 0) return unexpected(Error::FromErrno("fork", errno));
  prod.pid = ForkSide(control, Side::kProducer, spec.producer_cpu, producer);
  if (prod.pid < 0) {
    const int err = errno;
    control->abort.store(1, std::memory_order_relaxed);
    KillAndReap(cons);
    return unexpected(Error::FromErrno("fork", err));
  }

  auto fail = [&](Error error) -> Expected<PairOutcome> {
    control->abort.store(1, std::memory_order_relaxed);
    KillAndReap(prod);
    KillAndReap(cons);
    return unexpected(std::move(error));
  };

  // Start line: both sides ready (or one died / gave up on pinning).
  const auto to_ns = [](double s) { return static_cast<int64_t>(s * 1e9); };
  const int64_t start_deadline = NowNs() + to_ns(spec.start_timeout_seconds);
  while (control->ready.load(std::memory_order_acquire) < 2) {
    const bool prod_gone = TryReap(prod);
    const bool cons_gone = TryReap(cons);
    if (prod_gone || cons_gone || control->abort.load(std::memory_order_relaxed) != 0) {
      // Blame the side that said why; else the one that left. A side that merely saw the
      // abort exits with 4 and says nothing.
      const bool prod_said = control->producer.error[0] != '\0';
      const bool cons_said = control->consumer.error[0] != '\0';
      const bool blame_producer = prod_said || (!cons_said && prod_gone);
      control->abort.store(1, std::memory_order_relaxed);
      KillAndReap(prod);
      KillAndReap(cons);
      std::string why = blame_producer ? DescribeExit(prod, control->producer, "producer")
                                       : DescribeExit(cons, control->consumer, "consumer");
      return MakeError(ErrorCode::kInternal, "side failed before start: {}", why);
    }
    if (NowNs() > start_deadline) {
      return fail(Error::Make(ErrorCode::kTimeout, "sides did not reach the start line"));
    }
    SleepNs(200'000);
  }
  const int64_t t0 = NowNs();
  control->go.store(1, std::memory_order_release);

  // Run. A side that exits early (error) ends the run at once.
  const int64_t stop_at = t0 + to_ns(spec.run_seconds);
  while (NowNs() < stop_at) {
    if (prod.reaped || cons.reaped || TryReap(prod) || TryReap(cons)) break;
    SleepNs(std::min<int64_t>(stop_at - NowNs(), 2'000'000));
  }
  // 0 -> 1 only: a producer that already finished on its own (2) keeps its "done".
  uint32_t running = 0;
  control->stop.compare_exchange_strong(running, 1, std::memory_order_relaxed);

  const int64_t stop_deadline = NowNs() + to_ns(spec.stop_timeout_seconds);
  for (;;) {
    const bool prod_gone = TryReap(prod);
    const bool cons_gone = TryReap(cons);
    if (prod_gone && cons_gone) break;
    if (NowNs() > stop_deadline) {
      return fail(Error::Make(ErrorCode::kTimeout, "sides did not exit {} s after stop",
                              spec.stop_timeout_seconds));
    }
    // A side that failed leaves the other possibly waiting for it forever: abort it.
    if ((prod.reaped && !ExitedCleanly(prod)) || (cons.reaped && !ExitedCleanly(cons))) {
      control->abort.store(1, std::memory_order_relaxed);
    }
    SleepNs(500'000);
  }
  const int64_t t1 = NowNs();

  if (!ExitedCleanly(prod)) {
    return MakeError(ErrorCode::kInternal, "{}", DescribeExit(prod, control->producer, "producer"));
  }
  if (!ExitedCleanly(cons)) {
    return MakeError(ErrorCode::kInternal, "{}", DescribeExit(cons, control->consumer, "consumer"));
  }
  PairOutcome out;
  out.producer.report = control->producer;
  out.producer.cpu_seconds = CpuSeconds(prod.usage);
  out.consumer.report = control->consumer;
  out.consumer.cpu_seconds = CpuSeconds(cons.usage);
  out.wall_seconds = static_cast<double>(t1 - t0) * 1e-9;
  return out;
}

}  // namespace uvmbus::bench
