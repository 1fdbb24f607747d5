// Numeric extremes: every activation and spectrum kind at the edges of the parameter space. Nothing may
// crash, no output may be NaN or inf; a diverged run says so in its own columns.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/run/scenario.hpp"

using namespace gradflow;

namespace {

bool finite_or_flagged(const CellResult& r) {
  const CellMetrics& m = r.metrics;
  for (double x : {m.rho, m.spectral_norm, m.mean_abs_dact, m.mean_sq_dact, m.sup_dact, m.predictor,
                   m.predictor_rms, m.bound, m.predictor_cell, m.predictor_rms_cell, m.bound_cell, m.dead_fraction,
                   m.saturated_fraction})
    if (!std::isfinite(x)) return false;
  // growth_rate may be unset (no window: the state diverged during burn-in), never non-finite.
  if (m.fit.growth_rate && !std::isfinite(*m.fit.growth_rate)) return false;
  if (!m.fit.growth_rate && !m.forward_diverged_at && !m.grad_zero_at) return false;
  if (m.log10_grad_ratio && !std::isfinite(*m.log10_grad_ratio)) return false;
  // Model-space and ground-truth columns: finite when set (mf_lyapunov = ln growth may be -inf: written empty).
  for (const auto* x : {&m.transient_peak, &r.spectrum.bulk_radius, &r.spectrum.outlier})
    if (*x && !std::isfinite(**x)) return false;
  if (!std::isfinite(r.gain_rms) || !std::isfinite(r.trace.max_abs_dact) || !std::isfinite(r.nonzeros)) return false;
  const MeanField& mf = r.mean_field;
  if (mf.status != MeanFieldStatus::not_applicable && !(std::isfinite(mf.chi) && std::isfinite(mf.growth)))
    return false;
  if (mf.status == MeanFieldStatus::ok && !std::isfinite(mf.q)) return false;
  const auto& tr = r.trace;
  for (Eigen::Index t = 0; t <= tr.horizon; ++t) {
    if (!std::isfinite(tr.log10_norm_mean[t]) || !std::isfinite(tr.log10_norm_min[t]) ||
        !std::isfinite(tr.log10_norm_max[t]))
      return false;
    if (t >= 1 && !std::isfinite(tr.mean_abs_dact_t[t])) return false;
  }
  return true;
}

struct Edge {
  const char* name;
  Eigen::Index units, steps, batch;
  double radius, input_std, bias_mean;
};
const Edge kEdges[] = {
    {"N=1 T=1 B=1", 1, 1, 1, 1.0, 0.5, 0.0},   {"N=2", 2, 20, 1, 1.0, 0.5, 0.0},
    {"radius 0", 16, 30, 2, 0.0, 0.5, 0.0},      {"radius 1e6", 16, 30, 2, 1e6, 0.5, 0.0},
    {"input std 1e6", 16, 30, 2, 1.0, 1e6, 0.0}, {"bias 1e6", 16, 30, 2, 1.0, 0.5, 1e6},
    {"bias -1e6", 16, 30, 2, 1.0, 0.5, -1e6},    {"everything huge", 8, 30, 2, 1e6, 1e6, 1e6},
};

/// The cell kinds at their edges: vanilla, residual, and leaky with leak 1 / 2 and with a tiny leak
/// (h_t = (1 - 1e-6) h_{t-1} + 1e-6 f(a_t): almost the identity).
struct CellEdge {
  const char* name;
  CellKind kind;
  double leak;
};
const CellEdge kCells[] = {{"vanilla", CellKind::vanilla, 1.0},
                           {"residual", CellKind::residual, 1.0},
                           {"leaky 0.5", CellKind::leaky, 0.5},
                           {"leaky 1e-6", CellKind::leaky, 1e-6}};

Config edge_config(const Edge& e, ActivationKind act, Precision p, const CellEdge& cell) {
  Config c;
  c.network.units = e.units;
  c.network.steps = e.steps;
  c.network.batch = e.batch;
  c.network.activation = act;
  c.network.precision = p;
  c.network.cell = cell.kind;
  c.network.leak = cell.leak;
  c.spectrum.radius = e.radius;
  c.input.std = e.input_std;
  c.bias.mean = e.bias_mean;
  c.analysis.burn_in = 5;
  return c;
}

/// A spectrum kind at one setting of its own parameters, applied after the edge (it sees the edge's units).
struct Kind {
  std::string name;
  std::function<void(Config&)> set;
};

/// Every edge x kind x activation x precision x cell: a valid configuration, no exception, every value
/// finite or flagged. Returns the number of cells run.
int run_edges(const std::vector<Kind>& kinds, const std::vector<ActivationKind>& activations) {
  int runs = 0;
  for (const Edge& e : kEdges)
    for (const Kind& kind : kinds)
      for (ActivationKind act : activations)
        for (Precision p : {Precision::float32, Precision::float64})
          for (const CellEdge& cell : kCells) {
            Config c = edge_config(e, act, p, cell);
            kind.set(c);
            INFO(e.name << ", " << kind.name << ", " << to_string(act) << ", " << to_string(p) << ", "
                        << cell.name);
            REQUIRE_NOTHROW(validate_config(c));
            CellResult r;
            REQUIRE_NOTHROW(r = simulate_cell(c, 0, 0));
            CHECK(finite_or_flagged(r));
            ++runs;
          }
  return runs;
}

}  // namespace

