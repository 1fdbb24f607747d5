#!/usr/bin/python3
"""Export a single-layer PyTorch nn.RNN / nn.GRU / nn.LSTM for gradflow's `[import] torch = "DIR"`.

gradflow never imports torch: it reads four .npy files that this script writes with numpy.save, exactly
as `numpy.save(tensor.detach().numpy())` writes the module's state_dict entries:

    DIR/weight_ih_l0.npy   (k N) x dim     k = 1 (nn.RNN), 3 (nn.GRU: rows r, z, n), 4 (nn.LSTM: i, f, g, o)
    DIR/weight_hh_l0.npy   (k N) x N
    DIR/bias_ih_l0.npy     (k N,)
    DIR/bias_hh_l0.npy     (k N,)

The cell equations are PyTorch's (network.cell = "vanilla" for nn.RNN, "gru", "lstm"):

    vanilla  h' = f(W_ih x + b_ih + W_hh h + b_hh)             f = tanh (or relu: activation = "relu")
    gru      r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
             z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
             n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
             h' = (1 - z) * n + z * h
    lstm     i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_ih x + b_ih + W_hh h + b_hh), rows in that order
             c' = f * c + i * g,   h' = o * tanh(c')

The states and inputs have their own layouts in gradflow (helpers below):

    h0.npy / c0.npy   N values (shared by every trajectory) or N x B: N rows, B columns, the TRANSPOSE of
                      torch's (B, N) (or (1, B, N)) hidden-state layout          -> [init] file / cell_file
    x.npy             (burn_in + steps) x dim, row s - 1 = x at forward step s, one sequence shared by every
                      trajectory (torch's (L, dim), (L, 1, dim) or batch_first (1, L, dim))  -> [input] file

Library use (torch is only needed to build the module; the state/input helpers also take NumPy arrays):

    import sys; sys.path.insert(0, "scenarios/data")
    from export_torch import export_module, save_state, save_inputs
    export_module(gru, "scenarios/data/my_gru")                 # the four weight files
    save_state(h0, "scenarios/data/my_gru/h0.npy")              # torch (1, B, N) / (B, N) / (N,) -> N x B / N
    save_inputs(x, "scenarios/data/my_gru/x.npy")               # (L, dim)

Command line: a file written by torch.save holding either the module itself or a state_dict (the cell is
recognised from the shapes: weight_hh_l0 has k N rows and N columns; a bare state_dict does not record
nn.RNN's nonlinearity, tanh is assumed), and optionally tensors (torch.save'd or .npy, in torch's layouts)
for h_0, c_0 and the input sequence. A recurrent layer inside a larger model is selected with --prefix
(the state_dict key prefix, e.g. "rnn."); a pickled custom model can only be loaded where its class is
importable, so prefer torch.save(model.state_dict(), FILE).

    export_torch.py model.pt OUTDIR [--prefix rnn.] [--h0 h0.pt] [--c0 c0.pt] [--x x.pt] [--dtype float64]

It prints a scenario snippet for the exported folder.
"""

import argparse
import os
import sys

import numpy as np

WEIGHT_FILES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
GATES = {1: "vanilla", 3: "gru", 4: "lstm"}  # rows of weight_hh_l0 / N -> gradflow's network.cell


def _to_numpy(a, dtype=None):
    """A torch tensor (any device, requires_grad or not) or array-like -> C-ordered NumPy array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"expected float32 or float64 values, got {a.dtype}")
    return np.ascontiguousarray(a)


def _check_module(module):
    """Raises ValueError unless module is a plain single-layer, unidirectional nn.RNN / nn.GRU / nn.LSTM."""
    kind = type(module).__name__
    if kind not in ("RNN", "GRU", "LSTM"):
        raise ValueError(f"expected torch.nn.RNN, GRU or LSTM, got {kind} (wrap cells in the full module)")
    if getattr(module, "num_layers", 1) != 1:
        raise ValueError(f"{kind} has num_layers = {module.num_layers}; gradflow imports one layer")
    if getattr(module, "bidirectional", False):
        raise ValueError(f"{kind} is bidirectional; gradflow imports a unidirectional layer")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size > 0 is not supported")
    return kind


def cell_of(module_or_state_dict, prefix=""):
    """gradflow's (network.cell, network.activation) for a module or a state_dict."""
    if hasattr(module_or_state_dict, "state_dict"):
        kind = _check_module(module_or_state_dict)
        if kind == "RNN":
            return "vanilla", module_or_state_dict.nonlinearity
        return kind.lower(), "tanh"
    whh = module_or_state_dict[prefix + "weight_hh_l0"]
    rows, n = whh.shape
    k = rows // n
    if rows % n or k not in GATES:
        raise ValueError(f"weight_hh_l0 is {rows} x {n}: not 1, 3 or 4 stacked N x N blocks")
    return GATES[k], "tanh"  # a bare state_dict does not record nn.RNN's nonlinearity: tanh is its default


