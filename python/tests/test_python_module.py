"""The Python module against the CLI on the same scenarios (bit for bit), closed forms, errors, Ctrl-C."""
import json
import os
import signal
import threading

import numpy as np
import pytest

import gradflow
from conftest import SOURCE_DIR, TIMING, run_cli

SMALL = {
    "title": "python module test",
    "seed": 7,
    "network": {"units": 24, "steps": 60, "batch": 3},
    "input": {"std": 0.5, "dim": 4},
    "analysis": {"burn_in": 10, "lyapunov": 2},
    "sweep": {"spectrum.radius": {"start": 0.5, "stop": 2.0, "num": 4},
              "network.activation": ["tanh", "relu"], "replicates": 2},
}
SMALL_TOML = """title = "python module test"
seed = 7
[network]
units = 24
steps = 60
batch = 3
[input]
std = 0.5
dim = 4
[analysis]
burn_in = 10
lyapunov = 2
[sweep]
"spectrum.radius" = { start = 0.5, stop = 2.0, num = 4 }
"network.activation" = ["tanh", "relu"]
replicates = 2
"""


def assert_columns_equal(got, want, skip=TIMING):
    assert set(got) == set(want)
    for name in want:
        if name in skip:
            continue
        g, w = got[name], want[name]
        assert g.dtype == w.dtype, name
        if g.dtype.kind == "f":
            # bit for bit: the same doubles (nan where the CSV field is empty)
            assert np.array_equal(g.view(np.int64), w.view(np.int64)) or np.array_equal(g, w, equal_nan=True), name
            assert np.array_equal(np.isnan(g), np.isnan(w)) and np.all(g[~np.isnan(g)] == w[~np.isnan(w)]), name
        else:
            assert np.array_equal(g, w), name


@pytest.fixture
def small_scenario(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text(SMALL_TOML)
    return p


def test_run_in_memory_equals_cli_bit_for_bit(small_scenario, tmp_path):
    out = tmp_path / "cli_out"
    run_cli("run", small_scenario, "-o", out, "--quiet", "--threads", "2")
    want_cells = gradflow.read_csv(out / "cells.csv")
    want_series = gradflow.read_csv(out / "series.csv")
    for scenario in (small_scenario, SMALL):
        r = gradflow.run(scenario, threads=1)
        assert r.out is None
        assert len(r.cells["cell"]) == 16
        assert_columns_equal(r.cells, want_cells)
        assert_columns_equal(r.series, want_series)
        assert_columns_equal(r.summary, gradflow.read_csv(out / "summary.csv"), skip=())
    want_run = json.loads((out / "run.json").read_text())
    assert r.run["scenario_hash"] == want_run["scenario_hash"]  # the dict is the same scenario as the file
    assert r.run["verdicts"] == want_run["verdicts"]
    assert r.run["gradflow_version"] == gradflow.__version__ == want_run["gradflow_version"]
    assert r.run["gradflow_commit"] == gradflow.__commit__ == want_run["gradflow_commit"]
    assert r.run["status"] == "complete"


def test_run_in_memory_writes_nothing(small_scenario, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(os.listdir(small_scenario.parent))
    gradflow.run(str(small_scenario), overrides={"network.steps": 20})
    assert os.listdir(work) == []
    assert sorted(os.listdir(small_scenario.parent)) == before


def test_run_into_out_equals_cli_files(small_scenario, tmp_path):
    run_cli("run", small_scenario, "-o", tmp_path / "cli", "--quiet", "--set", "network.units=16")
    r = gradflow.run(small_scenario, overrides={"network.units": 16}, out=tmp_path / "py")
    assert r.out == str(tmp_path / "py")
    assert_columns_equal(r.cells, gradflow.read_csv(tmp_path / "cli" / "cells.csv"))
    assert sorted(os.listdir(tmp_path / "py")) == sorted(os.listdir(tmp_path / "cli"))
    assert "report.html" in os.listdir(tmp_path / "py")
    os.remove(tmp_path / "py" / "report.html")
    assert gradflow.report(tmp_path / "py") == str(tmp_path / "py" / "report.html")
    assert "<h2>Verdicts</h2>" in (tmp_path / "py" / "report.html").read_text()
    # existing results are never clobbered
    with pytest.raises(gradflow.InputError):
        gradflow.run(small_scenario, out=tmp_path / "py")


def test_overrides_as_list_and_dict_agree(small_scenario):
    a = gradflow.run(small_scenario, overrides=["network.steps=30", "spectrum.kind=orthogonal"])
    b = gradflow.run(small_scenario, overrides={"network.steps": 30, "spectrum.kind": "orthogonal"})
    assert_columns_equal(a.cells, b.cells)
    assert a.run["scenario"]["resolved"]["network.steps"] == 30


def write_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float64))
    return path.name


