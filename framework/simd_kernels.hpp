#pragma once
// The body of ElementwiseKernel (see simd.hpp), for the files that instantiate it: sigmoid.cpp
// and tanh.cpp for SSE2 (or the default architecture), simd_avx2.cpp and simd_avx512.cpp.

#include "framework/simd.hpp"

namespace bnlab {

// The tail goes through one padded vector, so that a kernel compiled for AVX2 or AVX-512 holds
// no scalar code that another file could share.
template <typename Function>
template <typename Arch>
void ElementwiseKernel<Function>::operator()(Arch, const float* x, float* y, std::size_t n) const {
    using Batch = xsimd::batch<float, Arch>;
    std::size_t i = 0;
    for (; i + Batch::size <= n; i += Batch::size)
        Function::value(Batch::load_unaligned(x + i)).store_unaligned(y + i);
    if (i == n) return;
    alignas(64) float tail[Batch::size] = {};
    for (std::size_t j = 0; i + j < n; ++j)
        tail[j] = x[i + j];
    Function::value(Batch::load_aligned(tail)).store_aligned(tail);
    for (std::size_t j = 0; i + j < n; ++j)
        y[i + j] = tail[j];
}

#if defined(__x86_64__)
// For sigmoid.cpp and tanh.cpp, which compile the SSE2 kernels: the wider ones are compiled in
// simd_avx2.cpp and simd_avx512.cpp, and must not be instantiated here.
#define BNLAB_WIDER_KERNELS_ELSEWHERE(Function)                                   \
    extern template void ElementwiseKernel<Function>::operator()<xsimd::avx2>(    \
        xsimd::avx2, const float*, float*, std::size_t) const;                    \
    extern template void ElementwiseKernel<Function>::operator()<xsimd::avx512f>( \
        xsimd::avx512f, const float*, float*, std::size_t) const;
#else
#define BNLAB_WIDER_KERNELS_ELSEWHERE(Function)
#endif

}  // namespace bnlab
