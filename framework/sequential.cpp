#include "framework/sequential.hpp"

#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace bnlab {

template <typename T>
void BasicSequential<T>::add(std::unique_ptr<BasicLayer<T>> layer) {
    if (!layer) throw std::invalid_argument("Sequential::add: null layer");
    const std::optional<std::size_t> layer_in = layer->in_features();
    if (layer_in && width_ && *layer_in != *width_) {
        throw std::invalid_argument(
            "Sequential: cannot add layer " + std::to_string(layers_.size()) + " " +
            layer->describe() + ", which expects " + std::to_string(*layer_in) +
            " input features, after layer " + std::to_string(width_layer_) + " " +
            layers_[width_layer_]->describe() + ", which outputs " + std::to_string(*width_));
    }
    if (const std::optional<std::size_t> layer_out = layer->out_features()) {
        width_ = layer_out;
        width_layer_ = layers_.size();
    }
    layer->train(this->is_training());
    layer->set_input_grad_needed(layers_.empty() ? this->input_grad_needed() : true);
    layers_.push_back(std::move(layer));
}

template <typename T>
void BasicSequential<T>::set_input_grad_needed(bool needed) {
    BasicLayer<T>::set_input_grad_needed(needed);
    if (!layers_.empty()) layers_.front()->set_input_grad_needed(needed);
}

template <typename T>
const Matrix<T>& BasicSequential<T>::forward(const Matrix<T>& input) {
    if (layers_.empty()) throw std::logic_error("Sequential: forward on a model with no layers");
    const Matrix<T>* activation = &input;
    for (auto& layer : layers_)
        activation = &layer->forward(*activation);
    return *activation;
}

template <typename T>
const Matrix<T>& BasicSequential<T>::backward(const Matrix<T>& grad_output) {
    if (layers_.empty()) throw std::logic_error("Sequential: backward on a model with no layers");
    const Matrix<T>* gradient = &grad_output;
    for (auto layer = layers_.rbegin(); layer != layers_.rend(); ++layer)
        gradient = &(*layer)->backward(*gradient);
    return *gradient;
}

template <typename T>
template <typename Named, typename OfLayer>
std::vector<Named> BasicSequential<T>::gather_named(OfLayer of_layer) {
    std::vector<Named> all;
    for (std::size_t index = 0; index < layers_.size(); ++index)
        for (Named& named : of_layer(*layers_[index])) {
            named.name = std::to_string(index) + "." + named.name;
            all.push_back(std::move(named));
        }
    return all;
}

template <typename T>
std::vector<Parameter<T>> BasicSequential<T>::parameters() {
    return gather_named<Parameter<T>>([](BasicLayer<T>& layer) { return layer.parameters(); });
}

template <typename T>
std::vector<Buffer<T>> BasicSequential<T>::buffers() {
    return gather_named<Buffer<T>>([](BasicLayer<T>& layer) { return layer.buffers(); });
}

template <typename T>
void BasicSequential<T>::train(bool on) {
    BasicLayer<T>::train(on);
    for (auto& layer : layers_)
        layer->train(on);
}

template <typename T>
std::optional<std::size_t> BasicSequential<T>::in_features() const {
    for (const auto& layer : layers_)
        if (const std::optional<std::size_t> width = layer->in_features()) return width;
    return std::nullopt;
}

template <typename T>
std::string BasicSequential<T>::describe() const {
    return "Sequential(" + std::to_string(layers_.size()) + " layers)";
}

template <typename T>
std::string BasicSequential<T>::summary() {
    std::size_t name_width = 5;
    for (const auto& layer : layers_)
        name_width = std::max(name_width, layer->describe().size());
    std::ostringstream table;
    const std::size_t line_width = 4 + name_width + 2 + 12 + 2 + 12;
    table << std::left << std::setw(4) << "#" << std::setw(name_width + 2) << "Layer" << std::right
          << std::setw(12) << "Output"
          << "  " << std::setw(12) << "Parameters"
          << "\n"
          << std::string(line_width, '-') << "\n";
    std::optional<std::size_t> width;
    std::size_t total = 0;
    for (std::size_t index = 0; index < layers_.size(); ++index) {
        BasicLayer<T>& layer = *layers_[index];
        if (const std::optional<std::size_t> out = layer.out_features()) width = out;
        const std::size_t count = layer.parameter_count();
        total += count;
        table << std::left << std::setw(4) << index << std::setw(name_width + 2) << layer.describe()
              << std::right << std::setw(12) << (width ? std::to_string(*width) : "any") << "  "
              << std::setw(12) << count << "\n";
    }
    table << std::string(line_width, '-') << "\n"
          << "Trainable parameters: " << total << "\n";
    return table.str();
}

template class BasicSequential<float>;
template class BasicSequential<double>;

}  // namespace bnlab
