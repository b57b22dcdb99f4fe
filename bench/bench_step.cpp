// Times one training step (forward, loss, backward, SGD step) of an MLP, a CNN or a ResNet on a
// fixed in-memory batch, and eval-mode inference with and without BatchNorm folded into the layers
// before it, and compares the step with what its matrix products alone would allow at the sgemm
// speed measured just before on the same shapes and threads (and, for comparison, on OpenBLAS's
// own threads).
//   build/bin/bench_step --hidden 256,256 --act relu --bn on --batch 128 --threads 2
//   build/bin/bench_step --channels 16,32 --hidden 128 --bn on --batch 128 --threads 2
//   build/bin/bench_step --resnet 20 --width 16 --bn on --batch 128 --threads 2
//   build/bin/bench_step --channels 16,32 --hidden 128 --bn-cost --threads 1 --rounds 20
// The limit is also measured on every OpenBLAS core the CPU can run (each in a process of its
// own, OPENBLAS_CORETYPE being read when OpenBLAS loads), and the best of them is printed beside
// it with the CPU, so that a step on slow kernels cannot look close to its limit.
// --bn-cost times the step with BatchNorm and without it instead, alternating in one process.
// Prints one JSON line. A benchmark, not a test: nothing here passes or fails.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_flags.hpp"
#include "framework/blas_threads.hpp"
#include "framework/bnlab.hpp"

// OpenBLAS's own thread pool, which bnlab keeps at one thread: set here only to time the
// products on OpenBLAS's threads instead of bnlab's, for comparison.
extern "C" void openblas_set_num_threads(int num_threads);

namespace {

using namespace bnlab;
using Clock = std::chrono::steady_clock;

// The median of `values` (the mean of the middle two for an even count).
double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

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
    return median(per_call);
}

// The matrix products of one training step of Dense layers in -> out on a batch of m: forward
// x W^T, weight gradient dy^T x, and input gradient dy W (not for the first layer, whose input
// needs no gradient).
struct Product {
    std::size_t m, n, k;  // result m x n, inner dimension k
    bool transpose_a, transpose_b;
    // Products a layer computes once per sample (a convolution's), each on one thread, the
    // samples spread over the threads; otherwise one product cut over the threads.
    std::size_t per_sample_of = 0;  // the batch, for per-sample products
};

// The products of one training step of `layer` on a batch of `batch`, appended to `products`.
// A Dense in -> out: forward x W^T, weight gradient dy^T x, input gradient dy W. A Conv2d, per
// sample: y = W col [O, P] (inner C k k), dW += dy col^T [O, C k k] (inner P), and dcol = W^T dy
// [C k k, P] (inner O), or, where the layer computes the input gradient as a convolution,
// dx = W' col(dy) [C, P] (inner O k k). A Conv2d on the direct kernels (Conv2d::runs_direct)
// counts the same products: they are its arithmetic, and the limit that arithmetic at sgemm's
// speed, which the direct kernels, reading the image in place, can pass. The model's first
// weighted layer computes no input gradient (`first`).
// Layers inside others (nested models, residual blocks) count too.
void add_products(BasicLayer<float>& layer, std::size_t batch, bool& first,
                  std::vector<Product>& products) {
    if (auto* conv = dynamic_cast<Conv2d*>(&layer)) {
        const Shape out = *conv->output_shape();
        const std::size_t channels = out[0], k = conv->weight().shape(1), p = out[1] * out[2];
        products.push_back({channels, p, k, false, false, batch});
        products.push_back({channels, k, p, false, true, batch});
        const std::size_t in_channels = conv->options().in_channels(),
                          kernel = conv->options().window().kernel;
        if (!first && conv->input_grad_by_convolution())
            products.push_back({in_channels, p, channels * kernel * kernel, false, false, batch});
        else if (!first)
            products.push_back({k, p, channels, true, false, batch});
        first = false;
    } else if (auto* dense = dynamic_cast<Dense*>(&layer)) {
        const std::size_t in = *dense->in_features(), out = *dense->out_features();
        products.push_back({batch, out, in, false, true});               // y = x W^T
        products.push_back({out, in, batch, true, false});               // dW = dy^T x
        if (!first) products.push_back({batch, in, out, false, false});  // dx = dy W
        first = false;
    }
    for (const auto& child : layer.children())
        add_products(*child.second, batch, first, products);
}

