// Sigmoid's and Tanh's element-wise kernels for AVX2, in a file of their own compiled with
// -mavx2 -mfma (see CMakeLists.txt); framework/simd.hpp picks them at run time on CPUs that have
// it. This file instantiates nothing but these kernels, so no code built for AVX2 can stand in for
// another file's.
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/simd_kernels.hpp"

namespace bnlab {

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                          float*,
                                                                          std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx2>(xsimd::avx2, const float*,
                                                                       float*, std::size_t) const;

}  // namespace bnlab
