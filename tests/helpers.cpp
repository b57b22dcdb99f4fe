#include "helpers.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

namespace bnlab::testing {

namespace {

// Worst deviation per golden check, printed when the test program exits.
struct DeviationReport {
    std::map<std::string, double> worst;
    ~DeviationReport() {
        if (worst.empty()) return;
        auto largest = std::max_element(worst.begin(), worst.end(),
                                        [](auto& a, auto& b) { return a.second < b.second; });
        std::printf("PyTorch golden checks: %zu tensors, largest relative deviation %.3g (%s)\n",
                    worst.size(), largest->second, largest->first.c_str());
    }
};
DeviationReport report;

}  // namespace

double relative_difference(const Matrix<float>& a, const Matrix<float>& b) {
    REQUIRE(a.shape() == b.shape());
    double worst = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::abs(double(a.data()[i]) - double(b.data()[i])));
        scale = std::max(scale, std::abs(double(b.data()[i])));
    }
    return worst / scale;
}

double relative_deviation(const float* actual, std::size_t size, const nlohmann::json& expected) {
    const auto& data = expected.at("data");
    REQUIRE(data.size() == size);
    double scale = 0.0, worst = 0.0;
    for (std::size_t i = 0; i < size; ++i)
        scale = std::max(scale, std::abs(data[i].get<double>()));
    for (std::size_t i = 0; i < size; ++i)
        worst = std::max(worst, std::abs(double(actual[i]) - data[i].get<double>()));
    return scale == 0.0 ? worst : worst / scale;
}

void check_close(const std::string& what, const float* actual, std::size_t size,
                 const nlohmann::json& expected, double tolerance) {
    const double deviation = relative_deviation(actual, size, expected);
    report.worst[what] = std::max(report.worst[what], deviation);
    INFO(what << ": relative deviation " << deviation);
    CHECK(deviation <= tolerance);
}

const nlohmann::json& golden() {
    static const nlohmann::json parsed = [] {
        std::ifstream file(BNLAB_GOLDEN_FILE);
        REQUIRE_MESSAGE(file.good(), "cannot open " BNLAB_GOLDEN_FILE);
        return nlohmann::json::parse(file);
    }();
    return parsed;
}

double numeric_derivative(double& value, const std::function<double()>& loss) {
    const double h = 1e-6, saved = value;
    value = saved + h;
    const double up = loss();
    value = saved - h;
    const double down = loss();
    value = saved;
    return (up - down) / (2 * h);
}

void check_derivative(const std::string& what, double analytic, double numeric) {
    INFO(what << ": analytic " << analytic << ", numeric " << numeric);
    CHECK(std::abs(analytic - numeric) <= 1e-6 * std::max(1.0, std::abs(numeric)));
}

void check_gradients(BasicLayer<double>& model, Matrix<double>& input,
                     const std::function<double()>& loss,
                     const std::function<const Matrix<double>&()>& loss_gradient) {
    model.zero_grad();
    loss();
    const Matrix<double> grad_input = model.backward(loss_gradient());
    std::vector<Parameter<double>> parameters = model.parameters();
    std::vector<std::vector<double>> analytic;
    for (const Parameter<double>& p : parameters)
        analytic.emplace_back(p.grad, p.grad + p.size);

    for (std::size_t i = 0; i < input.size(); ++i)
        check_derivative(model.describe() + " dL/dx[" + std::to_string(i) + "]",
                         grad_input.data()[i], numeric_derivative(input.data()[i], loss));
    for (std::size_t p = 0; p < parameters.size(); ++p)
        for (std::size_t j = 0; j < parameters[p].size; ++j)
            check_derivative(
                model.describe() + " dL/d" + parameters[p].name + "[" + std::to_string(j) + "]",
                analytic[p][j], numeric_derivative(parameters[p].value[j], loss));
}

void check_layer_gradients(BasicLayer<double>& layer, Matrix<double> input, std::uint64_t seed) {
    Rng rng(seed);
    const Matrix<double> first = layer.forward(input);
    const Matrix<double> projection = random_matrix<double>(first.shape(0), first.shape(1), rng);
    auto loss = [&] {
        const Matrix<double>& output = layer.forward(input);
        double sum = 0.0;
        for (std::size_t i = 0; i < output.size(); ++i)
            sum += output.data()[i] * projection.data()[i];
        return sum;
    };
    check_gradients(layer, input, loss, [&]() -> const Matrix<double>& { return projection; });
}

std::string read_text(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

std::vector<std::pair<KernelLevel, std::string>> kernel_levels() {
    std::vector<std::pair<KernelLevel, std::string>> levels{{KernelLevel::generic, "generic"}};
    if (cpu_has_avx2()) levels.push_back({KernelLevel::avx2, "avx2"});
    if (cpu_has_avx512()) levels.push_back({KernelLevel::avx512, "avx512"});
    return levels;
}

TempDir::TempDir() {
    // Unique per process (CTest runs test cases in parallel processes) and per folder within one.
    static int made = 0;
    path = std::filesystem::temp_directory_path() /
           ("bnlab_test_" + std::to_string(::getpid()) + "_" + std::to_string(made++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
}

std::vector<float> values_of(BasicLayer<float>& model) {
    std::vector<float> all;
    for (const Parameter<float>& p : model.parameters())
        all.insert(all.end(), p.value, p.value + p.size);
    for (const Buffer<float>& b : model.buffers())
        all.insert(all.end(), b.value, b.value + b.size);
    return all;
}

std::string checkpoint_bytes(const std::map<std::string, std::string>& sections) {
    std::string file = "BNLABCKP";
    auto put = [&](auto value) {
        file.append(reinterpret_cast<const char*>(&value), sizeof value);
    };
    put(std::uint32_t(1));
    put(std::uint32_t(sections.size()));
    for (const auto& [tag, payload] : sections) {
        file += tag;
        put(std::uint64_t(payload.size()));
        file += payload;
        put(std::uint32_t(
            crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), uInt(payload.size()))));
    }
    return file;
}

std::string load_model_error(const std::string& path, const std::string& layers,
                             std::size_t tensor_values) {
    const std::string tensors(4 * tensor_values, '\0');
    std::ofstream(path, std::ios::binary)
        << checkpoint_bytes({{"MODL", layers}, {"TENS", tensors}, {"CNTS", ""}});
    return message_of([&] { load_model(path); });
}

}  // namespace bnlab::testing
