// fit(), the one training loop, on models composed in code: what it records, its errors, and the
// probe on nested models.
#include "experiment_helpers.hpp"
#include "framework/experiment/compare.hpp"
#include "framework/experiment/probe.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

// 12 -> 16 -> 16 -> 4 with BatchNorm and Sigmoid, flat or with each hidden layer in a block of
// its own; the same seed gives both the same weights.
Sequential blocks_model(bool nested, std::uint64_t seed) {
    Rng rng(seed);
    Sequential model;
    for (std::size_t in : {12, 16}) {
        auto block = std::make_unique<Sequential>();
        Sequential& target = nested ? *block : model;
        target.add<Dense>(in, 16, rng);
        target.add<BatchNorm>(16);
        target.add<Sigmoid>();
        if (nested) model.add(std::move(block));
    }
    model.add<Dense>(16, 4, rng);
    return model;
}

}  // namespace

TEST_CASE("fit trains a model composed in code and records its configuration and layers") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model = blocks_model(true, 5);
    Rng rng(5);
    SGD sgd(model.parameters(), SGDOptions(0.2).momentum(0.9));
    const RunResult result = fit(model, sgd, problem.train, problem.test, rng,
                                 FitOptions()
                                     .epochs(3)
                                     .batch_size(30)
                                     .target(0.6)
                                     .log(dir / "run.jsonl")
                                     .config({{"variant", "blocks"}}));
    REQUIRE(result.epochs.size() == 3);
    CHECK(result.epochs.back().test_acc > 0.6);
    const std::vector<Json> lines = read_lines(dir / "run.jsonl");
    REQUIRE(lines.size() == 5);  // config, 3 epochs, final
    const Json& config = lines.front().at("config");
    CHECK(config.at("variant") == "blocks");
    CHECK(config.at("lr") == 0.2);
    CHECK(config.at("schedule") == "constant");
    CHECK(config.at("batch") == 30);
    CHECK(config.at("epochs") == 3);
    CHECK(config.at("seed") == 5);
    CHECK(config.at("target") == 0.6);
    CHECK(lines.front().at("model").at("layers") ==
          Json::array({"Sequential(3 layers)", "Sequential(3 layers)", "Dense(16 -> 4)"}));
    CHECK(lines.back().at("type") == "final");
    // The log is one that curves and the comparison tables read.
    const RunLog log = read_run_log(dir / "run.jsonl");
    CHECK(log.epochs.size() == 3);
    CHECK(log.outcome().best_test_acc == result.outcome.best_test_acc);
}

TEST_CASE("fit's bad options and data are errors before anything is written") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    Sequential model = blocks_model(false, 1);
    Rng rng(1);
    SGD sgd(model.parameters(), SGDOptions(0.1));
    auto error_of = [&](const FitOptions& options, const Dataset& train, const Dataset& test) {
        return message_of([&] { fit(model, sgd, train, test, rng, options); });
    };
    const FitOptions logged = FitOptions().log(dir / "run.jsonl");
    CHECK(error_of(FitOptions(logged).epochs(0), problem.train, problem.test) ==
          "epochs must be positive, got 0");
    CHECK(error_of(FitOptions(logged).save_every(0), problem.train, problem.test) ==
          "save_every must be positive, got 0");
    CHECK(error_of(FitOptions(logged).probe(true).probe_points(0), problem.train, problem.test) ==
          "probe_points must be positive, got 0");
    CHECK(error_of(logged, slice(problem.train, 0, 0), problem.test) ==
          "training and test sets must both have samples");
    Dataset narrow{xt::zeros<float>({10, 11}), xt::zeros<int>({10})};
    CHECK(error_of(logged, problem.train, narrow) ==
          "training inputs have 12 features but test inputs 11");
    CHECK(error_of(FitOptions(logged).sync_batchnorm(true), problem.train, problem.test) ==
          "synchronized BatchNorm needs data-parallel training (a communicator)");
    CHECK(error_of(FitOptions(logged).save("/no/such/folder/run.ckpt"), problem.train, problem.test)
              .find("cannot write /no/such/folder/run.ckpt") == 0);
    Sequential linear;
    Rng linear_rng(1);
    linear.add<Dense>(12, 4, linear_rng);
    SGD linear_sgd(linear.parameters(), SGDOptions(0.1));
    CHECK(message_of([&] {
              fit(linear, linear_sgd, problem.train, problem.test, rng,
                  FitOptions(logged).probe(true));
          }) == "probe: the model has no hidden layer with an activation");
    CHECK(message_of([&] {
              fit(model, sgd, problem.train, problem.test, rng,
                  FitOptions(logged).batch_size(1000));
          }) ==
          "BatchLoader: batch size 1000 exceeds the 720 samples, and partial batches are "
          "dropped");
    CHECK(!std::filesystem::exists(dir / "run.jsonl"));
}

