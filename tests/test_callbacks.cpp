// fit's callbacks: the hooks and their order, stopping, a callback that throws, the built-in
// EarlyStopping, BestWeights and ReduceLrOnPlateau (against PyTorch's scheduler), the validation
// set, a callback's state across a resume, and a regression with MeanSquaredError.
#include <filesystem>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "experiment_helpers.hpp"
#include "framework/checkpoint.hpp"
#include "framework/csv.hpp"
#include "framework/experiment/callbacks.hpp"
#include "framework/experiment/json_fields.hpp"
#include "framework/training.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

Sequential small_model(std::uint64_t seed) {
    Rng rng(seed);
    Sequential model;
    model.add<Dense>(12, 16, rng);
    model.add<BatchNorm>(16);
    model.add<ReLU>();
    model.add<Dense>(16, 4, rng);
    return model;
}

// What most tests train: the small problem, a model and SGD from one seed, quiet logs and a
// folder for files.
struct Run {
    explicit Run(std::uint64_t seed) : model(small_model(seed)), rng(seed) {}
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model;
    Rng rng;
    SGD sgd{model.parameters(), SGDOptions(0.1)};
    RunResult fit(const FitOptions& options) {
        return bnlab::fit(model, sgd, problem.train, problem.test, rng, options);
    }
};

// Writes down every hook it sees, as "name:hook".
class Recorder : public Callback {
  public:
    Recorder(std::string label, std::vector<std::string>& events)
        : label_(std::move(label)), events_(events) {}
    std::string name() const override { return "Recorder"; }
    void on_fit_start(FitContext&) override { events_.push_back(label_ + ":fit_start"); }
    void on_epoch_start(FitContext& run) override {
        events_.push_back(label_ + ":epoch_start " + std::to_string(run.epoch));
    }
    void before_optimizer_step(FitContext& run) override {
        events_.push_back(label_ + ":before_step " + std::to_string(run.step));
    }
    void on_batch_end(FitContext&, const BatchEnd& batch) override {
        events_.push_back(label_ + ":batch_end " + std::to_string(batch.step) + " " +
                          std::to_string(batch.batch) + "/" + std::to_string(batch.batches));
        if (batch.batch == 1) first_batches.push_back(batch);
    }
    void on_epoch_end(FitContext&, const EpochStats& epoch) override {
        events_.push_back(label_ + ":epoch_end " + std::to_string(epoch.epoch));
    }
    void on_fit_end(FitContext&) override { events_.push_back(label_ + ":fit_end"); }
    void on_log_line(FitContext&, const std::string& line) override {
        events_.push_back(label_ + ":line " + Json::parse(line).at("type").get<std::string>());
    }
    std::vector<BatchEnd> first_batches;

  private:
    std::string label_;
    std::vector<std::string>& events_;
};

// Calls a function at the end of chosen epochs.
class AtEpochEnd : public Callback {
  public:
    AtEpochEnd(std::string name, std::function<void(FitContext&, const EpochStats&)> action)
        : name_(std::move(name)), action_(std::move(action)) {}
    std::string name() const override { return name_; }
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override { action_(run, epoch); }

  private:
    std::string name_;
    std::function<void(FitContext&, const EpochStats&)> action_;
};

// A FitContext for calling a callback's hooks directly with made-up epochs.
struct Bench {
    Sequential model = small_model(1);
    SGD sgd{model.parameters(), SGDOptions(0.1)};
    FitOptions options;
    Rng rng{1};
    RunResult result;
    FitContext context{model, sgd, options, rng, Json::object(), result};

    EpochStats epoch(int number, double test_loss, double test_acc = 0.5) {
        context.epoch = number;
        EpochStats stats;
        stats.epoch = number;
        stats.test_loss = test_loss;
        stats.test_acc = test_acc;
        return stats;
    }
};

}  // namespace

