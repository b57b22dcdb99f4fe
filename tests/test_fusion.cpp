// A fused Conv2d -> [BatchNorm2d] -> ReLU -> [pooling], or Conv2d -> BatchNorm2d alone
// (layers/conv_block.hpp), gives the layers' own numbers, to float rounding: outputs, input and
// parameter gradients, parameters and running statistics over three training steps, then eval, for
// every pattern, with padding, stride 2, odd sizes and a batch of 1; and the same bits on 1 and 2
// threads.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// ||actual - expected|| / ||expected||, over the whole tensor.
double relative_error(const float* actual, const float* expected, std::size_t size) {
    double difference = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < size; ++i) {
        difference +=
            (double(actual[i]) - double(expected[i])) * (double(actual[i]) - double(expected[i]));
        norm += double(expected[i]) * double(expected[i]);
    }
    return norm == 0.0 ? std::sqrt(difference) : std::sqrt(difference / norm);
}

void check_same(const std::string& what, const float* actual, const float* expected,
                std::size_t size) {
    const double error = relative_error(actual, expected, size);
    INFO(what << ": relative error " << error);
    CHECK(error <= 1e-6);
}

// The L2 norm of a parameter's gradient.
double norm(const Parameter<float>& parameter) {
    double squares = 0.0;
    for (std::size_t i = 0; i < parameter.size; ++i)
        squares += double(parameter.grad[i]) * double(parameter.grad[i]);
    return std::sqrt(squares);
}

struct Pattern {
    std::string name;
    Shape input;  // one sample, [C, H, W]
    Conv2dOptions conv;
    bool batchnorm;
    std::string pool;  // "", "max" or "avg"
    Window pool_window;
    BatchNormFreeze freeze = BatchNormFreeze::none;
    bool relu = true;  // without: Conv2d -> BatchNorm2d alone (no pooling)
    // Every other channel's gamma negative: the fused max pooling looks for the smallest z there.
    bool negative_gammas = false;
    // The top half of each input channel one constant: windows of equal z, ties.
    bool flat_rows = false;
};

// The pattern, then a Dense head, so that the loss reads every output.
Sequential model_of(const Pattern& pattern, bool fusion) {
    Rng rng(11);
    Sequential model(pattern.input);
    model.set_fusion(fusion);
    model.add<Conv2d>(pattern.conv, rng);
    if (pattern.batchnorm) model.add<BatchNorm2d>(pattern.conv.out_channels());
    if (pattern.relu) model.add<ReLU>();
    if (pattern.pool == "max")
        model.add<MaxPool2d>(pattern.pool_window.kernel, pattern.pool_window.stride,
                             pattern.pool_window.padding);
    if (pattern.pool == "avg")
        model.add<AvgPool2d>(pattern.pool_window.kernel, pattern.pool_window.stride,
                             pattern.pool_window.padding);
    model.add<Dense>(*model.out_features(), 3, rng);
    if (pattern.negative_gammas) {
        auto& batchnorm = dynamic_cast<BatchNorm2d&>(model[1]);
        for (std::size_t c = 0; c < batchnorm.gamma().size(); ++c)
            batchnorm.gamma()(c) = c % 2 ? -0.8f : 1.3f;
    }
    if (pattern.freeze != BatchNormFreeze::none) {
        // Running statistics of their own, as a trained layer has.
        auto& batchnorm = dynamic_cast<BatchNorm2d&>(model[1]);
        for (std::size_t c = 0; c < batchnorm.running_mean().size(); ++c) {
            batchnorm.running_mean()(c) = float(0.1 * double(c));
            batchnorm.running_var()(c) = float(0.5 + 0.2 * double(c));
        }
        freeze_batchnorms(model, pattern.freeze);
    }
    return model;
}

