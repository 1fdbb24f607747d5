"""from_torch: the weights of a torch recurrent module as gradflow.bptt arguments, without files. torch stays
optional: only the module's tensors are touched (detach().cpu().numpy())."""
import numpy as np

# torch class name -> gradflow network.cell. The gated cells need a gradflow built with them (network.cell =
# "gru" / "lstm"); their weights are passed in torch's own layout (gate blocks stacked in torch's order), the
# same arrays [import] torch = DIR reads from weight_ih_l0.npy, weight_hh_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy.
TORCH_CELLS = {"RNN": "vanilla", "GRU": "gru", "LSTM": "lstm"}


def torch_arrays(module):
    """{weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0} of a single-layer, unidirectional torch RNN/GRU/LSTM
    as float64 numpy arrays (zeros for bias=False), and the gradflow cell name."""
    kind = type(module).__name__
    if kind not in TORCH_CELLS:
        raise ValueError(f"from_torch: {kind} is not a torch nn.RNN, nn.GRU or nn.LSTM")
    if getattr(module, "num_layers", 1) != 1 or getattr(module, "bidirectional", False):
        raise ValueError(f"from_torch: {kind} with num_layers = {module.num_layers}, bidirectional = "
                         f"{module.bidirectional}: only a single-layer, unidirectional module is supported")
    if getattr(module, "proj_size", 0):
        raise ValueError("from_torch: LSTM with proj_size > 0 is not supported")
    state = module.state_dict()
    arrays = {}
    for name in ("weight_ih_l0", "weight_hh_l0"):
        arrays[name] = state[name].detach().cpu().double().numpy()
    rows = arrays["weight_hh_l0"].shape[0]
    for name in ("bias_ih_l0", "bias_hh_l0"):
        arrays[name] = state[name].detach().cpu().double().numpy() if name in state else np.zeros(rows)
    return TORCH_CELLS[kind], arrays


def from_torch(module):
    """Keyword arguments of gradflow.bptt for a torch module: W, U, b, activation and cell.

    nn.RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), so W = weight_hh_l0, U = weight_ih_l0,
    b = bias_ih_l0 + bias_hh_l0 and f = its nonlinearity (tanh or relu). Use as
    gradflow.bptt(**gradflow.from_torch(rnn), steps=200); the inputs x_t ~ N(0, I) unless given.
    """
    cell, a = torch_arrays(module)
    if cell == "vanilla":
        return {"W": a["weight_hh_l0"], "U": a["weight_ih_l0"], "b": a["bias_ih_l0"] + a["bias_hh_l0"],
                "activation": module.nonlinearity, "cell": "vanilla"}
    # Gated cells: the stacked gate blocks as torch stores them; the C++ core splits them.
    return {"W": a["weight_hh_l0"], "U": a["weight_ih_l0"], "b": a["bias_ih_l0"], "b_hh": a["bias_hh_l0"],
            "activation": "tanh", "cell": cell}
