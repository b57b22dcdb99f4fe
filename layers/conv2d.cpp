#include "layers/conv2d.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <cstring>
#include <type_traits>

#include "framework/blas_threads.hpp"
#include "framework/direct_conv.hpp"
#include "layers/conv_block.hpp"

namespace bnlab {

namespace {

std::string conv_name(const Conv2dOptions& options) {
    return "Conv2d(" + std::to_string(options.in_channels()) + " -> " +
           std::to_string(options.out_channels()) + ", " + std::to_string(options.window().kernel) +
           "x" + std::to_string(options.window().kernel) + ")";
}

// BNLAB_CONV: the algorithm of every Conv2d whose options say automatic.
ConvAlgorithm algorithm_from_environment() {
    const char* value = std::getenv("BNLAB_CONV");
    if (!value || !*value || std::strcmp(value, "auto") == 0) return ConvAlgorithm::automatic;
    if (std::strcmp(value, "im2col") == 0) return ConvAlgorithm::im2col;
    if (std::strcmp(value, "direct") == 0) return ConvAlgorithm::direct;
    throw std::invalid_argument("BNLAB_CONV: expected auto, im2col or direct, got '" +
                                std::string(value) + "'");
}

}  // namespace

template <typename T>
BasicConv2d<T>::BasicConv2d(const Conv2dOptions& options, Rng& rng)
    : BasicWindowLayer<T>(options.window()),
      options_(options),
      algorithm_(options.algorithm() == ConvAlgorithm::automatic ? algorithm_from_environment()
                                                                 : options.algorithm()),
      weight_(allocate_tensor<T, 2>(
          {options.out_channels(),
           options.in_channels() * options.window().kernel * options.window().kernel},
          conv_name(options) + "'s weight", false)),
      bias_(xt::zeros<T>({options.out_channels()})),
      weight_grad_(allocate_tensor<T, 2>({weight_.shape(0), weight_.shape(1)},
                                         conv_name(options) + "'s weight gradient")),
      bias_grad_(xt::zeros<T>({options.out_channels()})) {
    if (options.in_channels() == 0 || options.out_channels() == 0)
        throw std::invalid_argument("Conv2d: channels must be positive, got " +
                                    std::to_string(options.in_channels()) + " -> " +
                                    std::to_string(options.out_channels()));
    check_window("Conv2d", options.window(), false);
    if (options.algorithm() == ConvAlgorithm::direct) {
        const Window& window = options.window();
        if (window.kernel != 3 || window.stride != 1 || window.padding != 1 ||
            !std::is_same_v<T, float>)
            throw std::invalid_argument(
                "Conv2d: the direct algorithm computes 3x3 convolutions with stride 1 and "
                "padding 1 on float, got " +
                window_string(window) + (std::is_same_v<T, float> ? "" : " on double"));
        if (!direct_conv_available())
            throw std::invalid_argument(
                "Conv2d: the direct algorithm needs a CPU with AVX2 and FMA, which this one "
                "lacks; use ConvAlgorithm::im2col or automatic");
    }
    const double fan_in = double(weight_.shape(1));
    const double bound = 1.0 / std::sqrt(fan_in);
    for (T& w : weight_)
        w = static_cast<T>(rng.uniform(-bound, bound));
    if (options.bias())
        for (T& b : bias_)
            b = static_cast<T>(rng.uniform(-bound, bound));
}

template <typename T>
bool BasicConv2d<T>::input_is_columns() const {
    const Window& window = options_.window();
    return window.kernel == 1 && window.stride == 1 && window.padding == 0;
}

namespace {

// The output columns [first, end) of one kernel offset whose input column
// ow s - padding + offset lies inside [0, width): the others read padding.
struct Inside {
    std::size_t first, end;
};
Inside inside_columns(std::size_t out_width, std::size_t width, const Window& window,
                      std::size_t offset) {
    const long s = long(window.stride), shift = long(offset) - long(window.padding);
    // ow s + shift >= 0  and  ow s + shift < width
    const long first = shift >= 0 ? 0 : (-shift + s - 1) / s;
    const long end = long(width) - shift <= 0 ? 0 : (long(width) - shift + s - 1) / s;
    const std::size_t clamped_end = std::size_t(std::clamp(end, 0L, long(out_width)));
    return {std::min(std::size_t(first), clamped_end), clamped_end};
}

// A stride-1 convolution whose output is as wide as its input (2 padding = kernel - 1, the
// usual 3x3 with padding 1): each row of the column matrix is the channel's image shifted by
// (kh - p, kw - p), so it is copied as one run of the whole plane, then the columns that
// wrapped around from the next or previous image row, and the rows above or below the image,
// are set to 0. The general loops below copy one image row at a time (28 floats at a time for
// the cnn preset), and the calls cost more than the copying.
bool shifts_planes(const WindowGeometry& g, const Window& window) {
    return window.stride == 1 && g.out_width == g.width && g.out_height == g.height;
}

// The image rows [first, end) of the plane read by shift (dh, dw), and the run of positions
// [run_first, run_end) copied from plane + position + dh W + dw, all inside the plane.
struct ShiftedRun {
    std::size_t first, end, run_first, run_end;
};
ShiftedRun shifted_run(const WindowGeometry& g, long dh, long dw) {
    const long H = long(g.height), W = long(g.width);
    const long first = std::clamp(-dh, 0L, H), end = std::clamp(H - dh, first, H);
    // within the rows' positions [first W, end W) also when |dw| >= W (a 1-wide image)
    const long run_first = std::min(first * W + std::max(0L, -dw), end * W);
    return {std::size_t(first), std::size_t(end), std::size_t(run_first),
            std::size_t(std::max(run_first, end * W - std::max(0L, dw)))};
}

// Sets to 0 the positions of rows [first, end) whose column ow + dw is outside the image (one
// or two a row: stores, not calls).
template <typename T>
void zero_wrapped_columns(T* __restrict row, const WindowGeometry& g, const ShiftedRun& run,
                          long dw) {
    const std::size_t W = g.width, edge = std::size_t(std::min(long(W), std::labs(dw)));
    const std::size_t from = dw < 0 ? 0 : W - edge;
    for (std::size_t oh = run.first; oh < run.end; ++oh)
        for (std::size_t j = 0; j < edge; ++j)
            row[oh * W + from + j] = T(0);
}

// Calls body(row, plane, run, shift, dw) for each row (c, kh, kw) of the column matrix: its
// offset in the matrix, its channel's offset in the image, the run shifted_run gives, and the
// shift dh W + dw.
template <typename Body>
void for_each_shifted_row(const WindowGeometry& g, const Window& window, Body body) {
    const std::size_t k = window.kernel, P = g.positions();
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t kh = 0; kh < k; ++kh)
            for (std::size_t kw = 0; kw < k; ++kw) {
                const long dh = long(kh) - long(window.padding),
                           dw = long(kw) - long(window.padding);
                body(((c * k + kh) * k + kw) * P, c * P, shifted_run(g, dh, dw),
                     dh * long(g.width) + dw, dw);
            }
}

template <typename T>
void im2col_shifted(const T* __restrict image, const WindowGeometry& g, const Window& window,
                    T* __restrict col) {
    const std::size_t P = g.positions();
    for_each_shifted_row(g, window,
                         [&](std::size_t row_offset, std::size_t plane_offset,
                             const ShiftedRun& run, long shift, long dw) {
                             T* __restrict row = col + row_offset;
                             const T* __restrict plane = image + plane_offset;
                             // col[p] = x[p + dh W + dw], 0 above and below the image
                             std::fill(row, row + run.run_first, T(0));
                             std::copy(plane + (long(run.run_first) + shift),
                                       plane + (long(run.run_end) + shift), row + run.run_first);
                             std::fill(row + run.run_end, row + P, T(0));
                             zero_wrapped_columns(row, g, run, dw);
                         });
}

// Its adjoint; the wrapped columns of `col` (a scratch) are set to 0 first, so that the rest is
// one run of additions.
template <typename T>
void col2im_shifted(T* __restrict col, const WindowGeometry& g, const Window& window,
                    T* __restrict image) {
    for_each_shifted_row(g, window,
                         [&](std::size_t row_offset, std::size_t plane_offset,
                             const ShiftedRun& run, long shift, long dw) {
                             T* __restrict row = col + row_offset;
                             T* __restrict plane = image + plane_offset;
                             zero_wrapped_columns(row, g, run, dw);
                             // x[p + dh W + dw] += col[p]
                             for (std::size_t p = run.run_first; p < run.run_end; ++p)
                                 plane[long(p) + shift] += row[p];
                         });
}

// col[(c k + kh) k + kw, oh OW + ow] = x[c, oh s - p + kh, ow s - p + kw], 0 outside the image.
// image: [C, H, W] -> col: [C k k, OH OW]
template <typename T>
void im2col(const T* __restrict image, const WindowGeometry& g, const Window& window,
            T* __restrict col) {
    if (shifts_planes(g, window)) return im2col_shifted(image, g, window, col);
    const std::size_t k = window.kernel, s = window.stride, OW = g.out_width;
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t kh = 0; kh < k; ++kh)
            for (std::size_t kw = 0; kw < k; ++kw) {
                T* row = col + ((c * k + kh) * k + kw) * g.out_positions();
                const Inside inside = inside_columns(OW, g.width, window, kw);
                for (std::size_t oh = 0; oh < g.out_height; ++oh) {
                    T* out = row + oh * OW;
                    const long ih = long(oh * s + kh) - long(window.padding);
                    if (ih < 0 || ih >= long(g.height) || inside.first == inside.end) {
                        std::fill_n(out, OW, T(0));
                        continue;
                    }
                    const T* in = image + (c * g.height + std::size_t(ih)) * g.width;
                    const std::size_t start = inside.first * s + kw - window.padding;
                    std::fill(out, out + inside.first, T(0));
                    // x[c, ih, ow s - p + kw], from the first ow inside the image (a contiguous
                    // run for stride 1, the usual case, which the loop below would not make a
                    // plain copy of)
                    if (s == 1)
                        std::copy_n(in + start, inside.end - inside.first, out + inside.first);
                    else
                        for (std::size_t ow = inside.first; ow < inside.end; ++ow)
                            out[ow] = in[start + (ow - inside.first) * s];
                    std::fill(out + inside.end, out + OW, T(0));
                }
            }
}

