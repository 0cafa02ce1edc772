// File: tools/uio_preload/uio_control.h
//
// What: the tiny protocol between the LD_PRELOAD shim (uio_preload.cc, inside the DPDK process)
// and `uvmbus dpdk` (dpdk_command.cc, its parent) over an inherited AF_UNIX SOCK_SEQPACKET
// socketpair, and the environment variables that pass the shim its inputs.
//   shim -> parent: UioRegisterRequest + the sealed "nohuge" memfd (SCM_RIGHTS): "make this memfd
//                   guest RAM at GPA gpa (== its virtual address in the DPDK process), size bytes"
//   parent -> shim: UioRegisterReply: status 0 (registered) or an errno value + a message.
// The shim waits for the reply before returning from the first open() of /dev/uioN, so the host
// can read DPDK's heap (RNDIS control messages are GPA-direct into it) before DPDK probes.
// Spec: none (uvmbus-private); see docs/interop.md.
// Thread-safety: plain data. libc-only (the shim links nothing else).
#ifndef UVMBUS_TOOLS_UIO_PRELOAD_UIO_CONTROL_H_
#define UVMBUS_TOOLS_UIO_PRELOAD_UIO_CONTROL_H_

#include <cstdint>

namespace uvmbus::tools::uio_control {

// The private tree (devices/uio/sysfs_tree.h) that replaces /sys/bus/vmbus and /dev/uioN.
inline constexpr char kEnvDir[] = "UVMBUS_UIO_DIR";
// Number of the inherited guest-RAM memfd (mmap target for every uio map and ring).
inline constexpr char kEnvRamFd[] = "UVMBUS_UIO_RAM_FD";
// Number of the inherited control socket (this protocol).
inline constexpr char kEnvControlFd[] = "UVMBUS_UIO_CTL_FD";

inline constexpr uint32_t kRequestMagic = 0x524F4955;  // "UIOR"
inline constexpr uint32_t kReplyMagic = 0x414F4955;    // "UIOA"

struct UioRegisterRequest {
  uint32_t magic = kRequestMagic;
  uint32_t reserved = 0;
  uint64_t gpa = 0;
  uint64_t size = 0;
};
static_assert(sizeof(UioRegisterRequest) == 24);

struct UioRegisterReply {
  uint32_t magic = kReplyMagic;
  int32_t status = 0;  // 0 = registered, else an errno value
  char message[240] = {};
};
static_assert(sizeof(UioRegisterReply) == 248);

}  // namespace uvmbus::tools::uio_control

#endif  // UVMBUS_TOOLS_UIO_PRELOAD_UIO_CONTROL_H_
