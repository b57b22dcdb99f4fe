// Finite-difference gradient checks in double precision for every layer, both BatchNorm modes,
// and a whole Sequential with BatchNorm plus the loss.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

TEST_CASE("Dense gradients match finite differences") {
    Rng rng(1);
    BasicDense<double> dense(5, 4, rng);
    check_layer_gradients(dense, random_matrix<double>(6, 5, rng), 11);
}

namespace {

// Inputs kept at least 0.05 from 0, where ReLU has its kink and finite differences lie.
Matrix<double> away_from_zero(Matrix<double> input) {
    for (double& value : input)
        if (std::abs(value) < 0.05) value = value < 0 ? -0.05 - value : 0.05 + value;
    return input;
}

}  // namespace

TEST_CASE("Activation gradients match finite differences") {
    Rng rng(2);
    const Matrix<double> input = away_from_zero(random_matrix<double>(5, 7, rng, 2.0));
    BasicReLU<double> relu;
    BasicSigmoid<double> sigmoid;
    BasicTanh<double> tanh_layer;
    check_layer_gradients(relu, input, 21);
    check_layer_gradients(sigmoid, input, 22);
    check_layer_gradients(tanh_layer, input, 23);
}

TEST_CASE("BatchNorm training-mode gradients match finite differences") {
    Rng rng(3);
    BasicBatchNorm<double> bn(4);
    for (double& g : bn.gamma())
        g = rng.uniform(0.5, 1.5);
    for (double& b : bn.beta())
        b = rng.normal();
    check_layer_gradients(bn, random_matrix<double>(6, 4, rng, 2.0, 1.0), 31);

    BasicBatchNorm<double> plain(BatchNormOptions(3).affine(false));
    check_layer_gradients(plain, random_matrix<double>(5, 3, rng, 0.5, -2.0), 32);
}

TEST_CASE("BatchNorm eval-mode gradients match finite differences") {
    Rng rng(4);
    BasicBatchNorm<double> bn(4);
    for (double& g : bn.gamma())
        g = rng.uniform(0.5, 1.5);
    for (int step = 0; step < 3; ++step)
        bn.forward(random_matrix<double>(8, 4, rng, 3.0, 2.0));
    bn.eval();
    check_layer_gradients(bn, random_matrix<double>(3, 4, rng), 41);
    // A batch of one is fine in eval mode.
    check_layer_gradients(bn, random_matrix<double>(1, 4, rng), 42);
}

TEST_CASE("A Sequential with BatchNorm and the cross-entropy loss: every gradient") {
    Rng rng(5);
    BasicSequential<double> model = mlp<double>(4, {6, 5}, 3, Activation::tanh, true, rng);
    Matrix<double> input = random_matrix<double>(7, 4, rng);
    Labels labels = xt::empty<int>({std::size_t{7}});
    for (std::size_t i = 0; i < 7; ++i)
        labels(i) = static_cast<int>(rng.below(3));
    BasicSoftmaxCrossEntropy<double> loss;
    REQUIRE(model.parameters().size() == 3 * 2 + 2 * 2);  // 3 Dense (W, b), 2 BatchNorm (γ, β)
    check_gradients(
        model, input, [&] { return loss.forward(model.forward(input), labels); },
        [&]() -> const Matrix<double>& { return loss.backward(); });
}

TEST_CASE("The compact BatchNorm backward equals the paper's step-by-step chain rule") {
    // Ioffe & Szegedy (2015), section 3, written out step by step as an independent check.
    Rng rng(6);
    const std::size_t m = 9, n = 3;
    const Matrix<double> x = random_matrix<double>(m, n, rng, 1.5, 0.5);
    const Matrix<double> dy = random_matrix<double>(m, n, rng);
    BasicBatchNorm<double> bn(n);
    for (double& g : bn.gamma())
        g = rng.uniform(0.5, 1.5);
    bn.forward(x);
    const Matrix<double> dx = bn.backward(dy);
    const double eps = 1e-5;
    for (std::size_t k = 0; k < n; ++k) {
        double mu = 0, var = 0;
        for (std::size_t i = 0; i < m; ++i)
            mu += x(i, k) / m;
        for (std::size_t i = 0; i < m; ++i)
            var += (x(i, k) - mu) * (x(i, k) - mu) / m;
        const double gamma = bn.gamma()(k);
        // dL/dxhat_i = dL/dy_i * gamma
        std::vector<double> dxhat(m);
        for (std::size_t i = 0; i < m; ++i)
            dxhat[i] = dy(i, k) * gamma;
        // dL/dsigma2 = sum_i dL/dxhat_i (x_i - mu) * (-1/2) (sigma2 + eps)^(-3/2)
        double dvar = 0;
        for (std::size_t i = 0; i < m; ++i)
            dvar += dxhat[i] * (x(i, k) - mu) * -0.5 * std::pow(var + eps, -1.5);
        // dL/dmu = sum_i dL/dxhat_i * (-1/sqrt(sigma2 + eps)) + dL/dsigma2 * sum_i -2 (x_i - mu) /
        // m
        double dmu = 0, centered_sum = 0;
        for (std::size_t i = 0; i < m; ++i) {
            dmu += dxhat[i] * -1.0 / std::sqrt(var + eps);
            centered_sum += -2.0 * (x(i, k) - mu) / m;
        }
        dmu += dvar * centered_sum;
        // dL/dx_i = dL/dxhat_i / sqrt(sigma2 + eps) + dL/dsigma2 * 2 (x_i - mu) / m + dL/dmu / m
        for (std::size_t i = 0; i < m; ++i) {
            const double expected =
                dxhat[i] / std::sqrt(var + eps) + dvar * 2.0 * (x(i, k) - mu) / m + dmu / m;
            CHECK(dx(i, k) == doctest::Approx(expected).epsilon(1e-12));
        }
    }
}
