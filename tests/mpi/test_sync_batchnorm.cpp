// Synchronized BatchNorm over MPI, run by CTest under mpiexec with 2 and 3 processes: every
// process holds the same global batch (the same seeded generator), takes its rows of it, and
// its synchronized layer must give what one process gives on the whole batch, in double, to
// 1e-10 relative: outputs, input gradients, the parameter gradients summed over the processes,
// and the running statistics, with even, uneven and empty shares.
// (Every process runs every test case in the same order: see mpi_test.hpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "framework/bnlab.hpp"
#include "mpi_test.hpp"

using namespace bnlab;

namespace {

// Counts the collectives it forwards (eval mode must call none).
class CountingCommunicator : public Communicator {
  public:
    explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    void allreduce_sum(float* v, std::size_t n) override { ++calls, inner_.allreduce_sum(v, n); }
    void allreduce_sum(double* v, std::size_t n) override { ++calls, inner_.allreduce_sum(v, n); }
    void allgather(const double* v, std::size_t n, double* out) override {
        ++calls, inner_.allgather(v, n, out);
    }
    void broadcast(float* v, std::size_t n, int root) override {
        ++calls, inner_.broadcast(v, n, root);
    }
    void broadcast(double* v, std::size_t n, int root) override {
        ++calls, inner_.broadcast(v, n, root);
    }
    void broadcast(char* v, std::size_t n, int root) override {
        ++calls, inner_.broadcast(v, n, root);
    }
    long calls = 0;

  private:
    Communicator& inner_;
};

Matrix<double> random_rows(std::size_t rows, std::size_t cols, Rng& rng, double scale,
                           double shift) {
    Matrix<double> result = xt::empty<double>({rows, cols});
    for (double& value : result)
        value = shift + scale * rng.normal();
    return result;
}

// Rows [first, first + count) of `all`.
Matrix<double> rows_of(const Matrix<double>& all, std::size_t first, std::size_t count) {
    Matrix<double> part = xt::empty<double>({count, all.shape(1)});
    std::copy_n(all.data() + first * all.shape(1), count * all.shape(1), part.data());
    return part;
}

// Largest |actual - expected| over the largest |expected|.
double deviation(const double* actual, const double* expected, std::size_t size) {
    double worst = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < size; ++i) {
        worst = std::max(worst, std::abs(actual[i] - expected[i]));
        scale = std::max(scale, std::abs(expected[i]));
    }
    return scale > 0 ? worst / scale : worst;
}

void check_close(const std::string& what, const double* actual, const double* expected,
                 std::size_t size) {
    const double found = deviation(actual, expected, size);
    INFO(what << " on rank " << world().rank() << ": relative deviation " << found);
    CHECK(found <= 1e-10);
}

// Each process's share of `total` rows: "even", "uneven" (3 + 1 on two processes) or "empty"
// (the first process has none).
std::vector<std::size_t> shares(const std::string& split, std::size_t processes) {
    std::vector<std::size_t> rows(processes, 4);
    if (split == "uneven")
        for (std::size_t r = 0; r < processes; ++r)
            rows[r] = r % 2 == 0 ? 3 : 1;
    if (split == "empty") rows[0] = 0;
    return rows;
}

