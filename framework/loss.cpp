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
        total += std::log(sum_exp) - (logits(i, labels(i)) - max_logit);
    }
    return static_cast<T>(total / static_cast<double>(m));
}

template <typename T>
const Matrix<T>& BasicSoftmaxCrossEntropy<T>::backward(std::size_t mean_over) {
    const std::size_t m = probabilities_.shape(0), classes = probabilities_.shape(1);
    if (m == 0) throw std::logic_error("SoftmaxCrossEntropy: backward called before forward");
    ensure_shape(grad_logits_, m, classes);
    // dL/dz = (softmax(z) - onehot(y)) / m
    const T inv_m = T(1) / T(mean_over > 0 ? mean_over : m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < classes; ++c)
            grad_logits_(i, c) =
                (probabilities_(i, c) - (static_cast<int>(c) == labels_(i) ? T(1) : T(0))) * inv_m;
    return grad_logits_;
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
template double accuracy(const Matrix<float>&, const Labels&);
template double accuracy(const Matrix<double>&, const Labels&);
template std::size_t count_correct(const Matrix<float>&, const Labels&);
template std::size_t count_correct(const Matrix<double>&, const Labels&);

}  // namespace bnlab
