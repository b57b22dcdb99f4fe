#pragma once
// The pieces of a training loop: one optimization step, and an evaluation that cannot disturb
// training (it switches to eval mode and restores the previous mode, so BatchNorm's running
// statistics never move while measuring).

#include "framework/data.hpp"
#include "framework/layer.hpp"
#include "framework/loss.hpp"
#include "framework/optimizer.hpp"

namespace bnlab {

template <typename T>
class BasicDataParallel;

// Puts a model in training or eval mode for a scope and restores its previous mode after.
template <typename T>
class ModeGuard {
  public:
    ModeGuard(BasicLayer<T>& model, bool training)
        : model_(model), was_training_(model.is_training()) {
        model_.train(training);
    }
    ~ModeGuard() { model_.train(was_training_); }
    ModeGuard(const ModeGuard&) = delete;
    ModeGuard& operator=(const ModeGuard&) = delete;

  private:
    BasicLayer<T>& model_;
    bool was_training_;
};

struct Evaluation {
    double loss = 0.0;      // mean over samples
    double accuracy = 0.0;  // fraction correct
};

// Mean loss and accuracy of `model` in eval mode over all of `data`, in batches of
// `batch_size`; the model's mode is restored afterwards. Softmax cross-entropy, or `loss`
// (regression data: accuracy 0; fit reports R² from the loss).
template <typename T>
Evaluation evaluate(BasicLayer<T>& model, const BasicDataset<T>& data, std::size_t batch_size);
template <typename T>
Evaluation evaluate(BasicLayer<T>& model, const BasicDataset<T>& data, std::size_t batch_size,
                    BasicLoss<T>& loss);

// What one training step saw: the batch's mean loss (before the update) and how many of its
// rows the model classified correctly in training mode.
struct StepResult {
    double loss = 0.0;
    std::size_t correct = 0;
};

// zero_grad, forward, loss, backward (and, with `parallel`, the sum of the gradients over the
// processes): train_step without the optimizer's step, for loops that act between the two.
// `correct` counts only for a classification loss.
template <typename T>
StepResult compute_gradients(BasicLayer<T>& model, BasicLoss<T>& loss, BasicOptimizer<T>& optimizer,
                             const Matrix<T>& inputs, const BasicTargets<T>& targets,
                             BasicDataParallel<T>* parallel = nullptr);

// zero_grad, forward, loss, backward, optimizer step. The model's input gradient is not
// computed (train_step turns it off, as PyTorch does for inputs that do not require grad).
// With `parallel` (data_parallel.hpp), `inputs` and `labels` are this process's share of the
// global batch, the gradients are summed over the processes before the step, and the result is
// the global batch's.
template <typename T>
StepResult train_step(BasicLayer<T>& model, BasicLoss<T>& loss, BasicOptimizer<T>& optimizer,
                      const Matrix<T>& inputs, const BasicTargets<T>& targets,
                      BasicDataParallel<T>* parallel = nullptr);
// The same with class labels.
template <typename T>
StepResult train_step(BasicLayer<T>& model, BasicLoss<T>& loss, BasicOptimizer<T>& optimizer,
                      const Matrix<T>& inputs, const Labels& labels,
                      BasicDataParallel<T>* parallel = nullptr) {
    return train_step(model, loss, optimizer, inputs, BasicTargets<T>{&labels, nullptr}, parallel);
}

}  // namespace bnlab
