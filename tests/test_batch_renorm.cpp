// Batch Renormalization (layers/batch_renorm.hpp) against the paper's algorithm (Ioffe 2017,
// Algorithm 1 and its backward with r and d held constant) written out here in double, which
// PyTorch lacks; the schedule of rmax and dmax; finite differences where r and d are clipped;
// BatchNorm's numbers during the warm-up; checkpoints, errors.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// The paper's training step on a [m, C] batch, per channel, in double: forward, the running
// statistics after it (PyTorch's momentum convention), and backward for `dy`.
struct PaperStep {
    Matrix<double> y, dx;
    std::vector<double> dgamma, dbeta, running_mean, running_var, r, d;
};

PaperStep paper_step(const Matrix<double>& x, const Matrix<double>& dy,
                     const std::vector<double>& gamma, const std::vector<double>& beta,
                     std::vector<double> running_mean, std::vector<double> running_var, double rmax,
                     double dmax, double momentum, double eps) {
    const std::size_t m = x.shape(0), C = x.shape(1);
    PaperStep step{x, x, {}, {}, {}, {}, {}, {}};
    for (std::size_t c = 0; c < C; ++c) {
        double mu_b = 0.0;
        for (std::size_t i = 0; i < m; ++i)
            mu_b += x(i, c) / double(m);
        double var_b = 0.0;
        for (std::size_t i = 0; i < m; ++i)
            var_b += (x(i, c) - mu_b) * (x(i, c) - mu_b) / double(m);
        const double sigma_b = std::sqrt(var_b + eps);
        const double sigma = std::sqrt(running_var[c] + eps);
        const double r = std::clamp(sigma_b / sigma, 1.0 / rmax, rmax);
        const double d = std::clamp((mu_b - running_mean[c]) / sigma, -dmax, dmax);
        step.r.push_back(r);
        step.d.push_back(d);
        // forward: xhat = (x - mu_B) / sigma_B r + d, y = gamma xhat + beta
        std::vector<double> x_hat(m);
        for (std::size_t i = 0; i < m; ++i) {
            x_hat[i] = (x(i, c) - mu_b) / sigma_b * r + d;
            step.y(i, c) = gamma[c] * x_hat[i] + beta[c];
        }
        // backward, the paper's chain rule with r and d constants
        double dsigma_b = 0.0, dmu_b = 0.0, dgamma = 0.0, dbeta = 0.0;
        for (std::size_t i = 0; i < m; ++i) {
            const double dx_hat = dy(i, c) * gamma[c];
            dsigma_b += dx_hat * (x(i, c) - mu_b) * (-r / (sigma_b * sigma_b));
            dmu_b += dx_hat * (-r / sigma_b);
            dgamma += dy(i, c) * x_hat[i];
            dbeta += dy(i, c);
        }
        for (std::size_t i = 0; i < m; ++i)
            step.dx(i, c) = dy(i, c) * gamma[c] * r / sigma_b +
                            dsigma_b * (x(i, c) - mu_b) / (double(m) * sigma_b) + dmu_b / double(m);
        step.dgamma.push_back(dgamma);
        step.dbeta.push_back(dbeta);
        // the running statistics move toward the batch's (unbiased variance)
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mu_b;
        running_var[c] = (1 - momentum) * running_var[c] + momentum * var_b * m / (m - 1.0);
    }
    step.running_mean = running_mean;
    step.running_var = running_var;
    return step;
}

void check_near(const std::string& what, const double* actual, const std::vector<double>& expected,
                double tolerance) {
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO(what << "[" << i << "]: " << actual[i] << " vs " << expected[i]);
        CHECK(std::abs(actual[i] - expected[i]) <=
              tolerance * std::max(1.0, std::abs(expected[i])));
    }
}

std::vector<double> flat(const Matrix<double>& matrix) {
    return std::vector<double>(matrix.begin(), matrix.end());
}

// A layer whose schedule has relaxed fully from the first batch on.
BatchRenormOptions relaxed(std::size_t features, double rmax, double dmax) {
    return BatchRenormOptions(features)
        .rmax(rmax)
        .dmax(dmax)
        .warmup_steps(0)
        .rmax_steps(0)
        .dmax_steps(0);
}

}  // namespace

