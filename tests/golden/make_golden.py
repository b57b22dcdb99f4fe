#!/usr/bin/python3
"""Generates tests/golden/pytorch_golden.json: reference values from PyTorch's BatchNorm1d,
Linear, CrossEntropyLoss (with label smoothing), MSELoss, SGD, Adam, StepLR and CosineAnnealingLR, and for convolutional
networks Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) and BatchNorm2d, and the
normalizations GroupNorm, LayerNorm and InstanceNorm2d, for bnlab's tests.

Residual blocks are torchvision's own BasicBlock (resnet.py).

Run with Debian's python3-torch and python3-torchvision:
  /usr/bin/python3 tests/golden/make_golden.py
The tests read the committed JSON and never need PyTorch.

Inputs are drawn in float32 and written exactly, so bnlab (float32) starts from the same
numbers; references are computed in float64, so they are the exact answers bnlab approximates.
"""
import json
import os
import pathlib

import torch
from torchvision.models.resnet import BasicBlock

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


def training_steps(model, params_of, batches, labels, optimizer, batchnorm_at=1):
    """One cross-entropy step per batch: the losses, the parameters after each step, and the
    running statistics of the BatchNorm at index `batchnorm_at` after the last (None: none,
    for a params_of that records the buffers itself)."""
    record = {"initial": params_of(model), "inputs": [out(b) for b in batches],
              "labels": labels.tolist(), "losses": [], "after": []}
    for batch in batches:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        loss.backward()
        optimizer.step()
        record["losses"].append(float(loss))
        record["after"].append(params_of(model))
    if batchnorm_at is not None:
        record["running_mean"] = out(model[batchnorm_at].running_mean)
        record["running_var"] = out(model[batchnorm_at].running_var)
    return record


x = f32(torch.randn(8, 6))
labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
batches = [x, f32(torch.randn(8, 6))]
for name, make_optimizer in [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3))]:
    model = small_model()
    golden["sequential_" + name] = training_steps(model, params, batches, labels,
                                                  make_optimizer(model.parameters()))

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

# 6. Convolutional layers. Images are NCHW; bnlab reads each sample as one row in that order.
def layer_record(layer, x, dy):
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(dy)
    record = {"x": out(x), "dy": out(dy), "y": out(y), "dx": out(x.grad)}
    for name, p in layer.named_parameters():
        record[name] = out(p)
        record["d" + name] = out(p.grad)
    return record


def conv(in_c, out_c, k, x_shape, **kwargs):
    layer = torch.nn.Conv2d(in_c, out_c, k, **kwargs).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(f32(p))
    x = f32(torch.randn(*x_shape))
    y_shape = layer(x).shape
    return layer_record(layer, x, f32(torch.randn(*y_shape)))


golden["conv_stride2_pad1"] = conv(3, 4, 3, (2, 3, 7, 6), stride=2, padding=1)
golden["conv_1x1"] = conv(4, 5, 1, (2, 4, 3, 3))
golden["conv_k2_nobias"] = conv(2, 3, 2, (3, 2, 5, 4), bias=False)
golden["conv_k5_pad2"] = conv(2, 3, 5, (2, 2, 6, 6), padding=2)
# 3x3, stride 1, padding 1 (Conv2d's direct kernels): odd sizes, channels not in blocks of 4
golden["conv_3x3_pad1"] = conv(3, 5, 3, (3, 3, 7, 9), padding=1)
golden["conv_3x3_pad1_nobias"] = conv(6, 3, 3, (2, 6, 4, 1), padding=1, bias=False)


def pool(layer, x_shape):
    x = f32(torch.randn(*x_shape))
    return layer_record(layer, x, f32(torch.randn(*layer(x).shape)))


golden["maxpool_2"] = pool(torch.nn.MaxPool2d(2), (2, 3, 6, 6))
golden["maxpool_3_2_1"] = pool(torch.nn.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 7))
golden["avgpool_2"] = pool(torch.nn.AvgPool2d(2), (2, 3, 6, 6))
golden["avgpool_3_2_1"] = pool(torch.nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 7))
golden["global_avgpool"] = pool(torch.nn.AdaptiveAvgPool2d(1), (3, 4, 5, 3))


