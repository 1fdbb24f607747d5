// The scenario key registry (names, types, defaults, constraints) and the validation of a resolved config.
#include "gradflow/run/scenario.hpp"
#include "gradflow/run/memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

namespace gradflow {

// ---------------------------------------------------------------------------------------------------
// Values

std::string SourceLocation::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string format_value(const Value& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "(unset)"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      char buf[64];
      auto res = std::to_chars(buf, buf + sizeof buf, d);
      std::string s(buf, res.ptr);
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    std::string operator()(const std::string& s) const { return "\"" + s + "\""; }
  };
  return std::visit(Visitor{}, v);
}

std::string to_string(ValueType t) {
  switch (t) {
    case ValueType::boolean: return "a boolean";
    case ValueType::integer: return "an integer";
    case ValueType::number: return "a number";
    case ValueType::string: return "a string";
  }
  return "a value";
}

namespace {

std::int64_t as_int(const Value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  throw std::invalid_argument("expected an integer");
}
double as_number(const Value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d)) throw std::invalid_argument("expected a finite number");
    return *d;
  }
  throw std::invalid_argument("expected a number");
}
bool as_bool(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  throw std::invalid_argument("expected a boolean (true or false)");
}
const std::string& as_string(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  throw std::invalid_argument("expected a string");
}

std::int64_t at_least(std::int64_t x, std::int64_t lo) {
  if (x < lo) throw std::invalid_argument("must be >= " + std::to_string(lo));
  return x;
}
double non_negative(double x) {
  if (x < 0) throw std::invalid_argument("must be >= 0");
  return x;
}
double positive(double x) {
  if (!(x > 0)) throw std::invalid_argument("must be > 0");
  return x;
}
/// Scales beyond 1e30 (or, for beta, below 1e-30) cannot run: squared in the mean-field variance
/// (gain^2 q + input_std^2 + ...) and in the Gaussian moments they overflow to inf in every cell.
constexpr double kMaxScale = 1e30;
double bounded(double x) {
  if (!(std::abs(x) <= kMaxScale))
    throw std::invalid_argument("must be at most 1e30 in magnitude (its square overflows the mean-field variance)");
  return x;
}
double beta_range(double x) {
  if (!(x >= 1.0 / kMaxScale && x <= kMaxScale))
    throw std::invalid_argument("must satisfy 1e-30 <= beta <= 1e30 (outside, softplus' moments overflow)");
  return x;
}
double fraction_below_one(double x) {
  if (x < 0 || x >= 1) throw std::invalid_argument("must satisfy 0 <= value < 1");
  return x;
}

// Upper limits that keep sizes meaningful and products within 64 bits; the memory check is separate.
constexpr std::int64_t kMaxDimension = std::int64_t(1) << 31;

