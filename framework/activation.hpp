#pragma once
// What ReLU, Sigmoid and Tanh share: an element-wise function whose derivative is computed from
// its own output, so the output buffer doubles as the cache for backward.

#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "framework/blas_threads.hpp"
#include "framework/layer.hpp"
#include "framework/simd.hpp"

namespace bnlab {

// Function provides: static constexpr const char* name; static T value(T x);
// static T derivative_from_output(T y); static constexpr bool uses_xsimd, true when value()
// also takes xsimd batches (for functions the compiler cannot vectorize, such as exp): float
// layers then run it through apply_elementwise (simd.hpp).
template <typename T, typename Function>
class BasicActivation : public BasicLayer<T> {
  public:
    // input: [batch, n] -> output: [batch, n]
    const Matrix<T>& forward(const Matrix<T>& input) override {
        this->check_input_width(input);
        ensure_shape(output_, input.shape(0), input.shape(1));
        for_chunks(input.size(), [&](std::size_t first, std::size_t end) {
            // On raw pointers: xtensor's iterators step through indices and do not vectorize.
            const T* __restrict x = input.data() + first;
            T* __restrict y = output_.data() + first;
            const std::size_t size = end - first;
            if constexpr (Function::uses_xsimd && std::is_same_v<T, float>) {
                // The compiler cannot vectorize exp by itself; xsimd's batches of SIMD lanes
                // can, as wide as this CPU has (see simd.hpp). Double-precision layers, which
                // the gradient checks use, take the scalar loop below.
                apply_elementwise<Function>(x, y, size);
                return;
            }
            // y = f(x)
            for (std::size_t i = 0; i < size; ++i)
                y[i] = Function::value(x[i]);
        });
        return output_;
    }

    // grad_output: [batch, n] -> dx: [batch, n]
    const Matrix<T>& backward(const Matrix<T>& grad_output) override {
        this->check_grad_output(grad_output, output_.shape(0), output_.shape(1));
        if (!this->input_grad_needed_) return this->no_input_grad();
        ensure_shape(grad_input_, output_.shape(0), output_.shape(1));
        for_chunks(output_.size(), [&](std::size_t first, std::size_t end) {
            const T* __restrict dy = grad_output.data() + first;
            const T* __restrict y = output_.data() + first;
            T* __restrict dx = grad_input_.data() + first;
            const std::size_t size = end - first;
            // dx = dy * f'(x), with f'(x) written in terms of y = f(x)
            for (std::size_t i = 0; i < size; ++i)
                dx[i] = dy[i] * Function::derivative_from_output(y[i]);
        });
        return grad_input_;
    }

    std::optional<std::size_t> in_features() const override { return std::nullopt; }
    std::optional<std::size_t> out_features() const override { return std::nullopt; }
    std::string describe() const override { return std::string(Function::name) + "()"; }

  private:
    Matrix<T> output_;      // [batch, n]: y of the last forward, also the cache for backward
    Matrix<T> grad_input_;  // [batch, n]
};

}  // namespace bnlab
