// GroupNorm, LayerNorm and InstanceNorm2d (layers/normalization.hpp and the layers on it), and
// BatchNorm frozen: gradients by finite differences, modes, running statistics, shapes and their
// errors, checkpoints and folding. Their numbers against PyTorch are in test_pytorch_golden.cpp.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// gamma and beta away from 1 and 0, so that a gradient that ignores them is caught.
template <typename Layer>
void randomize_affine_of(Layer& layer, Rng& rng) {
    for (auto& g : layer.gamma())
        g = rng.uniform(0.5, 1.5);
    for (auto& b : layer.beta())
        b = rng.normal();
}

Matrix<float> first_row(const Matrix<float>& batch) {
    Matrix<float> row = xt::empty<float>({std::size_t{1}, batch.shape(1)});
    std::copy_n(batch.data(), batch.shape(1), row.data());
    return row;
}

}  // namespace

TEST_CASE("GroupNorm's gradients match finite differences: 2 groups, G = 1, G = C, features") {
    Rng rng(51);
    BasicGroupNorm<double> two_groups(2, 4);
    two_groups.set_input_shape({4, 3, 2});
    randomize_affine_of(two_groups, rng);
    check_layer_gradients(two_groups, random_matrix<double>(3, 24, rng, 2.0, 1.0), 511);

    BasicGroupNorm<double> one_group(1, 3);
    one_group.set_input_shape({3, 2, 2});
    randomize_affine_of(one_group, rng);
    check_layer_gradients(one_group, random_matrix<double>(2, 12, rng, 1.5, -1.0), 512);

    BasicGroupNorm<double> per_channel(3, 3);
    per_channel.set_input_shape({3, 2, 3});
    randomize_affine_of(per_channel, rng);
    check_layer_gradients(per_channel, random_matrix<double>(2, 18, rng), 513);

    BasicGroupNorm<double> features(GroupNormOptions(2, 6).affine(false));
    check_layer_gradients(features, random_matrix<double>(4, 6, rng, 3.0), 514);
}

TEST_CASE("LayerNorm's gradients match finite differences: features, [C, H, W], [H, W]") {
    Rng rng(52);
    BasicLayerNorm<double> features(5);
    randomize_affine_of(features, rng);
    check_layer_gradients(features, random_matrix<double>(3, 5, rng, 2.0, 1.0), 521);

    BasicLayerNorm<double> image(LayerNormOptions({2, 3, 2}));
    randomize_affine_of(image, rng);
    check_layer_gradients(image, random_matrix<double>(2, 12, rng), 522);

    BasicLayerNorm<double> rows(LayerNormOptions({3, 2}));
    rows.set_input_shape({2, 3, 2});
    randomize_affine_of(rows, rng);
    check_layer_gradients(rows, random_matrix<double>(2, 12, rng, 1.0, 3.0), 523);
}

TEST_CASE("InstanceNorm2d's gradients match finite differences: own and running statistics") {
    Rng rng(53);
    BasicInstanceNorm2d<double> affine(InstanceNormOptions(3).affine(true));
    affine.set_input_shape({3, 2, 3});
    randomize_affine_of(affine, rng);
    check_layer_gradients(affine, random_matrix<double>(2, 18, rng, 2.0), 531);

    BasicInstanceNorm2d<double> tracked(
        InstanceNormOptions(2).affine(true).track_running_stats(true));
    tracked.set_input_shape({2, 3, 3});
    randomize_affine_of(tracked, rng);
    for (int step = 0; step < 3; ++step)
        tracked.forward(random_matrix<double>(4, 18, rng, 2.0, 1.0));
    tracked.eval();  // running statistics: constants in backward
    check_layer_gradients(tracked, random_matrix<double>(2, 18, rng), 532);
}

