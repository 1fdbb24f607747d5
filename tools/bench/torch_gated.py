#!/usr/bin/python3
"""PyTorch autograd contender for gradflow's gated cells (GRU, LSTM): per-step state gradients, timed.

What a PyTorch user would write instead of gradflow for network.cell = "gru" / "lstm": torch.nn.GRUCell /
torch.nn.LSTMCell (PyTorch's equations and gate order, the ones gradflow implements) run for T steps over a
batch of B trajectories from h_0 = 0 (and c_0 = 0), the same Gaussian input sequence x_t (dim 16) for every
trajectory, the loss L = sum_b ||h_T^(b)||^2 / 2 (so g_T = h_T), and ONE loss.backward() with retain_grad()
on every state, then the per-step norms ||g_t^(b)|| for t = 0..T, g_t = dL/dS_t:

  gru   S_t = h_t: h_t.grad.
  lstm  S_t = (h_t, c_t) in state coordinates (gradflow's), ||g_t|| = sqrt(||dL/dh_t||^2 + ||dL/dc_t||^2) with
        dL/dc_t taken through step t + 1 only. The cell's c output also feeds h_t = o_t * tanh(c_t) inside
        the same step, so c_t.grad would collect that path too; instead c_t is handed to the next step as a
        view, and retain_grad() on the view gives exactly the state-coordinate gradient (checked against
        per-step VJPs and finite differences by tests/data/torch_reference.py).

The weights do not require grad (only state gradients are wanted, as in gradflow; asking autograd for the
weight gradients too would add a GEMM per step). They are PyTorch's default random init (seeded); gradflow
uses its own weights: only the timing is compared. With --weights DIR the four .npy files written by
scenarios/data/export_torch.py (and DIR/x.npy when present, rows = steps) are used instead.

Timed: forward + backward + per-step norms, time.perf_counter() inside the process, after one untimed
warm-up run per configuration (interpreter start-up, imports and building the weights are not timed); the
median of --repeat runs is reported.

Usage:

  torch_gated.py                                  # the benchmark grid: gru, lstm x (256, 1000, 1), (256, 1000, 32)
  torch_gated.py --cell lstm --n 256 --steps 1000 --batch 32 [--repeat 5] [--dtype float64] [--threads 1]
                 [--series out.csv] [--weights DIR]

Prints one JSON object per line and configuration: {"cell", "N", "T", "B", "seconds" (the median),
"samples" (every timed run), "dtype", "threads", "impl": "torch", "blas"}. With --series (one configuration
only), writes t, log10_grad_norm (mean over the batch of log10 ||g_t||), log10_grad_norm_h for t = 0..T.
"""

import argparse
import json
import os
import statistics
import sys
import time

GRID = [(cell, n, t, b) for cell in ("gru", "lstm") for (n, t, b) in ((256, 1000, 1), (256, 1000, 32))]
INPUT_DIM = 16


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", choices=["gru", "lstm"], help="one configuration (with --n, --steps, --batch)")
    p.add_argument("--n", type=int, default=256, help="N, hidden units")
    p.add_argument("--steps", type=int, default=1000, help="T")
    p.add_argument("--batch", type=int, default=1, help="B")
    p.add_argument("--input-dim", type=int, default=INPUT_DIM)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5, help="timed runs (after one warm-up); the median is printed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="folder with weight_ih_l0.npy ... as export_torch.py writes (optional x.npy)")
    p.add_argument("--series", help="write t,log10_grad_norm,log10_grad_norm_h here (one configuration)")
    a = p.parse_args()
    if a.series and not a.cell:
        p.error("--series needs one configuration (--cell)")
    if a.weights and not a.cell:
        p.error("--weights needs one configuration (--cell)")
    return a


def make_cell(torch, cell, n, dim, dtype, seed, weights=None):
    torch.manual_seed(seed)
    mod = (torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell)(dim, n).to(dtype)
    if weights:
        import numpy as np

        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                a = np.load(os.path.join(weights, name + "_l0.npy"))
                p = getattr(mod, name)
                if tuple(a.shape) != tuple(p.shape):
                    sys.exit(f"torch_gated.py: {name}_l0.npy is {a.shape}, expected {tuple(p.shape)} for a "
                             f"{cell} with N = {n}, dim = {dim}")
                p.copy_(torch.from_numpy(a))
    return mod.requires_grad_(False)


