// A few SGD steps of a model with BatchNorm, built against bnlab the way a user would.
#include <cstdio>

#include <framework/bnlab.hpp>

int main() {
    using namespace bnlab;
    Rng rng(1);
    Dataset data = make_blobs(256, 6, 3, 1.0, rng);
    Sequential model;
    model.add<Dense>(6, 16, rng);
    model.add<BatchNorm>(16);
    model.add<ReLU>();
    model.add<Dense>(16, 3, rng);
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
    const double before = evaluate(model, data, 64).loss;
    for (int step = 0; step < 50; ++step)
        train_step(model, loss, optimizer, data.inputs, data.labels);
    const double after = evaluate(model, data, 64).loss;
    std::printf("consumer: loss %.4f -> %.4f\n", before, after);
    return after < before ? 0 : 1;
}