TEST_CASE("Callbacks are called in order, after fit's own, at every hook") {
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model = small_model(2);
    Rng rng(2);
    SGD sgd(model.parameters(), SGDOptions(0.1));
    std::vector<std::string> events;
    auto first = std::make_shared<Recorder>("A", events);
    auto second = std::make_shared<Recorder>("B", events);
    const RunResult result = fit(model, sgd, problem.train, problem.test, rng,
                                 FitOptions().epochs(2).batch_size(30).callbacks({first, second}));
    // 720 rows in batches of 30: 24 steps an epoch.
    std::vector<std::string> expected = {"A:fit_start", "B:fit_start"};
    for (int epoch = 1; epoch <= 2; ++epoch) {
        expected.push_back("A:epoch_start " + std::to_string(epoch));
        expected.push_back("B:epoch_start " + std::to_string(epoch));
        for (int batch = 1; batch <= 24; ++batch) {
            const std::string step = std::to_string((epoch - 1) * 24 + batch);
            expected.push_back("A:before_step " + step);
            expected.push_back("B:before_step " + step);
            expected.push_back("A:batch_end " + step + " " + std::to_string(batch) + "/24");
            expected.push_back("B:batch_end " + step + " " + std::to_string(batch) + "/24");
        }
        expected.push_back("A:line epoch");
        expected.push_back("B:line epoch");
        expected.push_back("A:epoch_end " + std::to_string(epoch));
        expected.push_back("B:epoch_end " + std::to_string(epoch));
    }
    for (const char* tail : {"A:fit_end", "B:fit_end", "A:line final", "B:line final"})
        expected.push_back(tail);
    CHECK(events == expected);
    REQUIRE(first->first_batches.size() == 2);
    CHECK(first->first_batches[1].epoch == 2);
    CHECK(first->first_batches[1].step == 25);
    CHECK(first->first_batches[1].rows == 30);
    CHECK(first->first_batches[1].loss == first->first_batches[1].epoch_loss);
    CHECK(result.epochs.size() == 2);
}

TEST_CASE("before_optimizer_step sees the gradients before the optimizer uses them") {
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model = small_model(3);
    std::vector<float> before;
    for (const Parameter<float>& parameter : model.parameters())
        before.insert(before.end(), parameter.value, parameter.value + parameter.size);
    class ZeroGradients : public Callback {
      public:
        std::string name() const override { return "ZeroGradients"; }
        void before_optimizer_step(FitContext& run) override { run.model.zero_grad(); }
    };
    Rng rng(3);
    SGD sgd(model.parameters(), SGDOptions(0.1));
    fit(model, sgd, problem.train, problem.test, rng,
        FitOptions().epochs(1).batch_size(30).callbacks({std::make_shared<ZeroGradients>()}));
    std::vector<float> after;
    for (const Parameter<float>& parameter : model.parameters())
        after.insert(after.end(), parameter.value, parameter.value + parameter.size);
    CHECK(after == before);  // every step had zero gradients (no weight decay, no momentum)
}

TEST_CASE("A stop asked for in the middle of an epoch ends the run when that epoch ends") {
    Run run(4);
    // stops at the third step of epoch 2
    class StopMidEpoch : public Callback {
      public:
        std::string name() const override { return "StopMidEpoch"; }
        int steps = 0;
        void on_batch_end(FitContext& context, const BatchEnd&) override {
            if (++steps == 18 + 3) context.stop(name(), "budget of steps spent");
        }
    };
    auto stopper = std::make_shared<StopMidEpoch>();
    const RunResult result =
        run.fit(FitOptions().epochs(6).batch_size(40).callbacks({stopper}));  // 18 steps an epoch
    REQUIRE(result.epochs.size() == 2);
    CHECK(stopper->steps == 36);  // epoch 2 ran to its end
    CHECK(result.epochs[1].step == 36);
    REQUIRE(result.outcome.stopped);
    CHECK(result.outcome.stopped->reason == "budget of steps spent");
}

TEST_CASE("A callback stops a run cleanly: the epochs so far, the final line says who and why") {
    Run run(4);
    auto stopper =
        std::make_shared<AtEpochEnd>("Budget", [](FitContext& context, const EpochStats& e) {
            if (e.epoch == 2) context.stop("Budget", "two epochs are enough");
        });
    const RunResult result = run.fit(FitOptions()
                                         .epochs(6)
                                         .batch_size(30)
                                         .log(run.dir / "run.jsonl")
                                         .save(run.dir / "run.ckpt")
                                         .save_every(5)
                                         .callbacks({stopper}));
    CHECK(result.epochs.size() == 2);
    REQUIRE(result.outcome.stopped);
    CHECK(result.outcome.stopped->callback == "Budget");
    const std::vector<Json> lines = read_lines(run.dir / "run.jsonl");
    REQUIRE(lines.size() == 4);
    CHECK(lines.back().at("status") == "stopped");
    CHECK(lines.back().at("stopped_by") ==
          Json{{"callback", "Budget"}, {"reason", "two epochs are enough"}});
    CHECK(read_run_log(run.dir / "run.jsonl").epochs.size() == 2);
    // The stopped run's last epoch is saved, though save_every did not ask for it.
    CHECK(integer_at<int>(Json::parse(*Checkpoint::read(run.dir / "run.ckpt").section("TRAN")),
                          "epoch") == 2);
}