TEST_CASE("GroupNorm and LayerNorm normalize the same way in training and eval mode") {
    Rng rng(54);
    const Matrix<float> x = random_matrix<float>(3, 32, rng, 2.0, 5.0);
    GroupNorm group(2, 2);
    group.set_input_shape({2, 4, 4});
    LayerNorm layer(LayerNormOptions({2, 4, 4}));
    InstanceNorm2d instance(2);
    instance.set_input_shape({2, 4, 4});
    for (BasicLayer<float>* norm : std::vector<BasicLayer<float>*>{&group, &layer, &instance}) {
        INFO(norm->describe());
        const Matrix<float> trained = norm->forward(x);
        norm->eval();
        CHECK(norm->forward(x) == trained);
        // A sample alone: the same numbers, whatever else is in the batch.
        const Matrix<float> alone = norm->forward(first_row(x));
        CHECK(alone == first_row(trained));
    }
}

TEST_CASE(
    "GroupNorm's groups are consecutive channels: G = 1 is LayerNorm with per-channel affine") {
    Rng rng(55);
    const Matrix<float> x = random_matrix<float>(2, 18, rng, 1.0, -2.0);
    GroupNorm group(1, 2);
    group.set_input_shape({2, 3, 3});
    LayerNorm layer(LayerNormOptions({2, 3, 3}).elementwise_affine(false));
    CHECK(xt::allclose(group.forward(x), layer.forward(x), 1e-6, 1e-6));
    // G = C: each channel alone, InstanceNorm's way.
    GroupNorm channels(2, 2);
    channels.set_input_shape({2, 3, 3});
    InstanceNorm2d instance(2);
    instance.set_input_shape({2, 3, 3});
    CHECK(xt::allclose(channels.forward(x), instance.forward(x), 1e-6, 1e-6));
}

TEST_CASE("InstanceNorm2d's running statistics: moved in training, used in eval, saved") {
    Rng rng(56);
    InstanceNorm2d tracked(InstanceNormOptions(2).track_running_stats(true));
    tracked.set_input_shape({2, 2, 2});
    CHECK(tracked.buffers().size() == 2);
    CHECK(tracked.buffers()[0].name == "running_mean");
    // Two samples whose channel 0 means are 1 and 3 (values mu -+ 1), unbiased variance 4/3.
    Matrix<float> x = {{0, 2, 0, 2, 5, 5, 5, 5}, {2, 4, 2, 4, 5, 5, 5, 5}};
    tracked.forward(x);
    CHECK(tracked.running_mean()(0) == doctest::Approx(0.1 * 2.0));
    CHECK(tracked.running_var()(0) == doctest::Approx(0.9 + 0.1 * 4.0 / 3.0));
    CHECK(tracked.running_mean()(1) == doctest::Approx(0.5));
    CHECK(tracked.running_var()(1) == doctest::Approx(0.9));
    tracked.eval();
    const Matrix<float>& y = tracked.forward(x);
    // (x - running_mean) / sqrt(running_var + eps)
    CHECK(y(0, 4) == doctest::Approx((5.0 - 0.5) / std::sqrt(0.9 + 1e-5)));
    // Without them, eval mode leaves nothing behind and normalizes each instance.
    InstanceNorm2d plain(2);
    plain.set_input_shape({2, 2, 2});
    plain.forward(x);
    plain.eval();
    CHECK(plain.forward(x)(0, 0) == doctest::Approx(-1.0).epsilon(1e-4));
}

TEST_CASE("Normalization layers in a Sequential: names, shapes and what they say") {
    Rng rng(57);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
    model.add<GroupNorm>(2, 4);
    model.add<ReLU>();
    model.add<InstanceNorm2d>(InstanceNormOptions(4).affine(true));
    model.add<LayerNorm>(LayerNormOptions({6, 6}));
    model.add<Dense>(144, 5, rng);
    model.add<LayerNorm>(5);
    std::vector<std::string> names;
    for (const Parameter<float>& p : model.parameters())
        names.push_back(p.name);
    CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.gamma", "1.beta", "3.gamma",
                                            "3.beta", "4.gamma", "4.beta", "5.weight", "5.bias",
                                            "6.gamma", "6.beta"});
    CHECK(model[4].parameter_count() == 72);
    CHECK(model[1].describe() == "GroupNorm(2, 4, eps=1e-05)");
    CHECK(model[3].describe() == "InstanceNorm2d(4, eps=1e-05, affine=true)");
    CHECK(model[4].describe() == "LayerNorm([6, 6], eps=1e-05)");
    CHECK(InstanceNorm2d(InstanceNormOptions(3).track_running_stats(true)).describe() ==
          "InstanceNorm2d(3, eps=1e-05, momentum=0.1, track_running_stats=true)");
    CHECK(GroupNorm(GroupNormOptions(1, 3).affine(false)).describe() ==
          "GroupNorm(1, 3, eps=1e-05, affine=false)");
    const Matrix<float>& y = model.forward(random_matrix<float>(3, 36, rng));
    CHECK(y.shape(1) == 5);
    model.backward(random_matrix<float>(3, 5, rng));
    CHECK(model.summary().find("GroupNorm(2, 4, eps=1e-05)") != std::string::npos);
}