TEST_CASE("every activation, spectrum kind and precision survives the edges of the parameter space",
          "[extremes]") {
  std::vector<Kind> kinds;
  for (SpectrumKind kind : {SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric})
    kinds.push_back({to_string(kind), [kind](Config& c) { c.spectrum.kind = kind; }});
  CHECK(run_edges(kinds, all_activations()) == 8 * 3 * 11 * 2 * 4);
}

TEST_CASE("the model-space kinds (sparse, nonnormal, chain, dale) survive the same edges in every cell",
          "[extremes][model]") {
  // Sparse kinds also in sparse storage (at these sizes "auto" stores them dense): the sparse products.
  auto sparse_density = [](double p, StoragePolicy storage = StoragePolicy::automatic) {
    return [p, storage](Config& c) {
      c.spectrum.kind = SpectrumKind::sparse;
      c.spectrum.sparse.density = p;
      c.spectrum.storage = storage;
    };
  };
  auto sparse_in_degree = [](bool full, StoragePolicy storage = StoragePolicy::automatic) {
    return [full, storage](Config& c) {
      c.spectrum.kind = SpectrumKind::sparse;
      c.spectrum.sparse.in_degree = full ? c.network.units : 1;
      c.spectrum.storage = storage;
    };
  };
  auto nonnormal = [](double s) {
    return [s](Config& c) {
      c.spectrum.kind = SpectrumKind::nonnormal;
      c.spectrum.nonnormality = s;
    };
  };
  auto dale = [](double f, bool balance, double std_scale, double mean_scale) {
    return [=](Config& c) {
      c.spectrum.kind = SpectrumKind::dale;
      c.spectrum.dale.excitatory = f;
      c.spectrum.dale.balance = balance;
      c.spectrum.dale.std_e *= std_scale;
      c.spectrum.dale.std_i *= std_scale;
      c.spectrum.dale.mean_e *= mean_scale;
      c.spectrum.dale.mean_i *= mean_scale;
    };
  };
  const std::vector<Kind> kinds{
      {"sparse density 1", sparse_density(1.0)},
      {"sparse density 0.3", sparse_density(0.3)},
      {"sparse density 1e-9 (no nonzero)", sparse_density(1e-9)},
      {"sparse in_degree 1", sparse_in_degree(false)},
      {"sparse in_degree N", sparse_in_degree(true)},
      {"sparse density 0.3, sparse storage", sparse_density(0.3, StoragePolicy::sparse)},
      {"sparse density 1e-9, sparse storage", sparse_density(1e-9, StoragePolicy::sparse)},
      {"sparse in_degree 1, sparse storage", sparse_in_degree(false, StoragePolicy::sparse)},
      {"nonnormal s 0", nonnormal(0.0)},
      {"nonnormal s 1", nonnormal(1.0)},
      {"nonnormal s 1e6", nonnormal(1e6)},
      {"chain", [](Config& c) {
         c.spectrum.kind = SpectrumKind::chain;
         c.spectrum.radius.reset();  // not settable: rho = 0
       }},
      {"chain, sparse storage", [](Config& c) {
         c.spectrum.kind = SpectrumKind::chain;
         c.spectrum.radius.reset();
         c.spectrum.storage = StoragePolicy::sparse;
       }},
      {"dale f 0.8", dale(0.8, false, 1.0, 1.0)},
      {"dale f 0.8 balanced", dale(0.8, true, 1.0, 1.0)},
      {"dale all excitatory (f 1 - 1e-12)", dale(1.0 - 1e-12, false, 1.0, 1.0)},
      {"dale all excitatory, balanced", dale(1.0 - 1e-12, true, 1.0, 1.0)},
      {"dale all inhibitory (f 1e-12)", dale(1e-12, false, 1.0, 1.0)},
      {"dale all inhibitory, balanced", dale(1e-12, true, 1.0, 1.0)},
      {"dale zero stds (rank one)", dale(0.5, false, 0.0, 1.0)},
      {"dale zero stds, balanced (W = 0)", dale(0.5, true, 0.0, 1.0)},
      {"dale zero means", dale(0.8, false, 1.0, 0.0)},
  };
  CHECK(run_edges(kinds, {ActivationKind::identity, ActivationKind::tanh, ActivationKind::relu,
                          ActivationKind::softplus, ActivationKind::selu}) == 8 * 22 * 5 * 2 * 4);
}

