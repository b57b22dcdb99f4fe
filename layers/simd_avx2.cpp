// Sigmoid's and Tanh's element-wise kernels for AVX2, and BatchNorm's per-sample moments, in a
// file of their own compiled with -mavx2 -mfma (see CMakeLists.txt); framework/simd.hpp and
// layers/batch_norm.cpp pick them at run time on CPUs that have it. This file instantiates nothing
// but these kernels, so no code built for AVX2 can stand in for another file's.
#include <immintrin.h>

#include "layers/batch_norm.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/simd_kernels.hpp"

namespace bnlab {

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                          float*,
                                                                          std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                       float*, std::size_t) const;

namespace {

// The products must be rounded before they are added, as in the SSE2 code: the empty asm keeps
// GCC from contracting a multiply and an add into one FMA (which rounds once).
inline __m256d rounded(__m256d product) {
    asm volatile("" : "+x"(product));
    return product;
}
inline double rounded(double product) {
    asm volatile("" : "+x"(product));
    return product;
}

// sum_{i < n} term(x[i]) with sum_in_lanes's 8 running sums (framework/tensor.hpp): lanes 0-3 and
// 4-7 in two registers, the tail on lane 0, the 8 added in order.
template <typename VectorTerm, typename ScalarTerm>
double sum_in_8_lanes(const float* x, std::size_t n, VectorTerm vector_term,
                      ScalarTerm scalar_term) {
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        low = _mm256_add_pd(low, vector_term(_mm256_cvtps_pd(_mm256_castps256_ps128(v))));
        high = _mm256_add_pd(high, vector_term(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
    }
    alignas(32) double lanes[8];
    _mm256_store_pd(lanes, low);
    _mm256_store_pd(lanes + 4, high);
    for (; i < n; ++i)
        lanes[0] += scalar_term(double(x[i]));
    double sum = 0;
    for (double lane : lanes)
        sum += lane;
    return sum;
}

}  // namespace

void channel_moments_avx2(const float* x, std::size_t n, double& mean, double& squares) {
    mean = sum_in_8_lanes(
               x, n, [](__m256d v) { return v; }, [](double v) { return v; }) /
           double(n);
    const __m256d mean_vector = _mm256_set1_pd(mean);
    squares = sum_in_8_lanes(
        x, n,
        [&](__m256d v) {
            const __m256d centered = _mm256_sub_pd(v, mean_vector);
            return rounded(_mm256_mul_pd(centered, centered));
        },
        [&](double v) { return rounded((v - mean) * (v - mean)); });
}

}  // namespace bnlab
