// File: tests/fuzz/ndis_fuzzer.cc
//
// What: fuzzes the parsers of NDIS objects carried in RNDIS information buffers: offload
// capabilities (guest reads the host's answer, D24), offload parameters and RSS parameters
// (host reads the guest's SET, 10.2 N-n), RSS capabilities (guest, D25), the config parameter
// block and its NetworkAddress value (host, spec 6.11). Input byte 0 selects the parser, the
// rest is the information buffer. Invariants: the copied object size lies inside the buffer,
// RSS tables/keys respect their documented bounds, and what the project encodes itself
// (EncodeNdisObject, EncodeRssParameters, EncodeNetworkAddressParameter) parses back equal.
// Spec: vmbus-protocol.md 6.8, 6.9, 6.11, 9.6 D24-D25, 10.2 N-n.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "wire/rndis.h"

namespace {

namespace wire = uvmbus::wire;
using uvmbus::fuzz::Within;

template <typename T, typename Parse>
void ObjectRoundTrip(const T& obj, Parse parse) {
  std::array<uint8_t, sizeof(T)> out{};
  auto n = wire::EncodeNdisObject(out, obj);
  if (!n) return;  // header.size outside 4..sizeof(T): not encodable
  auto again = parse(std::span<const uint8_t>(out.data(), *n));
  UVMBUS_FUZZ_CHECK(again.has_value());
  UVMBUS_FUZZ_CHECK(*again == obj);
}

void FuzzOffload(std::span<const uint8_t> info) {
  auto o = wire::ParseNdisOffload(info);
  if (!o) return;
  UVMBUS_FUZZ_CHECK(o->header.size >= wire::kNdisOffloadSizeRev1 && o->header.size <= info.size());
  if (o->header.size <= sizeof(wire::NdisOffload)) ObjectRoundTrip(*o, wire::ParseNdisOffload);
}

void FuzzOffloadParams(std::span<const uint8_t> info) {
  auto p = wire::ParseNdisOffloadParams(info);
  if (!p) return;
  UVMBUS_FUZZ_CHECK(p->header.size <= info.size());
  if (p->header.size <= sizeof(wire::NdisOffloadParams)) {
    ObjectRoundTrip(*p, wire::ParseNdisOffloadParams);
  }
}

void FuzzRssCapabilities(std::span<const uint8_t> info) {
  auto c = wire::ParseRssCapabilities(info);
  if (!c) return;
  UVMBUS_FUZZ_CHECK(c->header.size >= wire::kNdisRssCapsSizeRev1 && c->header.size <= info.size());
  if (c->header.size <= sizeof(wire::NdisReceiveScaleCapabilities)) {
    ObjectRoundTrip(*c, wire::ParseRssCapabilities);
  }
}

void FuzzRssParameters(std::span<const uint8_t> info) {
  auto r = wire::ParseRssParameters(info);
  if (!r) return;
  UVMBUS_FUZZ_CHECK(r->table_entries <= wire::kRssIndirectionTableMaxEntries);
  UVMBUS_FUZZ_CHECK(r->key_size <= wire::kRssHashKeyMaxSize);
  if (r->table_entries != 0) UVMBUS_FUZZ_CHECK(std::has_single_bit(r->table_entries));
  if (r->disabled()) return;
  // Linux's layout of the same table and key parses back to the same values.
  std::vector<uint8_t> out(40 + 4 * wire::kRssIndirectionTableMaxEntries +
                           wire::kRssHashKeyMaxSize);
  const uint16_t keep = r->fixed.flag & (wire::kNdisRssParamFlagItableUnchanged |
                                         wire::kNdisRssParamFlagHashKeyUnchanged);
  auto n = wire::EncodeRssParameters(
      out, keep, r->fixed.hashinfo, std::span<const uint32_t>(r->table.data(), r->table_entries),
      std::span<const uint8_t>(r->key.data(), r->key_size));
  UVMBUS_FUZZ_CHECK(n.has_value());
  auto again = wire::ParseRssParameters(std::span<const uint8_t>(out.data(), *n));
  UVMBUS_FUZZ_CHECK(again.has_value());
  UVMBUS_FUZZ_CHECK(again->table_entries == r->table_entries && again->table == r->table);
  UVMBUS_FUZZ_CHECK(again->key_size == r->key_size && again->key == r->key);
}

void FuzzConfigParameter(std::span<const uint8_t> info) {
  auto c = wire::ParseRndisConfigParameter(info);
  if (!c) return;
  UVMBUS_FUZZ_CHECK(Within(c->name, info) && Within(c->value, info));
  UVMBUS_FUZZ_CHECK(c->name.size() % 2 == 0);
  if (!wire::RndisConfigNameEquals(c->name, "NetworkAddress")) return;
  auto mac = wire::ParseNetworkAddressValue(c->value);
  if (!mac) return;
  std::array<uint8_t, 128> out{};
  auto n = wire::EncodeNetworkAddressParameter(out, *mac);
  UVMBUS_FUZZ_CHECK(n.has_value());
  auto again = wire::ParseRndisConfigParameter(std::span<const uint8_t>(out.data(), *n));
  UVMBUS_FUZZ_CHECK(again.has_value());
  auto mac2 = wire::ParseNetworkAddressValue(again->value);
  UVMBUS_FUZZ_CHECK(mac2.has_value() && *mac2 == *mac);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> info(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      FuzzOffload(info);
      break;
    case 1:
      FuzzOffloadParams(info);
      break;
    case 2:
      FuzzRssCapabilities(info);
      break;
    case 3:
      FuzzRssParameters(info);
      break;
    case 4:
      FuzzConfigParameter(info);
      break;
    default:
      (void)wire::ParseNetworkAddressValue(info);
      break;
  }
  return 0;
}
