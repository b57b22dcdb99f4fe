#include "framework/layer.hpp"

#include <stdexcept>

namespace bnlab {

template <typename T>
void BasicLayer<T>::check_input_width(const Matrix<T>& input) const {
    if (input.shape(0) == 0) throw std::invalid_argument(describe() + ": input batch is empty");
    const std::optional<std::size_t> expected = in_features();
    if (expected && input.shape(1) != *expected) {
        throw std::invalid_argument(describe() + ": input of shape " + shape_string(input) +
                                    " has " + std::to_string(input.shape(1)) +
                                    " features, expected " + std::to_string(*expected));
    }
}

template <typename T>
void BasicLayer<T>::check_grad_output(const Matrix<T>& grad_output, std::size_t batch,
                                      std::size_t width) const {
    if (batch == 0) throw std::logic_error(describe() + ": backward called before forward");
    if (grad_output.shape(0) != batch || grad_output.shape(1) != width)
        throw std::invalid_argument(describe() + ": backward got gradient of shape " +
                                    shape_string(grad_output) + ", expected " +
                                    shape_string(batch, width));
}

template <typename T>
std::optional<Shape> BasicLayer<T>::input_shape() const {
    if (const std::optional<std::size_t> width = in_features()) return Shape{*width};
    return std::nullopt;
}

template <typename T>
std::optional<Shape> BasicLayer<T>::output_shape() const {
    if (const std::optional<std::size_t> width = out_features()) return Shape{*width};
    return std::nullopt;
}

template <typename T>
std::string BasicLayer<T>::input_shape_problem(const Shape& input) const {
    const std::optional<std::size_t> width = in_features();
    if (width && shape_size(input) != *width)
        return "expects " + std::to_string(*width) + " input features";
    return "";
}

template <typename T>
void BasicLayer<T>::set_input_shape(const Shape& input) {
    const std::string problem = input_shape_problem(input);
    if (!problem.empty())
        throw std::invalid_argument(describe() + " " + problem + ", got " + shape_string(input));
}

template class BasicLayer<float>;
template class BasicLayer<double>;

}  // namespace bnlab
