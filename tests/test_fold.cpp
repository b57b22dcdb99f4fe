// BatchNorm folding: the folded model predicts what the model predicts in eval mode, without the
// BatchNorm layers that follow a Dense.
#include "helpers.hpp"
#include "models/fold_batchnorm.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

std::vector<std::string> layer_names(Sequential& model) {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < model.size(); ++i)
        names.push_back(model[i].describe());
    return names;
}

// A few SGD steps, so that gamma, beta and the running statistics are far from their start.
void train_briefly(Sequential& model, const Dataset& data, int steps, Rng& rng) {
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
    BatchLoader batches(data, 32, &rng, true);
    for (int step = 0; step < steps; ++step) {
        if (!batches.next()) batches.start_epoch(), batches.next();
        train_step(model, loss, optimizer, batches.inputs(), batches.labels());
    }
}

struct Passthrough : BasicLayer<float> {
    const Matrix<float>& forward(const Matrix<float>& input) override { return input; }
    const Matrix<float>& backward(const Matrix<float>& grad) override { return grad; }
    std::optional<std::size_t> in_features() const override { return std::nullopt; }
    std::optional<std::size_t> out_features() const override { return std::nullopt; }
    std::string describe() const override { return "Passthrough()"; }
};

}  // namespace

TEST_CASE("A folded model predicts what the model predicts in eval mode, to 1e-5") {
    Rng rng(21);
    const Dataset data = make_blobs(512, 20, 5, 0.8, rng);
    Sequential model = mlp(20, {16, 12}, 5, Activation::relu, true, rng);
    train_briefly(model, data, 40, rng);
    const std::vector<Parameter<float>> before = model.parameters();
    const Matrix<float> first_weight = dynamic_cast<Dense&>(model[0]).weight();

    Sequential folded = fold_batchnorm(model);
    CHECK(layer_names(folded) == std::vector<std::string>{"Dense(20 -> 16)", "ReLU()",
                                                          "Dense(16 -> 12)", "ReLU()",
                                                          "Dense(12 -> 5)"});
    CHECK(!folded.is_training());
    CHECK(model.is_training());  // the original is untouched
    CHECK(dynamic_cast<Dense&>(model[0]).weight() == first_weight);

    const Matrix<float> x = random_matrix<float>(64, 20, rng, 3.0);
    model.eval();
    const Matrix<float> expected = model.forward(x);
    const double difference = relative_difference(folded.forward(x), expected);
    MESSAGE("folded vs unfolded on random inputs: " << difference);
    CHECK(difference <= 1e-5);
    // The batch statistics would give other outputs: folding uses the running ones.
    model.train();
    CHECK(relative_difference(model.forward(x), expected) > 1e-3);
}

TEST_CASE("Folded and unfolded agree on Fashion-MNIST test images") {
    const FashionMnist data = load_fashion_mnist();
    const Dataset train_part = slice(data.train, 0, 6000), test_part = slice(data.test, 0, 1000);
    Rng rng(5);
    Sequential model = mlp(784, {64, 64}, 10, Activation::sigmoid, true, rng);
    train_briefly(model, train_part, 150, rng);
    Sequential folded = fold_batchnorm(model);
    CHECK(folded.size() == 5);
    model.eval();
    const Matrix<float> expected = model.forward(test_part.inputs);
    const Matrix<float>& actual = folded.forward(test_part.inputs);
    const double difference = relative_difference(actual, expected);
    MESSAGE("folded vs unfolded on 1000 test images: " << difference);
    CHECK(difference <= 1e-5);
    CHECK(accuracy(actual, test_part.labels) == accuracy(expected, test_part.labels));
}

TEST_CASE("Folding a model without BatchNorm gives the same model") {
    Rng rng(8);
    Sequential model = mlp(6, {5, 4}, 3, Activation::tanh, false, rng);
    Sequential folded = fold_batchnorm(model);
    CHECK(layer_names(folded) == layer_names(model));
    const Matrix<float> x = random_matrix<float>(9, 6, rng);
    model.eval();
    CHECK(folded.forward(x) == model.forward(x));  // bit for bit: the same weights, same order
}

TEST_CASE("A BatchNorm that does not follow a Dense stays, nested models fold too") {
    Rng rng(9);
    Sequential model;
    model.add<BatchNorm>(4);
    model.add<Dense>(4, 3, rng);
    auto inner = std::make_unique<Sequential>();
    inner->add<BatchNorm>(3);
    inner->add<Sigmoid>();
    inner->add<Dense>(3, 2, rng);
    inner->add<BatchNorm>(2);
    model.add(std::move(inner));
    const Dataset data = make_blobs(256, 4, 2, 1.0, rng);
    train_briefly(model, data, 20, rng);

    Sequential folded = fold_batchnorm(model);
    REQUIRE(folded.size() == 3);
    CHECK(folded[0].describe() == "BatchNorm(4, eps=1e-05, momentum=0.1)");
    CHECK(folded[1].describe() == "Dense(4 -> 3)");
    auto& folded_inner = dynamic_cast<Sequential&>(folded[2]);
    CHECK(layer_names(folded_inner) ==
          std::vector<std::string>{"BatchNorm(3, eps=1e-05, momentum=0.1)", "Sigmoid()",
                                   "Dense(3 -> 2)"});
    const Matrix<float> x = random_matrix<float>(16, 4, rng);
    model.eval();
    CHECK(relative_difference(folded.forward(x), model.forward(x)) <= 1e-5);
}

TEST_CASE("Folding a layer type it cannot copy is an error naming it") {
    Sequential model;
    model.add<Passthrough>();
    CHECK(message_of([&] { fold_batchnorm(model); }) ==
          "fold_batchnorm: cannot copy layer Passthrough()");
}

TEST_CASE("A CNN folds every BatchNorm after a Conv2d, with or without bias, to 1e-5") {
    Rng rng(31);
    const Dataset blobs = make_blobs(256, 2 * 6 * 6, 4, 0.8, rng);
    Sequential model(Shape{2, 6, 6});
    model.add<Conv2d>(Conv2dOptions(2, 8, 3).padding(1), rng);
    model.add<BatchNorm2d>(8);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    model.add<Conv2d>(Conv2dOptions(8, 6, 3).padding(1).bias(false), rng);
    model.add<BatchNorm2d>(6);
    model.add<ReLU>();
    model.add<Dropout>(0.1, rng);
    model.add<GlobalAvgPool2d>();
    model.add<BatchNorm>(6);  // after pooling: stays
    model.add<Dense>(6, 4, rng);
    train_briefly(model, blobs, 30, rng);

    Sequential folded = fold_batchnorm(model);
    CHECK(layer_names(folded) ==
          std::vector<std::string>{"Conv2d(2 -> 8, 3x3, padding 1)", "ReLU()",
                                   "MaxPool2d(2x2, stride 2)", "Conv2d(8 -> 6, 3x3, padding 1)",
                                   "ReLU()", "Dropout(p=0.1)", "GlobalAvgPool2d()",
                                   "BatchNorm(6, eps=1e-05, momentum=0.1)", "Dense(6 -> 4)"});
    CHECK(folded.input_shape() == Shape{2, 6, 6});
    CHECK(folded.parameters().size() == model.parameters().size() - 4 + 1);  // a bias appears
    model.eval();
    const Matrix<float> x = slice(blobs, 0, 64).inputs;
    const Matrix<float> expected = model.forward(x);
    const double difference = relative_difference(folded.forward(x), expected);
    INFO("relative difference " << difference);
    CHECK(difference <= 1e-5);
}
