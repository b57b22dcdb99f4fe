// The experiment layer behind train, compare_bn and curves: flags over presets, the trainer's
// JSONL log (schema, determinism, divergence), reading logs back, the comparison table, and the
// gnuplot curves.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <fstream>
#include <limits>

#include <xtensor/xview.hpp>

#include "experiment_helpers.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/experiment/probe.hpp"
#include "framework/experiment/report.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

TrainConfig parse_flags(const std::string& command_line) {
    CLI::App app;
    TrainFlags flags(app);
    app.parse(command_line);
    return flags.resolve();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("Presets, and flags given over them") {
    const TrainConfig paper = preset_config("paper");
    CHECK(paper.hidden == std::vector<std::size_t>{100, 100, 100});
    CHECK(paper.activation == Activation::sigmoid);
    CHECK(paper.batch == 60);
    CHECK(paper.lr == 0.5);
    CHECK(paper.target == 0.85);
    CHECK(paper.optimizer == "sgd");
    CHECK(paper.momentum == 0.0);
    CHECK(preset_config("deep").hidden == std::vector<std::size_t>(6, 100));
    const TrainConfig relu = preset_config("relu");
    CHECK(relu.hidden == std::vector<std::size_t>{256, 256});
    CHECK(relu.activation == Activation::relu);
    CHECK(relu.batch == 128);
    CHECK(relu.lr == 0.1);
    CHECK(relu.target == 0.87);
    CHECK(message_of([] { preset_config("huge"); }) ==
          "unknown preset 'huge' (expected paper, deep, relu, cnn, resnet20 or plain20)");

    CHECK(parse_flags("").hidden == paper.hidden);
    const TrainConfig custom = parse_flags(
        "--preset relu --lr 0.05 --bn off --hidden 64,32 --act tanh --seed 7 "
        "--optimizer adam --momentum 0.9 --weight-decay 1e-4 --epochs 3 --threads 1 "
        "--target 0.5 --standardize");
    CHECK(custom.preset == "relu");
    CHECK(custom.batch == 128);  // from the preset
    CHECK(custom.lr == 0.05);
    CHECK(custom.norm == NormChoice(false));
    CHECK(custom.hidden == std::vector<std::size_t>{64, 32});
    CHECK(custom.activation == Activation::tanh);
    CHECK(custom.seed == 7);
    CHECK(custom.optimizer == "adam");
    CHECK(custom.momentum == 0.9);
    CHECK(custom.weight_decay == 1e-4);
    CHECK(custom.epochs == 3);
    CHECK(custom.threads == 1);
    CHECK(custom.target == 0.5);
    CHECK(custom.standardize);

    // The deep networks' presets: SGD with momentum, weight decay and a cosine schedule over
    // the run, which an --epochs given stretches.
    const TrainConfig resnet20 = preset_config("resnet20");
    CHECK(resnet20.model == "resnet");
    CHECK(resnet20.depth == 20);
    CHECK(resnet20.width == 16);
    CHECK(resnet20.hidden.empty());
    CHECK(resnet20.momentum == 0.9);
    CHECK(resnet20.weight_decay == 5e-4);
    CHECK(resnet20.schedule.text() == "cosine:15:0");
    CHECK(network_string(resnet20) == "ResNet-20 (width 16)");
    CHECK(preset_config("plain20").model == "plain");
    const TrainConfig shorter = parse_flags("--preset plain20 --epochs 4 --depth 8 --width 4");
    CHECK(shorter.schedule.text() == "cosine:4:0");
    CHECK(network_string(shorter) == "plain-8 (width 4)");
    CHECK(parse_flags("--preset resnet20 --epochs 4 --schedule constant").schedule.text() ==
          "constant");
    // --model resnet over an MLP preset drops its hidden layers and takes ReLU.
    const TrainConfig over_paper = parse_flags("--model resnet --depth 14");
    CHECK(over_paper.hidden.empty());
    CHECK(over_paper.activation == Activation::relu);
    CHECK(config_from_json(to_json(shorter)).depth == 8);
    CHECK(config_from_json(to_json(shorter)).width == 4);
}

TEST_CASE("--norm chooses the normalization, --bn on and off keep their meaning") {
    CHECK(parse_flags("").norm.kind() == NormKind::batch);
    CHECK(parse_flags("--bn on").norm.kind() == NormKind::batch);
    CHECK(parse_flags("--bn off").norm.kind() == NormKind::none);
    CHECK(parse_flags("--preset cnn --norm group:4").norm == NormChoice(NormKind::group, 4));
    CHECK(parse_flags("--preset cnn --norm group").norm == NormChoice(NormKind::group));
    CHECK(parse_flags("--preset cnn --norm instance").norm.kind() == NormKind::instance);
    CHECK(parse_flags("--norm layer").norm.kind() == NormKind::layer);
    CHECK(parse_flags("--norm renorm").norm.kind() == NormKind::renorm);
    CHECK(parse_flags("--norm none").norm.kind() == NormKind::none);

    // The log: "bn" as before, and "norm" only for the normalizations that are not BatchNorm
    // or none; both read back.
    TrainConfig config = preset_config("cnn");
    CHECK(to_json(config).at("bn") == "on");
    CHECK(!to_json(config).contains("norm"));
    config.norm = NormChoice(false);
    CHECK(to_json(config).at("bn") == "off");
    CHECK(!to_json(config).contains("norm"));
    CHECK(config_from_json(to_json(config)).norm == NormChoice(false));
    for (const char* text : {"group:4", "group", "layer", "instance", "renorm"}) {
        CAPTURE(text);
        config.norm = NormChoice::parse(text);
        CHECK(to_json(config).at("bn") == "off");
        CHECK(to_json(config).at("norm") == text);
        CHECK(config_from_json(to_json(config)).norm == config.norm);
    }
    Json json = to_json(config);
    json["norm"] = "batch-renorm";
    CHECK(message_of([&] { config_from_json(json); }) ==
          "configuration: unknown normalization 'batch-renorm' (expected batch, renorm, group, "
          "group:G, layer, instance or none)");

    auto error_of = [](const std::string& command_line) {
        return message_of([&] { parse_flags(command_line); });
    };
    CHECK(error_of("--norm weight") ==
          "--norm: unknown normalization 'weight' (expected batch, renorm, group, group:G, layer, "
          "instance or none)");
    CHECK(error_of("--norm group:0") ==
          "--norm: normalization 'group:0': the group count must be a positive integer");
    CHECK(error_of("--norm group:x") ==
          "--norm: normalization 'group:x': the group count must be a positive integer");
    CHECK(error_of("--norm layer --bn off") == "--bn excludes --norm");
    CHECK(error_of("--norm instance") ==
          "instance normalization normalizes each channel of an image over its positions, and "
          "the mlp model's features have none: use batch, renorm, group, layer or none");
    // compare_bn's lists.
    CLI::App app;
    TrainFlags flags(app, /*lists=*/true);
    app.parse("--preset cnn --norm batch,group:8,none");
    CHECK(flags.norms() == std::vector<NormChoice>{NormChoice(true), NormChoice(NormKind::group, 8),
                                                   NormChoice(false)});
    CHECK(flags.resolve().norm == NormChoice(true));
    CLI::App bad_app;
    TrainFlags bad_flags(bad_app, /*lists=*/true);
    CHECK(message_of([&] { bad_app.parse("--norm batch,,none"); }) ==
          "--norm: unknown normalization '' (expected batch, renorm, group, group:G, layer, "
          "instance or none)");
}

TEST_CASE("Bad flags are errors naming the flag and what it expects") {
    auto error_of = [](const std::string& command_line) {
        return message_of([&] { parse_flags(command_line); });
    };
    CHECK(error_of("--bn maybe").find("--bn: maybe not in {on,off}") == 0);
    CHECK(error_of("--act softplus").find("--act: softplus not in {relu,sigmoid,tanh}") == 0);
    CHECK(error_of("--preset huge")
              .find("--preset: huge not in {paper,deep,relu,cnn,resnet20,plain20}") == 0);
    CHECK(error_of("--optimizer rmsprop").find("--optimizer: rmsprop not in {sgd,adam}") == 0);
    CHECK(error_of("--data /no/such/folder") ==
          "--data: Directory does not exist: /no/such/folder");
    CHECK(error_of("--batch 0") == "--batch: expected a positive integer, got '0'");
    CHECK(error_of("--batch -5") == "--batch: expected a positive integer, got '-5'");
    CHECK(error_of("--batch ten") == "--batch: expected a positive integer, got 'ten'");
    CHECK(error_of("--batch 1.5") == "--batch: expected a positive integer, got '1.5'");
    CHECK(error_of("--epochs 0") == "--epochs: expected a positive integer, got '0'");
    CHECK(error_of("--epochs -3") == "--epochs: expected a positive integer, got '-3'");
    CHECK(error_of("--lr -1") == "--lr: expected a finite number > 0, got '-1'");
    CHECK(error_of("--lr 0") == "--lr: expected a finite number > 0, got '0'");
    CHECK(error_of("--lr fast") == "--lr: expected a finite number > 0, got 'fast'");
    CHECK(error_of("--lr nan") == "--lr: expected a finite number > 0, got 'nan'");
    CHECK(error_of("--lr 1e999") == "--lr: expected a finite number > 0, got '1e999'");
    CHECK(error_of("--momentum -0.5") == "--momentum: expected a finite number >= 0, got '-0.5'");
    CHECK(error_of("--weight-decay inf") ==
          "--weight-decay: expected a finite number >= 0, got 'inf'");
    CHECK(error_of("--depth 10") == "--depth: expected 6n + 2 (8, 14, 20, 32, 44, 56, …), got 10");
    CHECK(error_of("--depth 2") == "--depth: expected an integer of at least 8, got '2'");
    CHECK(error_of("--width 0") == "--width: expected a positive integer, got '0'");
    CHECK(error_of("--preset resnet20 --hidden 64") ==
          "--model resnet: --hidden, --channels and --dropout do not apply (use --depth and "
          "--width)");
    CHECK(error_of("--preset plain20 --act tanh") == "--model plain: its blocks use ReLU");
    CHECK(error_of("--hidden 100,abc") == "--hidden: expected a positive integer, got 'abc'");
    CHECK(error_of("--hidden 100,0") == "--hidden: expected a positive integer, got '0'");
    CHECK(error_of("--hidden ,").find("--hidden: 1 required") == 0);
    CHECK(error_of("--seed -1") == "--seed: expected a non-negative integer, got '-1'");
    CHECK(error_of("--threads two") == "--threads: expected a non-negative integer, got 'two'");
    CHECK(error_of("--probe-points 0") == "--probe-points: expected a positive integer, got '0'");
    CHECK(error_of("--target 2") == "--target: expected a number from 0 to 1, got '2'");
    CHECK(error_of("--target nan") == "--target: expected a number from 0 to 1, got 'nan'");
    CHECK(error_of("--unknown 1").find("--unknown") != std::string::npos);
}

TEST_CASE("Integer flags are decimal: a leading zero is not octal") {
    CHECK(parse_flags("--epochs 010").epochs == 10);
    CHECK(parse_flags("--hidden 08,016").hidden == std::vector<std::size_t>{8, 16});
}

TEST_CASE("The help says that training drops the last partial batch") {
    CLI::App app;
    TrainFlags flags(app);
    CHECK(app.help().find("drops the last partial batch") != std::string::npos);
}

TEST_CASE("Standardization uses the training set's statistics for both sets") {
    Dataset train{Matrix<float>{{0.f, 2.f}, {4.f, 6.f}}, Labels{0, 1}};
    Dataset test{Matrix<float>{{3.f, 3.f}}, Labels{0}};
    const Standardization applied = standardize(train, test);
    CHECK(applied.mean == doctest::Approx(3.0));
    CHECK(applied.std == doctest::Approx(std::sqrt(5.0)));
    CHECK(train.inputs(0, 0) == doctest::Approx(-3.0 / std::sqrt(5.0)));
    CHECK(train.inputs(1, 1) == doctest::Approx(3.0 / std::sqrt(5.0)));
    CHECK(test.inputs(0, 0) == doctest::Approx(0.0));
    Dataset constant{Matrix<float>{{1.f}, {1.f}}, Labels{0, 1}};
    CHECK(message_of([&] { standardize(constant, test); }) ==
          "standardize: the training inputs are constant");
}

TEST_CASE("train --standardize: CSV features column by column, as scikit-learn's StandardScaler") {
    TrainConfig config;
    config.data_dir = BNLAB_TEST_DATA_DIR "/diabetes";
    config.task = "regression";
    config.target_columns = {"progression"};
    config.standardize = true;
    const PreparedData prepared = load_data(config);
    config.standardize = false;
    const PreparedData raw = load_data(config);
    const Json& applied = prepared.description.at("standardization");
    CHECK(applied.at("per") == "column");
    const std::size_t features = raw.sets.train.inputs.shape(1);
    REQUIRE(applied.at("mean").size() == features);
    REQUIRE(applied.at("std").size() == features);
    CHECK(raw.description.at("standardization").is_null());
    const Matrix<float>& train = prepared.sets.train.inputs;
    for (std::size_t j = 0; j < features; ++j) {
        CAPTURE(j);
        const auto column = xt::view(train, xt::all(), j);
        // each training column to mean 0 and (biased) standard deviation 1
        CHECK(double(xt::mean(column)()) == doctest::Approx(0.0).scale(1.0).epsilon(1e-6));
        CHECK(double(xt::stddev(column)()) == doctest::Approx(1.0).epsilon(1e-5));
        // the test set with the training set's statistics
        const double mean = applied.at("mean")[j], deviation = applied.at("std")[j];
        CHECK(prepared.sets.test.inputs(3, j) ==
              doctest::Approx((raw.sets.test.inputs(3, j) - mean) / deviation).epsilon(1e-6));
    }
    // The columns' scales differ (age in years, blood pressure in mm Hg, ...): one mean and
    // deviation over all would leave them apart.
    CHECK(double(applied.at("std")[0]) != doctest::Approx(double(applied.at("std")[2])));
}

TEST_CASE("The JSONL log: a config line, one line per epoch, a final line") {
    QuietLogs quiet;
    TempDir dir;
    const SmallProblem data = small_problem();
    const TrainConfig config = small_config(dir / "run.jsonl");
    const RunResult result =
        train_model(config, data.train, data.test, {"", {{"command", "test"}}});
    const std::vector<Json> lines = read_lines(config.log_path);
    REQUIRE(lines.size() == 5);

    const Json& header = lines[0];
    CHECK(header.at("type") == "config");
    CHECK(header.at("command") == "test");
    std::vector<std::string> flags;
    for (const auto& item : header.at("config").items())
        flags.push_back(item.key());
    CHECK(flags == std::vector<std::string>{"preset",       "data",   "label_column", "standardize",
                                            "model",        "hidden", "act",          "bn",
                                            "optimizer",    "lr",     "schedule",     "momentum",
                                            "weight_decay", "batch",  "epochs",       "seed",
                                            "threads",      "target", "log",          "probe",
                                            "probe_points"});
    CHECK(header.at("config").at("hidden") == Json{16, 16});
    CHECK(header.at("config").at("bn") == "on");
    CHECK(header.at("model").at("layers").size() == 7);
    CHECK(header.at("model").at("layers")[1] == "BatchNorm(16, eps=1e-05, momentum=0.1)");
    CHECK(header.at("model").at("parameters") ==
          (12 * 16 + 16) + 32 + (16 * 16 + 16) + 32 + (16 * 4 + 4));
    CHECK(header.at("model").at("summary").get<std::string>().find("Trainable parameters") !=
          std::string::npos);
    for (const char* library : {"bnlab", "xtensor", "xtensor-blas", "openblas", "spdlog",
                                "nlohmann_json", "cli11", "zlib", "compiler"})
        CHECK_MESSAGE(!header.at("versions").at(library).get<std::string>().empty(), library);
    CHECK(header.at("threads").at("bnlab").get<int>() >= 1);
    CHECK(header.at("threads").at("openblas").get<int>() == 1);
    CHECK(!header.at("threads").at("openblas_core").get<std::string>().empty());
    CHECK(!header.at("started").get<std::string>().empty());

    const long steps_per_epoch = 720 / 24;
    for (int epoch = 1; epoch <= 3; ++epoch) {
        const Json& line = lines[std::size_t(epoch)];
        CAPTURE(line.dump());
        CHECK(line.at("type") == "epoch");
        CHECK(line.at("epoch") == epoch);
        CHECK(line.at("step") == epoch * steps_per_epoch);
        for (const char* field : {"train_loss", "train_acc", "test_loss", "test_acc", "lr",
                                  "seconds", "samples_per_s", "eval_seconds"})
            CHECK_MESSAGE(line.at(field).is_number(), field);
        CHECK(line.at("lr") == 0.5);
        CHECK(line.at("test_acc").get<double>() >= 0.0);
        CHECK(line.at("test_acc").get<double>() <= 1.0);
        CHECK(line.at("samples_per_s").get<double>() > 0.0);
        CHECK(line.at("test_acc") == result.epochs[std::size_t(epoch - 1)].test_acc);
    }
    // The loss falls on this easy problem.
    CHECK(lines[3].at("train_loss").get<double>() < lines[1].at("train_loss").get<double>());

    const Json& final = lines[4];
    CHECK(final.at("type") == "final");
    CHECK(final.at("status") == "completed");
    CHECK(final.at("diverged_at").is_null());
    CHECK(final.at("target") == 0.6);
    double best = 0.0;
    int best_epoch = 0;
    Json first_reached;  // null until an epoch reaches the target
    for (int epoch = 1; epoch <= 3; ++epoch) {
        const double accuracy = lines[std::size_t(epoch)].at("test_acc").get<double>();
        if (accuracy > best) best = accuracy, best_epoch = epoch;
        if (first_reached.is_null() && accuracy >= 0.6) first_reached = epoch;
    }
    CHECK(final.at("epochs_to_target") == first_reached);
    CHECK(final.at("best_test_acc") == best);
    CHECK(final.at("best_epoch") == best_epoch);
    CHECK(final.at("final_test_acc") == lines[3].at("test_acc"));

    // Reading it back gives the same numbers.
    const RunLog log = read_run_log(config.log_path);
    REQUIRE(log.epochs.size() == 3);
    CHECK(log.epochs[2].test_loss == lines[3].at("test_loss").get<double>());
    CHECK(log.outcome().best_test_acc == best);
    CHECK(log.outcome().epochs_to_target == result.outcome.epochs_to_target);
}

TEST_CASE("The same seed gives identical JSONL numbers, another seed does not") {
    QuietLogs quiet;
    TempDir dir;
    const SmallProblem data = small_problem();
    auto run = [&](std::uint64_t seed, const std::string& name) {
        TrainConfig config = small_config(dir / "same.jsonl");
        config.seed = seed;
        train_model(config, data.train, data.test);
        std::filesystem::rename(config.log_path, dir / name);
        return without_timing(read_lines(dir / name));
    };
    const std::vector<Json> first = run(5, "a.jsonl"), second = run(5, "b.jsonl");
    REQUIRE(first.size() == 5);
    CHECK(first == second);
    const std::vector<Json> other = run(6, "c.jsonl");
    CHECK(other[1].at("train_loss") != first[1].at("train_loss"));
}

TEST_CASE("A run whose loss stops being finite stops cleanly and is logged as diverged") {
    QuietLogs quiet;
    TempDir dir;
    SmallProblem data = small_problem();
    TrainConfig config = small_config(dir / "diverged.jsonl");
    config.epochs = 4;
    // One sample poisoned with NaN: the first batch that holds it (in epoch 1) has a NaN loss.
    data.train.inputs(100, 3) = std::numeric_limits<float>::quiet_NaN();
    // The step whose batch holds that sample: the same seed draws the same initial weights and
    // then the same shuffle as the trainer's.
    long poisoned_step = 0;
    {
        Rng rng(config.seed);
        mlp(12, config.hidden, 4, config.activation, config.norm, rng);
        BatchLoader batches(data.train, config.batch, &rng, true);
        batches.start_epoch();  // as the trainer does at every epoch
        for (long step = 1; poisoned_step == 0 && batches.next(); ++step)
            for (float value : batches.inputs())
                if (std::isnan(value)) poisoned_step = step;
    }
    REQUIRE(poisoned_step > 0);
    REQUIRE(poisoned_step < 30);  // not the epoch's last step, where the test loss is NaN too
    const RunResult result = train_model(config, data.train, data.test);
    REQUIRE(result.outcome.divergence.has_value());
    CHECK(result.outcome.divergence->epoch == 1);
    CHECK(result.outcome.divergence->step == poisoned_step);
    CHECK(result.epochs.empty());
    CHECK(!result.outcome.epochs_to_target);

    const std::vector<Json> lines = read_lines(config.log_path);
    REQUIRE(lines.size() == 2);  // config and final: no epoch finished
    CHECK(lines[1].at("status") == "diverged");
    CHECK(lines[1].at("diverged_at").at("epoch") == 1);
    CHECK(lines[1].at("diverged_at").at("step") == result.outcome.divergence->step);
    CHECK(lines[1].at("epochs_to_target").is_null());

    // A learning rate that blows the weights up diverges later, after whole epochs are logged.
    TrainConfig blowing_up = small_config(dir / "lr.jsonl");
    blowing_up.norm = NormChoice(false);
    blowing_up.activation = Activation::relu;
    blowing_up.lr = 1e30;
    blowing_up.epochs = 3;
    const RunResult blown = train_model(blowing_up, small_problem().train, small_problem().test);
    REQUIRE(blown.outcome.divergence.has_value());
    for (const EpochStats& epoch : blown.epochs)
        CHECK(std::isfinite(epoch.test_loss));

    // The comparison counts the diverged run as not having reached the target.
    TrainConfig healthy = small_config(dir / "healthy.jsonl");
    healthy.seed = 2;
    healthy.epochs = 4;
    train_model(healthy, small_problem().train, small_problem().test);
    std::vector<RunLog> logs{read_run_log(config.log_path), read_run_log(healthy.log_path)};
    const std::vector<Variant> variants = group_variants(logs);
    REQUIRE(variants.size() == 1);  // differing only in seed: one variant, two runs
    const std::vector<std::vector<std::string>> rows = comparison_rows(variants);
    REQUIRE(rows.size() == 2);
    CHECK(rows[1][4].find("of 2 (1 diverged)") != std::string::npos);
}

TEST_CASE("Variants are told apart by the fields that differ, and summarized as mean ± sd") {
    auto log_of = [](const std::string& bn, int seed, std::vector<double> accuracies) {
        RunLog log;
        log.path = "bn-" + bn + "-" + std::to_string(seed) + ".jsonl";
        log.header = {
            {"type", "config"},
            {"config", {{"hidden", {100, 100}}, {"bn", bn}, {"seed", seed}, {"target", 0.85}}}};
        for (std::size_t i = 0; i < accuracies.size(); ++i) {
            EpochStats epoch;
            epoch.epoch = int(i + 1);
            epoch.test_acc = accuracies[i];
            epoch.train_loss = 1.0 / double(i + 1);
            epoch.seconds = 2.0;
            log.epochs.push_back(epoch);
        }
        return log;
    };
    const std::vector<RunLog> logs{
        log_of("on", 1, {0.80, 0.86, 0.84}), log_of("off", 1, {0.70, 0.75, 0.80}),
        log_of("on", 2, {0.81, 0.83, 0.87}), log_of("off", 2, {0.72, 0.78, 0.86})};
    const std::vector<Variant> variants = group_variants(logs);
    REQUIRE(variants.size() == 2);
    CHECK(variants[0].label == "bn=on");
    CHECK(variants[1].label == "bn=off");
    CHECK(variants[0].runs.size() == 2);
    const std::vector<std::vector<std::string>> rows = comparison_rows(variants);
    CHECK(rows[0] == std::vector<std::string>{"variant", "runs", "target", "epochs to target",
                                              "reached", "best test acc", "final test acc",
                                              "s/epoch"});
    // Epochs to 0.85: 2 and 3 with BatchNorm; only seed 2 (epoch 3) without.
    CHECK(rows[1] == std::vector<std::string>{"bn=on", "2", "0.85", "2.5 ± 0.7", "2 of 2",
                                              "0.8650 ± 0.0071", "0.8550 ± 0.0212", "2.00 ± 0.00"});
    CHECK(rows[2] == std::vector<std::string>{"bn=off", "2", "0.85", "3.0", "1 of 2",
                                              "0.8300 ± 0.0424", "0.8300 ± 0.0424", "2.00 ± 0.00"});
    const std::string table = markdown_table(rows);
    CHECK(table.find("| bn=on   | 2    | 0.85   | 2.5 ± 0.7        |") != std::string::npos);

    const std::string epochs = epoch_table(variants);
    CHECK(epochs.find("[1] bn=on seed=1  bn-on-1.jsonl") != std::string::npos);
    CHECK(epochs.find("[4] bn=off seed=2  bn-off-2.jsonl") != std::string::npos);
    CHECK(epochs.find("epoch | [1] test_acc train_loss | [2] test_acc train_loss |") !=
          std::string::npos);
    CHECK(epochs.find("    3 |       0.8400     0.3333 |       0.8700     0.3333 |") !=
          std::string::npos);

    // Runs that are all alike are one variant, labelled by the network.
    const std::vector<RunLog> alike{log_of("on", 1, {0.5}), log_of("on", 2, {0.6})};
    const std::vector<Variant> one = group_variants(alike);
    REQUIRE(one.size() == 1);
    CHECK(one[0].label == "hidden=100,100 bn=on");

    // Data-parallel runs beside one process's: the world and, where there is one, the sync.
    auto parallel_log = [&](int world_size, const char* sync_bn) {
        RunLog log = log_of("on", 1, {0.8});
        if (world_size > 1) {
            log.header["config"]["world_size"] = world_size;
            log.header["config"]["sync_bn"] = std::string(sync_bn) == "true";
        }
        return log;
    };
    const std::vector<RunLog> worlds{parallel_log(1, ""), parallel_log(4, "false"),
                                     parallel_log(4, "true")};
    const std::vector<Variant> parallel = group_variants(worlds);
    REQUIRE(parallel.size() == 3);
    CHECK(parallel[0].label == "world_size=1");
    CHECK(parallel[1].label == "world_size=4 sync_bn=false");
    CHECK(parallel[2].label == "world_size=4 sync_bn=true");

    // Named variants (compare_bn's "bn=on") keep their names, unless the logs of two
    // comparisons share them: then the differing fields tell them apart.
    auto named_log = [&](const std::string& bn, const std::string& model) {
        RunLog log = log_of(bn, 1, {0.8});
        log.header["config"]["variant"] = "bn=" + bn;
        log.header["config"]["model"] = model;
        return log;
    };
    const std::vector<Variant> one_comparison =
        group_variants({named_log("on", "plain"), named_log("off", "plain")});
    CHECK(one_comparison[0].label == "bn=on");
    const std::vector<Variant> two_comparisons =
        group_variants({named_log("on", "plain"), named_log("off", "plain"),
                        named_log("on", "resnet"), named_log("off", "resnet")});
    REQUIRE(two_comparisons.size() == 4);
    CHECK(two_comparisons[0].label == "bn=on model=plain");
    CHECK(two_comparisons[3].label == "bn=off model=resnet");
}

TEST_CASE("curves on two small logs writes an SVG and a PNG that show both variants") {
    QuietLogs quiet;
    TempDir dir;
    const SmallProblem data = small_problem();
    for (bool batchnorm : {true, false}) {
        TrainConfig config = small_config(dir / (batchnorm ? "on.jsonl" : "off.jsonl"));
        config.norm = NormChoice(batchnorm);
        train_model(config, data.train, data.test);
    }
    const std::vector<RunLog> logs{read_run_log(dir / "on.jsonl"), read_run_log(dir / "off.jsonl")};
    const std::vector<Variant> variants = group_variants(logs);
    REQUIRE(variants.size() == 2);
    write_curves(variants, dir / "curves", "two small runs");

    const std::string svg = read_text(dir / "curves.svg");
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.find("two small runs") != std::string::npos);
    CHECK(svg.find("Test accuracy after each epoch") != std::string::npos);
    CHECK(svg.find("Training loss per epoch") != std::string::npos);
    // Each variant's mean appears in the key of both panels, and each is a drawn path.
    for (const char* title : {"bn=on (mean of 1)", "bn=off (mean of 1)"}) {
        std::size_t count = 0;
        for (std::size_t at = svg.find(title); at != std::string::npos;
             at = svg.find(title, at + 1))
            ++count;
        CHECK_MESSAGE(count >= 2, title);
    }
    CHECK(svg.find("stroke='rgb( 31, 119, 180)'") != std::string::npos);  // bn=on's blue
    CHECK(svg.find("stroke='rgb(214,  39,  40)'") != std::string::npos);  // bn=off's red

    std::ifstream png(dir / "curves.png", std::ios::binary);
    char magic[4] = {};
    png.read(magic, 4);
    CHECK(std::string(magic + 1, 3) == "PNG");
    CHECK(std::filesystem::exists(dir / "curves.gp"));
    for (const auto& entry : std::filesystem::directory_iterator(dir.path))
        CHECK_MESSAGE(entry.path().extension() != ".tmp", entry.path().string());

    write_report_html(dir / "report.html", "two small runs", variants, {dir / "curves.svg"});
    const std::string html = read_text(dir / "report.html");
    CHECK(html.find("<!DOCTYPE html>") == 0);
    CHECK(html.find("<svg") != std::string::npos);
    CHECK(html.find("<?xml") == std::string::npos);
    CHECK(html.find("<td>bn=on</td>") != std::string::npos);
    CHECK(html.find("xtensor-blas") != std::string::npos);
}

