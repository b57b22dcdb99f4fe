#include "framework/checkpoint.hpp"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "framework/atomic_file.hpp"
#include "framework/random.hpp"
#include "layers/avg_pool2d.hpp"
#include "layers/batch_norm.hpp"
#include "layers/batch_renorm.hpp"
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/group_norm.hpp"
#include "layers/instance_norm.hpp"
#include "layers/layer_norm.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/relu.hpp"
#include "layers/residual.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

namespace bnlab {

namespace {

constexpr char kMagic[8] = {'B', 'N', 'L', 'A', 'B', 'C', 'K', 'P'};

template <typename Number>
void put(std::string& out, Number value) {
    char bytes[sizeof value];
    std::memcpy(bytes, &value, sizeof value);
    out.append(bytes, sizeof value);
}

// Reads from a byte string, failing with "path: problem" at the first thing out of place.
class Reader {
  public:
    Reader(const std::string& bytes, std::string path, std::string where)
        : bytes_(bytes), path_(std::move(path)), where_(std::move(where)) {}

    template <typename Number>
    Number get() {
        Number value;
        std::memcpy(&value, take(sizeof value), sizeof value);
        return value;
    }
    const char* take(std::size_t count) {
        if (bytes_.size() - position_ < count)
            fail("truncated" + (where_.empty() ? std::string() : " in " + where_));
        const char* start = bytes_.data() + position_;
        position_ += count;
        return start;
    }
    bool done() const { return position_ == bytes_.size(); }
    [[noreturn]] void fail(const std::string& problem) const {
        throw std::runtime_error(path_ + ": " + problem);
    }

