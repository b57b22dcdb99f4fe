#include "layers/dense.hpp"

#include <cmath>
#include <stdexcept>

namespace bnlab {

namespace {

std::string dense_name(std::size_t in_features, std::size_t out_features) {
    return "Dense(" + std::to_string(in_features) + " -> " + std::to_string(out_features) + ")";
}

}  // namespace

template <typename T>
BasicDense<T>::BasicDense(std::size_t in_features, std::size_t out_features, Rng& rng)
    : weight_(allocate_tensor<T, 2>({out_features, in_features},
                                    dense_name(in_features, out_features) + "'s weight", false)),
      bias_(xt::empty<T>({out_features})),
      weight_grad_(
          allocate_tensor<T, 2>({out_features, in_features},
                                dense_name(in_features, out_features) + "'s weight gradient")),
      bias_grad_(xt::zeros<T>({out_features})) {
    if (in_features == 0 || out_features == 0)
        throw std::invalid_argument("Dense: widths must be positive, got " +
                                    std::to_string(in_features) + " -> " +
                                    std::to_string(out_features));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    for (T& w : weight_)
        w = static_cast<T>(rng.uniform(-bound, bound));
    for (T& b : bias_)
        b = static_cast<T>(rng.uniform(-bound, bound));
}

template <typename T>
const Matrix<T>& BasicDense<T>::forward(const Matrix<T>& input) {
    this->check_input_width(input);
    const std::size_t batch = input.shape(0), out = weight_.shape(0);
    copy_into(input_cache_, input);
    ensure_shape(output_, batch, out);
    // y = b (broadcast over rows), then y += x W^T
    for (std::size_t i = 0; i < batch; ++i)
        std::copy_n(bias_.data(), out, output_.data() + i * out);
    gemm(input, false, weight_, true, output_, T(1), T(1));
    return output_;
}

template <typename T>
const Matrix<T>& BasicDense<T>::backward(const Matrix<T>& grad_output) {
    const std::size_t batch = input_cache_.shape(0), out = weight_.shape(0);
    this->check_grad_output(grad_output, batch, out);
    // dW += dy^T x
    gemm(grad_output, true, input_cache_, false, weight_grad_, T(1), T(1));
    // db += sum_i dy_i
    T* __restrict db = bias_grad_.data();
    for (std::size_t i = 0; i < batch; ++i) {
        const T* __restrict dy = grad_output.data() + i * out;
        for (std::size_t j = 0; j < out; ++j)
            db[j] += dy[j];
    }
    if (!this->input_grad_needed_) return this->no_input_grad();
    // dx = dy W
    ensure_shape(grad_input_, batch, weight_.shape(1));
    gemm(grad_output, false, weight_, false, grad_input_);
    return grad_input_;
}

template <typename T>
std::vector<Parameter<T>> BasicDense<T>::parameters() {
    return {{"weight", weight_.data(), weight_grad_.data(), weight_.size()},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size()}};
}

template <typename T>
std::string BasicDense<T>::describe() const {
    return "Dense(" + std::to_string(weight_.shape(1)) + " -> " + std::to_string(weight_.shape(0)) +
           ")";
}

template class BasicDense<float>;
template class BasicDense<double>;

}  // namespace bnlab
