// File: common/guid.h
//
// What: a 16-byte GUID in Microsoft mixed-endian wire layout (spec section 0): Data1 u32 LE,
// Data2 u16 LE, Data3 u16 LE, Data4 8 bytes as written. Trivially copyable, so it can sit
// inside wire structs.
// Thread-safety: value type.
#ifndef UVMBUS_COMMON_GUID_H_
#define UVMBUS_COMMON_GUID_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace uvmbus {

struct Guid {
  std::array<uint8_t, 16> bytes{};  // wire order

  // Parses "f8615163-df3e-46c5-913f-f2d2f965ed0e" (optionally in braces). Returns nullopt on
  // any malformed input.
  static std::optional<Guid> Parse(std::string_view text);
  // Like Parse but for compile-time-known constants; aborts on a malformed literal.
  static Guid FromString(std::string_view text);
  // Lower-case canonical text form without braces.
  std::string ToString() const;
  bool IsZero() const;

  friend bool operator==(const Guid&, const Guid&) = default;
  friend auto operator<=>(const Guid&, const Guid&) = default;
};
static_assert(sizeof(Guid) == 16);

// A random (version 4) GUID from the OS random source.
Guid RandomGuid();

}  // namespace uvmbus

#endif  // UVMBUS_COMMON_GUID_H_
