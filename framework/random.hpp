#pragma once
// The one source of randomness: a seeded generator passed explicitly to whatever needs it.
// The standard library's distributions differ between implementations, so the draws below are
// written out; the same seed gives the same numbers with any compiler.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace bnlab {

class Rng {
  public:
    explicit Rng(std::uint64_t seed) : engine_(seed), seed_(seed) {}

    // The seed it was made with (logs record it).
    std::uint64_t seed() const { return seed_; }

    // Uniform in [low, high).
    double uniform(double low, double high);
    // Moves on as `count` calls of uniform() would, without computing them.
    void skip(std::uint64_t count) { engine_.discard(count); }
    // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
    double normal();
    // Uniform integer in [0, bound).
    std::uint64_t below(std::uint64_t bound);
    // Fisher-Yates shuffle.
    template <typename Item>
    void shuffle(std::vector<Item>& items) {
        for (std::size_t i = items.size(); i > 1; --i)
            std::swap(items[i - 1], items[below(i)]);
    }

    // The whole state as text (the engine's own text form, then the spare normal), and back:
    // an Rng restored from state() draws exactly what this one would. restore() throws
    // std::invalid_argument for text that is not such a state.
    std::string state() const;
    void restore(const std::string& state);

  private:
    std::mt19937_64 engine_;
    std::uint64_t seed_;
    bool has_spare_normal_ = false;
    double spare_normal_ = 0.0;
};

}  // namespace bnlab
