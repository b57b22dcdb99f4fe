// Convolutional layers: finite-difference gradient checks (double) for every new layer and for a
// whole small CNN with BatchNorm plus the loss; shapes through Sequential; Dropout; the errors.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// A layer given its input shape, as Sequential::add would.
template <typename L>
L& shaped(L& layer, const Shape& input) {
    layer.set_input_shape(input);
    return layer;
}

}  // namespace

TEST_CASE("Conv2d gradients match finite differences: padding, stride, 1x1, no bias") {
    Rng rng(1);
    BasicConv2d<double> padded(Conv2dOptions(2, 3, 3).padding(1), rng);
    check_layer_gradients(shaped(padded, {2, 5, 4}), random_matrix<double>(2, 2 * 5 * 4, rng), 11);
    BasicConv2d<double> strided(Conv2dOptions(2, 2, 3).stride(2).padding(1), rng);
    check_layer_gradients(shaped(strided, {2, 6, 5}), random_matrix<double>(3, 2 * 6 * 5, rng), 12);
    BasicConv2d<double> pointwise(3, 4, 1, 1, 0, rng);
    check_layer_gradients(shaped(pointwise, {3, 3, 2}), random_matrix<double>(2, 3 * 3 * 2, rng),
                          13);
    BasicConv2d<double> no_bias(Conv2dOptions(1, 2, 2).stride(3).bias(false), rng);
    check_layer_gradients(shaped(no_bias, {1, 7, 7}), random_matrix<double>(2, 49, rng), 14);
    // 3x3 with padding 1 on a 1-wide and a 1-pixel image: every shifted plane but the middle
    // one is all padding (im2col once wrote past the column matrix here)
    BasicConv2d<double> narrow(Conv2dOptions(2, 3, 3).padding(1), rng);
    check_layer_gradients(shaped(narrow, {2, 4, 1}), random_matrix<double>(2, 2 * 4, rng), 15);
    BasicConv2d<double> pixel(Conv2dOptions(2, 3, 3).padding(1), rng);
    check_layer_gradients(shaped(pixel, {2, 1, 1}), random_matrix<double>(2, 2, rng), 16);
}

namespace {

// Forward and backward of `conv` (float) on x and dy: y, dx, dW and db as doubles.
struct ConvResults {
    Matrix<double> y, dx, dW, db;
};
template <typename T>
ConvResults run_conv(BasicConv2d<T>& conv, const Matrix<float>& x, const Matrix<float>& dy) {
    conv.zero_grad();
    const Matrix<T> y = conv.forward(xt::cast<T>(x));
    const Matrix<T> dx = conv.backward(xt::cast<T>(dy));
    Matrix<double> db = xt::zeros<double>({std::size_t(1), conv.bias_grad().size()});
    std::copy(conv.bias_grad().begin(), conv.bias_grad().end(), db.begin());
    return {xt::cast<double>(y), xt::cast<double>(dx), xt::cast<double>(conv.weight_grad()), db};
}

// Largest |a - b| over the largest |b|.
double deviation(const Matrix<double>& a, const Matrix<double>& b) {
    REQUIRE(a.shape() == b.shape());
    const double scale = xt::amax(xt::abs(b))();
    return scale == 0.0 ? double(xt::amax(xt::abs(a))()) : xt::amax(xt::abs(a - b))() / scale;
}

}  // namespace

