#!/usr/bin/python3
"""Side-by-side benchmark of gradflow against hand-written NumPy BPTT and PyTorch autograd.

Run through tools/bench/compare (which builds gradflow first). For each row (N, T, B, dtype, threads):

  1. W: a Ginibre matrix scaled to spectral radius 1 (numpy.linalg.eigvals), saved as W.npy; gradflow reads
     it through [spectrum] kind = "file", so every implementation runs on the same W, b = 0.1, h_0 = 0,
     g_T = h_T, tanh, no input, no burn-in.
  2. Agreement (float64 rows): log10 ||g_t|| of gradflow's series.csv against each reference,
     |difference| <= 1e-8 max(1, |log10 ||g_t|| |) wherever the reference's plain norm is finite and nonzero.
  3. Timing: REPS rounds; each round runs gradflow, NumPy, PyTorch and the GEMM-limit program once, in a
     rotated order, each in its own process under /usr/bin/time -v (peak RSS). Medians over the rounds.
       gradflow  seconds_forward + seconds_backward of cells.csv (the engine: forward pass with the tape,
                 BPTT with per-step log norms) of the second replicate of a two-replicate run (warm: the
                 process has run the same cell once, on the same thread(s), and reuses its tape mapping),
                 like the references' timed run after their warm-up; the first replicate's figure (cold:
                 a fresh process, first touch of the tape) is reported beside it. The whole cell
                 (`seconds`: + building W and Spectra's rho and ||W||_2 of the file matrix + metrics) too.
       NumPy / PyTorch  forward + backward + per-step norms, after one untimed warm-up in the same process.
       GEMM limit  tools/bench/gemm_limit (warm: one untimed run first): the 2T recurrent products alone
                 (same shapes), the fastest of
                 Eigen's kernel, OpenBLAS and (one thread) Eigen's kernels with W prepared once as the engine
                 runs them (B > 1: W packed once; B = 1: GEMV on a column-major copy of W^T).
  4. Sweep: scenarios/default.toml with --threads 1 and 2 (cells/s, parallel efficiency, share of the
     cell time in spectra vs BPTT), and the NumPy reference timed once for one cell of that sweep.
  5. Spectra at N = 2000 against dense EigenSolver / JacobiSVD (tools/bench/spectra_bench).
  6. Sparse spectral radius: gradflow's radius solve of a kind = "sparse" W (in-degree 100, N = 1e4 by default: --sparse-n;
     spectra_bench --sparse) against scipy.sparse.linalg.eigs (ARPACK, tools/bench/scipy_eigs.py) on the same
     exported matrix with the same nev, ncv, tolerance and restart budget; the solve alone, alternated rounds.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import tomllib
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ROWS = [  # N, T, B, dtype, threads, input dim (0: no input) (issues 4 and 18)
    (64, 1000, 1, "float64", 1, 0),
    (64, 1000, 1, "float64", 1, 16),
    (256, 1000, 1, "float64", 1, 0),
    (256, 1000, 32, "float64", 1, 0),
    (1024, 500, 16, "float64", 1, 0),
    (1024, 500, 16, "float64", 2, 0),
    (2048, 100, 32, "float64", 1, 0),
    (256, 1000, 32, "float32", 1, 0),
]

GATED_ROWS = [  # cell, N, T, B: float64, one thread (issue 14)
    ("gru", 256, 1000, 1),
    ("gru", 256, 1000, 32),
    ("lstm", 256, 1000, 1),
    ("lstm", 256, 1000, 32),
]
GATED_BLOCKS = {"gru": 3, "lstm": 4}

# The sparse radius solve (issue 18, finding 4): gradflow's Arnoldi settings (sim/model/sparse.cpp), which
# scipy's eigs is given too.
SPARSE_IN_DEGREE = 100
SPARSE_NEV = 20
SPARSE_NCV = 100
SPARSE_TOL = 5e-11
SPARSE_MIN_SPREAD = 4e-3

# A gated cell as torch_gated.py runs it: h_0 (and c_0) = 0, a Gaussian input of dim 16 per step and
# trajectory, L = ||h_T||^2 / 2; gradflow draws its own weights (only the time is compared).
GATED_SCENARIO = """seed = 1
[network]
cell = "{cell}"
units = {n}
steps = {t}
batch = {b}
activation = "tanh"
precision = "double"
[spectrum]
kind = "ginibre"
radius = 1.0
[input]
kind = "gaussian"
dim = 16
std = 1.0
[init]
state = "zero"
[loss]
kind = "final_state"
[analysis]
burn_in = 0
series = false
"""

SCENARIO = """seed = 1
[network]
units = {n}
steps = {t}
batch = {b}
activation = "tanh"
precision = "{precision}"
[spectrum]
kind = "file"
file = "W.npy"
{input}
[bias]
mean = 0.1
std = 0.0
[init]
state = "zero"
[loss]
kind = "final_state"
[analysis]
burn_in = 0
series = {series}
"""


NO_INPUT = '[input]\nkind = "none"'  # SCENARIO's {input} for rows without an input drive


def fmt_opt_ms(seconds):
    return "-" if seconds == float("inf") else fmt_ms(seconds)


def run_timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, peak RSS in MB)."""
    full = ["/usr/bin/time", "-v"] + [str(c) for c in cmd]
    p = subprocess.run(full, capture_output=True, text=True, env=env, cwd=cwd)
    if p.returncode != 0:
        sys.exit(f"compare: {' '.join(map(shlex.quote, full))} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return p.stdout, (int(m.group(1)) / 1024.0 if m else float("nan"))


def read_cells(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def bench_env(threads):
    """The one environment every contender runs in (gradflow, gemm_limit, NumPy, PyTorch): the caller's, with
    the thread counts of every BLAS and OpenMP runtime set to `threads`. OpenBLAS settings the caller made
    (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) apply to all of them alike or to none (the report names them)."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def openblas_settings():
    keys = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE")
    set_ = [f"{k}={os.environ[k]}" for k in keys if k in os.environ]
    return ", ".join(set_) if set_ else "none (OpenBLAS detects the CPU)"


def numpy_loop_seconds(sweep, cells):
    """The NumPy loop's time over the sweep's `cells` cells on one core and on two (two loops side by side, each
    over half the cells at the per-cell times measured with two processes at once); every activation has an
    equal share of the cells."""
    ref = sweep["numpy"]
    share = cells / len(ref["activations"])
    one = sum(share * ref["per_cell"]["one"][a] for a in ref["activations"])
    two = sum(share * ref["per_cell"]["two"][a] for a in ref["activations"]) / 2
    return one, two


def make_w(np, n, path):
    rng = np.random.default_rng(n)
    w = rng.standard_normal((n, n)) / np.sqrt(n)
    w /= np.abs(np.linalg.eigvals(w)).max()
    np.save(path, w)


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = Path(args.build).resolve()
        self.gradflow = self.build / "gradflow"
        self.gemm_limit = self.build / "tools" / "bench" / "gemm_limit"
        self.spectra_bench = self.build / "tools" / "bench" / "spectra_bench"
        self.reference = ROOT / "tools" / "bench" / "reference.py"
        self.tmp = Path(tempfile.mkdtemp(prefix="gradflow-bench-"))
        self.py = "/usr/bin/python3"
        self.blas_cores = {}  # OpenBLAS core each contender ran on (openblas_get_corename)
        self.gemm_core = None

    # -- one implementation, one process ---------------------------------------------------------------------
    def run_gradflow(self, d, threads, series=False):
        """One gradflow process. Timing runs (series=False) run the cell twice (sweep.replicates = 2) one after
        the other, each on all `threads` (GRADFLOW_PARALLEL=within: a two-replicate sweep would otherwise run
        its replicates side by side on one thread each) and on the same thread, which keeps the first
        replicate's tape mapping for the second: *engine* is the second (warm) replicate's figure, the way
        the references are timed after a warm-up in their process; *cold* is the first replicate's."""
        out = d / "out"
        cmd = [self.gradflow, "run", d / ("series.toml" if series else "time.toml"), "-o", out, "--force", "--quiet",
               "--no-report", "--threads", threads]
        env = bench_env(threads)
        if not series:
            cmd += ["--set", "sweep.replicates=2"]
            env["GRADFLOW_PARALLEL"] = "within"
        _, rss = run_timed(cmd, env=env)
        rows = {int(r["replicate"]): r for r in read_cells(out / "cells.csv")}
        run = json.loads((out / "run.json").read_text())
        if run.get("threads") != threads or sorted(rows) != ([0] if series else [0, 1]):
            sys.exit(f"compare: {out}: expected replicates {[0] if series else [0, 1]} on {threads} thread(s), "
                     f"got {sorted(rows)} on {run.get('threads')}")
        self.gemm = run.get("gemm", "unknown")
        m = re.search(r"\((?:openmp|pthread|sequential), (\w+)\)", self.gemm)
        self.gemm_core = m.group(1) if m else None

        def engine(r):
            return float(r["seconds_forward"]) + float(r["seconds_backward"])

        warm, cold = rows[max(rows)], rows[0]
        return {"engine": engine(warm), "cold": engine(cold), "cell": float(warm["seconds"]),
                "cell_cold": float(cold["seconds"]), "rss": rss, "out": out}

    def reference_cmd(self, impl, d, t, b, dtype, threads, input_dim=0, extra=()):
        """tools/bench/reference.py for W = d/W.npy; `extra`: further arguments."""
        return [self.py, self.reference, "--impl", impl, "--w", d / "W.npy", "--steps", t, "--batch", b,
                "--dtype", dtype, "--threads", threads, "--input-dim", input_dim, *extra]

    def reference_output(self, impl, out):
        """reference.py's JSON line; notes which OpenBLAS core the reference ran on."""
        j = json.loads(out.strip().splitlines()[-1])
        self.blas_cores[impl] = j.get("blas_core", "unknown")
        return j

    def run_reference(self, impl, d, n, t, b, dtype, threads, series=None, input_dim=0):
        cmd = self.reference_cmd(impl, d, t, b, dtype, threads, input_dim, ["--series", series] if series else [])
        out, rss = run_timed(cmd, env=bench_env(threads))
        return {"time": self.reference_output(impl, out)["seconds"][0], "rss": rss}

    def run_gemm_limit(self, n, t, b, dtype, threads):
        out, _ = run_timed([self.gemm_limit, "--n", n, "--b", b, "--t", t, "--dtype", dtype, "--threads", threads,
                            "--repeat", 1], env=bench_env(threads))
        j = json.loads(out)
        packed = j.get("eigen_prepared") or [float("inf")]
        return {"eigen": j["eigen"][0], "openblas": j["openblas"][0], "packed": packed[0]}

    def gated_row(self, cell, n, t, b):
        """gradflow's gated cell against torch_gated.py (PyTorch autograd) and the stacked products' GEMM limit,
        one thread, float64, alternated rounds."""
        d = self.tmp / f"{cell}_n{n}_t{t}_b{b}"
        d.mkdir()
        (d / "time.toml").write_text(GATED_SCENARIO.format(cell=cell, n=n, t=t, b=b))
        samples = {k: [] for k in ("gradflow", "cold", "cell", "torch", "eigen", "packed")}
        rss = {"gradflow": [], "torch": []}
        order = ["gradflow", "torch", "gemm"]
        for rep in range(self.args.reps):
            for what in order[rep % 3:] + order[:rep % 3]:
                if what == "gradflow":
                    g = self.run_gradflow(d, 1)
                    samples["gradflow"].append(g["engine"])
                    samples["cold"].append(g["cold"])
                    samples["cell"].append(g["cell"])
                    rss["gradflow"].append(g["rss"])
                elif what == "torch":
                    out, r = run_timed([self.py, ROOT / "tools" / "bench" / "torch_gated.py", "--cell", cell, "--n", n,
                                        "--steps", t, "--batch", b, "--repeat", 1, "--threads", 1],
                                       env=bench_env(1))
                    samples["torch"].append(json.loads(out.strip().splitlines()[-1])["seconds"])
                    rss["torch"].append(r)
                else:
                    out, _ = run_timed([self.gemm_limit, "--n", n, "--b", b, "--t", t, "--dtype", "float64",
                                        "--threads", 1, "--repeat", 1, "--blocks", GATED_BLOCKS[cell]],
                                       env=bench_env(1))
                    j = json.loads(out)
                    samples["eigen"].append(j["eigen"][0])
                    samples["packed"].append((j.get("eigen_prepared") or [float("inf")])[0])
        med = {k: statistics.median(v) for k, v in samples.items()}
        med["limit"] = min(med["eigen"], med["packed"])
        return {"cell": cell, "n": n, "t": t, "b": b, "median": med, "samples": samples,
                "rss": {k: max(v) for k, v in rss.items()}}

    # -- parts -------------------------------------------------------------------------------------------------
    def agreement(self, np, d, n, t, b, dtype, threads, input_dim):
        if dtype != "float64" or input_dim:
            return None  # float32: not compared; an input drive: each implementation draws its own x_t
        g = self.run_gradflow(d, threads, series=True)
        ours = {}
        with open(g["out"] / "series.csv") as f:
            for r in csv.DictReader(f):
                ours[int(r["t"])] = float(r["log10_grad_norm"])
        result = {}
        for impl in ("numpy", "torch"):
            path = d / f"series_{impl}.csv"
            self.run_reference(impl, d, n, t, b, dtype, threads, series=path)
            worst, compared = 0.0, 0
            with open(path) as f:
                for r in csv.DictReader(f):
                    ref = float(r["log10_grad_norm"])
                    if not np.isfinite(ref):
                        continue  # the plain norm under- or overflowed: nothing to compare
                    tt = int(r["t"])
                    worst = max(worst, abs(ours[tt] - ref) / max(1.0, abs(ref)))
                    compared += 1
            result[impl] = (worst, compared)
        return result

    def row(self, np, n, t, b, dtype, threads, input_dim):
        d = self.tmp / f"n{n}_t{t}_b{b}_{dtype}_p{threads}_x{input_dim}"
        d.mkdir()
        make_w(np, n, d / "W.npy")
        precision = "float" if dtype == "float32" else "double"
        drive = f'[input]\nkind = "gaussian"\ndim = {input_dim}\nstd = 0.5' if input_dim else NO_INPUT
        for name, series in (("time.toml", "false"), ("series.toml", "true")):
            (d / name).write_text(SCENARIO.format(n=n, t=t, b=b, precision=precision, series=series, input=drive))
        agree = self.agreement(np, d, n, t, b, dtype, threads, input_dim)
        samples = {k: [] for k in ("gradflow", "cold", "cell", "numpy", "torch", "eigen", "openblas", "packed")}
        rss = {k: [] for k in ("gradflow", "numpy", "torch")}
        order = ["gradflow", "numpy", "torch", "gemm"]
        for rep in range(self.args.reps):
            for what in order[rep % 4:] + order[:rep % 4]:  # rotate: no implementation always goes first
                if what == "gradflow":
                    # On several threads, the same cell on one thread right beside it (order alternated), so
                    # that the speed-up is a ratio of two runs seconds apart: on a shared machine a neighbour's
                    # busy minutes shift both alike instead of one row against another measured minutes later.
                    runs = [threads]
                    if threads > 1:
                        runs = [threads, 1] if rep % 2 == 0 else [1, threads]
                    for k in runs:
                        g = self.run_gradflow(d, k)
                        if k != threads:
                            samples.setdefault("gradflow_1t", []).append(g["engine"])
                            continue
                        samples["gradflow"].append(g["engine"])
                        samples["cold"].append(g["cold"])
                        samples["cell"].append(g["cell"])
                        rss["gradflow"].append(g["rss"])
                elif what == "gemm":
                    lim = self.run_gemm_limit(n, t, b, dtype, threads)
                    samples["eigen"].append(lim["eigen"])
                    samples["openblas"].append(lim["openblas"])
                    samples["packed"].append(lim["packed"])
                else:
                    r = self.run_reference(what, d, n, t, b, dtype, threads, input_dim=input_dim)
                    samples[what].append(r["time"])
                    rss[what].append(r["rss"])
        med = {k: statistics.median(v) for k, v in samples.items()}
        med["limit"] = min(med["eigen"], med["openblas"], med["packed"])
        return {"n": n, "t": t, "b": b, "dtype": dtype, "threads": threads, "input": input_dim, "median": med,
                "samples": samples,
                "rss": {k: max(v) for k, v in rss.items()}, "agree": agree}

    def sweep(self, np):
        scenario = ROOT / "scenarios" / "default.toml"
        runs = {}
        for threads in (1, 2):
            runs[threads] = []
        for rep in range(self.args.sweep_reps):
            for threads in ((1, 2) if rep % 2 == 0 else (2, 1)):
                out = self.tmp / f"sweep_{threads}_{rep}"
                _, rss = run_timed([self.gradflow, "run", scenario, "-o", out, "--force", "--quiet",
                                    "--threads", threads], env=bench_env(threads))
                meta = json.loads((out / "run.json").read_text())
                cells = read_cells(out / "cells.csv")
                runs[threads].append({"wall": meta["wall_seconds"], "cells": len(cells), "rss": rss,
                                      "spectrum": sum(float(c["seconds_spectrum"]) for c in cells),
                                      "forward": sum(float(c["seconds_forward"]) for c in cells),
                                      "backward": sum(float(c["seconds_backward"]) for c in cells),
                                      "cell": sum(float(c["seconds"]) for c in cells)})
        return {"runs": runs, "numpy": self.sweep_numpy(np, scenario)}

    def sweep_numpy(self, np, scenario):
        """A NumPy loop over the same cells (tools/bench/reference.py, one BLAS thread): the scenario's shape, its
        burn-in (forward only, not kept) and each of its activations, ms per cell. On one core one process per
        activation; on two cores two loops side by side, each over half the cells, so each activation's cell is
        timed with two such processes running at once (both processes' rounds). No rho, metrics or output."""
        sc = tomllib.loads(scenario.read_text())
        net, sweep = sc["network"], sc["sweep"]
        shape = {"n": net["units"], "steps": net["steps"], "batch": net["batch"],
                 "burn_in": sc["analysis"]["burn_in"], "input_dim": sc.get("input", {}).get("dim", 16)}
        d = self.tmp / "sweep_ref"
        d.mkdir()
        make_w(np, shape["n"], d / "W.npy")
        per_core = {"one": {}, "two": {}}
        for act in sweep["network.activation"]:
            cmd = self.reference_cmd("numpy", d, shape["steps"], shape["batch"], "float64", 1, shape["input_dim"],
                                     ["--burn-in", shape["burn_in"], "--activation", act, "--repeat", 3])
            for cores in (1, 2):
                procs = [subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=bench_env(1)) for _ in range(cores)]
                seconds = []
                for proc in procs:
                    out, err = proc.communicate()
                    if proc.returncode != 0:
                        sys.exit(f"compare: {' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-2000:]}")
                    seconds += self.reference_output("numpy", out)["seconds"]
                per_core["one" if cores == 1 else "two"][act] = statistics.median(seconds)
        return dict(shape, per_cell=per_core, activations=list(sweep["network.activation"]))

    def spectra(self):
        out, rss = run_timed([self.spectra_bench, "--n", self.args.spectra_n, "--repeat", 3,
                              "--dense-repeat", self.args.dense_reps])
        j = json.loads(out)
        j["rss"] = rss
        return j


    def sparse(self):
        """gradflow's sparse radius solve (spectra_bench --sparse: the W of kind = "sparse", in_degree = 100, and
        gradflow::spectral_radius on it, confirming run included when it makes one) on one and two threads, against
        scipy.sparse.linalg.eigs on the same matrix (exported by the first gradflow run), one thread, same nev,
        ncv, tolerance and restart budget. Rounds rotate the order of the three; medians."""
        results = []
        for n in (int(x) for x in self.args.sparse_n.split(",")):
            d = self.tmp / f"sparse_{n}"
            samples = {k: [] for k in ("gradflow", "gradflow_2", "scipy", "gradflow_cpu", "gradflow_2_cpu",
                                       "scipy_cpu")}
            rho = {}
            order = ["gradflow", "scipy", "gradflow_2"]
            for rep in range(self.args.sparse_reps):
                for what in order[rep % 3:] + order[:rep % 3]:  # round 0 starts with gradflow: it exports W
                    if what == "scipy":
                        out, _ = run_timed([self.py, ROOT / "tools" / "bench" / "scipy_eigs.py", "--dir", d,
                                            "--n", n, "--nev", SPARSE_NEV, "--ncv", SPARSE_NCV, "--tol", SPARSE_TOL,
                                            "--maxiter", sparse_max_restarts(n)], env=bench_env(1))
                        j = json.loads(out.strip().splitlines()[-1])
                        samples["scipy"].append(j["seconds"])
                        samples["scipy_cpu"].append(j["cpu_seconds"])
                        rho["scipy"] = j["rho"]
                    else:
                        threads = 2 if what == "gradflow_2" else 1
                        cmd = [self.spectra_bench, "--sparse", "--n", n, "--in-degree", SPARSE_IN_DEGREE,
                               "--repeat", 1, "--threads", threads]
                        if not (d / "values.f64").exists():
                            cmd += ["--export", d]
                        out, _ = run_timed(cmd, env=bench_env(threads))
                        j = json.loads(out)
                        samples[what].append(j["rho_sparse"][0])
                        samples[what + "_cpu"].append(j["rho_sparse_cpu"][0])
                        rho[what] = j["rho"]
                        rho[what + "_status"] = j["rho_status"]
                        rho["nonzeros"] = j["nonzeros"]
            med = {k: statistics.median(v) for k, v in samples.items()}
            results.append({"n": n, "median": med, "samples": samples, "rho": rho})
        return results

    def sparse_100k(self):
        """scenarios/sparse_100k.toml as README runs it (two threads, no report): wall time from run.json, the
        radius solve's share and status from cells.csv, peak RSS. One run (about 11 minutes on 2 cores)."""
        out = self.tmp / "sparse_100k"
        _, rss = run_timed([self.gradflow, "run", ROOT / "scenarios" / "sparse_100k.toml", "-o", out, "--force",
                            "--quiet", "--no-report", "--threads", 2], env=bench_env(2))
        meta = json.loads((out / "run.json").read_text())
        cell = read_cells(out / "cells.csv")[0]
        return {"wall": meta["wall_seconds"], "rss": rss, "spectrum": float(cell["seconds_spectrum"]),
                "forward": float(cell["seconds_forward"]), "backward": float(cell["seconds_backward"]),
                "status": cell["spectrum_status"]}


def sparse_max_restarts(n):
    """gradflow's restart budget of the sparse radius solve (sim/model/sparse.cpp): max(200, 3 sqrt(N))."""
    return max(200, int(3.0 * n ** 0.5))


def sparse_section(sparse, reps):
    L = ["## Sparse spectral radius", "",
         f"ρ(W) of the W of `[spectrum] kind = \"sparse\", in_degree = {SPARSE_IN_DEGREE}` (N(0, 1/K) entries, K "
         "distinct random columns per row, compressed rows as gradflow stores them), the solve alone. **gradflow**: "
         "`spectra_bench --sparse --n N --threads T`, gradflow::spectral_radius as a cell calls it: Spectra's "
         f"Arnoldi (nev = {SPARSE_NEV}, ncv = {SPARSE_NCV}, residual < {SPARSE_TOL:g} |θ|, explicit residual check) "
         f"and, only when the wanted moduli spread less than {SPARSE_MIN_SPREAD:g}, a confirming run from an "
         "independent start (with two threads it goes beside the first, speculatively). **scipy**: "
         f"`scipy.sparse.linalg.eigs(W, k={SPARSE_NEV}, ncv={SPARSE_NCV}, which='LM', tol={SPARSE_TOL:g}, "
         "maxiter=max(200, 3 sqrt(N)))` "
         "(ARPACK, one run, no confirmation) on the same matrix, exported by gradflow "
         f"(tools/bench/scipy_eigs.py). One thread (OMP / OpenBLAS threads = 1) unless stated; wall and CPU (user + "
         f"system, every thread) of the solve alone, medians of {reps} rounds, order rotated.", "",
         "| N | nonzeros | gradflow, 1 thread | gradflow, 2 threads | scipy eigs, 1 thread | scipy / gradflow "
         "(1 thread) | (2 threads) | CPU: gradflow 1 thread / 2 threads / scipy | ρ gradflow | ρ scipy | "
         "relative difference |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sparse:
        m, rho = r["median"], r["rho"]
        diff = abs(rho["gradflow"] - rho["scipy"]) / rho["scipy"]
        L.append(f"| {r['n']} | {rho['nonzeros']} | {fmt_ms(m['gradflow'])} ({rho['gradflow_status']}) | "
                 f"{fmt_ms(m['gradflow_2'])} | {fmt_ms(m['scipy'])} | {m['scipy'] / m['gradflow']:.2f}x | "
                 f"{m['scipy'] / m['gradflow_2']:.2f}x | {fmt_ms(m['gradflow_cpu'])} / {fmt_ms(m['gradflow_2_cpu'])} / "
                 f"{fmt_ms(m['scipy_cpu'])} | {rho['gradflow']:.15g} | {rho['scipy']:.15g} | {diff:.1e} |")
    L += ["", "All samples (seconds), in round order:", "", "```"]
    L += [f"N={r['n']} {k:14s} " + " ".join(f"{x:.3f}" for x in v) for r in sparse for k, v in r["samples"].items()]
    L += ["```", ""]
    return L


def sparse_status_input(sparse):
    """status()'s sparse["solve"]: the largest N measured, gradflow on one thread against scipy on one. With two
    N measured, the radius solve of scenarios/sparse_100k.toml (N = 1e5, two threads as README runs it) is
    extrapolated as a power law through them, for a run that leaves the scenario out (not a measurement: the
    status line says so)."""
    if not sparse:
        return None
    r = max(sparse, key=lambda x: x["n"])
    out = {"solve": {"gradflow": r["median"]["gradflow"], "scipy": r["median"]["scipy"], "n": r["n"]}}
    if len(sparse) >= 2:
        a, b = sorted(sparse, key=lambda x: x["n"])[-2:]
        p = math.log(b["median"]["gradflow_2"] / a["median"]["gradflow_2"]) / math.log(b["n"] / a["n"])
        out["scenario_100k_extrapolated"] = b["median"]["gradflow_2"] * (1e5 / b["n"]) ** p
    return out


def fmt_ms(s):
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.2f} s"


def machine_info(gradflow):
    """CPU name with its family / model / stepping (a VM's name can be generic, e.g. "AMD EPYC") and caches."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo"):
            if ":" in line:
                k, v = (x.strip() for x in line.split(":", 1))
                fields.setdefault(k, v)
    except OSError:
        pass
    cpu = fields.get("model name", platform.processor() or "unknown CPU")
    ident = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    if ident:
        cpu += " (" + ", ".join(ident) + ")"
    caches = []
    for level, name in (("L2", "/sys/devices/system/cpu/cpu0/cache/index2/size"),
                        ("L3", "/sys/devices/system/cpu/cpu0/cache/index3/size")):
        try:
            caches.append(f"{level} {open(name).read().strip()}")
        except OSError:
            pass
    if caches:
        cpu += ", " + " / ".join(caches)
    flags = fields.get("flags", "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return cpu, simd, os.cpu_count(), os.getloadavg()


def git_commit():
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def gated_section(gated, reps):
    L = ["## Gated cells: gradflow against PyTorch autograd", "",
         "GRU and LSTM (network.cell = \"gru\" / \"lstm\", PyTorch's equations and gate order), float64, one "
         "thread: T steps forward from h_0 = 0 (and c_0 = 0) with a Gaussian input of dim 16 per step and "
         "trajectory, then the per-step state gradients g_t = dL/dS_t of L = ||h_T||^2 / 2 and their norms. "
         "**gradflow**: seconds_forward + seconds_backward of cells.csv (W drawn by gradflow at radius 1), "
         "the second (warm) replicate of a two-replicate run on one thread, *cold* the first (see the BPTT "
         "section). "
         "**PyTorch**: tools/bench/torch_gated.py, nn.GRUCell / nn.LSTMCell unrolled, one loss.backward() with "
         "retain_grad() on every state (weights without grad), timed after a warm-up in the same process. "
         "**GEMM limit**: `gemm_limit --blocks G`, the stacked products alone (W of G N x N, G = 3 or 4: "
         "W H forward, W^T D backward, 4 G N^2 B T flops), the faster of Eigen's product and Eigen's kernel "
         f"with W packed once as the cells run it, timed after an untimed warm-up run. Medians of {reps} "
         "alternated rounds; ratios, GFLOP/s and the status use the warm figure.", "",
         "| cell | N, T, B | gradflow | cold | (cell) | PyTorch | GEMM limit (Eigen / packed) | PyTorch / gradflow | "
         "GFLOP/s | fraction of limit |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in gated:
        m = r["median"]
        flops = 4.0 * GATED_BLOCKS[r["cell"]] * r["n"] ** 2 * r["b"] * r["t"]
        L.append(f"| {r['cell']} | {r['n']}, {r['t']}, {r['b']} | {fmt_ms(m['gradflow'])} | {fmt_ms(m['cold'])} | "
                 f"{fmt_ms(m['cell'])} | "
                 f"{fmt_ms(m['torch'])} | {fmt_ms(m['limit'])} ({fmt_ms(m['eigen'])} / {fmt_opt_ms(m['packed'])}) | "
                 f"{m['torch'] / m['gradflow']:.2f}x | {flops / m['gradflow'] / 1e9:.1f} | "
                 f"{100 * m['limit'] / m['gradflow']:.0f} % |")
    L.append("")
    L.append("Peak resident memory (gradflow: the two-replicate process): " + "; ".join(
        f"{r['cell']} B = {r['b']}: gradflow {r['rss']['gradflow']:.0f} MB, PyTorch {r['rss']['torch']:.0f} MB"
        for r in gated) + ".")
    L.append("")
    return L


def round_values(r, f):
    """f of each round's samples of a row (a dict of one value per contender, plus "limit": the fastest GEMM
    kernel of that round), for the spread of a figure whose status uses the medians."""
    s = r["samples"]
    n = len(s["gradflow"])
    out = []
    for i in range(n):
        x = {k: v[i] for k, v in s.items() if len(v) == n}
        x["limit"] = min(x[k] for k in ("eigen", "openblas", "packed") if k in x)
        out.append(f(x))
    return out


def spread(values, fmt, unit=""):
    """ ' (rounds LO-HI)' of a figure's per-round values, in the figure's own format."""
    return f" (rounds {fmt(min(values))}-{fmt(max(values))}{unit})" if len(values) > 1 else ""


def crosses(values, threshold):
    """True when the threshold lies within the rounds' spread (lowest < threshold <= highest): the verdict
    would differ at its two ends, so the target is met or missed by the machine's noise in this run."""
    return min(values) < threshold <= max(values)


