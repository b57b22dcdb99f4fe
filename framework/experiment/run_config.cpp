#include "framework/experiment/run_config.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "framework/experiment/json_fields.hpp"
#include "framework/tensor.hpp"

namespace bnlab {

const std::vector<std::string>& preset_names() {
    static const std::vector<std::string> names{"paper", "deep",     "relu",
                                                "cnn",   "resnet20", "plain20"};
    return names;
}

TrainConfig preset_config(const std::string& name) {
    TrainConfig config;  // the defaults are the paper preset
    config.preset = name;
    if (name == "paper") return config;
    if (name == "deep") {
        config.hidden.assign(6, 100);
        return config;
    }
    if (name == "relu") {
        config.hidden = {256, 256};
        config.activation = Activation::relu;
        config.batch = 128;
        config.lr = 0.1;
        config.target = 0.87;
        return config;
    }
    if (name == "cnn") {
        config.model = "cnn";
        config.channels = {16, 32};
        config.hidden = {128};
        config.activation = Activation::relu;
        config.batch = 128;
        config.lr = 0.1;
        config.epochs = 12;
        config.target = 0.91;
        return config;
    }
    if (name == "resnet20" || name == "plain20") {
        config.model = name == "resnet20" ? "resnet" : "plain";
        config.depth = 20;
        config.width = 16;
        config.hidden.clear();
        config.activation = Activation::relu;
        config.batch = 128;
        config.lr = 0.1;
        config.momentum = 0.9;
        config.weight_decay = 5e-4;
        config.epochs = 15;
        config.schedule = LrSchedule::cosine(config.epochs);
        config.target = 0.93;
        return config;
    }
    throw std::invalid_argument("unknown preset '" + name +
                                "' (expected paper, deep, relu, cnn, resnet20 or plain20)");
}

std::string hidden_string(const std::vector<std::size_t>& hidden) {
    std::string text;
    for (std::size_t width : hidden)
        text += (text.empty() ? "" : ",") + std::to_string(width);
    return text;
}

bool is_resnet(const std::string& model) {
    return model == "resnet" || model == "plain";
}

std::string network_string(const TrainConfig& config) {
    if (is_resnet(config.model))
        return std::string(config.model == "resnet" ? "ResNet-" : "plain-") +
               std::to_string(config.depth) + " (width " + std::to_string(config.width) + ")";
    std::string text =
        config.model == "cnn" ? "conv " + hidden_string(config.channels) + " + " : "";
    text += hidden_string(config.hidden) + " " + to_string(config.activation);
    if (config.dropout > 0.0) text += ", dropout " + number_string(config.dropout);
    return text;
}

nlohmann::ordered_json to_json(const TrainConfig& config) {
    nlohmann::ordered_json json = {{"preset", config.preset},
                                   {"data", config.data_dir},
                                   {"label_column", config.label_column},
                                   {"standardize", config.standardize},
                                   {"model", config.model}};
    if (config.model == "cnn") json["channels"] = config.channels;
    if (is_resnet(config.model)) {
        json["depth"] = config.depth;
        json["width"] = config.width;
    }
    json.update(nlohmann::ordered_json{
        {"hidden", config.hidden},
        {"act", to_string(config.activation)},
        {"bn", config.norm.kind() == NormKind::batch ? "on" : "off"},
        {"optimizer", config.optimizer},
        {"lr", config.lr},
        {"schedule", config.schedule.text()},
        {"momentum", config.momentum},
        {"weight_decay", config.weight_decay},
        {"batch", config.batch},
        {"epochs", config.epochs},
        {"seed", config.seed},
        {"threads", config.threads},
        {"target", config.target},
        {"log", config.log_path.empty() ? nlohmann::ordered_json()
                                        : nlohmann::ordered_json(config.log_path)},
        {"probe", config.probe},
        {"probe_points", config.probe_points}});
    // Only when used, so that the logs of runs without it read as before.
    if (config.dropout > 0.0) json["dropout"] = config.dropout;
    if (config.task != "classification") {
        json["task"] = config.task;
        json["target_columns"] = config.target_columns;
    }
    if (config.label_smoothing > 0.0) json["label_smoothing"] = config.label_smoothing;
    if (config.validation_fraction > 0.0) json["validation_fraction"] = config.validation_fraction;
    if (config.early_stopping > 0) json["early_stopping"] = config.early_stopping;
    if (config.norm.kind() != NormKind::batch && config.norm.any())
        json["norm"] = config.norm.text();
    return json;
}

TrainConfig config_from_json(const nlohmann::ordered_json& json) {
    try {
        TrainConfig config;
        config.preset = json.at("preset").get<std::string>();
        config.data_dir = json.at("data").get<std::string>();
        // Logs and checkpoints from before CSV data have none: the default.
        if (json.contains("label_column"))
            config.label_column = json.at("label_column").get<std::string>();
        config.standardize = json.at("standardize").get<bool>();
        // Logs and checkpoints from before CNNs are MLPs.
        if (json.contains("model")) config.model = json.at("model").get<std::string>();
        if (config.model != "mlp" && config.model != "cnn" && !is_resnet(config.model))
            throw std::invalid_argument("unknown model '" + config.model + "'");
        if (json.contains("depth")) config.depth = integer_at<std::size_t>(json, "depth");
        if (json.contains("width")) config.width = integer_at<std::size_t>(json, "width");
        if (json.contains("channels")) {
            config.channels.clear();
            for (const auto& count : json.at("channels").get<std::vector<nlohmann::ordered_json>>())
                config.channels.push_back(as_integer<std::size_t>(count, "channels"));
        }
        config.hidden.clear();
        for (const auto& width : json.at("hidden").get<std::vector<nlohmann::ordered_json>>())
            config.hidden.push_back(as_integer<std::size_t>(width, "hidden"));
        config.activation = parse_activation(json.at("act").get<std::string>());
        config.norm = NormChoice(json.at("bn").get<std::string>() == "on");
        if (json.contains("norm"))
            config.norm = NormChoice::parse(json.at("norm").get<std::string>());
        config.optimizer = json.at("optimizer").get<std::string>();
        config.lr = json.at("lr").get<double>();
        // Logs and checkpoints from before schedules existed have none: constant.
        if (json.contains("schedule"))
            config.schedule = LrSchedule::parse(json.at("schedule").get<std::string>());
        config.momentum = json.at("momentum").get<double>();
        config.weight_decay = json.at("weight_decay").get<double>();
        config.batch = integer_at<std::size_t>(json, "batch");
        config.epochs = integer_at<int>(json, "epochs");
        config.seed = integer_at<std::uint64_t>(json, "seed");
        config.threads = integer_at<int>(json, "threads");
        config.target = json.at("target").get<double>();
        config.log_path = json.at("log").is_null() ? "" : json.at("log").get<std::string>();
        config.probe = json.at("probe").get<bool>();
        config.probe_points = integer_at<int>(json, "probe_points");
        if (json.contains("dropout")) config.dropout = json.at("dropout").get<double>();
        // Logs and checkpoints from before regression, label smoothing, validation sets and
        // early stopping have none of them.
        if (json.contains("task")) {
            config.task = json.at("task").get<std::string>();
            config.target_columns = json.at("target_columns").get<std::vector<std::string>>();
        }
        if (json.contains("label_smoothing"))
            config.label_smoothing = json.at("label_smoothing").get<double>();
        if (json.contains("validation_fraction"))
            config.validation_fraction = json.at("validation_fraction").get<double>();
        if (json.contains("early_stopping"))
            config.early_stopping = integer_at<int>(json, "early_stopping");
        config.distributed = json.contains("world_size");
        if (config.distributed) config.sync_bn = json.at("sync_bn").get<bool>();
        return config;
    } catch (const nlohmann::ordered_json::exception& error) {
        throw std::invalid_argument(std::string("configuration: ") + error.what());
    } catch (const std::runtime_error& error) {  // an integer that is not one
        throw std::invalid_argument(std::string("configuration: ") + error.what());
    } catch (const std::invalid_argument& error) {  // a schedule that is not one
        throw std::invalid_argument(std::string("configuration: ") + error.what());
    }
}

std::vector<std::string> TrainFlags::given() const {
    std::vector<std::string> names;
    for (const auto& [option, apply] : overrides_)
        if (option->count() > 0) names.push_back(option->get_name());
    return names;
}

CLI::Validator integer_at_least(long long least) {
    const std::string expected = least == 0   ? "a non-negative integer"
                                 : least == 1 ? "a positive integer"
                                              : "an integer of at least " + std::to_string(least);
    return CLI::Validator(
        [least, expected](std::string& text) -> std::string {
            long long value = 0;
            if (!parse_number(text, value) || value < least)
                return "expected " + expected + ", got '" + text + "'";
            text = std::to_string(value);  // without leading zeros, which CLI11 reads as octal
            return "";
        },
        least == 0   ? "NON-NEGATIVE"
        : least == 1 ? "POSITIVE"
                     : ">=" + std::to_string(least));
}

namespace {

// The comma-separated parts of `text`, empty ones too ("a,,b" has three).
std::vector<std::string> comma_parts(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        parts.push_back(text.substr(start, comma - start));
        if (comma == std::string::npos) return parts;
        start = comma + 1;
    }
}

CLI::Validator number_check(std::function<bool(double)> accept, const std::string& expected,
                            const std::string& description) {
    return CLI::Validator(
        [accept, expected](std::string& text) -> std::string {
            double value = 0.0;
            if (!parse_number(text, value) || !std::isfinite(value) || !accept(value))
                return "expected " + expected + ", got '" + text + "'";
            return "";
        },
        description);
}

}  // namespace

