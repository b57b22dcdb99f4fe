// Training steps after the first allocate nothing: every buffer is sized once. And a reader does
// not trust a file's header with memory. A separate program, because it replaces the global
// operator new to count heap allocations and record the largest.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>

#include "framework/bnlab.hpp"

namespace {
long allocations = 0;
std::size_t largest_allocation = 0;
}  // namespace

void* operator new(std::size_t size) {
    ++allocations;
    if (size > largest_allocation) largest_allocation = size;
    if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
    throw std::bad_alloc();
}
void operator delete(void* memory) noexcept {
    std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept {
    std::free(memory);
}

namespace {

template <typename Optimizer>
long allocations_in_steps(Optimizer& optimizer, bnlab::Sequential& model,
                          bnlab::BatchLoader& batches, int steps,
                          bnlab::DataParallel* parallel = nullptr) {
    bnlab::SoftmaxCrossEntropy loss;
    batches.next();
    // The first step sizes the buffers.
    bnlab::train_step(model, loss, optimizer, batches.inputs(), batches.labels(), parallel);
    const long before = allocations;
    for (int step = 0; step < steps; ++step) {
        batches.next();
        bnlab::train_step(model, loss, optimizer, batches.inputs(), batches.labels(), parallel);
    }
    return allocations - before;
}

// Rank 0 of `size` processes that all hold the same values, in this one process: a sum is
// `size` times the value, a gather `size` copies. Enough to run data-parallel code paths here.
class LoopbackCommunicator : public bnlab::Communicator {
  public:
    explicit LoopbackCommunicator(int size) : size_(size) {}
    int rank() const override { return 0; }
    int size() const override { return size_; }
    void allreduce_sum(float* values, std::size_t count) override { scale(values, count); }
    void allreduce_sum(double* values, std::size_t count) override { scale(values, count); }
    void allgather(const double* values, std::size_t count, double* gathered) override {
        for (int r = 0; r < size_; ++r)
            std::copy_n(values, count, gathered + std::size_t(r) * count);
    }
    void broadcast(float*, std::size_t, int) override {}
    void broadcast(double*, std::size_t, int) override {}
    void broadcast(char*, std::size_t, int) override {}

  private:
    template <typename T>
    void scale(T* values, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i)
            values[i] *= T(size_);
    }
    int size_;
};

}  // namespace

