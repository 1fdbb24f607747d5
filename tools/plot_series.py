#!/usr/bin/env python3
"""Plot how the BPTT gradient norm ||g_t|| = ||dL/dh_t|| grows or decays with the time lag, per cell.

Reads an OUTDIR written by `gradflow run` (series.csv, cells.csv, run.json). For each chosen cell it
draws log10 ||g_t|| (mean over the batch's trajectories, with the min-max band over trajectories) against
the lag k = T - t, i.e. how many steps the gradient has been propagated back from the loss at t = T.
A straight line of slope log10(c) means a constant factor c per step: c > 1 explodes, c < 1 vanishes.
Dashed lines from the seed point (k = 0) show what the predictors imply: the measured growth_rate fitted by
gradflow as a straight slope, and, step by step along the same trajectory, the cumulative predictions
cum_log10_predictor = sum_{s>t} log10(rho*mean|f'(a_s)|) (textbook predictor) and its RMS counterpart
cum_log10_predictor_rms (series.csv columns; runs written before they existed get straight slopes of
rho*E|f'| and rho*sqrt(E f'^2) instead). These are the textbook formulas for every cell (for a gated cell, of
its candidate block and nonlinearity). When the run has a residual, leaky or gated cell, the cells' own
predictors (cells.csv predictor_cell and predictor_rms_cell, e.g. 1 + rho*E|f'| for the residual cell, the
spectral radius of the mean Jacobian for a gated one) add straight slopes for the non-vanilla cells.

series.csv exists only when the run had analysis.series = true (the default).
Exit codes: 0 done, 2 bad input (missing directory or file, unknown cell or replicate), 1 internal error.
"""

import argparse
import math
import textwrap
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from plot_heatmap import (CELL_COLUMNS, InputError, Run, output_paths, predictor_labels,  # noqa: E402
                          run_main, save, vanilla_cells)
import numpy as np  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

PROG = "plot_series.py"
DEFAULT_CELLS = 6

# (cells.csv column, line style, legend text) of the slopes drawn from the seed point. The *_cell columns
# (the cells' own predictors) exist when the run has a non-vanilla cell; their legend gives each cell's
# formula (predictor_labels).
SLOPES = [
    ("predictor", (0, (5, 3)), "slope of ρ·E|f′|  (textbook predictor)"),
    ("predictor_cell", (0, (10, 2)), "slope of predictor_cell  (the cell's own predictor)"),
    ("predictor_rms", (0, (1.2, 2)), "slope of ρ·√E[f′²]  (mean-field factor)"),
    ("predictor_rms_cell", (0, (3, 1.2, 1, 1.2, 1, 1.2)),
     "slope of predictor_rms_cell  (the cell's own RMS factor)"),
    ("growth_rate", (0, (8, 3, 2, 3)), "slope of the measured growth rate (fit)"),
]


def parse_cells(text):
    try:
        cells = [int(s) for s in text.replace(" ", "").split(",") if s != ""]
    except ValueError as exc:
        raise InputError(f"--cells expects comma-separated cell numbers (e.g. 0,3,5), got '{text}'") from exc
    if not cells:
        raise InputError("--cells is empty")
    return list(dict.fromkeys(cells))


def spread(ids, n):
    """Up to n ids spread evenly over the sorted list (first and last included)."""
    if len(ids) <= n:
        return list(ids)
    picks = np.round(np.linspace(0, len(ids) - 1, n)).astype(int)
    return [ids[i] for i in dict.fromkeys(picks)]


def num(s):
    if s is None or s == "":
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


# (series.csv column, line style, legend text, cells.csv column of the straight slope it replaces). Both are
# the textbook formulas for every cell kind (gated cells: candidate block), never a cell's own predictor.
CUMULATIVE = [
    ("cum_log10_predictor", (0, (5, 3)), "Σ log10 ρ·mean|f′(a_s)|  (textbook predictor, step by step)", "predictor"),
    ("cum_log10_predictor_rms", (0, (1.2, 2)),
     "Σ log10 ρ·√mean f′(a_s)²  (textbook RMS factor, step by step)", "predictor_rms"),
]


def read_series(path, wanted):
    """{(cell, replicate): {column: np.array}} for the wanted cells, plus every (cell, replicate) present."""
    import csv
    cols = ["t", "log10_grad_norm", "log10_grad_norm_min", "log10_grad_norm_max", "zero_trajectories",
            "cum_log10_predictor", "cum_log10_predictor_rms"]
    raw, present = {}, set()
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path} is empty (no header line)")
            missing = [c for c in ["cell", "replicate"] + cols[:2] if c not in header]
            if missing:
                raise InputError(f"{path} has no column {', '.join(repr(c) for c in missing)}")
            pos = {c: header.index(c) for c in ["cell", "replicate"] + cols if c in header}
            for n, rec in enumerate(reader, start=2):
                if len(rec) < len(header):
                    continue  # empty or half-written line
                try:
                    key = (int(rec[pos["cell"]]), int(rec[pos["replicate"]]))
                except ValueError as exc:
                    raise InputError(f"{path} line {n}: bad cell/replicate") from exc
                present.add(key)
                if key[0] in wanted:
                    raw.setdefault(key, []).append([num(rec[pos[c]]) if c in pos else math.nan for c in cols])
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    out = {}
    for key, rows in raw.items():
        a = np.array(rows, dtype=float)
        a = a[np.argsort(a[:, 0], kind="stable")]
        out[key] = {c: a[:, i] for i, c in enumerate(cols)}
    return out, present