TEST_CASE("BatchRenorm follows the paper's algorithm: r and d inside and at their bounds") {
    Rng rng(70);
    // Channel 0: r and d inside the bounds; channel 1: r clipped at rmax; channel 2: d clipped.
    const std::vector<double> running_mean = {0.3, -0.2, 4.0}, running_var = {0.09, 0.05, 1.0};
    const std::vector<double> gamma = {1.2, 0.7, 0.9}, beta = {0.1, -0.4, 0.3};
    BasicBatchRenorm<double> layer(relaxed(3, 2.0, 1.0).momentum(0.2));
    std::copy(running_mean.begin(), running_mean.end(), layer.running_mean().begin());
    std::copy(running_var.begin(), running_var.end(), layer.running_var().begin());
    std::copy(gamma.begin(), gamma.end(), layer.gamma().begin());
    std::copy(beta.begin(), beta.end(), layer.beta().begin());
    const Matrix<double> x = random_matrix<double>(6, 3, rng, 1.0, 0.5);
    const Matrix<double> dy = random_matrix<double>(6, 3, rng);
    const PaperStep expected =
        paper_step(x, dy, gamma, beta, running_mean, running_var, 2.0, 1.0, 0.2, 1e-5);
    CHECK(expected.r[0] > 0.5);
    CHECK(expected.r[0] < 2.0);
    CHECK(std::abs(expected.d[0]) < 1.0);
    CHECK(expected.r[1] == 2.0);
    CHECK(expected.d[2] == -1.0);

    layer.zero_grad();
    check_near("y", layer.forward(x).data(), flat(expected.y), 1e-12);
    check_near("r", layer.r().data(), expected.r, 1e-12);
    check_near("d", layer.d().data(), expected.d, 1e-12);
    check_near("running_mean", layer.running_mean().data(), expected.running_mean, 1e-12);
    check_near("running_var", layer.running_var().data(), expected.running_var, 1e-12);
    check_near("dx", layer.backward(dy).data(), flat(expected.dx), 1e-12);
    check_near("dgamma", layer.gamma_grad().data(), expected.dgamma, 1e-12);
    check_near("dbeta", layer.beta_grad().data(), expected.dbeta, 1e-12);

    // In float, on images (per channel over the batch and every position), as BatchNorm2d.
    BatchRenorm image(relaxed(2, 3.0, 2.0));
    image.set_input_shape({2, 3, 3});
    image.running_mean() = {1.0f, -3.0f};
    image.running_var() = {0.5f, 4.0f};
    const Matrix<float> images = random_matrix<float>(4, 18, rng, 1.5, 0.5);
    // The same numbers seen as [m H W, C]: what the paper's per-channel algorithm takes.
    Matrix<double> columns = xt::empty<double>({std::size_t{36}, std::size_t{2}});
    const Matrix<float> dy_images = random_matrix<float>(4, 18, rng);
    Matrix<double> dy_columns = columns;
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t c = 0; c < 2; ++c)
            for (std::size_t p = 0; p < 9; ++p) {
                columns(i * 9 + p, c) = images(i, c * 9 + p);
                dy_columns(i * 9 + p, c) = dy_images(i, c * 9 + p);
            }
    const PaperStep spatial = paper_step(columns, dy_columns, {1, 1}, {0, 0}, {1.0, -3.0},
                                         {0.5, 4.0}, 3.0, 2.0, 0.1, 1e-5);
    const Matrix<float>& y = image.forward(images);
    const Matrix<float>& dx = image.backward(dy_images);
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t c = 0; c < 2; ++c)
            for (std::size_t p = 0; p < 9; ++p) {
                CHECK(y(i, c * 9 + p) == doctest::Approx(spatial.y(i * 9 + p, c)).epsilon(1e-5));
                CHECK(dx(i, c * 9 + p) ==
                      doctest::Approx(spatial.dx(i * 9 + p, c)).epsilon(1e-5).scale(1.0));
            }
}

TEST_CASE("BatchRenorm's schedule: BatchNorm's numbers during the warm-up, then relaxed bounds") {
    BatchRenorm layer(BatchRenormOptions(4).warmup_steps(10).rmax_steps(30).dmax_steps(20));
    CHECK(layer.rmax_at(0) == 1.0);
    CHECK(layer.dmax_at(9) == 0.0);
    CHECK(layer.rmax_at(10) == 1.0);
    CHECK(layer.rmax_at(20) == doctest::Approx(2.0));
    CHECK(layer.rmax_at(30) == 3.0);
    CHECK(layer.rmax_at(1000) == 3.0);
    CHECK(layer.dmax_at(15) == doctest::Approx(2.5));
    CHECK(layer.dmax_at(20) == 5.0);

    // During the warm-up r = 1 and d = 0: BatchNorm, to the bit.
    Rng rng(71);
    BatchNorm batchnorm(4);
    for (int step = 0; step < 3; ++step) {
        const Matrix<float> x = random_matrix<float>(8, 4, rng, 2.0, 1.0);
        const Matrix<float> dy = random_matrix<float>(8, 4, rng);
        CHECK(layer.forward(x) == batchnorm.forward(x));
        CHECK(layer.backward(dy) == batchnorm.backward(dy));
    }
    CHECK(layer.gamma_grad() == batchnorm.gamma_grad());
    CHECK(layer.running_var() == batchnorm.running_var());
    CHECK(layer.num_batches_tracked() == 3);
    // Eval mode is BatchNorm's.
    layer.eval();
    batchnorm.eval();
    const Matrix<float> x = random_matrix<float>(2, 4, rng);
    CHECK(layer.forward(x) == batchnorm.forward(x));
}

