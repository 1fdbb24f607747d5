"""gradflow: gradient flow through time in recurrent networks, from Python.

    import gradflow
    r = gradflow.run("scenarios/default.toml", overrides={"network.units": 64})   # nothing written to disk
    r.cells["growth_rate"], r.series["log10_grad_norm"], r.run["verdicts"]
    gradflow.bptt(W, activation="tanh", steps=200)["log10_grad_norm"]

The numbers are the CLI's, bit for bit: the same C++ library computes them and formats them the same way.
Errors are exceptions with the CLI's messages (InputError is a ValueError; WriteError an OSError); the GIL is
released while computing, and Ctrl-C stops a run (KeyboardInterrupt; a run into `out` keeps its finished
cells, run.json says "interrupted").
"""
import os

import numpy as np

from . import _gradflow as _core
from ._gradflow import InputError, WriteError
from ._results import Result, parse_csv, read_csv
from ._torch import from_torch

__version__ = _core.__version__
__commit__ = _core.__commit__

__all__ = ["run", "report", "bptt", "activations", "critical", "spectrum", "from_torch", "Result", "InputError",
           "WriteError", "read_csv", "__version__", "__commit__"]


def _toml_literal(value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return value  # a bare string: --set accepts it as is
    raise TypeError(f"override value {value!r}: expected a bool, int, float or str")


def _overrides(overrides):
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [f"{k}={_toml_literal(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def run(scenario, overrides=None, threads=None, out=None, *, force=False, resume=False, report=True):
    """Runs every cell of a scenario and returns a Result.

    scenario: a scenario file's path, or a dict of its tables ({"network": {"units": 64}, "sweep":
    {"spectrum.radius": {"start": 0.5, "stop": 2, "num": 7}}}). overrides: {"key": value} or ["key=value"], as
    --set. threads: None for all cores. out: None keeps everything in memory (no file is written); a directory
    gets cells.csv, series.csv, run.json and heatmaps/ exactly as `gradflow run -o OUT` writes them (force /
    resume as --force / --resume; report=False as --no-report).
    """
    if not isinstance(scenario, dict):
        scenario = os.fspath(scenario)
    raw = _core.run(scenario, _overrides(overrides), int(threads or 0), None if out is None else os.fspath(out),
                    bool(force), bool(resume), bool(report))
    if out is None:
        return Result.from_memory(raw)
    return Result.from_dir(raw["out"])


def report(out):
    """Writes OUT/report.html (as `gradflow report OUT`) and returns its path."""
    return _core.report(os.fspath(out))


def _matrix(name, a, ndim_ok=(2,)):
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    if a.ndim == 1 and 1 in ndim_ok:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a {' or '.join(str(n) + '-d' for n in ndim_ok)} array, got shape "
                         f"{a.shape}")
    return a


def bptt(W, *, activation="tanh", steps, batch=1, cell="vanilla", U=None, b=None, h0=None, inputs=None,
         loss="random", precision="double", seed=0, lyapunov=0, burn_in=0, alpha=None, beta=1.0, leak=1.0,
         b_hh=None, c0=None):
    """One cell on numpy arrays: forward pass from h0 (zeros when None) over burn_in + steps steps, then BPTT.

    a_t = W h_{t-1} + U x_t + b, h_t = f(a_t) (cell = "vanilla"; "residual" and "leaky" as in scenarios); for
    cell = "gru" / "lstm" the arrays are torch's: W = weight_hh_l0 (G N x N), U = weight_ih_l0, b = bias_ih_l0,
    b_hh = bias_hh_l0, and c0 the LSTM's initial cell state (gradflow.from_torch(module) gives them); x_t ~ N(0, I) of U's columns per step (seed) unless `inputs`
    ((burn_in + steps) x dim, shared by the batch) is given; no input when U and inputs are None. Arrays are
    float32 or float64, C or Fortran order (float64 Fortran-order W, U, h0 are read without a conversion).
    Returns a dict: log10_grad_norm (steps + 1 values, t = 0..steps, as series.csv), log10_grad_norm_min/_max,
    mean_abs_dact_t, and every cells.csv column (growth_rate, rho, predictor, regime, ...) as a scalar.
    """
    if (b_hh is not None or c0 is not None) and cell not in ("gru", "lstm"):
        raise ValueError(f"b_hh, c0: only for the gated cells (gru, lstm), not cell = {cell!r}")
    raw = _core.bptt(_matrix("W", W), activation, int(steps), int(batch), cell, _matrix("U", U),
                     _matrix("b", b, (1, 2)), _matrix("h0", h0, (1, 2)), _matrix("inputs", inputs), loss, precision,
                     int(seed), int(lyapunov), int(burn_in), alpha, float(beta), float(leak),
                     _matrix("b_hh", b_hh, (1, 2)), _matrix("c0", c0, (1, 2)))
    cells = parse_csv(raw["cells_csv"])
    series = parse_csv(raw["series_csv"])
    result = {k: v[0].item() for k, v in cells.items()}
    for k in ("log10_grad_norm", "log10_grad_norm_min", "log10_grad_norm_max", "mean_abs_dact_t",
              "log10_grad_norm_h"):
        if k in series:
            result[k] = series[k]
    result["t"] = series["t"]
    return result


def activations(mu=0.0, sigma=1.0, *, alpha=None, beta=1.0):
    """Gaussian moments of every activation for z ~ N(mu, sigma^2): a list of dicts as
    `gradflow activations --json` prints (name, mean, second_moment, mean_abs_deriv, mean_sq_deriv, zero_prob,
    sup_abs_deriv, alpha, beta)."""
    return _core.activations(float(mu), float(sigma), alpha, float(beta))


def critical(activation, *, input_std=0.0, bias_mean=0.0, bias_std=0.0, alpha=None, beta=1.0, init_std=0.0,
             range=(1e-2, 1e3), cell="vanilla", gate_bias=None, gate_input_gain=None):
    """Mean-field critical gain (chi = gain^2 E[f'(a)^2] = 1) as `gradflow critical --json`: a dict with
    critical_gain (None when chi = 1 is never reached in range), q_star, mf_status, crossings, jumps.

    cell = "minimalrnn": its critical line as `gradflow critical --cell minimalrnn --json` (Chen et al. 2018;
    README, "minimalRNN: the mean-field critical line"): a dict whose "line" lists, for each gate bias b_u in
    gate_bias (a number or a sequence; default -4, -3, ..., 8), the gain of U_h where chi = E[u^2] + gain^2
    E[sigmoid'(e)^2] E[(h - z)^2] = 1 (critical_gain, q_star, gain_is_jump, crossings, jumps);
    gate_input_gain is U_z's gain (default 1, as gradflow draws it). gate_bias and gate_input_gain are
    InputErrors with cell = "vanilla"."""
    lo, hi = range
    if gate_bias is not None:
        gate_bias = [float(b) for b in np.atleast_1d(gate_bias)]
    return _core.critical(activation, float(input_std), float(bias_mean), float(bias_std), alpha, float(beta),
                          float(init_std), float(lo), float(hi), cell, gate_bias,
                          None if gate_input_gain is None else float(gate_input_gain))


def spectrum(W, *, eigenvalues=True):
    """rho(W), ||W||_2 (Spectra, with the dense fallback below 20 units) and how they were obtained, and every
    eigenvalue (complex numpy array; eigenvalues=False skips the O(N^3) solve)."""
    return _core.spectrum(_matrix("W", W), bool(eigenvalues))
