// bnlab (float32) against PyTorch 1.13's values (float64) from tests/golden/make_golden.py,
// to 1e-5 relative to each tensor's scale.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using nlohmann::json;

namespace {

void check_vector(const std::string& what, const Vector<float>& actual, const json& expected) {
    check_close(what, actual.data(), actual.size(), expected);
}
void check_matrix(const std::string& what, const Matrix<float>& actual, const json& expected) {
    check_close(what, actual.data(), actual.size(), expected);
}

}  // namespace

TEST_CASE("BatchNorm training forward and backward match PyTorch") {
    const json& g = golden().at("bn_train");
    const Matrix<float> x = matrix_from<float>(g["x"]);
    BatchNorm bn(x.shape(1));
    assign_from(bn.gamma().data(), bn.gamma().size(), g["gamma"]);
    assign_from(bn.beta().data(), bn.beta().size(), g["beta"]);

    check_matrix("bn_train y", bn.forward(x), g["y"]);
    check_matrix("bn_train dx", bn.backward(matrix_from<float>(g["dy"])), g["dx"]);
    check_vector("bn_train dgamma", bn.gamma_grad(), g["dgamma"]);
    check_vector("bn_train dbeta", bn.beta_grad(), g["dbeta"]);
    check_vector("bn_train running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_train running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("BatchNorm running statistics over several steps and eval mode match PyTorch") {
    const json& g = golden().at("bn_running");
    BatchNorm bn(4);
    assign_from(bn.gamma().data(), bn.gamma().size(), g["gamma"]);
    assign_from(bn.beta().data(), bn.beta().size(), g["beta"]);
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_vector("bn_running running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_running running_var", bn.running_var(), g["running_var"]);
    CHECK(bn.num_batches_tracked() == 3);

    bn.eval();
    bn.zero_grad();
    check_matrix("bn_running y_eval", bn.forward(matrix_from<float>(g["x_eval"])), g["y_eval"]);
    check_matrix("bn_running dx_eval", bn.backward(matrix_from<float>(g["dy_eval"])), g["dx_eval"]);
    check_vector("bn_running dgamma_eval", bn.gamma_grad(), g["dgamma_eval"]);
    check_vector("bn_running dbeta_eval", bn.beta_grad(), g["dbeta_eval"]);
}

TEST_CASE("BatchNorm with momentum unset keeps a cumulative average, as PyTorch's None") {
    const json& g = golden().at("bn_cumulative");
    BatchNorm bn(BatchNormOptions(4).momentum(std::nullopt));
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_vector("bn_cumulative running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_cumulative running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("BatchNorm without affine parameters matches PyTorch") {
    const json& g = golden().at("bn_no_affine");
    BatchNorm bn(BatchNormOptions(3).affine(false));
    CHECK(bn.parameters().empty());
    check_matrix("bn_no_affine y", bn.forward(matrix_from<float>(g["x"])), g["y"]);
    check_matrix("bn_no_affine dx", bn.backward(matrix_from<float>(g["dy"])), g["dx"]);
}

namespace {

// Trains `model`, whose parameters start at the golden initial values, two steps with
// `optimizer` on the golden batches; checks losses, every parameter after each step and the
// running statistics of the BatchNorm at index 1.
template <typename MakeOptimizer>
void check_training_steps(const std::string& key, Sequential& model, MakeOptimizer make_optimizer) {
    const json& g = golden().at(key);
    std::vector<Parameter<float>> parameters = model.parameters();
    // Every golden value is one of the model's parameters or buffers.
    std::size_t buffers_in_file = 0;
    for (const Buffer<float>& b : model.buffers())
        buffers_in_file += g["initial"].contains(b.name) ? 1 : 0;
    REQUIRE(parameters.size() + buffers_in_file == g["initial"].size());
    for (Parameter<float>& p : parameters)
        assign_from(p.value, p.size, g["initial"].at(p.name));

    auto optimizer = make_optimizer(parameters);
    SoftmaxCrossEntropy loss;
    Labels labels = xt::empty<int>({std::size_t{8}});
    for (std::size_t i = 0; i < 8; ++i)
        labels(i) = g["labels"][i].get<int>();
    for (std::size_t step = 0; step < 2; ++step) {
        const std::string prefix = key + " step " + std::to_string(step + 1) + " ";
        const double value =
            train_step(model, loss, optimizer, matrix_from<float>(g["inputs"][step]), labels).loss;
        const double expected = g["losses"][step].get<double>();
        INFO(prefix << "loss " << value << " vs " << expected);
        CHECK(std::abs(value - expected) <= 1e-5 * std::abs(expected));
        for (const Parameter<float>& p : parameters)
            check_close(prefix + p.name, p.value, p.size, g["after"][step].at(p.name));
        // Running statistics, where the golden record has every buffer after each step.
        for (const Buffer<float>& b : model.buffers())
            if (g["after"][step].contains(b.name))
                check_close(prefix + b.name, b.value, b.size, g["after"][step].at(b.name));
    }
    if (!g.contains("running_mean")) return;
    auto& bn = dynamic_cast<BatchNorm&>(model[1]);
    check_vector(key + " running_mean", bn.running_mean(), g["running_mean"]);
    check_vector(key + " running_var", bn.running_var(), g["running_var"]);
}

// Linear(6,5) -> BatchNorm1d(5) -> ReLU -> Linear(5,3) with cross-entropy.
template <typename MakeOptimizer>
void check_sequential_steps(const std::string& name, MakeOptimizer make_optimizer) {
    Rng rng(0);  // weights are overwritten with the golden ones
    Sequential model;
    model.add<Dense>(6, 5, rng);
    model.add<BatchNorm>(5);
    model.add<ReLU>();
    model.add<Dense>(5, 3, rng);
    check_training_steps("sequential_" + name, model, make_optimizer);
}

}  // namespace

TEST_CASE("Two SGD steps (momentum, weight decay) of a Sequential with BatchNorm match PyTorch") {
    check_sequential_steps("sgd", [](std::vector<Parameter<float>> p) {
        return SGD(p, SGDOptions(0.1).momentum(0.9).weight_decay(1e-3));
    });
}

TEST_CASE("Two Adam steps of a Sequential with BatchNorm match PyTorch") {
    check_sequential_steps("adam", [](std::vector<Parameter<float>> p) {
        return Adam(p, AdamOptions(0.01).weight_decay(1e-3));
    });
}

TEST_CASE("Two SGD steps of Conv2d-BatchNorm2d-ReLU-MaxPool2d-Dense match PyTorch") {
    Rng rng(0);  // weights are overwritten with the golden ones
    Sequential model(Shape{1, 8, 8});
    model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
    model.add<BatchNorm2d>(4);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    model.add<Dense>(4 * 4 * 4, 3, rng);
    check_training_steps("cnn_sgd", model, [](std::vector<Parameter<float>> p) {
        return SGD(p, SGDOptions(0.1).momentum(0.9).weight_decay(1e-3));
    });
}

namespace {

// Forward and backward of `layer` on the golden x and dy: y, dx and every parameter gradient
// (PyTorch's names: weight, bias; BatchNorm's gamma and beta are its weight and bias).
void check_layer(const std::string& key, BasicLayer<float>& layer) {
    const json& g = golden().at(key);
    const Shape shape = g["x"]["shape"].get<Shape>();
    layer.set_input_shape(Shape(shape.begin() + 1, shape.end()));
    for (Parameter<float>& p : layer.parameters()) {
        const std::string name = p.name == "gamma" ? "weight" : p.name == "beta" ? "bias" : p.name;
        assign_from(p.value, p.size, g.at(name));
    }
    layer.zero_grad();
    check_matrix(key + " y", layer.forward(matrix_from<float>(g["x"])), g["y"]);
    check_matrix(key + " dx", layer.backward(matrix_from<float>(g["dy"])), g["dx"]);
    for (Parameter<float>& p : layer.parameters()) {
        const std::string name = p.name == "gamma" ? "weight" : p.name == "beta" ? "bias" : p.name;
        check_close(key + " d" + name, p.grad, p.size, g.at("d" + name));
    }
}

}  // namespace

TEST_CASE("Conv2d forward and backward match PyTorch: stride, padding, 1x1, no bias") {
    Rng rng(0);
    Conv2d strided(Conv2dOptions(3, 4, 3).stride(2).padding(1), rng);
    check_layer("conv_stride2_pad1", strided);
    Conv2d pointwise(4, 5, 1, 1, 0, rng);
    check_layer("conv_1x1", pointwise);
    Conv2d no_bias(Conv2dOptions(2, 3, 2).bias(false), rng);
    CHECK(no_bias.parameters().size() == 1);
    check_layer("conv_k2_nobias", no_bias);
    Conv2d wide(Conv2dOptions(2, 3, 5).padding(2), rng);
    check_layer("conv_k5_pad2", wide);
}

TEST_CASE("Conv2d 3x3 with padding 1 matches PyTorch through im2col and the direct kernels") {
    for (ConvAlgorithm algorithm : {ConvAlgorithm::im2col, ConvAlgorithm::direct}) {
        if (algorithm == ConvAlgorithm::direct && !direct_conv_available()) continue;
        CAPTURE(int(algorithm));
        Rng rng(0);
        Conv2d conv(Conv2dOptions(3, 5, 3).padding(1).algorithm(algorithm), rng);
        check_layer("conv_3x3_pad1", conv);
        Conv2d no_bias(Conv2dOptions(6, 3, 3).padding(1).bias(false).algorithm(algorithm), rng);
        check_layer("conv_3x3_pad1_nobias", no_bias);
    }
}

TEST_CASE("MaxPool2d, AvgPool2d and global average pooling match PyTorch") {
    MaxPool2d max2(2);
    check_layer("maxpool_2", max2);
    MaxPool2d max3(3, 2, 1);
    check_layer("maxpool_3_2_1", max3);
    AvgPool2d avg2(2);
    check_layer("avgpool_2", avg2);
    AvgPool2d avg3(3, 2, 1);
    check_layer("avgpool_3_2_1", avg3);
    GlobalAvgPool2d global;
    check_layer("global_avgpool", global);
}

TEST_CASE("BatchNorm2d training forward, backward and running statistics match PyTorch") {
    const json& g = golden().at("bn2d_train");
    BatchNorm2d bn(3);
    check_layer("bn2d_train", bn);
    check_vector("bn2d_train running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn2d_train running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("BatchNorm2d running statistics over several steps, then eval mode, match PyTorch") {
    const json& g = golden().at("bn2d_running_eval");
    BatchNorm2d bn(3);
    bn.set_input_shape({3, 4, 4});
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_vector("bn2d_running running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn2d_running running_var", bn.running_var(), g["running_var"]);
    bn.eval();
    check_layer("bn2d_running_eval", bn);
}

TEST_CASE("BatchNorm2d with momentum unset and no affine parameters matches PyTorch") {
    const json& g = golden().at("bn2d_cumulative_no_affine");
    BatchNorm2d bn(BatchNormOptions(3).momentum(std::nullopt).affine(false));
    bn.set_input_shape({3, 3, 3});
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_layer("bn2d_cumulative_no_affine", bn);
    check_vector("bn2d_cumulative running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn2d_cumulative running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("GroupNorm matches PyTorch: 2 groups, G = 1, G = C, features, no affine") {
    GroupNorm two_groups(2, 6);
    check_layer("groupnorm_g2", two_groups);
    GroupNorm one_group(1, 4);
    check_layer("groupnorm_g1", one_group);
    GroupNorm per_channel(4, 4);
    check_layer("groupnorm_gc", per_channel);
    GroupNorm features(2, 6);
    check_layer("groupnorm_features", features);
    // An offset of 100 against a spread of 2: statistics that cancel would lose digits here.
    GroupNorm plain(GroupNormOptions(2, 4).affine(false));
    CHECK(plain.parameters().empty());
    check_layer("groupnorm_no_affine", plain);
}

TEST_CASE("LayerNorm matches PyTorch: features, [C, H, W], the last two dimensions, no affine") {
    LayerNorm features(7);
    check_layer("layernorm_features", features);
    LayerNorm image(LayerNormOptions({3, 4, 5}));
    check_layer("layernorm_chw", image);
    LayerNorm rows(LayerNormOptions({4, 5}));
    check_layer("layernorm_hw", rows);
    LayerNorm plain(LayerNormOptions({7}).elementwise_affine(false));
    CHECK(plain.parameters().empty());
    check_layer("layernorm_no_affine", plain);
}

TEST_CASE("InstanceNorm2d matches PyTorch: defaults, affine, running statistics then eval") {
    InstanceNorm2d plain(3);
    CHECK(plain.parameters().empty());
    CHECK(plain.buffers().empty());
    check_layer("instancenorm", plain);
    InstanceNorm2d affine(InstanceNormOptions(3).affine(true));
    check_layer("instancenorm_affine", affine);

    const json& g = golden().at("instancenorm_running_eval");
    InstanceNorm2d tracked(
        InstanceNormOptions(3).affine(true).track_running_stats(true).momentum(0.2));
    tracked.set_input_shape({3, 4, 4});
    for (const json& step : g["steps"])
        tracked.forward(matrix_from<float>(step));
    check_vector("instancenorm running_mean", tracked.running_mean(), g["running_mean"]);
    check_vector("instancenorm running_var", tracked.running_var(), g["running_var"]);
    tracked.eval();
    check_layer("instancenorm_running_eval", tracked);
}

TEST_CASE("BatchNorm without running statistics matches PyTorch, in training and eval mode") {
    BatchNorm features(BatchNormOptions(5).track_running_stats(false));
    CHECK(features.buffers().empty());
    check_layer("bn_no_tracking", features);
    CHECK(features.num_batches_tracked() == 0);
    CHECK(features.running_mean() == Vector<float>(xt::zeros<float>({5})));
    BatchNorm2d images(BatchNormOptions(3).track_running_stats(false));
    images.eval();
    check_layer("bn2d_no_tracking_eval", images);
    CHECK(images.describe() == "BatchNorm(3, eps=1e-05, momentum=0.1, track_running_stats=false)");
    // Eval mode still needs a batch to take statistics from.
    CHECK(message_of([&] { images.forward(Matrix<float>(xt::zeros<float>({1, 3}))); }) != "");
}

namespace {

// One training-mode forward and backward of a residual block against torchvision's
// BasicBlock: y, dx, every parameter gradient, and the running statistics after the step.
void check_basic_block(const std::string& key, Residual& block) {
    const json& g = golden().at(key);
    for (Parameter<float>& p : block.parameters())
        assign_from(p.value, p.size, g["values"].at(p.name));
    block.zero_grad();
    check_matrix(key + " y", block.forward(matrix_from<float>(g["x"])), g["y"]);
    check_matrix(key + " dx", block.backward(matrix_from<float>(g["dy"])), g["dx"]);
    for (Parameter<float>& p : block.parameters())
        check_close(key + " d" + p.name, p.grad, p.size, g["grads"].at(p.name));
    const std::vector<Buffer<float>> buffers = block.buffers();
    CHECK(buffers.size() == (block.shortcut() ? 6 : 4));
    for (const Buffer<float>& b : buffers)
        check_close(key + " " + b.name, b.value, b.size, g["values"].at(b.name));
}

// Conv3x3 (stride) -> BN -> ReLU -> Conv3x3 -> BN, without biases (torchvision's conv3x3).
Sequential basic_block_body(const Shape& input, std::size_t out, std::size_t stride, Rng& rng) {
    Sequential body(input);
    body.add<Conv2d>(Conv2dOptions(input[0], out, 3).stride(stride).padding(1).bias(false), rng);
    body.add<BatchNorm2d>(out);
    body.add<ReLU>();
    body.add<Conv2d>(Conv2dOptions(out, out, 3).padding(1).bias(false), rng);
    body.add<BatchNorm2d>(out);
    return body;
}

}  // namespace

TEST_CASE("A residual block matches torchvision's BasicBlock: identity and projection") {
    Rng rng(0);  // weights are overwritten with the golden ones
    Residual identity(basic_block_body({3, 6, 5}, 3, 1, rng), rng);
    REQUIRE(identity.shortcut() == nullptr);
    check_basic_block("basic_block_identity", identity);
    Residual projection(basic_block_body({3, 7, 6}, 5, 2, rng), rng);
    REQUIRE(projection.shortcut() != nullptr);
    CHECK(projection.shortcut()->describe() == "Sequential(2 layers)");
    check_basic_block("basic_block_projection", projection);
}

TEST_CASE("Two SGD steps of a ResNet-8 (models/resnet.hpp) match PyTorch's") {
    Rng rng(0);  // weights are overwritten with the golden ones
    Sequential model = resnet<float>({1, 8, 8}, ResNetOptions().depth(8).width(4).classes(3), rng);
    for (Buffer<float>& b : model.buffers())
        assign_from(b.value, b.size, golden().at("resnet8_sgd")["initial"].at(b.name));
    check_training_steps("resnet8_sgd", model, [](std::vector<Parameter<float>> p) {
        return SGD(p, SGDOptions(0.1).momentum(0.9).weight_decay(1e-3));
    });
}

TEST_CASE("Cross-entropy with label smoothing and mean squared error match PyTorch") {
    for (const char* key :
         {"cross_entropy", "cross_entropy_smoothing_0.1", "cross_entropy_smoothing_0.35"}) {
        const json& g = golden().at(key);
        SoftmaxCrossEntropy loss(g.at("label_smoothing").get<double>());
        const std::vector<int> targets = g.at("target").get<std::vector<int>>();
        Labels labels = xt::empty<int>({targets.size()});
        std::copy(targets.begin(), targets.end(), labels.begin());
        const float value = loss.forward(matrix_from<float>(g.at("outputs")), labels);
        CAPTURE(key);
        CHECK(value == doctest::Approx(g.at("loss").get<double>()).epsilon(1e-6));
        check_matrix(std::string(key) + " grad", loss.backward(), g.at("grad"));
    }
    for (const char* key : {"mse_one_output", "mse_three_outputs"}) {
        const json& g = golden().at(key);
        MeanSquaredError loss;
        const Matrix<float> values = matrix_from<float>(g.at("target"));
        const float value =
            loss.forward(matrix_from<float>(g.at("outputs")), Targets{nullptr, &values});
        CAPTURE(key);
        CHECK(value == doctest::Approx(g.at("loss").get<double>()).epsilon(1e-6));
        check_matrix(std::string(key) + " grad", loss.backward(), g.at("grad"));
    }
}
