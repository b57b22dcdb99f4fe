#pragma once
// What Conv2d and the pooling layers share: a square window sliding over [C, H, W] images with
// a stride, over an input padded with zeros, and the output size that gives (PyTorch's floor
// rule): out = (in + 2 padding - kernel) / stride + 1.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

#include "framework/layer.hpp"
#include "framework/tensor.hpp"

namespace bnlab {

struct Window {
    std::size_t kernel = 1;
    std::size_t stride = 1;
    std::size_t padding = 0;
};

// The input and output geometry of a window layer, once it knows its input shape.
struct WindowGeometry {
    std::size_t channels = 0, height = 0, width = 0;  // input [C, H, W]
    std::size_t out_height = 0, out_width = 0;
    bool known() const { return channels != 0; }
    std::size_t in_size() const { return channels * height * width; }
    std::size_t positions() const { return height * width; }
    std::size_t out_positions() const { return out_height * out_width; }
};

// Throws std::invalid_argument naming `layer` when the window's numbers cannot work: a zero
// kernel or stride, or, for pooling, padding more than half the kernel (PyTorch's rule: a
// window would then see padding only).
void check_window(const std::string& layer, const Window& window, bool pooling);

// What is wrong with input samples of shape `input` for a window layer that takes `channels`
// channels (any when std::nullopt): "" when nothing is.
std::string window_input_problem(const Shape& input, std::optional<std::size_t> channels,
                                 const Window& window);

// The geometry for input samples of shape `input` (which window_input_problem accepted).
WindowGeometry window_geometry(const Shape& input, const Window& window);

// Throws std::logic_error: `layer` was run before it knew the shape of its input samples.
[[noreturn]] void throw_unknown_input_shape(const std::string& layer);

// "3x3, stride 2, padding 1" (stride and padding left out when 1 and 0).
std::string window_string(const Window& window);

// What a layer sliding a window over images knows of its geometry: it takes [C, H, W] samples
// (C fixed for a convolution, any for pooling), which Sequential::add or set_input_shape gives
// it, and cannot run before.
template <typename T>
class BasicWindowLayer : public BasicLayer<T> {
  public:
    std::optional<std::size_t> in_features() const override {
        if (!geometry_.known()) return std::nullopt;
        return geometry_.in_size();
    }
    std::optional<std::size_t> out_features() const override {
        if (!geometry_.known()) return std::nullopt;
        return output_channels() * geometry_.out_positions();
    }
    std::optional<Shape> input_shape() const override {
        if (!geometry_.known()) return std::nullopt;
        return Shape{geometry_.channels, geometry_.height, geometry_.width};
    }
    std::optional<Shape> output_shape() const override {
        if (!geometry_.known()) return std::nullopt;
        return Shape{output_channels(), geometry_.out_height, geometry_.out_width};
    }
    std::string input_shape_problem(const Shape& input) const override {
        return window_input_problem(input, input_channels(), window_);
    }
    void set_input_shape(const Shape& input) override {
        BasicLayer<T>::set_input_shape(input);
        geometry_ = window_geometry(input, window_);
    }
    bool needs_input_shape() const override { return !geometry_.known(); }

    const Window& window() const { return window_; }
    const WindowGeometry& geometry() const { return geometry_; }

  protected:
    explicit BasicWindowLayer(const Window& window) : window_(window) {}
    // The channels it takes (std::nullopt: any) and gives.
    virtual std::optional<std::size_t> input_channels() const { return std::nullopt; }
    virtual std::size_t output_channels() const { return geometry_.channels; }
    // Throws std::logic_error unless the geometry is known, then checks the input's width.
    void check_window_input(const Matrix<T>& input) const {
        if (!geometry_.known()) throw_unknown_input_shape(this->describe());
        this->check_input_width(input);
    }

    Window window_;
    WindowGeometry geometry_;
};

}  // namespace bnlab
