// Tests of Channel: open/close order and cleanup (spec 2.8, M14, M15), GPADL splitting (2.9),
// the data path's signal rule (3.4), the three callback modes (7.4, 7.5), interrupt sharing,
// NAPI (7.6) and retargeting (7.7).
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "guest_test_util.h"

namespace uvmbus::guest::testing {
namespace {

using wire::ChannelMessageType;

std::vector<uint8_t> Payload(uint32_t n) {
  std::vector<uint8_t> p(8, 0);
  std::memcpy(p.data(), &n, sizeof(n));
  return p;
}

class ChannelTest : public BusTest {
 protected:
  // One device of kTestClassA per relid, no driver: the test thread drives the channels.
  void Start(uint32_t vcpus, std::vector<uint32_t> relids, fakes::FakeVmbusHost::Options host = {},
             BusOptions bus = {}) {
    Init(vcpus, std::move(host), bus);
    for (uint32_t r : relids) {
      host_->AddOffer(fakes::FakeVmbusHost::MakeOffer(kTestClassA, InstanceGuid(r), r));
    }
    ASSERT_TRUE(bus_->Connect());
  }
  Channel& Ch(uint32_t relid) { return *bus_->FindChannel(relid); }

  template <typename T>
  std::vector<T> ReceivedOf() {
    std::vector<T> out;
    for (const auto& r : host_->received()) {
      if (const T* m = std::get_if<T>(&r.message)) out.push_back(*m);
    }
    return out;
  }
};

TEST_F(ChannelTest, OpenSetsUpRingsGpadlAndOpenChannelThenCloseUndoesIt) {
  Start(2, {4});
  Channel& ch = Ch(4);
  const uint64_t free_before = FreePages();
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
  EXPECT_EQ(ch.state(), ChannelState::kOpen);
  EXPECT_EQ(FreePages(), free_before - 8);

  const auto headers = ReceivedOf<wire::GpadlHeaderMessage>();
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].fixed.child_relid, 4u);
  EXPECT_EQ(headers[0].fixed.gpadl, 0xE1E10u);  // Linux's first handle (spec 2.9)
  EXPECT_EQ(headers[0].fixed.rangecount, 1);
  EXPECT_EQ(headers[0].fixed.range_buflen, 8 + 8 * 8);
  const auto opens = ReceivedOf<wire::OpenChannel>();
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].child_relid, 4u);
  EXPECT_EQ(opens[0].openid, 4u);
  EXPECT_EQ(opens[0].ringbuffer_gpadlhandle, 0xE1E10u);
  EXPECT_EQ(opens[0].downstream_ringbuffer_pageoffset, 4u);
  EXPECT_EQ(opens[0].target_vp, 0u);
  ASSERT_TRUE(host_->gpadl_pages(0xE1E10).has_value());
  EXPECT_EQ(host_->gpadl_pages(0xE1E10)->size(), 8u);
  // Both ring headers advertise feat_pending_send_sz (Linux hv_ringbuffer_init).
  EXPECT_EQ(ch.outbound().view().feature_bits().load(), 1u);
  EXPECT_EQ(ch.inbound().view().feature_bits().load(), 1u);
  EXPECT_TRUE(host_->IsOpen(4));

  const size_t before = host_->received().size();
  ASSERT_TRUE(ch.Close());
  const auto types = host_->received_types();
  EXPECT_EQ(std::vector<ChannelMessageType>(types.begin() + static_cast<long>(before), types.end()),
            (std::vector<ChannelMessageType>{ChannelMessageType::kCloseChannel,
                                             ChannelMessageType::kGpadlTeardown}));
  EXPECT_EQ(ch.state(), ChannelState::kOffered);
  EXPECT_EQ(FreePages(), free_before);
  EXPECT_FALSE(host_->IsOpen(4));

  // A closed channel can be opened again, with a new GPADL handle.
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
  EXPECT_EQ(ReceivedOf<wire::OpenChannel>().back().ringbuffer_gpadlhandle, 0xE1E11u);
}

