"""Data-parallel scaling on this machine: build/bin/bench_distributed under mpirun with 1, 2 and
(oversubscribed, more processes than cores) 4 processes of one thread each, at a fixed global
batch, for the 256-wide and the 1024-wide MLP with synchronized BatchNorm; beside them one
process on 2 threads (build/bin/bench_step). Each configuration is run --repeats times,
interleaved, and the median run is reported, with the time in communication apart. Prints the
README's table and writes every run to --out (JSONL).
    /usr/bin/python3 bench/distributed.py --repeats 3 --out bench/results/DATE-distributed.jsonl
"""
import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, hidden, global batch)
ROWS = [
    ("784-256-256-10 ReLU, BN", "256,256", 512),
    ("784-1024-1024-10 ReLU, BN", "1024,1024", 512),
]
PROCESSES = [1, 2, 4]


def run_json(command):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_run(runs):
    return sorted(runs, key=lambda m: m["samples_per_s"])[len(runs) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    def distributed(hidden, batch, processes):
        command = ["mpirun", "-np", str(processes)]
        if processes > 2:
            command.append("--oversubscribe")
        command += [os.path.join(args.bin, "bench_distributed"), "--hidden", hidden,
                    "--batch", str(batch), "--threads", "1", "--rounds", str(args.rounds)]
        return run_json(command)

    def alone(hidden, batch, threads):
        return run_json([os.path.join(args.bin, "bench_step"), "--hidden", hidden,
                         "--batch", str(batch), "--threads", str(threads), "--steps", "50",
                         "--rounds", str(args.rounds)])

    runs = {}
    for _ in range(args.repeats):
        for name, hidden, batch in ROWS:
            for processes in PROCESSES:
                runs.setdefault((name, processes), []).append(
                    distributed(hidden, batch, processes))
            runs.setdefault((name, "2 threads"), []).append(alone(hidden, batch, 2))
    if args.out:
        with open(args.out, "w") as out:
            for key, measured in runs.items():
                for line in measured:
                    out.write(json.dumps({"row": key[0], "setting": str(key[1]), **line}) + "\n")

    print("| network, global batch | processes x threads | samples/s | speed-up over 1 process "
          "| step ms | gradient allreduce ms | BN sync ms | sent per process per step |")
    print("|---|---|---|---|---|---|---|---|")
    for name, hidden, batch in ROWS:
        one = median_run(runs[(name, 1)])["samples_per_s"]
        for processes in PROCESSES:
            m = median_run(runs[(name, processes)])
            rates = sorted(r["samples_per_s"] for r in runs[(name, processes)])
            label = f"{processes} x 1" + (" (oversubscribed)" if processes > 2 else "")
            print(f"| {name}, {batch} | {label} | {m['samples_per_s']:,.0f} "
                  f"({rates[0]:,.0f}–{rates[-1]:,.0f}) | {m['samples_per_s'] / one:.2f} "
                  f"| {m['ms_per_step']:.2f} | {m['ms_gradient_allreduce']:.2f} "
                  f"| {m['ms_batchnorm_sync']:.2f} | {m['bytes_per_step'] / 1e6:.2f} MB |")
        m = median_run(runs[(name, "2 threads")])
        rates = sorted(r["samples_per_s"] for r in runs[(name, "2 threads")])
        print(f"| {name}, {batch} | 1 x 2 threads (no MPI) | {m['samples_per_s']:,.0f} "
              f"({rates[0]:,.0f}–{rates[-1]:,.0f}) | {m['samples_per_s'] / one:.2f} "
              f"| {m['ms_per_step']:.2f} | – | – | – |")


if __name__ == "__main__":
    main()
