#pragma once
// A 3x3 convolution with stride 1 and padding 1 (ResNet's and VGG's layer) computed from the
// image itself, without im2col. Through im2col, each sample's input is copied nine times into a
// [C 9, H W] matrix, which OpenBLAS then packs again for a product whose inner dimension is
// only C 9 (144 in ResNet's first stage); here each filter tap is broadcast and multiplied with
// vectors of 8 image values read in place, the sums staying in registers over all C 9 taps.
//
// Images are stored padded: each channel as an (H + 2) x (W + 2) plane with a border of zeros,
// the planes one after another, then direct_conv_slack zeros. On the padded grid, output
// position q = h (W + 2) + w reads input q + kh (W + 2) + kw for tap (kh, kw): one offset per
// tap, so 8 neighbouring outputs read 8 neighbouring inputs. The two positions per row with
// w >= W are computed too, and not stored: the output is an image [O, H, W] without padding.
//
// The kernels are compiled for AVX2 with FMA (framework/direct_conv_avx2.cpp) and for AVX-512
// (direct_conv_avx512.cpp), the widest this CPU runs chosen at run time; they run only on CPUs
// with AVX2 and FMA (direct_conv_available), and Conv2d uses im2col elsewhere.

#include <cstddef>

namespace bnlab {

// The padded layout of [C, H, W] images for the direct kernels.
struct PaddedImage {
    std::size_t height = 0, width = 0;
    std::size_t row() const { return width + 2; }
    std::size_t plane() const { return (height + 2) * row(); }
    // Output positions on the padded grid, h (W + 2) + w for h < H, w < W + 2.
    std::size_t grid() const { return height * row(); }
    // The grid positions direct_conv3x3 computes: grid() rounded up to whole register blocks.
    std::size_t computed_positions() const;
    // Floats of a padded image with `channels` channels, the slack included.
    std::size_t size(std::size_t channels) const;
};

// Zeros after the last plane that the kernels may read (for dropped positions only).
constexpr std::size_t direct_conv_slack = 64;
// Output channels computed together (the filters are packed in blocks of this many), and output
// positions: 4 x 16 sums in 8 AVX2 registers, beside the 2 image vectors and 1 broadcast tap.
constexpr std::size_t direct_conv_block = 4;
constexpr std::size_t direct_conv_positions = 16;
// Output channels of packed filters for `channels` channels (rounded up to whole blocks).
inline std::size_t direct_conv_rows(std::size_t channels) {
    return (channels + direct_conv_block - 1) / direct_conv_block * direct_conv_block;
}
// The smallest map (height x width) direct_conv_preferred takes.
constexpr std::size_t direct_conv_min_positions = 7 * 7;

// Whether this CPU has AVX2 and FMA, which the kernels need.
bool direct_conv_available();
// The instruction set of the kernels direct_conv3x3 runs here (within limit_layer_kernels):
// "avx512", "avx2" or "none".
const char* direct_conv_kernels();
// Whether the kernels measured faster than im2col and OpenBLAS for maps of height x width
// (docs/performance.md: on Zen 3 with AVX2, on a Xeon with AVX-512): for maps of at least
// direct_conv_min_positions positions, on every CPU that runs them.
bool direct_conv_preferred(std::size_t height, std::size_t width);

// padded <- image [C, H, W] with its zero border and slack.
void pad_image(const float* image, std::size_t channels, const PaddedImage& g, float* padded);

// Floats of the packed filters of a convolution with `out_channels` outputs of `in_channels`
// inputs.
std::size_t packed_filters_size(std::size_t out_channels, std::size_t in_channels);
// Conv2d's filters weight [O, C 3 3] (PyTorch's [O, C, 3, 3]) packed in blocks of
// direct_conv_block output channels, tap by tap: packed[(b C 9 + t) 4 + i] = W[4 b + i, t], 0
// past the last channel; packed_filters_size(O, C) floats. Flipped, the filters of the input
// gradient's convolution (C outputs of O inputs) instead, packed_filters_size(C, O) floats:
// W'[c, o, kh, kw] = W[o, c, 2 - kh, 2 - kw].
void pack_filters(const float* weight, std::size_t out_channels, std::size_t in_channels,
                  bool flipped, float* packed);

// image[o, h, w] = bias[o] + sum_{c, kh, kw} W[o, c, kh, kw] x[c, h (W + 2) + w + kh (W + 2) +
// kw] for o < out_channels, h < H, w < W (x padded; bias null: + 0), the image [out_channels, H,
// W]. The kernels compute whole vectors of grid positions and store only those inside the image,
// straight from their registers (through a padded grid and a copy, ResNet-20's step spent 6 % of
// its time copying): nothing before or after the image is written.
void direct_conv3x3(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
                    const float* packed_filters, std::size_t out_channels, const float* bias,
                    float* image);

// The weight gradient reads dy by position: [H W, direct_conv_grad_channels(O)], the output
// channels of a position together (padded with zeros to whole blocks), so that a vector holds
// one position's gradient for several output channels.
constexpr std::size_t direct_conv_grad_channel_block = 16;
inline std::size_t direct_conv_grad_channels(std::size_t out_channels) {
    return (out_channels + direct_conv_grad_channel_block - 1) / direct_conv_grad_channel_block *
           direct_conv_grad_channel_block;
}
// by_position[p direct_conv_grad_channels(O) + o] = dy[o, p] for p < positions, and 0 for the
// padding channels o >= O (their lanes are computed and dropped: zeros keep them on defined
// values).
void order_by_position(const float* dy, std::size_t out_channels, std::size_t positions,
                       float* by_position);

// dW[o, (c 3 + kh) 3 + kw] += sum_{n, h, w} dy_n[o, h, w] x_n[c, h + kh - 1, w + kw - 1] over
// `samples` samples, from their padded inputs (input_stride floats apart) and their output
// gradients ordered by position (order_by_position; grad_stride floats apart). Vectorized over
// output channels: no sum is split over a vector's lanes, so the bits do not depend on the
// instruction set.
void direct_conv3x3_weight_grad(const float* padded_inputs, std::size_t input_stride,
                                std::size_t in_channels, const float* grads_by_position,
                                std::size_t grad_stride, std::size_t out_channels,
                                std::size_t samples, const PaddedImage& g, float* weight_grad);
// Samples the direct backward gives direct_conv3x3_weight_grad at a time.
constexpr std::size_t direct_conv_weight_grad_samples = 4;

// The two kernels of one instruction set, which direct_conv3x3 and direct_conv3x3_weight_grad
// choose between; call them only on a CPU that runs them. Both sets give the same bits: each
// output of conv3x3 is one chain of FMAs over the taps in the same order, and weight_grad's sums
// are lanes of their own.
struct DirectConvKernels {
    const char* name;  // "avx2", "avx512"
    void (*conv3x3)(const float* padded_input, std::size_t in_channels, const PaddedImage& g,
                    const float* packed_filters, std::size_t out_channels, const float* bias,
                    float* image);
    void (*weight_grad)(const float* padded_inputs, std::size_t input_stride,
                        std::size_t in_channels, const float* grads_by_position,
                        std::size_t grad_stride, std::size_t out_channels, std::size_t samples,
                        const PaddedImage& g, float* weight_grad);
};
// direct_conv_avx2.cpp's and direct_conv_avx512.cpp's
const DirectConvKernels& direct_conv_avx2_kernels();
const DirectConvKernels& direct_conv_avx512_kernels();

}  // namespace bnlab
