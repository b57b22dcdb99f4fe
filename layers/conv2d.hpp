#pragma once
// Conv2d (PyTorch's, with square kernels): every output channel o of an image is a learned
// filter slid over all input channels, plus a bias:
//   y[o, oh, ow] = b[o] + sum_{c,kh,kw} W[o, c, kh, kw] x[c, oh s - p + kh, ow s - p + kw]
// (x is zero outside the image). Computed as Caffe, Darknet and PyTorch's CPU fallback do: im2col
// copies each sample's receptive fields into the columns of a [C k k, OH OW] matrix, and one
// sgemm W[O, C k k] . col[C k k, OH OW] gives the sample's output, already the next layer's
// [O, OH, OW] row. A 1x1 stride-1 convolution reads the input as that matrix directly. A 3x3
// stride-1 padding-1 convolution on a large enough map runs framework/direct_conv.hpp's kernels
// instead, on CPUs with AVX2 and FMA (ConvAlgorithm).

#include "framework/blas_threads.hpp"
#include "framework/layer.hpp"
#include "framework/random.hpp"
#include "framework/window.hpp"

namespace bnlab {

// How a Conv2d computes; every way gives the same numbers to float rounding.
enum class ConvAlgorithm {
    // direct where it measured faster than im2col (framework/direct_conv.hpp's
    // direct_conv_preferred), else im2col; the environment variable BNLAB_CONV=im2col or
    // BNLAB_CONV=direct chooses for every automatic layer instead (direct where it can run)
    automatic,
    // im2col and OpenBLAS's sgemm: any convolution
    im2col,
    // framework/direct_conv.hpp's kernels (AVX2 or AVX-512): 3x3, stride 1, padding 1, float, a
    // CPU with AVX2 and FMA
    direct,
};

// Options with chained setters, as libtorch's Conv2dOptions:
// Conv2dOptions(1, 16, 3).stride(1).padding(1).bias(true).
class Conv2dOptions {
  public:
    Conv2dOptions(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size)
        : in_channels_(in_channels), out_channels_(out_channels) {
        window_.kernel = kernel_size;
    }
    Conv2dOptions& stride(std::size_t value) {
        window_.stride = value;
        return *this;
    }
    // Zeros added on every side of the image.
    Conv2dOptions& padding(std::size_t value) {
        window_.padding = value;
        return *this;
    }
    Conv2dOptions& bias(bool value) {
        bias_ = value;
        return *this;
    }
    Conv2dOptions& algorithm(ConvAlgorithm value) {
        algorithm_ = value;
        return *this;
    }

    std::size_t in_channels() const { return in_channels_; }
    std::size_t out_channels() const { return out_channels_; }
    const Window& window() const { return window_; }
    bool bias() const { return bias_; }
    ConvAlgorithm algorithm() const { return algorithm_; }

  private:
    std::size_t in_channels_, out_channels_;
    Window window_;
    bool bias_ = true;
    ConvAlgorithm algorithm_ = ConvAlgorithm::automatic;
};

template <typename T>
class BasicConv2d : public BasicWindowLayer<T> {
  public:
    // Weights [out, in, k, k] and bias drawn as PyTorch's nn.Conv2d does (Kaiming-uniform with
    // a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in k k, for both.
    BasicConv2d(const Conv2dOptions& options, Rng& rng);
    BasicConv2d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size,
                std::size_t stride, std::size_t padding, Rng& rng)
        : BasicConv2d(
              Conv2dOptions(in_channels, out_channels, kernel_size).stride(stride).padding(padding),
              rng) {}

    // input: [batch, C H W] -> output: [batch, O OH OW]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    std::vector<Parameter<T>> parameters() override;
    std::string describe() const override;
    // With a BatchNorm2d (training without synchronization, or eval), then a ReLU, then a
    // MaxPool2d or AvgPool2d or neither, after it: a BasicConvBlock running them as one pass.
    std::unique_ptr<BasicFusedGroup<T>> fuse(const std::vector<BasicLayer<T>*>& next) override;

    // The per-sample passes forward and backward make, for a fused group (layers/conv_block.hpp)
    // to work on each sample while it is in cache. forward_samples computes each sample n's
    // output z [O, OH OW] (into the cache output()), then calls after(part, n, z); the parts run
    // at once on bnlab's threads, part p taking the same samples whenever the batch is the same.
    // Without keep_output, z is written to a scratch of the part's instead, valid during
    // after() only, and output() keeps its shape but no values (backward needs none of them):
    // for a group whose backward needs only its own output, this saves writing the batch's
    // maps to memory and reading them back.
    using AfterSample = FunctionRef<void(int part, std::size_t n, T* z)>;
    const Matrix<T>& forward_samples(const Matrix<T>& input, AfterSample after,
                                     bool keep_output = true);
    // backward of the last forward, each sample's output gradient [O, OH OW] given by
    // grad_of(part, n) just before it is used (it may point into a scratch of the part's).
    using SampleGradient = FunctionRef<const T*(int part, std::size_t n)>;
    const Matrix<T>& backward_samples(SampleGradient grad_of);
    // The output z of the last forward, [batch, O OH OW].
    const Matrix<T>& output() const { return output_; }