const std::vector<Pattern>& patterns() {
    static const std::vector<Pattern> all = [] {
        std::vector<Pattern> list;
        for (bool batchnorm : {true, false})
            for (const auto& [pool, window] :
                 std::vector<std::pair<std::string, Window>>{{"max", {2, 2, 0}},
                                                             {"max", {3, 2, 1}},
                                                             {"avg", {2, 2, 0}},
                                                             {"avg", {3, 2, 1}},
                                                             {"", {}}}) {
                const std::string name =
                    std::string(batchnorm ? "BN" : "no BN") + ", pool " +
                    (pool.empty() ? "none" : pool + " " + window_string(window));
                // 3x3 with padding on an odd image; 3x3 stride 2 on an odd, non-square image.
                list.push_back({name + ", conv 3x3 padding 1 on 2x9x9", Shape{2, 9, 9},
                                Conv2dOptions(2, 4, 3).padding(1), batchnorm, pool, window});
                // The same through Conv2d's direct kernels (which real networks take for maps
                // from 7x7 up), where the CPU runs them.
                if (direct_conv_available())
                    list.push_back(
                        {name + ", conv 3x3 padding 1 direct on 2x9x9", Shape{2, 9, 9},
                         Conv2dOptions(2, 4, 3).padding(1).algorithm(ConvAlgorithm::direct),
                         batchnorm, pool, window});
                list.push_back({name + ", conv 3x3 stride 2 padding 1 on 3x11x13", Shape{3, 11, 13},
                                Conv2dOptions(3, 5, 3).stride(2).padding(1), batchnorm, pool,
                                window});
            }
        // Conv2d -> BatchNorm2d without ReLU (a ResNet block's last convolution, a projection
        // shortcut's 1x1 with stride 2), on both algorithms.
        list.push_back({"BN, no ReLU, conv 3x3 padding 1 on 2x9x9", Shape{2, 9, 9},
                        Conv2dOptions(2, 4, 3).padding(1), true, "", Window{},
                        BatchNormFreeze::none, false});
        if (direct_conv_available())
            list.push_back({"BN, no ReLU, conv 3x3 padding 1 direct on 2x9x9", Shape{2, 9, 9},
                            Conv2dOptions(2, 4, 3).padding(1).algorithm(ConvAlgorithm::direct),
                            true, "", Window{}, BatchNormFreeze::none, false});
        list.push_back({"BN, no ReLU, conv 1x1 stride 2 on 3x11x13", Shape{3, 11, 13},
                        Conv2dOptions(3, 5, 1).stride(2), true, "", Window{}, BatchNormFreeze::none,
                        false});
        // Max pooling after BatchNorm with gammas of either sign and windows of equal values,
        // both pooling windows, both algorithms.
        for (const Window& window : {Window{2, 2, 0}, Window{3, 2, 1}})
            for (bool direct : {false, true}) {
                if (direct && !direct_conv_available()) continue;
                Conv2dOptions conv = Conv2dOptions(2, 4, 3).padding(1);
                if (direct) conv.algorithm(ConvAlgorithm::direct);
                Pattern pattern{"BN, gammas of either sign, flat rows, pool max " +
                                    window_string(window) + ", conv 3x3 padding 1" +
                                    (direct ? " direct" : "") + " on 2x9x9",
                                Shape{2, 9, 9},
                                conv,
                                true,
                                "max",
                                window};
                pattern.negative_gammas = pattern.flat_rows = true;
                list.push_back(pattern);
            }
        // BatchNorm frozen for fine-tuning: the running statistics in training mode too.
        for (BatchNormFreeze freeze : {BatchNormFreeze::statistics, BatchNormFreeze::all})
            for (const std::string pool : {"max", "", "no ReLU"})
                list.push_back(
                    {std::string("BN frozen ") +
                         (freeze == BatchNormFreeze::all ? "all" : "statistics") + ", pool " +
                         (pool == "max" ? pool : "none") + (pool == "no ReLU" ? ", no ReLU" : "") +
                         ", conv 3x3 stride 2 padding 1 on 3x11x13",
                     Shape{3, 11, 13}, Conv2dOptions(3, 5, 3).stride(2).padding(1), true,
                     pool == "max" ? pool : "", Window{2, 2, 0}, freeze, pool != "no ReLU"});
        return list;
    }();
    return all;
}

Matrix<float> random_batch(std::size_t rows, std::size_t cols, Rng& rng) {
    Matrix<float> batch = xt::empty<float>({rows, cols});
    for (float& value : batch)
        value = float(rng.uniform(-1.0, 2.0));  // not centred: BatchNorm has a mean to remove
    return batch;
}