TEST_CASE("BatchRenorm's gradients match finite differences where r and d are clipped") {
    // Running statistics far from the batch's: r = rmax and d = -dmax on every channel, so that
    // they are constants of x, as backward takes them, and finite differences see the same.
    Rng rng(72);
    BasicBatchRenorm<double> layer(relaxed(3, 1.5, 0.5).momentum(0.0));  // statistics kept
    layer.running_mean() = {10.0, 12.0, 9.0};
    layer.running_var() = {0.01, 0.02, 0.01};
    for (double& g : layer.gamma())
        g = rng.uniform(0.5, 1.5);
    check_layer_gradients(layer, random_matrix<double>(5, 3, rng), 721);
    CHECK(layer.r() == Vector<double>{1.5, 1.5, 1.5});
    CHECK(layer.d() == Vector<double>{-0.5, -0.5, -0.5});
}

TEST_CASE("BatchRenorm is saved and loaded with its schedule and step, bad options are errors") {
    Rng rng(73);
    Sequential model(Shape{1, 6, 6});
    model.add<Conv2d>(Conv2dOptions(1, 4, 3).padding(1), rng);
    model.add<BatchRenorm>(BatchRenormOptions(4).warmup_steps(1).rmax_steps(3).dmax_steps(2));
    model.add<ReLU>();
    model.add<Dense>(144, 3, rng);
    // Not fused: the block's arithmetic is BatchNorm's.
    CHECK(model.summary().find("Fused") == std::string::npos);
    SGD sgd(model.parameters(), SGDOptions(0.05).momentum(0.9));
    SoftmaxCrossEntropy loss;
    const Labels labels = {0, 1, 2, 1};
    for (int step = 0; step < 3; ++step)
        train_step(model, loss, sgd, random_matrix<float>(4, 36, rng), labels);
    TempDir dir;
    save_model(dir / "renorm.bnlab", model);
    CHECK(read_text(dir / "renorm.bnlab")
              .find("BatchRenorm 4 1.0000000000000001e-05 0.10000000000000001 1 3 5 1 3 2\n") !=
          std::string::npos);
    Sequential loaded = load_model(dir / "renorm.bnlab");
    CHECK(loaded.summary() == model.summary());
    CHECK(values_of(loaded) == values_of(model));
    CHECK(dynamic_cast<BatchRenorm&>(loaded[1]).num_batches_tracked() == 3);
    CHECK(model[1].describe() ==
          "BatchRenorm(4, eps=1e-05, momentum=0.1, rmax=3, dmax=5, warmup_steps=1, rmax_steps=3, "
          "dmax_steps=2)");
    // Both continue alike.
    const Matrix<float> x = random_matrix<float>(4, 36, rng);
    SGD loaded_sgd(loaded.parameters(), SGDOptions(0.05));
    SGD plain_sgd(model.parameters(), SGDOptions(0.05));
    train_step(model, loss, plain_sgd, x, labels);
    train_step(loaded, loss, loaded_sgd, x, labels);
    CHECK(values_of(loaded) == values_of(model));

    CHECK(message_of([] { BatchRenorm(BatchRenormOptions(2).rmax(0.5)); }) ==
          "BatchRenorm: rmax must be at least 1, got 0.5");
    CHECK(message_of([] { BatchRenorm(BatchRenormOptions(2).dmax(-1)); }) ==
          "BatchRenorm: dmax must be non-negative, got -1");
    CHECK(message_of([] { BatchRenorm(BatchRenormOptions(2).warmup_steps(10).rmax_steps(5)); }) ==
          "BatchRenorm: expected 0 <= warmup_steps <= rmax_steps and dmax_steps, got 10, 5 and "
          "25000");
    BatchRenorm one(3);
    CHECK(message_of([&] {
              one.forward(Matrix<float>{{1, 2, 3}});
          }).find("BatchRenorm(3, eps=1e-05") == 0);
    CHECK(load_model_error(dir / "bad.bnlab", "BatchRenorm 4 1e-5 0.1 1 3 5\n", 100) ==
          dir / "bad.bnlab" +
              ": section MODL line 1 'BatchRenorm 4 1e-5 0.1 1 3 5': expected features, eps, "
              "momentum, affine (0 or 1), rmax, dmax and the warmup, rmax and dmax steps");
}
