#pragma once
// Tensor helpers shared by every layer: float32 (or double, for gradient checks) row-major
// batch x features matrices, sized once and reused, with matrix products sent to BLAS.

#include <charconv>
#include <cstddef>
#include <string>

#include <xtensor/xtensor.hpp>

namespace bnlab {

// A batch: one row per sample, one column per feature (row-major, as BLAS and PyTorch expect).
template <typename T>
using Matrix = xt::xtensor<T, 2>;

// Per-feature quantities: biases, BatchNorm's gamma, beta and statistics.
template <typename T>
using Vector = xt::xtensor<T, 1>;

// Class indices, one per row of a batch.
using Labels = xt::xtensor<int, 1>;

// Gives `buffer` the shape rows x cols. Reallocates only when the shape changes, so a buffer
// reused for batches of one size is allocated once.
template <typename T>
void ensure_shape(Matrix<T>& buffer, std::size_t rows, std::size_t cols) {
    if (buffer.shape(0) != rows || buffer.shape(1) != cols) buffer.resize({rows, cols});
}

// Copies `source` into `destination` without allocating when the shapes already match (xtensor's
// copy assignment would allocate a fresh buffer every time).
template <typename T>
void copy_into(Matrix<T>& destination, const Matrix<T>& source) {
    ensure_shape(destination, source.shape(0), source.shape(1));
    std::copy(source.begin(), source.end(), destination.begin());
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

template <typename T>
std::string shape_string(const Matrix<T>& matrix) {
    return shape_string(matrix.shape(0), matrix.shape(1));
}

}  // namespace bnlab
