// A few SGD steps of a model with BatchNorm, built against bnlab the way a user would; then the
// same model trained further by the trainer, fit().
#include <cstdio>

#include <framework/bnlab.hpp>
#include <framework/experiment/trainer.hpp>

int main(int, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
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
    const RunResult fitted =
        fit(model, optimizer, data, data, rng, FitOptions().epochs(3).batch_size(32).threads(1));
    std::printf("consumer: fit's last epoch, test loss %.4f\n", fitted.epochs.back().test_loss);
    return after < before && fitted.epochs.back().test_loss < before ? 0 : 1;
}
