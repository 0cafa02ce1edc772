// File: tools/uio_preload/uio_preload.cc
//
// What: libuvmbus_uio.so, the LD_PRELOAD shim that lets an unmodified DPDK (22.11, netvsc PMD on
// the vmbus bus driver) run on a uvmbus synthetic NIC as if Linux's uio_hv_generic had bound it.
// It interposes exactly the libc calls DPDK uses on sysfs and uio (shared/dpdk-interop.md 5b):
//   open/open64/__open_2/__open64_2/openat/openat64, fopen/fopen64, opendir, access:
//       /sys/bus/vmbus/...  -> $UVMBUS_UIO_DIR/sys/bus/vmbus/...   (the private tree)
//       /dev/uioN           -> $UVMBUS_UIO_DIR/dev/uioN            (a placeholder file)
//     fds opened on /dev/uioN or on channels/<relid>/ring are remembered (per-fd table);
//   mmap/mmap64 on such an fd: uio offset i * 4096 selects map i, a ring fd selects its channel's
//     ring pair; either becomes an mmap of the inherited guest-RAM memfd ($UVMBUS_UIO_RAM_FD) at
//     that resource's guest physical address, taken from the map table ($UVMBUS_UIO_DIR/uio-table,
//     devices/uio/map_table.h);
//   close: forgets the fd;
//   read/write on a uio fd: uio_hv_generic's interrupt control (write 1/0 = unmask/mask the
//     primary's inbound ring; read blocks: no interrupt is ever delivered, DPDK only polls);
//   memfd_create("nohuge"): adds MFD_ALLOW_SEALING and remembers the fd (DPDK's --no-huge heap).
// At the first open of /dev/uioN (EAL memory is set up by then, bus probe starts) it seals the
// "nohuge" memfd (F_SEAL_SHRINK | F_SEAL_GROW), finds its mapping in /proc/self/maps and asks
// the parent (`uvmbus dpdk`, over $UVMBUS_UIO_CTL_FD, uio_control.h) to register it as guest RAM
// at GPA == its virtual address: with --iova-mode=va DPDK hands the host IOVAs == VAs of its heap
// (RNDIS control messages are GPA-direct). The open returns only after the parent's answer; any
// failure is one clear "uvmbus-uio: ..." line on stderr and the open fails (ENODEV).
// Spec: none of vmbus-protocol.md directly; the uio ABI of Linux drivers/uio/uio.c (map i at
//       offset i * PAGE_SIZE) and drivers/uio/uio_hv_generic.c (maps, ring attribute, irqcontrol).
// Thread-safety: the fd table is an array of atomics; the one-time registration is serialised by
//       a mutex. Not async-signal-safe (DPDK does not call these from signal handlers).
// Built with libc only (-fno-exceptions -fno-rtti, no sanitizers): it lives in a foreign process.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>

#include "devices/uio/map_table.h"
#include "tools/uio_preload/uio_control.h"