TEST_CASE("Reading a bad log names the file, the line and the problem") {
    TempDir dir;
    auto error_reading = [&](const std::string& text) {
        write_text(dir / "bad.jsonl", text);
        return message_of([&] { read_run_log(dir / "bad.jsonl"); });
    };
    const std::string path = dir / "bad.jsonl";
    CHECK(message_of([&] { read_run_log(dir / "missing.jsonl"); }) ==
          dir / "missing.jsonl" + ": cannot open: No such file or directory");
    CHECK(error_reading("") == path + ": no config line (empty log?)");
    CHECK(error_reading("not json\n").find(path + ":1: ") == 0);
    CHECK(error_reading("{\"type\":\"epoch\",\"epoch\":1}\n") ==
          path + ":1: expected the config line first, got a 'epoch' line");
    const std::string header = "{\"type\":\"config\",\"config\":{\"target\":0.85,\"seed\":1}}\n";
    const std::string missing = error_reading(header + "{\"type\":\"epoch\",\"epoch\":1}\n");
    CHECK(missing.find(path + ":2: ") == 0);
    CHECK(missing.find("step") != std::string::npos);
    CHECK(error_reading(header + header) == path + ":2: a second config line");
    CHECK(error_reading("{\"type\":\"config\",\"config\":{}}\n").find("target") !=
          std::string::npos);
    CHECK(error_reading("{\"type\":\"config\",\"config\":{\"target\":0.85}}\n").find("seed") !=
          std::string::npos);
    // Final lines (the first found by fuzz/fuzz_run_log.cpp: `curves` failed later on it,
    // without naming the file).
    const std::string no_status = error_reading(header + "{\"type\":\"final\",\"rtatus\":1}\n");
    CHECK(no_status.find(path + ":2: ") == 0);
    CHECK(no_status.find("status") != std::string::npos);
    CHECK(error_reading(header + "{\"type\":\"final\",\"status\":\"paused\"}\n") ==
          path + ":2: unknown final status 'paused'");
    CHECK(error_reading(header + "{\"type\":\"final\",\"status\":\"diverged\"}\n")
              .find(path + ":2: ") == 0);
    // An integer field holding a number no integer can (found by fuzz/fuzz_run_log.cpp: the
    // conversion was undefined behaviour).
    const std::string epoch_line =
        "{\"type\":\"epoch\",\"epoch\":1,\"step\":1e46,\"train_loss\":1,\"train_acc\":0.5,"
        "\"test_loss\":1,\"test_acc\":0.5,\"lr\":0.1,\"seconds\":1,\"samples_per_s\":1}\n";
    CHECK(error_reading(header + epoch_line) ==
          path + ":2: step: expected an integer from " +
              std::to_string(std::numeric_limits<long>::min()) + " to " +
              std::to_string(std::numeric_limits<long>::max()) + ", got 1e+46");
}

