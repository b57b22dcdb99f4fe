// A model exported to ONNX through bnlab::onnx, built against bnlab the way a user would.
#include <cstdio>

#include <framework/bnlab.hpp>
#include <framework/onnx_export.hpp>

int main(int, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    using namespace bnlab;
    Rng rng(1);
    Sequential model;
    model.add<Dense>(6, 16, rng);
    model.add<BatchNorm>(16);
    model.add<ReLU>();
    model.add<Dense>(16, 3, rng);
    model.eval();
    const std::string bytes = onnx_model_bytes(model);
    std::printf("consumer_onnx: %zu bytes of ONNX\n", bytes.size());
    return bytes.empty() ? 1 : 0;
}
