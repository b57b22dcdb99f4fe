#include "layers/max_pool2d.hpp"

#include <algorithm>

#include "framework/blas_threads.hpp"

namespace bnlab {

template <typename T>
BasicMaxPool2d<T>::BasicMaxPool2d(std::size_t kernel_size, std::optional<std::size_t> stride,
                                  std::size_t padding)
    : BasicWindowLayer<T>(Window{kernel_size, stride.value_or(kernel_size), padding}) {
    check_window("MaxPool2d", this->window_, true);
}

namespace {

// Max pooling of one channel [H, W] -> [OH, OW], with each output's index of its maximum in the
// channel. The first largest value in row-major window order wins, and a NaN wins over anything
// before it (PyTorch's rule: value > best or isnan(value)), so a NaN input gives a NaN output.
// The rule is written as selects, not branches: which pixel wins is unpredictable on real
// activations, and mispredicted branches made this layer a third of the CNN's training step.

// The usual 2x2 window with stride 2, each output's four pixels read at once (1.75 -> 1.0 ms for
// 128 x 16 x 28 x 28 on one core against the general loop below).
template <typename T>
void max_pool_channel_2x2(const T* __restrict x, const WindowGeometry& g, T* __restrict y,
                          std::uint32_t* __restrict where) {
    const std::uint32_t W = std::uint32_t(g.width), OW = std::uint32_t(g.out_width);
    for (std::uint32_t oh = 0; oh < std::uint32_t(g.out_height); ++oh) {
        const std::uint32_t top = 2 * oh * W;
        const T* __restrict upper = x + top;
        const T* __restrict lower = upper + W;
        T* __restrict best = y + oh * OW;
        std::uint32_t* __restrict best_at = where + oh * OW;
        // Four named values and 32-bit positions rather than a loop over the window: GCC
        // vectorizes this loop, not that one.
        for (std::uint32_t ow = 0; ow < OW; ++ow) {
            const T v0 = upper[2 * ow], v1 = upper[2 * ow + 1], v2 = lower[2 * ow],
                    v3 = lower[2 * ow + 1];
            const std::uint32_t at0 = top + 2 * ow;
            const bool wins1 = (v1 > v0) | (v1 != v1);
            T value = wins1 ? v1 : v0;
            std::uint32_t at = wins1 ? at0 + 1 : at0;
            const bool wins2 = (v2 > value) | (v2 != v2);
            value = wins2 ? v2 : value;
            at = wins2 ? at0 + W : at;
            const bool wins3 = (v3 > value) | (v3 != v3);
            value = wins3 ? v3 : value;
            at = wins3 ? at0 + W + 1 : at;
            best[ow] = value;
            best_at[ow] = at;
        }
    }
}

// Any window. Padding never wins a maximum, so each window is cut to its pixels inside the image.
template <typename T>
void max_pool_channel_any(const T* __restrict x, const WindowGeometry& g, const Window& w,
                          T* __restrict y, std::uint32_t* __restrict where) {
    const long H = long(g.height), W = long(g.width), k = long(w.kernel), s = long(w.stride),
               p = long(w.padding);
    const long OH = long(g.out_height), OW = long(g.out_width);
    for (long oh = 0; oh < OH; ++oh) {
        const long top = oh * s - p;
        const long kh_first = std::max(0L, -top), kh_end = std::min(k, H - top);
        for (long ow = 0; ow < OW; ++ow) {
            const long left = ow * s - p;
            const long kw_first = std::max(0L, -left), kw_end = std::min(k, W - left);
            long best_at = (top + kh_first) * W + left + kw_first;
            T best = x[best_at];
            for (long kh = kh_first; kh < kh_end; ++kh)
                for (long kw = kw_first; kw < kw_end; ++kw) {
                    const long at = (top + kh) * W + left + kw;
                    const T value = x[at];
                    const bool wins = value > best || value != value;
                    best = wins ? value : best;
                    best_at = wins ? at : best_at;
                }
            // y = max over the window's pixels inside the image
            y[oh * OW + ow] = best;
            where[oh * OW + ow] = std::uint32_t(best_at);
        }
    }
}

}  // namespace

template <typename T>
void max_pool_channel(const T* x, const WindowGeometry& g, const Window& w, T* y,
                      std::uint32_t* where) {
    if (w.kernel == 2 && w.stride == 2 && w.padding == 0)
        max_pool_channel_2x2(x, g, y, where);
    else
        max_pool_channel_any(x, g, w, y, where);
}

template <typename T>
const Matrix<T>& BasicMaxPool2d<T>::forward(const Matrix<T>& input) {
    this->check_window_input(input);
    const WindowGeometry& g = this->geometry_;
    const std::size_t batch = input.shape(0), out_size = g.channels * g.out_positions();
    ensure_shape(output_, batch, out_size);
    argmax_.resize({batch, out_size});
    run_parts(parts_for(batch), batch, [&](int, std::size_t first, std::size_t end) {
        for (std::size_t n = first; n < end; ++n)
            for (std::size_t c = 0; c < g.channels; ++c) {
                const std::size_t out_offset = n * out_size + c * g.out_positions();
                std::uint32_t* where = argmax_.data() + out_offset;
                const T* x = input.data() + n * g.in_size() + c * g.positions();
                max_pool_channel(x, g, this->window_, output_.data() + out_offset, where);
                // Indices into the sample's row, for backward.
                for (std::size_t j = 0; j < g.out_positions(); ++j)
                    where[j] += std::uint32_t(c * g.positions());
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
    run_parts(parts_for(batch), batch, [&](int, std::size_t first, std::size_t end) {
        for (std::size_t n = first; n < end; ++n) {
            const T* __restrict dy = grad_output.data() + n * out_size;
            const std::uint32_t* __restrict where = argmax_.data() + n * out_size;
            T* __restrict dx = grad_input_.data() + n * g.in_size();
            // dx[argmax] += dy; every other pixel gets 0
            std::fill_n(dx, g.in_size(), T(0));
            for (std::size_t j = 0; j < out_size; ++j)
                dx[where[j]] += dy[j];
        }
    });
    return grad_input_;
}

template void max_pool_channel(const float*, const WindowGeometry&, const Window&, float*,
                               std::uint32_t*);
template void max_pool_channel(const double*, const WindowGeometry&, const Window&, double*,
                               std::uint32_t*);
template class BasicMaxPool2d<float>;
template class BasicMaxPool2d<double>;

}  // namespace bnlab