def plot(args, run, series, chosen):
    fig, ax = plt.subplots(figsize=(10.5, 6.0), constrained_layout=True)
    colors = plt.get_cmap("tab10" if len(chosen) <= 10 else "tab20").colors
    horizons, data_vals = set(), []
    cell_handles, cell_labels = [], []
    used_slopes = set()
    zero_note = False
    lines = []
    vanilla = vanilla_cells(run)  # their *_cell slopes equal the textbook ones: not drawn twice
    for i, (cell, rep) in enumerate(chosen):
        s = series[(cell, rep)]
        color = colors[i % len(colors)]
        t = s["t"]
        T = float(np.nanmax(t))
        horizons.add(T)
        lag = T - t
        mean, lo, hi = s["log10_grad_norm"], s["log10_grad_norm_min"], s["log10_grad_norm_max"]
        for arr in (mean, lo, hi):
            data_vals.append(arr[np.isfinite(arr)])
        if np.isfinite(lo).any() and np.isfinite(hi).any():
            ax.fill_between(lag, lo, hi, color=color, alpha=0.17, linewidth=0, zorder=1)
        ax.plot(lag, mean, color=color, linewidth=1.9, zorder=3)
        # seed point: g_T at lag 0 (or the first finite value)
        finite = np.nonzero(np.isfinite(mean))[0]
        row = next((r for r in run.cells.get(cell, {}).get("rows", []) if r.get("replicate") == str(rep)), None)
        label = f"cell {cell}: {run.cell_label(cell)}" if cell in run.cells else f"cell {cell}"
        if rep != 0 or args.replicate_given:
            label += f", rep {rep}"
        if finite.size:
            k0 = int(finite[np.argmin(lag[finite])])
            seed_lag, seed = lag[k0], mean[k0]
            ax.plot([seed_lag], [seed], marker="o", color=color, markersize=6, markeredgecolor="black",
                    zorder=5, clip_on=False)
            k_end = float(np.nanmax(lag))
            replaced = set()
            for col, ls, _, slope_col in CUMULATIVE:
                cum = s[col]
                if np.isfinite(cum).any():
                    predicted = seed + cum - cum[k0]  # cum is 0 at the seed
                    lines.append((lag, predicted, color, ls))
                    data_vals.append(predicted[np.isfinite(predicted)])  # keep the prediction in view
                    used_slopes.add(col)
                    replaced.add(slope_col)
            for col, ls, _ in SLOPES:
                if col in replaced or (col in CELL_COLUMNS and cell in vanilla):
                    continue
                v = num(row.get(col)) if row else math.nan
                if not (v > 0 and math.isfinite(v)):
                    continue
                ks = np.array([seed_lag, k_end])
                lines.append((ks, seed + (ks - seed_lag) * math.log10(v), color, ls))
                used_slopes.add(col)
        if row:
            g = num(row.get("growth_rate"))
            regime = row.get("regime", "")
            if g == 0:
                label += "\nmeasured ×0/step: the gradient dies (exactly 0)"
            elif math.isfinite(g):
                label += f"\nmeasured ×{g:.3g}/step" + (f" ({regime})" if regime else "")
            else:
                label += "\nno growth rate fitted"
            if row.get("forward_diverged_at", ""):
                label += f"; forward diverged at step {row['forward_diverged_at']}"
        zt = s["zero_trajectories"]
        if np.any(zt > 0):
            k = float(np.min(lag[zt > 0]))
            n = int(np.max(zt))
            label += f"; ‖g‖ = 0 in {n} trajector{'y' if n == 1 else 'ies'} from lag {k:g}"
            zero_note = True
        cell_handles.append(Line2D([], [], color=color, linewidth=2.2))
        head, _, rest = label.partition("\n")
        cell_labels.append(head + ("\n" + "\n".join(textwrap.wrap(rest, 62, subsequent_indent="  ")) if rest else ""))

    vals = np.concatenate(data_vals) if data_vals else np.array([])
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        ylim = (lo - pad, hi + pad)
    else:
        ylim = None
    for ks, ys, color, ls in lines:
        ax.plot(ks, ys, color=color, linestyle=ls, linewidth=1.4, alpha=0.95, zorder=2)
    if ylim:
        ax.set_ylim(*ylim)
    kmax = max(horizons) if horizons else 1
    ax.set_xlim(0, kmax)
    ax.set_xlabel("lag k = T − t   (steps the gradient has been propagated back from the loss at t = T)")
    ax.set_ylabel("log10 ‖g_t‖ = log10 ‖∂L/∂h_t‖")
    ax.grid(True, alpha=0.3)
    if len(horizons) == 1:
        T = kmax
        top = ax.secondary_xaxis("top", functions=(lambda k: T - k, lambda t: T - t))
        top.set_xlabel("time step t")

    title = run.title if run else ""
    sub = (f"BPTT gradient norm against lag, replicate {args.replicate}" if args.replicate_given
           else "BPTT gradient norm against lag")
    sub += ": line = mean over the batch's trajectories, band = min–max"
    note = run.status_note()
    if note:
        sub += f"\n[{note}]"
    fig.suptitle(f"{title}\n{sub}", fontsize=11.5)

    # legends outside the data, right of the axes (figure legends, so that the saved bbox includes them)
    fig.legend(cell_handles, cell_labels, title="cells (sweep values)", loc="upper left",
               bbox_to_anchor=(1.01, 1.0), bbox_transform=ax.transAxes, fontsize=8.8, title_fontsize=9.5,
               frameon=False, alignment="left")
    style_handles = [Line2D([], [], color="black", linewidth=1.9), Patch(color="black", alpha=0.17),
                     Line2D([], [], color="black", linestyle="none", marker="o", markeredgecolor="black",
                            markersize=6)]
    style_labels = ["log10 ‖g_t‖, mean over trajectories", "min–max over trajectories",
                    "seed g_T = ∂L/∂h_T  (k = 0)"]
    for col, ls, text, _ in CUMULATIVE:
        if col in used_slopes:
            style_handles.append(Line2D([], [], color="black", linestyle=ls, linewidth=1.4))
            style_labels.append(text)
    own = predictor_labels(run.meta, run.columns)  # the cells' own predictors: each cell's formula
    for col, ls, text in SLOPES:
        if col in used_slopes:
            style_handles.append(Line2D([], [], color="black", linestyle=ls, linewidth=1.4))
            style_labels.append("slope of " + own[col].replace(" = 1  (", "  (", 1) if col in own else text)
    # long handles: up to five dash patterns must stay apart
    fig.legend(style_handles, style_labels, title="line styles", loc="lower left", bbox_to_anchor=(1.01, 0.0),
               bbox_transform=ax.transAxes, fontsize=8.8, title_fontsize=9.5, frameon=False, alignment="left",
               handlelength=3.6)
    ax.text(0.01, 0.01, "slope log10(c) per step: c > 1 exploding, c < 1 vanishing"
            + ("; gaps: ‖g‖ = 0 exactly" if zero_note else ""),
            transform=ax.transAxes, fontsize=8.5, color="0.3", va="bottom")
    return fig


