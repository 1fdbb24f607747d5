#!/usr/bin/python3
"""Generates the committed PyTorch reference data for gradflow's gated-cell import test (tests/data/torch_ref/).

The C++ test reads only what this script writes (it never needs torch): for each cell in rnn (nn.RNN, tanh),
gru (nn.GRU) and lstm (nn.LSTM), a seeded float64 module with N = 6 units, input dim 3, B = 2 trajectories,
burn_in = 3, steps = 40, and

  torch_ref/<cell>/weight_ih_l0.npy, weight_hh_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy
                         the module's state_dict, as scenarios/data/export_torch.py writes it
  torch_ref/<cell>/x.npy (burn_in + steps) x dim, row s - 1 = x at forward step s, shared by both trajectories
  torch_ref/<cell>/h0.npy N x B (column b = h_0 of trajectory b; the transpose of torch's (B, N)), nonzero
  torch_ref/<cell>/c0.npy lstm only, N x B
  torch_ref/<cell>/reference.csv
                         t,log10_grad_norm,log10_grad_norm_min,log10_grad_norm_max,log10_grad_norm_h (%.17g)
  torch_ref/<cell>.toml  the gradflow scenario for the case (paths relative to torch_ref/)

What reference.csv holds: L = 0.5 ||h_T||^2 per trajectory ("final_state" loss); S_t the state after
burn_in + t forward steps (t = 0..steps; the burn-in steps are run, not backpropagated); g_t = dL/dS_t in STATE
COORDINATES: for the LSTM, S_t = (h_t, c_t) with h_t and c_t independent coordinates, so g_T = (h_T, 0) and
g_{t-1} = (dS_t/dS_{t-1})^T g_t. ||g_t|| = sqrt(||dL/dh_t||^2 + ||dL/dc_t||^2); log10_grad_norm is the mean over
the B trajectories of log10 ||g_t^(b)||, _min / _max over trajectories, _h the mean of log10 ||dL/dh_t^(b)||
(equal to log10_grad_norm for rnn and gru).

How it is computed (float64 throughout):
  - the forward pass runs nn.RNNCell / nn.GRUCell / nn.LSTMCell holding the module's weights (copied), one
    step at a time; it is checked against the module itself run on the whole sequence (max |diff| <= 1e-13);
  - gradients: torch.autograd.grad of each step's output state with respect to its input state, the input
    being a fresh leaf (detached copy) per step, chained from g_T backwards. This is the state-coordinate
    gradient for every cell. (Plain retain_grad() on the LSTMCell outputs would NOT be: there c_t.grad also
    collects the path c_t -> h_t = o_t * tanh(c_t) inside the step that produced them.)
  - cross-check 1: one loss.backward() over the whole unrolled graph of the same cells with retain_grad() on
    every state, as tools/bench/torch_gated.py does it; for lstm the c state is passed on to the next step
    as a view of the cell's c output and retain_grad() is on that view, so its .grad only sees step t + 1.
    Must agree to ~1e-12 relative.
  - cross-check 2: central finite differences of L with respect to h_t (and c_t for lstm), every coordinate,
    both trajectories, at one t, rerunning the forward pass from S_t.
  - cross-check 3 (after writing): the files alone, read back with NumPy in gradflow's layouts (h0.npy N x B,
    x.npy row s - 1 = step s) through a hand-written NumPy forward pass and state-coordinate BPTT (the
    Jacobian-transpose products a C++ implementation would code), must reproduce reference.csv (~1e-12).

The recurrent weights are rescaled (WEIGHT_HH_SCALE) so that ||g_t|| spans several orders of magnitude over
the 40 steps. Run from anywhere (writes next to this file):

    /usr/bin/python3 tests/data/torch_reference.py [--print CELL] [--check-only]
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "scenarios" / "data"))
from export_torch import export_module, save_state  # noqa: E402

N, DIM, B, BURN_IN, STEPS = 6, 3, 2, 3, 40
SEEDS = {"rnn": 11, "gru": 12, "lstm": 13}
# weight_hh_l0 is multiplied by this after PyTorch's default init (uniform(-1/sqrt(N), 1/sqrt(N))). All three
# vanish backwards: log10 ||g_t|| falls by about 8 (rnn), 6 (gru) and 8 (lstm) decades from t = 40 to t = 0.
# rnn x 3 puts its two trajectories on different attractors (log10 ||g_0|| differs by ~4.5 between them),
# which exercises the _min / _max columns.
WEIGHT_HH_SCALE = {"rnn": 3.0, "gru": 1.0, "lstm": 2.0}
FD_T = 35  # the t of the finite-difference check (||g_t|| ~ 1e-1 .. 1e-2 there: differences are accurate)
FD_EPS = 1e-5  # relative step of the central differences
COLUMNS = ["t", "log10_grad_norm", "log10_grad_norm_min", "log10_grad_norm_max", "log10_grad_norm_h"]
GRADFLOW_CELL = {"rnn": "vanilla", "gru": "gru", "lstm": "lstm"}

SCENARIO = """# PyTorch reference case "{cell}": a seeded float64 torch.nn.{module} (N = {n}, input dim {dim}), weight_hh_l0
# scaled by {scale}, B = {b} trajectories from different h_0{c0note}, one shared Gaussian input sequence.
# Written by tests/data/torch_reference.py together with {cell}/reference.csv: the per-step log10 ||dL/dS_t||
# of L = 0.5 ||h_T||^2, computed by torch autograd in float64, which gradflow's series.csv must reproduce.
[network]
units = {n}
steps = {steps}
batch = {b}
cell = "{gcell}"
activation = "tanh"
precision = "double"

