// gradflow._gradflow: the C++ core behind the Python package gradflow (python/gradflow/__init__.py holds the
// pure-Python parts: results as numpy arrays, from_torch). The numbers come from the same library calls and
// the same row formatter (format_cell_rows) as the CLI, so they are equal bit for bit; the package parses the
// CSV text returned here with correctly rounded float parsing (shortest round-trip text in, same double out).
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <toml++/toml.h>

#include "gradflow/analysis/meanfield.hpp"
#include "gradflow/analysis/simulate.hpp"
#include "gradflow/model/config.hpp"
#include "gradflow/model/spectrum.hpp"
#include "gradflow/numerics/activation.hpp"
#include "gradflow/numerics/version.hpp"
#include "gradflow/run/memory_sink.hpp"
#include "gradflow/run/output.hpp"
#include "gradflow/run/report.hpp"
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/summary.hpp"
#include "gradflow/run/sweep.hpp"

namespace py = pybind11;
using namespace gradflow;

namespace {

/// Runs `work` on a thread of its own with the GIL released, while this (Python's) thread checks for
/// signals every 100 ms: on Ctrl-C it sets `stop` (the sweep stops dispatching cells), waits for the cells in
/// flight, runs `on_interrupt`, and raises KeyboardInterrupt. Exceptions of `work` are rethrown here.
template <class Work, class OnInterrupt>
void run_interruptible(std::atomic<bool>& stop, Work work, OnInterrupt on_interrupt) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      work();
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_all();
  });
  for (;;) {
    {
      py::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(m);
      if (cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; })) break;
    }
    if (PyErr_CheckSignals() != 0) {  // a Python exception (KeyboardInterrupt) is now set
      stop.store(true);
      {
        py::gil_scoped_release release;
        worker.join();
      }
      on_interrupt();
      throw py::error_already_set();
    }
  }
  worker.join();
  if (error) std::rethrow_exception(error);
}

/// A Python value as a TOML node: bool, int, float, str, list (array) or dict (table).
std::unique_ptr<toml::node> to_toml(const py::handle& v, const std::string& key);

void insert_table(toml::table& t, const py::dict& d, const std::string& prefix) {
  for (const auto& [k, v] : d) {
    const std::string key = py::str(k);
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (py::isinstance<py::dict>(v)) {
      toml::table sub;
      insert_table(sub, py::reinterpret_borrow<py::dict>(v), name);
      t.insert_or_assign(key, std::move(sub));
    } else {
      auto node = to_toml(v, name);
      t.insert_or_assign(key, std::move(*node));
    }
  }
}

std::unique_ptr<toml::node> to_toml(const py::handle& v, const std::string& key) {
  if (py::isinstance<py::bool_>(v)) return std::make_unique<toml::value<bool>>(v.cast<bool>());
  if (py::isinstance<py::int_>(v)) return std::make_unique<toml::value<std::int64_t>>(v.cast<std::int64_t>());
  if (py::isinstance<py::float_>(v)) return std::make_unique<toml::value<double>>(v.cast<double>());
  if (py::isinstance<py::str>(v)) return std::make_unique<toml::value<std::string>>(v.cast<std::string>());
  if (py::isinstance<py::dict>(v)) {
    auto t = std::make_unique<toml::table>();
    insert_table(*t, py::reinterpret_borrow<py::dict>(v), key);
    return t;
  }
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    auto a = std::make_unique<toml::array>();
    for (const auto& item : v) {
      auto node = to_toml(item, key);
      a->push_back(std::move(*node));
    }
    return a;
  }
  // numpy scalars and anything else float() or int() accepts
  if (py::hasattr(v, "dtype")) {
    const std::string kind = py::str(v.attr("dtype").attr("kind"));
    if (kind == "i" || kind == "u") return std::make_unique<toml::value<std::int64_t>>(v.attr("__int__")().cast<std::int64_t>());
    if (kind == "f") return std::make_unique<toml::value<double>>(v.attr("__float__")().cast<double>());
    if (kind == "b") return std::make_unique<toml::value<bool>>(v.attr("__bool__")().cast<bool>());
  }
  throw InputError("scenario dict: " + key + " = " + std::string(py::repr(v)) +
                   ": expected a bool, int, float, str, list or dict");
}

