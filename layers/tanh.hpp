#pragma once
// Tanh: y = tanh(x).

#include <cmath>
#include "framework/activation.hpp"

namespace bnlab {

struct TanhFunction {
    static constexpr const char* name = "Tanh";
    static constexpr bool uses_xsimd = true;
    // y = tanh(x), for a number or an xsimd batch of them
    template <typename V>
    static V value(V x) {
        using std::tanh;
        using xsimd::tanh;
        return tanh(x);
    }
    // dy/dx = 1 - y^2
    template <typename T>
    static T derivative_from_output(T y) {
        return T(1) - y * y;
    }
};

template <typename T>
using BasicTanh = BasicActivation<T, TanhFunction>;
using Tanh = BasicTanh<float>;
extern template class BasicActivation<float, TanhFunction>;
extern template class BasicActivation<double, TanhFunction>;

}  // namespace bnlab
