#include "framework/simd.hpp"

#include <atomic>

namespace bnlab {

namespace {
std::atomic<int> layer_kernel_level{int(KernelLevel::avx512)};
}  // namespace

void limit_layer_kernels(KernelLevel widest) {
    layer_kernel_level.store(int(widest), std::memory_order_relaxed);
}

KernelLevel layer_kernel_limit() {
    return KernelLevel(layer_kernel_level.load(std::memory_order_relaxed));
}

}  // namespace bnlab
