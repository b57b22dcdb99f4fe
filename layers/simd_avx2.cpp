// Sigmoid's and Tanh's element-wise kernels for AVX2, and the fused block's: BatchNorm's
// per-sample moments, BatchNorm + ReLU (apply_pixel), its backward sums and input gradient, the
// 2x2 max pooling and the gradient through it; in a file of their own compiled with -mavx2 -mfma
// (see CMakeLists.txt). framework/simd.hpp and the layers pick them at run time on CPUs that have
// it (layers_use_avx2). This file instantiates nothing but these kernels, so no code built for AVX2
// can stand in for another file's; and a formula shared with the generic code must keep its
// products rounded here (framework/rounded.hpp), or GCC contracts them into FMAs.
#include <immintrin.h>

#include <algorithm>

#include "layers/batch_norm.hpp"
#include "layers/conv_block.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/rounded.hpp"
#include "framework/simd_kernels.hpp"
#include "layers/pool_simd.hpp"

namespace bnlab {

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                          float*,
                                                                          std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                       float*, std::size_t) const;

namespace {

// 8 doubles as two vectors: 0-3 and 4-7
struct EightDoubles {
    __m256d low, high;
};

// 8 floats as doubles
inline EightDoubles to_doubles(__m256 v) {
    return {_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))};
}

// Lanes < n of 8 (n <= 8), as a mask of floats or ints
inline __m256i first_lanes(std::uint32_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// from[0, n) and zeros after, n <= 8: nothing past from + n is read
inline __m256 load_first(const float* from, std::uint32_t n) {
    return n == 8 ? _mm256_loadu_ps(from) : _mm256_maskload_ps(from, first_lanes(n));
}

// The terms of two sums at 8 consecutive indices
struct EightPairs {
    EightDoubles first, second;
};

// sum_pairs_in_16_lanes (framework/tensor.hpp) on AVX2, the same bits: lanes 0-3, 4-7, 8-11 and
// 12-15 of each sum in four registers, the last partial block's terms past n replaced by zeros,
// then the tree. terms(i, valid) gives the pairs i .. i + 7 as EightPairs, reading values only
// at i .. i + valid - 1 (valid <= 8; what it gives past them is dropped).
template <typename Terms>
SumPair sum_pairs_in_16_lanes_avx2(std::size_t n, Terms terms) {
    const __m256d zero = _mm256_setzero_pd();
    __m256d first[4] = {zero, zero, zero, zero}, second[4] = {zero, zero, zero, zero};
    // adds the pairs i .. i + 7 to lanes 8 half .. 8 half + 7
    const auto add = [&](std::size_t i, std::uint32_t valid, int half) {
        EightPairs pairs = terms(i, valid);
        if (valid < 8) {
            const __m256i lanes = first_lanes(valid);
            // the low 4 doubles' mask from the low 4 ints, the high ones' from the high 4
            const __m256d low = _mm256_castsi256_pd(
                              _mm256_cvtepi32_epi64(_mm256_castsi256_si128(lanes))),
                          high = _mm256_castsi256_pd(
                              _mm256_cvtepi32_epi64(_mm256_extracti128_si256(lanes, 1)));
            for (EightDoubles* terms_of : {&pairs.first, &pairs.second}) {
                terms_of->low = _mm256_and_pd(terms_of->low, low);
                terms_of->high = _mm256_and_pd(terms_of->high, high);
            }
        }
        first[2 * half] = _mm256_add_pd(first[2 * half], pairs.first.low);
        first[2 * half + 1] = _mm256_add_pd(first[2 * half + 1], pairs.first.high);
        second[2 * half] = _mm256_add_pd(second[2 * half], pairs.second.low);
        second[2 * half + 1] = _mm256_add_pd(second[2 * half + 1], pairs.second.high);
    };
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        add(i, 8, 0);
        add(i + 8, 8, 1);
    }
    if (i < n) {
        const std::uint32_t left = std::uint32_t(n - i);
        add(i, std::min<std::uint32_t>(left, 8), 0);
        add(i + 8, left > 8 ? left - 8 : 0, 1);
    }
    // t_k = (lane_k + lane_k+4) + (lane_k+8 + lane_k+12), then (t_0 + t_2) + (t_1 + t_3)
    const auto tree = [](const __m256d* lanes) {
        const __m256d t =
            _mm256_add_pd(_mm256_add_pd(lanes[0], lanes[1]), _mm256_add_pd(lanes[2], lanes[3]));
        const __m128d halves = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
        return _mm_cvtsd_f64(_mm_add_sd(halves, _mm_unpackhi_pd(halves, halves)));
    };
    return {tree(first), tree(second)};
}