def test_bptt_equals_cli_on_the_same_arrays(tmp_path):
    rng = np.random.default_rng(3)
    n, dim, steps, batch = 20, 3, 50, 2
    W = rng.normal(0, 1.2 / np.sqrt(n), (n, n))
    U = rng.normal(0, 0.4, (n, dim))
    b = rng.normal(0, 0.1, n)
    h0 = rng.normal(0, 1, (n, batch))
    (tmp_path / "s.toml").write_text(f"""seed = 11
[network]
units = {n}
steps = {steps}
batch = {batch}
activation = "swish"
[spectrum]
kind = "file"
file = "{write_npy(tmp_path / 'W.npy', W)}"
[input]
kind = "gaussian"
dim = {dim}
weights = "{write_npy(tmp_path / 'U.npy', U)}"
[bias]
file = "{write_npy(tmp_path / 'b.npy', b)}"
[init]
state = "file"
file = "{write_npy(tmp_path / 'h0.npy', h0)}"
[analysis]
burn_in = 0
lyapunov = 3
""")
    run_cli("run", tmp_path / "s.toml", "-o", tmp_path / "out", "--quiet")
    cells = gradflow.read_csv(tmp_path / "out" / "cells.csv")
    series = gradflow.read_csv(tmp_path / "out" / "series.csv")
    # Fortran order and C order, as given: the same numbers
    for Wi in (W, np.asfortranarray(W)):
        r = gradflow.bptt(Wi, activation="swish", steps=steps, batch=batch, U=U, b=b, h0=h0, seed=11, lyapunov=3)
        assert len(r["log10_grad_norm"]) == steps + 1
        assert np.array_equal(r["log10_grad_norm"], series["log10_grad_norm"])
        assert np.array_equal(r["mean_abs_dact_t"], series["mean_abs_dact_t"], equal_nan=True)
        for name, col in cells.items():
            if name in TIMING:
                continue
            want = col[0].item()
            if isinstance(want, float) and np.isnan(want):
                assert np.isnan(r[name]), name
            else:
                assert r[name] == want, name


def test_bptt_linear_network_decays_at_rho():
    # identity activation, orthogonal Q scaled by rho: ||g_t|| = rho^(T - t) ||g_T|| exactly (in exact maths)
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    rho, steps = 0.8, 40
    r = gradflow.bptt(rho * q, activation="identity", steps=steps, batch=2)
    expected = (steps - np.arange(steps + 1)) * np.log10(rho)
    np.testing.assert_allclose(r["log10_grad_norm"] - r["log10_grad_norm"][-1], expected, atol=1e-10)
    assert abs(r["growth_rate"] - rho) < 1e-10
    assert abs(r["rho"] - rho) < 1e-10
    # float precision on a float32 W: the same closed form to float accuracy
    f = gradflow.bptt(np.asfortranarray(rho * q, dtype=np.float32), activation="identity", steps=steps,
                      precision="float")
    np.testing.assert_allclose(f["log10_grad_norm"] - f["log10_grad_norm"][-1], expected, atol=1e-4)


def test_errors_carry_the_cli_messages(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nunits = 8\nactivaton = \"tanh\"\n")
    p = run_cli("run", bad, "-o", tmp_path / "o", check=False)
    assert p.returncode == 2
    with pytest.raises(gradflow.InputError) as e:
        gradflow.run(bad)
    assert p.stderr.strip() == "gradflow: " + str(e.value)
    assert "activation" in str(e.value)  # did you mean
    with pytest.raises(ValueError, match="spectrum.radius"):
        gradflow.run({"network": {"units": 8}, "spectrum": {"radius": -1.0}})
    with pytest.raises(ValueError, match="square"):
        gradflow.bptt(np.zeros((3, 4)), steps=5)
    with pytest.raises(ValueError, match="input.weights"):
        gradflow.bptt(np.eye(4), steps=5, U=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="tanh"):
        gradflow.bptt(np.eye(4), steps=5, activation="tahn")