TEST_CASE("Normalization layers' bad options and shapes are errors naming the layer") {
    CHECK(message_of([] { GroupNorm(3, 4); }) ==
          "GroupNorm: num_channels (4) must be divisible by num_groups (3)");
    CHECK(message_of([] { GroupNorm(0, 4); }) ==
          "GroupNorm: num_groups and num_channels must be positive, got 0 and 4");
    CHECK(message_of([] { GroupNorm(GroupNormOptions(2, 4).eps(0)); }) ==
          "GroupNorm: eps must be positive, got 0");
    CHECK(message_of([] { LayerNorm(LayerNormOptions({})); }) ==
          "LayerNorm: normalized_shape must have one or more positive sizes, got []");
    CHECK(message_of([] {
              LayerNorm(LayerNormOptions({3, 0}));
          }) == "LayerNorm: normalized_shape must have one or more positive sizes, got [3, 0]");
    CHECK(message_of([] { InstanceNorm2d(InstanceNormOptions(2).momentum(1.5)); }) ==
          "InstanceNorm2d: momentum must be in [0, 1], got 1.5");
    CHECK(message_of([] { InstanceNorm2d(0); }) == "InstanceNorm2d: num_features must be positive");

    Rng rng(58);
    Sequential images(Shape{1, 4, 4});
    images.add<Conv2d>(Conv2dOptions(1, 6, 3).padding(1), rng);
    CHECK(message_of([&] { images.add<GroupNorm>(2, 4); }) ==
          "Sequential: cannot add layer 1 GroupNorm(2, 4, eps=1e-05), which expects 4 features or "
          "channels, [4] or [4, H, W], after layer 0 Conv2d(1 -> 6, 3x3, padding 1), which "
          "outputs [6, 4, 4] (96 values)");
    CHECK(message_of([&] {
              images.add<LayerNorm>(LayerNormOptions({6, 5}));
          }) ==
          "Sequential: cannot add layer 1 LayerNorm([6, 5], eps=1e-05), which expects samples "
          "whose last dimensions are [6, 5], after layer 0 Conv2d(1 -> 6, 3x3, padding 1), which "
          "outputs [6, 4, 4] (96 values)");
    Sequential features;
    features.add<Dense>(3, 4, rng);
    CHECK(message_of([&] { features.add<InstanceNorm2d>(4); }) ==
          "Sequential: cannot add layer 1 InstanceNorm2d(4, eps=1e-05), which expects images of 4 "
          "channels, [4, H, W], after layer 0 Dense(3 -> 4), which outputs [4]");

    // One position per channel has nothing to normalize by; the layer is left as it was.
    InstanceNorm2d instance(InstanceNormOptions(2).track_running_stats(true));
    instance.set_input_shape({2, 1, 1});
    CHECK(message_of([&] {
              instance.forward(Matrix<float>{{1, 2}, {3, 4}});
          }) ==
          "InstanceNorm2d(2, eps=1e-05, momentum=0.1, track_running_stats=true): expected more "
          "than 1 position per channel to normalize over, got input of shape [2, 2, 1, 1]");
    CHECK(instance.running_mean()(0) == 0.0f);
    // A wrong width names the layer.
    GroupNorm group(2, 4);
    CHECK(message_of([&] {
              group.forward(Matrix<float>{{1, 2, 3}});
          }).find("GroupNorm(2, 4") != std::string::npos);
}

