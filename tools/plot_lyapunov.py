#!/usr/bin/env python3
"""Plot the Lyapunov spectrum of each cell of a run: lambda_i against i (cells.csv's lyapunov_1..k).

    tools/plot_lyapunov.py OUTDIR [-o FILE] [--cells 0 1 ...]

Reads an OUTDIR written by `gradflow run` with analysis.lyapunov = k >= 1. lambda_i is the i-th exponent of
the Jacobian product prod_t J_t of the cell's state map (per step, natural log): lambda_1 > 0 means chaos,
exponents near 0 are the slow modes gating creates (Can, Krishnamurthy & Schwab 2020), and e^lambda_1 is the
per-step factor that growth_rate measures by BPTT. Writes OUTDIR/lyapunov.png by default.
Exit codes: 0 done, 2 bad input (missing directory or file, no Lyapunov columns), 1 internal error.
"""

import argparse
import csv
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("-o", "--out", help="image file (default OUTDIR/lyapunov.png)")
    ap.add_argument("--cells", type=int, nargs="*", help="cells to draw (default: every cell, first replicate)")
    args = ap.parse_args()
    cells_csv = os.path.join(args.outdir, "cells.csv")
    if not os.path.isfile(cells_csv):
        print(f"plot_lyapunov.py: {cells_csv}: no such file (run gradflow run first)", file=sys.stderr)
        return 2
    with open(cells_csv) as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0].keys() if rows else []) if c.startswith("lyapunov_") and c[9:].isdigit()]
    if not columns:
        print(f"plot_lyapunov.py: {cells_csv}: no lyapunov_1..k columns (set analysis.lyapunov >= 1)",
              file=sys.stderr)
        return 2
    columns.sort(key=lambda c: int(c[9:]))
    title = ""
    try:
        import json

        with open(os.path.join(args.outdir, "run.json")) as f:
            title = json.load(f).get("title", "")
    except (OSError, ValueError):
        pass
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=130)
    drawn = 0
    for r in rows:
        if r["replicate"] != "0" or (args.cells and int(r["cell"]) not in args.cells):
            continue
        values = [(i + 1, float(r[c])) for i, c in enumerate(columns) if r[c] not in ("", "-inf")]
        if not values:
            continue
        label = f"cell {r['cell']}" + (f"  (growth_rate {float(r['growth_rate']):.4f})" if r.get("growth_rate") else "")
        ax.plot([v[0] for v in values], [v[1] for v in values], "o-", ms=3.5, lw=1, label=label)
        drawn += 1
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("index i")
    ax.set_ylabel("Lyapunov exponent λ_i (per step, natural log)")
    ax.set_title(title or "Lyapunov spectrum", fontsize=10)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = args.out or os.path.join(args.outdir, "lyapunov.png")
    fig.savefig(out)
    print(out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001
        print(f"plot_lyapunov.py: internal error: {e}", file=sys.stderr)
        sys.exit(1)
