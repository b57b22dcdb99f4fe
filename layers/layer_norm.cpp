#include "layers/layer_norm.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace bnlab {

namespace {

const LayerNormOptions& checked(const LayerNormOptions& options) {
    const Shape& shape = options.normalized_shape();
    if (shape.empty() || std::count(shape.begin(), shape.end(), std::size_t(0)) > 0)
        throw std::invalid_argument(
            "LayerNorm: normalized_shape must have one or more positive sizes, got " +
            shape_string(shape));
    if (!(options.eps() > 0.0))
        throw std::invalid_argument("LayerNorm: eps must be positive, got " +
                                    number_string(options.eps()));
    return options;
}

}  // namespace

template <typename T>
BasicLayerNorm<T>::BasicLayerNorm(const LayerNormOptions& options)
    : BasicSampleNorm<T>(checked(options).eps(), options.elementwise_affine(),
                         shape_size(options.normalized_shape()), options.normalized_shape()),
      options_(options) {}

template <typename T>
std::string BasicLayerNorm<T>::input_shape_problem(const Shape& input) const {
    const Shape& normalized = options_.normalized_shape();
    if (input.size() < normalized.size() ||
        !std::equal(normalized.begin(), normalized.end(), input.end() - normalized.size()))
        return "expects samples whose last dimensions are " + shape_string(normalized);
    return "";
}

template <typename T>
typename BasicSampleNorm<T>::Layout BasicLayerNorm<T>::layout() const {
    return {shape_size(options_.normalized_shape()), 1};
}

template <typename T>
std::string BasicLayerNorm<T>::describe() const {
    std::ostringstream text;
    text << "LayerNorm(" << shape_string(options_.normalized_shape()) << ", eps=" << options_.eps();
    if (!options_.elementwise_affine()) text << ", elementwise_affine=false";
    text << ")";
    return text.str();
}

template class BasicLayerNorm<float>;
template class BasicLayerNorm<double>;

}  // namespace bnlab