def make_inputs(torch, steps, batch, dim, dtype, seed, weights=None):
    """(T, B, dim): one Gaussian sequence shared by the B trajectories (gradflow's file inputs)."""
    x = None
    if weights and os.path.exists(os.path.join(weights, "x.npy")):
        import numpy as np

        x = torch.from_numpy(np.load(os.path.join(weights, "x.npy"))).to(dtype)
        if x.shape[0] < steps or x.shape[1] != dim:
            sys.exit(f"torch_gated.py: x.npy is {tuple(x.shape)}, need at least {steps} x {dim}")
        x = x[:steps]
    else:
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(steps, dim, generator=g, dtype=torch.float64).to(dtype)
    return x.unsqueeze(1).expand(steps, batch, dim).contiguous()


def gated_bptt(torch, mod, cell, x, n):
    """Forward T steps keeping every state, one backward; returns (||g_t||, ||dL/dh_t||), each (T+1, B)."""
    steps, batch, _ = x.shape
    h = torch.zeros(batch, n, dtype=x.dtype, requires_grad=True)
    hs = [h]
    if cell == "lstm":
        c = torch.zeros(batch, n, dtype=x.dtype, requires_grad=True)
        cs = [c]
        for t in range(steps):
            h, c_out = mod(x[t], (h, c))
            c = c_out.view_as(c_out)  # the state c_t: consumed by step t + 1 only (see the docstring)
            h.retain_grad()
            c.retain_grad()
            hs.append(h)
            cs.append(c)
    else:
        for t in range(steps):
            h = mod(x[t], h)
            h.retain_grad()
            hs.append(h)
    loss = 0.5 * (h * h).sum()
    loss.backward()
    gh = torch.stack([s.grad for s in hs])  # (T+1, B, N)
    norm_h = torch.linalg.vector_norm(gh, dim=2)
    if cell == "lstm":
        gc = torch.stack([s.grad if s.grad is not None else torch.zeros_like(s) for s in cs])  # c_T: no path
        norm = torch.sqrt(norm_h * norm_h + torch.linalg.vector_norm(gc, dim=2) ** 2)
    else:
        norm = norm_h
    return norm, norm_h


def run_one(torch, a, cell, n, steps, batch, blas):
    dtype = torch.float32 if a.dtype == "float32" else torch.float64
    mod = make_cell(torch, cell, n, a.input_dim, dtype, a.seed, a.weights)
    x = make_inputs(torch, steps, batch, a.input_dim, dtype, a.seed, a.weights)
    run = lambda: gated_bptt(torch, mod, cell, x, n)
    norms = run()  # warm-up: first-call dispatch, allocator, page faults
    samples = []
    for _ in range(a.repeat):
        start = time.perf_counter()
        norms = run()
        samples.append(time.perf_counter() - start)
    if a.series:
        import math

        full, hpart = (v.to(torch.float64).tolist() for v in norms)
        with open(a.series, "w") as f:
            f.write("t,log10_grad_norm,log10_grad_norm_h\n")
            for t, (row, rowh) in enumerate(zip(full, hpart)):
                lf = [math.log10(v) if v > 0 and math.isfinite(v) else (float("-inf") if v == 0 else float("inf"))
                      for v in row]
                lh = [math.log10(v) if v > 0 and math.isfinite(v) else (float("-inf") if v == 0 else float("inf"))
                      for v in rowh]
                f.write(f"{t},{sum(lf) / len(lf):.17g},{sum(lh) / len(lh):.17g}\n")
    print(json.dumps({"cell": cell, "N": n, "T": steps, "B": batch, "seconds": statistics.median(samples),
                      "samples": samples, "dtype": a.dtype, "threads": a.threads, "impl": "torch",
                      "blas": blas}), flush=True)


def main():
    a = parse_args()
    # Thread counts must be fixed before PyTorch loads its BLAS.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    blas = "torch " + torch.__version__
    configs = [(a.cell, a.n, a.steps, a.batch)] if a.cell else GRID
    for cell, n, steps, batch in configs:
        run_one(torch, a, cell, n, steps, batch, blas)


if __name__ == "__main__":
    main()
