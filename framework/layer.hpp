#pragma once
// The Layer interface every building block implements, PyTorch-Module style: forward and
// backward on row-major batches, parameters exposed as (value, gradient) pairs an optimizer
// iterates over, train()/eval() mode.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "framework/tensor.hpp"

namespace bnlab {

class Rng;
class Communicator;

// This process's rows [begin, end) of a global batch of `global_rows` rows, in data-parallel
// training (data_parallel.hpp); one process's share is the whole batch: {0, m, m}.
struct BatchShare {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t global_rows = 0;
    std::size_t rows() const { return end - begin; }
};

// A learned tensor and its gradient, seen as flat arrays of equal length so that an optimizer
// is one loop. The pointers stay valid for the layer's lifetime: parameters are never resized.
template <typename T>
struct Parameter {
    std::string name;
    T* value;
    T* grad;
    std::size_t size;
};

// A tensor that is state but not learned (BatchNorm's running statistics): saved with the
// model, never touched by an optimizer.
template <typename T>
struct Buffer {
    std::string name;
    T* value;
    std::size_t size;
};

// Sets every gradient of `parameters` to zero.
template <typename T>
void zero_gradients(const std::vector<Parameter<T>>& parameters) {
    for (const Parameter<T>& parameter : parameters)
        std::fill(parameter.grad, parameter.grad + parameter.size, T(0));
}

template <typename T>
class BasicLayer;

// Consecutive layers of a Sequential run as one pass over each sample (a convolution with the
// BatchNorm, ReLU and pooling after it, layers/conv_block.hpp): the same numbers as the layers
// one by one, without writing and reading back the feature maps between them. It works on the
// layers themselves (their parameters, gradients and running statistics); the layers' own
// forward and backward stay as they are.
template <typename T>
class BasicFusedGroup {
  public:
    virtual ~BasicFusedGroup() = default;
    // The first layer's input -> the last layer's output, in the layers' mode.
    virtual const Matrix<T>& forward(const Matrix<T>& input) = 0;
    // The last layer's output gradient -> the first layer's input gradient (empty when the
    // first layer needs none); parameter gradients are added to, as each layer's backward does.
    virtual const Matrix<T>& backward(const Matrix<T>& grad_output) = 0;
    // How many layers it runs.
    virtual std::size_t size() const = 0;
    // "Conv2d + BatchNorm + ReLU + MaxPool2d"
    virtual std::string describe() const = 0;
};

template <typename T>
class BasicLayer {
  public:
    virtual ~BasicLayer() = default;

    // input: [batch, in_features] -> output: [batch, out_features]. The returned reference is
    // the layer's own output buffer, valid until the next forward.
    virtual const Matrix<T>& forward(const Matrix<T>& input) = 0;
    // grad_output: [batch, out_features] -> dL/dinput: [batch, in_features], for the batch of
    // the last forward. Parameter gradients are added to (as in PyTorch): call zero_grad()
    // between steps.
    virtual const Matrix<T>& backward(const Matrix<T>& grad_output) = 0;

    virtual std::vector<Parameter<T>> parameters() { return {}; }
    virtual std::vector<Buffer<T>> buffers() { return {}; }
    void zero_grad() { zero_gradients(parameters()); }
    std::size_t parameter_count() {
        std::size_t count = 0;
        for (const Parameter<T>& parameter : parameters())
            count += parameter.size;
        return count;
    }

    // Whether backward computes dL/dinput. A model's first layer does not need it when nothing
    // upstream learns (PyTorch skips it for inputs that do not require grad); backward then
    // still accumulates the parameter gradients but returns an empty matrix. On by default;
    // train_step turns it off for the model it trains.
    virtual void set_input_grad_needed(bool needed) { input_grad_needed_ = needed; }
    bool input_grad_needed() const { return input_grad_needed_; }

    // Training mode is the default, as in PyTorch.
    virtual void train(bool on = true) { training_ = on; }
    void eval() { train(false); }
    bool is_training() const { return training_; }

    // Widths of input and output rows; std::nullopt for element-wise layers, which accept any
    // width and keep it (and for a geometric layer not yet given its input shape).
    virtual std::optional<std::size_t> in_features() const = 0;
    virtual std::optional<std::size_t> out_features() const = 0;

