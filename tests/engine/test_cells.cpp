// Residual and leaky cells (CellKind): J_t = c I + s diag(f'(a_t)) W, checked by identities, closed forms and
// finite differences.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "gradflow/analysis/simulate.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/analysis/metrics.hpp"
#include "gradflow/model/spectrum.hpp"
#include "reference.hpp"
#include "tolerances.hpp"

using namespace gradflow;
using namespace gradflow::test;

namespace {

constexpr double kLn10 = 2.302585092994045684;

Model model_of(const Eigen::MatrixXd& w, ActivationKind f, CellKind cell, double leak = 1.0) {
  Model m;
  m.w = w;
  m.u.resize(w.rows(), 0);
  m.activation = Activation(f);
  m.cell = cell;
  m.leak = leak;
  return m;
}

Drive seed_drive(Eigen::Index n, Eigen::Index batch, Eigen::Index steps) {
  Drive d;
  d.steps = steps;
  d.h0 = Eigen::MatrixXd::Zero(n, batch);
  d.loss = LossKind::random;
  d.loss_seed = 41;
  return d;
}

}  // namespace

TEST_CASE("residual cell: the identity path carries the gradient unchanged when f' = 0 (dead ReLU) or W = 0",
          "[cells][residual]") {
  Rng rng(1);
  const Eigen::MatrixXd w = random_recurrent(SpectrumKind::ginibre, 30, 1.5, rng);
  // All units dead: J_t = I + diag(0) W = I exactly, where the vanilla cell annihilates the gradient at once.
  Model dead = model_of(w, ActivationKind::relu, CellKind::residual);
  dead.b = Eigen::VectorXd::Constant(30, -100.0);
  Drive d = seed_drive(30, 3, 200);
  const GradientTrace tr = run_bptt<double>(dead, d);
  REQUIRE(tr.dead_fraction == 1.0);
  for (Eigen::Index t = 0; t <= tr.horizon; ++t) {
    INFO("t = " << t);
    CHECK(std::abs(tr.log10_norm_min[t]) <= kIdentityNormTol);  // unit seeds stay unit vectors
    CHECK(std::abs(tr.log10_norm_max[t]) <= kIdentityNormTol);
  }
  Model vanilla = dead;
  vanilla.cell = CellKind::vanilla;
  CHECK(run_bptt<double>(vanilla, d).zero_count[199] == 3);
  // W = 0: J_t = I whatever f.
  const GradientTrace zero_w = run_bptt<double>(model_of(Eigen::MatrixXd::Zero(30, 30), ActivationKind::tanh,
                                                         CellKind::residual), d);
  CHECK(std::abs(zero_w.log10_norm_mean[0]) <= kIdentityNormTol);
}

TEST_CASE("leaky cell: with W = 0 the gradient decays by exactly (1 - a) per step; a = 1 is the vanilla cell",
          "[cells][leaky]") {
  const double a = 0.3;
  const GradientTrace tr = run_bptt<double>(model_of(Eigen::MatrixXd::Zero(20, 20), ActivationKind::tanh,
                                                     CellKind::leaky, a), seed_drive(20, 2, 100));
  for (Eigen::Index t = 0; t <= tr.horizon; ++t)
    CHECK(tr.log10_norm_mean[t] == Approx(double(tr.horizon - t) * std::log10(1.0 - a)).margin(1e-12));

  Rng rng(2);
  Model leaky = model_of(random_recurrent(SpectrumKind::ginibre, 40, 1.2, rng), ActivationKind::tanh,
                         CellKind::leaky, 1.0);
  leaky.u = gaussian_matrix(40, 4, 0.3, rng);
  Model vanilla = leaky;
  vanilla.cell = CellKind::vanilla;
  Drive d = seed_drive(40, 2, 150);
  d.burn_in = 20;
  d.h0 = gaussian_matrix(40, 2, 0.5, rng);
  const GradientTrace l = run_bptt<double>(leaky, d), v = run_bptt<double>(vanilla, d);
  for (Eigen::Index t = 0; t <= l.horizon; ++t) CHECK(l.log10_norm_mean[t] == Approx(v.log10_norm_mean[t]).margin(1e-12));
  CHECK(l.mean_abs_dact == v.mean_abs_dact);
}

TEST_CASE("linear residual and leaky cells grow at exactly rho(c I + s W) within 1% (Ginibre N = 150, T = 1500)",
          "[cells][linear]") {
  Rng rng(2718);
  const Eigen::MatrixXd w = random_recurrent(SpectrumKind::ginibre, 150, 0.8, rng);
  for (const auto& [cell, leak] : {std::pair<CellKind, double>{CellKind::residual, 1.0}, {CellKind::leaky, 0.4},
                                   {CellKind::leaky, 0.9}}) {
    const Model m = model_of(w, ActivationKind::identity, cell, leak);
    const Eigen::MatrixXd j = m.carry() * Eigen::MatrixXd::Identity(150, 150) + m.drive_scale() * w;
    const double rho_j = dense_rho(j);
    const GradientTrace tr = run_bptt<double>(m, seed_drive(150, 4, 1500));
    const GrowthFit fit = fit_growth_rate(tr, 0.1);
    INFO(to_string(cell) << " leak " << leak << " rho(J) " << rho_j);
    REQUIRE(fit.growth_rate);
    CHECK(std::abs(*fit.growth_rate - rho_j) <= kGrowthRateTol * rho_j);
  }
}

