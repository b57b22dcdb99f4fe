#pragma once
// The direct 3x3 kernels' loops (framework/direct_conv.hpp) for one instruction set, written once
// for xsimd's batches. Included only by the files that instantiate them, each compiled for its
// own instruction set (direct_conv_avx2.cpp with -mavx2 -mfma, direct_conv_avx512.cpp with
// -mavx512f -mfma): everything here has internal linkage, so no copy compiled for AVX-512 can
// stand in for another file's at link time, and nothing here calls the standard library.
#include <immintrin.h>

#include <xsimd/xsimd.hpp>

#include "framework/direct_conv.hpp"

namespace bnlab {
namespace {

// a b + c, rounded once. xsimd 8 has no AVX-512 FMA: its generic a * b + c becomes one only
// where GCC contracts it (at -O2, not at the sanitizer build's -O1, where the AVX-512 kernels
// then lost AVX2's bits).
template <class Batch>
inline Batch fused_multiply_add(const Batch& a, const Batch& b, const Batch& c) {
    if constexpr (Batch::size == 16)
        return _mm512_fmadd_ps(a, b, c);
    else
        return xsimd::fma(a, b, c);
}

// Where one vector of grid positions goes in the [channels, H, W] image: its lanes inside the
// image (the others are the two dropped positions of each row and those past the last row) go to
// consecutive places from `first`, since the image's places follow the grid's order.
struct CroppedLanes {
    std::size_t first = 0;  // h W + w of the first lane inside the image
    unsigned inside = 0;    // bit l: lane l lies inside the image
    unsigned count = 0;     // lanes inside
};

// The CroppedLanes of the `lanes` positions from grid position q.
inline CroppedLanes cropped_lanes(std::size_t q, std::size_t lanes, const PaddedImage& g) {
    CroppedLanes at;
    std::size_t h = q / g.row(), w = q % g.row();
    for (std::size_t l = 0; l < lanes; ++l) {
        if (h < g.height && w < g.width) {
            if (at.count++ == 0) at.first = h * g.width + w;
            at.inside |= 1u << l;
        }
        if (++w == g.row()) w = 0, ++h;
    }
    return at;
}

// AVX2 has no compress instruction: the lanes' indices for _mm256_permutevar8x32_ps, a byte each,
// that move the lanes set in the table's index to the front in order.
struct CompressIndices {
    unsigned long long of[256];
};
constexpr CompressIndices make_compress_indices() {
    CompressIndices table{};
    for (unsigned mask = 0; mask < 256; ++mask) {
        unsigned next = 0;
        for (unsigned lane = 0; lane < 8; ++lane)
            if (mask >> lane & 1) table.of[mask] |= (unsigned long long)lane << (8 * next++);
    }
    return table;
}
constexpr CompressIndices compress_indices = make_compress_indices();

// plane[at.first + k] = the k-th lane of v inside the image, for one channel's plane of `size`
// floats: a whole vector where all lanes are inside, else the inside lanes packed to the front.
// Nothing past the plane is written (the next channel's plane, or another thread's sample, may
// follow). AVX-512 stores the packed lanes under a mask. AVX2's masked store is slow (microcoded
// on AMD's Jaguar, LLVM review D66801; with it on every partial vector the AVX2 kernel took 2.7 %
// longer on 7 x 7 maps on a Xeon), so AVX2 stores the whole vector where it ends inside the
// plane: the lanes past the packed ones land on places later in the plane, which the kernel
// writes later (it stores each plane's vectors in position order); only at the plane's end a
// mask.
template <class Batch>
inline void store_cropped(const Batch& v, const CroppedLanes& at, float* plane, std::size_t size) {
    constexpr unsigned all = (1u << Batch::size) - 1;
    if (at.inside == all) return v.store_unaligned(plane + at.first);
    if (at.count == 0) return;
    if constexpr (Batch::size == 16) {
        const __m512 packed = _mm512_maskz_compress_ps(__mmask16(at.inside), v);
        _mm512_mask_storeu_ps(plane + at.first, __mmask16((1u << at.count) - 1), packed);
    } else {
        const __m256i lanes =
            _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)compress_indices.of[at.inside]));
        const __m256 packed = _mm256_permutevar8x32_ps(v, lanes);
        if (at.first + Batch::size <= size) return _mm256_storeu_ps(plane + at.first, packed);
        const __m256i head = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(at.count)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(plane + at.first, head, packed);
    }
}