/// A key as TOML writes it: quoted ("spectrum.radius" is one key of [sweep], not a dotted path).
std::string toml_key(const std::string& key) {
  std::ostringstream text;
  text << toml::value<std::string>(key);
  return text.str();
}

/// A node as the right-hand side of `key = ...` (tables inline).
std::string toml_rhs(std::unique_ptr<toml::node> node) {
  std::ostringstream text;
  if (auto* t = node->as_table()) {
    t->is_inline(true);
    text << *t;
  } else {
    node->visit([&](const auto& n) { text << n; });
  }
  return text.str();
}

/// The scenario a dict describes, as TOML text: top-level keys, then one [table] per dict, keys in the dict's
/// order (the order of [sweep]'s axes is the sweep's: first axis slowest).
std::string dict_to_toml(const py::dict& d) {
  std::string head, tables;
  for (const auto& [k, v] : d) {
    const std::string key = py::str(k);
    if (!py::isinstance<py::dict>(v)) {
      head += toml_key(key) + " = " + toml_rhs(to_toml(v, key)) + "\n";
      continue;
    }
    tables += "[" + toml_key(key) + "]\n";
    for (const auto& [k2, v2] : py::reinterpret_borrow<py::dict>(v)) {
      const std::string key2 = py::str(k2);
      tables += toml_key(key2) + " = " + toml_rhs(to_toml(v2, key + "." + key2)) + "\n";
    }
  }
  return head + tables;
}

Scenario load(const py::object& scenario, const std::vector<std::string>& overrides) {
  if (py::isinstance<py::dict>(scenario))
    return parse_scenario(dict_to_toml(py::reinterpret_borrow<py::dict>(scenario)), "<dict>", overrides,
                          std::filesystem::current_path());
  return load_scenario(py::str(scenario).cast<std::string>(), overrides);
}

/// run(scenario, overrides, threads, out, force, resume, report): the sweep into memory (out None) or into OUTDIR as
/// `gradflow run` writes it. Returns {"cells_csv", "series_csv", "run_json"} (memory) or {"out"} (OUTDIR).
py::dict run(const py::object& scenario, const std::vector<std::string>& overrides, int threads,
             const std::optional<std::string>& out, bool force, bool resume, bool report) {
  const Scenario sc = load(scenario, overrides);
  const int nthreads = threads > 0 ? threads : omp_get_num_procs();
  std::atomic<bool> stop{false};
  SweepOptions opt;
  opt.threads = nthreads;
  opt.stop = &stop;
  py::dict result;
  if (!out) {
    MemorySink sink(sc);
    run_interruptible(stop, [&] { run_sweep(sc, sink, opt); }, [] {});
    const bool complete = sink.done_count() == sink.total();
    std::string cells, series, run_json;
    {
      py::gil_scoped_release release;
      cells = sink.cells_csv();
      series = sink.series_csv();
      run_json = sink.run_json(nthreads, complete ? "complete" : "interrupted").dump();
    }
    result["cells_csv"] = cells;
    result["series_csv"] = series;
    result["run_json"] = run_json;
    // The summary every complete whole run writes (summary.csv), here computed from the rows in memory.
    if (complete) {
      std::string summary;
      {
        py::gil_scoped_release release;
        summary = summary_csv(compute_summary_text(cells));
      }
      result["summary_csv"] = summary;
    }
    return result;
  }
  RunWriter writer(sc, *out, OutputOptions{resume, force, Shard{}}, nthreads);
  run_interruptible(stop, [&] { run_sweep(sc, writer, opt); },
                    [&] { try { writer.finish("interrupted"); } catch (const WriteError&) {} });
  if (const auto e = writer.write_error()) {
    try { writer.finish("write_error"); } catch (const WriteError&) {}
    throw *e;
  }
  const bool complete = writer.done_count() == writer.total();
  std::string report_error;
  {
    py::gil_scoped_release release;
    writer.finish(complete ? "complete" : "interrupted");
    if (complete && report) {
      try {
        write_report(writer.dir());
      } catch (const std::exception& e) {  // as the CLI: the run succeeded, the page is a view of it
        report_error = std::string("report.html not written: ") + e.what();
      }
    }
  }
  if (!report_error.empty()) PyErr_WarnEx(PyExc_RuntimeWarning, report_error.c_str(), 1);
  result["out"] = writer.dir().string();
  return result;
}