TEST_CASE(
    "A callback that throws ends the run with its message, and the log's final line says so") {
    Run run(5);
    auto thrower = std::make_shared<AtEpochEnd>("Thrower", [](FitContext&, const EpochStats& e) {
        if (e.epoch == 2) throw std::runtime_error("out of patience");
    });
    const std::string message = message_of([&] {
        run.fit(FitOptions()
                    .epochs(4)
                    .batch_size(30)
                    .log(run.dir / "run.jsonl")
                    .save(run.dir / "run.ckpt")
                    .callbacks({thrower}));
    });
    CHECK(message == "callback Thrower: out of patience");
    const std::vector<Json> lines = read_lines(run.dir / "run.jsonl");
    REQUIRE(lines.size() == 4);  // config, 2 epochs, final
    CHECK(lines.back().at("status") == "failed");
    CHECK(lines.back().at("error") == "callback Thrower: out of patience");
    CHECK(read_run_log(run.dir / "run.jsonl").final->at("status") == "failed");
    // Checkpoints are saved after the user's callbacks: the one of epoch 1 is whole, and the
    // directory holds nothing else (no temporary file of epoch 2's).
    CHECK(integer_at<int>(Json::parse(*Checkpoint::read(run.dir / "run.ckpt").section("TRAN")),
                          "epoch") == 1);
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(run.dir.path)) {
        (void)entry;
        ++files;
    }
    CHECK(files == 2);
}

TEST_CASE("A monitor that does not exist is an error before anything is written") {
    Run run(6);
    auto attempt = [&](const std::string& monitor, double validation) {
        return message_of([&] {
            run.fit(FitOptions()
                        .epochs(2)
                        .batch_size(30)
                        .log(run.dir / "run.jsonl")
                        .validation_fraction(validation)
                        .callbacks({std::make_shared<EarlyStopping>(
                            EarlyStoppingOptions().monitor(monitor))}));
        });
    };
    CHECK(attempt("val_loss", 0.0) ==
          "callback EarlyStopping: no quantity 'val_loss' to monitor (val_ quantities need a "
          "validation set: FitOptions().validation_fraction); there are train_loss, train_acc, "
          "test_loss, test_acc");
    CHECK(attempt("test_acc", 0.2) ==
          "callback EarlyStopping: no quantity 'test_acc' to monitor (with a validation set the "
          "test set is measured once, at the end); there are train_loss, train_acc, val_loss, "
          "val_acc");
    CHECK(attempt("accuracy", 0.0).find("no quantity 'accuracy' to monitor") != std::string::npos);
    CHECK(!std::filesystem::exists(run.dir / "run.jsonl"));
    CHECK(message_of([] { EarlyStopping(EarlyStoppingOptions().patience(0)); }) ==
          "EarlyStopping: patience must be at least 1, got 0");
    CHECK(message_of([] { ReduceLrOnPlateau(ReduceLrOnPlateauOptions().factor(1.0)); }) ==
          "ReduceLrOnPlateau: factor must be in (0, 1), got 1");
    CHECK(message_of([&] { run.fit(FitOptions().callbacks({nullptr})); }) ==
          "a callback given to fit is null");
}

TEST_CASE("EarlyStopping stops after `patience` epochs without an improvement above min_delta") {
    Bench bench;
    EarlyStopping stopping(EarlyStoppingOptions().monitor("test_loss").patience(2).min_delta(0.01));
    stopping.on_fit_start(bench.context);
    const std::vector<double> losses = {1.0, 0.8, 0.795, 0.7, 0.695, 0.71, 0.5};
    int stopped_at = 0;
    for (std::size_t i = 0; i < losses.size() && !stopped_at; ++i) {
        stopping.on_epoch_end(bench.context, bench.epoch(int(i) + 1, losses[i]));
        if (bench.context.stop_request()) stopped_at = int(i) + 1;
    }
    // 0.795 and 0.695 are not better by more than 0.01; 0.7 is (best 0.8); 0.71 is worse.
    CHECK(stopped_at == 6);
    CHECK(bench.context.stop_request()->reason ==
          "test_loss did not improve by more than 0.01 for 2 epochs (best 0.7 at epoch 4)");
    // An accuracy is better higher.
    Bench accuracy;
    EarlyStopping on_accuracy(EarlyStoppingOptions().monitor("test_acc").patience(1));
    on_accuracy.on_fit_start(accuracy.context);
    on_accuracy.on_epoch_end(accuracy.context, accuracy.epoch(1, 9.0, 0.5));
    on_accuracy.on_epoch_end(accuracy.context, accuracy.epoch(2, 9.0, 0.6));
    CHECK(!accuracy.context.stop_request());
    on_accuracy.on_epoch_end(accuracy.context, accuracy.epoch(3, 0.1, 0.6));
    CHECK(accuracy.context.stop_request());
}