TEST_CASE("Conv2d's direct 3x3 kernels give im2col's numbers: odd sizes, channels, bias, batch 1") {
    if (!direct_conv_available()) {
        MESSAGE("this CPU lacks AVX2 or FMA: the direct kernels are not run");
        return;
    }
    struct Case {
        std::size_t in, out, height, width, batch;
        bool bias;
    };
    // Channels in and out of blocks of 4, a 1-pixel and a 1-wide image, ResNet's first and last
    // stages; batches of 6 and 9 give the weight gradient's groups of 4 samples a shorter last one.
    for (const Case& c :
         {Case{3, 5, 7, 9, 6, true}, Case{1, 16, 28, 28, 2, true}, Case{6, 3, 4, 1, 2, false},
          Case{5, 8, 1, 1, 2, true}, Case{4, 7, 3, 17, 1, false}, Case{16, 16, 14, 14, 1, true},
          Case{12, 9, 7, 7, 9, true}}) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        CAPTURE(c.height);
        CAPTURE(c.width);
        Rng rng(7);
        const Conv2dOptions options = Conv2dOptions(c.in, c.out, 3).padding(1).bias(c.bias);
        Rng weights(8);
        Conv2d direct(Conv2dOptions(options).algorithm(ConvAlgorithm::direct), weights);
        Rng same_weights(8);
        BasicConv2d<double> exact(Conv2dOptions(options).algorithm(ConvAlgorithm::im2col),
                                  same_weights);
        const Shape shape{c.in, c.height, c.width};
        direct.set_input_shape(shape);
        exact.set_input_shape(shape);
        REQUIRE(direct.runs_direct());
        // The same float weights in both (the double layer draws them unrounded)
        std::copy(direct.weight().begin(), direct.weight().end(), exact.weight().begin());
        std::copy(direct.bias().begin(), direct.bias().end(), exact.bias().begin());
        const Matrix<float> x = random_matrix<float>(c.batch, c.in * c.height * c.width, rng);
        const Matrix<float> dy = random_matrix<float>(c.batch, c.out * c.height * c.width, rng);
        const ConvResults got = run_conv(direct, x, dy), want = run_conv(exact, x, dy);
        // Float sums of at most C 9 (forward), O 9 (dx) and batch H W (dW, db) products, against
        // the same in double: rounding, well under 1e-6 of each tensor's scale.
        CHECK(deviation(got.y, want.y) <= 1e-6);
        CHECK(deviation(got.dx, want.dx) <= 1e-6);
        CHECK(deviation(got.dW, want.dW) <= 1e-6);
        CHECK(deviation(got.db, want.db) <= 1e-6);
    }
}

TEST_CASE("Conv2d on 2 threads gives the 1-thread results") {
    for (ConvAlgorithm algorithm : {ConvAlgorithm::im2col, ConvAlgorithm::direct}) {
        if (algorithm == ConvAlgorithm::direct && !direct_conv_available()) continue;
        CAPTURE(int(algorithm));
        Rng rng(2);
        Conv2d conv(Conv2dOptions(3, 8, 3).padding(1).algorithm(algorithm), rng);
        conv.set_input_shape({3, 9, 9});
        const Matrix<float> x = random_matrix<float>(7, 3 * 81, rng);
        const Matrix<float> dy = random_matrix<float>(7, 8 * 81, rng);
        // forward on one count of threads, backward on another (set between them)
        auto run = [&](int forward_threads, int backward_threads) {
            set_threads(forward_threads);
            conv.zero_grad();
            Matrix<float> y = conv.forward(x);
            set_threads(backward_threads);
            Matrix<float> dx = conv.backward(dy);
            return std::make_tuple(y, dx, Matrix<float>(conv.weight_grad()));
        };
        const auto [y1, dx1, dw1] = run(1, 1);
        const auto [y2, dx2, dw2] = run(2, 2);
        const auto [y12, dx12, dw12] = run(1, 2);
        set_threads(1);
        CHECK(y1 == y2);  // each sample is computed by one thread either way
        CHECK(dx1 == dx2);
        CHECK(dx12 == dx2);
        CHECK(dw12 == dw2);
        // dW is summed per thread, then over threads: the same sum in another order, equal to
        // float rounding relative to the gradient's scale.
        const float difference = xt::amax(xt::abs(dw1 - dw2))(), scale = xt::amax(xt::abs(dw1))();
        INFO("largest dW difference " << difference << " of " << scale);
        CHECK(difference <= 1e-6f * scale);
    }
}

