// Residual blocks (layers/residual.hpp) and the ResNets built from them (models/resnet.hpp):
// gradients by finite differences, shapes and their errors, nesting, checkpoints, folding,
// summary(). Their numbers against torchvision are in test_pytorch_golden.cpp.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// Conv3x3 (stride) -> BN -> ReLU -> Conv3x3 -> BN, for samples of shape `input`.
template <typename T>
BasicSequential<T> conv_body(const Shape& input, std::size_t out, std::size_t stride, Rng& rng,
                             bool batchnorm = true) {
    BasicSequential<T> body(input);
    body.template add<BasicConv2d>(
        Conv2dOptions(input[0], out, 3).stride(stride).padding(1).bias(!batchnorm), rng);
    if (batchnorm) body.template add<BasicBatchNorm>(out);
    body.template add<BasicReLU>();
    body.template add<BasicConv2d>(Conv2dOptions(out, out, 3).padding(1).bias(!batchnorm), rng);
    if (batchnorm) body.template add<BasicBatchNorm>(out);
    return body;
}

}  // namespace

TEST_CASE("Residual's gradients match finite differences: identity, projection, no ReLU") {
    Rng rng(5);
    SUBCASE("identity shortcut, with BatchNorm") {
        BasicResidual<double> block(conv_body<double>({2, 5, 4}, 2, 1, rng), rng);
        REQUIRE(block.shortcut() == nullptr);
        check_layer_gradients(block, random_matrix<double>(3, 2 * 5 * 4, rng), 11);
    }
    SUBCASE("projection: stride 2 and more channels, 1x1 Conv2d + BatchNorm2d") {
        BasicResidual<double> block(conv_body<double>({2, 5, 5}, 3, 2, rng), rng);
        REQUIRE(block.shortcut() != nullptr);
        CHECK(block.shortcut()->size() == 2);
        CHECK(*block.output_shape() == Shape{3, 3, 3});
        check_layer_gradients(block, random_matrix<double>(3, 2 * 5 * 5, rng), 12);
    }
    SUBCASE("projection without BatchNorm, no ReLU after the sum") {
        BasicResidual<double> block(conv_body<double>({2, 4, 4}, 3, 1, rng, false), rng,
                                    ResidualOptions().relu(false));
        REQUIRE(block.shortcut() != nullptr);
        CHECK(block.shortcut()->size() == 1);  // Conv2d alone, with its bias
        CHECK(block.shortcut()->parameters().size() == 2);
        check_layer_gradients(block, random_matrix<double>(2, 2 * 4 * 4, rng), 13);
    }
    SUBCASE("feature vectors: Dense body, Dense + BatchNorm projection") {
        BasicSequential<double> body;
        body.add<BasicDense>(6, 4, rng);
        body.add<BasicBatchNorm>(4);
        body.add<BasicReLU>();
        BasicResidual<double> block(std::move(body), rng);
        REQUIRE(block.shortcut() != nullptr);
        CHECK(block.shortcut()->describe() == "Sequential(2 layers)");
        check_layer_gradients(block, random_matrix<double>(4, 6, rng), 14);
    }
    SUBCASE("a residual block inside another one's body, with an explicit shortcut") {
        BasicSequential<double> inner(Shape{2, 4, 4});
        inner.add(
            std::make_unique<BasicResidual<double>>(conv_body<double>({2, 4, 4}, 2, 1, rng), rng));
        inner.add<BasicConv2d>(Conv2dOptions(2, 3, 3).padding(1), rng);
        BasicSequential<double> shortcut(Shape{2, 4, 4});
        shortcut.add<BasicConv2d>(Conv2dOptions(2, 3, 1), rng);
        BasicResidual<double> outer(std::move(inner), std::move(shortcut));
        CHECK(outer.parameters()[0].name == "body.0.body.0.weight");
        check_layer_gradients(outer, random_matrix<double>(3, 2 * 4 * 4, rng), 15);
    }
}