TEST_CASE("ReduceLrOnPlateau scales the rate as PyTorch's ReduceLROnPlateau does") {
    QuietLogs quiet;
    // torch.optim.lr_scheduler.ReduceLROnPlateau (PyTorch 1.13), stepped with each epoch's loss;
    // the rates of the epochs, from an SGD rate of 0.1 (mode min) and 1.0 (mode max).
    struct Case {
        ReduceLrOnPlateauOptions options;
        double lr;
        std::vector<double> losses, accuracies, pytorch_rates;
    };
    const std::vector<Case> cases = {
        {ReduceLrOnPlateauOptions()
             .monitor("test_loss")
             .factor(0.5)
             .patience(2)
             .threshold(0.01)
             .cooldown(1)
             .min_lr(0.02),
         0.1,
         {1.0, 0.9, 0.95, 0.9, 0.91, 0.89999, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0},
         {},
         {0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025}},
        {ReduceLrOnPlateauOptions().monitor("test_acc").factor(0.1).patience(1),
         1.0,
         {},
         {0.5, 0.6, 0.6, 0.6, 0.61, 0.7, 0.7, 0.7, 0.7},
         {1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.010000000000000002}}};
    for (const Case& c : cases) {
        Bench bench;
        LearningRateSchedule schedule{LrSchedule()};
        ReduceLrOnPlateau plateau(c.options);
        bench.sgd.set_learning_rate(c.lr);
        bench.context.base_lr = c.lr;
        plateau.on_fit_start(bench.context);
        const std::size_t epochs = std::max(c.losses.size(), c.accuracies.size());
        for (std::size_t i = 0; i < epochs; ++i) {
            bench.context.epoch = int(i) + 1;
            schedule.on_epoch_start(bench.context);
            plateau.on_epoch_start(bench.context);
            CAPTURE(i);
            CHECK(bench.sgd.learning_rate() == doctest::Approx(c.pytorch_rates[i]).epsilon(1e-12));
            plateau.on_epoch_end(bench.context,
                                 bench.epoch(int(i) + 1, c.losses.empty() ? 0.0 : c.losses[i],
                                             c.accuracies.empty() ? 0.0 : c.accuracies[i]));
        }
    }
}

TEST_CASE(
    "A validation set judges the epochs, the test set is measured once, with the best weights") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model = small_model(7);
    Rng rng(7);
    SGD sgd(model.parameters(), SGDOptions(0.3).momentum(0.9));
    auto best = std::make_shared<BestWeights>(
        BestWeightsOptions().monitor("val_loss").save(dir / "best.bnlab"));
    const RunResult result = fit(model, sgd, problem.train, problem.test, rng,
                                 FitOptions()
                                     .epochs(6)
                                     .batch_size(30)
                                     .log(dir / "run.jsonl")
                                     .validation_fraction(0.25)
                                     .callbacks({best}));
    REQUIRE(result.epochs.size() == 6);
    for (const EpochStats& epoch : result.epochs) {
        CHECK(epoch.val_acc.has_value());
        CHECK(std::isnan(epoch.test_acc));
    }
    // 720 rows: 180 held out, 540 train in 18 batches of 30.
    CHECK(result.epochs[0].step == 18);
    int best_epoch = 1;
    for (const EpochStats& epoch : result.epochs)
        if (*epoch.val_loss < *result.epochs[std::size_t(best_epoch - 1)].val_loss)
            best_epoch = epoch.epoch;
    CHECK(best->best_epoch() == best_epoch);
    REQUIRE(result.outcome.test);
    CHECK(result.outcome.test->epoch == best_epoch);
    // The model holds the best epoch's weights: its test accuracy is the one reported, and the
    // saved best model gives the same.
    const Evaluation tested = evaluate(model, problem.test, 1000);
    CHECK(result.outcome.test->acc == tested.accuracy);
    CHECK(result.outcome.test->loss == tested.loss);
    Sequential saved = load_model(dir / "best.bnlab");
    CHECK(evaluate(saved, problem.test, 1000).loss == tested.loss);
    // BatchNorm's batch count is the best epoch's too (18 batches an epoch), as in the saved
    // model; the best epoch is not the last, so the weights were put back.
    REQUIRE(best_epoch < 6);
    CHECK(dynamic_cast<BatchNorm&>(model[1]).num_batches_tracked() == 18 * best_epoch);
    CHECK(dynamic_cast<BatchNorm&>(saved[1]).num_batches_tracked() == 18 * best_epoch);
    const std::vector<Json> lines = read_lines(dir / "run.jsonl");
    REQUIRE(lines.size() == 9);  // config, 6 epochs, test, final
    CHECK(lines[1].contains("val_acc"));
    CHECK(!lines[1].contains("test_acc"));
    CHECK(lines[0].at("config").at("validation_fraction") == 0.25);
    CHECK(lines[7].at("type") == "test");
    CHECK(lines[7].at("epoch") == best_epoch);
    CHECK(lines[8].contains("best_val_acc"));
    CHECK(!lines[8].contains("best_test_acc"));
    CHECK(lines[8].at("test").at("test_acc") == tested.accuracy);
    CHECK(read_run_log(dir / "run.jsonl").epochs.size() == 6);
}