// Three SGD steps of both models on the same batches, comparing everything after each.
void check_fused_like_separate(const Pattern& pattern, std::size_t batch) {
    Sequential fused = model_of(pattern, true), separate = model_of(pattern, false);
    REQUIRE(fused.summary().find("fused 0-") != std::string::npos);
    REQUIRE(separate.summary().find("fused") == std::string::npos);
    SoftmaxCrossEntropy fused_loss, separate_loss;
    // A learning rate that keeps the logits moderate: at 0.1, a batch of 1 reached logits of
    // -10, 15 and -5 by the third step, where the loss gradient (1e-9 and 1e-12, softmax's tails)
    // is exp(z) with z's rounding multiplied by 15, and any two ways of summing (im2col or the
    // direct kernels) differed by 1.9e-6 there while the logits differed by 1.6e-7.
    SGD fused_sgd(fused.parameters(), SGDOptions(0.02).momentum(0.9));
    SGD separate_sgd(separate.parameters(), SGDOptions(0.02).momentum(0.9));
    Rng rng(3);
    for (int step = 0; step < 3; ++step) {
        CAPTURE(step);
        Matrix<float> x = random_batch(batch, shape_size(pattern.input), rng);
        if (pattern.flat_rows) {
            const std::size_t channels = pattern.input[0],
                              positions = pattern.input[1] * pattern.input[2];
            for (std::size_t i = 0; i < batch * channels; ++i)
                std::fill_n(x.data() + i * positions, positions / 2, 0.25f);
        }
        Labels labels = xt::empty<int>({batch});
        for (int& label : labels)
            label = int(rng.below(3));
        fused.zero_grad();
        separate.zero_grad();
        const Matrix<float>& fused_out = fused.forward(x);
        const Matrix<float>& separate_out = separate.forward(x);
        check_same("output", fused_out.data(), separate_out.data(), fused_out.size());
        fused_loss.forward(fused_out, labels);
        separate_loss.forward(separate_out, labels);
        const Matrix<float>& fused_dx = fused.backward(fused_loss.backward());
        const Matrix<float>& separate_dx = separate.backward(separate_loss.backward());
        REQUIRE(fused_dx.size() == separate_dx.size());
        check_same("input gradient", fused_dx.data(), separate_dx.data(), fused_dx.size());
        const auto fused_parameters = fused.parameters();
        const auto separate_parameters = separate.parameters();
        for (std::size_t i = 0; i < fused_parameters.size(); ++i) {
            const Parameter<float>& parameter = fused_parameters[i];
            if (pattern.batchnorm && pattern.freeze == BatchNormFreeze::none &&
                parameter.name == "0.bias") {
                // BatchNorm subtracts the channel's mean: the bias before it has no effect, and
                // its gradient is 0 but for rounding, in both. Both must be rounding next to the
                // weights' gradient.
                const double weight_norm = norm(fused_parameters[i - 1]);
                CHECK(norm(parameter) <= 1e-6 * weight_norm);
                CHECK(norm(separate_parameters[i]) <= 1e-6 * weight_norm);
                continue;
            }
            check_same(parameter.name + " gradient", parameter.grad, separate_parameters[i].grad,
                       parameter.size);
        }
        fused_sgd.step();
        separate_sgd.step();
        for (std::size_t i = 0; i < fused_parameters.size(); ++i)
            check_same(fused_parameters[i].name, fused_parameters[i].value,
                       separate_parameters[i].value, fused_parameters[i].size);
        const auto fused_buffers = fused.buffers();
        const auto separate_buffers = separate.buffers();
        for (std::size_t i = 0; i < fused_buffers.size(); ++i)
            check_same(fused_buffers[i].name, fused_buffers[i].value, separate_buffers[i].value,
                       fused_buffers[i].size);
    }
    fused.eval();
    separate.eval();
    const Matrix<float> x = random_batch(batch, shape_size(pattern.input), rng);
    const Matrix<float>& fused_out = fused.forward(x);
    const Matrix<float>& separate_out = separate.forward(x);
    check_same("eval output", fused_out.data(), separate_out.data(), fused_out.size());
}

}  // namespace

TEST_CASE("A fused convolution block gives the separate layers' numbers, every pattern") {
    // on every width of the layers' kernels this CPU runs: the generic code (SSE2 and scalar)
    // too, which only CPUs without AVX2 would run otherwise
    KernelLevelGuard guard;
    for (const auto& [level, level_name] : kernel_levels()) {
        limit_layer_kernels(level);
        for (const Pattern& pattern : patterns())
            for (std::size_t batch : {std::size_t(1), std::size_t(5)}) {
                CAPTURE(level_name);
                CAPTURE(pattern.name);
                CAPTURE(batch);
                check_fused_like_separate(pattern, batch);
            }
    }
}

