#pragma once
// LayerNorm (Ba, Kiros & Hinton 2016; PyTorch's nn.LayerNorm): each sample is normalized over
// its last dimensions, `normalized_shape` ([F] after a Dense; [C, H, W], [H, W] or [W] for
// images), by the mean and biased variance of those values, in training and eval alike:
//   mu = mean over the normalized values    sigma2 = their biased variance
//   xhat = (x - mu) / sqrt(sigma2 + eps)          y = gamma xhat + beta
// with gamma and beta of normalized_shape, one per element (elementwise affine). The arithmetic
// is layers/normalization.hpp's.

#include "layers/normalization.hpp"

namespace bnlab {

// LayerNormOptions({64, 7, 7}).eps(1e-5).elementwise_affine(true), as libtorch's.
class LayerNormOptions {
  public:
    explicit LayerNormOptions(Shape normalized_shape)
        : normalized_shape_(std::move(normalized_shape)) {}

    LayerNormOptions& eps(double value) {
        eps_ = value;
        return *this;
    }
    // Off: no gamma and beta (y = xhat).
    LayerNormOptions& elementwise_affine(bool value) {
        elementwise_affine_ = value;
        return *this;
    }

    const Shape& normalized_shape() const { return normalized_shape_; }
    double eps() const { return eps_; }
    bool elementwise_affine() const { return elementwise_affine_; }

  private:
    Shape normalized_shape_;
    double eps_ = 1e-5;
    bool elementwise_affine_ = true;
};

template <typename T>
class BasicLayerNorm : public BasicSampleNorm<T> {
  public:
    // Over the last dimension, of `features` values (after a Dense).
    explicit BasicLayerNorm(std::size_t features) : BasicLayerNorm(LayerNormOptions({features})) {}
    explicit BasicLayerNorm(const LayerNormOptions& options);

    // Samples whose last dimensions are normalized_shape.
    std::string input_shape_problem(const Shape& input) const override;
    std::string describe() const override;
    const LayerNormOptions& options() const { return options_; }

  private:
    // One block per sample's normalized values, gamma and beta per element (stride 1).
    typename BasicSampleNorm<T>::Layout layout() const override;

    LayerNormOptions options_;
};

using LayerNorm = BasicLayerNorm<float>;
extern template class BasicLayerNorm<float>;
extern template class BasicLayerNorm<double>;

}  // namespace bnlab
