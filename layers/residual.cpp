#include "layers/residual.hpp"

#include <stdexcept>

#include "layers/batch_norm.hpp"
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"

namespace bnlab {

namespace {

template <typename T>
bool has_batchnorm(BasicLayer<T>& layer) {
    if (dynamic_cast<BasicBatchNorm<T>*>(&layer)) return true;
    for (const auto& child : layer.children())
        if (has_batchnorm(*child.second)) return true;
    return false;
}

// The stride s of a 1x1 convolution (no padding) taking `in` positions to `out`:
// out = (in - 1) / s + 1; the smallest that works, 0 when none does.
std::size_t projection_stride(std::size_t in, std::size_t out) {
    for (std::size_t stride = 1; stride <= in; ++stride)
        if ((in - 1) / stride + 1 == out) return stride;
    return 0;
}

// The shortcut that maps the body's input shape to its output shape: nothing (the identity)
// when they are the same or not known, else a 1x1 Conv2d (a Dense for feature vectors), with a
// BatchNorm after it when `batchnorm`.
template <typename T>
std::optional<BasicSequential<T>> projection(BasicSequential<T>& body, bool batchnorm, Rng& rng) {
    const std::optional<Shape> in = body.input_shape(), out = body.output_shape();
    if (!in || !out || *in == *out) return std::nullopt;
    BasicSequential<T> shortcut(*in);
    if (in->size() == 3 && out->size() == 3) {
        const std::size_t stride = projection_stride((*in)[1], (*out)[1]);
        if (stride == 0 || projection_stride((*in)[2], (*out)[2]) != stride)
            throw std::invalid_argument("Residual: no 1x1 convolution takes the block's input " +
                                        shape_string(*in) + " to its body's output " +
                                        shape_string(*out) + ": give the shortcut");
        // No bias before a BatchNorm, which subtracts it again (torchvision's downsample).
        shortcut.template add<BasicConv2d>(
            Conv2dOptions((*in)[0], (*out)[0], 1).stride(stride).bias(!batchnorm), rng);
    } else if (in->size() == 1 && out->size() == 1) {
        shortcut.template add<BasicDense>((*in)[0], (*out)[0], rng);
    } else {
        throw std::invalid_argument("Residual: no projection takes the block's input " +
                                    shape_string(*in) + " to its body's output " +
                                    shape_string(*out) + ": give the shortcut");
    }
    if (batchnorm) shortcut.template add<BasicBatchNorm>((*out)[0]);
    return shortcut;
}

template <typename T>
void check_body(const BasicSequential<T>& body) {
    if (body.size() == 0) throw std::invalid_argument("Residual: the body has no layers");
}

}  // namespace

template <typename T>
BasicResidual<T>::BasicResidual(BasicSequential<T> body, Rng& rng, ResidualOptions options)
    : options_(options), body_(std::move(body)) {
    check_body(body_);
    shortcut_ =
        projection(body_, options.projection_batchnorm().value_or(has_batchnorm(body_)), rng);
    check_shapes();
}

template <typename T>
BasicResidual<T>::BasicResidual(BasicSequential<T> body, ResidualOptions options)
    : options_(options), body_(std::move(body)) {
    check_body(body_);
    check_shapes();
}

template <typename T>
BasicResidual<T>::BasicResidual(BasicSequential<T> body, BasicSequential<T> shortcut,
                                ResidualOptions options)
    : options_(options), body_(std::move(body)), shortcut_(std::move(shortcut)) {
    check_body(body_);
    if (shortcut_->size() == 0) throw std::invalid_argument("Residual: the shortcut has no layers");
    check_shapes();
}

template <typename T>
std::string BasicResidual<T>::shortcut_shape_text() const {
    if (!shortcut_) {
        const std::optional<Shape> in = body_.input_shape();
        return "the identity shortcut's " + (in ? shape_string(*in) : std::string("(any)")) +
               " (the block's input)";
    }
    const std::optional<Shape> out = shortcut_->output_shape();
    return "the shortcut's " + (out ? shape_string(*out) : std::string("(any)"));
}

template <typename T>
void BasicResidual<T>::check_shapes() const {
    const std::optional<Shape> body_out = body_.output_shape();
    const std::optional<Shape> shortcut_out =
        shortcut_ ? shortcut_->output_shape() : body_.input_shape();
    if (body_out && shortcut_out && *body_out != *shortcut_out)
        throw std::invalid_argument("Residual: the body's output " + shape_string(*body_out) +
                                    " cannot be added to " + shortcut_shape_text());
}

template <typename T>
std::string BasicResidual<T>::input_shape_problem(const Shape& input) const {
    return body_.input_shape_problem(input);
}

template <typename T>
void BasicResidual<T>::set_input_shape(const Shape& input) {
    body_.set_input_shape(input);
    if (shortcut_) shortcut_->set_input_shape(input);
    check_shapes();
}

template <typename T>
const Matrix<T>& BasicResidual<T>::forward(const Matrix<T>& input) {
    this->check_input_width(input);
    const Matrix<T>& body_output = body_.forward(input);
    const Matrix<T>& shortcut_output = shortcut_ ? shortcut_->forward(input) : input;
    // Known shapes were checked when the block was set up; a body of element-wise layers
    // alone has none.
    if (body_output.shape(1) != shortcut_output.shape(1))
        throw std::invalid_argument(describe() + ": the body's output of shape " +
                                    shape_string(body_output) + " cannot be added to the " +
                                    (shortcut_ ? "shortcut's " : "block's input ") +
                                    shape_string(shortcut_output));
    const std::size_t rows = input.shape(0), cols = body_output.shape(1);
    ensure_shape(sum_, rows, cols);
    const bool relu = options_.relu();
    if (relu) ensure_shape(output_, rows, cols);
    for_chunks(rows * cols, [&](std::size_t first, std::size_t end) {
        const T* __restrict main = body_output.data();
        const T* __restrict skip = shortcut_output.data();
        T* __restrict s = sum_.data();
        T* __restrict y = output_.data();
        for (std::size_t i = first; i < end; ++i) {
            // s = body(x) + shortcut(x)
            s[i] = main[i] + skip[i];
            // y = max(0, s)
            if (relu) y[i] = s[i] < T(0) ? T(0) : s[i];
        }
    });
    return relu ? output_ : sum_;
}

template <typename T>
const Matrix<T>& BasicResidual<T>::backward(const Matrix<T>& grad_output) {
    this->check_grad_output(grad_output, sum_.shape(0), sum_.shape(1));
    const Matrix<T>* grad_sum = &grad_output;
    if (options_.relu()) {
        ensure_shape(grad_sum_, sum_.shape(0), sum_.shape(1));
        for_chunks(sum_.size(), [&](std::size_t first, std::size_t end) {
            const T* __restrict dy = grad_output.data();
            const T* __restrict s = sum_.data();
            T* __restrict ds = grad_sum_.data();
            // ds = dy where s > 0, else 0 (dy read before the choice: GCC then makes it a vector
            // select; with the read inside the choice it was a branch per value, 8 % of
            // ResNet-20's step)
            for (std::size_t i = first; i < end; ++i) {
                const T gradient = dy[i];
                ds[i] = s[i] > T(0) ? gradient : T(0);
            }
        });
        grad_sum = &grad_sum_;
    }
    // Both branches get the sum's gradient; their parameter gradients add up in each.
    const Matrix<T>& grad_body = body_.backward(*grad_sum);
    const Matrix<T>& grad_shortcut = shortcut_ ? shortcut_->backward(*grad_sum) : *grad_sum;
    if (!this->input_grad_needed_) return this->no_input_grad();
    ensure_shape(grad_input_, grad_body.shape(0), grad_body.shape(1));
    for_chunks(grad_input_.size(), [&](std::size_t first, std::size_t end) {
        const T* __restrict a = grad_body.data();
        const T* __restrict b = grad_shortcut.data();
        T* __restrict dx = grad_input_.data();
        // dx = dbody/dx + dshortcut/dx
        for (std::size_t i = first; i < end; ++i)
            dx[i] = a[i] + b[i];
    });
    return grad_input_;
}

template <typename T>
typename BasicLayer<T>::Children BasicResidual<T>::children() {
    typename BasicLayer<T>::Children named{{"body", &body_}};
    if (shortcut_) named.emplace_back("shortcut", &*shortcut_);
    return named;
}

template <typename T>
std::vector<Parameter<T>> BasicResidual<T>::parameters() {
    return gather_from_children<Parameter<T>>(
        *this, [](BasicLayer<T>& branch) { return branch.parameters(); });
}

template <typename T>
std::vector<Buffer<T>> BasicResidual<T>::buffers() {
    return gather_from_children<Buffer<T>>(*this,
                                           [](BasicLayer<T>& branch) { return branch.buffers(); });
}

template <typename T>
void BasicResidual<T>::train(bool on) {
    BasicLayer<T>::train(on);
    for (const auto& child : children())
        child.second->train(on);
}

template <typename T>
void BasicResidual<T>::set_input_grad_needed(bool needed) {
    BasicLayer<T>::set_input_grad_needed(needed);
    for (const auto& child : children())
        child.second->set_input_grad_needed(needed);
}

template <typename T>
void BasicResidual<T>::set_generator(Rng& rng) {
    for (const auto& child : children())
        child.second->set_generator(rng);
}

template <typename T>
void BasicResidual<T>::set_batch_share(const BatchShare& share) {
    for (const auto& child : children())
        child.second->set_batch_share(share);
}

template <typename T>
void BasicResidual<T>::synchronize(Communicator* communicator) {
    for (const auto& child : children())
        child.second->synchronize(communicator);
}

template <typename T>
void BasicResidual<T>::set_fusion(bool on) {
    for (const auto& child : children())
        child.second->set_fusion(on);
}

template <typename T>
std::string BasicResidual<T>::describe() const {
    return std::string("Residual(") + (shortcut_ ? "projection" : "identity") +
           (options_.relu() ? "" : ", no ReLU") + ")";
}

template class BasicResidual<float>;
template class BasicResidual<double>;

}  // namespace bnlab
