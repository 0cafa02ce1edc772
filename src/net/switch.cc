#include "net/switch.h"

#include <algorithm>
#include <cstring>

#include "net/frame_ring.h"

namespace uvmbus::net {
namespace switch_internal {

// Everything the switch knows about one attached NIC. Shared by the SwitchPort (owner), the
// snapshots that list it, and (through those) other ports' queues that are delivering to it.
struct PortCore {
  uint32_t id = 0;
  std::string name;
  MacAddress mac;
  uint64_t mac_u64 = 0;
  bool allow_spoof = false;
  uint32_t max_frame = 0;
  uint32_t max_queues = 0;
  std::vector<std::unique_ptr<FrameRing>> rings;              // receive ring per queue
  std::vector<std::unique_ptr<QueueCounters>> counters;       // per queue
  std::atomic<uint32_t> active{1};
  std::atomic<bool> link_up{true};
  std::atomic<bool> attached{true};
  struct {
    Counter forwarded, flooded, hairpin, spoofed, invalid_source, learned, learn_refused;
  } stats;
};

// A learned binding. `port` never changes (a move creates a new entry); last_seen is refreshed
// in place by the owning port's queues.
struct MacEntry {
  uint64_t mac = 0;
  PortCore* port = nullptr;  // alive: every snapshot holding this entry also holds the port
  mutable std::atomic<int64_t> last_seen_ns{0};
};

// An immutable view of the switch: attached ports and the MAC table (open addressing, linear
// probing, load factor <= 1/2, never written after publication).
struct Snapshot {
  std::vector<std::shared_ptr<PortCore>> ports;
  std::vector<std::shared_ptr<MacEntry>> entries;
  std::vector<const MacEntry*> index;
  uint64_t mask = 0;

  static uint64_t Hash(uint64_t mac) { return (mac * 0x9e3779b97f4a7c15ull) >> 20; }

  const MacEntry* Find(uint64_t mac) const {
    if (index.empty()) return nullptr;
    for (uint64_t i = Hash(mac) & mask;; i = (i + 1) & mask) {
      const MacEntry* e = index[i];
      if (e == nullptr) return nullptr;
      if (e->mac == mac) return e;
    }
  }

  void BuildIndex() {
    size_t cap = 16;
    while (cap < entries.size() * 2) cap *= 2;
    index.assign(cap, nullptr);
    mask = cap - 1;
    for (const auto& e : entries) {
      uint64_t i = Hash(e->mac) & mask;
      while (index[i] != nullptr) i = (i + 1) & mask;
      index[i] = e.get();
    }
  }
};

namespace {

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline uint64_t Load48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; ++i) v = (v << 8) | p[i];
  return v;
}

// Flow hash over the private header copy `h` (n bytes): IPv4 addresses plus TCP/UDP ports of
// unfragmented packets, else the MAC pair.
uint32_t FlowHash(const uint8_t* h, uint32_t n) {
  uint64_t x = Load48(h) ^ (Load48(h + 6) << 16);
  if (n >= 34 && h[12] == 0x08 && h[13] == 0x00 && (h[14] >> 4) == 4) {
    const uint32_t ihl = (h[14] & 0x0fu) * 4u;
    uint32_t src, dst;
    std::memcpy(&src, h + 26, 4);
    std::memcpy(&dst, h + 30, 4);
    x = (uint64_t{src} << 32) | dst;
    const bool fragment = ((h[20] & 0x3f) != 0) || h[21] != 0;  // MF flag or an offset
    const uint8_t proto = h[23];
    if (!fragment && (proto == 6 || proto == 17) && ihl >= 20 && 14 + ihl + 4 <= n) {
      uint32_t ports;
      std::memcpy(&ports, h + 14 + ihl, 4);
      x ^= Mix(ports ^ (uint64_t{proto} << 32));
    }
  }
  return static_cast<uint32_t>(Mix(x));
}

}  // namespace

// One queue of a SwitchPort: the forwarding path.
class SwitchQueue final : public Queue {
 public:
  SwitchQueue(Switch* sw, PortCore* self, uint32_t index)
      : sw_(sw), self_(self), index_(index), counters_(*self->counters[index]) {
    touched_.reserve(64);
  }