  private:
    const std::string& bytes_;
    std::size_t position_ = 0;
    std::string path_;
    std::string where_;
};

std::string number_text(double value) {
    std::ostringstream text;
    text.precision(17);
    text << value;
    return text.str();
}

std::string window_text(const Window& window) {
    return std::to_string(window.kernel) + " " + std::to_string(window.stride) + " " +
           std::to_string(window.padding);
}

// The architecture, one line per layer; a nested Sequential's layers follow its own line. A
// model of images starts with its input shape ("Input 1 28 28"), from which the layers after it
// take their geometry again when the file is read.
void describe(Sequential& model, std::vector<std::string>& lines, bool top = true) {
    const std::optional<Shape> input = model.input_shape();
    if (top && input && input->size() > 1) {
        std::string line = "Input";
        for (std::size_t extent : *input)
            line += " " + std::to_string(extent);
        lines.push_back(line);
    }
    for (std::size_t i = 0; i < model.size(); ++i) {
        BasicLayer<float>& layer = model[i];
        if (auto* dense = dynamic_cast<Dense*>(&layer)) {
            lines.push_back("Dense " + std::to_string(*dense->in_features()) + " " +
                            std::to_string(*dense->out_features()));
        } else if (auto* renorm = dynamic_cast<BatchRenorm*>(&layer)) {
            // "BatchRenorm <features> <eps> <momentum> <affine> <rmax> <dmax> <warmup steps>
            // <rmax steps> <dmax steps>" (before BatchNorm, which it is too)
            const BatchRenormOptions& options = renorm->renorm_options();
            lines.push_back(
                "BatchRenorm " + std::to_string(options.batchnorm().num_features()) + " " +
                number_text(options.batchnorm().eps()) + " " +
                number_text(options.batchnorm().momentum().value_or(0.1)) +
                (options.batchnorm().affine() ? " 1 " : " 0 ") + number_text(options.rmax()) + " " +
                number_text(options.dmax()) + " " + std::to_string(options.warmup_steps()) + " " +
                std::to_string(options.rmax_steps()) + " " + std::to_string(options.dmax_steps()));
        } else if (auto* batchnorm = dynamic_cast<BatchNorm*>(&layer)) {
            const BatchNormOptions& options = batchnorm->options();
            // "BatchNorm <features> <eps> <momentum> <affine>", then, when not the defaults,
            // "<track running stats> <freeze: 0 none, 1 statistics, 2 all>"
            std::string line =
                "BatchNorm " + std::to_string(options.num_features()) + " " +
                number_text(options.eps()) + " " +
                (options.momentum() ? number_text(*options.momentum()) : "cumulative") + " " +
                (options.affine() ? "1" : "0");
            if (!options.track_running_stats() || options.freeze() != BatchNormFreeze::none)
                line += std::string(options.track_running_stats() ? " 1 " : " 0 ") +
                        std::to_string(int(options.freeze()));
            lines.push_back(line);
        } else if (auto* group_norm = dynamic_cast<GroupNorm*>(&layer)) {
            // "GroupNorm <groups> <channels> <eps> <affine>"
            const GroupNormOptions& options = group_norm->options();
            lines.push_back("GroupNorm " + std::to_string(options.num_groups()) + " " +
                            std::to_string(options.num_channels()) + " " +
                            number_text(options.eps()) + (options.affine() ? " 1" : " 0"));
        } else if (auto* layer_norm = dynamic_cast<LayerNorm*>(&layer)) {
            // "LayerNorm <eps> <elementwise affine> <normalized shape...>"
            const LayerNormOptions& options = layer_norm->options();
            std::string line = "LayerNorm " + number_text(options.eps()) +
                               (options.elementwise_affine() ? " 1" : " 0");
            for (std::size_t extent : options.normalized_shape())
                line += " " + std::to_string(extent);
            lines.push_back(line);
        } else if (auto* instance_norm = dynamic_cast<InstanceNorm2d*>(&layer)) {
            // "InstanceNorm2d <features> <eps> <momentum> <affine> <track running stats>"
            const InstanceNormOptions& options = instance_norm->options();
            lines.push_back("InstanceNorm2d " + std::to_string(options.num_features()) + " " +
                            number_text(options.eps()) + " " + number_text(options.momentum()) +
                            (options.affine() ? " 1" : " 0") +
                            (options.track_running_stats() ? " 1" : " 0"));
        } else if (dynamic_cast<ReLU*>(&layer)) {
            lines.push_back("ReLU");
        } else if (dynamic_cast<Sigmoid*>(&layer)) {
            lines.push_back("Sigmoid");
        } else if (dynamic_cast<Tanh*>(&layer)) {
            lines.push_back("Tanh");
        } else if (auto* conv = dynamic_cast<Conv2d*>(&layer)) {
            const Conv2dOptions& options = conv->options();
            lines.push_back("Conv2d " + std::to_string(options.in_channels()) + " " +
                            std::to_string(options.out_channels()) + " " +
                            window_text(options.window()) + " " + (options.bias() ? "1" : "0"));
        } else if (auto* max_pool = dynamic_cast<MaxPool2d*>(&layer)) {
            lines.push_back("MaxPool2d " + window_text(max_pool->window()));
        } else if (auto* avg_pool = dynamic_cast<AvgPool2d*>(&layer)) {
            lines.push_back("AvgPool2d " + window_text(avg_pool->window()));
        } else if (dynamic_cast<GlobalAvgPool2d*>(&layer)) {
            lines.push_back("GlobalAvgPool2d");
        } else if (auto* dropout = dynamic_cast<Dropout*>(&layer)) {
            lines.push_back("Dropout " + number_text(dropout->p()));
        } else if (auto* nested = dynamic_cast<Sequential*>(&layer)) {
            lines.push_back("Sequential " + std::to_string(nested->size()));
            describe(*nested, lines, false);
        } else if (auto* residual = dynamic_cast<Residual*>(&layer)) {
            // "Residual <ReLU after the sum> <has a shortcut>", then the body's Sequential line
            // and layers, then the shortcut's
            lines.push_back(std::string("Residual ") + (residual->options().relu() ? "1" : "0") +
                            (residual->shortcut() ? " 1" : " 0"));
            for (const auto& [name, child] : residual->children()) {
                auto& branch = static_cast<Sequential&>(*child);
                lines.push_back("Sequential " + std::to_string(branch.size()));
                describe(branch, lines, false);
            }
        } else {
            throw std::invalid_argument("checkpoint: cannot save layer " + layer.describe());
        }
    }
}

std::string architecture(Sequential& model) {
    std::vector<std::string> lines;
    describe(model, lines);
    std::string text;
    for (const std::string& line : lines)
        text += line + "\n";
    return text;
}

// BatchNorm counters, named as their layer's parameters are ("1.num_batches_tracked",
// "3.body.1.num_batches_tracked").
void gather_counters(BasicLayer<float>& layer, const std::string& prefix,
                     std::vector<std::pair<std::string, std::int64_t>>& counters,
                     std::vector<BatchNorm*>* layers = nullptr) {
    for (const auto& [child_name, child] : layer.children()) {
        const std::string name = prefix + child_name + ".";
        if (auto* batchnorm = dynamic_cast<BatchNorm*>(child)) {
            counters.emplace_back(name + "num_batches_tracked", batchnorm->num_batches_tracked());
            if (layers) layers->push_back(batchnorm);
        } else {
            gather_counters(*child, name, counters, layers);
        }
    }
}

void put_arrays(std::string& out, const std::vector<std::pair<std::string, const float*>>& names,
                const std::vector<std::size_t>& sizes) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        put<std::uint32_t>(out, std::uint32_t(names[i].first.size()));
        out += names[i].first;
        put<std::uint64_t>(out, sizes[i]);
        out.append(reinterpret_cast<const char*>(names[i].second), sizes[i] * sizeof(float));
    }
}

