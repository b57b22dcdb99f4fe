#include "framework/random.hpp"

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

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

std::string Rng::state() const {
    std::ostringstream text;
    text << engine_ << ' ' << has_spare_normal_ << ' ';
    // The spare normal's bits, so that it comes back exactly.
    std::uint64_t bits = 0;
    std::memcpy(&bits, &spare_normal_, sizeof bits);
    text << bits;
    return text.str();
}

void Rng::restore(const std::string& state) {
    std::istringstream text(state);
    std::mt19937_64 engine;
    bool has_spare = false;
    std::uint64_t bits = 0;
    if (!(text >> engine >> has_spare >> bits) || !(text >> std::ws).eof())
        throw std::invalid_argument("Rng::restore: not a generator state");
    engine_ = engine;
    has_spare_normal_ = has_spare;
    std::memcpy(&spare_normal_, &bits, sizeof bits);
}

}  // namespace bnlab