TEST_CASE("Training steps of a Sequential with BatchNorm allocate nothing after the first") {
    using namespace bnlab;
    Rng rng(1);
    Dataset data = make_blobs(1024, 64, 10, 1.0, rng);
    BatchLoader batches(data, 100, &rng, true);
    Sequential model = mlp(64, {128, 128}, 10, Activation::relu, true, rng);
    SGD sgd(model.parameters(), SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
    CHECK(allocations_in_steps(sgd, model, batches, 5) == 0);

    batches.start_epoch();
    Sequential sigmoid_model = mlp(64, {32, 32, 32}, 10, Activation::sigmoid, true, rng);
    Adam adam(sigmoid_model.parameters(), AdamOptions(1e-3));
    CHECK(allocations_in_steps(adam, sigmoid_model, batches, 5) == 0);

    // On one thread and on three, which cut the products into blocks (framework/tensor.cpp).
    for (int threads : {1, 3}) {
        CAPTURE(threads);
        const int saved = thread_count();
        set_threads(threads);
        batches.start_epoch();
        Sequential model_on_threads = mlp(64, {128, 128}, 10, Activation::relu, true, rng);
        SGD sgd_on_threads(model_on_threads.parameters(), SGDOptions(0.1).momentum(0.9));
        CHECK(allocations_in_steps(sgd_on_threads, model_on_threads, batches, 5) == 0);
        set_threads(saved);
    }

    // A data-parallel step with synchronized BatchNorm: the gradient allreduce's flat buffer
    // and BatchNorm's gathered statistics are sized once.
    LoopbackCommunicator two(2);
    BatchLoader shared_batches(data, 100, &rng, true);
    Sequential parallel_model = mlp(64, {128, 128}, 10, Activation::relu, true, rng);
    parallel_model.synchronize(&two);
    SGD parallel_sgd(parallel_model.parameters(), SGDOptions(0.1).momentum(0.9));
    DataParallel parallel(two, parallel_model, 100);
    shared_batches.take_share(parallel.share());
    CHECK(allocations_in_steps(parallel_sgd, parallel_model, shared_batches, 5, &parallel) == 0);

    // The counter does count: a model's construction allocates.
    const long before = allocations;
    Sequential another = mlp(64, {8}, 10, Activation::tanh, false, rng);
    CHECK(allocations > before);
}

TEST_CASE("An IDX header claiming 8 GiB of data does not make the reader allocate 8 GiB") {
    // Found by fuzz/fuzz_idx.cpp: the reader sized its buffer from the header before reading.
    const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                       ("bnlab-idx-claims-8-gib-" + std::to_string(getpid()));
    // Magic (unsigned bytes, 3 dimensions), 65536 x 65536 x 2, then 5 bytes of data.
    const unsigned char bytes[] = {0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5};
    std::FILE* file = std::fopen(path.c_str(), "wb");
    REQUIRE(file);
    REQUIRE(std::fwrite(bytes, 1, sizeof bytes, file) == sizeof bytes);
    std::fclose(file);
    largest_allocation = 0;
    std::string message;
    try {
        bnlab::read_idx(path);
    } catch (const std::runtime_error& error) {
        message = error.what();
    }
    std::filesystem::remove(path);
    CHECK(message == path.string() + ": truncated: expected 8589934592 bytes of data, got 5");
    CHECK(largest_allocation <= (std::size_t(1) << 22));
}

TEST_CASE("Training steps of a CNN allocate nothing after the first, on 1 and 3 threads") {
    using namespace bnlab;
    Rng rng(2);
    Dataset data = make_blobs(256, 2 * 8 * 8, 10, 1.0, rng);
    data.sample_shape = {2, 8, 8};
    for (int threads : {1, 3}) {
        CAPTURE(threads);
        const int saved = thread_count();
        set_threads(threads);
        BatchLoader batches(data, 32, &rng, true);
        // Every CNN layer: convolutions with and without padding, 1x1, both poolings, spatial
        // BatchNorm, Dropout, global pooling, and the dense head.
        Sequential model(Shape{2, 8, 8});
        model.add<Conv2d>(Conv2dOptions(2, 8, 3).padding(1), rng);
        model.add<BatchNorm2d>(8);
        model.add<ReLU>();
        model.add<MaxPool2d>(2);
        model.add<Conv2d>(Conv2dOptions(8, 8, 1), rng);
        model.add<AvgPool2d>(2);
        model.add<Conv2d>(Conv2dOptions(8, 6, 2).stride(1).padding(1).bias(false), rng);
        model.add<GlobalAvgPool2d>();
        model.add<Dropout>(0.2, rng);
        model.add<Dense>(6, 10, rng);
        SGD sgd(model.parameters(), SGDOptions(0.05).momentum(0.9));
        CHECK(allocations_in_steps(sgd, model, batches, 5) == 0);
        // Residual blocks, with identity and projection shortcuts, and the plain twin.
        for (bool residual : {true, false}) {
            CAPTURE(residual);
            Sequential resnet8 =
                resnet<float>({2, 8, 8}, ResNetOptions().depth(8).width(4).residual(residual), rng);
            SGD resnet_sgd(resnet8.parameters(), SGDOptions(0.05).momentum(0.9));
            CHECK(allocations_in_steps(resnet_sgd, resnet8, batches, 5) == 0);
        }
        // The normalizations by each sample's statistics, InstanceNorm2d with running ones.
        Sequential normalized(Shape{2, 8, 8});
        normalized.add<Conv2d>(Conv2dOptions(2, 8, 3).padding(1), rng);
        normalized.add<GroupNorm>(4, 8);
        normalized.add<ReLU>();
        normalized.add<InstanceNorm2d>(
            InstanceNormOptions(8).affine(true).track_running_stats(true));
        normalized.add<LayerNorm>(LayerNormOptions({8, 8, 8}));
        normalized.add<Dense>(512, 16, rng);
        normalized.add<LayerNorm>(16);
        normalized.add<Dense>(16, 10, rng);
        SGD normalized_sgd(normalized.parameters(), SGDOptions(0.05).momentum(0.9));
        CHECK(allocations_in_steps(normalized_sgd, normalized, batches, 5) == 0);
        // Conv2d's direct kernels (framework/direct_conv.hpp), alone and in a fused block.
        if (direct_conv_available()) {
            Sequential direct_model(Shape{2, 8, 8});
            direct_model.add<Conv2d>(
                Conv2dOptions(2, 8, 3).padding(1).algorithm(ConvAlgorithm::direct), rng);
            direct_model.add<Conv2d>(
                Conv2dOptions(8, 8, 3).padding(1).algorithm(ConvAlgorithm::direct), rng);
            direct_model.add<BatchNorm2d>(8);
            direct_model.add<ReLU>();
            direct_model.add<Dense>(512, 10, rng);
            SGD direct_sgd(direct_model.parameters(), SGDOptions(0.05).momentum(0.9));
            CHECK(allocations_in_steps(direct_sgd, direct_model, batches, 5) == 0);
        }
        set_threads(saved);
    }
}

// The kernels the programs run on (a restart on a CPU OpenBLAS does not know).
int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);
    return doctest::Context(argc, argv).run();
}
