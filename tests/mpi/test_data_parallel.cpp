// Data-parallel training with fit() over 2 and 3 processes: with synchronized BatchNorm it ends
// with the weights and epoch numbers of one process on the same global batches; the replicas
// stay identical without it; a resumed run is bit-exact; an error on one process ends every
// process with that process's message.
#include <doctest/doctest.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "framework/bnlab.hpp"
#include "framework/experiment/callbacks.hpp"
#include "framework/experiment/trainer.hpp"
#include "mpi_test.hpp"

using namespace bnlab;

namespace {

struct Sets {
    Dataset train, test;
};

// 600 training and 150 test samples of 36 features (6x6 one-channel images for the CNN).
Sets blobs() {
    Rng rng(5);
    Dataset all = make_blobs(750, 36, 4, 0.5, rng);
    all.sample_shape = {1, 6, 6};
    return {slice(all, 0, 600), slice(all, 600, 750)};
}

// MLP: Dense-BN-ReLU-Dropout-Dense-BN-Tanh-Dense; CNN: Conv-BN2d-ReLU-MaxPool-Dense-BN-ReLU-Dense,
// and the same with GroupNorm (2 groups) or LayerNorm; with Batch Renormalization, Tanh and
// AvgPool2d; a ResNet-8.
Sequential model_of(const std::string& kind, std::uint64_t seed) {
    Rng rng(seed);
    // ResNet-8 of width 2: BatchNorm in every block's body and in the projections.
    if (kind == "resnet")
        return resnet<float>({1, 6, 6}, ResNetOptions().depth(8).width(2).classes(4), rng);
    // BatchNorm's successors in the CNN's places: GroupNorm and LayerNorm need no
    // synchronization; Batch Renormalization's statistics (r and d from step 4 on, relaxed over
    // 8 steps) follow sync_batchnorm. The renorm CNN has Tanh and AvgPool2d for ReLU and
    // MaxPool2d: with ReLU, at a batch of 48 over 2 processes, one pre-activation after the
    // Dense's BatchRenorm in epoch 1's last step was -5.8e-7 on one process and +1.3e-7 over
    // two (statistics rounded in another order), ReLU passed its gradient on one run only, and
    // the weights parted (0.13 relative after 3 epochs). A smooth network makes no such
    // decision, so that the test sees the synchronized arithmetic alone.
    if (kind == "cnn-group" || kind == "cnn-layer")
        return cnn<float>({1, 6, 6}, {4}, {16}, 4, Activation::relu,
                          NormChoice(kind == "cnn-group" ? NormKind::group : NormKind::layer), rng);
    if (kind == "cnn-renorm") {
        const auto renorm = [](std::size_t features) {
            return BatchRenormOptions(features).warmup_steps(4).rmax_steps(12).dmax_steps(12);
        };
        Sequential model(Shape{1, 6, 6});
        model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
        model.add<BatchRenorm>(renorm(4));
        model.add<Tanh>();
        model.add<AvgPool2d>(2);
        model.add<Dense>(36, 16, rng);
        model.add<BatchRenorm>(renorm(16));
        model.add<Tanh>();
        model.add<Dense>(16, 4, rng);
        return model;
    }
    if (kind == "cnn") {
        Sequential model(Shape{1, 6, 6});
        model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
        model.add<BatchNorm>(4);
        model.add<ReLU>();
        model.add<MaxPool2d>(2);
        model.add<Dense>(36, 16, rng);
        model.add<BatchNorm>(16);
        model.add<ReLU>();
        model.add<Dense>(16, 4, rng);
        return model;
    }
    Sequential model;
    model.add<Dense>(36, 32, rng);
    model.add<BatchNorm>(32);
    model.add<ReLU>();
    model.add<Dropout>(0.2, rng);
    model.add<Dense>(32, 16, rng);
    model.add<BatchNorm>(16);
    model.add<Tanh>();
    model.add<Dense>(16, 4, rng);
    return model;
}

FitOptions options(std::size_t batch, int epochs) {
    return FitOptions().epochs(epochs).batch_size(batch).threads(1).target(0.9);
}

struct Trained {
    Sequential model;
    RunResult result;
};

Trained train(const std::string& kind, const Sets& sets, const FitOptions& fit_options) {
    Trained trained{model_of(kind, 3), {}};
    SGD sgd(trained.model.parameters(), SGDOptions(0.05).momentum(0.9));
    Rng rng(11);
    trained.result = fit(trained.model, sgd, sets.train, sets.test, rng, fit_options);
    return trained;
}

// Largest |actual - expected| over the largest |expected|.
double deviation(const float* actual, const float* expected, std::size_t size) {
    double worst = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < size; ++i) {
        worst = std::max(worst, std::abs(double(actual[i]) - double(expected[i])));
        scale = std::max(scale, std::abs(double(expected[i])));
    }
    return scale > 0 ? worst / scale : worst;
}

// Each tensor of `actual` (parameters or buffers: name, value, size) within `tolerance`
// (relative) of `expected`'s.
template <typename Named>
void check_tensors(const std::vector<Named>& actual, const std::vector<Named>& expected,
                   double tolerance) {
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double found = deviation(actual[i].value, expected[i].value, actual[i].size);
        INFO(actual[i].name << " on rank " << world().rank() << ": relative deviation " << found);
        CHECK(found <= tolerance);
    }
}

