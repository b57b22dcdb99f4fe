// ONNX export, checked by a runtime that is not bnlab: OpenCV's DNN module reads each exported
// graph (cv::dnn::readNetFromONNX) and runs it on a batch; its outputs must be bnlab's eval
// forward on the same batch within 1e-5 relative (the largest difference over the largest
// output). The models: the three MLP presets, the cnn preset, a ResNet-8, the CNN with each
// normalization, and the layers the presets do not use. Then the errors.
#include <onnx/onnx_pb.h>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "framework/bnlab.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/experiment/run_config.hpp"
#include "framework/onnx_export.hpp"
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// A synthetic data set of Fashion-MNIST's shape: `samples` images of [1, 28, 28], 10 classes.
Dataset images(std::size_t samples, Rng& rng) {
    Dataset data;
    data.inputs = random_matrix<float>(samples, 784, rng);
    data.labels = xt::zeros<int>({samples});
    for (std::size_t i = 0; i < samples; ++i)
        data.labels[i] = int(i % 10);
    data.sample_shape = {1, 28, 28};
    return data;
}

// Training-mode forwards on random batches move every running statistic off its start, and
// random gamma and beta leave no affine step the identity; then eval mode.
void settle(Sequential& model, const Shape& input, Rng& rng) {
    model.train();
    for (int step = 0; step < 3; ++step)
        model.forward(random_matrix<float>(16, shape_size(input), rng, 2.0, 0.5));
    const auto affine = [](const std::string& name) {
        const auto ends_with = [&](const std::string& end) {
            return name.size() >= end.size() &&
                   name.compare(name.size() - end.size(), end.size(), end) == 0;
        };
        return ends_with("gamma") || ends_with("beta");
    };
    for (Parameter<float>& p : model.parameters())
        if (affine(p.name))
            for (std::size_t j = 0; j < p.size; ++j)
                p.value[j] += float(0.3 * rng.normal());
    for (Buffer<float>& b : model.buffers())
        if (affine(b.name))
            for (std::size_t j = 0; j < b.size; ++j)
                b.value[j] += float(0.3 * rng.normal());
    model.eval();
}

// OpenCV's outputs for `x` ([batch, features]) through the graph in `path`, as [batch, outputs].
Matrix<float> run_in_opencv(const std::string& path, const Matrix<float>& x, const Shape& input) {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
    std::vector<int> dims = {int(x.shape(0))};
    for (std::size_t extent : input)
        dims.push_back(int(extent));
    cv::Mat blob(int(dims.size()), dims.data(), CV_32F, const_cast<float*>(x.data()));
    net.setInput(blob, "input");
    cv::Mat out = net.forward("output");
    const std::size_t rows = x.shape(0), cols = out.total() / rows;
    Matrix<float> result = xt::empty<float>({rows, cols});
    std::copy_n(out.ptr<float>(), rows * cols, result.data());
    return result;
}

// Exports `model` (settled), runs it in OpenCV on 5 samples and returns the deviation from
// bnlab's eval forward.
double opencv_deviation(Sequential& model, const Shape& input, Rng& rng,
                        const ExportOptions& options = {}) {
    settle(model, input, rng);
    TempDir dir;
    const std::string path = dir / "model.onnx";
    export_onnx(model, path, options);
    const Matrix<float> x = random_matrix<float>(5, shape_size(input), rng, 1.0, 0.2);
    const Matrix<float> expected = model.forward(x);
    return relative_difference(run_in_opencv(path, x, input), expected);
}

Sequential preset_model(const std::string& preset, Rng& rng) {
    Dataset data = images(20, rng);
    TrainConfig config = preset_config(preset);
    if (config.model == "mlp") data.sample_shape.clear();
    return build_model(config, data, data, rng).model;
}

}  // namespace

TEST_CASE("OpenCV runs the exported presets as bnlab does, to 1e-5") {
    for (const std::string preset : {"paper", "deep", "relu", "cnn"}) {
        CAPTURE(preset);
        Rng rng(1);
        Sequential model = preset_model(preset, rng);
        const Shape input = preset == "cnn" ? Shape{1, 28, 28} : Shape{784};
        const double deviation = opencv_deviation(model, input, rng);
        MESSAGE(preset << ": OpenCV's outputs within " << deviation << " of bnlab's");
        CHECK(deviation <= 1e-5);
        // Folded into the weights, the same outputs.
        Rng again(1);
        Sequential same = preset_model(preset, again);
        CHECK(opencv_deviation(same, input, again, ExportOptions().fold_batchnorm(true)) <= 1e-5);
    }
}

TEST_CASE("OpenCV runs an exported ResNet-8 (Add, projections, GlobalAveragePool)") {
    Rng rng(2);
    Sequential model =
        resnet<float>({1, 12, 12}, ResNetOptions().depth(8).width(4).classes(5), rng);
    const double deviation = opencv_deviation(model, {1, 12, 12}, rng);
    MESSAGE("resnet8: " << deviation);
    CHECK(deviation <= 1e-5);
}

TEST_CASE("OpenCV runs the CNN with each normalization") {
    for (const std::string norm : {"batch", "renorm", "group:2", "layer", "instance", "none"}) {
        CAPTURE(norm);
        Rng rng(3);
        Sequential model = cnn<float>({1, 10, 10}, {4, 8}, {16}, 3, Activation::relu,
                                      NormChoice::parse(norm), rng);
        const double deviation = opencv_deviation(model, {1, 10, 10}, rng);
        MESSAGE(norm << ": " << deviation);
        CHECK(deviation <= 1e-5);
    }
}