  uint32_t Send(const FrameBatch& batch) override;

  uint32_t Poll(RxBatch& batch) override {
    return PollRingInto(*self_->rings[index_], batch, counters_);
  }
  int wait_fd() const override { return self_->rings[index_]->wait_fd(); }
  bool PrepareWait() override { return self_->rings[index_]->PrepareWait(); }
  NetStats stats() const override { return counters_.Snapshot(); }

 private:
  // Bytes of each frame copied privately for decisions: Ethernet + IPv4 (up to 40 bytes of
  // options would not fit, which only weakens the hash) + L4 ports.
  static constexpr uint32_t kHeaderCopy = 64;

  void Deliver(PortCore* to, std::span<const uint8_t> frame, const uint8_t* header,
               uint32_t hash);

  Switch* const sw_;
  PortCore* const self_;
  const uint32_t index_;
  QueueCounters& counters_;
  std::shared_ptr<const Snapshot> snap_;
  uint64_t generation_ = 0;
  std::vector<FrameRing*> touched_;  // rings written in this batch (woken once at its end)
};

void SwitchQueue::Deliver(PortCore* to, std::span<const uint8_t> frame, const uint8_t* header,
                          uint32_t hash) {
  // Relaxed: a stale active count only steers a frame to a queue that is being (de)activated;
  // SetQueueCount runs with the port's workers stopped (endpoint.h).
  const uint32_t active = std::max<uint32_t>(1, to->active.load(std::memory_order_relaxed));
  const uint32_t q = active == 1 ? 0 : hash % active;
  QueueCounters& rx_counters = *to->counters[q];
  if (!to->link_up.load(std::memory_order_relaxed)) {
    rx_counters.rx_dropped.Add();
    return;
  }
  if (frame.size() > to->max_frame) {
    rx_counters.rx_errors.Add();  // the receiver's MTU is smaller than the sender's
    return;
  }
  FrameRing* ring = to->rings[q].get();
  if (!ring->Push(frame, {header, kEthHeaderSize})) {
    rx_counters.rx_missed_errors.Add();  // receiver too slow: drop, never block the sender
    return;
  }
  if (std::find(touched_.begin(), touched_.end(), ring) == touched_.end()) {
    touched_.push_back(ring);
  }
}

