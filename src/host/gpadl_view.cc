// File: host/gpadl_view.cc — see gpadl_view.h.
#include "host/gpadl_view.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace uvmbus::host {
namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_live_alias{0};

constexpr uint64_t kPage = wire::kGpaPageSize;

struct Run {
  uint64_t first_gpn;
  uint64_t count;
};

}  // namespace

int64_t GpadlView::LiveCount() { return g_live.load(std::memory_order_relaxed); }
int64_t GpadlView::LiveAliasCount() { return g_live_alias.load(std::memory_order_relaxed); }

GpadlView::GpadlView(uint32_t handle, uint32_t child_relid, std::vector<wire::GpaRange> ranges,
                     std::span<uint8_t> pages, MappedRegion alias, size_t run_count)
    : handle_(handle),
      child_relid_(child_relid),
      ranges_(std::move(ranges)),
      pages_(pages),
      alias_(std::move(alias)),
      run_count_(run_count) {
  g_live.fetch_add(1, std::memory_order_relaxed);
  if (alias_.valid()) g_live_alias.fetch_add(1, std::memory_order_relaxed);
}

GpadlView::~GpadlView() {
  g_live.fetch_sub(1, std::memory_order_relaxed);
  if (alias_.valid()) g_live_alias.fetch_sub(1, std::memory_order_relaxed);
  // alias_ (if any) is unmapped by MappedRegion: one munmap drops every alias inside it.
}

Expected<std::shared_ptr<GpadlView>> GpadlView::Create(const PageResolver& resolve,
                                                        uint32_t handle, uint32_t child_relid,
                                                        std::vector<wire::GpaRange> ranges) {
  if (ranges.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL {:#x} has no ranges", handle);
  }
  // Split the page list into runs of consecutive guest page numbers. The PFN count is bounded by
  // the assembler (range_buflen is 16 bits, so at most 8190 PFNs per GPADL: spec 9.1 G4).
  std::vector<Run> runs;
  uint64_t total_pages = 0;
  for (const wire::GpaRange& range : ranges) {
    for (uint64_t pfn : range.pfns) {
      if (!runs.empty() && runs.back().first_gpn + runs.back().count == pfn &&
          pfn != 0 /* no wrap from ~0 */) {
        ++runs.back().count;
      } else {
        runs.push_back(Run{pfn, 1});
      }
      ++total_pages;
    }
  }
  if (total_pages == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "GPADL {:#x} names no pages", handle);
  }

  // Validate every run against guest RAM first: nothing is mapped for a GPADL with a bad page.
  // Guest RAM may consist of several regions (partition::GuestRam::AddRegion): a run of
  // consecutive PFNs that crosses from one region into an adjacent one is not one host span, so
  // a run the partition refuses as a whole is resolved page by page and cut where the host
  // addresses stop being contiguous. A page outside every region still fails the GPADL.
  std::vector<std::span<uint8_t>> run_bytes;
  run_bytes.reserve(runs.size());
  std::vector<Run> pieces;
  pieces.reserve(runs.size());
  for (const Run& run : runs) {
    auto bytes = resolve(run.first_gpn, run.count);
    if (bytes) {
      run_bytes.push_back(*bytes);
      pieces.push_back(run);
      continue;
    }
    if (run.count == 1 || bytes.error().code != ErrorCode::kMalformed) {
      return unexpected(Error{bytes.error().code,
                              fmt::format("GPADL {:#x}: pfn {:#x} (+{} pages): {}", handle,
                                          run.first_gpn, run.count, bytes.error().message)});
    }
    for (uint64_t i = 0; i < run.count; ++i) {
      auto page = resolve(run.first_gpn + i, 1);
      if (!page) {
        return unexpected(Error{page.error().code,
                                fmt::format("GPADL {:#x}: pfn {:#x}: {}", handle,
                                            run.first_gpn + i, page.error().message)});
      }
      // Extend the current piece only if the partition resolves it as one span (one region):
      // merely adjacent host addresses could belong to two mappings, which one mremap cannot
      // alias.
      auto longer = i == 0 ? decltype(page)(unexpected(Error{ErrorCode::kMalformed, ""}))
                           : resolve(pieces.back().first_gpn, pieces.back().count + 1);
      if (longer) {
        run_bytes.back() = *longer;
        ++pieces.back().count;
      } else {
        run_bytes.push_back(*page);
        pieces.push_back(Run{run.first_gpn + i, 1});
      }
    }
  }
  runs = std::move(pieces);

  if (runs.size() == 1) {
    std::span<uint8_t> pages = run_bytes.front();
    return std::shared_ptr<GpadlView>(
        new GpadlView(handle, child_relid, std::move(ranges), pages, MappedRegion(), 1));
  }

  // Non-contiguous: alias each run at consecutive addresses of a reserved region.
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(kPage)) {
    return MakeError(ErrorCode::kUnsupported,
                     "GPADL {:#x}: non-contiguous pages need a 4 KiB host page size", handle);
  }
  const size_t bytes_total = static_cast<size_t>(total_pages * kPage);
  // MAP_NORESERVE + PROT_NONE: the placeholder costs nothing and faults if a bug ever reached an
  // unfilled hole (there are none once every run is placed).
  void* base = ::mmap(nullptr, bytes_total, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return unexpected(Error::FromErrno("mmap(GPADL reservation)", errno));
  MappedRegion region(base, bytes_total);
  size_t offset = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const size_t len = static_cast<size_t>(runs[i].count * kPage);
    // old_size 0 on a MAP_SHARED mapping: a second mapping of the same pages (mremap(2)).
    void* placed = ::mremap(run_bytes[i].data(), 0, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                            region.data() + offset);
    if (placed == MAP_FAILED) {
      return unexpected(Error::FromErrno(
          fmt::format("mremap(GPADL {:#x} run at pfn {:#x})", handle, runs[i].first_gpn), errno));
    }
    offset += len;
  }
  std::span<uint8_t> pages = region.span();
  return std::shared_ptr<GpadlView>(new GpadlView(handle, child_relid, std::move(ranges), pages,
                                                  std::move(region), runs.size()));
}

std::span<uint8_t> GpadlView::RangeBytes(size_t index) const {
  if (index >= ranges_.size()) return {};
  size_t page_offset = 0;
  for (size_t i = 0; i < index; ++i) page_offset += ranges_[i].pfns.size();
  const wire::GpaRange& r = ranges_[index];
  // The assembler guaranteed byte_offset < 4096 and offset + count <= pfns * 4096.
  return pages_.subspan(page_offset * kPage + r.byte_offset, r.byte_count);
}

bool GpadlView::IsPageAligned() const {
  for (const wire::GpaRange& r : ranges_) {
    if (r.byte_offset != 0 || r.byte_count % kPage != 0) return false;
  }
  return true;
}

}  // namespace uvmbus::host
