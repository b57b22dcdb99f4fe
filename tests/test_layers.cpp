// Forward values, modes, the summary, the model builder, the data loader and the loss.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

TEST_CASE("Dense computes x W^T + b and initializes like PyTorch's Linear") {
    Rng rng(1);
    Dense dense(3, 2, rng);
    const float bound = 1.0f / std::sqrt(3.0f);
    for (const Parameter<float>& p : dense.parameters())
        for (std::size_t j = 0; j < p.size; ++j) {
            CHECK(p.value[j] >= -bound);
            CHECK(p.value[j] < bound);
        }
    dense.weight() = Matrix<float>{{1, 2, 3}, {-1, 0, 1}};
    dense.bias() = Vector<float>{0.5f, -0.5f};
    const Matrix<float>& y = dense.forward(Matrix<float>{{1, 1, 1}, {2, 0, -1}});
    CHECK(y == Matrix<float>{{6.5f, -0.5f}, {-0.5f, -3.5f}});
}

TEST_CASE("Activations compute their functions") {
    const Matrix<float> x{{-2.0f, 0.0f, 3.0f}};
    ReLU relu;
    Sigmoid sigmoid;
    Tanh tanh_layer;
    CHECK(relu.forward(x) == Matrix<float>{{0.0f, 0.0f, 3.0f}});
    CHECK(sigmoid.forward(x)(0, 1) == 0.5f);
    CHECK(sigmoid.forward(x)(0, 0) == doctest::Approx(1.0 / (1.0 + std::exp(2.0))));
    CHECK(tanh_layer.forward(x)(0, 2) == doctest::Approx(std::tanh(3.0)));
    // Saturation stays finite.
    CHECK(sigmoid.forward(Matrix<float>{{-1000.0f, 1000.0f}}) == Matrix<float>{{0.0f, 1.0f}});
}

TEST_CASE("Vectorized Sigmoid and Tanh agree with the math library to a few float ulps") {
    // 8001 values in [-20, 20]: whole SIMD batches and a scalar tail.
    Matrix<float> x = xt::empty<float>({std::size_t{1}, std::size_t{8001}});
    for (std::size_t i = 0; i < x.size(); ++i)
        x(0, i) = -20.0f + 0.005f * float(i);
    x(0, 8000) = std::numeric_limits<float>::quiet_NaN();
    Sigmoid sigmoid;
    Tanh tanh_layer;
    ReLU relu;
    const Matrix<float>& s = sigmoid.forward(x);
    const Matrix<float>& t = tanh_layer.forward(x);
    double worst_sigmoid = 0.0, worst_tanh = 0.0;
    for (std::size_t i = 0; i < 8000; ++i) {
        const double v = x(0, i);
        const double sigmoid_ref = 1.0 / (1.0 + std::exp(-v)), tanh_ref = std::tanh(v);
        worst_sigmoid = std::max(worst_sigmoid, std::abs(s(0, i) - sigmoid_ref) / sigmoid_ref);
        worst_tanh = std::max(worst_tanh,
                              std::abs(t(0, i) - tanh_ref) / std::max(std::abs(tanh_ref), 1e-30));
    }
    // Relative to the exact value: 4 units in the last place of a float (2^-23 each).
    const double four_ulps = 4.0 * std::ldexp(1.0, -23);
    CHECK(worst_sigmoid <= four_ulps);
    CHECK(worst_tanh <= four_ulps);
    // NaN stays NaN, as in PyTorch.
    CHECK(std::isnan(s(0, 8000)));
    CHECK(std::isnan(t(0, 8000)));
    CHECK(std::isnan(relu.forward(x)(0, 8000)));
}