std::string put_counters(const std::vector<std::pair<std::string, std::int64_t>>& counters) {
    std::string text;
    for (const auto& [name, value] : counters)
        text += name + " " + std::to_string(value) + "\n";
    return text;
}

struct ArrayView {
    const char* data;
    std::uint64_t count;
};

std::map<std::string, ArrayView> read_arrays(const std::string& bytes, const std::string& path,
                                             const std::string& tag) {
    Reader reader(bytes, path, "section " + tag);
    std::map<std::string, ArrayView> arrays;
    while (!reader.done()) {
        const std::uint32_t length = reader.get<std::uint32_t>();
        const std::string name(reader.take(length), length);
        const std::uint64_t count = reader.get<std::uint64_t>();
        if (count > bytes.size() / sizeof(float))
            reader.fail("section " + tag + ": array " + name + " is longer than the file");
        arrays[name] = {reader.take(count * sizeof(float)), count};
    }
    return arrays;
}

std::map<std::string, std::int64_t> read_counters(const std::string& text, const std::string& path,
                                                  const std::string& tag) {
    std::map<std::string, std::int64_t> counters;
    std::istringstream lines(text);
    std::string name;
    std::int64_t value = 0;
    while (lines >> name) {
        if (!(lines >> value))
            throw std::runtime_error(path + ": section " + tag + ": counter " + name +
                                     " has no value");
        counters[name] = value;
    }
    return counters;
}

void copy_array(const std::map<std::string, ArrayView>& arrays, const std::string& name,
                float* destination, std::size_t size, const std::string& path) {
    const auto found = arrays.find(name);
    if (found == arrays.end()) throw std::runtime_error(path + ": no values for " + name);
    if (found->second.count != size)
        throw std::runtime_error(path + ": " + name + " has " +
                                 std::to_string(found->second.count) + " values, the model " +
                                 std::to_string(size));
    std::memcpy(destination, found->second.data, size * sizeof(float));
}

