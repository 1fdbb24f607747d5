#!/usr/bin/env python3
"""Map the vanishing / critical / exploding regimes of a gradflow sweep as a heatmap.

Reads an OUTDIR written by `gradflow run` (run.json + cells.csv) and draws, over the sweep axes, the
measured per-step growth factor of the BPTT gradient norm ||g_t|| (colour: natural log, so 0 = factor 1 =
critical, red = exploding, blue = vanishing), with the lines where each predictor of that factor crosses 1:
the measured rate, the textbook predictor rho*E|f'|, the mean-field factor rho*sqrt(E f'^2) and, when the run
has them, mf_growth (mean-field theory), the bound ||W||_2*sup|f'| and exp(lyapunov_max) (the top Lyapunov
exponent, when analysis.lyapunov > 0). Where the measured line and a predictor's line part,
that predictor misclassifies the regime.

predictor, predictor_rms and bound are those textbook formulas for every cell (for a gated cell, of its
candidate block and nonlinearity). When the scenario has a residual, leaky or gated cell, cells.csv also has
each cell's own predictors, predictor_cell, predictor_rms_cell and bound_cell (e.g. 1 + rho*E|f'| for the
residual cell, the spectral radius of the mean Jacobian for a gated one): they get lines of their own, with
each cell's formula in the legend, drawn for the non-vanilla cells only (for vanilla cells they equal the
textbook columns). Runs written before those columns existed (0.4.0) had the cells' own predictors in
predictor, predictor_rms and bound: their lines then carry the cells' formulas.

Axes are chosen from the sweep: the first numeric axis is x, the second numeric axis is y, and any other
axis (e.g. network.activation) gives one panel per value. With one numeric and one string axis the string
axis gives the rows. With a single axis the figure is a line plot over a one-row heatmap.

Columns are selected by name (cells.csv grows new columns over time); empty fields mean "not available"
and are drawn grey and hatched. Replicates of a cell are averaged (for rates: the mean of their logs).

Exit codes: 0 done, 2 bad input (missing directory or file, unknown column or axis), 1 internal error.
This file is also imported by plot_series.py for the shared OUTDIR reading code.
"""

import argparse
import csv
import itertools
import json
import math
import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def _ensure_plotting_modules():
    """numpy and matplotlib come from Debian (python3-numpy, python3-matplotlib). A python3 found first on
    PATH (pyenv, a venv) may not see them: re-run the script once with the system interpreter."""
    try:
        import numpy  # noqa: F401
        import matplotlib  # noqa: F401
        return
    except ImportError as exc:
        missing = exc.name or "numpy/matplotlib"
    script = sys.argv[0] if sys.argv else ""
    if (script.endswith(".py") and os.path.isfile(script) and os.path.exists(SYSTEM_PYTHON)
            and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)
            and not os.environ.get("GRADFLOW_PLOT_NO_REEXEC")):
        os.environ["GRADFLOW_PLOT_NO_REEXEC"] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
    sys.stderr.write(f"{os.path.basename(script) or 'plot'}: error: Python module '{missing}' is missing for "
                     f"{sys.executable}; install Debian's python3-matplotlib and python3-numpy "
                     "(apt-get install python3-matplotlib python3-numpy)\n")
    sys.exit(1)


_ensure_plotting_modules()

import numpy as np  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

DPI = 130


# ---------------------------------------------------------------------------------------------------------
# Reading an OUTDIR (shared with plot_series.py)

class InputError(Exception):
    """Bad input: reported as 'PROG: error: message' with exit code 2."""


def run_main(prog, main, argv=None):
    """Runs main(argv) and maps InputError to exit code 2 with a one-line message."""
    try:
        return main(argv)
    except InputError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


def read_csv(path):
    """(header, rows as dicts of strings). Short rows (a line being appended) are padded with ''."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path} is empty (no header line)")
            rows = []
            for rec in reader:
                if not rec:
                    continue
                if len(rec) < len(header):
                    rec = rec + [""] * (len(header) - len(rec))
                rows.append(dict(zip(header, rec)))
            return header, rows
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from exc


def fmt_value(v):
    """Axis value as short text: 0.5, 32, 1e-05, tanh."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def is_geometric(values):
    """True for >= 3 positive values with a constant ratio != 1 (e.g. 16, 32, 64): a log axis fits."""
    if len(values) < 3 or any(v <= 0 for v in values):
        return False
    ratios = [b / a for a, b in zip(values, values[1:])]
    return abs(ratios[0] - 1) > 1e-9 and all(abs(r / ratios[0] - 1) < 1e-6 for r in ratios)


GENERIC_NAMES = {"mean", "std", "kind", "file", "state", "dim", "weights", "alpha", "beta", "seed", "scale"}
BARE_VALUE_AXES = {"network.activation", "spectrum.kind"}  # values that explain themselves: "tanh"


class Axis:
    """One sweep axis: key (e.g. "spectrum.radius"), values (sorted floats, or strings in file order)."""

    def __init__(self, key, values):
        self.key = key
        self.numeric = bool(values) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if self.numeric:
            self.values = sorted(set(float(v) for v in values))
        else:
            seen = []
            for v in values:
                s = ("true" if v else "false") if isinstance(v, bool) else str(v)
                if s not in seen:
                    seen.append(s)
            self.values = seen
        # legend names: "radius=1.5", "units=64", "tanh"; generic names keep their section ("bias.mean")
        last = key.rsplit(".", 1)[-1]
        self.short = key if last in GENERIC_NAMES else last
        self.bare = key in BARE_VALUE_AXES
        self.log = self.numeric and is_geometric(self.values)

    def __len__(self):
        return len(self.values)

    def index_of(self, text):
        """Index of a cells.csv field among the axis values, or None."""
        if self.numeric:
            try:
                x = float(text)
            except ValueError:
                return None
            for i, v in enumerate(self.values):
                if x == v or abs(x - v) <= 1e-9 * max(abs(x), abs(v)):
                    return i
            return None
        return self.values.index(text) if text in self.values else None

    def text(self, i):
        return fmt_value(self.values[i])

    def describe(self, i, short=False):
        """'radius=1.5' for numeric axes, the value alone for string axes (short), else 'key = value'."""
        if short:
            return self.text(i) if self.bare else f"{self.short}={self.text(i)}"
        return f"{self.key} = {self.text(i)}"