std::shared_ptr<const Eigen::MatrixXd> shared(const std::optional<Eigen::Ref<const Eigen::MatrixXd>>& m) {
  if (!m) return nullptr;
  return std::make_shared<const Eigen::MatrixXd>(*m);
}

/// bptt(...): one cell on the given arrays, as a one-cell scenario with kind = "file" parts would run it.
/// Returns {"cells_csv", "series_csv"} text, exactly the rows `gradflow run` writes for that scenario.
py::dict bptt(Eigen::Ref<const Eigen::MatrixXd> w, const std::string& activation, Eigen::Index steps,
              Eigen::Index batch, const std::string& cell, std::optional<Eigen::Ref<const Eigen::MatrixXd>> u,
              std::optional<Eigen::Ref<const Eigen::MatrixXd>> b, std::optional<Eigen::Ref<const Eigen::MatrixXd>> h0,
              std::optional<Eigen::Ref<const Eigen::MatrixXd>> inputs, const std::string& loss,
              const std::string& precision, std::uint64_t seed, Eigen::Index lyapunov, Eigen::Index burn_in,
              std::optional<double> alpha, double beta, double leak,
              std::optional<Eigen::Ref<const Eigen::MatrixXd>> b_hh, std::optional<Eigen::Ref<const Eigen::MatrixXd>> c0) {
  Config c;
  c.title = "gradflow.bptt";
  c.seed = seed;
  const CellKind kind = parse_cell_kind(cell);
  const Eigen::Index blocks = gate_blocks(kind);
  if (kind == CellKind::minimalrnn)
    throw std::invalid_argument("cell = \"minimalrnn\": not available in bptt (it needs U_z); use a scenario");
  if (w.cols() < 1 || w.rows() != blocks * w.cols())
    throw std::invalid_argument("W: must be " + std::string(blocks == 1 ? "a non-empty square matrix" :
                                std::to_string(blocks) + " N x N (torch's weight_hh_l0, gate blocks stacked)") +
                                ", got " + std::to_string(w.rows()) + " x " + std::to_string(w.cols()));
  c.network.units = w.cols();
  c.network.steps = steps;
  c.network.batch = batch;
  c.network.activation = parse_activation(activation);
  c.network.alpha = alpha;
  c.network.beta = beta;
  c.network.cell = kind;
  c.network.leak = leak;
  c.network.precision = parse_precision(precision);
  c.input.kind = inputs ? InputKind::file : u ? InputKind::gaussian : InputKind::none;
  if (is_gated(kind)) {
    // The gated cells take torch's layout as an import: W = weight_hh, U = weight_ih, b = bias_ih, b_hh.
    const Eigen::Index rows = blocks * w.cols();
    auto t = std::make_shared<TorchWeights>();
    t->weight_hh = w;
    t->weight_ih = u ? Eigen::MatrixXd(*u) : Eigen::MatrixXd(rows, inputs ? inputs->cols() : 0);
    if (!u) t->weight_ih.setZero();
    auto as_vector = [rows](const std::optional<Eigen::Ref<const Eigen::MatrixXd>>& m) -> Eigen::VectorXd {
      if (!m) return Eigen::VectorXd::Zero(rows);
      const Eigen::MatrixXd dense = *m;
      return Eigen::Map<const Eigen::VectorXd>(dense.data(), dense.size());
    };
    t->bias_ih = as_vector(b);
    t->bias_hh = as_vector(b_hh);
    c.import.torch = "arrays";
    c.import.weights = t;
    c.input.dim = t->weight_ih.cols();
    if (c0) {
      c.init.cell_file = "c0";
      c.init.cell_matrix = shared(c0);
    }
    u.reset();
    b.reset();
  } else {
    if (b_hh || c0) throw std::invalid_argument("b_hh, c0: only for the gated cells (gru, lstm)");
    c.spectrum.kind = SpectrumKind::file;
    c.spectrum.file = "W";
    c.spectrum.matrix = std::make_shared<const Eigen::MatrixXd>(w);
  }
  if (u) {
    c.input.weights = "U";
    c.input.matrix = shared(u);
    c.input.dim = u->cols();
  } else if (inputs) {
    c.input.std = 0.0;  // inputs without U drive nothing (as input.std = 0 in a scenario)
  }
  if (inputs) {
    c.input.file = "inputs";
    c.input.sequence = shared(inputs);
    if (!u) c.input.dim = inputs->cols();
  }
  if (b) {
    c.bias.file = "b";
    c.bias.vector = shared(b);
  }
  if (h0) {
    c.init.state = InitState::file;
    c.init.file = "h0";
    c.init.matrix = shared(h0);
  }
  c.loss.kind = parse_loss_kind(loss);
  c.analysis.lyapunov = lyapunov;
  c.analysis.burn_in = burn_in;
  c.analysis.series = true;
  validate_config(c);
  Scenario sc;
  sc.name = "bptt";
  sc.base = c;
  CellRows rows;
  {
    py::gil_scoped_release release;
    const CellResult r = simulate_cell(c, 0, 0);
    rows = format_cell_rows(sc, 0, 0, r);
  }
  auto join = [](const std::vector<std::string>& f) {
    std::string s;
    for (std::size_t i = 0; i < f.size(); ++i) s += (i ? "," : "") + f[i];
    return s + "\n";
  };
  py::dict result;
  result["cells_csv"] = join(cell_columns(sc)) + rows.cells;
  result["series_csv"] = join(series_columns(sc)) + rows.series;
  return result;
}

