#pragma once
// Ready-made convolutional networks in the classic pattern the BatchNorm paper normalizes: per
// block Conv2d 3x3 (padding 1) -> [BatchNorm2d or another normalization] -> activation ->
// MaxPool2d(2), then the dense head of an MLP (models/mlp.hpp) on the flattened feature maps.

#include <vector>

#include "models/mlp.hpp"

namespace bnlab {

// e.g. cnn({1, 28, 28}, {16, 32}, {128}, 10, Activation::relu, true, rng):
// [1, 28, 28] -> Conv 16 -> [16, 14, 14] -> Conv 32 -> [32, 7, 7] -> Dense 128 -> Dense 10,
// with BatchNorm after every Conv2d and hidden Dense (true; false for none, or any NormChoice of
// models/norm_choice.hpp); dropout > 0 adds Dropout after each hidden Dense block's activation.
template <typename T = float>
BasicSequential<T> cnn(const Shape& input, const std::vector<std::size_t>& channels,
                       const std::vector<std::size_t>& hidden, std::size_t classes,
                       Activation activation, const NormChoice& norm, Rng& rng,
                       double dropout = 0.0);

}  // namespace bnlab