TEST_CASE("quantile interpolates between order statistics as numpy.percentile does") {
    std::vector<float> values{5, 1, 4, 2, 3};
    CHECK(quantile(values, 0.15) == doctest::Approx(1.6));
    CHECK(quantile(values, 0.50) == doctest::Approx(3.0));
    CHECK(quantile(values, 0.85) == doctest::Approx(4.4));
    CHECK(quantile(values, 0.0) == doctest::Approx(1.0));
    CHECK(quantile(values, 1.0) == doctest::Approx(5.0));
    std::vector<float> one{7};
    CHECK(quantile(one, 0.85) == 7.0);
}

TEST_CASE("The probe reads each hidden layer's activation input in eval mode") {
    Rng rng(12);
    const Dataset data = make_blobs(40, 4, 2, 1.0, rng);
    // After BatchNorm and after each of its successors.
    for (const NormChoice& norm : {NormChoice(true), NormChoice(NormKind::renorm),
                                   NormChoice(NormKind::group, 1), NormChoice(NormKind::layer)}) {
        CAPTURE(norm.text());
        Sequential model = mlp(4, {3, 5}, 2, Activation::sigmoid, norm, rng);
        SoftmaxCrossEntropy loss;
        SGD optimizer(model.parameters(), SGDOptions(0.5));
        train_step(model, loss, optimizer, slice(data, 0, 20).inputs, slice(data, 0, 20).labels);
        Probe probe(model, data, 10);
        REQUIRE(probe.hidden_layers() == 2);
        const std::vector<ProbePoint> points = probe.record(1, 1);
        REQUIRE(points.size() == 2);
        CHECK(model.is_training());  // restored

        // By hand: the outputs of the normalization layers (indices 1 and 4) in eval mode.
        model.eval();
        const Matrix<float> batch = slice(data, 0, 10).inputs;
        const Matrix<float> first = model[1].forward(model[0].forward(batch));
        const Matrix<float> second = model[4].forward(model[3].forward(model[2].forward(first)));
        for (const auto& [point, inputs] :
             {std::pair{points[0], first}, std::pair{points[1], second}}) {
            std::vector<float> sorted(inputs.begin(), inputs.end());
            std::sort(sorted.begin(), sorted.end());
            auto at = [&](double q) {  // numpy's linear interpolation on the sorted values
                const double position = q * double(sorted.size() - 1);
                const std::size_t i = std::size_t(position);
                return sorted[i] + (position - double(i)) * (sorted[i + 1] - sorted[i]);
            };
            CHECK(point.epoch == 1);
            CHECK(point.step == 1);
            CHECK(point.p15 == doctest::Approx(at(0.15)));
            CHECK(point.p50 == doctest::Approx(at(0.50)));
            CHECK(point.p85 == doctest::Approx(at(0.85)));
        }
        // The gradient norms are those of the Dense weights before each hidden layer.
        for (auto [point, dense] : {std::pair{points[0], 0}, std::pair{points[1], 3}}) {
            double squares = 0.0;
            for (float g : dynamic_cast<Dense&>(model[std::size_t(dense)]).weight_grad())
                squares += double(g) * double(g);
            CHECK(point.grad_norm == doctest::Approx(std::sqrt(squares)));
            CHECK(point.grad_norm > 0.0);
        }
        model.train();
    }
    Sequential no_hidden;
    no_hidden.add<Dense>(4, 2, rng);
    CHECK(message_of([&] { Probe(no_hidden, data); }) ==
          "probe: the model has no hidden layer with an activation");
}

