#include "models/cnn.hpp"

#include "layers/conv2d.hpp"
#include "layers/max_pool2d.hpp"

namespace bnlab {

template <typename T>
BasicSequential<T> cnn(const Shape& input, const std::vector<std::size_t>& channels,
                       const std::vector<std::size_t>& hidden, std::size_t classes,
                       Activation activation, const NormChoice& norm, Rng& rng, double dropout) {
    BasicSequential<T> model(input);
    std::size_t in_channels = input.empty() ? 0 : input[0];
    for (const std::size_t out_channels : channels) {
        model.template add<BasicConv2d>(Conv2dOptions(in_channels, out_channels, 3).padding(1),
                                        rng);
        add_norm(model, norm);
        add_activation(model, activation);
        model.template add<BasicMaxPool2d>(2);
        in_channels = out_channels;
    }
    add_dense_head(model, *model.out_features(), hidden, classes, activation, norm, rng, dropout);
    return model;
}

template BasicSequential<float> cnn(const Shape&, const std::vector<std::size_t>&,
                                    const std::vector<std::size_t>&, std::size_t, Activation,
                                    const NormChoice&, Rng&, double);
template BasicSequential<double> cnn(const Shape&, const std::vector<std::size_t>&,
                                     const std::vector<std::size_t>&, std::size_t, Activation,
                                     const NormChoice&, Rng&, double);

}  // namespace bnlab
