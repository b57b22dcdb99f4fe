// Sigmoid's and Tanh's element-wise kernels for AVX512, in a file of their own compiled with
// -mavx512f -mfma (see CMakeLists.txt); framework/simd.hpp picks them at run time on CPUs that have
// it. And the fused block's BatchNorm sums (the AVX2 ones of layers/simd_avx2.cpp, 16 lanes in
// two registers instead of four: the same bits). This file instantiates nothing but these kernels,
// so no code built for AVX512 can stand in for another file's.
#include <immintrin.h>

#include "layers/batch_norm.hpp"
#include "layers/conv_block.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/rounded.hpp"
#include "framework/simd_kernels.hpp"
#include "layers/pool_simd.hpp"

namespace bnlab {

namespace {

// 16 doubles as two vectors: 0-7 and 8-15
struct SixteenDoubles {
    __m512d low, high;
};

inline SixteenDoubles to_doubles(__m512 v) {
    return {_mm512_cvtps_pd(_mm512_castps512_ps256(v)),
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))};
}

// The first n of 16 lanes (n <= 16), and the first n of 32 as two halves
inline __mmask16 first_lanes(std::uint32_t n) {
    return __mmask16(n >= 16 ? 0xffffu : (1u << n) - 1u);
}
inline __mmask16 second_lanes(std::uint32_t n) {
    return first_lanes(n > 16 ? n - 16 : 0);
}

// from[0, n) and zeros after, n <= 16: nothing past from + n is read
inline __m512 load_first(const float* from, std::uint32_t n) {
    return n == 16 ? _mm512_loadu_ps(from) : _mm512_maskz_loadu_ps(first_lanes(n), from);
}

// The terms of two sums at 16 consecutive indices
struct SixteenPairs {
    SixteenDoubles first, second;
};

// sum_pairs_in_16_lanes on AVX-512, the bits of the generic and the AVX2 code: lanes 0-7 and
// 8-15 of each sum in two registers, the last partial block's terms past n replaced by zeros,
// then the same tree. terms(i, valid) gives the pairs i .. i + 15, reading values only at
// i .. i + valid - 1 (valid <= 16).
template <typename Terms>
SumPair sum_pairs_in_16_lanes_avx512(std::size_t n, Terms terms) {
    const __m512d zero = _mm512_setzero_pd();
    __m512d first[2] = {zero, zero}, second[2] = {zero, zero};
    const auto add = [&](std::size_t i, std::uint32_t valid) {
        SixteenPairs pairs = terms(i, valid);
        if (valid < 16) {
            const __mmask8 low = __mmask8(valid >= 8 ? 0xffu : (1u << valid) - 1u),
                           high = __mmask8(valid <= 8 ? 0u : (1u << (valid - 8)) - 1u);
            for (SixteenDoubles* terms_of : {&pairs.first, &pairs.second}) {
                terms_of->low = _mm512_maskz_mov_pd(low, terms_of->low);
                terms_of->high = _mm512_maskz_mov_pd(high, terms_of->high);
            }
        }
        first[0] = _mm512_add_pd(first[0], pairs.first.low);
        first[1] = _mm512_add_pd(first[1], pairs.first.high);
        second[0] = _mm512_add_pd(second[0], pairs.second.low);
        second[1] = _mm512_add_pd(second[1], pairs.second.high);
    };
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16)
        add(i, 16);
    if (i < n) add(i, std::uint32_t(n - i));
    // t_k = (lane_k + lane_k+4) + (lane_k+8 + lane_k+12), then (t_0 + t_2) + (t_1 + t_3)
    const auto tree = [](const __m512d* lanes) {
        const auto halves_added = [](__m512d v) {
            return _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
        };
        const __m256d t = _mm256_add_pd(halves_added(lanes[0]), halves_added(lanes[1]));
        const __m128d halves = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
        return _mm_cvtsd_f64(_mm_add_sd(halves, _mm_unpackhi_pd(halves, halves)));
    };
    return {tree(first), tree(second)};
}

}  // namespace

void channel_moments_avx512(const float* x, std::size_t n, double& mean, double& squares) {
    if (n == 0) return moments_from_shifted_sums(0.0, SumPair{}, 0, mean, squares);
    // d = x - x_0, and d^2
    const __m512d shift = _mm512_set1_pd(double(x[0]));
    const SumPair sums = sum_pairs_in_16_lanes_avx512(n, [&](std::size_t i, std::uint32_t valid) {
        const auto [low, high] = to_doubles(load_first(x + i, valid));
        const __m512d d_low = _mm512_sub_pd(low, shift), d_high = _mm512_sub_pd(high, shift);
        return SixteenPairs{
            {d_low, d_high},
            {rounded(_mm512_mul_pd(d_low, d_low)), rounded(_mm512_mul_pd(d_high, d_high))}};
    });
    moments_from_shifted_sums(double(x[0]), sums, n, mean, squares);
}