def make_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Plot log10 ||g_t|| against the lag k = T - t for a few cells of a gradflow run, with "
                    "the slopes predicted by rho*E|f'|, rho*sqrt(E f'^2) (textbook, for every cell), the "
                    "cells' own predictors (predictor_cell, predictor_rms_cell; residual, leaky and gated "
                    "cells) and the measured growth rate. "
                    "Reads OUTDIR/series.csv (written when analysis.series = true), cells.csv and run.json; "
                    "writes OUTDIR/series.png unless -o is given.",
        epilog="Exit codes: 0 ok, 2 bad input.")
    p.add_argument("outdir", metavar="OUTDIR", help="directory written by `gradflow run`")
    p.add_argument("--cells", metavar="LIST",
                   help=f"comma-separated cell numbers, e.g. 0,3,5 (default: up to {DEFAULT_CELLS} cells "
                        "spread over the sweep)")
    p.add_argument("--replicate", type=int, metavar="R", help="replicate to draw (default 0)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (format from its suffix: .png, .svg, .pdf); default OUTDIR/series.png")
    p.add_argument("--svg", action="store_true", help="also write an .svg next to the .png")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    args.replicate_given = args.replicate is not None
    if args.replicate is None:
        args.replicate = 0
    run = Run(args.outdir)
    series_path = os.path.join(args.outdir, "series.csv")
    if not os.path.isfile(series_path):
        raise InputError(f"'{args.outdir}' has no series.csv: the run was made with analysis.series = false "
                         "(rerun it with --set analysis.series=true to record the gradient series)")
    known = sorted(run.cells)
    if args.cells:
        wanted = parse_cells(args.cells)
        for c in wanted:
            if c not in run.cells:
                span = f"{known[0]}..{known[-1]}" if known else "none finished"
                raise InputError(f"cell {c} is not in {run.cells_path} (cells: {span})")
    else:
        wanted = known
    paths = output_paths(args.outdir, args.output, args.svg, "series.png")
    series, present = read_series(series_path, set(wanted))
    if args.cells:
        for c in wanted:
            if (c, args.replicate) not in present:
                reps = sorted(r for (cc, r) in present if cc == c)
                have = f"replicates {', '.join(map(str, reps))}" if reps else "no series rows"
                raise InputError(f"series.csv has no replicate {args.replicate} of cell {c} ({have})")
        chosen = [(c, args.replicate) for c in wanted]
    else:
        avail = [c for c in known if (c, args.replicate) in present]
        if not avail:
            raise InputError(f"series.csv has no rows for replicate {args.replicate}")
        chosen = [(c, args.replicate) for c in spread(avail, DEFAULT_CELLS)]
    fig = plot(args, run, series, chosen)
    save(fig, paths)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
