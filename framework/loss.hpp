#pragma once
// Softmax cross-entropy on logits (PyTorch's nn.CrossEntropyLoss with mean reduction) and
// classification accuracy.

#include "framework/tensor.hpp"

namespace bnlab {

template <typename T>
class BasicSoftmaxCrossEntropy {
  public:
    // logits: [m, classes], labels: [m] in [0, classes) -> mean over the batch of
    // -log softmax(logits)_label, computed with log-sum-exp so that large logits do not overflow.
    T forward(const Matrix<T>& logits, const Labels& labels);
    // dL/dlogits for the last forward: (softmax(logits) - onehot(label)) / m. In data-parallel
    // training the batch is one process's share of a global batch, and the loss is the mean over
    // that: `mean_over` gives its rows (0: the batch's own m).
    const Matrix<T>& backward(std::size_t mean_over = 0);

  private:
    Matrix<T> probabilities_;  // [m, classes]: softmax of the last forward's logits
    Labels labels_;            // [m]
    Matrix<T> grad_logits_;    // [m, classes]
};

using SoftmaxCrossEntropy = BasicSoftmaxCrossEntropy<float>;
extern template class BasicSoftmaxCrossEntropy<float>;
extern template class BasicSoftmaxCrossEntropy<double>;

// Fraction of rows whose largest logit is at the label.
template <typename T>
double accuracy(const Matrix<T>& logits, const Labels& labels);

// Number of rows whose largest logit is at the label.
template <typename T>
std::size_t count_correct(const Matrix<T>& logits, const Labels& labels);

}  // namespace bnlab
