#pragma once
// ReLU: y = max(0, x).

#include "framework/activation.hpp"

namespace bnlab {

struct ReLUFunction {
    static constexpr const char* name = "ReLU";
    static constexpr bool uses_xsimd = false;  // GCC vectorizes it
    // y = max(0, x); NaN stays NaN, as in PyTorch. Written without branches so that the loops
    // over a batch vectorize.
    template <typename T>
    static T value(T x) {
        return x < T(0) ? T(0) : x;
    }
    // dy/dx = 1 where x > 0 (equivalently y > 0), else 0
    template <typename T>
    static T derivative_from_output(T y) {
        return static_cast<T>(y > T(0));
    }
};

template <typename T>
using BasicReLU = BasicActivation<T, ReLUFunction>;
using ReLU = BasicReLU<float>;
extern template class BasicActivation<float, ReLUFunction>;
extern template class BasicActivation<double, ReLUFunction>;

}  // namespace bnlab