TEST_CASE("Normalization layers are saved, loaded and left in place by fold_batchnorm") {
    Rng rng(59);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
    model.add<BatchNorm2d>(4);
    model.add<GroupNorm>(GroupNormOptions(2, 4).eps(1e-3));
    model.add<ReLU>();
    model.add<InstanceNorm2d>(
        InstanceNormOptions(4).affine(true).track_running_stats(true).momentum(0.25));
    model.add<LayerNorm>(LayerNormOptions({6, 6}).elementwise_affine(false));
    model.add<Dense>(144, 3, rng);
    model.add<LayerNorm>(3);
    SGD sgd(model.parameters(), SGDOptions(0.05).momentum(0.9));
    SoftmaxCrossEntropy loss;
    const Labels labels = {0, 1, 2, 1};
    for (int step = 0; step < 2; ++step)
        train_step(model, loss, sgd, random_matrix<float>(4, 36, rng), labels);
    TempDir dir;
    save_model(dir / "norms.bnlab", model);
    const std::string text = read_text(dir / "norms.bnlab");
    CHECK(text.find("GroupNorm 2 4 0.001 1\n") != std::string::npos);
    CHECK(text.find("InstanceNorm2d 4 1.0000000000000001e-05 0.25 1 1\n") != std::string::npos);
    CHECK(text.find("LayerNorm 1.0000000000000001e-05 0 6 6\n") != std::string::npos);
    Sequential loaded = load_model(dir / "norms.bnlab");
    CHECK(loaded.summary() == model.summary());
    CHECK(values_of(loaded) == values_of(model));
    model.eval();
    loaded.eval();
    const Matrix<float> x = random_matrix<float>(3, 36, rng);
    const Matrix<float> expected = model.forward(x);
    CHECK(loaded.forward(x) == expected);

    // The BatchNorm folds into the convolution; the others stay, with their values.
    Sequential folded = fold_batchnorm(model);
    CHECK(folded.size() == model.size() - 1);
    CHECK(folded[1].describe() == model[2].describe());
    CHECK(folded.buffers().size() == 2);  // InstanceNorm2d's running statistics
    const Matrix<float> y = folded.forward(x);
    CHECK(xt::amax(xt::abs(y - expected))() <= 1e-5f * xt::amax(xt::abs(expected))());
}

TEST_CASE("Bad normalization lines in a checkpoint are errors naming the line") {
    TempDir dir;
    const std::string path = dir / "bad.bnlab";
    auto message_for = [&](const std::string& layers) {
        return load_model_error(path, layers, 100);
    };
    CHECK(message_for("Input 4 2 2\nGroupNorm 3 4 1e-5 1\n") ==
          path +
              ": section MODL line 2 'GroupNorm 3 4 1e-5 1': GroupNorm: num_channels (4) must "
              "be divisible by num_groups (3)");
    CHECK(message_for("Input 4 2 2\nGroupNorm 2 4 1e-5 2\n") ==
          path +
              ": section MODL line 2 'GroupNorm 2 4 1e-5 2': expected groups, channels, eps "
              "and affine (0 or 1)");
    CHECK(message_for("Input 4 2 2\nGroupNorm 1 4000 1e-5 1\n") ==
          path +
              ": section MODL line 2 'GroupNorm 1 4000 1e-5 1': wider than the values in "
              "section TENS allow");
    CHECK(message_for("Input 4 2 2\nLayerNorm 1e-5 1\n") ==
          path +
              ": section MODL line 2 'LayerNorm 1e-5 1': expected eps, elementwise affine (0 "
              "or 1) and a shape");
    CHECK(message_for("Input 4 2 2\nLayerNorm 1e-5 0 4 65536 65536\n") ==
          path +
              ": section MODL line 2 'LayerNorm 1e-5 0 4 65536 65536': normalized shape must "
              "be positive and under 2^31 values");
    CHECK(message_for("Input 4 2 2\nLayerNorm 1e-5 0 3 2\n") ==
          path +
              ": section MODL line 2 'LayerNorm 1e-5 0 3 2': Sequential: cannot add layer 0 "
              "LayerNorm([3, 2], eps=1e-05, elementwise_affine=false), which expects samples "
              "whose last dimensions are [3, 2], on the model's input samples of shape [4, 2, "
              "2] (16 values)");
    CHECK(message_for("Input 4 2 2\nInstanceNorm2d 4 1e-5 0.1 1\n") ==
          path +
              ": section MODL line 2 'InstanceNorm2d 4 1e-5 0.1 1': expected features, eps, "
              "momentum, affine and running statistics (0 or 1)");
}