[import]
torch = "{cell}"

[input]
kind = "file"
file = "{cell}/x.npy"

[init]
state = "file"
file = "{cell}/h0.npy"
{cellfile}
[loss]
kind = "final_state"

[analysis]
burn_in = {burn_in}
series = true
"""


def build(cell):
    """The seeded module and a cell holding copies of its weights (float64)."""
    torch.manual_seed(SEEDS[cell])
    if cell == "rnn":
        module, step = torch.nn.RNN(DIM, N, nonlinearity="tanh"), torch.nn.RNNCell(DIM, N, nonlinearity="tanh")
    elif cell == "gru":
        module, step = torch.nn.GRU(DIM, N), torch.nn.GRUCell(DIM, N)
    else:
        module, step = torch.nn.LSTM(DIM, N), torch.nn.LSTMCell(DIM, N)
    module, step = module.double(), step.double()
    with torch.no_grad():
        module.weight_hh_l0.mul_(WEIGHT_HH_SCALE[cell])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(step, name).copy_(getattr(module, name + "_l0"))
    x = torch.randn(BURN_IN + STEPS, DIM, dtype=torch.float64)
    h0 = torch.randn(B, N, dtype=torch.float64)  # torch layout (B, N); saved transposed
    c0 = torch.randn(B, N, dtype=torch.float64) if cell == "lstm" else None
    return module, step, x, h0, c0


def run_step(step, cell, xs, state):
    """One forward step from state = (h,) or (h, c), each (B, N); xs is (dim,), shared by the batch."""
    xb = xs.expand(B, DIM)
    if cell == "lstm":
        return step(xb, state)
    return (step(xb, state[0]),)


def forward(step, cell, x, state, first, last):
    """States after forward steps first..last (1-based, inclusive), from state (before step `first`)."""
    out = []
    for s in range(first, last + 1):
        state = run_step(step, cell, x[s - 1], state)
        out.append(state)
    return out


def check_against_module(module, step, cell, x, h0, c0):
    """The per-step cell must reproduce the module run on the whole sequence (the batch shares x)."""
    with torch.no_grad():
        xs = x.unsqueeze(1).expand(BURN_IN + STEPS, B, DIM).contiguous()
        if cell == "lstm":
            y, (hT, cT) = module(xs, (h0.unsqueeze(0), c0.unsqueeze(0)))
        else:
            y, hT = module(xs, h0.unsqueeze(0))
        states = forward(step, cell, x, (h0,) if c0 is None else (h0, c0), 1, BURN_IN + STEPS)
        hs = torch.stack([s[0] for s in states])
        diff = (hs - y).abs().max().item()
        diff = max(diff, (states[-1][0] - hT[0]).abs().max().item())
        if cell == "lstm":
            diff = max(diff, (states[-1][1] - cT[0]).abs().max().item())
    if not diff <= 1e-13:
        sys.exit(f"torch_reference.py: {cell}: step-by-step cell differs from the module by {diff:g}")
    return diff


def state_after_burn_in(step, cell, x, h0, c0):
    with torch.no_grad():
        s0 = (h0,) if c0 is None else (h0, c0)
        return forward(step, cell, x, s0, 1, BURN_IN)[-1] if BURN_IN else s0


def grads_per_step_vjp(step, cell, x, s0):
    """g_t (tuple of (B, N) tensors: h part, c part) for t = 0..STEPS, by chained per-step VJPs."""
    leaves, outs = [], []
    state = tuple(s.detach() for s in s0)
    for t in range(1, STEPS + 1):
        leaf = tuple(s.detach().clone().requires_grad_(True) for s in state)
        new = run_step(step, cell, x[BURN_IN + t - 1], leaf)
        leaves.append(leaf)
        outs.append(new)
        state = new
    hT = outs[-1][0].detach()
    g = (hT.clone(),) + ((torch.zeros_like(hT),) if cell == "lstm" else ())
    grads = [None] * (STEPS + 1)
    grads[STEPS] = g
    for t in range(STEPS, 0, -1):
        g = torch.autograd.grad(outs[t - 1], leaves[t - 1], grad_outputs=g)
        grads[t - 1] = tuple(x.detach() for x in g)
    return grads, outs


def grads_one_backward(step, cell, x, s0):
    """Cross-check: one backward pass over the unrolled graph, retain_grad() on every state."""
    state = tuple(s.detach().clone().requires_grad_(True) for s in s0)
    states = [state]
    for t in range(1, STEPS + 1):
        state = run_step(step, cell, x[BURN_IN + t - 1], state)
        if cell == "lstm":
            # Pass c on as a view used only by the next step: its .grad is then the state-coordinate dL/dc_t,
            # while c itself (which also fed h_t = o_t * tanh(c_t)) collects both paths.
            state = (state[0], state[1].view_as(state[1]))
        for s in state:
            s.retain_grad()
        states.append(state)
    loss = 0.5 * (states[-1][0] ** 2).sum()
    loss.backward()
    return [tuple(s.grad if s.grad is not None else torch.zeros_like(s) for s in st) for st in states]


def loss_from(step, cell, x, state, t):
    """L per trajectory (B,) when the state after burn_in + t steps is `state`."""
    with torch.no_grad():
        if t < STEPS:
            state = forward(step, cell, x, state, BURN_IN + t + 1, BURN_IN + STEPS)[-1]
        return 0.5 * (state[0] ** 2).sum(dim=1)


def finite_difference(step, cell, x, st, g, t):
    """Central differences of L w.r.t. every coordinate of S_t; returns the max relative error (per
    trajectory, relative to ||g_t^(b)||)."""
    worst = 0.0
    for part in range(len(st)):
        for k in range(N):
            for b in range(B):
                scale = max(1.0, abs(st[part][b, k].item()))
                eps = FD_EPS * scale
                plus = [s.clone() for s in st]
                minus = [s.clone() for s in st]
                plus[part][b, k] += eps
                minus[part][b, k] -= eps
                fd = (loss_from(step, cell, x, tuple(plus), t)[b] - loss_from(step, cell, x, tuple(minus), t)[b]) / (2 * eps)
                gnorm = torch.sqrt(sum((gp[b] ** 2).sum() for gp in g)).item()
                worst = max(worst, abs(fd.item() - g[part][b, k].item()) / gnorm)
    return worst


def series(grads):
    rows = []
    for t, g in enumerate(grads):
        full = torch.sqrt(sum((p ** 2).sum(dim=1) for p in g))  # (B,)
        hpart = torch.sqrt((g[0] ** 2).sum(dim=1))
        lf = [math.log10(v) for v in full.tolist()]
        lh = [math.log10(v) for v in hpart.tolist()]
        rows.append((t, sum(lf) / B, min(lf), max(lf), sum(lh) / B))
    return rows


def make_case(cell, write=True):
    module, step, x, h0, c0 = build(cell)
    module_diff = check_against_module(module, step, cell, x, h0, c0)
    s0 = state_after_burn_in(step, cell, x, h0, c0)
    grads, outs = grads_per_step_vjp(step, cell, x, s0)
    other = grads_one_backward(step, cell, x, s0)
    cross = 0.0
    for g1, g2 in zip(grads, other):
        for p1, p2 in zip(g1, g2):
            cross = max(cross, ((p1 - p2).norm(dim=1) / torch.sqrt(sum((q ** 2).sum(dim=1) for q in g1))).max().item())
    if not cross <= 1e-12:
        sys.exit(f"torch_reference.py: {cell}: the one-backward cross-check differs by {cross:g} (relative)")
    st = tuple(s.detach() for s in (outs[FD_T - 1] if FD_T > 0 else s0))
    fd = finite_difference(step, cell, x, st, grads[FD_T], FD_T)
    if not fd <= 1e-6:
        sys.exit(f"torch_reference.py: {cell}: finite differences at t = {FD_T} differ by {fd:g} (relative)")
    rows = series(grads)
    span = max(r[1] for r in rows) - min(r[1] for r in rows)
    print(f"{cell}: module vs cell max |diff| {module_diff:.1e}; one-backward cross-check {cross:.1e}; "
          f"finite differences at t = {FD_T}: {fd:.1e} (relative); log10 ||g_t|| spans {span:.2f} decades "
          f"({rows[0][1]:.3f} at t = 0, {rows[-1][1]:.3f} at t = {STEPS})")
    if write:
        d = HERE / "torch_ref" / cell
        d.mkdir(parents=True, exist_ok=True)
        export_module(module, d)
        np.save(d / "x.npy", np.ascontiguousarray(x.numpy()))
        save_state(h0, d / "h0.npy")
        if c0 is not None:
            save_state(c0, d / "c0.npy")
        with open(d / "reference.csv", "w") as f:
            f.write(",".join(COLUMNS) + "\n")
            for r in rows:
                f.write(f"{r[0]}," + ",".join(f"{v:.17g}" for v in r[1:]) + "\n")
        cellfile = f'cell_file = "{cell}/c0.npy"\n' if cell == "lstm" else ""
        (HERE / "torch_ref" / f"{cell}.toml").write_text(SCENARIO.format(
            cell=cell, module={"rnn": "RNN (tanh)", "gru": "GRU", "lstm": "LSTM"}[cell], n=N, dim=DIM,
            scale=WEIGHT_HH_SCALE[cell], b=B, c0note=" and c_0" if cell == "lstm" else "", steps=STEPS,
            gcell=GRADFLOW_CELL[cell], cellfile=cellfile, burn_in=BURN_IN))
    return rows


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_series_from_files(cell):
    """Cross-check 3: reference.csv's numbers from the written files alone, by NumPy, no torch."""
    d = HERE / "torch_ref" / cell
    wih, whh = np.load(d / "weight_ih_l0.npy"), np.load(d / "weight_hh_l0.npy")
    b = (np.load(d / "bias_ih_l0.npy"), np.load(d / "bias_hh_l0.npy"))
    x, h = np.load(d / "x.npy"), np.load(d / "h0.npy")  # h: N x B, one column per trajectory
    c = np.load(d / "c0.npy") if cell == "lstm" else None
    n = whh.shape[1]
    tape = []
    for s in range(1, BURN_IN + STEPS + 1):
        ai = wih @ x[s - 1][:, None] + b[0][:, None]  # input part, shared by the columns
        ah = whh @ h + b[1][:, None]
        if cell == "rnn":
            h = np.tanh(ai + ah)
            rec = (h,)
        elif cell == "gru":
            r = sigmoid(ai[:n] + ah[:n])
            z = sigmoid(ai[n:2 * n] + ah[n:2 * n])
            hn = ah[2 * n:]
            nn_ = np.tanh(ai[2 * n:] + r * hn)
            rec = (h, r, z, hn, nn_)
            h = (1 - z) * nn_ + z * h
        else:
            a = ai + ah
            i, f, g, o = sigmoid(a[:n]), sigmoid(a[n:2 * n]), np.tanh(a[2 * n:3 * n]), sigmoid(a[3 * n:])
            c_prev = c
            c = f * c + i * g
            h = o * np.tanh(c)
            rec = (c_prev, i, f, g, o, c)
        if s > BURN_IN:
            tape.append(rec)
    gh, gc = h.copy(), np.zeros_like(h)
    norms = [None] * (STEPS + 1)
    norms[STEPS] = (np.sqrt((gh ** 2).sum(0) + (gc ** 2).sum(0)), np.sqrt((gh ** 2).sum(0)))
    for t in range(STEPS, 0, -1):
        rec = tape[t - 1]
        if cell == "rnn":
            gh = whh.T @ ((1 - rec[0] ** 2) * gh)
        elif cell == "gru":
            h_prev, r, z, hn, nn_ = rec
            da_n = gh * (1 - z) * (1 - nn_ ** 2)
            da_r = da_n * hn * r * (1 - r)
            da_z = gh * (h_prev - nn_) * z * (1 - z)
            gh = gh * z + whh[:n].T @ da_r + whh[n:2 * n].T @ da_z + whh[2 * n:].T @ (da_n * r)
        else:
            c_prev, i, f, g, o, c_new = rec
            tc = np.tanh(c_new)
            dc = gc + gh * o * (1 - tc ** 2)
            da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                                 gh * tc * o * (1 - o)])
            gh, gc = whh.T @ da, dc * f
        norms[t - 1] = (np.sqrt((gh ** 2).sum(0) + (gc ** 2).sum(0)), np.sqrt((gh ** 2).sum(0)))
    with open(d / "reference.csv") as f:
        next(f)
        ref = [[float(v) for v in line.split(",")] for line in f]
    worst = 0.0
    for t, (full, hpart) in enumerate(norms):
        lf, lh = np.log10(full), np.log10(hpart)
        ours = (lf.mean(), lf.min(), lf.max(), lh.mean())
        worst = max(worst, max(abs(u - v) / max(1.0, abs(v)) for u, v in zip(ours, ref[t][1:])))
    if not worst <= 1e-12:
        sys.exit(f"torch_reference.py: {cell}: NumPy from the files differs from reference.csv by {worst:g}")
    print(f"{cell}: NumPy BPTT from the written files reproduces reference.csv to {worst:.1e} (relative)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--print", dest="show", default="gru", choices=["rnn", "gru", "lstm", "none"],
                   help="print this case's reference.csv (default gru)")
    p.add_argument("--check-only", action="store_true", help="run every check, write nothing")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    results = {cell: make_case(cell, write=not a.check_only) for cell in ("rnn", "gru", "lstm")}
    if a.show != "none":
        print(f"\n{a.show}: " + ",".join(COLUMNS))
        for r in results[a.show]:
            print(f"{r[0]:3d}  " + "  ".join(f"{v:22.17g}" for v in r[1:]))
    if not a.check_only:
        print()
        for cell in results:
            numpy_series_from_files(cell)
        print(f"\nwrote {HERE / 'torch_ref'}/{{rnn,gru,lstm}}/ and {{rnn,gru,lstm}}.toml")


if __name__ == "__main__":
    main()
