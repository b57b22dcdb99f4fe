// The direct 3x3 kernels (framework/direct_conv.hpp) for AVX2 with FMA, in a file of their own
// compiled with -mavx2 -mfma (see CMakeLists.txt): nothing else here may be compiled for AVX2.
#include <algorithm>

#include <xsimd/xsimd.hpp>

#include "framework/direct_conv.hpp"

namespace bnlab {

namespace {

using Batch = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
constexpr std::size_t kLanes = Batch::size;
constexpr std::size_t kVectors = direct_conv_positions / kLanes;
static_assert(kVectors * kLanes == direct_conv_positions);

// dW[i, (c 3 + kh) 3 + kw] += sum_{s, q} dy_s[i, q] x_s[c, q + kh row + kw] for the Outputs rows
// of dy (each plane floats after the last) and dW (taps floats each), over `samples` samples
// (x_s = x + s x_stride, dy_s = dy + s dy_stride): 3 Outputs sums in registers, one per kw, over
// the whole grid of every sample, then added across their lanes once.
template <std::size_t Outputs>
void weight_grad_rows(const float* x, std::size_t x_stride, std::size_t in_channels,
                      const float* dy, std::size_t dy_stride, std::size_t samples,
                      const PaddedImage& g, std::size_t grid, float* dW) {
    const std::size_t row = g.row(), plane = g.plane(), taps = in_channels * 9;
    for (std::size_t c = 0; c < in_channels; ++c)
        for (std::size_t kh = 0; kh < 3; ++kh) {
            Batch sum[Outputs][3];
            for (auto& sums : sum)
                for (Batch& s : sums)
                    s = Batch(0.f);
            for (std::size_t s = 0; s < samples; ++s) {
                const float* x_row = x + s * x_stride + c * plane + kh * row;
                const float* dy_s = dy + s * dy_stride;
                for (std::size_t q = 0; q < grid; q += kLanes) {
                    const Batch x0 = Batch::load_unaligned(x_row + q),
                                x1 = Batch::load_unaligned(x_row + q + 1),
                                x2 = Batch::load_unaligned(x_row + q + 2);
                    for (std::size_t i = 0; i < Outputs; ++i) {
                        const Batch d = Batch::load_unaligned(dy_s + i * plane + q);
                        sum[i][0] = xsimd::fma(d, x0, sum[i][0]);
                        sum[i][1] = xsimd::fma(d, x1, sum[i][1]);
                        sum[i][2] = xsimd::fma(d, x2, sum[i][2]);
                    }
                }
            }
            for (std::size_t i = 0; i < Outputs; ++i)
                for (std::size_t kw = 0; kw < 3; ++kw)
                    dW[i * taps + (c * 3 + kh) * 3 + kw] += xsimd::hadd(sum[i][kw]);
        }
}

// Whether a row of W floats at `at` of an image of `size` floats can be copied by whole
// vectors: the last vector's floats past the row stay inside the image.
bool fits_whole_vectors(std::size_t at, std::size_t W, std::size_t size) {
    return at + (W + kLanes - 1) / kLanes * kLanes <= size;
}

// to[w] = from[w] (+ bias with AddBias) for w < W: by whole vectors, reading and writing up to
// kLanes - 1 floats past the row, when `whole_vectors`; else one float at a time.
template <bool AddBias>
void copy_row(const float* from, std::size_t W, bool whole_vectors, float bias, float* to) {
    if (!whole_vectors) {
        for (std::size_t w = 0; w < W; ++w)
            to[w] = AddBias ? from[w] + bias : from[w];
        return;
    }
    for (std::size_t w = 0; w < W; w += kLanes) {
        const Batch v = Batch::load_unaligned(from + w);
        (AddBias ? v + Batch(bias) : v).store_unaligned(to + w);
    }
}

}  // namespace

void direct_conv3x3(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
                    const float* packed_filters, std::size_t out_channels, float* out) {
    constexpr std::size_t B = direct_conv_block;
    const std::size_t row = g.row(), plane = g.plane(), stride = g.out_stride(),
                      taps = in_channels * 9, blocks = direct_conv_rows(out_channels) / B;
    // One block of positions at a time, for every block of output channels: the image around
    // those positions stays in L1 while all the filters pass by it.
    for (std::size_t q = 0; q < stride; q += direct_conv_positions)
        for (std::size_t b = 0; b < blocks; ++b) {
            Batch sum[B][kVectors];
            for (auto& sums : sum)
                for (Batch& s : sums)
                    s = Batch(0.f);
            const float* w = packed_filters + b * taps * B;
            for (std::size_t c = 0; c < in_channels; ++c)
                for (std::size_t kh = 0; kh < 3; ++kh)
                    for (std::size_t kw = 0; kw < 3; ++kw, w += B) {
                        // out[o, q + j] += W[o, c, kh, kw] x[c, q + j + kh row + kw]
                        const float* tap = padded_input + c * plane + kh * row + kw + q;
                        Batch v[kVectors];
                        for (std::size_t j = 0; j < kVectors; ++j)
                            v[j] = Batch::load_unaligned(tap + j * kLanes);
                        for (std::size_t i = 0; i < B; ++i) {
                            const Batch weight(w[i]);
                            for (std::size_t j = 0; j < kVectors; ++j)
                                sum[i][j] = xsimd::fma(weight, v[j], sum[i][j]);
                        }
                    }
            for (std::size_t i = 0; i < B; ++i)
                for (std::size_t j = 0; j < kVectors; ++j)
                    sum[i][j].store_unaligned(out + (b * B + i) * stride + q + j * kLanes);
        }
}

void pad_image(const float* image, std::size_t channels, const PaddedImage& g, float* padded) {
    const std::size_t H = g.height, W = g.width, row = g.row(), size = channels * H * W;
    float* p = padded;
    for (std::size_t c = 0; c < channels; ++c) {
        // the top border and the first row's left one
        p = std::fill_n(p, row + 1, 0.f);
        for (std::size_t h = 0; h < H; ++h) {
            // the floats past the row's end land on the borders and rows after it, which are
            // written later (the last ones on the slack)
            const std::size_t at = (c * H + h) * W;
            copy_row<false>(image + at, W, fits_whole_vectors(at, W, size), 0.f, p);
            p += W;
            // this row's right border and the next one's left
            if (h + 1 < H) p = std::fill_n(p, 2, 0.f);
        }
        // the last row's right border and the bottom border
        p = std::fill_n(p, row + 1, 0.f);
    }
    std::fill_n(p, direct_conv_slack, 0.f);
}

void crop_output(const float* out, std::size_t channels, const PaddedImage& g, const float* bias,
                 float* image) {
    const std::size_t H = g.height, W = g.width, row = g.row(), stride = g.out_stride(),
                      size = channels * H * W;
    for (std::size_t o = 0; o < channels; ++o)
        for (std::size_t h = 0; h < H; ++h) {
            // the floats past the row's end land on the rows after it, which are written later
            // (what they read past the row lies in the next row of the grid, or in the scratch
            // after it)
            const std::size_t at = (o * H + h) * W;
            copy_row<true>(out + o * stride + h * row, W, fits_whole_vectors(at, W, size),
                           bias ? bias[o] : 0.f, image + at);
        }
}

void direct_conv3x3_weight_grad(const float* padded_inputs, std::size_t input_stride,
                                std::size_t in_channels, const float* padded_grads,
                                std::size_t grad_stride, std::size_t out_channels,
                                std::size_t samples, const PaddedImage& g, float* weight_grad) {
    // dy on the grid: position q = h row + w is padded_grad[(h + 1) row + 1 + w], and the
    // dropped positions (w >= W, and the last vector's tail) read its zero border or slack.
    const float* dy = padded_grads + g.row() + 1;
    const std::size_t grid = (g.grid() + kLanes - 1) / kLanes * kLanes, taps = in_channels * 9;
    std::size_t o = 0;
    for (; o + direct_conv_block <= out_channels; o += direct_conv_block)
        weight_grad_rows<direct_conv_block>(padded_inputs, input_stride, in_channels,
                                            dy + o * g.plane(), grad_stride, samples, g, grid,
                                            weight_grad + o * taps);
    for (; o < out_channels; ++o)
        weight_grad_rows<1>(padded_inputs, input_stride, in_channels, dy + o * g.plane(),
                            grad_stride, samples, g, grid, weight_grad + o * taps);
}

}  // namespace bnlab