namespace {

namespace ctl = uvmbus::tools::uio_control;
namespace uio = uvmbus::devices::uio;

using OpenFn = int (*)(const char*, int, ...);
using OpenatFn = int (*)(int, const char*, int, ...);
using Open2Fn = int (*)(const char*, int);
using FopenFn = FILE* (*)(const char*, const char*);
using OpendirFn = DIR* (*)(const char*);
using AccessFn = int (*)(const char*, int);
using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using CloseFn = int (*)(int);
using ReadFn = ssize_t (*)(int, void*, size_t);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using MemfdFn = int (*)(const char*, unsigned int);

// The next definition of `name` (libc's), resolved once per call site. The slot is
// constant-initialised (no guard variable, so no C++ runtime is needed); racing first calls
// store the same value.
template <typename Fn>
Fn NextSymbol(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = dlsym(RTLD_NEXT, name);
    slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(p);
}
#define UVMBUS_REAL(Fn, name)                  \
  ([]() {                                      \
    static std::atomic<void*> slot{nullptr};   \
    return NextSymbol<Fn>(slot, name);         \
  }())

// Per-fd kinds. Slots beyond kMaxFds are never tracked (DPDK opens a handful of fds).
constexpr int kMaxFds = 65536;
constexpr uint32_t kKindNone = 0;
constexpr uint32_t kKindUio = 1;
constexpr uint32_t kKindRing = 2;  // value = kKindRing | relid << 8
std::atomic<uint32_t> g_fds[kMaxFds];

std::atomic<int> g_nohuge_fd{-1};
pthread_mutex_t g_register_mu = PTHREAD_MUTEX_INITIALIZER;
int g_register_state = 0;  // 0 not tried, 1 registered, -1 failed (guarded by g_register_mu)

void Loud(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Loud(const char* fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  // One write so concurrent output does not interleave within the line.
  char out[560];
  const int n = snprintf(out, sizeof out, "uvmbus-uio: %s\n", line);
  if (n > 0) {
    const WriteFn real_write = UVMBUS_REAL(WriteFn, "write");
    const size_t len = n < static_cast<int>(sizeof out) ? static_cast<size_t>(n) : sizeof out - 1;
    (void)real_write(2, out, len);
  }
}

const char* Dir() {
  const char* d = getenv(ctl::kEnvDir);
  return (d != nullptr && d[0] == '/') ? d : nullptr;
}

int EnvFd(const char* name) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long n = strtol(v, &end, 10);
  if (*end != '\0' || n < 0 || n > 1 << 20) return -1;
  return static_cast<int>(n);
}

bool AllDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

// What a rewritten path refers to.
struct Rewrite {
  const char* path;  // the path to use (the original or `buf`)
  uint32_t kind;     // kKindUio, kKindRing | relid << 8, or kKindNone
};

// Rewrites `path` into `buf` if it names /sys/bus/vmbus/... or /dev/uioN.
Rewrite RewritePath(const char* path, char* buf, size_t buf_size) {
  Rewrite r{path, kKindNone};
  const char* dir = Dir();
  if (path == nullptr || dir == nullptr) return r;
  static constexpr char kSys[] = "/sys/bus/vmbus";
  static constexpr char kDev[] = "/dev/uio";
  const size_t sys_len = sizeof kSys - 1;
  if (strncmp(path, kSys, sys_len) == 0 && (path[sys_len] == '\0' || path[sys_len] == '/')) {
    if (static_cast<size_t>(snprintf(buf, buf_size, "%s%s", dir, path)) >= buf_size) return r;
    r.path = buf;
    // .../channels/<relid>/ring
    const char* ch = strstr(path, "/channels/");
    const size_t len = strlen(path);
    if (ch != nullptr && len > 5 && strcmp(path + len - 5, "/ring") == 0) {
      const char* num = ch + 10;
      char digits[16] = {};
      size_t n = 0;
      while (num[n] >= '0' && num[n] <= '9' && n < sizeof digits - 1) {
        digits[n] = num[n];
        ++n;
      }
      if (n > 0 && num + n == path + len - 5) {
        const unsigned long relid = strtoul(digits, nullptr, 10);
        if (relid <= 0xFFFFFF) r.kind = kKindRing | static_cast<uint32_t>(relid << 8);
      }
    }
    return r;
  }
  if (strncmp(path, kDev, sizeof kDev - 1) == 0 && AllDigits(path + sizeof kDev - 1)) {
    if (static_cast<size_t>(snprintf(buf, buf_size, "%s%s", dir, path)) >= buf_size) return r;
    r.path = buf;
    r.kind = kKindUio;
  }
  return r;
}

// Looks an entry up in the map table. False (and a loud line) if absent.
bool FindEntry(uio::MapEntryKind kind, uint32_t id, uio::MapEntry* out) {
  const char* dir = Dir();
  if (dir == nullptr) return false;
  char path[4096];
  snprintf(path, sizeof path, "%s/uio-table", dir);
  const FopenFn real_fopen = UVMBUS_REAL(FopenFn, "fopen64");
  FILE* f = real_fopen(path, "re");
  if (f == nullptr) {
    Loud("cannot read the map table %s: %s", path, strerror(errno));
    return false;
  }
  char line[256];
  bool found = false;
  while (fgets(line, sizeof line, f) != nullptr) {
    uio::MapEntry e;
    if (uio::ParseMapTableLine(line, &e) == 1 && e.kind == kind && e.id == id) {
      *out = e;
      found = true;
      break;
    }
  }
  fclose(f);
  if (!found) {
    Loud("the map table has no %s %u", kind == uio::MapEntryKind::kMap ? "map" : "ring", id);
  }
  return found;
}

// Finds the "nohuge" mapping [start, end) and its file offset in /proc/self/maps.
bool FindNohugeMapping(uint64_t* start, uint64_t* end) {
  const FopenFn real_fopen = UVMBUS_REAL(FopenFn, "fopen64");
  FILE* f = real_fopen("/proc/self/maps", "re");
  if (f == nullptr) return false;
  char line[1024];
  bool found = false;
  uint64_t lo = 0;
  uint64_t hi = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strstr(line, "/memfd:nohuge") == nullptr) continue;
    unsigned long long a = 0;
    unsigned long long b = 0;
    unsigned long long off = 0;
    char perms[8] = {};
    if (sscanf(line, "%llx-%llx %7s %llx", &a, &b, perms, &off) != 4) continue;
    if (!found) {
      if (off != 0) continue;  // the heap is mapped from offset 0
      lo = a;
      hi = b;
      found = true;
    } else if (a == hi) {
      hi = b;  // the same mapping split by mprotect
    }
  }
  fclose(f);
  if (found) {
    *start = lo;
    *end = hi;
  }
  return found;
}

