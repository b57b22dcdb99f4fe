#pragma once
// Dense (PyTorch's Linear): y = x W^T + b.

#include "framework/layer.hpp"
#include "framework/random.hpp"

namespace bnlab {

template <typename T>
class BasicDense : public BasicLayer<T> {
  public:
    // Weights and bias drawn as PyTorch's nn.Linear does (Kaiming-uniform with a = sqrt(5)):
    // U(-1/sqrt(in), 1/sqrt(in)) for both.
    BasicDense(std::size_t in_features, std::size_t out_features, Rng& rng);

    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    std::vector<Parameter<T>> parameters() override;
    std::optional<std::size_t> in_features() const override { return weight_.shape(1); }
    std::optional<std::size_t> out_features() const override { return weight_.shape(0); }
    std::string describe() const override;

    // [out, in], as PyTorch stores it.
    Matrix<T>& weight() { return weight_; }
    Vector<T>& bias() { return bias_; }
    const Matrix<T>& weight_grad() const { return weight_grad_; }
    const Vector<T>& bias_grad() const { return bias_grad_; }

  private:
    Matrix<T> weight_;       // [out, in]
    Vector<T> bias_;         // [out]
    Matrix<T> weight_grad_;  // [out, in]
    Vector<T> bias_grad_;    // [out]

    // [batch, in]: x of the last forward, for dW. A copy, not a reference: the caller's input
    // may be a temporary or change before backward (PyTorch keeps it alive by reference
    // counting, which a plain reference cannot do).
    Matrix<T> input_cache_;
    Matrix<T> output_;      // [batch, out]
    Matrix<T> grad_input_;  // [batch, in]
};

using Dense = BasicDense<float>;
extern template class BasicDense<float>;
extern template class BasicDense<double>;

}  // namespace bnlab
