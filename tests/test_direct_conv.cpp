// The direct 3x3 kernels themselves (framework/direct_conv.hpp), for every instruction set this
// CPU runs: against a sum in double on every map from 1 x 1 to 9 x 9, with guards around the
// image they store into, and the AVX-512 kernels against the AVX2 ones, bit for bit.
// (tests/test_cnn.cpp checks them through Conv2d against im2col.)
#include <algorithm>
#include <cmath>

#include <xsimd/xsimd.hpp>

#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// The kernels of every instruction set this CPU runs.
std::vector<DirectConvKernels> runnable_kernels() {
    std::vector<DirectConvKernels> kernels;
    if (!direct_conv_available()) return kernels;
    kernels.push_back(direct_conv_avx2_kernels());
    if (xsimd::available_architectures().avx512f) kernels.push_back(direct_conv_avx512_kernels());
    return kernels;
}

// Samples of [channels, H, W], padded for the kernels one after another.
struct Images {
    Images(std::size_t samples, std::size_t channels, const PaddedImage& g, Rng& rng)
        : values(random_matrix<float>(samples, channels * g.height * g.width, rng)),
          padded(samples * g.size(channels)),
          stride(g.size(channels)) {
        for (std::size_t s = 0; s < samples; ++s)
            pad_image(values.data() + s * values.shape(1), channels, g, padded.data() + s * stride);
    }
    // value[s, c, h, w], 0 outside the image
    double at(std::size_t s, std::size_t c, long h, long w, const PaddedImage& g) const {
        if (h < 0 || w < 0 || h >= long(g.height) || w >= long(g.width)) return 0.0;
        return values(s, (c * g.height + std::size_t(h)) * g.width + std::size_t(w));
    }
    Matrix<float> values;
    std::vector<float> padded;
    std::size_t stride;
};

// The output gradients `dy` of `channels` channels ordered by position, the samples
// by_position_size(channels, g) floats apart.
std::size_t by_position_size(std::size_t channels, const PaddedImage& g) {
    return g.height * g.width * direct_conv_grad_channels(channels);
}
std::vector<float> by_position(const Images& dy, std::size_t channels, const PaddedImage& g) {
    const std::size_t size = by_position_size(channels, g), samples = dy.values.shape(0);
    std::vector<float> ordered(samples * size);
    for (std::size_t s = 0; s < samples; ++s)
        order_by_position(dy.values.data() + s * dy.values.shape(1), channels, g.height * g.width,
                          ordered.data() + s * size);
    // The padding channels' lanes must not reach dW: 1000 instead of order_by_position's zeros.
    const std::size_t padded = direct_conv_grad_channels(channels);
    for (std::size_t i = 0; i < ordered.size(); ++i)
        if (i % padded >= channels) ordered[i] = 1000.f;
    return ordered;
}

}  // namespace

TEST_CASE("The direct kernels give a double sum's numbers on every map up to 9 x 9") {
    const std::vector<DirectConvKernels> kernels = runnable_kernels();
    if (kernels.empty()) {
        MESSAGE("this CPU lacks AVX2 or FMA: the direct kernels are not run");
        return;
    }
    // Channels around the AVX-512 kernels' blocks of 8 and AVX2's of 4; 3 samples for the
    // weight gradient's groups.
    const std::size_t C = 3, samples = 3;
    for (const DirectConvKernels& kernel : kernels)
        for (std::size_t O : {5, 9})
            for (std::size_t H = 1; H <= 9; ++H)
                for (std::size_t W = 1; W <= 9; ++W) {
                    CAPTURE(std::string(kernel.name));
                    CAPTURE(O);
                    CAPTURE(H);
                    CAPTURE(W);
                    const PaddedImage g{H, W};
                    Rng rng(H * 10 + W);
                    const Images x(samples, C, g, rng), dy(samples, O, g, rng);
                    const Matrix<float> weight = random_matrix<float>(O, C * 9, rng),
                                        bias = random_matrix<float>(1, O, rng);
                    std::vector<float> packed(packed_filters_size(O, C));
                    pack_filters(weight.data(), O, C, false, packed.data());
                    // forward of sample 0 into [O, H, W], between guards that must stay
                    constexpr std::size_t guard = 32;
                    const float untouched = -12345.f;
                    std::vector<float> out(guard + O * H * W + guard, untouched);
                    float* image = out.data() + guard;
                    kernel.conv3x3(x.padded.data(), C, g, packed.data(), O, bias.data(), image);
                    CHECK(std::count(out.begin(), out.begin() + guard, untouched) == guard);
                    CHECK(std::count(out.end() - guard, out.end(), untouched) == guard);
                    std::vector<float> dW(O * C * 9, 0.f);
                    kernel.weight_grad(x.padded.data(), x.stride, C, by_position(dy, O, g).data(),
                                       by_position_size(O, g), O, samples, g, dW.data());
                    double y_error = 0, y_scale = 0, dW_error = 0, dW_scale = 0;
                    for (std::size_t o = 0; o < O; ++o)
                        for (std::size_t h = 0; h < H; ++h)
                            for (std::size_t w = 0; w < W; ++w) {
                                double y = bias(0, o);
                                for (std::size_t t = 0; t < C * 9; ++t)
                                    y += weight(o, t) * x.at(0, t / 9, long(h + t / 3 % 3) - 1,
                                                             long(w + t % 3) - 1, g);
                                y_scale = std::max(y_scale, std::fabs(y));
                                y_error =
                                    std::max(y_error, std::fabs(y - image[(o * H + h) * W + w]));
                            }
                    for (std::size_t o = 0; o < O; ++o)
                        for (std::size_t t = 0; t < C * 9; ++t) {
                            // dW[o, c, kh, kw] = sum_{s, h, w} dy_s[o, h, w] x_s[c, h + kh - 1,
                            // w + kw - 1]
                            double sum = 0;
                            for (std::size_t s = 0; s < samples; ++s)
                                for (std::size_t h = 0; h < H; ++h)
                                    for (std::size_t w = 0; w < W; ++w)
                                        sum += dy.at(s, o, long(h), long(w), g) *
                                               x.at(s, t / 9, long(h + t / 3 % 3) - 1,
                                                    long(w + t % 3) - 1, g);
                            dW_scale = std::max(dW_scale, std::fabs(sum));
                            dW_error = std::max(dW_error, std::fabs(sum - dW[o * C * 9 + t]));
                        }
                    // float sums of 27 (y) and at most 3 81 (dW) products: rounding
                    CHECK(y_error <= 1e-6 * y_scale);
                    CHECK(dW_error <= 1e-6 * dW_scale);
                }
}