// Takes a layer's `a * b` values out of what the file holds, before the layer allocates them:
// widths in the layer list are not trusted with memory until the tensors back them.
void spend(std::size_t& values_left, std::size_t a, std::size_t b = 1) {
    if (a != 0 && (b > values_left / a || a * b > values_left))
        throw std::runtime_error("wider than the values in section TENS allow");
    values_left -= a * b;
}

constexpr int kMaxNesting = 64;

// A window's three numbers from a layer line.
Window read_window(std::istringstream& words) {
    Window window;
    if (!(words >> window.kernel >> window.stride >> window.padding))
        throw std::runtime_error("expected kernel size, stride and padding");
    return window;
}

void build(Sequential& model, const std::vector<std::string>& lines, std::size_t& line,
           std::size_t count, const std::string& path, std::size_t& values_left, int depth = 0);

// The nested model whose "Sequential <count>" line is `words` (read past its type), taking
// samples of `input`'s shape, built from the lines after it.
Sequential build_nested(std::istringstream& words, const std::optional<Shape>& input,
                        const std::vector<std::string>& lines, std::size_t& line,
                        const std::string& path, std::size_t& values_left, int depth) {
    std::size_t count = 0;
    if (!(words >> count)) throw std::runtime_error("expected a layer count");
    if (depth == kMaxNesting)
        throw std::runtime_error("nested more than " + std::to_string(kMaxNesting) + " deep");
    Sequential nested = input ? Sequential(*input) : Sequential();
    build(nested, lines, line, count, path, values_left, depth + 1);
    if (nested.size() != count)
        throw std::runtime_error("expected " + std::to_string(count) + " layers");
    return nested;
}

// A residual block's branch: the next line, which must be a "Sequential <count>" line, and its
// layers.
Sequential build_branch(const char* branch, const std::optional<Shape>& input,
                        const std::vector<std::string>& lines, std::size_t& line,
                        const std::string& path, std::size_t& values_left, int depth) {
    if (line == lines.size())
        throw std::runtime_error(std::string("expected the ") + branch +
                                 "'s Sequential line, found the end of the section");
    std::istringstream words(lines[line]);
    std::string type;
    words >> type;
    if (type != "Sequential")
        throw std::runtime_error(std::string("expected the ") + branch +
                                 "'s Sequential line, found '" + lines[line] + "'");
    ++line;
    return build_nested(words, input, lines, line, path, values_left, depth);
}

