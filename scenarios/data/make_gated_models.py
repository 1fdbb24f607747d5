#!/usr/bin/python3
"""Train a small PyTorch GRU and LSTM on the adding problem and export them for gradflow's gated cells.

    /usr/bin/python3 scenarios/data/make_gated_models.py      # about 25 s per model on one core

writes scenarios/data/torch_gru/ and scenarios/data/torch_lstm/ (~140-160 KB each):

    weight_ih_l0.npy, weight_hh_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy
                        the trained torch.nn.GRU / torch.nn.LSTM (N = 64 units, input dim 8), float32 as trained,
                        written by export_torch.export_module         -> [import] torch = "data/torch_gru"
    x.npy               1100 x 8 float32: burn_in 100 + steps 1000 rows of the task's own inputs (22 adding-problem
                        episodes of 50 steps, back to back), row s - 1 = x at forward step s  -> [input] file
    h0.npy (and c0.npy) 64 zeros, float32: the initial state the networks were trained from  -> [init] file /
                        cell_file
    reference_series.csv
                        t, log10_grad_norm, log10_grad_norm_h for t = 0..1000: what gradflow should measure for
                        this folder with batch = 1, burn_in = 100, steps = 1000, loss "final_state",
                        precision "double" (torch autograd in float64 on the float32 weights, state coordinates:
                        for the LSTM S = (h, c), see tools/bench/torch_gated.py)
    model.json          provenance: task, seeds, training settings, test error

The task (adding problem, T = 50): input channel 0 holds values drawn uniformly from [0, 1], channel 1 marks
two steps (one in each half of the sequence) with 1, channels 2..7 carry Gaussian distractor noise (std 0.5);
after the last step a linear readout of h_T must output the sum of the two marked values. Predicting the
mean (1.0) gives an MSE of 1/6 = 0.167; solving it requires carrying two values across up to 49 steps.
Training: Adam (lr 1e-2), gradient-norm clipping 1, batches of 64 fresh sequences, 2000 iterations,
torch.manual_seed(0) for the weights and a separate seeded generator for the data, one thread (deterministic
on a given machine and PyTorch build).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from export_torch import export_module, save_inputs, save_state, scenario_snippet  # noqa: E402

HIDDEN, INPUTS, TASK_T = 64, 8, 50
BURN_IN, STEPS = 100, 1000
ITERATIONS, BATCH, LR, CLIP = 2000, 64, 1e-2, 1.0
WEIGHT_SEED, DATA_SEED, TEST_SEED, EXPORT_SEED = 0, 1, 99, 7
TEST_SIZE = 2000


def adding_batch(gen, size, length=TASK_T):
    """(x, y): x (size, length, 8), y (size,) = the sum of the two marked values."""
    x = torch.zeros(size, length, INPUTS)
    x[:, :, 0] = torch.rand(size, length, generator=gen)
    first = torch.randint(0, length // 2, (size,), generator=gen)
    second = torch.randint(length // 2, length, (size,), generator=gen)
    rows = torch.arange(size)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    x[:, :, 2:] = 0.5 * torch.randn(size, length, INPUTS - 2, generator=gen)
    return x, x[rows, first, 0] + x[rows, second, 0]


def train(kind, iterations):
    torch.manual_seed(WEIGHT_SEED)
    rnn = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(INPUTS, HIDDEN, batch_first=True)
    readout = torch.nn.Linear(HIDDEN, 1)
    params = list(rnn.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    gen = torch.Generator().manual_seed(DATA_SEED)
    start = time.perf_counter()
    for it in range(1, iterations + 1):
        x, y = adding_batch(gen, BATCH)
        out, _ = rnn(x)
        loss = ((readout(out[:, -1]).squeeze(1) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        if it % 500 == 0:
            print(f"  {kind} iteration {it}: training MSE {loss.item():.5f}", flush=True)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        x, y = adding_batch(torch.Generator().manual_seed(TEST_SEED), TEST_SIZE)
        out, _ = rnn(x)
        err = readout(out[:, -1]).squeeze(1) - y
        mse = (err ** 2).mean().item()
        acc = (err.abs() < 0.04).float().mean().item()
    return rnn, mse, acc, seconds


def reference_series(rnn, kind, x, h0):
    """log10 ||g_t||, log10 ||dL/dh_t|| for t = 0..STEPS (B = 1), float64, state coordinates."""
    cell = (torch.nn.GRUCell if kind == "gru" else torch.nn.LSTMCell)(INPUTS, HIDDEN).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(rnn, name + "_l0").double())
    cell.requires_grad_(False)
    x = torch.from_numpy(x).double().unsqueeze(1)  # (L, 1, dim)
    h = torch.from_numpy(h0).double().reshape(1, HIDDEN)
    c = torch.zeros_like(h)
    with torch.no_grad():
        for s in range(BURN_IN):
            if kind == "lstm":
                h, c = cell(x[s], (h, c))
            else:
                h = cell(x[s], h)
    h = h.clone().requires_grad_(True)
    c = c.clone().requires_grad_(True)
    hs, cs = [h], [c]
    for s in range(BURN_IN, BURN_IN + STEPS):
        if kind == "lstm":
            h, c_out = cell(x[s], (h, c))
            c = c_out.view_as(c_out)  # the state c_t, consumed by the next step only
            c.retain_grad()
            cs.append(c)
        else:
            h = cell(x[s], h)
        h.retain_grad()
        hs.append(h)
    (0.5 * (h * h).sum()).backward()
    rows = []
    for t in range(STEPS + 1):
        gh = hs[t].grad.norm().item()
        gc = cs[t].grad.norm().item() if kind == "lstm" and cs[t].grad is not None else 0.0
        log = lambda v: math.log10(v) if v > 0 else float("-inf")
        rows.append((t, log(math.hypot(gh, gc)), log(gh)))
    return rows


def export(rnn, kind, mse, acc, seconds, iterations):
    d = os.path.join(HERE, f"torch_{kind}")
    export_module(rnn, d)
    gen = torch.Generator().manual_seed(EXPORT_SEED)
    episodes = -(-(BURN_IN + STEPS) // TASK_T)
    x, _ = adding_batch(gen, episodes)
    x = save_inputs(x.reshape(episodes * TASK_T, INPUTS)[:BURN_IN + STEPS], os.path.join(d, "x.npy"))
    h0 = save_state(np.zeros(HIDDEN, dtype=np.float32), os.path.join(d, "h0.npy"))
    if kind == "lstm":
        save_state(np.zeros(HIDDEN, dtype=np.float32), os.path.join(d, "c0.npy"))
    rows = reference_series(rnn, kind, x, h0)
    with open(os.path.join(d, "reference_series.csv"), "w") as f:
        f.write("t,log10_grad_norm,log10_grad_norm_h\n")
        for t, lg, lh in rows:
            f.write(f"{t},{lg:.17g},{lh:.17g}\n")
    meta = {
        "module": f"torch.nn.{kind.upper()}({INPUTS}, {HIDDEN})", "dtype": "float32",
        "task": f"adding problem, T = {TASK_T}, channels: 0 values U(0,1), 1 two markers, 2..7 N(0, 0.25) noise",
        "training": {"optimizer": "Adam", "lr": LR, "clip_grad_norm": CLIP, "batch": BATCH,
                     "iterations": iterations, "weight_seed": WEIGHT_SEED, "data_seed": DATA_SEED},
        "test": {"sequences": TEST_SIZE, "seed": TEST_SEED, "mse": round(mse, 6), "baseline_mse": round(1 / 6, 6),
                 "fraction_abs_error_below_0.04": round(acc, 4)},
        "export": {"x": f"{BURN_IN + STEPS} x {INPUTS}, {episodes} task episodes back to back, seed {EXPORT_SEED}",
                   "h0": "zeros", "burn_in": BURN_IN, "steps": STEPS},
        "torch": torch.__version__,
    }
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    print(f"{kind}: test MSE {mse:.5f} (predicting the mean: {1 / 6:.3f}), |error| < 0.04 on {100 * acc:.1f}% "
          f"of {TEST_SIZE} test sequences; trained in {seconds:.0f} s; log10 ||g_t|| from t = {STEPS} to 0: "
          f"{rows[-1][1]:.3f} -> {rows[0][1]:.3f}; wrote {d} ({size / 1024:.0f} KB)")
    rel = os.path.relpath(d, os.path.dirname(HERE))  # relative to scenarios/
    print(scenario_snippet(rel, kind, "tanh", HIDDEN, INPUTS, steps=STEPS, burn_in=BURN_IN,
                           h0=f"{rel}/h0.npy", c0=f"{rel}/c0.npy" if kind == "lstm" else None,
                           x=f"{rel}/x.npy"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", nargs="+", choices=["gru", "lstm"], default=["gru", "lstm"])
    p.add_argument("--iterations", type=int, default=ITERATIONS, help="training iterations (default: %(default)s)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for kind in a.cells:
        rnn, mse, acc, seconds = train(kind, a.iterations)
        export(rnn, kind, mse, acc, seconds, a.iterations)


if __name__ == "__main__":
    main()