TEST_CASE("A fused convolution block gives the same bits on 1 and 2 threads") {
    ThreadsGuard guard;
    const Pattern& pattern = patterns().front();  // BN, max pool 2x2
    Rng rng(5);
    const Matrix<float> x = random_batch(6, shape_size(pattern.input), rng);
    const Matrix<float> grad = random_batch(6, 4 * 4 * 4, rng);  // [6, 4 channels, 4 x 4]
    // Everything each sample gives by itself, and BatchNorm's sums, which are added in sample
    // order; the convolution's dW and db are summed per thread first, as Conv2d does
    // (test_cnn.cpp).
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2}) {
        set_threads(threads);
        Rng weights(11);
        Sequential model(pattern.input);
        model.add<Conv2d>(pattern.conv, weights);
        model.add<BatchNorm2d>(pattern.conv.out_channels());
        model.add<ReLU>();
        model.add<MaxPool2d>(2);
        REQUIRE(model.summary().find("fused 0-3") != std::string::npos);
        const Matrix<float>& out = model.forward(x);
        std::vector<float> result(out.begin(), out.end());
        const Matrix<float>& dx = model.backward(grad);
        result.insert(result.end(), dx.begin(), dx.end());
        for (const Parameter<float>& parameter : model.parameters())
            if (parameter.name.rfind("0.", 0) != 0)
                result.insert(result.end(), parameter.grad, parameter.grad + parameter.size);
        for (const Buffer<float>& buffer : model.buffers())
            result.insert(result.end(), buffer.value, buffer.value + buffer.size);
        results.push_back(result);
    }
    REQUIRE(results[0].size() == results[1].size());
    std::size_t first_difference = 0;
    while (first_difference < results[0].size() &&
           results[0][first_difference] == results[1][first_difference])
        ++first_difference;
    INFO("the first difference at " << first_difference << " of " << results[0].size());
    CHECK(first_difference == results[0].size());
}

TEST_CASE("Fusion is chosen automatically, shown in summary(), and can be turned off") {
    Rng rng(2);
    Sequential model = cnn(Shape{1, 28, 28}, {4, 8}, {16}, 10, Activation::relu, true, rng);
    const std::string summary = model.summary();
    INFO(summary);
    CHECK(
        summary.find("Fused: layers 0-3 run as one pass (Conv2d + BatchNorm + ReLU + MaxPool2d)") !=
        std::string::npos);
    CHECK(summary.find("Fused: layers 4-7 run as one pass") != std::string::npos);
    model.set_fusion(false);
    CHECK(model.summary().find("Fused") == std::string::npos);
    // Conv -> BatchNorm without ReLU: the two fused, the Sigmoid after them alone.
    Sequential no_relu(Shape{1, 8, 8});
    no_relu.add<Conv2d>(Conv2dOptions(1, 2, 3), rng);
    no_relu.add<BatchNorm2d>(2);
    no_relu.add<Sigmoid>();
    CHECK(no_relu.summary().find("Fused: layers 0-1 run as one pass (Conv2d + BatchNorm)\n") !=
          std::string::npos);
    // Conv -> Sigmoid: nothing to fuse.
    Sequential no_batchnorm(Shape{1, 8, 8});
    no_batchnorm.add<Conv2d>(Conv2dOptions(1, 2, 3), rng);
    no_batchnorm.add<Sigmoid>();
    CHECK(no_batchnorm.summary().find("Fused") == std::string::npos);

    ::setenv("BNLAB_FUSION", "off", 1);
    Sequential from_environment(Shape{1, 8, 8});
    ::setenv("BNLAB_FUSION", "sometimes", 1);
    CHECK_THROWS_WITH_AS(Sequential(Shape{1, 8, 8}),
                         "BNLAB_FUSION: expected on or off, got 'sometimes'",
                         std::invalid_argument);
    ::unsetenv("BNLAB_FUSION");
    from_environment.add<Conv2d>(Conv2dOptions(1, 2, 3), rng);
    from_environment.add<ReLU>();
    CHECK_FALSE(from_environment.fusion());
    CHECK(from_environment.summary().find("Fused") == std::string::npos);
}

TEST_CASE("A fused block refuses what its BatchNorm refuses: one value per channel") {
    Rng rng(4);
    Sequential model(Shape{1, 3, 3});
    model.add<Conv2d>(Conv2dOptions(1, 2, 3), rng);  // -> [2, 1, 1]
    model.add<BatchNorm2d>(2);
    model.add<ReLU>();
    REQUIRE(model.summary().find("fused 0-2") != std::string::npos);
    const Matrix<float> one = xt::ones<float>({std::size_t(1), std::size_t(9)});
    CHECK_THROWS_WITH_AS(model.forward(one),
                         "BatchNorm(2, eps=1e-05, momentum=0.1): expected more than 1 value per "
                         "channel when training, got input of shape [1, 2, 1, 1] (use eval() to "
                         "run single samples)",
                         std::invalid_argument);
    CHECK(dynamic_cast<BatchNorm&>(model[1]).num_batches_tracked() == 0);
}

