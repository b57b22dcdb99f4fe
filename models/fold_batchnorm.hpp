#pragma once
// BatchNorm folding for inference: in eval mode a BatchNorm is a fixed per-feature affine map,
// so one that follows a Dense or a Conv2d can be merged into that layer's weights and bias,
// saving a pass over the activations and the layer itself.

#include "framework/sequential.hpp"

namespace bnlab {

// A new model, in eval mode, that computes what `model` computes in eval mode. Every BatchNorm
// that directly follows a Dense or a Conv2d is merged into it, per output unit or channel j with
// s_j = gamma_j / sqrt(running_var_j + eps):
//   W'_j = s_j W_j        b'_j = s_j (b_j - running_mean_j) + beta_j
// (a Conv2d without a bias gets one, b = 0).
// A BatchNorm anywhere else stays, with its statistics copied; other layers are copied (GroupNorm,
// LayerNorm and InstanceNorm2d too: their statistics are each sample's, which no weight can
// hold, so they stay as layers); a nested
// Sequential is folded in turn, and so are a residual block's body and shortcut. `model` is not
// changed. The result is for inference: training it would train the merged layers, not the original
// ones. Throws std::invalid_argument for a layer type it does not know how to copy.
template <typename T>
BasicSequential<T> fold_batchnorm(BasicSequential<T>& model);

extern template BasicSequential<float> fold_batchnorm(BasicSequential<float>&);
extern template BasicSequential<double> fold_batchnorm(BasicSequential<double>&);

}  // namespace bnlab