CLI::Validator finite_number(bool zero_allowed) {
    if (zero_allowed)
        return number_check([](double value) { return value >= 0.0; }, "a finite number >= 0",
                            "NON-NEGATIVE");
    return number_check([](double value) { return value > 0.0; }, "a finite number > 0",
                        "POSITIVE");
}

CLI::Validator fraction() {
    return number_check([](double value) { return value >= 0.0 && value <= 1.0; },
                        "a number from 0 to 1", "0..1");
}

CLI::Validator learning_rate_list() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            if (text.empty()) return "expected a comma-separated list of learning rates, got ''";
            const CLI::Validator positive = finite_number(false);
            // Each part, empty ones too ("0.1,,1" and a trailing comma are errors).
            for (std::string part : comma_parts(text)) {
                const std::string error = positive(part);
                if (!error.empty()) return error;
            }
            return std::string();
        },
        "LR[,LR…]");
}

CLI::Validator norm_check(bool list) {
    return CLI::Validator(
        [list](std::string& text) {
            try {
                for (const std::string& part : list ? comma_parts(text) : std::vector{text})
                    NormChoice::parse(part);
                return std::string();
            } catch (const std::invalid_argument& error) {
                return std::string(error.what());
            }
        },
        list ? "NORM[,NORM…]" : "NORM");
}

