#pragma once
// AvgPool2d (PyTorch's, square windows, count_include_pad=True): each output is the mean of its
// window in one channel, padding counted as zeros:
//   y[c, oh, ow] = 1/k^2 sum_{kh,kw} x[c, oh s - p + kh, ow s - p + kw]
// GlobalAvgPool2d (PyTorch's AdaptiveAvgPool2d(1)): the mean of each channel over the image,
// [C, H, W] -> [C, 1, 1].

#include <optional>

#include "framework/window.hpp"

namespace bnlab {

template <typename T>
class BasicAvgPool2d : public BasicWindowLayer<T> {
  public:
    // stride: the kernel size unless given (PyTorch's stride=None).
    explicit BasicAvgPool2d(std::size_t kernel_size,
                            std::optional<std::size_t> stride = std::nullopt,
                            std::size_t padding = 0);

    // input: [batch, C H W] -> output: [batch, C OH OW]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;
    std::string describe() const override {
        return "AvgPool2d(" + window_string(this->window_) + ")";
    }

  private:
    Matrix<T> output_;      // [batch, C OH OW]
    Matrix<T> grad_input_;  // [batch, C H W]
};

// One channel [H, W] -> [OH, OW] of a sample: y = 1/k^2 sum over each window (padding adds
// zeros but counts in k^2). What forward does for each channel, and a fused group
// (layers/conv_block.hpp) on a channel it has just computed.
template <typename T>
void avg_pool_channel(const T* x, const WindowGeometry& g, const Window& w, T* y);
// Its backward: dx += dy / k^2 for every pixel of each output's window.
template <typename T>
void avg_pool_channel_backward(const T* dy, const WindowGeometry& g, const Window& w, T* dx);

template <typename T>
class BasicGlobalAvgPool2d : public BasicLayer<T> {
  public:
    // input: [batch, C H W] -> output: [batch, C]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    std::optional<std::size_t> in_features() const override;
    std::optional<std::size_t> out_features() const override;
    std::optional<Shape> input_shape() const override;
    std::optional<Shape> output_shape() const override;
    std::string input_shape_problem(const Shape& input) const override;
    void set_input_shape(const Shape& input) override;
    bool needs_input_shape() const override { return shape_.empty(); }
    std::string describe() const override { return "GlobalAvgPool2d()"; }

  private:
    Shape shape_;  // of one input sample, [C, H, W]; empty until known
    std::size_t batch_ = 0;
    Matrix<T> output_;      // [batch, C]
    Matrix<T> grad_input_;  // [batch, C H W]
};

using AvgPool2d = BasicAvgPool2d<float>;
using GlobalAvgPool2d = BasicGlobalAvgPool2d<float>;
extern template class BasicAvgPool2d<float>;
extern template class BasicAvgPool2d<double>;
extern template class BasicGlobalAvgPool2d<float>;
extern template class BasicGlobalAvgPool2d<double>;

}  // namespace bnlab