// to[0, n) = v[0, n) for n <= 8, from registers: a masked store is slow on Zen 3, and a store to
// a buffer copied out again stalls on the copy's loads (they straddle the buffer's stores).
inline void store_first(float* to, __m256 v, std::uint32_t n) {
    if (n == 8) return _mm256_storeu_ps(to, v);
    __m128 part = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(to, part);
        to += 4;
        n -= 4;
        part = _mm256_extractf128_ps(v, 1);
    }
    if (n >= 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(to), part);
        to += 2;
        n -= 2;
        part = _mm_movehl_ps(part, part);
    }
    if (n == 1) _mm_store_ss(to, part);
}
inline void store_first(std::uint32_t* to, __m256i v, std::uint32_t n) {
    store_first(reinterpret_cast<float*>(to), _mm256_castsi256_ps(v), n);
}
// to[0, n) = the first n of a's 8 then b's 8, n <= 16
inline void store_first(float* to, __m256 a, __m256 b, std::uint32_t n) {
    store_first(to, a, std::min<std::uint32_t>(n, 8));
    if (n > 8) store_first(to + 8, b, n - 8);
}

}  // namespace

void channel_moments_avx2(const float* x, std::size_t n, double& mean, double& squares) {
    if (n == 0) return moments_from_shifted_sums(0.0, SumPair{}, 0, mean, squares);
    // d = x - x_0, and d^2
    const __m256d shift = _mm256_set1_pd(double(x[0]));
    const SumPair sums = sum_pairs_in_16_lanes_avx2(n, [&](std::size_t i, std::uint32_t valid) {
        const auto [low, high] = to_doubles(load_first(x + i, valid));
        const __m256d d_low = _mm256_sub_pd(low, shift), d_high = _mm256_sub_pd(high, shift);
        return EightPairs{
            {d_low, d_high},
            {rounded(_mm256_mul_pd(d_low, d_low)), rounded(_mm256_mul_pd(d_high, d_high))}};
    });
    moments_from_shifted_sums(double(x[0]), sums, n, mean, squares);
}

void relu_batchnorm_grad_sums_avx2(const float* dy, const float* z, std::size_t n,
                                   const PoolPixel<float>& bn, double& sum_d, double& sum_d_xhat) {
    const __m256 mean = _mm256_set1_ps(bn.mean), inv_std = _mm256_set1_ps(bn.inv_std),
                 gamma = _mm256_set1_ps(bn.gamma), beta = _mm256_set1_ps(bn.beta),
                 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const SumPair sums = sum_pairs_in_16_lanes_avx2(n, [&](std::size_t i, std::uint32_t valid) {
        // xhat = (z - mu) inv_std, and d = dy relu'(gamma xhat + beta)
        const __m256 x_hat = _mm256_mul_ps(_mm256_sub_ps(load_first(z + i, valid), mean), inv_std);
        const __m256 a = _mm256_add_ps(rounded(_mm256_mul_ps(gamma, x_hat)), beta);
        const __m256 d = bn.relu
                             ? _mm256_mul_ps(load_first(dy + i, valid),
                                             _mm256_and_ps(_mm256_cmp_ps(a, zero, _CMP_GT_OQ), one))
                             : load_first(dy + i, valid);
        const auto [d_low, d_high] = to_doubles(d);
        const auto [x_low, x_high] = to_doubles(x_hat);
        return EightPairs{
            {d_low, d_high},
            {rounded(_mm256_mul_pd(d_low, x_low)), rounded(_mm256_mul_pd(d_high, x_high))}};
    });
    sum_d = sums.first;
    sum_d_xhat = sums.second;
}

