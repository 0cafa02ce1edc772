// File: tools/dpdk_command.cc
//
// `uvmbus dpdk [--socket PATH] [--name NAME] [--ram MIB] -- PROGRAM ARGS...` (docs/cli.md): runs
// an unmodified DPDK program (dpdk-testpmd) on a uvmbus synthetic NIC. This process plays the
// guest's "Linux kernel + uio_hv_generic":
//   connect:  partition::SocketGuestPartition (guest RAM memfd), VMBus contact (the bus passes
//             the monitor pages in INITIATE_CONTACT), offers;
//   uio:      devices::uio::UioNetDriver binds the NIC instead of hv_netvsc: primary ring pair
//             opened raw, receive/send buffer GPADLs, the private sysfs tree in a temp dir;
//   run:      PROGRAM ("{device}" in its arguments replaced by the NIC's instance UUID) with
//             LD_PRELOAD=libuvmbus_uio.so (tools/uio_preload) and the shim's
//             environment (tree dir, inherited guest-RAM fd, inherited control socket);
//   serve:    the shim's request to register DPDK's "nohuge" heap memfd as guest RAM at GPA ==
//             its VA (SocketGuestPartition::AddRamRegion), and - on bus threads - the host's
//             sub-channel offers (opened raw, published in the tree);
//   forward:  SIGINT/SIGTERM to PROGRAM;
//   exit:     when PROGRAM ends (also by SIGKILL): drivers removed, UNLOAD, socket closed, so the
//             host frees the channels, GPADLs and regions; the exit status is PROGRAM's
//             (128+N when killed by signal N), or 3 if the host went away first.
// Spec: vmbus-protocol.md 2.5, 2.7-2.9 (through guest/ and devices/uio); docs/interop.md.
// Thread-safety: the main thread owns the loop; bus/driver observers only print.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "devices/uio/sysfs_tree.h"
#include "devices/uio/uio_driver.h"
#include "guest/vmbus_bus.h"
#include "partition/socket_guest_partition.h"
#include "tools/commands.h"
#include "tools/exit_codes.h"
#include "tools/output.h"
#include "tools/signals.h"
#include "tools/subprocess.h"
#include "tools/uio_preload/uio_control.h"

extern char** environ;

namespace uvmbus::tools {
namespace {

namespace ctl = uio_control;

// Calls SocketGuestPartition::AddRamRegion when this build has it (the host-side region support
// lands separately); kUnsupported otherwise.
template <typename P>
Status AddRegion(P& partition, int fd, uint64_t gpa, uint64_t size) {
  if constexpr (requires { partition.AddRamRegion(fd, gpa, size); }) {
    auto st = partition.AddRamRegion(fd, gpa, size);
    if (!st) return unexpected(st.error());
    return Ok();
  } else {
    return MakeError(ErrorCode::kUnsupported,
                     "this uvmbus build cannot add guest RAM regions (AddRamRegion missing)");
  }
}

// libuvmbus_uio.so: $UVMBUS_UIO_PRELOAD, else next to the uvmbus binary (build tree layout
// src/tools/uio_preload/, or an install's ../lib/uvmbus/).
Expected<std::string> FindPreload() {
  if (const char* env = ::getenv("UVMBUS_UIO_PRELOAD"); env != nullptr && *env != '\0') {
    if (::access(env, R_OK) == 0) return std::string(env);
    return MakeError(ErrorCode::kNotFound, "UVMBUS_UIO_PRELOAD={} is not readable", env);
  }
  auto self = SelfExecutable();
  if (!self) return unexpected(self.error());
  const std::filesystem::path dir = std::filesystem::path(*self).parent_path();
  for (const auto& candidate :
       {dir / "uio_preload" / "libuvmbus_uio.so", dir / "libuvmbus_uio.so",
        dir / ".." / "lib" / "uvmbus" / "libuvmbus_uio.so"}) {
    if (::access(candidate.c_str(), R_OK) == 0) return candidate.lexically_normal().string();
  }
  return MakeError(ErrorCode::kNotFound,
                   "libuvmbus_uio.so not found next to {} (set UVMBUS_UIO_PRELOAD)", *self);
}

// PROGRAM resolved through PATH (in the parent: the child may only call async-signal-safe
// functions, and the parent has threads).
Expected<std::string> ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return unexpected(Error::FromErrno(name, errno));
  }
  const char* path = ::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return MakeError(ErrorCode::kNotFound, "{}: not found in PATH", name);
}

