#pragma once
// Sigmoid: y = 1 / (1 + exp(-x)).

#include <cmath>
#include "framework/activation.hpp"

namespace bnlab {

struct SigmoidFunction {
    static constexpr const char* name = "Sigmoid";
    // y = 1 / (1 + exp(-x))
    template <typename T>
    static T value(T x) {
        return T(1) / (T(1) + std::exp(-x));
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