// Builds layers from architecture lines, starting at `line`; `count` layers, or all lines.
void build(Sequential& model, const std::vector<std::string>& lines, std::size_t& line,
           std::size_t count, const std::string& path, std::size_t& values_left, int depth) {
    Rng unused(0);  // Dense's constructor draws weights; the file's values replace them
    for (std::size_t built = 0; built < count && line < lines.size(); ++built) {
        std::istringstream words(lines[line]);
        const std::string where =
            path + ": section MODL line " + std::to_string(line + 1) + " '" + lines[line] + "': ";
        ++line;
        std::string type;
        words >> type;
        try {
            if (type == "Dense") {
                std::size_t in = 0, out = 0;
                if (!(words >> in >> out)) throw std::runtime_error("expected two widths");
                spend(values_left, in, out);  // weight
                spend(values_left, out);      // bias
                model.add<Dense>(in, out, unused);
            } else if (type == "BatchNorm") {
                std::size_t features = 0;
                double eps = 0.0;
                std::string momentum;
                int affine = 0;
                if (!(words >> features >> eps >> momentum >> affine))
                    throw std::runtime_error("expected features, eps, momentum and affine");
                int track = 1, freeze = 0;
                if (!words.eof() && (!(words >> track >> freeze) || track < 0 || track > 1 ||
                                     freeze < 0 || freeze > 2 || !words.eof()))
                    throw std::runtime_error(
                        "expected running statistics (0 or 1) and freeze (0, 1 or 2) after affine");
                spend(values_left, features, (affine != 0 ? 2 : 0) + track * 2);  // γ, β, μ, σ²
                BatchNormOptions options(features);
                options.eps(eps).affine(affine != 0).track_running_stats(track == 1);
                options.freeze(BatchNormFreeze(freeze));
                options.momentum(momentum == "cumulative"
                                     ? std::optional<double>()
                                     : std::optional<double>(std::stod(momentum)));
                model.add<BatchNorm>(options);
            } else if (type == "BatchRenorm") {
                std::size_t features = 0;
                double eps = 0.0, momentum = 0.0, rmax = 0.0, dmax = 0.0;
                int affine = 0;
                std::int64_t warmup = 0, rmax_steps = 0, dmax_steps = 0;
                if (!(words >> features >> eps >> momentum >> affine >> rmax >> dmax >> warmup >>
                      rmax_steps >> dmax_steps) ||
                    affine < 0 || affine > 1)
                    throw std::runtime_error(
                        "expected features, eps, momentum, affine (0 or 1), rmax, dmax and the "
                        "warmup, rmax and dmax steps");
                spend(values_left, features, affine * 2 + 2);  // γ, β, running μ, σ²
                model.add<BatchRenorm>(BatchRenormOptions(features)
                                           .eps(eps)
                                           .momentum(momentum)
                                           .affine(affine == 1)
                                           .rmax(rmax)
                                           .dmax(dmax)
                                           .warmup_steps(warmup)
                                           .rmax_steps(rmax_steps)
                                           .dmax_steps(dmax_steps));
            } else if (type == "GroupNorm") {
                std::size_t groups = 0, channels = 0;
                double eps = 0.0;
                int affine = 0;
                if (!(words >> groups >> channels >> eps >> affine) || affine < 0 || affine > 1)
                    throw std::runtime_error("expected groups, channels, eps and affine (0 or 1)");
                spend(values_left, channels, affine * 2);  // γ, β
                model.add<GroupNorm>(GroupNormOptions(groups, channels).eps(eps).affine(affine));
            } else if (type == "LayerNorm") {
                double eps = 0.0;
                int affine = 0;
                if (!(words >> eps >> affine) || affine < 0 || affine > 1)
                    throw std::runtime_error(
                        "expected eps, elementwise affine (0 or 1) and a shape");
                Shape normalized;
                std::size_t values = 1;
                for (std::size_t extent = 0; words >> extent;) {
                    // Bounded, as the input shape is, so that sizes cannot overflow.
                    if (extent == 0 || extent > (std::size_t(1) << 31) / values)
                        throw std::runtime_error(
                            "normalized shape must be positive and under 2^31 values");
                    values *= extent;
                    normalized.push_back(extent);
                }
                if (normalized.empty() || !words.eof())
                    throw std::runtime_error(
                        "expected eps, elementwise affine (0 or 1) and a shape");
                spend(values_left, values, affine * 2);  // γ, β
                model.add<LayerNorm>(
                    LayerNormOptions(normalized).eps(eps).elementwise_affine(affine == 1));
            } else if (type == "InstanceNorm2d") {
                std::size_t features = 0;
                double eps = 0.0, momentum = 0.0;
                int affine = 0, track = 0;
                if (!(words >> features >> eps >> momentum >> affine >> track) || affine < 0 ||
                    affine > 1 || track < 0 || track > 1)
                    throw std::runtime_error(
                        "expected features, eps, momentum, affine and running statistics (0 or 1)");
                spend(values_left, features, 2 * (affine + track));  // γ, β, running μ, σ²
                model.add<InstanceNorm2d>(InstanceNormOptions(features)
                                              .eps(eps)
                                              .momentum(momentum)
                                              .affine(affine == 1)
                                              .track_running_stats(track == 1));
            } else if (type == "Conv2d") {
                std::size_t in = 0, out = 0;
                int bias = 0;
                if (!(words >> in >> out)) throw std::runtime_error("expected two channel counts");
                const Window window = read_window(words);
                if (!(words >> bias)) throw std::runtime_error("expected the bias flag");
                Conv2dOptions options(in, out, window.kernel);
                options.stride(window.stride).padding(window.padding).bias(bias != 0);
                check_window("Conv2d", window, false);  // bounds the kernel size
                // weight: out in k k values, spent as out in, then k k - 1 more of each (so
                // that no product can overflow: out in is bounded by the file's values)
                spend(values_left, out, in);
                spend(values_left, out * in, window.kernel * window.kernel - 1);
                if (bias != 0) spend(values_left, out);
                model.add<Conv2d>(options, unused);
            } else if (type == "MaxPool2d") {
                const Window window = read_window(words);
                model.add<MaxPool2d>(window.kernel, window.stride, window.padding);
            } else if (type == "AvgPool2d") {
                const Window window = read_window(words);
                model.add<AvgPool2d>(window.kernel, window.stride, window.padding);
            } else if (type == "GlobalAvgPool2d") {
                model.add<GlobalAvgPool2d>();
            } else if (type == "Dropout") {
                double p = 0.0;
                if (!(words >> p)) throw std::runtime_error("expected a probability");
                model.add<Dropout>(p);
            } else if (type == "ReLU") {
                model.add<ReLU>();
            } else if (type == "Sigmoid") {
                model.add<Sigmoid>();
            } else if (type == "Tanh") {
                model.add<Tanh>();
            } else if (type == "Sequential") {
                model.add(std::make_unique<Sequential>(build_nested(
                    words, model.output_shape(), lines, line, path, values_left, depth)));
            } else if (type == "Residual") {
                int relu = 0, has_shortcut = 0;
                if (!(words >> relu >> has_shortcut) || relu < 0 || relu > 1 || has_shortcut < 0 ||
                    has_shortcut > 1)
                    throw std::runtime_error("expected the ReLU and shortcut flags, 0 or 1");
                const ResidualOptions options = ResidualOptions().relu(relu == 1);
                Sequential body = build_branch("body", model.output_shape(), lines, line, path,
                                               values_left, depth);
                if (has_shortcut == 0) {
                    model.add<Residual>(std::move(body), options);
                } else {
                    Sequential shortcut = build_branch("shortcut", model.output_shape(), lines,
                                                       line, path, values_left, depth);
                    model.add<Residual>(std::move(body), std::move(shortcut), options);
                }
            } else {
                throw std::runtime_error("unknown layer type");
            }
        } catch (const std::runtime_error& error) {
            // A nested layer's error already says where it is.
            if (std::string(error.what()).rfind(path + ": ", 0) == 0) throw;
            throw std::runtime_error(where + error.what());
        } catch (const std::logic_error& error) {  // bad widths, options, or a mismatch at add
            throw std::runtime_error(where + error.what());
        }
    }
}