// The one-time registration of DPDK's heap as guest RAM. Returns true if registered.
bool RegisterHeapLocked() {
  const int memfd = g_nohuge_fd.load(std::memory_order_acquire);
  if (memfd < 0) {
    Loud("DPDK did not create its \"nohuge\" memfd: run it with --no-huge (and -m), not with "
         "hugepages or --in-memory; EAL heap memory must be shared with the host");
    return false;
  }
  const int ctl_fd = EnvFd(ctl::kEnvControlFd);
  if (ctl_fd < 0) {
    Loud("%s is not set: run the program through `uvmbus dpdk`", ctl::kEnvControlFd);
    return false;
  }
  uint64_t start = 0;
  uint64_t end = 0;
  if (!FindNohugeMapping(&start, &end)) {
    Loud("no /memfd:nohuge mapping in /proc/self/maps: EAL fell back to anonymous memory, which "
         "the host cannot read");
    return false;
  }
  struct stat st;
  if (fstat(memfd, &st) != 0 || static_cast<uint64_t>(st.st_size) != end - start) {
    Loud("the nohuge memfd is %lld bytes but mapped as %llu bytes",
         static_cast<long long>(st.st_size), static_cast<unsigned long long>(end - start));
    return false;
  }
  if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    Loud("cannot seal the nohuge memfd: %s", strerror(errno));
    return false;
  }
  ctl::UioRegisterRequest req;
  req.gpa = start;
  req.size = end - start;
  iovec iov{&req, sizeof req};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &memfd, sizeof memfd);
  ssize_t n;
  do {
    n = sendmsg(ctl_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof req)) {
    Loud("cannot send the heap registration to uvmbus dpdk: %s", strerror(errno));
    return false;
  }
  ctl::UioRegisterReply reply;
  do {
    n = recv(ctl_fd, &reply, sizeof reply, 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof reply) || reply.magic != ctl::kReplyMagic) {
    Loud("no answer from uvmbus dpdk to the heap registration");
    return false;
  }
  reply.message[sizeof reply.message - 1] = '\0';
  if (reply.status != 0) {
    Loud("the host refused DPDK's heap [%#llx, %#llx) as guest RAM: %s",
         static_cast<unsigned long long>(start), static_cast<unsigned long long>(end),
         reply.message);
    return false;
  }
  return true;
}

bool EnsureHeapRegistered() {
  pthread_mutex_lock(&g_register_mu);
  if (g_register_state == 0) g_register_state = RegisterHeapLocked() ? 1 : -1;
  const bool ok = g_register_state == 1;
  pthread_mutex_unlock(&g_register_mu);
  return ok;
}

void Track(int fd, uint32_t kind) {
  if (fd >= 0 && fd < kMaxFds) g_fds[fd].store(kind, std::memory_order_release);
}

uint32_t KindOf(int fd) {
  if (fd < 0 || fd >= kMaxFds) return kKindNone;
  return g_fds[fd].load(std::memory_order_acquire);
}

// The common tail of every open variant.
int FinishOpen(int fd, uint32_t kind) {
  if (fd < 0 || kind == kKindNone) {
    if (fd >= 0) Track(fd, kKindNone);
    return fd;
  }
  if (kind == kKindUio && !EnsureHeapRegistered()) {
    const CloseFn real_close = UVMBUS_REAL(CloseFn, "close");
    real_close(fd);
    errno = ENODEV;
    return -1;
  }
  Track(fd, kind);
  return fd;
}