void relu_batchnorm_input_grad_avx2(const float* dy, const float* z, std::size_t n,
                                    const PoolPixel<float>& bn, float sum_dy, float sum_dy_xhat,
                                    float inv_count, float* dz) {
    const float scale = bn.gamma * bn.inv_std, mean_dy = sum_dy * inv_count;
    const __m256 mean_v = _mm256_set1_ps(bn.mean), inv_std_v = _mm256_set1_ps(bn.inv_std),
                 gamma_v = _mm256_set1_ps(bn.gamma), beta_v = _mm256_set1_ps(bn.beta),
                 scale_v = _mm256_set1_ps(scale), mean_dy_v = _mm256_set1_ps(mean_dy),
                 sum_dy_xhat_v = _mm256_set1_ps(sum_dy_xhat),
                 inv_count_v = _mm256_set1_ps(inv_count), zero = _mm256_setzero_ps(),
                 one = _mm256_set1_ps(1.0f);
    // gamma inv_std (d - mean(dy) - (xhat sum_dy_xhat) inv_count), each product rounded as the
    // generic code rounds it
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x_hat =
            _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), mean_v), inv_std_v);
        const __m256 a = _mm256_add_ps(rounded(_mm256_mul_ps(gamma_v, x_hat)), beta_v);
        const __m256 d = bn.relu
                             ? _mm256_mul_ps(_mm256_loadu_ps(dy + i),
                                             _mm256_and_ps(_mm256_cmp_ps(a, zero, _CMP_GT_OQ), one))
                             : _mm256_loadu_ps(dy + i);
        const __m256 xhat_part =
            rounded(_mm256_mul_ps(_mm256_mul_ps(x_hat, sum_dy_xhat_v), inv_count_v));
        _mm256_storeu_ps(
            dz + i, _mm256_mul_ps(scale_v, _mm256_sub_ps(_mm256_sub_ps(d, mean_dy_v), xhat_part)));
    }
    for (; i < n; ++i) {
        const float x_hat = (z[i] - bn.mean) * bn.inv_std;
        const float d = bn.relu ? dy[i] * float(rounded(bn.gamma * x_hat) + bn.beta > 0.0f) : dy[i];
        dz[i] = scale * (d - mean_dy - rounded(x_hat * sum_dy_xhat * inv_count));
    }
}

void apply_pixel_avx2(const float* x, std::size_t n, const PoolPixel<float>& pixel, float* y) {
    const PixelVector<xsimd::avx2> pixel_vector(pixel);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, pixel_vector(_mm256_loadu_ps(x + i)));
    // the tail as a vector too: the scalar formula compiled here could be contracted into an FMA
    if (i < n) {
        const std::uint32_t left = std::uint32_t(n - i);
        store_first(y + i, pixel_vector(load_first(x + i, left)), left);
    }
}

