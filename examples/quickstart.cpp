// A CNN with BatchNorm, trained on Fashion-MNIST and exported to ONNX (the README's example).
#include <cstdio>

#include "framework/bnlab.hpp"
#include "framework/experiment/trainer.hpp"
#include "framework/onnx_export.hpp"

int main(int, char** argv) {
    using namespace bnlab;
    select_blas_kernels(argv);                       // first: OpenBLAS's fast kernels for this CPU
    const FashionMnist data = load_fashion_mnist();  // Debian's dataset-fashion-mnist
    Rng rng(42);  // the one source of randomness: the same seed, the same run

    Sequential model(Shape{1, 28, 28});
    model.add<Conv2d>(Conv2dOptions(1, 16, 3).padding(1), rng);
    model.add<BatchNorm2d>(16);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    model.add<Dense>(16 * 14 * 14, 128, rng);
    model.add<BatchNorm1d>(128);
    model.add<ReLU>();
    model.add<Dense>(128, 10, rng);
    std::printf("%s\n", model.summary().c_str());

    SGD optimizer(model.parameters(), SGDOptions(0.05).momentum(0.9));
    const RunResult result = fit(model, optimizer, data.train, data.test, rng,
                                 FitOptions().epochs(2).batch_size(128).log("quickstart.jsonl"));
    model.eval();
    export_onnx(model, "quickstart.onnx");
    return result.epochs.back().test_acc > 0.85 ? 0 : 1;
}
