// Compose a model layer by layer in your own code and train it with bnlab's trainer: the same
// loop, JSONL log, checkpoints and probe as `train`, so `curves` draws this run beside any other.
// The README quotes main()'s first part.
//   build/bin/compose --log runs/compose.jsonl [--epochs N] [--save run.ckpt] [--resume run.ckpt]
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/bnlab.hpp"
#include "framework/experiment/run_config.hpp"
#include "framework/experiment/trainer.hpp"

using namespace bnlab;

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    CLI::App app{"Trains a model composed in code on Fashion-MNIST through bnlab's trainer.",
                 "compose"};
    int epochs = 3, threads = 0;
    std::string log, save, resume;
    app.add_option("--epochs", epochs, "Epochs")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--log", log, "JSONL log, for curves");
    app.add_option("--save", save, "Checkpoint after every epoch");
    app.add_option("--resume", resume, "Continue the run saved in this checkpoint")
        ->check(CLI::ExistingFile);
    app.add_option("--threads", threads, "Threads for the matrix products [0: OpenBLAS's default]")
        ->transform(integer_at_least(0));
    CLI11_PARSE(app, argc, argv);
    try {
        const FashionMnist data = load_fashion_mnist();
        Rng rng(42);  // the one source of randomness: same seed, same run

        // A block of its own, with BatchNorm after the activation, nested in the model.
        auto block = std::make_unique<Sequential>();
        block->add<Dense>(128, 64, rng);
        block->add<ReLU>();
        block->add<BatchNorm>(BatchNormOptions(64).momentum(0.1));
        Sequential model;
        model.add<Dense>(784, 128, rng);
        model.add<BatchNorm>(128);
        model.add<ReLU>();
        model.add(std::move(block));
        model.add<Dense>(64, 10, rng);
        std::printf("%s\n", model.summary().c_str());

        SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
        const FitOptions options =
            FitOptions()
                .epochs(epochs)
                .batch_size(64)
                .target(0.85)
                .name("compose")
                .log(log)
                .save(save)
                .resume(resume)
                .threads(threads)
                .schedule(LrSchedule::cosine(epochs))
                .config(
                    {{"variant", "compose"}, {"model", "784-128 BN ReLU, [128-64 ReLU BN], 10"}});
        const RunResult result = fit(model, optimizer, data.train, data.test, rng, options);
        return result.outcome.divergence ? 3 : 0;
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
}