// BatchNorm's options beside its successors: no running statistics, and frozen.

TEST_CASE("A frozen BatchNorm normalizes with its running statistics and keeps them") {
    Rng rng(60);
    BatchNorm bn(4);
    for (int step = 0; step < 3; ++step)
        bn.forward(random_matrix<float>(8, 4, rng, 2.0, 1.0));
    const Vector<float> mean = bn.running_mean(), var = bn.running_var();
    bn.freeze(BatchNormFreeze::statistics);
    CHECK(bn.is_training());
    const Matrix<float> x = random_matrix<float>(5, 4, rng);
    bn.zero_grad();
    const Matrix<float> y = bn.forward(x);
    CHECK(bn.running_mean() == mean);
    CHECK(bn.running_var() == var);
    CHECK(bn.num_batches_tracked() == 3);
    // What eval mode computes, in training mode.
    BatchNorm reference(4);
    reference.running_mean() = mean;
    reference.running_var() = var;
    reference.eval();
    CHECK(y == reference.forward(x));
    // gamma and beta still learn; the statistics are constants in backward.
    CHECK(bn.parameters().size() == 2);
    const Matrix<float> dy = random_matrix<float>(5, 4, rng);
    CHECK(bn.backward(dy) == reference.backward(dy));
    CHECK(xt::amax(xt::abs(bn.gamma_grad()))() > 0.0f);
    CHECK(bn.describe() == "BatchNorm(4, eps=1e-05, momentum=0.1, frozen statistics)");
    // One sample is fine: nothing is taken from the batch.
    bn.forward(random_matrix<float>(1, 4, rng));

    BasicBatchNorm<double> frozen(BatchNormOptions(3).freeze(BatchNormFreeze::statistics));
    randomize_affine_of(frozen, rng);
    frozen.running_mean() = {0.5, -1.0, 2.0};
    frozen.running_var() = {2.0, 0.5, 1.5};
    check_layer_gradients(frozen, random_matrix<double>(4, 3, rng), 601);
}