std::vector<KeySpec> make_keys() {
  std::vector<KeySpec> k;
  auto add = [&](std::string name, ValueType type, std::string doc, std::function<Value(const Config&)> get,
                 std::function<void(Config&, const Value&)> set) {
    k.push_back(KeySpec{std::move(name), type, std::move(doc), std::move(get), std::move(set)});
  };
  using I = std::int64_t;
  add("title", ValueType::string, "free text shown in run.json and plots",
      [](const Config& c) { return Value(c.title); }, [](Config& c, const Value& v) { c.title = as_string(v); });
  add("seed", ValueType::integer, "run seed (>= 0); every cell and replicate derives its streams from it",
      [](const Config& c) { return Value(I(c.seed)); },
      [](Config& c, const Value& v) { c.seed = static_cast<std::uint64_t>(at_least(as_int(v), 0)); });

  add("network.units", ValueType::integer, "N, hidden units (>= 1)",
      [](const Config& c) { return Value(I(c.network.units)); },
      [](Config& c, const Value& v) { c.network.units = std::min(at_least(as_int(v), 1), kMaxDimension); });
  add("network.steps", ValueType::integer, "T, backpropagated time steps (>= 1)",
      [](const Config& c) { return Value(I(c.network.steps)); },
      [](Config& c, const Value& v) { c.network.steps = std::min(at_least(as_int(v), 1), kMaxDimension); });
  add("network.batch", ValueType::integer, "B, independent trajectories per cell (>= 1)",
      [](const Config& c) { return Value(I(c.network.batch)); },
      [](Config& c, const Value& v) { c.network.batch = std::min(at_least(as_int(v), 1), kMaxDimension); });
  add("network.activation", ValueType::string,
      "f: identity, tanh, sigmoid, relu, leaky_relu, elu, softplus, swish, gelu, hard_tanh, selu",
      [](const Config& c) { return Value(to_string(c.network.activation)); },
      [](Config& c, const Value& v) { c.network.activation = parse_activation(as_string(v)); });
  add("network.alpha", ValueType::number,
      "negative slope of leaky_relu (default 0.01) or scale of elu (default 1)",
      [](const Config& c) { return c.network.alpha ? Value(*c.network.alpha) : Value(); },
      [](Config& c, const Value& v) { c.network.alpha = bounded(as_number(v)); });
  add("network.beta", ValueType::number, "sharpness of softplus (log(1 + e^(beta x)) / beta) and swish (> 0)",
      [](const Config& c) { return Value(c.network.beta); },
      [](Config& c, const Value& v) { c.network.beta = beta_range(positive(as_number(v))); });
  add("network.slope_at_kink", ValueType::string,
      "relu / leaky_relu f'(0): right (1, the default) or left (0 for relu, alpha for leaky_relu, as PyTorch and "
      "JAX); it matters only where a pre-activation is exactly 0 (a network at rest)",
      [](const Config& c) { return Value(std::string(c.network.left_slope_at_kink ? "left" : "right")); },
      [](Config& c, const Value& v) {
        const std::string& x = as_string(v);
        if (x != "right" && x != "left") throw std::invalid_argument("must be \"right\" or \"left\"");
        c.network.left_slope_at_kink = x == "left";
      });
  add("network.precision", ValueType::string, "scalar of the forward and backward pass: float or double",
      [](const Config& c) { return Value(to_string(c.network.precision)); },
      [](Config& c, const Value& v) { c.network.precision = parse_precision(as_string(v)); });

  add("network.cell", ValueType::string,
      "vanilla: h_t = f(a_t); residual: h_t = h_{t-1} + f(a_t); leaky: h_t = (1 - leak) h_{t-1} + leak f(a_t); "
      "gru, lstm: as torch.nn.GRU / LSTM (f the candidate nonlinearity); minimalrnn: Chen et al. 2018",
      [](const Config& c) { return Value(to_string(c.network.cell)); },
      [](Config& c, const Value& v) { c.network.cell = parse_cell_kind(as_string(v)); });
  add("network.leak", ValueType::number, "leak rate of the leaky cell (0 < leak <= 1)",
      [](const Config& c) { return Value(c.network.leak); },
      [](Config& c, const Value& v) {
        const double x = as_number(v);
        if (!(x > 0.0 && x <= 1.0)) throw std::invalid_argument("must satisfy 0 < leak <= 1");
        c.network.leak = x;
      });
  add("gates.radius", ValueType::number,
      "gru, lstm, minimalrnn: exact spectral radius of each gate block's recurrent W (>= 0); default spectrum.radius",
      [](const Config& c) { return c.gates.radius ? Value(*c.gates.radius) : Value(); },
      [](Config& c, const Value& v) { c.gates.radius = non_negative(as_number(v)); });
  add("gates.bias", ValueType::number,
      "gru, lstm, minimalrnn: bias of the gate that carries memory (gru z, lstm f, minimalrnn u); the other "
      "gates' biases are 0",
      [](const Config& c) { return Value(c.gates.bias); },
      [](Config& c, const Value& v) {
        const double x = as_number(v);
        if (!std::isfinite(x)) throw std::invalid_argument("must be finite");
        c.gates.bias = x;
      });
  add("import.torch", ValueType::string,
      "folder of a single-layer torch nn.RNN / GRU / LSTM state_dict saved with numpy.save (weight_ih_l0.npy, "
      "weight_hh_l0.npy, bias_ih_l0.npy, bias_hh_l0.npy): W, U and b of every block",
      [](const Config& c) { return Value(c.import.torch); },
      [](Config& c, const Value& v) {
        c.import.torch = as_string(v);
        c.import.weights.reset();
      });
  add("spectrum.kind", ValueType::string,
      "W: ginibre (iid N(0, 1/N)), orthogonal (Haar), symmetric (GOE), file, sparse (Gaussian, density or "
      "in_degree), nonnormal (Q (D + s R) Q^T), chain (delay line, rho = 0), dale (E/I columns)",
      [](const Config& c) { return Value(to_string(c.spectrum.kind)); },
      [](Config& c, const Value& v) { c.spectrum.kind = parse_spectrum_kind(as_string(v)); });
  add("spectrum.radius", ValueType::number,
      "exact spectral radius rho(W) (>= 0); default 1, or as read for kind = \"file\"",
      [](const Config& c) { return c.spectrum.radius ? Value(*c.spectrum.radius) : Value(); },
      [](Config& c, const Value& v) { c.spectrum.radius = bounded(non_negative(as_number(v))); });
  add("spectrum.file", ValueType::string, "W as .npy or .mtx (kind = \"file\"), relative to the scenario file",
      [](const Config& c) { return Value(c.spectrum.file); },
      [](Config& c, const Value& v) {
        c.spectrum.file = as_string(v);
        c.spectrum.matrix.reset();
        c.spectrum.sparse_matrix.reset();
      });
  add("spectrum.density", ValueType::number,
      "kind = \"sparse\": Erdos-Renyi fill, each W_ij nonzero with probability p (0 < p <= 1; 0 = use in_degree)",
      [](const Config& c) { return Value(c.spectrum.sparse.density); },
      [](Config& c, const Value& v) {
        const double p = as_number(v);
        if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("must satisfy 0 <= density <= 1");
        c.spectrum.sparse.density = p;
      });
  add("spectrum.in_degree", ValueType::integer,
      "kind = \"sparse\": K nonzeros per row, distinct random columns (1 <= K <= units; 0 = use density)",
      [](const Config& c) { return Value(I(c.spectrum.sparse.in_degree)); },
      [](Config& c, const Value& v) { c.spectrum.sparse.in_degree = std::min(at_least(as_int(v), 0), kMaxDimension); });
  add("spectrum.nonnormality", ValueType::number,
      "kind = \"nonnormal\": s in W = Q (D + s R) Q^T, R strictly block-upper with N(0, 1/N) entries (>= 0)",
      [](const Config& c) { return Value(c.spectrum.nonnormality); },
      [](Config& c, const Value& v) { c.spectrum.nonnormality = non_negative(as_number(v)); });
  add("spectrum.excitatory", ValueType::number, "kind = \"dale\": fraction f of excitatory columns (0 < f < 1)",
      [](const Config& c) { return Value(c.spectrum.dale.excitatory); },
      [](Config& c, const Value& v) {
        const double f = as_number(v);
        if (!(f > 0.0 && f < 1.0)) throw std::invalid_argument("must satisfy 0 < excitatory < 1");
        c.spectrum.dale.excitatory = f;
      });
  add("spectrum.mean_e", ValueType::number, "kind = \"dale\": E weights have mean mean_e / sqrt(N) (>= 0)",
      [](const Config& c) { return Value(c.spectrum.dale.mean_e); },
      [](Config& c, const Value& v) { c.spectrum.dale.mean_e = non_negative(as_number(v)); });
  add("spectrum.std_e", ValueType::number, "kind = \"dale\": E weights have std std_e / sqrt(N) (>= 0)",
      [](const Config& c) { return Value(c.spectrum.dale.std_e); },
      [](Config& c, const Value& v) { c.spectrum.dale.std_e = non_negative(as_number(v)); });
  add("spectrum.mean_i", ValueType::number, "kind = \"dale\": I weights have mean mean_i / sqrt(N) (<= 0)",
      [](const Config& c) { return Value(c.spectrum.dale.mean_i); },
      [](Config& c, const Value& v) {
        const double m = as_number(v);
        if (m > 0.0) throw std::invalid_argument("must be <= 0 (inhibitory)");
        c.spectrum.dale.mean_i = m;
      });
  add("spectrum.std_i", ValueType::number, "kind = \"dale\": I weights have std std_i / sqrt(N) (>= 0)",
      [](const Config& c) { return Value(c.spectrum.dale.std_i); },
      [](Config& c, const Value& v) { c.spectrum.dale.std_i = non_negative(as_number(v)); });
  add("spectrum.balance", ValueType::boolean,
      "kind = \"dale\": shift every row of W to sum to zero (Rajan & Abbott 2006), removing the outlier",
      [](const Config& c) { return Value(c.spectrum.dale.balance); },
      [](Config& c, const Value& v) { c.spectrum.dale.balance = as_bool(v); });
  add("spectrum.storage", ValueType::string,
      "W as dense or sparse; auto: sparse when units >= 512 and nonzeros <= 10% of units^2",
      [](const Config& c) { return Value(to_string(c.spectrum.storage)); },
      [](Config& c, const Value& v) { c.spectrum.storage = parse_storage_policy(as_string(v)); });

  add("input.kind", ValueType::string,
      "input drive: none, gaussian (x_t ~ N(0, I) per step, ziggurat draws since 0.2.0: other numbers than 0.1.0 for the same seed) or file (one sequence x shared by all trajectories)",
      [](const Config& c) { return Value(to_string(c.input.kind)); },
      [](Config& c, const Value& v) { c.input.kind = parse_input_kind(as_string(v)); });
  add("input.std", ValueType::number, "std of each unit's input current (U x_t)_i (>= 0)",
      [](const Config& c) { return Value(c.input.std); },
      [](Config& c, const Value& v) { c.input.std = bounded(non_negative(as_number(v))); });
  add("input.dim", ValueType::integer, "dimension of x_t (>= 1); U is N x dim with U_ij ~ N(0, std^2/dim)",
      [](const Config& c) { return Value(I(c.input.dim)); },
      [](Config& c, const Value& v) { c.input.dim = std::min(at_least(as_int(v), 1), kMaxDimension); });
  add("input.file", ValueType::string,
      "kind = \"file\": x as .npy or .mtx, (burn_in + steps) x dim, row s = x at forward step s + 1",
      [](const Config& c) { return Value(c.input.file); },
      [](Config& c, const Value& v) {
        c.input.file = as_string(v);
        c.input.sequence.reset();
      });
  add("input.weights", ValueType::string, "U as .npy or .mtx, units x dim, instead of the random draw",
      [](const Config& c) { return Value(c.input.weights); },
      [](Config& c, const Value& v) {
        c.input.weights = as_string(v);
        c.input.matrix.reset();
      });

  add("bias.mean", ValueType::number, "mean of b_i ~ N(mean, std^2), drawn once per cell",
      [](const Config& c) { return Value(c.bias.mean); },
      [](Config& c, const Value& v) { c.bias.mean = bounded(as_number(v)); });
  add("bias.std", ValueType::number, "std of b_i (>= 0)", [](const Config& c) { return Value(c.bias.std); },
      [](Config& c, const Value& v) { c.bias.std = bounded(non_negative(as_number(v))); });
  add("bias.file", ValueType::string, "b as .npy or .mtx (units values) instead of the draw",
      [](const Config& c) { return Value(c.bias.file); },
      [](Config& c, const Value& v) {
        c.bias.file = as_string(v);
        c.bias.vector.reset();
      });

  add("init.state", ValueType::string, "h_0 before the burn-in: zero, gaussian or file",
      [](const Config& c) { return Value(to_string(c.init.state)); },
      [](Config& c, const Value& v) { c.init.state = parse_init_state(as_string(v)); });
  add("init.std", ValueType::number, "std of h_0 ~ N(0, std^2) for state = \"gaussian\" (>= 0)",
      [](const Config& c) { return Value(c.init.std); },
      [](Config& c, const Value& v) { c.init.std = bounded(non_negative(as_number(v))); });
  add("init.file", ValueType::string, "state = \"file\": h_0 as .npy or .mtx, units (shared) or units x batch",
      [](const Config& c) { return Value(c.init.file); },
      [](Config& c, const Value& v) {
        c.init.file = as_string(v);
        c.init.matrix.reset();
      });

  add("init.cell_file", ValueType::string, "lstm: c_0 as .npy or .mtx, units (shared) or units x batch (zero "
      "when empty)",
      [](const Config& c) { return Value(c.init.cell_file); },
      [](Config& c, const Value& v) {
        c.init.cell_file = as_string(v);
        c.init.cell_matrix.reset();
      });

  add("loss.kind", ValueType::string,
      "seed g_T = dL/dh_T: random (unit vector per trajectory) or final_state (g_T = h_T)",
      [](const Config& c) { return Value(to_string(c.loss.kind)); },
      [](Config& c, const Value& v) { c.loss.kind = parse_loss_kind(as_string(v)); });

  add("analysis.burn_in", ValueType::integer, "forward steps run before t = 0, not backpropagated (>= 0)",
      [](const Config& c) { return Value(I(c.analysis.burn_in)); },
      [](Config& c, const Value& v) { c.analysis.burn_in = std::min(at_least(as_int(v), 0), kMaxDimension); });
  add("analysis.series", ValueType::boolean, "write series.csv (per-step log10 ||g_t||)",
      [](const Config& c) { return Value(c.analysis.series); },
      [](Config& c, const Value& v) { c.analysis.series = as_bool(v); });
  add("analysis.regime_tolerance", ValueType::number,
      "critical when |growth_rate - 1| <= tolerance (0 <= tolerance < 1)",
      [](const Config& c) { return Value(c.analysis.regime_tolerance); },
      [](Config& c, const Value& v) { c.analysis.regime_tolerance = fraction_below_one(as_number(v)); });
  add("analysis.fit_skip", ValueType::number,
      "fraction of lags skipped as transient before the growth-rate fit (0 <= skip < 1)",
      [](const Config& c) { return Value(c.analysis.fit_skip); },
      [](Config& c, const Value& v) { c.analysis.fit_skip = fraction_below_one(as_number(v)); });
  add("analysis.lyapunov", ValueType::integer, "number of Lyapunov exponents to compute (0 = off, <= units)",
      [](const Config& c) { return Value(I(c.analysis.lyapunov)); },
      [](Config& c, const Value& v) { c.analysis.lyapunov = std::min(at_least(as_int(v), 0), kMaxDimension); });
  add("analysis.lyapunov_burn_in", ValueType::integer,
      "tangent steps run but not averaged, a prefix of t = 1..horizon (0 <= burn-in < steps); default steps / 10",
      [](const Config& c) { return c.analysis.lyapunov_burn_in ? Value(I(*c.analysis.lyapunov_burn_in)) : Value(); },
      [](Config& c, const Value& v) {
        c.analysis.lyapunov_burn_in = std::min(at_least(as_int(v), 0), kMaxDimension);
      });
  add("analysis.lyapunov_interval", ValueType::integer,
      "re-orthonormalise (QR) the Lyapunov tangent frame every this many steps (>= 1)",
      [](const Config& c) { return Value(I(c.analysis.lyapunov_interval)); },
      [](Config& c, const Value& v) {
        c.analysis.lyapunov_interval = std::min(at_least(as_int(v), 1), kMaxDimension);
      });
  return k;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string KeySpec::default_text() const {
  const Value v = get(Config{});
  if (std::holds_alternative<std::monostate>(v)) return "(see meaning)";
  return format_value(v);
}

const std::vector<KeySpec>& scenario_keys() {
  static const std::vector<KeySpec> keys = make_keys();
  return keys;
}

const KeySpec* find_key(const std::string& name) {
  for (const auto& k : scenario_keys())
    if (k.name == name) return &k;
  return nullptr;
}

std::string suggest_key(const std::string& name) {
  // A key is close when the whole name is a small edit away, or when its last component is (a key
  // written in the wrong section: spectrum.units -> network.units).
  const auto leaf = [](const std::string& s) { return s.substr(s.rfind('.') + 1); };
  const std::string name_leaf = leaf(name);
  std::string best;
  std::size_t best_score = std::string::npos;
  for (const auto& k : scenario_keys()) {
    const std::size_t full = edit_distance(name, k.name);
    const std::size_t part = edit_distance(name_leaf, leaf(k.name));
    const bool close = full <= std::max<std::size_t>(2, name.size() / 4) ||
                       part <= std::max<std::size_t>(1, name_leaf.size() / 3);
    const std::size_t score = std::min(full, part + 1);
    if (close && score < best_score) best_score = score, best = k.name;
  }
  return best;
}

namespace {

std::string shape(const Eigen::Index rows, const Eigen::Index cols) {
  return std::to_string(rows) + " x " + std::to_string(cols);
}

/// Throws file_shape_problem() as std::invalid_argument when there is one.
void require_file_shape(const Config& c, const std::string& key, Eigen::Index rows, Eigen::Index cols) {
  if (std::string why = file_shape_problem(c, key, rows, cols); !why.empty()) throw std::invalid_argument(why);
}

/// "key: only used with <condition>" when a file key is set but its kind does not read it.
void require_unused_empty(const std::string& value, const std::string& key, bool used, const std::string& when) {
  if (!used && !value.empty()) throw std::invalid_argument(key + ": only used with " + when);
}

/// The gated cells' and the torch import's constraints.
void validate_gated(const Config& c) {
  const CellKind kind = c.network.cell;
  const Eigen::Index n = c.network.units;
  // gates.* and init.cell_file are ignored by the cells without gates or without c (so that one sweep can put
  // vanilla, gru and lstm side by side over gates.bias).
  if (const auto& c0 = c.init.cell_matrix) require_file_shape(c, "init.cell_file", c0->rows(), c0->cols());
  if (is_gated(kind) && (c.spectrum.kind == SpectrumKind::sparse || c.spectrum.kind == SpectrumKind::chain ||
                         c.spectrum.storage == StoragePolicy::sparse || c.spectrum.sparse_matrix))
    throw std::invalid_argument("spectrum.kind = \"" + to_string(c.spectrum.kind) + "\": the gated cells need dense "
                                "W (ginibre, orthogonal, symmetric, nonnormal, dale or a dense file)");
  if (is_gated(kind) && (c.input.matrix || !c.input.weights.empty()) && !c.import.weights)
    throw std::invalid_argument("input.weights: not used by the gated cells (U is drawn, or comes from [import] torch)");
  if (!c.import.torch.empty()) {
    if (kind == CellKind::residual || kind == CellKind::leaky || kind == CellKind::minimalrnn)
      throw std::invalid_argument("import.torch: torch has no " + to_string(kind) + " cell (use vanilla for nn.RNN, "
                                  "gru or lstm)");
    if (c.spectrum.radius || c.spectrum.kind != SpectrumKind::ginibre || c.gates.radius || c.gates.bias != 0.0 ||
        c.bias.mean != 0.0 || c.bias.std != 0.0 || !c.bias.file.empty() || !c.input.weights.empty())
      throw std::invalid_argument("import.torch: W, U and b come from the torch folder; spectrum.*, gates.*, bias.* "
                                  "and input.weights must stay unset");
  }
  if (const auto& t = c.import.weights) {
    const Eigen::Index g = gate_blocks(kind);
    require_file_shape(c, "weight_hh_l0.npy", t->weight_hh.rows(), t->weight_hh.cols());
    require_file_shape(c, "weight_ih_l0.npy", t->weight_ih.rows(), t->weight_ih.cols());
    if (t->bias_ih.size() != g * n || t->bias_hh.size() != g * n)
      throw std::invalid_argument("import.torch = \"" + c.import.torch + "\": bias_ih_l0.npy and bias_hh_l0.npy must hold " + std::to_string(g * n) +
                                  " values each, got " + std::to_string(t->bias_ih.size()) + " and " +
                                  std::to_string(t->bias_hh.size()));
  }
}

}  // namespace

const std::vector<std::string>& conditional_keys() {
  static const std::vector<std::string> keys{"network.leak", "network.alpha", "network.beta", "spectrum.density",
                                             "input.std", "gates.radius", "gates.bias", "init.cell_file",
                                             "network.slope_at_kink"};
  return keys;
}

std::string unused_reason(const Config& c, const std::string& key) {
  const auto act = c.network.activation;
  const std::string activation = "network.activation is \"" + to_string(act) + "\"";
  if (key == "network.leak" && c.network.cell != CellKind::leaky)
    return "only used with network.cell = \"leaky\" (it is \"" + to_string(c.network.cell) + "\")";
  if (key == "network.alpha" && act != ActivationKind::leaky_relu && act != ActivationKind::elu)
    return "only used with network.activation = \"leaky_relu\" or \"elu\" (" + activation + ")";
  if (key == "network.beta" && act != ActivationKind::softplus && act != ActivationKind::swish)
    return "only used with network.activation = \"softplus\" or \"swish\" (" + activation + ")";
  if (key == "spectrum.density" && c.spectrum.kind != SpectrumKind::sparse)
    return "only used with spectrum.kind = \"sparse\" (it is \"" + to_string(c.spectrum.kind) + "\")";
  if (key == "network.slope_at_kink" && act != ActivationKind::relu && act != ActivationKind::leaky_relu)
    return "only used with network.activation = \"relu\" or \"leaky_relu\" (" + activation + ")";
  if ((key == "gates.radius" || key == "gates.bias") && !is_gated(c.network.cell))
    return "only used with network.cell = \"gru\", \"lstm\" or \"minimalrnn\" (it is \"" +
           to_string(c.network.cell) + "\")";
  if (key == "init.cell_file" && c.network.cell != CellKind::lstm)
    return "only used with network.cell = \"lstm\" (it is \"" + to_string(c.network.cell) + "\")";
  if (key == "input.std" && c.input.kind == InputKind::none)
    return "not used with input.kind = \"none\" (no input drive)";
  if (key == "input.std" && !c.input.weights.empty())
    return "not used with input.weights (U is read from " + c.input.weights + ")";
  return "";
}

std::string file_shape_problem(const Config& c, const std::string& key, Eigen::Index rows, Eigen::Index cols) {
  const Eigen::Index n = c.network.units, batch = c.network.batch;
  const auto quoted = [](const std::string& path) { return "\"" + path + "\""; };
  if (key == "spectrum.file") {
    if (rows != cols || rows == 0)
      return "spectrum.file = " + quoted(c.spectrum.file) + ": W must be a non-empty square matrix, got " + shape(rows, cols);
    if (rows != n)
      return "network.units = " + std::to_string(n) + ": but " + c.spectrum.file + " holds a " + shape(rows, cols) +
             " matrix";
    return "";
  }
  if (key == "input.file") {
    const Eigen::Index forward_steps = c.analysis.burn_in + c.network.steps;
    if (rows != forward_steps || cols != c.input.dim)
      return "input.file = " + quoted(c.input.file) + ": holds " + shape(rows, cols) +
             ", expected (analysis.burn_in + network.steps) x input.dim = " + shape(forward_steps, c.input.dim) +
             " (one row per forward step)";
    return "";
  }
  if (key == "input.weights") {
    if (rows != n || cols != c.input.dim)
      return "input.weights = " + quoted(c.input.weights) + ": holds " + shape(rows, cols) +
             ", expected network.units x input.dim = " + shape(n, c.input.dim);
    return "";
  }
  if (key == "init.file" || key == "init.cell_file") {
    if (rows != n || (cols != 1 && cols != batch))
      return key + " = " + quoted(key == "init.file" ? c.init.file : c.init.cell_file) + ": holds " + shape(rows, cols) +
             ", expected network.units = " + std::to_string(n) + " values (shared by every trajectory) or units x "
             "network.batch = " + shape(n, batch);
    return "";
  }
  if (key == "bias.file") {
    if (!((rows == n && cols == 1) || (rows == 1 && cols == n)))
      return "bias.file = " + quoted(c.bias.file) + ": holds " + shape(rows, cols) + ", expected network.units = " +
             std::to_string(n) + " values";
    return "";
  }
  const CellKind kind = c.network.cell;
  const Eigen::Index g = gate_blocks(kind);
  const std::string torch = "import.torch = " + quoted(c.import.torch) + ": ";
  if (key == "weight_hh_l0.npy") {
    if (rows != g * n || cols != n)
      return torch + "weight_hh_l0.npy holds " + shape(rows, cols) + ", expected " + shape(g * n, n) +
             " for network.cell = \"" + to_string(kind) + "\" and network.units = " + std::to_string(n) +
             (cols > 0 && rows % cols == 0
                  ? " (the file holds " + std::to_string(rows / cols) + " blocks of " + std::to_string(cols) + " units)"
                  : std::string());
    return "";
  }
  if (key == "weight_ih_l0.npy") {
    if (rows != g * n) return torch + "weight_ih_l0.npy holds " + shape(rows, cols) + ", expected " + std::to_string(g * n) + " rows";
    if (c.input.kind != InputKind::none && cols != c.input.dim)
      return torch + "weight_ih_l0.npy has " + std::to_string(cols) + " input columns but input.dim = " +
             std::to_string(c.input.dim);
    return "";
  }
  if (key == "bias_ih_l0.npy" || key == "bias_hh_l0.npy") {
    if (rows != 1 && cols != 1)
      return torch + key + " holds a " + shape(rows, cols) + " matrix, expected a vector";
    if (rows * cols != g * n)
      return torch + key + " holds " + std::to_string(rows * cols) + " values, expected " + std::to_string(g * n) +
             " for network.cell = \"" + to_string(kind) + "\" and network.units = " + std::to_string(n);
    return "";
  }
  throw std::logic_error("file_shape_problem: " + key + " is not a file key");
}

void validate_config(const Config& c) {
  const Eigen::Index n = c.network.units;
  const auto& sc = c.spectrum;
  if (sc.kind == SpectrumKind::file && sc.file.empty())
    throw std::invalid_argument("spectrum.file: kind = \"file\" needs a file (.npy or .mtx)");
  if (sc.kind != SpectrumKind::file && !sc.file.empty())
    throw std::invalid_argument("spectrum.file: only used with kind = \"file\" (kind is \"" + to_string(sc.kind) +
                                "\")");
  if (sc.kind == SpectrumKind::file && (sc.matrix || sc.sparse_matrix))
    require_file_shape(c, "spectrum.file", sc.sparse_matrix ? sc.sparse_matrix->rows() : sc.matrix->rows(),
                       sc.sparse_matrix ? sc.sparse_matrix->cols() : sc.matrix->cols());
  if (sc.kind == SpectrumKind::sparse) {
    if ((sc.sparse.density > 0.0) == (sc.sparse.in_degree > 0))
      throw std::invalid_argument("spectrum.kind: \"sparse\" needs exactly one of spectrum.density (0 < p <= 1) "
                                  "and spectrum.in_degree (K >= 1)");
    if (sc.sparse.in_degree > n)
      throw std::invalid_argument("spectrum.in_degree = " + std::to_string(sc.sparse.in_degree) +
                                  ": must be <= network.units = " + std::to_string(n));
  }
  if (sc.kind == SpectrumKind::chain && sc.radius && *sc.radius != 0.0)
    throw std::invalid_argument("spectrum.radius: kind = \"chain\" is nilpotent (rho = 0, ||W||_2 = 1): its radius "
                                "cannot be set");
  if (expected_storage(c) == Storage::sparse && n > std::int64_t(std::numeric_limits<int>::max()) - 1)
    throw std::invalid_argument("network.units: sparse storage needs units < 2^31");

  // Imported inputs, input weights, initial state and bias.
  const auto& in = c.input;
  require_unused_empty(in.file, "input.file", in.kind == InputKind::file, "input.kind = \"file\"");
  require_unused_empty(in.weights, "input.weights", in.kind != InputKind::none, "input.kind = \"gaussian\" or \"file\"");
  if (in.kind == InputKind::file && in.file.empty())
    throw std::invalid_argument("input.file: kind = \"file\" needs a file (.npy or .mtx), (burn_in + steps) x dim");
  if (in.kind == InputKind::file && in.sequence)
    require_file_shape(c, "input.file", in.sequence->rows(), in.sequence->cols());
  if (in.matrix) require_file_shape(c, "input.weights", in.matrix->rows(), in.matrix->cols());
  require_unused_empty(c.init.file, "init.file", c.init.state == InitState::file, "init.state = \"file\"");
  if (c.init.state == InitState::file && c.init.file.empty())
    throw std::invalid_argument("init.file: state = \"file\" needs a file (.npy or .mtx), units or units x batch");
  if (const auto& h0 = c.init.matrix) require_file_shape(c, "init.file", h0->rows(), h0->cols());
  if (!c.bias.file.empty() && (c.bias.mean != 0.0 || c.bias.std != 0.0))
    throw std::invalid_argument("bias.file: replaces the random bias; bias.mean and bias.std must stay 0");
  if (const auto& b = c.bias.vector) require_file_shape(c, "bias.file", b->rows(), b->cols());

  validate_gated(c);

  if (c.analysis.lyapunov > state_vectors(c.network.cell) * c.network.units)
    throw std::invalid_argument("analysis.lyapunov = " + std::to_string(c.analysis.lyapunov) +
                                ": must be <= network.units = " + std::to_string(c.network.units));
  if (c.analysis.lyapunov > 0 && c.analysis.lyapunov_burn_in && *c.analysis.lyapunov_burn_in >= c.network.steps)
    throw std::invalid_argument("analysis.lyapunov_burn_in = " + std::to_string(*c.analysis.lyapunov_burn_in) +
                                ": must be < network.steps = " + std::to_string(c.network.steps) +
                                " (the tangent burn-in is a prefix of the backpropagated window)");
  const auto act = c.network.activation;
  if (c.network.alpha && act == ActivationKind::elu && *c.network.alpha < 0)
    throw std::invalid_argument("network.alpha: elu needs alpha >= 0");

  // Refuse before allocating what cannot fit (cell_memory_bytes: tape, W in its storage, U, states and the
  // Lyapunov tangent frames) in the memory this process may use (the smallest of RAM, the cgroup limit and
  // RLIMIT_AS; read once). The run layer checks the cells running at once (fit_threads).
  static const MemoryLimit limit = memory_limit();
  const double bytes = cell_memory_bytes(c);
  if (limit.bytes > 0 && bytes > kMemoryShare * limit.bytes) {
    const double scalar = c.network.precision == Precision::float32 ? 4.0 : 8.0;
    std::ostringstream os;
    os.precision(3);
    os << "network.units: this cell needs " << bytes / 1e9 << " GB (tape N*B*T*" << scalar << " bytes + W, "
       << to_string(expected_storage(c)) << "), more than " << int(kMemoryShare * 100) << "% of "
       << limit.bytes / 1e9 << " GB (" << limit.source << ")";
    throw std::invalid_argument(os.str());
  }
}


}  // namespace gradflow