TEST_CASE("Conv2d's direct algorithm refuses what it cannot compute, naming it") {
    Rng rng(3);
    if (direct_conv_available()) {
        CHECK(message_of([&] {
                  Conv2d(Conv2dOptions(2, 3, 5).padding(2).algorithm(ConvAlgorithm::direct), rng);
              }) ==
              "Conv2d: the direct algorithm computes 3x3 convolutions with stride 1 and "
              "padding 1 on float, got 5x5, padding 2");
        CHECK(message_of([&] {
                  Conv2d(
                      Conv2dOptions(2, 3, 3).stride(2).padding(1).algorithm(ConvAlgorithm::direct),
                      rng);
              }) ==
              "Conv2d: the direct algorithm computes 3x3 convolutions with stride 1 and "
              "padding 1 on float, got 3x3, stride 2, padding 1");
    } else {
        CHECK(message_of([&] {
                  Conv2d(Conv2dOptions(2, 3, 3).padding(1).algorithm(ConvAlgorithm::direct), rng);
              }) ==
              "Conv2d: the direct algorithm needs a CPU with AVX2 and FMA, which this one "
              "lacks; use ConvAlgorithm::im2col or automatic");
    }
    CHECK(message_of([&] {
              BasicConv2d<double>(
                  Conv2dOptions(2, 3, 3).padding(1).algorithm(ConvAlgorithm::direct), rng);
          }) ==
          "Conv2d: the direct algorithm computes 3x3 convolutions with stride 1 and "
          "padding 1 on float, got 3x3, padding 1 on double");
    // automatic takes it for large maps only, and never for other windows or double
    Conv2d small(Conv2dOptions(2, 3, 3).padding(1), rng),
        large(Conv2dOptions(2, 3, 3).padding(1), rng),
        strided(Conv2dOptions(2, 3, 3).stride(2).padding(1), rng);
    small.set_input_shape({2, 6, 6});
    large.set_input_shape({2, 28, 28});
    strided.set_input_shape({2, 28, 28});
    CHECK(!small.runs_direct());
    CHECK(large.runs_direct() == direct_conv_preferred(28, 28));
    CHECK(!strided.runs_direct());
    // BNLAB_CONV chooses for the automatic layers made after it is set, where they can run it
    ::setenv("BNLAB_CONV", "direct", 1);
    Conv2d forced(Conv2dOptions(2, 3, 3).padding(1), rng),
        chosen(Conv2dOptions(2, 3, 3).padding(1).algorithm(ConvAlgorithm::im2col), rng),
        wide(Conv2dOptions(2, 3, 5).padding(2), rng);
    ::setenv("BNLAB_CONV", "im2col", 1);
    Conv2d never(Conv2dOptions(2, 3, 3).padding(1), rng);
    for (Conv2d* conv : {&forced, &chosen, &wide, &never})
        conv->set_input_shape({2, 28, 28});
    CHECK(forced.runs_direct() == direct_conv_available());
    CHECK(!chosen.runs_direct());
    CHECK(!wide.runs_direct());
    CHECK(!never.runs_direct());
    ::setenv("BNLAB_CONV", "fast", 1);
    CHECK(message_of([&] { Conv2d(Conv2dOptions(2, 3, 3).padding(1), rng); }) ==
          "BNLAB_CONV: expected auto, im2col or direct, got 'fast'");
    ::unsetenv("BNLAB_CONV");
}

TEST_CASE("Pooling gradients match finite differences") {
    Rng rng(3);
    // Random inputs have no ties, where max pooling's derivative is not defined.
    BasicMaxPool2d<double> max2(2);
    check_layer_gradients(shaped(max2, {2, 4, 6}), random_matrix<double>(2, 48, rng), 21);
    BasicMaxPool2d<double> overlapping(3, 2, 1);
    check_layer_gradients(shaped(overlapping, {2, 5, 5}), random_matrix<double>(2, 50, rng), 22);
    BasicAvgPool2d<double> avg2(2);
    check_layer_gradients(shaped(avg2, {2, 5, 4}), random_matrix<double>(2, 40, rng), 23);
    BasicAvgPool2d<double> padded(3, 2, 1);
    check_layer_gradients(shaped(padded, {1, 5, 6}), random_matrix<double>(3, 30, rng), 24);
    BasicGlobalAvgPool2d<double> global;
    check_layer_gradients(shaped(global, {3, 2, 3}), random_matrix<double>(2, 18, rng), 25);
}

TEST_CASE("Spatial BatchNorm gradients match finite differences, training and eval") {
    Rng rng(4);
    BasicBatchNorm<double> bn(3);
    bn.set_input_shape({3, 2, 3});
    for (double& g : bn.gamma())
        g = rng.uniform(0.5, 1.5);
    for (double& b : bn.beta())
        b = rng.normal();
    check_layer_gradients(bn, random_matrix<double>(4, 18, rng, 2.0, 1.0), 31);
    // One sample still has H W values per channel: PyTorch trains on it.
    check_layer_gradients(bn, random_matrix<double>(1, 18, rng, 2.0, 1.0), 32);
    bn.eval();
    check_layer_gradients(bn, random_matrix<double>(2, 18, rng), 33);
}

