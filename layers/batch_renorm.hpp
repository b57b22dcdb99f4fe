#pragma once
// Batch Renormalization (Ioffe 2017): BatchNorm whose training-mode output does not depend on
// the batch's statistics alone, for small or non-i.i.d. batches. With the batch's mu_B and
// sigma_B = sqrt(sigma2_B + eps), and the running statistics' mu and sigma = sqrt(running_var +
// eps), per channel:
//   r = clip(sigma_B / sigma, 1/rmax, rmax)      d = clip((mu_B - mu) / sigma, -dmax, dmax)
//   xhat = (x - mu_B) / sigma_B * r + d           y = gamma xhat + beta
// r and d are constants in backward (the paper's stop_gradient). Then the running statistics
// move toward the batch's, as BatchNorm's (PyTorch's convention: momentum 0.1, unbiased
// variance). Eval mode is BatchNorm's: it normalizes with the running statistics, and folds like
// a BatchNorm. The paper's schedule: rmax = 1 and dmax = 0 (plain BatchNorm) for the first
// `warmup_steps` training batches, then relaxed linearly to rmax at `rmax_steps` and to dmax at
// `dmax_steps` (5,000, 40,000 and 25,000 in the paper, whose rmax is 3 and dmax 5).
//
// It is a BasicBatchNorm that changes what the batch's statistics do (its hooks), so everything
// else is BatchNorm's: 1-D and spatial inputs, statistics in double, synchronized statistics
// over processes (--sync-bn), checkpoints' counters, the batch-of-1 error.

#include "layers/batch_norm.hpp"

namespace bnlab {

class BatchRenormOptions {
  public:
    explicit BatchRenormOptions(std::size_t num_features) : batchnorm_(num_features) {}

    // eps, momentum and affine, as BatchNorm's.
    BatchRenormOptions& eps(double value) {
        batchnorm_.eps(value);
        return *this;
    }
    BatchRenormOptions& momentum(double value) {
        batchnorm_.momentum(value);
        return *this;
    }
    BatchRenormOptions& affine(bool value) {
        batchnorm_.affine(value);
        return *this;
    }
    // The bounds after the relaxation: r in [1/rmax, rmax], d in [-dmax, dmax].
    BatchRenormOptions& rmax(double value) {
        rmax_ = value;
        return *this;
    }
    BatchRenormOptions& dmax(double value) {
        dmax_ = value;
        return *this;
    }
    // Training batches with rmax = 1 and dmax = 0, and the batches by which each bound has
    // reached its value.
    BatchRenormOptions& warmup_steps(std::int64_t value) {
        warmup_steps_ = value;
        return *this;
    }
    BatchRenormOptions& rmax_steps(std::int64_t value) {
        rmax_steps_ = value;
        return *this;
    }
    BatchRenormOptions& dmax_steps(std::int64_t value) {
        dmax_steps_ = value;
        return *this;
    }

    const BatchNormOptions& batchnorm() const { return batchnorm_; }
    double rmax() const { return rmax_; }
    double dmax() const { return dmax_; }
    std::int64_t warmup_steps() const { return warmup_steps_; }
    std::int64_t rmax_steps() const { return rmax_steps_; }
    std::int64_t dmax_steps() const { return dmax_steps_; }

  private:
    BatchNormOptions batchnorm_;
    double rmax_ = 3.0;
    double dmax_ = 5.0;
    std::int64_t warmup_steps_ = 5000;
    std::int64_t rmax_steps_ = 40000;
    std::int64_t dmax_steps_ = 25000;
};

template <typename T>
class BasicBatchRenorm : public BasicBatchNorm<T> {
  public:
    explicit BasicBatchRenorm(std::size_t num_features)
        : BasicBatchRenorm(BatchRenormOptions(num_features)) {}
    explicit BasicBatchRenorm(const BatchRenormOptions& options);

    std::string describe() const override;
    bool fusable() const override { return false; }
    const BatchRenormOptions& renorm_options() const { return renorm_options_; }
    // The bounds for training batch `step` (0 for the first).
    double rmax_at(std::int64_t step) const;
    double dmax_at(std::int64_t step) const;
    // r and d of the last training-mode forward, per channel.
    const Vector<T>& r() const { return r_; }
    const Vector<T>& d() const { return d_; }

  private:
    void before_running_update(std::size_t c) override;
    void after_running_update(std::size_t c) override;
    void adjust_input_gradient_sums(T* sum_dy, T* sum_dy_xhat) override;

    BatchRenormOptions renorm_options_;
    Vector<T> r_;  // [n]
    Vector<T> d_;  // [n]
};

using BatchRenorm = BasicBatchRenorm<float>;
extern template class BasicBatchRenorm<float>;
extern template class BasicBatchRenorm<double>;

}  // namespace bnlab