TEST_CASE("A fused convolution block's gradients match finite differences") {
    // In double: every pattern's block with its input gradient (a layer before it learns).
    for (bool batchnorm : {true, false})
        for (const std::string pool : {"max", "avg", "", "no ReLU"}) {
            if (pool == "no ReLU" && !batchnorm) continue;
            CAPTURE(batchnorm);
            CAPTURE(pool);
            Rng rng(9);
            BasicSequential<double> model(Shape{2, 7, 7});
            model.add<BasicConv2d>(Conv2dOptions(2, 3, 3).stride(2).padding(1), rng);  // 4 x 4
            if (batchnorm) model.add<BasicBatchNorm>(3);
            if (pool != "no ReLU") model.add<BasicReLU>();
            if (pool == "max") model.add<BasicMaxPool2d>(3, 2, 1);
            if (pool == "avg") model.add<BasicAvgPool2d>(3, 2, 1);
            model.add<BasicDense>(*model.out_features(), 3, rng);
            REQUIRE(model.summary().find("fused 0-") != std::string::npos);
            Matrix<double> input = random_matrix<double>(4, 2 * 7 * 7, rng);
            Labels labels = xt::empty<int>({std::size_t{4}});
            for (int& label : labels)
                label = int(rng.below(3));
            BasicSoftmaxCrossEntropy<double> loss;
            check_gradients(
                model, input, [&] { return loss.forward(model.forward(input), labels); },
                [&]() -> const Matrix<double>& { return loss.backward(); });
        }
}

TEST_CASE("A fused block given a batch of the wrong width changes nothing and names the layer") {
    Rng rng(4);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 2, 3), rng);
    model.add<BatchNorm2d>(2);
    model.add<ReLU>();
    REQUIRE(model.summary().find("fused 0-2") != std::string::npos);
    const Matrix<float> wrong = xt::ones<float>({std::size_t(4), std::size_t(35)});
    CHECK_THROWS_AS(model.forward(wrong), std::invalid_argument);
    CHECK(message_of([&] { model.forward(wrong); }).find("Conv2d(1 -> 2, 3x3)") !=
          std::string::npos);
    CHECK(dynamic_cast<BatchNorm&>(model[1]).num_batches_tracked() == 0);
}

namespace {

// Channel values with ties (a quarter of them a multiple of 0.5 in [-1, 1]), and one NaN when
// asked: the cases where which pixel wins depends on the rule.
std::vector<float> channel_values(std::size_t size, Rng& rng, bool nan) {
    const Matrix<float> random = random_matrix<float>(1, size, rng, 1.0, 0.0);
    std::vector<float> values(random.begin(), random.end());
    for (std::size_t i = 0; i < size; i += 4)
        values[i] = std::round(values[i] * 2.0f) / 2.0f;
    if (nan) values[size / 3] = std::nanf("");
    return values;
}

// The bits of a float (NaN included), for exact comparisons.
std::uint32_t bits(float value) {
    std::uint32_t result;
    std::memcpy(&result, &value, sizeof result);
    return result;
}

struct PoolCase {
    std::uint32_t H, W;
};
// 28 and 14 are the cnn preset's maps (14 and 7 outputs a row); odd sizes leave a last row and
// column no window reaches; 1, 8, 9, 15, 16, 17 and 33 outputs a row (a last block of 8 or 16
// again).
const PoolCase pool_cases[] = {{28, 28}, {14, 14}, {7, 7},  {5, 9},  {9, 5},  {2, 2},  {3, 3},
                               {6, 16},  {4, 32},  {3, 34}, {2, 18}, {3, 30}, {5, 33}, {2, 66}};

// The 2x2 max pooling's kernels this CPU runs: max_pool_channel as dispatched, and the AVX2 and
// AVX-512 ones by name.
using PoolKernel = void (*)(const float* x, std::uint32_t H, std::uint32_t W, std::uint32_t OH,
                            std::uint32_t OW, const PoolPixel<float>& pixel, float* y,
                            std::uint32_t* where, float* x_at_max);
std::vector<std::pair<std::string, PoolKernel>> pool_kernels() {
    std::vector<std::pair<std::string, PoolKernel>> kernels{
        {"max_pool_channel",
         [](const float* x, std::uint32_t H, std::uint32_t W, std::uint32_t, std::uint32_t,
            const PoolPixel<float>& pixel, float* y, std::uint32_t* where, float* x_at_max) {
             const Window window{2, 2, 0};
             max_pool_channel(x, window_geometry(Shape{1, H, W}, window), window, pixel, y, where,
                              x_at_max);
         }},
        {"max_pool_channel, generic (SSE2)",
         [](const float* x, std::uint32_t H, std::uint32_t W, std::uint32_t, std::uint32_t,
            const PoolPixel<float>& pixel, float* y, std::uint32_t* where, float* x_at_max) {
             KernelLevelGuard guard;
             limit_layer_kernels(KernelLevel::generic);
             const Window window{2, 2, 0};
             max_pool_channel(x, window_geometry(Shape{1, H, W}, window), window, pixel, y, where,
                              x_at_max);
         }}};
    if (xsimd::available_architectures().avx2)
        kernels.push_back({"avx2", max_pool_channel_2x2_avx2});
    if (xsimd::available_architectures().avx512f)
        kernels.push_back({"avx512", max_pool_channel_2x2_avx512});
    return kernels;
}
// The gradient through it: the AVX2 and AVX-512 kernels this CPU runs.
std::vector<std::pair<std::string, void (*)(const MaxPoolScatter&, float*)>> scatter_kernels() {
    std::vector<std::pair<std::string, void (*)(const MaxPoolScatter&, float*)>> kernels;
    if (xsimd::available_architectures().avx2)
        kernels.push_back({"avx2", max_pool_scatter_2x2_avx2});
    if (xsimd::available_architectures().avx512f)
        kernels.push_back({"avx512", max_pool_scatter_2x2_avx512});
    return kernels;
}

const PoolPixel<float> pool_pixels[] = {PoolPixel<float>{},
                                        PoolPixel<float>{true, 0.25f, 1.7f, 0.9f, -0.1f},
                                        PoolPixel<float>{true, -0.5f, 0.6f, -1.3f, 0.2f},
                                        PoolPixel<float>{true, 0.25f, 1.7f, 0.9f, -0.1f, false},
                                        // -x: the fused block's search for the smallest z
                                        PoolPixel<float>{true, 0.0f, 1.0f, -1.0f, -0.0f, false}};

}  // namespace

