// uvmbus-bench: standalone driver of the end-to-end benchmark harness. Runs the built-in
// contenders (later also uvmbus's NIC) interleaved over rounds, tags every run with the
// placement probe, and prints medians, ratios and (with --json) a machine-readable report.
// `uvmbus bench` will call the same library (bench_command.h, bench_cli.h). CLI parsing is the
// only place exceptions are used (style.md 1.9 #5).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "bench/harness/bench_cli.h"
#include "bench/harness/bench_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "uvmbus-bench: frames between two processes on two cores - the physical limit, the VMBus "
      "ring and the peers, interleaved in one run"};
  uvmbus::bench::BenchCommand command;
  uvmbus::bench::AddBenchOptions(app, command);
  CLI11_PARSE(app, argc, argv);
  // `--json` without a file: the JSON document on stdout.
  if (app.get_option("--json")->count() > 0 && command.json_path.empty()) command.json_path = "-";
  return uvmbus::bench::RunBenchCommand(command, {}, stdout, stderr);
}