uint32_t SwitchQueue::Send(const FrameBatch& batch) {
  // All counters are accumulated on the stack and published once per batch (style.md 1.9 #11).
  BatchTally tx;
  if (!self_->link_up.load(std::memory_order_relaxed)) {
    tx.carrier = batch.size();
    tx.PublishTx(counters_);
    return batch.size();
  }
  // One atomic load per batch; the mutex only when the table or the port list changed.
  if (auto fresh = sw_->Refresh(&generation_)) snap_ = std::move(fresh);
  const Snapshot& snap = *snap_;
  const int64_t now = sw_->NowNs();
  const int64_t ageing = sw_->options_.ageing_ns;
  const int64_t refresh_after = ageing / 8;
  uint64_t learn[kMaxBatch];
  uint32_t learn_count = 0;
  uint64_t forwarded = 0, flooded = 0, hairpin = 0, spoofed = 0, invalid_source = 0;
  touched_.clear();

  for (const auto& f : batch) {
    if (CheckFrameLength(f.length, self_->max_frame) != FrameCheck::kOk) {
      ++tx.errors;
      continue;
    }
    // Copy-out: every decision below reads this private copy, never f.data again.
    uint8_t header[kHeaderCopy];
    const uint32_t copied = std::min(f.length, kHeaderCopy);
    std::memcpy(header, f.data, copied);
    const uint64_t dst = Load48(header);
    const uint64_t src = Load48(header + 6);

    // A group source address is never valid (802.1D 7.8); learning it would blackhole the group.
    if ((header[6] & 1) != 0 || src == 0) {
      ++invalid_source;
      ++tx.dropped;
      continue;
    }
    if (!self_->allow_spoof && src != self_->mac_u64) {
      ++spoofed;
      ++tx.dropped;
      continue;
    }
    ++tx.packets;
    tx.bytes += f.length;

    // Learning: refresh our own fresh entry (rarely), queue anything else for the batch end.
    const MacEntry* se = snap.Find(src);
    if (se != nullptr && se->port == self_ &&
        now - se->last_seen_ns.load(std::memory_order_relaxed) <= ageing) {
      if (now - se->last_seen_ns.load(std::memory_order_relaxed) > refresh_after) {
        se->last_seen_ns.store(now, std::memory_order_relaxed);
      }
    } else if (std::find(learn, learn + learn_count, src) == learn + learn_count) {
      learn[learn_count++] = src;
    }

    const uint32_t hash = FlowHash(header, copied);
    // Group destinations are always flooded (no IGMP/MLD snooping); the table is not consulted.
    const bool group = (header[0] & 1) != 0;
    const MacEntry* de = group ? nullptr : snap.Find(dst);
    if (de != nullptr && now - de->last_seen_ns.load(std::memory_order_relaxed) <= ageing) {
      if (de->port == self_) {
        ++hairpin;
      } else {
        ++forwarded;
        Deliver(de->port, f.bytes(), header, hash);
      }
      continue;
    }
    ++flooded;
    for (const auto& port : snap.ports) {
      if (port.get() == self_ || !port->attached.load(std::memory_order_relaxed)) continue;
      Deliver(port.get(), f.bytes(), header, hash);
    }
  }

  // Wake after the whole batch is published: one eventfd write per receiving ring, not per frame.
  for (FrameRing* ring : touched_) ring->WakeIfArmed();
  tx.PublishTx(counters_);
  auto& st = self_->stats;
  if (forwarded != 0) st.forwarded.Add(forwarded);
  if (flooded != 0) st.flooded.Add(flooded);
  if (hairpin != 0) st.hairpin.Add(hairpin);
  if (spoofed != 0) st.spoofed.Add(spoofed);
  if (invalid_source != 0) st.invalid_source.Add(invalid_source);
  if (learn_count != 0) sw_->Learn(self_, learn, learn_count, now);
  return batch.size();
}

}  // namespace switch_internal

using switch_internal::MacEntry;
using switch_internal::PortCore;
using switch_internal::Snapshot;
using switch_internal::SwitchQueue;

// ---------------------------------------------------------------------------------------------
// Switch

Expected<std::shared_ptr<Switch>> Switch::Create(const SwitchOptions& options) {
  if (options.name.empty()) return MakeError(ErrorCode::kInvalidArgument, "switch needs a name");
  if (options.max_frame_size < MaxFrameSizeForMtu(kMinMtu) ||
      options.max_frame_size > kMaxFrameSize) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: max frame size {} outside {}..{}",
                     options.name, options.max_frame_size, MaxFrameSizeForMtu(kMinMtu),
                     kMaxFrameSize);
  }
  if (options.ring_depth < 2 || options.ring_depth > 65536 ||
      (options.ring_depth & (options.ring_depth - 1)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: ring depth {} is not a power of two",
                     options.name, options.ring_depth);
  }
  if (options.ageing_ns <= 0 || options.max_mac_entries == 0 || options.max_macs_per_port == 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: ageing time and MAC limits must be positive", options.name);
  }
  return std::shared_ptr<Switch>(new Switch(options));
}

Switch::Switch(const SwitchOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : &SteadyClock::Instance()) {
  auto empty = std::make_shared<Snapshot>();
  empty->BuildIndex();
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(empty);
}

Switch::~Switch() = default;

