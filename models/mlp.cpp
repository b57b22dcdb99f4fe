#include "models/mlp.hpp"

#include <stdexcept>

#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/relu.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

namespace bnlab {

Activation parse_activation(const std::string& name) {
    if (name == "relu") return Activation::relu;
    if (name == "sigmoid") return Activation::sigmoid;
    if (name == "tanh") return Activation::tanh;
    throw std::invalid_argument("unknown activation '" + name +
                                "' (expected relu, sigmoid or tanh)");
}

std::string to_string(Activation activation) {
    switch (activation) {
        case Activation::relu:
            return "relu";
        case Activation::sigmoid:
            return "sigmoid";
        case Activation::tanh:
            return "tanh";
    }
    return "?";
}

template <typename T>
void add_activation(BasicSequential<T>& model, Activation activation) {
    switch (activation) {
        case Activation::relu:
            model.template add<BasicReLU>();
            return;
        case Activation::sigmoid:
            model.template add<BasicSigmoid>();
            return;
        case Activation::tanh:
            model.template add<BasicTanh>();
            return;
    }
}

template <typename T>
void add_dense_head(BasicSequential<T>& model, std::size_t inputs,
                    const std::vector<std::size_t>& hidden, std::size_t classes,
                    Activation activation, const NormChoice& norm, Rng& rng, double dropout) {
    std::size_t width = inputs;
    for (const std::size_t units : hidden) {
        model.template add<BasicDense>(width, units, rng);
        add_norm(model, norm);
        add_activation(model, activation);
        if (dropout > 0.0) model.template add<BasicDropout>(dropout, rng);
        width = units;
    }
    model.template add<BasicDense>(width, classes, rng);
}

template <typename T>
BasicSequential<T> mlp(std::size_t inputs, const std::vector<std::size_t>& hidden,
                       std::size_t classes, Activation activation, const NormChoice& norm,
                       Rng& rng) {
    check_norm_without_images(norm, "mlp");
    BasicSequential<T> model;
    add_dense_head(model, inputs, hidden, classes, activation, norm, rng);
    return model;
}

template void add_activation(BasicSequential<float>&, Activation);
template void add_activation(BasicSequential<double>&, Activation);
template void add_dense_head(BasicSequential<float>&, std::size_t, const std::vector<std::size_t>&,
                             std::size_t, Activation, const NormChoice&, Rng&, double);
template void add_dense_head(BasicSequential<double>&, std::size_t, const std::vector<std::size_t>&,
                             std::size_t, Activation, const NormChoice&, Rng&, double);
template BasicSequential<float> mlp(std::size_t, const std::vector<std::size_t>&, std::size_t,
                                    Activation, const NormChoice&, Rng&);
template BasicSequential<double> mlp(std::size_t, const std::vector<std::size_t>&, std::size_t,
                                     Activation, const NormChoice&, Rng&);

}  // namespace bnlab