TEST_CASE("Shapes that cannot be added are errors naming both shapes") {
    Rng rng(1);
    // An explicit shortcut whose output is not the body's.
    Sequential shortcut(Shape{2, 6, 6});
    shortcut.add<Conv2d>(Conv2dOptions(2, 4, 1), rng);
    CHECK(message_of([&] {
              Residual(conv_body<float>({2, 6, 6}, 3, 1, rng), std::move(shortcut));
          }) ==
          "Residual: the body's output [3, 6, 6] cannot be added to the shortcut's [4, 6, 6]");
    // The identity asked for a body that changes the shape.
    CHECK(message_of([&] {
              Residual(conv_body<float>({2, 6, 6}, 3, 2, rng));
          }) ==
          "Residual: the body's output [3, 3, 3] cannot be added to the identity shortcut's "
          "[2, 6, 6] (the block's input)");
    // No 1x1 convolution takes 5 positions to 4.
    Sequential body(Shape{2, 5, 5});
    body.add<Conv2d>(Conv2dOptions(2, 3, 2), rng);
    CHECK(message_of([&] { Residual(std::move(body), rng); }) ==
          "Residual: no 1x1 convolution takes the block's input [2, 5, 5] to its body's output "
          "[3, 4, 4]: give the shortcut");
    CHECK(message_of([&] {
              Residual(Sequential(Shape{2, 5, 5}), rng);
          }) == "Residual: the body has no layers");
    // A block set up for other samples than the model gives it.
    Sequential model(Shape{3, 6, 6});
    CHECK(message_of([&] {
              model.add<Residual>(conv_body<float>({2, 6, 6}, 2, 1, rng), rng);
          }) ==
          "Sequential: cannot add layer 0 Residual(identity), which expects images [2, H, W], "
          "on the model's input samples of shape [3, 6, 6] (108 values)");
    // A body of element-wise layers has no shape until it runs: checked at forward.
    Sequential relu_only;
    relu_only.add<ReLU>();
    Sequential widening;
    widening.add<Dense>(4, 6, rng);
    Residual loose(std::move(relu_only), std::move(widening));
    CHECK(message_of([&] {
              loose.forward(xt::ones<float>({2, 4}));
          }) ==
          "Residual(projection): the body's output of shape [2, 4] cannot be added to the "
          "shortcut's [2, 6]");
}

TEST_CASE("A residual block sits in a Sequential as any layer: names, modes, input gradient") {
    Rng rng(2);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 2, 3).padding(1), rng);
    auto& block = model.add<Residual>(conv_body<float>({2, 6, 6}, 4, 2, rng), rng);
    model.add<GlobalAvgPool2d>();
    model.add<Dense>(4, 3, rng);
    const std::vector<Parameter<float>> parameters = model.parameters();
    std::vector<std::string> names;
    for (const Parameter<float>& p : parameters)
        names.push_back(p.name);
    CHECK(names == std::vector<std::string>{
                       "0.weight", "0.bias", "1.body.0.weight", "1.body.1.gamma", "1.body.1.beta",
                       "1.body.3.weight", "1.body.4.gamma", "1.body.4.beta", "1.shortcut.0.weight",
                       "1.shortcut.1.gamma", "1.shortcut.1.beta", "3.weight", "3.bias"});
    CHECK(model.buffers().size() == 6);
    model.eval();
    CHECK(!block.is_training());
    CHECK(!block.body()[1].is_training());
    CHECK(!(*block.shortcut())[1].is_training());
    model.train();
    CHECK(block.body()[4].is_training());
    // Without an input gradient the block still gives its parameters theirs.
    Residual alone(conv_body<float>({2, 4, 4}, 2, 1, rng), rng);
    alone.set_input_grad_needed(false);
    Matrix<float> x = random_matrix<float>(2, 32, rng);
    alone.forward(x);
    alone.zero_grad();
    CHECK(alone.backward(random_matrix<float>(2, 32, rng)).size() == 0);
    double squares = 0;
    for (const Parameter<float>& p : alone.parameters())
        for (std::size_t i = 0; i < p.size; ++i)
            squares += double(p.grad[i]) * p.grad[i];
    CHECK(squares > 0);
}

