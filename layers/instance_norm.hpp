#pragma once
// InstanceNorm2d (Ulyanov, Vedaldi & Lempitsky 2016; PyTorch's nn.InstanceNorm2d): each channel
// of each [C, H, W] sample is normalized by the mean and biased variance of its own H W values:
//   mu_ic = mean over the channel's positions    sigma2_ic = their biased variance
//   xhat = (x - mu_ic) / sqrt(sigma2_ic + eps)          y = gamma_c xhat + beta_c
// PyTorch's defaults: no affine step and no running statistics, so that eval mode normalizes
// as training does. With track_running_stats, training also moves running statistics toward
// the batch's average of the instances' means and unbiased variances, as PyTorch does,
//   running_mean_c = (1 - momentum) running_mean_c + momentum mean_i(mu_ic)
//   running_var_c  = (1 - momentum) running_var_c  + momentum mean_i(sigma2_ic HW / (HW - 1))
// and eval mode normalizes with them. The arithmetic is layers/normalization.hpp's.

#include "layers/normalization.hpp"

namespace bnlab {

// InstanceNormOptions(16).eps(1e-5).momentum(0.1).affine(false).track_running_stats(false),
// as libtorch's InstanceNormOptions.
class InstanceNormOptions {
  public:
    explicit InstanceNormOptions(std::size_t num_features) : num_features_(num_features) {}

    InstanceNormOptions& eps(double value) {
        eps_ = value;
        return *this;
    }
    InstanceNormOptions& momentum(double value) {
        momentum_ = value;
        return *this;
    }
    InstanceNormOptions& affine(bool value) {
        affine_ = value;
        return *this;
    }
    InstanceNormOptions& track_running_stats(bool value) {
        track_running_stats_ = value;
        return *this;
    }

    std::size_t num_features() const { return num_features_; }
    double eps() const { return eps_; }
    double momentum() const { return momentum_; }
    bool affine() const { return affine_; }
    bool track_running_stats() const { return track_running_stats_; }

  private:
    std::size_t num_features_;
    double eps_ = 1e-5;
    double momentum_ = 0.1;
    bool affine_ = false;
    bool track_running_stats_ = false;
};

template <typename T>
class BasicInstanceNorm2d : public BasicSampleNorm<T> {
  public:
    explicit BasicInstanceNorm2d(std::size_t num_features)
        : BasicInstanceNorm2d(InstanceNormOptions(num_features)) {}
    explicit BasicInstanceNorm2d(const InstanceNormOptions& options);

    // running_mean and running_var with track_running_stats, nothing otherwise.
    std::vector<Buffer<T>> buffers() override;
    // [C, H, W] (any number of positions after C).
    std::string input_shape_problem(const Shape& input) const override;
    std::string describe() const override;
    const InstanceNormOptions& options() const { return options_; }
    Vector<T>& running_mean() { return running_mean_; }
    Vector<T>& running_var() { return running_var_; }

  private:
    // A block per channel: K = H W values, gamma and beta per channel (stride H W).
    typename BasicSampleNorm<T>::Layout layout() const override;
    // Eval mode with running statistics.
    bool uses_kept_statistics() const override;
    void kept_statistics(std::size_t block, std::size_t blocks, T& mean, T& inv_std) const override;
    void after_block_statistics(std::size_t m, std::size_t blocks) override;
    // One position per channel has nothing to normalize by (PyTorch: "Expected more than 1
    // spatial element").
    void check_block_size(std::size_t m, std::size_t block_size) const override;

    InstanceNormOptions options_;
    Vector<T> running_mean_;  // [C], starts at 0 (with track_running_stats)
    Vector<T> running_var_;   // [C], starts at 1 (with track_running_stats)
};

using InstanceNorm2d = BasicInstanceNorm2d<float>;
extern template class BasicInstanceNorm2d<float>;
extern template class BasicInstanceNorm2d<double>;

}  // namespace bnlab
