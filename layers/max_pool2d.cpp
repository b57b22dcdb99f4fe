#include "layers/max_pool2d.hpp"

#include <algorithm>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "framework/blas_threads.hpp"
#include "framework/simd.hpp"

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
// rows are `upper` and `lower` (W apart in the channel, the first at position `top`). Each pixel
// is read through `pixel` (PoolPixel: the value, or a fused block's normalize-and-ReLU of it);
// `input_at_best`, unless null, gets each maximum's input value.
template <typename T, typename Pixel>
void max_pool_row_2x2_scalar(const T* __restrict upper, const T* __restrict lower,
                             std::uint32_t top, std::uint32_t W, std::uint32_t first,
                             std::uint32_t end, const Pixel& pixel, T* __restrict best,
                             std::uint32_t* __restrict best_at, T* __restrict input_at_best) {
    for (std::uint32_t ow = first; ow < end; ++ow) {
        const T x0 = upper[2 * ow], x1 = upper[2 * ow + 1], x2 = lower[2 * ow],
                x3 = lower[2 * ow + 1];
        const T v0 = pixel(x0), v1 = pixel(x1), v2 = pixel(x2), v3 = pixel(x3);
        const std::uint32_t at0 = top + 2 * ow;
        const bool wins1 = (v1 > v0) | (v1 != v1);
        T value = wins1 ? v1 : v0, input = wins1 ? x1 : x0;
        std::uint32_t at = wins1 ? at0 + 1 : at0;
        const bool wins2 = (v2 > value) | (v2 != v2);
        value = wins2 ? v2 : value;
        input = wins2 ? x2 : input;
        at = wins2 ? at0 + W : at;
        const bool wins3 = (v3 > value) | (v3 != v3);
        value = wins3 ? v3 : value;
        input = wins3 ? x3 : input;
        at = wins3 ? at0 + W + 1 : at;
        best[ow] = value;
        best_at[ow] = at;
        if (input_at_best) input_at_best[ow] = input;
    }
}

template <typename T, typename Pixel>
void max_pool_row_2x2(const T* __restrict upper, const T* __restrict lower, std::uint32_t top,
                      std::uint32_t W, std::uint32_t first, std::uint32_t end, const Pixel& pixel,
                      T* __restrict best, std::uint32_t* __restrict best_at,
                      T* __restrict input_at_best) {
    max_pool_row_2x2_scalar(upper, lower, top, W, first, end, pixel, best, best_at, input_at_best);
}

#if defined(__SSE2__)
// Four outputs at a time with SSE2 (every x86-64 CPU has it), which GCC does not do for the loop
// above (the pixels of neighbouring windows interleave): the even and odd pixels of 8 are split
// by two shuffles, and the rule is applied with compare masks. MaxPool2d(2) forward of
// 128 x 16 x 28 x 28 from 4.7 to 1.9 ms on one core of the 2-core Emerald Rapids VM. CPUs with
// AVX2 run max_pool_channel_2x2_avx2 instead (layers/simd_avx2.cpp).

// The pixel transforms on 4 floats at once, the same operations in the same order.
inline __m128 pixel_vector(const PoolPixel<float>& pixel, __m128 x) {
    if (!pixel.normalize) return x;
    // gamma ((x - mu) inv_std) + beta, then relu (unless pixel.relu is false): 0 where < 0
    // (a NaN stays)
    const __m128 x_hat =
        _mm_mul_ps(_mm_sub_ps(x, _mm_set1_ps(pixel.mean)), _mm_set1_ps(pixel.inv_std));
    const __m128 y =
        _mm_add_ps(_mm_mul_ps(_mm_set1_ps(pixel.gamma), x_hat), _mm_set1_ps(pixel.beta));
    if (!pixel.relu) return y;
    return _mm_andnot_ps(_mm_cmplt_ps(y, _mm_setzero_ps()), y);
}

