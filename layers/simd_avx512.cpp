// Sigmoid's and Tanh's element-wise kernels for AVX512, in a file of their own compiled with
// -mavx512f -mfma (see CMakeLists.txt); framework/simd.hpp picks them at run time on CPUs that have
// it. This file instantiates nothing but these kernels, so no code built for AVX512 can stand in
// for another file's.
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "framework/simd_kernels.hpp"

namespace bnlab {

template void ElementwiseKernel<SigmoidFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                             const float*, float*,
                                                                             std::size_t) const;
template void ElementwiseKernel<TanhFunction>::operator()<xsimd::avx512f>(xsimd::avx512f,
                                                                          const float*, float*,
                                                                          std::size_t) const;

}  // namespace bnlab