// y[o, h, w] = bias[o] + sum_{c, kh, kw} W[o, c, kh, kw] x[c, q + kh row + kw] for the Blocks 4
// output channels of the packed filter blocks at `filters` (each block_floats after the last),
// the first `channels` of them stored (the rest are padding channels), and the Vectors vectors of
// grid positions from q, which `at` places in the image (planes `plane` floats apart; bias null:
// + 0). Blocks 4 Vectors sums in registers over all C 9 taps, each tap broadcast once and
// multiplied with the Vectors image vectors. Every sum is one chain of FMAs over the taps in the
// same order whatever the blocking, so every instruction set gives the same bits.
template <class Arch, std::size_t Blocks, std::size_t Vectors>
inline void conv_tile(const float* input, std::size_t in_channels, const PaddedImage& g,
                      const float* filters, std::size_t block_floats, std::size_t q,
                      const CroppedLanes* at, std::size_t channels, const float* bias,
                      std::size_t plane, float* image) {
    using Batch = xsimd::batch<float, Arch>;
    constexpr std::size_t B = direct_conv_block, Outputs = Blocks * B, kLanes = Batch::size;
    const std::size_t row = g.row(), in_plane = g.plane();
    Batch sum[Outputs][Vectors];
    // GCC unrolls these loops fully only when told: left as loops, the sums stayed in memory
    // and the AVX-512 kernel ran at a third of its speed.
#pragma GCC unroll 16
    for (std::size_t i = 0; i < Outputs; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < Vectors; ++j)
            sum[i][j] = Batch(0.f);
    const float* w = filters;
    for (std::size_t c = 0; c < in_channels; ++c)
        for (std::size_t kh = 0; kh < 3; ++kh)
            for (std::size_t kw = 0; kw < 3; ++kw, w += B) {
                // sum[o][j] += W[o, c, kh, kw] x[c, q + j kLanes + kh row + kw]
                const float* tap = input + c * in_plane + kh * row + kw + q;
                Batch v[Vectors];
#pragma GCC unroll 4
                for (std::size_t j = 0; j < Vectors; ++j)
                    v[j] = Batch::load_unaligned(tap + j * kLanes);
#pragma GCC unroll 4
                for (std::size_t k = 0; k < Blocks; ++k)
#pragma GCC unroll 4
                    for (std::size_t i = 0; i < B; ++i) {
                        const Batch weight(w[k * block_floats + i]);
#pragma GCC unroll 4
                        for (std::size_t j = 0; j < Vectors; ++j)
                            sum[k * B + i][j] = fused_multiply_add(weight, v[j], sum[k * B + i][j]);
                    }
            }
#pragma GCC unroll 16
    for (std::size_t i = 0; i < Outputs; ++i) {
        if (i >= channels) break;  // padding channels
        // the sums straight into the image, the bias added after them (as im2col's path adds it)
        const Batch b(bias ? bias[i] : 0.f);
#pragma GCC unroll 4
        for (std::size_t j = 0; j < Vectors; ++j)
            store_cropped(sum[i][j] + b, at[j], image + i * plane, plane);
    }
}

// direct_conv3x3 (framework/direct_conv.hpp) in tiles of Blocks filter blocks and Vectors
// vectors of positions, the last tiles smaller where the channels or positions run out.
template <class Arch, std::size_t Blocks, std::size_t Vectors>
void conv3x3_tiles(const float* input, std::size_t in_channels, const PaddedImage& g,
                   const float* packed_filters, std::size_t out_channels, const float* bias,
                   float* image) {
    constexpr std::size_t B = direct_conv_block, kLanes = xsimd::batch<float, Arch>::size;
    static_assert(direct_conv_positions % kLanes == 0, "whole vectors of positions");
    const std::size_t positions = g.computed_positions(), block_floats = in_channels * 9 * B,
                      blocks = direct_conv_rows(out_channels) / B, plane = g.height * g.width;
    // One tile of positions at a time, for every block of output channels: the image around
    // those positions stays in L1 while all the filters pass by it.
    const auto channel_tiles = [&](auto vectors, std::size_t q) {
        constexpr std::size_t V = decltype(vectors)::value;
        CroppedLanes at[V];
        for (std::size_t j = 0; j < V; ++j)
            at[j] = cropped_lanes(q + j * kLanes, kLanes, g);
        const auto tile = [&](auto blocks_in_tile, std::size_t b) {
            constexpr std::size_t K = decltype(blocks_in_tile)::value;
            const std::size_t first = b * B;
            conv_tile<Arch, K, V>(input, in_channels, g, packed_filters + b * block_floats,
                                  block_floats, q, at, out_channels - first,
                                  bias ? bias + first : nullptr, plane, image + first * plane);
        };
        std::size_t b = 0;
        for (; b + Blocks <= blocks; b += Blocks)
            tile(std::integral_constant<std::size_t, Blocks>(), b);
        for (; b < blocks; ++b)
            tile(std::integral_constant<std::size_t, 1>(), b);
    };
    std::size_t q = 0;
    for (; q + Vectors * kLanes <= positions; q += Vectors * kLanes)
        channel_tiles(std::integral_constant<std::size_t, Vectors>(), q);
    for (; q < positions; q += kLanes)
        channel_tiles(std::integral_constant<std::size_t, 1>(), q);
}

