// File: tools/commands.h
//
// What: the entry points of the `uvmbus` subcommands, each returning the process exit code
// (exit_codes.h). cli.cc parses the command line and calls exactly one of them.
//   RunHost  (host_command.cc)   the host daemon
//   RunGuest (guest_command.cc)  one guest process
//   RunLs    (ls_command.cc)     lsvmbus over the host's admin socket
//   RunStats / RunChannels (stats_command.cc)  ethtool -S / -l for the synthetic NICs
//   RunDemo  (demo_command.cc)   host + guests as separate processes, narrated
//   RunDpdk  (dpdk_command.cc)   a DPDK program on a synthetic NIC through the uio shim
//   RunBench (bench_command.cc)  the end-to-end benchmark with the NIC as contender
// Spec: see each implementation file's banner.
// Thread-safety: each Run* owns the process while it runs (signal dispositions, stdout); call
// one per process.
#ifndef UVMBUS_TOOLS_COMMANDS_H_
#define UVMBUS_TOOLS_COMMANDS_H_

#include "tools/cli.h"

namespace uvmbus::tools {

int RunHost(const HostOptions& options);
int RunGuest(const GuestOptions& options);
int RunLs(const LsOptions& options);
int RunStats(const StatsOptions& options);
int RunChannels(const ChannelsOptions& options);
int RunDemo(const DemoOptions& options);
int RunDpdk(const DpdkOptions& options);
int RunBench(const BenchOptions& options);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_COMMANDS_H_
