#!/usr/bin/env python3
"""Distributed-sweep benchmarks (BENCHMARKS.md, "Distributed sweeps (MPI)").

1. Strong scaling: one fixed sweep run by a single process (1 and 2 OpenMP threads) and under mpirun with
   1, 2 and 4 ranks of one thread each (4 oversubscribes a 2-core machine: correctness, not speed).
2. Dispatch overhead: sweeps of tiny cells (~15 us and ~1 ms), where the per-cell cost of going through
   rank 0 (MessagePack, MPI messages, row formatting on the worker) is not hidden by the computation,
   compared with OpenMP alone.

Wall time is run.json's wall_seconds (rank 0, from preparing OUTDIR to the last row: no mpirun start-up);
"launch" is the whole command including mpirun. CPU is user + system time of every process (mpirun's
children included), which the machine's load inflates much less than wall time; CPU / wall is the number
of cores the run actually got. Each configuration runs --repeat times, the configurations interleaved
(round-robin) so that a change in the machine's load affects them alike; tables show medians. The overhead sweeps also run a one-cell
version of the same scenario in each configuration and report the marginal cost per cell,
(X(sweep) - X(one cell)) / (cells - 1), which removes start-up (MPI_Init, mpirun, reading the scenario).

Usage: /usr/bin/python3 tools/bench_mpi.py [--gradflow build/gradflow] [--repeat 3] [--only scaling|overhead]
"""
import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SCALING = """title = "MPI strong scaling"
seed = 1
[network]
units = 256
steps = 400
batch = 8
[analysis]
burn_in = 100
series = true
[sweep]
"spectrum.radius" = { start = 0.25, stop = 6.0, num = 24 }
"network.activation" = ["tanh", "relu", "sigmoid", "gelu"]
replicates = 2
"""

TINY = """title = "dispatch overhead, tiny cells"
seed = 1
[network]
units = 4
steps = 4
batch = 1
[analysis]
burn_in = 0
series = false
[sweep]
"spectrum.radius" = { start = 0.5, stop = 1.5, num = %d }
"network.activation" = ["tanh", "relu"]
"""

SMALL = """title = "dispatch overhead, 1 ms cells"
seed = 1
[network]
units = 32
steps = 200
batch = 4
[analysis]
burn_in = 0
series = %s
[sweep]
"spectrum.radius" = { start = 0.5, stop = 1.5, num = %d }
"network.activation" = ["tanh", "relu"]
"""


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd, outdir):
    shutil.rmtree(outdir, ignore_errors=True)
    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    launch, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    with open(os.path.join(outdir, "run.json")) as f:
        j = json.load(f)
    with open(os.path.join(outdir, "cells.csv")) as f:
        rows = list(csv.DictReader(f))
    return {"wall": j["wall_seconds"], "launch": launch, "cpu": cpu, "cells": len(rows),
            "cell_seconds": sum(float(r["seconds"]) for r in rows),
            "per_rank": j.get("mpi", {}).get("cells_per_rank")}


def configs(gradflow, mpirun, threads_single=(1, 2), ranks=(1, 2, 4)):
    out = []
    for t in threads_single:
        out.append((f"single process, {t} thread{'s' if t > 1 else ''}", [gradflow], ["--threads", str(t)]))
    for r in ranks:
        flags = [mpirun, "-n", str(r), "--bind-to", "none"]
        if os.geteuid() == 0:
            flags.append("--allow-run-as-root")
        if r > (os.cpu_count() or 1):
            flags.append("--oversubscribe")
        out.append((f"mpirun -n {r}, 1 thread/rank", flags + [gradflow], ["--threads", "1"]))
    return out