// Serves one heap registration request of the shim.
void ServeRegistration(int sock, partition::SocketGuestPartition& partition) {
  ctl::UioRegisterRequest req;
  iovec iov{&req, sizeof req};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n <= 0) return;
  UniqueFd memfd;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
      memfd = UniqueFd(fd);
    }
  }
  ctl::UioRegisterReply reply;
  Status st = Ok();
  if (n != static_cast<ssize_t>(sizeof req) || req.magic != ctl::kRequestMagic || !memfd) {
    st = MakeError(ErrorCode::kMalformed, "malformed registration request");
  } else {
    st = AddRegion(partition, memfd.get(), req.gpa, req.size);
  }
  if (st) {
    Print("dpdk: DPDK heap [{:#x}, {:#x}) registered as guest RAM ({} MiB)", req.gpa,
          req.gpa + req.size, req.size >> 20);
  } else {
    reply.status = EINVAL;
    const std::string text = st.error().ToString();
    std::snprintf(reply.message, sizeof reply.message, "%s", text.c_str());
    PrintError("uvmbus dpdk: cannot register DPDK's heap [{:#x}, +{:#x}): {}", req.gpa, req.size,
               text);
  }
  (void)!::send(sock, &reply, sizeof reply, MSG_NOSIGNAL);
}

int ExitStatusOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return ToInt(ExitCode::kFailure);
}

}  // namespace

