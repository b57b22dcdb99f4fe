// Exports a trained model to ONNX, for any runtime that serves ONNX graphs:
//   build/bin/train --save model.bnlab && build/bin/export_onnx model.bnlab model.onnx
// The checkpoint is any of bnlab's (train --save or --export-folded, save_model); the graph
// computes the model in eval mode (framework/onnx_export.hpp lists each layer's ops).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/checkpoint.hpp"
#include "framework/onnx_export.hpp"

int main(int argc, char** argv) {
    using namespace bnlab;
    CLI::App app{
        "Writes the model in a bnlab checkpoint as an ONNX graph (opset 13) that computes its "
        "eval mode: input \"input\" [batch, ...the model's input shape], output \"output\" "
        "[batch, classes], the logits.",
        "export_onnx"};
    std::string checkpoint, output;
    bool fold = false;
    app.add_option("checkpoint", checkpoint, "A bnlab checkpoint (train --save, --export-folded)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("output", output, "The ONNX file to write (atomically)")->required();
    app.add_flag("--fold-batchnorm", fold,
                 "Fold each BatchNorm that follows a Dense or a Conv2d into its weights first");
    CLI11_PARSE(app, argc, argv);

    try {
        Sequential model = load_model(checkpoint);
        model.eval();
        export_onnx(model, output, ExportOptions().fold_batchnorm(fold));
        const Shape input = model.input_shape().value_or(Shape{*model.in_features()});
        spdlog::info(
            "wrote {}: {}'s {} layers{}, ONNX opset {}, input [batch, {}], output "
            "[batch, {}]",
            output, checkpoint, model.size(), fold ? ", BatchNorm folded" : "", kOnnxOpset,
            shape_string(input).substr(1, shape_string(input).size() - 2), *model.out_features());
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
