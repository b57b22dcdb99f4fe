#include "framework/onnx_export.hpp"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "framework/atomic_file.hpp"
#include "layers/avg_pool2d.hpp"
#include "layers/batch_norm.hpp"
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
#include "models/fold_batchnorm.hpp"

namespace bnlab {

namespace {

// A tensor of the graph: its name and the shape of one sample as ONNX sees it (after a
// GlobalAveragePool [C, 1, 1] where bnlab's layer gives [C]).
struct Value {
    std::string name;
    Shape shape;
};

std::vector<std::int64_t> dims_of(const Shape& shape) {
    return std::vector<std::int64_t>(shape.begin(), shape.end());
}

// Adds nodes and initializers to one graph, naming each after the layer it comes from ("3.Gemm",
// "3.weight": bnlab's parameter names, which are PyTorch's).
class GraphBuilder {
  public:
    explicit GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

    // A float32 initializer of `dims` from `data`.
    std::string constant(const std::string& name, const std::vector<std::int64_t>& dims,
                         const float* data) {
        onnx::TensorProto& tensor = *graph_.add_initializer();
        tensor.set_name(name);
        tensor.set_data_type(onnx::TensorProto_DataType_FLOAT);
        std::size_t count = 1;
        for (std::int64_t extent : dims) {
            tensor.add_dims(extent);
            count *= std::size_t(extent);
        }
        // Little-endian float32, as ONNX's raw_data is and bnlab's machines are.
        tensor.set_raw_data(reinterpret_cast<const char*>(data), count * sizeof(float));
        return name;
    }
    std::string constant(const std::string& name, const std::vector<std::int64_t>& dims,
                         const std::vector<float>& values) {
        return constant(name, dims, values.data());
    }
    // A 1-D int64 initializer (a Reshape's target shape).
    std::string int64_constant(const std::string& name, const std::vector<std::int64_t>& values) {
        onnx::TensorProto& tensor = *graph_.add_initializer();
        tensor.set_name(name);
        tensor.set_data_type(onnx::TensorProto_DataType_INT64);
        tensor.add_dims(std::int64_t(values.size()));
        for (std::int64_t value : values)
            tensor.add_int64_data(value);
        return name;
    }

    // A node `op` named `name` that reads `inputs` and writes the tensor `name` (node and
    // output share the name: each is made once).
    onnx::NodeProto& node(const std::string& op, const std::string& name,
                          const std::vector<std::string>& inputs) {
        onnx::NodeProto& node = *graph_.add_node();
        node.set_op_type(op);
        node.set_name(name);
        for (const std::string& input : inputs)
            node.add_input(input);
        node.add_output(name);
        return node;
    }

    static void set(onnx::NodeProto& node, const std::string& name, std::int64_t value) {
        onnx::AttributeProto& attribute = *node.add_attribute();
        attribute.set_name(name);
        attribute.set_type(onnx::AttributeProto_AttributeType_INT);
        attribute.set_i(value);
    }
    static void set(onnx::NodeProto& node, const std::string& name, float value) {
        onnx::AttributeProto& attribute = *node.add_attribute();
        attribute.set_name(name);
        attribute.set_type(onnx::AttributeProto_AttributeType_FLOAT);
        attribute.set_f(value);
    }
    static void set(onnx::NodeProto& node, const std::string& name,
                    const std::vector<std::int64_t>& values) {
        onnx::AttributeProto& attribute = *node.add_attribute();
        attribute.set_name(name);
        attribute.set_type(onnx::AttributeProto_AttributeType_INTS);
        for (std::int64_t value : values)
            attribute.add_ints(value);
    }

    onnx::GraphProto& graph() { return graph_; }

  private:
    onnx::GraphProto& graph_;
};

// Exports layers in order; `prefix` names them as their parameters are named ("", "3.",
// "3.body.").
class Exporter {
  public:
    explicit Exporter(GraphBuilder& builder) : g_(builder) {}

