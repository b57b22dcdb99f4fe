#include "framework/sequential.hpp"

#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace bnlab {

bool fusion_from_environment() {
    const char* value = std::getenv("BNLAB_FUSION");
    if (!value || !*value || std::string(value) == "on") return true;
    if (std::string(value) == "off") return false;
    throw std::invalid_argument("BNLAB_FUSION: expected on or off, got '" + std::string(value) +
                                "'");
}

template <typename T>
std::vector<typename BasicSequential<T>::Step> BasicSequential<T>::make_plan() {
    std::vector<Step> plan;
    for (std::size_t i = 0; i < layers_.size();) {
        Step step{i, 1, nullptr};
        if (fusion_) {
            std::vector<BasicLayer<T>*> next;
            for (std::size_t j = i + 1; j < layers_.size(); ++j)
                next.push_back(layers_[j].get());
            step.group = layers_[i]->fuse(next);
            if (step.group) step.count = step.group->size();
        }
        i += step.count;
        plan.push_back(std::move(step));
    }
    return plan;
}

template <typename T>
void BasicSequential<T>::set_fusion(bool on) {
    fusion_ = on;
    plan_current_ = false;
    for (auto& layer : layers_)
        layer->set_fusion(on);
}

template <typename T>
std::optional<Shape> BasicSequential<T>::chain_shape(
    BasicLayer<T>& layer, std::size_t index, const std::optional<Shape>& input,
    const std::optional<std::size_t>& input_layer) const {
    const std::string name = "layer " + std::to_string(index) + " " + layer.describe();
    if (!input) {
        if (layer.needs_input_shape())
            throw std::invalid_argument(
                "Sequential: " + name +
                " needs the shape of its input samples: give the model its input shape, e.g. "
                "Sequential model(Shape{1, 28, 28})");
        return layer.output_shape();
    }
    const std::string problem = layer.input_shape_problem(*input);
    if (!problem.empty()) {
        const std::string source = input_layer
                                       ? "after layer " + std::to_string(*input_layer) + " " +
                                             layers_[*input_layer]->describe() + ", which outputs "
                                       : "on the model's input samples of shape ";
        const std::string values =
            input->size() > 1 ? " (" + std::to_string(shape_size(*input)) + " values)" : "";
        throw std::invalid_argument("Sequential: cannot add " + name + ", which " + problem + ", " +
                                    source + shape_string(*input) + values);
    }
    layer.set_input_shape(*input);
    return layer.output_shape().value_or(*input);
}

template <typename T>
void BasicSequential<T>::add(std::unique_ptr<BasicLayer<T>> layer) {
    if (!layer) throw std::invalid_argument("Sequential::add: null layer");
    // Until some layer fixes a shape, the first one that has one fixes the model's input.
    std::optional<Shape> input = shape_;
    const bool fixes_model_input = !shape_ && !input_shape_ && layer->input_shape();
    if (fixes_model_input) input = layer->input_shape();
    const std::optional<Shape> output = chain_shape(*layer, layers_.size(), input, shape_layer_);
    if (fixes_model_input) input_shape_ = input;
    if (layer->output_shape()) shape_layer_ = layers_.size();
    shape_ = output;
    layer->train(this->is_training());
    layer->set_input_grad_needed(layers_.empty() ? this->input_grad_needed() : true);
    layer->set_fusion(fusion_);
    layers_.push_back(std::move(layer));
    plan_current_ = false;
}

template <typename T>
void BasicSequential<T>::set_input_shape(const Shape& input) {
    std::optional<Shape> shape = input;
    std::optional<std::size_t> shape_layer;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        shape = chain_shape(*layers_[i], i, shape, shape_layer);
        if (layers_[i]->output_shape()) shape_layer = i;
    }
    input_shape_ = input;
    shape_ = shape;
    shape_layer_ = shape_layer;
    plan_current_ = false;
}

template <typename T>
std::string BasicSequential<T>::input_shape_problem(const Shape& input) const {
    return layers_.empty() ? "" : layers_.front()->input_shape_problem(input);
}

template <typename T>
std::optional<Shape> BasicSequential<T>::input_shape() const {
    return input_shape_;
}

template <typename T>
void BasicSequential<T>::set_generator(Rng& rng) {
    for (auto& layer : layers_)
        layer->set_generator(rng);
}

template <typename T>
void BasicSequential<T>::set_batch_share(const BatchShare& share) {
    for (auto& layer : layers_)
        layer->set_batch_share(share);
}

template <typename T>
void BasicSequential<T>::synchronize(Communicator* communicator) {
    for (auto& layer : layers_)
        layer->synchronize(communicator);
    plan_current_ = false;
}

template <typename T>
void BasicSequential<T>::set_input_grad_needed(bool needed) {
    BasicLayer<T>::set_input_grad_needed(needed);
    if (!layers_.empty()) layers_.front()->set_input_grad_needed(needed);
}

template <typename T>
const Matrix<T>& BasicSequential<T>::forward(const Matrix<T>& input) {
    if (layers_.empty()) throw std::logic_error("Sequential: forward on a model with no layers");
    if (!plan_current_) {
        plan_ = make_plan();
        plan_current_ = true;
    }
    const Matrix<T>* activation = &input;
    for (Step& step : plan_) {
        try {
            activation = step.group ? &step.group->forward(*activation)
                                    : &layers_[step.first]->forward(*activation);
        } catch (const OutOfMemory& error) {
            throw OutOfMemory(step_name(step) + ", forward of a batch of " +
                              std::to_string(input.shape(0)) + ": " + error.what());
        }
    }
    return *activation;
}