def batchnorm2d(c, **kwargs):
    return torch.nn.BatchNorm2d(c, **kwargs).double()


# BatchNorm2d: statistics per channel over the batch and every position.
c = 3
bn = batchnorm2d(c)
with torch.no_grad():
    bn.weight.copy_(f32(torch.rand(c) + 0.5))
    bn.bias.copy_(f32(torch.randn(c)))
record = layer_record(bn, f32(torch.randn(4, c, 5, 5) * 2 + 1), f32(torch.randn(4, c, 5, 5)))
record["running_mean"] = out(bn.running_mean)
record["running_var"] = out(bn.running_var)
golden["bn2d_train"] = record

bn = batchnorm2d(c)
with torch.no_grad():
    bn.weight.copy_(f32(torch.rand(c) + 0.5))
    bn.bias.copy_(f32(torch.randn(c)))
steps = [f32(torch.randn(3, c, 4, 4) * 2 - 1) for _ in range(3)]
for batch in steps:
    bn(batch)
bn.eval()
record = layer_record(bn, f32(torch.randn(2, c, 4, 4)), f32(torch.randn(2, c, 4, 4)))
record.update({"steps": [out(s) for s in steps], "running_mean": out(bn.running_mean),
               "running_var": out(bn.running_var)})
golden["bn2d_running_eval"] = record

bn = batchnorm2d(c, momentum=None, affine=False)
steps = [f32(torch.randn(2, c, 3, 3) * 3 + 2) for _ in range(3)]
for batch in steps[:-1]:
    bn(batch)
record = layer_record(bn, steps[-1], f32(torch.randn(2, c, 3, 3)))
record.update({"steps": [out(s) for s in steps[:-1]], "running_mean": out(bn.running_mean),
               "running_var": out(bn.running_var)})
golden["bn2d_cumulative_no_affine"] = record


# 7. Two SGD steps (momentum, weight decay) of Conv-BN-ReLU-Pool-Linear with cross-entropy.
def small_cnn():
    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 4 * 4, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(f32(p))
        model[1].weight.copy_(f32(torch.rand(4) + 0.5))
        model[1].bias.copy_(f32(torch.randn(4) * 0.1))
    return model


def cnn_params(model):
    return {"0.weight": out(model[0].weight), "0.bias": out(model[0].bias),
            "1.gamma": out(model[1].weight), "1.beta": out(model[1].bias),
            "4.weight": out(model[5].weight), "4.bias": out(model[5].bias)}


model = small_cnn()
batches = [f32(torch.randn(8, 1, 8, 8)), f32(torch.randn(8, 1, 8, 8))]
labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
golden["cnn_sgd"] = training_steps(
    model, cnn_params, batches, labels,
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3))


# 8. Residual blocks: torchvision's BasicBlock, y = relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x)),
#    s the identity or downsample = 1x1 Conv2d (stride) + BatchNorm2d. Named as bnlab's
#    Residual names them: body = [conv1, bn1, relu, conv2, bn2], shortcut = downsample.
def block_names(prefix, block):
    """bnlab's name of each of the block's parameters and buffers, keyed by torchvision's."""
    names = {"conv1.weight": "body.0.weight", "bn1.weight": "body.1.gamma",
             "bn1.bias": "body.1.beta", "bn1.running_mean": "body.1.running_mean",
             "bn1.running_var": "body.1.running_var", "conv2.weight": "body.3.weight",
             "bn2.weight": "body.4.gamma", "bn2.bias": "body.4.beta",
             "bn2.running_mean": "body.4.running_mean", "bn2.running_var": "body.4.running_var",
             "downsample.0.weight": "shortcut.0.weight", "downsample.1.weight": "shortcut.1.gamma",
             "downsample.1.bias": "shortcut.1.beta",
             "downsample.1.running_mean": "shortcut.1.running_mean",
             "downsample.1.running_var": "shortcut.1.running_var"}
    return {prefix + k: prefix + v for k, v in names.items()}


