#pragma once
// Residual networks in the CIFAR layout of He et al. (2016, §4.2), for small images: a 3x3
// convolution, three stages of n BasicBlocks (layers/residual.hpp) with w, 2w, 4w channels
// (stride 2 at the first block of stages 2 and 3: 28 -> 14 -> 7 for Fashion-MNIST), global
// average pooling and a Dense to the classes; depth 6n + 2 (ResNet-20: n = 3, w = 16). Each
// BasicBlock is Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN plus the shortcut, then ReLU. The plain
// twin (He et al.'s "plain" baseline) is the same network without the shortcuts.
//   Sequential model = resnet<float>({1, 28, 28}, ResNetOptions().depth(20), rng);

#include <string>

#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/conv2d.hpp"
#include "models/norm_choice.hpp"

namespace bnlab {

// Options with chained setters; the defaults are ResNet-20 with BatchNorm for 10 classes.
class ResNetOptions {
  public:
    // 6n + 2 layers with weights: 8, 14, 20, 32, 44, 56, …
    ResNetOptions& depth(std::size_t value) { return depth_ = value, *this; }
    // Channels of the first stage (16 in He et al.); the others have 2x and 4x as many.
    ResNetOptions& width(std::size_t value) { return width_ = value, *this; }
    ResNetOptions& classes(std::size_t value) { return classes_ = value, *this; }
    // BatchNorm after every convolution (and in the projections), convolutions without bias;
    // without it, convolutions have a bias.
    ResNetOptions& batchnorm(bool value) { return norm_ = NormChoice(value), *this; }
    // Any normalization in BatchNorm's places (models/norm_choice.hpp): batch by default.
    ResNetOptions& norm(const NormChoice& value) { return norm_ = value, *this; }
    // Shortcuts (a residual network), or none (the plain twin).
    ResNetOptions& residual(bool value) { return residual_ = value, *this; }
    // Convolution weights drawn Kaiming-normal with fan-out, as torchvision's ResNet does
    // (on by default); off keeps Conv2d's own initialization.
    ResNetOptions& kaiming_init(bool value) { return kaiming_init_ = value, *this; }
    // gamma = 0 in each block's last normalization (torchvision's zero_init_residual, Goyal et al.
    // 2017): every block starts as its shortcut.
    ResNetOptions& zero_init_residual(bool value) { return zero_init_residual_ = value, *this; }

    std::size_t depth() const { return depth_; }
    std::size_t width() const { return width_; }
    std::size_t classes() const { return classes_; }
    bool batchnorm() const { return norm_.kind() == NormKind::batch; }
    const NormChoice& norm() const { return norm_; }
    bool residual() const { return residual_; }
    bool kaiming_init() const { return kaiming_init_; }
    bool zero_init_residual() const { return zero_init_residual_; }
    // n, the blocks per stage; throws std::invalid_argument unless depth is 6n + 2, n >= 1.
    std::size_t blocks_per_stage() const;

  private:
    std::size_t depth_ = 20, width_ = 16, classes_ = 10;
    NormChoice norm_;
    bool residual_ = true, kaiming_init_ = true, zero_init_residual_ = false;
};

// Draws `conv`'s weights from N(0, 2 / fan_out), fan_out = out k k (PyTorch's
// kaiming_normal_(mode="fan_out", nonlinearity="relu")), and sets its bias to zero.
template <typename T>
void kaiming_normal_fan_out(BasicConv2d<T>& conv, Rng& rng);

// The network for input samples of shape `input` ([C, H, W]); throws std::invalid_argument for
// a depth that is not 6n + 2, a width of 0 or an input that is not an image.
template <typename T = float>
BasicSequential<T> resnet(const Shape& input, const ResNetOptions& options, Rng& rng);

}  // namespace bnlab
