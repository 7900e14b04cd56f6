"""eddy replay (Parquet) against Vowpal Wabbit on the same CTR stream, in alternating rounds.

The machine is shared and noisy, and Vowpal Wabbit's throughput moves by a third between runs,
so a single pair of runs says little about the ratio. This runs them in turn ROUNDS times and
prints each round's ratio. Needs bench/out from bench/peers/run (the data and the release build).

Usage: bench/.venv/bin/python bench/peers/ratio.py [ROUNDS]
"""

import json
import os
import resource
import subprocess
import sys
import time

import vowpalwabbit

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EDDY = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "eddy")
OUT = os.path.join(ROOT, "bench", "out")
N = 1_000_000


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def eddy(parquet):
    summary = os.path.join(OUT, "ratio.summary.json")
    args = [EDDY, "replay", "--quiet", "--input", parquet, "--target", "y", "--summary-json", summary,
            "--optimizer", "ftrl", "--learning-rate", "0.5", "--l1", "0.0001", "--l2", "0.0001"]
    cpu, start = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    s = json.load(open(summary))
    return s["events"] / seconds, s["metrics"]["logloss"], cpu / seconds


def vw(data):
    cpu, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    ws = vowpalwabbit.Workspace(f"--quiet -d {data} --loss_function logistic --link logistic")
    loss = ws.get_sum_loss() / ws.get_weighted_examples()
    ws.finish()
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
    return N / seconds, loss, cpu / seconds


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    ratios = []
    for _ in range(rounds):
        v, v_loss, v_cpus = vw(os.path.join(OUT, f"peers_ctr_{N}.vw"))
        e, e_loss, e_cpus = eddy(os.path.join(OUT, f"peers_ctr_{N}.parquet"))
        ratios.append(e / v)
        # CPUs busy on average: a run slowed by the host's other load keeps its CPU time and
        # loses wall time, so a drop here says the machine, not the program, was slow
        print(f"VW {v:,.0f} events/s (log loss {v_loss:.4f}, {v_cpus:.2f} CPUs)  eddy Parquet "
              f"{e:,.0f} (log loss {e_loss:.4f}, {e_cpus:.2f} CPUs)  ratio {e / v:.2f}", flush=True)
    print(f"ratio min {min(ratios):.2f} median {sorted(ratios)[len(ratios) // 2]:.2f} max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