bool NeedsMode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

void* MapResource(void* addr, size_t len, int prot, int flags, int fd, off_t offset,
                  MmapFn real_mmap) {
  const uint32_t kind = KindOf(fd);
  uio::MapEntry e;
  uint64_t skip = 0;
  if (kind == kKindUio) {
    // uio.c: the offset selects the map (index * PAGE_SIZE), it is not a byte offset.
    if (offset < 0 || offset % 4096 != 0 || offset / 4096 >= uio::kUioMapCount) {
      Loud("mmap of /dev/uio at offset %lld: no such map", static_cast<long long>(offset));
      errno = EINVAL;
      return MAP_FAILED;
    }
    if (!FindEntry(uio::MapEntryKind::kMap, static_cast<uint32_t>(offset / 4096), &e)) {
      errno = ENODEV;
      return MAP_FAILED;
    }
  } else {
    if (!FindEntry(uio::MapEntryKind::kRing, kind >> 8, &e)) {
      errno = ENODEV;
      return MAP_FAILED;
    }
    if (offset < 0) {
      errno = EINVAL;
      return MAP_FAILED;
    }
    skip = static_cast<uint64_t>(offset);
  }
  if (skip > e.size || len > e.size - skip) {
    Loud("mmap of %zu bytes at %llu exceeds the resource's %llu bytes", len,
         static_cast<unsigned long long>(skip), static_cast<unsigned long long>(e.size));
    errno = EINVAL;
    return MAP_FAILED;
  }
  const int ram_fd = EnvFd(ctl::kEnvRamFd);
  if (ram_fd < 0) {
    Loud("%s is not set: run the program through `uvmbus dpdk`", ctl::kEnvRamFd);
    errno = ENODEV;
    return MAP_FAILED;
  }
  void* p = real_mmap(addr, len, prot, flags, ram_fd, static_cast<off_t>(e.gpa + skip));
  if (p == MAP_FAILED) {
    const int err = errno;
    Loud("mmap of guest RAM at GPA %#llx (%zu bytes) failed: %s",
         static_cast<unsigned long long>(e.gpa + skip), len, strerror(err));
    errno = err;
  }
  return p;
}

// The mode argument of an open-family call: present (and read) only when `flags` create a file.
mode_t ModeArgument(int flags, va_list ap) {
  return NeedsMode(flags) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int open(const char* path, int flags, ...) {
  const OpenFn real = UVMBUS_REAL(OpenFn, "open");
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArgument(flags, ap);
  va_end(ap);
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);
  return FinishOpen(real(r.path, flags, mode), r.kind);
}

__attribute__((visibility("default"))) int open64(const char* path, int flags, ...) {
  const OpenFn real = UVMBUS_REAL(OpenFn, "open64");
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArgument(flags, ap);
  va_end(ap);
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);
  return FinishOpen(real(r.path, flags, mode), r.kind);
}

__attribute__((visibility("default"))) int __open_2(const char* path, int flags) {
  const Open2Fn real = UVMBUS_REAL(Open2Fn, "__open_2");
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);
  return FinishOpen(real(r.path, flags), r.kind);
}

__attribute__((visibility("default"))) int __open64_2(const char* path, int flags) {
  const Open2Fn real = UVMBUS_REAL(Open2Fn, "__open64_2");
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);
  return FinishOpen(real(r.path, flags), r.kind);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char* path, int flags, ...) {
  const OpenatFn real = UVMBUS_REAL(OpenatFn, "openat");
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArgument(flags, ap);
  va_end(ap);
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);  // absolute paths only match
  return FinishOpen(real(dirfd, r.path, flags, mode), r.kind);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char* path, int flags, ...) {
  const OpenatFn real = UVMBUS_REAL(OpenatFn, "openat64");
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArgument(flags, ap);
  va_end(ap);
  char buf[4096];
  const Rewrite r = RewritePath(path, buf, sizeof buf);
  return FinishOpen(real(dirfd, r.path, flags, mode), r.kind);
}

__attribute__((visibility("default"))) FILE* fopen(const char* path, const char* mode) {
  const FopenFn real = UVMBUS_REAL(FopenFn, "fopen");
  char buf[4096];
  return real(RewritePath(path, buf, sizeof buf).path, mode);
}