// The adjoint of im2col: every column entry is added back to the pixel it was copied from.
// col: [C k k, OH OW] -> image: [C, H, W] (added to; padding entries are dropped). `col` is a
// scratch, which the shifted-plane path changes.
template <typename T>
void col2im(T* __restrict col, const WindowGeometry& g, const Window& window, T* __restrict image) {
    if (shifts_planes(g, window)) return col2im_shifted(col, g, window, image);
    const std::size_t k = window.kernel, s = window.stride, OW = g.out_width;
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t kh = 0; kh < k; ++kh)
            for (std::size_t kw = 0; kw < k; ++kw) {
                const T* row = col + ((c * k + kh) * k + kw) * g.out_positions();
                const Inside inside = inside_columns(OW, g.width, window, kw);
                for (std::size_t oh = 0; oh < g.out_height; ++oh) {
                    const long ih = long(oh * s + kh) - long(window.padding);
                    if (ih < 0 || ih >= long(g.height)) continue;
                    const T* in = row + oh * OW;
                    T* out = image + (c * g.height + std::size_t(ih)) * g.width;
                    const std::size_t start = inside.first * s + kw - window.padding;
                    if (s == 1) {
                        T* __restrict run = out + start;
                        const T* __restrict from = in + inside.first;
                        for (std::size_t j = 0; j < inside.end - inside.first; ++j)
                            run[j] += from[j];
                    } else {
                        for (std::size_t ow = inside.first; ow < inside.end; ++ow)
                            out[start + (ow - inside.first) * s] += in[ow];
                    }
                }
            }
}

