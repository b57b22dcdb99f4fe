#pragma once
// What bench_step and bench_distributed share: the MLP's and the timing's flags, and the
// random batch they time on.

#include <cstddef>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "framework/bnlab.hpp"

namespace bnlab::bench {

struct StepFlags {
    std::vector<std::size_t> hidden{256, 256};
    std::string activation = "relu";
    std::string batchnorm = "on";
    std::size_t batch = 128;
    int threads = 1;
    int steps = 200;
    int rounds = 7;

    // --hidden, --act, --bn, --batch, --threads, --steps and --rounds, the defaults above.
    void add_to(CLI::App& app, const std::string& batch_help, const std::string& threads_help) {
        app.add_option("--hidden", hidden, "Hidden widths")->delimiter(',')->capture_default_str();
        app.add_option("--act", activation)
            ->check(CLI::IsMember({"relu", "sigmoid", "tanh"}))
            ->capture_default_str();
        app.add_option("--bn", batchnorm)
            ->check(CLI::IsMember({"on", "off"}))
            ->capture_default_str();
        app.add_option("--batch", batch, batch_help)
            ->check(CLI::Range(2, 1 << 20))
            ->capture_default_str();
        app.add_option("--threads", threads, threads_help)
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_option("--steps", steps, "Steps per timed round")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_option("--rounds", rounds, "Timed rounds; the median is reported")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
    }
};

// A batch of `rows` inputs uniform in [0, 1) and labels uniform over `classes`.
struct RandomBatch {
    Matrix<float> inputs;
    Labels labels;
};
inline RandomBatch random_batch(std::size_t rows, std::size_t features, std::size_t classes,
                                Rng& rng) {
    RandomBatch batch{xt::empty<float>({rows, features}), xt::empty<int>({rows})};
    for (float& value : batch.inputs)
        value = float(rng.uniform(0.0, 1.0));
    for (int& label : batch.labels)
        label = int(rng.below(classes));
    return batch;
}

}  // namespace bnlab::bench