void relu_batchnorm_grad_sums_avx512(const float* dy, const float* z, std::size_t n,
                                     const PoolPixel<float>& bn, double& sum_d,
                                     double& sum_d_xhat) {
    const __m512 mean = _mm512_set1_ps(bn.mean), inv_std = _mm512_set1_ps(bn.inv_std),
                 gamma = _mm512_set1_ps(bn.gamma), beta = _mm512_set1_ps(bn.beta),
                 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const SumPair sums = sum_pairs_in_16_lanes_avx512(n, [&](std::size_t i, std::uint32_t valid) {
        // xhat = (z - mu) inv_std, and d = dy relu'(gamma xhat + beta)
        const __m512 x_hat = _mm512_mul_ps(_mm512_sub_ps(load_first(z + i, valid), mean), inv_std);
        const __m512 a = _mm512_add_ps(rounded(_mm512_mul_ps(gamma, x_hat)), beta);
        const __m512 d =
            bn.relu
                ? _mm512_mul_ps(load_first(dy + i, valid),
                                _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, zero, _CMP_GT_OQ), one))
                : load_first(dy + i, valid);
        const auto [d_low, d_high] = to_doubles(d);
        const auto [x_low, x_high] = to_doubles(x_hat);
        return SixteenPairs{
            {d_low, d_high},
            {rounded(_mm512_mul_pd(d_low, x_low)), rounded(_mm512_mul_pd(d_high, x_high))}};
    });
    sum_d = sums.first;
    sum_d_xhat = sums.second;
}

namespace {

// The even and the odd of 32 floats (a: 0-15, b: 16-31), in order
inline __m512 even(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
}
inline __m512 odd(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
}

}  // namespace