TEST_CASE("The validation split is seeded, disjoint, and keeps the rows' order") {
    const SmallProblem problem = small_problem();
    const ValidationSplit<float> split = split_validation(problem.train, 0.25, 11);
    CHECK(split.validation.size() == 180);
    CHECK(split.train.size() == 540);
    const ValidationSplit<float> again = split_validation(problem.train, 0.25, 11);
    CHECK(again.validation.labels == split.validation.labels);
    CHECK(again.validation.inputs == split.validation.inputs);
    const ValidationSplit<float> other = split_validation(problem.train, 0.25, 12);
    CHECK(other.validation.inputs != split.validation.inputs);
    // Every training row is in exactly one part: the sums of the inputs add up.
    CHECK(double(xt::sum(split.train.inputs)()) + double(xt::sum(split.validation.inputs)()) ==
          doctest::Approx(double(xt::sum(problem.train.inputs)())).epsilon(1e-5));
    for (double fraction : {0.0, 1.0, -0.5, 1.5})
        CHECK(message_of([&] { split_validation(problem.train, fraction, 1); }) ==
              "the validation fraction must be in (0, 1), got " + number_string(fraction));
    CHECK(message_of([&] { split_validation(problem.train, 0.0001, 1); }) ==
          "a validation fraction of 0.0001 of 720 samples leaves the validation set empty");
    CHECK(message_of([&] { split_validation(problem.train, 0.9999, 1); }) ==
          "a validation fraction of 0.9999 of 720 samples leaves the training set empty");
}

TEST_CASE(
    "A callback's state is kept in checkpoints: a resumed run stops where the whole one did") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    // min_delta 10: no epoch after the first improves, so the run stops after epoch 1 + 3.
    auto run = [&](int epochs, const std::string& resume, const std::string& save) {
        Sequential model = small_model(8);
        Rng rng(8);
        SGD sgd(model.parameters(), SGDOptions(0.1));
        return fit(
            model, sgd, problem.train, problem.test, rng,
            FitOptions().epochs(epochs).batch_size(30).save(save).resume(resume).callbacks(
                {std::make_shared<EarlyStopping>(
                    EarlyStoppingOptions().monitor("test_loss").patience(3).min_delta(10.0))}));
    };
    const RunResult whole = run(10, "", "");
    CHECK(whole.epochs.size() == 4);
    run(2, "", dir / "half.ckpt");
    const RunResult resumed = run(10, dir / "half.ckpt", "");
    REQUIRE(resumed.epochs.size() == 4);
    CHECK(resumed.outcome.stopped);
    CHECK(resumed.epochs.back().test_loss == whole.epochs.back().test_loss);
}

