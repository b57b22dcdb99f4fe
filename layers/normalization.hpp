#pragma once
// What GroupNorm, LayerNorm and InstanceNorm share: each normalizes a sample by statistics of
// its own values, not the batch's (BatchNorm, layers/batch_norm.hpp). A sample of S values is
// cut into consecutive blocks of K values, which are normalized each by their own mean and
// biased variance:
//   mu_b = (1/K) sum_k x_bk    sigma2_b = (1/K) sum_k (x_bk - mu_b)^2
//   xhat = (x - mu_b) / sqrt(sigma2_b + eps)          y = gamma_a xhat + beta_a
// and an affine step whose index a follows the layer: the channel for GroupNorm and
// InstanceNorm (a = (j / P) mod C for value j of a [C, P] sample), the element for LayerNorm
// (a = j mod K). With the batch as [m, C, P] (P = H W positions, 1 for features):
//   GroupNorm(G, C): K = (C / G) P, a block per group;  InstanceNorm2d: K = P, one per channel;
//   LayerNorm(normalized_shape): K = the normalized shape's size (the sample's last dimensions).
// Statistics and the backward sums accumulate in double (PyTorch's CPU kernels use float
// Welford; double loses no more than it must over large offsets).
//
// Backward, with g = dy gamma_a (the gradient at xhat) and the means over each block's K values:
//   dx = 1 / sqrt(sigma2_b + eps) (g - mean(g) - xhat mean(g xhat))
//   dgamma_a = sum dy xhat   dbeta_a = sum dy   (over the batch and every value with index a)
// When a layer normalizes with statistics it keeps (InstanceNorm's running statistics in eval
// mode), they are constants: dx = g / sqrt(running_var + eps).

#include <string>
#include <vector>

#include "framework/layer.hpp"

namespace bnlab {

template <typename T>
class BasicSampleNorm : public BasicLayer<T> {
  public:
    // input: [batch, S] -> output: [batch, S]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    // gamma and beta ([affine count] each) when affine, nothing otherwise.
    std::vector<Parameter<T>> parameters() override;
    std::optional<std::size_t> in_features() const override { return shape_size(shape_); }
    std::optional<std::size_t> out_features() const override { return shape_size(shape_); }
    std::optional<Shape> input_shape() const override { return shape_; }
    std::optional<Shape> output_shape() const override { return shape_; }
    void set_input_shape(const Shape& input) override;

    bool affine() const { return affine_; }
    double eps() const { return eps_; }
    Vector<T>& gamma() { return gamma_; }
    Vector<T>& beta() { return beta_; }
    const Vector<T>& gamma_grad() const { return gamma_grad_; }
    const Vector<T>& beta_grad() const { return beta_grad_; }

  protected:
    // `affine_count` values of gamma (1) and beta (0), trained when `affine`; `shape` is the
    // sample shape the layer takes until set_input_shape gives another.
    BasicSampleNorm(double eps, bool affine, std::size_t affine_count, Shape shape);

    // The cut of a sample of the layer's shape: block size K, and the affine index's stride
    // (a = (j / stride) mod affine_count).
    struct Layout {
        std::size_t block_size = 1;
        std::size_t affine_stride = 1;
    };
    virtual Layout layout() const = 0;

    // Whether this forward normalizes with kept statistics (InstanceNorm's running ones in
    // eval mode) rather than each block's own.
    virtual bool uses_kept_statistics() const { return false; }
    // With kept statistics: block `block` (of `blocks` per sample) gets its mean and
    // 1 / sqrt(var + eps).
    virtual void kept_statistics(std::size_t /*block*/, std::size_t /*blocks*/, T& /*mean*/,
                                 T& /*inv_std*/) const {}
    // After a forward with the blocks' own statistics, in training mode: mean_ and var_ hold
    // [m blocks] values (InstanceNorm updates its running statistics from them).
    virtual void after_block_statistics(std::size_t /*m*/, std::size_t /*blocks*/) {}
    // Throws naming the layer when blocks of K values cannot be normalized by their own
    // statistics.
    virtual void check_block_size(std::size_t /*m*/, std::size_t /*block_size*/) const {}

    const Shape& shape() const { return shape_; }
    // Of the last forward's blocks: [m blocks] each.
    const std::vector<T>& block_means() const { return mean_; }
    const std::vector<T>& block_variances() const { return var_; }

  private:
    double eps_;
    bool affine_;
    Shape shape_;  // of one sample

    Vector<T> gamma_;       // [affine count], 1 (and stays 1 when not affine)
    Vector<T> beta_;        // [affine count], 0 (and stays 0 when not affine)
    Vector<T> gamma_grad_;  // [affine count]
    Vector<T> beta_grad_;   // [affine count]

    // Caches of the last forward, for backward.
    bool kept_ = false;         // normalized with kept statistics (constants in backward)?
    std::vector<T> mean_;       // [m blocks]: mu_b
    std::vector<T> var_;        // [m blocks]: sigma2_b (biased), own statistics only
    std::vector<T> inv_std_;    // [m blocks]: 1 / sqrt(sigma2_b + eps)
    Matrix<T> x_hat_;           // [m, S]
    Matrix<T> output_;          // [m, S]
    Matrix<T> grad_input_;      // [m, S]
    std::vector<double> sums_;  // [2 affine count]: sum dy, sum dy xhat per affine index
};

extern template class BasicSampleNorm<float>;
extern template class BasicSampleNorm<double>;

}  // namespace bnlab
