#pragma once
// ONNX export: a model in eval mode as an ONNX graph that any ONNX runtime can serve, built with
// the ONNX project's own classes (Debian's libonnx-dev) and checked by its checker before it is
// written (atomically, as checkpoints are).
//   model.eval();
//   export_onnx(model, "model.onnx");                                 // BatchNormalization ops
//   export_onnx(model, "folded.onnx", ExportOptions().fold_batchnorm(true));
// The graph has one input, "input" [batch, ...the model's input shape] ([batch, 784] for an MLP,
// [batch, 1, 28, 28] for a CNN), and one output, "output" [batch, classes]: the logits, as
// bnlab's forward gives them. The batch dimension is symbolic ("batch"). Opset 13.
//
// Layer by layer (a nested Sequential's layers in their place):
//   Dense            Gemm (transB = 1), after a Flatten when its input is a feature map
//   Conv2d           Conv
//   BatchNorm        BatchNormalization with the running statistics (1-D and spatial; a
//                    frozen one too; BatchRenorm in eval mode is a BatchNorm)
//   ReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d (count_include_pad = 1), GlobalAvgPool2d
//                    Relu, Sigmoid, Tanh, MaxPool, AveragePool, GlobalAveragePool
//   Dropout          nothing (the identity in eval mode)
//   Residual         the body and the shortcut (or the input) joined by Add, then Relu
//   GroupNorm        Reshape to [batch, G, C/G H W], InstanceNormalization (scale 1, bias 0),
//                    Reshape back, Mul by gamma and Add beta per channel: how PyTorch exports
//                    it before opset 18 gave GroupNormalization
//   LayerNorm        the same with blocks of the normalized shape, gamma and beta per element
//                    (opset 17's LayerNormalization is newer than most runtimes' importers)
//   InstanceNorm2d   InstanceNormalization (scale 1, bias 0) and the affine step apart, as
//                    GroupNorm's; BatchNormalization when it keeps running statistics (which
//                    eval mode then uses)

#include <string>

#include "framework/sequential.hpp"

namespace bnlab {

class ExportOptions {
  public:
    // Fold each BatchNorm that follows a Dense or a Conv2d into its weights first
    // (models/fold_batchnorm.hpp): fewer ops, the same outputs to float rounding.
    ExportOptions& fold_batchnorm(bool value) {
        fold_batchnorm_ = value;
        return *this;
    }
    // The graph's name (ONNX's GraphProto.name).
    ExportOptions& graph_name(std::string value) {
        graph_name_ = std::move(value);
        return *this;
    }

    bool fold_batchnorm() const { return fold_batchnorm_; }
    const std::string& graph_name() const { return graph_name_; }

  private:
    bool fold_batchnorm_ = false;
    std::string graph_name_ = "bnlab";
};

// The opset the graph imports.
inline constexpr int kOnnxOpset = 13;

// The model as a serialized ONNX ModelProto, checked by ONNX's checker. Throws
// std::invalid_argument for a model in training mode, a layer it cannot export (named, with its
// position), or a model whose input shape is unknown.
std::string onnx_model_bytes(Sequential& model, const ExportOptions& options = {});

// onnx_model_bytes written to `path` atomically: the file is whole or not there. Throws
// std::runtime_error naming the path when it cannot be written (before any work).
void export_onnx(Sequential& model, const std::string& path, const ExportOptions& options = {});

}  // namespace bnlab