CLI::Validator schedule_check() {
    return CLI::Validator(
        [](std::string& text) {
            try {
                LrSchedule::parse(text);
                return std::string();
            } catch (const std::invalid_argument& error) {
                return std::string(error.what());
            }
        },
        "SCHEDULE");
}

TrainFlags::TrainFlags(CLI::App& app, bool lists) {
    app.add_option("--preset", preset_,
                   "Starting configuration, which the flags below override:\n"
                   "paper: 3 x 100 sigmoid, batch 60, lr 0.5, target 0.85 (the BN paper's MNIST "
                   "network)\ndeep: 6 x 100 sigmoid, otherwise as paper\n"
                   "relu: 2 x 256 ReLU, batch 128, lr 0.1, target 0.87\n"
                   "cnn: two blocks Conv3x3 (16, 32 channels) -> BN -> ReLU -> MaxPool2, then "
                   "128 ReLU, batch 128, lr 0.1, 12 epochs, target 0.91\n"
                   "resnet20: ResNet-20, width 16, batch 128, lr 0.1 with momentum 0.9, weight "
                   "decay 5e-4 and a cosine schedule over 15 epochs, target 0.93\n"
                   "plain20: resnet20 without shortcuts\n"
                   "The others use plain SGD, and 10 epochs unless said.")
        ->check(CLI::IsMember(preset_names()))
        ->capture_default_str();
    overrides(app.add_option("--data", given_.data_dir,
                             "Data folder: the four IDX files of Fashion-MNIST or MNIST, gzip'd "
                             "or plain, or train.csv and test.csv (a row per sample: numeric "
                             "features and an integer label) [default: " +
                                 std::string(kFashionMnistDir) + "]")
                  ->check(CLI::ExistingDirectory),
              [this](TrainConfig& c) { c.data_dir = given_.data_dir; });
    overrides(app.add_option("--label-column", given_.label_column,
                             "CSV data: the label's column, by its name in the header line or "
                             "by its index from 0 [default: label]"),
              [this](TrainConfig& c) { c.label_column = given_.label_column; });
    overrides(app.add_option("--task", given_.task,
                             "classification (softmax cross-entropy on the labels) or "
                             "regression (mean squared error on --target-columns of CSV data; "
                             "the log reports R² and the RMSE) [default: classification]")
                  ->check(CLI::IsMember({"classification", "regression"})),
              [this](TrainConfig& c) { c.task = given_.task; });
    overrides(app.add_option("--target-columns", given_.target_columns,
                             "CSV data, --task regression: the target value columns, by name "
                             "or index from 0, comma-separated")
                  ->delimiter(','),
              [this](TrainConfig& c) { c.target_columns = given_.target_columns; });
    overrides(app.add_option("--label-smoothing", given_.label_smoothing,
                             "Classification: label smoothing in [0, 1) (PyTorch's) "
                             "[default: 0]")
                  ->check(CLI::Range(0.0, 0.999999)),
              [this](TrainConfig& c) { c.label_smoothing = given_.label_smoothing; });
    overrides(app.add_option("--validation-fraction", given_.validation_fraction,
                             "Hold out this fraction of the training set to judge the epochs "
                             "on; the test set is then measured once, at the end [default: 0]")
                  ->check(CLI::Range(0.0, 0.999999)),
              [this](TrainConfig& c) { c.validation_fraction = given_.validation_fraction; });
    overrides(app.add_option("--early-stopping", given_.early_stopping,
                             "Stop after this many epochs without a lower validation loss (test "
                             "loss without a validation set) [default: 0, never]")
                  ->transform(integer_at_least(0)),
              [this](TrainConfig& c) { c.early_stopping = given_.early_stopping; });
    overrides(app.add_flag("--standardize", given_.standardize,
                           "Standardize the inputs with the training set's statistics: pixels "
                           "with one mean and standard deviation (else only scaled to [0, 1]), "
                           "CSV features each column with its own (else used as read)"),
              [this](TrainConfig& c) { c.standardize = given_.standardize; });
    overrides(app.add_option("--model", model_,
                             "mlp; cnn: convolution blocks before the hidden Dense layers; "
                             "resnet: a residual network of --depth and --width (He et al.'s "
                             "CIFAR layout); plain: the same without shortcuts. All but mlp need "
                             "image data (IDX files) [default: mlp]")
                  ->check(CLI::IsMember({"mlp", "cnn", "resnet", "plain"})),
              [this](TrainConfig& c) { c.model = model_; });
    overrides(app.add_option("--depth", depth_,
                             "resnet, plain: layers with weights, 6n + 2 (8, 14, 20, 32, 44, "
                             "56, …) [default: 20]")
                  ->transform(integer_at_least(8))
                  ->check(CLI::Validator(
                      [](std::string& text) -> std::string {
                          return (std::stoul(text) - 2) % 6 == 0
                                     ? ""
                                     : "expected 6n + 2 (8, 14, 20, 32, 44, 56, …), got " + text;
                      },
                      "6n+2")),
              [this](TrainConfig& c) { c.depth = depth_; });
    overrides(app.add_option("--width", width_,
                             "resnet, plain: channels of the first stage; the second and third "
                             "have 2x and 4x [default: 16]")
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.width = width_; });
    overrides(app.add_option("--channels", given_.channels,
                             "cnn: channels of each Conv3x3 -> BN -> act -> MaxPool2 block, "
                             "comma-separated, e.g. 16,32")
                  ->delimiter(',')
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.channels = given_.channels; });
    overrides(app.add_option("--hidden", given_.hidden,
                             "Hidden layer widths, comma-separated, e.g. 100,100,100")
                  ->delimiter(',')
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.hidden = given_.hidden; });
    overrides(app.add_option("--dropout", given_.dropout,
                             "Dropout probability after each hidden Dense block's activation; 0 "
                             "for none [default: 0]")
                  ->check(fraction()),
              [this](TrainConfig& c) { c.dropout = given_.dropout; });
    overrides(app.add_option("--act", activation_, "Hidden activation: relu, sigmoid or tanh")
                  ->check(CLI::IsMember({"relu", "sigmoid", "tanh"})),
              [this](TrainConfig& c) { c.activation = parse_activation(activation_); });
    CLI::Option* batchnorm = app.add_option(
        "--bn", batchnorm_,
        "BatchNorm after every Conv2d and hidden Dense layer: on or off [default: on]");
    overrides(batchnorm->check(CLI::IsMember({"on", "off"})),
              [this](TrainConfig& c) { c.norm = NormChoice(batchnorm_ == "on"); });
    overrides(app.add_option("--norm", norm_,
                             std::string(lists ? "Normalizations to compare, comma-separated, "
                                                 "each run for every seed [default: batch,none]"
                                               : "The normalization in BatchNorm's places "
                                                 "[default: batch]") +
                                 ": batch (BatchNorm), renorm (Batch Renormalization), group[:G] "
                                 "(GroupNorm, 32 groups or as many as divide the channels), "
                                 "layer (LayerNorm over the whole sample), instance "
                                 "(InstanceNorm2d with gamma and beta; after convolutions only) "
                                 "or none")
                  ->check(norm_check(lists))
                  ->excludes(batchnorm),
              [this](TrainConfig& c) { c.norm = norms().front(); });
    overrides(app.add_option("--optimizer", given_.optimizer, "sgd or adam [default: sgd]")
                  ->check(CLI::IsMember({"sgd", "adam"})),
              [this](TrainConfig& c) { c.optimizer = given_.optimizer; });
    if (lists)
        overrides(app.add_option("--lr", learning_rates_text_,
                                 "Learning rates, comma-separated: every rate is run for each "
                                 "variant and seed, and a stability table and a plot of final "
                                 "accuracy against the rate follow (e.g. 0.1,0.5,1,2,4)")
                      ->check(learning_rate_list()),
                  [this](TrainConfig& c) { c.lr = learning_rates().front(); });
    else
        overrides(app.add_option("--lr", given_.lr, "Learning rate")->check(finite_number(false)),
                  [this](TrainConfig& c) { c.lr = given_.lr; });
    overrides(app.add_option("--schedule", schedule_,
                             "Learning rate per epoch, as PyTorch's schedulers stepped once an "
                             "epoch: constant, step:STEP_SIZE[:GAMMA] (StepLR, gamma 0.1 by "
                             "default) or cosine:T_MAX[:ETA_MIN] (CosineAnnealingLR) "
                             "[default: constant]")
                  ->check(schedule_check()),
              [this](TrainConfig& c) { c.schedule = LrSchedule::parse(schedule_); });
    overrides(app.add_option("--momentum", given_.momentum, "SGD momentum [default: 0]")
                  ->check(finite_number(true)),
              [this](TrainConfig& c) { c.momentum = given_.momentum; });
    overrides(app.add_option("--weight-decay", given_.weight_decay,
                             "L2 weight decay added to the gradient [default: 0]")
                  ->check(finite_number(true)),
              [this](TrainConfig& c) { c.weight_decay = given_.weight_decay; });
    overrides(app.add_option("--batch", given_.batch,
                             "Mini-batch size. Training drops the last partial batch of each "
                             "epoch (Fashion-MNIST's 60000 images divide evenly by 60 and "
                             "leave 96 out at 128); evaluation uses every test image.")
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.batch = given_.batch; });
    overrides(app.add_option("--epochs", given_.epochs, "Passes over the training set")
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.epochs = given_.epochs; });
    overrides(app.add_option("--seed", given_.seed,
                             "Seed of the weights' initialization and the shuffling [default: 1]")
                  ->transform(integer_at_least(0)),
              [this](TrainConfig& c) { c.seed = given_.seed; });
    overrides(app.add_option("--threads", given_.threads,
                             "Threads for the matrix products; 0 takes OpenBLAS's default "
                             "count (OPENBLAS_NUM_THREADS, else one per core) [default: 0]")
                  ->transform(integer_at_least(0)),
              [this](TrainConfig& c) { c.threads = given_.threads; });
    overrides(app.add_flag("--probe", given_.probe,
                           "Log, a few times per epoch, the 15th, 50th and 85th percentiles of "
                           "each hidden layer's activation input over 500 test images (eval "
                           "mode) and its weight gradient's norm, as in the BN paper's Figure 1"),
              [this](TrainConfig& c) { c.probe = given_.probe; });
    overrides(app.add_option("--probe-points", given_.probe_points, "Probe points per epoch")
                  ->transform(integer_at_least(1)),
              [this](TrainConfig& c) { c.probe_points = given_.probe_points; });
    overrides(app.add_option("--target", given_.target,
                             "Test accuracy to reach; the log records the first epoch at or "
                             "above it")
                  ->check(fraction()),
              [this](TrainConfig& c) { c.target = given_.target; });
}