// The model an "Input C H W" first line describes: one with that input shape (any other first
// line: a model that takes its shape from its first layer).
Sequential input_line(const std::string& line, const std::string& path) {
    std::istringstream words(line);
    std::string type;
    words >> type;
    if (type != "Input") return Sequential();
    Shape shape;
    std::size_t values = 1;
    for (std::size_t extent = 0; words >> extent;) {
        // Bounded so that a corrupt file cannot make sizes overflow.
        if (extent == 0 || extent > (std::size_t(1) << 31) / values)
            throw std::runtime_error(path + ": section MODL line 1 '" + line +
                                     "': input shape must be positive and under 2^31 values");
        values *= extent;
        shape.push_back(extent);
    }
    if (shape.size() < 2 || !words.eof())
        throw std::runtime_error(path + ": section MODL line 1 '" + line +
                                 "': expected an input shape of two or more sizes");
    return Sequential(shape);
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream stream(text);
    for (std::string line; std::getline(stream, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

}  // namespace

void save_checkpoint(const std::string& path, Sequential& model, BasicOptimizer<float>* optimizer,
                     const std::map<std::string, std::string>& extra) {
    std::map<std::string, std::string> sections;
    sections["MODL"] = architecture(model);

    std::vector<std::pair<std::string, const float*>> names;
    std::vector<std::size_t> sizes;
    for (const Parameter<float>& parameter : model.parameters()) {
        names.emplace_back(parameter.name, parameter.value);
        sizes.push_back(parameter.size);
    }
    for (const Buffer<float>& buffer : model.buffers()) {
        names.emplace_back(buffer.name, buffer.value);
        sizes.push_back(buffer.size);
    }
    put_arrays(sections["TENS"], names, sizes);
    std::vector<std::pair<std::string, std::int64_t>> counters;
    gather_counters(model, "", counters);
    sections["CNTS"] = put_counters(counters);

    if (optimizer) {
        std::vector<std::pair<std::string, std::int64_t>> optimizer_counters;
        for (const auto& [name, value] : optimizer->state_counters())
            optimizer_counters.emplace_back(name, *value);
        sections["OPTC"] = put_counters(optimizer_counters);
        std::vector<std::pair<std::string, const float*>> arrays;
        std::vector<std::size_t> array_sizes;
        for (const auto& [name, values] : optimizer->state_arrays()) {
            arrays.emplace_back(name, values->data());
            array_sizes.push_back(values->size());
        }
        put_arrays(sections["OPTS"], arrays, array_sizes);
    }
    for (const auto& [tag, bytes] : extra) {
        if (tag.size() != 4 || sections.count(tag))
            throw std::invalid_argument("save_checkpoint: section tag '" + tag +
                                        "' must be 4 characters and not one of bnlab's own");
        sections[tag] = bytes;
    }

    std::string file(kMagic, sizeof kMagic);
    put<std::uint32_t>(file, kCheckpointVersion);
    put<std::uint32_t>(file, std::uint32_t(sections.size()));
    for (const auto& [tag, payload] : sections) {
        file += tag;
        put<std::uint64_t>(file, payload.size());
        file += payload;
        put<std::uint32_t>(file,
                           std::uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(payload.data()),
                                               uInt(payload.size()))));
    }
    write_file_atomically(path, file);
}