void max_pool_channel_2x2_avx512(const float* __restrict x, std::uint32_t H, std::uint32_t W,
                                 std::uint32_t OH, std::uint32_t OW, const PoolPixel<float>& pixel,
                                 float* __restrict y, std::uint32_t* __restrict where,
                                 float* __restrict x_at_max) {
    const PixelVector<xsimd::avx512f> pixel_vector(pixel);
    // wins = v > current or v is NaN
    const auto beats = [](__m512 v, __m512 current) {
        return __mmask16(_mm512_cmp_ps_mask(v, current, _CMP_GT_OQ) |
                         _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
    };
    const __m512i steps =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // Outputs ow .. ow + 15 of the output row whose window rows start at `top`, from their
    // windows' 32 upper and 32 lower pixels (a: 0-15, b: 16-31); the first `n` stored.
    const auto pool = [&](std::uint32_t top, std::uint32_t ow, __m512 upper_a, __m512 upper_b,
                          __m512 lower_a, __m512 lower_b, __mmask16 n, float* best,
                          std::uint32_t* best_at, float* input_at_best) {
        const __m512 pixel_upper_a = pixel_vector(upper_a), pixel_upper_b = pixel_vector(upper_b),
                     pixel_lower_a = pixel_vector(lower_a), pixel_lower_b = pixel_vector(lower_b);
        const __m512 v0 = even(pixel_upper_a, pixel_upper_b),
                     v1 = odd(pixel_upper_a, pixel_upper_b);
        const __m512 v2 = even(pixel_lower_a, pixel_lower_b),
                     v3 = odd(pixel_lower_a, pixel_lower_b);
        const __m512i at0 = _mm512_add_epi32(_mm512_set1_epi32(int(top + 2 * ow)), steps);
        const __mmask16 wins1 = beats(v1, v0);
        __m512 value = _mm512_mask_mov_ps(v0, wins1, v1);
        __m512i at = _mm512_mask_add_epi32(at0, wins1, at0, _mm512_set1_epi32(1));
        const __mmask16 wins2 = beats(v2, value);
        value = _mm512_mask_mov_ps(value, wins2, v2);
        at = _mm512_mask_add_epi32(at, wins2, at0, _mm512_set1_epi32(int(W)));
        const __mmask16 wins3 = beats(v3, value);
        value = _mm512_mask_mov_ps(value, wins3, v3);
        at = _mm512_mask_add_epi32(at, wins3, at0, _mm512_set1_epi32(int(W + 1)));
        _mm512_mask_storeu_ps(best + ow, n, value);
        _mm512_mask_storeu_epi32(best_at + ow, n, at);
        if (!input_at_best) return;
        __m512 input = _mm512_mask_mov_ps(even(upper_a, upper_b), wins1, odd(upper_a, upper_b));
        input = _mm512_mask_mov_ps(input, wins2, even(lower_a, lower_b));
        input = _mm512_mask_mov_ps(input, wins3, odd(lower_a, lower_b));
        _mm512_mask_storeu_ps(input_at_best + ow, n, input);
    };
    // Rows of fewer than 16 outputs: masked loads (nothing read past the row's end) and stores.
    const __mmask16 all = 0xffff, outputs = first_lanes(OW), load_a = first_lanes(2 * OW),
                    load_b = second_lanes(2 * OW);
    for (std::uint32_t oh = 0; oh < OH; ++oh) {
        const std::uint32_t top = 2 * oh * W;
        prefetch_next_channel(x, H * W, top, 2 * W);
        const float *upper = x + top, *lower = x + top + W;
        float* best = y + oh * OW;
        std::uint32_t* best_at = where + oh * OW;
        float* input_at_best = x_at_max ? x_at_max + oh * OW : nullptr;
        if (OW < 16) {
            pool(top, 0, _mm512_maskz_loadu_ps(load_a, upper),
                 _mm512_maskz_loadu_ps(load_b, upper + 16), _mm512_maskz_loadu_ps(load_a, lower),
                 _mm512_maskz_loadu_ps(load_b, lower + 16), outputs, best, best_at, input_at_best);
            continue;
        }
        const auto whole = [&](std::uint32_t ow) {
            pool(top, ow, _mm512_loadu_ps(upper + 2 * ow), _mm512_loadu_ps(upper + 2 * ow + 16),
                 _mm512_loadu_ps(lower + 2 * ow), _mm512_loadu_ps(lower + 2 * ow + 16), all, best,
                 best_at, input_at_best);
        };
        std::uint32_t ow = 0;
        for (; ow + 16 <= OW; ow += 16)
            whole(ow);
        // the last outputs: the last sixteen again (recomputing an output gives the same value)
        if (ow < OW) whole(OW - 16);
    }
}

void max_pool_scatter_2x2_avx512(const MaxPoolScatter& s, float* __restrict dz) {
    const std::uint32_t W = s.W, OW = s.OW;
    const ScatterVector<xsimd::avx512f> formulas(s);
    const __m512 zero = _mm512_setzero_ps();
    // outputs 0-7 and 8-15, each twice (the two pixels of its window in a row)
    const __m512i twice_low = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                  twice_high =
                      _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    // the maximum's place in its window (0, 1: upper row; W, W + 1: lower row) at each pixel
    const __m512i upper_places = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
                  lower_places = _mm512_add_epi32(upper_places, _mm512_set1_epi32(int(W)));
    const __m512i steps =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // z at 16 pixels from p, the first n (read with BatchNorm only: without, s.z may be null)
    const auto load = [&](std::uint32_t p, __mmask16 n) {
        return s.batchnorm ? _mm512_maskz_loadu_ps(n, s.z + p) : zero;
    };
    // The 32 x 2 pixels of outputs ow .. ow + count - 1 of output row oh (count <= 16): base +
    // sent where the maximum is (added only there: other pixels keep the base's bits).
    const auto scatter = [&](std::uint32_t oh, std::uint32_t ow, std::uint32_t count) {
        const std::uint32_t top = 2 * oh * W, p = top + 2 * ow, j = oh * OW + ow;
        const __mmask16 n = first_lanes(count), a = first_lanes(2 * count),
                        b = second_lanes(2 * count);
        const __m512 dy = _mm512_maskz_loadu_ps(n, s.dy + j),
                     at_max = _mm512_maskz_loadu_ps(n, s.at_max + j);
        const __m512i k = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(n, s.where + j),
                                           _mm512_add_epi32(_mm512_set1_epi32(int(p)), steps));
        const __m512 add = formulas.sent(dy, at_max);
        const __m512 add_a = _mm512_permutexvar_ps(twice_low, add),
                     add_b = _mm512_permutexvar_ps(twice_high, add);
        const __m512i k_a = _mm512_permutexvar_epi32(twice_low, k),
                      k_b = _mm512_permutexvar_epi32(twice_high, k);
        const auto pixels = [&](std::uint32_t at, __mmask16 valid, __m512 added, __m512i place,
                                __m512i places) {
            const __m512 b = formulas.base(load(at, valid));
            _mm512_mask_storeu_ps(
                dz + at, valid,
                _mm512_mask_add_ps(b, _mm512_cmpeq_epi32_mask(place, places), b, added));
        };
        pixels(p, a, add_a, k_a, upper_places);
        pixels(p + W, a, add_a, k_a, lower_places);
        if (count <= 8) return;  // (the 7 outputs of a 14 x 14 map's rows)
        pixels(p + 16, b, add_b, k_b, upper_places);
        pixels(p + W + 16, b, add_b, k_b, lower_places);
    };
    const auto base_scalar = [&](std::uint32_t p) {
        return _mm512_cvtss_f32(formulas.base(load(p, 1)));
    };
    for (std::uint32_t oh = 0; oh < s.OH; ++oh) {
        const std::uint32_t top = 2 * oh * W;
        if (s.batchnorm) prefetch_next_channel(s.z, s.H * W, top, 2 * W);
        if (OW < 16) {
            scatter(oh, 0, OW);
        } else {
            std::uint32_t ow = 0;
            for (; ow + 16 <= OW; ow += 16)
                scatter(oh, ow, 16);
            if (ow < OW) scatter(oh, OW - 16, 16);  // the last sixteen again: the same values
        }
        // a last column no window reaches (W odd)
        for (std::uint32_t w = 2 * OW; w < W; ++w) {
            dz[top + w] = base_scalar(top + w);
            dz[top + W + w] = base_scalar(top + W + w);
        }
    }
    // a last row no window reaches (H odd)
    for (std::uint32_t p = 2 * s.OH * W; p < s.H * W; ++p)
        dz[p] = base_scalar(p);
}

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                             const float*, float*,
                                                                             std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                          const float*, float*,
                                                                          std::size_t) const;

}  // namespace bnlab