TEST_CASE("The probe reads a residual block's sum, and its body's gradient norm") {
    Rng rng(13);
    Dataset data = make_blobs(24, 2 * 4 * 4, 3, 1.0, rng);
    data.sample_shape = {2, 4, 4};
    Sequential model(Shape{2, 4, 4});
    Sequential body(Shape{2, 4, 4});
    body.add<Conv2d>(Conv2dOptions(2, 3, 3).padding(1), rng);
    body.add<ReLU>();
    body.add<Conv2d>(Conv2dOptions(3, 3, 3).padding(1), rng);
    auto& block = model.add<Residual>(std::move(body), rng);  // projection 2 -> 3 channels
    model.add<GlobalAvgPool2d>();
    model.add<Dense>(3, 3, rng);
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.1));
    train_step(model, loss, optimizer, slice(data, 0, 12).inputs, slice(data, 0, 12).labels);
    Probe probe(model, data, 8);
    // The block, one hidden layer: its body runs as one layer, not probed inside.
    REQUIRE(probe.hidden_layers() == 1);
    const std::vector<ProbePoint> points = probe.record(1, 1);
    model.eval();
    block.forward(slice(data, 0, 8).inputs);
    std::vector<float> sum(block.sum().begin(), block.sum().end());
    CHECK(points[0].p50 == doctest::Approx(quantile(sum, 0.5)));
    double squares = 0.0;
    for (float g : dynamic_cast<Conv2d&>(block.body()[2]).weight_grad())
        squares += double(g) * double(g);
    CHECK(points[0].grad_norm == doctest::Approx(std::sqrt(squares)));
    CHECK(points[0].grad_norm > 0.0);
}

