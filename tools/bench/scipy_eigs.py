#!/usr/bin/python3
"""The spectral radius of a sparse W by scipy.sparse.linalg.eigs (ARPACK's implicitly restarted Arnoldi), for
tools/bench/compare.py's sparse section: the same W as gradflow's (spectra_bench --sparse --export DIR wrote
its compressed rows), the same nev, ncv, tolerance and restart budget, which='LM'.

  scipy_eigs.py --dir DIR --n N [--nev 10 --ncv 100 --tol 1e-12 --maxiter 300]

Reads DIR/outer.i32, DIR/inner.i32, DIR/values.f64 (row pointers, column indices, values) and prints one JSON
line: {"seconds": the eigs call alone (wall), "cpu_seconds": its CPU time (every thread), "rho": max |lambda|, "spread": (max - min) / max of the moduli,
"count": eigenvalues returned}.
"""

import argparse
import json
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--nev", type=int, default=10)
    p.add_argument("--ncv", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-12)
    p.add_argument("--maxiter", type=int, default=300, help="ARPACK's restart budget (Arnoldi update iterations)")
    args = p.parse_args()
    outer = np.fromfile(f"{args.dir}/outer.i32", dtype="<i4")
    inner = np.fromfile(f"{args.dir}/inner.i32", dtype="<i4")
    values = np.fromfile(f"{args.dir}/values.f64", dtype="<f8")
    w = scipy.sparse.csr_matrix((values, inner, outer), shape=(args.n, args.n))
    t0, c0 = time.perf_counter(), time.process_time()
    lam = scipy.sparse.linalg.eigs(w, k=args.nev, ncv=args.ncv, which="LM", tol=args.tol, maxiter=args.maxiter,
                                   return_eigenvectors=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    moduli = np.abs(lam)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rho": float(moduli.max()), "count": int(lam.size),
                      "spread": float((moduli.max() - moduli.min()) / moduli.max())}))


if __name__ == "__main__":
    main()
