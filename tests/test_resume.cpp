// Crash survival: a real `train` process killed with SIGKILL in the middle of training and
// resumed from its last checkpoint ends with the same weights, byte for byte, and the same log
// numbers as the same run never interrupted.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "framework/experiment/trainer.hpp"
#include "helpers.hpp"

extern char** environ;

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

const std::string kTrain = std::string(BNLAB_BIN_DIR) + "/train";

pid_t spawn(const std::vector<std::string>& arguments, const std::string& output) {
    std::vector<char*> argv;
    for (const std::string& argument : arguments)
        argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t child = 0;
    const int error = posix_spawn(&child, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(error == 0, "cannot start " << argv[0]);
    return child;
}

int wait_for(pid_t child) {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

std::vector<std::string> run_arguments(const std::string& dir, const std::string& name) {
    return {kTrain,
            "--hidden",
            "64,64",
            "--epochs",
            "4",
            "--threads",
            "1",
            "--save",
            dir + "/" + name + ".ckpt",
            "--log",
            dir + "/" + name + ".jsonl"};
}

// Epoch and final lines without what depends on the clock.
std::vector<Json> numbers_of(const std::vector<std::string>& texts) {
    std::vector<Json> lines;
    for (const std::string& text : texts) {
        Json line = Json::parse(text);
        if (line.at("type") != "epoch" && line.at("type") != "final") continue;
        for (const char* field : {"seconds", "samples_per_s", "eval_seconds", "seconds_per_epoch"})
            line.erase(field);
        lines.push_back(line);
    }
    return lines;
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream file(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(file, line);)
        lines.push_back(line);
    return lines;
}

int saved_epoch(const std::string& path) {
    return Json::parse(*Checkpoint::read(path).section("TRAN")).at("epoch").get<int>();
}

}  // namespace

TEST_CASE("A train process killed mid-run and resumed ends as if never interrupted") {
    TempDir dir;
    const std::string folder = dir.path.string();
    REQUIRE(wait_for(spawn(run_arguments(folder, "whole"), dir / "whole.out")) == 0);

    const pid_t child = spawn(run_arguments(folder, "killed"), dir / "killed.out");
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
    MESSAGE("killed after the checkpoint of epoch " << epochs_done << " of 4");
    REQUIRE(epochs_done < 4);  // the kill came before the run ended
    for (const auto& entry : std::filesystem::directory_iterator(dir.path))
        CHECK_MESSAGE(entry.path().string().find(".tmp") == std::string::npos,
                      entry.path().string());

    std::vector<std::string> resume = run_arguments(folder, "killed");
    resume.insert(resume.begin() + 1, {"--resume", dir / "killed.ckpt"});
    resume.erase(resume.begin() + 3, resume.begin() + 7);  // --hidden 64,64 --epochs 4 go
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
    CHECK(saved_epoch(dir / "killed.ckpt") == 4);
    // The same log numbers; the resumed log also says where it resumed.
    const std::vector<std::string> resumed_log = lines_of(dir / "killed.jsonl");
    CHECK(numbers_of(resumed_log) == numbers_of(lines_of(dir / "whole.jsonl")));
    CHECK(numbers_of(resumed_log).size() == 5);
    std::size_t resumed_lines = 0;
    for (const std::string& line : resumed_log)
        resumed_lines += Json::parse(line).at("type") == "resumed";
    CHECK(resumed_lines == 1);
}

TEST_CASE("Resuming under another configuration, or from a model-only file, is an error") {
    TempDir dir;
    Rng rng(2);
    const Dataset all = make_blobs(300, 6, 3, 1.0, rng);
    const Dataset train = slice(all, 0, 240), test = slice(all, 240, 300);
    QuietLogs quiet;
    TrainConfig config;
    config.hidden = {8};
    config.batch = 24;
    config.epochs = 1;
    config.data_dir = "(blobs)";
    config.save_path = dir / "run.ckpt";
    train_mlp(config, train, test);

    TrainConfig other = config;
    other.save_path.clear();
    other.resume_path = dir / "run.ckpt";
    other.epochs = 2;
    other.lr = 0.1;
    CHECK(message_of([&] { train_mlp(other, train, test); }) ==
          dir / "run.ckpt" + ": saved by another configuration: lr is 0.5 there, 0.1 here");

    Sequential model = mlp(6, {8}, 3, Activation::sigmoid, true, rng);
    save_model(dir / "model.ckpt", model);
    TrainConfig from_model = config;
    from_model.save_path.clear();
    from_model.resume_path = dir / "model.ckpt";
    CHECK(message_of([&] { train_mlp(from_model, train, test); }) ==
          dir / "model.ckpt" +
              ": not a training checkpoint (no TRAN and ORDR sections; train --save writes "
              "those)");
}