double flops_of(const std::vector<Product>& products) {
    double flops = 0.0;
    for (const Product& p : products)
        flops += 2.0 * double(p.m) * double(p.n) * double(p.k) *
                 double(std::max<std::size_t>(1, p.per_sample_of));
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
        if (p.per_sample_of == 0) {
            seconds += seconds_per_call(rounds, calls,
                                        [&] { gemm(a, p.transpose_a, b, p.transpose_b, c); });
            continue;
        }
        // One thread's sgemm per sample, the samples shared evenly by the threads.
        const double one = seconds_per_call(rounds, calls, [&] {
            gemm(p.transpose_a, p.transpose_b, p.m, p.n, p.k, 1.0f, a.data(), a.shape(1), b.data(),
                 b.shape(1), 0.0f, c.data(), p.n);
        });
        const std::size_t threads = std::size_t(parts_for(p.per_sample_of));
        seconds += one * double((p.per_sample_of + threads - 1) / threads);
    }
    return seconds;
}

// The OpenBLAS cores this CPU can run, oldest first: the generic one, and each newer one whose
// instructions the CPU has.
std::vector<std::string> runnable_cores(const CpuInfo& cpu) {
    std::vector<std::string> cores{"Prescott"};
    if (cpu.avx) cores.push_back("Sandybridge");
    if (cpu.avx2_fma) cores.push_back("Haswell");
    if (cpu.avx2_fma && cpu.vendor == "AuthenticAMD") cores.push_back("Zen");
    if (cpu.avx512) cores.push_back("SkylakeX");
    if (cpu.avx512_bf16) cores.push_back("Cooperlake");
    return cores;
}

std::string quoted(const std::string& word) {
    std::string text = "'";
    for (char c : word)
        text += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return text + "'";
}

// This program again with `arguments` and --limit-only, on OpenBLAS's `core` kernels: the JSON
// line it prints.
nlohmann::json limit_on_core(const std::string& core, const std::vector<std::string>& arguments) {
    std::string command = "env OPENBLAS_CORETYPE=" + core + " BNLAB_BLAS_CORE=keep";
    for (const std::string& argument : arguments)
        command += " " + quoted(argument);
    command += " --limit-only";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    if (!pipe) throw std::runtime_error("cannot run " + command);
    std::string output;
    char buffer[4096];
    while (std::size_t read = std::fread(buffer, 1, sizeof buffer, pipe.get()))
        output.append(buffer, read);
    return nlohmann::json::parse(output);
}

// BatchNorm's cost: the same network's training step with BatchNorm and without, in one process.
struct BatchNormCost {
    double ms_with = 0.0, ms_without = 0.0;  // medians over the rounds, ms per step
    double percent = 0.0;                    // median over the rounds of 100 (with / without - 1)
    std::vector<double> round_percents;      // each round's, in order
};

