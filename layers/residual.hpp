#pragma once
// Residual: a block whose output adds its input back (He et al. 2016), as PyTorch's ResNet
// BasicBlock computes it:
//   y = relu(body(x) + shortcut(x))
// The body is any Sequential (Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN in a ResNet). The
// shortcut is the identity when the body keeps the input's shape, and otherwise a projection:
// a 1x1 Conv2d with the body's stride, then a BatchNorm2d when the body has BatchNorm (a Dense,
// then a BatchNorm, for feature vectors), drawn from `rng` at construction. A shortcut may also
// be given:
//   Sequential body(Shape{16, 28, 28});
//   body.add<Conv2d>(Conv2dOptions(16, 32, 3).stride(2).padding(1).bias(false), rng);
//   body.add<BatchNorm>(32);
//   body.add<ReLU>();
//   body.add<Conv2d>(Conv2dOptions(32, 32, 3).padding(1).bias(false), rng);
//   body.add<BatchNorm>(32);
//   model.add<Residual>(std::move(body), rng);     // projection: [16, 28, 28] -> [32, 14, 14]
// A Residual nests in a Sequential and a Sequential in its body, to any depth.

#include <optional>

#include "framework/random.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

// Options with chained setters: ResidualOptions().relu(false).projection_batchnorm(true).
class ResidualOptions {
  public:
    // A ReLU after the sum (PyTorch's BasicBlock; on by default), or none.
    ResidualOptions& relu(bool value) { return relu_ = value, *this; }
    // Whether an automatic projection has a BatchNorm after its convolution (or Dense);
    // by default, when the body has one anywhere.
    ResidualOptions& projection_batchnorm(bool value) {
        return projection_batchnorm_ = value, *this;
    }

    bool relu() const { return relu_; }
    const std::optional<bool>& projection_batchnorm() const { return projection_batchnorm_; }

  private:
    bool relu_ = true;
    std::optional<bool> projection_batchnorm_;
};

template <typename T>
class BasicResidual : public BasicLayer<T> {
  public:
    // The identity shortcut when the body keeps its input's shape, a projection drawn from
    // `rng` (see above) when it changes it. Throws std::invalid_argument when no 1x1
    // convolution maps the input to the body's output (give the shortcut then), or for an
    // empty body.
    BasicResidual(BasicSequential<T> body, Rng& rng, ResidualOptions options = {});
    // The identity shortcut: the body must keep its input's shape.
    explicit BasicResidual(BasicSequential<T> body, ResidualOptions options = {});
    // An explicit shortcut, which must map the body's input to the body's output shape.
    BasicResidual(BasicSequential<T> body, BasicSequential<T> shortcut,
                  ResidualOptions options = {});

    // input: [batch, C H W] -> output: [batch, C' H' W'], the body's
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;

    // "body.<name>" and "shortcut.<name>", as PyTorch names a block's submodules.
    std::vector<Parameter<T>> parameters() override;
    std::vector<Buffer<T>> buffers() override;
    void train(bool on = true) override;
    void set_input_grad_needed(bool needed) override;

    std::optional<std::size_t> in_features() const override { return body_.in_features(); }
    std::optional<std::size_t> out_features() const override { return body_.out_features(); }
    std::optional<Shape> input_shape() const override { return body_.input_shape(); }
    std::optional<Shape> output_shape() const override { return body_.output_shape(); }
    std::string input_shape_problem(const Shape& input) const override;
    // Sets the body and the shortcut up for `input`; throws naming both output shapes when
    // they cannot be added.
    void set_input_shape(const Shape& input) override;
    void set_generator(Rng& rng) override;
    void set_batch_share(const BatchShare& share) override;
    void synchronize(Communicator* communicator) override;
    void set_fusion(bool on) override;
    // "Residual(identity)", "Residual(projection, no ReLU)"
    std::string describe() const override;
    // "body", and "shortcut" unless it is the identity.
    typename BasicLayer<T>::Children children() override;

    const ResidualOptions& options() const { return options_; }
    BasicSequential<T>& body() { return body_; }
    // The shortcut's layers, or nullptr for the identity.
    BasicSequential<T>* shortcut() { return shortcut_ ? &*shortcut_ : nullptr; }
    // body(x) + shortcut(x) of the last forward: what the ReLU after the sum receives.
    const Matrix<T>& sum() const { return sum_; }

  private:
    // Throws unless the body's and the shortcut's output shapes (when known) are the same.
    void check_shapes() const;
    std::string shortcut_shape_text() const;

    ResidualOptions options_;
    BasicSequential<T> body_;
    std::optional<BasicSequential<T>> shortcut_;  // std::nullopt: the identity

    // Caches of the last forward, for backward.
    Matrix<T> sum_;     // [batch, out]: body(x) + shortcut(x)
    Matrix<T> output_;  // [batch, out]: relu(sum), or unused without the ReLU
    // Backward: dL/dsum [batch, out] and dL/dx [batch, in].
    Matrix<T> grad_sum_;
    Matrix<T> grad_input_;
};

using Residual = BasicResidual<float>;
extern template class BasicResidual<float>;
extern template class BasicResidual<double>;

}  // namespace bnlab
