#pragma once
// GroupNorm (Wu & He 2018; PyTorch's nn.GroupNorm): the C channels of each sample are cut into
// G groups of C / G consecutive channels, and each group is normalized by the mean and biased
// variance of its (C / G) H W values, the sample's alone, in training and eval alike:
//   mu_ig = mean over the group's values    sigma2_ig = their biased variance
//   xhat = (x - mu_ig) / sqrt(sigma2_ig + eps)          y = gamma_c xhat + beta_c
// G = 1 normalizes each sample as a whole (LayerNorm over [C, H, W] with per-channel affine);
// G = C each channel of each sample (InstanceNorm with affine). The arithmetic is
// layers/normalization.hpp's.

#include "layers/normalization.hpp"

namespace bnlab {

// GroupNormOptions(4, 32).eps(1e-5).affine(true), as libtorch's GroupNormOptions.
class GroupNormOptions {
  public:
    GroupNormOptions(std::size_t num_groups, std::size_t num_channels)
        : num_groups_(num_groups), num_channels_(num_channels) {}

    GroupNormOptions& eps(double value) {
        eps_ = value;
        return *this;
    }
    // Off: no gamma and beta (y = xhat).
    GroupNormOptions& affine(bool value) {
        affine_ = value;
        return *this;
    }

    std::size_t num_groups() const { return num_groups_; }
    std::size_t num_channels() const { return num_channels_; }
    double eps() const { return eps_; }
    bool affine() const { return affine_; }

  private:
    std::size_t num_groups_;
    std::size_t num_channels_;
    double eps_ = 1e-5;
    bool affine_ = true;
};

template <typename T>
class BasicGroupNorm : public BasicSampleNorm<T> {
  public:
    BasicGroupNorm(std::size_t num_groups, std::size_t num_channels)
        : BasicGroupNorm(GroupNormOptions(num_groups, num_channels)) {}
    explicit BasicGroupNorm(const GroupNormOptions& options);

    // [C] for features, [C, H, W] (any number of positions after C) for images.
    std::string input_shape_problem(const Shape& input) const override;
    std::string describe() const override;
    const GroupNormOptions& options() const { return options_; }

  private:
    // A block per group: K = (C / G) P values, gamma and beta per channel (stride P). A group
    // of one value normalizes to 0 (y = beta), as in PyTorch, which allows it.
    typename BasicSampleNorm<T>::Layout layout() const override;

    GroupNormOptions options_;
};

using GroupNorm = BasicGroupNorm<float>;
extern template class BasicGroupNorm<float>;
extern template class BasicGroupNorm<double>;

}  // namespace bnlab