TEST_CASE("summary() shows a block's body and shortcut, and what in them is fused") {
    Rng rng(3);
    Sequential model = resnet<float>({1, 8, 8}, ResNetOptions().depth(8).width(4).classes(3), rng);
    const std::string summary = model.summary();
    INFO(summary);
    CHECK(summary.find("\n4             Residual(projection)  ") != std::string::npos);
    CHECK(summary.find("\n4.body        Sequential(5 layers)  ") != std::string::npos);
    CHECK(summary.find("\n4.body.0      Conv2d(4 -> 8, 3x3, stride 2, padding 1, bias=false)      "
                       "[8, 4, 4]           288  fused 4.body.0-4.body.2\n") != std::string::npos);
    CHECK(summary.find("\n4.shortcut.0  Conv2d(4 -> 8, 1x1, stride 2, bias=false)                 "
                       "[8, 4, 4]            32  fused 4.shortcut.0-4.shortcut.1\n") !=
          std::string::npos);
    CHECK(summary.find("Fused: layers 4.body.0-4.body.2 run as one pass (Conv2d + BatchNorm + "
                       "ReLU)") != std::string::npos);
    // The body's last convolution and the projection, each with its BatchNorm and no ReLU
    CHECK(summary.find("Fused: layers 4.body.3-4.body.4 run as one pass (Conv2d + BatchNorm)\n") !=
          std::string::npos);
    CHECK(summary.find("Fused: layers 4.shortcut.0-4.shortcut.1 run as one pass (Conv2d + "
                       "BatchNorm)\n") != std::string::npos);
    CHECK(summary.find("Trainable parameters: " + std::to_string(model.parameter_count())) !=
          std::string::npos);
}

TEST_CASE("ResNet: depth 6n + 2, plain twin, Kaiming fan-out, zero-initialized residual gamma") {
    Rng rng(4);
    CHECK(message_of([&] {
              resnet<float>({1, 28, 28}, ResNetOptions().depth(10), rng);
          }) == "ResNet: depth 10 is not 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, …)");
    CHECK(message_of([&] { resnet<float>({784}, ResNetOptions().depth(8), rng); }) ==
          "ResNet: needs images [C, H, W], got samples of shape [784]");
    // Layers with weights: the stem, 2 per block, the Dense (projections are not counted).
    auto count_weighted = [](Sequential& model) {
        std::size_t count = 0;
        for (std::size_t i = 0; i < model.size(); ++i) {
            if (auto* block = dynamic_cast<Residual*>(&model[i])) {
                for (std::size_t j = 0; j < block->body().size(); ++j)
                    count += dynamic_cast<Conv2d*>(&block->body()[j]) ? 1 : 0;
            } else {
                count += dynamic_cast<Conv2d*>(&model[i]) || dynamic_cast<Dense*>(&model[i]);
            }
        }
        return count;
    };
    Sequential resnet20 = resnet<float>({1, 28, 28}, ResNetOptions(), rng);
    CHECK(count_weighted(resnet20) == 20);
    CHECK(*resnet20.output_shape() == Shape{10});
    // He et al.'s ResNet-20 has 0.27M parameters (with 3-channel input: 16 more weights x 9).
    CHECK(resnet20.parameter_count() > 265000);
    CHECK(resnet20.parameter_count() < 275000);
    Sequential plain = resnet<float>({1, 28, 28}, ResNetOptions().residual(false), rng);
    CHECK(count_weighted(plain) == 20);
    for (std::size_t i = 0; i < plain.size(); ++i)
        CHECK(dynamic_cast<Residual*>(&plain[i]) == nullptr);
    Sequential no_bn = resnet<float>({1, 28, 28}, ResNetOptions().depth(8).batchnorm(false), rng);
    CHECK(no_bn.buffers().empty());
    CHECK(dynamic_cast<Conv2d&>(no_bn[0]).options().bias());

    // Kaiming-normal, fan-out: std sqrt(2 / (64 * 9)) for a 64-channel 3x3 convolution.
    auto& last = dynamic_cast<Residual&>(resnet20[resnet20.size() - 3]);
    const Matrix<float>& weight = dynamic_cast<Conv2d&>(last.body()[3]).weight();
    double squares = 0;
    for (float w : weight)
        squares += double(w) * w;
    const double std = std::sqrt(squares / double(weight.size()));
    CHECK(std == doctest::Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.02));

    // zero_init_residual: each block starts as its shortcut, relu(x) for the identity.
    Sequential zero =
        resnet<float>({1, 8, 8}, ResNetOptions().depth(8).zero_init_residual(true), rng);
    auto& first = dynamic_cast<Residual&>(zero[3]);
    CHECK(xt::all(xt::equal(dynamic_cast<BatchNorm&>(first.body()[4]).gamma(), 0.0f)));
    CHECK(xt::all(xt::equal(dynamic_cast<BatchNorm&>(first.body()[1]).gamma(), 1.0f)));
    Matrix<float> x = xt::abs(random_matrix<float>(4, 16 * 8 * 8, rng));
    CHECK(first.forward(x) == x);
}

