// Ring throughput micro-benchmarks (Google Benchmark):
//   BM_RingWriteReadBatch/<payload>/<batch>: one thread writes a batch of in-band packets,
//     commits, reads them all back (copy-out + validation), commits. Measures the per-packet
//     cost of framing, copying and validating with no cross-core traffic.
//   BM_RingProducerConsumer/<payload>/<batch>: a producer thread and the benchmark thread
//     (consumer) run concurrently over one 512 KiB ring (netvsc's default data size, spec 3.9),
//     both busy-polling (no signals): the cross-core throughput of the protocol itself.
// Payloads of 64 and 1500 bytes (a small and a full-MTU frame). items/s = packets per second.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "ring/incoming_ring.h"
#include "ring/outgoing_ring.h"
#include "ring/ring_view.h"

namespace uvmbus::ring {
namespace {

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// A formatted ring of `data_bytes` data area, page aligned.
struct BenchRing {
  explicit BenchRing(uint32_t data_bytes)
      : size(data_bytes + wire::kRingHeaderSize),
        mem(static_cast<uint8_t*>(std::aligned_alloc(wire::kRingPageSize, size))) {
    std::memset(mem.get(), 0, size);
    view = InitRingControl({mem.get(), size}).value();
  }
  size_t size;
  std::unique_ptr<uint8_t, FreeDeleter> mem;
  RingView view;
};

void BM_RingWriteReadBatch(benchmark::State& state) {
  const auto payload_len = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<int>(state.range(1));
  BenchRing ring(128 * 4096);
  auto out = OutgoingRing::Create(ring.view).value();
  auto in = IncomingRing::Create(ring.view, {.max_packet_size = 4096}).value();
  std::vector<uint8_t> payload(payload_len, 0x5A);
  uint64_t checksum = 0;
  for (auto _ : state) {
    WriteCursor wc = out.BeginWrite();
    for (int i = 0; i < batch; ++i) {
      if (!out.WriteInband(wc, payload, static_cast<uint64_t>(i), false).ok()) {
        state.SkipWithError("write failed");
        return;
      }
    }
    benchmark::DoNotOptimize(out.CommitWrite(wc));
    ReadCursor rc = in.BeginRead();
    for (int i = 0; i < batch; ++i) {
      ReadResult r = in.Read(rc);
      if (!r.ok()) {
        state.SkipWithError("read failed");
        return;
      }
      checksum += r.packet.payload[0];
    }
    benchmark::DoNotOptimize(in.CommitRead(rc));
  }
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * static_cast<int64_t>(payload_len));
}

void BM_RingProducerConsumer(benchmark::State& state) {
  const auto payload_len = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<uint64_t>(state.range(1));
  BenchRing ring(128 * 4096);
  auto out = OutgoingRing::Create(ring.view).value();
  auto in = IncomingRing::Create(ring.view, {.max_packet_size = 4096}).value();
  const uint64_t total = static_cast<uint64_t>(state.max_iterations) * batch;
  std::atomic<bool> failed{false};

  std::thread producer([&] {
    std::vector<uint8_t> payload(payload_len, 0xA5);
    uint64_t sent = 0;
    while (sent < total && !failed.load(std::memory_order_relaxed)) {
      WriteCursor wc = out.BeginWrite();
      uint64_t n = 0;
      while (n < batch && sent + n < total) {
        WriteResult r = out.WriteInband(wc, payload, sent + n, false);
        if (r.status == WriteStatus::kFull) break;  // poll: publish what we have, retry
        if (!r.ok()) {
          failed.store(true);
          return;
        }
        ++n;
      }
      out.CommitWrite(wc);
      sent += n;
    }
  });

  uint64_t received = 0;
  uint64_t checksum = 0;
  for (auto _ : state) {
    uint64_t got = 0;
    while (got < batch) {
      ReadCursor rc = in.BeginRead();
      while (got < batch) {
        ReadResult r = in.Read(rc);
        if (r.status == ReadStatus::kEmpty) break;
        if (!r.ok() || r.packet.desc.trans_id != received) {
          failed.store(true);
          break;
        }
        checksum += r.packet.payload[0];
        ++got;
        ++received;
      }
      in.CommitRead(rc);
      if (failed.load(std::memory_order_relaxed)) break;
    }
    if (failed.load(std::memory_order_relaxed)) {
      state.SkipWithError("ring transfer failed");  // allows leaving the loop early
      break;
    }
  }
  failed.store(true, std::memory_order_relaxed);  // releases a producer spinning on a full ring
  producer.join();
  if (received != total) return;
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(static_cast<int64_t>(received));
  state.SetBytesProcessed(static_cast<int64_t>(received * payload_len));
}

BENCHMARK(BM_RingWriteReadBatch)->ArgsProduct({{64, 1500}, {1, 32}});
BENCHMARK(BM_RingProducerConsumer)->ArgsProduct({{64, 1500}, {32}})->UseRealTime();

}  // namespace
}  // namespace uvmbus::ring