TEST_CASE("The probe sees through nested Sequentials: the same points as the flat model") {
    const SmallProblem problem = small_problem();
    Sequential flat = blocks_model(false, 9), nested = blocks_model(true, 9);
    SoftmaxCrossEntropy loss;
    SGD flat_sgd(flat.parameters(), SGDOptions(0.5)),
        nested_sgd(nested.parameters(), SGDOptions(0.5));
    BatchLoader batches(problem.train, 40, nullptr, true);
    batches.start_epoch();
    REQUIRE(batches.next());
    train_step(flat, loss, flat_sgd, batches.inputs(), batches.labels());
    train_step(nested, loss, nested_sgd, batches.inputs(), batches.labels());
    Probe flat_probe(flat, problem.test), nested_probe(nested, problem.test);
    CHECK(nested_probe.hidden_layers() == 2);
    const std::vector<ProbePoint> expected = flat_probe.record(1, 1),
                                  seen = nested_probe.record(1, 1);
    REQUIRE(seen.size() == expected.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CAPTURE(i);
        CHECK(seen[i].layer == expected[i].layer);
        CHECK(seen[i].p15 == expected[i].p15);
        CHECK(seen[i].p50 == expected[i].p50);
        CHECK(seen[i].p85 == expected[i].p85);
        CHECK(seen[i].grad_norm == expected[i].grad_norm);
        CHECK(seen[i].grad_norm > 0.0);
    }
}

TEST_CASE("compare_variants trains named variants over seeds and writes the comparison") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    auto variant = [](const std::string& name, bool nested) {
        return VariantSpec{name, [nested](Rng& rng) {
                               ModelAndOptimizer built{blocks_model(nested, rng.seed()), nullptr};
                               built.optimizer =
                                   std::make_unique<SGD>(built.model.parameters(), SGDOptions(0.5));
                               return built;
                           }};
    };
    const std::string out = dir / "comparison";
    const ComparisonResult result = compare_variants(
        {variant("flat / BN", false), variant("blocks", true)}, problem.train, problem.test,
        ComparisonOptions()
            .seeds(2)
            .first_seed(4)
            .out(out)
            .title("flat or blocks")
            .fit(FitOptions().epochs(2).batch_size(30).target(0.5)));
    CHECK(result.log_paths ==
          std::vector<std::string>{out + "/flat---BN-seed4.jsonl", out + "/blocks-seed4.jsonl",
                                   out + "/flat---BN-seed5.jsonl", out + "/blocks-seed5.jsonl"});
    CHECK(result.table.find("| flat / BN | 2    | 0.5 ") != std::string::npos);
    CHECK(result.table.find("| blocks    | 2    | 0.5 ") != std::string::npos);
    for (const char* file : {"curves.svg", "curves.png", "table.md", "report.html"})
        CHECK_MESSAGE(std::filesystem::file_size(out + "/" + file) > 0, file);
    CHECK(read_text(out + "/table.md").rfind("# flat or blocks\n\n| variant", 0) == 0);
    // Same seed, same weights: the nested and flat models train to the same numbers.
    CHECK(read_run_log(result.log_paths[0]).epochs.back().train_loss ==
          read_run_log(result.log_paths[1]).epochs.back().train_loss);
}