// sum[kh 3 + kw] += dy[w + p] x[kh row + w + p + kw] over p < Positions: the output gradients
// of Positions neighbouring positions of one row (each a vector over output channels, read from
// dy_by_position, `channels` floats apart) times the input around them (x: the padded input at
// the row's top-left tap), each input value broadcast once for every tap that reads it
// (Positions + 2 values a row of taps instead of 3 Positions). Each sum takes the positions in
// increasing order whatever Positions is.
template <class Batch, std::size_t Positions>
inline void add_positions(const float* dy_by_position, std::size_t channels, const float* x,
                          std::size_t row, Batch (&sum)[9]) {
    Batch dy[Positions];
#pragma GCC unroll 4
    for (std::size_t p = 0; p < Positions; ++p)
        dy[p] = Batch::load_unaligned(dy_by_position + p * channels);
#pragma GCC unroll 3
    for (std::size_t kh = 0; kh < 3; ++kh)
#pragma GCC unroll 6
        for (std::size_t j = 0; j < Positions + 2; ++j) {
            // x[kh row + j] is tap kw = j - p of position p
            const Batch value(x[kh * row + j]);
#pragma GCC unroll 4
            for (std::size_t p = 0; p < Positions; ++p)
                if (j >= p && j - p < 3)
                    sum[kh * 3 + j - p] = fused_multiply_add(dy[p], value, sum[kh * 3 + j - p]);
        }
}

// direct_conv3x3_weight_grad (framework/direct_conv.hpp), vectorized over output channels: each
// lane is one output channel, so every sum of dW is one chain of FMAs over the positions of a
// row, in order, whatever the vector width (AVX2 and AVX-512 give the same bits), and nothing is
// added across lanes. The chains are one row long; the rows' sums are added in (sample, row)
// order. Positions is how many positions of a row share their input values' broadcasts.
template <class Arch, std::size_t Positions>
void conv3x3_weight_grad(const float* padded_inputs, std::size_t input_stride,
                         std::size_t in_channels, const float* grads_by_position,
                         std::size_t grad_stride, std::size_t out_channels, std::size_t samples,
                         const PaddedImage& g, float* weight_grad) {
    using Batch = xsimd::batch<float, Arch>;
    constexpr std::size_t kLanes = Batch::size;
    static_assert(direct_conv_grad_channel_block % kLanes == 0, "whole vectors of channels");
    const std::size_t H = g.height, W = g.width, row = g.row(), plane = g.plane(),
                      channels = direct_conv_grad_channels(out_channels), taps = in_channels * 9;
    for (std::size_t first = 0; first < out_channels; first += kLanes)
        for (std::size_t c = 0; c < in_channels; ++c) {
            Batch total[9];
#pragma GCC unroll 9
            for (std::size_t t = 0; t < 9; ++t)
                total[t] = Batch(0.f);
            for (std::size_t s = 0; s < samples; ++s)
                for (std::size_t h = 0; h < H; ++h) {
                    // the row's sums: dW[o, c, kh, kw] of dy_s[o, h, w] x_s[c, h + kh, w + kw]
                    // (padded coordinates) over w
                    Batch sum[9];
#pragma GCC unroll 9
                    for (std::size_t t = 0; t < 9; ++t)
                        sum[t] = Batch(0.f);
                    const float* dy =
                        grads_by_position + s * grad_stride + h * W * channels + first;
                    const float* x = padded_inputs + s * input_stride + c * plane + h * row;
                    std::size_t w = 0;
                    for (; w + Positions <= W; w += Positions)
                        add_positions<Batch, Positions>(dy + w * channels, channels, x + w, row,
                                                        sum);
                    // the row's last W mod Positions positions in one call (one at a time,
                    // each would read 9 values for 9 FMAs)
                    const auto rest = [&](auto positions) {
                        add_positions<Batch, decltype(positions)::value>(dy + w * channels,
                                                                         channels, x + w, row, sum);
                    };
                    static_assert(Positions <= 4, "the rest is at most 3 positions");
                    switch (W - w) {
                        case 3:
                            rest(std::integral_constant<std::size_t, 3>());
                            break;
                        case 2:
                            rest(std::integral_constant<std::size_t, 2>());
                            break;
                        case 1:
                            rest(std::integral_constant<std::size_t, 1>());
                            break;
                        default:
                            break;
                    }
#pragma GCC unroll 9
                    for (std::size_t t = 0; t < 9; ++t)
                        total[t] += sum[t];
                }
            // dW[first + l, c 9 + t] += total[t][l]: lanes to the rows of dW
            float lanes[9][kLanes];
            for (std::size_t t = 0; t < 9; ++t)
                total[t].store_unaligned(lanes[t]);
            for (std::size_t l = 0; l < kLanes && first + l < out_channels; ++l)
                for (std::size_t t = 0; t < 9; ++t)
                    weight_grad[(first + l) * taps + c * 9 + t] += lanes[t][l];
        }
}

}  // namespace
}  // namespace bnlab
