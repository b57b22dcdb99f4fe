// Where should BatchNorm go? The question users ask most about it, answered on Fashion-MNIST over
// several seeds: Dense -> BN -> ReLU (the BN paper's order, and PyTorch users': Linear,
// BatchNorm1d, ReLU) against Dense -> ReLU -> BN, and no BatchNorm, in a 2 x 256 ReLU network
// with plain SGD. A comparison in user code: compare_variants writes every run's log, the table,
// the curves, table.md and report.html under runs/bn_placement-<time>/ (or --out).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/bnlab.hpp"
#include "framework/experiment/compare.hpp"
#include "framework/experiment/run_config.hpp"
#include "framework/experiment/run_record.hpp"

using namespace bnlab;

enum class Placement { before_activation, after_activation, none };

// 784 -> 256 -> 256 -> 10, BatchNorm placed as asked in each hidden layer.
Sequential placement_model(Placement placement, Rng& rng) {
    Sequential model;
    std::size_t width = 784;
    for (int layer = 0; layer < 2; ++layer) {
        model.add<Dense>(width, 256, rng);
        if (placement == Placement::before_activation) model.add<BatchNorm>(256);
        model.add<ReLU>();
        if (placement == Placement::after_activation) model.add<BatchNorm>(256);
        width = 256;
    }
    model.add<Dense>(width, 10, rng);
    return model;
}

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    CLI::App app{"Compares BatchNorm before the activation, after it, and none, on Fashion-MNIST.",
                 "bn_placement"};
    int seeds = 3, epochs = 10, threads = 0;
    double lr = 0.1;
    std::string data_dir = kFashionMnistDir, out_dir;
    // The flag checks train's flags use, with messages that say what they expect.
    app.add_option("--seeds", seeds, "Runs per variant")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--epochs", epochs, "Epochs per run")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--lr", lr, "SGD learning rate")
        ->check(finite_number(false))
        ->capture_default_str();
    app.add_option("--threads", threads, "Threads for the matrix products [0: OpenBLAS's default]")
        ->transform(integer_at_least(0));
    app.add_option("--data", data_dir, "Folder with the four IDX files")
        ->check(CLI::ExistingDirectory);
    app.add_option("--out", out_dir, "Folder for the results [default: runs/bn_placement-<time>]");
    CLI11_PARSE(app, argc, argv);
    if (out_dir.empty()) out_dir = "runs/bn_placement-" + time_now("%Y%m%d-%H%M%S", false);

    try {
        const FashionMnist data = load_fashion_mnist(data_dir);
        std::vector<VariantSpec> variants;
        for (auto [name, placement] : {std::pair{"Dense-BN-ReLU", Placement::before_activation},
                                       std::pair{"Dense-ReLU-BN", Placement::after_activation},
                                       std::pair{"no BN", Placement::none}}) {
            variants.push_back(
                {name, [placement = placement, lr](Rng& rng) {
                     ModelAndOptimizer built{placement_model(placement, rng), nullptr};
                     built.optimizer =
                         std::make_unique<SGD>(built.model.parameters(), SGDOptions(lr));
                     return built;
                 }});
        }
        const std::string title = "Where BatchNorm goes: 2 x 256 ReLU, batch 128, SGD lr " +
                                  number_string(lr) + ", Fashion-MNIST, " + std::to_string(seeds) +
                                  " seeds";
        const ComparisonResult result =
            compare_variants(variants, data.train, data.test,
                             ComparisonOptions()
                                 .seeds(seeds)
                                 .out(out_dir)
                                 .title(title)
                                 .command(command_line(argc, argv))
                                 .fit(FitOptions()
                                          .epochs(epochs)
                                          .batch_size(128)
                                          .target(0.87)
                                          .threads(threads)
                                          .record({{"command", command_line(argc, argv)}})));
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
