#!/usr/bin/python3
"""Reference BPTT implementations that gradflow is benchmarked and checked against.

What a user would write instead of gradflow: a vanilla RNN h_t = tanh(W h_{t-1} + b) from h_0 = 0 for
t = 1..T over a batch of B trajectories, the loss L = sum_b ||h_T^(b)||^2 / 2 (so g_T = h_T), and
backpropagation through time g_{t-1} = W^T (f'(a_t) * g_t) with the per-step gradient norms ||g_t^(b)||.

  numpy  BPTT by hand: the forward pass keeps every h_t, the backward pass uses f' = 1 - h_t^2.
  torch  PyTorch autograd: retain_grad() on every hidden state, one loss.backward(), then the norms of
         every h_t.grad.

Usage (the benchmark driver tools/bench/compare runs this; standalone is fine too):

  reference.py --impl numpy --w W.npy --steps T --batch B --bias 0.1 --dtype float64 --threads 1
               [--series out.csv] [--repeat R] [--input-dim D] [--burn-in K] [--activation NAME]

--burn-in and --activation (NumPy only) run a cell of a gradflow sweep as a NumPy user would: K steps forward
from h_0 = 0 that are not kept (analysis.burn_in), then the T kept steps and BPTT over them; f is any of the
default sweep's activations, with gradflow's definitions (leaky_relu slope 0.01, swish x sigmoid(x), GELU
x Phi(x) with scipy.special.ndtr), f' from h_t where it can be (tanh, sigmoid, ReLU, leaky ReLU), else from
the kept pre-activations.

Prints one JSON object: {"impl", "n", "steps", "batch", "dtype", "threads", "seconds": [...],
"blas": ...}. "seconds" holds R timed runs of forward + backward + per-step norms, each after one untimed
warm-up run, timed with time.perf_counter() inside the process (interpreter start-up, imports and
reading W are not timed). With --series, writes t, log10_grad_norm (mean over the batch of log10
||g_t||) for t = 0..T.
"""

import argparse
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=["numpy", "torch"], required=True)
    p.add_argument("--w", required=True, help="W as .npy (N x N)")
    p.add_argument("--steps", type=int, required=True, help="T")
    p.add_argument("--batch", type=int, required=True, help="B")
    p.add_argument("--bias", type=float, default=0.1, help="b_i for every unit")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="timed runs (each process also does one warm-up)")
    p.add_argument("--series", help="write t,log10_grad_norm here")
    p.add_argument("--input-dim", type=int, default=0,
                   help="input drive: h_t = tanh(W h + U x_t + b), x_t ~ N(0, I) of this dimension drawn inside "
                        "the timed run for every step and trajectory, U ~ N(0, 0.25 / dim) (0: no input)")
    p.add_argument("--burn-in", type=int, default=0, help="steps forward from h_0 = 0 before t = 0, not kept")
    p.add_argument("--activation", choices=ACTIVATIONS, default="tanh")
    args = p.parse_args()
    if args.impl == "torch" and (args.burn_in or args.activation != "tanh"):
        p.error("--burn-in and --activation are for --impl numpy")
    return args


ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "swish", "gelu")  # the default sweep's


def activation(np, name):
    """(f, df, keep_a) for NumPy: f(a, out) writes f(a) into out, df(a, h) is f'(a) given h = f(a), and keep_a
    says whether df needs the pre-activation a (else only h is kept, as a NumPy user would for these).
    gradflow's definitions: leaky_relu's slope 0.01, swish x sigmoid(x), GELU x Phi(x)."""
    def sigmoid(a, out=None):
        with np.errstate(over="ignore"):  # exp(-a) = inf for a << 0: 1 / (1 + inf) = 0, as it should be
            out = np.exp(np.negative(a, out=out), out=out)
        out += 1
        return np.reciprocal(out, out=out)

    if name == "tanh":
        return (lambda a, out: np.tanh(a, out=out)), (lambda a, h: 1 - h * h), False
    if name == "sigmoid":
        return sigmoid, (lambda a, h: h * (1 - h)), False
    if name == "relu":
        return (lambda a, out: np.maximum(a, 0, out=out)), (lambda a, h: (h > 0).astype(h.dtype)), False
    if name == "leaky_relu":
        return ((lambda a, out: np.multiply(a, np.where(a > 0, 1.0, 0.01), out=out)),
                (lambda a, h: np.where(h > 0, 1.0, 0.01).astype(h.dtype)), False)
    if name == "swish":
        def d_swish(a, h):
            s = sigmoid(a)
            return s + h * (1 - s)  # s + a s (1 - s), with a s = h
        return (lambda a, out: np.multiply(a, sigmoid(a), out=out)), d_swish, True
    if name == "gelu":
        from scipy.special import ndtr
        return ((lambda a, out: np.multiply(a, ndtr(a), out=out)),
                (lambda a, h: ndtr(a) + a * np.exp(-0.5 * a * a) * 0.3989422804014327), True)
    raise ValueError(name)


