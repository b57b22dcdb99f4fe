#include "layers/max_pool2d.hpp"

#include <cmath>
#include <limits>

#include "framework/blas_threads.hpp"

namespace bnlab {

template <typename T>
BasicMaxPool2d<T>::BasicMaxPool2d(std::size_t kernel_size, std::optional<std::size_t> stride,
                                  std::size_t padding)
    : BasicWindowLayer<T>(Window{kernel_size, stride.value_or(kernel_size), padding}) {
    check_window("MaxPool2d", this->window_, true);
}

template <typename T>
const Matrix<T>& BasicMaxPool2d<T>::forward(const Matrix<T>& input) {
    this->check_window_input(input);
    const WindowGeometry& g = this->geometry_;
    const Window& w = this->window_;
    const std::size_t batch = input.shape(0), out_size = g.channels * g.out_positions();
    ensure_shape(output_, batch, out_size);
    argmax_.resize({batch, out_size});
    run_parts(parts_for(batch), batch, [&](int, std::size_t first, std::size_t end) {
        for (std::size_t n = first; n < end; ++n)
            for (std::size_t c = 0; c < g.channels; ++c) {
                const T* x = input.data() + n * g.in_size() + c * g.positions();
                const std::size_t out_offset = n * out_size + c * g.out_positions();
                for (std::size_t oh = 0; oh < g.out_height; ++oh)
                    for (std::size_t ow = 0; ow < g.out_width; ++ow) {
                        // y = max over the window's pixels inside the image
                        T best = -std::numeric_limits<T>::infinity();
                        std::size_t best_index = 0;
                        bool found = false;
                        for (std::size_t kh = 0; kh < w.kernel; ++kh) {
                            const long ih = long(oh * w.stride + kh) - long(w.padding);
                            if (ih < 0 || ih >= long(g.height)) continue;
                            for (std::size_t kw = 0; kw < w.kernel; ++kw) {
                                const long iw = long(ow * w.stride + kw) - long(w.padding);
                                if (iw < 0 || iw >= long(g.width)) continue;
                                const std::size_t index = std::size_t(ih) * g.width + std::size_t(iw);
                                const T value = x[index];
                                if (!found || value > best || std::isnan(value)) {
                                    best = value;
                                    best_index = index;
                                    found = true;
                                    if (std::isnan(value)) break;
                                }
                            }
                            if (found && std::isnan(best)) break;
                        }
                        const std::size_t out = out_offset + oh * g.out_width + ow;
                        output_.data()[out] = best;
                        argmax_.data()[out] = std::uint32_t(c * g.positions() + best_index);
                    }
            }
    });
    return output_;
}

template <typename T>
const Matrix<T>& BasicMaxPool2d<T>::backward(const Matrix<T>& grad_output) {
    const WindowGeometry& g = this->geometry_;
    const std::size_t batch = output_.shape(0), out_size = output_.shape(1);
    this->check_grad_output(grad_output, batch, out_size);
    if (!this->input_grad_needed_) return this->no_input_grad();
    ensure_shape(grad_input_, batch, g.in_size());
    // dx[argmax] += dy; every other pixel gets 0
    std::fill(grad_input_.begin(), grad_input_.end(), T(0));
    for (std::size_t n = 0; n < batch; ++n) {
        const T* __restrict dy = grad_output.data() + n * out_size;
        const std::uint32_t* __restrict where = argmax_.data() + n * out_size;
        T* __restrict dx = grad_input_.data() + n * g.in_size();
        for (std::size_t j = 0; j < out_size; ++j)
            dx[where[j]] += dy[j];
    }
    return grad_input_;
}

template class BasicMaxPool2d<float>;
template class BasicMaxPool2d<double>;

}  // namespace bnlab
