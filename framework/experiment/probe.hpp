#pragma once
// The internal-covariate-shift probe of the BN paper's Figure 1(b,c): at chosen steps of
// training, the 15th, 50th and 85th percentiles of what each hidden layer feeds its activation
// function, over one fixed batch of test images in eval mode (so every point sees the same
// data), and the L2 norm of the gradient of the weights (a Dense's or a Conv2d's) feeding it.

#include <cstddef>
#include <vector>

#include "framework/data.hpp"
#include "framework/experiment/run_log.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

class Probe {
  public:
    // The first `probe_size` samples of `probe_data` (all of them if fewer) form the probe
    // batch. Hidden layers are the model's activations (ReLU, Sigmoid, Tanh), nested
    // Sequentials included; the Dense or Conv2d before each supplies its gradient norm. A
    // residual block with a ReLU after its sum is one hidden layer: the probe reads the sum
    // (body(x) + shortcut(x)), and the body's last Dense or Conv2d supplies the gradient norm;
    // the layers inside the block run as the block and are not probed one by one.
    // Throws when the model has no hidden layer.
    Probe(Sequential& model, const Dataset& probe_data, std::size_t probe_size = 500);

    // One point per hidden layer, layers numbered from 1. Call between steps, after backward
    // (the gradients are read) and before the next zero_grad; the model's mode is restored.
    std::vector<ProbePoint> record(int epoch, long step);

    std::size_t hidden_layers() const { return activations_.size(); }

  private:
    Sequential& model_;
    Matrix<float> batch_;                     // [probe_size, features]
    std::vector<BasicLayer<float>*> leaves_;  // the layers forward runs, nested ones opened
    // Per hidden layer: the index in leaves_ of its activation (or of its residual block, whose
    // sum() is read after it runs), and the Dense or Conv2d feeding it.
    std::vector<std::size_t> activations_;
    std::vector<BasicLayer<float>*> weighted_;
    std::vector<float> values_;  // scratch for the percentiles
};

// The q-quantile (0 <= q <= 1) of `values`, interpolating linearly between order statistics as
// numpy.percentile does by default. Reorders `values`.
double quantile(std::vector<float>& values, double q);

}  // namespace bnlab