void Switch::Publish(std::shared_ptr<const Snapshot> next) {
  current_ = std::move(next);
  // Release: a queue that sees the new generation and then takes mu_ reads current_ anyway;
  // the ordering only keeps the generation from running ahead of the snapshot it names.
  generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const Snapshot> Switch::Refresh(uint64_t* generation) const {
  if (generation_.load(std::memory_order_acquire) == *generation) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  *generation = generation_.load(std::memory_order_relaxed);
  return current_;
}

Expected<std::unique_ptr<SwitchPort>> Switch::AddPort(const SwitchPortOptions& options) {
  if (options.queues == 0 || options.queues > kMaxQueues) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: {} queues outside 1..{}", options_.name,
                     options.queues, kMaxQueues);
  }
  if (!IsValidMtu(options.mtu) || MaxFrameSizeForMtu(options.mtu) > options_.max_frame_size) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: port MTU {} outside {}..{} (the switch carries frames up to {} bytes)",
                     options_.name, options.mtu, kMinMtu,
                     options_.max_frame_size - kEthHeaderSize, options_.max_frame_size);
  }
  if (!options.allow_spoof && (options.mac.IsMulticast() || options.mac.IsZero())) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: port MAC {} is not a unicast address (needed with spoof=off)",
                     options_.name, options.mac.ToString());
  }
  auto core = std::make_shared<PortCore>();
  core->mac = options.mac;
  core->mac_u64 = options.mac.ToU64();
  core->allow_spoof = options.allow_spoof;
  core->max_frame = MaxFrameSizeForMtu(options.mtu);
  core->max_queues = options.queues;
  core->active.store(options.queues, std::memory_order_relaxed);
  for (uint32_t q = 0; q < options.queues; ++q) {
    auto ring = FrameRing::Create(options_.ring_depth, options_.max_frame_size);
    if (!ring) return tl::unexpected(ring.error());
    core->rings.push_back(std::move(*ring));
    core->counters.push_back(std::make_unique<QueueCounters>());
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (!options.allow_spoof) {
    for (const auto& p : current_->ports) {
      if (!p->allow_spoof && p->mac == options.mac) {
        return MakeError(ErrorCode::kAlreadyExists, "{}: MAC {} is already attached as {}",
                         options_.name, options.mac.ToString(), p->name);
      }
    }
  }
  core->id = next_port_id_++;
  core->name = options_.name + "/" +
               (options.name.empty() ? fmt::format("p{}", core->id) : options.name);
  // Attaching does not change the MAC table, so the index is copied as is (its pointers refer to
  // entries that the copied `entries` keep alive).
  auto next = std::make_shared<Snapshot>(*current_);
  next->ports.push_back(core);
  Publish(std::move(next));  // the index is shared unchanged: entries did not change
  return std::unique_ptr<SwitchPort>(new SwitchPort(shared_from_this(), std::move(core)));
}

void Switch::Learn(PortCore* port, const uint64_t* macs, uint32_t count, int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!port->attached.load(std::memory_order_relaxed)) return;
  const Snapshot& cur = *current_;
  auto fresh = [&](const MacEntry& e) {
    return now_ns - e.last_seen_ns.load(std::memory_order_relaxed) <= options_.ageing_ns;
  };
  // Which MACs still need an entry (another queue of the port may have learned them already)?
  uint64_t todo[kMaxBatch];
  uint32_t todo_count = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const MacEntry* e = cur.Find(macs[i]);
    if (e != nullptr && e->port == port && fresh(*e)) {
      e->last_seen_ns.store(now_ns, std::memory_order_relaxed);
      continue;
    }
    todo[todo_count++] = macs[i];
  }
  if (todo_count == 0) return;

  // Rebuild: drop expired entries and the old bindings of the MACs being (re)learned.
  auto next = std::make_shared<Snapshot>();
  next->ports = cur.ports;
  next->entries.reserve(cur.entries.size() + todo_count);
  uint32_t port_entries = 0;
  for (const auto& e : cur.entries) {
    if (!fresh(*e) || std::find(todo, todo + todo_count, e->mac) != todo + todo_count) continue;
    if (e->port == port) ++port_entries;
    next->entries.push_back(e);
  }
  uint64_t learned = 0, refused = 0;
  for (uint32_t i = 0; i < todo_count; ++i) {
    if (next->entries.size() >= options_.max_mac_entries ||
        port_entries >= options_.max_macs_per_port) {
      ++refused;
      continue;
    }
    auto e = std::make_shared<MacEntry>();
    e->mac = todo[i];
    e->port = port;
    e->last_seen_ns.store(now_ns, std::memory_order_relaxed);
    next->entries.push_back(std::move(e));
    ++port_entries;
    ++learned;
  }
  if (learned != 0) port->stats.learned.Add(learned);
  if (refused != 0) port->stats.learn_refused.Add(refused);
  next->BuildIndex();
  Publish(std::move(next));
}

