// The direct 3x3 kernels (framework/direct_conv.hpp) for AVX-512, in a file of their own compiled
// with -mavx512f -mfma (see CMakeLists.txt); direct_conv3x3 and direct_conv3x3_weight_grad pick
// them on CPUs that have AVX-512. This file holds nothing but the two kernels, whose loops are
// framework/direct_conv_kernels.hpp's (internal linkage: no code built for AVX-512 can stand in
// for another file's).
#include "framework/direct_conv_kernels.hpp"

namespace bnlab {
namespace {

void conv3x3(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
             const float* packed_filters, std::size_t out_channels, const float* bias,
             float* image) {
    // 8 output channels x 32 positions: 16 sums in registers. A throwaway program timed other
    // tiles on a 2-core Xeon (family 6, model 167), GFLOP/s from 16 -> 16 on 28 x 28 to 64 -> 64
    // on 7 x 7: AVX2's 4 x 16 72-85; 4 x 32 103-119; 8 x 16 105-123; 8 x 32 123-143; 8 x 48
    // 124-149; 12 x 32 126-137; 4 x 64 116-131.
    conv3x3_tiles<xsimd::avx512f, 2, 2>(padded_input, in_channels, g, packed_filters, out_channels,
                                        bias, image);
}

void weight_grad(const float* padded_inputs, std::size_t input_stride, std::size_t in_channels,
                 const float* grads_by_position, std::size_t grad_stride, std::size_t out_channels,
                 std::size_t samples, const PaddedImage& g, float* weight_grad) {
    // 16 output channels a vector, 4 positions sharing their inputs' broadcasts: 9 sums, 4
    // gradient vectors and a broadcast in registers. In the throwaway program of conv3x3 (1 -> 16
    // to 64 -> 64 channels), 112-150 GFLOP/s; the earlier kernel, vectorized over positions and
    // adding its lanes at the end, 67-92 at its best (8 channels, 3 taps).
    conv3x3_weight_grad<xsimd::avx512f, 4>(padded_inputs, input_stride, in_channels,
                                           grads_by_position, grad_stride, out_channels, samples, g,
                                           weight_grad);
}

}  // namespace

const DirectConvKernels& direct_conv_avx512_kernels() {
    static const DirectConvKernels kernels{"avx512", conv3x3, weight_grad};
    return kernels;
}

}  // namespace bnlab