void max_pool_channel_2x2_avx2(const float* __restrict x, std::uint32_t H, std::uint32_t W,
                               std::uint32_t OH, std::uint32_t OW, const PoolPixel<float>& pixel,
                               float* __restrict y, std::uint32_t* __restrict where,
                               float* __restrict x_at_max) {
    const PixelVector<xsimd::avx2> pixel_vector(pixel);
    // wins = v > current or v is NaN
    const auto beats = [](__m256 v, __m256 current) {
        return _mm256_or_ps(_mm256_cmp_ps(v, current, _CMP_GT_OQ),
                            _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    };
    const auto select_at = [](__m256 wins, __m256i candidate, __m256i current) {
        return _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(current), _mm256_castsi256_ps(candidate), wins));
    };
    // The even and the odd pixels of 16 (a: 0-7, b: 8-15), in the order of outputs
    // 0 1 4 5 2 3 6 7 (each 128-bit half shuffled alone); `in_order` puts the outputs back.
    const auto even = [](__m256 a, __m256 b) { return _mm256_shuffle_ps(a, b, 0x88); };
    const auto odd = [](__m256 a, __m256 b) { return _mm256_shuffle_ps(a, b, 0xdd); };
    const auto in_order = [](__m256 v) {
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xd8));
    };
    const __m256i steps = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
    // Outputs ow .. ow + 7 from their windows' 16 upper and 16 lower pixels (a: 0-7, b: 8-15)
    struct Outputs {
        __m256 value, input;
        __m256i at;
    };
    const auto pool = [&](std::uint32_t top, std::uint32_t ow, __m256 upper_a, __m256 upper_b,
                          __m256 lower_a, __m256 lower_b) {
        const __m256 pixel_upper_a = pixel_vector(upper_a), pixel_upper_b = pixel_vector(upper_b),
                     pixel_lower_a = pixel_vector(lower_a), pixel_lower_b = pixel_vector(lower_b);
        const __m256 v0 = even(pixel_upper_a, pixel_upper_b),
                     v1 = odd(pixel_upper_a, pixel_upper_b);
        const __m256 v2 = even(pixel_lower_a, pixel_lower_b),
                     v3 = odd(pixel_lower_a, pixel_lower_b);
        const __m256i at0 = _mm256_add_epi32(_mm256_set1_epi32(int(top + 2 * ow)), steps);
        const __m256 wins1 = beats(v1, v0);
        __m256 value = _mm256_blendv_ps(v0, v1, wins1);
        __m256i at = select_at(wins1, _mm256_add_epi32(at0, _mm256_set1_epi32(1)), at0);
        __m256 input = _mm256_blendv_ps(even(upper_a, upper_b), odd(upper_a, upper_b), wins1);
        const __m256 wins2 = beats(v2, value);
        value = _mm256_blendv_ps(value, v2, wins2);
        at = select_at(wins2, _mm256_add_epi32(at0, _mm256_set1_epi32(int(W))), at);
        input = _mm256_blendv_ps(input, even(lower_a, lower_b), wins2);
        const __m256 wins3 = beats(v3, value);
        value = _mm256_blendv_ps(value, v3, wins3);
        at = select_at(wins3, _mm256_add_epi32(at0, _mm256_set1_epi32(int(W + 1))), at);
        input = _mm256_blendv_ps(input, odd(lower_a, lower_b), wins3);
        return Outputs{in_order(value), in_order(input),
                       _mm256_castps_si256(in_order(_mm256_castsi256_ps(at)))};
    };
    // Rows of fewer than 8 outputs: masked loads (nothing read past the row's end), stores of the
    // row's outputs alone.
    const __m256i load_a = first_lanes(2 * OW), load_b = first_lanes(2 * OW > 8 ? 2 * OW - 8 : 0);
    for (std::uint32_t oh = 0; oh < OH; ++oh) {
        const std::uint32_t top = 2 * oh * W;
        prefetch_next_channel(x, H * W, top, 2 * W);
        const float *upper = x + top, *lower = x + top + W;
        float* best = y + oh * OW;
        std::uint32_t* best_at = where + oh * OW;
        float* input_at_best = x_at_max ? x_at_max + oh * OW : nullptr;
        const auto whole = [&](std::uint32_t ow) {
            const Outputs out =
                pool(top, ow, _mm256_loadu_ps(upper + 2 * ow), _mm256_loadu_ps(upper + 2 * ow + 8),
                     _mm256_loadu_ps(lower + 2 * ow), _mm256_loadu_ps(lower + 2 * ow + 8));
            _mm256_storeu_ps(best + ow, out.value);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(best_at + ow), out.at);
            if (input_at_best) _mm256_storeu_ps(input_at_best + ow, out.input);
        };
        std::uint32_t ow = 0;
        for (; ow + 8 <= OW; ow += 8)
            whole(ow);
        if (ow == OW) continue;
        // the last outputs: the last eight again (recomputing an output gives the same value)
        if (OW >= 8) {
            whole(OW - 8);
            continue;
        }
        // whole vectors where the 32 pixels read are all inside the channel
        const bool inside = top + W + 16 <= H * W;
        const auto row_part = [&](const float* at, __m256i mask) {
            return inside ? _mm256_loadu_ps(at) : _mm256_maskload_ps(at, mask);
        };
        const Outputs out = pool(top, ow, row_part(upper, load_a), row_part(upper + 8, load_b),
                                 row_part(lower, load_a), row_part(lower + 8, load_b));
        store_first(best, out.value, OW);
        store_first(best_at, out.at, OW);
        if (input_at_best) store_first(input_at_best, out.input, OW);
    }
}