// Every parameter and buffer of `actual` within `tolerance` (relative) of `expected`'s.
void check_state(Sequential& actual, Sequential& expected, double tolerance) {
    check_tensors(actual.parameters(), expected.parameters(), tolerance);
    check_tensors(actual.buffers(), expected.buffers(), tolerance);
}

// The same to 4 significant digits.
bool same_4_digits(double actual, double expected) {
    return std::abs(actual - expected) <= 0.5e-4 * std::abs(expected);
}

// Rank 0's tensors, bit for bit, on every process.
template <typename Named>
void check_same_as_rank_0(const std::vector<Named>& tensors) {
    for (const Named& tensor : tensors) {
        std::vector<float> root(tensor.value, tensor.value + tensor.size);
        world().broadcast(root.data(), root.size(), 0);
        INFO(tensor.name << " on rank " << world().rank());
        CHECK(std::equal(root.begin(), root.end(), tensor.value));
    }
}

void check_replicas_identical(Sequential& model) {
    check_same_as_rank_0(model.parameters());
    check_same_as_rank_0(model.buffers());
}

// The CollectiveError `fit` throws with these options (on every process), or "" if none.
std::string collective_error(const Sets& sets, const FitOptions& fit_options) {
    try {
        train("mlp", sets, fit_options);
    } catch (const CollectiveError& error) {
        return error.what();
    }
    return "";
}

}  // namespace

TEST_CASE("batch_share splits a global batch into consecutive runs, the first ones a row longer") {
    const BatchShare first = batch_share(50, 0, 3), second = batch_share(50, 1, 3),
                     third = batch_share(50, 2, 3);
    CHECK((first.begin == 0 && first.end == 17 && second.begin == 17 && second.end == 34 &&
           third.begin == 34 && third.end == 50 && third.global_rows == 50));
}

TEST_CASE("first_error gives every process the first failing process's message") {
    Communicator& comm = world();
    CHECK(first_error(comm, "") == "");
    const std::string mine =
        comm.rank() >= 1 ? "cannot read data on " + std::to_string(comm.rank()) : std::string();
    CHECK(first_error(comm, mine) == "rank 1: cannot read data on 1");
    CHECK(first_error(comm, "bad flag") == "bad flag");
}

TEST_CASE("Synchronized data-parallel fit ends with the one-process weights and epoch numbers") {
    spdlog::set_level(spdlog::level::warn);
    const Sets sets = blobs();
    // 48 rows split evenly over 2 and 3 processes; 50 unevenly (25 + 25, 17 + 17 + 16).
    for (const std::string kind : {"mlp", "cnn", "resnet", "cnn-group", "cnn-layer", "cnn-renorm"})
        for (const std::size_t batch : {48, 50}) {
            CAPTURE(kind);
            CAPTURE(batch);
            Trained one = train(kind, sets, options(batch, 3));
            Trained many =
                train(kind, sets, options(batch, 3).communicator(&world()).sync_batchnorm(true));
            check_state(many.model, one.model, 1e-5);
            REQUIRE(many.result.epochs.size() == one.result.epochs.size());
            for (std::size_t e = 0; e < one.result.epochs.size(); ++e) {
                const EpochStats &m = many.result.epochs[e], &o = one.result.epochs[e];
                CAPTURE(e);
                CHECK(m.step == o.step);
                CHECK(same_4_digits(m.train_loss, o.train_loss));
                CHECK(same_4_digits(m.train_acc, o.train_acc));
                CHECK(same_4_digits(m.test_loss, o.test_loss));
                CHECK(same_4_digits(m.test_acc, o.test_acc));
            }
            check_replicas_identical(many.model);
        }
}

TEST_CASE(
    "Without synchronization every process normalizes its own rows, and the replicas "
    "stay identical") {
    const Sets sets = blobs();
    for (const std::string kind : {"mlp", "cnn-renorm"}) {
        CAPTURE(kind);
        Trained one = train(kind, sets, options(48, 2));
        Trained many = train(kind, sets, options(48, 2).communicator(&world()));
        check_replicas_identical(many.model);
        // Statistics over 24 or 16 rows rather than 48: not the one-process run.
        std::vector<Parameter<float>> a = many.model.parameters(), e = one.model.parameters();
        CHECK(deviation(a[0].value, e[0].value, a[0].size) > 1e-4);
    }
}