    Value sequential(Sequential& model, Value x, const std::string& prefix) {
        for (std::size_t i = 0; i < model.size(); ++i)
            x = layer(model[i], x, prefix + std::to_string(i) + ".");
        return x;
    }

    // `x` as samples of `shape`: a Flatten to a vector, a Reshape to anything else.
    Value conform(const Value& x, const Shape& shape, const std::string& prefix) {
        if (x.shape == shape) return x;
        if (shape_size(x.shape) != shape_size(shape))
            throw std::invalid_argument("export_onnx: layer " + prefix + " takes samples of " +
                                        shape_string(shape) + ", given " + shape_string(x.shape));
        if (shape.size() == 1) {
            GraphBuilder::set(g_.node("Flatten", prefix + "Flatten", {x.name}), "axis",
                              std::int64_t(1));
        } else {
            std::vector<std::int64_t> target = {0};  // 0: the batch, as it is
            for (std::size_t extent : shape)
                target.push_back(std::int64_t(extent));
            g_.node("Reshape", prefix + "Reshape",
                    {x.name, g_.int64_constant(prefix + "Reshape.shape", target)});
        }
        return {prefix + (shape.size() == 1 ? "Flatten" : "Reshape"), shape};
    }

  private:
    Value layer(BasicLayer<float>& layer, Value x, const std::string& prefix) {
        if (const std::optional<Shape> input = layer.input_shape(); input && !input->empty())
            x = conform(x, *input, prefix + "input.");  // its own names: a layer may reshape again
        if (auto* dense = dynamic_cast<Dense*>(&layer)) return this->dense(*dense, x, prefix);
        if (auto* conv = dynamic_cast<Conv2d*>(&layer)) return this->conv(*conv, x, prefix);
        if (auto* batchnorm = dynamic_cast<BatchNorm*>(&layer))
            return this->batchnorm(*batchnorm, x, prefix);
        if (auto* group = dynamic_cast<GroupNorm*>(&layer)) {
            const GroupNormOptions& o = group->options();
            return blocks_normalized(*group, x, prefix, o.num_groups(), o.eps(), o.affine(),
                                     per_channel_dims(x.shape));
        }
        if (auto* layer_norm = dynamic_cast<LayerNorm*>(&layer)) {
            // gamma and beta per element of the normalized shape, the sample's last dimensions.
            const LayerNormOptions& o = layer_norm->options();
            return blocks_normalized(*layer_norm, x, prefix,
                                     shape_size(x.shape) / shape_size(o.normalized_shape()),
                                     o.eps(), o.elementwise_affine(), dims_of(x.shape));
        }
        if (auto* instance = dynamic_cast<InstanceNorm2d*>(&layer))
            return instance_norm(*instance, x, prefix);
        if (dynamic_cast<ReLU*>(&layer))
            return {g_.node("Relu", prefix + "Relu", {x.name}).output(0), x.shape};
        if (dynamic_cast<Sigmoid*>(&layer))
            return {g_.node("Sigmoid", prefix + "Sigmoid", {x.name}).output(0), x.shape};
        if (dynamic_cast<Tanh*>(&layer))
            return {g_.node("Tanh", prefix + "Tanh", {x.name}).output(0), x.shape};
        if (auto* pool = dynamic_cast<MaxPool2d*>(&layer))
            return window(layer, "MaxPool", pool->window(), x, prefix);
        if (auto* pool = dynamic_cast<AvgPool2d*>(&layer))
            return window(layer, "AveragePool", pool->window(), x, prefix);
        if (dynamic_cast<GlobalAvgPool2d*>(&layer))
            return {g_.node("GlobalAveragePool", prefix + "GlobalAveragePool", {x.name}).output(0),
                    {x.shape[0], 1, 1}};
        if (dynamic_cast<Dropout*>(&layer)) return x;  // the identity in eval mode
        if (auto* nested = dynamic_cast<Sequential*>(&layer)) return sequential(*nested, x, prefix);
        if (auto* block = dynamic_cast<Residual*>(&layer)) return residual(*block, x, prefix);
        throw std::invalid_argument("export_onnx: cannot export layer " +
                                    prefix.substr(0, prefix.size() - 1) + ", " + layer.describe() +
                                    ": ONNX export knows no such layer");
    }

