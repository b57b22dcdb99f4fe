// Learning-rate schedules against PyTorch 1.13's StepLR and CosineAnnealingLR, stepped once per
// epoch (tests/golden/make_golden.py), and through fit(): logged per epoch, kept on resume.
#include "experiment_helpers.hpp"
#include "framework/lr_schedule.hpp"

using namespace bnlab;
using namespace bnlab::testing;

TEST_CASE("Schedules give PyTorch's learning rates, epoch by epoch, to the last bit") {
    const std::vector<std::pair<const char*, LrSchedule>> schedules = {
        {"step_3_0.5", LrSchedule::step(3, 0.5)},
        {"step_2", LrSchedule::step(2)},
        {"cosine_10", LrSchedule::cosine(10)},
        {"cosine_5_0.01", LrSchedule::cosine(5, 0.01)},  // past T_max: PyTorch's restarts
    };
    for (const auto& [name, schedule] : schedules) {
        CAPTURE(name);
        const nlohmann::json& expected = golden().at("lr_schedules").at(name);
        const double base_lr = expected.at("base_lr").get<double>();
        const std::vector<double> rates = expected.at("lr").get<std::vector<double>>();
        for (std::size_t epoch = 1; epoch <= rates.size(); ++epoch) {
            CAPTURE(epoch);
            CHECK(schedule.lr(base_lr, int(epoch)) == rates[epoch - 1]);
        }
    }
    CHECK(LrSchedule().lr(0.3, 7) == 0.3);
}

TEST_CASE("Schedules read and write their text form, and bad ones are errors saying why") {
    for (const char* text : {"constant", "step:3:0.5", "cosine:10:0.001", "step:7:0.1"})
        CHECK(LrSchedule::parse(text).text() == text);
    CHECK(LrSchedule::parse("step:3").text() == "step:3:0.1");
    CHECK(LrSchedule::parse("cosine:10").text() == "cosine:10:0");
    const std::string expected =
        "expected constant, step:STEP_SIZE[:GAMMA] or cosine:T_MAX[:ETA_MIN], got ";
    for (const char* text : {"", "linear", "step", "step:", "step:x", "step:3:", "step:3:0.1:2",
                             "cosine:2.5", "constant:1"})
        CHECK(message_of([&] { LrSchedule::parse(text); }) == expected + "'" + text + "'");
    CHECK(message_of([] { LrSchedule::parse("step:0"); }) ==
          "step schedule: step size must be at least 1, got 0");
    CHECK(message_of([] { LrSchedule::parse("step:2:-1"); }) ==
          "step schedule: gamma must be a finite number > 0");
    CHECK(message_of([] { LrSchedule::parse("cosine:0"); }) ==
          "cosine schedule: T_max must be at least 1, got 0");
    CHECK(message_of([] { LrSchedule::parse("cosine:3:nan"); }) ==
          "cosine schedule: eta_min must be a finite number >= 0");
}

TEST_CASE("fit trains each epoch at the schedule's rate, logs it, and a resumed run keeps it") {
    TempDir dir;
    const SmallProblem problem = small_problem();
    QuietLogs quiet;
    TrainConfig config = small_config(dir / "whole.jsonl");
    config.epochs = 4;
    config.schedule = LrSchedule::step(2, 0.5);
    const RunResult whole = train_model(config, problem.train, problem.test);
    REQUIRE(whole.epochs.size() == 4);
    for (std::size_t e = 0; e < 4; ++e)
        CHECK(whole.epochs[e].lr == config.schedule.lr(config.lr, int(e + 1)));
    CHECK(whole.epochs[3].lr == 0.25);
    CHECK(read_lines(dir / "whole.jsonl").front().at("config").at("schedule") == "step:2:0.5");

    // Two epochs, saved; then resumed for the other two: the same rates and numbers.
    TrainConfig first = config;
    first.epochs = 2;
    first.log_path = dir / "first.jsonl";
    first.save_path = dir / "run.ckpt";
    train_model(first, problem.train, problem.test);
    TrainConfig rest = config;
    rest.log_path = dir / "rest.jsonl";
    rest.resume_path = dir / "run.ckpt";
    const RunResult resumed = train_model(rest, problem.train, problem.test);
    REQUIRE(resumed.epochs.size() == 4);
    for (std::size_t e = 0; e < 4; ++e) {
        CHECK(resumed.epochs[e].lr == whole.epochs[e].lr);
        CHECK(resumed.epochs[e].train_loss == whole.epochs[e].train_loss);
        CHECK(resumed.epochs[e].test_acc == whole.epochs[e].test_acc);
    }

    TrainConfig other = rest;
    other.schedule = LrSchedule::cosine(4);
    CHECK(message_of([&] { train_model(other, problem.train, problem.test); }) ==
          dir / "run.ckpt" +
              ": saved by another configuration: schedule is \"step:2:0.5\" there, "
              "\"cosine:4:0\" here");
}