TEST_CASE("The fused 2x2 max pooling gives the plain rule's maxima, positions and inputs") {
    // max_pool_channel with a PoolPixel (on AVX2 where the CPU has it) against the rule written
    // out: the first largest pixel(x) in row-major window order wins, a NaN wins over anything
    // before it; bit for bit.
    if (!xsimd::available_architectures().avx2)
        MESSAGE("this CPU lacks AVX2: the SSE2 and scalar code is checked");
    Rng rng(5);
    const Window window{2, 2, 0};
    for (const auto& [kernel_name, kernel] : pool_kernels())
        for (const PoolCase& size : pool_cases)
            for (const PoolPixel<float>& pixel : pool_pixels)
                for (bool nan : {false, true})
                    for (bool inputs : {true, false}) {
                        CAPTURE(kernel_name);
                        CAPTURE(size.H);
                        CAPTURE(size.W);
                        CAPTURE(pixel.gamma);
                        CAPTURE(pixel.relu);
                        CAPTURE(nan);
                        CAPTURE(inputs);
                        const WindowGeometry g = window_geometry(Shape{1, size.H, size.W}, window);
                        const std::vector<float> x = channel_values(size.H * size.W, rng, nan);
                        const std::size_t OP = g.out_positions();
                        // guards after each output: nothing is written past them
                        std::vector<float> y(OP + 16, 7.0f), x_at_max(OP + 16, 7.0f);
                        std::vector<std::uint32_t> where(OP + 16, 7u);
                        kernel(x.data(), size.H, size.W, std::uint32_t(g.out_height),
                               std::uint32_t(g.out_width), pixel, y.data(), where.data(),
                               inputs ? x_at_max.data() : nullptr);
                        for (std::size_t j = OP; j < OP + 16; ++j) {
                            CHECK(y[j] == 7.0f);
                            CHECK(where[j] == 7u);
                            CHECK(x_at_max[j] == 7.0f);
                        }
                        for (std::size_t oh = 0; oh < g.out_height; ++oh)
                            for (std::size_t ow = 0; ow < g.out_width; ++ow) {
                                std::size_t best_at = 2 * oh * size.W + 2 * ow;
                                float best = pixel(x[best_at]);
                                for (std::size_t at :
                                     {best_at + 1, best_at + size.W, best_at + size.W + 1}) {
                                    const float value = pixel(x[at]);
                                    if (value > best || std::isnan(value)) {
                                        best = value;
                                        best_at = at;
                                    }
                                }
                                const std::size_t j = oh * g.out_width + ow;
                                CHECK(bits(y[j]) == bits(best));
                                CHECK(where[j] == best_at);
                                CHECK(bits(x_at_max[j]) == bits(inputs ? x[best_at] : 7.0f));
                            }
                    }
}