TEST_F(ChannelTest, OpenRefusedByHostFreesRingAndGpadl) {
  Start(1, {4});
  Channel& ch = Ch(4);
  const uint64_t free_before = FreePages();
  host_->SetOpenStatus(0xC0000001);
  auto st = ch.Open(SmallRings([](Channel&) {}));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);  // M14
  EXPECT_EQ(ch.state(), ChannelState::kOffered);
  EXPECT_EQ(FreePages(), free_before);
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlTeardown), 1u);
  EXPECT_EQ(host_->Count(ChannelMessageType::kCloseChannel), 0u);
  EXPECT_EQ(host_->gpadl_count(), 0u);

  host_->SetOpenStatus(0);
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
}

TEST_F(ChannelTest, GpadlRefusedByHostFailsOpenAndEstablish) {
  fakes::FakeVmbusHost::Options opts;
  opts.gpadl_status = wire::kStatusUnsuccessful;
  Start(1, {4}, opts);
  Channel& ch = Ch(4);
  const uint64_t free_before = FreePages();
  auto st = ch.Open(SmallRings([](Channel&) {}));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);  // M15
  EXPECT_EQ(host_->Count(ChannelMessageType::kOpenChannel), 0u);
  EXPECT_EQ(FreePages(), free_before);

  auto run = lp_->guest().allocator().AllocateRun(2);
  ASSERT_TRUE(run);
  auto handle = ch.EstablishGpadl(*run);
  ASSERT_FALSE(handle);
  EXPECT_EQ(handle.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(ch.gpadls().empty());
  EXPECT_EQ(bus_->stats().gpadl_failures.Get(), 2u);
}

TEST_F(ChannelTest, LargeGpadlIsSplitIntoHeaderAndBodies) {
  Start(1, {4});
  Channel& ch = Ch(4);
  auto run = lp_->guest().allocator().AllocateRun(60);
  ASSERT_TRUE(run);
  auto handle = ch.EstablishGpadl(*run);
  ASSERT_TRUE(handle) << handle.error();
  // 60 pages = 26 in the header + 28 + 6 in two bodies (spec 2.9).
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlHeader), 1u);
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlBody), 2u);
  auto pages = host_->gpadl_pages(*handle);
  ASSERT_TRUE(pages.has_value());
  ASSERT_EQ(pages->size(), 60u);
  for (size_t i = 0; i < 60; ++i) EXPECT_EQ((*pages)[i], run->gpn() + i);
  EXPECT_EQ(ch.gpadls(), std::vector<uint32_t>{*handle});

  // The same buffer named by its bytes.
  auto handle2 = ch.EstablishGpadl(std::span<const uint8_t>(run->bytes()));
  ASSERT_TRUE(handle2);
  EXPECT_EQ(*host_->gpadl_pages(*handle2), *pages);

  ASSERT_TRUE(ch.TeardownGpadl(*handle));
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlTeardown), 1u);
  EXPECT_FALSE(host_->gpadl_pages(*handle).has_value());
  auto again = ch.TeardownGpadl(*handle);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(ChannelTest, EstablishGpadlRejectsPagesOutsideGuestRam) {
  Start(1, {4});
  Channel& ch = Ch(4);
  const uint64_t beyond = lp_->guest().ram().page_count();
  const uint64_t pfns[] = {beyond};
  auto h = ch.EstablishGpadl(std::span<const uint64_t>(pfns));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kInvalidArgument);
  std::vector<uint8_t> not_guest_ram(8192);
  auto h2 = ch.EstablishGpadl(std::span<const uint8_t>(not_guest_ram));
  ASSERT_FALSE(h2);
  EXPECT_EQ(h2.error().code, ErrorCode::kInvalidArgument);
  auto run = lp_->guest().allocator().AllocateRun(2);
  ASSERT_TRUE(run);
  auto h3 = ch.EstablishGpadl(std::span<const uint8_t>(run->bytes().subspan(8)));
  ASSERT_FALSE(h3);
  EXPECT_EQ(h3.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(host_->Count(ChannelMessageType::kGpadlHeader), 0u);
}