Activation make_activation(const std::string& name, std::optional<double> alpha, double beta) {
  const ActivationKind k = parse_activation(name);
  Activation f(k, alpha ? *alpha : default_alpha(k), beta);
  f.validate();
  return f;
}

py::list activations(double mu, double sigma, std::optional<double> alpha, double beta) {
  if (!(sigma >= 0) || !std::isfinite(mu) || !std::isfinite(sigma))
    throw InputError("sigma = " + std::to_string(sigma) + ": must be >= 0 (and mu finite)");
  py::list out;
  for (ActivationKind k : all_activations()) {
    const Activation f(k, alpha ? *alpha : default_alpha(k), beta);
    GaussianMoments m;
    {
      py::gil_scoped_release release;
      m = gaussian_moments(f, mu, sigma);
    }
    py::dict d;
    d["name"] = to_string(k);
    d["mean"] = m.mean;
    d["second_moment"] = m.second_moment;
    d["mean_abs_deriv"] = m.mean_abs_deriv;
    d["mean_sq_deriv"] = m.mean_sq_deriv;
    d["zero_prob"] = m.zero_prob;
    d["sup_abs_deriv"] = m.sup_abs_deriv;
    d["alpha"] = f.alpha;
    d["beta"] = f.beta;
    out.append(d);
  }
  return out;
}

