// Crash survival: a real `train` process killed with SIGKILL in the middle of training and
// resumed from its last checkpoint ends with the same weights, byte for byte, and the same log
// numbers as the same run never interrupted.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "experiment_helpers.hpp"
#include "framework/experiment/model_run.hpp"
#include "models/fold_batchnorm.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

// A run of `program` with `flags`, checkpointed to and logged in `dir`/`name`.ckpt and .jsonl.
std::vector<std::string> run_arguments(const std::string& program,
                                       const std::vector<std::string>& flags,
                                       const std::string& dir, const std::string& name) {
    std::vector<std::string> arguments{program,
                                       "--threads",
                                       "1",
                                       "--save",
                                       dir + "/" + name + ".ckpt",
                                       "--log",
                                       dir + "/" + name + ".jsonl"};
    arguments.insert(arguments.end(), flags.begin(), flags.end());
    return arguments;
}

// Epoch and final lines without what depends on the clock.
std::vector<Json> numbers_of(const std::vector<Json>& lines) {
    std::vector<Json> numbers;
    for (const Json& line : without_timing(lines))
        if (line.at("type") == "epoch" || line.at("type") == "final") numbers.push_back(line);
    return numbers;
}

int saved_epoch(const std::string& path) {
    return Json::parse(*Checkpoint::read(path).section("TRAN")).at("epoch").get<int>();
}

// Runs `program` for `epochs` epochs whole, and again killed with SIGKILL inside the epoch after
// its first checkpoint and resumed with `resume_flags` (the run's own flags, which --resume
// takes from the checkpoint, left out): both must end with the same checkpoint and log numbers.
void check_killed_and_resumed(const std::string& program, const std::vector<std::string>& flags,
                              const std::vector<std::string>& resume_flags, int epochs) {
    TempDir dir;
    const std::string folder = dir.path.string();
    REQUIRE(wait_for(spawn(run_arguments(program, flags, folder, "whole"), dir / "whole.out")) ==
            0);

    const pid_t child = spawn(run_arguments(program, flags, folder, "killed"), dir / "killed.out");
    // Wait for the first checkpoint, then kill the process inside the next epoch.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(dir / "killed.ckpt") &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    REQUIRE(kill(child, SIGKILL) == 0);
    const int status = wait_for(child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    const int epochs_done = saved_epoch(dir / "killed.ckpt");
    MESSAGE("killed after the checkpoint of epoch " << epochs_done << " of " << epochs);
    REQUIRE(epochs_done < epochs);  // the kill came before the run ended
    for (const auto& entry : std::filesystem::directory_iterator(dir.path))
        CHECK_MESSAGE(entry.path().string().find(".tmp") == std::string::npos,
                      entry.path().string());

    std::vector<std::string> resume = run_arguments(program, resume_flags, folder, "killed");
    resume.insert(resume.begin() + 1, {"--resume", dir / "killed.ckpt"});
    REQUIRE(wait_for(spawn(resume, dir / "resumed.out")) == 0);

    // The same weights, statistics, optimizer state and data order, byte for byte.
    const Checkpoint whole = Checkpoint::read(dir / "whole.ckpt");
    const Checkpoint resumed = Checkpoint::read(dir / "killed.ckpt");
    for (const char* tag : {"MODL", "TENS", "CNTS", "OPTC", "OPTS", "ORDR"}) {
        CAPTURE(tag);
        REQUIRE(whole.section(tag));
        REQUIRE(resumed.section(tag));
        CHECK(*whole.section(tag) == *resumed.section(tag));
    }
    CHECK(saved_epoch(dir / "killed.ckpt") == epochs);
    // The same log numbers; the resumed log also says where it resumed.
    const std::vector<Json> resumed_log = read_lines(dir / "killed.jsonl");
    CHECK(numbers_of(resumed_log) == numbers_of(read_lines(dir / "whole.jsonl")));
    CHECK(numbers_of(resumed_log).size() == std::size_t(epochs) + 1);
    std::size_t resumed_lines = 0;
    for (const Json& line : resumed_log)
        resumed_lines += line.at("type") == "resumed";
    CHECK(resumed_lines == 1);
}

}  // namespace

TEST_CASE("A train process killed mid-run and resumed ends as if never interrupted") {
    check_killed_and_resumed(kTrain, {"--hidden", "64,64", "--epochs", "4"}, {}, 4);
}

TEST_CASE(
    "A model composed in code, nested, killed mid-run and resumed ends as if never "
    "interrupted") {
    // examples/compose.cpp: a nested Sequential with BatchNorm after an activation, SGD with
    // momentum and a cosine schedule, trained through fit().
    check_killed_and_resumed(kProgramDir + "/compose", {"--epochs", "3"}, {"--epochs", "3"}, 3);
}