TEST_CASE("The direct kernels stay within limit_layer_kernels") {
    if (!direct_conv_available()) {
        MESSAGE("this CPU lacks AVX2 or FMA: the direct kernels are not run");
        return;
    }
    KernelLevelGuard guard;
    const std::string widest = xsimd::available_architectures().avx512f ? "avx512" : "avx2";
    CHECK(std::string(direct_conv_kernels()) == widest);
    // no generic kernel: AVX2 below it too
    for (KernelLevel level : {KernelLevel::avx2, KernelLevel::generic}) {
        limit_layer_kernels(level);
        CHECK(std::string(direct_conv_kernels()) == "avx2");
    }
    limit_layer_kernels(KernelLevel::avx512);
    CHECK(std::string(direct_conv_kernels()) == widest);
}

TEST_CASE("The AVX-512 direct kernels give the AVX2 kernels' bits") {
    const std::vector<DirectConvKernels> kernels = runnable_kernels();
    if (kernels.size() < 2) {
        MESSAGE("this CPU lacks AVX-512: only one set of direct kernels runs");
        return;
    }
    // ResNet's stages and the tiles' remainders: channels not in blocks of 8 or 16, maps whose
    // computed positions are an odd number of 16-position vectors, rows not in blocks of 4
    // positions.
    struct Case {
        std::size_t in, out, height, width;
    };
    for (const Case& c : {Case{16, 16, 28, 28}, Case{32, 32, 14, 14}, Case{64, 64, 7, 7},
                          Case{3, 12, 5, 9}, Case{7, 4, 13, 2}}) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        CAPTURE(c.height);
        CAPTURE(c.width);
        const PaddedImage g{c.height, c.width};
        Rng rng(c.in + c.out);
        const std::size_t samples = 2;
        const Images x(samples, c.in, g, rng), dy(samples, c.out, g, rng);
        const Matrix<float> weight = random_matrix<float>(c.out, c.in * 9, rng);
        std::vector<float> packed(packed_filters_size(c.out, c.in));
        pack_filters(weight.data(), c.out, c.in, false, packed.data());
        const Matrix<float> bias = random_matrix<float>(1, c.out, rng);
        // the images, then a guard that must stay
        const std::size_t size = c.out * c.height * c.width, guard = 32;
        const float untouched = -12345.f;
        std::vector<float> avx2(size + guard, untouched), avx512(size + guard, untouched);
        kernels[0].conv3x3(x.padded.data(), c.in, g, packed.data(), c.out, bias.data(),
                           avx2.data());
        kernels[1].conv3x3(x.padded.data(), c.in, g, packed.data(), c.out, bias.data(),
                           avx512.data());
        CHECK(std::count(avx2.begin() + size, avx2.end(), untouched) == guard);
        CHECK(avx2 == avx512);
        const std::vector<float> dy_by_position = by_position(dy, c.out, g);
        std::vector<float> avx2_dW(c.out * c.in * 9, 0.5f), avx512_dW(c.out * c.in * 9, 0.5f);
        for (std::size_t k = 0; k < 2; ++k)
            kernels[k].weight_grad(x.padded.data(), x.stride, c.in, dy_by_position.data(),
                                   by_position_size(c.out, g), c.out, samples, g,
                                   (k == 0 ? avx2_dW : avx512_dW).data());
        CHECK(avx2_dW == avx512_dW);
    }
}

TEST_CASE("order_by_position transposes dy and zeros the padding channels") {
    if (!direct_conv_available()) {
        MESSAGE("this CPU lacks AVX2 and FMA: the direct kernels do not run");
        return;
    }
    // Channels and positions in whole blocks of 8 and not (the 8 x 8 transposes and the
    // scalar rest), one block and several, as in ResNet's stages.
    for (std::size_t channels : {1, 5, 8, 9, 16, 17, 32, 64})
        for (std::size_t positions : {1, 7, 8, 9, 49, 196, 784}) {
            CAPTURE(channels);
            CAPTURE(positions);
            Rng rng(channels * 1000 + positions);
            const Matrix<float> dy = random_matrix<float>(channels, positions, rng);
            const std::size_t padded = direct_conv_grad_channels(channels);
            std::vector<float> ordered(positions * padded, std::nanf(""));
            order_by_position(dy.data(), channels, positions, ordered.data());
            std::size_t wrong = 0;
            for (std::size_t p = 0; p < positions; ++p)
                for (std::size_t o = 0; o < padded; ++o) {
                    const float expected = o < channels ? dy(o, p) : 0.f;
                    wrong += !(ordered[p * padded + o] == expected);
                }
            CHECK(wrong == 0);
        }
}
