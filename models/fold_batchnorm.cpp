#include "models/fold_batchnorm.hpp"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "framework/random.hpp"
#include "layers/batch_norm.hpp"
#include "layers/dense.hpp"
#include "layers/relu.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

namespace bnlab {

namespace {

template <typename T>
std::unique_ptr<BasicDense<T>> copy_dense(BasicDense<T>& dense) {
    Rng unused(0);  // the constructor draws weights; they are overwritten at once
    auto copy =
        std::make_unique<BasicDense<T>>(*dense.in_features(), *dense.out_features(), unused);
    copy->weight() = dense.weight();
    copy->bias() = dense.bias();
    return copy;
}

template <typename T>
std::unique_ptr<BasicBatchNorm<T>> copy_batchnorm(BasicBatchNorm<T>& batchnorm) {
    auto copy = std::make_unique<BasicBatchNorm<T>>(batchnorm.options());
    copy->gamma() = batchnorm.gamma();
    copy->beta() = batchnorm.beta();
    copy->running_mean() = batchnorm.running_mean();
    copy->running_var() = batchnorm.running_var();
    return copy;
}

// Merges `batchnorm`'s eval-mode map into `dense` (a copy the caller owns).
template <typename T>
void merge(BasicDense<T>& dense, BasicBatchNorm<T>& batchnorm) {
    Matrix<T>& weight = dense.weight();
    Vector<T>& bias = dense.bias();
    const std::size_t out = weight.shape(0), in = weight.shape(1);
    const double eps = batchnorm.options().eps();
    for (std::size_t j = 0; j < out; ++j) {
        // s = gamma / sqrt(running_var + eps), in double so that folding adds no rounding of
        // its own beyond the final conversion
        const double scale =
            double(batchnorm.gamma()(j)) / std::sqrt(double(batchnorm.running_var()(j)) + eps);
        // W' = s W
        for (std::size_t k = 0; k < in; ++k)
            weight(j, k) = static_cast<T>(scale * double(weight(j, k)));
        // b' = s (b - mu) + beta
        bias(j) = static_cast<T>(scale * (double(bias(j)) - double(batchnorm.running_mean()(j))) +
                                 double(batchnorm.beta()(j)));
    }
}

template <typename T>
std::unique_ptr<BasicLayer<T>> copy_layer(BasicLayer<T>& layer) {
    if (auto* dense = dynamic_cast<BasicDense<T>*>(&layer)) return copy_dense(*dense);
    if (auto* batchnorm = dynamic_cast<BasicBatchNorm<T>*>(&layer))
        return copy_batchnorm(*batchnorm);
    if (dynamic_cast<BasicReLU<T>*>(&layer)) return std::make_unique<BasicReLU<T>>();
    if (dynamic_cast<BasicSigmoid<T>*>(&layer)) return std::make_unique<BasicSigmoid<T>>();
    if (dynamic_cast<BasicTanh<T>*>(&layer)) return std::make_unique<BasicTanh<T>>();
    if (auto* nested = dynamic_cast<BasicSequential<T>*>(&layer))
        return std::make_unique<BasicSequential<T>>(fold_batchnorm(*nested));
    throw std::invalid_argument("fold_batchnorm: cannot copy layer " + layer.describe());
}

}  // namespace

template <typename T>
BasicSequential<T> fold_batchnorm(BasicSequential<T>& model) {
    BasicSequential<T> folded;
    folded.eval();
    for (std::size_t i = 0; i < model.size(); ++i) {
        auto* dense = dynamic_cast<BasicDense<T>*>(&model[i]);
        auto* next =
            i + 1 < model.size() ? dynamic_cast<BasicBatchNorm<T>*>(&model[i + 1]) : nullptr;
        if (dense && next) {
            std::unique_ptr<BasicDense<T>> merged = copy_dense(*dense);
            merge(*merged, *next);
            folded.add(std::move(merged));
            ++i;  // the BatchNorm is inside the Dense now
        } else {
            folded.add(copy_layer(model[i]));
        }
    }
    return folded;
}

template BasicSequential<float> fold_batchnorm(BasicSequential<float>&);
template BasicSequential<double> fold_batchnorm(BasicSequential<double>&);

}  // namespace bnlab