def test_activations_and_critical_equal_the_cli():
    want = json.loads(run_cli("activations", "--json", "--mu", "0.3", "--sigma", "1.5").stdout)
    assert gradflow.activations(0.3, 1.5) == want
    relu = next(a for a in gradflow.activations() if a["name"] == "relu")
    assert abs(relu["mean"] - 1 / np.sqrt(2 * np.pi)) < 1e-12 and relu["sup_abs_deriv"] == 1.0
    want = json.loads(run_cli("critical", "--activation", "tanh", "--input-std", "0.5", "--json").stdout)
    got = gradflow.critical("tanh", input_std=0.5)
    got["range"] = list(got["range"])
    assert got == want
    assert abs(gradflow.critical("relu")["critical_gain"] - np.sqrt(2)) < 1e-8  # He: E[relu'^2] = 1/2


def test_critical_minimalrnn_line_equals_the_cli():
    args = ["--activation", "tanh", "--cell", "minimalrnn", "--input-std", "1", "--gate-input-gain", "1", "--json"]
    want = json.loads(run_cli("critical", *args, "--gate-bias", "-2", "0", "2").stdout)
    got = gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_bias=[-2, 0, 2], gate_input_gain=1.0)
    got["range"] = list(got["range"])
    assert got == want
    # The default line is the CLI's default (-4 ... 8), and a scalar gate_bias is a one-point line.
    default = gradflow.critical("tanh", input_std=1.0, cell="minimalrnn")
    assert [e["gate_bias"] for e in default["line"]] == [e["gate_bias"] for e in
                                                         json.loads(run_cli("critical", *args).stdout)["line"]]
    assert gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_bias=0)["line"] == [want["line"][1]]


def test_critical_minimalrnn_gain_is_where_chi_crosses_1():
    g = gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_bias=0)["line"][0]
    assert g["critical_gain"] is not None and not g["gain_is_jump"]
    gain = g["critical_gain"]
    # chi = 1 is a root: a bracket 2 % around the gain finds it again, one just below it finds no crossing.
    near = gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_bias=0, range=(0.98 * gain, 1.02 * gain))
    assert abs(near["line"][0]["critical_gain"] - gain) < 1e-7 * gain
    below = gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_bias=0, range=(0.01, 0.98 * gain))
    assert below["line"][0]["critical_gain"] is None
    # Without input fluctuations h settles on z and chi = E[u^2] < 1 at every gain: no critical line.
    still = gradflow.critical("tanh", cell="minimalrnn", gate_bias=[-2, 0, 2, 4])
    assert all(e["critical_gain"] is None for e in still["line"])


def test_critical_gate_arguments_need_the_minimalrnn():
    p = run_cli("critical", "--activation", "tanh", "--gate-bias", "1", check=False)
    assert p.returncode == 2
    with pytest.raises(gradflow.InputError) as e:
        gradflow.critical("tanh", gate_bias=[1.0])
    # The CLI's message in the Python argument names.
    cli_message = p.stderr.strip().removeprefix("gradflow: ")
    assert str(e.value) == (cli_message.replace("--gate-bias", "gate_bias").replace("--gate-input-gain", "gate_input_gain")
                            .replace("--cell minimalrnn", 'cell = "minimalrnn"'))
    with pytest.raises(gradflow.InputError, match="gate_input_gain"):
        gradflow.critical("tanh", gate_input_gain=1.0)
    with pytest.raises(gradflow.InputError, match="expected vanilla or minimalrnn"):
        gradflow.critical("tanh", cell="gru")
    with pytest.raises(gradflow.InputError, match="gate_input_gain"):
        gradflow.critical("tanh", input_std=1.0, cell="minimalrnn", gate_input_gain=-1.0)


def test_spectrum_of_known_matrices():
    s = gradflow.spectrum(np.diag([0.5, -2.0, 1.0]))
    assert s["rho"] == pytest.approx(2.0, abs=1e-12) and s["spectral_norm"] == pytest.approx(2.0, abs=1e-12)
    assert sorted(s["eigenvalues"].real) == pytest.approx([-2.0, 0.5, 1.0])
    rot = np.array([[0.0, -3.0], [3.0, 0.0]])
    assert gradflow.spectrum(rot)["rho"] == pytest.approx(3.0)