    // y = x W^T + b
    Value dense(Dense& dense, const Value& x, const std::string& prefix) {
        const std::int64_t out = std::int64_t(*dense.out_features()),
                           in = std::int64_t(*dense.in_features());
        onnx::NodeProto& gemm =
            g_.node("Gemm", prefix + "Gemm",
                    {x.name, g_.constant(prefix + "weight", {out, in}, dense.weight().data()),
                     g_.constant(prefix + "bias", {out}, dense.bias().data())});
        GraphBuilder::set(gemm, "transB", std::int64_t(1));
        return {gemm.output(0), {std::size_t(out)}};
    }

    Value conv(Conv2d& conv, const Value& x, const std::string& prefix) {
        const Conv2dOptions& o = conv.options();
        const auto k = std::int64_t(o.window().kernel);
        std::vector<std::string> inputs = {
            x.name,
            g_.constant(prefix + "weight",
                        {std::int64_t(o.out_channels()), std::int64_t(o.in_channels()), k, k},
                        conv.weight().data())};
        if (o.bias())
            inputs.push_back(
                g_.constant(prefix + "bias", {std::int64_t(o.out_channels())}, conv.bias().data()));
        onnx::NodeProto& node = g_.node("Conv", prefix + "Conv", inputs);
        set_window(node, o.window());
        return {node.output(0), *conv.output_shape()};
    }

    static void set_window(onnx::NodeProto& node, const Window& w) {
        const auto k = std::int64_t(w.kernel), s = std::int64_t(w.stride),
                   p = std::int64_t(w.padding);
        GraphBuilder::set(node, "kernel_shape", std::vector<std::int64_t>{k, k});
        GraphBuilder::set(node, "strides", std::vector<std::int64_t>{s, s});
        GraphBuilder::set(node, "pads", std::vector<std::int64_t>{p, p, p, p});
    }

    Value window(BasicLayer<float>& layer, const std::string& op, const Window& w, const Value& x,
                 const std::string& prefix) {
        Window unpadded = w;
        std::string input = x.name;
        if (op == "AveragePool" && w.padding > 0) {
            // PyTorch's default, and bnlab's, count_include_pad: the padding's zeros count in
            // the window's mean. As a Pad with zeros first, which every runtime reads the same
            // (OpenCV 4.6 gave 0.44 relative off with AveragePool's count_include_pad = 1).
            const auto p = std::int64_t(w.padding);
            input =
                g_.node("Pad", prefix + "Pad",
                        {x.name, g_.int64_constant(prefix + "Pad.pads", {0, 0, p, p, 0, 0, p, p})})
                    .output(0);
            unpadded.padding = 0;
        }
        onnx::NodeProto& node = g_.node(op, prefix + op, {input});
        set_window(node, unpadded);
        return {node.output(0), *layer.output_shape()};
    }

    // BatchNormalization with running statistics: y = gamma (x - mean) / sqrt(var + eps) + beta
    Value batch_normalization(const std::string& prefix, const Value& x, const float* gamma,
                              const float* beta, const float* mean, const float* var,
                              std::size_t channels, double eps) {
        const std::vector<std::int64_t> dims = {std::int64_t(channels)};
        onnx::NodeProto& node = g_.node("BatchNormalization", prefix + "BatchNormalization",
                                        {x.name, g_.constant(prefix + "weight", dims, gamma),
                                         g_.constant(prefix + "bias", dims, beta),
                                         g_.constant(prefix + "running_mean", dims, mean),
                                         g_.constant(prefix + "running_var", dims, var)});
        GraphBuilder::set(node, "epsilon", float(eps));
        return {node.output(0), x.shape};
    }