TEST_CASE("train --probe logs probe lines and does not change the training") {
    QuietLogs quiet;
    TempDir dir;
    const SmallProblem data = small_problem();
    TrainConfig probed = small_config(dir / "probed.jsonl");
    probed.probe = true;
    probed.probe_points = 3;
    probed.epochs = 2;
    const RunResult result = train_model(probed, data.train, data.test);
    TrainConfig plain = small_config(dir / "plain.jsonl");
    plain.epochs = 2;
    train_model(plain, data.train, data.test);

    // 30 steps per epoch, a point every 10 steps, 2 hidden layers.
    REQUIRE(result.probes.size() == 2 * 3 * 2);
    std::vector<Json> lines = read_lines(probed.log_path);
    std::vector<Json> probe_lines;
    for (const Json& line : lines)
        if (line.at("type") == "probe") probe_lines.push_back(line);
    REQUIRE(probe_lines.size() == 12);
    CHECK(probe_lines[0] == Json{{"type", "probe"},
                                 {"epoch", 1},
                                 {"step", 10},
                                 {"layer", 1},
                                 {"p15", result.probes[0].p15},
                                 {"p50", result.probes[0].p50},
                                 {"p85", result.probes[0].p85},
                                 {"grad_norm", result.probes[0].grad_norm}});
    CHECK(probe_lines[11].at("step") == 60);
    CHECK(probe_lines[11].at("epoch") == 2);
    CHECK(probe_lines[11].at("layer") == 2);
    for (const ProbePoint& point : result.probes) {
        CHECK(point.p15 <= point.p50);
        CHECK(point.p50 <= point.p85);
    }
    const RunLog log = read_run_log(probed.log_path);
    CHECK(log.probes.size() == 12);
    CHECK(log.probes[5].p85 == result.probes[5].p85);

    // The same epochs as without the probe, number for number.
    auto epochs_of = [](std::vector<Json> all) {
        std::vector<Json> epochs;
        for (Json& line : without_timing(std::move(all)))
            if (line.at("type") == "epoch") epochs.push_back(line);
        return epochs;
    };
    CHECK(epochs_of(lines) == epochs_of(read_lines(plain.log_path)));

    // Probed and plain runs of one configuration are one variant.
    const std::vector<RunLog> logs{read_run_log(probed.log_path), read_run_log(plain.log_path)};
    CHECK(group_variants(logs).size() == 1);
}