def numpy_bptt(np, w, b, steps, batch, u=None, rng=None, name="tanh", burn_in=0):
    """Returns norms[t, b] = ||g_t^(b)||, t = 0..T."""
    f, df, keep_a = activation(np, name)
    n = w.shape[0]
    wt = np.ascontiguousarray(w.T)
    hs = np.empty((steps + 1, n, batch), dtype=w.dtype)  # h_0..h_T
    as_ = np.empty((steps + 1, n, batch), dtype=w.dtype) if keep_a else None  # a_1..a_T where f' needs them
    # the whole input sequence (burn-in included) in one vectorised draw, as a NumPy user would
    xs = rng.standard_normal((burn_in + steps, u.shape[1], batch)).astype(w.dtype) if u is not None else None

    def pre(h, s):  # a = W h + U x_s + b
        return w @ h + u @ xs[s] + b if u is not None else w @ h + b

    hs[0] = 0
    for s in range(burn_in):  # not kept: h_0 of the kept steps is where the burn-in ends
        f(pre(hs[0], s), hs[0])
    for t in range(1, steps + 1):
        a = pre(hs[t - 1], burn_in + t - 1)
        if keep_a:
            as_[t] = a
        f(a, hs[t])
    norms = np.empty((steps + 1, batch), dtype=w.dtype)
    g = hs[steps].copy()
    norms[steps] = np.linalg.norm(g, axis=0)
    for t in range(steps, 0, -1):
        g = wt @ (df(as_[t] if keep_a else None, hs[t]) * g)
        norms[t - 1] = np.linalg.norm(g, axis=0)
    return norms


def torch_bptt(torch, w, b, steps, batch, u=None):
    n = w.shape[0]
    h = torch.zeros((n, batch), dtype=w.dtype, requires_grad=True)
    hs = [h]
    xs = torch.randn((steps, u.shape[1], batch), dtype=w.dtype) if u is not None else None
    for s in range(steps):
        h = torch.tanh(w @ h + (u @ xs[s] if u is not None else 0) + b)
        h.retain_grad()
        hs.append(h)
    loss = 0.5 * (h * h).sum()
    loss.backward()
    return torch.stack([torch.linalg.vector_norm(x.grad, dim=0) for x in hs])


def main():
    args = parse_args()
    # Thread counts must be fixed before NumPy / PyTorch load their BLAS.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    w64 = np.load(args.w)
    if w64.ndim != 2 or w64.shape[0] != w64.shape[1]:
        sys.exit(f"reference.py: {args.w}: W must be square, got shape {w64.shape}")
    n = w64.shape[0]
    dtype = np.float32 if args.dtype == "float32" else np.float64
    w = np.ascontiguousarray(w64.astype(dtype))
    b = np.full((n, 1), args.bias, dtype=dtype)

    rng = np.random.default_rng(1)
    u = (rng.standard_normal((n, args.input_dim)) * (0.5 / np.sqrt(args.input_dim))).astype(dtype) \
        if args.input_dim > 0 else None
    if args.impl == "numpy":
        run = lambda: numpy_bptt(np, w, b, args.steps, args.batch, u, rng, args.activation, args.burn_in)
        to_numpy = lambda x: x
        blas = "numpy " + np.__version__
    else:
        import torch

        torch.set_num_threads(args.threads)
        wt_ = torch.from_numpy(w)
        bt = torch.from_numpy(b)
        ut = torch.from_numpy(u) if u is not None else None
        run = lambda: torch_bptt(torch, wt_, bt, args.steps, args.batch, ut)
        to_numpy = lambda x: x.detach().numpy()
        blas = "torch " + torch.__version__

    norms = run()  # warm-up: first-call dispatch, BLAS thread start-up, page faults
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        norms = run()
        seconds.append(time.perf_counter() - start)

    if args.series:
        norms = to_numpy(norms).astype(np.float64)
        with np.errstate(divide="ignore"):
            log10 = np.log10(norms).mean(axis=1)  # -inf / inf where the plain norm under/overflowed
        with open(args.series, "w") as f:
            f.write("t,log10_grad_norm\n")
            for t, v in enumerate(log10):
                f.write(f"{t},{v:.17g}\n")
    print(json.dumps({"impl": args.impl, "n": n, "steps": args.steps, "batch": args.batch, "dtype": args.dtype,
                      "threads": args.threads, "seconds": seconds, "blas": blas, "blas_core": openblas_core()}))


def openblas_core():
    """The kernel the OpenBLAS loaded into this process runs on (openblas_get_corename), or what is loaded."""
    import ctypes
    try:
        libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()
                       and line.split()[-1].startswith("/")})
    except OSError:
        return "unknown"
    for lib in libs:
        try:
            f = ctypes.CDLL(lib).openblas_get_corename
            f.restype = ctypes.c_char_p
            return f().decode()
        except (OSError, AttributeError):
            continue
    return "no OpenBLAS loaded" if not libs else "unknown"


if __name__ == "__main__":
    main()
