#pragma once
// BatchNorm after Ioffe & Szegedy (2015), per feature of a [batch, features] input (PyTorch's
// BatchNorm1d) or per channel of a batch of [C, H, W] images (BatchNorm2d: the paper's
// convolutional form, statistics over the batch and every position). With the batch seen as
// [m, C, P], P = H W positions per channel (P = 1 for features), and M = m P values per channel:
//   mu_c = (1/M) sum_{i,p} x_icp       sigma2_c = (1/M) sum_{i,p} (x_icp - mu_c)^2   (biased)
//   xhat = (x - mu) / sqrt(sigma2 + eps)            y = gamma xhat + beta
// Which of the two a layer is follows from the shape of its input samples ([C] or [C, H, W],
// set by Sequential::add or set_input_shape), as PyTorch's layers normalize dimension 1.
// Training mode normalizes with the batch's statistics and updates the running ones; eval mode
// normalizes with the running ones.
//
// The spatial layer sums its statistics and its gradient's two sums in double, as PyTorch's CPU
// BatchNorm does (over m H W values float loses digits); the 1-D layer sums its m values in its
// own type.
//
// Momentum convention (PyTorch's): running = (1 - momentum) * running + momentum * batch, so the
// default 0.1 here is TensorFlow/Keras' momentum 0.9. The running variance takes the unbiased
// batch variance (sigma2 * M / (M - 1)); normalization uses the biased one.

#include <cstdint>
#include <optional>
#include <vector>

#include "framework/communicator.hpp"
#include "framework/layer.hpp"

namespace bnlab {

// What a frozen BatchNorm keeps fixed, for fine-tuning (PyTorch users call eval() on the layer
// and turn off requires_grad; torchvision's FrozenBatchNorm2d fixes everything):
//   none        an ordinary BatchNorm;
//   statistics  normalizes with the running statistics in training mode too and leaves them
//               unchanged, whatever train()/eval() a parent calls; gamma and beta still train;
//   all         the same, and gamma and beta are fixed too: they become buffers (saved with the
//               model, never given to an optimizer), as in FrozenBatchNorm2d.
enum class BatchNormFreeze { none, statistics, all };

// Options with chained setters, as libtorch's BatchNorm1dOptions:
// BatchNormOptions(256).eps(1e-5).momentum(0.1).affine(true).
class BatchNormOptions {
  public:
    explicit BatchNormOptions(std::size_t num_features) : num_features_(num_features) {}

    BatchNormOptions& eps(double value) {
        eps_ = value;
        return *this;
    }
    // std::nullopt: running statistics are the cumulative average of all batches seen
    // (PyTorch's momentum=None).
    BatchNormOptions& momentum(std::optional<double> value) {
        momentum_ = value;
        return *this;
    }
    // Off: no gamma and beta (y = xhat).
    BatchNormOptions& affine(bool value) {
        affine_ = value;
        return *this;
    }

    // Off: no running statistics; training and eval mode both normalize with the batch's
    // (PyTorch's track_running_stats=False).
    BatchNormOptions& track_running_stats(bool value) {
        track_running_stats_ = value;
        return *this;
    }
    BatchNormOptions& freeze(BatchNormFreeze value) {
        freeze_ = value;
        return *this;
    }

    std::size_t num_features() const { return num_features_; }
    double eps() const { return eps_; }
    std::optional<double> momentum() const { return momentum_; }
    bool affine() const { return affine_; }
    bool track_running_stats() const { return track_running_stats_; }
    BatchNormFreeze freeze() const { return freeze_; }