__attribute__((visibility("default"))) FILE* fopen64(const char* path, const char* mode) {
  const FopenFn real = UVMBUS_REAL(FopenFn, "fopen64");
  char buf[4096];
  return real(RewritePath(path, buf, sizeof buf).path, mode);
}

__attribute__((visibility("default"))) DIR* opendir(const char* path) {
  const OpendirFn real = UVMBUS_REAL(OpendirFn, "opendir");
  char buf[4096];
  return real(RewritePath(path, buf, sizeof buf).path);
}

__attribute__((visibility("default"))) int access(const char* path, int mode) {
  const AccessFn real = UVMBUS_REAL(AccessFn, "access");
  char buf[4096];
  return real(RewritePath(path, buf, sizeof buf).path, mode);
}

__attribute__((visibility("default"))) void* mmap(void* addr, size_t len, int prot, int flags,
                                                  int fd, off_t offset) {
  const MmapFn real = UVMBUS_REAL(MmapFn, "mmap");
  if (KindOf(fd) == kKindNone) return real(addr, len, prot, flags, fd, offset);
  return MapResource(addr, len, prot, flags, fd, offset, real);
}

__attribute__((visibility("default"))) void* mmap64(void* addr, size_t len, int prot, int flags,
                                                    int fd, off_t offset) {
  const MmapFn real = UVMBUS_REAL(MmapFn, "mmap64");
  if (KindOf(fd) == kKindNone) return real(addr, len, prot, flags, fd, offset);
  return MapResource(addr, len, prot, flags, fd, offset, real);
}

__attribute__((visibility("default"))) int close(int fd) {
  const CloseFn real = UVMBUS_REAL(CloseFn, "close");
  if (KindOf(fd) != kKindNone) Track(fd, kKindNone);
  return real(fd);
}

// uio_hv_generic's irqcontrol: 1 = interrupts on (inbound ring unmasked), 0 = off.
__attribute__((visibility("default"))) ssize_t write(int fd, const void* buf, size_t count) {
  const WriteFn real = UVMBUS_REAL(WriteFn, "write");
  if (KindOf(fd) != kKindUio) return real(fd, buf, count);
  if (count != sizeof(int32_t)) {
    errno = EINVAL;
    return -1;
  }
  int32_t on = 0;
  memcpy(&on, buf, sizeof on);
  uio::MapEntry rings;
  const int ram_fd = EnvFd(ctl::kEnvRamFd);
  if (ram_fd < 0 || !FindEntry(uio::MapEntryKind::kMap, 0, &rings)) {
    errno = ENODEV;
    return -1;
  }
  // The inbound (host->guest) ring's header is the second half of map0; interrupt_mask at +8.
  const uint32_t mask = on != 0 ? 0 : 1;
  if (pwrite(ram_fd, &mask, sizeof mask, static_cast<off_t>(rings.gpa + rings.size / 2 + 8)) !=
      static_cast<ssize_t>(sizeof mask)) {
    return -1;
  }
  return static_cast<ssize_t>(count);
}

// uio's blocking event counter: no interrupt is ever delivered to the user-space driver (it
// polls), so a blocking read waits forever and a non-blocking one finds nothing.
__attribute__((visibility("default"))) ssize_t read(int fd, void* buf, size_t count) {
  const ReadFn real = UVMBUS_REAL(ReadFn, "read");
  if (KindOf(fd) != kKindUio) return real(fd, buf, count);
  if (count != sizeof(int32_t)) {
    errno = EINVAL;
    return -1;
  }
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK) != 0) {
    errno = EAGAIN;
    return -1;
  }
  for (;;) {
    if (poll(nullptr, 0, -1) < 0 && errno == EINTR) {
      return -1;  // a signal interrupts the wait, as for the real device
    }
  }
}

__attribute__((visibility("default"))) int memfd_create(const char* name, unsigned int flags) {
  const MemfdFn real = UVMBUS_REAL(MemfdFn, "memfd_create");
  const bool heap = name != nullptr && strcmp(name, "nohuge") == 0;
  if (heap) flags |= MFD_ALLOW_SEALING;
  const int fd = real(name, flags);
  if (heap && fd >= 0) g_nohuge_fd.store(fd, std::memory_order_release);
  return fd;
}

}  // extern "C"