def randomize_batchnorms(module):
    """gamma and beta away from 1 and 0, so that the tests see them used."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(f32(torch.rand(m.num_features) + 0.5))
                m.bias.copy_(f32(torch.randn(m.num_features) * 0.1))
        for p in module.parameters():
            p.copy_(f32(p))


def residual_block(in_c, out_c, stride, x_shape):
    downsample = None
    if stride != 1 or in_c != out_c:
        downsample = torch.nn.Sequential(
            torch.nn.Conv2d(in_c, out_c, 1, stride=stride, bias=False),
            torch.nn.BatchNorm2d(out_c))
    block = BasicBlock(in_c, out_c, stride, downsample).double()
    randomize_batchnorms(block)
    names = block_names("", block)
    x = f32(torch.randn(*x_shape)).requires_grad_()
    y = block(x)
    dy = f32(torch.randn(*y.shape))
    y.backward(dy)
    record = {"x": out(x), "dy": out(dy), "y": out(y), "dx": out(x.grad), "values": {},
              "grads": {}}
    for name, p in block.named_parameters():
        record["values"][names[name]] = out(p)
        record["grads"][names[name]] = out(p.grad)
    for name, b in block.named_buffers():
        if name in names:
            record["values"][names[name]] = out(b)  # running statistics after the step
    return record


golden["basic_block_identity"] = residual_block(3, 3, 1, (4, 3, 6, 5))
golden["basic_block_projection"] = residual_block(3, 5, 2, (4, 3, 7, 6))


# 9. Two SGD steps (momentum, weight decay) of a ResNet-8 (models/resnet.hpp) of width 4 on
#    1x8x8 images: Conv3x3 + BN + ReLU, one BasicBlock per stage (4, 8, 16 channels; stride 2
#    at stages 2 and 3), global average pooling, Linear to 3 classes.
class ResNet8(torch.nn.Module):
    def __init__(self):
        super().__init__()
        def projection(i, o):
            return torch.nn.Sequential(torch.nn.Conv2d(i, o, 1, stride=2, bias=False),
                                       torch.nn.BatchNorm2d(o))
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(), BasicBlock(4, 4), BasicBlock(4, 8, 2, projection(4, 8)),
            BasicBlock(8, 16, 2, projection(8, 16)), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)


def resnet8_names(model):
    names = {"0.weight": "0.weight", "1.weight": "1.gamma", "1.bias": "1.beta",
             "1.running_mean": "1.running_mean", "1.running_var": "1.running_var",
             "8.weight": "7.weight", "8.bias": "7.bias"}
    for index in (3, 4, 5):
        names.update(block_names(f"{index}.", model.layers[index]))
    return names


torch.manual_seed(13)
model = ResNet8().double()
randomize_batchnorms(model)
names = resnet8_names(model)


def resnet8_state(model):
    state = {}
    for name, value in list(model.layers.named_parameters()) + list(model.layers.named_buffers()):
        if name in names:
            state[names[name]] = out(value)
    return state


batches = [f32(torch.randn(8, 1, 8, 8)), f32(torch.randn(8, 1, 8, 8))]
labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
golden["resnet8_sgd"] = training_steps(
    model, resnet8_state, batches, labels,
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3),
    batchnorm_at=None)

# 9. Normalizations by each sample's own statistics: GroupNorm, LayerNorm, InstanceNorm2d.
def norm_record(layer, x, dy):
    """layer_record with the affine parameters, when there are, drawn away from 1 and 0."""
    layer = layer.double()
    with torch.no_grad():
        if getattr(layer, "weight", None) is not None:
            layer.weight.copy_(f32(torch.rand(layer.weight.shape) + 0.5))
            layer.bias.copy_(f32(torch.randn(layer.bias.shape)))
    return layer_record(layer, x, dy)


def norm_case(layer, x_shape, scale=2.0, offset=1.0):
    return norm_record(layer, f32(torch.randn(*x_shape) * scale + offset),
                       f32(torch.randn(*x_shape)))


golden["groupnorm_g2"] = norm_case(torch.nn.GroupNorm(2, 6), (3, 6, 4, 5))
golden["groupnorm_g1"] = norm_case(torch.nn.GroupNorm(1, 4), (2, 4, 3, 3))
golden["groupnorm_gc"] = norm_case(torch.nn.GroupNorm(4, 4), (2, 4, 3, 3))
golden["groupnorm_features"] = norm_case(torch.nn.GroupNorm(2, 6), (5, 6))
golden["groupnorm_no_affine"] = norm_case(torch.nn.GroupNorm(2, 4, affine=False), (2, 4, 3, 3),
                                          offset=100.0)
golden["layernorm_features"] = norm_case(torch.nn.LayerNorm(7), (4, 7))
golden["layernorm_chw"] = norm_case(torch.nn.LayerNorm([3, 4, 5]), (2, 3, 4, 5))
golden["layernorm_hw"] = norm_case(torch.nn.LayerNorm([4, 5]), (2, 3, 4, 5))
golden["layernorm_no_affine"] = norm_case(torch.nn.LayerNorm(7, elementwise_affine=False), (4, 7))
golden["instancenorm"] = norm_case(torch.nn.InstanceNorm2d(3), (2, 3, 4, 5))
golden["instancenorm_affine"] = norm_case(torch.nn.InstanceNorm2d(3, affine=True), (2, 3, 4, 5))

# InstanceNorm2d with running statistics: three training steps move them (the batch's average
# of the instances' means and unbiased variances), then eval mode normalizes with them.
layer = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.2).double()
with torch.no_grad():
    layer.weight.copy_(f32(torch.rand(3) + 0.5))
    layer.bias.copy_(f32(torch.randn(3)))
steps = [f32(torch.randn(2, 3, 4, 4) * 2 - 1) for _ in range(3)]
for batch in steps:
    layer(batch)
layer.eval()
record = layer_record(layer, f32(torch.randn(2, 3, 4, 4)), f32(torch.randn(2, 3, 4, 4)))
record.update({"steps": [out(s) for s in steps], "running_mean": out(layer.running_mean),
               "running_var": out(layer.running_var)})
golden["instancenorm_running_eval"] = record

# BatchNorm without running statistics: the batch's statistics in training and in eval mode.
golden["bn_no_tracking"] = norm_case(torch.nn.BatchNorm1d(5, track_running_stats=False), (6, 5))
layer = torch.nn.BatchNorm2d(3, track_running_stats=False)
layer.eval()
golden["bn2d_no_tracking_eval"] = norm_case(layer, (2, 3, 4, 4), offset=-3.0)

# Losses: cross-entropy with label smoothing, and mean squared error (one and three outputs),
# forward and gradient with respect to the outputs.
def loss_case(loss, outputs, target):
    outputs = outputs.requires_grad_()
    value = loss(outputs, target)
    value.backward()
    record = {"outputs": out(outputs), "loss": float(value), "grad": out(outputs.grad)}
    record["target"] = out(target) if target.dtype.is_floating_point else [int(v) for v in target]
    return record


for smoothing, key in [(0.0, "cross_entropy"), (0.1, "cross_entropy_smoothing_0.1"),
                       (0.35, "cross_entropy_smoothing_0.35")]:
    golden[key] = loss_case(torch.nn.CrossEntropyLoss(label_smoothing=smoothing),
                            f32(torch.randn(6, 5) * 3), torch.randint(0, 5, (6,)))
    golden[key]["label_smoothing"] = smoothing
golden["mse_one_output"] = loss_case(torch.nn.MSELoss(), f32(torch.randn(7, 1) * 2),
                                     f32(torch.randn(7, 1) * 2 + 1))
golden["mse_three_outputs"] = loss_case(torch.nn.MSELoss(), f32(torch.randn(5, 3)),
                                        f32(torch.randn(5, 3) * 0.5))

path = pathlib.Path(__file__).with_name("pytorch_golden.json")
# Records already in the file are kept as they are: PyTorch's float64 results move in their last
# digits from one run to the next, and the tests were measured against the committed ones.
# BNLAB_GOLDEN_REWRITE=1 writes every record anew.
if path.exists() and os.environ.get("BNLAB_GOLDEN_REWRITE") != "1":
    kept = json.loads(path.read_text())
    added = [key for key in golden if key not in kept]
    kept.update({key: golden[key] for key in added})
    golden = kept
    print("added", ", ".join(added) or "nothing")
path.write_text(json.dumps(golden, indent=1) + "\n")
print("wrote", path)
