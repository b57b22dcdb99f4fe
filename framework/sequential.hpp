#pragma once
// Sequential: layers applied in order, itself a Layer (so models nest), built as in libtorch:
//   Sequential model;
//   model.add<Dense>(784, 256, rng);
//   model.add<BatchNorm>(256);
//   model.add<ReLU>();

#include <memory>
#include <type_traits>
#include <utility>

#include "framework/layer.hpp"

namespace bnlab {

template <typename T>
class BasicSequential : public BasicLayer<T> {
  public:
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
    // Appends a layer. Throws std::invalid_argument naming both layers when the layer's input
    // width differs from the output width of the model so far.
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
    std::optional<std::size_t> out_features() const override { return width_; }
    std::string describe() const override;

    // A table of layers, output widths and parameter counts, like Keras' model.summary().
    std::string summary();

    std::size_t size() const { return layers_.size(); }
    BasicLayer<T>& operator[](std::size_t index) { return *layers_.at(index); }

  private:
    // What `of_layer` returns for every layer, in order, each name prefixed "<index>.".
    template <typename Named, typename OfLayer>
    std::vector<Named> gather_named(OfLayer of_layer);

    std::vector<std::unique_ptr<BasicLayer<T>>> layers_;
    // Output width of the model so far, and the layer that fixed it (for error messages).
    std::optional<std::size_t> width_;
    std::size_t width_layer_ = 0;
};

using Sequential = BasicSequential<float>;
extern template class BasicSequential<float>;
extern template class BasicSequential<double>;

}  // namespace bnlab
