#include "framework/experiment/probe.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "framework/training.hpp"
#include "layers/relu.hpp"
#include "layers/residual.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

namespace bnlab {

namespace {

// The model's layers in the order forward runs them, nested Sequentials opened.
void collect_leaves(Sequential& model, std::vector<BasicLayer<float>*>& leaves) {
    for (std::size_t i = 0; i < model.size(); ++i) {
        if (auto* inner = dynamic_cast<Sequential*>(&model[i]))
            collect_leaves(*inner, leaves);
        else
            leaves.push_back(&model[i]);
    }
}

bool has_weight(BasicLayer<float>& layer) {
    const std::vector<Parameter<float>> parameters = layer.parameters();
    return !parameters.empty() && parameters.front().name == "weight";
}

// The last Dense or Conv2d of a residual block's body, or nullptr.
BasicLayer<float>* last_weighted_in(Residual& block) {
    std::vector<BasicLayer<float>*> body;
    collect_leaves(block.body(), body);
    for (auto layer = body.rbegin(); layer != body.rend(); ++layer)
        if (has_weight(**layer)) return *layer;
    return nullptr;
}

}  // namespace

Probe::Probe(Sequential& model, const Dataset& probe_data, std::size_t probe_size)
    : model_(model), batch_(slice(probe_data, 0, std::min(probe_size, probe_data.size())).inputs) {
    collect_leaves(model, leaves_);
    BasicLayer<float>* last_weighted = nullptr;
    for (std::size_t i = 0; i < leaves_.size(); ++i) {
        if (has_weight(*leaves_[i])) last_weighted = leaves_[i];
        const bool activation = dynamic_cast<ReLU*>(leaves_[i]) ||
                                dynamic_cast<Sigmoid*>(leaves_[i]) ||
                                dynamic_cast<Tanh*>(leaves_[i]);
        if (activation && last_weighted) {
            activations_.push_back(i);
            weighted_.push_back(last_weighted);
        }
        if (auto* block = dynamic_cast<Residual*>(leaves_[i]); block && block->options().relu()) {
            if (BasicLayer<float>* weighted = last_weighted_in(*block)) {
                activations_.push_back(i);
                weighted_.push_back(weighted);
            }
        }
    }
    if (activations_.empty())
        throw std::invalid_argument("probe: the model has no hidden layer with an activation");
}

std::vector<ProbePoint> Probe::record(int epoch, long step) {
    std::vector<double> grad_norms;
    for (BasicLayer<float>* weighted : weighted_) {
        const Parameter<float> weight = weighted->parameters().front();
        double squares = 0.0;
        for (std::size_t j = 0; j < weight.size; ++j)
            squares += double(weight.grad[j]) * double(weight.grad[j]);
        grad_norms.push_back(std::sqrt(squares));
    }
    std::vector<ProbePoint> points;
    ModeGuard<float> eval_mode(model_, false);
    const Matrix<float>* activation = &batch_;
    std::size_t next = 0;
    for (std::size_t i = 0; i < leaves_.size() && next < activations_.size(); ++i) {
        auto* block = dynamic_cast<Residual*>(leaves_[i]);
        if (block) activation = &leaves_[i]->forward(*activation);
        if (i == activations_[next]) {
            // What this hidden layer's activation function receives: the block's sum, or the
            // activation layer's input.
            const Matrix<float>& input = block ? block->sum() : *activation;
            values_.assign(input.begin(), input.end());
            ProbePoint point;
            point.epoch = epoch;
            point.step = step;
            point.layer = int(next + 1);
            point.p15 = quantile(values_, 0.15);
            point.p50 = quantile(values_, 0.50);
            point.p85 = quantile(values_, 0.85);
            point.grad_norm = grad_norms[next];
            points.push_back(point);
            ++next;
        }
        if (!block) activation = &leaves_[i]->forward(*activation);
    }
    return points;
}

double quantile(std::vector<float>& values, double q) {
    if (values.empty()) throw std::invalid_argument("quantile of no values");
    const double position = q * double(values.size() - 1);
    const std::size_t below = static_cast<std::size_t>(std::floor(position));
    std::nth_element(values.begin(), values.begin() + std::ptrdiff_t(below), values.end());
    const double low = values[below];
    if (below + 1 >= values.size()) return low;
    // The next order statistic is the smallest value above position `below`.
    const double high = *std::min_element(values.begin() + std::ptrdiff_t(below) + 1, values.end());
    return low + (position - double(below)) * (high - low);
}

}  // namespace bnlab
