#pragma once
// Tensor helpers shared by every layer: float32 (or double, for gradient checks) row-major
// batch x features matrices, sized once and reused, with matrix products sent to BLAS.

#include <array>
#include <charconv>
#include <cstddef>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

namespace bnlab {

// A batch: one row per sample, one column per feature (row-major, as BLAS and PyTorch expect).
template <typename T>
using Matrix = xt::xtensor<T, 2>;

// Per-feature quantities: biases, BatchNorm's gamma, beta and statistics.
template <typename T>
using Vector = xt::xtensor<T, 1>;

// The shape of one sample (one row of a batch), outermost first: {features} for a vector,
// {channels, height, width} for an image, whose row holds the channels one after another, each
// row by row: PyTorch's contiguous NCHW layout, so layers pass images on without copying.
using Shape = std::vector<std::size_t>;

// Number of values of one sample of this shape.
std::size_t shape_size(const Shape& shape);

// Class indices, one per row of a batch.
using Labels = xt::xtensor<int, 1>;

// A buffer that could not be allocated: the message says what it was for and how large it was
// (std::bad_alloc says neither). Sequential adds the layer that needed it.
class OutOfMemory : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// "what: 3136000000000 values (11.4 TiB of 4-byte numbers) cannot be allocated; this machine has
// 23.4 GiB of memory"
std::string out_of_memory_message(const std::string& what, double values, std::size_t value_size);

// xt::zeros (or xt::empty) of `shape`, throwing OutOfMemory naming `what` when it cannot be had.
template <typename T, std::size_t N>
xt::xtensor<T, N> allocate_tensor(const std::array<std::size_t, N>& shape, const std::string& what,
                                  bool zeroed = true) {
    try {
        return zeroed ? xt::xtensor<T, N>(xt::zeros<T>(shape))
                      : xt::xtensor<T, N>(xt::empty<T>(shape));
    } catch (const std::bad_alloc&) {
        double values = 1.0;
        for (std::size_t extent : shape)
            values *= double(extent);
        throw OutOfMemory(out_of_memory_message(what, values, sizeof(T)));
    }
}

// Gives `buffer` the shape rows x cols. Reallocates only when the shape changes, so a buffer
// reused for batches of one size is allocated once. Throws OutOfMemory when it cannot.
template <typename T>
void ensure_shape(Matrix<T>& buffer, std::size_t rows, std::size_t cols) {
    if (buffer.shape(0) == rows && buffer.shape(1) == cols) return;
    try {
        buffer.resize({rows, cols});
    } catch (const std::bad_alloc&) {
        throw OutOfMemory(out_of_memory_message(
            "a buffer of " + std::to_string(rows) + " x " + std::to_string(cols),
            double(rows) * double(cols), sizeof(T)));
    }
}

// Copies `source` into `destination` without allocating when the shapes already match (xtensor's
// copy assignment would allocate a fresh buffer every time).
template <typename T>
void copy_into(Matrix<T>& destination, const Matrix<T>& source) {
    ensure_shape(destination, source.shape(0), source.shape(1));
    std::copy(source.begin(), source.end(), destination.begin());
}

// sum_{i < count} term(i), accumulated in Sum over kLanes (8 unless given) running partial sums:
// the compiler may not reorder one chain of dependent additions (and waits on each), but runs
// independent ones in vector registers. The tail goes to the first; the lanes are added in order
// at the end.
template <typename Sum, std::size_t kLanes = 8, typename Term>
Sum sum_in_lanes(std::size_t count, Term term) {
    Sum lanes[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= count; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j)
            lanes[j] += term(i + j);
    for (; i < count; ++i)
        lanes[0] += term(i);
    Sum sum = 0;
    for (std::size_t j = 0; j < kLanes; ++j)
        sum += lanes[j];
    return sum;
}

// Two sums in double over the same n terms, a term being a pair: (sum_i first_i, sum_i second_i).
struct SumPair {
    double first = 0.0, second = 0.0;
};

// sum_{i < count} term(i) for pairs, each sum over 16 lanes: lane j adds the terms i = j (mod 16)
// in order, a last partial block of 16 adding zeros past count; then the lanes as a tree,
//   t_k = (lane_k + lane_{k+4}) + (lane_{k+8} + lane_{k+12})   (k < 4)
//   sum = (t_0 + t_2) + (t_1 + t_3)
// This is the order of four AVX2 vectors of 4 doubles, so the AVX2 kernels that sum this way
// (layers/simd_avx2.cpp) give the same bits. Two sums in one pass read and convert each value
// once; the tree waits on 4 additions where adding 16 lanes in order waited on 16 (the fused
// block's sums run over 49-784 terms, where that wait was a good part of their time).
template <typename Term>
SumPair sum_pairs_in_16_lanes(std::size_t count, Term term) {
    double first[16] = {}, second[16] = {};
    for (std::size_t i = 0; i < count; i += 16)
        for (std::size_t j = 0; j < 16; ++j) {
            const SumPair pair = i + j < count ? term(i + j) : SumPair{};
            first[j] += pair.first;
            second[j] += pair.second;
        }
    const auto tree = [](const double* lane) {
        double t[4];
        for (std::size_t k = 0; k < 4; ++k)
            t[k] = (lane[k] + lane[k + 4]) + (lane[k + 8] + lane[k + 12]);
        return (t[0] + t[2]) + (t[1] + t[3]);
    };
    return {tree(first), tree(second)};
}

// result = alpha * op(a) * op(b) + beta * result, op = transpose when asked. BLAS reads the
// transposed operand in place: no transposed copy is ever made. `result` must already have its
// final shape. Runs on the threads set by set_threads (framework/blas_threads.hpp).
template <typename T>
void gemm(const Matrix<T>& a, bool transpose_a, const Matrix<T>& b, bool transpose_b,
          Matrix<T>& result, T alpha = T(1), T beta = T(0));

extern template void gemm(const Matrix<float>&, bool, const Matrix<float>&, bool, Matrix<float>&,
                          float, float);
extern template void gemm(const Matrix<double>&, bool, const Matrix<double>&, bool, Matrix<double>&,
                          double, double);

// The same product on raw row-major arrays, on the calling thread only: for layers that cut
// their work into per-sample products themselves and run those on bnlab's threads (Conv2d).
template <typename T>
void gemm(bool transpose_a, bool transpose_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* result,
          std::size_t ldc);

extern template void gemm(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                          std::size_t, const float*, std::size_t, float, float*, std::size_t);
extern template void gemm(bool, bool, std::size_t, std::size_t, std::size_t, double, const double*,
                          std::size_t, const double*, std::size_t, double, double*, std::size_t);

// A number as a person writes it ("0.1", "1e-05", "1.5"), for error messages.
std::string number_string(double value);

// Reads `text` as a number of `value`'s type; false unless all of it is one (no spaces, no
// trailing characters, not empty).
template <typename Number>
bool parse_number(const std::string& text, Number& value) {
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    return !text.empty() && error == std::errc() && stop == end;
}

// "[rows, cols]", for error messages.
std::string shape_string(std::size_t rows, std::size_t cols);
// "[32, 14, 14]"
std::string shape_string(const Shape& shape);

template <typename T>
std::string shape_string(const Matrix<T>& matrix) {
    return shape_string(matrix.shape(0), matrix.shape(1));
}

}  // namespace bnlab
