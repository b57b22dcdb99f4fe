// Every bad input the framework handles is an exception whose message names the problem.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

TEST_CASE("Adding a layer of the wrong width names both layers and widths") {
    Rng rng(1);
    Sequential model;
    model.add<Dense>(784, 256, rng);
    model.add<ReLU>();
    const std::string message = message_of([&] { model.add<Dense>(100, 10, rng); });
    CHECK(message ==
          "Sequential: cannot add layer 2 Dense(100 -> 10), which expects 100 input features, "
          "after layer 0 Dense(784 -> 256), which outputs [256]");
    CHECK(model.size() == 2);  // nothing half added

    const std::string bn = message_of([&] { model.add<BatchNorm>(128); });
    CHECK(bn.find("BatchNorm(128") != std::string::npos);
    CHECK(bn.find("outputs [256]") != std::string::npos);
}

TEST_CASE("A forward with the wrong input width names the layer and both widths") {
    Rng rng(2);
    Sequential model = mlp(784, {32}, 10, Activation::relu, true, rng);
    const Matrix<float> input = xt::zeros<float>({std::size_t{4}, std::size_t{100}});
    CHECK(message_of([&] { model.forward(input); }) ==
          "Dense(784 -> 32): input of shape [4, 100] has 100 features, expected 784");
    BatchNorm bn(8);
    CHECK(message_of([&] { bn.forward(input); }) ==
          "BatchNorm(8, eps=1e-05, momentum=0.1): input of shape [4, 100] has 100 features, "
          "expected 8");
}

TEST_CASE("A batch of one in BatchNorm training mode is an error, eval mode accepts it") {
    BatchNorm bn(4);
    const Matrix<float> one_row = xt::ones<float>({std::size_t{1}, std::size_t{4}});
    CHECK(message_of([&] { bn.forward(one_row); }) ==
          "BatchNorm(4, eps=1e-05, momentum=0.1): expected more than 1 value per feature when "
          "training, got input of shape [1, 4] (use eval() to run single samples)");
    CHECK(bn.num_batches_tracked() == 0);  // running statistics untouched
    bn.eval();
    CHECK(bn.forward(one_row).shape(0) == 1);
}

TEST_CASE("Empty batches, backward before forward and bad gradient shapes are errors") {
    Rng rng(3);
    Dense dense(3, 2, rng);
    CHECK(message_of([&] {
              dense.backward(xt::zeros<float>({std::size_t{2}, std::size_t{2}}));
          }) == "Dense(3 -> 2): backward called before forward");
    CHECK(message_of([&] {
              dense.forward(xt::zeros<float>({std::size_t{0}, std::size_t{3}}));
          }) == "Dense(3 -> 2): input batch is empty");
    dense.forward(xt::zeros<float>({std::size_t{5}, std::size_t{3}}));
    CHECK(message_of([&] {
              dense.backward(xt::zeros<float>({std::size_t{4}, std::size_t{2}}));
          }) == "Dense(3 -> 2): backward got gradient of shape [4, 2], expected [5, 2]");
    Sequential empty;
    CHECK(message_of([&] {
              empty.forward(xt::zeros<float>({std::size_t{1}, std::size_t{3}}));
          }) == "Sequential: forward on a model with no layers");
}

TEST_CASE("The loss rejects labels that do not fit the logits") {
    SoftmaxCrossEntropy loss;
    const Matrix<float> logits = xt::zeros<float>({std::size_t{2}, std::size_t{3}});
    Labels three = xt::zeros<int>({std::size_t{3}});
    CHECK(message_of([&] { loss.forward(logits, three); }) ==
          "SoftmaxCrossEntropy: 3 labels for logits of shape [2, 3]");
    Labels out_of_range = xt::zeros<int>({std::size_t{2}});
    out_of_range(1) = 3;
    CHECK(message_of([&] { loss.forward(logits, out_of_range); }) ==
          "SoftmaxCrossEntropy: label 3 at row 1 is outside [0, 3)");
}