TEST_F(ChannelTest, OpenValidatesParametersAndState) {
  Start(1, {4});
  Channel& ch = Ch(4);
  auto expect_invalid = [&](OpenParams p) {
    auto st = ch.Open(p);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  };
  expect_invalid(SmallRings([](Channel&) {}, CallbackMode::kBatched, 4096));  // no data page
  expect_invalid(SmallRings([](Channel&) {}, CallbackMode::kBatched, 10000));  // not pages
  OpenParams no_cb = SmallRings(nullptr);
  expect_invalid(no_cb);
  std::vector<uint8_t> userdata(121);
  OpenParams big_userdata = SmallRings([](Channel&) {});
  big_userdata.userdata = userdata;
  expect_invalid(big_userdata);

  auto close = ch.Close();
  ASSERT_FALSE(close);
  EXPECT_EQ(close.error().code, ErrorCode::kProtocol);
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
  auto twice = ch.Open(SmallRings([](Channel&) {}));
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(host_->Count(ChannelMessageType::kOpenChannel), 1u);
}

TEST_F(ChannelTest, SendInbandSignalsOnlyWhenTheRingWasEmpty) {
  Start(1, {4});
  Channel& ch = Ch(4);
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
  const uint32_t conn = ch.connection_id();
  EXPECT_EQ(ch.SendInband(Payload(1), 1, false), SendStatus::kOk);
  EXPECT_EQ(ch.SendInband(Payload(2), 2, true), SendStatus::kOk);
  EXPECT_EQ(host_->signals(conn), 1u);  // only empty -> non-empty (spec 3.4)
  auto got = host_->ReadFromGuest(4);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[1][0], 2);
  EXPECT_EQ(ch.SendInband(Payload(3), 3, false), SendStatus::kOk);
  EXPECT_EQ(host_->signals(conn), 2u);
  const ChannelCounters c = ch.counters();
  EXPECT_EQ(c.events, 2u);
  EXPECT_EQ(c.intr_out_empty, 2u);
  std::vector<uint8_t> huge(64 * 1024);
  EXPECT_EQ(ch.SendInband(huge, 4, false), SendStatus::kInvalid);
}