Checkpoint Checkpoint::read(const std::string& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    const std::string bytes((std::istreambuf_iterator<char>(stream)),
                            std::istreambuf_iterator<char>());
    Reader reader(bytes, path, "");
    if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
        reader.fail("not a bnlab checkpoint (bad magic number)");
    reader.take(sizeof kMagic);
    const std::uint32_t version = reader.get<std::uint32_t>();
    if (version == 0 || version > kCheckpointVersion)
        reader.fail("format version " + std::to_string(version) + " is not one this bnlab reads (" +
                    std::to_string(kCheckpointVersion) +
                    (version > kCheckpointVersion ? "); written by a newer bnlab?" : ")"));
    const std::uint32_t count = reader.get<std::uint32_t>();
    Checkpoint checkpoint;
    checkpoint.path_ = path;
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::string tag(reader.take(4), 4);
        const std::uint64_t length = reader.get<std::uint64_t>();
        if (length > bytes.size()) reader.fail("truncated in section " + tag);
        std::string payload;
        try {
            payload.assign(reader.take(length), length);
        } catch (const std::runtime_error&) {
            reader.fail("truncated in section " + tag);
        }
        std::uint32_t stored = 0;
        try {
            stored = reader.get<std::uint32_t>();
        } catch (const std::runtime_error&) {
            reader.fail("truncated in section " + tag);
        }
        const auto computed = std::uint32_t(
            crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), uInt(payload.size())));
        if (stored != computed) reader.fail("section " + tag + " is corrupt (crc32 mismatch)");
        if (!checkpoint.sections_.emplace(tag, std::move(payload)).second)
            reader.fail("section " + tag + " appears twice");
    }
    if (!reader.done()) reader.fail("unexpected bytes after the last section");
    for (const char* required : {"MODL", "TENS", "CNTS"})
        if (!checkpoint.section(required)) reader.fail(std::string("no section ") + required);
    return checkpoint;
}