TEST_CASE("A small CNN with BatchNorm and the cross-entropy loss: every gradient") {
    Rng rng(5);
    BasicSequential<double> model(Shape{2, 6, 6});
    model.add<BasicConv2d>(Conv2dOptions(2, 3, 3).padding(1), rng);
    model.add<BasicBatchNorm>(3);
    model.add<BasicTanh>();
    model.add<BasicMaxPool2d>(2);
    model.add<BasicConv2d>(Conv2dOptions(3, 4, 2).stride(1), rng);
    model.add<BasicBatchNorm>(4);
    model.add<BasicReLU>();
    model.add<BasicAvgPool2d>(2);
    model.add<BasicDense>(4, 3, rng);
    REQUIRE(model.output_shape() == Shape{3});
    Matrix<double> input = random_matrix<double>(5, 72, rng);
    Labels labels = xt::empty<int>({std::size_t{5}});
    for (std::size_t i = 0; i < 5; ++i)
        labels(i) = static_cast<int>(rng.below(3));
    BasicSoftmaxCrossEntropy<double> loss;
    REQUIRE(model.parameters().size() == 2 * 4 + 2);
    check_gradients(
        model, input, [&] { return loss.forward(model.forward(input), labels); },
        [&]() -> const Matrix<double>& { return loss.backward(); });
}

TEST_CASE("Sequential follows shapes through a CNN and summary() prints them") {
    Rng rng(6);
    Sequential model(Shape{1, 28, 28});
    model.add<Conv2d>(Conv2dOptions(1, 16, 3).padding(1), rng);
    model.add<BatchNorm2d>(16);
    model.add<ReLU>();
    model.add<MaxPool2d>(2);
    model.add<Conv2d>(16, 32, 3, 1, 1, rng);
    model.add<MaxPool2d>(2);
    model.add<Dense>(32 * 7 * 7, 10, rng);
    CHECK(model.in_features() == 784u);
    CHECK(model.out_features() == 10u);
    CHECK(model[3].output_shape() == Shape{16, 14, 14});
    CHECK(model[2].output_shape() == std::nullopt);  // ReLU keeps its input's shape
    const std::string summary = model.summary();
    INFO(summary);
    // Each layer's line ends with its output shape and parameter count.
    auto line_of = [&](const std::string& layer) {
        const std::size_t start = summary.find(layer);
        return start == std::string::npos
                   ? std::string()
                   : summary.substr(start, summary.find('\n', start) - start);
    };
    CHECK(line_of("0   Conv2d(1 -> 16, 3x3, padding 1)").find("[16, 28, 28]           160") !=
          std::string::npos);
    CHECK(line_of("3   MaxPool2d(2x2, stride 2)").find("[16, 14, 14]             0") !=
          std::string::npos);
    CHECK(line_of("6   Dense(1568 -> 10)").find("[10]         15690") != std::string::npos);
    CHECK(summary.find("Trainable parameters: " + std::to_string(160 + 32 + 4640 + 15690)) !=
          std::string::npos);
    CHECK(model.parameters()[2].name == "1.gamma");
    CHECK(model.parameters()[2].size == 16);
}

