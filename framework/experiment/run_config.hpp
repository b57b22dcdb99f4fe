#pragma once
// Everything that defines one training run, the presets of the BatchNorm comparison, and the
// command-line flags that `train` and `compare_bn` share (a preset first, then any flag given
// overrides it).

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/idx.hpp"
#include "framework/lr_schedule.hpp"
#include "models/mlp.hpp"
#include "models/norm_choice.hpp"

namespace CLI {
class App;
class Validator;
class Option;
}  // namespace CLI

namespace bnlab {

struct TrainConfig {
    std::string preset = "paper";             // where the defaults below came from
    std::string data_dir = kFashionMnistDir;  // IDX files, or train.csv and test.csv
    std::string label_column = "label";       // CSV data: the label's column, name or index
    // "classification" (softmax cross-entropy on labels) or "regression" (mean squared error on
    // the CSV columns target_columns, names or indices; the log reports R² and the RMSE).
    std::string task = "classification";
    std::vector<std::string> target_columns;
    double label_smoothing = 0.0;  // classification: PyTorch's label_smoothing
    // Held out of the training set to judge the epochs (FitOptions::validation_fraction); 0: none.
    double validation_fraction = 0.0;
    // Stops after this many epochs without a lower validation (or test) loss; 0: never.
    int early_stopping = 0;
    bool standardize = false;  // else pixels are only scaled to [0, 1], CSV features used as read
    // "mlp", or "cnn": convolution blocks of these channel counts (models/cnn.hpp) before the
    // hidden Dense layers; it needs image data.
    // "resnet" or "plain": the residual network of models/resnet.hpp of this depth and width,
    // or its twin without shortcuts; their head is global pooling and one Dense (no hidden).
    std::string model = "mlp";
    std::vector<std::size_t> channels{16, 32};
    std::size_t depth = 20;
    std::size_t width = 16;
    std::vector<std::size_t> hidden{100, 100, 100};
    double dropout = 0.0;  // Dropout after each hidden Dense block's activation when > 0
    Activation activation = Activation::sigmoid;
    // After every Conv2d and hidden Dense layer: BatchNorm by default, none (`--bn off`), or
    // another normalization (`--norm`, models/norm_choice.hpp).
    NormChoice norm;
    std::string optimizer = "sgd";  // "sgd" or "adam"
    double lr = 0.5;
    LrSchedule schedule;  // per epoch, from lr; constant by default
    double momentum = 0.0;
    double weight_decay = 0.0;
    std::size_t batch = 60;  // the last partial batch of each training epoch is dropped
    int epochs = 10;
    std::uint64_t seed = 1;
    int threads = 0;        // OpenBLAS threads; 0 keeps OpenBLAS's default
    double target = 0.85;   // the test accuracy whose first epoch is reported
    std::string log_path;   // JSONL log; empty for none
    bool probe = false;     // log the covariate-shift probe (see probe.hpp)
    int probe_points = 10;  // probe points per epoch
    // Data-parallel training over the processes mpirun started (train --distributed), with
    // BatchNorm synchronized over them or not. Not in to_json(): fit() records them as
    // "world_size" and "sync_bn", and config_from_json() reads those.
    bool distributed = false;
    bool sync_bn = false;
    // Checkpoints and exports, which do not change the run and so are not in to_json():
    std::string save_path;    // write a checkpoint here; empty for none
    int save_every = 1;       // after every this many epochs, and after the last
    std::string resume_path;  // continue the run saved here
    // The trained model with every BatchNorm folded into its Dense (fold_batchnorm), written with
    // save_model after the last epoch; empty for none.
    std::string export_folded_path;
};

// The comparison's presets, all plain SGD without momentum:
//   paper: the BN paper's MNIST network, 3 x 100 sigmoid, batch 60, lr 0.5, target 0.85;
//   deep:  6 x 100 sigmoid, otherwise as paper;
//   relu:  2 x 256 ReLU, batch 128, lr 0.1, target 0.87;
//   cnn:   a small CNN (see preset_config), ReLU, batch 128, target 0.91;
// and the deep networks', SGD with momentum 0.9, weight decay 5e-4, a cosine schedule:
//   resnet20: ResNet-20 (width 16), batch 128, lr 0.1, 15 epochs, target 0.93;
//   plain20:  its twin without shortcuts, otherwise as resnet20.
// Throws std::invalid_argument naming the unknown preset and the known ones.
TrainConfig preset_config(const std::string& name);
const std::vector<std::string>& preset_names();

// Whether `model` names a residual network or its plain twin ("resnet", "plain").
bool is_resnet(const std::string& model);

// "100,100,100"
std::string hidden_string(const std::vector<std::size_t>& hidden);
// The network in a few words: "100,100,100 sigmoid", or "conv 16,32 + 128 relu" for a CNN (and
// ", dropout 0.2" when it has Dropout), "ResNet-20 (width 16)", "plain-20 (width 16)".
std::string network_string(const TrainConfig& config);

// Every field, keyed by its flag's name ("hidden": [100, 100, 100], "bn": "on", "lr": 0.5, …).
// The normalization is "bn": "on" for BatchNorm and "off" otherwise, and "norm": "group:4" only
// when it is neither BatchNorm nor none, so that the logs of BatchNorm runs read as before.
nlohmann::ordered_json to_json(const TrainConfig& config);

// The configuration to_json() wrote; throws std::invalid_argument naming a missing or bad field.
TrainConfig config_from_json(const nlohmann::ordered_json& json);

// Flag checks whose messages say what the flag expects ("--batch: expected a positive integer,
// got 'ten'"); CLI11's PositiveNumber prints a 300-digit range and lets "nan" through.
// integer_at_least accepts decimal integers of at least `least` and rewrites them without
// leading zeros (CLI11 would read "010" as octal), so it goes in ->transform(), not ->check().
CLI::Validator integer_at_least(long long least);
// A finite number above zero, or at least zero with `zero_allowed`.
CLI::Validator finite_number(bool zero_allowed);
// A finite number from 0 to 1.
CLI::Validator fraction();
// A normalization NormChoice::parse reads, or with `list` comma-separated ones.
CLI::Validator norm_check(bool list = false);
// A learning-rate schedule LrSchedule::parse reads.
CLI::Validator schedule_check();
// Comma-separated finite numbers > 0, each checked as finite_number(false) checks one.
CLI::Validator learning_rate_list();

// Registers train's flags on `app`. After app.parse(), resolve() gives the preset's
// configuration with every flag that was given applied over it. Holds pointers into itself for
// CLI11, so it stays where it was made.
class TrainFlags {
  public:
    // With `lists` (compare_bn's), --lr takes a comma-separated list of learning rates and
    // --norm one of normalizations; resolve() then gives the first of each, learning_rates()
    // and norms() all of them.
    explicit TrainFlags(CLI::App& app, bool lists = false);
    TrainFlags(const TrainFlags&) = delete;
    TrainFlags& operator=(const TrainFlags&) = delete;

    TrainConfig resolve() const;
    // The learning rates given (a list with `lists`), or the resolved configuration's one.
    std::vector<double> learning_rates() const;
    // The normalizations given (a list with `lists`), or the resolved configuration's one.
    std::vector<NormChoice> norms() const;
    // The flags given on the command line (other than --preset), e.g. {"--lr", "--bn"}.
    std::vector<std::string> given() const;

  private:
    // Registers `option` so that, when given, `apply` copies its value into the configuration.
    void overrides(CLI::Option* option, std::function<void(TrainConfig&)> apply);

    TrainConfig given_;
    std::string preset_ = "paper";
    std::string activation_;
    std::string batchnorm_;
    std::string norm_;
    std::string model_;
    std::string schedule_;
    std::size_t depth_ = 20;
    std::size_t width_ = 16;
    std::string learning_rates_text_;  // --lr with lr_list, checked by learning_rate_list()
    std::vector<std::pair<CLI::Option*, std::function<void(TrainConfig&)>>> overrides_;
};

}  // namespace bnlab
