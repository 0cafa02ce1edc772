// File: net/pipe.h
//
// What: in-memory endpoints built on FrameRing.
//   * Loopback: every frame sent on queue q comes back from Poll() on queue q (q modulo the
//     active queue count): a host backend for tests and for a NIC that talks to itself.
//   * Pipe: two connected endpoints, a virtual cable. Frames sent on one end's queue q are
//     polled from the other end's queue q (modulo its active queue count). This is the guest's
//     "burst packet API" frontend: netvsc uses the `nic` end, the application uses the `app` end
//     with the same FrameBatch/RxBatch calls (DPDK rte_eth_tx_burst/rx_burst style, memif-like).
//
// Each end has its own link (carrier) state: frames sent by a down end are dropped
// (tx_carrier_errors); frames for a down end are dropped (the receiving queue's rx_dropped).
// A full receive ring drops the frame (the receiving queue's rx_missed_errors); Send never
// blocks. Frames are copied twice (into the ring, out of it) and padded to 60 bytes.
//
// Spec: none (host/guest-internal plumbing).
// Linux/OpenVMM: OpenVMM vm/devices/net/net_backend/src/loopback.rs (LoopbackEndpoint); the
//       semantics of a veth pair.
// Thread-safety: as net/endpoint.h: one thread per queue on the data path; the two ends of a pipe
//       run on independent threads; either end may be destroyed first.
#ifndef UVMBUS_NET_PIPE_H_
#define UVMBUS_NET_PIPE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "net/endpoint.h"

namespace uvmbus::net {

struct RingEndpointOptions {
  std::string name = "loopback";
  uint32_t queues = 1;            // max queues, 1..64; all start active
  uint32_t ring_depth = 256;      // frames per receive ring, a power of two
  uint32_t mtu = kDefaultMtu;     // kMinMtu..kMaxMtu
};

// Creates a loopback endpoint. Errors: kInvalidArgument for bad options; kIo.
Expected<std::unique_ptr<Endpoint>> CreateLoopback(const RingEndpointOptions& options);

// The two ends of a pipe ("<name>/nic" and "<name>/app").
struct PipeEnds {
  std::unique_ptr<Endpoint> nic;
  std::unique_ptr<Endpoint> app;
};

// Creates a pipe. Errors: kInvalidArgument for bad options; kIo.
Expected<PipeEnds> CreatePipe(const RingEndpointOptions& options);

}  // namespace uvmbus::net

#endif  // UVMBUS_NET_PIPE_H_