TEST_CASE("Probe plots: percentile bands and gradient norms, with and without BatchNorm") {
    QuietLogs quiet;
    TempDir dir;
    const SmallProblem data = small_problem();
    for (bool batchnorm : {true, false}) {
        TrainConfig config = small_config(dir / (batchnorm ? "on.jsonl" : "off.jsonl"));
        config.norm = NormChoice(batchnorm);
        config.probe = true;
        config.probe_points = 5;
        train_model(config, data.train, data.test);
    }
    const std::vector<RunLog> logs{read_run_log(dir / "on.jsonl"), read_run_log(dir / "off.jsonl")};
    const std::vector<Variant> variants = group_variants(logs);
    REQUIRE(has_probes(variants));
    write_probe_plots(variants, dir / "curves", "small");
    const std::string bands = read_text(dir / "curves-probe.svg");
    for (const char* title : {"bn=on, hidden layer 1", "bn=on, hidden layer 2",
                              "bn=off, hidden layer 1", "bn=off, hidden layer 2"})
        CHECK_MESSAGE(bands.find(title) != std::string::npos, title);
    const std::string norms = read_text(dir / "curves-gradients.svg");
    CHECK(norms.find("layer 1") != std::string::npos);
    CHECK(norms.find("layer 2") != std::string::npos);
    CHECK(std::filesystem::file_size(dir / "curves-probe.png") > 1000);
    CHECK(std::filesystem::file_size(dir / "curves-gradients.png") > 1000);

    const std::vector<RunLog> plain{read_run_log(dir / "on.jsonl")};
    RunLog unprobed = plain.front();
    unprobed.probes.clear();
    const std::vector<RunLog> none{unprobed};
    CHECK(!has_probes(group_variants(none)));
    CHECK(message_of([&] { write_probe_plots(group_variants(none), dir / "x", "t"); }) ==
          "write_probe_plots: no run has probe points");
}
