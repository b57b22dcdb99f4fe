// One core's peak arithmetic rate: fused multiply-adds on 12 independent vector registers (more
// than the FMA units' latency times their number, so none waits), for AVX2 + FMA and, where the
// CPU has it, AVX-512. This bounds any training step on this CPU: a step that needs F FLOPs per
// sample cannot run more than peak / F samples per second on one thread, whatever its kernels.
//   build/bin/bench_fma_peak
// Prints one JSON line. A benchmark, not a test: nothing here passes or fails.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include <immintrin.h>
#include <nlohmann/json.hpp>

#include "framework/blas_kernels.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr long kIterations = 100'000'000;
constexpr int kRounds = 5;

// x = x m + b on 12 registers of Vector, kIterations times; returns FLOP/s (2 per lane per FMA).
// The empty asm keeps the registers live and in registers, so nothing is folded away.
#define BNLAB_FMA_LOOP(Vector, set1, fmadd, lanes)                                                 \
    Vector m = set1(0.9999f), b = set1(1e-7f);                                                     \
    Vector a0 = set1(1.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, \
           a9 = a0, a10 = a0, a11 = a0;                                                            \
    const auto start = Clock::now();                                                               \
    for (long i = 0; i < kIterations; ++i) {                                                       \
        a0 = fmadd(a0, m, b), a1 = fmadd(a1, m, b), a2 = fmadd(a2, m, b);                          \
        a3 = fmadd(a3, m, b), a4 = fmadd(a4, m, b), a5 = fmadd(a5, m, b);                          \
        a6 = fmadd(a6, m, b), a7 = fmadd(a7, m, b), a8 = fmadd(a8, m, b);                          \
        a9 = fmadd(a9, m, b), a10 = fmadd(a10, m, b), a11 = fmadd(a11, m, b);                      \
        asm volatile(""                                                                            \
                     : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),       \
                       "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));                        \
    }                                                                                              \
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();            \
    return double(kIterations) * 12 * 2 * lanes / seconds;

__attribute__((target("avx2,fma"))) double avx2_fma_flops() {
    BNLAB_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)
}

__attribute__((target("avx512f"))) double avx512_flops() {
    BNLAB_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
}

#undef BNLAB_FMA_LOOP

// The best of kRounds rounds, in GFLOP/s.
template <typename Measure>
double best_gflops(Measure measure) {
    double best = 0;
    for (int round = 0; round < kRounds; ++round)
        best = std::max(best, measure() / 1e9);
    return best;
}

}  // namespace

int main() {
    const bnlab::CpuInfo& cpu = bnlab::cpu_info();
    nlohmann::json line{{"bench", "fma_peak"}, {"cpu", cpu.describe()}, {"threads", 1}};
    if (cpu.avx2_fma) line["avx2_fma_gflops"] = best_gflops(avx2_fma_flops);
    if (cpu.avx512) line["avx512_gflops"] = best_gflops(avx512_flops);
    std::printf("%s\n", line.dump().c_str());
    return 0;
}