def write(tmp, name, text):
    path = os.path.join(tmp, name + ".toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def measure_all(runs, repeat, tmp):
    """runs: list of (key, command prefix, extra args, scenario path); round-robin over `repeat` rounds."""
    results = {key: [] for key, _, _, _ in runs}
    for _ in range(repeat):
        for key, prefix, extra, path in runs:
            out = os.path.join(tmp, "out")
            results[key].append(run(prefix + ["run", path, "-o", out, "--quiet"] + extra, out))
    summary = {}
    for key, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "launch", "cpu")}
        med["min_wall"] = min(r["wall"] for r in rs)
        med["cells"] = rs[0]["cells"]
        med["per_rank"] = rs[len(rs) // 2]["per_rank"]
        summary[key] = med
    return summary


def bench_scaling(name, text, gradflow, mpirun, repeat, tmp):
    path = write(tmp, "scaling", text)
    print(f"\n### {name}\n")
    print("| configuration | wall s | wall s (min) | launch s | CPU s | cores used (CPU / wall) "
          "| speed-up (wall) | CPU / single-process CPU | cells per rank |")
    print("|---|---|---|---|---|---|---|---|---|")
    cfgs = configs(gradflow, mpirun)
    res = measure_all([(label, prefix, extra, path) for label, prefix, extra in cfgs], repeat, tmp)
    base = res[cfgs[0][0]]
    for label, _, _ in cfgs:
        m = res[label]
        print(f"| {label} | {m['wall']:.2f} | {m['min_wall']:.2f} | {m['launch']:.2f} | {m['cpu']:.2f} | "
              f"{m['cpu'] / m['launch']:.2f} | {base['wall'] / m['wall']:.2f} | {m['cpu'] / base['cpu']:.3f} | "
              f"{m['per_rank'] or ''} |")


def bench_overhead(name, text, one_cell_text, gradflow, mpirun, repeat, tmp):
    path, one = write(tmp, "sweep", text), write(tmp, "one", one_cell_text)
    print(f"\n### {name}\n")
    print("| configuration | cells | wall s | CPU s | one-cell wall s | one-cell CPU s | marginal wall ms/cell "
          "| marginal CPU ms/cell | cells per rank |")
    print("|---|---|---|---|---|---|---|---|---|")
    cfgs = configs(gradflow, mpirun)
    runs = [(label, prefix, extra, path) for label, prefix, extra in cfgs]
    runs += [(label + " (one cell)", prefix, extra, one) for label, prefix, extra in cfgs]
    res = measure_all(runs, repeat, tmp)
    for label, _, _ in cfgs:
        m, b = res[label], res[label + " (one cell)"]
        n = m["cells"] - 1
        print(f"| {label} | {m['cells']} | {m['wall']:.3f} | {m['cpu']:.2f} | {b['wall']:.3f} | {b['cpu']:.2f} | "
              f"{1e3 * (m['wall'] - b['wall']) / n:.4f} | {1e3 * (m['cpu'] - b['cpu']) / n:.4f} | "
              f"{m['per_rank'] or ''} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gradflow", default="build/gradflow")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["scaling", "overhead"])
    a = ap.parse_args()
    gradflow = os.path.abspath(a.gradflow)
    print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="gradflow_bench_mpi_") as tmp:
        if a.only in (None, "scaling"):
            bench_scaling("strong scaling: 192 cells (24 radii x 4 activations x 2 replicates), N = 256, T = 400, "
                          "B = 8", SCALING, gradflow, a.mpirun, a.repeat, tmp)
        if a.only in (None, "overhead"):
            bench_overhead("overhead: 2000 tiny cells (N = 4, T = 4, B = 1, no series)", TINY % 1000,
                           TINY.replace('["tanh", "relu"]', '["tanh"]') % 1, gradflow, a.mpirun, a.repeat, tmp)
            small_one = SMALL.replace('["tanh", "relu"]', '["tanh"]')
            bench_overhead("overhead: 1000 cells of ~0.5 ms CPU (N = 32, T = 200, B = 4), no series",
                           SMALL % ("false", 500), small_one % ("false", 1), gradflow, a.mpirun, a.repeat, tmp)
            bench_overhead("overhead: the same with series.csv (201 rows, ~16 kB per cell through MPI)",
                           SMALL % ("true", 500), small_one % ("true", 1), gradflow, a.mpirun, a.repeat, tmp)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
