// The main example until the Fashion-MNIST trainer exists: the same small MLP trained with and
// without BatchNorm on synthetic Gaussian blobs, printing the loss as it falls.
#include <spdlog/spdlog.h>

#include "framework/bnlab.hpp"

namespace {

void run(bool batchnorm, std::uint64_t seed) {
    using namespace bnlab;
    Rng rng(seed);
    Dataset blobs = make_blobs(10240, 32, 8, 0.35, rng);
    Dataset train_set = slice(blobs, 0, 8192), test_set = slice(blobs, 8192, 10240);
    Sequential model = mlp(32, {64, 64, 64}, 8, Activation::sigmoid, batchnorm, rng);
    spdlog::info("{} BatchNorm:\n{}", batchnorm ? "with" : "without", model.summary());

    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.5));
    BatchLoader batches(train_set, 60, &rng, /*drop_last=*/true);
    for (int epoch = 1; epoch <= 8; ++epoch) {
        double loss_sum = 0.0;
        std::size_t steps = 0;
        batches.start_epoch();
        while (batches.next()) {
            loss_sum += train_step(model, loss, optimizer, batches.inputs(), batches.labels()).loss;
            ++steps;
        }
        const Evaluation test = evaluate(model, test_set, 500);
        spdlog::info("bn={} epoch {}  train loss {:.4f}  test loss {:.4f}  test acc {:.4f}",
                     batchnorm ? "on " : "off", epoch, loss_sum / double(steps), test.loss,
                     test.accuracy);
    }
}

}  // namespace

int main() {
    try {
        run(false, 1);
        run(true, 1);
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
}
