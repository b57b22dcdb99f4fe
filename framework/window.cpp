#include "framework/window.hpp"

#include <stdexcept>

namespace bnlab {

void check_window(const std::string& layer, const Window& window, bool pooling) {
    if (window.kernel == 0 || window.stride == 0)
        throw std::invalid_argument(layer + ": kernel size and stride must be positive, got " +
                                    std::to_string(window.kernel) + " and " +
                                    std::to_string(window.stride));
    // Far beyond any image, and small enough that sizes computed from them cannot overflow.
    constexpr std::size_t limit = std::size_t(1) << 20;
    if (window.kernel > limit || window.stride > limit || window.padding > limit)
        throw std::invalid_argument(
            layer + ": kernel size, stride and padding must be at most " + std::to_string(limit) +
            ", got " + std::to_string(window.kernel) + ", " + std::to_string(window.stride) +
            " and " + std::to_string(window.padding));
    if (pooling && 2 * window.padding > window.kernel)
        throw std::invalid_argument(layer +
                                    ": padding should be at most half the kernel size, got "
                                    "padding " +
                                    std::to_string(window.padding) + " for kernel " +
                                    std::to_string(window.kernel));
}

std::string window_input_problem(const Shape& input, std::optional<std::size_t> channels,
                                 const Window& window) {
    const std::string expected =
        "[" + (channels ? std::to_string(*channels) : std::string("C")) + ", H, W]";
    if (input.size() != 3 || (channels && input[0] != *channels) || shape_size(input) == 0)
        return "expects images " + expected;
    if (input[1] + 2 * window.padding < window.kernel ||
        input[2] + 2 * window.padding < window.kernel)
        return "has a " + std::to_string(window.kernel) + "x" + std::to_string(window.kernel) +
               " window larger than its padded input " +
               std::to_string(input[1] + 2 * window.padding) + "x" +
               std::to_string(input[2] + 2 * window.padding);
    return "";
}

WindowGeometry window_geometry(const Shape& input, const Window& window) {
    WindowGeometry geometry;
    geometry.channels = input.at(0);
    geometry.height = input.at(1);
    geometry.width = input.at(2);
    geometry.out_height =
        (geometry.height + 2 * window.padding - window.kernel) / window.stride + 1;
    geometry.out_width = (geometry.width + 2 * window.padding - window.kernel) / window.stride + 1;
    return geometry;
}

void throw_unknown_input_shape(const std::string& layer) {
    throw std::logic_error(layer +
                           ": the shape of its input samples is unknown: add it to a Sequential "
                           "that knows its input shape, or call set_input_shape");
}

std::string window_string(const Window& window) {
    std::string text = std::to_string(window.kernel) + "x" + std::to_string(window.kernel);
    if (window.stride != 1) text += ", stride " + std::to_string(window.stride);
    if (window.padding != 0) text += ", padding " + std::to_string(window.padding);
    return text;
}

}  // namespace bnlab