TEST_CASE("Bad options are errors naming the option") {
    Rng rng(4);
    CHECK(message_of([&] { BatchNorm(BatchNormOptions(4).eps(0)); }) ==
          "BatchNorm: eps must be positive, got 0");
    CHECK(message_of([&] { BatchNorm(BatchNormOptions(4).momentum(1.5)); }) ==
          "BatchNorm: momentum must be in [0, 1], got 1.5");
    CHECK(message_of([&] { BatchNorm(0); }) == "BatchNorm: num_features must be positive");
    CHECK(message_of([&] { Dense(0, 3, rng); }) == "Dense: widths must be positive, got 0 -> 3");
    Dense dense(2, 2, rng);
    CHECK(message_of([&] { SGD(dense.parameters(), SGDOptions(0)); }) ==
          "SGD: learning rate must be positive, got 0");
    CHECK(message_of([&] { SGD(dense.parameters(), SGDOptions(0.1).momentum(-1)); }) ==
          "SGD: momentum must be a non-negative number, got -1");
    CHECK(message_of([&] { SGD(dense.parameters(), SGDOptions(0.1).nesterov(true)); }) ==
          "SGD: Nesterov momentum requires a momentum and zero dampening");
    CHECK(message_of([&] { Adam(dense.parameters(), AdamOptions().betas(0.9, 1.0)); }) ==
          "Adam: betas must be in [0, 1), got (0.9, 1)");
    Adam adam(dense.parameters(), AdamOptions(0.01));
    CHECK(message_of([&] { adam.set_learning_rate(-0.5); }) ==
          "Adam: learning rate must be positive, got -0.5");
    CHECK(adam.learning_rate() == 0.01);
    for (const char* name : {"relu", "sigmoid", "tanh"})
        CHECK(to_string(parse_activation(name)) == name);
    CHECK(message_of([&] { parse_activation("gelu"); }) ==
          "unknown activation 'gelu' (expected relu, sigmoid or tanh)");
}

TEST_CASE("The batch loader rejects bad sizes") {
    Rng rng(5);
    Dataset data = make_blobs(10, 2, 2, 1.0, rng);
    CHECK(message_of([&] { BatchLoader(data, 0, nullptr, false); }) ==
          "BatchLoader: batch size must be positive");
    CHECK(message_of([&] { BatchLoader(data, 11, nullptr, true); }) ==
          "BatchLoader: batch size 11 exceeds the 10 samples, and partial batches are dropped");
    CHECK(message_of([&] { slice(data, 5, 11); }) ==
          "slice: rows [5, 11) outside a dataset of 10 samples");
}

TEST_CASE("A share of a global batch that does not fit the batches is an error") {
    Rng rng(1);
    const Dataset data = make_blobs(40, 3, 2, 1.0, rng);
    BatchLoader whole_batches(data, 10, &rng, /*drop_last=*/true);
    CHECK(message_of([&] {
              whole_batches.take_share(BatchShare{5, 12, 10});
          }) == "BatchLoader: rows [5, 12) of 10 are not a share of batches of 10");
    CHECK(message_of([&] {
              whole_batches.take_share(BatchShare{0, 5, 20});
          }) == "BatchLoader: rows [0, 5) of 20 are not a share of batches of 10");
    BatchLoader partial_batches(data, 10, &rng, /*drop_last=*/false);
    CHECK(message_of([&] {
              partial_batches.take_share(BatchShare{0, 5, 10});
          }) == "BatchLoader: a share of each batch needs whole batches (drop_last)");

    Dropout dropout(0.5, rng);
    dropout.set_batch_share(BatchShare{0, 20, 40});
    const Matrix<float> ten_rows = xt::ones<float>({std::size_t{10}, std::size_t{4}});
    CHECK(message_of([&] { dropout.forward(ten_rows); }) ==
          "Dropout(p=0.5): a share of 20 rows of the global batch was set, but the batch has 10");
}

TEST_CASE("A buffer too large for memory names the layer and the size it needed") {
    // AddressSanitizer's allocator ends the process on a request this large instead of throwing
    // std::bad_alloc, so only the build without sanitizers can see the message.
    if (std::string(BNLAB_BUILD_KIND).find("sanitizers") != std::string::npos) return;
    Rng rng(1);
    CHECK(message_of([&] { Dense(784, 4000000000, rng); })
              .rfind("Dense(784 -> 4000000000)'s weight: 3136000000000 values (11.4 TiB of 4-byte "
                     "numbers) cannot be allocated; this machine has ",
                     0) == 0);
    CHECK(message_of([&] {
              Conv2d(Conv2dOptions(100000, 100000, 3), rng);
          }).rfind("Conv2d(100000 -> 100000, 3x3)'s weight: 90000000000 values (335.3 GiB", 0) ==
          0);
    // At forward: a batch of a million rows through Dense(1 -> 100000) needs 372.5 GiB of output.
    Sequential model;
    model.add<Dense>(1, 100000, rng);
    const Matrix<float> batch = xt::zeros<float>({std::size_t(1000000), std::size_t(1)});
    const std::string message = message_of([&] { model.forward(batch); });
    CHECK(message.rfind("layer 0, Dense(1 -> 100000), forward of a batch of 1000000: a buffer of "
                        "1000000 x 100000: 100000000000 values (372.5 GiB of 4-byte numbers) "
                        "cannot be allocated",
                        0) == 0);
}