TEST_CASE("Each instruction set's Sigmoid and Tanh kernels agree with the math library") {
    // The layers use the widest kernel this CPU has; the others must be as good, on whichever
    // machine runs them. 8001 values: whole vectors and a padded tail, for every width.
    std::vector<float> x(8001), y(8001);
    for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = -20.0f + 0.005f * float(i);
    x[8000] = std::numeric_limits<float>::quiet_NaN();
    auto worst_error = [&](auto arch, auto kernel, double (*reference)(double)) {
        kernel(arch, x.data(), y.data(), x.size());
        double worst = 0.0;
        for (std::size_t i = 0; i < 8000; ++i) {
            const double exact = reference(double(x[i]));
            worst = std::max(worst, std::abs(y[i] - exact) / std::max(std::abs(exact), 1e-30));
        }
        CHECK(std::isnan(y[8000]));
        return worst / std::ldexp(1.0, -23);  // in float ulps
    };
    double (*sigmoid)(double) = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    double (*tanh_exact)(double) = [](double v) { return std::tanh(v); };
    auto check_arch = [&](auto arch, const char* name) {
        const double sigmoid_ulps =
            worst_error(arch, ElementwiseKernel<SigmoidFunction>{}, sigmoid);
        const double tanh_ulps = worst_error(arch, ElementwiseKernel<TanhFunction>{}, tanh_exact);
        MESSAGE(std::string(name) << ": Sigmoid within " << sigmoid_ulps << " ulps, Tanh within "
                                  << tanh_ulps);
        CHECK(sigmoid_ulps <= 4.0);
        CHECK(tanh_ulps <= 4.0);
    };
#if defined(__x86_64__)
    check_arch(xsimd::sse2{}, "SSE2");
    if (xsimd::available_architectures().avx2) check_arch(xsimd::avx2{}, "AVX2");
    if (xsimd::available_architectures().avx512f) check_arch(xsimd::avx512f{}, "AVX-512");
#else
    check_arch(xsimd::default_arch{}, "default");
#endif
}

TEST_CASE("train_step skips the model's input gradient, other layers still pass theirs on") {
    Rng rng(4);
    Sequential model = mlp(5, {6}, 3, Activation::relu, true, rng);
    const Matrix<float> x = random_matrix<float>(8, 5, rng);
    const Labels y{0, 1, 2, 0, 1, 2, 0, 1};
    SoftmaxCrossEntropy loss;
    auto gradients = [&] {
        model.zero_grad();
        loss.forward(model.forward(x), y);
        const std::size_t input_grad_size = model.backward(loss.backward()).size();
        std::vector<float> all;
        for (const Parameter<float>& p : model.parameters())
            all.insert(all.end(), p.grad, p.grad + p.size);
        return std::make_pair(input_grad_size, all);
    };
    CHECK(model.input_grad_needed());  // on by default
    const auto [with_size, with_input_grad] = gradients();
    CHECK(with_size == 8 * 5);
    model.set_input_grad_needed(false);
    CHECK(!model[0].input_grad_needed());
    for (std::size_t i = 1; i < model.size(); ++i)
        CHECK(model[i].input_grad_needed());
    const auto [without_size, without_input_grad] = gradients();
    CHECK(without_size == 0);
    CHECK(without_input_grad == with_input_grad);  // bit for bit: the same products

    Sequential trained = mlp(5, {6}, 3, Activation::relu, true, rng);
    SGD optimizer(trained.parameters(), SGDOptions(0.1));
    train_step(trained, loss, optimizer, x, y);
    CHECK(!trained.input_grad_needed());
    CHECK(!trained[0].input_grad_needed());

    // A Sequential inside another, not first, must give its input gradient to the layer before.
    Sequential outer;
    outer.set_input_grad_needed(false);
    outer.add<Dense>(5, 4, rng);
    auto inner = std::make_unique<Sequential>();
    inner->add<ReLU>();
    inner->set_input_grad_needed(false);
    Sequential& inner_ref = *inner;
    outer.add(std::move(inner));
    CHECK(!outer[0].input_grad_needed());
    CHECK(inner_ref.input_grad_needed());
    CHECK(inner_ref[0].input_grad_needed());
}

TEST_CASE("BatchNorm normalizes each feature to mean beta and standard deviation gamma") {
    Rng rng(2);
    BatchNorm bn(3);
    bn.gamma() = Vector<float>{1.0f, 2.0f, 0.5f};
    bn.beta() = Vector<float>{0.0f, -1.0f, 3.0f};
    const Matrix<float> y = bn.forward(random_matrix<float>(64, 3, rng, 5.0, 10.0));
    for (std::size_t k = 0; k < 3; ++k) {
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < 64; ++i)
            mean += y(i, k) / 64.0;
        for (std::size_t i = 0; i < 64; ++i)
            var += (y(i, k) - mean) * (y(i, k) - mean) / 64.0;
        CHECK(mean == doctest::Approx(bn.beta()(k)).epsilon(1e-5));
        // sigma2 / (sigma2 + eps) shrinks the variance a hair below gamma^2.
        CHECK(var == doctest::Approx(bn.gamma()(k) * bn.gamma()(k)).epsilon(1e-4));
    }
}