/// The minimalRNN's critical line as `gradflow critical --cell minimalrnn --json` gives it: for each gate bias b_u,
/// the gains sigma_h of U_h where chi = E[u^2] + sigma_h^2 E[sigmoid'(e)^2] E[(h - z)^2] = 1, and Q* there.
py::dict minimalrnn_line(MeanFieldParams p, double init_std, const std::vector<double>& gate_biases, double lo,
                         double hi) {
  py::list line;
  for (double b : gate_biases) {
    p.gate_bias = b;
    CriticalGain c;
    double q = 0.0;
    {
      py::gil_scoped_release release;
      c = critical_gain(p, lo, hi);
      if (c.gain) {
        MeanFieldParams at = p;
        at.gain = *c.gain;
        q = mean_field(at).q;
      }
    }
    py::dict e;
    e["gate_bias"] = b;
    e["critical_gain"] = c.gain ? py::object(py::float_(*c.gain)) : py::object(py::none());
    e["q_star"] = c.gain ? py::object(py::float_(q)) : py::object(py::none());
    e["gain_is_jump"] = c.gain_is_jump;
    e["crossings"] = c.crossings;
    e["jumps"] = c.jumps;
    line.append(e);
  }
  py::dict d;
  d["cell"] = "minimalrnn";
  d["activation"] = to_string(p.activation.kind);
  d["alpha"] = p.activation.alpha;
  d["beta"] = p.activation.beta;
  d["input_std"] = p.input_std;
  d["bias_mean"] = p.bias_mean;
  d["bias_std"] = p.bias_std;
  d["init_std"] = init_std;
  d["gate_input_gain"] = p.gate_input_gain;
  d["range"] = py::make_tuple(lo, hi);
  d["line"] = line;
  return d;
}

py::dict critical(const std::string& activation, double input_std, double bias_mean, double bias_std,
                  std::optional<double> alpha, double beta, double init_std, double lo, double hi,
                  const std::string& cell, std::optional<std::vector<double>> gate_biases,
                  std::optional<double> gate_input_gain) {
  auto non_negative = [](const char* name, double x) {
    if (!std::isfinite(x) || x < 0) throw InputError(std::string(name) + " = " + std::to_string(x) + ": must be >= 0");
  };
  non_negative("input_std", input_std);
  non_negative("bias_std", bias_std);
  non_negative("init_std", init_std);
  if (!std::isfinite(bias_mean)) throw InputError("bias_mean: must be finite");
  if (!(lo > 0 && hi > lo && std::isfinite(hi))) throw InputError("range: must satisfy 0 < LO < HI");
  MeanFieldParams p;
  p.activation = make_activation(activation, alpha, beta);
  p.input_std = input_std;
  p.bias_mean = bias_mean;
  p.bias_std = bias_std;
  p.h0_sq = init_std * init_std;
  CellKind kind;
  try {
    kind = parse_cell_kind(cell);
  } catch (const std::invalid_argument& e) {
    throw InputError("cell " + cell + ": " + e.what());
  }
  if (kind != CellKind::vanilla && kind != CellKind::minimalrnn)
    throw InputError("cell " + cell + ": expected vanilla or minimalrnn (the cells with a mean-field theory)");
  if (kind == CellKind::vanilla && (gate_biases || gate_input_gain))
    throw InputError("gate_bias and gate_input_gain: only with cell = \"minimalrnn\"");
  if (kind == CellKind::minimalrnn) {
    std::vector<double> biases;  // default -4, -3, ..., 8 as the CLI's --gate-bias
    if (gate_biases) biases = *gate_biases;
    else for (int k = -4; k <= 8; ++k) biases.push_back(k);
    for (double b : biases)
      if (!std::isfinite(b)) throw InputError("gate_bias " + std::to_string(b) + ": must be finite");
    p.cell = kind;
    p.gate_input_gain = gate_input_gain.value_or(1.0);
    non_negative("gate_input_gain", p.gate_input_gain);
    return minimalrnn_line(p, init_std, biases, lo, hi);
  }
  CriticalGain c;
  MeanField at;
  {
    py::gil_scoped_release release;
    c = critical_gain(p, lo, hi);
    if (c.gain) {
      p.gain = *c.gain;
      at = mean_field(p);
    }
  }
  py::dict d;
  d["activation"] = to_string(p.activation.kind);
  d["alpha"] = p.activation.alpha;
  d["beta"] = p.activation.beta;
  d["input_std"] = input_std;
  d["bias_mean"] = bias_mean;
  d["bias_std"] = bias_std;
  d["init_std"] = init_std;
  d["critical_gain"] = c.gain ? py::object(py::float_(*c.gain)) : py::object(py::none());
  d["q_star"] = c.gain && at.status == MeanFieldStatus::ok ? py::object(py::float_(at.q)) : py::object(py::none());
  d["mf_status"] = c.gain ? py::object(py::str(to_string(at.status))) : py::object(py::none());
  d["gain_is_jump"] = c.gain_is_jump;
  d["crossings"] = c.crossings;
  d["jumps"] = c.jumps;
  d["range"] = py::make_tuple(c.lo, c.hi);
  return d;
}

