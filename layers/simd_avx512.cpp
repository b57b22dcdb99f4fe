// Sigmoid's and Tanh's element-wise kernels for AVX512, in a file of their own compiled with
// -mavx512f -mfma (see CMakeLists.txt); framework/simd.hpp picks them at run time on CPUs that have
// it. And the fused block's BatchNorm sums (the AVX2 ones of layers/simd_avx2.cpp, 16 lanes in
// two registers instead of four: the same bits). This file instantiates nothing but these kernels,
// so no code built for AVX512 can stand in for another file's.
#include <immintrin.h>

#include "layers/batch_norm.hpp"
#include "layers/conv_block.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/rounded.hpp"
#include "framework/simd_kernels.hpp"

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

// from[0, n) and zeros after, n <= 16: nothing past from + n is read
inline __m512 load_first(const float* from, std::uint32_t n) {
    return n == 16 ? _mm512_loadu_ps(from) : _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), from);
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

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                             const float*, float*,
                                                                             std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                          const float*, float*,
                                                                          std::size_t) const;

}  // namespace bnlab
