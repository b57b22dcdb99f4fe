#!/usr/bin/python3
"""Generates tests/golden/pytorch_golden.json: reference values from PyTorch's BatchNorm1d,
Linear, CrossEntropyLoss, SGD, Adam, StepLR and CosineAnnealingLR for bnlab's tests.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py
The tests read the committed JSON and never need PyTorch.

Inputs are drawn in float32 and written exactly, so bnlab (float32) starts from the same
numbers; references are computed in float64, so they are the exact answers bnlab approximates.
"""
import json
import pathlib

import torch

torch.manual_seed(2015)


def f32(tensor):
    """Rounds to float32 (what bnlab will read), then computes in float64."""
    return tensor.float().double()


def out(tensor):
    t = tensor.detach().double()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def batchnorm(n, **kwargs):
    return torch.nn.BatchNorm1d(n, **kwargs).double()


golden = {"torch_version": torch.__version__}

# 1. One training-mode forward and backward, with gamma and beta not at their defaults.
m, n = 8, 5
x = f32(torch.randn(m, n) * 3 + 1.5).requires_grad_()
gamma, beta, dy = f32(torch.rand(n) + 0.5), f32(torch.randn(n)), f32(torch.randn(m, n))
bn = batchnorm(n, eps=1e-5, momentum=0.1)
with torch.no_grad():
    bn.weight.copy_(gamma)
    bn.bias.copy_(beta)
y = bn(x)
y.backward(dy)
golden["bn_train"] = {
    "x": out(x), "gamma": out(gamma), "beta": out(beta), "dy": out(dy), "y": out(y),
    "dx": out(x.grad), "dgamma": out(bn.weight.grad), "dbeta": out(bn.bias.grad),
    "running_mean": out(bn.running_mean), "running_var": out(bn.running_var)}

# 2. Three training steps move the running statistics (momentum 0.1, unbiased variance); then
#    eval mode normalizes with them, and its backward treats them as constants.
m, n = 6, 4
bn = batchnorm(n)
gamma, beta = f32(torch.rand(n) + 0.5), f32(torch.randn(n))
with torch.no_grad():
    bn.weight.copy_(gamma)
    bn.bias.copy_(beta)
steps = [f32(torch.randn(m, n) * 2 - 1) for _ in range(3)]
for batch in steps:
    bn(batch)
bn.eval()
x_eval = f32(torch.randn(3, n)).requires_grad_()
dy_eval = f32(torch.randn(3, n))
y_eval = bn(x_eval)
y_eval.backward(dy_eval)
golden["bn_running"] = {
    "gamma": out(gamma), "beta": out(beta), "steps": [out(b) for b in steps],
    "running_mean": out(bn.running_mean), "running_var": out(bn.running_var),
    "x_eval": out(x_eval), "dy_eval": out(dy_eval), "y_eval": out(y_eval),
    "dx_eval": out(x_eval.grad), "dgamma_eval": out(bn.weight.grad),
    "dbeta_eval": out(bn.bias.grad)}

# 3. momentum=None: the running statistics are the cumulative average of the batches.
bn = batchnorm(n, momentum=None)
for batch in steps:
    bn(batch)
golden["bn_cumulative"] = {"steps": [out(b) for b in steps],
                           "running_mean": out(bn.running_mean),
                           "running_var": out(bn.running_var)}

# 4. affine=False: y = xhat.
x = f32(torch.randn(7, 3) * 0.5 + 4).requires_grad_()
dy = f32(torch.randn(7, 3))
bn = batchnorm(3, affine=False)
y = bn(x)
y.backward(dy)
golden["bn_no_affine"] = {"x": out(x), "dy": out(dy), "y": out(y), "dx": out(x.grad)}


# 5. Two optimizer steps of Linear(6,5) -> BatchNorm1d(5) -> ReLU -> Linear(5,3) with
#    cross-entropy, from one set of initial weights, for SGD and for Adam.
def small_model():
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5),
                                torch.nn.ReLU(), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(f32(p))
        model[1].weight.copy_(f32(torch.rand(5) + 0.5))
        model[1].bias.copy_(f32(torch.randn(5) * 0.1))
    return model


def params(model):
    return {"0.weight": out(model[0].weight), "0.bias": out(model[0].bias),
            "1.gamma": out(model[1].weight), "1.beta": out(model[1].bias),
            "3.weight": out(model[3].weight), "3.bias": out(model[3].bias)}


x = f32(torch.randn(8, 6))
labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
batches = [x, f32(torch.randn(8, 6))]
for name, make_optimizer in [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3))]:
    model = small_model()
    record = {"initial": params(model), "inputs": [out(b) for b in batches],
              "labels": labels.tolist(), "losses": [], "after": []}
    optimizer = make_optimizer(model.parameters())
    for batch in batches:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        loss.backward()
        optimizer.step()
        record["losses"].append(float(loss))
        record["after"].append(params(model))
    record["running_mean"] = out(model[1].running_mean)
    record["running_var"] = out(model[1].running_var)
    golden["sequential_" + name] = record

# 5. Learning-rate schedules stepped once per epoch: the rate each epoch trains with.
schedules = {
    "step_3_0.5": (0.4, 12, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "step_2": (0.1, 9, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2)),
    "cosine_10": (0.1, 10, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
    "cosine_5_0.01": (0.5, 23, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
        o, T_max=5, eta_min=0.01)),
}
golden["lr_schedules"] = {}
for name, (base_lr, epochs, make) in schedules.items():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make(optimizer)
    rates = []
    for epoch in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    golden["lr_schedules"][name] = {"base_lr": base_lr, "lr": rates}

path = pathlib.Path(__file__).with_name("pytorch_golden.json")
path.write_text(json.dumps(golden, indent=1) + "\n")
print("wrote", path)
