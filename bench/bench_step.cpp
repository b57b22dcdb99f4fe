// Times one training step (forward, loss, backward, SGD step) of an MLP on a fixed in-memory
// batch, and eval-mode inference with and without BatchNorm folded into the Dense layers, and
// compares the step with what its matrix products alone would allow at the sgemm speed measured
// just before on the same shapes and threads (and, for comparison, on OpenBLAS's own threads).
//   build/bin/bench_step --hidden 256,256 --act relu --bn on --batch 128 --threads 2
// Prints one JSON line. A benchmark, not a test: nothing here passes or fails.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "framework/blas_threads.hpp"
#include "framework/bnlab.hpp"

// OpenBLAS's own thread pool, which bnlab keeps at one thread: set here only to time the
// products on OpenBLAS's threads instead of bnlab's, for comparison.
extern "C" void openblas_set_num_threads(int num_threads);

namespace {

using namespace bnlab;
using Clock = std::chrono::steady_clock;

// Median seconds per call of `action` over `rounds` rounds of `calls` calls each, after one
// warm-up round.
template <typename Action>
double seconds_per_call(int rounds, int calls, Action&& action) {
    for (int i = 0; i < calls; ++i)
        action();
    std::vector<double> per_call;
    for (int round = 0; round < rounds; ++round) {
        const Clock::time_point start = Clock::now();
        for (int i = 0; i < calls; ++i)
            action();
        per_call.push_back(std::chrono::duration<double>(Clock::now() - start).count() / calls);
    }
    std::sort(per_call.begin(), per_call.end());
    return per_call[per_call.size() / 2];
}

// The matrix products of one training step of Dense layers in -> out on a batch of m: forward
// x W^T, weight gradient dy^T x, and input gradient dy W (not for the first layer, whose input
// needs no gradient).
struct Product {
    std::size_t m, n, k;  // result m x n, inner dimension k
    bool transpose_a, transpose_b;
};

std::vector<Product> step_products(const std::vector<std::size_t>& widths, std::size_t batch) {
    std::vector<Product> products;
    for (std::size_t layer = 0; layer + 1 < widths.size(); ++layer) {
        const std::size_t in = widths[layer], out = widths[layer + 1];
        products.push_back({batch, out, in, false, true});                  // y = x W^T
        products.push_back({out, in, batch, true, false});                  // dW = dy^T x
        if (layer > 0) products.push_back({batch, in, out, false, false});  // dx = dy W
    }
    return products;
}

double flops_of(const std::vector<Product>& products) {
    double flops = 0.0;
    for (const Product& p : products)
        flops += 2.0 * double(p.m) * double(p.n) * double(p.k);
    return flops;
}

// Seconds the products take through gemm, each timed alone on its own buffers: on bnlab's threads
// (framework/blas_threads.hpp), each block through single-threaded OpenBLAS sgemm.
double sgemm_seconds(const std::vector<Product>& products, int rounds, Rng& rng) {
    double seconds = 0.0;
    for (const Product& p : products) {
        Matrix<float> a = xt::empty<float>({p.transpose_a ? p.k : p.m, p.transpose_a ? p.m : p.k});
        Matrix<float> b = xt::empty<float>({p.transpose_b ? p.n : p.k, p.transpose_b ? p.k : p.n});
        Matrix<float> c = xt::zeros<float>({p.m, p.n});
        for (Matrix<float>* operand : {&a, &b})
            for (float& value : *operand)
                value = float(rng.uniform(-1.0, 1.0));
        // Back to back, at least 10 calls and about 2 GFLOP per round (20 ms at 100 GFLOP/s),
        // so that neither the clock nor waking OpenBLAS's threads counts.
        const int calls = std::max(10, int(2e9 / (2.0 * double(p.m * p.n * p.k))));
        seconds +=
            seconds_per_call(rounds, calls, [&] { gemm(a, p.transpose_a, b, p.transpose_b, c); });
    }
    return seconds;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "Times a training step and inference of an MLP on one in-memory batch, next to "
        "the limit its matrix products set at the measured sgemm speed.",
        "bench_step"};
    std::vector<std::size_t> hidden{256, 256};
    std::string activation = "relu", batchnorm = "on";
    std::size_t batch = 128, inputs = 784, classes = 10;
    int threads = 1, steps = 200, rounds = 7;
    app.add_option("--hidden", hidden, "Hidden widths")->delimiter(',')->capture_default_str();
    app.add_option("--act", activation)
        ->check(CLI::IsMember({"relu", "sigmoid", "tanh"}))
        ->capture_default_str();
    app.add_option("--bn", batchnorm)->check(CLI::IsMember({"on", "off"}))->capture_default_str();
    app.add_option("--batch", batch)->check(CLI::Range(2, 1 << 20))->capture_default_str();
    app.add_option("--inputs", inputs)->check(CLI::PositiveNumber)->capture_default_str();
    app.add_option("--classes", classes)->check(CLI::Range(2, 1 << 20))->capture_default_str();
    app.add_option("--threads", threads, "Threads for the matrix products")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--steps", steps, "Steps per timed round")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--rounds", rounds, "Timed rounds; the median is reported")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    set_threads(threads);
    Rng rng(1);
    std::vector<std::size_t> widths{inputs};
    widths.insert(widths.end(), hidden.begin(), hidden.end());
    widths.push_back(classes);
    const std::vector<Product> products = step_products(widths, batch);
    const double step_flops = flops_of(products);
    const double limit_seconds = sgemm_seconds(products, rounds, rng);
    // The same products as one sgemm call each on OpenBLAS's own `threads` threads.
    set_threads(1);
    openblas_set_num_threads(threads);
    const double openblas_threaded_seconds = sgemm_seconds(products, rounds, rng);
    openblas_set_num_threads(1);
    set_threads(threads);

    Matrix<float> x = xt::empty<float>({batch, inputs});
    for (float& value : x)
        value = float(rng.uniform(0.0, 1.0));
    Labels y = xt::empty<int>({batch});
    for (int& label : y)
        label = int(rng.below(classes));
    Sequential model =
        mlp(inputs, hidden, classes, parse_activation(activation), batchnorm == "on", rng);
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.01));
    const double step_seconds =
        seconds_per_call(rounds, steps, [&] { train_step(model, loss, optimizer, x, y); });
    model.eval();
    const double inference_seconds = seconds_per_call(rounds, steps, [&] { model.forward(x); });
    Sequential folded = fold_batchnorm(model);
    const double folded_seconds = seconds_per_call(rounds, steps, [&] { folded.forward(x); });

    const nlohmann::ordered_json line = {
        {"bench", "bnlab"},
        {"hidden", hidden},
        {"act", activation},
        {"bn", batchnorm},
        {"batch", batch},
        {"threads", threads},
        {"bnlab_threads", thread_count()},
        {"openblas_threads", openblas_threads()},
        {"openblas_core", blas_core_name()},
        {"samples_per_s", double(batch) / step_seconds},
        {"ms_per_step", step_seconds * 1e3},
        {"gflops", step_flops / step_seconds / 1e9},
        {"sgemm_gflops", step_flops / limit_seconds / 1e9},
        {"limit_samples_per_s", double(batch) / limit_seconds},
        {"percent_of_limit", 100.0 * limit_seconds / step_seconds},
        {"openblas_threaded_limit_samples_per_s", double(batch) / openblas_threaded_seconds},
        {"inference_samples_per_s", double(batch) / inference_seconds},
        {"inference_folded_samples_per_s", double(batch) / folded_seconds}};
    std::printf("%s\n", line.dump().c_str());
}
