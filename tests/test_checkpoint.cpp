// Checkpoints: round trips of models and optimizer state, bit for bit, and a clear error for
// every kind of bad file.
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

struct Trained {
    Sequential model;
    std::unique_ptr<BasicOptimizer<float>> optimizer;
};

Trained trained_model(bool adam, std::uint64_t seed = 3) {
    Rng rng(seed);
    Trained trained{mlp(6, {5, 4}, 3, Activation::tanh, true, rng), nullptr};
    if (adam)
        trained.optimizer = std::make_unique<Adam>(trained.model.parameters(), AdamOptions(0.01));
    else
        trained.optimizer =
            std::make_unique<SGD>(trained.model.parameters(), SGDOptions(0.1).momentum(0.9));
    const Dataset data = make_blobs(64, 6, 3, 1.0, rng);
    SoftmaxCrossEntropy loss;
    BatchLoader batches(data, 16, &rng, true);
    while (batches.next())
        train_step(trained.model, loss, *trained.optimizer, batches.inputs(), batches.labels());
    return trained;
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("A saved model loads back bit for bit, with its BatchNorm counters") {
    TempDir dir;
    Trained trained = trained_model(false);
    save_model(dir / "model.bnlab", trained.model);
    Sequential loaded = load_model(dir / "model.bnlab");
    CHECK(loaded.summary() == trained.model.summary());
    CHECK(values_of(loaded) == values_of(trained.model));
    CHECK(dynamic_cast<BatchNorm&>(loaded[1]).num_batches_tracked() == 4);
    Rng rng(1);
    const Matrix<float> x = random_matrix<float>(7, 6, rng);
    loaded.eval();
    trained.model.eval();
    CHECK(loaded.forward(x) == trained.model.forward(x));

    // Into a model of the same architecture built from another seed.
    Trained other = trained_model(false, 99);
    CHECK(values_of(other.model) != values_of(trained.model));
    Checkpoint::read(dir / "model.bnlab").load_into(other.model);
    CHECK(values_of(other.model) == values_of(trained.model));
    for (const auto& entry : std::filesystem::directory_iterator(dir.path))
        CHECK_MESSAGE(entry.path().filename() == "model.bnlab", entry.path().string());
}

TEST_CASE("Optimizer state round-trips: the restored run takes the same next step") {
    for (bool adam : {false, true}) {
        CAPTURE(adam);
        TempDir dir;
        Trained original = trained_model(adam);
        save_checkpoint(dir / "run.bnlab", original.model, original.optimizer.get(),
                        {{"XTRA", std::string("any\0bytes", 9)}});
        Trained restored = trained_model(adam, 42);
        const Checkpoint checkpoint = Checkpoint::read(dir / "run.bnlab");
        checkpoint.load_into(restored.model);
        checkpoint.load_optimizer(*restored.optimizer);
        REQUIRE(checkpoint.section("XTRA"));
        CHECK(*checkpoint.section("XTRA") == std::string("any\0bytes", 9));
        CHECK(checkpoint.section("NONE") == nullptr);

        Rng rng(5);
        const Matrix<float> x = random_matrix<float>(8, 6, rng);
        const Labels y{0, 1, 2, 0, 1, 2, 0, 1};
        SoftmaxCrossEntropy loss;
        train_step(original.model, loss, *original.optimizer, x, y);
        train_step(restored.model, loss, *restored.optimizer, x, y);
        CHECK(values_of(restored.model) == values_of(original.model));
    }
}

TEST_CASE("Bad checkpoint files are errors naming the file and the problem") {
    TempDir dir;
    Trained trained = trained_model(false);
    const std::string good_path = dir / "good.bnlab";
    save_checkpoint(good_path, trained.model, trained.optimizer.get());
    const std::string good = read_text(good_path);
    const std::string bad = dir / "bad.bnlab";
    auto error_for = [&](const std::string& bytes) {
        write_bytes(bad, bytes);
        return message_of([&] { load_model(bad); });
    };

    CHECK(message_of([&] { load_model(dir / "missing.bnlab"); }) ==
          dir / "missing.bnlab" + ": cannot open: No such file or directory");
    CHECK(error_for("") == bad + ": not a bnlab checkpoint (bad magic number)");
    CHECK(error_for("BNLABCKQ" + good.substr(8)) ==
          bad + ": not a bnlab checkpoint (bad magic number)");
    std::string future = good;
    future[8] = 2;
    CHECK(error_for(future) ==
          bad + ": format version 2 is not one this bnlab reads (1); written by a newer bnlab?");
    // Cut anywhere: every prefix is an error, never a crash or a half-loaded model.
    for (std::size_t length :
         {std::size_t(12), std::size_t(17), std::size_t(30), good.size() / 2, good.size() - 1}) {
        CAPTURE(length);
        const std::string message = error_for(good.substr(0, length));
        CHECK(message.find(bad + ": truncated") == 0);
    }
    // One flipped bit in the parameters' section.
    const std::size_t tens = good.find("TENS");
    REQUIRE(tens != std::string::npos);
    std::string flipped = good;
    flipped[tens + 4 + 8 + 20] ^= 1;
    CHECK(error_for(flipped) == bad + ": section TENS is corrupt (crc32 mismatch)");
    CHECK(error_for(good + "x") == bad + ": unexpected bytes after the last section");

    // Another architecture.
    Rng rng(1);
    Sequential wider = mlp(6, {7, 4}, 3, Activation::tanh, true, rng);
    CHECK(message_of([&] { Checkpoint::read(good_path).load_into(wider); }) ==
          good_path +
              ": the model differs from the checkpoint's: at layer line 1 the file has "
              "'Dense 6 5', the model 'Dense 6 7'");
    Sequential shorter = mlp(6, {5}, 3, Activation::tanh, true, rng);
    CHECK(message_of([&] {
              Checkpoint::read(good_path).load_into(shorter);
          }).find("the model differs from the checkpoint's") != std::string::npos);

    // Optimizer state that is missing or of another optimizer.
    save_model(dir / "model_only.bnlab", trained.model);
    SGD sgd(trained.model.parameters(), SGDOptions(0.1).momentum(0.9));
    CHECK(message_of([&] { Checkpoint::read(dir / "model_only.bnlab").load_optimizer(sgd); }) ==
          dir / "model_only.bnlab" + ": no optimizer state in this checkpoint");
    Adam adam(trained.model.parameters(), AdamOptions());
    CHECK(message_of([&] { Checkpoint::read(good_path).load_optimizer(adam); }) ==
          good_path +
              ": the optimizer state has 10 arrays, the optimizer 20 (another optimizer or "
              "momentum setting?)");
    CHECK(message_of([&] {
              save_checkpoint(dir / "x.bnlab", trained.model, nullptr, {{"TENS", ""}});
          }) ==
          "save_checkpoint: section tag 'TENS' must be 4 characters and not one of bnlab's own");
}

TEST_CASE("A layer list that its tensors do not back is an error before anything is allocated") {
    // Found by fuzz/fuzz_checkpoint.cpp: a BatchNorm claiming billions of features was built
    // (and its buffers allocated) before the tensors were read.
    TempDir dir;
    const std::string path = dir / "wide.bnlab";
    const std::string tensors(4 * 4, '\0');  // four floats
    write_bytes(path, checkpoint_bytes(
                          {{"MODL", "Dense 100000 100000\n"}, {"TENS", tensors}, {"CNTS", ""}}));
    CHECK(message_of([&] { load_model(path); }) ==
          path +
              ": section MODL line 1 'Dense 100000 100000': wider than the values in section "
              "TENS allow");
    write_bytes(path, checkpoint_bytes({{"MODL", "BatchNorm 3000000000 1e-05 0.1 1\n"},
                                        {"TENS", tensors},
                                        {"CNTS", ""}}));
    CHECK(message_of([&] { load_model(path); }) ==
          path +
              ": section MODL line 1 'BatchNorm 3000000000 1e-05 0.1 1': wider than the "
              "values in section TENS allow");
    // A width that would overflow a count of values if added to.
    write_bytes(path,
                checkpoint_bytes(
                    {{"MODL", "Dense 18446744073709551615 1\n"}, {"TENS", tensors}, {"CNTS", ""}}));
    CHECK(message_of([&] { load_model(path); }) ==
          path +
              ": section MODL line 1 'Dense 18446744073709551615 1': wider than the values in "
              "section TENS allow");
    // Four values do back a Dense 1 -> 2 (two weights, two biases) but no more.
    write_bytes(path, checkpoint_bytes(
                          {{"MODL", "Dense 1 2\nDense 2 1\n"}, {"TENS", tensors}, {"CNTS", ""}}));
    CHECK(message_of([&] { load_model(path); }) ==
          path + ": section MODL line 2 'Dense 2 1': wider than the values in section TENS allow");

    std::string nested;
    for (int depth = 0; depth < 70; ++depth)
        nested += "Sequential 1\n";
    write_bytes(path, checkpoint_bytes({{"MODL", nested}, {"TENS", ""}, {"CNTS", ""}}));
    CHECK(message_of([&] { load_model(path); }) ==
          path + ": section MODL line 65 'Sequential 1': nested more than 64 deep");
}

namespace {

// Every layer a CNN can have, with a nested block, trained a few steps.
Sequential trained_cnn(Rng& rng) {
    Sequential model(Shape{2, 8, 8});
    model.add<Conv2d>(Conv2dOptions(2, 4, 3).padding(1), rng);
    model.add<BatchNorm2d>(4);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    Sequential block(Shape{4, 4, 4});
    block.add<Conv2d>(Conv2dOptions(4, 6, 3).stride(2).padding(1).bias(false), rng);
    block.add<BatchNorm2d>(BatchNormOptions(6).momentum(std::nullopt));
    block.add<Tanh>();
    model.add(std::make_unique<Sequential>(std::move(block)));
    model.add<AvgPool2d>(2, 1);
    model.add<Conv2d>(6, 5, 1, 1, 0, rng);
    model.add<GlobalAvgPool2d>();
    model.add<Dropout>(0.25, rng);
    model.add<Dense>(5, 3, rng);
    SGD sgd(model.parameters(), SGDOptions(0.1).momentum(0.9));
    SoftmaxCrossEntropy loss;
    const Matrix<float> x = random_matrix<float>(6, 2 * 8 * 8, rng);
    Labels labels = xt::empty<int>({std::size_t{6}});
    for (std::size_t i = 0; i < 6; ++i)
        labels(i) = int(i % 3);
    for (int step = 0; step < 3; ++step)
        train_step(model, loss, sgd, x, labels);
    return model;
}

}  // namespace

TEST_CASE("A CNN with every layer kind saves and loads back bit for bit") {
    TempDir dir;
    Rng rng(12);
    Sequential model = trained_cnn(rng);
    save_model(dir / "cnn.bnlab", model);
    Sequential loaded = load_model(dir / "cnn.bnlab");
    CHECK(loaded.summary() == model.summary());
    CHECK(loaded.input_shape() == Shape{2, 8, 8});
    CHECK(values_of(loaded) == values_of(model));
    auto& nested = dynamic_cast<Sequential&>(loaded[4]);
    CHECK(dynamic_cast<BatchNorm&>(nested[1]).num_batches_tracked() == 3);
    CHECK(!dynamic_cast<BatchNorm&>(nested[1]).options().momentum());
    CHECK(dynamic_cast<Dropout&>(loaded[8]).p() == 0.25);
    const Matrix<float> x = random_matrix<float>(3, 2 * 8 * 8, rng);
    model.eval();
    loaded.eval();
    CHECK(loaded.forward(x) == model.forward(x));
    // A loaded Dropout trains once given a generator, as fit gives it the run's.
    loaded.train();
    CHECK(message_of([&] { loaded.forward(x); }).find("no generator") != std::string::npos);
    loaded.set_generator(rng);
    CHECK(loaded.forward(x).shape(1) == 3);
}

TEST_CASE("Bad CNN layer lines are errors naming the line") {
    TempDir dir;
    const std::string path = dir / "bad.bnlab";
    auto message_for = [&](const std::string& layers) {
        return load_model_error(path, layers, 400);
    };
    CHECK(message_for("Input 1 0 8\n") ==
          path +
              ": section MODL line 1 'Input 1 0 8': input shape must be positive and under "
              "2^31 values");
    CHECK(message_for("Input 65536 65536 65536\n") ==
          path +
              ": section MODL line 1 'Input 65536 65536 65536': input shape must be positive "
              "and under 2^31 values");
    CHECK(message_for("Input 1 8 x\n") ==
          path +
              ": section MODL line 1 'Input 1 8 x': expected an input shape of two or more "
              "sizes");
    CHECK(message_for("Conv2d 1 4 3 1\n") ==
          path +
              ": section MODL line 1 'Conv2d 1 4 3 1': expected kernel size, stride and padding");
    CHECK(message_for("Conv2d 1 4 3 1 1 1\n") ==
          path +
              ": section MODL line 1 'Conv2d 1 4 3 1 1 1': Sequential: layer 0 Conv2d(1 -> 4, "
              "3x3, padding 1) needs the shape of its input samples: give the model its input "
              "shape, e.g. Sequential model(Shape{1, 28, 28})");
    CHECK(message_for("Input 1 8 8\nConv2d 1 4 30 1 1 1\n") ==
          path +
              ": section MODL line 2 'Conv2d 1 4 30 1 1 1': wider than the values in section "
              "TENS allow");
    CHECK(message_for("Input 1 8 8\nConv2d 1 4 3 1 1 1\nMaxPool2d 9 9 0\n") ==
          path +
              ": section MODL line 3 'MaxPool2d 9 9 0': Sequential: cannot add layer 1 "
              "MaxPool2d(9x9, stride 9), which has a 9x9 window larger than its padded input "
              "8x8, after layer 0 Conv2d(1 -> 4, 3x3, padding 1), which outputs [4, 8, 8] (256 "
              "values)");
    CHECK(message_for("Input 1 8 8\nConv2d 1 4 3 1 99999999 1\n") ==
          path +
              ": section MODL line 2 'Conv2d 1 4 3 1 99999999 1': Conv2d: kernel size, stride "
              "and padding must be at most 1048576, got 3, 1 and 99999999");
    CHECK(message_for("Dropout 2\n") ==
          path +
              ": section MODL line 1 'Dropout 2': Dropout: probability must be in [0, 1], got 2");
}