void TrainFlags::overrides(CLI::Option* option, std::function<void(TrainConfig&)> apply) {
    overrides_.emplace_back(option, std::move(apply));
}

std::vector<double> TrainFlags::learning_rates() const {
    if (learning_rates_text_.empty()) return {resolve().lr};
    std::vector<double> rates;
    for (const std::string& part : comma_parts(learning_rates_text_))
        rates.push_back(std::stod(part));  // checked by learning_rate_list()
    return rates;
}

std::vector<NormChoice> TrainFlags::norms() const {
    if (norm_.empty()) return {resolve().norm};
    std::vector<NormChoice> norms;
    for (const std::string& part : comma_parts(norm_))
        norms.push_back(NormChoice::parse(part));  // checked by norm_check()
    return norms;
}

TrainConfig TrainFlags::resolve() const {
    TrainConfig config = preset_config(preset_);
    const TrainConfig preset = config;
    for (const auto& [option, apply] : overrides_)
        if (option->count() > 0) apply(config);
    const std::vector<std::string> flags = given();
    const auto was_given = [&flags](const std::string& flag) {
        return std::find(flags.begin(), flags.end(), flag) != flags.end();
    };
    // A preset's cosine schedule spans its run: over the epochs given, unless one is given.
    if (config.epochs != preset.epochs && !was_given("--schedule") &&
        preset.schedule.kind() == LrSchedule::Kind::cosine)
        config.schedule = LrSchedule::cosine(config.epochs);
    if (is_resnet(config.model)) {
        // A residual network's head is global pooling and one Dense, and its blocks use ReLU.
        if (was_given("--hidden") || was_given("--channels") || was_given("--dropout"))
            throw std::invalid_argument(
                "--model " + config.model +
                ": --hidden, --channels and --dropout do not apply (use --depth and --width)");
        if (was_given("--act") && config.activation != Activation::relu)
            throw std::invalid_argument("--model " + config.model + ": its blocks use ReLU");
        config.hidden.clear();
        config.activation = Activation::relu;
    }
    if (config.model == "mlp") check_norm_without_images(config.norm, config.model);
    return config;
}

}  // namespace bnlab