TEST_CASE("BatchNorm's statistics keep their digits over a large offset, 1-D and spatial") {
    // 4096 values per feature (or channel) of 1000 + 0.01 z. Summed in double, as PyTorch's CPU
    // BatchNorm does, the batch's mean and variance are the ones computed in double here from
    // the same floats, to float rounding; summed in float, the mean loses most of the spread's
    // digits. With momentum 1 the running statistics are the batch's (the variance unbiased).
    Rng rng(9);
    for (const Shape& sample : {Shape{8}, Shape{8, 4, 4}}) {
        const std::size_t P = shape_size(sample) / 8, m = 4096 / P;
        const Matrix<float> x = random_matrix<float>(m, shape_size(sample), rng, 0.01, 1000.0);
        BatchNorm bn(BatchNormOptions(8).momentum(1.0));
        bn.set_input_shape(sample);
        bn.forward(x);
        double worst_mean = 0.0, worst_var = 0.0;
        for (std::size_t c = 0; c < 8; ++c) {
            double mean = 0.0, squares = 0.0;
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t p = 0; p < P; ++p)
                    mean += double(x(i, c * P + p)) / double(m * P);
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t p = 0; p < P; ++p)
                    squares += std::pow(double(x(i, c * P + p)) - mean, 2);
            const double unbiased = squares / double(m * P - 1);
            // in units of the spread (0.01), and relative
            worst_mean = std::max(worst_mean, std::abs(bn.running_mean()(c) - mean) / 0.01);
            worst_var = std::max(worst_var, std::abs(bn.running_var()(c) - unbiased) / unbiased);
        }
        INFO("sample shape " << shape_string(sample) << ": mean off by " << worst_mean
                             << " of the spread, variance by " << worst_var << " relative");
        // A float's rounding at 1000 is 3.1e-5 (0.0031 of the spread).
        CHECK(worst_mean <= 0.004);
        CHECK(worst_var <= 1e-5);
    }
}

TEST_CASE("sum_pairs_in_16_lanes adds lane by lane, zeros past the end, then as a tree") {
    // Terms over 60 binary orders of magnitude, so that a double sum in another order rounds
    // differently; the order written out: lane j = sum of terms j, j + 16, ... in order.
    Rng rng(5);
    for (std::size_t n : {0, 1, 15, 16, 17, 49, 196, 203}) {
        CAPTURE(n);
        std::vector<double> a(n), b(n);
        for (std::size_t i = 0; i < n; ++i) {
            a[i] = std::ldexp(rng.normal(), int(i * 7919 % 61) - 30);
            b[i] = std::ldexp(rng.normal(), int(i * 104729 % 59) - 29);
        }
        double lane_a[16] = {}, lane_b[16] = {};
        for (std::size_t i = 0; i < n; ++i) {
            lane_a[i % 16] += a[i];
            lane_b[i % 16] += b[i];
        }
        // the last partial block adds zeros: -0.0 + 0.0 = +0.0 shows it, elsewhere it is exact
        for (std::size_t j = n % 16; n % 16 != 0 && j < 16; ++j) {
            lane_a[j] += 0.0;
            lane_b[j] += 0.0;
        }
        const auto tree = [](const double* l) {
            return ((l[0] + l[4]) + (l[8] + l[12])) + ((l[2] + l[6]) + (l[10] + l[14])) +
                   (((l[1] + l[5]) + (l[9] + l[13])) + ((l[3] + l[7]) + (l[11] + l[15])));
        };
        const SumPair sums = sum_pairs_in_16_lanes(n, [&](std::size_t i) {
            return SumPair{a[i], b[i]};
        });
        CHECK(sums.first == tree(lane_a));
        CHECK(sums.second == tree(lane_b));
    }
}

