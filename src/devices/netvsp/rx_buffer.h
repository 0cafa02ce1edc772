// File: devices/netvsp/rx_buffer.h
//
// What: the host's bookkeeping of the guest's receive buffer (spec 5.6): how it is cut into
// sub-allocations (the layout the host reports in SEND_RECV_BUF_COMPLETE), which sub-allocations
// are free (`SectionPool`, shared by every queue) and which transfer-page packets are waiting for
// the guest's completion on one queue (`InflightTable`, keyed by the host's trans_id).
//
//   pop sections -> write RNDIS PACKET_MSGs into them -> one transfer-page packet (trans_id from
//   InflightTable::Begin) -> guest COMP 108 with that trans_id -> InflightTable::Complete ->
//   SectionPool::PushChain (all sections of the packet in one atomic step)
//
// Sub-allocation layout (OpenVMM's, spec 5.6): each sub-allocation is kRxHeaderReserve bytes for
// the RNDIS header and PPIs, then the frame (at most the NIC's largest frame), then 36 bytes that
// are never used (a Windows guest bug OpenVMM works around); one section at offset 0 with
// num_sub_allocs = buffer size / sub_alloc_size.
//
// SectionPool is a lock-free LIFO (a Treiber stack with a 32-bit tag against ABA) over the
// section indexes; one `next` word per section links both the free list and a queue's private
// chain of in-flight sections, so freeing all sections of a completed packet is one CAS and
// nothing is allocated after construction. InflightTable is private to one queue's thread.
//
// Spec: vmbus-protocol.md 5.6 (receive buffer, sub-allocations, completion returns the ranges),
//       4.4 (transfer-page packets), 4.7 (host trans_ids echoed by the guest), 9.7 P7, P15, P18.
// Linux/OpenVMM: OpenVMM vm/devices/net/netvsp/src/buffers.rs, rx_bufs.rs (RxBuffers: ids ->
//       sub-allocations, completion by transaction id); Linux netvsc_init_buf (what the guest
//       checks: one section at 0, sub_alloc_size >= 68, size * count <= buffer).
// Thread-safety: SectionPool: Pop/Push/PushChain from any thread concurrently; SetNext/Next only
//       on sections the caller owns (popped, not yet pushed). InflightTable: one thread.
#ifndef UVMBUS_DEVICES_NETVSP_RX_BUFFER_H_
#define UVMBUS_DEVICES_NETVSP_RX_BUFFER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/error.h"

namespace uvmbus::netvsp {

// Bytes reserved at the start of each sub-allocation for the RNDIS PACKET_MSG header and its
// PPIs; the frame starts right after (OpenVMM: 256).
inline constexpr uint32_t kRxHeaderReserve = 256;
// Bytes left unused at the end of each sub-allocation (OpenVMM, Windows guest workaround).
inline constexpr uint32_t kRxTailPad = 36;
// Largest receive buffer accepted (Linux's hard maximum is 31 MiB; a single-range GPADL is at
// most 8190 pages). Bounds what the host allocates per section (spec 9.1 G4).
inline constexpr uint64_t kMaxReceiveBufferBytes = 64ull << 20;
// Largest send buffer accepted (Linux's hard maximum is 15 MiB).
inline constexpr uint64_t kMaxSendBufferBytes = 64ull << 20;

// What SEND_RECV_BUF_COMPLETE reports (one section at offset 0).
struct ReceiveBufferLayout {
  uint32_t sub_alloc_size = 0;
  uint32_t num_sub_allocs = 0;
  uint32_t end_offset() const { return sub_alloc_size * num_sub_allocs; }
};

// The layout for a buffer of `buffer_bytes` holding frames of up to `max_frame` bytes:
// sub_alloc_size = kRxHeaderReserve + max_frame + kRxTailPad rounded up to 8, count = bytes /
// size. Errors (kMalformed, the host answers FAIL, spec 9.7 P7): smaller than one
// sub-allocation, larger than kMaxReceiveBufferBytes.
Expected<ReceiveBufferLayout> ComputeReceiveBufferLayout(uint64_t buffer_bytes, uint32_t max_frame);

class SectionPool {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // A pool of sections 0..count-1, all free. count < kNone.
  explicit SectionPool(uint32_t count);
  SectionPool(const SectionPool&) = delete;
  SectionPool& operator=(const SectionPool&) = delete;

  // Takes a free section, or kNone when none is free.
  uint32_t Pop();
  // Returns one section.
  void Push(uint32_t section) { PushChain(section, section); }
  // Returns a chain first -> ... -> last the caller linked with SetNext() (one CAS).
  void PushChain(uint32_t first, uint32_t last);
  // Links owned sections into a private chain.
  void SetNext(uint32_t section, uint32_t next) {
    next_[section].store(next, std::memory_order_relaxed);
  }
  uint32_t Next(uint32_t section) const { return next_[section].load(std::memory_order_relaxed); }
  // Returns `n` owned sections (any order) with one CAS.
  void PushMany(const uint32_t* sections, uint32_t n);

  uint32_t count() const { return count_; }
  // Free sections now (racy snapshot).
  uint32_t free_count() const { return free_.load(std::memory_order_relaxed); }

 private:
  static uint64_t Pack(uint32_t index, uint32_t tag) { return (uint64_t{tag} << 32) | index; }

  const uint32_t count_;
  std::unique_ptr<std::atomic<uint32_t>[]> next_;
  // (tag << 32) | index of the first free section (kNone: empty). The tag changes on every
  // successful update, so a pop that read a stale head/next pair fails its CAS (ABA).
  std::atomic<uint64_t> head_;
  std::atomic<uint32_t> free_;
};

// Transfer-page packets of one queue waiting for the guest's completion.
class InflightTable {
 public:
  struct Entry {
    uint32_t first = SectionPool::kNone;  // chain of sections (SectionPool links)
    uint32_t last = SectionPool::kNone;
    uint32_t count = 0;
  };

  // Up to `capacity` packets in flight (>= 1).
  explicit InflightTable(uint32_t capacity);

  // Begin()'s answer when every slot is in use.
  static constexpr uint64_t kFull = UINT64_MAX;

  // Records a packet and returns its trans_id, or kFull when the table is full. The id is the
  // slot index: a small integer, and always below the peak number of packets in flight (freed
  // slots are reused most recent first, and a never-used index is taken only when every index
  // used before is in flight). Every in-flight packet holds at least one receive sub-allocation, so the
  // id is below the sub-allocation count the host reported (OpenVMM uses sub-allocation ids
  // the same way). DPDK's netvsc PMD depends on that: it indexes a per-queue array of
  // `slotcnt` entries with the xactid of each receive packet (hn_nvs_handle_rxbuf).
  uint64_t Begin(const Entry& entry);
  // The packet named by a guest completion; nullopt for an id that is not in flight (unknown,
  // already completed, or from another queue: spec 9.7 P15).
  std::optional<Entry> Complete(uint64_t trans_id);
  // Removes every in-flight packet, calling fn(entry) for each (channel closed: the guest will
  // never complete them).
  template <typename Fn>
  void DrainAll(Fn&& fn) {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (!s.used) continue;
      fn(s.entry);
      s.used = false;
      free_.push_back(i);
    }
  }

  uint32_t in_flight() const { return static_cast<uint32_t>(slots_.size() - free_.size()); }
  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  struct Slot {
    Entry entry;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // stack of free slot indexes (capacity fixed at construction)
};

}  // namespace uvmbus::netvsp

#endif  // UVMBUS_DEVICES_NETVSP_RX_BUFFER_H_