TEST_CASE("compare_variants' bad arguments are errors before any training") {
    const SmallProblem problem = small_problem();
    const VariantSpec some{"a", [](Rng& rng) {
                               ModelAndOptimizer built{blocks_model(false, rng.seed()), nullptr};
                               built.optimizer =
                                   std::make_unique<SGD>(built.model.parameters(), SGDOptions(0.1));
                               return built;
                           }};
    auto error_of = [&](const std::vector<VariantSpec>& variants, int seeds) {
        return message_of([&] {
            compare_variants(variants, problem.train, problem.test,
                             ComparisonOptions().seeds(seeds).out("/no/such/folder"));
        });
    };
    CHECK(error_of({}, 1) == "compare_variants: no variants");
    CHECK(error_of({some}, 0) == "compare_variants: seeds must be at least 1, got 0");
    CHECK(error_of({some, some}, 1) ==
          "compare_variants: two variants named 'a' (or alike once made file names)");
    CHECK(error_of({VariantSpec{"b", nullptr}}, 1) ==
          "compare_variants: variant 'b' has no build function");
}

TEST_CASE("A run stuck at chance is told apart from a diverged one in the final line") {
    TempDir dir;
    auto final_of = [&](const std::string& name, std::vector<std::string> flags) {
        const std::string log = dir / (name + ".jsonl");
        flags.insert(flags.begin(), {kTrain, "--epochs", "1", "--threads", "1", "--log", log});
        wait_for(spawn(flags, dir / (name + ".out")));
        return read_lines(log).back();
    };
    // The deep sigmoid network without BatchNorm stays at 10 % on Fashion-MNIST.
    const Json stuck = final_of("stuck", {"--preset", "deep", "--bn", "off"});
    CHECK(stuck.at("status") == "completed");
    CHECK(stuck.at("stuck") == true);
    CHECK(stuck.at("chance") == 0.1);
    CHECK(read_text(dir / "stuck.out").find("stuck at chance (0.1)") != std::string::npos);
    CHECK(read_run_log(dir / "stuck.jsonl").outcome().stuck);
    const Json diverged =
        final_of("diverged", {"--hidden", "8", "--act", "relu", "--bn", "off", "--lr", "1e30"});
    CHECK(diverged.at("status") == "diverged");
    CHECK(diverged.at("stuck") == false);
    const Json trained = final_of("trained", {"--hidden", "16"});
    CHECK(trained.at("status") == "completed");
    CHECK(trained.at("stuck") == false);
    CHECK(!read_run_log(dir / "trained.jsonl").outcome().stuck);
}

TEST_CASE("A model without a width of its own has no known chance, so it is never called stuck") {
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    // 12 features through a ReLU: 12 logits for 4 classes, and no width the model fixes.
    Sequential model;
    model.add<ReLU>();
    REQUIRE(!model.out_features());
    Rng rng(1);
    SGD sgd(model.parameters(), SGDOptions(0.1));
    const RunResult result =
        fit(model, sgd, problem.train, problem.test, rng, FitOptions().epochs(1).batch_size(30));
    CHECK(result.outcome.chance == 0.0);
    CHECK(!result.outcome.stuck);
}

TEST_CASE("fit on one process undoes a data-parallel set-up left on the model") {
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    auto trained = [&](bool left_over) {
        Rng rng(1);
        Sequential model;
        model.add<Dense>(12, 16, rng);
        model.add<Dropout>(0.5, rng);
        model.add<Dense>(16, 4, rng);
        // As a data-parallel fit leaves it: each batch of 20 a share of a global batch of 40.
        if (left_over) model.set_batch_share(BatchShare{0, 20, 40});
        SGD sgd(model.parameters(), SGDOptions(0.1));
        fit(model, sgd, problem.train, problem.test, rng,
            FitOptions().epochs(1).batch_size(20).threads(1));
        return std::vector<float>(model.parameters()[0].value,
                                  model.parameters()[0].value + model.parameters()[0].size);
    };
    // The same masks, so the same weights, bit for bit.
    CHECK(trained(true) == trained(false));
}