class Line(typing.NamedTuple):
    """One line of the status table."""
    target: str
    measured: str
    met: bool
    takes: str = ""     # "what it takes here" (ratio targets)
    noisy: bool = False  # the verdict flips within the rounds' spread


def gated_status(gated):
    lines = []
    for cell in ("gru", "lstm"):
        for b, factor in ((1, 3.0), (32, 1.5)):
            r = next((x for x in gated if (x["cell"], x["b"]) == (cell, b)), None)
            ratio = r["median"]["torch"] / r["median"]["gradflow"] if r else 0
            per = round_values(r, lambda x: x["torch"] / x["gradflow"]) if r else [0]
            lines.append((f"{cell.upper()}: ≥ {factor:g}x PyTorch at N = 256, B = {b}",
                          f"{ratio:.2f}x{spread(per, '{:.2f}x'.format)}" if r else "row not run",
                          bool(r) and ratio >= factor,
                          takes(r["median"]["torch"], factor, r["median"]["limit"]) if r else "",
                          crosses(per, factor)))
        r = next((x for x in gated if (x["cell"], x["b"]) == (cell, 32)), None)
        frac = r["median"]["limit"] / r["median"]["gradflow"] if r else 0
        per = round_values(r, lambda x: x["limit"] / x["gradflow"]) if r else [0]
        lines.append((f"{cell.upper()}: ≥ 80 % of the stacked GEMM limit at B = 32",
                      f"{100 * frac:.0f} %{spread(per, lambda v: f'{100 * v:.0f}', ' %')}" if r else "row not run",
                      bool(r) and frac >= 0.8, "", crosses(per, 0.8)))
    return lines


