// File: devices/uio/map_table.h
//
// What: the "map table", a small text file that tells the LD_PRELOAD shim (tools/uio_preload)
// where in guest RAM each uio resource and each channel ring lives, so that it can turn
// mmap(/dev/uioN, offset i * 4096) or mmap(<dev>/channels/<relid>/ring) into an mmap of the
// guest-RAM memfd at the right guest physical address. Written by UioNetDriver (uio_driver.h),
// read by the shim; header-only and libc-only because the shim links nothing but libc.
//
//   uvmbus-uio-table 1
//   map <index> <gpa> <size>        uio map <index> (0 rings, 1 int_page, 2 monitor_page,
//                                   3 recv buffer, 4 send buffer)
//   ring <relid> <gpa> <size>       channel <relid>'s ring pair (primary and sub-channels)
//
// Numbers are decimal or 0x-hex. The writer replaces the file atomically (rename), so a reader
// sees either the old or the new table; a sub-channel's `ring` file appears only after its line
// is in the table.
// Spec: none of vmbus-protocol.md (a uvmbus-private format); it describes the resources of
//       Linux uio_hv_generic (drivers/uio/uio_hv_generic.c: map names and order).
// Thread-safety: pure functions.
#ifndef UVMBUS_DEVICES_UIO_MAP_TABLE_H_
#define UVMBUS_DEVICES_UIO_MAP_TABLE_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace uvmbus::devices::uio {

// First line of every table file.
inline constexpr char kMapTableHeader[] = "uvmbus-uio-table 1";
// The uio maps of a netvsc device, in DPDK's order (rte_vmbus_map_device).
inline constexpr int kUioMapCount = 5;

enum class MapEntryKind : uint8_t { kMap, kRing };

// One line of the table.
struct MapEntry {
  MapEntryKind kind = MapEntryKind::kMap;
  uint32_t id = 0;  // map index or relid
  uint64_t gpa = 0;
  uint64_t size = 0;
};

namespace map_table_internal {
// Parses one unsigned number (decimal or 0x-hex) at *p, advancing it. False if none.
inline bool ParseNumber(const char** p, uint64_t* out) {
  while (**p == ' ' || **p == '\t') ++*p;
  if (**p < '0' || **p > '9') return false;
  char* end = nullptr;
  const int base = ((*p)[0] == '0' && ((*p)[1] == 'x' || (*p)[1] == 'X')) ? 16 : 10;
  const unsigned long long v = std::strtoull(*p, &end, base);
  if (end == *p) return false;
  *out = v;
  *p = end;
  return true;
}
}  // namespace map_table_internal

// Parses one line (without or with its trailing newline). Returns 1 and fills `out` for a map or
// ring line, 0 for the header or an empty line, -1 for anything else (including gpa + size
// overflow or an out-of-range index).
inline int ParseMapTableLine(const char* line, MapEntry* out) {
  const char* p = line;
  while (*p == ' ' || *p == '\t') ++p;
  if (*p == '\0' || *p == '\n') return 0;
  if (std::strncmp(p, kMapTableHeader, sizeof kMapTableHeader - 1) == 0) return 0;
  MapEntry e;
  if (std::strncmp(p, "map ", 4) == 0) {
    e.kind = MapEntryKind::kMap;
    p += 4;
  } else if (std::strncmp(p, "ring ", 5) == 0) {
    e.kind = MapEntryKind::kRing;
    p += 5;
  } else {
    return -1;
  }
  uint64_t id = 0;
  if (!map_table_internal::ParseNumber(&p, &id) || !map_table_internal::ParseNumber(&p, &e.gpa) ||
      !map_table_internal::ParseNumber(&p, &e.size)) {
    return -1;
  }
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
  if (*p != '\0') return -1;
  if (e.kind == MapEntryKind::kMap && id >= static_cast<uint64_t>(kUioMapCount)) return -1;
  if (id > 0xFFFFFFFFull || e.size == 0 || e.gpa + e.size < e.gpa) return -1;
  e.id = static_cast<uint32_t>(id);
  *out = e;
  return 1;
}

}  // namespace uvmbus::devices::uio

#endif  // UVMBUS_DEVICES_UIO_MAP_TABLE_H_