TEST_CASE("BatchNormFreeze::all makes gamma and beta buffers: an optimizer leaves them alone") {
    Rng rng(61);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
    model.add<BatchNorm2d>(4);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    auto residual = Sequential(Shape{4, 3, 3});
    residual.add<Conv2d>(Conv2dOptions(4, 4, 3).padding(1), rng);
    residual.add<BatchNorm2d>(4);
    model.add<Residual>(std::move(residual));
    model.add<Dense>(36, 3, rng);
    SoftmaxCrossEntropy loss;
    const Labels labels = {0, 1, 2, 1};
    {
        SGD sgd(model.parameters(), SGDOptions(0.1));
        train_step(model, loss, sgd, random_matrix<float>(4, 36, rng), labels);
    }
    freeze_batchnorms(model, BatchNormFreeze::all);
    model.train();  // a parent's train() does not thaw them
    std::vector<std::string> parameter_names, buffer_names;
    for (const Parameter<float>& p : model.parameters())
        parameter_names.push_back(p.name);
    for (const Buffer<float>& b : model.buffers())
        buffer_names.push_back(b.name);
    CHECK(parameter_names == std::vector<std::string>{"0.weight", "0.bias", "4.body.0.weight",
                                                      "4.body.0.bias", "5.weight", "5.bias"});
    CHECK(buffer_names == std::vector<std::string>{"1.running_mean", "1.running_var", "1.gamma",
                                                   "1.beta", "4.body.1.running_mean",
                                                   "4.body.1.running_var", "4.body.1.gamma",
                                                   "4.body.1.beta"});
    const std::vector<float> frozen_before = values_of(model);
    auto& bn = dynamic_cast<BatchNorm&>(model[1]);
    const Vector<float> gamma = bn.gamma(), mean = bn.running_mean();
    SGD sgd(model.parameters(), SGDOptions(0.1));
    for (int step = 0; step < 2; ++step)
        train_step(model, loss, sgd, random_matrix<float>(4, 36, rng), labels);
    CHECK(bn.gamma() == gamma);
    CHECK(bn.running_mean() == mean);
    CHECK(values_of(model) != frozen_before);  // the convolutions and the Dense did learn

    // The fused block (Conv2d + BatchNorm + ReLU + MaxPool2d) follows the frozen layer.
    const Matrix<float> x = random_matrix<float>(3, 36, rng);
    const Matrix<float> fused = model.forward(x);
    model.set_fusion(false);
    CHECK(xt::allclose(model.forward(x), fused, 1e-5, 1e-6));
    model.set_fusion(true);

    // Saved and loaded frozen.
    TempDir dir;
    save_model(dir / "frozen.bnlab", model);
    CHECK(read_text(dir / "frozen.bnlab")
              .find("BatchNorm 4 1.0000000000000001e-05 0.10000000000000001 1 1 2\n") !=
          std::string::npos);
    Sequential loaded = load_model(dir / "frozen.bnlab");
    CHECK(loaded.summary() == model.summary());
    CHECK(values_of(loaded) == values_of(model));
    CHECK(loaded.parameters().size() == 6);

    // Thawed, they train again.
    freeze_batchnorms(model, BatchNormFreeze::none);
    CHECK(model.parameters().size() == 10);
    CHECK(message_of([] {
              BatchNorm(BatchNormOptions(2).track_running_stats(false).freeze(
                  BatchNormFreeze::statistics));
          }) ==
          "BatchNorm(2, eps=1e-05, momentum=0.1, track_running_stats=false): cannot be "
          "frozen: without running statistics (track_running_stats) it has none to "
          "normalize with");
}

