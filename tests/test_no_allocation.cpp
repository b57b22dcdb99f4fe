// Training steps after the first allocate nothing: every buffer is sized once. A separate
// program, because it replaces the global operator new to count heap allocations.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>
#include <new>

#include "framework/bnlab.hpp"

namespace {
long allocations = 0;
}

void* operator new(std::size_t size) {
    ++allocations;
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
                          bnlab::BatchLoader& batches, int steps) {
    bnlab::SoftmaxCrossEntropy loss;
    batches.next();
    bnlab::train_step(model, loss, optimizer, batches.inputs(), batches.labels());  // sizes buffers
    const long before = allocations;
    for (int step = 0; step < steps; ++step) {
        batches.next();
        bnlab::train_step(model, loss, optimizer, batches.inputs(), batches.labels());
    }
    return allocations - before;
}

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

    // The counter does count: a model's construction allocates.
    const long before = allocations;
    Sequential another = mlp(64, {8}, 10, Activation::tanh, false, rng);
    CHECK(allocations > before);
}
