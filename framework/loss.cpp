#include "framework/loss.hpp"

#include <cmath>
#include <stdexcept>

namespace bnlab {

namespace {

template <typename T>
void check_labels(const Matrix<T>& logits, const Labels& labels, const char* who) {
    if (labels.size() != logits.shape(0))
        throw std::invalid_argument(std::string(who) + ": " + std::to_string(labels.size()) +
                                    " labels for logits of shape " + shape_string(logits));
    const int classes = static_cast<int>(logits.shape(1));
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels(i) < 0 || labels(i) >= classes)
            throw std::invalid_argument(std::string(who) + ": label " + std::to_string(labels(i)) +
                                        " at row " + std::to_string(i) + " is outside [0, " +
                                        std::to_string(classes) + ")");
}

}  // namespace

template <typename T>
BasicSoftmaxCrossEntropy<T>::BasicSoftmaxCrossEntropy(double label_smoothing)
    : label_smoothing_(label_smoothing) {
    if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
        throw std::invalid_argument("SoftmaxCrossEntropy: label smoothing must be in [0, 1), got " +
                                    number_string(label_smoothing));
}

template <typename T>
T BasicSoftmaxCrossEntropy<T>::forward(const Matrix<T>& logits, const BasicTargets<T>& targets) {
    if (!targets.labels)
        throw std::invalid_argument(
            "SoftmaxCrossEntropy needs class labels, and the data has target values (a "
            "regression); use MeanSquaredError");
    return forward(logits, *targets.labels);
}

template <typename T>
T BasicSoftmaxCrossEntropy<T>::forward(const Matrix<T>& logits, const Labels& labels) {
    check_labels(logits, labels, "SoftmaxCrossEntropy");
    const std::size_t m = logits.shape(0), classes = logits.shape(1);
    ensure_shape(probabilities_, m, classes);
    if (labels_.size() != m) labels_.resize({m});
    std::copy(labels.begin(), labels.end(), labels_.begin());

    double total = 0.0;
    for (std::size_t i = 0; i < m; ++i) {
        T max_logit = logits(i, 0);
        for (std::size_t c = 1; c < classes; ++c)
            max_logit = std::max(max_logit, logits(i, c));
        // sum_c exp(z_c - max), the shift keeping every exponent <= 0
        T sum_exp = 0;
        for (std::size_t c = 0; c < classes; ++c) {
            probabilities_(i, c) = std::exp(logits(i, c) - max_logit);
            sum_exp += probabilities_(i, c);
        }
        for (std::size_t c = 0; c < classes; ++c)
            probabilities_(i, c) /= sum_exp;
        // -log softmax(z)_y = log sum_c exp(z_c - max) - (z_y - max)
        const T log_sum = std::log(sum_exp);
        if (label_smoothing_ == 0.0) {
            total += log_sum - (logits(i, labels(i)) - max_logit);
            continue;
        }
        // (1 - ε)(-log softmax(z)_y) + ε mean_c(-log softmax(z)_c)
        double mean_minus_log = 0.0;
        for (std::size_t c = 0; c < classes; ++c)
            mean_minus_log += double(log_sum - (logits(i, c) - max_logit));
        mean_minus_log /= double(classes);
        total += (1.0 - label_smoothing_) * double(log_sum - (logits(i, labels(i)) - max_logit)) +
                 label_smoothing_ * mean_minus_log;
    }
    return static_cast<T>(total / static_cast<double>(m));
}

template <typename T>
const Matrix<T>& BasicSoftmaxCrossEntropy<T>::backward(std::size_t mean_over) {
    const std::size_t m = probabilities_.shape(0), classes = probabilities_.shape(1);
    if (m == 0) throw std::logic_error("SoftmaxCrossEntropy: backward called before forward");
    ensure_shape(grad_logits_, m, classes);
    // dL/dz = (softmax(z) - target) / m, target = (1 - ε) onehot(y) + ε/K (ε = 0: onehot(y))
    const T inv_m = T(1) / T(mean_over > 0 ? mean_over : m);
    const T off_label = T(label_smoothing_ / double(classes));
    const T on_label = T(1.0 - label_smoothing_) + off_label;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < classes; ++c)
            grad_logits_(i, c) = (probabilities_(i, c) -
                                  (static_cast<int>(c) == labels_(i) ? on_label : off_label)) *
                                 inv_m;
    return grad_logits_;
}

template <typename T>
T BasicMeanSquaredError<T>::forward(const Matrix<T>& outputs, const BasicTargets<T>& targets) {
    if (!targets.values)
        throw std::invalid_argument(
            "MeanSquaredError needs target values, and the data has class labels (a "
            "classification); use SoftmaxCrossEntropy");
    return forward(outputs, *targets.values);
}

template <typename T>
T BasicMeanSquaredError<T>::forward(const Matrix<T>& outputs, const Matrix<T>& values) {
    if (outputs.shape() != values.shape())
        throw std::invalid_argument("MeanSquaredError: outputs of shape " + shape_string(outputs) +
                                    " for targets of shape " + shape_string(values));
    ensure_shape(difference_, outputs.shape(0), outputs.shape(1));
    double total = 0.0;
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        // d = y - t, L = mean d²
        difference_.data()[i] = outputs.data()[i] - values.data()[i];
        total += double(difference_.data()[i]) * double(difference_.data()[i]);
    }
    return static_cast<T>(total / double(outputs.size()));
}

template <typename T>
const Matrix<T>& BasicMeanSquaredError<T>::backward(std::size_t mean_over) {
    const std::size_t m = difference_.shape(0), k = difference_.shape(1);
    if (m == 0) throw std::logic_error("MeanSquaredError: backward called before forward");
    ensure_shape(grad_output_, m, k);
    // dL/dy = 2 d / (m k)
    const T scale = T(2) / T((mean_over > 0 ? mean_over : m) * k);
    for (std::size_t i = 0; i < difference_.size(); ++i)
        grad_output_.data()[i] = difference_.data()[i] * scale;
    return grad_output_;
}

template <typename T>
std::size_t count_correct(const Matrix<T>& logits, const Labels& labels) {
    check_labels(logits, labels, "accuracy");
    std::size_t correct = 0;
    for (std::size_t i = 0; i < logits.shape(0); ++i) {
        std::size_t best = 0;
        for (std::size_t c = 1; c < logits.shape(1); ++c)
            if (logits(i, c) > logits(i, best)) best = c;
        if (static_cast<int>(best) == labels(i)) ++correct;
    }
    return correct;
}

template <typename T>
double accuracy(const Matrix<T>& logits, const Labels& labels) {
    return logits.shape(0) == 0 ? 0.0
                                : static_cast<double>(count_correct(logits, labels)) /
                                      static_cast<double>(logits.shape(0));
}

template class BasicSoftmaxCrossEntropy<float>;
template class BasicSoftmaxCrossEntropy<double>;
template class BasicMeanSquaredError<float>;
template class BasicMeanSquaredError<double>;
template double accuracy(const Matrix<float>&, const Labels&);
template double accuracy(const Matrix<double>&, const Labels&);
template std::size_t count_correct(const Matrix<float>&, const Labels&);
template std::size_t count_correct(const Matrix<double>&, const Labels&);

}  // namespace bnlab
