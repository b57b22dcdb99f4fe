#include "framework/direct_conv.hpp"

#include <algorithm>
#include <stdexcept>

#include <xsimd/xsimd.hpp>

#include "framework/simd.hpp"

namespace bnlab {

std::size_t PaddedImage::computed_positions() const {
    return (grid() + direct_conv_positions - 1) / direct_conv_positions * direct_conv_positions;
}

std::size_t PaddedImage::size(std::size_t channels) const {
    return channels * plane() + direct_conv_slack;
}

bool direct_conv_available() {
#if defined(__x86_64__)
    static const bool available = xsimd::available_architectures().fma3_avx2;
    return available;
#else
    return false;
#endif
}

namespace {

#if defined(__x86_64__)
// The widest kernels this CPU runs within limit_layer_kernels (called only where
// direct_conv_available(); there is no generic kernel, so below AVX2 the AVX2 one runs).
const DirectConvKernels& kernels() {
    return layers_use_avx512() ? direct_conv_avx512_kernels() : direct_conv_avx2_kernels();
}
#endif

}  // namespace

const char* direct_conv_kernels() {
#if defined(__x86_64__)
    if (direct_conv_available()) return kernels().name;
#endif
    return "none";
}

bool direct_conv_preferred(std::size_t height, std::size_t width) {
    return direct_conv_available() && height * width >= direct_conv_min_positions;
}

std::size_t packed_filters_size(std::size_t out_channels, std::size_t in_channels) {
    return direct_conv_rows(out_channels) * in_channels * 9;
}

void pack_filters(const float* weight, std::size_t out_channels, std::size_t in_channels,
                  bool flipped, float* packed) {
    // The packed convolution's outputs and inputs
    const std::size_t outputs = flipped ? in_channels : out_channels,
                      inputs = flipped ? out_channels : in_channels, taps = inputs * 9,
                      blocks = direct_conv_rows(outputs) / direct_conv_block;
    const auto filter = [&](std::size_t o, std::size_t tap) {
        if (!flipped) return weight[o * taps + tap];
        // W'[o, i, kh, kw] = W[i, o, 2 - kh, 2 - kw]
        const std::size_t i = tap / 9, kh = tap / 3 % 3, kw = tap % 3;
        return weight[i * outputs * 9 + (o * 3 + 2 - kh) * 3 + (2 - kw)];
    };
    for (std::size_t b = 0; b < blocks; ++b)
        for (std::size_t tap = 0; tap < taps; ++tap)
            for (std::size_t j = 0; j < direct_conv_block; ++j) {
                const std::size_t o = b * direct_conv_block + j;
                *packed++ = o < outputs ? filter(o, tap) : 0.f;
            }
}

#if defined(__x86_64__)
void direct_conv3x3(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
                    const float* packed_filters, std::size_t out_channels, const float* bias,
                    float* image) {
    kernels().conv3x3(padded_input, in_channels, g, packed_filters, out_channels, bias, image);
}

void direct_conv3x3_weight_grad(const float* padded_inputs, std::size_t input_stride,
                                std::size_t in_channels, const float* grads_by_position,
                                std::size_t grad_stride, std::size_t out_channels,
                                std::size_t samples, const PaddedImage& g, float* weight_grad) {
    kernels().weight_grad(padded_inputs, input_stride, in_channels, grads_by_position, grad_stride,
                          out_channels, samples, g, weight_grad);
}
#else
void direct_conv3x3(const float*, std::size_t, const PaddedImage&, const float*, std::size_t,
                    const float*, float*) {
    throw std::logic_error("direct_conv3x3: built for x86-64 only");
}
void pad_image(const float*, std::size_t, const PaddedImage&, float*) {
    throw std::logic_error("pad_image: built for x86-64 only");
}
void order_by_position(const float*, std::size_t, std::size_t, float*) {
    throw std::logic_error("order_by_position: built for x86-64 only");
}
void direct_conv3x3_weight_grad(const float*, std::size_t, std::size_t, const float*, std::size_t,
                                std::size_t, std::size_t, const PaddedImage&, float*) {
    throw std::logic_error("direct_conv3x3_weight_grad: built for x86-64 only");
}
#endif

}  // namespace bnlab