TEST_CASE("Resuming under another configuration, or from a model-only file, is an error") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    TrainConfig config = small_config();
    config.epochs = 1;
    config.save_path = dir / "run.ckpt";
    train_model(config, problem.train, problem.test);

    TrainConfig other = config;
    other.save_path.clear();
    other.resume_path = dir / "run.ckpt";
    other.epochs = 2;
    other.lr = 0.1;
    CHECK(message_of([&] { train_model(other, problem.train, problem.test); }) ==
          dir / "run.ckpt" + ": saved by another configuration: lr is 0.5 there, 0.1 here");

    // A training state whose saved log is damaged (with checksums that match).
    const Checkpoint saved = Checkpoint::read(dir / "run.ckpt");
    Sequential restored = saved.model();
    SGD sgd(restored.parameters(), SGDOptions(config.lr));
    saved.load_optimizer(sgd);
    Json state = Json::parse(*saved.section("TRAN"));
    state["log"].push_back("{\"type\":\"epoch\",\"epoch\":2.5}");
    save_checkpoint(dir / "damaged.ckpt", restored, &sgd,
                    {{"TRAN", state.dump()}, {"ORDR", *saved.section("ORDR")}});
    TrainConfig damaged = other;
    damaged.lr = config.lr;
    damaged.resume_path = dir / "damaged.ckpt";
    CHECK(message_of([&] { train_model(damaged, problem.train, problem.test); }) ==
          dir / "damaged.ckpt" +
              ": epoch: expected an integer from -2147483648 to 2147483647, got 2.5");

    Rng rng(2);
    Sequential model = mlp(12, {16, 16}, 4, Activation::sigmoid, true, rng);
    save_model(dir / "model.ckpt", model);
    TrainConfig from_model = config;
    from_model.save_path.clear();
    from_model.resume_path = dir / "model.ckpt";
    CHECK(message_of([&] { train_model(from_model, problem.train, problem.test); }) ==
          dir / "model.ckpt" +
              ": not a training checkpoint (no TRAN and ORDR sections; train --save writes "
              "those)");
}

TEST_CASE("train --export-folded writes the trained model folded: no BatchNorm, same predictions") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    TrainConfig config = small_config();
    config.save_path = dir / "run.ckpt";
    config.export_folded_path = dir / "folded.ckpt";
    const RunResult result = train_model(config, problem.train, problem.test);

    Sequential folded = load_model(dir / "folded.ckpt");
    CHECK(folded.size() == 5);  // Dense, Sigmoid, Dense, Sigmoid, Dense
    for (std::size_t i = 0; i < folded.size(); ++i)
        CHECK(folded[i].describe().find("BatchNorm") == std::string::npos);
    // The same as folding the trained model (saved in the checkpoint) here, bit for bit.
    Sequential trained = Checkpoint::read(dir / "run.ckpt").model();
    Sequential folded_here = fold_batchnorm(trained);
    folded.eval();
    const Matrix<float> inputs = problem.test.inputs;
    CHECK(folded.forward(inputs) == folded_here.forward(inputs));
    // And it gets as many test points right as the trained model did after its last epoch.
    const double points = double(problem.test.labels.size());
    CHECK(std::abs(evaluate(folded, problem.test, 60).accuracy - result.epochs.back().test_acc) <
          0.5 / points);

    TrainConfig unwritable = config;
    unwritable.save_path.clear();
    unwritable.export_folded_path = "/no/such/folder/folded.ckpt";
    CHECK(message_of([&] { train_model(unwritable, problem.train, problem.test); }) ==
          "cannot write /no/such/folder/folded.ckpt: folder /no/such/folder: No such file or "
          "directory");
}

TEST_CASE("A CNN with Dropout, killed mid-run and resumed, ends as if never interrupted") {
    // Conv2d, spatial BatchNorm, MaxPool2d and Dropout, whose masks come from the run's
    // generator: the resumed run must draw the masks the uninterrupted one drew.
    check_killed_and_resumed(kTrain,
                             {"--preset", "cnn", "--channels", "4,8", "--hidden", "32", "--dropout",
                              "0.2", "--epochs", "3"},
                             {}, 3);
}

namespace {

// The first `count` images of `data` written as the IDX files `prefix`-images-idx3-ubyte and
// `prefix`-labels-idx1-ubyte in `dir`, pixels back to bytes.
void write_idx_subset(const std::string& dir, const std::string& prefix, const Dataset& data,
                      std::size_t count) {
    auto header = [](std::ofstream& file, std::uint8_t dimensions,
                     std::vector<std::uint32_t> sizes) {
        file.put(0).put(0).put(8).put(char(dimensions));
        for (std::uint32_t size : sizes)
            for (int shift = 24; shift >= 0; shift -= 8)
                file.put(char(std::uint8_t(size >> shift)));
    };
    std::ofstream images(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
    header(images, 3, {std::uint32_t(count), 28, 28});
    for (std::size_t i = 0; i < count * 784; ++i)
        images.put(char(std::uint8_t(std::lround(data.inputs.data()[i] * 255.0f))));
    std::ofstream labels(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
    header(labels, 1, {std::uint32_t(count)});
    for (std::size_t i = 0; i < count; ++i)
        labels.put(char(std::uint8_t(data.labels(i))));
}

}  // namespace

TEST_CASE(
    "A ResNet (train --preset resnet20), killed mid-run and resumed, ends as if never "
    "interrupted") {
    // Residual blocks with projections, SGD with momentum and weight decay, a cosine schedule;
    // on 1024 + 256 Fashion-MNIST images, so that the sanitizer build runs it in seconds.
    TempDir data;
    const FashionMnist fashion = load_fashion_mnist();
    write_idx_subset(data.path.string(), "train", fashion.train, 1024);
    write_idx_subset(data.path.string(), "t10k", fashion.test, 256);
    check_killed_and_resumed(kTrain,
                             {"--preset", "resnet20", "--depth", "8", "--width", "4", "--epochs",
                              "3", "--data", data.path.string()},
                             {}, 3);
}
