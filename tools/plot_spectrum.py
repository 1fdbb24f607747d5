#!/usr/bin/env python3
"""Draw the eigenvalues of a gradflow recurrent matrix W in the complex plane.

Reads the CSV written by `gradflow spectrum SCENARIO.toml -o EIGENVALUES.csv` (columns re,im) and, when it
exists, its JSON summary EIGENVALUES.csv.json (written alongside: kind, units, target radius, measured rho,
||W||_2, and for kind = "dale" the predicted bulk radius and outlier). Draws every eigenvalue as a dot with

  - the circle of the target radius (solid): the eigenvalue of largest modulus touches it;
  - the circle of ||W||_2 (dashed): how far a single step can stretch a vector. It exceeds rho for any
    non-normal W (x2 for Ginibre); a wide gap means transient growth hidden by the eigenvalues;
  - for E/I (dale) matrices the Rajan & Abbott bulk radius (dotted) and the mean-part outlier (marked).

So a user sees at a glance the circular law (ginibre, sparse), the semicircle on the real line (symmetric),
the unit circle (orthogonal), E/I outliers, and the scatter of a strongly non-normal matrix's eigenvalues
(rounding moves ill-conditioned eigenvalues off their exact positions: the pseudospectrum).

Exit codes: 0 done, 2 bad input (missing or malformed CSV, unwritable output), 1 internal error.
"""

import argparse
import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from plot_heatmap import InputError, run_main, save  # noqa: E402  (re-executes with /usr/bin/python3 if needed)
import numpy as np  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

PROG = "plot_spectrum.py"


def read_eigenvalues(path):
    """Complex eigenvalues from a re,im CSV with a header line."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (write it with: gradflow spectrum SCENARIO.toml -o {path})")
    try:
        with open(path) as f:
            header = f.readline().strip().split(",")
            if header[:2] != ["re", "im"]:
                raise InputError(f"{path}: expected the header 're,im' (gradflow spectrum -o), got '{','.join(header)}'")
            data = np.loadtxt(f, delimiter=",", ndmin=2)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from exc
    if data.size == 0:
        raise InputError(f"{path}: no eigenvalues")
    if data.shape[1] < 2:
        raise InputError(f"{path}: expected two columns re,im")
    if not np.all(np.isfinite(data[:, :2])):
        raise InputError(f"{path}: non-finite eigenvalues")
    return data[:, 0] + 1j * data[:, 1]


def read_summary(path):
    """The JSON sidecar of `gradflow spectrum -o`, or {} when absent."""
    side = path + ".json"
    if not os.path.isfile(side):
        return {}
    try:
        with open(side) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: unreadable JSON summary: {exc}") from exc


def circle(ax, r, **kw):
    t = np.linspace(0, 2 * math.pi, 721)
    return ax.plot(r * np.cos(t), r * np.sin(t), **kw)[0]


def plot(args):
    ev = read_eigenvalues(args.eigenvalues)
    info = read_summary(args.eigenvalues)
    moduli = np.abs(ev)
    rho_measured = float(moduli.max())
    radius = info.get("radius", rho_measured)
    norm = info.get("spectral_norm")

    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    size = max(1.0, min(12.0, 4000.0 / len(ev)))
    ax.scatter(ev.real, ev.imag, s=size, color="#1f4e79", alpha=0.75, linewidths=0, zorder=3)
    handles = [Line2D([], [], ls="", marker="o", ms=4, color="#1f4e79", label=f"eigenvalues ({len(ev)})")]
    if radius and radius > 0:
        handles.append(circle(ax, radius, color="#c0392b", lw=1.4, zorder=2,
                              label=f"target radius ρ = {radius:.4g} (measured max|λ| = {rho_measured:.4g})"))
    if norm and norm > 0:
        handles.append(circle(ax, norm, color="#7f7f7f", lw=1.2, ls="--", zorder=2,
                              label=f"‖W‖₂ = {norm:.4g}  (‖W‖₂/ρ = {norm / radius:.3g})" if radius else f"‖W‖₂ = {norm:.4g}"))
    if info.get("bulk_radius"):
        handles.append(circle(ax, info["bulk_radius"], color="#27ae60", lw=1.3, ls=":", zorder=2,
                              label=f"bulk radius (Rajan & Abbott) = {info['bulk_radius']:.4g}"))
    if info.get("outlier"):
        out = info["outlier"]
        handles.append(ax.plot([out], [0], marker="x", ms=11, mew=2, color="#e67e22", ls="", zorder=4,
                               label=f"predicted outlier = {out:.4g}")[0])
    ax.axhline(0, color="#bbbbbb", lw=0.6, zorder=1)
    ax.axvline(0, color="#bbbbbb", lw=0.6, zorder=1)

    # Frame: all eigenvalues and the radius circle; the ||W||_2 circle only when it is not far outside.
    extent = max(rho_measured, radius or 0.0, (info.get("outlier") or 0.0) and abs(info["outlier"]))
    if norm and norm <= 3 * max(extent, 1e-300):
        extent = max(extent, norm)
    extent = 1.1 * extent if extent > 0 else 1.0
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    if norm and norm > 3 * extent / 1.1:
        handles.append(Line2D([], [], ls="", label=f"(‖W‖₂ circle off the frame: ‖W‖₂/ρ = {norm / radius:.3g})"))

    title = args.title
    if title is None:
        kind = info.get("kind", "W")
        parts = [f"{kind}, N = {info.get('units', len(ev))}"]
        if "nonnormality" in info:
            parts.append(f"s = {info['nonnormality']:g}")
        if info.get("title"):
            parts.insert(0, info["title"])
        title = " — ".join(parts)
    ax.set_title(title, fontsize=11)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.1), fontsize=8.5, frameon=False)
    return fig


def make_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Eigenvalues of W in the complex plane with the target-radius and ||W||_2 circles "
                    "(input: gradflow spectrum SCENARIO.toml -o EIGENVALUES.csv).")
    p.add_argument("eigenvalues", help="CSV with columns re,im written by gradflow spectrum -o")
    p.add_argument("-o", "--out", help="output image (default: EIGENVALUES with .png)")
    p.add_argument("--title", help="figure title (default: from the JSON summary)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    out = args.out or os.path.splitext(args.eigenvalues)[0] + ".png"
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {out}: directory {parent} does not exist")
    save(plot(args), [out])
    return 0


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
