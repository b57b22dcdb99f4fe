#include "framework/random.hpp"

#include <cmath>

namespace bnlab {

double Rng::uniform(double low, double high) {
    // 53 random bits give every double in [0, 1) on a uniform grid.
    const double unit = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
    return low + (high - low) * unit;
}

double Rng::normal() {
    if (has_spare_normal_) {
        has_spare_normal_ = false;
        return spare_normal_;
    }
    constexpr double two_pi = 6.283185307179586476925286766559;
    // 1 - u lies in (0, 1], so the logarithm is finite.
    const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform(0.0, 1.0)));
    const double angle = two_pi * uniform(0.0, 1.0);
    spare_normal_ = radius * std::sin(angle);
    has_spare_normal_ = true;
    return radius * std::cos(angle);
}

std::uint64_t Rng::below(std::uint64_t bound) {
    // Rejection keeps every value equally likely: draws from the incomplete last block are redrawn.
    const std::uint64_t limit = engine_.max() - engine_.max() % bound;
    std::uint64_t draw = engine_();
    while (draw >= limit)
        draw = engine_();
    return draw % bound;
}

}  // namespace bnlab