void Switch::Detach(PortCore* port) {
  std::lock_guard<std::mutex> lock(mu_);
  // Queues still holding an older snapshot check `attached` before flooding to the port; a
  // unicast racing with this may still land in its rings, which stay valid (shared ownership).
  port->attached.store(false, std::memory_order_relaxed);
  const Snapshot& cur = *current_;
  auto next = std::make_shared<Snapshot>();
  for (const auto& p : cur.ports) {
    if (p.get() != port) next->ports.push_back(p);
  }
  for (const auto& e : cur.entries) {
    if (e->port != port) next->entries.push_back(e);
  }
  next->BuildIndex();
  Publish(std::move(next));
}

std::optional<uint32_t> Switch::Lookup(const MacAddress& mac) const {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  const MacEntry* e = current_->Find(mac.ToU64());
  if (e == nullptr ||
      now - e->last_seen_ns.load(std::memory_order_relaxed) > options_.ageing_ns) {
    return std::nullopt;
  }
  return e->port->id;
}

size_t Switch::mac_table_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_->entries.size();
}

size_t Switch::ExpireEntries() {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  const Snapshot& cur = *current_;
  auto next = std::make_shared<Snapshot>();
  next->ports = cur.ports;
  for (const auto& e : cur.entries) {
    if (now - e->last_seen_ns.load(std::memory_order_relaxed) <= options_.ageing_ns) {
      next->entries.push_back(e);
    }
  }
  const size_t removed = cur.entries.size() - next->entries.size();
  if (removed == 0) return 0;
  next->BuildIndex();
  Publish(std::move(next));
  return removed;
}

size_t Switch::port_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_->ports.size();
}

// ---------------------------------------------------------------------------------------------
// SwitchPort

SwitchPort::SwitchPort(std::shared_ptr<Switch> sw, std::shared_ptr<PortCore> core)
    : switch_(std::move(sw)), core_(std::move(core)) {
  for (uint32_t q = 0; q < core_->max_queues; ++q) {
    queues_.push_back(std::make_unique<SwitchQueue>(switch_.get(), core_.get(), q));
  }
}

SwitchPort::~SwitchPort() {
  switch_->Detach(core_.get());
  queues_.clear();
}

std::string_view SwitchPort::name() const { return core_->name; }
uint32_t SwitchPort::max_frame_size() const { return core_->max_frame; }
uint32_t SwitchPort::max_queues() const { return core_->max_queues; }
uint32_t SwitchPort::queue_count() const {
  return core_->active.load(std::memory_order_relaxed);
}

Status SwitchPort::SetQueueCount(uint32_t count) {
  if (count == 0 || count > core_->max_queues) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: queue count {} outside 1..{}",
                     core_->name, count, core_->max_queues);
  }
  core_->active.store(count, std::memory_order_relaxed);
  return Ok();
}

Queue& SwitchPort::queue(uint32_t index) { return *queues_[index]; }

bool SwitchPort::link_up() const { return core_->link_up.load(std::memory_order_relaxed); }

Status SwitchPort::SetLinkUp(bool up) {
  if (core_->link_up.exchange(up, std::memory_order_relaxed) != up) NotifyLinkChange(up);
  return Ok();
}

uint32_t SwitchPort::port_id() const { return core_->id; }
const MacAddress& SwitchPort::mac() const { return core_->mac; }

SwitchPortStats SwitchPort::port_stats() const {
  const auto& s = core_->stats;
  SwitchPortStats out;
  out.forwarded = s.forwarded.Get();
  out.flooded = s.flooded.Get();
  out.hairpin = s.hairpin.Get();
  out.spoofed = s.spoofed.Get();
  out.invalid_source = s.invalid_source.Get();
  out.learned = s.learned.Get();
  out.learn_refused = s.learn_refused.Get();
  return out;
}

}  // namespace uvmbus::net