template <typename T>
const Matrix<T>& BasicSequential<T>::backward(const Matrix<T>& grad_output) {
    if (layers_.empty()) throw std::logic_error("Sequential: backward on a model with no layers");
    if (!plan_current_)
        throw std::logic_error("Sequential: backward before a forward of the model as it is now");
    const Matrix<T>* gradient = &grad_output;
    for (auto step = plan_.rbegin(); step != plan_.rend(); ++step) {
        try {
            gradient = step->group ? &step->group->backward(*gradient)
                                   : &layers_[step->first]->backward(*gradient);
        } catch (const OutOfMemory& error) {
            throw OutOfMemory(step_name(*step) + ", backward of a batch of " +
                              std::to_string(grad_output.shape(0)) + ": " + error.what());
        }
    }
    return *gradient;
}

template <typename T>
std::string BasicSequential<T>::step_name(const Step& step) const {
    return "layer " + std::to_string(step.first) + ", " +
           (step.group ? step.group->describe() : layers_[step.first]->describe());
}

template <typename T>
std::vector<Parameter<T>> BasicSequential<T>::parameters() {
    return gather_from_children<Parameter<T>>(
        *this, [](BasicLayer<T>& layer) { return layer.parameters(); });
}

template <typename T>
std::vector<Buffer<T>> BasicSequential<T>::buffers() {
    return gather_from_children<Buffer<T>>(*this,
                                           [](BasicLayer<T>& layer) { return layer.buffers(); });
}

template <typename T>
void BasicSequential<T>::train(bool on) {
    BasicLayer<T>::train(on);
    for (auto& layer : layers_)
        layer->train(on);
}

template <typename T>
std::optional<std::size_t> BasicSequential<T>::in_features() const {
    if (input_shape_) return shape_size(*input_shape_);
    return std::nullopt;
}

template <typename T>
std::optional<std::size_t> BasicSequential<T>::out_features() const {
    if (shape_) return shape_size(*shape_);
    return std::nullopt;
}

template <typename T>
std::string BasicSequential<T>::describe() const {
    return "Sequential(" + std::to_string(layers_.size()) + " layers)";
}

template <typename T>
typename BasicLayer<T>::Children BasicSequential<T>::children() {
    typename BasicLayer<T>::Children named;
    for (std::size_t index = 0; index < layers_.size(); ++index)
        named.emplace_back(std::to_string(index), layers_[index].get());
    return named;
}

template <typename T>
void BasicSequential<T>::summary_rows(const std::string& prefix, std::optional<Shape> shape,
                                      std::vector<SummaryRow>& rows, std::string& groups) {
    // The fused groups forward would run, each layer's row marked with its group's layers.
    std::vector<std::string> group_of(layers_.size());
    for (const Step& step : make_plan()) {
        if (!step.group) continue;
        const std::string range = prefix + std::to_string(step.first) + "-" + prefix +
                                  std::to_string(step.first + step.count - 1);
        for (std::size_t i = step.first; i < step.first + step.count; ++i)
            group_of[i] = "  fused " + range;
        groups += "Fused: layers " + range + " run as one pass (" + step.group->describe() + ")\n";
    }
    for (std::size_t index = 0; index < layers_.size(); ++index) {
        BasicLayer<T>& layer = *layers_[index];
        if (const std::optional<Shape> out = layer.output_shape()) shape = out;
        const std::string label = prefix + std::to_string(index);
        rows.push_back({label, layer.describe(), shape ? shape_string(*shape) : "any",
                        layer.parameter_count(), group_of[index], !prefix.empty()});
        // The layers inside a layer (a residual block's body and shortcut), each from the
        // shape it takes.
        auto* nested_model = dynamic_cast<BasicSequential<T>*>(&layer);
        for (const auto& [name, child] :
             nested_model ? typename BasicLayer<T>::Children() : layer.children()) {
            const std::optional<Shape> in = child->input_shape();
            if (auto* nested = dynamic_cast<BasicSequential<T>*>(child)) {
                rows.push_back({label + "." + name, nested->describe(),
                                nested->shape_ ? shape_string(*nested->shape_) : "any",
                                nested->parameter_count(), "", true});
                nested->summary_rows(label + "." + name + ".", in, rows, groups);
            }
        }
        if (nested_model) nested_model->summary_rows(label + ".", shape, rows, groups);
    }
}

template <typename T>
std::string BasicSequential<T>::summary() {
    std::vector<SummaryRow> rows;
    std::string groups;
    summary_rows("", input_shape_, rows, groups);
    std::size_t label_width = 4, name_width = 5, shape_width = 12;
    for (const SummaryRow& row : rows) {
        label_width = std::max(label_width, row.label.size() + 2);
        name_width = std::max(name_width, row.name.size());
        shape_width = std::max(shape_width, row.shape.size());
    }
    std::ostringstream table;
    const std::size_t line_width = label_width + name_width + 2 + shape_width + 2 + 12;
    table << std::left << std::setw(label_width) << "#" << std::setw(name_width + 2) << "Layer"
          << std::right << std::setw(shape_width) << "Output"
          << "  " << std::setw(12) << "Parameters"
          << "\n"
          << std::string(line_width, '-') << "\n";
    std::size_t total = 0;
    for (const SummaryRow& row : rows) {
        // Nested layers' parameters are in their parent's count already.
        if (!row.nested) total += row.parameters;
        table << std::left << std::setw(label_width) << row.label << std::setw(name_width + 2)
              << row.name << std::right << std::setw(shape_width) << row.shape << "  "
              << std::setw(12) << row.parameters << row.fused << "\n";
    }
    table << std::string(line_width, '-') << "\n"
          << "Trainable parameters: " << total << "\n"
          << groups;
    return table.str();
}

template class BasicSequential<float>;
template class BasicSequential<double>;

}  // namespace bnlab
