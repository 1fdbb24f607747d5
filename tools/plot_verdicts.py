#!/usr/bin/env python3
"""Draw how often each predictor of the per-step gradient factor gets the regime right.

Reads the "verdicts" object of OUTDIR/run.json, written by `gradflow run` when every cell is done: for each
predictor (rho*E|f'|, rho*sqrt(E f'^2), mean-field sqrt(chi), ||W||_2*sup|f'|, exp(lyapunov_max), and when
the run has a residual, leaky or gated cell the cells' own predictor_cell, predictor_rms_cell and bound_cell)
the fraction of cell runs where the regime its value implies (vanishing / critical / exploding, by the run's
regime_tolerance) equals the measured one. Left: one bar per predictor (agreement in %, agree/compared, and
the commonest mistake). Right (when the run has a sweep axis to break it down by): the agreement per value
of one axis, e.g. network.activation, as grouped bars.

Exit codes: 0 done, 2 bad input (missing directory or file, no verdicts, unknown axis), 1 internal error.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from plot_heatmap import CROSSINGS, InputError, Run, fmt_value, output_paths, run_main, save  # noqa: E402
import numpy as np  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

PROG = "plot_verdicts.py"
COLORS = {c[0]: c[2]["color"] for c in CROSSINGS}
LABELS = {
    "predictor": "ρ·E|f′|\n(textbook)",
    "predictor_cell": "ρ of the cell's\nmean Jacobian",
    "predictor_rms": "ρ·√E[f′²]\n(RMS factor)",
    "predictor_rms_cell": "RMS factor of\nthe cell's Jacobian",
    "mf_growth": "mean-field √χ\n(at gain_rms)",
    "bound": "‖W‖₂·sup|f′|\n(upper bound)",
    "bound_cell": "bound on the\ncell's ‖J‖₂",
    "lyapunov_max": "exp(λ_max)\n(Lyapunov)",
}


def verdicts_of(run):
    v = run.meta.get("verdicts")
    if not isinstance(v, dict) or not v.get("predictors"):
        raise InputError(f"{os.path.join(run.outdir, 'run.json')} has no verdicts: the run is not complete "
                         "(finish it with `gradflow run ... --resume`) or was written by an older gradflow")
    return v


def commonest_mistake(p):
    best, text = 0, ""
    for pred, row in (p.get("confusion") or {}).items():
        for meas, n in row.items():
            if pred != meas and n > best:
                best, text = n, f"says {pred}\nwhere {meas}\n({n}×)"
    return text


def choose_axis(run, v, want):
    """The axis to break the agreement down by: --by, else the first string axis with > 1 value, else the
    first axis with 2..12 values; None for no breakdown."""
    if want and want.lower() == "none":
        return None
    by_axis = v["predictors"][0].get("by_axis") or {}
    if want:
        if want not in by_axis:
            raise InputError(f"--by {want}: not a sweep axis of this run; sweep axes are: "
                             f"{', '.join(by_axis) or '(none)'}")
        return want
    axes = [a for a in run.axes if a.key in by_axis and len(a) > 1]
    for a in axes:
        if not a.numeric:
            return a.key
    for a in axes:
        if len(a) <= 12:
            return a.key
    return None


def plot(args, run, v):
    preds = v["predictors"]
    axis = choose_axis(run, v, args.by)
    ncols = 2 if axis else 1
    # about 1.1 inch per bar on the left (5 predictors: 6.4), so that the tick labels and mistakes stay apart
    # when the cells' own predictors (*_cell) bring it to 7 or 8
    width = ([max(6.4, 1.1 * len(preds) + 0.9)]
             + ([max(6.0, 1.1 * len(preds) * len(preds[0]["by_axis"][axis]) / 2.2 + 2.0)] if axis else []))
    fig, axes = plt.subplots(1, ncols, figsize=(sum(width), 5.2), constrained_layout=True,
                             gridspec_kw={"width_ratios": width}, squeeze=False)
    ax = axes[0][0]
    names = [p["name"] for p in preds]
    values = [100.0 * p["agreement"] if p.get("agreement") is not None else np.nan for p in preds]
    xs = np.arange(len(preds))
    bars = ax.bar(xs, np.nan_to_num(values), color=[COLORS.get(n, "0.5") for n in names], edgecolor="black",
                  linewidth=0.8, zorder=2)
    for b, p, val in zip(bars, preds, values):
        label = f"{val:.0f}%\n{p['agree']}/{p['compared']}" if np.isfinite(val) else "no values"
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 1.5, label, ha="center", va="bottom", fontsize=9)
        mistake = commonest_mistake(p)
        if mistake:
            ax.text(b.get_x() + b.get_width() / 2, 3, mistake, ha="center", va="bottom", fontsize=7.2,
                    color="white" if (np.isfinite(val) and val > 25) else "0.2", zorder=3)
    ax.set_xticks(xs)
    ax.set_xticklabels([LABELS.get(n, n) for n in names], fontsize=8.8)
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("cell runs where the predicted regime = measured (%)")
    ax.set_title(f"agreement with the measured regime ({v.get('rows', '?')} cell runs)", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)

    if axis:
        ax2 = axes[0][1]
        entries = preds[0]["by_axis"][axis]
        groups = [fmt_value(e["value"]) for e in entries]
        n = len(preds)
        w = 0.8 / n
        for k, p in enumerate(preds):
            vals = [100.0 * e["agreement"] if e.get("agreement") is not None else np.nan
                    for e in p["by_axis"][axis]]
            pos = np.arange(len(groups)) - 0.4 + w * (k + 0.5)
            ax2.bar(pos, np.nan_to_num(vals), width=w, color=COLORS.get(p["name"], "0.5"), edgecolor="black",
                    linewidth=0.6, zorder=2)
            for x, val in zip(pos, vals):
                if np.isfinite(val):
                    ax2.text(x, val + 1.0, f"{val:.0f}", ha="center", va="bottom", fontsize=7, rotation=90)
        ax2.set_xticks(np.arange(len(groups)))
        ax2.set_xticklabels(groups)
        ax2.set_xlabel(axis)
        ax2.set_ylim(0, 118)
        ax2.set_yticks(range(0, 101, 20))
        ax2.set_title(f"agreement by {axis}", fontsize=11)
        ax2.grid(True, axis="y", alpha=0.3, zorder=0)
        handles = [Patch(facecolor=COLORS.get(p["name"], "0.5"), edgecolor="black") for p in preds]
        ax2.legend(handles, [LABELS.get(p["name"], p["name"]).replace("\n", " ") for p in preds], fontsize=8,
                   loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(3, len(preds)), frameon=False)

    sub = "regime of each predictor's per-step factor (same tolerance rule as the measured rate)"
    note = run.status_note()
    if note:
        sub += f"\n[{note}]"
    fig.suptitle(f"{run.title}\n{sub}", fontsize=11.5)
    return fig


def make_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Bar chart of how often each predictor's regime agrees with the measured regime, from the "
                    "verdicts in OUTDIR/run.json; writes OUTDIR/verdicts.png unless -o is given.",
        epilog="Exit codes: 0 ok, 2 bad input.")
    p.add_argument("outdir", metavar="OUTDIR", help="directory written by `gradflow run` (complete)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (format from its suffix: .png, .svg, .pdf); default OUTDIR/verdicts.png")
    p.add_argument("--svg", action="store_true", help="also write an .svg next to the .png")
    p.add_argument("--by", metavar="KEY",
                   help="sweep axis to break the agreement down by, or 'none' (default: the first string axis, "
                        "e.g. network.activation)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    run = Run(args.outdir)
    v = verdicts_of(run)
    paths = output_paths(args.outdir, args.output, args.svg, "verdicts.png")
    fig = plot(args, run, v)
    save(fig, paths)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