void check_synchronized(const Shape& sample, const std::string& split) {
    CAPTURE(split);
    CAPTURE(shape_string(sample));
    Communicator& comm = world();
    const std::vector<std::size_t> rows = shares(split, std::size_t(comm.size()));
    const std::size_t total = std::accumulate(rows.begin(), rows.end(), std::size_t(0));
    const std::size_t first =
        std::accumulate(rows.begin(), rows.begin() + comm.rank(), std::size_t(0));
    const std::size_t mine = rows[std::size_t(comm.rank())], width = shape_size(sample);

    BasicBatchNorm<double> whole(sample[0]), synced(sample[0]);
    whole.set_input_shape(sample);
    synced.set_input_shape(sample);
    CountingCommunicator counting(comm);
    synced.synchronize(&counting);
    Rng rng(7);
    for (std::size_t c = 0; c < sample[0]; ++c) {
        const double gamma = rng.uniform(0.5, 1.5), beta = rng.normal();
        whole.gamma()(c) = synced.gamma()(c) = gamma;
        whole.beta()(c) = synced.beta()(c) = beta;
    }
    // Three training steps: outputs and gradients each step, the running statistics after.
    for (int step = 0; step < 3; ++step) {
        CAPTURE(step);
        const Matrix<double> x = random_rows(total, width, rng, 2.0, 1.0 + step);
        const Matrix<double> dy = random_rows(total, width, rng, 1.0, 0.0);
        whole.zero_grad();
        synced.zero_grad();
        const Matrix<double> y = whole.forward(x);
        const Matrix<double> dx = whole.backward(dy);
        const Matrix<double> my_y = synced.forward(rows_of(x, first, mine));
        const Matrix<double> my_dx = synced.backward(rows_of(dy, first, mine));
        check_close("y", my_y.data(), y.data() + first * width, mine * width);
        check_close("dx", my_dx.data(), dx.data() + first * width, mine * width);
        // gamma's and beta's gradients are each process's share; their sum is the whole's.
        Vector<double> dgamma = synced.gamma_grad(), dbeta = synced.beta_grad();
        comm.allreduce_sum(dgamma.data(), dgamma.size());
        comm.allreduce_sum(dbeta.data(), dbeta.size());
        check_close("dgamma", dgamma.data(), whole.gamma_grad().data(), dgamma.size());
        check_close("dbeta", dbeta.data(), whole.beta_grad().data(), dbeta.size());
    }
    check_close("running_mean", synced.running_mean().data(), whole.running_mean().data(),
                sample[0]);
    check_close("running_var", synced.running_var().data(), whole.running_var().data(), sample[0]);
    CHECK(synced.num_batches_tracked() == 3);

    // The running statistics are the same on every process, bit for bit.
    std::vector<double> running(synced.running_var().begin(), synced.running_var().end());
    std::vector<double> everyone(running.size() * std::size_t(comm.size()));
    comm.allgather(running.data(), running.size(), everyone.data());
    for (int r = 0; r < comm.size(); ++r)
        CHECK(std::equal(running.begin(), running.end(),
                         everyone.begin() + std::ptrdiff_t(r * running.size())));

    // Eval mode uses them and communicates nothing.
    whole.eval();
    synced.eval();
    const long calls = counting.calls;
    const Matrix<double> x = random_rows(total, width, rng, 1.0, 0.5);
    const Matrix<double> y = whole.forward(x);
    if (mine > 0) {  // an empty batch outside a synchronized training step is an error
        const Matrix<double> my_y = synced.forward(rows_of(x, first, mine));
        synced.backward(rows_of(x, first, mine));
        check_close("eval y", my_y.data(), y.data() + first * width, mine * width);
    }
    CHECK(counting.calls == calls);
}

}  // namespace

TEST_CASE("Synchronized BatchNorm over the processes equals BatchNorm on the whole batch") {
    for (const char* split : {"even", "uneven", "empty"}) {
        check_synchronized({3}, split);        // BatchNorm1d
        check_synchronized({2, 3, 2}, split);  // BatchNorm2d
    }
}

TEST_CASE("A global batch of one value per feature is PyTorch's error on every process") {
    Communicator& comm = world();
    BasicBatchNorm<double> bn(2);
    bn.synchronize(&comm);
    const std::size_t mine = comm.rank() == 0 ? 1 : 0;
    const Matrix<double> x = xt::ones<double>({mine, std::size_t{2}});
    std::string message;
    try {
        bn.forward(x);
    } catch (const std::invalid_argument& error) {
        message = error.what();
    }
    CHECK(message ==
          "BatchNorm(2, eps=1e-05, momentum=0.1): expected more than 1 value per "
          "feature when training, got 1 over the " +
              std::to_string(comm.size()) + " processes of a synchronized batch");
}