TEST_CASE("OpenCV runs the layers the presets leave out") {
    Rng rng(4);
    Sequential model(Shape{2, 9, 9});
    model.add<Conv2d>(Conv2dOptions(2, 4, 3).stride(2).padding(1).bias(false), rng);
    model.add<InstanceNorm2d>(InstanceNormOptions(4).affine(true).track_running_stats(true));
    model.add<Sigmoid>();
    model.add<AvgPool2d>(3, 1, 1);
    model.add<GroupNorm>(GroupNormOptions(4, 4).affine(false));
    model.add<MaxPool2d>(2);
    model.add<LayerNorm>(LayerNormOptions({2, 2}));  // the last two dimensions only
    model.add<Tanh>();
    model.add<Dense>(16, 12, rng);
    model.add<LayerNorm>(12);
    model.add<Dropout>(0.3, rng);
    Sequential head;
    head.add<Dense>(12, 6, rng);
    head.add<BatchNorm>(BatchNormOptions(6).freeze(BatchNormFreeze::all));
    head.add<ReLU>();
    model.add<Sequential>(std::move(head));
    model.add<Dense>(6, 3, rng);
    const double deviation = opencv_deviation(model, {2, 9, 9}, rng);
    MESSAGE("other layers: " << deviation);
    CHECK(deviation <= 1e-5);
}

TEST_CASE("The graph names its input and output, its batch is symbolic, its opset stated") {
    Rng rng(5);
    Sequential model = cnn<float>({1, 8, 8}, {2}, {4}, 3, Activation::relu, true, rng);
    model.eval();
    onnx::ModelProto proto;
    REQUIRE(proto.ParseFromString(onnx_model_bytes(model)));
    REQUIRE(proto.opset_import_size() == 1);
    CHECK(proto.opset_import(0).version() == kOnnxOpset);
    CHECK(proto.producer_name() == "bnlab");
    const onnx::GraphProto& graph = proto.graph();
    REQUIRE(graph.input_size() == 1);
    REQUIRE(graph.output_size() == 1);
    CHECK(graph.input(0).name() == "input");
    CHECK(graph.output(0).name() == "output");
    const auto& in = graph.input(0).type().tensor_type().shape();
    REQUIRE(in.dim_size() == 4);
    CHECK(in.dim(0).dim_param() == "batch");
    CHECK((in.dim(1).dim_value() == 1 && in.dim(2).dim_value() == 8 && in.dim(3).dim_value() == 8));
    const auto& out = graph.output(0).type().tensor_type().shape();
    REQUIRE(out.dim_size() == 2);
    CHECK(out.dim(1).dim_value() == 3);
    // Initializers carry bnlab's (PyTorch's) parameter names.
    std::vector<std::string> names;
    for (const onnx::TensorProto& tensor : graph.initializer())
        names.push_back(tensor.name());
    CHECK(std::find(names.begin(), names.end(), "0.weight") != names.end());
    CHECK(std::find(names.begin(), names.end(), "1.running_var") != names.end());
}

namespace {

// A layer of the user's own, which the exporter cannot know.
class Doubler : public BasicLayer<float> {
  public:
    const Matrix<float>& forward(const Matrix<float>& x) override { return out_ = 2.0f * x, out_; }
    const Matrix<float>& backward(const Matrix<float>& dy) override {
        return grad_ = 2.0f * dy, grad_;
    }
    std::optional<std::size_t> in_features() const override { return std::nullopt; }
    std::optional<std::size_t> out_features() const override { return std::nullopt; }
    std::string describe() const override { return "Doubler()"; }

  private:
    Matrix<float> out_, grad_;
};

}  // namespace

TEST_CASE("Export errors: training mode, an unknown layer, batch statistics, an unwritable path") {
    Rng rng(6);
    Sequential model;
    model.add<Dense>(4, 3, rng);
    model.add<Doubler>();
    TempDir dir;
    const std::string path = dir / "model.onnx";
    CHECK_THROWS_WITH_AS(export_onnx(model, path),
                         doctest::Contains("the model is in training mode: call model.eval()"),
                         std::invalid_argument);
    model.eval();
    CHECK_THROWS_WITH_AS(export_onnx(model, path),
                         "export_onnx: cannot export layer 1, Doubler(): ONNX export knows no "
                         "such layer",
                         std::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(path));

    Sequential batch_stats;
    batch_stats.add<Dense>(4, 3, rng);
    batch_stats.add<BatchNorm>(BatchNormOptions(3).track_running_stats(false));
    batch_stats.eval();
    CHECK_THROWS_WITH_AS(export_onnx(batch_stats, path),
                         doctest::Contains("cannot export layer 1, BatchNorm(3, eps=1e-05, "
                                           "momentum=0.1, track_running_stats=false): without "
                                           "running statistics"),
                         std::invalid_argument);

    Sequential fine;
    fine.add<Dense>(4, 3, rng);
    fine.eval();
    CHECK_THROWS_WITH_AS(export_onnx(fine, "/no/such/folder/model.onnx"),
                         doctest::Contains("/no/such/folder/model.onnx"), std::runtime_error);
    // An existing file is replaced whole, never left half written.
    std::ofstream(path) << "old";
    export_onnx(fine, path);
    onnx::ModelProto proto;
    std::ifstream file(path, std::ios::binary);
    CHECK(proto.ParseFromIstream(&file));
}