def export_state_dict(state_dict, folder, prefix="", dtype=None):
    """Writes the four weight files of a single-layer state_dict into folder; returns their paths.

    A module built with bias=False has no bias entries: zero biases are written (the same cell)."""
    keys = [k for k in state_dict if k.startswith(prefix)]
    extra = sorted(k[len(prefix):] for k in keys if k[len(prefix):] not in WEIGHT_FILES)
    if extra:
        raise ValueError(f"unexpected state_dict entries {extra}: export one single-layer, unidirectional "
                         "module (use --prefix for a submodule)")
    wih = _to_numpy(state_dict[prefix + "weight_ih_l0"], dtype)
    whh = _to_numpy(state_dict[prefix + "weight_hh_l0"], dtype)
    rows, n = whh.shape
    if wih.ndim != 2 or wih.shape[0] != rows:
        raise ValueError(f"weight_ih_l0 is {wih.shape}, weight_hh_l0 {whh.shape}: rows differ")
    cell_of(state_dict, prefix)  # checks the stacking
    arrays = {"weight_ih_l0": wih, "weight_hh_l0": whh}
    for name in ("bias_ih_l0", "bias_hh_l0"):
        b = state_dict.get(prefix + name)
        arrays[name] = _to_numpy(b, dtype) if b is not None else np.zeros(rows, dtype=whh.dtype)
        if arrays[name].shape != (rows,):
            raise ValueError(f"{name} has shape {arrays[name].shape}, expected ({rows},)")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name + ".npy")
        np.save(path, arrays[name])
        paths.append(path)
    return paths


def export_module(module, folder, dtype=None):
    """Saves module's weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 as .npy files in folder.

    module: a single-layer, unidirectional torch.nn.RNN, GRU or LSTM (batch_first does not matter).
    dtype: None keeps the parameters' dtype (float32 or float64); np.float32 / np.float64 converts.
    Returns the list of paths written."""
    _check_module(module)
    return export_state_dict(module.state_dict(), folder, dtype=dtype)


def state_layout(h):
    """A hidden (or cell) state in torch's layout -> gradflow's: (N,) stays (N,); (B, N) and (1, B, N)
    become N x B (N rows, one column per trajectory)."""
    h = _to_numpy(h)
    if h.ndim == 3:
        if h.shape[0] != 1:
            raise ValueError(f"state of shape {h.shape}: expected one layer, (1, B, N)")
        h = h[0]
    if h.ndim == 2:
        return np.ascontiguousarray(h.T)
    if h.ndim == 1:
        return h
    raise ValueError(f"state of shape {h.shape}: expected (N,), (B, N) or (1, B, N)")


def save_state(h, path, dtype=None):
    """Saves h_0 (or the LSTM's c_0) for [init] file / cell_file; see state_layout. Returns the array."""
    a = state_layout(h)
    if dtype is not None:
        a = a.astype(dtype)
    np.save(path, a)
    return a


def save_inputs(x, path, dtype=None, batch_first=False):
    """Saves one input sequence for [input] kind = "file": (L, dim), (L, 1, dim) or, batch_first,
    (1, L, dim) -> (L, dim), row s - 1 = x at forward step s. gradflow feeds the same sequence to every
    trajectory, so a batch of different sequences is refused."""
    a = _to_numpy(x, dtype)
    if a.ndim == 3:
        if batch_first:
            a = np.swapaxes(a, 0, 1)
        if a.shape[1] != 1:
            raise ValueError(f"inputs of shape {a.shape}: gradflow shares one sequence across trajectories")
        a = a[:, 0, :]
    if a.ndim != 2:
        raise ValueError(f"inputs of shape {a.shape}: expected (L, dim)")
    a = np.ascontiguousarray(a)
    np.save(path, a)
    return a


