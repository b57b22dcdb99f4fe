#pragma once
// MaxPool2d (PyTorch's, square windows): each output is the largest value of its window in one
// channel; padding counts as -infinity, so a window's maximum is always one of its pixels:
//   y[c, oh, ow] = max_{kh,kw} x[c, oh s - p + kh, ow s - p + kw]
// Backward sends each output's gradient to the pixel that was the maximum: the first in the
// window on ties, and a NaN wins over anything before it, as in PyTorch's CPU kernel.

#include <cstdint>
#include <optional>

#include "framework/window.hpp"

namespace bnlab {

template <typename T>
class BasicMaxPool2d : public BasicWindowLayer<T> {
  public:
    // stride: the kernel size unless given (PyTorch's stride=None).
    explicit BasicMaxPool2d(std::size_t kernel_size,
                            std::optional<std::size_t> stride = std::nullopt,
                            std::size_t padding = 0);

    // input: [batch, C H W] -> output: [batch, C OH OW]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;
    std::string describe() const override {
        return "MaxPool2d(" + window_string(this->window_) + ")";
    }

  private:
    // For backward: where each output's maximum was, as an index into its sample's row.
    xt::xtensor<std::uint32_t, 2> argmax_;  // [batch, C OH OW]
    Matrix<T> output_;                      // [batch, C OH OW]
    Matrix<T> grad_input_;                  // [batch, C H W]
};

// One channel [H, W] -> [OH, OW] of a sample, with each output's index of its maximum in the
// channel in `where`: what forward does for each channel, and what a fused group
// (layers/conv_block.hpp) does on a channel it has just computed.
template <typename T>
void max_pool_channel(const T* x, const WindowGeometry& g, const Window& w, T* y,
                      std::uint32_t* where);

using MaxPool2d = BasicMaxPool2d<float>;
extern template class BasicMaxPool2d<float>;
extern template class BasicMaxPool2d<double>;

}  // namespace bnlab
