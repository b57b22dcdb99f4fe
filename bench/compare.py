"""Runs build/bin/bench_step and bench/torch_step.py on the standard configurations, with 1 and
2 threads, in this environment, and prints per row bnlab's and PyTorch's samples/s, their ratio
and bnlab's share of the limit its matrix products set, on its kernels and on the best OpenBLAS
kernels this CPU runs. PyTorch gets its best setting on the same cores: torch.set_num_threads
from 1 up to the row's threads, OpenBLAS on the row's threads and on the core bnlab runs (bnlab
replaces OpenBLAS's generic kernels on a CPU it does not know, framework/blas_kernels.hpp; a
PyTorch user can set OPENBLAS_CORETYPE the same way). Then times loading Fashion-MNIST and one
epoch of the default compare_bn configuration with build/bin/train."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, channels, hidden, activation, bn, batch); channels "" for an MLP
MLP_ROWS = [
    ("784-256-256-10 ReLU, BN", "", "256,256", "relu", "on", 128),
    ("784-256-256-10 ReLU, no BN", "", "256,256", "relu", "off", 128),
    ("784-100-100-100-10 sigmoid, BN (the BN paper's)", "", "100,100,100", "sigmoid", "on", 60),
    ("784-1024-1024-10 ReLU, BN", "", "1024,1024", "relu", "on", 256),
]
# The cnn preset's network (Conv3x3 blocks -> [BN] -> ReLU -> MaxPool2, then Dense 128 -> [BN]
# -> ReLU -> Dense 10) and a wider one.
CNN_ROWS = [
    ("CNN conv 16,32 + 128 ReLU, BN (the cnn preset)", "16,32", "128", "relu", "on", 128),
    ("CNN conv 16,32 + 128 ReLU, no BN", "16,32", "128", "relu", "off", 128),
    ("CNN conv 32,64 + 128 ReLU, BN", "32,64", "128", "relu", "on", 128),
    ("CNN conv 32,64 + 128 ReLU, no BN", "32,64", "128", "relu", "off", 128),
] + [
    # models/resnet.hpp (bench/torch_step.py builds the same network for PyTorch)
    ("ResNet-20 (width 16), BN", "resnet20", "", "relu", "on", 128),
]


def model_flags(channels, hidden):
    """bench_step's and torch_step.py's flags for a row's network."""
    if channels.startswith("resnet"):
        return ["--resnet", channels[len("resnet"):]]
    return ["--hidden", hidden] + (["--channels", channels] if channels else [])


def step_flops(channels, hidden, batch):
    """Roughly the step's flops, to size the timed rounds."""
    if channels.startswith("resnet"):
        # 6n 3x3 convolutions of w, 2w, 4w channels on 28, 14, 7 (w = 16): equal cost per stage
        blocks = (int(channels[len("resnet"):]) - 2) // 6
        return 3 * 2.0 * batch * 3 * 2 * blocks * 16 * 16 * 9 * 28 * 28
    flops = 0.0
    side, in_channels = 28, 1
    for out_channels in [int(c) for c in channels.split(",") if c]:
        flops += 3 * 2.0 * batch * out_channels * in_channels * 9 * side * side
        in_channels, side = out_channels, side // 2
    widths = [in_channels * side * side] + [int(w) for w in hidden.split(",")] + [10]
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        flops += 2 * 2.0 * batch * fan_in * fan_out * (1 if layer == 0 else 1.5)
    return flops


