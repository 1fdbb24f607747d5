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
               [--series out.csv] [--repeat R]

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
    return p.parse_args()


def numpy_bptt(np, w, b, steps, batch, u=None, rng=None):
    """Returns norms[t, b] = ||g_t^(b)||, t = 0..T."""
    n = w.shape[0]
    wt = np.ascontiguousarray(w.T)
    hs = np.empty((steps + 1, n, batch), dtype=w.dtype)  # h_0..h_T
    hs[0] = 0
    if u is not None:  # the whole input sequence in one vectorised draw, as a NumPy user would
        xs = rng.standard_normal((steps, u.shape[1], batch)).astype(w.dtype)
        for t in range(1, steps + 1):
            np.tanh(w @ hs[t - 1] + u @ xs[t - 1] + b, out=hs[t])
    else:
        for t in range(1, steps + 1):
            np.tanh(w @ hs[t - 1] + b, out=hs[t])
    norms = np.empty((steps + 1, batch), dtype=w.dtype)
    g = hs[steps].copy()
    norms[steps] = np.linalg.norm(g, axis=0)
    for t in range(steps, 0, -1):
        h = hs[t]
        g = wt @ ((1 - h * h) * g)
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
        run = lambda: numpy_bptt(np, w, b, args.steps, args.batch, u, rng)
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