// db[o] += sum_p dy[o, p] for one sample's output gradient dy [O, P].
template <typename T>
void add_bias_grad(const T* dy, std::size_t O, std::size_t P, T* db) {
    for (std::size_t o = 0; o < O; ++o) {
        const T* __restrict dy_row = dy + o * P;
        db[o] += sum_in_lanes<T>(P, [&](std::size_t p) { return dy_row[p]; });
    }
}

}  // namespace

template <typename T>
bool BasicConv2d<T>::input_grad_by_convolution() const {
    return !input_is_columns() && this->geometry_.known() &&
           shifts_planes(this->geometry_, options_.window());
}

template <typename T>
bool BasicConv2d<T>::runs_direct() const {
    if (!std::is_same_v<T, float> || !this->geometry_.known()) return false;
    // chosen in the options (checked by the constructor)
    if (options_.algorithm() != ConvAlgorithm::automatic)
        return options_.algorithm() == ConvAlgorithm::direct;
    const Window& window = options_.window();
    if (window.kernel != 3 || window.stride != 1 || window.padding != 1 || !direct_conv_available())
        return false;
    // chosen by BNLAB_CONV
    if (algorithm_ != ConvAlgorithm::automatic) return algorithm_ == ConvAlgorithm::direct;
    return direct_conv_preferred(this->geometry_.height, this->geometry_.width);
}

