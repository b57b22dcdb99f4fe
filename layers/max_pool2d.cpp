#include "layers/max_pool2d.hpp"

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// The usual 2x2 window with stride 2: outputs [first, end) of one output row, whose window
// rows are `upper` and `lower` (W apart in the channel, the first at position `top`).
template <typename T>
void max_pool_row_2x2_scalar(const T* __restrict upper, const T* __restrict lower,
                             std::uint32_t top, std::uint32_t W, std::uint32_t first,
                             std::uint32_t end, T* __restrict best,
                             std::uint32_t* __restrict best_at) {
    for (std::uint32_t ow = first; ow < end; ++ow) {
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

template <typename T>
void max_pool_row_2x2(const T* __restrict upper, const T* __restrict lower, std::uint32_t top,
                      std::uint32_t W, std::uint32_t first, std::uint32_t end, T* __restrict best,
                      std::uint32_t* __restrict best_at) {
    max_pool_row_2x2_scalar(upper, lower, top, W, first, end, best, best_at);
}

#if defined(__SSE2__)
// Four outputs at a time with SSE2 (every x86-64 CPU has it), which GCC does not do for the loop
// above (the pixels of neighbouring windows interleave): the even and odd pixels of 8 are split
// by two shuffles, and the rule is applied with compare masks. MaxPool2d(2) forward of
// 128 x 16 x 28 x 28 from 4.7 to 1.9 ms on one core of the 2-core Emerald Rapids VM.
template <>
void max_pool_row_2x2(const float* __restrict upper, const float* __restrict lower,
                      std::uint32_t top, std::uint32_t W, std::uint32_t first, std::uint32_t end,
                      float* __restrict best, std::uint32_t* __restrict best_at) {
    // where wins: candidate, else current
    const auto select = [](__m128 wins, __m128 candidate, __m128 current) {
        return _mm_or_ps(_mm_and_ps(wins, candidate), _mm_andnot_ps(wins, current));
    };
    const auto select_at = [](__m128 wins, __m128i candidate, __m128i current) {
        const __m128i mask = _mm_castps_si128(wins);
        return _mm_or_si128(_mm_and_si128(mask, candidate), _mm_andnot_si128(mask, current));
    };
    // wins = v > best or v is NaN
    const auto beats = [](__m128 v, __m128 current) {
        return _mm_or_ps(_mm_cmpgt_ps(v, current), _mm_cmpunord_ps(v, v));
    };
    std::uint32_t ow = first;
    for (; ow + 4 <= end; ow += 4) {
        const __m128 upper_a = _mm_loadu_ps(upper + 2 * ow),
                     upper_b = _mm_loadu_ps(upper + 2 * ow + 4);
        const __m128 lower_a = _mm_loadu_ps(lower + 2 * ow),
                     lower_b = _mm_loadu_ps(lower + 2 * ow + 4);
        const __m128 v0 = _mm_shuffle_ps(upper_a, upper_b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 v1 = _mm_shuffle_ps(upper_a, upper_b, _MM_SHUFFLE(3, 1, 3, 1));
        const __m128 v2 = _mm_shuffle_ps(lower_a, lower_b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 v3 = _mm_shuffle_ps(lower_a, lower_b, _MM_SHUFFLE(3, 1, 3, 1));
        const __m128i at0 =
            _mm_add_epi32(_mm_set1_epi32(int(top + 2 * ow)), _mm_setr_epi32(0, 2, 4, 6));
        __m128 wins = beats(v1, v0);
        __m128 value = select(wins, v1, v0);
        __m128i at = select_at(wins, _mm_add_epi32(at0, _mm_set1_epi32(1)), at0);
        wins = beats(v2, value);
        value = select(wins, v2, value);
        at = select_at(wins, _mm_add_epi32(at0, _mm_set1_epi32(int(W))), at);
        wins = beats(v3, value);
        value = select(wins, v3, value);
        at = select_at(wins, _mm_add_epi32(at0, _mm_set1_epi32(int(W + 1))), at);
        _mm_storeu_ps(best + ow, value);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(best_at + ow), at);
    }
    // The last outputs: the last four again when there are four (recomputing an output gives the
    // same value), else one at a time.
    if (ow < end && end - first >= 4)
        max_pool_row_2x2(upper, lower, top, W, end - 4, end, best, best_at);
    else
        max_pool_row_2x2_scalar(upper, lower, top, W, ow, end, best, best_at);
}
#endif

template <typename T>
void max_pool_channel_2x2(const T* __restrict x, const WindowGeometry& g, T* __restrict y,
                          std::uint32_t* __restrict where) {
    const std::uint32_t W = std::uint32_t(g.width), OW = std::uint32_t(g.out_width);
    for (std::uint32_t oh = 0; oh < std::uint32_t(g.out_height); ++oh) {
        const std::uint32_t top = 2 * oh * W;
        max_pool_row_2x2<T>(x + top, x + top + W, top, W, 0, OW, y + oh * OW, where + oh * OW);
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
