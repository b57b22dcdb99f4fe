// One training run of an MLP on Fashion-MNIST, logged to the console and optionally to JSONL:
//   build/bin/train --preset paper --bn off --seed 2 --log runs/paper-nobn-2.jsonl
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/experiment/trainer.hpp"

int main(int argc, char** argv) {
    using namespace bnlab;
    CLI::App app{
        "Trains an MLP classifier on Fashion-MNIST with SGD or Adam, with or without "
        "BatchNorm, and reports test accuracy after every epoch.",
        "train"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app);
    std::string log_path;
    app.add_option("--log", log_path,
                   "Write a JSONL log here: the configuration, one line per epoch, a final line");
    CLI11_PARSE(app, argc, argv);

    try {
        TrainConfig config = flags.resolve();
        config.log_path = log_path;
        PreparedData data = load_data(config);
        std::string command;
        for (int i = 0; i < argc; ++i)
            command += (i ? " " : "") + std::string(argv[i]);
        RunContext context{
            "", {{"command", command}, {"data", data.description}}, isatty(STDOUT_FILENO) != 0};
        const RunResult result = train_mlp(config, data.sets.train, data.sets.test, context);
        if (result.outcome.divergence) return 3;  // the message is already out
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