template <typename T>
const Matrix<T>& BasicConv2d<T>::forward(const Matrix<T>& input) {
    return forward_samples(input, [](int, std::size_t, T*) {});
}

template <typename T>
T* BasicConv2d<T>::sample_output(int part, std::size_t n, bool keep_output) {
    return keep_output ? output_.data() + n * output_.shape(1)
                       : part_output_.data() + std::size_t(part) * part_output_.shape(1);
}

template <typename T>
const Matrix<T>& BasicConv2d<T>::forward_samples(const Matrix<T>& input, AfterSample after,
                                                 bool keep_output) {
    this->check_window_input(input);
    const std::size_t batch = input.shape(0), O = options_.out_channels(), K = column_rows(),
                      P = this->geometry_.out_positions(), in_size = this->geometry_.in_size();
    const int parts = parts_for(batch);
    ensure_shape(output_, batch, O * P);
    if (!keep_output) ensure_shape(part_output_, std::size_t(parts), O * P);
    if (runs_direct()) {
        forward_direct(input, after, keep_output);
        return output_;
    }
    ensure_shape(columns_, batch, K * P);
    const bool is_columns = input_is_columns();
    run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
        for (std::size_t n = first; n < end; ++n) {
            const T* x = input.data() + n * in_size;
            T* col = columns_.data() + n * K * P;
            if (is_columns)
                std::copy_n(x, in_size, col);
            else
                im2col(x, this->geometry_, options_.window(), col);
            // y = W col, then y[o, :] += b[o] while y is in cache (filling y with the bias
            // first wrote the whole batch's maps one more time)
            T* y = sample_output(part, n, keep_output);
            gemm(false, false, O, P, K, T(1), weight_.data(), K, col, P, T(0), y, P);
            for (std::size_t o = 0; o < O; ++o) {
                T* __restrict row = y + o * P;
                const T b = bias_(o);
                for (std::size_t p = 0; p < P; ++p)
                    row[p] += b;
            }
            after(part, n, y);
        }
    });
    return output_;
}

template <typename T>
void BasicConv2d<T>::forward_direct(const Matrix<T>& input, AfterSample after, bool keep_output) {
    if constexpr (std::is_same_v<T, float>) {
        const std::size_t batch = input.shape(0), C = options_.in_channels(),
                          O = options_.out_channels(), in_size = this->geometry_.in_size();
        const PaddedImage g{this->geometry_.height, this->geometry_.width};
        const int parts = parts_for(batch);
        ensure_shape(padded_input_, batch, g.size(C));
        ensure_shape(packed_weight_, 1, packed_filters_size(O, C));
        pack_filters(weight_.data(), O, C, false, packed_weight_.data());
        const float* bias = options_.bias() ? bias_.data() : nullptr;
        run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
            for (std::size_t n = first; n < end; ++n) {
                float* x = padded_input_.data() + n * padded_input_.shape(1);
                pad_image(input.data() + n * in_size, C, g, x);
                float* y = sample_output(part, n, keep_output);
                // y[o, h, w] = b[o] + sum_{c,kh,kw} W[o, c, kh, kw] x[c, h - 1 + kh, w - 1 + kw]
                direct_conv3x3(x, C, g, packed_weight_.data(), O, bias, y);
                after(part, n, y);
            }
        });
    } else {
        (void)input, (void)after, (void)keep_output;
        throw std::logic_error("Conv2d: the direct kernels compute float only");
    }
}

template <typename T>
void BasicConv2d<T>::ensure_direct_scratch(int parts) {
    const std::size_t O = options_.out_channels();
    const PaddedImage g{this->geometry_.height, this->geometry_.width};
    // a padded dy (the input gradient's input), then dy by position for the samples whose
    // weight gradient is computed together
    ensure_shape(direct_scratch_, std::size_t(parts),
                 g.size(O) + direct_conv_weight_grad_samples * g.height * g.width *
                                 direct_conv_grad_channels(O));
}

