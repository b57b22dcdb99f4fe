#pragma once
// Integers read from JSON that a user may have edited (logs, checkpoints' TRAN section), checked:
// nlohmann's get<int>() converts a fraction or an out-of-range number with undefined behaviour.

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace bnlab {

// `value` as an Integer; throws std::runtime_error naming `what` when it is not an integer that
// fits.
template <typename Integer>
Integer as_integer(const nlohmann::ordered_json& value, const std::string& what) {
    using Limits = std::numeric_limits<Integer>;
    bool fits = false;
    if (value.is_number_unsigned()) {
        fits = value.get<std::uint64_t>() <= std::uint64_t(Limits::max());
    } else if (value.is_number_integer()) {
        const std::int64_t number = value.get<std::int64_t>();
        if constexpr (std::is_signed_v<Integer>)
            fits = number >= std::int64_t(Limits::min()) && number <= std::int64_t(Limits::max());
        else
            fits = number >= 0 && std::uint64_t(number) <= std::uint64_t(Limits::max());
    }
    if (!fits)
        throw std::runtime_error(what + ": expected an integer from " +
                                 std::to_string(Limits::min()) + " to " +
                                 std::to_string(Limits::max()) + ", got " + value.dump());
    return value.is_number_unsigned() ? Integer(value.get<std::uint64_t>())
                                      : Integer(value.get<std::int64_t>());
}

// The integer field `field` of `object` (nlohmann's out_of_range when it is missing).
template <typename Integer>
Integer integer_at(const nlohmann::ordered_json& object, const char* field) {
    return as_integer<Integer>(object.at(field), field);
}

}  // namespace bnlab