TEST_F(ChannelTest, IsrModeCallsTheCallbackInTheIsr) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch packets;
  std::atomic<bool> in_isr_context{false};
  ASSERT_TRUE(ch.Open(SmallRings(
      [&](Channel& c) {
        // Called from the ISR: on the vCPU thread, with no softirq item running.
        in_isr_context = SoftirqQueue::Current() != nullptr;
        packets.Add(static_cast<uint64_t>(DrainInbound(c)));
      },
      CallbackMode::kIsr)));
  auto signalled = host_->WriteToGuest(4, Payload(1));
  ASSERT_TRUE(signalled);
  EXPECT_TRUE(*signalled);
  ASSERT_TRUE(packets.WaitFor(1));
  EXPECT_TRUE(in_isr_context);
  const ChannelCounters c = ch.counters();
  EXPECT_EQ(c.interrupts, 1u);
  EXPECT_EQ(c.callbacks, 1u);
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);  // the ISR mode does not touch the mask
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, DirectModeRunsTheCallbackFromTheTasklet) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch packets;
  ASSERT_TRUE(ch.Open(SmallRings(
      [&](Channel& c) { packets.Add(static_cast<uint64_t>(DrainInbound(c))); },
      CallbackMode::kDirect)));
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(1)));
  ASSERT_TRUE(packets.WaitFor(1));
  SyncVcpu(0);
  EXPECT_EQ(ch.counters().interrupts, 1u);
  EXPECT_EQ(ch.counters().callbacks, 1u);
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, BatchedModeMasksWhileDrainingAndUnmasksAfter) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch packets;
  std::atomic<uint32_t> mask_seen{0};
  ASSERT_TRUE(ch.Open(SmallRings([&](Channel& c) {
    mask_seen = c.inbound().view().interrupt_mask().load();
    packets.Add(static_cast<uint64_t>(DrainInbound(c)));
  })));
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(1)));
  ASSERT_TRUE(packets.WaitFor(1));
  SyncVcpu(0);
  EXPECT_EQ(mask_seen.load(), 1u);  // hv_begin_read in the ISR
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);  // hv_end_read at the end of the tasklet
  // The next packet signals again.
  auto signalled = host_->WriteToGuest(4, Payload(2));
  ASSERT_TRUE(signalled);
  EXPECT_TRUE(*signalled);
  ASSERT_TRUE(packets.WaitFor(2));
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, BatchedModeYieldsAfterItsBudgetAndStillDrainsEverything) {
  ManualClock clock;
  BusOptions bopts;
  bopts.clock = &clock;
  bopts.tasklet_budget_ns = 2'000'000;
  Start(1, {4}, {}, bopts);
  Channel& ch = Ch(4);
  constexpr uint32_t kProduced = 10;
  Latch packets;
  uint32_t produced = 0;           // touched only by the callback (vCPU thread)
  std::vector<bool> signal_needed;  // idem
  ASSERT_TRUE(ch.Open(SmallRings([&](Channel& c) {
    packets.Add(static_cast<uint64_t>(DrainInbound(c)));
    if (produced < kProduced) {
      // Data keeps arriving while the tasklet runs; each callback takes 1 ms.
      ++produced;
      auto s = host_->WriteToGuest(4, Payload(100 + produced));
      signal_needed.push_back(s && *s);
      clock.AdvanceNs(1'000'000);
    }
  })));
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(0)));
  ASSERT_TRUE(packets.WaitFor(1 + kProduced));
  SyncVcpu(0);
  EXPECT_EQ(packets.count(), 1u + kProduced);
  // The host never had to signal: the ring stayed masked while the tasklet kept polling.
  EXPECT_EQ(std::count(signal_needed.begin(), signal_needed.end(), true), 0);
  // 2 callbacks per 2 ms budget: the tasklet yielded and rescheduled itself several times.
  EXPECT_GE(ch.counters().tasklet_yields, 4u);
  EXPECT_EQ(ch.counters().interrupts, 1u);
  EXPECT_EQ(ch.counters().callbacks, kProduced + 1);
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, BatchedModeStopsInsteadOfSpinningOnACorruptHostRing) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch callbacks;
  ASSERT_TRUE(ch.Open(SmallRings([&](Channel& c) {
    DrainInbound(c);  // the reader refuses the corrupt index and consumes nothing
    callbacks.Add();
  })));
  // A hostile host publishes an unaligned write index (spec 9.4 R1) and signals.
  ch.inbound().view().write_index().store(12, std::memory_order_release);
  ASSERT_TRUE(host_->SignalGuest(4));
  ASSERT_TRUE(callbacks.WaitFor(1));
  SyncVcpu(0);
  SyncVcpu(0);  // a rescheduled tasklet would have run by now
  const ChannelCounters c = ch.counters();
  EXPECT_EQ(c.tasklet_stalls, 1u);
  EXPECT_EQ(c.callbacks, 1u);  // not rescheduled: no busy loop on hostile input
  EXPECT_EQ(c.tasklet_yields, 0u);
  EXPECT_EQ(host_->GuestInterruptMask(4), 1u);  // left masked: the channel is stopped
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, InterruptSharingOneInterruptServesManyChannels) {
  constexpr uint32_t kChannels = 64;
  std::vector<uint32_t> relids;
  for (uint32_t r = 1; r <= kChannels; ++r) relids.push_back(r);
  Start(2, relids);
  Latch callbacks;
  for (uint32_t r : relids) {
    Channel& ch = Ch(r);
    ASSERT_TRUE(ch.SetTargetVcpu(r % 2));
    ASSERT_TRUE(ch.Open(SmallRings(
        [&](Channel& c) {
          DrainInbound(c);
          callbacks.Add();
        },
        CallbackMode::kIsr, 2 * 4096)));
  }
  std::vector<uint32_t> on_vcpu[2];
  for (uint32_t r : relids) {
    auto needed = host_->WriteToGuest(r, Payload(r), /*signal=*/false);
    ASSERT_TRUE(needed);
    EXPECT_TRUE(*needed);
    on_vcpu[r % 2].push_back(r);
  }
  const uint64_t irq0 = bus_->vcpu_stats(0).interrupts.Get();
  const uint64_t irq1 = bus_->vcpu_stats(1).interrupts.Get();
  const uint64_t ev0 = bus_->vcpu_stats(0).channel_events.Get();
  const uint64_t ev1 = bus_->vcpu_stats(1).channel_events.Get();
  // All channels of a vCPU fire together: their bits are set, then one interrupt is raised.
  ASSERT_TRUE(host_->SignalTogether(0, on_vcpu[0]));
  ASSERT_TRUE(host_->SignalTogether(1, on_vcpu[1]));
  ASSERT_TRUE(callbacks.WaitFor(kChannels));

  const uint64_t d_irq0 = bus_->vcpu_stats(0).interrupts.Get() - irq0;
  const uint64_t d_irq1 = bus_->vcpu_stats(1).interrupts.Get() - irq1;
  EXPECT_EQ(d_irq0, 1u);
  EXPECT_EQ(d_irq1, 1u);
  EXPECT_EQ(bus_->vcpu_stats(0).channel_events.Get() - ev0, kChannels / 2);
  EXPECT_EQ(bus_->vcpu_stats(1).channel_events.Get() - ev1, kChannels / 2);
  EXPECT_EQ(callbacks.count(), kChannels);
  EXPECT_GT(callbacks.count(), d_irq0 + d_irq1);
  for (uint32_t r : relids) EXPECT_EQ(Ch(r).counters().interrupts, 1u) << "relid " << r;
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, NapiPollsWithBudget64CompletesAndRearms) {
  Start(1, {4});
  Channel& ch = Ch(4);
  std::unique_ptr<Napi> napi;
  Latch packets;
  std::mutex mu;  // the test thread reads these between polls
  std::vector<int> budgets;
  std::vector<int> works;
  std::atomic<bool> inject_before_complete{false};
  std::optional<bool> injected_signal;
  int rearms = 0;
  napi = std::make_unique<Napi>(&ch.softirq(), [&](Napi& n, int budget) {
    const int work = DrainInbound(ch, budget);
    {
      std::lock_guard lock(mu);
      budgets.push_back(budget);
      works.push_back(work);
    }
    if (work < budget && inject_before_complete.exchange(false)) {
      // A packet races in after the last read but before unmasking: no signal for it.
      auto s = host_->WriteToGuest(4, Payload(999));
      injected_signal = s && *s;
    }
    if (work < budget && n.Complete()) {
      // netvsc_poll: unmask; if data raced in, mask again and poll again (spec 7.6).
      auto avail = ch.inbound().EndReadMask();
      if (avail && *avail != 0) {
        ch.inbound().BeginReadMask();
        n.Schedule();
        ++rearms;
      }
    }
    packets.Add(static_cast<uint64_t>(work));
    return work;
  });
  ASSERT_TRUE(ch.Open(SmallRings(
      [&](Channel& c) {
        // netvsc_channel_cb: mask and schedule NAPI unless it is already scheduled.
        if (!napi->scheduled()) {
          c.inbound().BeginReadMask();
          napi->Schedule();
        }
      },
      CallbackMode::kIsr, 8 * 4096)));

  // 100 packets arrive together: written first, then one signal.
  for (uint32_t i = 0; i < 100; ++i) ASSERT_TRUE(host_->WriteToGuest(4, Payload(i), false));
  ASSERT_TRUE(host_->SignalGuest(4));
  ASSERT_TRUE(packets.WaitFor(100));
  SyncVcpu(0);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(works, (std::vector<int>{64, 36}));
    EXPECT_EQ(budgets, (std::vector<int>{64, 64}));
  }
  EXPECT_EQ(napi->stats().budget_exhausted.Get(), 1u);
  EXPECT_EQ(napi->stats().completes.Get(), 1u);
  EXPECT_FALSE(napi->scheduled());
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);

  // Re-arm: a new packet interrupts again; another one races in before the unmask.
  inject_before_complete = true;  // read by the vCPU thread after the signal below
  auto s = host_->WriteToGuest(4, Payload(500));
  ASSERT_TRUE(s);
  EXPECT_TRUE(*s);
  ASSERT_TRUE(packets.WaitFor(102));
  SyncVcpu(0);
  ASSERT_TRUE(injected_signal.has_value());
  EXPECT_FALSE(*injected_signal);  // masked: the host did not signal
  EXPECT_EQ(rearms, 1);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(works, (std::vector<int>{64, 36, 1, 1}));
  }
  EXPECT_EQ(ch.counters().interrupts, 2u);
  EXPECT_EQ(host_->GuestInterruptMask(4), 0u);
  napi->Disable();  // netvsc: napi_disable before vmbus_close
  ASSERT_TRUE(ch.Close());
  napi.reset();
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, SetTargetVcpuSendsModifyChannelAndMovesTheCallback) {
  Start(2, {4});
  Channel& ch = Ch(4);
  EXPECT_EQ(ch.target_vcpu(), 0u);
  Latch calls;
  std::atomic<uint32_t> ran_on{99};
  ASSERT_TRUE(ch.Open(SmallRings([&](Channel& c) {
    ran_on = SoftirqQueue::Current()->vcpu();
    DrainInbound(c);
    calls.Add();
  })));
  ASSERT_TRUE(ch.SetTargetVcpu(1));
  const auto modify = ReceivedOf<wire::ModifyChannel>();
  ASSERT_EQ(modify.size(), 1u);
  EXPECT_EQ(modify[0].child_relid, 4u);
  EXPECT_EQ(modify[0].target_vp, 1u);
  EXPECT_EQ(host_->target_vp(4), 1u);
  EXPECT_EQ(ch.target_vcpu(), 1u);
  // The extra run after the move may have happened; wait for a callback caused by new data.
  const uint64_t before = calls.count();
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(1)));
  ASSERT_TRUE(calls.WaitFor(before + 1));
  EXPECT_EQ(ran_on.load(), 1u);

  auto bad = ch.SetTargetVcpu(2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, SetTargetVcpuNeedsVersion41) {
  BusOptions bopts;
  bopts.max_version = wire::kVersionWin10;
  Start(2, {4}, {}, bopts);
  Channel& ch = Ch(4);
  ASSERT_TRUE(ch.Open(SmallRings([](Channel&) {})));
  auto st = ch.SetTargetVcpu(1);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnsupported);
}