TEST_CASE("The models put the chosen normalization in BatchNorm's places") {
    Rng rng(61);
    // An MLP: LayerNorm over each hidden layer's features, GroupNorm over groups of them.
    Sequential layer_mlp = mlp(20, {8, 6}, 3, Activation::relu, NormChoice(NormKind::layer), rng);
    REQUIRE(layer_mlp.size() == 7);
    CHECK(dynamic_cast<LayerNorm&>(layer_mlp[1]).options().normalized_shape() == Shape{8});
    CHECK(dynamic_cast<LayerNorm&>(layer_mlp[4]).options().normalized_shape() == Shape{6});
    Sequential group_mlp =
        mlp(20, {8, 6}, 3, Activation::relu, NormChoice(NormKind::group, 2), rng);
    CHECK(dynamic_cast<GroupNorm&>(group_mlp[1]).options().num_groups() == 2);
    CHECK(dynamic_cast<GroupNorm&>(group_mlp[4]).options().num_channels() == 6);
    Sequential renorm_mlp = mlp(20, {8}, 3, Activation::relu, NormChoice(NormKind::renorm), rng);
    CHECK(dynamic_cast<BatchRenorm*>(&renorm_mlp[1]) != nullptr);
    CHECK(message_of(
              [&] { mlp(20, {8}, 3, Activation::relu, NormChoice(NormKind::instance), rng); }) ==
          "instance normalization normalizes each channel of an image over its positions, "
          "and the mlp model's features have none: use batch, renorm, group, layer or none");
    CHECK(mlp(20, {8}, 3, Activation::relu, false, rng).size() == 3);
    CHECK(message_of([] { NormChoice(NormKind::layer, 2); }) ==
          "normalization layer takes no group count");

    // A CNN: without a group count, the paper's 32 groups where they divide the channels and
    // gcd(32, C) where not; instance normalization after the convolutions only; LayerNorm over
    // [C, H, W].
    Sequential group_cnn =
        cnn(Shape{1, 8, 8}, {16, 48}, {64}, 10, Activation::relu, NormChoice(NormKind::group), rng);
    CHECK(dynamic_cast<GroupNorm&>(group_cnn[1]).options().num_groups() == 16);
    CHECK(dynamic_cast<GroupNorm&>(group_cnn[5]).options().num_groups() == 16);
    CHECK(dynamic_cast<GroupNorm&>(group_cnn[5]).options().num_channels() == 48);
    CHECK(dynamic_cast<GroupNorm&>(group_cnn[9]).options().num_groups() == 32);
    CHECK(
        message_of([&] {
            cnn(Shape{1, 8, 8}, {6}, {}, 10, Activation::relu, NormChoice(NormKind::group, 4), rng);
        }) == "GroupNorm: num_channels (6) must be divisible by num_groups (4)");
    Sequential instance_cnn =
        cnn(Shape{1, 8, 8}, {4}, {16}, 10, Activation::relu, NormChoice(NormKind::instance), rng);
    REQUIRE(instance_cnn.size() == 7);  // Conv, IN, ReLU, pool, Dense, ReLU, Dense
    auto& instance = dynamic_cast<InstanceNorm2d&>(instance_cnn[1]);
    CHECK(instance.affine());
    CHECK(!instance.options().track_running_stats());
    CHECK(dynamic_cast<Dense*>(&instance_cnn[4]) != nullptr);
    CHECK(dynamic_cast<ReLU*>(&instance_cnn[5]) != nullptr);
    Sequential layer_cnn =
        cnn(Shape{1, 8, 8}, {4}, {}, 10, Activation::relu, NormChoice(NormKind::layer), rng);
    CHECK(dynamic_cast<LayerNorm&>(layer_cnn[1]).options().normalized_shape() == Shape{4, 8, 8});

    // A ResNet: the projections take the same normalization; zero_init_residual zeroes the last
    // one's gamma in each block; convolutions have no bias before a normalization.
    Sequential net = resnet<float>(Shape{1, 8, 8},
                                   ResNetOptions()
                                       .depth(8)
                                       .width(4)
                                       .norm(NormChoice(NormKind::group, 2))
                                       .zero_init_residual(true),
                                   rng);
    auto& stem = dynamic_cast<Conv2d&>(net[0]);
    CHECK(!stem.options().bias());
    CHECK(dynamic_cast<GroupNorm&>(net[1]).options().num_channels() == 4);
    auto& second_stage = dynamic_cast<Residual&>(net[4]);
    BasicSequential<float>* shortcut = second_stage.shortcut();
    REQUIRE(shortcut != nullptr);
    REQUIRE(shortcut->size() == 2);
    auto& projection = dynamic_cast<Conv2d&>((*shortcut)[0]);
    CHECK(projection.options().window().kernel == 1);
    CHECK(projection.options().window().stride == 2);
    CHECK(!projection.options().bias());
    CHECK(dynamic_cast<GroupNorm&>((*shortcut)[1]).options().num_channels() == 8);
    Sequential& body = second_stage.body();
    auto& last = dynamic_cast<GroupNorm&>(body[body.size() - 1]);
    CHECK(xt::all(xt::equal(last.gamma(), 0.0f)));
    CHECK(dynamic_cast<Residual&>(net[3]).shortcut() == nullptr);  // identity in stage 1

    // Every one of them trains a step in each model with finite numbers.
    const Matrix<float> images = random_matrix<float>(4, 64, rng);
    for (const char* text : {"batch", "renorm", "group:2", "layer", "instance", "none"}) {
        CAPTURE(text);
        const NormChoice norm = NormChoice::parse(text);
        Sequential models[] = {
            cnn(Shape{1, 8, 8}, {4}, {8}, 3, Activation::relu, norm, rng),
            resnet<float>(Shape{1, 8, 8}, ResNetOptions().depth(8).width(2).classes(3).norm(norm),
                          rng)};
        for (Sequential& model : models) {
            const Matrix<float>& logits = model.forward(images);
            REQUIRE(logits.shape(1) == 3);
            CHECK(xt::all(xt::isfinite(logits)));
            const Matrix<float> grad = xt::ones_like(logits);
            CHECK(xt::all(xt::isfinite(model.backward(grad))));
        }
    }
}