def report(bench, rows, sweep, spectra, command, started, load_before, load_after, gemm_backend, gated=None,
           sparse=None, scenario_100k=None):
    np_version = subprocess.run(["/usr/bin/python3", "-c", "import numpy; print(numpy.__version__)"],
                                capture_output=True, text=True).stdout.strip()
    torch_version = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip() or "not installed"
    cpu, simd, ncpu, _ = machine_info(bench.gradflow)
    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by one command from a fresh clone (it installs the Debian packages, builds and runs "
             "everything below):")
    L.append("")
    L.append("    " + command)
    L.append("")
    L.append(f"Run {started} at commit {git_commit()} on {cpu} ({ncpu} cores, {simd}); gradflow's GEMMs: {gemm_backend}; "
             f"NumPy {np_version}, PyTorch {torch_version} (Debian). Load average before / after the run: "
             f"{load_before[0]:.1f} / {load_after[0]:.1f}.")
    L.append("")
    cores = ", ".join(f"{k} {v}" for k, v in sorted(bench.blas_cores.items()))
    L.append(f"Every contender (gradflow, gemm_limit, NumPy, PyTorch) runs in the same environment: the caller's, "
             f"with OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = MKL_NUM_THREADS = the row's thread count; OpenBLAS "
             f"settings: {openblas_settings()}; OpenBLAS core as reported by each: gradflow "
             f"{bench.gemm_core or 'unknown'}{', ' + cores if cores else ''}.")
    if max(load_before[0], load_after[0]) > 1.5:
        L.append("")
        L.append(f"**Load average above 1.5 on {ncpu} cores before or after the run** (another job, or the build just "
                 "before the run, still in the one-minute average): absolute times may be slower and noisier than "
                 "on an idle machine; the ratios of processes run alternately are the meaningful figures.")
    L.append("")
    L.append("## BPTT: gradflow against NumPy by hand and PyTorch autograd")
    L.append("")
    L.append("Same computation in every column: tanh RNN h_t = tanh(W h_{t-1} + b), rho(W) = 1 (the same W.npy "
             "for all), b = 0.1, h_0 = 0, g_T = h_T, T steps forward, BPTT g_{t-1} = W^T (f'(a_t) * g_t) and "
             "the per-step gradient norms of every trajectory; rows marked *x16* add an input drive "
             "h_t = tanh(W h_{t-1} + U x_t + b), x_t ~ N(0, I_16) drawn for every step and trajectory inside the "
             "timed region (each implementation draws its own). Times are medians of "
             f"{bench.args.reps} rounds; every round runs each implementation once in its own process, in "
             "rotated order.")
    L.append("")
    L.append("- **gradflow**: `seconds_forward + seconds_backward` of cells.csv: the forward pass writing the tape "
             "of f'(a_t) and the forward statistics, and BPTT with log-domain renormalisation and per-step norms. "
             "Timed warm, like the references: each gradflow process runs the cell twice (`--set "
             "sweep.replicates=2`, `GRADFLOW_PARALLEL=within`: the replicates one after the other, each on the "
             "row's thread count, the second reusing the first's tape mapping) and *gradflow* is the second "
             "replicate; *cold* is the first (a fresh process paying the first touch of its tape). "
             "*cell* is the whole warm cell (`seconds`), which adds building W from the file (the second "
             "replicate finds W and its rho and ||W||_2 in the process's cache), and the metrics. Ratios, "
             "GFLOP/s, the fraction of the limit and the status table use the warm figure. On a row with several "
             "threads each round also runs the same cell on one thread right beside it (*gradflow_1t* in the "
             "samples, order alternated), for the speed-up target.")
    L.append("- **NumPy / PyTorch**: tools/bench/reference.py, forward + backward + norms timed with "
             "time.perf_counter() after one untimed warm-up run in the same process (interpreter start-up, "
             "imports and reading W are not timed).")
    L.append("- **GEMM limit**: tools/bench/gemm_limit, the 2T recurrent products alone for the same shapes "
             "(W H and W^T G, GEMV for B = 1) with nothing else, the fastest of Eigen's kernel, OpenBLAS and "
             "Eigen's kernels with W prepared once per pass as gradflow's engine runs them, each timed after "
             "an untimed warm-up run in the same process (*prepared*: "
             "B > 1 W packed once, its rows split between the threads; B = 1, one thread, GEMV on a column-major "
             "copy of W^T); "
             "*fraction of limit* = limit time / gradflow engine time. GFLOP/s counts those 4 N^2 B T flops.")
    L.append("- **Peak RSS**: `/usr/bin/time -v` of each process (gradflow: the two-replicate process; the "
             "largest over the rounds). *Bound* is the "
             "README's memory formula, tape (N B T scalars) + W + 30 MB, W's term counting every copy a cell "
             "can hold: 32 N^2 bytes (the matrix as read, its cached base, the cell's scaled copy, the packed "
             "copy of the GEMM kernel; in float the float W and a 4-byte packed copy).")
    L.append("")
    L.append("| N, T, B | dtype, threads | gradflow | cold | (cell) | NumPy | PyTorch | GEMM limit (Eigen / OpenBLAS / "
             "prepared) | NumPy / gradflow | PyTorch / gradflow | GFLOP/s | fraction of limit |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["median"]
        flops = 4.0 * r["n"] ** 2 * r["b"] * r["t"]
        L.append(f"| {label(r)} | {r['dtype'].replace('float', 'f')}, {r['threads']} "
                 f"| {fmt_ms(m['gradflow'])} | {fmt_ms(m['cold'])} | {fmt_ms(m['cell'])} | {fmt_ms(m['numpy'])} "
                 f"| {fmt_ms(m['torch'])} "
                 f"| {fmt_ms(m['limit'])} ({fmt_ms(m['eigen'])} / {fmt_ms(m['openblas'])} / {fmt_opt_ms(m['packed'])}) "
                 f"| {m['numpy'] / m['gradflow']:.2f}x | {m['torch'] / m['gradflow']:.2f}x "
                 f"| {flops / m['gradflow'] / 1e9:.1f} | {100 * m['limit'] / m['gradflow']:.0f} % |")
    L.append("")
    L.append("Peak resident memory and agreement with the references (float64: largest |difference of log10 "
             "||g_t|| | / max(1, |log10 ||g_t|| |) over the t where the reference's plain norm is finite):")
    L.append("")
    L.append("| N, T, B | dtype, threads | gradflow RSS | bound (tape + W + 30 MB) | NumPy RSS | PyTorch RSS "
             "| vs NumPy | vs PyTorch |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        tape, w, bound = memory_bound(r)
        a = r["agree"]
        agree = ("| " + " | ".join(f"{a[k][0]:.1e} ({a[k][1]} steps)" for k in ("numpy", "torch"))) if a else \
            ("| (input drive: own draws, not compared) | |" if r["input"] else "| (float32: not compared) | |")
        L.append(f"| {label(r)} | {r['dtype']}, {r['threads']} | {r['rss']['gradflow']:.1f} MB "
                 f"| {bound:.1f} MB ({tape:.1f} + {w:.1f} + 30) | {r['rss']['numpy']:.1f} MB "
                 f"| {r['rss']['torch']:.1f} MB {agree} |")
    L.append("")
    L.append("All samples (seconds), in round order:")
    L.append("")
    L.append("```")
    for r in rows:
        L.append(f"N={r['n']} T={r['t']} B={r['b']} {r['dtype']} threads={r['threads']} input_dim={r['input']}")
        for k, v in r["samples"].items():
            if all(x == float("inf") for x in v):
                continue  # not applicable to this row (e.g. the packed GEMM at B = 1)
            L.append(f"  {k:9s} " + " ".join(f"{x:.4f}" for x in v))
    L.append("```")
    if sweep:
        L.append("")
        L.append("## Sweep throughput: scenarios/default.toml")
        L.append("")
        r1, r2 = sweep["runs"][1], sweep["runs"][2]
        w1 = statistics.median(x["wall"] for x in r1)
        w2 = statistics.median(x["wall"] for x in r2)
        cells = r1[0]["cells"]
        rate1, rate2 = cells / w1, cells / w2
        L.append(f"{cells} cells x replicates (N = 256, T = 400 + 100 burn-in, B = 8, Ginibre W, 6 activations x 47 "
                 f"radii x 3 replicates), `gradflow run scenarios/default.toml --threads K`, wall time from "
                 f"run.json (median of {len(r1)} run(s) each, alternated).")
        L.append("")
        L.append("| threads | wall | cells/s | parallel efficiency | peak RSS |")
        L.append("|---|---|---|---|---|")
        L.append(f"| 1 | {w1:.2f} s | {rate1:.1f} | | {max(x['rss'] for x in r1):.1f} MB |")
        L.append(f"| 2 | {w2:.2f} s | {rate2:.1f} | {100 * rate2 / (2 * rate1):.0f} % | "
                 f"{max(x['rss'] for x in r2):.1f} MB |")
        L.append("")
        x = r1[len(r1) // 2]
        tot = x["cell"]
        L.append(f"Where a cell's time goes (threads = 1, summed over cells): spectra (build W, rho, ||W||_2) "
                 f"{100 * x['spectrum'] / tot:.1f} %, forward pass {100 * x['forward'] / tot:.1f} %, BPTT "
                 f"{100 * x['backward'] / tot:.1f} %, the rest (drive, metrics) "
                 f"{100 * (tot - x['spectrum'] - x['forward'] - x['backward']) / tot:.1f} %. Cells that differ "
                 "only in spectrum.radius share one base matrix, built and solved once and rescaled.")
        L.append("")
        ref = sweep["numpy"]
        one, two = numpy_loop_seconds(sweep, cells)
        times = ", ".join(f"{a} {fmt_ms(ref['per_cell']['one'][a])} ({fmt_ms(ref['per_cell']['two'][a])})"
                          for a in ref["activations"])
        L.append(f"NumPy loop over the same cells (tools/bench/reference.py, one BLAS thread): N = {ref['n']}, "
                 f"{ref['burn_in']} burn-in steps forward (not kept), then T = {ref['steps']} steps and BPTT over "
                 f"them, B = {ref['batch']}, input dim {ref['input_dim']}, each cell's activation; no rho, metrics "
                 f"or output. Per cell, median of 3 rounds, alone (and with a second such process running, as two "
                 f"loops side by side on two cores share the machine): {times}. The loop takes {one:.1f} s on one "
                 f"core and {two:.1f} s on two (each half of the cells). At equal core counts gradflow is "
                 f"{one / w1:.2f}x the NumPy loop on one core and {two / w2:.2f}x on two.")
    if spectra:
        L.append("")
        L.append(f"## Spectral radius and norm at N = {spectra['n']} (dense Ginibre W)")
        L.append("")
        rs, ns = statistics.median(spectra["rho_spectra"]), statistics.median(spectra["norm_spectra"])
        L.append("| quantity | Spectra (gradflow) | dense Eigen | speed-up | relative difference |")
        L.append("|---|---|---|---|---|")
        if spectra["rho_dense"]:
            rd, nd = statistics.median(spectra["rho_dense"]), statistics.median(spectra["norm_dense"])
            L.append(f"| rho(W) | {fmt_ms(rs)} ({spectra['rho_status']}) | {fmt_ms(rd)} (EigenSolver, eigenvalues "
                     f"only) | {rd / rs:.0f}x | {spectra['rho_rel_diff']:.1e} |")
            L.append(f"| ‖W‖₂ | {fmt_ms(ns)} ({spectra['norm_status']}) | {fmt_ms(nd)} (JacobiSVD, singular values "
                     f"only) | {nd / ns:.0f}x | {spectra['norm_rel_diff']:.1e} |")
        L.append("")
        L.append(f"Spectra: median of {len(spectra['rho_spectra'])} runs (convergence tolerance 1e-12 relative "
                 f"residual); dense: {len(spectra['rho_dense'])} run(s). Command: "
                 f"`build/tools/bench/spectra_bench --n {spectra['n']}`. Measured in the run of {started} "
                 f"(commit {git_commit()}).")
    L.append("")
    if gated:
        L.extend(gated_section(gated, bench.args.reps))
    if sparse:
        L.extend(sparse_section(sparse, bench.args.sparse_reps))
    if scenario_100k:
        x = scenario_100k
        L += ["## scenarios/sparse_100k.toml", "",
              f"`gradflow run scenarios/sparse_100k.toml --threads 2 --no-report` (N = 100,000, in-degree 100, "
              f"T = 50 + 20 burn-in, B = 4), one run: wall {x['wall']:.0f} s ({x['wall'] / 60:.1f} min) from "
              f"run.json, of which the radius solve {x['spectrum']:.0f} s (spectrum_status {x['status']}), the "
              f"forward pass {x['forward']:.1f} s and BPTT {x['backward']:.1f} s; peak RSS {x['rss']:.0f} MB.", ""]
    L.extend(status(rows, sweep, spectra, sparse=sparse_status_input(sparse), gated=gated, scenario_100k=scenario_100k))
    return "\n".join(L)


def label(r):
    return f"{r['n']}, {r['t']}, {r['b']}" + (f", x{r['input']}" if r.get("input") else "")


def memory_bound(r):
    """README's memory formula for a row: (tape, W, bound) in MB. W's term, 32 N^2 bytes, counts every copy a
    cell can hold: the matrix as read (kind = "file") or drawn, its cached base and the cell's scaled copy (8
    bytes each), and the engine's packed copy (8 bytes in double; in float 4, plus the 4-byte float W). The
    bound is the larger of the cell's phase and, for N <= 2000, the report's after it (72 N^2 bytes: the
    eigenvalue picture's copies of W and Eigen's dense eigensolver; the kept tapes are released before it)."""
    sb = 4 if r["dtype"] == "float32" else 8
    tape = r["n"] * r["b"] * r["t"] * sb / 2**20
    w = 32 * r["n"] ** 2 / 2**20
    report = 72 * r["n"] ** 2 / 2**20 if r["n"] <= 2000 else 0.0
    return tape, w, max(tape + w, report) + 30


def takes(reference, factor, limit):
    """A ratio target `factor` x `reference` (seconds) as the engine time it needs, against the GEMM limit."""
    need = reference / factor

    def ms(x):  # three significant digits: the N = 64 rows are fractions of a millisecond
        return f"{x * 1e3:.3g} ms" if x < 1 else f"{x * 1e3:.0f} ms"

    if need < limit:
        return f"unreachable here: needs ≤ {ms(need)}, under the GEMM limit alone ({ms(limit)})"
    return f"≤ {ms(need)}: {100 * limit / need:.0f} % of the GEMM limit ({ms(limit)})"


def status(rows, sweep, spectra, sparse=None, gated=None, scenario_100k=None):
    """The targets of issues 4 and 18 against this run's figures: one line per target, met or not. A target
    whose row or section was not run says so (and counts as not met)."""
    def find(n, b, dtype, threads=1, input_dim=0):
        return next((r for r in rows if (r["n"], r["b"], r["dtype"], r["threads"], r["input"]) ==
                     (n, b, dtype, threads, input_dim)), None)

    def numpy_ratio(r):
        return r["median"]["numpy"] / r["median"]["gradflow"]

    def fraction(r):
        return r["median"]["limit"] / r["median"]["gradflow"]

    def gflops(r, seconds=None):
        return 4.0 * r["n"] ** 2 * r["b"] * r["t"] / (seconds or r["median"]["gradflow"]) / 1e9

    def shape(r):
        return f"{r['n']}/{r['b']} {r['dtype'].replace('float', 'f')}" + (
            f", {r['threads']} threads" if r["threads"] > 1 else "") + (f", x{r['input']}" if r["input"] else "")

    lines = []
    missing = "row not run"
    for n, factor, dim in ((64, 20, 16), (256, 2.5, 0)):
        r = find(n, 1, "float64", 1, dim)
        what = f"≥ {factor:g}x NumPy at N = {n}, B = 1" + (" with an input drive" if dim else "")
        per = round_values(r, lambda x: x["numpy"] / x["gradflow"]) if r else [0]
        lines.append((what, f"{numpy_ratio(r):.2f}x{spread(per, '{:.2f}x'.format)}" if r else missing,
                      bool(r) and numpy_ratio(r) >= factor,
                      takes(r["median"]["numpy"], factor, r["median"]["limit"]) if r else "",
                      crosses(per, factor)))
    if rows:
        slow = [r for r in rows if numpy_ratio(r) < 1]
        worst = min(rows, key=numpy_ratio)
        lines.append(("no row slower than NumPy", f"slowest {numpy_ratio(worst):.2f}x ({shape(worst)})" +
                      ("" if not slow else "; slower in " + ", ".join(shape(r) for r in slow)), not slow))
    wide = [r for r in rows if r["b"] >= 16]
    if wide:
        per = {id(r): round_values(r, lambda x: x["limit"] / x["gradflow"]) for r in wide}
        lines.append(("B ≥ 16: ≥ 90 % of the GEMM limit (float64 and float32)",
                      ", ".join(f"{100 * fraction(r):.0f} % ({shape(r)}; rounds "
                                f"{100 * min(per[id(r)]):.0f}-{100 * max(per[id(r)]):.0f} %)" for r in wide),
                      all(fraction(r) >= 0.9 for r in wide),
                      "; ".join(f"{shape(r)}: ≤ {r['median']['limit'] / 0.9 * 1e3:.1f} ms (the engine "
                                f"{r['median']['gradflow'] * 1e3:.1f} ms, the limit {r['median']['limit'] * 1e3:.1f} ms)"
                                for r in wide if fraction(r) < 0.9),
                      all(max(v) >= 0.9 for v in per.values()) != all(min(v) >= 0.9 for v in per.values())))
    big, ref = find(2048, 32, "float64"), find(256, 32, "float64")
    # Per round: the two rows' k-th rounds (minutes apart, not side by side).
    per = [gflops(big, a) / gflops(ref, b) for a, b in zip(big["samples"]["gradflow"], ref["samples"]["gradflow"])] \
        if big and ref else [0]
    lines.append(("N = 2048 at the GFLOP/s of N = 256 (B = 32, float64, one thread; within 10 %)",
                  f"{gflops(big):.1f} against {gflops(ref):.1f} GFLOP/s ({gflops(big) / gflops(ref):.2f}x"
                  + (f"; rounds {min(per):.2f}x-{max(per):.2f}x" if len(per) > 1 else "") + ")" if big and ref else missing,
                  bool(big and ref) and gflops(big) >= 0.9 * gflops(ref),
                  takes(4.0 * big["n"] ** 2 * big["b"] * big["t"] / (0.9 * gflops(ref) * 1e9), 1.0,
                        big["median"]["limit"]) if big and ref else "", crosses(per, 0.9)))
    one, two = find(1024, 16, "float64", 1), find(1024, 16, "float64", 2)
    if two:
        # Paired: each round's one-thread run beside its two-thread run (Bench.row), median of the ratios.
        per = [a / b for a, b in zip(two["samples"]["gradflow_1t"], two["samples"]["gradflow"])]
        paired = statistics.median(per)
        rows_ratio = f"; the two rows' medians: {one['median']['gradflow'] / two['median']['gradflow']:.2f}x" if one else ""
        lines.append(("two threads on one cell ≥ 1.7x one thread (N = 1024, B = 16)",
                      f"{paired:.2f}x (median of {len(per)} rounds {min(per):.2f}-{max(per):.2f}x, each a "
                      f"one-thread run beside the two-thread run{rows_ratio})", paired >= 1.7, "", crosses(per, 1.7)))
    else:
        lines.append(("two threads on one cell ≥ 1.7x one thread (N = 1024, B = 16)", missing, False))
    for r32 in (r for r in rows if r["dtype"] == "float32"):
        r64 = find(r32["n"], r32["b"], "float64", r32["threads"], r32["input"])
        if r64:
            lines.append((f"float32 at least as far ahead (N = {r32['n']}, B = {r32['b']})",
                          f"NumPy / gradflow {numpy_ratio(r32):.2f}x against {numpy_ratio(r64):.2f}x in float64; "
                          f"{100 * fraction(r32):.0f} % against {100 * fraction(r64):.0f} % of the limit",
                          numpy_ratio(r32) >= numpy_ratio(r64),
                          takes(r32["median"]["numpy"], numpy_ratio(r64), r32["median"]["limit"])))
    if spectra and spectra.get("rho_dense"):
        rho = statistics.median(spectra["rho_dense"]) / statistics.median(spectra["rho_spectra"])
        norm = statistics.median(spectra["norm_dense"]) / statistics.median(spectra["norm_spectra"])
        lines.append((f"Spectra ≥ 20x dense Eigen at N = {spectra['n']}", f"rho {rho:.0f}x, ‖W‖₂ {norm:.0f}x",
                      min(rho, norm) >= 20,
                      f"rho in ≤ {statistics.median(spectra['rho_dense']) / 20 * 1e3:.0f} ms (it took "
                      f"{statistics.median(spectra['rho_spectra']) * 1e3:.0f} ms)" if rho < 20 else ""))
    if sparse and sparse.get("solve"):
        g, sp = sparse["solve"]["gradflow"], sparse["solve"]["scipy"]
        lines.append((f"sparse radius solve no slower than scipy's eigs (N = {sparse['solve']['n']})",
                      f"gradflow {g:.2f} s, scipy {sp:.2f} s ({sp / g:.2f}x)", g <= sp))
    else:
        lines.append(("sparse radius solve no slower than scipy's eigs", "not measured by compare.py yet (docs/performance.md)", False))
    if scenario_100k:
        x = scenario_100k
        lines.append(("scenarios/sparse_100k.toml < 10 min",
                      f"{x['wall'] / 60:.1f} min ({x['wall']:.0f} s, two threads; the radius solve {x['spectrum']:.0f} s, "
                      f"spectrum_status {x['status']}; forward and BPTT {x['forward'] + x['backward']:.1f} s; "
                      f"peak RSS {x['rss']:.0f} MB)", x["wall"] < 600,
                      f"≤ 600 s in all; the radius solve alone took {x['spectrum']:.0f} s" if x["wall"] >= 600 else ""))
    elif sparse and sparse.get("scenario_100k_extrapolated"):
        w = sparse["scenario_100k_extrapolated"]
        lines.append(("scenarios/sparse_100k.toml < 10 min", f"not run; its radius solve alone extrapolates to "
                      f"{w / 60:.0f} min (power law through the sparse section's N, 2 threads)", False))
    else:
        lines.append(("scenarios/sparse_100k.toml < 10 min", "not run (--no-sparse or --no-sparse-100k)", False))
    if sweep:
        w1 = statistics.median(x["wall"] for x in sweep["runs"][1])
        w2 = statistics.median(x["wall"] for x in sweep["runs"][2])
        cells = sweep["runs"][1][0]["cells"]
        one, two = numpy_loop_seconds(sweep, cells)
        r1, r2 = one / w1, two / w2
        lines.append(("default sweep ≥ 2x a NumPy loop at equal core counts",
                      f"{r1:.2f}x on 1 core, {r2:.2f}x on 2 (two NumPy loops side by side)", min(r1, r2) >= 2,
                      f"≤ {one / 2:.1f} s on one core (it took {w1:.1f} s), ≤ {two / 2:.1f} s on two ({w2:.1f} s)"
                      if min(r1, r2) < 2 else ""))
        lines.append(("sweep: parallel efficiency ≥ 90 % on 2 cores", f"{100 * w1 / (2 * w2):.0f} %",
                      w1 / (2 * w2) >= 0.9))
    if gated:
        lines += gated_status(gated)
    over = [r for r in rows if r["rss"]["gradflow"] > memory_bound(r)[2]]
    lines.append(("peak memory within README's formula at every N", "every row under its bound" if not over else
                  "over in " + ", ".join(shape(r) for r in over), not over))
    L = ["## Status against the performance targets", "",
         "Computed from the figures above by compare.py (gradflow's warm figure). Where a target is missed, docs/performance.md "
         "(its first section, *Where each missed target stands*) has the profile that explains it and what would close it.", "",
         "| target | measured | met | what it takes here |", "|---|---|---|---|"]
    for x in (Line(*t) for t in lines):
        met = "yes" if x.met else "**no**"
        if x.noisy:
            met += " (not in every round)" if x.met else " (met in some rounds)"
        L.append(f"| {x.target} | {x.measured} | {met} | {x.takes} |")
    L += ["", "*What it takes here*: for a target that is a ratio against NumPy or PyTorch, the engine time that "
          "would meet it on this machine and what fraction of the row's GEMM limit (the recurrent products alone, "
          "on the fastest kernel measured) that is. A time below the limit cannot be met by any engine built on "
          "these kernels: the target then measures the machine (how fast its BLAS runs against the references' "
          "interpreter overhead), not gradflow. *Rounds*: the lowest and highest of the figure over the rounds "
          "(each round's samples taken together); *met in some rounds* / *not in every round*: the verdict "
          "of the medians would be the other one at one end of that spread.", ""]
    L.append("")
    return L


# The sections report() writes, by the start of their heading (a heading may carry figures, e.g. "at N = 2000").
OWN_SECTIONS = ("## BPTT", "## Sweep throughput", "## Spectral radius and norm", "## Gated cells", "## Status against",
                "## Sparse spectral radius", "## scenarios/sparse_100k.toml")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=str(ROOT / "build"))
    p.add_argument("--reps", type=int, default=3, help="alternated rounds per row")
    p.add_argument("--rows", default="all", help="comma-separated row numbers (1-based) or 'all'")
    p.add_argument("--sweep-reps", type=int, default=1)
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-spectra", action="store_true")
    p.add_argument("--no-gated", action="store_true", help="leave out the GRU / LSTM rows against PyTorch")
    p.add_argument("--gated-rows", default="all", help="comma-separated gated row numbers (1-based) or 'all'")
    p.add_argument("--spectra-n", type=int, default=2000)
    p.add_argument("--dense-reps", type=int, default=1)
    p.add_argument("--no-sparse", action="store_true", help="leave out the sparse radius solve against scipy")
    p.add_argument("--sparse-only", action="store_true", help="only the sparse radius solve (no other section)")
    p.add_argument("--sparse-n", default="10000", help="comma-separated N of the sparse radius solve (30000 adds "
                   "~4 min per round on 2 cores)")
    p.add_argument("--sparse-reps", type=int, default=3, help="alternated rounds of the sparse radius solve")
    p.add_argument("--no-sparse-100k", action="store_true",
                   help="leave out the run of scenarios/sparse_100k.toml (about 11 minutes on 2 cores)")
    p.add_argument("--write", help="write the Markdown report here (default: stdout)")
    p.add_argument("--command", default="bash tools/bench/compare --write BENCHMARKS.md")
    args = p.parse_args()
    import numpy as np

    bench = Bench(args)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    picks = ROWS if args.rows == "all" else [ROWS[int(i) - 1] for i in args.rows.split(",")]
    if args.sparse_only:
        picks, args.no_sweep, args.no_spectra, args.no_gated, args.no_sparse_100k = [], True, True, True, True
    rows = []
    for spec in picks:
        print(f"compare: N={spec[0]} T={spec[1]} B={spec[2]} {spec[3]} threads={spec[4]} input_dim={spec[5]}",
              file=sys.stderr)
        rows.append(bench.row(np, *spec))
    sweep = None if args.no_sweep else (print("compare: sweep", file=sys.stderr), bench.sweep(np))[1]
    spectra = None if args.no_spectra else (print("compare: spectra", file=sys.stderr), bench.spectra())[1]
    gated = []
    gated_picks = GATED_ROWS if args.gated_rows == "all" else [GATED_ROWS[int(i) - 1] for i in args.gated_rows.split(",")]
    for spec in ([] if args.no_gated else gated_picks):
        print(f"compare: {spec[0]} N={spec[1]} T={spec[2]} B={spec[3]}", file=sys.stderr)
        gated.append(bench.gated_row(*spec))
    sparse = None if args.no_sparse else (print("compare: sparse", file=sys.stderr), bench.sparse())[1]
    scenario_100k = None if args.no_sparse or args.no_sparse_100k else \
        (print("compare: scenarios/sparse_100k.toml", file=sys.stderr), bench.sparse_100k())[1]
    load_after = os.getloadavg()
    gemm = getattr(bench, "gemm", "unknown")
    text = report(bench, rows, sweep, spectra, args.command, started, load_before, load_after, gemm, gated, sparse,
                  scenario_100k)
    if args.write:
        Path(args.write).write_text(text + foreign_sections(Path(args.write)))
        print(f"compare: wrote {args.write}", file=sys.stderr)
    else:
        print(text)
    with open(bench.tmp / "raw.json", "w") as f:
        json.dump({"rows": rows, "sweep": sweep, "spectra": spectra, "gated": gated, "sparse": sparse,
                   "scenario_100k": scenario_100k}, f,
                  default=str, indent=1)
    print(f"compare: raw data in {bench.tmp / 'raw.json'}", file=sys.stderr)


def foreign_sections(path):
    """The '## ' sections of an existing report that this script does not write (e.g. the MPI section of
    tools/bench_mpi.py), so that regenerating BENCHMARKS.md keeps them. A section this script writes is
    replaced whatever figures its heading carries (OWN_SECTIONS)."""
    if not path.exists():
        return ""
    kept, keep = [], False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = not line.startswith(OWN_SECTIONS)
        if keep:
            kept.append(line)
    return ("\n" + "\n".join(kept) + "\n") if kept else ""


if __name__ == "__main__":
    main()