TEST_CASE("A resumed data-parallel run is the uninterrupted one, bit for bit") {
    const Sets sets = blobs();
    const std::string path = "data_parallel_resume_" + std::to_string(world().size()) + ".ckpt";
    const FitOptions distributed = options(50, 3).communicator(&world()).sync_batchnorm(true);
    Trained whole = train("mlp", sets, distributed);
    FitOptions first_part = distributed;
    train("mlp", sets, first_part.epochs(2).save(path));
    FitOptions second_part = distributed;
    Trained resumed = train("mlp", sets, second_part.resume(path));
    check_state(resumed.model, whole.model, 0.0);
    REQUIRE(resumed.result.epochs.size() == 3);
    CHECK(resumed.result.epochs[2].test_loss == whole.result.epochs[2].test_loss);
    CHECK(resumed.result.epochs[2].train_loss == whole.result.epochs[2].train_loss);
    // A checkpoint of a run over this many processes is not one of a single process.
    FitOptions single = options(50, 3);
    std::string message;
    try {
        train("mlp", sets, single.resume(path));
    } catch (const std::exception& error) {
        message = error.what();
    }
    CAPTURE(message);
    CHECK(message.find("world_size") != std::string::npos);
    double barrier = 0.0;
    world().allreduce_sum(&barrier, 1);  // every process has read it before it goes
    if (world().rank() == 0) std::remove(path.c_str());

    // Nor is a single process's checkpoint a data-parallel run's (each process writes its own).
    const std::string alone = "data_parallel_alone_" + std::to_string(world().size()) + "_" +
                              std::to_string(world().rank()) + ".ckpt";
    FitOptions saved_alone = options(50, 3);
    train("mlp", sets, saved_alone.epochs(1).save(alone));
    FitOptions resumed_together = distributed;
    const std::string refused = collective_error(sets, resumed_together.resume(alone));
    CAPTURE(refused);
    CHECK(refused.find("saved by another configuration: world_size is missing there, " +
                       std::to_string(world().size()) + " here") != std::string::npos);
    std::remove(alone.c_str());
}

TEST_CASE("An error on one process ends fit on every process with that process's message") {
    const Sets sets = blobs();
    const std::string processes = std::to_string(world().size());
    // The same bad option everywhere.
    CHECK(collective_error(sets, options(1, 1).communicator(&world())) ==
          "batch 1 is smaller than the " + processes +
              " processes: each needs at least one row of every global batch");
    // Bad data on rank 1 alone.
    Sets odd = sets;
    Rng rng(1);
    if (world().rank() == 1) odd.test = make_blobs(20, 35, 4, 0.5, rng);
    const std::string log = "data_parallel_bad_data_" + processes + ".jsonl";
    CHECK(collective_error(odd, options(48, 1).communicator(&world()).log(log)) ==
          "rank 1: training inputs have 36 features but test inputs 35");
    // Rank 0, which had no error, wrote nothing either.
    std::ifstream written(log);
    CHECK(!written.good());
    // A checkpoint only rank 0 writes, in a folder that does not exist.
    const std::string error =
        collective_error(sets, options(48, 1).communicator(&world()).save("no/such/dir/x.ckpt"));
    CAPTURE(error);
    CHECK(error.rfind("rank 0: ", 0) == 0);
    CHECK(error.find("no/such/dir") != std::string::npos);
}

TEST_CASE(
    "Data-parallel fit with a validation set, early stopping and best weights is the one-process "
    "run") {
    spdlog::set_level(spdlog::level::warn);
    const Sets sets = blobs();
    auto with_callbacks = [](FitOptions fit_options) {
        return fit_options.validation_fraction(0.25).callbacks(
            {std::make_shared<EarlyStopping>(
                 EarlyStoppingOptions().monitor("val_loss").patience(2)),
             std::make_shared<BestWeights>(BestWeightsOptions().monitor("val_acc"))});
    };
    Trained one = train("mlp", sets, with_callbacks(options(48, 6)));
    Trained many = train(
        "mlp", sets, with_callbacks(options(48, 6).communicator(&world()).sync_batchnorm(true)));
    REQUIRE(many.result.epochs.size() == one.result.epochs.size());
    for (std::size_t e = 0; e < one.result.epochs.size(); ++e) {
        CAPTURE(e);
        CHECK(same_4_digits(*many.result.epochs[e].val_loss, *one.result.epochs[e].val_loss));
    }
    REQUIRE(many.result.outcome.test);
    REQUIRE(one.result.outcome.test);
    CHECK(many.result.outcome.test->epoch == one.result.outcome.test->epoch);
    CHECK(same_4_digits(many.result.outcome.test->loss, one.result.outcome.test->loss));
    CHECK(bool(many.result.outcome.stopped) == bool(one.result.outcome.stopped));
    check_state(many.model, one.model, 1e-5);
    check_replicas_identical(many.model);
}

TEST_CASE("A callback that throws on one process ends fit on every process with its message") {
    spdlog::set_level(spdlog::level::off);
    const Sets sets = blobs();
    class ThrowsOnRank1 : public Callback {
      public:
        std::string name() const override { return "ThrowsOnRank1"; }
        void on_batch_end(FitContext& run, const BatchEnd& batch) override {
            if (world().rank() == 1 && batch.step == 3)
                throw std::runtime_error("step 3 on rank 1 went wrong (epoch " +
                                         std::to_string(run.epoch) + ")");
        }
    };
    CHECK(collective_error(sets, options(48, 2).communicator(&world()).callbacks(
                                     {std::make_shared<ThrowsOnRank1>()})) ==
          "rank 1: callback ThrowsOnRank1: step 3 on rank 1 went wrong (epoch 1)");
    spdlog::set_level(spdlog::level::warn);
}
