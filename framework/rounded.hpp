#pragma once
// rounded(product): a product rounded before it is added, in the hand-written AVX2 and AVX-512
// kernels (layers/simd_avx2.cpp, simd_avx512.cpp) whose formulas must give the generic code's
// bits. Compiled with -mfma, GCC would contract a multiply and an add into one FMA, which rounds
// once; the empty asm hides the product from it. Internal linkage: each file compiled for its
// own instruction set keeps its own copy.

namespace bnlab {
namespace {

// Any SSE/AVX/AVX-512 value (float, double or a vector of them) in a vector register
template <typename Value>
inline Value rounded(Value product) {
    asm volatile("" : "+v"(product));
    return product;
}

}  // namespace
}  // namespace bnlab