def run_json(command, env=None):
    result = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_run(runs):
    return sorted(runs, key=lambda m: m["samples_per_s"])[len(runs) // 2]


def best_run(runs):
    return max(runs, key=lambda m: m["samples_per_s"])


def spread(runs):
    rates = [m["samples_per_s"] for m in runs]
    return f"{min(rates) / 1000:.0f}k–{max(rates) / 1000:.0f}k"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    parser.add_argument("--threads", default="1,2", help="thread counts to measure")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of each program per row; the median run is reported, the "
                             "range of all, and the ratio of the fastest runs")
    parser.add_argument("--out", help="also write every measurement here, one JSON per line")
    parser.add_argument("--rows", default="all", choices=["all", "mlp", "cnn", "resnet"],
                        help="which rows to measure (resnet: the ResNet rows of cnn alone)")
    args = parser.parse_args()

    rows = ((MLP_ROWS if args.rows in ("all", "mlp") else []) +
            (CNN_ROWS if args.rows in ("all", "cnn") else []) +
            ([row for row in CNN_ROWS if row[1].startswith("resnet")]
             if args.rows == "resnet" else []))
    measurements = []
    table = []
    for name, channels, hidden, act, bn, batch in rows:
        # About 0.3 s of steps per timed round, at least 20 steps (5 for a ResNet's, which
        # take 0.2-0.5 s each).
        steps = str(max(5 if channels.startswith("resnet") else 20,
                        int(3e10 / step_flops(channels, hidden, batch))))
        # PyTorch runs its convolutions on oneDNN; its im2col + BLAS path (bnlab's algorithm)
        # is measured too, and the faster setting counts.
        torch_settings = [(t, mkldnn) for t in range(1, 1 + max(int(t) for t in
                                                                  args.threads.split(",")))
                          for mkldnn in (["on", "off"] if channels else ["on"])]
        for threads in [int(t) for t in args.threads.split(",")]:
            common = model_flags(channels, hidden) + ["--act", act, "--bn", bn, "--batch",
                                                      str(batch), "--steps", steps]
            # Alternating the two programs, so that a slow spell of the machine hits both.
            ours_runs = []
            theirs_runs = {s: [] for s in torch_settings if s[0] <= threads}
            for repeat in range(args.repeats):
                # The limit on every core once per row: it is the kernels', not the step's.
                ours_runs.append(run_json([os.path.join(args.bin, "bench_step"), *common,
                                           "--threads", str(threads), "--core-limits",
                                           "on" if repeat == 0 else "off"]))
                torch_env = {"OPENBLAS_NUM_THREADS": str(threads),
                             "OPENBLAS_CORETYPE": ours_runs[0]["openblas_core"]}
                for torch_threads, mkldnn in theirs_runs:
                    theirs_runs[(torch_threads, mkldnn)].append(run_json(
                        [sys.executable, os.path.join(HERE, "torch_step.py"), *common,
                         "--torch-threads", str(torch_threads), "--mkldnn", mkldnn],
                        env=torch_env))
            for run in ours_runs[1:]:
                for key in ("core_limit_samples_per_s", "best_core",
                            "best_core_limit_samples_per_s"):
                    run[key] = ours_runs[0][key]
                run["percent_of_best_core_limit"] = (
                    100.0 * run["samples_per_s"] / run["best_core_limit_samples_per_s"])
            ours = median_run(ours_runs)
            best = max((median_run(runs) for runs in theirs_runs.values()),
                       key=lambda m: m["samples_per_s"])
            best_runs = theirs_runs[(best["torch_threads"], best.get("mkldnn", "on"))]
            measurements += ours_runs + [m for runs in theirs_runs.values() for m in runs]
            best_ratio = (best_run(ours_runs)["samples_per_s"] /
                          max(best_run(runs)["samples_per_s"] for runs in theirs_runs.values()))
            table.append((name, threads, ours, best, spread(ours_runs), spread(best_runs),
                          best_ratio))
            print(f"measured {name}, {threads} thread(s)", file=sys.stderr)

    # One core's FMA peak bounds every step: gflops / (peak x threads) is the share of the
    # arithmetic units the step keeps busy (counting the products' FLOPs only).
    peak_program = os.path.join(args.bin, "bench_fma_peak")
    peak = run_json([peak_program]) if os.path.exists(peak_program) else {}
    peak_gflops = peak.get("avx512_gflops", peak.get("avx2_fma_gflops"))

    first = measurements[0]
    torch_first = measurements[1]
    print(f"CPU: {first['cpu']}. OpenBLAS core: bnlab {first['openblas_core']}, PyTorch "
          f"{torch_first['openblas_core']} (OPENBLAS_CORETYPE in the environment: "
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}; PyTorch runs with bnlab's). bnlab's "
          f"direct 3x3 kernels: {first.get('direct_conv_kernels', 'not stated')}. The best "
          f"core's limit is the limit measured on every core this CPU runs, the best of them "
          f"(first row: {first['core_limit_samples_per_s']}).")
    if peak_gflops:
        print(f"One core's FMA peak (bench_fma_peak, {'AVX-512' if 'avx512_gflops' in peak else 'AVX2'}"
              f"): {peak_gflops:.1f} GFLOP/s; the last column is the step's FLOP rate (its "
              f"products' FLOPs) against it times the threads.")
    print("Threads: bnlab runs each matrix product on its own --threads threads, each block through "
          "single-threaded OpenBLAS (read back: bnlab's / OpenBLAS's own); PyTorch runs with "
          "OPENBLAS_NUM_THREADS and the best torch.set_num_threads.\n")
    print(f"Median of {args.repeats} runs each (range of all runs in brackets); the ratio of the "
          "medians, and of the fastest runs, which a slow spell of the machine touches least.\n")
    print("| model, batch | threads | bnlab samples/s | PyTorch samples/s (torch threads"
          "; oneDNN for CNNs) "
          "| bnlab / PyTorch (fastest runs) | limit samples/s (on OpenBLAS's threads) "
          "| bnlab % of limit | best core's limit (core) | bnlab % of best core's limit "
          "| inference bnlab / PyTorch | bnlab GFLOP/s (% of FMA peak) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, threads, ours, best, ours_spread, best_spread, best_ratio in table:
        of_peak = (f"{100 * ours['gflops'] / (peak_gflops * threads):.0f} %" if peak_gflops
                   else "no peak measured")
        print(f"| {name}, {ours['batch']} | {threads} (read back: {ours['bnlab_threads']} / "
              f"{ours['openblas_threads']})"
              f" | {ours['samples_per_s']:,.0f} ({ours_spread}) | {best['samples_per_s']:,.0f} "
              f"({best_spread}; {best['torch_threads']}"
              f"{'; oneDNN ' + best['mkldnn'] if best.get('model') in ('cnn', 'resnet') else ''}) "
              f"| {ours['samples_per_s'] / best['samples_per_s']:.2f} ({best_ratio:.2f}) "
              f"| {ours['limit_samples_per_s']:,.0f} "
              f"({ours['openblas_threaded_limit_samples_per_s']:,.0f}) "
              f"| {ours['percent_of_limit']:.0f} % "
              f"| {ours['best_core_limit_samples_per_s']:,.0f} ({ours['best_core']}) "
              f"| {ours['percent_of_best_core_limit']:.0f} % "
              f"| {ours['inference_samples_per_s']:,.0f} / "
              f"{best['inference_samples_per_s']:,.0f} "
              f"| {ours['gflops']:.1f} ({of_peak}) |")

    if args.rows in ("all", "cnn"):
        # BatchNorm's cost in one process (bench_step --bn-cost): the rows above time the
        # networks with and without BatchNorm in separate processes, which the machine's state
        # can set apart by several percent.
        print()
        _, channels, hidden, act, _, batch = CNN_ROWS[0]  # the cnn preset
        rounds, steps = 20, 40
        for threads in [int(t) for t in args.threads.split(",")]:
            cost = run_json([os.path.join(args.bin, "bench_step"), "--bn-cost",
                             *model_flags(channels, hidden), "--act", act, "--batch", str(batch),
                             "--threads", str(threads), "--steps", str(steps), "--rounds",
                             str(rounds)])
            measurements.append(cost)
            round_costs = cost["round_costs_percent"]
            print(f"BatchNorm's cost in the cnn preset's step, {threads} thread(s), in one process "
                  f"(bench_step --bn-cost, {rounds} rounds of {steps} steps of each network in "
                  f"turn): "
                  f"{cost['bn_cost_percent']:.1f} % (the rounds {min(round_costs):.1f} to "
                  f"{max(round_costs):.1f} %; {cost['ms_per_step_bn']:.2f} against "
                  f"{cost['ms_per_step_no_bn']:.2f} ms per step).")
    if args.rows in ("cnn", "resnet"):
        return write_out(args, measurements)
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "epoch.jsonl")
        subprocess.run([os.path.join(args.bin, "train"), "--epochs", "1", "--log", log],
                       check=True, capture_output=True)
        with open(log) as file:
            lines = [json.loads(line) for line in file]
        header = lines[0]
        epoch = next(line for line in lines if line["type"] == "epoch")
        print(f"\nLoading Fashion-MNIST (60000 + 10000 gzip'd images): "
              f"{header['data']['load_seconds']:.2f} s. One epoch of the default compare_bn "
              f"configuration (paper preset, BN on, threads "
              f"{header['threads']['bnlab']}): {epoch['seconds']:.2f} s of training and "
              f"{epoch['eval_seconds']:.2f} s of evaluation.")
        measurements.append({"bench": "train one epoch", "load_seconds":
                             header["data"]["load_seconds"], **epoch})

    write_out(args, measurements)


def write_out(args, measurements):
    if args.out:
        with open(args.out, "w") as file:
            for measurement in measurements:
                file.write(json.dumps(measurement) + "\n")


if __name__ == "__main__":
    main()