int RunDpdk(const DpdkOptions& options) {
  log::Level level = log::Level::kWarn;
  if (!log::ParseLevel(options.log_level, &level)) return ToInt(ExitCode::kUsage);
  log::SetLevel(level);
  IgnoreHangupAndPipe();
  auto signals = TerminationSignals::Block();  // before any thread exists
  if (!signals) {
    PrintError("uvmbus dpdk: {}", signals.error());
    return ToInt(ExitCode::kFailure);
  }
  if (options.command.empty()) {
    PrintError("uvmbus dpdk: no program given (uvmbus dpdk --socket PATH -- PROGRAM ARGS...)");
    return ToInt(ExitCode::kUsage);
  }
  auto program = ResolveProgram(options.command[0]);
  if (!program) {
    PrintError("uvmbus dpdk: {}", program.error());
    return ToInt(ExitCode::kFailure);
  }
  auto preload = FindPreload();
  if (!preload) {
    PrintError("uvmbus dpdk: {}", preload.error());
    return ToInt(ExitCode::kFailure);
  }
  char dir_template[] = "/tmp/uvmbus-dpdk-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    PrintError("uvmbus dpdk: {}", Error::FromErrno("mkdtemp", errno));
    return ToInt(ExitCode::kFailure);
  }
  const std::string dir = dir_template;
  struct DirCleanup {
    std::string path;
    ~DirCleanup() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } dir_cleanup{dir};

  const std::string name =
      options.name.empty() ? fmt::format("dpdk-{}", ::getpid()) : options.name;
  Print("connect: guest {} ({} vCPU{}, {} MiB RAM) to host {}", name, options.cpus,
        options.cpus == 1 ? "" : "s", options.ram_mib, options.socket);
  auto partition = partition::SocketGuestPartition::Connect(
      options.socket, name, options.cpus, uint64_t{options.ram_mib} << 20);
  if (!partition) {
    PrintError("uvmbus dpdk: cannot connect to the host at {}: {}", options.socket,
               partition.error());
    return ToInt(partition.error().code == ErrorCode::kUnavailable ? ExitCode::kHostUnavailable
                                                                    : ExitCode::kFailure);
  }
  devices::uio::SysfsTree tree(dir);
  devices::uio::UioNetDriver driver(tree);
  driver.SetObserver([](const std::string& line) { PrintLine(line); });
  auto bus = guest::VmbusBus::Create(**partition);
  if (!bus) {
    PrintError("uvmbus dpdk: {}", bus.error());
    return ToInt(ExitCode::kFailure);
  }
  (*bus)->AddObserver([](const guest::BusEvent& e) {
    if (e.kind != guest::BusEventKind::kHostGone) PrintLine(e.ToString());
  });
  if (auto st = (*bus)->RegisterDriver(driver); !st) {
    PrintError("uvmbus dpdk: registering {}: {}", driver.name(), st.error());
    return ToInt(ExitCode::kFailure);
  }
  if (auto st = (*bus)->Connect(); !st) {
    PrintError("uvmbus dpdk: VMBus connect failed: {}", st.error());
    const bool host_gone = !(*partition)->connected() || st.error().code == ErrorCode::kUnavailable;
    return ToInt(host_gone ? ExitCode::kHostUnavailable : ExitCode::kFailure);
  }
  const auto layout = driver.layout();
  if (!layout) {
    PrintError("uvmbus dpdk {}: the host offered no synthetic NIC (or its bring-up failed)", name);
    (void)(*bus)->Disconnect();
    return ToInt(ExitCode::kFailure);
  }

  // The control socket and the fds the child inherits (dup() clears FD_CLOEXEC; only this thread
  // forks, so the inheritable copies leak nowhere else).
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    PrintError("uvmbus dpdk: {}", Error::FromErrno("socketpair", errno));
    (void)(*bus)->Disconnect();
    return ToInt(ExitCode::kFailure);
  }
  UniqueFd ctl_parent(pair[0]);
  UniqueFd ctl_child_cloexec(pair[1]);
  UniqueFd ctl_child(::dup(ctl_child_cloexec.get()));
  UniqueFd ram_child(::dup((*partition)->ram().fd()));
  if (!ctl_child || !ram_child) {
    PrintError("uvmbus dpdk: {}", Error::FromErrno("dup", errno));
    (void)(*bus)->Disconnect();
    return ToInt(ExitCode::kFailure);
  }

  // Environment: ours, LD_PRELOAD prepended, the shim's three variables.
  std::vector<std::string> env_strings;
  std::string ld_preload = *preload;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("LD_PRELOAD=")) {
      ld_preload += ":" + std::string(entry.substr(11));
      continue;
    }
    if (entry.starts_with(std::string(ctl::kEnvDir) + "=") ||
        entry.starts_with(std::string(ctl::kEnvRamFd) + "=") ||
        entry.starts_with(std::string(ctl::kEnvControlFd) + "=")) {
      continue;
    }
    env_strings.emplace_back(entry);
  }
  env_strings.push_back("LD_PRELOAD=" + ld_preload);
  env_strings.push_back(fmt::format("{}={}", ctl::kEnvDir, dir));
  env_strings.push_back(fmt::format("{}={}", ctl::kEnvRamFd, ram_child.get()));
  env_strings.push_back(fmt::format("{}={}", ctl::kEnvControlFd, ctl_child.get()));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // "{device}" in an argument stands for the NIC's instance UUID (known only now), so that
  // `-a vmbus:{device},tx_copybreak=1600` can be written before the host assigned it.
  std::vector<std::string> args = options.command;
  const std::string uuid = layout->device_id.ToString();
  for (std::string& a : args) {
    for (size_t at = a.find("{device}"); at != std::string::npos; at = a.find("{device}", at)) {
      a.replace(at, 8, uuid);
      at += uuid.size();
    }
  }
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  Print("dpdk: {} device {} (relid {}) ready; running {}", driver.name(),
        layout->device_id.ToString(), layout->relid, *program);
  const pid_t pid = ::fork();
  if (pid < 0) {
    PrintError("uvmbus dpdk: {}", Error::FromErrno("fork", errno));
    (void)(*bus)->Disconnect();
    return ToInt(ExitCode::kFailure);
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only. Default signal state for the program.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::execve(program->c_str(), argv.data(), envp.data());
    static constexpr char kMsg[] = "uvmbus dpdk: exec failed\n";
    (void)!::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  Print("dpdk: {} is pid {}", options.command[0], pid);
  ctl_child.Reset();
  ctl_child_cloexec.Reset();
  ram_child.Reset();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    PrintError("uvmbus dpdk: {}", Error::FromErrno("pidfd_open", errno));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    (void)(*bus)->Disconnect();
    return ToInt(ExitCode::kFailure);
  }

  int exit_status = ToInt(ExitCode::kFailure);
  bool host_gone = false;
  pollfd fds[4] = {{signals->fd(), POLLIN, 0},
                   {pidfd.get(), POLLIN, 0},
                   {ctl_parent.get(), POLLIN, 0},
                   {(*partition)->DisconnectFd(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      PrintError("uvmbus dpdk: {}", Error::FromErrno("poll", errno));
      ::kill(pid, SIGKILL);
    }
    if (fds[1].revents != 0) {
      int status = 0;
      if (::waitpid(pid, &status, 0) == pid) exit_status = ExitStatusOf(status);
      Print("dpdk: {} exited with status {}", options.command[0], exit_status);
      break;
    }
    if (auto signo = signals->Read()) {
      Print("interrupted: {}, forwarded to {}", ::strsignal(*signo), options.command[0]);
      ::kill(pid, *signo);
    }
    if (fds[2].revents & POLLIN) ServeRegistration(ctl_parent.get(), **partition);
    if (fds[2].revents & (POLLHUP | POLLERR)) fds[2].fd = -1;  // the program closed its end
    if (fds[3].revents != 0 || !(*partition)->connected()) {
      PrintError("uvmbus dpdk {}: the host hung up; killing {}", name, options.command[0]);
      host_gone = true;
      ::kill(pid, SIGKILL);
      fds[3].fd = -1;
    }
  }
  // Channels closed, GPADLs torn down, UNLOAD; then the partition's socket closes (the host
  // drops the RAM regions with the guest).
  if (auto st = (*bus)->Disconnect(); !st && !host_gone) {
    PrintError("uvmbus dpdk: disconnect: {}", st.error());
  }
  (*bus).reset();
  (*partition)->Disconnect();
  if (host_gone) return ToInt(ExitCode::kHostUnavailable);
  return exit_status;
}

}  // namespace uvmbus::tools
