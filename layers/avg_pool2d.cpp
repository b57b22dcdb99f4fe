#include "layers/avg_pool2d.hpp"

#include <stdexcept>

#include "framework/blas_threads.hpp"

namespace bnlab {

template <typename T>
BasicAvgPool2d<T>::BasicAvgPool2d(std::size_t kernel_size, std::optional<std::size_t> stride,
                                  std::size_t padding)
    : BasicWindowLayer<T>(Window{kernel_size, stride.value_or(kernel_size), padding}) {
    check_window("AvgPool2d", this->window_, true);
}

namespace {

// Calls visit(input index, output index) for every pixel of every window of one channel that
// lies inside the image, output by output.
template <typename Visit>
void for_each_window_pixel(const WindowGeometry& g, const Window& w, Visit visit) {
    for (std::size_t oh = 0; oh < g.out_height; ++oh)
        for (std::size_t ow = 0; ow < g.out_width; ++ow)
            for (std::size_t kh = 0; kh < w.kernel; ++kh) {
                const long ih = long(oh * w.stride + kh) - long(w.padding);
                if (ih < 0 || ih >= long(g.height)) continue;
                for (std::size_t kw = 0; kw < w.kernel; ++kw) {
                    const long iw = long(ow * w.stride + kw) - long(w.padding);
                    if (iw < 0 || iw >= long(g.width)) continue;
                    visit(std::size_t(ih) * g.width + std::size_t(iw), oh * g.out_width + ow);
                }
            }
}

}  // namespace

template <typename T>
void avg_pool_channel(const T* x, const WindowGeometry& g, const Window& w, T* y) {
    const T inv_area = T(1) / T(w.kernel * w.kernel);
    std::fill_n(y, g.out_positions(), T(0));
    // y = 1/k^2 sum over the window (padding adds zeros but counts in k^2)
    for_each_window_pixel(g, w, [&](std::size_t in, std::size_t out) { y[out] += x[in]; });
    for (std::size_t j = 0; j < g.out_positions(); ++j)
        y[j] *= inv_area;
}

template <typename T>
void avg_pool_channel_backward(const T* dy, const WindowGeometry& g, const Window& w, T* dx) {
    const T inv_area = T(1) / T(w.kernel * w.kernel);
    // dx += dy / k^2 for every pixel of the output's window
    for_each_window_pixel(g, w,
                          [&](std::size_t in, std::size_t out) { dx[in] += dy[out] * inv_area; });
}

template <typename T>
const Matrix<T>& BasicAvgPool2d<T>::forward(const Matrix<T>& input) {
    this->check_window_input(input);
    const WindowGeometry& g = this->geometry_;
    const Window& w = this->window_;
    const std::size_t batch = input.shape(0), out_size = g.channels * g.out_positions();
    ensure_shape(output_, batch, out_size);
    run_parts(parts_for(batch), batch, [&](int, std::size_t first, std::size_t end) {
        for (std::size_t n = first; n < end; ++n)
            for (std::size_t c = 0; c < g.channels; ++c)
                avg_pool_channel(input.data() + n * g.in_size() + c * g.positions(), g, w,
                                 output_.data() + n * out_size + c * g.out_positions());
    });
    return output_;
}

template <typename T>
const Matrix<T>& BasicAvgPool2d<T>::backward(const Matrix<T>& grad_output) {
    const WindowGeometry& g = this->geometry_;
    const std::size_t batch = output_.shape(0), out_size = output_.shape(1);
    this->check_grad_output(grad_output, batch, out_size);
    if (!this->input_grad_needed_) return this->no_input_grad();
    ensure_shape(grad_input_, batch, g.in_size());
    std::fill(grad_input_.begin(), grad_input_.end(), T(0));
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t c = 0; c < g.channels; ++c)
            avg_pool_channel_backward(grad_output.data() + n * out_size + c * g.out_positions(), g,
                                      this->window_,
                                      grad_input_.data() + n * g.in_size() + c * g.positions());
    return grad_input_;
}

template <typename T>
std::optional<std::size_t> BasicGlobalAvgPool2d<T>::in_features() const {
    if (shape_.empty()) return std::nullopt;
    return shape_size(shape_);
}

template <typename T>
std::optional<std::size_t> BasicGlobalAvgPool2d<T>::out_features() const {
    if (shape_.empty()) return std::nullopt;
    return shape_[0];
}

template <typename T>
std::optional<Shape> BasicGlobalAvgPool2d<T>::input_shape() const {
    if (shape_.empty()) return std::nullopt;
    return shape_;
}

template <typename T>
std::optional<Shape> BasicGlobalAvgPool2d<T>::output_shape() const {
    if (shape_.empty()) return std::nullopt;
    return Shape{shape_[0], 1, 1};
}

template <typename T>
std::string BasicGlobalAvgPool2d<T>::input_shape_problem(const Shape& input) const {
    return window_input_problem(input, std::nullopt, Window{});
}

template <typename T>
void BasicGlobalAvgPool2d<T>::set_input_shape(const Shape& input) {
    BasicLayer<T>::set_input_shape(input);
    shape_ = input;
}

template <typename T>
const Matrix<T>& BasicGlobalAvgPool2d<T>::forward(const Matrix<T>& input) {
    if (shape_.empty()) throw_unknown_input_shape(describe());
    this->check_input_width(input);
    const std::size_t C = shape_[0], P = shape_[1] * shape_[2];
    batch_ = input.shape(0);
    ensure_shape(output_, batch_, C);
    // y[c] = 1/(H W) sum_p x[c, p]
    for (std::size_t n = 0; n < batch_; ++n)
        for (std::size_t c = 0; c < C; ++c) {
            const T* __restrict x = input.data() + (n * C + c) * P;
            T sum = 0;
            for (std::size_t p = 0; p < P; ++p)
                sum += x[p];
            output_(n, c) = sum / T(P);
        }
    return output_;
}

template <typename T>
const Matrix<T>& BasicGlobalAvgPool2d<T>::backward(const Matrix<T>& grad_output) {
    const std::size_t C = shape_.empty() ? 0 : shape_[0];
    this->check_grad_output(grad_output, batch_, C);
    if (!this->input_grad_needed_) return this->no_input_grad();
    const std::size_t P = shape_[1] * shape_[2];
    ensure_shape(grad_input_, batch_, C * P);
    // dx[c, p] = dy[c] / (H W)
    for (std::size_t n = 0; n < batch_; ++n)
        for (std::size_t c = 0; c < C; ++c)
            std::fill_n(grad_input_.data() + (n * C + c) * P, P, grad_output(n, c) / T(P));
    return grad_input_;
}

template void avg_pool_channel(const float*, const WindowGeometry&, const Window&, float*);
template void avg_pool_channel(const double*, const WindowGeometry&, const Window&, double*);
template void avg_pool_channel_backward(const float*, const WindowGeometry&, const Window&, float*);
template void avg_pool_channel_backward(const double*, const WindowGeometry&, const Window&,
                                        double*);
template class BasicAvgPool2d<float>;
template class BasicAvgPool2d<double>;
template class BasicGlobalAvgPool2d<float>;
template class BasicGlobalAvgPool2d<double>;

}  // namespace bnlab