template <typename T>
void BasicConv2d<T>::backward_direct(SampleGradient grad_of, bool input_grad) {
    if constexpr (std::is_same_v<T, float>) {
        const std::size_t batch = output_.shape(0), C = options_.in_channels(),
                          O = options_.out_channels(), K = column_rows(),
                          P = this->geometry_.out_positions(), in_size = this->geometry_.in_size();
        const PaddedImage g{this->geometry_.height, this->geometry_.width};
        const int parts = parts_for(batch);
        ensure_direct_scratch(parts);
        if (input_grad) {
            ensure_shape(grad_input_, batch, in_size);
            ensure_shape(packed_flipped_weight_, 1, packed_filters_size(C, O));
            pack_filters(weight_.data(), O, C, true, packed_flipped_weight_.data());
        }
        run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
            float* dW = weight_grad_part_.data() + std::size_t(part) * (O * K + O);
            float* db = dW + O * K;
            float* padded_dy =
                direct_scratch_.data() + std::size_t(part) * direct_scratch_.shape(1);
            float* dys_by_position = padded_dy + g.size(O);
            const std::size_t by_position_size = P * direct_conv_grad_channels(O);
            std::fill_n(dW, O * K + O, 0.f);
            for (std::size_t group = first; group < end; group += direct_conv_weight_grad_samples) {
                const std::size_t group_end =
                    std::min(end, group + direct_conv_weight_grad_samples);
                for (std::size_t n = group; n < group_end; ++n) {
                    const float* dy = grad_of(part, n);
                    add_bias_grad(dy, O, P, db);
                    order_by_position(dy, O, P, dys_by_position + (n - group) * by_position_size);
                    if (!input_grad) continue;
                    // dx[c, h, w] = sum_{o,kh,kw} W[o, c, 2 - kh, 2 - kw] dy[o, h - 1 + kh, w - 1 +
                    // kw]
                    pad_image(dy, O, g, padded_dy);
                    direct_conv3x3(padded_dy, O, g, packed_flipped_weight_.data(), C, nullptr,
                                   grad_input_.data() + n * in_size);
                }
                // dW[o, c, kh, kw] += sum_{n,h,w} dy_n[o, h, w] x_n[c, h - 1 + kh, w - 1 + kw]
                direct_conv3x3_weight_grad(padded_input_.data() + group * padded_input_.shape(1),
                                           padded_input_.shape(1), C, dys_by_position,
                                           by_position_size, O, group_end - group, g, dW);
            }
        });
    } else {
        (void)grad_of, (void)input_grad;
        throw std::logic_error("Conv2d: the direct kernels compute float only");
    }
}

template <typename T>
const Matrix<T>& BasicConv2d<T>::backward(const Matrix<T>& grad_output) {
    const std::size_t O = options_.out_channels(), P = this->geometry_.out_positions();
    this->check_grad_output(grad_output, output_.shape(0), O * P);
    return backward_samples([&](int, std::size_t n) { return grad_output.data() + n * O * P; });
}

