"""The same measurement as build/bin/bench_step, in PyTorch (Debian's python3-torch):
a training step (forward, cross-entropy, backward, SGD step) of the same MLP or CNN on one fixed
in-memory batch, eval-mode inference, and (for MLPs) the limit the step's matrix products set at
the speed torch.mm reaches on the same shapes and threads. Prints one JSON line with the same
fields. Run with /usr/bin/python3; OpenBLAS's threads come from OPENBLAS_NUM_THREADS. With
--mkldnn off, convolutions take PyTorch's im2col + BLAS path (torch.backends.mkldnn.enabled =
False), the algorithm bnlab uses, instead of oneDNN.
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
import time

import torch


def seconds_per_call(rounds, calls, action):
    for _ in range(calls):
        action()
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            action()
        per_call.append((time.perf_counter() - start) / calls)
    return statistics.median(per_call)


def step_products(widths, batch):
    """(m, n, k, transpose_a, transpose_b) of each product, as bench_step lists them."""
    products = []
    for layer in range(len(widths) - 1):
        fan_in, fan_out = widths[layer], widths[layer + 1]
        products.append((batch, fan_out, fan_in, False, True))  # y = x W^T
        products.append((fan_out, fan_in, batch, True, False))  # dW = dy^T x
        if layer > 0:
            products.append((batch, fan_in, fan_out, False, False))  # dx = dy W
    return products


def mm_seconds(products, rounds):
    seconds = 0.0
    for m, n, k, transpose_a, transpose_b in products:
        a = torch.rand(k, m).t() if transpose_a else torch.rand(m, k)
        b = torch.rand(n, k).t() if transpose_b else torch.rand(k, n)
        out = torch.empty(m, n)
        calls = max(10, int(2e9 / (2.0 * m * n * k)))  # as bench_step: ~2 GFLOP a round
        seconds += seconds_per_call(rounds, calls, lambda: torch.mm(a, b, out=out))
    return seconds


def openblas_info():
    """OpenBLAS's core type and threads as PyTorch's process sees them."""
    for name in ("openblas", "blas"):
        path = ctypes.util.find_library(name)
        if not path:
            continue
        library = ctypes.CDLL(path)
        if hasattr(library, "openblas_get_corename"):
            library.openblas_get_corename.restype = ctypes.c_char_p
            return library.openblas_get_corename().decode(), library.openblas_get_num_threads()
    return "unknown", -1


class BasicBlock(torch.nn.Module):
    """torchvision's ResNet BasicBlock (bnlab's Residual): relu(body(x) + shortcut(x))."""

    def __init__(self, in_channels, out_channels, stride, bn):
        super().__init__()
        norm = torch.nn.BatchNorm2d if bn else (lambda channels: torch.nn.Identity())
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not bn),
            norm(out_channels), torch.nn.ReLU(),
            torch.nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not bn), norm(out_channels))
        self.shortcut = torch.nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 1, stride, bias=not bn),
                norm(out_channels))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet(depth, width, bn, classes):
    """models/resnet.hpp's network: He et al.'s CIFAR layout on 1 x 28 x 28 images."""
    blocks = (depth - 2) // 6
    layers = [torch.nn.Conv2d(1, width, 3, 1, 1, bias=not bn)]
    layers += [torch.nn.BatchNorm2d(width)] if bn else []
    layers.append(torch.nn.ReLU())
    in_channels = width
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_channels, width << stage, stride, bn))
            in_channels = width << stage
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
               torch.nn.Linear(in_channels, classes)]
    return torch.nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--channels", default="",
                        help="a CNN of these Conv3x3 -> [BN] -> act -> MaxPool2 blocks on "
                             "1 x 28 x 28 images (bench_step --channels)")
    parser.add_argument("--resnet", type=int, default=0,
                        help="a ResNet of this depth (bench_step --resnet)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--mkldnn", default="on", choices=["on", "off"])
    parser.add_argument("--act", default="relu", choices=["relu", "sigmoid", "tanh"])
    parser.add_argument("--bn", default="on", choices=["on", "off"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--inputs", type=int, default=784)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads (its OpenMP pool)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(1)
    torch.set_num_threads(args.torch_threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    hidden = [int(width) for width in args.hidden.split(",")]
    channels = [int(count) for count in args.channels.split(",") if count]
    images = bool(channels) or args.resnet > 0
    activation = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    layers = []
    flattened = args.inputs
    if channels:
        side, in_channels = 28, 1
        for out_channels in channels:
            layers.append(torch.nn.Conv2d(in_channels, out_channels, 3, padding=1))
            if args.bn == "on":
                layers.append(torch.nn.BatchNorm2d(out_channels))
            layers += [activation[args.act](), torch.nn.MaxPool2d(2)]
            in_channels, side = out_channels, side // 2
        layers.append(torch.nn.Flatten())
        flattened = in_channels * side * side
    widths = [flattened] + hidden + [args.classes]
    products = step_products(widths, args.batch)
    step_flops = sum(2.0 * m * n * k for m, n, k, _, _ in products)
    # The limit of the MLP's products; bench_step gives the CNN's (per-sample products).
    limit_seconds = None if images else mm_seconds(products, args.rounds)
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if args.bn == "on":
            layers.append(torch.nn.BatchNorm1d(fan_out))
        layers.append(activation[args.act]())
    layers.append(torch.nn.Linear(widths[-2], widths[-1]))
    model = (resnet(args.resnet, args.width, args.bn == "on", args.classes) if args.resnet
             else torch.nn.Sequential(*layers))
    loss_function = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(args.batch, 1, 28, 28) if images else torch.rand(args.batch, args.inputs)
    y = torch.randint(0, args.classes, (args.batch,))

    def step():
        optimizer.zero_grad()
        loss_function(model(x), y).backward()
        optimizer.step()

    step_seconds = seconds_per_call(args.rounds, args.steps, step)
    model.eval()

    def infer():
        with torch.no_grad():
            model(x)

    inference_seconds = seconds_per_call(args.rounds, args.steps, infer)
    core, openblas_threads = openblas_info()
    print(json.dumps({
        "bench": "pytorch " + torch.__version__,
        "model": "resnet" if args.resnet else "cnn" if channels else "mlp",
        "channels": channels, "depth": args.resnet, "width": args.width, "mkldnn": args.mkldnn,
        "hidden": hidden, "act": args.act, "bn": args.bn, "batch": args.batch,
        "threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
        "torch_threads": args.torch_threads,
        "openblas_threads": openblas_threads, "openblas_core": core,
        "samples_per_s": args.batch / step_seconds,
        "ms_per_step": step_seconds * 1e3,
        "gflops": None if images else step_flops / step_seconds / 1e9,
        "sgemm_gflops": None if images else step_flops / limit_seconds / 1e9,
        "limit_samples_per_s": None if images else args.batch / limit_seconds,
        "percent_of_limit": None if images else 100.0 * limit_seconds / step_seconds,
        "inference_samples_per_s": args.batch / inference_seconds,
    }))


if __name__ == "__main__":
    main()