  private:
    std::size_t num_features_;
    double eps_ = 1e-5;
    std::optional<double> momentum_ = 0.1;
    bool affine_ = true;
    bool track_running_stats_ = true;
    BatchNormFreeze freeze_ = BatchNormFreeze::none;
};

// A channel's count, mean and sum of squared deviations (M2), in double, merged set by set with
// Chan, Golub & LeVeque's formula (not E[x^2] - mu^2, which cancels): merging (n_b, mu_b, M2_b),
//   n = n_a + n_b   delta = mu_b - mu_a   mu = mu_a + delta n_b / n
//   M2 = M2_a + M2_b + delta^2 n_a n_b / n
// Synchronized BatchNorm merges the processes' shares, the fused block the samples.
struct Moments {
    double count = 0.0, mean = 0.0, squares = 0.0;
    void merge(double other_count, double other_mean, double other_squares) {
        if (other_count == 0.0) return;
        const double merged = count + other_count, delta = other_mean - mean;
        mean += delta * other_count / merged;
        squares += other_squares + delta * delta * count * other_count / merged;
        count = merged;
    }
    // sigma2 = M2 / n (biased), 0 for no values
    double variance() const { return count > 0 ? squares / count : 0.0; }
};

// mean and squares (M2) from sums over values shifted by `shift`, d_i = x_i - shift:
//   S = sum_i d_i   Q = sum_i d_i^2   mean = shift + S / n   M2 = Q - S (S / n)
// With a shift of the values' size (one of them), d is of the order of their spread, and
// Q - S^2 / n does not cancel as E[x^2] - mu^2 does.
// (Out of line, in batch_norm.cpp: compiled into the AVX2 file, GCC would contract
// Q - S (S / n) into an FMA there and round it differently from the generic code.)
void moments_from_shifted_sums(double shift, SumPair sums, std::size_t n, double& mean,
                               double& squares);

// One channel's mean = sum_i x_i / n and squares = sum_i (x_i - mean)^2 over x[0, n), in double,
// in one pass over the values shifted by the first (moments_from_shifted_sums), summed by
// sum_pairs_in_16_lanes: the fused block's per-sample statistics.
template <typename T>
void channel_moments(const T* x, std::size_t n, double& mean, double& squares) {
    const double shift = n > 0 ? double(x[0]) : 0.0;
    const SumPair sums = sum_pairs_in_16_lanes(n, [&](std::size_t i) {
        const double d = double(x[i]) - shift;
        return SumPair{d, d * d};
    });
    moments_from_shifted_sums(shift, sums, n, mean, squares);
}
// The same sums, bit for bit, on AVX-512 or AVX2 where the CPU has it (8 or 4 doubles a vector
// instead of 2).
void channel_moments(const float* x, std::size_t n, double& mean, double& squares);
// The AVX2 and AVX-512 kernels (layers/simd_avx2.cpp, simd_avx512.cpp), for CPUs that have them.
void channel_moments_avx2(const float* x, std::size_t n, double& mean, double& squares);
void channel_moments_avx512(const float* x, std::size_t n, double& mean, double& squares);

template <typename T>
class BasicBatchNorm : public BasicLayer<T> {
  public:
    explicit BasicBatchNorm(std::size_t num_features)
        : BasicBatchNorm(BatchNormOptions(num_features)) {}
    explicit BasicBatchNorm(const BatchNormOptions& options);

    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    // gamma and beta when affine and not frozen with BatchNormFreeze::all, nothing otherwise.
    std::vector<Parameter<T>> parameters() override;
    // running_mean and running_var (none without track_running_stats), then gamma and beta
    // when they are frozen.
    std::vector<Buffer<T>> buffers() override;
    std::optional<std::size_t> in_features() const override { return shape_size(shape_); }
    std::optional<std::size_t> out_features() const override { return shape_size(shape_); }
    std::optional<Shape> input_shape() const override { return shape_; }
    std::optional<Shape> output_shape() const override { return shape_; }
    // [C] for features, [C, H, W] (any number of positions after C) for images.
    std::string input_shape_problem(const Shape& input) const override;
    void set_input_shape(const Shape& input) override;
    std::string describe() const override;

    // Synchronized BatchNorm for data-parallel training (PyTorch's SyncBatchNorm): in training
    // mode the statistics are those of the global batch, every process's share of it, through
    // `communicator`; nullptr (the default) normalizes with this process's rows alone, as
    // PyTorch's DDP does without SyncBatchNorm. Each process computes per channel its count,
    // mean and sum of squared deviations in double; the processes exchange them (allgather, so
    // shares may differ, even be empty) and every one merges them in rank order with Chan et
    // al.'s parallel formula (not E[x^2] - mu^2, which cancels). Backward sums [sum dy,
    // sum dy xhat] over the processes; gamma's and beta's gradients stay this process's share,
    // for the trainer to sum with the others. Eval mode communicates nothing.
    void synchronize(Communicator* communicator) override { communicator_ = communicator; }
    Communicator* communicator() const { return communicator_; }
    // Whether a fused convolution block may run this layer's arithmetic (layers/conv_block.hpp):
    // not when synchronized (the processes' exchange runs between the layer's own passes), nor
    // for a layer that normalizes otherwise (Batch Renormalization).
    virtual bool fusable() const { return communicator_ == nullptr; }

    const BatchNormOptions& options() const { return options_; }
    // Freezes (or thaws) a layer, trained or not. What parameters() returns changes: give the
    // optimizer the model's parameters after freezing. Throws without running statistics.
    void freeze(BatchNormFreeze freeze);
    // Whether the next forward normalizes with the batch's statistics: training mode and not
    // frozen, or always without running statistics.
    bool uses_batch_statistics() const {
        return !options_.track_running_stats() ||
               (this->is_training() && options_.freeze() == BatchNormFreeze::none);
    }
    Vector<T>& gamma() { return gamma_; }
    Vector<T>& beta() { return beta_; }
    const Vector<T>& gamma_grad() const { return gamma_grad_; }
    const Vector<T>& beta_grad() const { return beta_grad_; }
    Vector<T>& running_mean() { return running_mean_; }
    Vector<T>& running_var() { return running_var_; }
    std::int64_t num_batches_tracked() const { return num_batches_tracked_; }
    void set_num_batches_tracked(std::int64_t count) { num_batches_tracked_ = count; }