void max_pool_row_2x2(const float* __restrict upper, const float* __restrict lower,
                      std::uint32_t top, std::uint32_t W, std::uint32_t first, std::uint32_t end,
                      const PoolPixel<float>& pixel, float* __restrict best,
                      std::uint32_t* __restrict best_at, float* __restrict input_at_best) {
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
    // the even and the odd pixels of 8
    const auto even = [](__m128 a, __m128 b) {
        return _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    };
    const auto odd = [](__m128 a, __m128 b) {
        return _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    };
    std::uint32_t ow = first;
    for (; ow + 4 <= end; ow += 4) {
        const __m128 upper_a = _mm_loadu_ps(upper + 2 * ow),
                     upper_b = _mm_loadu_ps(upper + 2 * ow + 4);
        const __m128 lower_a = _mm_loadu_ps(lower + 2 * ow),
                     lower_b = _mm_loadu_ps(lower + 2 * ow + 4);
        const __m128 pixel_upper_a = pixel_vector(pixel, upper_a),
                     pixel_upper_b = pixel_vector(pixel, upper_b),
                     pixel_lower_a = pixel_vector(pixel, lower_a),
                     pixel_lower_b = pixel_vector(pixel, lower_b);
        const __m128 v0 = even(pixel_upper_a, pixel_upper_b),
                     v1 = odd(pixel_upper_a, pixel_upper_b);
        const __m128 v2 = even(pixel_lower_a, pixel_lower_b),
                     v3 = odd(pixel_lower_a, pixel_lower_b);
        const __m128i at0 =
            _mm_add_epi32(_mm_set1_epi32(int(top + 2 * ow)), _mm_setr_epi32(0, 2, 4, 6));
        __m128 wins1 = beats(v1, v0);
        __m128 value = select(wins1, v1, v0);
        __m128i at = select_at(wins1, _mm_add_epi32(at0, _mm_set1_epi32(1)), at0);
        const __m128 wins2 = beats(v2, value);
        value = select(wins2, v2, value);
        at = select_at(wins2, _mm_add_epi32(at0, _mm_set1_epi32(int(W))), at);
        const __m128 wins3 = beats(v3, value);
        value = select(wins3, v3, value);
        at = select_at(wins3, _mm_add_epi32(at0, _mm_set1_epi32(int(W + 1))), at);
        _mm_storeu_ps(best + ow, value);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(best_at + ow), at);
        if (input_at_best) {
            __m128 input = select(wins1, odd(upper_a, upper_b), even(upper_a, upper_b));
            input = select(wins2, even(lower_a, lower_b), input);
            input = select(wins3, odd(lower_a, lower_b), input);
            _mm_storeu_ps(input_at_best + ow, input);
        }
    }
    // The last outputs: the last four again when there are four (recomputing an output gives the
    // same value), else one at a time.
    if (ow < end && end - first >= 4)
        max_pool_row_2x2(upper, lower, top, W, end - 4, end, pixel, best, best_at, input_at_best);
    else
        max_pool_row_2x2_scalar(upper, lower, top, W, ow, end, pixel, best, best_at, input_at_best);
}
#endif

template <typename T>
void max_pool_channel_2x2(const T* __restrict x, const WindowGeometry& g, const PoolPixel<T>& pixel,
                          T* __restrict y, std::uint32_t* __restrict where,
                          T* __restrict input_at_max) {
    const std::uint32_t W = std::uint32_t(g.width), OW = std::uint32_t(g.out_width);
#if defined(__x86_64__)
    if constexpr (std::is_same_v<T, float>) {
        if (layers_use_avx512())
            return max_pool_channel_2x2_avx512(x, std::uint32_t(g.height), W,
                                               std::uint32_t(g.out_height), OW, pixel, y, where,
                                               input_at_max);
        if (layers_use_avx2())
            return max_pool_channel_2x2_avx2(x, std::uint32_t(g.height), W,
                                             std::uint32_t(g.out_height), OW, pixel, y, where,
                                             input_at_max);
    }
#endif
    for (std::uint32_t oh = 0; oh < std::uint32_t(g.out_height); ++oh) {
        const std::uint32_t top = 2 * oh * W;
        max_pool_row_2x2(x + top, x + top + W, top, W, 0, OW, pixel, y + oh * OW, where + oh * OW,
                         input_at_max ? input_at_max + oh * OW : nullptr);
    }
}

// Any window. Padding never wins a maximum, so each window is cut to its pixels inside the image.
template <typename T>
void max_pool_channel_any(const T* __restrict x, const WindowGeometry& g, const Window& w,
                          const PoolPixel<T>& pixel, T* __restrict y,
                          std::uint32_t* __restrict where, T* __restrict input_at_max) {
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
            T best = pixel(x[best_at]);
            for (long kh = kh_first; kh < kh_end; ++kh)
                for (long kw = kw_first; kw < kw_end; ++kw) {
                    const long at = (top + kh) * W + left + kw;
                    const T value = pixel(x[at]);
                    const bool wins = value > best || value != value;
                    best = wins ? value : best;
                    best_at = wins ? at : best_at;
                }
            // y = max over the window's pixels inside the image
            y[oh * OW + ow] = best;
            where[oh * OW + ow] = std::uint32_t(best_at);
            if (input_at_max) input_at_max[oh * OW + ow] = x[best_at];
        }
    }
}

}  // namespace

template <typename T>
void max_pool_channel(const T* x, const WindowGeometry& g, const Window& w,
                      const PoolPixel<T>& pixel, T* y, std::uint32_t* where, T* input_at_max) {
    if (w.kernel == 2 && w.stride == 2 && w.padding == 0)
        max_pool_channel_2x2(x, g, pixel, y, where, input_at_max);
    else
        max_pool_channel_any(x, g, w, pixel, y, where, input_at_max);
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
                max_pool_channel(x, g, this->window_, PoolPixel<T>{}, output_.data() + out_offset,
                                 where);
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

void apply_pixel(const float* x, std::size_t n, const PoolPixel<float>& pixel, float* y) {
#if defined(__x86_64__)
    if (layers_use_avx2()) return apply_pixel_avx2(x, n, pixel, y);
#endif
    apply_pixel<float>(x, n, pixel, y);
}

template void max_pool_channel(const float*, const WindowGeometry&, const Window&,
                               const PoolPixel<float>&, float*, std::uint32_t*, float*);
template void max_pool_channel(const double*, const WindowGeometry&, const Window&,
                               const PoolPixel<double>&, double*, std::uint32_t*, double*);
template class BasicMaxPool2d<float>;
template class BasicMaxPool2d<double>;

}  // namespace bnlab
