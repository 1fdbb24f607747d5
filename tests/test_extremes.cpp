// Numeric extremes: every activation and spectrum kind at the edges of the parameter space. Nothing may
// crash, no output may be NaN or inf; a diverged run says so in its own columns.
#include <cmath>

#include <catch2/catch.hpp>

#include "gradflow/cell.hpp"
#include "gradflow/scenario.hpp"

using namespace gradflow;

namespace {

bool finite_or_flagged(const CellResult& r) {
  const CellMetrics& m = r.metrics;
  for (double x : {m.rho, m.spectral_norm, m.mean_abs_dact, m.mean_sq_dact, m.sup_dact, m.predictor,
                   m.predictor_rms, m.bound, m.dead_fraction, m.saturated_fraction})
    if (!std::isfinite(x)) return false;
  // growth_rate may be unset (no window: the state diverged during burn-in), never non-finite.
  if (m.fit.growth_rate && !std::isfinite(*m.fit.growth_rate)) return false;
  if (!m.fit.growth_rate && !m.forward_diverged_at && !m.grad_zero_at) return false;
  if (m.log10_grad_ratio && !std::isfinite(*m.log10_grad_ratio)) return false;
  const auto& tr = r.trace;
  for (Eigen::Index t = 0; t <= tr.horizon; ++t) {
    if (!std::isfinite(tr.log10_norm_mean[t]) || !std::isfinite(tr.log10_norm_min[t]) ||
        !std::isfinite(tr.log10_norm_max[t]))
      return false;
    if (t >= 1 && !std::isfinite(tr.mean_abs_dact_t[t])) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("every activation, spectrum kind and precision survives the edges of the parameter space",
          "[extremes]") {
  struct Edge {
    const char* name;
    Eigen::Index units, steps, batch;
    double radius, input_std, bias_mean;
  };
  const Edge edges[] = {
      {"N=1 T=1 B=1", 1, 1, 1, 1.0, 0.5, 0.0},   {"N=2", 2, 20, 1, 1.0, 0.5, 0.0},
      {"radius 0", 16, 30, 2, 0.0, 0.5, 0.0},      {"radius 1e6", 16, 30, 2, 1e6, 0.5, 0.0},
      {"input std 1e6", 16, 30, 2, 1.0, 1e6, 0.0}, {"bias 1e6", 16, 30, 2, 1.0, 0.5, 1e6},
      {"bias -1e6", 16, 30, 2, 1.0, 0.5, -1e6},    {"everything huge", 8, 30, 2, 1e6, 1e6, 1e6},
  };
  int runs = 0;
  for (const Edge& e : edges)
    for (ActivationKind act : all_activations())
      for (SpectrumKind kind : {SpectrumKind::ginibre, SpectrumKind::orthogonal, SpectrumKind::symmetric})
        for (Precision p : {Precision::float32, Precision::float64})
          for (CellKind cell : {CellKind::vanilla, CellKind::residual}) {
            Config c;
            c.network.units = e.units;
            c.network.steps = e.steps;
            c.network.batch = e.batch;
            c.network.activation = act;
            c.network.precision = p;
            c.network.cell = cell;
            c.spectrum.kind = kind;
            c.spectrum.radius = e.radius;
            c.input.std = e.input_std;
            c.bias.mean = e.bias_mean;
            c.analysis.burn_in = 5;
            INFO(e.name << ", " << to_string(act) << ", " << to_string(kind) << ", " << to_string(p) << ", "
                        << to_string(cell));
            CellResult r;
            REQUIRE_NOTHROW(r = simulate_cell(c, 0, 0));
            CHECK(finite_or_flagged(r));
            ++runs;
          }
  CHECK(runs == 8 * 11 * 3 * 2 * 2);
}

TEST_CASE("a nilpotent sparse or dale draw is used as drawn with rho = 0, never rescaled by 1 / rounding",
          "[extremes][model]") {
  auto run = [](auto set) {
    Config c;
    c.network.units = 16;
    c.network.steps = 30;
    c.network.batch = 2;
    c.analysis.burn_in = 5;
    c.spectrum.radius = 1.0;
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