template <typename T>
const Matrix<T>& BasicConv2d<T>::backward_samples(SampleGradient grad_of) {
    if (runs_direct()) {
        const std::size_t O = options_.out_channels();
        const int parts = parts_for(output_.shape(0));
        ensure_shape(weight_grad_part_, std::size_t(parts), O * column_rows() + O);
        backward_direct(grad_of, this->input_grad_needed_);
        add_weight_grad_parts(parts);
        if (!this->input_grad_needed_) return this->no_input_grad();
        return grad_input_;
    }
    const std::size_t batch = columns_.shape(0), O = options_.out_channels(), K = column_rows(),
                      P = this->geometry_.out_positions(), in_size = this->geometry_.in_size();
    const bool input_grad = this->input_grad_needed_, is_columns = input_is_columns();
    const Window& window = options_.window();
    // A stride-1 convolution as large as its input: its input gradient is the convolution of
    // dy with the filters flipped (in and out channels swapped), one product [C, O k k] .
    // [O k k, P] into dx. Through col2im instead, the product W^T dy has only O terms per entry
    // (16 in ResNet's first stage) and writes a [C k k, P] matrix, which OpenBLAS clears first
    // and col2im reads again: ResNet-20's step was 15 % slower so.
    const bool by_convolution = input_grad && input_grad_by_convolution();
    const std::size_t C = options_.in_channels(), OKK = O * window.kernel * window.kernel;
    const WindowGeometry output_geometry{O, this->geometry_.out_height, this->geometry_.out_width,
                                         this->geometry_.out_height, this->geometry_.out_width};
    const int parts = parts_for(batch);
    ensure_shape(weight_grad_part_, std::size_t(parts), O * K + O);
    if (input_grad) {
        ensure_shape(grad_input_, batch, in_size);
        if (!is_columns)
            ensure_shape(column_grad_, std::size_t(parts), (by_convolution ? OKK : K) * P);
    }
    if (by_convolution) {
        ensure_shape(flipped_weight_, C, OKK);
        const std::size_t k = window.kernel;
        // W'[c, (o k + kh) k + kw] = W[o, c, k-1-kh, k-1-kw]
        for (std::size_t o = 0; o < O; ++o)
            for (std::size_t c = 0; c < C; ++c)
                for (std::size_t kh = 0; kh < k; ++kh)
                    for (std::size_t kw = 0; kw < k; ++kw)
                        flipped_weight_(c, (o * k + kh) * k + kw) =
                            weight_(o, (c * k + (k - 1 - kh)) * k + (k - 1 - kw));
    }
    run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
        T* dW = weight_grad_part_.data() + std::size_t(part) * (O * K + O);
        T* db = dW + O * K;
        std::fill_n(dW, O * K + O, T(0));
        for (std::size_t n = first; n < end; ++n) {
            const T* dy = grad_of(part, n);
            add_bias_grad(dy, O, P, db);
            const T* col = columns_.data() + n * K * P;
            // dW += dy col^T
            gemm(false, true, O, K, P, T(1), dy, P, col, P, T(1), dW, K);
            if (!input_grad) continue;
            T* dx = grad_input_.data() + n * in_size;
            if (is_columns) {
                // dx = W^T dy
                gemm(true, false, K, P, O, T(1), weight_.data(), K, dy, P, T(0), dx, P);
                continue;
            }
            if (by_convolution) {
                // dx[c, h, w] = sum_{o,kh,kw} W'[c, o, kh, kw] dy[o, h - p + kh, w - p + kw]
                T* dy_col = column_grad_.data() + std::size_t(part) * OKK * P;
                im2col(dy, output_geometry, window, dy_col);
                gemm(false, false, C, P, OKK, T(1), flipped_weight_.data(), OKK, dy_col, P, T(0),
                     dx, P);
                continue;
            }
            // dcol = W^T dy, then dx = col2im(dcol)
            T* dcol = column_grad_.data() + std::size_t(part) * K * P;
            gemm(true, false, K, P, O, T(1), weight_.data(), K, dy, P, T(0), dcol, P);
            std::fill_n(dx, in_size, T(0));
            col2im(dcol, this->geometry_, window, dx);
        }
    });
    add_weight_grad_parts(parts);
    if (!input_grad) return this->no_input_grad();
    return grad_input_;
}

template <typename T>
void BasicConv2d<T>::add_weight_grad_parts(int parts) {
    const std::size_t O = options_.out_channels(), K = column_rows();
    for (int part = 0; part < parts; ++part) {
        const T* __restrict dW = weight_grad_part_.data() + std::size_t(part) * (O * K + O);
        T* __restrict total = weight_grad_.data();
        for (std::size_t j = 0; j < O * K; ++j)
            total[j] += dW[j];
        if (options_.bias())
            for (std::size_t o = 0; o < O; ++o)
                bias_grad_(o) += dW[O * K + o];
    }
}

template <typename T>
std::vector<Parameter<T>> BasicConv2d<T>::parameters() {
    std::vector<Parameter<T>> all{{"weight", weight_.data(), weight_grad_.data(), weight_.size()}};
    if (options_.bias()) all.push_back({"bias", bias_.data(), bias_grad_.data(), bias_.size()});
    return all;
}

template <typename T>
std::unique_ptr<BasicFusedGroup<T>> BasicConv2d<T>::fuse(const std::vector<BasicLayer<T>*>& next) {
    return BasicConvBlock<T>::after(*this, next);
}

template <typename T>
std::string BasicConv2d<T>::describe() const {
    return "Conv2d(" + std::to_string(options_.in_channels()) + " -> " +
           std::to_string(options_.out_channels()) + ", " + window_string(options_.window()) +
           (options_.bias() ? "" : ", bias=false") + ")";
}

template class BasicConv2d<float>;
template class BasicConv2d<double>;

}  // namespace bnlab
