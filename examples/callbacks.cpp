// fit's callbacks in user code: a callback of one's own (per-class accuracy on the validation
// set after every epoch), early stopping, the best epoch's weights, a learning rate that drops on
// a plateau; then a regression (mean squared error) on the diabetes data set shipped with the
// tests, judged by R² and the RMSE.
//   callbacks [--fashion-mnist DIR] [--diabetes DIR] [--epochs N] [--out DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/bnlab.hpp"
#include "framework/csv.hpp"
#include "framework/experiment/callbacks.hpp"
#include "framework/experiment/trainer.hpp"

using namespace bnlab;

// After every epoch: the accuracy of each class on a set the run does not train on, one line.
class PerClassAccuracy : public Callback {
  public:
    PerClassAccuracy(const Dataset& data, std::vector<std::string> class_names)
        : data_(data), names_(std::move(class_names)) {}
    std::string name() const override { return "PerClassAccuracy"; }

    void on_epoch_end(FitContext& run, const EpochStats& epoch) override {
        ModeGuard<float> eval_mode(run.model, false);  // BatchNorm's running statistics
        std::vector<std::size_t> right(names_.size()), seen(names_.size());
        BatchLoader batches(data_, 1000, nullptr, false);
        while (batches.next()) {
            const Matrix<float>& logits = run.model.forward(batches.inputs());
            for (std::size_t i = 0; i < logits.shape(0); ++i) {
                const float* row = &logits(i, 0);
                const int guess = int(std::max_element(row, row + logits.shape(1)) - row);
                const int label = batches.labels()(i);
                ++seen[std::size_t(label)];
                if (guess == label) ++right[std::size_t(label)];
            }
        }
        std::string line = "epoch " + std::to_string(epoch.epoch) + " per class:";
        for (std::size_t c = 0; c < names_.size(); ++c)
            line += " " + names_[c] + " " + number_string(double(right[c]) / double(seen[c]));
        spdlog::info("{}", line);
        // The record gets it too: `curves` skips lines of types it does not know.
        nlohmann::ordered_json record = {{"type", "per_class"}, {"epoch", epoch.epoch}};
        for (std::size_t c = 0; c < names_.size(); ++c)
            record[names_[c]] = double(right[c]) / double(seen[c]);
        run.emit(record);
    }

  private:
    const Dataset& data_;
    std::vector<std::string> names_;
};

int main(int argc, char** argv) {
    select_blas_kernels(argv);
    CLI::App app{
        "fit's callbacks: per-class accuracy, early stopping, best weights, a "
        "learning rate reduced on a plateau, and a regression"};
    std::string fashion_mnist = kFashionMnistDir, diabetes = "tests/data/diabetes", out = ".";
    int epochs = 30;
    app.add_option("--fashion-mnist", fashion_mnist, "Fashion-MNIST's folder")
        ->capture_default_str();
    app.add_option("--diabetes", diabetes, "the diabetes data's folder (train.csv, test.csv)")
        ->capture_default_str();
    app.add_option("--epochs", epochs, "the most epochs each run may take")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--out", out, "folder for the two runs' logs")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        std::filesystem::create_directories(out);
        // 1. Classification: 10 % of the training set held out to judge the epochs.
        FashionMnist images = load_fashion_mnist(fashion_mnist);
        standardize(images.train, images.test);
        Rng rng(7);
        Sequential classifier;
        classifier.add<Dense>(784, 256, rng);
        classifier.add<BatchNorm1d>(256);
        classifier.add<ReLU>();
        classifier.add<Dense>(256, 10, rng);
        SGD sgd(classifier.parameters(), SGDOptions(0.1).momentum(0.9));
        // The per-class callback watches a fixed slice of the test set, never the judged data.
        const Dataset watched = slice(images.test, 0, 2000);
        const RunResult classified =
            fit(classifier, sgd, images.train, images.test, rng,
                FitOptions()
                    .epochs(epochs)
                    .batch_size(128)
                    .validation_fraction(0.1)
                    .name("classifier")
                    .log(out + "/classifier.jsonl")
                    .loss(std::make_shared<SoftmaxCrossEntropy>(0.1))  // label smoothing 0.1
                    .callbacks(
                        {std::make_shared<PerClassAccuracy>(
                             watched, std::vector<std::string>{"T-shirt", "trouser", "pullover",
                                                               "dress", "coat", "sandal", "shirt",
                                                               "sneaker", "bag", "boot"}),
                         std::make_shared<ReduceLrOnPlateau>(
                             ReduceLrOnPlateauOptions().monitor("val_loss").patience(1)),
                         std::make_shared<EarlyStopping>(
                             EarlyStoppingOptions().monitor("val_loss").patience(3)),
                         std::make_shared<BestWeights>(BestWeightsOptions().monitor("val_acc"))}));

        // 2. Regression: disease progression from ten baseline variables.
        const CsvOptions columns = CsvOptions().targets({"progression"});
        FashionMnist patients = load_data_folder(diabetes, columns);
        // Features in their own units (years, mmHg, …) and the target, each to mean 0 and
        // standard deviation 1 by the training rows.
        standardize_columns(patients.train.inputs, patients.test.inputs);
        const double progression_scale =
            standardize_columns(patients.train.values, patients.test.values)[0].std;
        Rng regression_rng(11);
        Sequential regressor;
        regressor.add<Dense>(10, 32, regression_rng);
        regressor.add<ReLU>();
        regressor.add<Dense>(32, 1, regression_rng);
        SGD regression_sgd(regressor.parameters(), SGDOptions(0.01).momentum(0.9));
        const RunResult regressed =
            fit(regressor, regression_sgd, patients.train, patients.test, regression_rng,
                FitOptions()
                    .epochs(epochs * 10)
                    .batch_size(16)
                    .validation_fraction(0.2)
                    .name("regression")
                    .log(out + "/regression.jsonl")
                    .target(0.4)
                    .loss(std::make_shared<MeanSquaredError>())
                    .callbacks(
                        {std::make_shared<EarlyStopping>(
                             EarlyStoppingOptions().monitor("val_rmse").patience(20)),
                         std::make_shared<BestWeights>(BestWeightsOptions().monitor("val_rmse"))}));
        const FinalTest& test = *regressed.outcome.test;
        std::printf("classifier: test accuracy %.4f with the weights of epoch %d of %zu\n",
                    classified.outcome.test->acc, classified.outcome.test->epoch,
                    classified.epochs.size());
        std::printf(
            "regression: test R² %.3f, RMSE %.1f (progression units) with the weights "
            "of epoch %d of %zu\n",
            test.acc, std::sqrt(test.loss) * progression_scale, test.epoch,
            regressed.epochs.size());
        // Fails when training went wrong: a linear model explains about half the variance.
        return classified.outcome.test->acc > 0.85 && test.acc > 0.3 ? 0 : 1;
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
}