TEST_CASE("Shape errors name both layers and both shapes, nothing is half added") {
    Rng rng(7);
    Sequential model(Shape{1, 28, 28});
    model.add<Conv2d>(Conv2dOptions(1, 16, 3).padding(1), rng);
    model.add<MaxPool2d>(2);
    CHECK(message_of([&] { model.add<Conv2d>(8, 4, 3, 1, 0, rng); }) ==
          "Sequential: cannot add layer 2 Conv2d(8 -> 4, 3x3), which expects images [8, H, W], "
          "after layer 1 MaxPool2d(2x2, stride 2), which outputs [16, 14, 14] (3136 values)");
    CHECK(message_of([&] { model.add<Dense>(16 * 7 * 7, 10, rng); }) ==
          "Sequential: cannot add layer 2 Dense(784 -> 10), which expects 784 input features, "
          "after layer 1 MaxPool2d(2x2, stride 2), which outputs [16, 14, 14] (3136 values)");
    CHECK(message_of([&] { model.add<BatchNorm2d>(32); }) ==
          "Sequential: cannot add layer 2 BatchNorm(32, eps=1e-05, momentum=0.1), which expects "
          "32 features or channels, [32] or [32, H, W], after layer 1 MaxPool2d(2x2, stride 2), "
          "which outputs [16, 14, 14] (3136 values)");
    CHECK(message_of([&] { model.add<MaxPool2d>(15); }) ==
          "Sequential: cannot add layer 2 MaxPool2d(15x15, stride 15), which has a 15x15 window "
          "larger than its padded input 14x14, after layer 1 MaxPool2d(2x2, stride 2), which "
          "outputs [16, 14, 14] (3136 values)");
    CHECK(model.size() == 2);

    Sequential flat;
    CHECK(message_of([&] { flat.add<Conv2d>(1, 4, 3, 1, 0, rng); }) ==
          "Sequential: layer 0 Conv2d(1 -> 4, 3x3) needs the shape of its input samples: give the "
          "model its input shape, e.g. Sequential model(Shape{1, 28, 28})");
    flat.add<Dense>(784, 64, rng);
    CHECK(message_of([&] { flat.add<MaxPool2d>(2); }) ==
          "Sequential: cannot add layer 1 MaxPool2d(2x2, stride 2), which expects images [C, H, "
          "W], after layer 0 Dense(784 -> 64), which outputs [64]");
    Sequential images(Shape{3, 8, 8});
    CHECK(message_of([&] { images.add<Conv2d>(1, 4, 3, 1, 0, rng); }) ==
          "Sequential: cannot add layer 0 Conv2d(1 -> 4, 3x3), which expects images [1, H, W], on "
          "the model's input samples of shape [3, 8, 8] (192 values)");
}

TEST_CASE("Bad layer settings and inputs are errors naming the layer") {
    Rng rng(8);
    CHECK(message_of([&] { Conv2d(0, 4, 3, 1, 0, rng); }) ==
          "Conv2d: channels must be positive, got 0 -> 4");
    CHECK(message_of([&] { Conv2d(1, 4, 3, 0, 0, rng); }) ==
          "Conv2d: kernel size and stride must be positive, got 3 and 0");
    CHECK(message_of([&] { MaxPool2d(2, 2, 2); }) ==
          "MaxPool2d: padding should be at most half the kernel size, got padding 2 for kernel 2");
    CHECK(message_of([&] { Dropout(1.5); }) == "Dropout: probability must be in [0, 1], got 1.5");

    Conv2d conv(1, 2, 3, 1, 1, rng);
    const Matrix<float> x = xt::zeros<float>({std::size_t{2}, std::size_t{16}});
    CHECK(message_of([&] { conv.forward(x); }) ==
          "Conv2d(1 -> 2, 3x3, padding 1): the shape of its input samples is unknown: add it to a "
          "Sequential that knows its input shape, or call set_input_shape");
    CHECK(message_of([&] {
              conv.set_input_shape({2, 4, 4});
          }) == "Conv2d(1 -> 2, 3x3, padding 1) expects images [1, H, W], got [2, 4, 4]");
    conv.set_input_shape({1, 4, 4});
    const Matrix<float> wrong = xt::zeros<float>({std::size_t{2}, std::size_t{15}});
    CHECK(message_of([&] { conv.forward(wrong); }) ==
          "Conv2d(1 -> 2, 3x3, padding 1): input of shape [2, 15] has 15 features, expected 16");

    // A training batch with one value per channel is PyTorch's error.
    BatchNorm2d bn(2);
    bn.set_input_shape({2, 1, 1});
    const Matrix<float> one = xt::ones<float>({std::size_t{1}, std::size_t{2}});
    CHECK(message_of([&] { bn.forward(one); }) ==
          "BatchNorm(2, eps=1e-05, momentum=0.1): expected more than 1 value per channel when "
          "training, got input of shape [1, 2, 1, 1] (use eval() to run single samples)");
}

