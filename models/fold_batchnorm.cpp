#include "models/fold_batchnorm.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "framework/random.hpp"
#include "layers/avg_pool2d.hpp"
#include "layers/batch_norm.hpp"
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/group_norm.hpp"
#include "layers/instance_norm.hpp"
#include "layers/layer_norm.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/relu.hpp"
#include "layers/residual.hpp"
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

// A normalization by each sample's own statistics (GroupNorm, LayerNorm, InstanceNorm2d), which
// no weights can absorb: copied as it is, with its parameters and running statistics.
template <typename Norm>
std::unique_ptr<Norm> copy_sample_norm(Norm& norm) {
    auto copy = std::make_unique<Norm>(norm.options());
    copy->set_input_shape(*norm.input_shape());
    copy->gamma() = norm.gamma();
    copy->beta() = norm.beta();
    const auto from = norm.buffers(), to = copy->buffers();
    for (std::size_t i = 0; i < from.size(); ++i)
        std::copy_n(from[i].value, from[i].size, to[i].value);
    return copy;
}

// A copy of `conv`, given a bias (of zeros) when `with_bias` and it has none.
template <typename T>
std::unique_ptr<BasicConv2d<T>> copy_conv(BasicConv2d<T>& conv, bool with_bias = false) {
    Rng unused(0);  // the constructor draws weights; they are overwritten at once
    Conv2dOptions options = conv.options();
    options.bias(options.bias() || with_bias);
    auto copy = std::make_unique<BasicConv2d<T>>(options, unused);
    copy->weight() = conv.weight();
    copy->bias() = conv.bias();  // zeros without a bias
    return copy;
}

// Merges `batchnorm`'s eval-mode map into the rows of `weight` ([out, inputs of one output]:
// a Dense's, or a Conv2d's [out, in k k]) and `bias` (a copy the caller owns).
template <typename T>
void merge(Matrix<T>& weight, Vector<T>& bias, BasicBatchNorm<T>& batchnorm) {
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
    if (auto* conv = dynamic_cast<BasicConv2d<T>*>(&layer)) return copy_conv(*conv);
    if (auto* norm = dynamic_cast<BasicGroupNorm<T>*>(&layer)) return copy_sample_norm(*norm);
    if (auto* norm = dynamic_cast<BasicLayerNorm<T>*>(&layer)) return copy_sample_norm(*norm);
    if (auto* norm = dynamic_cast<BasicInstanceNorm2d<T>*>(&layer)) return copy_sample_norm(*norm);
    if (auto* pool = dynamic_cast<BasicMaxPool2d<T>*>(&layer))
        return std::make_unique<BasicMaxPool2d<T>>(pool->window().kernel, pool->window().stride,
                                                   pool->window().padding);
    if (auto* pool = dynamic_cast<BasicAvgPool2d<T>*>(&layer))
        return std::make_unique<BasicAvgPool2d<T>>(pool->window().kernel, pool->window().stride,
                                                   pool->window().padding);
    if (dynamic_cast<BasicGlobalAvgPool2d<T>*>(&layer))
        return std::make_unique<BasicGlobalAvgPool2d<T>>();
    // Dropout passes its input through in eval mode, which the folded model is for.
    if (auto* dropout = dynamic_cast<BasicDropout<T>*>(&layer))
        return std::make_unique<BasicDropout<T>>(dropout->p());
    if (dynamic_cast<BasicReLU<T>*>(&layer)) return std::make_unique<BasicReLU<T>>();
    if (dynamic_cast<BasicSigmoid<T>*>(&layer)) return std::make_unique<BasicSigmoid<T>>();
    if (dynamic_cast<BasicTanh<T>*>(&layer)) return std::make_unique<BasicTanh<T>>();
    if (auto* nested = dynamic_cast<BasicSequential<T>*>(&layer))
        return std::make_unique<BasicSequential<T>>(fold_batchnorm(*nested));
    // A residual block's branches fold each by itself: the sum comes after both.
    if (auto* residual = dynamic_cast<BasicResidual<T>*>(&layer)) {
        if (!residual->shortcut())
            return std::make_unique<BasicResidual<T>>(fold_batchnorm(residual->body()),
                                                      residual->options());
        return std::make_unique<BasicResidual<T>>(fold_batchnorm(residual->body()),
                                                  fold_batchnorm(*residual->shortcut()),
                                                  residual->options());
    }
    throw std::invalid_argument("fold_batchnorm: cannot copy layer " + layer.describe());
}

}  // namespace

template <typename T>
BasicSequential<T> fold_batchnorm(BasicSequential<T>& model) {
    const std::optional<Shape> input = model.input_shape();
    BasicSequential<T> folded = input ? BasicSequential<T>(*input) : BasicSequential<T>();
    folded.eval();
    for (std::size_t i = 0; i < model.size(); ++i) {
        auto* next =
            i + 1 < model.size() ? dynamic_cast<BasicBatchNorm<T>*>(&model[i + 1]) : nullptr;
        // Without running statistics a BatchNorm normalizes by each batch's: nothing to fold.
        if (next && !next->options().track_running_stats()) next = nullptr;
        auto* dense = dynamic_cast<BasicDense<T>*>(&model[i]);
        auto* conv = dynamic_cast<BasicConv2d<T>*>(&model[i]);
        if (dense && next) {
            std::unique_ptr<BasicDense<T>> merged = copy_dense(*dense);
            merge(merged->weight(), merged->bias(), *next);
            folded.add(std::move(merged));
            ++i;  // the BatchNorm is inside the Dense now
        } else if (conv && next) {
            std::unique_ptr<BasicConv2d<T>> merged = copy_conv(*conv, true);
            merge(merged->weight(), merged->bias(), *next);
            folded.add(std::move(merged));
            ++i;  // the BatchNorm is inside the Conv2d now
        } else {
            folded.add(copy_layer(model[i]));
        }
    }
    return folded;
}

template BasicSequential<float> fold_batchnorm(BasicSequential<float>&);
template BasicSequential<double> fold_batchnorm(BasicSequential<double>&);

}  // namespace bnlab
