#pragma once
// Losses: the Loss interface fit trains with, softmax cross-entropy on logits (PyTorch's
// nn.CrossEntropyLoss with mean reduction and optional label smoothing) for classification,
// mean squared error (nn.MSELoss) for regression; and classification accuracy.

#include <string>

#include "framework/tensor.hpp"

namespace bnlab {

// A batch's targets: class labels [m] for classification, or values [m, outputs] for
// regression; the one a loss does not use is null.
template <typename T>
struct BasicTargets {
    const Labels* labels = nullptr;
    const Matrix<T>* values = nullptr;
};

template <typename T>
class BasicLoss {
  public:
    virtual ~BasicLoss() = default;
    // "SoftmaxCrossEntropy", "MeanSquaredError": names the loss in errors and the log.
    virtual std::string name() const = 0;
    // Whether it takes target values (regression) rather than class labels.
    virtual bool regression() const = 0;
    // outputs: [m, k] -> the batch's loss. Throws std::invalid_argument when the targets are
    // not the kind the loss takes or do not fit the outputs.
    virtual T forward(const Matrix<T>& outputs, const BasicTargets<T>& targets) = 0;
    // dL/doutputs for the last forward. In data-parallel training the batch is one process's
    // share of a global batch, and the loss is the mean over that: `mean_over` gives its rows
    // (0: the batch's own m).
    virtual const Matrix<T>& backward(std::size_t mean_over = 0) = 0;
};

template <typename T>
class BasicSoftmaxCrossEntropy : public BasicLoss<T> {
  public:
    // label_smoothing ε in [0, 1): the target of each row is (1 - ε) on its label plus ε/K on
    // every one of the K classes (PyTorch's label_smoothing).
    explicit BasicSoftmaxCrossEntropy(double label_smoothing = 0.0);
    std::string name() const override { return "SoftmaxCrossEntropy"; }
    bool regression() const override { return false; }
    // logits: [m, classes], labels: [m] in [0, classes) -> mean over the batch of
    // -sum_c target_c log softmax(logits)_c (with ε = 0: -log softmax(logits)_label), with
    // log-sum-exp so that large logits do not overflow.
    T forward(const Matrix<T>& logits, const Labels& labels);
    T forward(const Matrix<T>& logits, const BasicTargets<T>& targets) override;
    // dL/dlogits for the last forward: (softmax(logits) - target) / m.
    const Matrix<T>& backward(std::size_t mean_over = 0) override;
    double label_smoothing() const { return label_smoothing_; }

  private:
    double label_smoothing_;
    Matrix<T> probabilities_;  // [m, classes]: softmax of the last forward's logits
    Labels labels_;            // [m]
    Matrix<T> grad_logits_;    // [m, classes]
};

using SoftmaxCrossEntropy = BasicSoftmaxCrossEntropy<float>;
extern template class BasicSoftmaxCrossEntropy<float>;
extern template class BasicSoftmaxCrossEntropy<double>;

template <typename T>
class BasicMeanSquaredError : public BasicLoss<T> {
  public:
    std::string name() const override { return "MeanSquaredError"; }
    bool regression() const override { return true; }
    // outputs, values: [m, k] -> mean over all m·k elements of (output - value)².
    T forward(const Matrix<T>& outputs, const Matrix<T>& values);
    T forward(const Matrix<T>& outputs, const BasicTargets<T>& targets) override;
    // 2 (output - value) / (m·k) for the last forward.
    const Matrix<T>& backward(std::size_t mean_over = 0) override;

  private:
    Matrix<T> difference_;   // [m, k]: output - value of the last forward
    Matrix<T> grad_output_;  // [m, k]
};

using MeanSquaredError = BasicMeanSquaredError<float>;
using Loss = BasicLoss<float>;
using Targets = BasicTargets<float>;
extern template class BasicMeanSquaredError<float>;
extern template class BasicMeanSquaredError<double>;

// Fraction of rows whose largest logit is at the label.
template <typename T>
double accuracy(const Matrix<T>& logits, const Labels& labels);

// Number of rows whose largest logit is at the label.
template <typename T>
std::size_t count_correct(const Matrix<T>& logits, const Labels& labels);

}  // namespace bnlab