TEST_CASE("A regression: MeanSquaredError on the diabetes data, R² and RMSE in the log") {
    TempDir dir;
    QuietLogs quiet;
    FashionMnist patients =
        load_data_folder(BNLAB_TEST_DATA_DIR "/diabetes", CsvOptions().targets({"progression"}));
    REQUIRE(patients.train.size() == 353);
    REQUIRE(patients.test.size() == 89);
    // Features and target to mean 0 and variance 1 by the training set's statistics.
    standardize_columns(patients.train.inputs, patients.test.inputs);
    const std::vector<Standardization> target =
        standardize_columns(patients.train.values, patients.test.values);
    CHECK(target[0].mean == doctest::Approx(151.4787535).epsilon(1e-8));  // by Python
    CHECK(xt::mean(patients.train.values)() == doctest::Approx(0.0).epsilon(1e-6).scale(1.0));
    CHECK(xt::stddev(patients.train.values)() == doctest::Approx(1.0).epsilon(1e-5));
    Rng rng(11);
    Sequential model;
    model.add<Dense>(10, 32, rng);
    model.add<ReLU>();
    model.add<Dense>(32, 1, rng);
    SGD sgd(model.parameters(), SGDOptions(0.01).momentum(0.9));
    auto stopping =
        std::make_shared<EarlyStopping>(EarlyStoppingOptions().monitor("test_rmse").patience(5));
    const RunResult result = fit(model, sgd, patients.train, patients.test, rng,
                                 FitOptions()
                                     .epochs(40)
                                     .batch_size(16)
                                     .target(0.4)
                                     .log(dir / "run.jsonl")
                                     .loss(std::make_shared<MeanSquaredError>())
                                     .callbacks({stopping}));
    REQUIRE(!result.epochs.empty());
    const EpochStats& last = result.epochs.back();
    CHECK(last.regression);
    // R² = 1 - MSE / Var(test targets), checked against the model's own predictions.
    const Matrix<float>& predictions = [&]() -> const Matrix<float>& {
        model.eval();
        return model.forward(patients.test.inputs);
    }();
    const double variance = double(xt::variance(patients.test.values)());
    const double mse = double(xt::mean(xt::square(predictions - patients.test.values))());
    CHECK(last.test_loss == doctest::Approx(mse).epsilon(1e-5));
    CHECK(last.test_acc == doctest::Approx(1.0 - mse / variance).epsilon(1e-5));
    CHECK(result.outcome.best_test_acc > 0.4);  // a linear model explains about half
    CHECK(result.outcome.chance == 0.0);
    const std::vector<Json> lines = read_lines(dir / "run.jsonl");
    CHECK(lines[1].contains("train_r2"));
    CHECK(lines[1].contains("test_rmse"));
    CHECK(lines[1].at("test_rmse").get<double>() ==
          doctest::Approx(std::sqrt(lines[1].at("test_loss").get<double>())));
    CHECK(!lines[1].contains("test_acc"));
    CHECK(lines.back().contains("best_test_r2"));
    const RunLog log = read_run_log(dir / "run.jsonl");
    CHECK(log.epochs.back().regression);
    CHECK(log.epochs.back().test_acc == last.test_acc);
    // The loss must fit the data.
    Sequential classifier = small_model(9);
    SGD classifier_sgd(classifier.parameters(), SGDOptions(0.1));
    const SmallProblem problem = small_problem();
    CHECK(message_of([&] {
              fit(model, sgd, patients.train, patients.test, rng, FitOptions().epochs(1));
          }) ==
          "the data has 1 target value columns (a regression), but the loss "
          "SoftmaxCrossEntropy takes class labels");
    CHECK(message_of([&] {
              fit(classifier, classifier_sgd, problem.train, problem.test, rng,
                  FitOptions().epochs(1).loss(std::make_shared<MeanSquaredError>()));
          }) ==
          "the data has class labels (a classification), but the loss MeanSquaredError "
          "takes target values");
    CHECK(message_of([&] {
              fit(model, sgd, patients.train, patients.test, rng,
                  FitOptions()
                      .epochs(1)
                      .loss(std::make_shared<MeanSquaredError>())
                      .callbacks({std::make_shared<EarlyStopping>(
                          EarlyStoppingOptions().monitor("test_acc"))}));
          }) ==
          "callback EarlyStopping: no quantity 'test_acc' to monitor; there are train_loss, "
          "train_r2, train_rmse, test_loss, test_r2, test_rmse");
    // Outputs that do not match the targets' columns.
    Sequential wide;
    wide.add<Dense>(10, 3, rng);
    SGD wide_sgd(wide.parameters(), SGDOptions(0.1));
    CHECK(message_of([&] {
              fit(wide, wide_sgd, patients.train, patients.test, rng,
                  FitOptions().epochs(1).loss(std::make_shared<MeanSquaredError>()));
          }) == "MeanSquaredError: outputs of shape [60, 3] for targets of shape [60, 1]");
}