py::dict spectrum(Eigen::Ref<const Eigen::MatrixXd> w, bool eigen) {
  if (w.rows() < 1 || w.rows() != w.cols())
    throw std::invalid_argument("W: must be a non-empty square matrix, got " + std::to_string(w.rows()) + " x " +
                                std::to_string(w.cols()));
  const Eigen::MatrixXd m = w;
  SpectralInfo info;
  Eigen::VectorXcd ev;
  {
    py::gil_scoped_release release;
    info = analyse_spectrum(m);
    if (eigen) ev = eigenvalues(m);
  }
  py::dict d;
  d["units"] = m.rows();
  d["rho"] = info.rho;
  d["spectral_norm"] = info.spectral_norm;
  d["norm_over_rho"] = info.rho > 0 ? info.spectral_norm / info.rho : 0.0;
  d["rho_status"] = to_string(info.rho_status);
  d["norm_status"] = to_string(info.norm_status);
  d["message"] = info.message;
  if (eigen) d["eigenvalues"] = ev;
  return d;
}

}  // namespace

PYBIND11_MODULE(_gradflow, m) {
  m.doc() = "gradflow's C++ core (use the package gradflow)";
  m.attr("__version__") = version();
  m.attr("__commit__") = git_commit();
  py::register_exception<InputError>(m, "InputError", PyExc_ValueError);
  py::register_exception<WriteError>(m, "WriteError", PyExc_OSError);
  m.def("run", &run, py::arg("scenario"), py::arg("overrides"), py::arg("threads"), py::arg("out"),
        py::arg("force"), py::arg("resume"), py::arg("report"));
  m.def("report", [](const std::string& outdir) {
          py::gil_scoped_release release;
          return write_report(outdir).string();
        }, py::arg("outdir"));
  m.def("bptt", &bptt, py::arg("W"), py::arg("activation"), py::arg("steps"), py::arg("batch"), py::arg("cell"),
        py::arg("U").none(true), py::arg("b").none(true), py::arg("h0").none(true), py::arg("inputs").none(true),
        py::arg("loss"), py::arg("precision"), py::arg("seed"), py::arg("lyapunov"), py::arg("burn_in"),
        py::arg("alpha").none(true), py::arg("beta"), py::arg("leak"), py::arg("b_hh").none(true),
        py::arg("c0").none(true));
  m.def("activations", &activations, py::arg("mu"), py::arg("sigma"), py::arg("alpha").none(true), py::arg("beta"));
  m.def("critical", &critical, py::arg("activation"), py::arg("input_std"), py::arg("bias_mean"),
        py::arg("bias_std"), py::arg("alpha").none(true), py::arg("beta"), py::arg("init_std"), py::arg("lo"),
        py::arg("hi"), py::arg("cell"), py::arg("gate_biases").none(true), py::arg("gate_input_gain").none(true));
  m.def("spectrum", &spectrum, py::arg("W"), py::arg("eigenvalues"));
  m.def("scenario_toml", [](const py::dict& d) { return dict_to_toml(d); }, py::arg("scenario"),
        "The TOML text run() parses for a scenario dict");
}
