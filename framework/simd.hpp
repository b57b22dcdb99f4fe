#pragma once
// Element-wise functions the compiler cannot vectorize by itself (exp, tanh), on float arrays,
// with xsimd for the widest instruction set of the CPU that runs them. bnlab builds for plain
// x86-64 (SSE2: 4 floats a vector) so that its binaries run anywhere; the kernels are compiled
// again for AVX2 and AVX-512 in files of their own (layers/simd_avx2.cpp, simd_avx512.cpp) and
// chosen once, at run time, by xsimd::dispatch.

#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace bnlab {

// y[i] = Function::value(x[i]) for i < n, on Arch's vectors. Defined in simd_kernels.hpp, which
// only the files that instantiate it include: GCC instantiates an inline template wherever its
// body is visible, extern template or not, and an AVX-512 body must not land in an SSE2 file.
template <typename Function>
struct ElementwiseKernel {
    template <typename Arch>
    void operator()(Arch, const float* x, float* y, std::size_t n) const;
};

#if defined(__x86_64__)
using SimdArchitectures = xsimd::arch_list<xsimd::avx512f, xsimd::avx2, xsimd::sse2>;
#else
using SimdArchitectures = xsimd::arch_list<xsimd::default_arch>;
#endif

// The kernel for the best architecture this CPU has, chosen on the first call.
template <typename Function>
void apply_elementwise(const float* x, float* y, std::size_t n) {
    // Not const: xsimd 8 declares the call operator non-const, though it changes nothing.
    static auto dispatched = xsimd::dispatch<SimdArchitectures>(ElementwiseKernel<Function>{});
    dispatched(x, y, n);
}

// Whether this CPU runs AVX2, asked once: the layers' hand-written AVX2 kernels
// (layers/simd_avx2.cpp) run only where it does.
inline bool cpu_has_avx2() {
    static const bool avx2 = xsimd::available_architectures().avx2;
    return avx2;
}

// Whether this CPU runs AVX-512 (Foundation), asked once: the layers' hand-written AVX-512 kernels
// (layers/simd_avx512.cpp) run only where it does.
inline bool cpu_has_avx512() {
    static const bool avx512 = xsimd::available_architectures().avx512f;
    return avx512;
}

// How wide the layers' hand-written kernels (layers/simd_avx2.cpp, simd_avx512.cpp, and the
// direct convolution's, framework/direct_conv.hpp, which has no generic kernel and stays on AVX2
// below it) may go: as wide as the CPU runs, unless limit_layer_kernels lowered it. The tests
// lower it to check the generic code (SSE2 and scalar) on machines that would never run it, and
// bench_step --kernels to time a narrower CPU's code paths; every level gives the same bits,
// the narrower ones only slower.
enum class KernelLevel { generic = 0, avx2 = 1, avx512 = 2 };
void limit_layer_kernels(KernelLevel widest);
KernelLevel layer_kernel_limit();
// Whether the layers run their AVX2 (AVX-512) kernels: the CPU has it and the limit allows it.
inline bool layers_use_avx2() {
    return cpu_has_avx2() && layer_kernel_limit() >= KernelLevel::avx2;
}
inline bool layers_use_avx512() {
    return cpu_has_avx512() && layer_kernel_limit() >= KernelLevel::avx512;
}

struct SimdArchitectureName {
    template <typename Arch>
    const char* operator()(Arch) const {
        return Arch::name();
    }
};

// The name of the architecture whose kernels apply_elementwise runs here ("avx512f", "avx2",
// "sse2"). Results are reproducible bit for bit on machines that run the same kernels here and
// in OpenBLAS; nothing promises the same bits across kernels.
inline const char* simd_architecture() {
    static auto dispatched = xsimd::dispatch<SimdArchitectures>(SimdArchitectureName{});
    return dispatched();
}

}  // namespace bnlab