TEST_CASE(
    "The fused block's AVX2 and AVX-512 gradient through 2x2 max pooling is the scalar code's, "
    "bit for bit") {
    // max_pool_scatter_2x2_avx2 and _avx512 against the block's generic loop
    // (layers/conv_block.cpp): the means' part of BatchNorm's gradient at every pixel, then the
    // gradient at each maximum added; without BatchNorm, 0 and dy relu'(a). A NaN in dy stays.
    if (!xsimd::available_architectures().avx2) {
        MESSAGE("this CPU lacks AVX2: nothing to check");
        return;
    }
    Rng rng(8);
    const Window window{2, 2, 0};
    for (const auto& [kernel_name, kernel] : scatter_kernels())
        for (const PoolCase& size : pool_cases)
            for (const PoolPixel<float>& pixel : pool_pixels)
                for (bool nan : {false, true}) {
                    CAPTURE(kernel_name);
                    CAPTURE(nan);
                    CAPTURE(size.H);
                    CAPTURE(size.W);
                    CAPTURE(pixel.gamma);
                    CAPTURE(pixel.relu);
                    const WindowGeometry g = window_geometry(Shape{1, size.H, size.W}, window);
                    const std::size_t P = size.H * size.W, OP = g.out_positions();
                    const std::vector<float> z = channel_values(P, rng, false);
                    std::vector<float> y(OP), z_at_max(OP);
                    std::vector<std::uint32_t> where(OP);
                    max_pool_channel(z.data(), g, window, pixel, y.data(), where.data(),
                                     z_at_max.data());
                    const std::vector<float> dy = channel_values(OP, rng, nan);
                    const bool batchnorm = pixel.normalize;
                    const float scale = pixel.gamma * pixel.inv_std, mean_dy = 0.03f,
                                mean_dy_xhat = -0.21f;
                    // the generic code, as in BasicConvBlock::scatter_through_max_pool
                    std::vector<float> expected(P);
                    for (std::size_t p = 0; p < P; ++p)
                        expected[p] = batchnorm
                                          ? scale * (-mean_dy - (z[p] - pixel.mean) *
                                                                    pixel.inv_std * mean_dy_xhat)
                                          : 0.0f;
                    for (std::size_t j = 0; j < OP; ++j) {
                        if (!batchnorm) {
                            expected[where[j]] += dy[j] * float(y[j] > 0.0f);
                            continue;
                        }
                        const float a =
                            pixel.gamma * ((z_at_max[j] - pixel.mean) * pixel.inv_std) + pixel.beta;
                        expected[where[j]] += scale * dy[j] * float(a > 0.0f);
                    }
                    const MaxPoolScatter scatter{batchnorm ? z.data() : nullptr,
                                                 dy.data(),
                                                 where.data(),
                                                 batchnorm ? z_at_max.data() : y.data(),
                                                 size.H,
                                                 size.W,
                                                 std::uint32_t(g.out_height),
                                                 std::uint32_t(g.out_width),
                                                 batchnorm,
                                                 pixel.mean,
                                                 pixel.inv_std,
                                                 pixel.gamma,
                                                 pixel.beta,
                                                 scale,
                                                 mean_dy,
                                                 mean_dy_xhat};
                    // a guard after the channel: nothing is written past it
                    std::vector<float> dz(P + 16, 7.0f);
                    kernel(scatter, dz.data());
                    std::size_t differing = 0;
                    for (std::size_t p = 0; p < P; ++p)
                        differing += bits(dz[p]) != bits(expected[p]);
                    CHECK(differing == 0);
                    for (std::size_t p = P; p < P + 16; ++p)
                        CHECK(dz[p] == 7.0f);
                }
}

TEST_CASE(
    "The fused block's BatchNorm gradient sums through ReLU: generic, AVX2, AVX-512 the same "
    "bits") {
    // relu_batchnorm_grad_sums (generic, and on AVX2 and AVX-512 where the CPU has them) against
    // the sums written out with sum_pairs_in_16_lanes: the same 16 lanes, the same rounding, the
    // same doubles. Over the maxima of a pooled channel, or every position without pooling (784).
    const bool avx2 = xsimd::available_architectures().avx2;
    if (!avx2) MESSAGE("this CPU lacks AVX2: the generic code only");
    Rng rng(13);
    for (std::size_t n : {1, 7, 8, 9, 15, 49, 100, 196, 203, 784, 1001})
        for (const PoolPixel<float>& bn : pool_pixels) {
            if (!bn.normalize) continue;
            CAPTURE(n);
            CAPTURE(bn.gamma);
            CAPTURE(bn.relu);
            // dy over 40 binary orders of magnitude, so that the double sums round and their
            // order shows
            std::vector<float> dy = channel_values(n, rng, false);
            const std::vector<float> z_at_max = channel_values(n, rng, false);
            for (std::size_t j = 0; j < n; ++j)
                dy[j] = std::ldexp(dy[j], int(j * 7919 % 41) - 20);
            const auto x_hat = [&](std::size_t j) { return (z_at_max[j] - bn.mean) * bn.inv_std; };
            const auto d = [&](std::size_t j) {
                return bn.relu ? dy[j] * float(bn.gamma * x_hat(j) + bn.beta > 0.0f) : dy[j];
            };
            const SumPair expected = sum_pairs_in_16_lanes(n, [&](std::size_t j) {
                return SumPair{double(d(j)), double(d(j)) * double(x_hat(j))};
            });
            double sum_d = 0, sum_d_xhat = 0;
            relu_batchnorm_grad_sums<float>(dy.data(), z_at_max.data(), n, bn, sum_d, sum_d_xhat);
            CHECK(sum_d == expected.first);
            CHECK(sum_d_xhat == expected.second);
            if (!avx2) continue;
            relu_batchnorm_grad_sums_avx2(dy.data(), z_at_max.data(), n, bn, sum_d, sum_d_xhat);
            CHECK(sum_d == expected.first);
            CHECK(sum_d_xhat == expected.second);
            if (!xsimd::available_architectures().avx512f) continue;
            relu_batchnorm_grad_sums_avx512(dy.data(), z_at_max.data(), n, bn, sum_d, sum_d_xhat);
            CHECK(sum_d == expected.first);
            CHECK(sum_d_xhat == expected.second);
        }
}