TEST_F(ChannelTest, BlockingOperationsAreRefusedOnVcpuThreads) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch done;
  std::optional<ErrorCode> close_code;
  std::optional<ErrorCode> gpadl_code;
  ASSERT_TRUE(ch.Open(SmallRings(
      [&](Channel& c) {
        DrainInbound(c);
        auto st = c.Close();
        if (!st) close_code = st.error().code;
        const uint64_t pfn[] = {100};
        auto h = c.EstablishGpadl(std::span<const uint64_t>(pfn));
        if (!h) gpadl_code = h.error().code;
        done.Add();
      },
      CallbackMode::kIsr)));
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(1)));
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(close_code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(gpadl_code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ch.state(), ChannelState::kOpen);
  bus_.reset();  // callbacks capture locals of this test
}

TEST_F(ChannelTest, ListDevicesReportsChannelCounters) {
  Start(1, {4});
  Channel& ch = Ch(4);
  Latch calls;
  ASSERT_TRUE(ch.Open(SmallRings(
      [&](Channel& c) {
        DrainInbound(c);
        calls.Add();
      },
      CallbackMode::kIsr)));
  ASSERT_TRUE(host_->WriteToGuest(4, Payload(1)));
  ASSERT_TRUE(calls.WaitFor(1));
  const auto devices = bus_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  const ChannelInfo& info = devices[0].channels[0];
  EXPECT_EQ(info.relid, 4u);
  EXPECT_EQ(info.state, ChannelState::kOpen);
  EXPECT_EQ(info.mode, CallbackMode::kIsr);
  EXPECT_EQ(info.connection_id, 4u | 0x2000u);
  EXPECT_EQ(info.counters.interrupts, 1u);
  bus_.reset();  // callbacks capture locals of this test
}

}  // namespace
}  // namespace uvmbus::guest::testing