void max_pool_scatter_2x2_avx2(const MaxPoolScatter& s, float* __restrict dz) {
    const std::uint32_t W = s.W, OW = s.OW;
    const ScatterVector<xsimd::avx2> formulas(s);
    const __m256 zero = _mm256_setzero_ps();
    const auto base_scalar = [&](float z) {
        return _mm256_cvtss_f32(formulas.base(_mm256_set1_ps(z)));
    };
    // outputs 0-3 and 4-7 of 8, each twice (the two pixels of its window in a row); and two masks
    // of 8 outputs interleaved the same way
    const auto in_halves = [](__m256 v) {
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xd8));
    };
    const auto is = [](__m256i k, int value) {
        return _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(value)));
    };
    const __m256i twice_lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    // The 16 x 2 pixels of outputs ow .. ow + 7 of output row oh: base + sent where the maximum is
    // (selected, not added: other pixels keep the base's bits).
    struct Pixels {
        __m256 upper_a, upper_b, lower_a, lower_b;
    };
    const auto scatter = [&](std::uint32_t oh, std::uint32_t ow, __m256 dy, __m256 at_max,
                             __m256i where, __m256 z_upper_a, __m256 z_upper_b, __m256 z_lower_a,
                             __m256 z_lower_b) {
        const std::uint32_t top = 2 * oh * W;
        // the maximum's place in its window: 0, 1 (upper row), W, W + 1 (lower row)
        const __m256i k = _mm256_sub_epi32(
            where, _mm256_add_epi32(_mm256_set1_epi32(int(top + 2 * ow)), twice_lanes));
        const __m256 add = in_halves(formulas.sent(dy, at_max));
        const __m256 add_a = _mm256_unpacklo_ps(add, add), add_b = _mm256_unpackhi_ps(add, add);
        const __m256 m0 = in_halves(is(k, 0)), m1 = in_halves(is(k, 1)),
                     m2 = in_halves(is(k, int(W))), m3 = in_halves(is(k, int(W + 1)));
        const auto pixels = [&](__m256 z, __m256 added, __m256 here) {
            const __m256 b = formulas.base(z);
            return _mm256_blendv_ps(b, _mm256_add_ps(b, added), here);
        };
        return Pixels{pixels(z_upper_a, add_a, _mm256_unpacklo_ps(m0, m1)),
                      pixels(z_upper_b, add_b, _mm256_unpackhi_ps(m0, m1)),
                      pixels(z_lower_a, add_a, _mm256_unpacklo_ps(m2, m3)),
                      pixels(z_lower_b, add_b, _mm256_unpackhi_ps(m2, m3))};
    };
    // z at position p of the channel, read only with BatchNorm (without, s.z may be null)
    const auto load = [&](std::uint32_t p) {
        return s.batchnorm ? _mm256_loadu_ps(s.z + p) : zero;
    };
    const auto z_at = [&](std::uint32_t p) { return s.batchnorm ? s.z[p] : 0.0f; };
    const __m256i short_outputs = first_lanes(OW), short_a = first_lanes(2 * OW),
                  short_b = first_lanes(2 * OW > 8 ? 2 * OW - 8 : 0);
    const auto masked = [&](std::uint32_t p, __m256i mask) {
        return s.batchnorm ? _mm256_maskload_ps(s.z + p, mask) : zero;
    };
    for (std::uint32_t oh = 0; oh < s.OH; ++oh) {
        const std::uint32_t top = 2 * oh * W;
        if (s.batchnorm) prefetch_next_channel(s.z, s.H * W, top, 2 * W);
        const float* dy = s.dy + oh * OW;
        const float* at_max = s.at_max + oh * OW;
        const std::uint32_t* where = s.where + oh * OW;
        const auto whole = [&](std::uint32_t ow) {
            const std::uint32_t p = top + 2 * ow;
            const Pixels out =
                scatter(oh, ow, _mm256_loadu_ps(dy + ow), _mm256_loadu_ps(at_max + ow),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(where + ow)), load(p),
                        load(p + 8), load(p + W), load(p + W + 8));
            _mm256_storeu_ps(dz + p, out.upper_a);
            _mm256_storeu_ps(dz + p + 8, out.upper_b);
            _mm256_storeu_ps(dz + p + W, out.lower_a);
            _mm256_storeu_ps(dz + p + W + 8, out.lower_b);
        };
        std::uint32_t ow = 0;
        for (; ow + 8 <= OW; ow += 8)
            whole(ow);
        if (ow < OW && OW >= 8) whole(OW - 8);  // the last eight again: the same values
        if (OW < 8) {
            // whole vectors where all that is read is inside the channel, else masked loads;
            // stores of the row's pixels alone
            const bool outputs_inside = oh * OW + 8 <= s.OH * OW,
                       pixels_inside = top + W + 16 <= s.H * W;
            const auto output_part = [&](const float* at) {
                return outputs_inside ? _mm256_loadu_ps(at) : _mm256_maskload_ps(at, short_outputs);
            };
            const __m256i where_part =
                outputs_inside
                    ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(where))
                    : _mm256_maskload_epi32(reinterpret_cast<const int*>(where), short_outputs);
            const auto pixel_part = [&](std::uint32_t p, __m256i mask) {
                return pixels_inside ? load(p) : masked(p, mask);
            };
            const Pixels out =
                scatter(oh, 0, output_part(dy), output_part(at_max), where_part,
                        pixel_part(top, short_a), pixel_part(top + 8, short_b),
                        pixel_part(top + W, short_a), pixel_part(top + W + 8, short_b));
            store_first(dz + top, out.upper_a, out.upper_b, 2 * OW);
            store_first(dz + top + W, out.lower_a, out.lower_b, 2 * OW);
        }
        // a last column no window reaches (W odd)
        for (std::uint32_t w = 2 * OW; w < W; ++w) {
            dz[top + w] = base_scalar(z_at(top + w));
            dz[top + W + w] = base_scalar(z_at(top + W + w));
        }
    }
    // a last row no window reaches (H odd)
    for (std::uint32_t p = 2 * s.OH * W; p < s.H * W; ++p)
        dz[p] = base_scalar(z_at(p));
}

}  // namespace bnlab
