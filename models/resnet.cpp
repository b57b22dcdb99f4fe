#include "models/resnet.hpp"

#include <cmath>
#include <stdexcept>

#include "layers/avg_pool2d.hpp"
#include "layers/dense.hpp"
#include "layers/relu.hpp"
#include "layers/residual.hpp"

namespace bnlab {

std::size_t ResNetOptions::blocks_per_stage() const {
    if (depth_ < 8 || (depth_ - 2) % 6 != 0)
        throw std::invalid_argument("ResNet: depth " + std::to_string(depth_) +
                                    " is not 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, …)");
    return (depth_ - 2) / 6;
}

template <typename T>
void kaiming_normal_fan_out(BasicConv2d<T>& conv, Rng& rng) {
    const Window& window = conv.options().window();
    const double fan_out = double(conv.options().out_channels() * window.kernel * window.kernel);
    // std = gain / sqrt(fan_out), gain = sqrt(2) for ReLU
    const double std = std::sqrt(2.0 / fan_out);
    for (T& weight : conv.weight())
        weight = static_cast<T>(std * rng.normal());
    conv.bias().fill(T(0));
}

namespace {

// Conv2d k x k (padding k / 2) [-> normalization], appended to `model`; without a
// normalization, the convolution has a bias.
template <typename T>
void add_conv(BasicSequential<T>& model, std::size_t in, std::size_t out, std::size_t stride,
              const ResNetOptions& options, Rng& rng, std::size_t kernel = 3) {
    auto& conv = model.template add<BasicConv2d>(Conv2dOptions(in, out, kernel)
                                                     .stride(stride)
                                                     .padding(kernel / 2)
                                                     .bias(!options.norm().any()),
                                                 rng);
    if (options.kaiming_init()) kaiming_normal_fan_out(conv, rng);
    add_norm(model, options.norm());
}

// The block around `body`: BasicResidual's own shortcut (identity, or a projection with a
// BatchNorm when the body has one) for BatchNorm and none; for the other normalizations the
// projection a 1x1 convolution and the same normalization (torchvision's downsample with its
// norm_layer).
template <typename T>
BasicResidual<T>& add_residual(BasicSequential<T>& model, BasicSequential<T> body,
                               std::size_t stride, const ResNetOptions& options, Rng& rng) {
    const NormKind kind = options.norm().kind();
    const Shape in = *body.input_shape(), out = *body.output_shape();
    if (kind == NormKind::batch || kind == NormKind::none || in == out) {
        auto& residual = model.template add<BasicResidual<T>>(std::move(body), rng);
        // The projection's 1x1 convolution is drawn as every other convolution.
        BasicSequential<T>* shortcut = residual.shortcut();
        if (shortcut && options.kaiming_init())
            kaiming_normal_fan_out(dynamic_cast<BasicConv2d<T>&>((*shortcut)[0]), rng);
        return residual;
    }
    BasicSequential<T> shortcut(in);
    add_conv(shortcut, in[0], out[0], stride, options, rng, 1);
    return model.template add<BasicResidual<T>>(std::move(body), std::move(shortcut));
}

// The BasicBlock's body, appended to `model`: Conv3x3 (stride) -> [BN] -> ReLU -> Conv3x3 ->
// [BN].
template <typename T>
void add_block_body(BasicSequential<T>& model, std::size_t out, std::size_t stride,
                    const ResNetOptions& options, Rng& rng) {
    add_conv(model, (*model.output_shape())[0], out, stride, options, rng);
    model.template add<BasicReLU>();
    add_conv(model, out, out, 1, options, rng);
}

}  // namespace

template <typename T>
BasicSequential<T> resnet(const Shape& input, const ResNetOptions& options, Rng& rng) {
    const std::size_t blocks = options.blocks_per_stage();
    if (options.width() == 0) throw std::invalid_argument("ResNet: width must be positive");
    if (input.size() != 3)
        throw std::invalid_argument("ResNet: needs images [C, H, W], got samples of shape " +
                                    shape_string(input));
    BasicSequential<T> model(input);
    add_conv(model, input[0], options.width(), 1, options, rng);
    model.template add<BasicReLU>();
    for (std::size_t stage = 0; stage < 3; ++stage) {
        const std::size_t channels = options.width() << stage;
        for (std::size_t block = 0; block < blocks; ++block) {
            const std::size_t stride = stage > 0 && block == 0 ? 2 : 1;
            if (!options.residual()) {
                add_block_body(model, channels, stride, options, rng);
                model.template add<BasicReLU>();
                continue;
            }
            BasicSequential<T> body(*model.output_shape());
            add_block_body(body, channels, stride, options, rng);
            if (options.norm().any() && options.zero_init_residual())
                fill_norm_gamma(body[body.size() - 1], T(0));
            add_residual(model, std::move(body), stride, options, rng);
        }
    }
    model.template add<BasicGlobalAvgPool2d>();
    model.template add<BasicDense>(options.width() << 2, options.classes(), rng);
    return model;
}

template void kaiming_normal_fan_out(BasicConv2d<float>&, Rng&);
template void kaiming_normal_fan_out(BasicConv2d<double>&, Rng&);
template BasicSequential<float> resnet(const Shape&, const ResNetOptions&, Rng&);
template BasicSequential<double> resnet(const Shape&, const ResNetOptions&, Rng&);

}  // namespace bnlab
