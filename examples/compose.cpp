// Compose a model layer by layer in your own code and train it: the README quotes this file.
#include <cstdio>

#include "framework/bnlab.hpp"

int main() {
    using namespace bnlab;
    Rng rng(42);  // the one source of randomness: same seed, same run
    Dataset blobs = make_blobs(5120, 20, 4, 0.5, rng);
    Dataset train_set = slice(blobs, 0, 4096), test_set = slice(blobs, 4096, 5120);

    Sequential model;
    model.add<Dense>(20, 64, rng);
    model.add<BatchNorm>(BatchNormOptions(64).eps(1e-5).momentum(0.1));
    model.add<ReLU>();
    model.add<Dense>(64, 4, rng);
    std::printf("%s\n", model.summary().c_str());

    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
    BatchLoader batches(train_set, 64, &rng, /*drop_last=*/true);
    for (int epoch = 1; epoch <= 5; ++epoch) {
        model.train();
        batches.start_epoch();
        while (batches.next())
            train_step(model, loss, optimizer, batches.inputs(), batches.labels());
        const Evaluation test = evaluate(model, test_set, 256);  // eval mode, then restored
        std::printf("epoch %d  test loss %.4f  test accuracy %.4f\n", epoch, test.loss,
                    test.accuracy);
    }
}