TEST_CASE("channel_moments: one pass, to double rounding, AVX2 and AVX-512 give the generic bits") {
    // The fused block's per-sample statistics: sums of the values shifted by the first one.
    // Against a two-pass reference in long double: the mean to 1e-15 of the spread, M2 to 1e-12
    // relative, also 1000 + spread (where E[x^2] - mu^2 in double would lose 8 digits) and with
    // the first value 30 spreads away from the rest. The AVX2 and AVX-512 kernels (where the CPU
    // has them) must give the generic doubles: values over 40 binary orders of magnitude make the
    // lane order show.
    if (!xsimd::available_architectures().avx2)
        MESSAGE("this CPU lacks AVX2: both sides run the generic code");
    Rng rng(21);
    for (std::size_t n : {1, 7, 8, 9, 15, 16, 17, 49, 196, 784, 1001})
        for (int kind = 0; kind < 3; ++kind) {
            CAPTURE(n);
            CAPTURE(kind);
            std::vector<float> x(n);
            for (std::size_t i = 0; i < n; ++i)
                x[i] = kind == 2 ? std::ldexp(float(rng.normal()), int(i * 7919 % 41) - 20)
                                 : float((kind == 1 ? 1000.0 : 0.37) + rng.normal());
            if (kind == 1) x[0] = 1030.0f;
            long double reference_mean = 0, reference_squares = 0;
            for (float v : x)
                reference_mean += v;
            reference_mean /= n;
            for (float v : x)
                reference_squares += (v - reference_mean) * (v - reference_mean);
            double mean = 0, squares = 0, generic_mean = 0, generic_squares = 0;
            channel_moments(x.data(), n, mean, squares);
            channel_moments<float>(x.data(), n, generic_mean, generic_squares);
            CHECK(mean == generic_mean);
            CHECK(squares == generic_squares);
            if (xsimd::available_architectures().avx2) {
                channel_moments_avx2(x.data(), n, mean, squares);
                CHECK(mean == generic_mean);
                CHECK(squares == generic_squares);
            }
            if (xsimd::available_architectures().avx512f) {
                channel_moments_avx512(x.data(), n, mean, squares);
                CHECK(mean == generic_mean);
                CHECK(squares == generic_squares);
            }
            const double spread = std::sqrt(double(reference_squares / n));
            CHECK(std::abs(mean - double(reference_mean)) <=
                  1e-15 * std::max(spread, 1e-30) + 1e-16 * std::abs(mean));
            CHECK(std::abs(squares - double(reference_squares)) <=
                  1e-12 * double(reference_squares));
        }
}

TEST_CASE("Train and eval modes: BatchNorm's outputs differ, and evaluate() restores the mode") {
    Rng rng(3);
    Sequential model = mlp(4, {8}, 3, Activation::relu, true, rng);
    auto& bn = dynamic_cast<BatchNorm&>(model[1]);
    const Matrix<float> x = random_matrix<float>(16, 4, rng, 2.0, 1.0);

    CHECK(model.is_training());
    const Matrix<float> train_out = model.forward(x);
    CHECK(bn.num_batches_tracked() == 1);
    model.eval();
    CHECK(!model[0].is_training());
    CHECK(!bn.is_training());
    const Matrix<float> eval_out = model.forward(x);
    CHECK(bn.num_batches_tracked() == 1);  // eval never moves the running statistics
    CHECK(train_out != eval_out);

    model.train();
    const Vector<float> mean_before = bn.running_mean();
    Dataset data{x, xt::zeros<int>({std::size_t{16}})};
    const Evaluation result = evaluate(model, data, 5);
    CHECK(model.is_training());
    CHECK(bn.is_training());
    CHECK(bn.running_mean() == mean_before);
    CHECK(bn.num_batches_tracked() == 1);
    CHECK(result.accuracy >= 0.0);
    CHECK(std::isfinite(result.loss));
}

TEST_CASE("Layers added to a Sequential follow its mode") {
    Sequential model;
    model.eval();
    auto& bn = model.add<BatchNorm>(2);
    CHECK(!bn.is_training());
}

