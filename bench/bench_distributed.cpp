// Times one data-parallel training step of an MLP over the processes mpirun starts, at a fixed
// global batch, each process on its share of one in-memory batch; the time the processes spend
// communicating is measured apart: the gradient allreduce, and synchronized BatchNorm's
// collectives inside forward and backward.
//   mpirun -np 2 build/bin/bench_distributed --hidden 1024,1024 --batch 512 --threads 1
// Rank 0 prints one JSON line. A benchmark, not a test: nothing here passes or fails.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <xtensor/xview.hpp>

#include "bench_flags.hpp"
#include "framework/blas_threads.hpp"
#include "framework/bnlab.hpp"
#include "framework/mpi_communicator.hpp"

namespace {

using namespace bnlab;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Passes every collective on to `inner` and adds up the seconds they take (waiting for the
// slowest process included) and the bytes this process sends into them.
class TimedCommunicator : public Communicator {
  public:
    explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    void allreduce_sum(float* v, std::size_t n) override {
        timed(n * sizeof(float), [&] { inner_.allreduce_sum(v, n); });
    }
    void allreduce_sum(double* v, std::size_t n) override {
        timed(n * sizeof(double), [&] { inner_.allreduce_sum(v, n); });
    }
    void allgather(const double* v, std::size_t n, double* out) override {
        timed(n * sizeof(double), [&] { inner_.allgather(v, n, out); });
    }
    void broadcast(float* v, std::size_t n, int root) override {
        timed(n * sizeof(float), [&] { inner_.broadcast(v, n, root); });
    }
    void broadcast(double* v, std::size_t n, int root) override {
        timed(n * sizeof(double), [&] { inner_.broadcast(v, n, root); });
    }
    void broadcast(char* v, std::size_t n, int root) override {
        timed(n, [&] { inner_.broadcast(v, n, root); });
    }
    double seconds = 0.0;
    double bytes = 0.0;
    long calls = 0;

  private:
    template <typename Call>
    void timed(std::size_t sent, Call&& call) {
        const Clock::time_point start = Clock::now();
        call();
        seconds += seconds_since(start);
        bytes += double(sent);
        ++calls;
    }
    Communicator& inner_;
};

}  // namespace

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    MpiSession mpi(argc, argv);
    MpiCommunicator world;
    CLI::App app{
        "Times a data-parallel training step of an MLP over the processes mpirun starts, at a "
        "fixed global batch, with the time in communication apart.",
        "bench_distributed"};
    bench::StepFlags flags;
    flags.batch = 512;
    flags.steps = 50;
    std::string sync_bn = "on";
    const std::size_t inputs = 784, classes = 10;
    flags.add_to(app, "The global batch", "Threads per process");
    app.add_option("--sync-bn", sync_bn, "BatchNorm over the global batch")
        ->check(CLI::IsMember({"on", "off"}))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        return world.rank() == 0 ? app.exit(error) : error.get_exit_code();
    }

    set_threads(flags.threads);
    Rng rng(1);
    // The global batch, the same on every process; each takes its rows.
    const bench::RandomBatch data = bench::random_batch(flags.batch, inputs, classes, rng);
    const Matrix<float>& x = data.inputs;
    const Labels& y = data.labels;
    Sequential model = mlp(inputs, flags.hidden, classes, parse_activation(flags.activation),
                           flags.batchnorm == "on", rng);
    TimedCommunicator timed(world);
    if (sync_bn == "on") model.synchronize(&timed);
    DataParallel parallel(timed, model, flags.batch);
    const BatchShare share = parallel.share();
    const Matrix<float> my_x = xt::view(x, xt::range(share.begin, share.end), xt::all());
    const Labels my_y = xt::view(y, xt::range(share.begin, share.end));
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.01));
    parallel.broadcast_state();

    struct Round {
        double seconds, gradient_allreduce, batchnorm_sync;
    };
    std::vector<Round> measured;
    for (int round = 0; round <= flags.rounds; ++round) {  // round 0 warms up
        double barrier = 0.0;
        world.allreduce_sum(&barrier, 1);
        const double allreduce_before = parallel.allreduce_seconds();
        const double communication_before = timed.seconds;
        const Clock::time_point start = Clock::now();
        for (int step = 0; step < flags.steps; ++step)
            train_step(model, loss, optimizer, my_x, my_y, &parallel);
        const double seconds = seconds_since(start) / flags.steps;
        const double allreduce = (parallel.allreduce_seconds() - allreduce_before) / flags.steps;
        const double communication = (timed.seconds - communication_before) / flags.steps;
        if (round > 0) measured.push_back({seconds, allreduce, communication - allreduce});
    }
    std::sort(measured.begin(), measured.end(),
              [](const Round& a, const Round& b) { return a.seconds < b.seconds; });
    const Round median = measured[measured.size() / 2];
    // Bytes this process sends per step: the flat gradient buffer, and BatchNorm's statistics.
    const double gradient_bytes = double(parallel.values_per_step()) * sizeof(float);
    timed.bytes = 0.0;
    train_step(model, loss, optimizer, my_x, my_y, &parallel);
    const double step_bytes = timed.bytes;

    if (world.rank() == 0) {
        const nlohmann::ordered_json line = {
            {"bench", "bnlab_distributed"},
            {"hidden", flags.hidden},
            {"act", flags.activation},
            {"bn", flags.batchnorm},
            {"sync_bn", flags.batchnorm == "on" && sync_bn == "on"},
            {"batch", flags.batch},
            {"processes", world.size()},
            {"threads", flags.threads},
            {"openblas_core", blas_core_name()},
            {"samples_per_s", double(flags.batch) / median.seconds},
            {"ms_per_step", median.seconds * 1e3},
            {"ms_gradient_allreduce", median.gradient_allreduce * 1e3},
            {"ms_batchnorm_sync", median.batchnorm_sync * 1e3},
            {"gradient_bytes", gradient_bytes},
            {"bytes_per_step", step_bytes}};
        std::printf("%s\n", line.dump().c_str());
    }
}