    Value batchnorm(BatchNorm& bn, const Value& x, const std::string& prefix) {
        if (bn.uses_batch_statistics())
            throw std::invalid_argument(
                "export_onnx: cannot export layer " + prefix.substr(0, prefix.size() - 1) + ", " +
                bn.describe() +
                ": without running statistics it normalizes with each batch's own, which "
                "ONNX's BatchNormalization does not");
        // gamma and beta stay 1 and 0 without affine.
        return batch_normalization(prefix, x, bn.gamma().data(), bn.beta().data(),
                                   bn.running_mean().data(), bn.running_var().data(),
                                   bn.options().num_features(), bn.options().eps());
    }

    Value instance_norm(InstanceNorm2d& layer, const Value& x, const std::string& prefix) {
        const InstanceNormOptions& o = layer.options();
        // In eval mode with running statistics it is a BatchNorm.
        if (o.track_running_stats())
            return batch_normalization(prefix, x, layer.gamma().data(), layer.beta().data(),
                                       layer.running_mean().data(), layer.running_var().data(),
                                       o.num_features(), o.eps());
        // Its affine step apart, as GroupNorm's: OpenCV 4.6 misreads InstanceNormalization's
        // scale and bias (0.83 relative off with gamma and beta drawn around 1 and 0; right
        // with 1 and 0).
        return blocks_normalized(layer, x, prefix, o.num_features(), o.eps(), o.affine(),
                                 per_channel_dims(x.shape));
    }

    // [C, 1, 1]: one value per channel, broadcast over a sample of `shape` ([C, H, W]).
    static std::vector<std::int64_t> per_channel_dims(const Shape& shape) {
        std::vector<std::int64_t> dims(shape.size(), 1);
        dims[0] = std::int64_t(shape[0]);
        return dims;
    }

    // GroupNorm and LayerNorm: each sample cut into `blocks` blocks normalized by their own
    // statistics, as InstanceNormalization normalizes the channels of [batch, blocks, K]; then
    // y = gamma xhat + beta with gamma and beta of `affine_dims`, which broadcast over the sample.
    template <typename Layer>
    Value blocks_normalized(Layer& layer, const Value& x, const std::string& prefix,
                            std::size_t blocks, double eps, bool affine,
                            const std::vector<std::int64_t>& affine_dims) {
        const std::size_t K = shape_size(x.shape) / blocks;
        const Value cut = conform(x, {blocks, K}, prefix + "blocks.");
        const std::vector<float> ones(blocks, 1.0f), zeros(blocks, 0.0f);
        const std::vector<std::int64_t> block_dims = {std::int64_t(blocks)};
        onnx::NodeProto& normalize =
            g_.node("InstanceNormalization", prefix + "InstanceNormalization",
                    {cut.name, g_.constant(prefix + "blocks.scale", block_dims, ones),
                     g_.constant(prefix + "blocks.bias", block_dims, zeros)});
        GraphBuilder::set(normalize, "epsilon", float(eps));
        const Value y = conform({normalize.output(0), cut.shape}, x.shape, prefix);
        if (!affine) return y;
        const std::string scaled = g_.node("Mul", prefix + "Mul",
                                           {y.name, g_.constant(prefix + "weight", affine_dims,
                                                                tiled(layer.gamma(), affine_dims))})
                                       .output(0);
        return {g_.node("Add", prefix + "Add",
                        {scaled, g_.constant(prefix + "bias", affine_dims,
                                             tiled(layer.beta(), affine_dims))})
                    .output(0),
                x.shape};
    }

    // `values` repeated to fill `dims`: LayerNorm's gamma of [H, W] as [C, H, W] (OpenCV 4.6
    // failed on a Mul of [batch, C, H, W] by [H, W], and by [1, H, W]).
    static std::vector<float> tiled(const Vector<float>& values,
                                    const std::vector<std::int64_t>& dims) {
        std::size_t count = 1;
        for (std::int64_t extent : dims)
            count *= std::size_t(extent);
        std::vector<float> result(count);
        for (std::size_t j = 0; j < count; ++j)
            result[j] = values(j % values.size());
        return result;
    }