TEST_CASE("mlp() builds Dense, BatchNorm, activation blocks and a final Dense") {
    Rng rng(4);
    Sequential with_bn = mlp(784, {100, 100, 100}, 10, Activation::sigmoid, true, rng);
    REQUIRE(with_bn.size() == 10);
    CHECK(with_bn[0].describe() == "Dense(784 -> 100)");
    CHECK(with_bn[1].describe() == "BatchNorm(100, eps=1e-05, momentum=0.1)");
    CHECK(with_bn[2].describe() == "Sigmoid()");
    CHECK(with_bn[9].describe() == "Dense(100 -> 10)");
    CHECK(with_bn.in_features() == 784u);
    CHECK(with_bn.out_features() == 10u);
    Sequential without = mlp(784, {100, 100, 100}, 10, Activation::sigmoid, false, rng);
    CHECK(without.size() == 7);
    CHECK(with_bn.parameter_count() == without.parameter_count() + 3 * 200);
    CHECK(without.parameter_count() == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10);
}

TEST_CASE("summary() lists layers, output widths and parameter counts") {
    Rng rng(5);
    Sequential model;
    model.add<Dense>(784, 256, rng);
    model.add<BatchNorm>(256);
    model.add<ReLU>();
    model.add<Dense>(256, 10, rng);
    const std::string summary = model.summary();
    INFO(summary);
    CHECK(summary.find("0   Dense(784 -> 256)") != std::string::npos);
    CHECK(summary.find("200960") != std::string::npos);
    CHECK(summary.find("512") != std::string::npos);
    CHECK(summary.find("2570") != std::string::npos);
    CHECK(summary.find("Trainable parameters: 204042") != std::string::npos);
    CHECK(model.parameters()[2].name == "1.gamma");
    CHECK(model.buffers()[1].name == "1.running_var");
}

TEST_CASE("The loss is stable for huge logits and its gradient is (softmax - onehot) / m") {
    SoftmaxCrossEntropy loss;
    Labels labels = xt::empty<int>({std::size_t{2}});
    labels(0) = 0;
    labels(1) = 1;
    const float value = loss.forward(Matrix<float>{{1000.0f, 0.0f}, {0.0f, 0.0f}}, labels);
    CHECK(value == doctest::Approx(std::log(2.0) / 2).epsilon(1e-6));
    const Matrix<float>& grad = loss.backward();
    CHECK(grad(0, 0) == doctest::Approx(0.0));
    CHECK(grad(1, 0) == doctest::Approx(0.25));
    CHECK(grad(1, 1) == doctest::Approx(-0.25));
    CHECK(accuracy(Matrix<float>{{1.0f, 0.0f}, {2.0f, 1.0f}}, labels) == 0.5);
}

TEST_CASE("The batch loader visits every sample once per epoch, shuffled per seed") {
    Rng data_rng(6);
    Dataset data = make_blobs(10, 2, 2, 1.0, data_rng);
    for (std::size_t i = 0; i < 10; ++i)
        data.inputs(i, 0) = float(i);
    auto epoch_order = [&](Rng* rng, bool drop_last) {
        BatchLoader loader(data, 4, rng, drop_last);
        std::vector<int> seen;
        while (loader.next()) {
            for (std::size_t r = 0; r < loader.inputs().shape(0); ++r)
                seen.push_back(int(loader.inputs()(r, 0)));
        }
        return seen;
    };
    CHECK(epoch_order(nullptr, false) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(epoch_order(nullptr, true).size() == 8);
    Rng a(7), b(7), c(8);
    const std::vector<int> shuffled = epoch_order(&a, false);
    CHECK(shuffled == epoch_order(&b, false));
    CHECK(shuffled != epoch_order(&c, false));
    std::vector<int> sorted = shuffled;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == epoch_order(nullptr, false));
}

TEST_CASE("Training lowers the loss on a small synthetic problem") {
    Rng rng(9);
    Dataset data = make_blobs(512, 8, 3, 0.7, rng);
    Sequential model = mlp(8, {16}, 3, Activation::relu, true, rng);
    SoftmaxCrossEntropy loss;
    SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
    const double before = evaluate(model, data, 128).loss;
    BatchLoader batches(data, 32, &rng, true);
    for (int epoch = 0; epoch < 5; ++epoch) {
        batches.start_epoch();
        while (batches.next())
            train_step(model, loss, optimizer, batches.inputs(), batches.labels());
    }
    const Evaluation after = evaluate(model, data, 128);
    CHECK(after.loss < 0.5 * before);
    CHECK(after.accuracy > 0.8);
}
