#!/usr/bin/python3
"""Checks that the benchmark's references compute what gradflow computes: log10 ||g_t|| (mean over the batch)
of gradflow's series.csv against tools/bench/reference.py, |difference| <= tol max(1, |log10 ||g_t|| |) at
every t where the reference's plain norm is finite and nonzero. float64, tanh, rho(W) = 1, b = 0.1.

  check_agreement.py --gradflow build/gradflow --n 40 --steps 300 --batch 3 [--impl numpy torch] [--tol 1e-8]

Exit 0 when every implementation agrees, 1 otherwise (the worst t is printed).
"""
import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (SCENARIO, make_w)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gradflow", required=True)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--impl", nargs="+", default=["numpy"])
    p.add_argument("--tol", type=float, default=1e-8)  # = kReferenceAgreeTol in tests/tolerances.hpp
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    import numpy as np

    d = Path(a.workdir)
    d.mkdir(parents=True, exist_ok=True)
    compare.make_w(np, a.n, d / "W.npy")
    (d / "s.toml").write_text(compare.SCENARIO.format(n=a.n, t=a.steps, b=a.batch, precision="double",
                                                      series="true", input=compare.NO_INPUT))
    subprocess.run([a.gradflow, "run", str(d / "s.toml"), "-o", str(d / "out"), "--force", "--quiet",
                    "--threads", "1"], check=True)
    with open(d / "out" / "series.csv") as f:
        ours = {int(r["t"]): float(r["log10_grad_norm"]) for r in csv.DictReader(f)}
    ok = True
    for impl in a.impl:
        path = d / f"series_{impl}.csv"
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "reference.py"), "--impl", impl,
                        "--w", str(d / "W.npy"), "--steps", str(a.steps), "--batch", str(a.batch),
                        "--series", str(path)], check=True, stdout=subprocess.DEVNULL, env=dict(os.environ))
        worst, at, compared = 0.0, None, 0
        with open(path) as f:
            for r in csv.DictReader(f):
                ref = float(r["log10_grad_norm"])
                if not math.isfinite(ref):
                    continue
                t = int(r["t"])
                err = abs(ours[t] - ref) / max(1.0, abs(ref))
                compared += 1
                if err > worst:
                    worst, at = err, t
        good = compared == a.steps + 1 and worst <= a.tol
        ok &= good
        print(f"{impl}: {compared} of {a.steps + 1} steps compared, worst relative difference {worst:.2e}"
              f" at t = {at} ({'ok' if good else 'FAIL'}, tol {a.tol:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