    // y = relu(body(x) + shortcut(x))
    Value residual(Residual& block, const Value& x, const std::string& prefix) {
        Value body = sequential(block.body(), x, prefix + "body.");
        Value shortcut =
            block.shortcut() ? sequential(*block.shortcut(), x, prefix + "shortcut.") : x;
        shortcut = conform(shortcut, body.shape, prefix + "shortcut.");
        Value sum = {g_.node("Add", prefix + "Add", {body.name, shortcut.name}).output(0),
                     body.shape};
        if (!block.options().relu()) return sum;
        return {g_.node("Relu", prefix + "Relu", {sum.name}).output(0), sum.shape};
    }

    GraphBuilder& g_;
};

void add_io(onnx::ValueInfoProto& info, const std::string& name, const Shape& sample) {
    info.set_name(name);
    onnx::TypeProto_Tensor& tensor = *info.mutable_type()->mutable_tensor_type();
    tensor.set_elem_type(onnx::TensorProto_DataType_FLOAT);
    onnx::TensorShapeProto& shape = *tensor.mutable_shape();
    shape.add_dim()->set_dim_param("batch");
    for (std::size_t extent : sample)
        shape.add_dim()->set_dim_value(std::int64_t(extent));
}

std::string model_bytes(Sequential& model, const ExportOptions& options) {
    std::optional<Shape> input = model.input_shape();
    if (!input || input->empty()) {
        if (!model.in_features())
            throw std::invalid_argument(
                "export_onnx: the model's input shape is unknown (give the Sequential its "
                "input shape, Sequential(Shape{1, 28, 28}))");
        input = Shape{*model.in_features()};
    }
    onnx::ModelProto proto;
    proto.set_ir_version(onnx::IR_VERSION);
    proto.set_producer_name("bnlab");
    proto.set_producer_version(BNLAB_VERSION);
    onnx::OperatorSetIdProto& opset = *proto.add_opset_import();
    opset.set_domain("");
    opset.set_version(kOnnxOpset);
    onnx::GraphProto& graph = *proto.mutable_graph();
    graph.set_name(options.graph_name());
    add_io(*graph.add_input(), "input", *input);

    GraphBuilder builder(graph);
    Exporter exporter(builder);
    Value x = exporter.sequential(model, {"input", *input}, "");
    x = exporter.conform(x, {shape_size(x.shape)}, "output.");
    // The last node writes "output" (an Identity when the model is empty).
    if (x.name == "input") builder.node("Identity", "output.Identity", {x.name});
    onnx::NodeProto& last = *graph.mutable_node(graph.node_size() - 1);
    last.set_output(0, "output");
    add_io(*graph.add_output(), "output", x.shape);

    try {
        onnx::checker::check_model(proto);
    } catch (const std::exception& error) {
        throw std::logic_error(std::string("export_onnx: ONNX's checker rejected the graph: ") +
                               error.what());
    }
    std::string bytes;
    if (!proto.SerializeToString(&bytes))
        throw std::runtime_error("export_onnx: could not serialize the graph");
    return bytes;
}

}  // namespace

std::string onnx_model_bytes(Sequential& model, const ExportOptions& options) {
    if (model.is_training())
        throw std::invalid_argument(
            "export_onnx: the model is in training mode: call model.eval() first (the graph "
            "computes eval mode: BatchNorm with its running statistics, Dropout as the identity)");
    if (!options.fold_batchnorm()) return model_bytes(model, options);
    Sequential folded = fold_batchnorm(model);
    return model_bytes(folded, options);
}

void export_onnx(Sequential& model, const std::string& path, const ExportOptions& options) {
    check_writable(path);
    write_file_atomically(path, onnx_model_bytes(model, options));
}

}  // namespace bnlab
