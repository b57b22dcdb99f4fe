#include "layers/sigmoid.hpp"

#include "framework/simd_kernels.hpp"

namespace bnlab {

BNLAB_WIDER_KERNELS_ELSEWHERE(SigmoidFunction)
template class BasicActivation<float, SigmoidFunction>;
#if defined(__x86_64__)  // the AVX2 and AVX-512 kernels are in simd_avx2.cpp and simd_avx512.cpp
template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::sse2>(xsimd::sse2, const float*,
                                                                          float*,
                                                                          std::size_t) const;
#else
template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::default_arch>(
    xsimd::default_arch, const float*, float*, std::size_t) const;
#endif
template class BasicActivation<double, SigmoidFunction>;

}  // namespace bnlab
