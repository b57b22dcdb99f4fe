// Fine-tuning at a tiny batch, with BatchNorm frozen or not: the cnn preset trained on five of
// Fashion-MNIST's classes (0-4) at batch 128, then tuned with a new head on the other five (5-9)
// at batch 2-4, in three ways: BatchNorm as in training (statistics of each tiny batch, running
// statistics updated), its statistics frozen (the pretrained running statistics, gamma and beta
// still trained), and frozen entirely (gamma and beta too). One use of compare_variants:
//   build/bin/fine_tune --tune-batch 4 --seeds 2 --out runs/fine-tune
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/bnlab.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/experiment/run_record.hpp"

using namespace bnlab;

namespace {

// The samples of `data` whose label is in [first, last].
Dataset select_classes(const Dataset& data, int first, int last) {
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < data.size(); ++i)
        if (data.labels(i) >= first && data.labels(i) <= last) rows.push_back(i);
    Dataset selected;
    selected.sample_shape = data.sample_shape;
    selected.inputs = xt::empty<float>({rows.size(), data.inputs.shape(1)});
    selected.labels = xt::empty<int>({rows.size()});
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::copy_n(&data.inputs(rows[r], 0), data.inputs.shape(1), &selected.inputs(r, 0));
        selected.labels(r) = data.labels(rows[r]);
    }
    return selected;
}

}  // namespace

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    CLI::App app{
        "Trains the cnn preset on Fashion-MNIST's classes 0-4, then fine-tunes it on classes 5-9 "
        "at a tiny batch with BatchNorm in training mode, its statistics frozen, or frozen "
        "entirely, and compares the three.",
        "fine_tune"};
    app.get_formatter()->column_width(28);
    int pretrain_epochs = 3, tune_epochs = 2, seeds = 2, threads = 1;
    std::size_t tune_batch = 4, tune_samples = 6000;
    double tune_lr = 0.01;
    std::string data_dir = kFashionMnistDir, out_dir = "runs/fine-tune";
    app.add_option("--pretrain-epochs", pretrain_epochs, "Epochs on classes 0-4 at batch 128")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--tune-epochs", tune_epochs, "Epochs of fine-tuning on classes 5-9")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--tune-batch", tune_batch, "Fine-tuning batch size")
        ->transform(integer_at_least(2))
        ->capture_default_str();
    app.add_option("--tune-samples", tune_samples,
                   "Training images of classes 5-9 to tune on (the first ones; 0 for all 30000)")
        ->transform(integer_at_least(0))
        ->capture_default_str();
    app.add_option("--tune-lr", tune_lr, "Fine-tuning learning rate (SGD, momentum 0.9)")
        ->check(finite_number(false))
        ->capture_default_str();
    app.add_option("--seeds", seeds, "Fine-tuning runs per variant (the new head and the order)")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--threads", threads, "Threads for the matrix products")
        ->transform(integer_at_least(0))
        ->capture_default_str();
    app.add_option("--data", data_dir, "Fashion-MNIST's IDX files")
        ->check(CLI::ExistingDirectory)
        ->capture_default_str();
    app.add_option("--out", out_dir, "Folder for the logs, plots, table and report")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        const FashionMnist data = load_fashion_mnist(data_dir);
        const Dataset first_train = select_classes(data.train, 0, 4);
        const Dataset first_test = select_classes(data.test, 0, 4);
        Dataset second_train = select_classes(data.train, 5, 9);
        if (tune_samples > 0 && tune_samples < second_train.size())
            second_train = slice(second_train, 0, tune_samples);
        const Dataset second_test = select_classes(data.test, 5, 9);
        std::filesystem::create_directories(out_dir);
        const std::string command = command_line(argc, argv);

        // Pretraining: the cnn preset (BatchNorm after every convolution and hidden Dense) on
        // classes 0-4 at batch 128.
        TrainConfig pretrain = preset_config("cnn");
        pretrain.epochs = pretrain_epochs;
        pretrain.threads = threads;
        pretrain.log_path = out_dir + "/pretrain.jsonl";
        Rng rng(pretrain.seed);
        ModelAndOptimizer pretrained = build_model(pretrain, data.train, data.test, rng);
        const RunContext context{"pretrain 0-4", {{"command", command}}, false};
        const RunResult first = fit(pretrained.model, *pretrained.optimizer, first_train,
                                    first_test, rng, fit_options(pretrain, context));
        const std::string checkpoint = out_dir + "/pretrained.bnlab";
        save_model(checkpoint, pretrained.model);

        // Fine-tuning: the pretrained model with a new head, tuned on classes 5-9.
        const std::pair<const char*, BatchNormFreeze> ways[] = {
            {"BN training", BatchNormFreeze::none},
            {"BN statistics frozen", BatchNormFreeze::statistics},
            {"BN frozen", BatchNormFreeze::all}};
        std::vector<VariantSpec> variants;
        for (const auto& [name, freeze] : ways)
            variants.push_back(
                {name,
                 [checkpoint, freeze = freeze, tune_lr](Rng& variant_rng) {
                     ModelAndOptimizer tuned{load_model(checkpoint), nullptr};
                     freeze_batchnorms(tuned.model, freeze);
                     auto& head = dynamic_cast<Dense&>(tuned.model[tuned.model.size() - 1]);
                     Dense fresh(head.weight().shape(1), head.weight().shape(0), variant_rng);
                     head.weight() = fresh.weight();
                     head.bias() = fresh.bias();
                     tuned.optimizer = std::make_unique<SGD>(tuned.model.parameters(),
                                                             SGDOptions(tune_lr).momentum(0.9));
                     return tuned;
                 },
                 {{"freeze", name}}});
        const std::string title = "Fine-tuning at batch " + std::to_string(tune_batch) +
                                  ": cnn preset trained on classes 0-4 (test accuracy " +
                                  number_string(first.outcome.final_test_acc) + "), tuned on " +
                                  std::to_string(second_train.size()) +
                                  " images of classes 5-9, SGD lr " + number_string(tune_lr) +
                                  " momentum 0.9";
        compare_variants(
            variants, second_train, second_test,
            ComparisonOptions().seeds(seeds).out(out_dir).title(title).command(command).fit(
                FitOptions()
                    .epochs(tune_epochs)
                    .batch_size(tune_batch)
                    .threads(threads)
                    .target(0.9)
                    .config({{"pretrained", checkpoint}})
                    .progress_bar(isatty(STDOUT_FILENO) != 0)));
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