const std::string* Checkpoint::section(const std::string& tag) const {
    const auto found = sections_.find(tag);
    return found == sections_.end() ? nullptr : &found->second;
}

Sequential Checkpoint::model() const {
    const std::vector<std::string> lines = split_lines(*section("MODL"));
    std::size_t line = 0;
    Sequential model = lines.empty() ? Sequential() : input_line(lines[0], path_);
    if (model.input_shape()) line = 1;
    std::size_t values_left = section("TENS")->size() / sizeof(float);
    build(model, lines, line, lines.size(), path_, values_left);
    load_into(model);
    return model;
}

void Checkpoint::load_into(Sequential& model) const {
    const std::vector<std::string> expected = split_lines(*section("MODL"));
    std::vector<std::string> actual;
    describe(model, actual);
    for (std::size_t i = 0; i < std::max(expected.size(), actual.size()); ++i) {
        const std::string in_file = i < expected.size() ? expected[i] : "nothing";
        const std::string in_model = i < actual.size() ? actual[i] : "nothing";
        if (in_file != in_model)
            throw std::runtime_error(path_ +
                                     ": the model differs from the checkpoint's: at layer "
                                     "line " +
                                     std::to_string(i + 1) + " the file has '" + in_file +
                                     "', the model '" + in_model + "'");
    }
    const std::map<std::string, ArrayView> arrays = read_arrays(*section("TENS"), path_, "TENS");
    for (const Parameter<float>& parameter : model.parameters())
        copy_array(arrays, parameter.name, parameter.value, parameter.size, path_);
    for (const Buffer<float>& buffer : model.buffers())
        copy_array(arrays, buffer.name, buffer.value, buffer.size, path_);
    const std::map<std::string, std::int64_t> counters =
        read_counters(*section("CNTS"), path_, "CNTS");
    std::vector<std::pair<std::string, std::int64_t>> names;
    std::vector<BatchNorm*> layers;
    gather_counters(model, "", names, &layers);
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto found = counters.find(names[i].first);
        if (found == counters.end()) throw std::runtime_error(path_ + ": no " + names[i].first);
        layers[i]->set_num_batches_tracked(found->second);
    }
}

void Checkpoint::load_optimizer(BasicOptimizer<float>& optimizer) const {
    const std::string* counters_text = section("OPTC");
    const std::string* arrays_bytes = section("OPTS");
    if (!counters_text || !arrays_bytes)
        throw std::runtime_error(path_ + ": no optimizer state in this checkpoint");
    const std::map<std::string, std::int64_t> counters =
        read_counters(*counters_text, path_, "OPTC");
    const std::map<std::string, ArrayView> arrays = read_arrays(*arrays_bytes, path_, "OPTS");
    const auto state_arrays = optimizer.state_arrays();
    if (arrays.size() != state_arrays.size())
        throw std::runtime_error(path_ + ": the optimizer state has " +
                                 std::to_string(arrays.size()) + " arrays, the optimizer " +
                                 std::to_string(state_arrays.size()) +
                                 " (another optimizer or momentum setting?)");
    for (const auto& [name, values] : state_arrays)
        copy_array(arrays, name, values->data(), values->size(), path_);
    for (const auto& [name, value] : optimizer.state_counters()) {
        const auto found = counters.find(name);
        if (found == counters.end())
            throw std::runtime_error(path_ + ": no optimizer counter " + name);
        *value = found->second;
    }
}

void save_model(const std::string& path, Sequential& model) {
    save_checkpoint(path, model);
}

Sequential load_model(const std::string& path) {
    return Checkpoint::read(path).model();
}

}  // namespace bnlab
