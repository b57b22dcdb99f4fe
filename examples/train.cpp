// One training run of an MLP on Fashion-MNIST, logged to the console and optionally to JSONL,
// optionally saved to a checkpoint it can resume from:
//   build/bin/train --preset paper --bn off --seed 2 --log runs/paper-nobn-2.jsonl
//   build/bin/train --epochs 20 --save run.ckpt …     then, after a crash:
//   build/bin/train --resume run.ckpt --save run.ckpt
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/experiment/model_run.hpp"
#include "framework/experiment/run_record.hpp"

int main(int argc, char** argv) {
    using namespace bnlab;
    CLI::App app{
        "Trains an MLP classifier on Fashion-MNIST with SGD or Adam, with or without "
        "BatchNorm, and reports test accuracy after every epoch.",
        "train"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app);
    std::string log_path, save_path, resume_path, export_folded_path;
    int save_every = 1;
    app.add_option("--log", log_path,
                   "Write a JSONL log here: the configuration, one line per epoch, a final line");
    app.add_option("--save", save_path,
                   "Write a checkpoint here (atomically) after every --save-every epochs and "
                   "after the last");
    app.add_option("--save-every", save_every, "Epochs between checkpoints")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--export-folded", export_folded_path,
                   "After training, write the model with every BatchNorm folded into the Dense "
                   "before it, for inference (load it with load_model)");
    app.add_option("--resume", resume_path,
                   "Continue the run saved in this checkpoint, with its configuration; only "
                   "--epochs, --threads, --data, --log, --save, --save-every and --export-folded "
                   "may be given")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);

    try {
        TrainConfig config = flags.resolve();
        if (!resume_path.empty()) {
            // The saved run's configuration, with the few flags that may change applied.
            const std::vector<std::string> given_flags = flags.given();
            for (const std::string& flag : given_flags)
                if (flag != "--epochs" && flag != "--threads" && flag != "--data")
                    throw std::invalid_argument(flag +
                                                ": --resume continues the saved run's "
                                                "configuration; leave " +
                                                flag + " out");
            const TrainConfig given = config;
            config = saved_config(resume_path);
            for (const std::string& flag : given_flags) {
                if (flag == "--epochs") config.epochs = given.epochs;
                if (flag == "--threads") config.threads = given.threads;
                if (flag == "--data") config.data_dir = given.data_dir;
            }
            config.resume_path = resume_path;
        }
        config.log_path = log_path;
        config.save_path = save_path;
        config.save_every = save_every;
        config.export_folded_path = export_folded_path;
        PreparedData data = load_data(config);
        RunContext context{"",
                           {{"command", command_line(argc, argv)}, {"data", data.description}},
                           isatty(STDOUT_FILENO) != 0};
        const RunResult result = train_model(config, data.sets.train, data.sets.test, context);
        if (result.outcome.divergence) return 3;  // the message is already out
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
