#include "layers/dropout.hpp"

#include <stdexcept>

namespace bnlab {

template <typename T>
BasicDropout<T>::BasicDropout(double p) : p_(p) {
    if (!(p >= 0.0 && p <= 1.0))
        throw std::invalid_argument("Dropout: probability must be in [0, 1], got " +
                                    number_string(p));
}

template <typename T>
BasicDropout<T>::BasicDropout(double p, Rng& rng) : BasicDropout(p) {
    rng_ = &rng;
}

template <typename T>
const Matrix<T>& BasicDropout<T>::forward(const Matrix<T>& input) {
    this->check_input_width(input);
    ensure_shape(output_, input.shape(0), input.shape(1));
    dropped_ = this->is_training() && p_ > 0.0;
    if (!dropped_) {
        std::copy(input.begin(), input.end(), output_.begin());
        return output_;
    }
    if (!rng_)
        throw std::logic_error(describe() +
                               ": no generator to draw masks from in training mode; give it the "
                               "run's with set_generator (fit does)");
    ensure_shape(mask_, input.shape(0), input.shape(1));
    // mask = 1/(1-p) with probability 1-p, else 0 (p = 1 zeroes everything, as PyTorch does)
    const T keep_scale = p_ < 1.0 ? T(1.0 / (1.0 - p_)) : T(0);
    const T* __restrict x = input.data();
    T* __restrict mask = mask_.data();
    T* __restrict y = output_.data();
    // A share of a global batch: the draws of the rows before it and after it are skipped, as
    // the processes that hold those rows draw them.
    const std::size_t width = input.shape(1);
    const bool shared = share_.global_rows > 0;
    if (shared && share_.rows() != input.shape(0))
        throw std::invalid_argument(describe() + ": a share of " + std::to_string(share_.rows()) +
                                    " rows of the global batch was set, but the batch has " +
                                    std::to_string(input.shape(0)));
    if (shared) rng_->skip(share_.begin * width);
    for (std::size_t i = 0; i < input.size(); ++i) {
        mask[i] = rng_->uniform(0.0, 1.0) < p_ ? T(0) : keep_scale;
        // y = x * mask
        y[i] = x[i] * mask[i];
    }
    if (shared) rng_->skip((share_.global_rows - share_.end) * width);
    return output_;
}

template <typename T>
const Matrix<T>& BasicDropout<T>::backward(const Matrix<T>& grad_output) {
    this->check_grad_output(grad_output, output_.shape(0), output_.shape(1));
    if (!this->input_grad_needed_) return this->no_input_grad();
    ensure_shape(grad_input_, output_.shape(0), output_.shape(1));
    if (!dropped_) {
        std::copy(grad_output.begin(), grad_output.end(), grad_input_.begin());
        return grad_input_;
    }
    // dx = dy * mask
    const T* __restrict dy = grad_output.data();
    const T* __restrict mask = mask_.data();
    T* __restrict dx = grad_input_.data();
    for (std::size_t i = 0; i < grad_output.size(); ++i)
        dx[i] = dy[i] * mask[i];
    return grad_input_;
}

template <typename T>
std::string BasicDropout<T>::describe() const {
    return "Dropout(p=" + number_string(p_) + ")";
}

template class BasicDropout<float>;
template class BasicDropout<double>;

}  // namespace bnlab