  protected:
    // What Batch Renormalization (layers/batch_renorm.hpp) changes, in training mode with the
    // batch's statistics. Channel c's batch mean_ and var_ and 1 / sqrt(var + eps) in inv_std_
    // are known before its running statistics move toward them; after, forward normalizes
    // with mean_ and inv_std_, which may be changed: xhat = (x - mean_) inv_std_.
    virtual void before_running_update(std::size_t /*c*/) {}
    virtual void after_running_update(std::size_t /*c*/) {}
    // Backward's per-channel sums [sum dy] and [sum dy xhat], after gamma's and beta's gradients
    // took them and before dx = gamma inv_std (dy - sum_dy / M - xhat sum_dy_xhat / M).
    virtual void adjust_input_gradient_sums(T* /*sum_dy*/, T* /*sum_dy_xhat*/) {}
    const Vector<T>& batch_mean() const { return mean_; }
    const Vector<T>& batch_var() const { return var_; }
    Vector<T>& normalizing_mean() { return mean_; }
    Vector<T>& normalizing_inv_std() { return inv_std_; }

  private:
    // A fused group runs this layer's arithmetic on its members (layers/conv_block.hpp).
    template <typename>
    friend class BasicConvBlock;

    // The global batch's mean_ and var_ (and global_count_) from every process's statistics.
    void synchronized_statistics(const Matrix<T>& x);
    // A batch of `m` samples and `count` values per channel to be normalized by its own
    // statistics: throws naming the input shape unless count >= 2, and counts the batch when
    // the layer keeps running statistics.
    void start_training_batch(std::size_t m, double count);
    // Channel c's inv_std_ from var_, and its running statistics (when it keeps them) moved
    // toward the batch's mean_ and var_ (over `count` values per channel).
    void use_batch_statistics(std::size_t c, T count);
    // Channel c normalized with the running statistics: mean_ and inv_std_ from them.
    void use_running_statistics(std::size_t c);

    BatchNormOptions options_;
    Shape shape_;                // of one sample: [C], or [C, H, W]
    std::size_t positions_ = 1;  // P: values per channel in one sample (H W), 1 for features

    Vector<T> gamma_;         // [n], 1 (and stays 1 when not affine)
    Vector<T> beta_;          // [n], 0 (and stays 0 when not affine)
    Vector<T> gamma_grad_;    // [n]
    Vector<T> beta_grad_;     // [n]
    Vector<T> running_mean_;  // [n], starts at 0
    Vector<T> running_var_;   // [n], starts at 1
    std::int64_t num_batches_tracked_ = 0;

    // Synchronization (see synchronize): the processes' statistics, and the global batch's
    // values per channel in the last forward.
    Communicator* communicator_ = nullptr;
    std::vector<double> local_statistics_;     // [3 n]: count, mean, sum of squared deviations
    std::vector<double> gathered_statistics_;  // [processes, 3 n]
    Vector<T> global_sums_;                    // [2 n]: sum dy, sum dy xhat over every process
    double global_count_ = 0;                  // M over every process

    // Caches of the last forward, for backward.
    bool normalized_with_batch_stats_ = false;  // training-mode forward?
    Vector<T> mean_;     // [n]: mu the last forward subtracted (batch's or running)
    Vector<T> var_;      // [n]: the batch's biased variance (training mode)
    Vector<T> inv_std_;  // [n]: 1 / sqrt(sigma2 + eps) the last forward multiplied by
    Matrix<T> x_hat_;    // [m, n P]

    Matrix<T> output_;       // [m, n P]
    Matrix<T> grad_input_;   // [m, n P]
    Vector<T> sum_dy_;       // [n]: sum_{i,p} dy_icp of the last backward
    Vector<T> sum_dy_xhat_;  // [n]: sum_{i,p} dy_icp xhat_icp of the last backward
    // The spatial layer's sums in double: [2 n], sum x and sum (x - mu)^2 in forward, sum dy and
    // sum dy xhat in backward.
    std::vector<double> double_sums_;
};

// action(batchnorm) for every BatchNorm in `model`, nested ones too, in the order of the
// model's children.
template <typename T, typename Action>
void for_each_batchnorm(BasicLayer<T>& model, Action&& action) {
    for (const auto& [name, child] : model.children()) {
        if (auto* batchnorm = dynamic_cast<BasicBatchNorm<T>*>(child))
            action(*batchnorm);
        else
            for_each_batchnorm(*child, action);
    }
}

// Freezes every BatchNorm in `model` (nested ones too), as fine-tuning does.
template <typename T>
void freeze_batchnorms(BasicLayer<T>& model, BatchNormFreeze freeze) {
    for_each_batchnorm(model, [&](BasicBatchNorm<T>& batchnorm) { batchnorm.freeze(freeze); });
}

using BatchNorm = BasicBatchNorm<float>;
// PyTorch's names for the two uses of the one layer; which it is follows from its input shape.
using BatchNorm1d = BasicBatchNorm<float>;
using BatchNorm2d = BasicBatchNorm<float>;
extern template class BasicBatchNorm<float>;
extern template class BasicBatchNorm<double>;

}  // namespace bnlab