TEST_CASE("a nilpotent sparse or dale draw is used as drawn with rho = 0, never rescaled by 1 / rounding",
          "[extremes][model]") {
  auto run = [](auto set) {
    Config c = edge_config({"N=16", 16, 30, 2, 1.0, 0.5, 0.0}, ActivationKind::tanh, Precision::float64,
                           kCells[0]);
    set(c);
    REQUIRE_NOTHROW(validate_config(c));
    return simulate_cell(c, 0, 0);
  };
  SECTION("sparse with no nonzero (density 1e-9): W = 0, the gradient is exactly zero after one step") {
    const CellResult r = run([](Config& c) {
      c.spectrum.kind = SpectrumKind::sparse;
      c.spectrum.sparse.density = 1e-9;
    });
    CHECK(r.nonzeros == 0.0);
    CHECK(r.metrics.rho == 0.0);
    CHECK(r.metrics.spectral_norm == 0.0);
    CHECK(r.metrics.grad_zero_at);
    CHECK(r.spectrum.message.find("nilpotent") != std::string::npos);
  }
  // Rank one, 1 d^T with d . 1 = 0 in exact arithmetic: a dense solver returns rho ~ 1e-9 from rounding,
  // which radius / rho turned into ||W||_2 ~ 4e9.
  for (const bool balance : {true, false}) {
    DYNAMIC_SECTION("dale with zero stds, " << (balance ? "balanced rows" : "means cancelling exactly (N_E = 4, N_I = 1)")) {
      const CellResult r = run([balance](Config& c) {
        c.spectrum.kind = SpectrumKind::dale;
        c.spectrum.dale.std_e = c.spectrum.dale.std_i = 0.0;
        c.spectrum.dale.balance = balance;
        if (!balance) c.network.units = 5;  // 4 * 1 + 1 * (-4) = 0
      });
      CHECK(r.metrics.rho == 0.0);
      CHECK(r.metrics.spectral_norm < 10.0);  // ||1 d^T||_2 = ||1|| ||d|| at the drawn scale
      CHECK(r.metrics.spectral_norm > 1.0);
      CHECK(r.spectrum.message.find("nilpotent") != std::string::npos);
    }
  }
  SECTION("a balanced dale W of one unit is 0") {
    const CellResult r = run([](Config& c) {
      c.spectrum.kind = SpectrumKind::dale;
      c.spectrum.dale.balance = true;
      c.network.units = 1;
    });
    CHECK(r.metrics.rho == 0.0);
    CHECK(r.nonzeros == 0.0);
  }
}