    // Per-sample shapes (see Shape in tensor.hpp). input_shape() is the shape the layer is set
    // up for: [in] for a Dense, [C, H, W] for a convolution once it knows H and W; std::nullopt
    // when it takes any shape. output_shape() is std::nullopt when it equals the input's.
    virtual std::optional<Shape> input_shape() const;
    virtual std::optional<Shape> output_shape() const;
    // Sets the layer up for input samples of shape `input`, as Sequential::add does with the
    // output shape of the model so far. Throws std::invalid_argument saying what the layer
    // expects when it cannot take that shape. A layer with a width takes any shape of that many
    // values (a Dense after a convolution reads the flattened image, as Flatten then Linear).
    virtual void set_input_shape(const Shape& input);
    // What is wrong with input samples of shape `input` for this layer ("expects 100 input
    // features"), or "" when it can take them.
    virtual std::string input_shape_problem(const Shape& input) const;
    // True for a layer that cannot run before set_input_shape (a convolution needs its input's
    // height and width): Sequential::add refuses it when the model's shape is unknown.
    virtual bool needs_input_shape() const { return false; }

    // The generator of layers that draw random numbers while training (Dropout's masks): the
    // trainer gives them its run's seeded generator, so that a run is reproducible and resumes
    // bit-exactly. Others ignore it.
    virtual void set_generator(Rng& /*rng*/) {}
    // Data-parallel training: the rows of every global batch this process trains on. Layers
    // that draw per row (Dropout) draw for the whole global batch and keep their share's rows,
    // so that the run's generator stays the same on every process and the masks are the ones a
    // single process would draw. Others ignore it.
    virtual void set_batch_share(const BatchShare& /*share*/) {}
    // Data-parallel training: layers whose training-mode forward depends on the whole batch
    // (BatchNorm's statistics) compute it over every process's share through `communicator`;
    // nullptr, the default, keeps each process's own rows. Others ignore it.
    virtual void synchronize(Communicator* /*communicator*/) {}
    // One line, e.g. "Dense(784 -> 256)".
    virtual std::string describe() const = 0;
    // The layers this one holds, named as PyTorch's named_children() names them: a
    // Sequential's by index ("0", "1", …), a residual block's "body" and "shortcut". Empty for
    // a layer that holds none.
    using Children = std::vector<std::pair<std::string, BasicLayer<T>*>>;
    virtual Children children() { return {}; }

    // A group that runs this layer and the first layers of `next` (the ones after it in a
    // Sequential) as one pass, or nullptr: Sequential asks each layer, in order.
    virtual std::unique_ptr<BasicFusedGroup<T>> fuse(const std::vector<BasicLayer<T>*>& /*next*/) {
        return nullptr;
    }
    // Whether a model runs fusable layers as one pass (on by default; BNLAB_FUSION=off turns
    // it off): Sequential and the models in it; other layers ignore it.
    virtual void set_fusion(bool /*on*/) {}

  protected:
    // Throws std::invalid_argument naming this layer when `input` is empty or is not
    // [batch, in_features].
    void check_input_width(const Matrix<T>& input) const;
    // Throws when backward's gradient is not [batch, width] of the last forward, or when no
    // forward came first.
    void check_grad_output(const Matrix<T>& grad_output, std::size_t batch,
                           std::size_t width) const;

    // What backward returns when the input gradient is not needed.
    const Matrix<T>& no_input_grad() const { return empty_; }

    bool input_grad_needed_ = true;

  private:
    bool training_ = true;
    Matrix<T> empty_;  // [0, 0]
};

// What `of_child` returns (parameters, buffers) for each of `layer`'s children, in order, each
// name prefixed with the child's: "0.weight", "body.1.gamma".
template <typename Named, typename T, typename OfChild>
std::vector<Named> gather_from_children(BasicLayer<T>& layer, OfChild of_child) {
    std::vector<Named> all;
    for (const auto& [child_name, child] : layer.children())
        for (Named& named : of_child(*child)) {
            named.name = child_name + "." + named.name;
            all.push_back(std::move(named));
        }
    return all;
}

extern template class BasicLayer<float>;
extern template class BasicLayer<double>;

}  // namespace bnlab