class Run:
    """An OUTDIR: run.json (meta), sweep axes, cells.csv columns and rows grouped by cell."""

    def __init__(self, outdir):
        self.outdir = outdir
        if not os.path.exists(outdir):
            raise InputError(f"OUTDIR '{outdir}' does not exist")
        if not os.path.isdir(outdir):
            raise InputError(f"'{outdir}' is not a directory (expected an OUTDIR written by `gradflow run`)")
        run_path = os.path.join(outdir, "run.json")
        cells_path = os.path.join(outdir, "cells.csv")
        missing = [os.path.basename(p) for p in (run_path, cells_path) if not os.path.isfile(p)]
        if missing:
            raise InputError(f"'{outdir}' has no {' and no '.join(missing)}: "
                             "not an OUTDIR written by `gradflow run`")
        try:
            with open(run_path) as f:
                self.meta = json.load(f)
        except OSError as exc:
            raise InputError(f"cannot read {run_path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InputError(f"{run_path}: not valid JSON: {exc}") from exc
        if not isinstance(self.meta, dict):
            raise InputError(f"{run_path}: expected a JSON object")
        sweep = (self.meta.get("scenario") or {}).get("sweep") or {}
        try:
            self.axes = [Axis(str(a["key"]), list(a["values"])) for a in sweep.get("axes") or []]
        except (KeyError, TypeError) as exc:
            raise InputError(f"{run_path}: malformed scenario.sweep.axes ({exc})") from exc
        self.axes = [a for a in self.axes if len(a) > 0]
        shorts = [a.short for a in self.axes]
        for a in self.axes:  # input.std and bias.std: keep the full keys apart
            if shorts.count(a.short) > 1:
                a.short = a.key
        self.replicates = sweep.get("replicates", 1)
        self.columns, self.rows = read_csv(cells_path)
        self.cells_path = cells_path
        for col in ["cell"] + [a.key for a in self.axes]:
            if col not in self.columns:
                raise InputError(f"{cells_path} has no column '{col}' (run.json names it as a sweep axis)")
        # cell id -> {"coords": axis value indices, "rows": replicate rows}
        self.cells = {}
        for n, row in enumerate(self.rows, start=2):
            try:
                cell = int(row["cell"])
            except ValueError as exc:
                raise InputError(f"{cells_path} line {n}: cell '{row['cell']}' is not an integer") from exc
            coords = []
            for a in self.axes:
                i = a.index_of(row[a.key])
                if i is None:
                    raise InputError(f"{cells_path} line {n}: {a.key} = '{row[a.key]}' is not one of the "
                                     f"sweep values in run.json ({', '.join(a.text(j) for j in range(len(a)))})")
                coords.append(i)
            entry = self.cells.setdefault(cell, {"coords": tuple(coords), "rows": []})
            entry["rows"].append(row)

    @property
    def title(self):
        return str(self.meta.get("title") or self.meta.get("scenario_name")
                   or os.path.basename(os.path.normpath(self.outdir)))

    def status_note(self):
        """'' for a complete run, else e.g. 'run interrupted: 10 of 18 cells done'."""
        status = self.meta.get("status")
        if status in (None, "complete"):
            return ""
        total, done = self.meta.get("cells_total"), self.meta.get("cells_done")
        if total is not None and done is not None:
            return f"run {status}: {done} of {total} cell runs done"
        return f"run {status}"

    def axis(self, key):
        for a in self.axes:
            if a.key == key:
                return a
        raise InputError(f"'{key}' is not a sweep axis of this run; sweep axes are: "
                         f"{', '.join(a.key for a in self.axes) or '(none)'}")

    def has_values(self, col):
        return col in self.columns and any(r.get(col, "") != "" for r in self.rows)

    def numeric_columns(self):
        out = []
        for c in self.columns:
            if c in ("cell", "replicate") or any(a.key == c for a in self.axes):
                continue
            try:
                [float(r[c]) for r in self.rows if r.get(c, "") != ""]
            except ValueError:
                continue
            out.append(c)
        return out

    def cell_label(self, cell):
        """'radius=1.5, tanh' from the cell's sweep values."""
        coords = self.cells[cell]["coords"]
        return ", ".join(a.describe(i, short=True) for a, i in zip(self.axes, coords)) or f"cell {cell}"


def floats(rows, col):
    """The column's values over rows as floats, skipping empty fields and NaN."""
    out = []
    for r in rows:
        s = r.get(col, "")
        if s == "":
            continue
        try:
            v = float(s)
        except ValueError as exc:
            raise InputError(f"column '{col}' is not numeric (value '{s}')") from exc
        if not math.isnan(v):
            out.append(v)
    return out


def cell_mean(rows, col, log):
    """Mean over replicates with a value; for log, the mean of ln (a value <= 0 counts as -inf)."""
    vals = floats(rows, col)
    if not vals:
        return math.nan
    if log:
        vals = [math.log(v) if v > 0 else -math.inf for v in vals]
    with np.errstate(invalid="ignore"):
        return float(np.mean(vals))


# ---------------------------------------------------------------------------------------------------------
# What to draw

# (column, legend label, line style, marker): where each factor crosses 1. Optional columns are skipped
# when the run has no values for them. predictor, predictor_rms and bound are the textbook formulas for every
# cell (for a gated cell W and f are its candidate block and nonlinearity); the *_cell columns, written when
# the scenario has a non-vanilla cell, are each cell's own predictors (labelled by predictor_labels).
CROSSINGS = [
    ("growth_rate", "measured rate = 1", dict(color="black", linestyle="-", linewidth=2.4), "o"),
    ("predictor", "ρ·E|f′| = 1  (textbook predictor)",
     dict(color="#e69f00", linestyle="--", linewidth=2.2), "v"),
    ("predictor_cell", "predictor_cell = 1  (the cell's own predictor)",
     dict(color="#d55e00", linestyle="-", linewidth=2.0), "<"),
    ("predictor_rms", "ρ·√E[f′²] = 1  (mean-field factor)",
     dict(color="#00a572", linestyle="-.", linewidth=2.2), "^"),
    ("predictor_rms_cell", "predictor_rms_cell = 1  (the cell's own RMS factor)",
     dict(color="#0072b2", linestyle=(0, (6, 1.5, 1, 1.5, 1, 1.5)), linewidth=2.2), ">"),
    ("mf_growth", "mf_growth = 1  (mean-field theory)",
     dict(color="#d55ec8", linestyle=":", linewidth=2.6), "s"),
    ("bound", "‖W‖₂·sup|f′| = 1  (upper bound)",
     dict(color="#555555", linestyle=(0, (6, 2, 1, 2, 1, 2)), linewidth=1.8), "D"),
    ("bound_cell", "bound_cell = 1  (the cell's own upper bound)",
     dict(color="#8c564b", linestyle=(0, (1, 1)), linewidth=2.0), "X"),
    ("lyapunov_max", "exp(λ_max) = 1  (top Lyapunov exponent)",
     dict(color="#56b4e9", linestyle=(0, (2, 1)), linewidth=2.4), "P"),
]

# The cells' own predictors and the textbook columns they stand next to.
CELL_COLUMNS = {"predictor_cell": "predictor", "predictor_rms_cell": "predictor_rms", "bound_cell": "bound"}
GATED_KINDS = ("gru", "lstm", "minimalrnn")


def cell_kinds(meta):
    """The cell kinds of a run (network.cell of the resolved scenario, or its sweep axis) with their leaks."""
    sc = meta.get("scenario", {}) if isinstance(meta, dict) else {}
    resolved = sc.get("resolved", {})
    kinds = {resolved.get("network.cell", "vanilla") or "vanilla"}
    leaks = {resolved.get("network.leak", 1.0)}
    for axis in sc.get("sweep", {}).get("axes", []):
        if axis.get("key") == "network.cell":
            kinds = set(axis.get("values", [])) or kinds
        if axis.get("key") == "network.leak":
            leaks = set(axis.get("values", [])) or leaks
    return kinds, leaks


def predictor_labels(meta, columns):
    """Legend text of the cells' own predictors, with each cell's formula (J = c I + s D W; for gated cells
    the predictors of their own Jacobian, README "Predictors"): {column: label}, empty for a vanilla run.
    They are the predictor_cell, predictor_rms_cell and bound_cell columns. Runs written before those columns
    existed (0.4.0) kept the cells' own predictors in predictor, predictor_rms and bound themselves: then
    those get the labels, as they did then."""
    kinds, leaks = cell_kinds(meta)
    if kinds <= {"vanilla"}:
        return {}
    legacy = not any(c in columns for c in CELL_COLUMNS)
    leak = next(iter(leaks)) if len(leaks) == 1 else "a"
    forms = {"vanilla": ("ρ·E|f′|", "ρ·√E[f′²]", "‖W‖₂·sup|f′|"),
             "residual": ("1 + ρ·E|f′|", "√(1 + ρ²E[f′²])", "1 + ‖W‖₂·sup|f′|"),
             "leaky": (f"(1−{leak}) + {leak}·ρ·E|f′|", f"√((1−{leak})² + {leak}²ρ²E[f′²])",
                       f"(1−{leak}) + {leak}·‖W‖₂·sup|f′|")}
    gated_forms = ("ρ of the mean Jacobian", "RMS factor of the Jacobian", "bound on ‖J‖₂")
    # The *_cell lines skip vanilla cells (there they equal the textbook lines): no vanilla formula for them.
    order = [k for k in ("vanilla", "residual", "leaky") if k in kinds and (legacy or k != "vanilla")]
    gated = [k for k in GATED_KINDS if k in kinds]
    names = ("the cell's own predictor", "its RMS factor", "its upper bound")
    targets = ("predictor", "predictor_rms", "bound") if legacy else tuple(CELL_COLUMNS)
    out = {}
    for i, col in enumerate(targets):
        parts = [f"{k}: {forms[k][i]}" for k in order]
        if gated:
            parts.append(f"{', '.join(gated)}: {gated_forms[i]}")
        out[col] = f"{col} = 1  ({names[i]}; " + ", ".join(parts) + ")"
    return out


def vanilla_cells(run):
    """Cell ids whose network.cell is vanilla (the row's sweep value, else the scenario's resolved cell)."""
    resolved = ((run.meta.get("scenario") or {}).get("resolved") or {}).get("network.cell") or "vanilla"
    out = set()
    for cell, entry in run.cells.items():
        kind = entry["rows"][0].get("network.cell", "") or resolved
        if kind == "vanilla":
            out.add(cell)
    return out


# Crossing columns that are already a natural log per step (their factor is exp(value)): averaged as is.
LOG_PER_STEP = {"lyapunov_max"}

METRIC_LABELS = {
    "growth_rate": "ln growth rate per step",
    "predictor": "ln ρ·E|f′| per step",
    "predictor_rms": "ln ρ·√E[f′²] per step",
    "bound": "ln ‖W‖₂·sup|f′| per step",
    "predictor_cell": "ln ρ of the cell's mean Jacobian per step",
    "predictor_rms_cell": "ln RMS factor of the cell's Jacobian per step",
    "bound_cell": "ln bound on the cell's ‖J‖₂ per step",
    "mf_growth": "ln mean-field growth per step",
    "log10_grad_ratio": "log10 ‖g₀‖ / ‖g_T‖",
    "lyapunov_max": "top Lyapunov exponent (per step)",
    "mf_lyapunov": "mean-field Lyapunov exponent (per step)",
    "rho": "spectral radius ρ(W)",
    "spectral_norm": "spectral norm ‖W‖₂",
    "mean_abs_dact": "E|f′(a)|",
    "mean_sq_dact": "E[f′(a)²]",
    "dead_fraction": "fraction of f′ = 0",
    "saturated_fraction": "fraction of saturated units",
    "seconds": "seconds per cell",
}


def metric_kind(col, scale):
    """'log' (a per-step factor: ln, diverging, centred at 0), 'signed' (already a log quantity: diverging,
    centred at 0) or 'linear' (sequential colours)."""
    if scale == "log":
        return "log"
    if col in ("growth_rate", "predictor", "predictor_rms", "bound", *CELL_COLUMNS) or col.endswith("growth"):
        kind = "log"
    elif col in ("log10_grad_ratio",) or "lyapunov" in col:
        kind = "signed"
    else:
        kind = "linear"
    if scale == "linear" and kind == "log":
        kind = "linear"
    return kind


def metric_label(col, kind):
    if col in METRIC_LABELS and (kind == "log") == METRIC_LABELS[col].startswith("ln "):
        return METRIC_LABELS[col]
    return f"ln {col}" if kind == "log" else col


def choose_axes(run, want_x, want_y, want_facet, selected):
    """(x, y or None, facet axes): see the module docstring for the defaults."""
    for key in (want_x, want_y, want_facet):
        if key and key.lower() != "none":
            run.axis(key)
    wanted = [k for k in (want_x, want_y, want_facet) if k and k.lower() != "none"]
    if len(set(wanted)) != len(wanted):
        raise InputError("--x, --y and --facet must name different sweep axes")
    for key in wanted:
        if key in selected:
            raise InputError(f"'{key}' is fixed by --select and cannot also be drawn as an axis")
    free = [a for a in run.axes if a.key not in selected]
    taken = set(wanted)
    remaining = [a for a in free if a.key not in taken]

    def take(pred):
        for a in remaining:
            if pred(a):
                remaining.remove(a)
                return a
        return None

    x = run.axis(want_x) if want_x else take(lambda a: a.numeric) or take(lambda a: True)
    if x is None:
        raise InputError("no sweep axis left for x (all are fixed by --select or used as --y/--facet)")
    if want_y and want_y.lower() == "none":
        y = None
    elif want_y:
        y = run.axis(want_y)
    elif x.numeric:
        y = take(lambda a: a.numeric)
        if y is None:
            y = take(lambda a: not a.numeric) if not want_facet else take(lambda a: True)
    else:
        y = take(lambda a: True)
    facets = ([run.axis(want_facet)] if want_facet and want_facet.lower() != "none" else []) + remaining
    return x, y, facets


def parse_selects(run, items):
    """--select KEY=VALUE (repeatable) -> {key: value index}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--select expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        a = run.axis(key.strip())
        i = a.index_of(value.strip())
        if i is None:
            raise InputError(f"--select {item}: {a.key} has no value '{value.strip()}'; its values are: "
                             f"{', '.join(a.text(j) for j in range(len(a)))}")
        out[a.key] = i
    return out


def edges(axis):
    """Cell edges (len n+1) for pcolormesh: midpoints (geometric on log axes); integer slots if string."""
    if axis is None:
        return np.array([-0.5, 0.5])
    if not axis.numeric:
        return np.arange(len(axis) + 1) - 0.5
    v = np.asarray(axis.values, dtype=float)
    if axis.log:
        v = np.log(v)
    if len(v) == 1:
        half = 0.5 if not axis.log else math.log(1.5)
        e = np.array([v[0] - half, v[0] + half]) if v[0] != 0 or axis.log else np.array([-0.5, 0.5])
        if not axis.log and v[0] != 0:
            e = np.array([v[0] - 0.1 * abs(v[0]), v[0] + 0.1 * abs(v[0])])
    else:
        mid = (v[1:] + v[:-1]) / 2
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(e) if axis.log else e


def positions(axis):
    if axis is None:
        return np.array([0.0])
    return np.asarray(axis.values, dtype=float) if axis.numeric else np.arange(len(axis), dtype=float)


def tame(z):
    """ln values with -inf (a factor of exactly 0) and +inf replaced by -/+ the largest finite |value|, so
    that contours and crossings see them as clearly below / above 1."""
    z = np.asarray(z, dtype=float)
    finite = z[np.isfinite(z)]
    bound = max(float(np.max(np.abs(finite))), 1e-3) if finite.size else 1.0
    return np.where(np.isneginf(z), -bound, np.where(np.isposinf(z), bound, z))


def crossings_1d(xs, zs, log_x):
    """x where the piecewise-linear z(x) crosses 0 (interpolated; in log x on a log axis)."""
    zs = tame(zs)
    out = []
    for i in range(len(xs)):
        if zs[i] == 0 and (i == 0 or zs[i - 1] != 0):
            out.append(float(xs[i]))
        if i + 1 == len(xs):
            break
        z0, z1 = zs[i], zs[i + 1]
        if np.isnan(z0) or np.isnan(z1):
            continue
        if (z0 < 0 < z1) or (z0 > 0 > z1):
            a, b = (math.log(xs[i]), math.log(xs[i + 1])) if log_x else (xs[i], xs[i + 1])
            c = a + z0 / (z0 - z1) * (b - a)
            out.append(math.exp(c) if log_x else c)
    return out


def style_axis(ax, axis, which):
    """Label, log scale and ticks for one panel axis (which = 'x' or 'y')."""
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    set_ticks = ax.set_xticks if which == "x" else ax.set_yticks
    set_ticklabels = ax.set_xticklabels if which == "x" else ax.set_yticklabels
    if axis is None:
        set_ticks([])
        return
    set_label(axis.key)
    if not axis.numeric:
        set_ticks(range(len(axis)))
        set_ticklabels([axis.text(i) for i in range(len(axis))])
        return
    if axis.log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if axis.log or len(axis) <= 10:
        vals = axis.values
        if len(vals) > 10:
            vals = vals[::int(math.ceil(len(vals) / 8))]
        set_ticks(vals)
        set_ticklabels([f"{v:.3g}" if axis.log else fmt_value(v) for v in vals])
        (ax.xaxis if which == "x" else ax.yaxis).set_minor_locator(matplotlib.ticker.NullLocator())
    if which == "x" and len(axis) > 6 and max(len(fmt_value(v)) for v in axis.values) > 3:
        for lab in ax.get_xticklabels():
            lab.set_rotation(0)


# ---------------------------------------------------------------------------------------------------------
# The figure

class Panel:
    """One panel: the fixed values of the facet axes, and per (y, x) the per-cell means."""

    def __init__(self, fixed):
        self.fixed = fixed  # {axis key: value index}
        self.title = ""


def build_panels(run, x, y, facets, selected, limit):
    combos = list(itertools.product(*[range(len(a)) for a in facets])) if facets else [()]
    if len(combos) > limit:
        raise InputError(f"{len(combos)} panels (one per value of {', '.join(a.key for a in facets)}): too many; "
                         "fix some axes with --select KEY=VALUE or pick axes with --x/--y/--facet")
    panels = []
    for combo in combos:
        fixed = dict(selected)
        fixed.update({a.key: i for a, i in zip(facets, combo)})
        p = Panel(fixed)
        p.title = ", ".join(a.describe(i) for a, i in zip(facets, combo))
        panels.append(p)
    return panels


def panel_cells(run, panel, x, y):
    """{(yi, xi): cell id} for the cells of this panel."""
    index = {a.key: k for k, a in enumerate(run.axes)}
    out = {}
    for cell, entry in run.cells.items():
        coords = entry["coords"]
        if any(coords[index[k]] != i for k, i in panel.fixed.items()):
            continue
        xi = coords[index[x.key]]
        yi = coords[index[y.key]] if y is not None else 0
        out[(yi, xi)] = cell
    return out


def grid(run, cells, x, y, col, log):
    ny = len(y) if y is not None else 1
    z = np.full((ny, len(x)), np.nan)
    for (yi, xi), cell in cells.items():
        z[yi, xi] = cell_mean(run.cells[cell]["rows"], col, log)
    return z


def diverged_grid(run, cells, x, y):
    ny = len(y) if y is not None else 1
    d = np.zeros((ny, len(x)), dtype=bool)
    if "forward_diverged_at" not in run.columns:
        return d
    for (yi, xi), cell in cells.items():
        d[yi, xi] = any(r.get("forward_diverged_at", "") != "" for r in run.cells[cell]["rows"])
    return d


def draw_mesh(ax, x, y, z, cmap, norm):
    xe, ye = edges(x), edges(y)
    ax.add_patch(Rectangle((xe[0], ye[0]), xe[-1] - xe[0], ye[-1] - ye[0], facecolor="0.86",
                           edgecolor="0.6", hatch="///", linewidth=0, zorder=0))
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(z), cmap=cmap, norm=norm, shading="flat", zorder=1)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    return mesh


def annotate(ax, x, y, z, norm, kind):
    px, py = positions(x), positions(y)
    for yi in range(z.shape[0]):
        for xi in range(z.shape[1]):
            v = z[yi, xi]
            if np.isnan(v):
                continue
            shown = math.exp(v) if kind == "log" else v
            text = f"{shown:.3g}" if kind != "log" else (f"{shown:.2f}" if 0.01 <= shown < 100 else f"{shown:.1e}")
            level = norm(np.clip(v, norm.vmin, norm.vmax))
            dark = abs(level - 0.5) > 0.3 if kind != "linear" else level < 0.45
            ax.text(px[xi], py[yi], text, ha="center", va="center", fontsize=8.5, zorder=4,
                    color="white" if dark else "black")


def plot(args, run):
    selected = parse_selects(run, args.select)
    metric = args.metric
    if metric not in run.columns:
        raise InputError(f"cells.csv has no column '{metric}'; numeric columns are: "
                         f"{', '.join(run.numeric_columns())}")
    floats(run.rows, metric)  # raises if not numeric
    kind = metric_kind(metric, args.scale)
    log = kind == "log"
    x, y, facets = choose_axes(run, args.x, args.y, args.facet, selected)
    one_d = y is None
    panels = build_panels(run, x, y, facets, selected, args.max_panels)
    own = predictor_labels(run.meta, run.columns)  # the cells' own predictors: each cell's formula
    crossing_cols = [(c[0], own.get(c[0], c[1]), c[2], c[3]) for c in CROSSINGS if run.has_values(c[0])]

    # The *_cell lines leave out vanilla cells: there they equal the textbook lines bit for bit and would
    # hide them.
    vanilla = vanilla_cells(run)
    data = []
    for p in panels:
        cells = panel_cells(run, p, x, y)
        own_cells = {k: c for k, c in cells.items() if c not in vanilla}
        cross = {c[0]: grid(run, own_cells if c[0] in CELL_COLUMNS else cells, x, y, c[0],
                            c[0] not in LOG_PER_STEP) for c in crossing_cols}
        z = grid(run, cells, x, y, metric, log)
        data.append((p, cells, z, cross, diverged_grid(run, cells, x, y)))
    # no legend entry for a *_cell line with no cell left (e.g. --select network.cell=vanilla)
    crossing_cols = [c for c in crossing_cols
                     if c[0] not in CELL_COLUMNS or any(np.isfinite(d[3][c[0]]).any() for d in data)]

    allz = np.concatenate([d[2].ravel() for d in data])
    finite = allz[np.isfinite(allz)]
    if finite.size == 0:
        sys.stderr.write(f"{args.prog}: warning: no cell has a value for '{metric}'\n")
    if kind in ("log", "signed"):
        lim = float(np.max(np.abs(finite))) if finite.size else 1.0
        lim = lim if lim > 0 else 1.0
        norm, cmap = Normalize(-lim, lim), plt.get_cmap("RdBu_r").copy()
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        norm, cmap = Normalize(lo, hi), plt.get_cmap("viridis").copy()
    zero = [np.isneginf(d[2]) & log for d in data]  # a factor of exactly 0: the gradient died
    for d in data:  # +-inf (a factor of 0 or overflow) take the end colours
        np.clip(d[2], norm.vmin, norm.vmax, out=d[2], where=~np.isnan(d[2]))

    # layout
    n = len(panels)
    categorical_rows = y is not None and not y.numeric
    if one_d:
        ncols = min(n, 2)
        nrows = int(math.ceil(n / ncols))
        fig = plt.figure(figsize=(6.4 * ncols + 1.2, 4.6 * nrows), constrained_layout=True)
        gs = fig.add_gridspec(2 * nrows, ncols, height_ratios=[4, 0.9] * nrows)
    else:
        if categorical_rows:
            ncols = 1 if n <= 3 else 2
            panel_w = 8.0 if x.numeric else min(8.0, 1.3 * len(x) + 2.5)
            panel_h = max(2.4, 0.55 * len(y) + 1.4)
        else:
            ncols = 1 if n == 1 else 2 if n in (2, 4) else 3
            panel_w, panel_h = 4.9, 4.2
        nrows = int(math.ceil(n / ncols))
        fig = plt.figure(figsize=(panel_w * ncols + 1.4, panel_h * nrows + 0.9), constrained_layout=True)
        gs = fig.add_gridspec(nrows, ncols)

    mesh_axes, all_axes = [], []
    handles = {}
    any_missing = any(np.isnan(d[2]).any() for d in data)
    any_diverged = any(d[4].any() for d in data)
    any_zero = any(zm.any() for zm in zero)
    mesh = None
    for k, (p, cells, z, cross, div) in enumerate(data):
        r, c = divmod(k, ncols)
        if one_d:
            lax = fig.add_subplot(gs[2 * r, c])
            ax = fig.add_subplot(gs[2 * r + 1, c], sharex=lax)
            draw_line_panel(lax, run, x, p, cells, metric, kind, z, cross, crossing_cols, handles)
            if p.title:
                lax.set_title(p.title, fontsize=11)
            all_axes.append(lax)
        else:
            ax = fig.add_subplot(gs[r, c])
            if p.title:
                ax.set_title(p.title, fontsize=11)
        mesh = draw_mesh(ax, x, y, z, cmap, norm)
        mesh_axes.append(ax)
        all_axes.append(ax)
        px, py = positions(x), positions(y)
        if any_diverged and div.any():
            yy, xx = np.nonzero(div)
            ax.plot(px[xx], py[yy], linestyle="none", marker="x", color="0.1", markersize=6,
                    markeredgewidth=1.4, zorder=5)
        if zero[k].any():
            yy, xx = np.nonzero(zero[k])
            ax.plot(px[xx], py[yy], linestyle="none", marker="o", markerfacecolor="none",
                    markeredgecolor="white", markersize=8, markeredgewidth=1.6, zorder=5)
        if not one_d and x.numeric and y.numeric and len(x) >= 2 and len(y) >= 2:
            for col, label, style, _ in crossing_cols:
                zc = np.ma.masked_invalid(tame(cross[col]))
                hits = zc.count() > 0 and zc.min() < 0 < zc.max()
                if hits:
                    # pad the grid with its edge values so the lines run to the panel's edges
                    xe, ye = edges(x), edges(y)
                    cx = np.concatenate([[xe[0]], px, [xe[-1]]])
                    cy = np.concatenate([[ye[0]], py, [ye[-1]]])
                    zc = np.ma.masked_invalid(np.pad(zc.filled(np.nan), 1, mode="edge"))
                    cs = ax.contour(cx, cy, zc, levels=[0.0], colors=[style["color"]],
                                    linestyles=[style["linestyle"]], linewidths=[style["linewidth"]], zorder=3)
                    if kind == "linear":  # a pale halo keeps lines visible on viridis' dark end
                        for coll in cs.collections:
                            coll.set_path_effects(halo(style["linewidth"]))
                add_handle(handles, label, Line2D([], [], **style), hits)
        elif not one_d and x.numeric:
            # rows are categories (or a single y value): mark where each factor crosses 1 along x
            lanes = np.linspace(-0.28, 0.28, len(crossing_cols)) if len(crossing_cols) > 1 else [0.0]
            for lane, (col, label, style, marker) in zip(lanes, crossing_cols):
                hit_any = False
                for yi in range(z.shape[0]):
                    xs = crossings_1d(px, cross[col][yi], x.log)
                    if xs:
                        hit_any = True
                        ax.plot(xs, [py[yi] + lane] * len(xs), linestyle="none", marker=marker,
                                markersize=9, color=style["color"], markeredgecolor="black",
                                markeredgewidth=0.9, zorder=6)
                add_handle(handles, label, Line2D([], [], linestyle="none", marker=marker, markersize=9,
                                                  color=style["color"], markeredgecolor="black"), hit_any)
        if not x.numeric or (one_d and len(x) <= 12):
            annotate(ax, x, y, z, norm, kind)
        style_axis(ax, x, "x")
        if one_d:
            style_axis(ax, None, "y")
            ax.set_ylabel("factor" if log else "", rotation=0, ha="right", va="center")
            plt.setp(lax.get_xticklabels(), visible=False)
            lax.set_xlabel("")
        else:
            style_axis(ax, y, "y")
            if categorical_rows:
                ax.invert_yaxis()  # first value of the sweep on top

    # short panels (category rows) get a horizontal colour bar below them
    horizontal = categorical_rows and nrows == 1
    cbar = fig.colorbar(mesh, ax=all_axes, orientation="horizontal" if horizontal else "vertical",
                        shrink=0.6 if horizontal else 0.95, pad=0.1 if horizontal else 0.02, aspect=40 if horizontal else 30)
    label = metric_label(metric, kind)
    sep = "  " if horizontal else "\n"
    if kind == "log":
        label += sep + "(0 = factor 1: critical;  < 0 vanishing,  > 0 exploding)"
    elif kind == "signed":
        label += sep + "(0 = critical;  < 0 vanishing,  > 0 exploding)"
    cbar.set_label(label)
    if kind == "log":
        add_factor_ticks(cbar, norm, horizontal)

    # crossing lines in the order of CROSSINGS (pairing each *_cell line with its textbook line), whichever
    # panel drew them first; other entries (the 1-D plot's shading) keep their place in front
    rank = {label: k for k, (_, label, _, _) in enumerate(crossing_cols)}
    handles = dict(sorted(handles.items(), key=lambda kv: rank.get(kv[0].replace("  (not reached)", ""), -1)))
    if any_missing:
        handles[f"no {metric} value (not fitted / not run)"] = Patch(facecolor="0.86", edgecolor="0.6",
                                                                       hatch="///")
    if any_zero:
        handles[f"{metric} = 0: gradient exactly 0 (e.g. all units dead)"] = Line2D(
            [], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="0.3",
            markersize=8, markeredgewidth=1.6)
    if any_diverged:
        handles["forward state diverged (some replicate)"] = Line2D(
            [], [], linestyle="none", marker="x", color="0.1", markersize=6, markeredgewidth=1.4)
    if handles:
        # the cells' own formulas make long entries: two columns keep the legend about as wide as the panels
        ncol = min(len(handles), 3 if max(len(k) for k in handles) <= 80 else 2)
        fig.legend(list(handles.values()), list(handles.keys()), loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False, fontsize=9.5,
                   handlelength=3.2 if not categorical_rows else 1.5)

    reps = run.replicates if isinstance(run.replicates, int) else None
    sub = f"colour: {metric_label(metric, kind)}"
    if reps and reps > 1:
        sub += f", mean over {reps} replicates" + (" (of the logs)" if log else "")
    if crossing_cols and not one_d and x.numeric:
        sub += ";  lines/markers: where each factor crosses 1"
    fixed_txt = ", ".join(f"{run.axis(k).key} = {run.axis(k).text(i)}" for k, i in selected.items())
    if fixed_txt:
        sub += f"\nfixed: {fixed_txt}"
    note = run.status_note()
    if note:
        sub += f"\n[{note}]"
    fig.suptitle(f"{run.title}\n{sub}", fontsize=11.5)
    return fig


def halo(width):
    return [patheffects.Stroke(linewidth=width + 2.2, foreground="white", alpha=0.6), patheffects.Normal()]


def add_handle(handles, label, handle, hit):
    """One legend entry per crossing line; 'not reached' when it crosses 1 nowhere in any panel."""
    key_hit, key_miss = label, f"{label}  (not reached)"
    if hit:
        handles.pop(key_miss, None)
        handles[key_hit] = handle
    elif key_hit not in handles:
        handles[key_miss] = handle


def add_factor_ticks(cbar, norm, horizontal=False):
    """Second scale on the colour bar: the per-step factor itself (e^value)."""
    lo, hi = norm.vmin, norm.vmax
    cands = [1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3, 5,
             10, 20, 50, 100, 1e3, 1e4]
    gap = (hi - lo) / 9  # keep ticks apart on the bar, starting from 1 outwards
    ticks = [1.0]
    for c in sorted((c for c in cands if c > 1 and math.log(c) <= hi)):
        if math.log(c) - math.log(ticks[-1]) >= gap:
            ticks.append(c)
    low = [1.0]
    for c in sorted((c for c in cands if c < 1 and math.log(c) >= lo), reverse=True):
        if math.log(low[-1]) - math.log(c) >= gap:
            low.append(c)
    ticks = sorted(set(ticks + low))
    def safe_log(v):
        return np.log(np.clip(v, 1e-300, None))

    if horizontal:
        sec = cbar.ax.secondary_xaxis("top", functions=(np.exp, safe_log))
        sec.set_xticks(ticks)
        sec.set_xticklabels([f"{t:g}" for t in ticks])
        sec.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        sec.set_xlabel("factor per step", fontsize=9, labelpad=2)
    else:
        sec = cbar.ax.secondary_yaxis("left", functions=(np.exp, safe_log))
        sec.set_yticks(ticks)
        sec.set_yticklabels([f"{t:g}" for t in ticks])
        sec.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        sec.set_ylabel("factor per step", fontsize=9, labelpad=2)


def draw_line_panel(ax, run, x, panel, cells, metric, kind, z, cross, crossing_cols, handles):
    """1-D sweep: the metric (and the crossing factors, as ln) against x."""
    px = positions(x)
    numeric = x.numeric
    ls = "-" if numeric else "none"
    log = kind == "log"
    if kind != "linear":
        ax.axhline(0.0, color="0.3", linewidth=1, zorder=1)
        ax.axhspan(0, 1e9, color="#fbe3e3", zorder=0)
        ax.axhspan(-1e9, 0, color="#e3ecfb", zorder=0)
        side = "factor {} 1" if log else "{} 0"
        handles.setdefault(f"exploding side ({side.format('>')})", Patch(facecolor="#fbe3e3", edgecolor="0.7"))
        handles.setdefault(f"vanishing side ({side.format('<')})", Patch(facecolor="#e3ecfb", edgecolor="0.7"))
    drawn = []
    if log:
        for j, (col, label, style, marker) in enumerate(crossing_cols):
            zc = cross[col][0]
            if not np.isfinite(zc).any():
                continue
            st = dict(style)
            if not numeric:
                st["linestyle"] = "none"
            jitter = 0.0 if numeric else 0.07 * (j - (len(crossing_cols) - 1) / 2)
            ax.plot(px + jitter, zc, marker=marker, markersize=5 if numeric else 9,
                    zorder=3 if col != metric else 4, **st)
            name = label.split(" = ")[0]
            handles.setdefault(f"ln {name}", Line2D([], [], marker=marker, **st))
            drawn.append(col)
    if metric not in drawn:
        ax.plot(px, z[0], color="black", linestyle=ls, marker="o", markersize=5, zorder=4)
        handles.setdefault(metric_label(metric, kind), Line2D([], [], color="black", linestyle=ls, marker="o"))
    # individual replicates of the metric, to show their spread
    xs, ys = [], []
    for (yi, xi), cell in cells.items():
        for v in floats(run.cells[cell]["rows"], metric):
            if log:
                if v <= 0:
                    continue
                v = math.log(v)
            xs.append(px[xi])
            ys.append(v)
    reps = run.replicates if isinstance(run.replicates, int) else 1
    if reps > 1 and xs:
        ax.plot(xs, ys, linestyle="none", marker=".", color="0.35", markersize=4, zorder=5)
        handles.setdefault(f"{metric}: single replicates", Line2D([], [], linestyle="none", marker=".",
                                                                   color="0.35"))
    finite = np.concatenate([z[0][np.isfinite(z[0])]] +
                            [cross[c[0]][0][np.isfinite(cross[c[0]][0])] for c in crossing_cols if log] +
                            [np.array(ys)])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if kind != "linear":
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        pad = 0.08 * (hi - lo) if hi > lo else 0.5
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel(metric_label(metric, kind) if not log else "ln factor per step")
    ax.grid(True, alpha=0.3)
    if x.log:
        ax.set_xscale("log")


# ---------------------------------------------------------------------------------------------------------

def output_paths(outdir, out, svg, default_name):
    path = out or os.path.join(outdir, default_name)
    paths = [path]
    if svg and not path.lower().endswith(".svg"):
        paths.append(os.path.splitext(path)[0] + ".svg")
    for p in paths:
        parent = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(parent):
            raise InputError(f"cannot write {p}: directory {parent} does not exist")
    return paths


def save(fig, paths):
    for p in paths:
        try:
            fig.savefig(p, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
        except OSError as exc:
            raise InputError(f"cannot write {p}: {exc.strerror}") from exc
        except ValueError as exc:  # unknown file format
            raise InputError(f"cannot write {p}: {exc}") from exc
        print(p)
    plt.close(fig)


def make_parser():
    p = argparse.ArgumentParser(
        prog="plot_heatmap.py",
        description="Heatmap of the per-step gradient growth factor over a gradflow sweep, with the lines "
                    "where the measured rate and each predictor cross 1 (critical). Reads OUTDIR/run.json "
                    "and OUTDIR/cells.csv; writes OUTDIR/heatmap.png unless -o is given.",
        epilog="Axes: by default the first numeric sweep axis is x, the second numeric one is y, and any "
               "other axis (e.g. network.activation) gives one panel per value; with one numeric and one "
               "string axis the string values are the rows. Exit codes: 0 ok, 2 bad input.")
    p.add_argument("outdir", metavar="OUTDIR", help="directory written by `gradflow run`")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (format from its suffix: .png, .svg, .pdf); default OUTDIR/heatmap.png, "
                        "or OUTDIR/heatmap_METRIC.png for another --metric")
    p.add_argument("--svg", action="store_true", help="also write an .svg next to the .png")
    p.add_argument("--metric", default="growth_rate", metavar="COLUMN",
                   help="cells.csv column for the colour (default growth_rate). Per-step factors "
                        "(growth_rate, predictor, predictor_rms, bound, their *_cell versions, *growth) "
                        "are shown as ln, centred at 0; log10_grad_ratio and *lyapunov* centred at 0; others "
                        "with a sequential colour map")
    p.add_argument("--scale", choices=["auto", "log", "linear"], default="auto",
                   help="colour scale of the metric: auto (by column name, default), log (ln, centred at 0), "
                        "linear")
    p.add_argument("--x", metavar="KEY", help="sweep axis for x (e.g. spectrum.radius)")
    p.add_argument("--y", metavar="KEY", help="sweep axis for y, or 'none' for a line plot over x")
    p.add_argument("--facet", metavar="KEY", help="sweep axis giving one panel per value")
    p.add_argument("--select", metavar="KEY=VALUE", action="append",
                   help="fix a sweep axis to one value (repeatable), e.g. --select network.activation=relu")
    p.add_argument("--max-panels", type=int, default=12, metavar="N",
                   help="refuse to draw more panels than this (default 12)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    args.prog = "plot_heatmap.py"
    run = Run(args.outdir)
    if not run.axes:
        raise InputError(f"{os.path.join(args.outdir, 'run.json')} has no sweep axis (a one-cell run): "
                         "nothing to map; plot its gradient series with plot_series.py")
    if not run.cells:
        raise InputError(f"{run.cells_path} has no finished cell yet")
    default = "heatmap.png" if args.metric == "growth_rate" else f"heatmap_{args.metric}.png"
    paths = output_paths(args.outdir, args.output, args.svg, default)
    fig = plot(args, run)
    save(fig, paths)
    return 0


if __name__ == "__main__":
    sys.exit(run_main("plot_heatmap.py", main))