TEST_CASE("A ResNet saves and loads back bit for bit, and folds its BatchNorms") {
    Rng rng(6);
    Sequential model = resnet<float>({1, 8, 8}, ResNetOptions().depth(8).width(4).classes(3), rng);
    // Two training steps, so that the statistics and counters are not at their defaults.
    SGD sgd(model.parameters(), SGDOptions(0.05).momentum(0.9));
    SoftmaxCrossEntropy loss;
    Labels labels = {0, 1, 2, 1, 0, 2};
    for (int step = 0; step < 2; ++step)
        train_step(model, loss, sgd, random_matrix<float>(6, 64, rng), labels);
    TempDir dir;
    save_model(dir / "resnet.bnlab", model);
    CHECK(read_text(dir / "resnet.bnlab").find("Residual 1 1\nSequential 5\n") !=
          std::string::npos);
    Sequential loaded = load_model(dir / "resnet.bnlab");
    CHECK(loaded.summary() == model.summary());
    CHECK(values_of(loaded) == values_of(model));
    auto& block = dynamic_cast<Residual&>(loaded[4]);
    CHECK(dynamic_cast<BatchNorm&>((*block.shortcut())[1]).num_batches_tracked() == 2);
    model.eval();
    loaded.eval();
    const Matrix<float> x = random_matrix<float>(5, 64, rng);
    const Matrix<float> expected = model.forward(x);
    CHECK(loaded.forward(x) == expected);

    // Folded: every BatchNorm merged into the convolution before it, body and shortcut alike.
    Sequential folded = fold_batchnorm(model);
    CHECK(folded.buffers().empty());
    const Matrix<float> y = folded.forward(x);
    CHECK(xt::amax(xt::abs(y - expected))() <= 1e-5f * xt::amax(xt::abs(expected))());
}

TEST_CASE("Cut or inconsistent residual blocks in a checkpoint are errors naming the line") {
    TempDir dir;
    const std::string path = dir / "bad.bnlab";
    auto message_for = [&](const std::string& layers) {
        return load_model_error(path, layers, 4000);
    };
    const std::string body = "Sequential 2\nConv2d 2 2 3 1 1 1\nReLU\n";
    CHECK(message_for("Input 2 4 4\nResidual 1\n" + body) ==
          path +
              ": section MODL line 2 'Residual 1': expected the ReLU and shortcut flags, 0 or 1");
    CHECK(message_for("Input 2 4 4\nResidual 1 0\n") ==
          path +
              ": section MODL line 2 'Residual 1 0': expected the body's Sequential line, found "
              "the end of the section");
    CHECK(message_for("Input 2 4 4\nResidual 1 0\nReLU\n") ==
          path +
              ": section MODL line 2 'Residual 1 0': expected the body's Sequential line, found "
              "'ReLU'");
    CHECK(message_for("Input 2 4 4\nResidual 1 1\n" + body) ==
          path +
              ": section MODL line 2 'Residual 1 1': expected the shortcut's Sequential line, "
              "found the end of the section");
    // The body's layer count says more layers than the file has.
    CHECK(message_for("Input 2 4 4\nResidual 1 0\nSequential 3\nConv2d 2 2 3 1 1 1\nReLU\n") ==
          path + ": section MODL line 2 'Residual 1 0': expected 3 layers");
    // A body that changes the shape, with no shortcut to match.
    CHECK(message_for("Input 2 4 4\nResidual 1 0\nSequential 1\nConv2d 2 3 3 1 1 1\n") ==
          path +
              ": section MODL line 2 'Residual 1 0': Residual: the body's output [3, 4, 4] "
              "cannot be added to the identity shortcut's [2, 4, 4] (the block's input)");
    // A block nested deeper than the reader allows.
    std::string deep = "Input 2 4 4\n";
    for (int i = 0; i < 70; ++i)
        deep += "Residual 1 0\nSequential 1\n";
    deep += "ReLU\n";
    CHECK(message_for(deep).find("nested more than 64 deep") != std::string::npos);
}
