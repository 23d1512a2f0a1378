// The config's words for the engine's enums (`balance: maglev`,
// `send_proxy: v2`...). Each enum has one table, next to the enum: the
// snapshot reader parses with it and the addon exports it, where a test holds
// it to the config schema's enum, so a name is written once in C++.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace fulcrum {

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

// True when `table` names each of the `count` values 0..count-1 exactly once
// (for a static_assert next to each table: a new enumerator without a name
// fails to compile).
template <typename E, size_t N>
constexpr bool names_every_value(const EnumName<E> (&table)[N], size_t count) {
  if (N != count) return false;
  for (size_t value = 0; value < count; value++) {
    size_t seen = 0;
    for (const auto& entry : table) seen += static_cast<size_t>(entry.value) == value ? 1 : 0;
    if (seen != 1) return false;
  }
  return true;
}

// The name of `value` ("?" when the table lacks it).
template <typename E, size_t N>
constexpr std::string_view enum_name(const EnumName<E> (&table)[N], E value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

// The value `name` stands for, or nullopt.
template <typename E, size_t N>
constexpr std::optional<E> enum_from_name(const EnumName<E> (&table)[N], std::string_view name) {
  for (const auto& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

}  // namespace fulcrum