TEST_CASE("residual and leaky BPTT gradients equal central finite differences of L = ||h_T||^2 / 2",
          "[cells][gradient]") {
  const Eigen::Index n = 6, steps = 7;
  for (const auto& [cell, leak] : {std::pair<CellKind, double>{CellKind::residual, 1.0}, {CellKind::leaky, 0.35}}) {
    Rng rng(123);
    Model m = model_of(random_recurrent(SpectrumKind::ginibre, n, 1.1, rng), ActivationKind::tanh, cell, leak);
    m.b = gaussian_matrix(n, 1, 0.3, rng).col(0);
    Drive d;
    d.steps = steps;
    d.h0 = gaussian_matrix(n, 1, 0.8, rng);
    d.loss = LossKind::final_state;
    const GradientTrace tr = run_bptt<double>(m, d);
    const double c = m.carry(), s = m.drive_scale();
    auto step = [&](const Eigen::VectorXd& h) {
      Eigen::VectorXd a = m.w * h + m.b, out(n);
      for (Eigen::Index i = 0; i < n; ++i) out[i] = c * h[i] + s * std::tanh(a[i]);
      return out;
    };
    auto loss_from = [&](Eigen::VectorXd h, Eigen::Index t) {
      for (Eigen::Index k = t + 1; k <= steps; ++k) h = step(h);
      return 0.5 * h.squaredNorm();
    };
    std::vector<Eigen::VectorXd> states{d.h0.col(0)};
    for (Eigen::Index k = 1; k <= steps; ++k) states.push_back(step(states.back()));
    for (Eigen::Index t = 0; t <= steps; ++t) {
      Eigen::VectorXd grad(n);
      const double eps = 1e-6;
      for (Eigen::Index i = 0; i < n; ++i) {
        Eigen::VectorXd hp = states[t], hm = states[t];
        hp[i] += eps;
        hm[i] -= eps;
        grad[i] = (loss_from(hp, t) - loss_from(hm, t)) / (2 * eps);
      }
      INFO(to_string(cell) << " t = " << t);
      CHECK(std::pow(10.0, tr.log10_norm_mean[t]) == Approx(grad.norm()).epsilon(kFiniteDiffTol));
    }
  }
}

TEST_CASE("the *_cell predictors use the cell's Jacobian: c + s rho E|f'|, sqrt(c^2 + s^2 rho^2 E f'^2), "
          "c + s ||W|| sup|f'|; the contract's stay rho E|f'|, rho sqrt(E f'^2), ||W|| sup|f'|", "[cells][metrics]") {
  GradientTrace tr;
  tr.batch = 1;
  tr.horizon = 1;
  tr.log10_norm_mean = {0.0, 0.0};
  tr.log10_norm_min = tr.log10_norm_max = tr.log10_norm_mean;
  tr.zero_count = {0, 0};
  tr.mean_abs_dact = 0.6;
  tr.mean_sq_dact = 0.4;
  SpectralInfo si;
  si.rho = 1.5;
  si.spectral_norm = 3.0;
  const Activation f(ActivationKind::tanh);
  AnalysisConfig a;
  for (const auto& [c, s] : {std::pair<double, double>{0.0, 1.0}, {1.0, 1.0}, {0.7, 0.3}}) {
    tr.carry = c;
    tr.drive_scale = s;
    const CellMetrics m = compute_metrics(si, f, tr, a);
    INFO("c = " << c << " s = " << s);
    CHECK(m.predictor_cell == Approx(c + s * 1.5 * 0.6));
    CHECK(m.predictor_rms_cell == Approx(std::sqrt(c * c + s * s * 1.5 * 1.5 * 0.4)));
    CHECK(m.bound_cell == Approx(c + s * 3.0 * 1.0));
    // The output contract's columns do not depend on the cell.
    CHECK(m.predictor == Approx(1.5 * 0.6));
    CHECK(m.predictor_rms == Approx(1.5 * std::sqrt(0.4)));
    CHECK(m.bound == Approx(3.0 * 1.0));
    if (c == 0.0 && s == 1.0) {  // vanilla: the cell's own are the contract's, to the bit
      CHECK(m.predictor_cell == m.predictor);
      CHECK(m.predictor_rms_cell == m.predictor_rms);
      CHECK(m.bound_cell == m.bound);
    }
  }
}

TEST_CASE("simulate_cell passes the cell to the metrics: a residual tanh cell has predictors above 1",
          "[cells][metrics]") {
  Config c;
  c.network.units = 64;
  c.network.steps = 100;
  c.network.batch = 2;
  c.network.cell = CellKind::residual;
  c.spectrum.radius = 0.5;
  const CellResult r = simulate_cell(c, 0, 0);
  CHECK(r.trace.carry == 1.0);
  CHECK(r.metrics.predictor_cell == Approx(1.0 + 0.5 * r.metrics.mean_abs_dact));
  CHECK(r.metrics.predictor_rms_cell > 1.0);
  CHECK(r.metrics.predictor == Approx(0.5 * r.metrics.mean_abs_dact));  // the textbook rule calls it vanishing
  REQUIRE(r.metrics.fit.growth_rate);
  CHECK(*r.metrics.fit.growth_rate > 1.0);  // residual + a contracting W still grows: the identity path
}