def scenario_snippet(folder, cell, activation, n, dim, steps=None, burn_in=None, h0=None, c0=None, x=None):
    """A scenario fragment for the exported folder (paths as given, relative to the scenario's folder)."""
    L = ["[network]", f"units = {n}"]
    if steps is not None:
        L.append(f"steps = {steps}")
    L += [f'cell = "{cell}"', f'activation = "{activation}"', "", "[import]", f'torch = "{folder}"']
    if x:
        L += ["", "[input]", 'kind = "file"', f'file = "{x}"']
    if h0 or c0:
        L += ["", "[init]", 'state = "file"']
        if h0:
            L.append(f'file = "{h0}"')
        if c0:
            L.append(f'cell_file = "{c0}"')
    L += ["", "[loss]", 'kind = "final_state"']
    if burn_in is not None:
        L += ["", "[analysis]", f"burn_in = {burn_in}"]
    return "\n".join(L) + "\n"


def _load_tensor(path):
    if path.endswith(".npy"):
        return np.load(path)
    import torch

    return torch.load(path, map_location="cpu")


def main(argv=None):
    try:
        _main(argv)
    except (ValueError, KeyError, OSError) as e:
        sys.exit(f"export_torch.py: {e}")


def _main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="torch.save file: an nn.RNN / nn.GRU / nn.LSTM module or its state_dict")
    p.add_argument("outdir", help="folder for the .npy files (created)")
    p.add_argument("--prefix", default="", help="state_dict key prefix of the recurrent layer, e.g. 'rnn.'")
    p.add_argument("--h0", help="h_0 tensor (torch.save or .npy), (N,), (B, N) or (1, B, N) -> OUTDIR/h0.npy")
    p.add_argument("--c0", help="LSTM c_0 tensor, same layouts -> OUTDIR/c0.npy")
    p.add_argument("--x", help="input sequence (L, dim), (L, 1, dim) -> OUTDIR/x.npy")
    p.add_argument("--batch-first", action="store_true", help="--x is (1, L, dim)")
    p.add_argument("--dtype", choices=["keep", "float32", "float64"], default="keep")
    a = p.parse_args(argv)
    import torch  # only the command line needs it (torch.load)

    try:
        obj = torch.load(a.model, map_location="cpu")
    except AttributeError as e:  # a pickled custom nn.Module whose class is not importable here
        sys.exit(f"export_torch.py: {a.model}: {e}; save the state_dict instead "
                 "(torch.save(model.state_dict(), FILE)) and pass --prefix")
    dtype = None if a.dtype == "keep" else np.dtype(a.dtype)
    if isinstance(obj, torch.nn.Module):
        if a.prefix:
            obj = obj.get_submodule(a.prefix.rstrip("."))
        cell, activation = cell_of(obj)
    elif isinstance(obj, dict):
        cell, activation = cell_of(obj, a.prefix)
    else:
        sys.exit(f"export_torch.py: {a.model} holds a {type(obj).__name__}, not a module or a state_dict")
    if a.c0 and cell != "lstm":
        sys.exit(f"export_torch.py: --c0 given for a {cell} cell (only the LSTM has a cell state c)")
    if isinstance(obj, torch.nn.Module):
        paths = export_module(obj, a.outdir, dtype)
        sd, prefix = obj.state_dict(), ""
    else:
        paths = export_state_dict(obj, a.outdir, a.prefix, dtype)
        sd, prefix = obj, a.prefix
    n = sd[prefix + "weight_hh_l0"].shape[1]
    dim = sd[prefix + "weight_ih_l0"].shape[1]
    names = {}
    for opt, name in (("h0", "h0.npy"), ("c0", "c0.npy")):
        if getattr(a, opt):
            arr = save_state(_load_tensor(getattr(a, opt)), os.path.join(a.outdir, name), dtype)
            if arr.shape[0] != n:
                sys.exit(f"export_torch.py: --{opt} has {arr.shape[0]} rows after transposing, N = {n}")
            paths.append(os.path.join(a.outdir, name))
            names[opt] = os.path.join(a.outdir, name)
    if a.x:
        arr = save_inputs(_load_tensor(a.x), os.path.join(a.outdir, "x.npy"), dtype, a.batch_first)
        if arr.shape[1] != dim:
            sys.exit(f"export_torch.py: --x has {arr.shape[1]} columns, input dim = {dim}")
        paths.append(os.path.join(a.outdir, "x.npy"))
        names["x"] = paths[-1]
    for path in paths:
        print(f"wrote {path}")
    print()
    print(scenario_snippet(a.outdir, cell, activation, n, dim, h0=names.get("h0"), c0=names.get("c0"),
                           x=names.get("x")))


if __name__ == "__main__":
    main()