// Times `steps` training steps of each model in turn, `rounds` times, the order swapped every
// round and one untimed step after each switch: two runs of separate processes drift apart with
// the machine's state by several percent (a VM's neighbours, its clock), which here falls on
// both models alike.
BatchNormCost batchnorm_cost(Sequential& with, Sequential& without, std::size_t batch,
                             std::size_t inputs, std::size_t classes, int steps, int rounds,
                             Rng& rng) {
    const bench::RandomBatch data = bench::random_batch(batch, inputs, classes, rng);
    SoftmaxCrossEntropy loss;
    SGD with_optimizer(with.parameters(), SGDOptions(0.01));
    SGD without_optimizer(without.parameters(), SGDOptions(0.01));
    const auto step_with = [&] {
        train_step(with, loss, with_optimizer, data.inputs, data.labels);
    };
    const auto step_without = [&] {
        train_step(without, loss, without_optimizer, data.inputs, data.labels);
    };
    // seconds per step over `steps` steps, after one untimed step
    const auto time = [&](const auto& step) {
        step();
        const Clock::time_point start = Clock::now();
        for (int i = 0; i < steps; ++i)
            step();
        return std::chrono::duration<double>(Clock::now() - start).count() / steps;
    };
    for (int i = 0; i < steps; ++i)
        step_with(), step_without();
    std::vector<double> with_ms, without_ms;
    BatchNormCost cost;
    for (int round = 0; round < rounds; ++round) {
        double with_seconds, without_seconds;
        if (round % 2 == 0) {
            with_seconds = time(step_with);
            without_seconds = time(step_without);
        } else {
            without_seconds = time(step_without);
            with_seconds = time(step_with);
        }
        with_ms.push_back(with_seconds * 1e3);
        without_ms.push_back(without_seconds * 1e3);
        cost.round_percents.push_back(100.0 * (with_seconds / without_seconds - 1.0));
    }
    cost.ms_with = median(with_ms);
    cost.ms_without = median(without_ms);
    cost.percent = median(cost.round_percents);
    return cost;
}

}  // namespace

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    CLI::App app{
        "Times a training step and inference of an MLP on one in-memory batch, next to "
        "the limit its matrix products set at the measured sgemm speed.",
        "bench_step"};
    bench::StepFlags flags;
    std::vector<std::size_t> channels;
    std::size_t inputs = 784, classes = 10;
    flags.add_to(app, "Rows per step", "Threads for the matrix products");
    app.add_option("--channels", channels,
                   "A CNN (models/cnn.hpp) of these Conv3x3 blocks on 1 x 28 x 28 images")
        ->delimiter(',');
    std::size_t resnet_depth = 0, width = 16;
    app.add_option("--resnet", resnet_depth,
                   "A ResNet (models/resnet.hpp) of this depth on 1 x 28 x 28 images");
    app.add_option("--width", width, "The ResNet's first-stage channels")->capture_default_str();
    app.add_option("--inputs", inputs)->check(CLI::PositiveNumber)->capture_default_str();
    app.add_option("--classes", classes)->check(CLI::Range(2, 1 << 20))->capture_default_str();
    std::string core_limits = "on";
    app.add_option("--core-limits", core_limits,
                   "Measure the limit on every OpenBLAS core this CPU runs, and print the best")
        ->check(CLI::IsMember({"on", "off"}))
        ->capture_default_str();
    bool limit_only = false;
    app.add_flag("--limit-only", limit_only, "Print only the limit on this process's kernels");
    std::string kernels = "widest";
    app.add_option("--kernels", kernels,
                   "bnlab's own kernels no wider than this (limit_layer_kernels), to time the "
                   "code paths of a CPU without AVX-512 or AVX2 on this one; OpenBLAS's are "
                   "unchanged")
        ->check(CLI::IsMember({"widest", "avx2", "generic"}))
        ->capture_default_str();
    bool bn_cost = false;
    app.add_flag("--bn-cost", bn_cost,
                 "Time the step with BatchNorm and without it, alternating round by round in "
                 "this process, and print BatchNorm's cost (--bn is not used)");
    CLI11_PARSE(app, argc, argv);
    if (kernels != "widest")
        limit_layer_kernels(kernels == "avx2" ? KernelLevel::avx2 : KernelLevel::generic);
    const std::vector<std::size_t>& hidden = flags.hidden;
    const std::string &activation = flags.activation, &batchnorm = flags.batchnorm;
    const std::size_t batch = flags.batch;
    const int threads = flags.threads, steps = flags.steps, rounds = flags.rounds;

    set_threads(threads);
    Rng rng(1);
    const bool is_cnn = !channels.empty(), is_resnet = resnet_depth > 0;
    if (is_cnn || is_resnet) inputs = 28 * 28;
    const auto make_model = [&](bool with_batchnorm) {
        return is_resnet ? resnet<float>(Shape{1, 28, 28},
                                         ResNetOptions()
                                             .depth(resnet_depth)
                                             .width(width)
                                             .classes(classes)
                                             .batchnorm(with_batchnorm),
                                         rng)
               : is_cnn  ? cnn(Shape{1, 28, 28}, channels, hidden, classes,
                               parse_activation(activation), with_batchnorm, rng)
                        : mlp(inputs, hidden, classes, parse_activation(activation), with_batchnorm,
                              rng);
    };
    const char* model_name = is_resnet ? "resnet" : is_cnn ? "cnn" : "mlp";
    // What every line says of the network, the machine and the kernels.
    const auto run_fields = [&] {
        return nlohmann::ordered_json{{"model", model_name},
                                      {"channels", channels},
                                      {"depth", resnet_depth},
                                      {"width", width},
                                      {"hidden", hidden},
                                      {"act", activation},
                                      {"batch", batch},
                                      {"threads", threads},
                                      {"openblas_core", blas_core_name()},
                                      {"cpu", cpu_info().describe()},
                                      {"kernels", kernels},
                                      {"direct_conv_kernels", direct_conv_kernels()}};
    };
    if (bn_cost) {
        // one after the other: both draw their weights from rng
        Sequential with = make_model(true);
        Sequential without = make_model(false);
        const BatchNormCost cost =
            batchnorm_cost(with, without, batch, inputs, classes, steps, rounds, rng);
        nlohmann::ordered_json line = {{"bench", "bnlab_bn_cost"}};
        line.update(run_fields());
        line.update(nlohmann::ordered_json{{"steps", steps},
                                           {"rounds", rounds},
                                           {"ms_per_step_bn", cost.ms_with},
                                           {"ms_per_step_no_bn", cost.ms_without},
                                           {"bn_cost_percent", cost.percent},
                                           {"round_costs_percent", cost.round_percents}});
        std::printf("%s\n", line.dump().c_str());
        return 0;
    }
    Sequential model = make_model(batchnorm == "on");
    std::vector<Product> products;
    bool first = true;
    add_products(model, batch, first, products);
    const double step_flops = flops_of(products);
    const double limit_seconds = sgemm_seconds(products, rounds, rng);
    if (limit_only) {
        const nlohmann::ordered_json line = {{"openblas_core", blas_core_name()},
                                             {"limit_samples_per_s", double(batch) / limit_seconds},
                                             {"sgemm_gflops", step_flops / limit_seconds / 1e9}};
        std::printf("%s\n", line.dump().c_str());
        return 0;
    }
    // The same limit on each core this CPU runs, in processes of their own.
    nlohmann::ordered_json core_limit = nlohmann::ordered_json::object();
    std::string best_core = blas_core_name();
    double best_limit = double(batch) / limit_seconds;
    if (core_limits == "on") {
        std::vector<std::string> arguments(argv, argv + argc);
        arguments[0] = std::filesystem::read_symlink("/proc/self/exe").string();
        for (const std::string& core : runnable_cores(cpu_info())) {
            const nlohmann::json measured = limit_on_core(core, arguments);
            const double limit = measured.at("limit_samples_per_s").get<double>();
            const std::string ran = measured.at("openblas_core").get<std::string>();
            core_limit[ran] = limit;
            if (limit > best_limit) {
                best_limit = limit;
                best_core = ran;
            }
        }
    }
    // The same products as one sgemm call each on OpenBLAS's own `threads` threads.
    set_threads(1);
    openblas_set_num_threads(threads);
    const double openblas_threaded_seconds = sgemm_seconds(products, rounds, rng);
    openblas_set_num_threads(1);
    set_threads(threads);

    const bench::RandomBatch data = bench::random_batch(batch, inputs, classes, rng);
    const Matrix<float>& x = data.inputs;
    const Labels& y = data.labels;
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.01));
    const double step_seconds =
        seconds_per_call(rounds, steps, [&] { train_step(model, loss, optimizer, x, y); });
    model.eval();
    const double inference_seconds = seconds_per_call(rounds, steps, [&] { model.forward(x); });
    Sequential folded = fold_batchnorm(model);
    const double folded_seconds = seconds_per_call(rounds, steps, [&] { folded.forward(x); });

    nlohmann::ordered_json line = {{"bench", "bnlab"}};
    line.update(run_fields());
    line.update(nlohmann::ordered_json{
        {"bn", batchnorm},
        {"bnlab_threads", thread_count()},
        {"openblas_threads", openblas_threads()},
        {"samples_per_s", double(batch) / step_seconds},
        {"ms_per_step", step_seconds * 1e3},
        {"gflops", step_flops / step_seconds / 1e9},
        {"sgemm_gflops", step_flops / limit_seconds / 1e9},
        {"limit_samples_per_s", double(batch) / limit_seconds},
        {"percent_of_limit", 100.0 * limit_seconds / step_seconds},
        {"openblas_threaded_limit_samples_per_s", double(batch) / openblas_threaded_seconds},
        {"core_limit_samples_per_s", core_limit},
        {"best_core", best_core},
        {"best_core_limit_samples_per_s", best_limit},
        {"percent_of_best_core_limit", 100.0 * double(batch) / best_limit / step_seconds},
        {"inference_samples_per_s", double(batch) / inference_seconds},
        {"inference_folded_samples_per_s", double(batch) / folded_seconds}});
    std::printf("%s\n", line.dump().c_str());
}
