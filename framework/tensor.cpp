#include "framework/tensor.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include <xtensor-blas/xblas.hpp>

#include "framework/blas_threads.hpp"

namespace bnlab {
namespace {

using Index = xt::blas_index_t;

// OpenBLAS's AVX-512 sgemm kernel (sgemm_kernel_16x4_skylakex, which it also runs as Cooperlake)
// computes 16 columns of a row-major result at a time (16 rows in BLAS's column-major terms):
// column blocks in whole multiples of 16 keep it fully used.
constexpr Index column_multiple = 16;

// Less work than this per thread (about 2 µs of one core's sgemm) and waking the team costs more
// than the other threads save: the 10-class output layer's products stay on one thread.
constexpr double min_parallel_flops = 2e5;

}  // namespace

template <typename T>
void gemm(bool transpose_a, bool transpose_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* result,
          std::size_t ldc) {
    if (m == 0 || n == 0) return;
    cxxblas::gemm<Index>(cxxblas::StorageOrder::RowMajor,
                         transpose_a ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                         transpose_b ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                         Index(m), Index(n), Index(k), alpha, a, Index(lda), b, Index(ldb), beta,
                         result, Index(ldc));
}

template void gemm(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                   std::size_t, const float*, std::size_t, float, float*, std::size_t);
template void gemm(bool, bool, std::size_t, std::size_t, std::size_t, double, const double*,
                   std::size_t, const double*, std::size_t, double, double*, std::size_t);

template <typename T>
void gemm(const Matrix<T>& a, bool transpose_a, const Matrix<T>& b, bool transpose_b,
          Matrix<T>& result, T alpha, T beta) {
    const Index m = Index(result.shape(0)), n = Index(result.shape(1));
    const Index k = Index(transpose_a ? a.shape(0) : a.shape(1));
    const Index a_rows = Index(transpose_a ? a.shape(1) : a.shape(0));
    const Index b_rows = Index(transpose_b ? b.shape(1) : b.shape(0));
    const Index b_cols = Index(transpose_b ? b.shape(0) : b.shape(1));
    if (a_rows != m || b_rows != k || b_cols != n)
        throw std::invalid_argument(
            "gemm: op(a) " + shape_string(std::size_t(a_rows), std::size_t(k)) + " times op(b) " +
            shape_string(std::size_t(b_rows), std::size_t(b_cols)) + " cannot give a result of " +
            shape_string(result));
    const Index lda = Index(a.shape(1)), ldb = Index(b.shape(1)), ldc = n;
    // The block [row, row + rows) x [col, col + cols) of the result: those rows of op(a) times
    // those columns of op(b), read in place through the leading dimensions.
    auto block = [&](Index row, Index rows, Index col, Index cols) {
        if (rows == 0 || cols == 0) return;
        // Offsets in std::size_t: a product of two BLAS indices may not fit in one.
        const auto offset = [](Index index, Index stride) {
            return std::size_t(index) * std::size_t(stride);
        };
        const T* a_block = a.data() + (transpose_a ? offset(row, 1) : offset(row, lda));
        const T* b_block = b.data() + (transpose_b ? offset(col, ldb) : offset(col, 1));
        T* result_block = result.data() + offset(row, ldc) + offset(col, 1);
        gemm(transpose_a, transpose_b, std::size_t(rows), std::size_t(cols), std::size_t(k), alpha,
             a_block, std::size_t(lda), b_block, std::size_t(ldb), beta, result_block,
             std::size_t(ldc));
    };

    // As many parts as the work fills, each with at least min_parallel_flops: on a many-core
    // machine a small product is not cut into slivers.
    const double flops = 2.0 * double(m) * double(n) * double(k);
    Index parts = Index(std::min(double(thread_count()), flops / min_parallel_flops));
    if (parts <= 1) {
        block(0, m, 0, n);
        return;
    }
    // Columns when each part gets at least one full kernel width of them, else rows.
    const Index column_units = (n + column_multiple - 1) / column_multiple;
    const bool by_columns = column_units >= parts;
    if (!by_columns) parts = std::min(parts, m);
#pragma omp parallel num_threads(int(parts))
    {
        const Index part = omp_get_thread_num(), team = omp_get_num_threads();
        if (by_columns) {
            const Index first = column_units * part / team * column_multiple;
            const Index end = std::min(n, column_units * (part + 1) / team * column_multiple);
            block(0, m, first, end - first);
        } else {
            const Index first = m * part / team, end = m * (part + 1) / team;
            block(first, end - first, 0, n);
        }
    }
}

template void gemm(const Matrix<float>&, bool, const Matrix<float>&, bool, Matrix<float>&, float,
                   float);
template void gemm(const Matrix<double>&, bool, const Matrix<double>&, bool, Matrix<double>&,
                   double, double);

std::size_t shape_size(const Shape& shape) {
    std::size_t size = 1;
    for (std::size_t extent : shape)
        size *= extent;
    return size;
}

std::string shape_string(const Shape& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

std::string out_of_memory_message(const std::string& what, double values, std::size_t value_size) {
    auto bytes_text = [](double bytes) {
        const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        std::size_t unit = 0;
        while (bytes >= 1024.0 && unit + 1 < std::size(units))
            bytes /= 1024.0, ++unit;
        char text[32];
        std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
        return std::string(text);
    };
    char count[32];
    std::snprintf(count, sizeof count, "%.0f", values);
    const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
    return what + ": " + count + " values (" + bytes_text(values * double(value_size)) + " of " +
           std::to_string(value_size) + "-byte numbers) cannot be allocated; this machine has " +
           bytes_text(memory) + " of memory";
}

std::string number_string(double value) {
    std::ostringstream text;
    text << value;
    return text.str();
}

std::string shape_string(std::size_t rows, std::size_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

}  // namespace bnlab
