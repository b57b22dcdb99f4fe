#pragma once
// Dropout (PyTorch's): in training mode each value is kept with probability 1 - p and scaled by
// 1 / (1 - p), or set to zero, so that its expectation is unchanged:
//   y = x * mask,   mask = 1/(1-p) with probability 1-p, else 0      (fresh every forward)
// In eval mode it passes its input through. The masks are drawn from the run's seeded
// generator (given at construction, and by the trainer through set_generator), so that a run
// is reproducible and resumes bit-exactly.

#include "framework/layer.hpp"
#include "framework/random.hpp"

namespace bnlab {

template <typename T>
class BasicDropout : public BasicLayer<T> {
  public:
    // p in [0, 1]: the probability of zeroing a value.
    BasicDropout(double p, Rng& rng);
    // Without a generator (a model read from a checkpoint): one must be given with
    // set_generator before a training-mode forward.
    explicit BasicDropout(double p);

    // input: [batch, n] -> output: [batch, n]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    void set_generator(Rng& rng) override { rng_ = &rng; }
    void set_batch_share(const BatchShare& share) override { share_ = share; }
    std::optional<std::size_t> in_features() const override { return std::nullopt; }
    std::optional<std::size_t> out_features() const override { return std::nullopt; }
    std::string describe() const override;

    double p() const { return p_; }

  private:
    double p_;
    Rng* rng_ = nullptr;
    BatchShare share_;      // global_rows 0: the batch is the whole batch
    bool dropped_ = false;  // did the last forward apply a mask (training mode)?
    Matrix<T> mask_;        // [batch, n]: 0 or 1/(1-p), for backward
    Matrix<T> output_;      // [batch, n]
    Matrix<T> grad_input_;  // [batch, n]
};

using Dropout = BasicDropout<float>;
extern template class BasicDropout<float>;
extern template class BasicDropout<double>;

}  // namespace bnlab
