// bnlab (float32) against PyTorch 1.13's values (float64) from tests/golden/make_golden.py,
// to 1e-5 relative to each tensor's scale.
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using nlohmann::json;

namespace {

void check_vector(const std::string& what, const Vector<float>& actual, const json& expected) {
    check_close(what, actual.data(), actual.size(), expected);
}
void check_matrix(const std::string& what, const Matrix<float>& actual, const json& expected) {
    check_close(what, actual.data(), actual.size(), expected);
}

}  // namespace

TEST_CASE("BatchNorm training forward and backward match PyTorch") {
    const json& g = golden().at("bn_train");
    const Matrix<float> x = matrix_from<float>(g["x"]);
    BatchNorm bn(x.shape(1));
    assign_from(bn.gamma().data(), bn.gamma().size(), g["gamma"]);
    assign_from(bn.beta().data(), bn.beta().size(), g["beta"]);

    check_matrix("bn_train y", bn.forward(x), g["y"]);
    check_matrix("bn_train dx", bn.backward(matrix_from<float>(g["dy"])), g["dx"]);
    check_vector("bn_train dgamma", bn.gamma_grad(), g["dgamma"]);
    check_vector("bn_train dbeta", bn.beta_grad(), g["dbeta"]);
    check_vector("bn_train running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_train running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("BatchNorm running statistics over several steps and eval mode match PyTorch") {
    const json& g = golden().at("bn_running");
    BatchNorm bn(4);
    assign_from(bn.gamma().data(), bn.gamma().size(), g["gamma"]);
    assign_from(bn.beta().data(), bn.beta().size(), g["beta"]);
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_vector("bn_running running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_running running_var", bn.running_var(), g["running_var"]);
    CHECK(bn.num_batches_tracked() == 3);

    bn.eval();
    bn.zero_grad();
    check_matrix("bn_running y_eval", bn.forward(matrix_from<float>(g["x_eval"])), g["y_eval"]);
    check_matrix("bn_running dx_eval", bn.backward(matrix_from<float>(g["dy_eval"])), g["dx_eval"]);
    check_vector("bn_running dgamma_eval", bn.gamma_grad(), g["dgamma_eval"]);
    check_vector("bn_running dbeta_eval", bn.beta_grad(), g["dbeta_eval"]);
}

TEST_CASE("BatchNorm with momentum unset keeps a cumulative average, as PyTorch's None") {
    const json& g = golden().at("bn_cumulative");
    BatchNorm bn(BatchNormOptions(4).momentum(std::nullopt));
    for (const json& step : g["steps"])
        bn.forward(matrix_from<float>(step));
    check_vector("bn_cumulative running_mean", bn.running_mean(), g["running_mean"]);
    check_vector("bn_cumulative running_var", bn.running_var(), g["running_var"]);
}

TEST_CASE("BatchNorm without affine parameters matches PyTorch") {
    const json& g = golden().at("bn_no_affine");
    BatchNorm bn(BatchNormOptions(3).affine(false));
    CHECK(bn.parameters().empty());
    check_matrix("bn_no_affine y", bn.forward(matrix_from<float>(g["x"])), g["y"]);
    check_matrix("bn_no_affine dx", bn.backward(matrix_from<float>(g["dy"])), g["dx"]);
}

namespace {

// Linear(6,5) -> BatchNorm1d(5) -> ReLU -> Linear(5,3) with the golden initial weights, trained
// two steps with `optimizer`; checks losses, every parameter after each step and the running
// statistics.
template <typename MakeOptimizer>
void check_sequential_steps(const std::string& name, MakeOptimizer make_optimizer) {
    const json& g = golden().at("sequential_" + name);
    Rng rng(0);  // weights are overwritten with the golden ones below
    Sequential model;
    model.add<Dense>(6, 5, rng);
    model.add<BatchNorm>(5);
    model.add<ReLU>();
    model.add<Dense>(5, 3, rng);
    std::vector<Parameter<float>> parameters = model.parameters();
    REQUIRE(parameters.size() == 6);
    for (Parameter<float>& p : parameters)
        assign_from(p.value, p.size, g["initial"].at(p.name));

    auto optimizer = make_optimizer(parameters);
    SoftmaxCrossEntropy loss;
    Labels labels = xt::empty<int>({std::size_t{8}});
    for (std::size_t i = 0; i < 8; ++i)
        labels(i) = g["labels"][i].get<int>();
    for (std::size_t step = 0; step < 2; ++step) {
        const std::string prefix = name + " step " + std::to_string(step + 1) + " ";
        const double value =
            train_step(model, loss, optimizer, matrix_from<float>(g["inputs"][step]), labels).loss;
        const double expected = g["losses"][step].get<double>();
        INFO(prefix << "loss " << value << " vs " << expected);
        CHECK(std::abs(value - expected) <= 1e-5 * std::abs(expected));
        for (const Parameter<float>& p : parameters)
            check_close(prefix + p.name, p.value, p.size, g["after"][step].at(p.name));
    }
    auto& bn = dynamic_cast<BatchNorm&>(model[1]);
    check_vector(name + " running_mean", bn.running_mean(), g["running_mean"]);
    check_vector(name + " running_var", bn.running_var(), g["running_var"]);
}

}  // namespace

TEST_CASE("Two SGD steps (momentum, weight decay) of a Sequential with BatchNorm match PyTorch") {
    check_sequential_steps("sgd", [](std::vector<Parameter<float>> p) {
        return SGD(p, SGDOptions(0.1).momentum(0.9).weight_decay(1e-3));
    });
}

TEST_CASE("Two Adam steps of a Sequential with BatchNorm match PyTorch") {
    check_sequential_steps("adam", [](std::vector<Parameter<float>> p) {
        return Adam(p, AdamOptions(0.01).weight_decay(1e-3));
    });
}