def test_ctrl_c_stops_a_run(tmp_path):
    # ~10 ms a cell, ~4 s in all: still running when the signal comes after 1 s
    long = {"network": {"units": 128, "steps": 1000, "batch": 8},
            "sweep": {"spectrum.radius": {"start": 0.5, "stop": 2.0, "num": 400}}}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            gradflow.run(long, threads=1, out=tmp_path / "stopped")
    finally:
        timer.cancel()
    run = json.loads((tmp_path / "stopped" / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert 0 < run["cells_done"] < 400
    # the rows kept are whole finished cells: --resume completes the run
    assert len(gradflow.read_csv(tmp_path / "stopped" / "cells.csv")["cell"]) == run["cells_done"]


class RNN:  # the shape of torch.nn.RNN that from_torch reads (torch itself is optional)
    class _T:
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def double(self):
            return self

        def numpy(self):
            return np.asarray(self.a, dtype=np.float64)

    def __init__(self, hidden, inputs, nonlinearity, rng):
        self.num_layers, self.bidirectional, self.nonlinearity = 1, False, nonlinearity
        self.sd = {"weight_ih_l0": rng.normal(size=(hidden, inputs)), "weight_hh_l0": rng.normal(size=(hidden, hidden)),
                   "bias_ih_l0": rng.normal(size=hidden), "bias_hh_l0": rng.normal(size=hidden)}

    def state_dict(self):
        return {k: self._T(v) for k, v in self.sd.items()}


def test_from_torch_rnn_gives_the_bptt_arguments():
    m = RNN(6, 2, "relu", np.random.default_rng(1))
    kw = gradflow.from_torch(m)
    assert kw["activation"] == "relu" and kw["cell"] == "vanilla"
    assert np.array_equal(kw["W"], m.sd["weight_hh_l0"]) and np.array_equal(kw["U"], m.sd["weight_ih_l0"])
    assert np.array_equal(kw["b"], m.sd["bias_ih_l0"] + m.sd["bias_hh_l0"])
    assert len(gradflow.bptt(**kw, steps=10)["log10_grad_norm"]) == 11


def test_from_torch_with_real_torch_matches_autograd():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    steps, dim, hidden = 30, 3, 12
    rnn = torch.nn.RNN(dim, hidden, nonlinearity="tanh").double()
    x = torch.randn(steps, 1, dim, dtype=torch.float64)
    h0 = torch.zeros(1, 1, hidden, dtype=torch.float64, requires_grad=True)
    _, hT = rnn(x, h0)
    (0.5 * (hT ** 2).sum()).backward()  # L = ||h_T||^2 / 2: dL/dh_T = h_T (loss = "final_state")
    g = gradflow.bptt(**gradflow.from_torch(rnn), steps=steps, inputs=x[:, 0, :].numpy(), loss="final_state")
    assert len(g["log10_grad_norm"]) == steps + 1
    assert g["log10_grad_norm"][0] == pytest.approx(np.log10(h0.grad.norm().item()), abs=1e-10)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bptt_gated_on_torch_arrays_matches_torch_autograd(cell):
    """bptt on a torch GRU / LSTM's arrays (torch's layout, as from_torch gives them) reproduces the committed
    PyTorch autograd reference (tests/data/torch_reference.py) to 1e-8 in log10, without torch."""
    d = os.path.join(SOURCE_DIR, "tests", "data", "torch_ref", cell)
    a = {n: np.load(os.path.join(d, n + ".npy")) for n in
         ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "x", "h0")}
    extra = {"c0": np.load(os.path.join(d, "c0.npy"))} if cell == "lstm" else {}
    ref = np.genfromtxt(os.path.join(d, "reference.csv"), delimiter=",", names=True)
    steps = len(ref) - 1
    got = gradflow.bptt(a["weight_hh_l0"], U=a["weight_ih_l0"], b=a["bias_ih_l0"], b_hh=a["bias_hh_l0"],
                        h0=a["h0"], inputs=a["x"], cell=cell, activation="tanh", steps=steps,
                        batch=a["h0"].shape[1], burn_in=a["x"].shape[0] - steps, loss="final_state", **extra)
    assert np.max(np.abs(got["log10_grad_norm"] - ref["log10_grad_norm"])) < 1e-8
    if cell == "lstm":
        assert np.max(np.abs(got["log10_grad_norm_h"] - ref["log10_grad_norm_h"])) < 1e-8
