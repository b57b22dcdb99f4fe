#pragma once
// Shared by the tests: reading golden tensors, and finite-difference gradient checks.

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "framework/bnlab.hpp"
#include "framework/simd.hpp"

namespace bnlab::testing {

// A {"shape": [...], "data": [...]} object of the golden file as a Matrix: a 1-D shape becomes
// one row, a batch of images [N, C, H, W] one row per image.
template <typename T>
Matrix<T> matrix_from(const nlohmann::json& tensor) {
    const auto& shape = tensor.at("shape");
    const std::size_t rows = shape.size() >= 2 ? shape[0].get<std::size_t>() : 1;
    std::size_t cols = 1;
    for (std::size_t d = shape.size() >= 2 ? 1 : 0; d < shape.size(); ++d)
        cols *= shape[d].get<std::size_t>();
    Matrix<T> result = xt::empty<T>({rows, cols});
    const auto& data = tensor.at("data");
    REQUIRE(data.size() == rows * cols);
    for (std::size_t i = 0; i < data.size(); ++i)
        result.data()[i] = static_cast<T>(data[i].get<double>());
    return result;
}

template <typename T>
void assign_from(T* destination, std::size_t size, const nlohmann::json& tensor) {
    const auto& data = tensor.at("data");
    REQUIRE(data.size() == size);
    for (std::size_t i = 0; i < size; ++i)
        destination[i] = static_cast<T>(data[i].get<double>());
}

// Largest |actual - expected| divided by the largest |expected| of the tensor: the error
// relative to the tensor's scale, which stays meaningful for entries near zero.
double relative_deviation(const float* actual, std::size_t size, const nlohmann::json& expected);

// Largest |a - b| over the largest |b| (the measure of relative_deviation), for two batches.
double relative_difference(const Matrix<float>& a, const Matrix<float>& b);

// Checks `actual` against a golden tensor to `tolerance` relative (see relative_deviation) and
// records the deviation for the summary printed at the end of the run.
void check_close(const std::string& what, const float* actual, std::size_t size,
                 const nlohmann::json& expected, double tolerance = 1e-5);

// The golden file, parsed once.
const nlohmann::json& golden();

// Central-difference derivative of `loss` with respect to `value`, h = 1e-6 (double precision:
// truncation error ~h^2, rounding ~1e-16/h, both far below the 1e-6 tolerance used).
double numeric_derivative(double& value, const std::function<double()>& loss);

// Compares analytic and numeric derivatives: |a - n| <= 1e-6 max(1, |n|).
void check_derivative(const std::string& what, double analytic, double numeric);

// Checks every derivative of `loss` (which runs `model` forward on `input`) with respect to
// `input` and to each parameter: backward from `loss_gradient` (dL/doutput of the last forward)
// against central differences.
void check_gradients(BasicLayer<double>& model, Matrix<double>& input,
                     const std::function<double()>& loss,
                     const std::function<const Matrix<double>&()>& loss_gradient);

// Gradient check of one layer in double precision, with the scalar loss sum(forward(x) * r)
// for a fixed random r: checks dL/dx from backward and every parameter gradient.
void check_layer_gradients(BasicLayer<double>& layer, Matrix<double> input, std::uint64_t seed);

// Every parameter's values, then every buffer's, in order.
std::vector<float> values_of(BasicLayer<float>& model);

// A checkpoint file made by hand, with correct checksums: the layout save_checkpoint writes.
std::string checkpoint_bytes(const std::map<std::string, std::string>& sections);

// The error load_model gives for a checkpoint written to `path` with these architecture lines
// (section MODL) and `tensor_values` floats of zeros (section TENS).
std::string load_model_error(const std::string& path, const std::string& layers,
                             std::size_t tensor_values);

// Restores, when it goes out of scope, the thread count a test changed.
struct ThreadsGuard {
    int saved = thread_count();
    ~ThreadsGuard() { set_threads(saved); }
};

// Restores the width of the layers' hand-written kernels (limit_layer_kernels) when a test that
// lowered it ends.
struct KernelLevelGuard {
    KernelLevel saved = layer_kernel_limit();
    ~KernelLevelGuard() { limit_layer_kernels(saved); }
};
// The kernel levels this CPU runs, the generic one first, with their names.
std::vector<std::pair<KernelLevel, std::string>> kernel_levels();

// A fresh folder under the system's temporary folder, removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// The whole contents of a file ("" when it cannot be read).
std::string read_text(const std::string& path);

// Runs `action`, requires it to throw, and returns the message.
template <typename Action>
std::string message_of(Action&& action) {
    try {
        action();
    } catch (const std::exception& error) {
        return error.what();
    }
    FAIL("expected an exception");
    return "";
}

// A [rows, cols] matrix of N(mean, scale^2) draws.
template <typename T>
Matrix<T> random_matrix(std::size_t rows, std::size_t cols, Rng& rng, double scale = 1.0,
                        double mean = 0.0) {
    Matrix<T> result = xt::empty<T>({rows, cols});
    for (T& value : result)
        value = static_cast<T>(mean + scale * rng.normal());
    return result;
}

}  // namespace bnlab::testing
