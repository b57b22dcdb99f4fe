// The optimizers' update rules on hand-computed numbers (PyTorch's rules; the golden tests
// check them against PyTorch itself).
#include "helpers.hpp"

using namespace bnlab;

namespace {

struct OneParameter {
    std::vector<float> value{1.0f, -2.0f};
    std::vector<float> grad{0.5f, 0.25f};
    std::vector<Parameter<float>> list() { return {{"p", value.data(), grad.data(), 2}}; }
};

}  // namespace

TEST_CASE("SGD with momentum, dampening, weight decay and Nesterov follows PyTorch's rule") {
    OneParameter p;
    SGD plain(p.list(), SGDOptions(0.1));
    plain.step();
    CHECK(p.value[0] == doctest::Approx(1.0 - 0.1 * 0.5));

    OneParameter q;
    SGD momentum(q.list(), SGDOptions(0.1).momentum(0.9).weight_decay(0.1).dampening(0.5));
    momentum.step();  // b = g = 0.5 + 0.1 * 1 = 0.6 (no dampening on the first step)
    CHECK(q.value[0] == doctest::Approx(1.0 - 0.1 * 0.6));
    momentum.step();  // g = 0.5 + 0.1 * 0.94; b = 0.9 * 0.6 + 0.5 * g
    const double g = 0.5 + 0.1 * 0.94, b = 0.9 * 0.6 + 0.5 * g;
    CHECK(q.value[0] == doctest::Approx(0.94 - 0.1 * b));

    OneParameter r;
    SGD nesterov(r.list(), SGDOptions(0.1).momentum(0.9).nesterov(true));
    nesterov.step();  // b = 0.5; g = 0.5 + 0.9 * 0.5
    CHECK(r.value[0] == doctest::Approx(1.0 - 0.1 * 0.95));
}

TEST_CASE("Adam's first step moves each parameter by lr against its gradient's sign") {
    OneParameter p;
    Adam adam(p.list(), AdamOptions(0.01));
    adam.step();
    CHECK(p.value[0] == doctest::Approx(1.0 - 0.01).epsilon(1e-6));
    CHECK(p.value[1] == doctest::Approx(-2.0 - 0.01).epsilon(1e-6));
    adam.set_learning_rate(0.5);
    CHECK(adam.learning_rate() == 0.5);
}

TEST_CASE("zero_grad clears every gradient") {
    OneParameter p;
    SGD sgd(p.list(), SGDOptions(0.1));
    sgd.zero_grad();
    CHECK(p.grad == std::vector<float>{0.0f, 0.0f});
}
