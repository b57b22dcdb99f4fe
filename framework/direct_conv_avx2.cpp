// The direct 3x3 kernels (framework/direct_conv.hpp) for AVX2 with FMA, and the padding and
// reordering around them, in a file of their own compiled with -mavx2 -mfma (see CMakeLists.txt):
// nothing else here may be compiled for AVX2. The kernels' loops are
// framework/direct_conv_kernels.hpp's, shared with direct_conv_avx512.cpp.
#include <immintrin.h>

#include <algorithm>

#include <xsimd/xsimd.hpp>

#include "framework/direct_conv.hpp"
#include "framework/direct_conv_kernels.hpp"

namespace bnlab {

namespace {

using Arch = xsimd::fma3<xsimd::avx2>;
using Batch = xsimd::batch<float, Arch>;
constexpr std::size_t kLanes = Batch::size;

// Whether a row of W floats at `at` of an image of `size` floats can be copied by whole
// vectors: the last vector's floats past the row stay inside the image.
bool fits_whole_vectors(std::size_t at, std::size_t W, std::size_t size) {
    return at + (W + kLanes - 1) / kLanes * kLanes <= size;
}

// to[w] = from[w] for w < W: by whole vectors, reading and writing up to kLanes - 1 floats past
// the row, when `whole_vectors`; else one float at a time.
void copy_row(const float* from, std::size_t W, bool whole_vectors, float* to) {
    if (!whole_vectors) {
        std::copy_n(from, W, to);
        return;
    }
    for (std::size_t w = 0; w < W; w += kLanes)
        Batch::load_unaligned(from + w).store_unaligned(to + w);
}

// to[j to_stride + i] = from[i from_stride + j] for i, j < 8: an 8 x 8 block transposed in
// registers (unpack pairs of rows, shuffle pairs of pairs, swap the 128-bit halves).
void transpose_8x8(const float* from, std::size_t from_stride, float* to, std::size_t to_stride) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i)
        r[i] = _mm256_loadu_ps(from + i * from_stride);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(to + i * to_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(to + (i + 4) * to_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
}

}  // namespace

void order_by_position(const float* dy, std::size_t out_channels, std::size_t positions,
                       float* by_position) {
    const std::size_t channels = direct_conv_grad_channels(out_channels),
                      whole_channels = out_channels / 8 * 8;
    // Blocks of 8 positions x 8 channels through registers (the scalar loop was 7 % of the
    // cnn preset's step), the channels past the last whole block and the last positions one by
    // one, and zeros on the padding channels.
    std::size_t p = 0;
    for (; p + 8 <= positions; p += 8) {
        float* at = by_position + p * channels;
        for (std::size_t o = 0; o < whole_channels; o += 8)
            transpose_8x8(dy + o * positions + p, positions, at + o, channels);
        for (std::size_t j = 0; j < 8; ++j) {
            for (std::size_t o = whole_channels; o < out_channels; ++o)
                at[j * channels + o] = dy[o * positions + p + j];
            std::fill(at + j * channels + out_channels, at + (j + 1) * channels, 0.f);
        }
    }
    for (; p < positions; ++p) {
        float* at = by_position + p * channels;
        for (std::size_t o = 0; o < out_channels; ++o)
            at[o] = dy[o * positions + p];
        std::fill(at + out_channels, at + channels, 0.f);
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
            copy_row(image + at, W, fits_whole_vectors(at, W, size), p);
            p += W;
            // this row's right border and the next one's left
            if (h + 1 < H) p = std::fill_n(p, 2, 0.f);
        }
        // the last row's right border and the bottom border
        p = std::fill_n(p, row + 1, 0.f);
    }
    std::fill_n(p, direct_conv_slack, 0.f);
}

namespace {

void conv3x3(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
             const float* packed_filters, std::size_t out_channels, const float* bias,
             float* image) {
    // 4 output channels x 16 positions: 8 sums in registers, beside 2 image vectors and a tap
    conv3x3_tiles<Arch, 1, 2>(padded_input, in_channels, g, packed_filters, out_channels, bias,
                              image);
}

void weight_grad(const float* padded_inputs, std::size_t input_stride, std::size_t in_channels,
                 const float* grads_by_position, std::size_t grad_stride, std::size_t out_channels,
                 std::size_t samples, const PaddedImage& g, float* weight_grad) {
    // 4 positions share their inputs' broadcasts: 9 sums, 4 gradient vectors and a broadcast
    // in registers
    conv3x3_weight_grad<Arch, 4>(padded_inputs, input_stride, in_channels, grads_by_position,
                                 grad_stride, out_channels, samples, g, weight_grad);
}

}  // namespace

const DirectConvKernels& direct_conv_avx2_kernels() {
    static const DirectConvKernels kernels{"avx2", conv3x3, weight_grad};
    return kernels;
}

}  // namespace bnlab
