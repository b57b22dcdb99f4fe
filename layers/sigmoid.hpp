#pragma once
// Sigmoid: y = 1 / (1 + exp(-x)).

#include <cmath>
#include "framework/activation.hpp"

namespace bnlab {

struct SigmoidFunction {
    static constexpr const char* name = "Sigmoid";
    static constexpr bool uses_xsimd = true;
    // y = 1 / (1 + exp(-x)), for a number or an xsimd batch of them
    template <typename V>
    static V value(V x) {
        using std::exp;
        using xsimd::exp;
        return V(1) / (V(1) + exp(-x));
    }
    // dy/dx = y (1 - y)
    template <typename T>
    static T derivative_from_output(T y) {
        return y * (T(1) - y);
    }
};

template <typename T>
using BasicSigmoid = BasicActivation<T, SigmoidFunction>;
using Sigmoid = BasicSigmoid<float>;
extern template class BasicActivation<float, SigmoidFunction>;
extern template class BasicActivation<double, SigmoidFunction>;

}  // namespace bnlab
