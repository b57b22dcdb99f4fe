#pragma once
// Sequential: layers applied in order, itself a Layer (so models nest), built as in libtorch:
//   Sequential model;
//   model.add<Dense>(784, 256, rng);
//   model.add<BatchNorm>(256);
//   model.add<ReLU>();
// A model of images is given the shape of one input sample, from which every layer learns its
// geometry:
//   Sequential cnn(Shape{1, 28, 28});
//   cnn.add<Conv2d>(Conv2dOptions(1, 16, 3).padding(1), rng);   // -> [16, 28, 28]
// Layers that can run as one pass over each sample (a Conv2d with the BatchNorm, ReLU and
// pooling after it) do so, giving the same numbers to float rounding; summary() shows which.
// model.set_fusion(false), or BNLAB_FUSION=off in the environment, runs every layer by itself.

#include <memory>
#include <type_traits>
#include <utility>

#include "framework/layer.hpp"

namespace bnlab {

// BNLAB_FUSION: "off" runs every layer by itself, "on" (or unset) fuses what can be fused.
// Throws std::invalid_argument for any other value.
bool fusion_from_environment();

template <typename T>
class BasicSequential : public BasicLayer<T> {
  public:
    // A model whose input shape its first layer fixes (a Dense's width), or that takes any.
    BasicSequential() = default;
    // A model of input samples of shape `input`, e.g. {1, 28, 28} for one-channel images.
    explicit BasicSequential(Shape input) : input_shape_(input), shape_(std::move(input)) {}

    // Constructs a layer of type L in place and appends it; returns it for further set-up.
    template <typename L, typename... Args>
    L& add(Args&&... args) {
        static_assert(std::is_base_of_v<BasicLayer<T>, L>,
                      "add<L>: L must be a layer of this Sequential's scalar type");
        auto layer = std::make_unique<L>(std::forward<Args>(args)...);
        L& added = *layer;
        add(std::move(layer));
        return added;
    }
    // add<BasicDense>(…) in a BasicSequential<double> builds a BasicDense<double>.
    template <template <typename> class L, typename... Args>
    L<T>& add(Args&&... args) {
        return add<L<T>>(std::forward<Args>(args)...);
    }
    // Appends a layer, setting it up for the output shape of the model so far. Throws
    // std::invalid_argument naming both layers and both shapes when the layer cannot take that
    // shape, and when a layer that needs its input's geometry comes before any shape is known.
    void add(std::unique_ptr<BasicLayer<T>> layer);

    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    // Every layer's parameters, named "<index>.<name>" as in PyTorch's state_dict.
    std::vector<Parameter<T>> parameters() override;
    std::vector<Buffer<T>> buffers() override;
    void train(bool on = true) override;
    // Passes the flag to the first layer; every later layer must give its input gradient to
    // the layer before it.
    void set_input_grad_needed(bool needed) override;

    std::optional<std::size_t> in_features() const override;
    std::optional<std::size_t> out_features() const override;
    std::optional<Shape> input_shape() const override;
    std::optional<Shape> output_shape() const override { return shape_; }
    // Sets every layer up again, in order, for input samples of shape `input` (what a
    // Sequential added to another one gets).
    void set_input_shape(const Shape& input) override;
    std::string input_shape_problem(const Shape& input) const override;
    void set_generator(Rng& rng) override;
    void set_batch_share(const BatchShare& share) override;
    void synchronize(Communicator* communicator) override;
    std::string describe() const override;
    // "0", "1", … for its layers in order.
    typename BasicLayer<T>::Children children() override;
    // Runs fusable layers as one pass (on by default), here and in nested models.
    void set_fusion(bool on) override;
    bool fusion() const { return fusion_; }

    // A table of layers, output shapes and parameter counts, like Keras' model.summary().
    std::string summary();

    std::size_t size() const { return layers_.size(); }
    BasicLayer<T>& operator[](std::size_t index) { return *layers_.at(index); }

  private:
    // The shape `layer` at `index` outputs after taking samples of shape `input` (unknown when
    // neither is known); throws naming the layer, `input` and where `input` came from.
    std::optional<Shape> chain_shape(BasicLayer<T>& layer, std::size_t index,
                                     const std::optional<Shape>& input,
                                     const std::optional<std::size_t>& input_layer) const;

    // One row of summary(): "3.body.0", the layer, its output shape, its parameters, the
    // fused group it is in; nested rows are those of layers inside another.
    struct SummaryRow {
        std::string label, name, shape;
        std::size_t parameters = 0;
        std::string fused;
        bool nested = false;
    };
    // The rows of this model's layers and of the layers inside them, labels prefixed
    // `prefix`, from input samples of `shape`; the "Fused: …" lines go to `groups`.
    void summary_rows(const std::string& prefix, std::optional<Shape> shape,
                      std::vector<SummaryRow>& rows, std::string& groups);

    // What forward runs, in order: one layer, or a fused group of `count` layers from `first`.
    struct Step {
        std::size_t first = 0, count = 1;
        std::unique_ptr<BasicFusedGroup<T>> group;
    };
    // "layer 2, Conv2d(16 -> 32, 3x3)", or the fused group's layers, for errors.
    std::string step_name(const Step& step) const;
    std::vector<Step> make_plan();

    std::vector<std::unique_ptr<BasicLayer<T>>> layers_;
    bool fusion_ = fusion_from_environment();
    // The steps of the last forward, which backward follows; made again by the first forward
    // after the layers or their set-up change.
    std::vector<Step> plan_;
    bool plan_current_ = false;
    // The shape of one input sample, when given or fixed by the first layer.
    std::optional<Shape> input_shape_;
    // Output shape of the model so far, and the layer that fixed it (std::nullopt: the model's
    // input), for error messages.
    std::optional<Shape> shape_;
    std::optional<std::size_t> shape_layer_;
};

using Sequential = BasicSequential<float>;
extern template class BasicSequential<float>;
extern template class BasicSequential<double>;

}  // namespace bnlab