TEST_CASE("apply_pixel on AVX2 gives the generic bits (BatchNorm and ReLU without pooling)") {
    // The fused block's BatchNorm + ReLU where nothing pools: the AVX2 kernel (where the CPU has
    // it) against PoolPixel applied value by value, bit for bit, NaN included, with a guard.
    if (!xsimd::available_architectures().avx2) MESSAGE("this CPU lacks AVX2: both run the same");
    Rng rng(19);
    for (std::size_t n : {1, 7, 8, 9, 15, 49, 196, 203})
        for (const PoolPixel<float>& pixel : pool_pixels) {
            CAPTURE(n);
            CAPTURE(pixel.gamma);
            CAPTURE(pixel.relu);
            const std::vector<float> x = channel_values(n, rng, true);
            std::vector<float> expected(n + 8, 7.0f), y(n + 8, 7.0f);
            for (std::size_t i = 0; i < n; ++i)
                expected[i] = pixel(x[i]);
            apply_pixel(x.data(), n, pixel, y.data());
            CHECK(std::memcmp(y.data(), expected.data(), (n + 8) * sizeof(float)) == 0);
        }
}

TEST_CASE(
    "The fused block's BatchNorm input gradient through ReLU: generic and AVX2 the same bits") {
    // relu_batchnorm_input_grad (the block without pooling) against its formula written out as
    // the two passes it replaced (dy relu'(a), then BatchNorm's dx), and the AVX2 kernel
    // (where the CPU has it) against both, bit for bit, with a guard after the channel.
    const bool avx2 = xsimd::available_architectures().avx2;
    if (!avx2) MESSAGE("this CPU lacks AVX2: the generic code only");
    Rng rng(17);
    for (std::size_t n : {1, 7, 8, 9, 15, 49, 196, 203, 784})
        for (const PoolPixel<float>& bn : pool_pixels) {
            if (!bn.normalize) continue;
            CAPTURE(n);
            CAPTURE(bn.gamma);
            CAPTURE(bn.relu);
            const std::vector<float> dy = channel_values(n, rng, false),
                                     z = channel_values(n, rng, false);
            const float sum_dy = 0.37f * float(n), sum_dy_xhat = -1.25f * float(n),
                        inv_count = 1.0f / float(8 * n);
            std::vector<float> expected(dy);
            for (std::size_t i = 0; i < n && bn.relu; ++i)
                expected[i] *= float(bn.gamma * ((z[i] - bn.mean) * bn.inv_std) + bn.beta > 0.0f);
            for (std::size_t i = 0; i < n; ++i) {
                const float x_hat = (z[i] - bn.mean) * bn.inv_std;
                expected[i] = bn.gamma * bn.inv_std *
                              (expected[i] - sum_dy * inv_count - x_hat * sum_dy_xhat * inv_count);
            }
            std::vector<float> dz(n + 8, 7.0f);
            const auto same_bits = [&] {
                std::size_t differing = 0;
                for (std::size_t i = 0; i < n; ++i)
                    differing += std::memcmp(&dz[i], &expected[i], sizeof(float)) != 0;
                CHECK(differing == 0);
                for (std::size_t i = n; i < n + 8; ++i)
                    CHECK(dz[i] == 7.0f);
            };
            relu_batchnorm_input_grad<float>(dy.data(), z.data(), n, bn, sum_dy, sum_dy_xhat,
                                             inv_count, dz.data());
            same_bits();
            if (!avx2) continue;
            std::fill(dz.begin(), dz.end(), 7.0f);
            relu_batchnorm_input_grad_avx2(dy.data(), z.data(), n, bn, sum_dy, sum_dy_xhat,
                                           inv_count, dz.data());
            same_bits();
        }
}