    // Whether backward computes the input gradient as the convolution of the output gradient
    // with the filters flipped (a stride-1 convolution as large as its input; backward_samples),
    // one product [C, O k k] . [O k k, OH OW] per sample, instead of W^T dy and col2im.
    bool input_grad_by_convolution() const;
    // Whether forward and backward run framework/direct_conv.hpp's kernels (the options'
    // algorithm, or for automatic BNLAB_CONV and direct_conv_preferred, on the input shape).
    bool runs_direct() const;

    const Conv2dOptions& options() const { return options_; }
    // [out, in k k]: PyTorch's [out, in, k, k], row-major.
    Matrix<T>& weight() { return weight_; }
    Vector<T>& bias() { return bias_; }
    const Matrix<T>& weight_grad() const { return weight_grad_; }
    const Vector<T>& bias_grad() const { return bias_grad_; }

  protected:
    std::optional<std::size_t> input_channels() const override { return options_.in_channels(); }
    std::size_t output_channels() const override { return options_.out_channels(); }

  private:
    // Whether the input is its own column matrix (1x1 kernel, stride 1, no padding).
    bool input_is_columns() const;
    // The direct kernels' passes (T = float only).
    void forward_direct(const Matrix<T>& input, AfterSample after, bool keep_output);
    // Where sample n's output z goes: output() or, without keep_output, the part's scratch.
    T* sample_output(int part, std::size_t n, bool keep_output);
    void backward_direct(SampleGradient grad_of, bool input_grad);
    void ensure_direct_scratch(int parts);
    // Adds each part's share of dW and db (weight_grad_part_) to the gradients, in part order.
    void add_weight_grad_parts(int parts);
    // Rows of the column matrix (C k k) and its columns (OH OW).
    std::size_t column_rows() const { return weight_.shape(1); }

    Conv2dOptions options_;
    // The options' algorithm, or for automatic BNLAB_CONV's (automatic when unset).
    ConvAlgorithm algorithm_;

    Matrix<T> weight_;       // [O, C k k]
    Vector<T> bias_;         // [O] (zeros, never trained, without bias)
    Matrix<T> weight_grad_;  // [O, C k k]
    Vector<T> bias_grad_;    // [O]

    // Caches of the last forward, for backward: each sample's column matrix (the input itself
    // for a 1x1 convolution), [batch, C k k OH OW]; with the direct kernels, each sample padded
    // instead (framework/direct_conv.hpp), [batch, C (H + 2)(W + 2) + slack].
    Matrix<T> columns_;
    Matrix<T> padded_input_;
    Matrix<T> output_;       // [batch, O OH OW]
    Matrix<T> part_output_;  // [threads, O OH OW]: z without keep_output (forward_samples)
    Matrix<T> grad_input_;   // [batch, C H W]
    // The filters flipped, in and out channels swapped, [C, O k k], for the input gradient of a
    // stride-1 convolution as large as its input (backward_samples).
    Matrix<T> flipped_weight_;
    // Per thread: the column gradient of one sample [C k k, OH OW] (or, for the flipped filters,
    // the column matrix of its output gradient [O k k, OH OW]), and that thread's share of
    // dW [O, C k k] and db [O], added up after the parallel part in a fixed order (so that
    // results do not depend on timing).
    Matrix<T> column_grad_;       // [threads, C k k OH OW]
    Matrix<T> weight_grad_part_;  // [threads, O C k k + O]
    // The direct kernels' filters, packed (framework/direct_conv.hpp's pack_filters), for the
    // output and, flipped, for the input gradient; per thread, one output gradient padded
    // [O (H + 2)(W + 2) + slack], and those of direct_conv_weight_grad_samples samples by
    // position [H W, direct_conv_grad_channels(O)] each.
    Matrix<T> packed_weight_, packed_flipped_weight_;  // [1, packed_filters_size]
    Matrix<T> direct_scratch_;                         // [threads, output gradients]
};

using Conv2d = BasicConv2d<float>;
extern template class BasicConv2d<float>;
extern template class BasicConv2d<double>;

}  // namespace bnlab