TEST_CASE("Dropout: masks from the generator, scaled by 1/(1-p), identity in eval mode") {
    Rng rng(9);
    Dropout dropout(0.25, rng);
    const Matrix<float> x = random_matrix<float>(100, 200, rng, 1.0, 3.0);
    const Matrix<float> y = dropout.forward(x);
    std::size_t zeros = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (y.data()[i] == 0.0f)
            ++zeros;
        else
            CHECK(y.data()[i] == x.data()[i] * (1.0f / 0.75f));
    }
    // 20,000 Bernoulli(0.25) draws: standard deviation 61, so 5000 +- 300 is 5 of them.
    CHECK(std::abs(double(zeros) - 5000.0) < 300.0);
    // dx = dy * mask: zero where the value was dropped, 1/(1-p) elsewhere.
    const Matrix<float> dy = xt::ones<float>(x.shape());
    const Matrix<float> dx = dropout.backward(dy);
    for (std::size_t i = 0; i < x.size(); ++i)
        CHECK(dx.data()[i] == (y.data()[i] == 0.0f ? 0.0f : 1.0f / 0.75f));
    // A new mask every forward.
    CHECK(dropout.forward(x) != y);
    // The same generator state gives the same mask.
    Rng first(42), second(42);
    Dropout a(0.5, first), b(0.5, second);
    CHECK(a.forward(x) == b.forward(x));
    dropout.eval();
    CHECK(dropout.forward(x) == x);
    CHECK(dropout.backward(dy) == dy);

    Dropout loaded(0.5);  // as load_model makes it: no generator yet
    CHECK(message_of([&] { loaded.forward(x); }) ==
          "Dropout(p=0.5): no generator to draw masks from in training mode; give it the run's "
          "with set_generator (fit does)");
    loaded.eval();
    CHECK(loaded.forward(x) == x);
}

TEST_CASE("MaxPool2d(2) follows PyTorch's rule on ties and NaN, four outputs at a time and alone") {
    // Widths 16, 18 and 6: the vectorized path alone, with an output left over (the last four
    // again), and the scalar loop alone.
    for (std::size_t width : {std::size_t(16), std::size_t(18), std::size_t(6)}) {
        CAPTURE(width);
        const std::size_t H = 4, C = 2, in_size = C * H * width;
        MaxPool2d pool(2);
        pool.set_input_shape({C, H, width});
        Rng rng(8);
        Matrix<float> x = xt::empty<float>({std::size_t(3), in_size});
        // Few distinct values, so that windows tie; NaN in some.
        for (float& value : x)
            value = float(int(rng.below(3)));
        for (std::size_t i = 0; i < x.size(); ++i)
            if (rng.below(8) == 0) x.data()[i] = std::numeric_limits<float>::quiet_NaN();
        // The last window of the first row: a NaN after a number, and a tie after it.
        x(0, width - 2) = 1.0f;
        x(0, width - 1) = std::numeric_limits<float>::quiet_NaN();
        x(1, width - 2) = 2.0f;
        x(1, width - 1) = 0.0f;
        x(1, 2 * width - 2) = 2.0f;
        x(1, 2 * width - 1) = 2.0f;
        const Matrix<float> y = pool.forward(x);
        Matrix<float> dy = xt::empty<float>(y.shape());
        for (std::size_t i = 0; i < dy.size(); ++i)
            dy.data()[i] = float(i + 1);
        const Matrix<float> dx = pool.backward(dy);
        // The rule, one window at a time: the first largest in row-major order, a NaN wins over
        // anything before it.
        Matrix<float> expected_dx = xt::zeros<float>(x.shape());
        const std::size_t OW = width / 2, OH = H / 2;
        for (std::size_t n = 0; n < 3; ++n)
            for (std::size_t c = 0; c < C; ++c)
                for (std::size_t oh = 0; oh < OH; ++oh)
                    for (std::size_t ow = 0; ow < OW; ++ow) {
                        const std::size_t plane = c * H * width;
                        std::size_t best_at = plane + 2 * oh * width + 2 * ow;
                        for (std::size_t at :
                             {best_at, best_at + 1, best_at + width, best_at + width + 1}) {
                            const float value = x(n, at), best = x(n, best_at);
                            if (value > best || std::isnan(value)) best_at = at;
                        }
                        const std::size_t out = (c * OH + oh) * OW + ow;
                        const float got = y(n, out), want = x(n, best_at);
                        CHECK((got == want || (std::isnan(got) && std::isnan(want))));
                        expected_dx(n, best_at) += dy(n, out);
                    }
        CHECK(dx == expected_dx);
    }
}
